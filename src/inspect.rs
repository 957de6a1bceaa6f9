//! Facts read from inside a Spark distribution — never guessed from a tarball's name.
//!
//! The bundled Hadoop version comes from the jar names in `jars/`: the shaded
//! `hadoop-client-api-<v>.jar` (Spark 3.2 and later) or `hadoop-common-<v>.jar` (older).
//! The same rules apply to a tarball's listing and to an unpacked tree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::cache::{Cache, CachedArtifact};
use crate::exit;

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
        source: Box<crate::extract::ExtractError>,
    },
    /// An unpacked tree cannot be listed.
    #[error("cannot list {path}")]
    Tree {
        /// The folder.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The distribution has no Kubernetes Dockerfile.
    #[error(
        "{archive} has no {SPARK_DOCKERFILE}: imgforge builds the Spark image from the distribution's own Dockerfile"
    )]
    NoDockerfile {
        /// The tarball.
        archive: String,
    },
    /// No `jars/spark-core_*.jar`: not a Spark binary distribution.
    #[error(
        "{source_name} is not a Spark binary distribution: jars/spark-core_<scala>-<version>.jar is missing"
    )]
    NotSpark {
        /// The archive or tree inspected.
        source_name: String,
    },
    /// Neither log4j template nor log4j 1 jar.
    #[error(
        "cannot tell which log4j {source_name} uses: neither conf/log4j2.properties.template, \
         conf/log4j.properties.template nor jars/log4j-1.2.*.jar is present"
    )]
    NoLog4j {
        /// The archive or tree inspected.
        source_name: String,
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

impl InspectError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            InspectError::Archive { .. } => exit::INTEGRITY,
            InspectError::Tree { .. } => exit::STORAGE,
            _ => exit::CONFIG,
        }
    }
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

/// The logging framework a distribution configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Log4j {
    /// log4j 1.x (`conf/log4j.properties.template`), Spark before 3.3.
    V1,
    /// log4j 2 (`conf/log4j2.properties.template`), Spark 3.3 and later, 4.x included.
    V2,
}

impl Log4j {
    /// The configuration file name written into `conf/` and copied into the image.
    pub fn config_file(self) -> &'static str {
        match self {
            Log4j::V1 => "log4j.properties",
            Log4j::V2 => "log4j2.properties",
        }
    }

    /// The distribution's template for it, relative to the distribution root.
    pub fn template(self) -> &'static str {
        match self {
            Log4j::V1 => "conf/log4j.properties.template",
            Log4j::V2 => "conf/log4j2.properties.template",
        }
    }

    /// The JVM option that points the image's JVMs at the file under `/opt/spark/`.
    pub fn java_option(self) -> String {
        match self {
            Log4j::V1 => format!(
                "-Dlog4j.configuration=file:///opt/spark/{}",
                self.config_file()
            ),
            Log4j::V2 => format!(
                "-Dlog4j.configurationFile=file:///opt/spark/{}",
                self.config_file()
            ),
        }
    }
}

/// What a Spark distribution is, read from its file names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistributionFacts {
    /// Spark version, from `jars/spark-core_<scala>-<version>.jar`.
    pub spark_version: String,
    /// Scala binary version, from the same jar.
    pub scala_version: String,
    /// The bundled Hadoop.
    pub hadoop: HadoopVersion,
    /// The logging framework.
    pub log4j: Log4j,
}

/// Read the facts from member paths relative to the distribution root.
pub fn distribution_facts(
    paths: &[String],
    source_name: &str,
) -> Result<DistributionFacts, InspectError> {
    let (scala_version, spark_version) = paths
        .iter()
        .filter_map(|path| path.strip_prefix("jars/spark-core_")?.strip_suffix(".jar"))
        .find_map(|rest| {
            let (scala, version) = rest.split_once('-')?;
            Some((scala.to_string(), version.to_string()))
        })
        .ok_or_else(|| InspectError::NotSpark {
            source_name: source_name.to_string(),
        })?;
    let hadoop = hadoop_version(paths.iter().map(String::as_str), source_name)?;
    let has = |path: &str| paths.iter().any(|candidate| candidate == path);
    let log4j_1_jar = paths.iter().any(|path| {
        path.strip_prefix("jars/log4j-1.2.")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
    });
    let log4j = if has(Log4j::V2.template()) {
        Log4j::V2
    } else if has(Log4j::V1.template()) || log4j_1_jar {
        Log4j::V1
    } else {
        return Err(InspectError::NoLog4j {
            source_name: source_name.to_string(),
        });
    };
    Ok(DistributionFacts {
        spark_version,
        scala_version,
        hadoop,
        log4j,
    })
}

