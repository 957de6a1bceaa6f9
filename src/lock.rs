//! `imgforge.lock`: everything a build resolved, in a stable, reviewable TOML file that a
//! team commits next to `imgforge.toml` — versions, every artifact's URL and SHA-512, each
//! base image's digest, and the digests of the patch set and Dockerfiles.
//!
//! `imgforge build --locked` resolves again and refuses to build when anything differs,
//! listing each difference.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit;

/// The lock format this imgforge writes and reads.
pub const LOCK_VERSION: u32 = 1;

/// The lock file looked for next to the configuration.
pub const LOCK_FILE: &str = "imgforge.lock";

/// Where the lock lives: next to the configuration file, else in the working directory.
pub fn lock_path(config_file: Option<&Path>) -> PathBuf {
    config_file
        .and_then(Path::parent)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from(LOCK_FILE), |dir| dir.join(LOCK_FILE))
}

/// Why a lock file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// The lock cannot be rendered as TOML (an internal error: nothing is written).
    #[error("cannot render the lock as TOML: {message}")]
    Render {
        /// What the TOML writer said.
        message: String,
    },
    /// The file cannot be read.
    #[error("cannot read the lock file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a valid lock (edited by hand into an invalid state, say).
    #[error(
        "invalid lock file {path} at line {line}, column {column}: {message}; run `imgforge lock` to write it again"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// Written by a newer imgforge.
    #[error(
        "{path} has lock format {found}, written by a newer imgforge ({writer}); this imgforge \
         ({ours}) reads format {LOCK_VERSION}: upgrade imgforge"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u32,
        /// The imgforge version that wrote it.
        writer: String,
        /// This imgforge's version.
        ours: &'static str,
    },
    /// Writing the file failed.
    #[error("cannot write the lock file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--locked` and the resolution differ.
    #[error(
        "the build would differ from {path}:{}\nrun `imgforge lock` to accept the changes",
        list(differences)
    )]
    Differs {
        /// The lock file.
        path: PathBuf,
        /// Each difference, as `key: locked → now`.
        differences: Vec<String>,
    },
}

impl LockError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            LockError::Write { .. } => exit::STORAGE,
            LockError::Render { .. } => exit::INTERNAL,
            _ => exit::CONFIG,
        }
    }
}

fn list(items: &[String]) -> String {
    items.iter().map(|item| format!("\n  - {item}")).collect()
}

/// The versions a build resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedVersions {
    /// Spark.
    pub spark: String,
    /// The Spark package (`hadoop3.2`).
    pub spark_package: String,
    /// Scala binary version.
    pub scala: String,
    /// The Hadoop Spark bundles.
    pub hadoop: String,
    /// hadoop-aws.
    pub hadoop_aws: String,
    /// The AWS SDK bundle.
    pub aws_sdk: String,
    /// The Hive standalone metastore.
    pub hive_metastore: String,
    /// The PostgreSQL JDBC driver.
    pub postgresql_jdbc: String,
}

/// One verified artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedArtifact {
    /// What it is for (`spark`, `hadoop-aws`, `aws-sdk`, …).
    pub role: String,
    /// The file name.
    pub file: String,
    /// The URL it was downloaded from.
    pub url: String,
    /// Its SHA-512.
    pub sha512: String,
}

/// The lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// The lock format.
    pub lock_version: u32,
    /// The imgforge that wrote it.
    pub imgforge: String,
    /// Versions.
    pub versions: LockedVersions,
    /// Base image reference → image digest (the engine's image ID).
    pub base_images: BTreeMap<String, String>,
    /// Digests of imgforge's own inputs: patch set, Dockerfiles, scripts.
    pub inputs: BTreeMap<String, String>,
    /// Every artifact, sorted by role then file.
    #[serde(rename = "artifact")]
    pub artifacts: Vec<LockedArtifact>,
}

