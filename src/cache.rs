//! The download cache: a content-addressed store of verified artifacts with an index from
//! each artifact's mirror-independent key to its SHA-512.
//!
//! Layout under the cache root:
//!
//! ```text
//! CACHEDIR.TAG                 marks the directory for backup tools
//! .lock                        shared by every running imgforge, exclusive for `cache clean`
//! artifacts-v1/ab/<sha512>/<file name>   verified content, never modified in place
//! index-v1/<sha256 of key>.json          key → digest, size, source URL
//! locks/<sha256 of key>.lock             one per artifact while it is being downloaded
//! locks/run-<tag>.lock         held by each running imgforge (see `leftovers`)
//! derived-v1/<sha512>/<name>   facts derived from an artifact's content (its member listing)
//! tmp/                         downloads in flight; renamed into artifacts-v1 once verified
//!                              (named after their run; a dead run's are swept on open)
//! ```
//!
//! A file becomes visible under `artifacts-v1` or `index-v1` only by an atomic rename after
//! it was fsynced, so a reader never sees a partial artifact, and an entry present in the
//! index was verified when it was stored.
//!
//! Nothing read back is trusted on its word: an index entry whose file name is not one plain
//! name, whose digests are not hex of the right length, or whose content path leaves the
//! cache is reported as damaged and treated as a miss (the next download replaces it); and
//! the content itself is hashed again whenever it is used (see [`CachedArtifact::read_verified`]
//! and `extract::Archive::cached`).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use crate::exit;

const ARTIFACTS: &str = "artifacts-v1";
const INDEX: &str = "index-v1";
const LOCKS: &str = "locks";
const TMP: &str = "tmp";
const DERIVED: &str = "derived-v1";
const ROOT_LOCK: &str = ".lock";
const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
const CACHEDIR_TAG_TEXT: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by imgforge.\n\
# For information about cache directory tags see https://bford.info/cachedir/\n";

/// Everything that can go wrong with the cache itself.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache directory (or a folder in it) cannot be created or written.
    #[error("cannot use cache directory {path}")]
    Unusable {
        /// The directory or file that could not be created or written.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Writing an artifact or index entry into the cache failed.
    #[error("cannot write {path}")]
    Write {
        /// The file being written.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading from the cache failed.
    #[error("cannot read {path}")]
    Read {
        /// The file being read.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A cached artifact's content no longer matches its index entry.
    #[error(
        "the cached {} does not match its recorded digest (expected sha512:{expected}, found \
         sha512:{actual}); it was not used. Run `imgforge cache verify` to remove it, then run \
         again to download it afresh",
        .path.display()
    )]
    Damaged {
        /// The content file.
        path: PathBuf,
        /// The recorded SHA-512.
        expected: String,
        /// The SHA-512 of what is there.
        actual: String,
    },
    /// Taking a cache lock failed.
    #[error("cannot lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `cache clean` was pointed at a directory imgforge did not make its cache.
    #[error(
        "refusing to clean {path}: it has no imgforge CACHEDIR.TAG, so it is not an imgforge cache; \
         check --cache-dir / IMGFORGE_CACHE_DIR (`imgforge cache path` shows the cache in use)"
    )]
    NotACache {
        /// The directory.
        path: PathBuf,
    },
}

impl CacheError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CacheError::NotACache { .. } => exit::CONFIG,
            CacheError::Damaged { .. } => exit::INTEGRITY,
            _ => exit::STORAGE,
        }
    }
}

impl CacheError {
    /// The I/O error underneath, for callers that classify failures (disk full, permissions).
    pub fn io_error(&self) -> Option<&io::Error> {
        match self {
            CacheError::Unusable { source, .. }
            | CacheError::Write { source, .. }
            | CacheError::Read { source, .. }
            | CacheError::Lock { source, .. } => Some(source),
            CacheError::NotACache { .. } | CacheError::Damaged { .. } => None,
        }
    }
}

