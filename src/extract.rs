//! Safe, streaming extraction of `.tar.gz` release archives.
//!
//! Spark, Hadoop and Hive ship as gzip-compressed tarballs whose members all live under one top-level
//! directory (`spark-3.1.1-bin-hadoop3.2/...`). The `prepare` stage needs three things from them: the
//! whole tree without that top directory ([`unpack_staged`], patched if need be before
//! [`StagedTree::commit`] makes it visible), a few members copied out flat ([`extract_members`], e.g. `hadoop-aws` out
//! of a 350 MB Hadoop tarball), and the member list ([`list_members`]).
//!
//! Every member is validated before anything is written, in the spirit of rustup's
//! `unpack_without_first_dir`: paths must consist of plain names under the single top directory,
//! symbolic links must stay inside the tree, hard links must point at an earlier regular file, and
//! devices and FIFOs are refused. Files are created by this module (never by `tar`'s own unpacking)
//! with `create_new`, under parents that are checked to be real directories, so nothing is ever written
//! through a link. Trees are unpacked into a temporary directory next to their destination and swapped
//! in by rename; a failure at any point leaves the previous tree untouched and no temporary behind.
//!
//! What is kept: contents, in-tree symbolic links, permission bits (setuid, setgid and sticky bits are
//! dropped; directories always keep owner `rwx` so the tree can be patched and removed), and the archive
//! modification time of regular files. Directory and symbolic-link times are left at the time of the
//! unpack. Hard links are unpacked as independent copies. Two unpacks of one archive therefore give
//! trees with identical paths, kinds, contents, link targets, modes and file times.
//!
//! Every read is bounded and, for a cached artifact, verified: an [`Archive`] carries the digest its
//! bytes must have (from the cache index) and the [`Limits`] it may unpack to. The compressed bytes are
//! hashed on another thread as the decoder consumes them, so a swapped or damaged tarball costs no
//! second read and fails before anything it produced becomes visible; the member count and the bytes
//! the headers announce are checked before each member is written, so a decompression bomb is refused
//! before it fills the disk.
//!
//! This module relies on Unix file modes and symbolic links.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::ops::Range;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use flate2::bufread::MultiGzDecoder;
use memmap2::Mmap;
use tempfile::TempDir;

use crate::cache::CachedArtifact;
use crate::digest::{Running, Sha256, Sha512};
use crate::exit;

/// Size of the write buffer of each file.
const BUFFER_SIZE: usize = 256 * 1024;

/// Size of each chunk read from the compressed archive and handed to the hashing thread: big
/// enough that reads, channel hand-offs and hash calls are few.
const CHUNK_SIZE: usize = 1 << 20;

/// Chunks the hashing thread may lag behind the decoder before the decoder waits for it.
const CHUNKS_IN_FLIGHT: usize = 8;

/// The longest name one path component may have (the usual file-system limit, `NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// The longest member path (the usual `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// Below this many unpacked bytes the compression ratio is not checked: a small archive of small
/// text files legitimately compresses far better than any release tarball.
pub const RATIO_FLOOR_BYTES: u64 = 64 << 20;

/// Permission bits kept from the archive; setuid, setgid and sticky bits are dropped.
const PERMISSION_BITS: u32 = 0o777;

/// Bits every unpacked directory gets, so the tree can be patched and later removed by its owner.
const DIRECTORY_OWNER_BITS: u32 = 0o700;

/// Mode of directories that the archive implies but does not list.
const IMPLIED_DIRECTORY_MODE: u32 = 0o755;

/// What one archive may unpack to (`[extract]` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of member data, hard-link copies included.
    pub max_bytes: u64,
    /// Most members (every header: files, directories, links).
    pub max_entries: u64,
    /// Most unpacked bytes per byte of the compressed archive, checked once more than
    /// [`RATIO_FLOOR_BYTES`] were unpacked.
    pub max_ratio: u64,
}

impl Limits {
    /// The documented defaults: 32 GiB, 1,000,000 members, a ratio of 100.
    pub const DEFAULT: Limits = Limits {
        max_bytes: 32 << 30,
        max_entries: 1_000_000,
        max_ratio: 100,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// Which limit an archive broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitExceeded {
    /// More members than `max_entries`.
    Entries {
        /// The limit.
        max_entries: u64,
    },
    /// More unpacked bytes than `max_bytes`.
    Bytes {
        /// The limit.
        max_bytes: u64,
    },
    /// More unpacked bytes than `max_ratio` times the archive's size.
    Ratio {
        /// The limit.
        max_ratio: u64,
        /// The archive's size on disk.
        archive_bytes: u64,
        /// The bytes it would unpack to so far.
        unpacked: u64,
    },
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Entries { max_entries } => write!(
                f,
                "it has more than {max_entries} members ([extract] max_entries)"
            ),
            Self::Bytes { max_bytes } => write!(
                f,
                "it unpacks to more than {max_bytes} bytes ([extract] max_bytes)"
            ),
            Self::Ratio {
                max_ratio,
                archive_bytes,
                unpacked,
            } => write!(
                f,
                "its {archive_bytes} bytes unpack to at least {unpacked}, more than {max_ratio} times \
                 its size: a decompression bomb? ([extract] max_ratio)"
            ),
        }
    }
}

/// The digest an archive's bytes must have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpectedDigest {
    /// Lower-case hex SHA-256 (recorded in the cache index since it is the cheaper to check).
    Sha256(String),
    /// Lower-case hex SHA-512 (what the cache is keyed by).
    Sha512(String),
}

impl fmt::Display for ExpectedDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sha256(hex) => write!(f, "sha256:{hex}"),
            Self::Sha512(hex) => write!(f, "sha512:{hex}"),
        }
    }
}

/// An archive to read: its path, the digest and size its bytes must have (for a cached
/// artifact), and the limits it may unpack to.
#[derive(Debug, Clone)]
pub struct Archive {
    path: PathBuf,
    expected: Option<(ExpectedDigest, u64)>,
    limits: Limits,
}

impl Archive {
    /// An archive that is read without a digest check, under the default limits.
    pub fn new(path: impl Into<PathBuf>) -> Archive {
        Archive {
            path: path.into(),
            expected: None,
            limits: Limits::DEFAULT,
        }
    }

    /// A cached artifact, checked against its index entry as it is read.
    pub fn cached(artifact: &CachedArtifact, limits: Limits) -> Archive {
        let digest = match &artifact.entry.sha256 {
            Some(sha256) => ExpectedDigest::Sha256(sha256.clone()),
            None => ExpectedDigest::Sha512(artifact.entry.sha512.clone()),
        };
        Archive {
            path: artifact.path.clone(),
            expected: Some((digest, artifact.entry.size)),
            limits,
        }
    }

    /// Where the archive is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl From<&Path> for Archive {
    fn from(path: &Path) -> Archive {
        Archive::new(path)
    }
}

impl From<&PathBuf> for Archive {
    fn from(path: &PathBuf) -> Archive {
        Archive::new(path)
    }
}

impl From<PathBuf> for Archive {
    fn from(path: PathBuf) -> Archive {
        Archive::new(path)
    }
}

impl From<&Archive> for Archive {
    fn from(archive: &Archive) -> Archive {
        archive.clone()
    }
}

/// What an unpack produced, counted over the members written (the top directory itself excluded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackReport {
    /// Name of the archive's single top-level directory, which was dropped from every path.
    pub top_directory: String,
    /// Regular files written.
    pub files: u64,
    /// Directories listed in the archive (directories only implied by member paths are not counted).
    pub directories: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links, unpacked as copies of their target.
    pub hard_links: u64,
    /// Bytes written to regular files, hard-link copies included.
    pub bytes: u64,
}

/// Why a member was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnsafeReason {
    /// The path has a `..` component.
    ParentComponent,
    /// The path is absolute or has a root or prefix component.
    Absolute,
    /// The path is empty.
    EmptyPath,
    /// The path is not valid UTF-8.
    NonUtf8Path,
    /// The member is not under the top-level directory every earlier member was under.
    OutsideTopDirectory {
        /// The archive's top-level directory, as set by its first member.
        top: String,
    },
    /// The member is the top-level entry itself but not a directory.
    TopLevelNotDirectory,
    /// An earlier member has the same path (only a directory may be listed twice).
    Duplicate,
    /// A parent of the member is a symbolic link, so writing it would follow that link.
    ParentIsSymlink {
        /// The parent, relative to the tree root.
        parent: PathBuf,
    },
    /// A parent of the member is not a directory.
    ParentNotDirectory {
        /// The parent, relative to the tree root.
        parent: PathBuf,
    },
    /// A symbolic link with an empty target.
    SymlinkWithoutTarget,
    /// A symbolic link whose target is absolute or climbs above the tree root.
    SymlinkEscapes {
        /// The link target as stored in the archive.
        target: PathBuf,
    },
    /// A symbolic link whose target has `..` after a name: through another link that name may stand
    /// for a deeper directory, so the target cannot be proven to stay inside the tree lexically.
    SymlinkClimbsAfterName {
        /// The link target as stored in the archive.
        target: PathBuf,
    },
    /// A hard link whose target is not a path inside the tree.
    HardLinkEscapes {
        /// The link target as stored in the archive.
        target: PathBuf,
    },
    /// A hard link whose target is not an earlier regular file of the archive.
    HardLinkTargetMissing {
        /// The link target as stored in the archive.
        target: PathBuf,
    },
    /// A character device.
    CharacterDevice,
    /// A block device.
    BlockDevice,
    /// A named pipe.
    Fifo,
    /// A component of the path is longer than [`MAX_NAME_BYTES`], or the path than
    /// [`MAX_PATH_BYTES`]: no file system here could hold it.
    NameTooLong {
        /// The length in bytes of the longest component (or of the whole path).
        bytes: usize,
    },
    /// An entry type this module does not unpack (GNU sparse files, vendor types).
    UnsupportedType {
        /// The type flag byte of the header.
        type_flag: u8,
    },
}

impl fmt::Display for UnsafeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ParentComponent => f.write_str("its path contains a `..` component"),
            Self::Absolute => f.write_str("its path is absolute"),
            Self::EmptyPath => f.write_str("its path is empty"),
            Self::NonUtf8Path => f.write_str("its path is not valid UTF-8"),
            Self::OutsideTopDirectory { top } => write!(
                f,
                "it is not under `{top}`, the archive's single top-level directory"
            ),
            Self::TopLevelNotDirectory => {
                f.write_str("it is a top-level member but not a directory")
            }
            Self::Duplicate => f.write_str("an earlier member has the same path"),
            Self::ParentIsSymlink { parent } => {
                write!(f, "its parent `{}` is a symbolic link", parent.display())
            }
            Self::ParentNotDirectory { parent } => {
                write!(f, "its parent `{}` is not a directory", parent.display())
            }
            Self::SymlinkWithoutTarget => f.write_str("it is a symbolic link without a target"),
            Self::SymlinkEscapes { target } => write!(
                f,
                "it is a symbolic link to `{}`, which is outside the tree",
                target.display()
            ),
            Self::SymlinkClimbsAfterName { target } => write!(
                f,
                "it is a symbolic link to `{}`, whose `..` after a name may leave the tree \
                 through another link",
                target.display()
            ),
            Self::HardLinkEscapes { target } => write!(
                f,
                "it is a hard link to `{}`, which is outside the tree",
                target.display()
            ),
            Self::HardLinkTargetMissing { target } => write!(
                f,
                "it is a hard link to `{}`, which is not an earlier regular file of the archive",
                target.display()
            ),
            Self::CharacterDevice => f.write_str("it is a character device"),
            Self::BlockDevice => f.write_str("it is a block device"),
            Self::Fifo => f.write_str("it is a named pipe (FIFO)"),
            Self::NameTooLong { bytes } => write!(
                f,
                "its path has a name of {bytes} bytes; names may have at most {MAX_NAME_BYTES} \
                 bytes and paths {MAX_PATH_BYTES}"
            ),
            Self::UnsupportedType { type_flag } => write!(
                f,
                "it has the unsupported entry type `{}`",
                type_flag.escape_ascii()
            ),
        }
    }
}

