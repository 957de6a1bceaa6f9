//! Where a prepared tree may go: imgforge only ever replaces what it made.
//!
//! `prepare --out` (and `build`, which prepares into `./build/…`) replaces its output directory
//! as a whole. Before anything is touched, the requested path is made absolute and canonical
//! (so `--out ../<cwd>` is seen to be the current directory) and checked:
//!
//! - never `/`, `$HOME`, the current directory, the cache, or a directory containing any of
//!   them, nor anything inside the cache, whatever the flags;
//! - never a regular file or a symbolic link;
//! - an existing directory only when it is empty or carries the [`MARKER`] imgforge writes
//!   into every tree it produces; a non-empty directory without it only with `--force`.

use std::fs;
use std::io::{self, Read as _};
use std::path::{Component, Path, PathBuf};

use crate::config::Config;
use crate::exit;

/// The file imgforge writes at the root of every tree it produces.
pub const MARKER: &str = ".imgforge-tree";

/// The format version written on the marker's first line.
pub const MARKER_FORMAT: u32 = 1;

/// What the marker's first line starts with, whatever the format version.
const MARKER_MAGIC: &str = "imgforge-tree ";

/// Why an output directory was refused.
#[derive(Debug, thiserror::Error)]
pub enum OutDirError {
    /// The path (or the current directory) could not be resolved.
    #[error("cannot resolve the output directory {path}")]
    Resolve {
        /// The path as given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A directory that must never be replaced.
    #[error(
        "refusing to use {path} as the output directory: it is {what}; choose a new directory \
         with --out (--force never applies here)"
    )]
    Protected {
        /// The resolved path.
        path: PathBuf,
        /// What it is, e.g. "your home directory ($HOME)".
        what: String,
    },
    /// A regular file or anything else that is not a directory.
    #[error(
        "refusing to replace {path}: it is a file, not a directory imgforge made; choose a new \
         directory with --out"
    )]
    NotADirectory {
        /// The resolved path.
        path: PathBuf,
    },
    /// A symbolic link: replacing it would replace the link, not what the user pointed at.
    #[error("refusing to replace {path}: it is a symbolic link; choose a new directory with --out")]
    Symlink {
        /// The path of the link.
        path: PathBuf,
    },
    /// A non-empty directory without imgforge's marker.
    #[error(
        "refusing to replace {path}: it is a non-empty directory imgforge did not make (it has \
         no {MARKER}); choose a new directory with --out, or, if everything in it may be \
         deleted, add --force (imgforge prepare) or --force-replace (imgforge build)"
    )]
    Foreign {
        /// The resolved path.
        path: PathBuf,
    },
}

impl OutDirError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        exit::CONFIG
    }
}

/// The paths an output directory must never be, contain or lie inside (the cache).
struct Protected {
    cwd: PathBuf,
    home: Option<PathBuf>,
    cache: PathBuf,
}

impl Protected {
    fn of(config: &Config) -> Result<Protected, OutDirError> {
        let cwd = std::env::current_dir()
            .and_then(fs::canonicalize)
            .map_err(|source| OutDirError::Resolve {
                path: PathBuf::from("."),
                source,
            })?;
        let home = config
            .home_dir
            .as_deref()
            .and_then(|home| canonical(home, &cwd, Last::Follow).ok());
        let cache = canonical(&config.cache_dir, &cwd, Last::Follow).map_err(|error| {
            OutDirError::Resolve {
                path: config.cache_dir.clone(),
                source: error.into(),
            }
        })?;
        Ok(Protected { cwd, home, cache })
    }

    /// What `path` (canonical) is, when it is protected.
    fn what(&self, path: &Path) -> Option<String> {
        if path.parent().is_none() {
            return Some("the root of the file system".into());
        }
        if let Some(home) = &self.home {
            if path == home {
                return Some("your home directory ($HOME)".into());
            }
            if home.starts_with(path) {
                return Some(format!(
                    "a directory containing your home directory {}",
                    home.display()
                ));
            }
        }
        if path == self.cwd {
            return Some("the current directory".into());
        }
        if self.cwd.starts_with(path) {
            return Some(format!(
                "a directory containing the current directory {}",
                self.cwd.display()
            ));
        }
        if path == self.cache {
            return Some("the imgforge cache".into());
        }
        if path.starts_with(&self.cache) {
            return Some(format!(
                "inside the imgforge cache {}",
                self.cache.display()
            ));
        }
        if self.cache.starts_with(path) {
            return Some(format!(
                "a directory containing the imgforge cache {}",
                self.cache.display()
            ));
        }
        None
    }
}

/// Resolve `requested` to an absolute, canonical path and check that a prepared tree may
/// replace it (see the module documentation). Nothing is created, moved or removed.
pub fn check(requested: &Path, config: &Config, force: bool) -> Result<PathBuf, OutDirError> {
    let protected = Protected::of(config)?;
    let path = match canonical(requested, &protected.cwd, Last::Refuse) {
        Ok(path) => path,
        Err(Resolved::Symlink(path)) => return Err(OutDirError::Symlink { path }),
        Err(Resolved::Io(source)) => {
            return Err(OutDirError::Resolve {
                path: requested.to_path_buf(),
                source,
            });
        }
    };
    recheck(&path, config, force)?;
    Ok(path)
}