/// What the index records about one stored artifact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IndexEntry {
    /// Mirror-independent key, e.g. `apache/spark/spark-3.1.1/spark-3.1.1-bin-hadoop3.2.tgz`.
    pub key: String,
    /// The file name.
    pub file_name: String,
    /// Lower-case hex SHA-512 of the content.
    pub sha512: String,
    /// Lower-case hex SHA-256 of the content, what verify-on-use checks (SHA-256 is several
    /// times cheaper than SHA-512 on CPUs with SHA extensions). Absent in entries stored by
    /// older versions; those are checked against `sha512`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// The URL it was downloaded from.
    pub url: String,
    /// The digest it was verified against (`sha1:…`, `sha512:…`), as published or pinned.
    pub verified_with: String,
    /// Seconds since the Unix epoch when it was stored.
    pub stored_at: u64,
}

impl IndexEntry {
    /// What is wrong with this entry read from `index_file`, if anything: a file name that is
    /// not one plain name, or digests that are not lower-case hex of their length.
    pub fn damage(&self) -> Option<String> {
        let name = &self.file_name;
        let mut components = Path::new(name).components();
        let plain = matches!(
            (components.next(), components.next()),
            (Some(std::path::Component::Normal(only)), None) if only == name.as_str()
        );
        if !plain || name.len() > 255 || name.contains('\0') {
            return Some(format!(
                "file_name {name:?} is not a single plain file name"
            ));
        }
        let hex = |text: &str, length: usize| {
            text.len() == length
                && text
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
        };
        if !hex(&self.sha512, 128) {
            return Some(format!(
                "sha512 {:?} is not 128 lower-case hex digits",
                self.sha512
            ));
        }
        if let Some(sha256) = &self.sha256
            && !hex(sha256, 64)
        {
            return Some(format!("sha256 {sha256:?} is not 64 lower-case hex digits"));
        }
        None
    }
}

/// A verified artifact in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedArtifact {
    /// The index record.
    pub entry: IndexEntry,
    /// Where the content is.
    pub path: PathBuf,
}

impl CachedArtifact {
    /// The whole content (for small artifacts such as POMs), hashed as it is read and refused
    /// when it no longer matches the index.
    pub fn read_verified(&self) -> Result<Vec<u8>, CacheError> {
        let bytes = fs::read(&self.path).map_err(|source| CacheError::Read {
            path: self.path.clone(),
            source,
        })?;
        let actual = hex::encode(crate::digest::Sha512::digest(&bytes));
        if actual != self.entry.sha512 {
            return Err(CacheError::Damaged {
                path: self.path.clone(),
                expected: self.entry.sha512.clone(),
                actual,
            });
        }
        Ok(bytes)
    }
}

/// An open cache. Holding it keeps a shared lock so `cache clean` waits for this process.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    _shared: File,
}

/// Held while one artifact is downloaded; other processes wanting it wait, then find it cached.
#[derive(Debug)]
pub struct ArtifactLock {
    _file: File,
}