/// Name of the derived listing in the cache; the version is bumped when what it holds changes.
const SPARK_MEMBERS: &str = "spark-members-v1.json";

/// The member paths of a Spark tarball that facts are read from (`jars/…` and `conf/…`,
/// relative to the distribution root): from the cache's derived data when present, else by
/// streaming through the archive once without unpacking it, and remembered for next time.
pub fn spark_members(
    cache: &Cache,
    artifact: &CachedArtifact,
    limits: crate::extract::Limits,
) -> Result<Vec<String>, InspectError> {
    cached_members(cache, artifact, limits, SPARK_MEMBERS, |member| {
        member.starts_with("jars/") || member.starts_with("conf/")
    })
}

/// The member paths of `artifact` that `keep` selects (relative to the archive's top
/// directory), remembered in the cache under `derived_name`: an archive is listed once.
pub fn cached_members(
    cache: &Cache,
    artifact: &CachedArtifact,
    limits: crate::extract::Limits,
    derived_name: &str,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<String>, InspectError> {
    let sha512 = &artifact.entry.sha512;
    if let Some(members) = cache
        .derived(sha512, derived_name)
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
    {
        return Ok(members);
    }
    let members: Vec<String> =
        crate::extract::list_members(crate::extract::Archive::cached(artifact, limits))
            .map_err(|source| InspectError::Archive {
                path: artifact.path.clone(),
                source: Box::new(source),
            })?
            .into_iter()
            .filter(|member| keep(member))
            .collect();
    // Remembering is an optimisation: a cache that cannot store it still gives the answer.
    if let Ok(bytes) = serde_json::to_vec(&members)
        && let Err(error) = cache.store_derived(sha512, derived_name, &bytes)
    {
        tracing::debug!(
            "cannot remember the listing of {}: {error}",
            artifact.path.display()
        );
    }
    Ok(members)
}

/// Where a Spark distribution keeps the Dockerfile of its Kubernetes image.
pub const SPARK_DOCKERFILE: &str = "kubernetes/dockerfiles/spark/Dockerfile";
/// Name of the derived copy of that Dockerfile in the cache.
const SPARK_DOCKERFILE_COPY: &str = "spark-dockerfile-v1";

/// The distribution's own (unpatched) Dockerfile text, read once from the tarball and then
/// remembered in the cache under the tarball's SHA-512.
pub fn spark_dockerfile(
    cache: &Cache,
    artifact: &CachedArtifact,
    limits: crate::extract::Limits,
) -> Result<String, InspectError> {
    let sha512 = &artifact.entry.sha512;
    if let Some(text) = cache
        .derived(sha512, SPARK_DOCKERFILE_COPY)
        .and_then(|bytes| String::from_utf8(bytes).ok())
    {
        return Ok(text);
    }
    let archive_error = |source| InspectError::Archive {
        path: artifact.path.clone(),
        source: Box::new(source),
    };
    let scratch = tempfile::tempdir().map_err(|source| InspectError::Tree {
        path: std::env::temp_dir(),
        source,
    })?;
    let archive = crate::extract::Archive::cached(artifact, limits);
    let written = crate::extract::extract_members(archive, scratch.path(), |member| {
        (member == Path::new(SPARK_DOCKERFILE)).then(|| "Dockerfile".to_string())
    })
    .map_err(archive_error)?;
    let Some(path) = written.first() else {
        return Err(InspectError::NoDockerfile {
            archive: artifact.entry.file_name.clone(),
        });
    };
    let text = std::fs::read_to_string(path).map_err(|source| InspectError::Tree {
        path: path.clone(),
        source,
    })?;
    if let Err(error) = cache.store_derived(sha512, SPARK_DOCKERFILE_COPY, text.as_bytes()) {
        tracing::debug!(
            "cannot remember the Dockerfile of {}: {error}",
            artifact.path.display()
        );
    }
    Ok(text)
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

    fn owned(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|path| path.to_string()).collect()
    }

    #[test]
    fn facts_of_a_3_1_layout() {
        let paths = owned(&[
            "conf/log4j.properties.template",
            "jars/hadoop-common-3.2.0.jar",
            "jars/log4j-1.2.17.jar",
            "jars/spark-core_2.12-3.1.1.jar",
        ]);
        let facts = distribution_facts(&paths, "t").expect("facts");
        assert_eq!(facts.spark_version, "3.1.1");
        assert_eq!(facts.scala_version, "2.12");
        assert_eq!(facts.log4j, Log4j::V1);
        assert_eq!(
            facts.log4j.java_option(),
            "-Dlog4j.configuration=file:///opt/spark/log4j.properties"
        );
    }

    #[test]
    fn log4j2_template_wins_over_the_1_2_bridge_jar() {
        let paths = owned(&[
            "conf/log4j2.properties.template",
            "jars/hadoop-client-api-3.3.4.jar",
            "jars/log4j-1.2-api-2.20.0.jar",
            "jars/spark-core_2.13-4.0.0.jar",
        ]);
        let facts = distribution_facts(&paths, "t").expect("facts");
        assert_eq!(
            (facts.spark_version.as_str(), facts.scala_version.as_str()),
            ("4.0.0", "2.13")
        );
        assert_eq!(facts.log4j, Log4j::V2);
        assert_eq!(
            facts.log4j.java_option(),
            "-Dlog4j.configurationFile=file:///opt/spark/log4j2.properties"
        );
    }

    #[test]
    fn not_spark_and_no_log4j_are_errors() {
        let error = distribution_facts(&owned(&["jars/hadoop-common-3.2.0.jar"]), "x.tgz")
            .expect_err("not spark");
        assert!(matches!(error, InspectError::NotSpark { .. }), "{error}");
        let paths = owned(&[
            "jars/hadoop-common-3.2.0.jar",
            "jars/spark-core_2.12-3.1.1.jar",
        ]);
        let error = distribution_facts(&paths, "x.tgz").expect_err("no log4j");
        assert!(matches!(error, InspectError::NoLog4j { .. }), "{error}");
    }

    #[test]
    fn the_spark_listing_is_remembered_by_digest() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let cache = Cache::open(&dir.path().join("cache")).expect("cache");
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for path in ["spark/jars/hadoop-common-3.2.0.jar", "spark/python/x.py"] {
            let mut header = tar::Header::new_gnu();
            header.set_size(1);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, &b"x"[..])
                .expect("append");
        }
        let bytes = builder.into_inner().expect("tar").finish().expect("gzip");
        let mut temp = cache.temp_file().expect("temp");
        temp.write_all(&bytes).expect("write");
        let sha512 = hex::encode(<sha2::Sha512 as sha2::Digest>::digest(&bytes));
        let entry = crate::cache::IndexEntry {
            key: "apache/spark.tgz".into(),
            file_name: "spark.tgz".into(),
            sha512,
            sha256: None,
            size: bytes.len() as u64,
            url: "http://127.0.0.1/spark.tgz".into(),
            verified_with: "sha512:x".into(),
            stored_at: 0,
        };
        let artifact = cache.commit(temp, entry).expect("commit");
        assert_eq!(
            spark_members(&cache, &artifact, crate::extract::Limits::DEFAULT).expect("listed"),
            ["jars/hadoop-common-3.2.0.jar"]
        );
        // The second answer comes from the cache: the archive is not read again.
        std::fs::write(&artifact.path, b"not a tarball any more").expect("overwrite");
        assert_eq!(
            spark_members(&cache, &artifact, crate::extract::Limits::DEFAULT).expect("remembered"),
            ["jars/hadoop-common-3.2.0.jar"]
        );
    }

    #[test]
    fn jars_outside_jars_dir_do_not_count() {
        let error =
            hadoop_version(["examples/jars/hadoop-common-3.2.0.jar"], "t").expect_err("none");
        assert!(matches!(error, InspectError::NoHadoop { .. }));
    }
}
