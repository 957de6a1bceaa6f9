//! Atomic file writes: a file appears whole or not at all, and is on disk once it has
//! appeared.
//!
//! Every write goes the same way: the content is written to a temp file in the target's own
//! directory (a rename across file systems is not atomic), the temp file is fsynced, renamed
//! over the target, and the directory is fsynced so the rename itself survives a crash. A
//! failure at any step removes the temp file, leaves the target as it was, and names the
//! target in its error.
//!
//! [`write`] does all of it for bytes in memory. Callers that stream into the file, set its
//! mode first, or stage several files before any becomes visible take a [`temp_for`] file
//! and hand it to [`persist`] (or [`persist_new`], which never replaces a file). The cache,
//! whose temp files live in its own `tmp/` so a later run can sweep what a killed run left,
//! writes into a temp file of its own through [`write_into`].
//!
//! Files written *into a staged tree* (a prepared Spark distribution or an image context being
//! assembled beside its destination) go through [`write_staged`] / [`persist_staged`]:
//! atomic, but not fsynced one by one — nothing outside sees them until the whole tree
//! replaces its destination by one rename, and a tree a crash interrupted is a leftover the
//! next run removes, never a tree in use. Per-file fsyncs there would only cost time.
//!
//! This module is a leaf: it imports nothing from the rest of imgforge.

use std::fs::File;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

/// Writing `path` failed; it was left as it was.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}", path.display())]
pub struct PersistError {
    /// The file that was to be written.
    pub path: PathBuf,
    /// What failed.
    #[source]
    pub source: io::Error,
}

impl PersistError {
    fn new(path: &Path, source: io::Error) -> PersistError {
        PersistError {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The directory `path` is in (`.` for a bare file name).
fn directory_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// A temp file beside `path`, named `.<file name>.<random>`, removed unless persisted.
pub fn temp_for(path: &Path) -> Result<NamedTempFile, PersistError> {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .tempfile_in(directory_of(path))
        .map_err(|source| PersistError::new(path, source))
}

/// Write `bytes` to `path` atomically and durably, replacing what is there.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    write_into(temp_for(path)?, path, bytes)
}

/// Write `bytes` into `temp` — which must be on `path`'s file system — and persist it as
/// `path`.
pub fn write_into(mut temp: NamedTempFile, path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    temp.write_all(bytes)
        .map_err(|source| PersistError::new(path, source))?;
    persist(temp, path).map(drop)
}

/// Make the complete `temp` visible as `path`, replacing what is there: fsync, rename, fsync
/// the directory. Returns the file, open.
pub fn persist(temp: NamedTempFile, path: &Path) -> Result<File, PersistError> {
    finish(temp, path, true)
}

/// Like [`persist`], but never replaces a file: an existing `path` is an error whose source
/// is of kind [`io::ErrorKind::AlreadyExists`].
pub fn persist_new(temp: NamedTempFile, path: &Path) -> Result<File, PersistError> {
    finish(temp, path, false)
}

/// Write `bytes` to `path` inside a staged tree: atomic (temp file, rename), not fsynced.
pub fn write_staged(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let mut temp = temp_for(path)?;
    temp.write_all(bytes)
        .map_err(|source| PersistError::new(path, source))?;
    persist_staged(temp, path).map(drop)
}

/// Make the complete `temp` visible as `path` inside a staged tree: a rename, without the
/// fsyncs of [`persist`].
pub fn persist_staged(temp: NamedTempFile, path: &Path) -> Result<File, PersistError> {
    temp.persist(path)
        .map_err(|failed| PersistError::new(path, failed.error))
}

fn finish(temp: NamedTempFile, path: &Path, replace: bool) -> Result<File, PersistError> {
    let error = |source| PersistError::new(path, source);
    temp.as_file().sync_all().map_err(error)?;
    let renamed = if replace {
        temp.persist(path)
    } else {
        temp.persist_noclobber(path)
    };
    let file = renamed.map_err(|failed| error(failed.error))?;
    File::open(directory_of(path))
        .and_then(|directory| directory.sync_all())
        .map_err(error)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_staged_write_replaces_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spark-defaults.conf");
        write_staged(&path, b"first\n").unwrap();
        write_staged(&path, b"second\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second\n");
        assert_eq!(names_in(dir.path()), ["spark-defaults.conf"]);
        let missing = dir.path().join("no-such-dir").join("file");
        let error = write_staged(&missing, b"x").unwrap_err();
        assert_eq!(error.path, missing);
    }

    #[test]
    fn write_replaces_whole_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("imgforge.lock");
        write(&path, b"first\n").unwrap();
        write(&path, b"second, longer\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer\n");
        assert_eq!(names_in(dir.path()), ["imgforge.lock"]);
    }

    #[test]
    fn persist_new_refuses_an_existing_file_and_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        write(&path, b"kept").unwrap();
        let mut temp = temp_for(&path).unwrap();
        temp.write_all(b"new").unwrap();
        let error = persist_new(temp, &path).unwrap_err();
        assert_eq!(error.source.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(error.path, path);
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
        assert_eq!(names_in(dir.path()), ["ca.pem"], "the temp file is removed");
    }

    #[test]
    fn a_failed_write_names_the_target_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: the rename fails after the temp was written.
        let path = dir.path().join("occupied");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"x").unwrap();
        let error = write(&path, b"bytes").unwrap_err();
        assert_eq!(error.path, path);
        assert!(error.to_string().contains("occupied"), "{error}");
        assert_eq!(names_in(dir.path()), ["occupied"]);
        // A directory that does not exist.
        let missing = dir.path().join("absent").join("file");
        let error = write(&missing, b"bytes").unwrap_err();
        assert_eq!(error.path, missing);
    }

    #[test]
    fn a_bare_file_name_is_written_in_the_current_directory() {
        assert_eq!(directory_of(Path::new("imgforge.lock")), Path::new("."));
        assert_eq!(directory_of(Path::new("a/b")), Path::new("a"));
    }
}
