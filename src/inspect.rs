//! Facts read from inside a Spark distribution — never guessed from a tarball's name.
//!
//! The bundled Hadoop version comes from the jar names in `jars/`: the shaded
//! `hadoop-client-api-<v>.jar` (Spark 3.2 and later) or `hadoop-common-<v>.jar` (older).
//! The same rules apply to a tarball's listing and to an unpacked tree.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

/// Why a fact could not be established.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// The archive cannot be read.
    #[error("cannot read the archive {path}")]
    Archive {
        /// The archive.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No Hadoop jars were found.
    #[error(
        "no Hadoop jars (hadoop-client-api-*.jar or hadoop-common-*.jar) in jars/ of {source_name}: \
         is it a 'without-hadoop' build? Use a Spark package that bundles Hadoop, or set [hadoop] version"
    )]
    NoHadoop {
        /// The archive or tree inspected.
        source_name: String,
    },
    /// The Hadoop jars disagree about the version.
    #[error("conflicting Hadoop versions in jars/ of {source_name}: {}", versions.join(", "))]
    ConflictingHadoop {
        /// The archive or tree inspected.
        source_name: String,
        /// Every version found.
        versions: Vec<String>,
    },
}

/// The Hadoop version bundled in a Spark distribution, with the jar that told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HadoopVersion {
    /// The version, e.g. `3.2.0`.
    pub version: String,
    /// The jar it was read from, e.g. `jars/hadoop-common-3.2.0.jar`.
    pub evidence: String,
}

/// The Hadoop version a version-bearing jar name reveals, if it is one that counts.
fn hadoop_version_of(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(".jar")?;
    ["hadoop-client-api-", "hadoop-common-"]
        .iter()
        .find_map(|prefix| {
            let version = stem.strip_prefix(prefix)?;
            // `hadoop-common-3.2.0-tests.jar` and similar classifiers do not count.
            version.chars().next().filter(char::is_ascii_digit)?;
            (!version.contains("-tests")).then_some(version)
        })
}

/// Find the Hadoop version among member paths relative to the distribution root
/// (`jars/hadoop-common-3.2.0.jar`). `source_name` names what was inspected in errors.
pub fn hadoop_version<'a>(
    paths: impl IntoIterator<Item = &'a str>,
    source_name: &str,
) -> Result<HadoopVersion, InspectError> {
    let mut versions = BTreeSet::new();
    let mut evidence = None;
    for path in paths {
        let Some(file_name) = path.strip_prefix("jars/") else {
            continue;
        };
        if file_name.contains('/') {
            continue;
        }
        if let Some(version) = hadoop_version_of(file_name) {
            versions.insert(version.to_string());
            evidence.get_or_insert_with(|| path.to_string());
        }
    }
    match (versions.len(), evidence) {
        (1, Some(evidence)) => Ok(HadoopVersion {
            version: versions.into_iter().next().unwrap_or_default(),
            evidence,
        }),
        (0, _) | (_, None) => Err(InspectError::NoHadoop {
            source_name: source_name.to_string(),
        }),
        _ => Err(InspectError::ConflictingHadoop {
            source_name: source_name.to_string(),
            versions: versions.into_iter().collect(),
        }),
    }
}

/// Member paths of a `.tgz`, relative to its single top-level directory, read by streaming
/// through the archive without unpacking anything.
pub fn tarball_paths(archive: &Path) -> Result<Vec<String>, InspectError> {
    let error = |source| InspectError::Archive {
        path: archive.to_path_buf(),
        source,
    };
    let file = File::open(archive).map_err(error)?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::with_capacity(1 << 18, file)));
    let mut paths = Vec::new();
    for entry in tar.entries().map_err(error)? {
        let entry = entry.map_err(error)?;
        let path = entry.path().map_err(error)?;
        // Skip `./` and the single top-level directory.
        let mut components = path
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir));
        components.next();
        let relative = components
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        if !relative.is_empty() {
            paths.push(relative);
        }
    }
    Ok(paths)
}

/// The Hadoop version bundled in a Spark tarball.
pub fn tarball_hadoop_version(archive: &Path) -> Result<HadoopVersion, InspectError> {
    let paths = tarball_paths(archive)?;
    let name = archive.file_name().map_or_else(
        || archive.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    hadoop_version(paths.iter().map(String::as_str), &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_jar_gives_the_version_and_other_hadoop_jars_are_ignored() {
        let paths = [
            "jars/hadoop-annotations-3.2.0.jar",
            "jars/hadoop-shaded-guava-1.1.1.jar",
            "jars/hadoop-common-3.2.0.jar",
            "jars/spark-core_2.12-3.1.1.jar",
        ];
        let found = hadoop_version(paths, "t").expect("found");
        assert_eq!(found.version, "3.2.0");
        assert_eq!(found.evidence, "jars/hadoop-common-3.2.0.jar");
    }

    #[test]
    fn shaded_client_api_counts() {
        let paths = [
            "jars/hadoop-client-api-3.3.4.jar",
            "jars/hadoop-client-runtime-3.3.4.jar",
        ];
        assert_eq!(hadoop_version(paths, "t").expect("found").version, "3.3.4");
    }

    #[test]
    fn without_hadoop_is_an_error() {
        let error =
            hadoop_version(["jars/spark-core_2.12-3.1.1.jar"], "spark.tgz").expect_err("none");
        assert!(error.to_string().contains("without-hadoop"), "{error}");
    }

    #[test]
    fn conflicting_versions_are_an_error() {
        let paths = [
            "jars/hadoop-common-3.2.0.jar",
            "jars/hadoop-client-api-3.3.1.jar",
        ];
        let error = hadoop_version(paths, "spark.tgz").expect_err("conflict");
        assert!(error.to_string().contains("3.2.0, 3.3.1"), "{error}");
    }

    #[test]
    fn jars_outside_jars_dir_do_not_count() {
        let error =
            hadoop_version(["examples/jars/hadoop-common-3.2.0.jar"], "t").expect_err("none");
        assert!(matches!(error, InspectError::NoHadoop { .. }));
    }
}