/// Failures of reading, validating or unpacking an archive.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The archive file could not be opened.
    #[error("failed to open archive `{}`", .archive.display())]
    Open {
        /// The archive.
        archive: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The gzip or tar stream is corrupt or truncated between members.
    #[error("failed to read archive `{}`", .archive.display())]
    Read {
        /// The archive.
        archive: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The gzip or tar stream is corrupt or truncated inside a member, or its header is malformed.
    #[error("failed to read member `{}` of archive `{}`", .member.display(), .archive.display())]
    ReadMember {
        /// The archive.
        archive: PathBuf,
        /// The member, as named in the archive.
        member: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A member's data ended before the size its header announced.
    #[error(
        "member `{}` of archive `{}` is truncated: its header announces {expected} bytes, \
         the stream held {actual}",
        .member.display(), .archive.display()
    )]
    Truncated {
        /// The archive.
        archive: PathBuf,
        /// The member, as named in the archive.
        member: PathBuf,
        /// Size announced by the header.
        expected: u64,
        /// Bytes actually read.
        actual: u64,
    },
    /// The archive is bigger than one of its [`Limits`]; nothing of it was made visible.
    #[error("refusing to unpack archive `{}`: {limit}", .archive.display())]
    Limit {
        /// The archive.
        archive: PathBuf,
        /// The limit it broke.
        limit: LimitExceeded,
    },
    /// The archive's bytes do not match the digest the cache recorded for them: it changed on
    /// disk after it was verified. Nothing of it was made visible.
    #[error(
        "the cached archive `{}` does not match its recorded digest: expected {expected}, found \
         {actual} ({size} bytes); it was not used. Run `imgforge cache verify` to remove it, then \
         run again to download it afresh",
        .archive.display()
    )]
    Damaged {
        /// The archive.
        archive: PathBuf,
        /// The recorded digest.
        expected: ExpectedDigest,
        /// The digest of what was read.
        actual: ExpectedDigest,
        /// Bytes read.
        size: u64,
    },
    /// The archive holds no member at all.
    #[error("archive `{}` has no members", .archive.display())]
    Empty {
        /// The archive.
        archive: PathBuf,
    },
    /// A member failed validation; nothing of the archive was made visible.
    #[error("refusing to unpack member `{}` of archive `{}`: {reason}", .member.display(), .archive.display())]
    UnsafeMember {
        /// The archive.
        archive: PathBuf,
        /// The member, as named in the archive.
        member: PathBuf,
        /// What is wrong with it.
        reason: UnsafeReason,
    },
    /// [`extract_members`] was asked to extract a member that is not a regular file.
    #[error(
        "member `{}` of archive `{}` was selected for extraction but is not a regular file",
        .member.display(), .archive.display()
    )]
    NotRegularFile {
        /// The archive.
        archive: PathBuf,
        /// The member, as named in the archive.
        member: PathBuf,
    },
    /// [`extract_members`]' selector returned something other than a plain file name.
    #[error(
        "member `{}` of archive `{}` was mapped to `{name}`, which is not a plain file name",
        .member.display(), .archive.display()
    )]
    InvalidDestinationName {
        /// The archive.
        archive: PathBuf,
        /// The member, as named in the archive.
        member: PathBuf,
        /// The name the selector returned.
        name: String,
    },
    /// [`extract_members`]' selector mapped two members to one file name.
    #[error(
        "members `{}` and `{}` of archive `{}` were both mapped to `{name}`",
        .first.display(), .second.display(), .archive.display()
    )]
    DuplicateDestinationName {
        /// The archive.
        archive: PathBuf,
        /// The member mapped to `name` first.
        first: PathBuf,
        /// The member mapped to `name` second.
        second: PathBuf,
        /// The destination file name.
        name: String,
    },
    /// The destination path has no parent directory or no final name to stage next to.
    #[error("cannot unpack to `{}`: it has no parent directory and file name", .out.display())]
    InvalidDestination {
        /// The requested destination.
        out: PathBuf,
    },
    /// Creating or writing something on disk failed.
    #[error("failed to write `{}`", .path.display())]
    Write {
        /// What was being created or written.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Swapping the unpacked tree into place failed; the previous tree, if any, is still in place.
    #[error("failed to replace `{}` with the unpacked tree", .out.display())]
    Replace {
        /// The destination.
        out: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl ExtractError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ExtractError::Write { .. } | ExtractError::Replace { .. } => exit::STORAGE,
            _ => exit::INTEGRITY,
        }
    }
}

/// An unpacked tree waiting next to its destination; see [`unpack_staged`].
///
/// Dropping it without [`StagedTree::commit`] removes the staged tree.
#[derive(Debug)]
pub struct StagedTree {
    staging: TempDir,
    out: PathBuf,
    report: UnpackReport,
}

impl StagedTree {
    /// Root of the staged tree, where the caller may add or patch files before committing.
    pub fn path(&self) -> &Path {
        self.staging.path()
    }

    /// Atomically replace the destination with the staged tree: the old tree is renamed aside, the
    /// staged one renamed in, then the old one removed. If the swap fails, the old tree is put back and
    /// the staged tree removed.
    pub fn commit(self) -> Result<UnpackReport, ExtractError> {
        replace_tree(self.staging, &self.out)?;
        Ok(self.report)
    }
}

/// Unpack the whole archive, without its top-level directory, into a fresh temporary directory next to
/// `out`, and return it staged so the caller can modify the tree before [`StagedTree::commit`].
///
/// The temporary directory is created next to `out` (same parent, so the final rename is atomic). If
/// anything fails, `out` is left as it was and the temporary is removed. Concurrent unpacks to one
/// `out` must be serialized by the caller.
pub fn unpack_staged(archive: impl Into<Archive>, out: &Path) -> Result<StagedTree, ExtractError> {
    unpack_staged_filtered(archive, out, |_| true)
}