impl Cache {
    /// Open (creating if needed) the cache at `root` and take the shared lock.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        for dir in [ARTIFACTS, INDEX, LOCKS, TMP, DERIVED] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(|source| CacheError::Unusable { path, source })?;
        }
        let tag = root.join(CACHEDIR_TAG);
        if !tag.exists() {
            write_through_tmp(&root.join(TMP), &tag, CACHEDIR_TAG_TEXT.as_bytes()).map_err(
                |source| CacheError::Unusable {
                    path: tag.clone(),
                    source,
                },
            )?;
        }
        let shared = open_lock_file(&root.join(ROOT_LOCK))?;
        shared.lock_shared().map_err(|source| CacheError::Lock {
            path: root.join(ROOT_LOCK),
            source,
        })?;
        // This run's lock marks its temp files as owned; then what dead runs left is swept.
        let locks = root.join(LOCKS);
        crate::leftovers::hold(&locks).map_err(|source| CacheError::Lock {
            path: crate::leftovers::lock_path(&locks, crate::leftovers::tag()),
            source,
        })?;
        for path in crate::leftovers::sweep_cache(&root.join(TMP), &locks) {
            tracing::info!(path = %path.display(), "removed what an interrupted run left behind");
        }
        Ok(Cache {
            root: root.to_path_buf(),
            _shared: shared,
        })
    }

    /// The cache root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Look `key` up; `None` when it is not cached or its content has gone missing.
    pub fn lookup(&self, key: &str) -> Result<Option<CachedArtifact>, CacheError> {
        let index = self.index_path(key);
        let text = match fs::read_to_string(&index) {
            Ok(text) => text,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CacheError::Read {
                    path: index,
                    source,
                });
            }
        };
        let Ok(entry) = serde_json::from_str::<IndexEntry>(&text) else {
            // A damaged index entry is a miss; the next download replaces it.
            report_damaged(&index, "it is not a valid index entry");
            return Ok(None);
        };
        if entry.key != key {
            return Ok(None);
        }
        let Some(path) = self.checked_artifact_path(&index, &entry) else {
            return Ok(None);
        };
        match fs::metadata(&path) {
            Ok(metadata) if metadata.len() == entry.size => {
                Ok(Some(CachedArtifact { entry, path }))
            }
            _ => Ok(None),
        }
    }

    /// Take the per-artifact lock, blocking until no other process holds it.
    pub fn lock_artifact(&self, key: &str) -> Result<ArtifactLock, CacheError> {
        let path = self
            .root
            .join(LOCKS)
            .join(format!("{}.lock", key_hash(key)));
        let file = open_lock_file(&path)?;
        file.lock()
            .map_err(|source| CacheError::Lock { path, source })?;
        Ok(ArtifactLock { _file: file })
    }

    /// A new temporary file inside the cache, removed unless it is committed.
    pub fn temp_file(&self) -> Result<NamedTempFile, CacheError> {
        let dir = self.root.join(TMP);
        // Named after this run, so a later run can tell whether its owner is still alive.
        tempfile::Builder::new()
            .prefix(&crate::leftovers::temp_prefix("download"))
            .suffix(".partial")
            .tempfile_in(&dir)
            .map_err(|source| CacheError::Write { path: dir, source })
    }

    /// Make a verified download visible: fsync it, rename it into the content store and
    /// record it in the index (also by atomic rename).
    pub fn commit(
        &self,
        temp: NamedTempFile,
        entry: IndexEntry,
    ) -> Result<CachedArtifact, CacheError> {
        let path = self.artifact_path(&entry.sha512, &entry.file_name);
        let parent = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&parent).map_err(|source| CacheError::Write {
            path: parent.clone(),
            source,
        })?;
        crate::persist::persist(temp, &path).map_err(|error| CacheError::Write {
            path: error.path,
            source: error.source,
        })?;

        let index = self.index_path(&entry.key);
        let json = serde_json::to_vec_pretty(&entry).map_err(|error| CacheError::Write {
            path: index.clone(),
            source: io::Error::other(error),
        })?;
        write_through_tmp(&self.root.join(TMP), &index, &json).map_err(|source| {
            CacheError::Write {
                path: index,
                source,
            }
        })?;
        Ok(CachedArtifact { entry, path })
    }

    /// Every artifact in the index whose content is present, sorted by key.
    pub fn entries(&self) -> Result<Vec<CachedArtifact>, CacheError> {
        let mut found = Vec::new();
        for artifact in self.recorded()? {
            if let Some(artifact) = self.lookup(&artifact.entry.key)? {
                found.push(artifact);
            }
        }
        Ok(found)
    }

    /// Every artifact the index records, sorted by key, whether or not its content is still
    /// present and whole: what `verify` checks, so a truncated or deleted file is reported
    /// rather than silently skipped.
    pub fn recorded(&self) -> Result<Vec<CachedArtifact>, CacheError> {
        let dir = self.root.join(INDEX);
        let listing = fs::read_dir(&dir).map_err(|source| CacheError::Read {
            path: dir.clone(),
            source,
        })?;
        let mut found = Vec::new();
        for item in listing {
            let item = item.map_err(|source| CacheError::Read {
                path: dir.clone(),
                source,
            })?;
            let Ok(text) = fs::read_to_string(item.path()) else {
                continue;
            };
            let Ok(entry) = serde_json::from_str::<IndexEntry>(&text) else {
                report_damaged(&item.path(), "it is not a valid index entry");
                continue;
            };
            // An entry filed under another key's name is not this index's record.
            if item.path() != self.index_path(&entry.key) {
                continue;
            }
            // Never followed, never removed: `verify` removes content by this path.
            let Some(path) = self.checked_artifact_path(&item.path(), &entry) else {
                continue;
            };
            found.push(CachedArtifact { entry, path });
        }
        found.sort_by(|a, b| a.entry.key.cmp(&b.entry.key));
        Ok(found)
    }

    /// Re-hash `artifact`'s content; `Ok(None)` when it matches its record, else what is wrong.
    pub fn rehash(&self, artifact: &CachedArtifact) -> Result<Option<Damage>, CacheError> {
        let hashes =
            match crate::verify::hash_file(&artifact.path, crate::verify::Algorithm::Sha512) {
                Ok(hashes) => hashes,
                Err(error) if error.kind() == io::ErrorKind::NotFound => {
                    return Ok(Some(Damage::Missing));
                }
                Err(source) => {
                    return Err(CacheError::Read {
                        path: artifact.path.clone(),
                        source,
                    });
                }
            };
        let actual = hashes.sha512.hex();
        Ok((actual != artifact.entry.sha512).then_some(Damage::Digest { sha512: actual }))
    }

    /// Remove an artifact and its index entry (after `verify` found it damaged).
    pub fn remove(&self, artifact: &CachedArtifact) -> Result<(), CacheError> {
        let index = self.index_path(&artifact.entry.key);
        for path in [index, artifact.path.clone()] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(CacheError::Write { path, source }),
            }
        }
        Ok(())
    }

    /// Data derived from a verified artifact's content (its member listing, say), stored
    /// under the artifact's SHA-512: it is valid exactly as long as that content is.
    pub fn derived(&self, sha512: &str, name: &str) -> Option<Vec<u8>> {
        fs::read(self.root.join(DERIVED).join(sha512).join(name)).ok()
    }

    /// Remember data derived from the artifact with this SHA-512.
    pub fn store_derived(&self, sha512: &str, name: &str, bytes: &[u8]) -> Result<(), CacheError> {
        let dir = self.root.join(DERIVED).join(sha512);
        fs::create_dir_all(&dir).map_err(|source| CacheError::Write {
            path: dir.clone(),
            source,
        })?;
        let path = dir.join(name);
        write_through_tmp(&self.root.join(TMP), &path, bytes)
            .map_err(|source| CacheError::Write { path, source })
    }

    fn index_path(&self, key: &str) -> PathBuf {
        self.root
            .join(INDEX)
            .join(format!("{}.json", key_hash(key)))
    }

    /// The content path of a well-formed `entry`, proven to stay inside `artifacts-v1` also
    /// through links on disk; `None` (reported as damage) otherwise.
    fn checked_artifact_path(&self, index: &Path, entry: &IndexEntry) -> Option<PathBuf> {
        if let Some(damage) = entry.damage() {
            report_damaged(index, &damage);
            return None;
        }
        let path = self.artifact_path(&entry.sha512, &entry.file_name);
        // The parts are plain names, so the path is lexically inside; a link on disk (a
        // digest directory replaced by a symbolic link, say) must not lead out of it.
        if let (Ok(resolved), Ok(store)) = (
            fs::canonicalize(&path),
            fs::canonicalize(self.root.join(ARTIFACTS)),
        ) && !resolved.starts_with(&store)
        {
            report_damaged(
                index,
                &format!(
                    "its content path resolves to {}, outside the cache",
                    resolved.display()
                ),
            );
            return None;
        }
        Some(path)
    }

    fn artifact_path(&self, sha512: &str, file_name: &str) -> PathBuf {
        let prefix = sha512.get(..2).unwrap_or("00");
        self.root
            .join(ARTIFACTS)
            .join(prefix)
            .join(sha512)
            .join(file_name)
    }
}