impl Lock {
    /// Render the lock as its file text: a header, then TOML with sorted contents.
    pub fn to_text(&self) -> Result<String, LockError> {
        let mut lock = self.clone();
        lock.artifacts
            .sort_by(|a, b| (&a.role, &a.file).cmp(&(&b.role, &b.file)));
        // Never a lock holding only its header: a value TOML cannot hold is an error.
        let body = toml::to_string_pretty(&lock).map_err(|error| LockError::Render {
            message: error.to_string(),
        })?;
        Ok(format!(
            "# imgforge.lock — written by `imgforge lock`. Commit it next to imgforge.toml;\n\
             # `imgforge build --locked` refuses to build anything that differs from it.\n\n{body}"
        ))
    }

    /// Parse lock file text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Lock, LockError> {
        // The format version is read first, so a newer lock is reported as such rather than
        // as a list of unknown keys.
        #[derive(Deserialize)]
        struct Header {
            lock_version: Option<u32>,
            imgforge: Option<String>,
        }
        let invalid = |error: toml::de::Error| {
            let offset = error.span().map_or(0, |span| span.start);
            let before = &text[..offset.min(text.len())];
            LockError::Invalid {
                path: path.to_path_buf(),
                line: before.matches('\n').count() + 1,
                column: before
                    .rsplit('\n')
                    .next()
                    .map_or(0, |tail| tail.chars().count())
                    + 1,
                message: error.message().trim_end().to_string(),
            }
        };
        let header: Header = toml::from_str(text).map_err(invalid)?;
        if let Some(found) = header.lock_version
            && found > LOCK_VERSION
        {
            return Err(LockError::TooNew {
                path: path.to_path_buf(),
                found,
                writer: header.imgforge.unwrap_or_else(|| "unknown".into()),
                ours: env!("CARGO_PKG_VERSION"),
            });
        }
        toml::from_str(text).map_err(invalid)
    }

    /// Read the lock at `path`.
    pub fn read(path: &Path) -> Result<Lock, LockError> {
        let text = std::fs::read_to_string(path).map_err(|source| LockError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Lock::parse(&text, path)
    }

    /// Write the lock to `path` through a temp file and a rename.
    pub fn write(&self, path: &Path) -> Result<(), LockError> {
        let text = self.to_text()?;
        crate::persist::write(path, text.as_bytes()).map_err(|error| LockError::Write {
            path: error.path,
            source: error.source,
        })
    }

    /// Every difference between `self` (locked) and `now`, as `key: locked → now` lines.
    pub fn differences(&self, now: &Lock) -> Vec<String> {
        let mut differences = Vec::new();
        let mut compare = |key: String, locked: Option<&str>, current: Option<&str>| {
            if locked != current {
                differences.push(format!("{key}: {} → {}", Shown(locked), Shown(current)));
            }
        };
        let versions = |lock: &Lock| -> BTreeMap<&'static str, String> {
            let v = &lock.versions;
            BTreeMap::from([
                ("spark", v.spark.clone()),
                ("spark_package", v.spark_package.clone()),
                ("scala", v.scala.clone()),
                ("hadoop", v.hadoop.clone()),
                ("hadoop_aws", v.hadoop_aws.clone()),
                ("aws_sdk", v.aws_sdk.clone()),
                ("hive_metastore", v.hive_metastore.clone()),
                ("postgresql_jdbc", v.postgresql_jdbc.clone()),
            ])
        };
        let (locked_versions, current_versions) = (versions(self), versions(now));
        for (key, locked) in &locked_versions {
            compare(
                format!("versions.{key}"),
                Some(locked),
                current_versions.get(key).map(String::as_str),
            );
        }
        for (section, locked, current) in [
            ("base_images", &self.base_images, &now.base_images),
            ("inputs", &self.inputs, &now.inputs),
        ] {
            for key in locked
                .keys()
                .chain(current.keys().filter(|key| !locked.contains_key(*key)))
            {
                compare(
                    format!("{section}.{key}"),
                    locked.get(key).map(String::as_str),
                    current.get(key).map(String::as_str),
                );
            }
        }
        let artifacts = |lock: &Lock| -> BTreeMap<String, String> {
            lock.artifacts
                .iter()
                .map(|artifact| (artifact.file.clone(), artifact.sha512.clone()))
                .collect()
        };
        let (locked_artifacts, current_artifacts) = (artifacts(self), artifacts(now));
        for file in locked_artifacts.keys().chain(
            current_artifacts
                .keys()
                .filter(|file| !locked_artifacts.contains_key(*file)),
        ) {
            compare(
                format!("artifact {file} sha512"),
                locked_artifacts.get(file).map(String::as_str),
                current_artifacts.get(file).map(String::as_str),
            );
        }
        differences
    }
}