/// Like [`unpack_staged`], but only members for which `keep` returns true (given the path without
/// the top-level directory) are written; the rest are streamed past, still validated. Used to take
/// the few folders of a Hadoop distribution the metastore needs without unpacking the rest.
pub fn unpack_staged_filtered(
    archive: impl Into<Archive>,
    out: &Path,
    mut keep: impl FnMut(&Path) -> bool,
) -> Result<StagedTree, ExtractError> {
    let archive = archive.into();
    let (parent, name) = split_destination(out)?;
    fs::create_dir_all(parent).map_err(|source| ExtractError::Write {
        path: parent.to_path_buf(),
        source,
    })?;
    let staging = tempfile::Builder::new()
        .prefix(&crate::leftovers::staging_prefix(name, "unpack"))
        .tempdir_in(parent)
        .map_err(|source| ExtractError::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    // On error the `TempDir` is dropped here, which removes the partial tree.
    let report = unpack_into(&archive, staging.path(), &mut keep)
        .map_err(|error| explain(&archive, error))?;
    Ok(StagedTree {
        staging,
        out: out.to_path_buf(),
        report,
    })
}

/// Stream through the archive and write only the members `select` maps to a file name into `dest_dir`.
///
/// `select` sees each non-directory member's path without the top-level directory and returns the flat
/// file name to write it under, or `None` to skip it; only regular files may be selected. Every selected
/// member goes to a temporary file in `dest_dir`; once the whole archive has been read and checked, the
/// temporaries are renamed into place (replacing files of the same name) and their paths returned in
/// archive order. A corrupt archive or an unsafe member therefore leaves nothing behind; only a failing
/// rename can leave the members renamed before it in place. Modes and file times are kept as in
/// [`unpack_staged`].
pub fn extract_members(
    archive: impl Into<Archive>,
    dest_dir: &Path,
    select: impl FnMut(&Path) -> Option<String>,
) -> Result<Vec<PathBuf>, ExtractError> {
    let archive = archive.into();
    extract_members_from(&archive, dest_dir, select).map_err(|error| explain(&archive, error))
}

fn extract_members_from(
    archive: &Archive,
    dest_dir: &Path,
    mut select: impl FnMut(&Path) -> Option<String>,
) -> Result<Vec<PathBuf>, ExtractError> {
    fs::create_dir_all(dest_dir).map_err(|source| ExtractError::Write {
        path: dest_dir.to_path_buf(),
        source,
    })?;
    let (mut tar, mut validator) = open_archive(archive)?;
    let archive_source = archive;
    let archive = archive_source.path();
    let mut chosen: HashMap<String, PathBuf> = HashMap::new();
    let mut written: Vec<(tempfile::NamedTempFile, PathBuf)> = Vec::new();
    let entries = tar
        .entries()
        .map_err(|source| read_error(archive, source))?;
    for entry in entries {
        let mut entry = entry.map_err(|source| read_error(archive, source))?;
        let Some(member) = validator.check(&entry)? else {
            continue;
        };
        if matches!(
            member.kind,
            Kind::TopDirectory { .. } | Kind::Directory { .. }
        ) {
            continue;
        }
        let Some(name) = select(&member.relative) else {
            continue;
        };
        let Kind::File { mode, mtime } = member.kind else {
            return Err(ExtractError::NotRegularFile {
                archive: archive.to_path_buf(),
                member: member.raw,
            });
        };
        if !is_plain_file_name(&name) {
            return Err(ExtractError::InvalidDestinationName {
                archive: archive.to_path_buf(),
                member: member.raw,
                name,
            });
        }
        if let Some(first) = chosen.get(&name) {
            return Err(ExtractError::DuplicateDestinationName {
                archive: archive.to_path_buf(),
                first: first.clone(),
                second: member.raw,
                name,
            });
        }
        let destination = dest_dir.join(&name);
        let temporary =
            crate::persist::temp_for(&destination).map_err(|error| ExtractError::Write {
                path: dest_dir.to_path_buf(),
                source: error.source,
            })?;
        let file = temporary
            .as_file()
            .try_clone()
            .map_err(|source| ExtractError::Write {
                path: temporary.path().to_path_buf(),
                source,
            })?;
        let size = entry.size();
        write_member(
            archive,
            &member.raw,
            &mut entry,
            size,
            NewFile {
                file,
                path: temporary.path(),
                mode,
                mtime,
            },
        )?;
        chosen.insert(name.clone(), member.raw);
        written.push((temporary, destination));
    }
    finish_stream(archive_source, tar, &validator)?;

    let mut persisted = Vec::with_capacity(written.len());
    for (temporary, destination) in written {
        crate::persist::persist_staged(temporary, &destination).map_err(|error| {
            ExtractError::Write {
                path: error.path,
                source: error.source,
            }
        })?;
        persisted.push(destination);
    }
    Ok(persisted)
}

/// List the archive's member paths, without the top-level directory, in archive order.
///
/// The members are validated as for [`unpack_staged`], so an archive that lists also unpacks. The top
/// directory itself is not listed; directories appear without a trailing slash.
pub fn list_members(archive: impl Into<Archive>) -> Result<Vec<String>, ExtractError> {
    let archive = archive.into();
    list_members_of(&archive).map_err(|error| explain(&archive, error))
}

fn list_members_of(archive_source: &Archive) -> Result<Vec<String>, ExtractError> {
    let (mut tar, mut validator) = open_archive(archive_source)?;
    let archive = archive_source.path();
    let mut members = Vec::new();
    let entries = tar
        .entries()
        .map_err(|source| read_error(archive, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| read_error(archive, source))?;
        if let Some(member) = validator.check(&entry)?
            && !matches!(member.kind, Kind::TopDirectory { .. })
        {
            members.push(member.relative_utf8);
        }
    }
    finish_stream(archive_source, tar, &validator)?;
    Ok(members)
}

type TarStream = tar::Archive<MultiGzDecoder<HashingReader>>;

/// Open the archive for one pass: the tar stream over the gzip decoder over the file, whose bytes
/// are hashed on another thread when a digest is expected; and a validator holding its limits.
fn open_archive(archive: &Archive) -> Result<(TarStream, Validator<'_>), ExtractError> {
    let open_error = |source| ExtractError::Open {
        archive: archive.path.clone(),
        source,
    };
    let file = File::open(&archive.path).map_err(open_error)?;
    let archive_bytes = file.metadata().map_err(open_error)?.len();
    let reader = HashingReader::open(
        &file,
        archive.expected.as_ref().map(|(expected, _)| expected),
    )
    .map_err(open_error)?;
    let validator = Validator::new(&archive.path, archive.limits, archive_bytes);
    Ok((tar::Archive::new(MultiGzDecoder::new(reader)), validator))
}

/// Read the gzip stream to its end after the tar end-of-archive marker: `tar` stops reading there, and
/// only the gzip trailer proves that the stream is complete and its checksum right. Then the file is
/// read to its end, so that every byte of it was hashed, and its digest compared with the expected one.
fn finish_stream(
    archive: &Archive,
    tar: TarStream,
    validator: &Validator,
) -> Result<(), ExtractError> {
    let path = archive.path();
    let mut decoder = tar.into_inner();
    let digest_check = (|| {
        io::copy(&mut decoder, &mut io::sink())?;
        let mut reader = decoder.into_inner();
        // Bytes after the last gzip member would be a decoding error; this only makes sure the
        // hash covers the whole file whatever the decoder left unread.
        io::copy(&mut reader, &mut io::sink())?;
        reader.finish()
    })();
    let outcome = match digest_check {
        Ok(outcome) => outcome,
        Err(source) => {
            // A damaged archive often fails to decode: report the digest mismatch, its cause,
            // when the bytes are not the ones recorded.
            return Err(read_error(path, source));
        }
    };
    if let (Some((expected, expected_size)), Some((actual, size))) = (&archive.expected, outcome)
        && (actual != *expected || size != *expected_size)
    {
        return Err(ExtractError::Damaged {
            archive: path.to_path_buf(),
            expected: expected.clone(),
            actual,
            size,
        });
    }
    if validator.top.is_none() {
        return Err(ExtractError::Empty {
            archive: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Tell the truth about a failed read of a cached archive: when its bytes no longer match the
/// recorded digest, that damage is the cause of whatever the decoder or validator tripped over
/// (a flipped bit shows up as a corrupt stream, a bad header or an absurd size). Only on this
/// error path is the file read a second time.
fn explain(archive: &Archive, error: ExtractError) -> ExtractError {
    if matches!(
        error,
        ExtractError::Open { .. }
            | ExtractError::Write { .. }
            | ExtractError::Replace { .. }
            | ExtractError::InvalidDestination { .. }
            | ExtractError::Damaged { .. }
    ) {
        return error;
    }
    let Some((expected, expected_size)) = &archive.expected else {
        return error;
    };
    let Ok(file) = File::open(&archive.path) else {
        return error;
    };
    let Ok(mut reader) = HashingReader::open(&file, Some(expected)) else {
        return error;
    };
    let outcome = io::copy(&mut reader, &mut io::sink()).and_then(|_| reader.finish());
    match outcome {
        Ok(Some((actual, size))) if actual != *expected || size != *expected_size => {
            ExtractError::Damaged {
                archive: archive.path.clone(),
                expected: expected.clone(),
                actual,
                size,
            }
        }
        _ => error,
    }
}

/// The thread hashing an archive's bytes as the decoder reaches them: it is handed ranges of the
/// mapped file, so nothing is copied for it.
struct HashThread {
    chunks: std::sync::mpsc::SyncSender<Range<usize>>,
    handle: std::thread::JoinHandle<ExpectedDigest>,
}

impl HashThread {
    fn start(expected: &ExpectedDigest, bytes: Arc<Mmap>) -> HashThread {
        let mut hash = match expected {
            ExpectedDigest::Sha256(_) => Running::Sha256(Sha256::new()),
            ExpectedDigest::Sha512(_) => Running::Sha512(Sha512::new()),
        };
        let (chunks, receiver) = std::sync::mpsc::sync_channel::<Range<usize>>(CHUNKS_IN_FLIGHT);
        let handle = std::thread::spawn(move || {
            let mut done = 0;
            while let Ok(range) = receiver.recv() {
                hash.update(&bytes[range.clone()]);
                // The decoder asked for this range, so it is done with everything before it.
                release(&bytes, done..range.start);
                done = range.start;
            }
            let sha256 = matches!(hash, Running::Sha256(_));
            let digest = hex::encode(hash.finish());
            if sha256 {
                ExpectedDigest::Sha256(digest)
            } else {
                ExpectedDigest::Sha512(digest)
            }
        });
        HashThread { chunks, handle }
    }
}

/// Drop the mapping's pages in `range` from the process (they stay in the page cache): bytes both
/// the decoder and the hash are done with, so the process's resident memory stays a few chunks
/// whatever the archive's size.
fn release(bytes: &Mmap, range: Range<usize>) {
    if range.is_empty() {
        return;
    }
    // SAFETY: the mapping is shared and read-only: dropping its pages loses nothing (a later
    // access would fault them in from the file again), and nothing reads this range again.
    let _ = unsafe {
        bytes.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, range.start, range.len())
    };
}

/// The archive file, mapped read-only, as a buffered reader whose every chunk is also handed to a
/// [`HashThread`]: the decoder and the hash read the very same bytes straight from the page cache,
/// once, with no copy into buffers of ours (copying a 586 MB pair of tarballs out of the page cache
/// with `read` cost about half as much CPU as hashing them).
struct HashingReader {
    bytes: Arc<Mmap>,
    hasher: Option<HashThread>,
    /// The next byte the decoder gets.
    position: usize,
    /// The end of the chunk the decoder reads; everything before it was handed to the hasher.
    chunk_end: usize,
}

impl HashingReader {
    /// Map the archive and, when a digest is expected, start hashing what the decoder reads.
    ///
    /// Mapping is sound for the archives imgforge reads: cached artifacts, which it never changes
    /// in place (a new download is renamed over an old one, a removal unlinks it, and either
    /// leaves this mapping intact). Only another program truncating the file while it is read
    /// could fault the process; one rewriting it is caught by the digest.
    fn open(file: &File, expected: Option<&ExpectedDigest>) -> io::Result<HashingReader> {
        // SAFETY: see above: the mapped file is not modified in place while the mapping lives.
        let bytes = Arc::new(unsafe { Mmap::map(file) }?);
        // Read-ahead for a front-to-back pass; the advice is only a hint.
        let _ = bytes.advise(memmap2::Advice::Sequential);
        let hasher = expected.map(|expected| HashThread::start(expected, Arc::clone(&bytes)));
        Ok(HashingReader {
            bytes,
            hasher,
            position: 0,
            chunk_end: 0,
        })
    }

    /// Stop hashing: the digest of everything read, and how many bytes that was.
    fn finish(self) -> io::Result<Option<(ExpectedDigest, u64)>> {
        let Some(HashThread { chunks, handle }) = self.hasher else {
            return Ok(None);
        };
        drop(chunks);
        let digest = handle
            .join()
            .map_err(|_| io::Error::other("the archive's hashing thread stopped"))?;
        Ok(Some((digest, self.chunk_end as u64)))
    }
}

impl Read for HashingReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let count = available.len().min(buffer.len());
        buffer[..count].copy_from_slice(&available[..count]);
        self.consume(count);
        Ok(count)
    }
}

impl BufRead for HashingReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.position == self.chunk_end && self.chunk_end < self.bytes.len() {
            let next = self.chunk_end..(self.chunk_end + CHUNK_SIZE).min(self.bytes.len());
            match &self.hasher {
                Some(hasher) => hasher
                    .chunks
                    .send(next.clone())
                    .map_err(|_| io::Error::other("the archive's hashing thread stopped"))?,
                // Without a hash, the decoder alone is done with what it read.
                None => release(&self.bytes, 0..next.start),
            }
            self.chunk_end = next.end;
        }
        Ok(&self.bytes[self.position..self.chunk_end])
    }

    fn consume(&mut self, amount: usize) {
        self.position = (self.position + amount).min(self.chunk_end);
    }
}

fn read_error(archive: &Path, source: io::Error) -> ExtractError {
    ExtractError::Read {
        archive: archive.to_path_buf(),
        source,
    }
}

/// A fresh, empty staging directory next to `out` (same parent, so [`replace_tree`] is one rename).
pub fn staging_dir(out: &Path) -> Result<TempDir, ExtractError> {
    let (parent, name) = split_destination(out)?;
    fs::create_dir_all(parent).map_err(|source| ExtractError::Write {
        path: parent.to_path_buf(),
        source,
    })?;
    tempfile::Builder::new()
        .prefix(&crate::leftovers::staging_prefix(name, "stage"))
        .tempdir_in(parent)
        .map_err(|source| ExtractError::Write {
            path: parent.to_path_buf(),
            source,
        })
}

fn split_destination(out: &Path) -> Result<(&Path, &OsStr), ExtractError> {
    let name = match out.components().next_back() {
        Some(Component::Normal(name)) => name,
        _ => {
            return Err(ExtractError::InvalidDestination {
                out: out.to_path_buf(),
            });
        }
    };
    let parent = match out.parent() {
        Some(parent) if parent.as_os_str().is_empty() => Path::new("."),
        Some(parent) => parent,
        None => {
            return Err(ExtractError::InvalidDestination {
                out: out.to_path_buf(),
            });
        }
    };
    Ok((parent, name))
}