/// Check an already resolved output path again, right before it is replaced: the directory
/// may have changed while the tree was being prepared.
pub fn recheck(path: &Path, config: &Config, force: bool) -> Result<(), OutDirError> {
    let protected = Protected::of(config)?;
    if let Some(what) = protected.what(path) {
        return Err(OutDirError::Protected {
            path: path.to_path_buf(),
            what,
        });
    }
    let metadata = match fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(OutDirError::Resolve {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    if metadata.file_type().is_symlink() {
        return Err(OutDirError::Symlink {
            path: path.to_path_buf(),
        });
    }
    if !metadata.is_dir() {
        return Err(OutDirError::NotADirectory {
            path: path.to_path_buf(),
        });
    }
    if has_marker(path) || force {
        return Ok(());
    }
    let empty = fs::read_dir(path)
        .map_err(|source| OutDirError::Resolve {
            path: path.to_path_buf(),
            source,
        })?
        .next()
        .is_none();
    if empty {
        Ok(())
    } else {
        Err(OutDirError::Foreign {
            path: path.to_path_buf(),
        })
    }
}

/// Whether `dir` carries imgforge's marker: a regular file whose first line names it.
pub fn has_marker(dir: &Path) -> bool {
    let path = dir.join(MARKER);
    if !fs::symlink_metadata(&path).is_ok_and(|metadata| metadata.is_file()) {
        return false;
    }
    let Ok(file) = fs::File::open(&path) else {
        return false;
    };
    let mut text = String::new();
    // The marker is two short lines; read no more than a marker could be.
    if file.take(4096).read_to_string(&mut text).is_err() {
        return false;
    }
    text.lines().next().is_some_and(|line| {
        line.strip_prefix(MARKER_MAGIC)
            .is_some_and(|version| version.parse::<u32>().is_ok())
    })
}

/// Write the marker into `tree` (a staged tree, not yet visible), with the fingerprint of the
/// inputs the tree was made from.
pub fn write_marker(tree: &Path, fingerprint: &str) -> io::Result<()> {
    fs::write(
        tree.join(MARKER),
        format!("{MARKER_MAGIC}{MARKER_FORMAT}\nfingerprint {fingerprint}\n"),
    )
}

/// Why a path could not be made canonical.
enum Resolved {
    /// Its last component is a symbolic link.
    Symlink(PathBuf),
    /// Reading the file system failed.
    Io(io::Error),
}

impl From<io::Error> for Resolved {
    fn from(error: io::Error) -> Self {
        Resolved::Io(error)
    }
}

impl From<Resolved> for io::Error {
    fn from(resolved: Resolved) -> Self {
        match resolved {
            Resolved::Io(error) => error,
            Resolved::Symlink(path) => {
                io::Error::other(format!("{} is a symbolic link", path.display()))
            }
        }
    }
}

/// What [`canonical`] does with a symbolic link as the last component.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Last {
    /// Report it (an output directory).
    Refuse,
    /// Follow it (the cache, `$HOME`).
    Follow,
}

/// `path` made absolute against `cwd` (canonical), with every existing component's links
/// resolved and `.`/`..` applied to the real directories. Components that do not exist yet are
/// kept as named.
fn canonical(path: &Path, cwd: &Path, last: Last) -> Result<PathBuf, Resolved> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let last_name = absolute
        .components()
        .enumerate()
        .filter(|(_, component)| matches!(component, Component::Normal(_)))
        .map(|(index, _)| index)
        .last();
    let is_last = |index: usize| {
        Some(index) == last_name
            && absolute
                .components()
                .skip(index + 1)
                .all(|component| component == Component::CurDir)
    };
    let mut resolved = PathBuf::from("/");
    for (index, component) in absolute.components().enumerate() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::CurDir => {}
            // `resolved` holds no links, so its parent is the real parent.
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => {
                resolved.push(name);
                match fs::symlink_metadata(&resolved) {
                    Ok(metadata) if metadata.file_type().is_symlink() => {
                        if last == Last::Refuse && is_last(index) {
                            return Err(Resolved::Symlink(resolved));
                        }
                        resolved = fs::canonicalize(&resolved)?;
                    }
                    Ok(_) => {}
                    Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_applies_parent_components_to_real_directories() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = fs::canonicalize(dir.path()).expect("canonical temp dir");
        let work = root.join("work");
        fs::create_dir_all(work.join("real")).expect("dirs");
        std::os::unix::fs::symlink(work.join("real"), work.join("link")).expect("link");
        let ok = |path: &str| match canonical(Path::new(path), &work, Last::Refuse) {
            Ok(path) => path,
            Err(error) => panic!("{path}: {}", io::Error::from(error)),
        };
        assert_eq!(ok("../work"), work);
        assert_eq!(ok("."), work);
        assert_eq!(ok("new/../../work/./"), work);
        assert_eq!(ok("link/.."), work);
        assert_eq!(ok("link/out"), work.join("real/out"));
        assert_eq!(ok("missing/deeper"), work.join("missing/deeper"));
        assert!(matches!(
            canonical(Path::new("link"), &work, Last::Refuse),
            Err(Resolved::Symlink(path)) if path == work.join("link")
        ));
        assert!(matches!(
            canonical(Path::new("link/."), &work, Last::Refuse),
            Err(Resolved::Symlink(_))
        ));
        assert_eq!(
            canonical(Path::new("link"), &work, Last::Follow).ok(),
            Some(work.join("real"))
        );
    }

    #[test]
    fn the_marker_is_recognised_only_as_a_regular_file_naming_itself() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(!has_marker(dir.path()));
        write_marker(dir.path(), "abc").expect("write");
        assert!(has_marker(dir.path()));
        fs::write(dir.path().join(MARKER), "something else\n").expect("overwrite");
        assert!(!has_marker(dir.path()));
        fs::remove_file(dir.path().join(MARKER)).expect("remove");
        let elsewhere = tempfile::tempdir().expect("temp dir");
        write_marker(elsewhere.path(), "abc").expect("write");
        std::os::unix::fs::symlink(elsewhere.path().join(MARKER), dir.path().join(MARKER))
            .expect("link");
        assert!(!has_marker(dir.path()));
    }
}