/// How a recorded artifact's content differs from its index entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// The content file is gone.
    Missing,
    /// The content hashes to something else (changed or truncated).
    Digest {
        /// Lower-case hex SHA-512 of what is there now.
        sha512: String,
    },
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::Missing => f.write_str("found no content file"),
            Damage::Digest { sha512 } => write!(f, "found sha512:{sha512}"),
        }
    }
}

/// What `clean` removed.
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanReport {
    /// Files removed.
    pub files: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// Empty the cache at `root`. Waits (calling `waiting` once) while other imgforge processes
/// hold it, so a running download is never pulled from under them.
pub fn clean(root: &Path, waiting: impl FnOnce()) -> Result<CleanReport, CacheError> {
    if !root.exists() {
        return Ok(CleanReport::default());
    }
    if !is_imgforge_cache(root) {
        return Err(CacheError::NotACache {
            path: root.to_path_buf(),
        });
    }
    let lock_path = root.join(ROOT_LOCK);
    let lock = open_lock_file(&lock_path)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            waiting();
            lock.lock().map_err(|source| CacheError::Lock {
                path: lock_path.clone(),
                source,
            })?;
        }
        Err(fs::TryLockError::Error(source)) => {
            return Err(CacheError::Lock {
                path: lock_path,
                source,
            });
        }
    }
    let mut report = CleanReport::default();
    for dir in [ARTIFACTS, INDEX, LOCKS, TMP, DERIVED] {
        let path = root.join(dir);
        // Lock files are bookkeeping, not cached content: they are removed but not counted.
        if dir != LOCKS {
            count_files(&path, &mut report);
        }
        match fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(CacheError::Write { path, source }),
        }
    }
    Ok(report)
}

