//! `imgforge init`: the commented starter `imgforge.toml`, written once.
//!
//! The text is data (`starter.toml`, embedded): every section of the configuration reference
//! with each default shown as a commented line, and the registry left for the user to fill
//! in. It loads as written, so `imgforge config show` works on it at once.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::exit;
use crate::persist::{self, PersistError};

/// The starter configuration `imgforge init` writes.
pub const STARTER_TOML: &str = include_str!("starter.toml");

/// Why `imgforge init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum StarterError {
    /// The file is there already; `init` never replaces a configuration.
    #[error(
        "{} already exists; imgforge init never overwrites a configuration (edit it, or move it away first)",
        path.display()
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// The file could not be written.
    #[error(transparent)]
    Write(PersistError),
}

impl StarterError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            StarterError::Exists { .. } => exit::CONFIG,
            StarterError::Write(_) => exit::STORAGE,
        }
    }
}

/// Write the starter configuration to `path`, whole or not at all, unless a file (or anything
/// else) is already there.
pub fn write(path: &Path) -> Result<(), StarterError> {
    let exists = || StarterError::Exists {
        path: path.to_path_buf(),
    };
    // Checked first for a clear message; the no-clobber rename below closes the race.
    if path.symlink_metadata().is_ok() {
        return Err(exists());
    }
    let mut temp = persist::temp_for(path).map_err(StarterError::Write)?;
    temp.write_all(STARTER_TOML.as_bytes()).map_err(|source| {
        StarterError::Write(PersistError {
            path: path.to_path_buf(),
            source,
        })
    })?;
    match persist::persist_new(temp, path) {
        Ok(_) => Ok(()),
        Err(error) if error.source.kind() == io::ErrorKind::AlreadyExists => Err(exists()),
        Err(error) => Err(StarterError::Write(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_is_written_once_and_never_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("imgforge.toml");
        write(&path).expect("first write");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), STARTER_TOML);
        std::fs::write(&path, "# mine\n").expect("edit");
        let error = write(&path).expect_err("second write");
        assert!(matches!(error, StarterError::Exists { .. }), "{error:?}");
        assert_eq!(error.exit_code(), exit::CONFIG);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "# mine\n");
    }

    #[test]
    fn the_starter_is_valid_toml_with_the_registry_left_to_fill_in() {
        let table: toml::Table = toml::from_str(STARTER_TOML).expect("valid TOML");
        let images = table["images"].as_table().expect("[images]");
        assert!(
            !images.contains_key("registry"),
            "the registry is the user's to set"
        );
        assert!(STARTER_TOML.contains("# registry = "));
    }
}