fn is_plain_file_name(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(
        (components.next(), components.next()),
        (Some(Component::Normal(only)), None) if only == name
    )
}

/// Atomically replace `out` with the `staging` tree: the old tree is renamed aside, the new one
/// renamed in, then the old one removed; on failure the old tree is put back.
pub fn replace_tree(staging: TempDir, out: &Path) -> Result<(), ExtractError> {
    let replace_error = |source| ExtractError::Replace {
        out: out.to_path_buf(),
        source,
    };
    let (parent, name) = split_destination(out)?;
    let aside = match fs::symlink_metadata(out) {
        Ok(_) => {
            // A fresh directory holds the old tree, so its name cannot clash with anything.
            let holder = tempfile::Builder::new()
                .prefix(&crate::leftovers::staging_prefix(name, "old"))
                .tempdir_in(parent)
                .map_err(replace_error)?;
            let old_tree = holder.path().join("tree");
            fs::rename(out, &old_tree).map_err(replace_error)?;
            Some((holder, old_tree))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(replace_error(error)),
    };
    if let Err(source) = fs::rename(staging.path(), out) {
        if let Some((holder, old_tree)) = aside
            && let Err(restore_error) = fs::rename(&old_tree, out)
        {
            // Never delete the only copy of the old tree.
            let kept = holder.keep();
            tracing::error!(
                out = %out.display(),
                old_tree = %kept.join("tree").display(),
                error = %restore_error,
                "could not move the previous tree back into place; it was kept aside"
            );
        }
        return Err(replace_error(source));
    }
    // The staging path is now `out`: disarm its cleanup.
    let _ = staging.keep();
    if let Some((holder, _)) = aside {
        let holder_path = holder.path().to_path_buf();
        if let Err(error) = holder.close() {
            tracing::warn!(
                path = %holder_path.display(),
                error = %error,
                "could not remove the previous tree after replacing it"
            );
        }
    }
    Ok(())
}

/// Unpack every member of `archive` under `root`, which must be an empty directory.
fn unpack_into(
    archive_source: &Archive,
    root: &Path,
    keep: &mut dyn FnMut(&Path) -> bool,
) -> Result<UnpackReport, ExtractError> {
    let (mut tar, mut validator) = open_archive(archive_source)?;
    let archive = archive_source.path();
    let mut report = UnpackReport {
        top_directory: String::new(),
        files: 0,
        directories: 0,
        symlinks: 0,
        hard_links: 0,
        bytes: 0,
    };
    let mut root_mode = IMPLIED_DIRECTORY_MODE;
    // Directory modes are applied last so that read-only directories can still be filled.
    let mut directory_modes: Vec<(PathBuf, u32)> = Vec::new();
    let entries = tar
        .entries()
        .map_err(|source| read_error(archive, source))?;
    for entry in entries {
        stop_if_interrupted(root)?;
        let mut entry = entry.map_err(|source| read_error(archive, source))?;
        let Some(member) = validator.check(&entry)? else {
            continue;
        };
        // Every member is validated, kept or not: a filtered unpack is no less strict.
        if !matches!(member.kind, Kind::TopDirectory { .. }) && !keep(&member.relative) {
            continue;
        }
        let path = root.join(&member.relative);
        if !matches!(member.kind, Kind::TopDirectory { .. }) {
            create_parents(archive, &member, root)?;
        }
        match member.kind {
            Kind::TopDirectory { mode } => root_mode = mode,
            Kind::Directory { mode } => {
                match fs::symlink_metadata(&path) {
                    Ok(metadata) if metadata.file_type().is_dir() => {}
                    Ok(_) => {
                        return Err(unsafe_member(archive, member.raw, UnsafeReason::Duplicate));
                    }
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {
                        create_directory(&path, IMPLIED_DIRECTORY_MODE)?;
                    }
                    Err(source) => return Err(ExtractError::Write { path, source }),
                }
                directory_modes.push((path, mode));
                report.directories += 1;
            }
            Kind::File { mode, mtime } => {
                let file = create_file(&path)?;
                let size = entry.size();
                report.bytes += write_member(
                    archive,
                    &member.raw,
                    &mut entry,
                    size,
                    NewFile {
                        file,
                        path: &path,
                        mode,
                        mtime,
                    },
                )?;
                report.files += 1;
            }
            Kind::Symlink { ref target } => {
                symlink(target, &path).map_err(|source| ExtractError::Write {
                    path: path.clone(),
                    source,
                })?;
                report.symlinks += 1;
            }
            Kind::HardLink { ref target } => {
                report.bytes += copy_hard_link(archive, &member, root, target, &path)?;
                report.hard_links += 1;
            }
        }
    }
    finish_stream(archive_source, tar, &validator)?;

    for (path, mode) in directory_modes {
        set_mode(&path, mode)?;
    }
    set_mode(root, root_mode)?;
    report.top_directory = validator.top.unwrap_or_default();
    Ok(report)
}

/// Stop writing once a signal asked the run to end; the caller's guards remove the partial tree.
fn stop_if_interrupted(path: &Path) -> Result<(), ExtractError> {
    if crate::interrupt::requested() {
        return Err(ExtractError::Write {
            path: path.to_path_buf(),
            source: crate::interrupt::stopped(),
        });
    }
    Ok(())
}

/// Create the missing parents of a member, refusing to go through anything but real directories.
///
/// The validator already refuses such members from what the archive said; this re-checks the disk so
/// that no write can ever follow a link, whatever the validator missed.
fn create_parents(archive: &Path, member: &Member, root: &Path) -> Result<(), ExtractError> {
    let mut relative = PathBuf::new();
    let Some(parent) = member.relative.parent() else {
        return Ok(());
    };
    for component in parent.components() {
        relative.push(component);
        let path = root.join(&relative);
        match fs::symlink_metadata(&path) {
            Ok(metadata) if metadata.file_type().is_dir() => {}
            Ok(metadata) => {
                let reason = if metadata.file_type().is_symlink() {
                    UnsafeReason::ParentIsSymlink { parent: relative }
                } else {
                    UnsafeReason::ParentNotDirectory { parent: relative }
                };
                return Err(unsafe_member(archive, member.raw.clone(), reason));
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                create_directory(&path, IMPLIED_DIRECTORY_MODE)?;
            }
            Err(source) => return Err(ExtractError::Write { path, source }),
        }
    }
    Ok(())
}

fn create_directory(path: &Path, mode: u32) -> Result<(), ExtractError> {
    fs::create_dir(path).map_err(|source| ExtractError::Write {
        path: path.to_path_buf(),
        source,
    })?;
    // Set explicitly rather than through the umask, so the tree does not depend on the process.
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), ExtractError> {
    fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|source| ExtractError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Create a new file; `create_new` fails on any existing entry, a dangling symbolic link included.
fn create_file(path: &Path) -> Result<File, ExtractError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| ExtractError::Write {
            path: path.to_path_buf(),
            source,
        })
}

/// A file being written, and the metadata it gets once its data is complete.
struct NewFile<'p> {
    file: File,
    path: &'p Path,
    mode: u32,
    mtime: u64,
}

/// Copy `expected` bytes of a member's data into a new file, then set its mode and modification time.
fn write_member(
    archive: &Path,
    member: &Path,
    data: &mut impl Read,
    expected: u64,
    target: NewFile<'_>,
) -> Result<u64, ExtractError> {
    let NewFile {
        file,
        path,
        mode,
        mtime,
    } = target;
    let mut writer = BufWriter::with_capacity(BUFFER_SIZE, file);
    // `io::copy` cannot tell a read failure from a write failure, so reads are done here.
    let mut buffer = vec![0; BUFFER_SIZE];
    let mut actual = 0u64;
    loop {
        stop_if_interrupted(path)?;
        let count = match data.read(&mut buffer) {
            Ok(0) => break,
            Ok(count) => count,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(ExtractError::ReadMember {
                    archive: archive.to_path_buf(),
                    member: member.to_path_buf(),
                    source,
                });
            }
        };
        writer
            .write_all(&buffer[..count])
            .map_err(|source| ExtractError::Write {
                path: path.to_path_buf(),
                source,
            })?;
        actual += count as u64;
    }
    if actual != expected {
        return Err(ExtractError::Truncated {
            archive: archive.to_path_buf(),
            member: member.to_path_buf(),
            expected,
            actual,
        });
    }
    let file = writer.into_inner().map_err(|error| ExtractError::Write {
        path: path.to_path_buf(),
        source: error.into_error(),
    })?;
    let write_error = |source| ExtractError::Write {
        path: path.to_path_buf(),
        source,
    };
    file.set_permissions(Permissions::from_mode(mode))
        .map_err(write_error)?;
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime))
        .map_err(write_error)?;
    Ok(actual)
}

/// Unpack a hard link as a copy of its (already unpacked, regular) target.
fn copy_hard_link(
    archive: &Path,
    member: &Member,
    root: &Path,
    target: &Path,
    path: &Path,
) -> Result<u64, ExtractError> {
    let source_path = root.join(target);
    let missing = || {
        unsafe_member(
            archive,
            member.raw.clone(),
            UnsafeReason::HardLinkTargetMissing {
                target: target.to_path_buf(),
            },
        )
    };
    // The validator proved the target's parents are real directories; the target itself must be a
    // regular file, not a link.
    match fs::symlink_metadata(&source_path) {
        Ok(metadata) if metadata.file_type().is_file() => {}
        _ => return Err(missing()),
    }
    let copy_error = |source| ExtractError::Write {
        path: path.to_path_buf(),
        source,
    };
    let source = File::open(&source_path).map_err(copy_error)?;
    let metadata = source.metadata().map_err(copy_error)?;
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |duration| duration.as_secs());
    let mut reader = BufReader::with_capacity(BUFFER_SIZE, source);
    let file = create_file(path)?;
    write_member(
        archive,
        &member.raw,
        &mut reader,
        metadata.len(),
        NewFile {
            file,
            path,
            mode: metadata.permissions().mode() & PERMISSION_BITS,
            mtime,
        },
    )
}

fn unsafe_member(archive: &Path, member: PathBuf, reason: UnsafeReason) -> ExtractError {
    ExtractError::UnsafeMember {
        archive: archive.to_path_buf(),
        member,
        reason,
    }
}

/// A validated member.
#[derive(Debug)]
struct Member {
    /// The path as stored in the archive, for messages.
    raw: PathBuf,
    /// The path below the top-level directory (empty for the top directory itself).
    relative: PathBuf,
    /// `relative` as a string.
    relative_utf8: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    TopDirectory {
        mode: u32,
    },
    Directory {
        mode: u32,
    },
    File {
        mode: u32,
        mtime: u64,
    },
    Symlink {
        target: PathBuf,
    },
    /// Target relative to the tree root.
    HardLink {
        target: PathBuf,
    },
}

/// What a path in the tree is, as far as the members seen so far say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Directory,
    File,
    Symlink,
}