/// Whether `root` carries the CACHEDIR.TAG imgforge writes (a regular file, not a link).
fn is_imgforge_cache(root: &Path) -> bool {
    use std::io::Read as _;
    let path = root.join(CACHEDIR_TAG);
    if !fs::symlink_metadata(&path).is_ok_and(|metadata| metadata.is_file()) {
        return false;
    }
    let mut text = String::new();
    let Ok(file) = File::open(&path) else {
        return false;
    };
    // The tag is a few lines; a large file is not one imgforge wrote.
    if file.take(4096).read_to_string(&mut text).is_err() {
        return false;
    }
    let signature = CACHEDIR_TAG_TEXT.lines().next().unwrap_or_default();
    text.starts_with(signature) && text.contains("created by imgforge")
}

fn count_files(path: &Path, report: &mut CleanReport) {
    let Ok(listing) = fs::read_dir(path) else {
        return;
    };
    for item in listing.flatten() {
        match item.file_type() {
            Ok(kind) if kind.is_dir() => count_files(&item.path(), report),
            Ok(_) => {
                report.files += 1;
                report.bytes += item.metadata().map_or(0, |metadata| metadata.len());
            }
            Err(_) => {}
        }
    }
}

/// The folder of the cache at `root` holding its locks (including each run's, see
/// [`crate::leftovers`]).
pub fn locks_dir(root: &Path) -> PathBuf {
    root.join(LOCKS)
}

/// Say that an index entry is damaged and ignored (it is replaced by the next download).
fn report_damaged(index: &Path, why: &str) {
    tracing::warn!(
        "damaged cache index entry {}: {why}; ignoring it (the artifact is downloaded again when online)",
        index.display()
    );
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn open_lock_file(path: &Path) -> Result<File, CacheError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| CacheError::Unusable {
            path: path.to_path_buf(),
            source,
        })
}