/// A value in a difference line; absence shown as such.
struct Shown<'a>(Option<&'a str>);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) if value.len() > 24 => write!(f, "{}…", &value[..24]),
            Some(value) => f.write_str(value),
            None => f.write_str("(absent)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Lock {
        Lock {
            lock_version: LOCK_VERSION,
            imgforge: "0.1.0".into(),
            versions: LockedVersions {
                spark: "3.1.1".into(),
                spark_package: "hadoop3.2".into(),
                scala: "2.12".into(),
                hadoop: "3.2.0".into(),
                hadoop_aws: "3.2.0".into(),
                aws_sdk: "1.11.375".into(),
                hive_metastore: "3.0.0".into(),
                postgresql_jdbc: "42.2.19".into(),
            },
            base_images: BTreeMap::from([("eclipse-temurin:8-jre".into(), "sha256:aa".into())]),
            inputs: BTreeMap::from([("patches".into(), "bb".into())]),
            artifacts: vec![LockedArtifact {
                role: "spark".into(),
                file: "spark-3.1.1-bin-hadoop3.2.tgz".into(),
                url: "https://archive.apache.org/dist/spark/spark-3.1.1/spark-3.1.1-bin-hadoop3.2.tgz".into(),
                sha512: "cc".into(),
            }],
        }
    }

    #[test]
    fn text_round_trips_and_is_stable() {
        let lock = sample();
        let text = lock.to_text().expect("render");
        assert_eq!(
            Lock::parse(&text, Path::new("imgforge.lock")).expect("parses"),
            lock
        );
        assert_eq!(
            text,
            Lock::parse(&text, Path::new("x"))
                .expect("parses")
                .to_text()
                .expect("render")
        );
        assert!(text.contains("[[artifact]]"), "{text}");
    }

    #[test]
    fn differences_name_each_change() {
        let locked = sample();
        let mut now = sample();
        now.versions.spark = "3.1.2".into();
        now.base_images
            .insert("eclipse-temurin:8-jre".into(), "sha256:dd".into());
        now.artifacts[0].sha512 = "ee".into();
        let differences = locked.differences(&now);
        assert_eq!(differences.len(), 3, "{differences:?}");
        assert!(
            differences
                .iter()
                .any(|line| line == "versions.spark: 3.1.1 → 3.1.2"),
            "{differences:?}"
        );
        assert!(locked.differences(&sample()).is_empty());
    }

    #[test]
    fn a_hand_broken_lock_names_line_and_column() {
        let text = sample()
            .to_text()
            .expect("render")
            .replace("lock_version = 1", "lock_version = \"one\"");
        let error = Lock::parse(&text, Path::new("imgforge.lock")).expect_err("invalid");
        assert!(matches!(error, LockError::Invalid { .. }), "{error}");
        assert!(
            error.to_string().contains("imgforge.lock at line"),
            "{error}"
        );
    }

    #[test]
    fn a_lock_from_a_newer_imgforge_says_so() {
        let text = sample()
            .to_text()
            .expect("render")
            .replace("lock_version = 1", "lock_version = 7")
            .replace("[versions]", "[versions]\nfuture = 1");
        let error = Lock::parse(&text, Path::new("imgforge.lock")).expect_err("too new");
        assert!(
            matches!(error, LockError::TooNew { found: 7, .. }),
            "{error}"
        );
    }
}