/// Checks members in archive order, remembering what each path is so that later members can be checked
/// against earlier ones (parents that are links, duplicates, hard-link targets).
struct Validator<'a> {
    archive: &'a Path,
    top: Option<String>,
    seen: HashMap<PathBuf, Seen>,
    /// Sizes of the regular files seen, for hard links (unpacked as copies) to count.
    sizes: HashMap<PathBuf, u64>,
    limits: Limits,
    archive_bytes: u64,
    entries: u64,
    bytes: u64,
}

impl<'a> Validator<'a> {
    fn new(archive: &'a Path, limits: Limits, archive_bytes: u64) -> Self {
        Self {
            archive,
            top: None,
            seen: HashMap::new(),
            sizes: HashMap::new(),
            limits,
            archive_bytes,
            entries: 0,
            bytes: 0,
        }
    }

    /// Count one more member of `size` unpacked bytes against the limits, before it is written.
    fn account(&mut self, size: u64) -> Result<(), ExtractError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ExtractError::Limit {
                archive: self.archive.to_path_buf(),
                limit: LimitExceeded::Entries {
                    max_entries: self.limits.max_entries,
                },
            });
        }
        self.add_bytes(size)
    }

    /// Count `size` more unpacked bytes against the limits.
    fn add_bytes(&mut self, size: u64) -> Result<(), ExtractError> {
        let limits = self.limits;
        let refuse = |limit| {
            Err(ExtractError::Limit {
                archive: self.archive.to_path_buf(),
                limit,
            })
        };
        self.bytes = self.bytes.saturating_add(size);
        if self.bytes > limits.max_bytes {
            return refuse(LimitExceeded::Bytes {
                max_bytes: limits.max_bytes,
            });
        }
        if self.bytes > RATIO_FLOOR_BYTES
            && self.bytes > self.archive_bytes.saturating_mul(limits.max_ratio)
        {
            return refuse(LimitExceeded::Ratio {
                max_ratio: limits.max_ratio,
                archive_bytes: self.archive_bytes,
                unpacked: self.bytes,
            });
        }
        Ok(())
    }

    /// Validate one entry; `None` for entries that describe no member (PAX global headers, `./`).
    fn check<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
    ) -> Result<Option<Member>, ExtractError> {
        let archive = self.archive;
        let header = entry.header();
        let entry_type = header.entry_type();
        if entry_type == tar::EntryType::XGlobalHeader {
            return Ok(None);
        }
        // Every header counts, also those refused below or skipped by a filter.
        let data_size = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous => entry.size(),
            _ => 0,
        };
        self.account(data_size)?;
        let raw = entry
            .path()
            .map_err(|source| read_error(archive, source))?
            .into_owned();
        if raw.as_os_str().len() > MAX_PATH_BYTES {
            return Err(unsafe_member(
                archive,
                raw.clone(),
                UnsafeReason::NameTooLong {
                    bytes: raw.as_os_str().len(),
                },
            ));
        }
        let header_error = |raw: &Path, source| ExtractError::ReadMember {
            archive: archive.to_path_buf(),
            member: raw.to_path_buf(),
            source,
        };
        let reject = |raw: &Path, reason| Err(unsafe_member(archive, raw.to_path_buf(), reason));

        let Some(raw_utf8) = raw.to_str() else {
            return reject(&raw, UnsafeReason::NonUtf8Path);
        };
        let names = match plain_names(Path::new(raw_utf8)) {
            Ok(names) => names,
            Err(reason) => return reject(&raw, reason),
        };
        let Some((first, rest)) = names.split_first() else {
            // `./`, the archive root, is harmless as a directory and meaningless as anything else.
            return if entry_type.is_dir() {
                Ok(None)
            } else {
                reject(&raw, UnsafeReason::EmptyPath)
            };
        };
        match &self.top {
            None => self.top = Some((*first).to_owned()),
            Some(top) if top == first => {}
            Some(top) => {
                let top = top.clone();
                return reject(&raw, UnsafeReason::OutsideTopDirectory { top });
            }
        }
        let mode = || {
            header
                .mode()
                .map(|mode| mode & PERMISSION_BITS)
                .map_err(|source| header_error(&raw, source))
        };
        if rest.is_empty() {
            return if entry_type.is_dir() {
                Ok(Some(Member {
                    kind: Kind::TopDirectory {
                        mode: mode()? | DIRECTORY_OWNER_BITS,
                    },
                    raw: raw.clone(),
                    relative: PathBuf::new(),
                    relative_utf8: String::new(),
                }))
            } else {
                reject(&raw, UnsafeReason::TopLevelNotDirectory)
            };
        }
        let relative: PathBuf = rest.iter().collect();
        let relative_utf8 = rest.join("/");

        // Parents must be directories (possibly implied); remember implied ones.
        let mut parent = PathBuf::new();
        for name in &rest[..rest.len() - 1] {
            parent.push(name);
            match self.seen.get(&parent) {
                None | Some(Seen::Directory) => {}
                Some(Seen::Symlink) => {
                    return reject(&raw, UnsafeReason::ParentIsSymlink { parent });
                }
                Some(Seen::File) => {
                    return reject(&raw, UnsafeReason::ParentNotDirectory { parent });
                }
            }
        }
        match self.seen.get(&relative) {
            None => {}
            Some(Seen::Directory) if entry_type.is_dir() => {}
            Some(_) => return reject(&raw, UnsafeReason::Duplicate),
        }

        let (kind, seen) = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mtime = header
                    .mtime()
                    .map_err(|source| header_error(&raw, source))?;
                self.sizes.insert(relative.clone(), data_size);
                (
                    Kind::File {
                        mode: mode()?,
                        mtime,
                    },
                    Seen::File,
                )
            }
            tar::EntryType::Directory => (
                Kind::Directory {
                    mode: mode()? | DIRECTORY_OWNER_BITS,
                },
                Seen::Directory,
            ),
            tar::EntryType::Symlink => {
                let target = link_target(entry).map_err(|source| header_error(&raw, source))?;
                let depth = rest.len() - 1;
                if let Err(reason) = check_symlink_target(&target, depth) {
                    return reject(&raw, reason);
                }
                (Kind::Symlink { target }, Seen::Symlink)
            }
            tar::EntryType::Link => {
                let target = link_target(entry).map_err(|source| header_error(&raw, source))?;
                let escapes = || UnsafeReason::HardLinkEscapes {
                    target: target.clone(),
                };
                let Some(target_names) =
                    target.to_str().and_then(|t| plain_names(Path::new(t)).ok())
                else {
                    return reject(&raw, escapes());
                };
                let inside = match target_names.split_first() {
                    Some((target_top, target_rest))
                        if target_top == first && !target_rest.is_empty() =>
                    {
                        target_rest.iter().collect::<PathBuf>()
                    }
                    _ => return reject(&raw, escapes()),
                };
                if self.seen.get(&inside) != Some(&Seen::File) || self.has_link_parent(&inside) {
                    return reject(
                        &raw,
                        UnsafeReason::HardLinkTargetMissing {
                            target: target.clone(),
                        },
                    );
                }
                // Unpacked as a copy: it costs its target's size again.
                let copied = self.sizes.get(&inside).copied().unwrap_or(0);
                self.add_bytes(copied)?;
                self.sizes.insert(relative.clone(), copied);
                (Kind::HardLink { target: inside }, Seen::File)
            }
            tar::EntryType::Char => return reject(&raw, UnsafeReason::CharacterDevice),
            tar::EntryType::Block => return reject(&raw, UnsafeReason::BlockDevice),
            tar::EntryType::Fifo => return reject(&raw, UnsafeReason::Fifo),
            other => {
                return reject(
                    &raw,
                    UnsafeReason::UnsupportedType {
                        type_flag: other.as_byte(),
                    },
                );
            }
        };

        let mut parent = PathBuf::new();
        for name in &rest[..rest.len() - 1] {
            parent.push(name);
            self.seen.entry(parent.clone()).or_insert(Seen::Directory);
        }
        self.seen.insert(relative.clone(), seen);
        Ok(Some(Member {
            raw,
            relative,
            relative_utf8,
            kind,
        }))
    }

    fn has_link_parent(&self, path: &Path) -> bool {
        path.ancestors()
            .skip(1)
            .any(|ancestor| self.seen.get(ancestor) == Some(&Seen::Symlink))
    }
}

fn link_target<R: Read>(entry: &tar::Entry<'_, R>) -> io::Result<PathBuf> {
    Ok(entry
        .link_name()?
        .map(|target| target.into_owned())
        .unwrap_or_default())
}

/// Split a member path into its names, skipping `.`; refuse `..`, roots and prefixes.
fn plain_names(path: &Path) -> Result<Vec<&str>, UnsafeReason> {
    let mut names = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => {
                if name.len() > MAX_NAME_BYTES {
                    return Err(UnsafeReason::NameTooLong { bytes: name.len() });
                }
                // The path was checked to be UTF-8, so each name is.
                names.push(name.to_str().ok_or(UnsafeReason::NonUtf8Path)?);
            }
            Component::CurDir => {}
            Component::ParentDir => return Err(UnsafeReason::ParentComponent),
            Component::RootDir | Component::Prefix(_) => return Err(UnsafeReason::Absolute),
        }
    }
    Ok(names)
}