/// Write `bytes` to `path` atomically through a temp file in the cache's `tmp_dir` (named
/// after this run, so a later run sweeps it if this one is killed mid-write).
fn write_through_tmp(tmp_dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = tempfile::Builder::new()
        .prefix(&format!(".{}", crate::leftovers::temp_prefix("write")))
        .tempfile_in(tmp_dir)?;
    crate::persist::write_into(temp, path, bytes).map_err(|error| error.source)
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn entry(key: &str, content: &[u8]) -> IndexEntry {
        IndexEntry {
            key: key.into(),
            file_name: "a.tgz".into(),
            sha512: hex::encode(sha2::Sha512::digest(content)),
            sha256: None,
            size: content.len() as u64,
            url: "http://127.0.0.1/a.tgz".into(),
            verified_with: "sha512:x".into(),
            stored_at: 0,
        }
    }

    #[test]
    fn commit_then_lookup_round_trips_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = Cache::open(dir.path()).expect("open");
        let mut temp = cache.temp_file().expect("temp");
        temp.write_all(b"content").expect("write");
        let stored = cache
            .commit(temp, entry("apache/a.tgz", b"content"))
            .expect("commit");
        assert_eq!(fs::read(&stored.path).expect("read"), b"content");
        assert_eq!(
            cache.lookup("apache/a.tgz").expect("lookup"),
            Some(stored.clone())
        );
        assert_eq!(fs::read_dir(dir.path().join(TMP)).expect("tmp").count(), 0);
        assert_eq!(cache.rehash(&stored).expect("rehash"), None);
    }

    #[test]
    fn a_changed_artifact_is_found_by_rehash() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = Cache::open(dir.path()).expect("open");
        let mut temp = cache.temp_file().expect("temp");
        temp.write_all(b"content").expect("write");
        let stored = cache.commit(temp, entry("k", b"content")).expect("commit");
        fs::write(&stored.path, b"CONTENT").expect("tamper");
        assert!(cache.rehash(&stored).expect("rehash").is_some());
    }

    #[test]
    fn verify_sees_entries_whose_content_was_truncated_or_deleted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = Cache::open(dir.path()).expect("open");
        let mut stored = Vec::new();
        for key in ["a", "b"] {
            let mut temp = cache.temp_file().expect("temp");
            temp.write_all(key.as_bytes()).expect("write");
            let mut entry = entry(key, key.as_bytes());
            entry.file_name = format!("{key}.tgz");
            stored.push(cache.commit(temp, entry).expect("commit"));
        }
        fs::write(&stored[0].path, b"").expect("truncate");
        fs::remove_file(&stored[1].path).expect("delete");
        assert_eq!(cache.entries().expect("entries"), Vec::new());
        let recorded = cache.recorded().expect("recorded");
        assert_eq!(recorded, stored);
        assert!(matches!(
            cache.rehash(&recorded[0]).expect("rehash"),
            Some(Damage::Digest { .. })
        ));
        assert_eq!(
            cache.rehash(&recorded[1]).expect("rehash"),
            Some(Damage::Missing)
        );
    }

    #[test]
    fn clean_refuses_a_directory_without_imgforge_cachedir_tag() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join(TMP)).expect("a tmp folder of the user's");
        fs::write(dir.path().join(TMP).join("notes"), b"mine").expect("a user file");
        fs::write(
            dir.path().join(CACHEDIR_TAG),
            b"Signature: 8a477f597d28d172789f06886806bc55\n",
        )
        .expect("another tool's tag");
        let error = clean(dir.path(), || {}).expect_err("refused");
        assert!(matches!(error, CacheError::NotACache { .. }), "{error}");
        assert!(dir.path().join(TMP).join("notes").is_file());
    }

    #[test]
    fn clean_waits_for_a_running_process_then_empties() {
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = Cache::open(dir.path()).expect("open");
        let mut temp = cache.temp_file().expect("temp");
        temp.write_all(b"content").expect("write");
        cache.commit(temp, entry("k", b"content")).expect("commit");
        let root = dir.path().to_path_buf();
        let (sender, receiver) = std::sync::mpsc::channel();
        let cleaner = std::thread::spawn(move || clean(&root, || sender.send(()).expect("signal")));
        receiver.recv().expect("clean reports that it waits");
        assert!(
            cache.lookup("k").expect("lookup").is_some(),
            "nothing removed while held"
        );
        drop(cache);
        let report = cleaner.join().expect("join").expect("clean");
        assert_eq!(report.files, 2);
        assert!(!dir.path().join(INDEX).exists());
    }
}