/// Check that a symbolic link at `depth` directories below the root stays inside the tree.
///
/// The target is resolved lexically from the link's own directory. `..` is only allowed before the
/// first name: the link's own parents are real directories (checked for every member), so climbing
/// from there is exact, while after a name that might itself be a link, `..` could climb out of the
/// tree even though the lexical resolution stays inside.
fn check_symlink_target(target: &Path, depth: usize) -> Result<(), UnsafeReason> {
    if target.as_os_str().is_empty() {
        return Err(UnsafeReason::SymlinkWithoutTarget);
    }
    let mut depth = depth;
    let mut after_name = false;
    for component in target.components() {
        match component {
            Component::Normal(_) => after_name = true,
            Component::CurDir => {}
            Component::ParentDir if after_name => {
                return Err(UnsafeReason::SymlinkClimbsAfterName {
                    target: target.to_path_buf(),
                });
            }
            Component::ParentDir => {
                depth = depth
                    .checked_sub(1)
                    .ok_or_else(|| UnsafeReason::SymlinkEscapes {
                        target: target.to_path_buf(),
                    })?;
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(UnsafeReason::SymlinkEscapes {
                    target: target.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::GzEncoder;
    use std::collections::BTreeMap;
    use tar::{EntryType, Header};

    const MTIME: u64 = 1_600_000_000;

    /// One archive entry; paths and link targets are written raw, bypassing `tar`'s own checks.
    enum Item<'a> {
        Dir(&'a str, u32),
        File(&'a str, u32, &'a [u8]),
        Symlink(&'a str, &'a str),
        HardLink(&'a str, &'a str),
        Special(&'a str, EntryType),
    }

    fn raw_header(path: &str, entry_type: EntryType, mode: u32, size: u64, link: &str) -> Header {
        let mut header = Header::new_gnu();
        let old = header.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_entry_type(entry_type);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(MTIME);
        header.set_cksum();
        header
    }

    fn tar_bytes(items: &[Item<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let (header, data): (Header, &[u8]) = match *item {
                Item::Dir(path, mode) => (raw_header(path, EntryType::Directory, mode, 0, ""), b""),
                Item::File(path, mode, data) => (
                    raw_header(path, EntryType::Regular, mode, data.len() as u64, ""),
                    data,
                ),
                Item::Symlink(path, target) => {
                    (raw_header(path, EntryType::Symlink, 0o777, 0, target), b"")
                }
                Item::HardLink(path, target) => {
                    (raw_header(path, EntryType::Link, 0o644, 0, target), b"")
                }
                Item::Special(path, entry_type) => {
                    (raw_header(path, entry_type, 0o644, 0, ""), b"")
                }
            };
            builder.append(&header, data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn write_archive(dir: &Path, name: &str, items: &[Item<'_>]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, gzip(&tar_bytes(items))).unwrap();
        path
    }

    /// Incompressible-looking data, so truncating the gzip stream cuts into it.
    fn noise(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Node {
        Dir {
            mode: u32,
        },
        File {
            mode: u32,
            mtime: u64,
            data: Vec<u8>,
        },
        Symlink(PathBuf),
    }

    fn file(mode: u32, data: &[u8]) -> Node {
        Node::File {
            mode,
            mtime: MTIME,
            data: data.to_vec(),
        }
    }

    /// Every path under `root` (root itself as ""), with what it is, its mode, content and file time.
    fn snapshot(root: &Path) -> BTreeMap<String, Node> {
        fn walk(root: &Path, relative: &Path, nodes: &mut BTreeMap<String, Node>) {
            let path = root.join(relative);
            let metadata = fs::symlink_metadata(&path).unwrap();
            let mode = metadata.permissions().mode() & 0o7777;
            let key = relative.to_str().unwrap().to_owned();
            if metadata.file_type().is_symlink() {
                nodes.insert(key, Node::Symlink(fs::read_link(&path).unwrap()));
            } else if metadata.is_dir() {
                nodes.insert(key, Node::Dir { mode });
                for child in fs::read_dir(&path).unwrap() {
                    walk(root, &relative.join(child.unwrap().file_name()), nodes);
                }
            } else {
                let mtime = metadata
                    .modified()
                    .unwrap()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let data = fs::read(&path).unwrap();
                nodes.insert(key, Node::File { mode, mtime, data });
            }
        }
        let mut nodes = BTreeMap::new();
        walk(root, Path::new(""), &mut nodes);
        nodes
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// A scratch directory with `archives/` and `work/out/` (holding an old tree to protect).
    struct Scratch {
        _dir: tempfile::TempDir,
        archives: PathBuf,
        work: PathBuf,
        out: PathBuf,
    }

    fn scratch() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let archives = dir.path().join("archives");
        let work = dir.path().join("work");
        let out = work.join("out");
        fs::create_dir_all(out.join("old-dir")).unwrap();
        fs::create_dir_all(&archives).unwrap();
        fs::write(out.join("old.txt"), b"old tree").unwrap();
        Scratch {
            _dir: dir,
            archives,
            work,
            out,
        }
    }

    /// Unpack a malicious archive and check the refusal names the member, `out` is untouched, no
    /// temporary is left next to it and nothing was written anywhere else.
    fn assert_rejected(items: &[Item<'_>], member: &str) -> UnsafeReason {
        let scratch = scratch();
        let archive = write_archive(&scratch.archives, "evil.tar.gz", items);
        let before = snapshot(&scratch.out);

        let error = unpack_staged(&archive, &scratch.out)
            .and_then(StagedTree::commit)
            .unwrap_err();
        let message = error.to_string();
        let ExtractError::UnsafeMember {
            archive: reported_archive,
            member: reported_member,
            reason,
        } = error
        else {
            panic!("expected an unsafe-member error, got {message}");
        };
        assert_eq!(reported_archive, archive);
        assert_eq!(reported_member, Path::new(member));
        assert!(message.contains(&format!("`{member}`")), "{message}");
        assert!(message.contains(&reason.to_string()), "{message}");

        assert_eq!(snapshot(&scratch.out), before);
        assert_eq!(names(&scratch.work), ["out"]);
        assert_eq!(names(&scratch.archives), ["evil.tar.gz"]);
        assert_eq!(names(scratch.work.parent().unwrap()), ["archives", "work"]);

        // Listing validates the same way.
        let listed = list_members(&archive).unwrap_err();
        assert!(
            matches!(&listed, ExtractError::UnsafeMember { member: m, .. } if m == Path::new(member)),
            "{listed}"
        );
        reason
    }

    #[test]
    fn unpacks_tree_with_modes_links_and_directories() {
        let scratch = scratch();
        let big = noise(700 * 1024);
        let archive = write_archive(
            &scratch.archives,
            "spark.tar.gz",
            &[
                Item::Dir("spark-3.1.1-bin-hadoop3.2/", 0o755),
                Item::Dir("spark-3.1.1-bin-hadoop3.2/bin/", 0o755),
                Item::File(
                    "spark-3.1.1-bin-hadoop3.2/bin/run.sh",
                    0o4755,
                    b"#!/bin/sh\n",
                ),
                Item::File("spark-3.1.1-bin-hadoop3.2/conf/a.conf", 0o644, b"a=1\n"),
                Item::Dir("spark-3.1.1-bin-hadoop3.2/ro/", 0o555),
                Item::File("spark-3.1.1-bin-hadoop3.2/ro/data", 0o444, b"ro"),
                Item::File("spark-3.1.1-bin-hadoop3.2/jars/big.jar", 0o644, &big),
                Item::File("spark-3.1.1-bin-hadoop3.2/lib/libx.so.1", 0o755, b"elf"),
                Item::Symlink("spark-3.1.1-bin-hadoop3.2/lib/libx.so", "libx.so.1"),
                Item::Symlink("spark-3.1.1-bin-hadoop3.2/bin/conf", "../conf"),
                Item::Symlink("spark-3.1.1-bin-hadoop3.2/lib/dangling", "./missing"),
                Item::HardLink(
                    "spark-3.1.1-bin-hadoop3.2/lib/a.conf",
                    "spark-3.1.1-bin-hadoop3.2/conf/a.conf",
                ),
                Item::File("./spark-3.1.1-bin-hadoop3.2/dotted", 0o600, b"dot"),
                Item::Dir("spark-3.1.1-bin-hadoop3.2/empty/", 0o750),
            ],
        );

        let report = unpack_staged(&archive, &scratch.out)
            .and_then(StagedTree::commit)
            .unwrap();
        assert_eq!(
            report,
            UnpackReport {
                top_directory: "spark-3.1.1-bin-hadoop3.2".to_owned(),
                files: 6,
                directories: 3,
                symlinks: 3,
                hard_links: 1,
                bytes: (10 + 4 + 2 + big.len() + 3 + 3 + 4) as u64,
            }
        );
        let expected: BTreeMap<String, Node> = [
            ("", Node::Dir { mode: 0o755 }),
            ("bin", Node::Dir { mode: 0o755 }),
            ("bin/run.sh", file(0o755, b"#!/bin/sh\n")),
            ("bin/conf", Node::Symlink("../conf".into())),
            ("conf", Node::Dir { mode: 0o755 }),
            ("conf/a.conf", file(0o644, b"a=1\n")),
            ("ro", Node::Dir { mode: 0o755 }),
            ("ro/data", file(0o444, b"ro")),
            ("jars", Node::Dir { mode: 0o755 }),
            ("jars/big.jar", file(0o644, &big)),
            ("lib", Node::Dir { mode: 0o755 }),
            ("lib/libx.so.1", file(0o755, b"elf")),
            ("lib/libx.so", Node::Symlink("libx.so.1".into())),
            ("lib/dangling", Node::Symlink("./missing".into())),
            ("lib/a.conf", file(0o644, b"a=1\n")),
            ("dotted", file(0o600, b"dot")),
            ("empty", Node::Dir { mode: 0o750 }),
        ]
        .into_iter()
        .map(|(path, node)| (path.to_owned(), node))
        .collect();
        assert_eq!(snapshot(&scratch.out), expected);
        // In-tree links work.
        assert_eq!(
            fs::read(scratch.out.join("bin/conf/a.conf")).unwrap(),
            b"a=1\n"
        );
        assert_eq!(fs::read(scratch.out.join("lib/libx.so")).unwrap(), b"elf");
        assert_eq!(names(&scratch.work), ["out"]);

        // A second unpack of the same archive gives an identical tree.
        let again = scratch.work.join("again");
        unpack_staged(&archive, &again)
            .and_then(StagedTree::commit)
            .unwrap();
        assert_eq!(snapshot(&again), expected);
        assert_eq!(names(&scratch.work), ["again", "out"]);
    }

    #[test]
    fn reunpack_replaces_the_old_tree() {
        let scratch = scratch();
        let first = write_archive(
            &scratch.archives,
            "first.tar.gz",
            &[
                Item::File("top/only-in-first", 0o644, b"1"),
                Item::File("top/common", 0o644, b"first"),
            ],
        );
        let second = write_archive(
            &scratch.archives,
            "second.tar.gz",
            &[
                Item::File("top/common", 0o644, b"second"),
                Item::File("top/sub/only-in-second", 0o644, b"2"),
            ],
        );
        unpack_staged(&first, &scratch.out)
            .and_then(StagedTree::commit)
            .unwrap();
        assert_eq!(names(&scratch.out), ["common", "only-in-first"]);
        unpack_staged(&second, &scratch.out)
            .and_then(StagedTree::commit)
            .unwrap();
        let expected: BTreeMap<String, Node> = [
            ("", Node::Dir { mode: 0o755 }),
            ("common", file(0o644, b"second")),
            ("sub", Node::Dir { mode: 0o755 }),
            ("sub/only-in-second", file(0o644, b"2")),
        ]
        .into_iter()
        .map(|(path, node)| (path.to_owned(), node))
        .collect();
        assert_eq!(snapshot(&scratch.out), expected);
        assert_eq!(names(&scratch.work), ["out"]);
    }

    #[test]
    fn unpack_creates_missing_destination_and_parents() {
        let scratch = scratch();
        let archive = write_archive(
            &scratch.archives,
            "a.tar.gz",
            &[Item::File("top/f", 0o644, b"x")],
        );
        let out = scratch.work.join("nested/deeper/tree");
        unpack_staged(&archive, &out)
            .and_then(StagedTree::commit)
            .unwrap();
        assert_eq!(fs::read(out.join("f")).unwrap(), b"x");
        assert_eq!(names(out.parent().unwrap()), ["tree"]);
    }

    #[test]
    fn staged_tree_commits_modifications() {
        let scratch = scratch();
        let archive = write_archive(
            &scratch.archives,
            "a.tar.gz",
            &[Item::File("top/f", 0o644, b"x")],
        );
        let staged = unpack_staged(&archive, &scratch.out).unwrap();
        assert_eq!(staged.out, scratch.out);
        assert_eq!(staged.report.files, 1);
        assert!(staged.path().starts_with(&scratch.work));
        // Nothing is visible before the commit.
        assert_eq!(names(&scratch.out), ["old-dir", "old.txt"]);
        fs::write(staged.path().join("added.jar"), b"jar").unwrap();
        let report = staged.commit().unwrap();
        assert_eq!(report.top_directory, "top");
        assert_eq!(names(&scratch.out), ["added.jar", "f"]);
        assert_eq!(names(&scratch.work), ["out"]);
    }

    #[test]
    fn dropping_a_staged_tree_removes_it() {
        let scratch = scratch();
        let archive = write_archive(
            &scratch.archives,
            "a.tar.gz",
            &[Item::File("top/f", 0o644, b"x")],
        );
        let before = snapshot(&scratch.out);
        let staged = unpack_staged(&archive, &scratch.out).unwrap();
        let staged_path = staged.path().to_path_buf();
        assert!(staged_path.join("f").is_file());
        drop(staged);
        assert!(!staged_path.exists());
        assert_eq!(snapshot(&scratch.out), before);
        assert_eq!(names(&scratch.work), ["out"]);
    }

    /// Runs one row of a table test; a failing row is named (its own assertion message is
    /// printed just above).
    fn row(name: &str, check: impl FnOnce()) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
        assert!(outcome.is_ok(), "table row `{name}` failed");
    }

    /// An archive that must be refused, the member the refusal must name and its reason.
    struct Refused<'a> {
        name: &'static str,
        items: &'a [Item<'a>],
        member: &'static str,
        reason: UnsafeReason,
    }

    #[test]
    fn unsafe_members_are_refused_naming_member_and_reason() {
        let cases = [
            Refused {
                name: "rejects_parent_traversal (below the top directory)",
                items: &[
                    Item::File("top/ok", 0o644, b"ok"),
                    Item::File("top/../x", 0o644, b"x"),
                ],
                member: "top/../x",
                reason: UnsafeReason::ParentComponent,
            },
            Refused {
                name: "rejects_parent_traversal (at the top)",
                items: &[Item::File("../x", 0o644, b"x")],
                member: "../x",
                reason: UnsafeReason::ParentComponent,
            },
            Refused {
                name: "rejects_absolute_path",
                items: &[Item::Dir("top/", 0o755), Item::File("/etc/x", 0o644, b"x")],
                member: "/etc/x",
                reason: UnsafeReason::Absolute,
            },
            Refused {
                name: "rejects_symlink_escaping_the_tree (relative target)",
                items: &[
                    Item::Symlink("top/link", "../../etc"),
                    Item::File("top/link/passwd", 0o644, b"root::0:0"),
                ],
                member: "top/link",
                reason: UnsafeReason::SymlinkEscapes {
                    target: "../../etc".into(),
                },
            },
            Refused {
                name: "rejects_symlink_escaping_the_tree (one level too many from a deeper directory)",
                items: &[Item::Symlink("top/a/b/link", "../../../x")],
                member: "top/a/b/link",
                reason: UnsafeReason::SymlinkEscapes {
                    target: "../../../x".into(),
                },
            },
            Refused {
                name: "rejects_symlink_escaping_the_tree (absolute targets are outside by definition)",
                items: &[Item::Symlink("top/link", "/etc")],
                member: "top/link",
                reason: UnsafeReason::SymlinkEscapes {
                    target: "/etc".into(),
                },
            },
            Refused {
                // `a/b/c/s` is the tree root, so `a/b/c/s/..` is outside although it reads as `a/b/c`.
                name: "rejects_symlink_climbing_through_another_link",
                items: &[
                    Item::Dir("top/a/b/c/", 0o755),
                    Item::Symlink("top/a/b/c/s", "../../.."),
                    Item::Symlink("top/t", "a/b/c/s/../x"),
                ],
                member: "top/t",
                reason: UnsafeReason::SymlinkClimbsAfterName {
                    target: "a/b/c/s/../x".into(),
                },
            },
            Refused {
                name: "rejects_writing_through_symlinked_parent",
                items: &[
                    Item::Dir("top/a/", 0o755),
                    Item::Dir("top/b/", 0o755),
                    Item::Symlink("top/a/evil", "../b"),
                    Item::File("top/a/evil/x", 0o644, b"through the link"),
                ],
                member: "top/a/evil/x",
                reason: UnsafeReason::ParentIsSymlink {
                    parent: "a/evil".into(),
                },
            },
            Refused {
                name: "rejects_replacing_a_symlink_with_a_file",
                items: &[
                    Item::File("top/target", 0o644, b"t"),
                    Item::Symlink("top/l", "target"),
                    Item::File("top/l", 0o644, b"overwrite through the link"),
                ],
                member: "top/l",
                reason: UnsafeReason::Duplicate,
            },
            Refused {
                name: "rejects_file_under_a_file",
                items: &[
                    Item::File("top/f", 0o644, b"f"),
                    Item::File("top/f/g", 0o644, b"g"),
                ],
                member: "top/f/g",
                reason: UnsafeReason::ParentNotDirectory { parent: "f".into() },
            },
            Refused {
                name: "rejects_hard_links_outside_or_absent (relative, outside)",
                items: &[
                    Item::File("top/f", 0o644, b"f"),
                    Item::HardLink("top/h", "../../etc/passwd"),
                ],
                member: "top/h",
                reason: UnsafeReason::HardLinkEscapes {
                    target: "../../etc/passwd".into(),
                },
            },
            Refused {
                name: "rejects_hard_links_outside_or_absent (absolute)",
                items: &[Item::HardLink("top/h", "/etc/passwd")],
                member: "top/h",
                reason: UnsafeReason::HardLinkEscapes {
                    target: "/etc/passwd".into(),
                },
            },
            Refused {
                name: "rejects_hard_links_outside_or_absent (absent)",
                items: &[
                    Item::File("top/f", 0o644, b"f"),
                    Item::HardLink("top/h", "top/missing"),
                ],
                member: "top/h",
                reason: UnsafeReason::HardLinkTargetMissing {
                    target: "top/missing".into(),
                },
            },
            Refused {
                // A hard link may not reach a file through a symbolic link either.
                name: "rejects_hard_links_outside_or_absent (through a symbolic link)",
                items: &[
                    Item::File("top/d/f", 0o644, b"f"),
                    Item::Symlink("top/s", "d"),
                    Item::HardLink("top/h", "top/s/f"),
                ],
                member: "top/h",
                reason: UnsafeReason::HardLinkTargetMissing {
                    target: "top/s/f".into(),
                },
            },
            Refused {
                name: "rejects_devices_and_fifos (character device)",
                items: &[Item::Special("top/tty", EntryType::Char)],
                member: "top/tty",
                reason: UnsafeReason::CharacterDevice,
            },
            Refused {
                name: "rejects_devices_and_fifos (block device)",
                items: &[Item::Special("top/sda", EntryType::Block)],
                member: "top/sda",
                reason: UnsafeReason::BlockDevice,
            },
            Refused {
                name: "rejects_devices_and_fifos (fifo)",
                items: &[Item::Special("top/pipe", EntryType::Fifo)],
                member: "top/pipe",
                reason: UnsafeReason::Fifo,
            },
            Refused {
                name: "rejects_several_top_level_directories",
                items: &[
                    Item::File("a/x", 0o644, b"x"),
                    Item::File("b/y", 0o644, b"y"),
                ],
                member: "b/y",
                reason: UnsafeReason::OutsideTopDirectory {
                    top: "a".to_owned(),
                },
            },
            Refused {
                name: "rejects_several_top_level_directories (a file at the top)",
                items: &[Item::File("README", 0o644, b"x")],
                member: "README",
                reason: UnsafeReason::TopLevelNotDirectory,
            },
        ];
        for case in cases {
            row(case.name, || {
                assert_eq!(assert_rejected(case.items, case.member), case.reason);
            });
        }
    }

    #[test]
    fn rejection_message_names_archive_member_and_reason() {
        let scratch = scratch();
        let archive = write_archive(
            &scratch.archives,
            "evil.tar.gz",
            &[Item::File("../x", 0o644, b"x")],
        );
        let error = unpack_staged(&archive, &scratch.out)
            .and_then(StagedTree::commit)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "refusing to unpack member `../x` of archive `{}`: its path contains a `..` component",
                archive.display()
            )
        );
    }

    #[test]
    fn extract_members_writes_only_selected_files() {
        let scratch = scratch();
        let aws = noise(300 * 1024);
        let archive = write_archive(
            &scratch.archives,
            "hadoop.tar.gz",
            &[
                Item::Dir("hadoop-3.2.0/", 0o755),
                Item::File("hadoop-3.2.0/bin/hadoop", 0o755, b"#!/bin/sh\n"),
                Item::File(
                    "hadoop-3.2.0/share/hadoop/tools/lib/hadoop-aws-3.2.0.jar",
                    0o644,
                    &aws,
                ),
                Item::File(
                    "hadoop-3.2.0/share/hadoop/tools/lib/aws-java-sdk-bundle-1.11.375.jar",
                    0o640,
                    b"sdk",
                ),
                Item::File(
                    "hadoop-3.2.0/share/hadoop/tools/lib/hadoop-azure-3.2.0.jar",
                    0o644,
                    b"az",
                ),
                Item::Symlink(
                    "hadoop-3.2.0/share/hadoop/tools/lib/current.jar",
                    "hadoop-azure-3.2.0.jar",
                ),
            ],
        );
        let dest = scratch.work.join("jars");
        fs::create_dir_all(&dest).unwrap();
        fs::write(dest.join("hadoop-aws-3.2.0.jar"), b"stale").unwrap();

        let mut offered = Vec::new();
        let written = extract_members(&archive, &dest, |member| {
            offered.push(member.to_str().unwrap().to_owned());
            let name = member.file_name()?.to_str()?;
            (member.starts_with("share/hadoop/tools/lib")
                && (name.starts_with("hadoop-aws-") || name.starts_with("aws-java-sdk-bundle-")))
            .then(|| name.to_owned())
        })
        .unwrap();

        assert_eq!(
            offered,
            [
                "bin/hadoop",
                "share/hadoop/tools/lib/hadoop-aws-3.2.0.jar",
                "share/hadoop/tools/lib/aws-java-sdk-bundle-1.11.375.jar",
                "share/hadoop/tools/lib/hadoop-azure-3.2.0.jar",
                "share/hadoop/tools/lib/current.jar",
            ]
        );
        assert_eq!(
            written,
            [
                dest.join("hadoop-aws-3.2.0.jar"),
                dest.join("aws-java-sdk-bundle-1.11.375.jar")
            ]
        );
        let expected: BTreeMap<String, Node> = [
            ("", Node::Dir { mode: 0o755 }),
            ("hadoop-aws-3.2.0.jar", file(0o644, &aws)),
            ("aws-java-sdk-bundle-1.11.375.jar", file(0o640, b"sdk")),
        ]
        .into_iter()
        .map(|(path, node)| (path.to_owned(), node))
        .collect();
        let mut actual = snapshot(&dest);
        // The destination directory's own mode is the caller's business.
        actual.insert(String::new(), Node::Dir { mode: 0o755 });
        assert_eq!(actual, expected);
        assert_eq!(names(&scratch.work), ["jars", "out"]);
    }

    #[test]
    fn extract_members_refuses_bad_selections_without_writing() {
        let scratch = scratch();
        let archive = write_archive(
            &scratch.archives,
            "a.tar.gz",
            &[
                Item::File("top/a.jar", 0o644, b"a"),
                Item::File("top/sub/a.jar", 0o644, b"other a"),
                Item::Symlink("top/link.jar", "a.jar"),
            ],
        );
        let dest = scratch.work.join("jars");

        let error = extract_members(&archive, &dest, |member| {
            (member == Path::new("a.jar")).then(|| "../escape.jar".to_owned())
        })
        .unwrap_err();
        assert!(
            matches!(&error, ExtractError::InvalidDestinationName { name, .. } if name == "../escape.jar"),
            "{error}"
        );
        assert!(names(&dest).is_empty());
        assert_eq!(names(&scratch.work), ["jars", "out"]);

        let error = extract_members(&archive, &dest, |member| {
            member
                .file_name()
                .map(|name| name.to_str().unwrap().to_owned())
        })
        .unwrap_err();
        assert!(
            matches!(&error, ExtractError::DuplicateDestinationName { first, second, .. }
                if first == Path::new("top/a.jar") && second == Path::new("top/sub/a.jar")),
            "{error}"
        );
        assert!(names(&dest).is_empty());

        let error = extract_members(&archive, &dest, |member| {
            (member == Path::new("link.jar")).then(|| "link.jar".to_owned())
        })
        .unwrap_err();
        assert!(
            matches!(&error, ExtractError::NotRegularFile { member, .. } if member == Path::new("top/link.jar")),
            "{error}"
        );
        assert!(names(&dest).is_empty());
    }

    #[test]
    fn list_members_strips_the_top_directory() {
        let scratch = scratch();
        let archive = write_archive(
            &scratch.archives,
            "a.tar.gz",
            &[
                Item::Dir("top/", 0o755),
                Item::Dir("top/bin/", 0o755),
                Item::File("top/bin/run", 0o755, b"x"),
                Item::Symlink("top/run", "bin/run"),
                Item::File("./top/jars/a.jar", 0o644, b"a"),
            ],
        );
        assert_eq!(
            list_members(&archive).unwrap(),
            ["bin", "bin/run", "run", "jars/a.jar"]
        );
    }

    #[test]
    fn empty_archive_is_an_error() {
        let scratch = scratch();
        let archive = write_archive(&scratch.archives, "empty.tar.gz", &[]);
        let error = unpack_staged(&archive, &scratch.out)
            .and_then(StagedTree::commit)
            .unwrap_err();
        assert!(matches!(error, ExtractError::Empty { .. }), "{error}");
        assert_eq!(names(&scratch.work), ["out"]);
        assert!(matches!(
            list_members(&archive).unwrap_err(),
            ExtractError::Empty { .. }
        ));
    }

    /// Unpack and extract a damaged archive; both must fail and leave nothing behind.
    fn assert_corrupt_fails_cleanly(damage: impl FnOnce(&mut Vec<u8>)) -> ExtractError {
        let scratch = scratch();
        let payload = noise(400 * 1024);
        let mut bytes = gzip(&tar_bytes(&[
            Item::File("top/small", 0o644, b"small"),
            Item::File("top/payload.jar", 0o644, &payload),
            Item::File("top/after", 0o644, b"after"),
        ]));
        damage(&mut bytes);
        let archive = scratch.archives.join("damaged.tar.gz");
        fs::write(&archive, &bytes).unwrap();
        let before = snapshot(&scratch.out);

        let error = unpack_staged(&archive, &scratch.out)
            .and_then(StagedTree::commit)
            .unwrap_err();
        assert_eq!(snapshot(&scratch.out), before);
        assert_eq!(names(&scratch.work), ["out"]);

        let dest = scratch.work.join("jars");
        let extract_error = extract_members(&archive, &dest, |member| {
            Some(member.file_name()?.to_str()?.to_owned())
        })
        .unwrap_err();
        assert!(
            matches!(
                extract_error,
                ExtractError::Read { .. }
                    | ExtractError::ReadMember { .. }
                    | ExtractError::Truncated { .. }
            ),
            "{extract_error}"
        );
        assert!(names(&dest).is_empty());
        assert!(list_members(&archive).is_err());
        error
    }

    /// Damage done to a good archive, and what the unpack error must then be.
    struct Damaged {
        name: &'static str,
        damage: fn(&mut Vec<u8>),
        check: fn(&ExtractError),
    }

    #[test]
    fn damaged_archives_fail_cleanly() {
        let cases = [
            Damaged {
                name: "truncated_gzip_fails_cleanly",
                damage: |bytes| bytes.truncate(bytes.len() / 2),
                check: |error| {
                    assert!(
                        matches!(
                            error,
                            ExtractError::ReadMember { member, .. }
                                | ExtractError::Truncated { member, .. }
                                if member == Path::new("top/payload.jar")
                        ),
                        "{error}"
                    );
                    assert!(error.to_string().contains("top/payload.jar"), "{error}");
                },
            },
            Damaged {
                // Every tar block is intact; only the gzip trailer (checksum and length) is cut off.
                name: "missing_gzip_trailer_is_detected_after_the_tar_end",
                damage: |bytes| bytes.truncate(bytes.len() - 4),
                check: |error| assert!(matches!(error, ExtractError::Read { .. }), "{error}"),
            },
            Damaged {
                name: "corrupt_gzip_fails_cleanly",
                damage: |bytes| {
                    let middle = bytes.len() / 2;
                    for byte in &mut bytes[middle..middle + 64] {
                        *byte ^= 0x5a;
                    }
                },
                check: |error| {
                    assert!(
                        matches!(
                            error,
                            ExtractError::Read { .. } | ExtractError::ReadMember { .. }
                        ),
                        "{error}"
                    );
                },
            },
            Damaged {
                name: "non_gzip_input_fails_cleanly",
                damage: |bytes| {
                    bytes.clear();
                    bytes.extend_from_slice(b"<html>mirror error page</html>");
                },
                check: |error| assert!(matches!(error, ExtractError::Read { .. }), "{error}"),
            },
        ];
        for case in cases {
            row(case.name, || {
                (case.check)(&assert_corrupt_fails_cleanly(case.damage));
            });
        }
    }

    #[test]
    fn missing_archive_is_an_open_error() {
        let scratch = scratch();
        let archive = scratch.archives.join("absent.tar.gz");
        let error = unpack_staged(&archive, &scratch.out)
            .and_then(StagedTree::commit)
            .unwrap_err();
        assert!(matches!(error, ExtractError::Open { .. }), "{error}");
        assert_eq!(names(&scratch.work), ["out"]);
    }

    #[test]
    fn disk_check_refuses_symlinked_parent_the_validator_did_not_know() {
        // Defence in depth: even for a member the validator passed, a parent that is a link on disk
        // (here planted by hand) is never written through.
        let root = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        symlink(elsewhere.path(), root.path().join("a")).unwrap();
        let member = Member {
            raw: "top/a/b/x".into(),
            relative: "a/b/x".into(),
            relative_utf8: "a/b/x".to_owned(),
            kind: Kind::File {
                mode: 0o644,
                mtime: MTIME,
            },
        };
        let error = create_parents(Path::new("test.tar.gz"), &member, root.path()).unwrap_err();
        assert!(
            matches!(&error, ExtractError::UnsafeMember {
                reason: UnsafeReason::ParentIsSymlink { parent }, ..
            } if parent == Path::new("a")),
            "{error}"
        );
        assert!(names(elsewhere.path()).is_empty());
    }

    #[test]
    fn destination_without_a_name_is_refused() {
        let scratch = scratch();
        let archive = write_archive(
            &scratch.archives,
            "a.tar.gz",
            &[Item::File("top/f", 0o644, b"x")],
        );
        let error = unpack_staged(&archive, Path::new("/"))
            .and_then(StagedTree::commit)
            .unwrap_err();
        assert!(
            matches!(error, ExtractError::InvalidDestination { .. }),
            "{error}"
        );
    }

    fn cached(path: &Path, content: &[u8]) -> crate::cache::CachedArtifact {
        use sha2::Digest as _;
        crate::cache::CachedArtifact {
            entry: crate::cache::IndexEntry {
                key: "k".into(),
                file_name: "a.tgz".into(),
                sha512: hex::encode(sha2::Sha512::digest(content)),
                sha256: Some(hex::encode(sha2::Sha256::digest(content))),
                size: content.len() as u64,
                url: "http://127.0.0.1/a.tgz".into(),
                verified_with: "sha512:x".into(),
                stored_at: 0,
            },
            path: path.to_path_buf(),
        }
    }

    #[test]
    fn a_verified_archive_unpacks_and_a_changed_one_is_refused_before_commit() {
        let scratch = scratch();
        let items = [
            Item::Dir("top/", 0o755),
            Item::File("top/a.txt", 0o644, b"a"),
        ];
        let archive = write_archive(&scratch.archives, "a.tgz", &items);
        let content = fs::read(&archive).unwrap();
        let artifact = cached(&archive, &content);
        unpack_staged(Archive::cached(&artifact, Limits::DEFAULT), &scratch.out)
            .and_then(StagedTree::commit)
            .unwrap();
        // Same size, one byte of the gzip header's MTIME changed: it still decodes.
        let mut changed = content.clone();
        changed[4] ^= 1;
        fs::write(&archive, &changed).unwrap();
        let error = unpack_staged(
            Archive::cached(&artifact, Limits::DEFAULT),
            &scratch.work.join("new"),
        )
        .and_then(StagedTree::commit)
        .unwrap_err();
        assert!(matches!(error, ExtractError::Damaged { .. }), "{error}");
        assert!(!scratch.work.join("new").exists());
        assert_eq!(names(&scratch.work), ["out"]);
    }

    #[test]
    fn entries_and_long_names_are_refused() {
        let scratch = scratch();
        let items = [
            Item::Dir("top/", 0o755),
            Item::File("top/a", 0o644, b"a"),
            Item::File("top/b", 0o644, b"b"),
            Item::File("top/c", 0o644, b"c"),
        ];
        let archive = write_archive(&scratch.archives, "many.tgz", &items);
        let limits = Limits {
            max_entries: 3,
            ..Limits::DEFAULT
        };
        let error = list_members(Archive {
            limits,
            ..Archive::new(&archive)
        })
        .unwrap_err();
        assert!(
            matches!(
                error,
                ExtractError::Limit {
                    limit: LimitExceeded::Entries { max_entries: 3 },
                    ..
                }
            ),
            "{error}"
        );
        let long = format!("top/{}", "n".repeat(MAX_NAME_BYTES + 1));
        assert!(long.len() <= 512);
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        header.set_entry_type(EntryType::Regular);
        builder.append_data(&mut header, &long, &b"x"[..]).unwrap();
        let path = scratch.archives.join("long.tgz");
        fs::write(&path, gzip(&builder.into_inner().unwrap())).unwrap();
        let error = list_members(&path).unwrap_err();
        assert!(
            error.to_string().contains("has a name of 256 bytes"),
            "{error}"
        );
    }
}
