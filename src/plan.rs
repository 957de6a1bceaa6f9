//! What a build needs from the outside world: each release artifact, where it lives in a
//! mirror's layout, and how its integrity is established.
//!
//! Paths here are relative to a mirror's base URL, so the same artifact can come from any
//! mirror of the right kind and is cached once whichever mirror served it.

use std::fmt;

use crate::config::Config;
use crate::verify::Digest;

/// The kind of mirror an artifact is published on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Repository {
    /// The Apache dist tree (`dlcdn.apache.org`, `archive.apache.org/dist`, and their mirrors).
    Apache,
    /// A Maven 2 repository.
    Maven,
}

impl Repository {
    /// The checksum files looked for next to an artifact, strongest first.
    pub fn checksum_suffixes(self) -> &'static [&'static str] {
        match self {
            // Hadoop 3.2.0 and older releases publish only the multi-digest `.mds`.
            Repository::Apache => &[".sha512", ".sha256", ".mds"],
            // Maven Central always has `.sha1`; newer uploads add the SHA-2 files.
            Repository::Maven => &[".sha512", ".sha256", ".sha1"],
        }
    }

    /// A short lower-case name, used in cache keys and reports.
    pub fn name(self) -> &'static str {
        match self {
            Repository::Apache => "apache",
            Repository::Maven => "maven",
        }
    }
}

/// How an artifact's expected digest is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Read from the checksum file published next to the artifact.
    Published,
    /// Pinned in the configuration; wins over the published checksum.
    Pinned(Digest),
}

/// One artifact to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactSpec {
    /// What the artifact is for, e.g. `spark`, `hadoop-aws`; used in reports.
    pub role: &'static str,
    /// The file name, e.g. `spark-3.1.1-bin-hadoop3.2.tgz`.
    pub file_name: String,
    /// The kind of mirror that publishes it.
    pub repository: Repository,
    /// Path below a mirror's base URL.
    pub path: String,
    /// How its integrity is established.
    pub expected: Expected,
    /// The project's `KEYS` file below a mirror, for artifacts with a detached `.asc` signature.
    pub keys: Option<String>,
}

impl ArtifactSpec {
    /// The cache index key: mirror-independent, so a mirror switch is still a cache hit.
    pub fn cache_key(&self) -> String {
        format!("{}/{}", self.repository.name(), self.path)
    }

    fn apache(
        role: &'static str,
        keys: &str,
        dir: String,
        file_name: String,
        pin: Option<&Digest>,
    ) -> Self {
        ArtifactSpec {
            keys: Some(keys.to_string()),
            role,
            path: format!("{dir}/{file_name}"),
            file_name,
            repository: Repository::Apache,
            expected: pin.map_or(Expected::Published, |digest| Expected::Pinned(*digest)),
        }
    }

    /// A Maven artifact by coordinates and extension (`jar`, `pom`).
    pub fn maven(
        role: &'static str,
        group_id: &str,
        artifact_id: &str,
        version: &str,
        extension: &str,
    ) -> Self {
        let file_name = format!("{artifact_id}-{version}.{extension}");
        ArtifactSpec {
            role,
            path: format!(
                "{}/{artifact_id}/{version}/{file_name}",
                group_id.replace('.', "/")
            ),
            file_name,
            repository: Repository::Maven,
            expected: Expected::Published,
            keys: None,
        }
    }
}

impl fmt::Display for ArtifactSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name)
    }
}

/// The Spark binary distribution, `spark-{version}-bin-{package}.tgz`.
pub fn spark(config: &Config) -> ArtifactSpec {
    let version = &config.spark.version;
    ArtifactSpec::apache(
        "spark",
        "spark/KEYS",
        format!("spark/spark-{version}"),
        format!("spark-{version}-bin-{}.tgz", config.spark.package),
        config.spark.checksum.as_ref(),
    )
}

/// The Hadoop distribution of `version`.
pub fn hadoop(config: &Config, version: &str) -> ArtifactSpec {
    ArtifactSpec::apache(
        "hadoop",
        "hadoop/common/KEYS",
        format!("hadoop/common/hadoop-{version}"),
        format!("hadoop-{version}.tar.gz"),
        config.hadoop.checksum.as_ref(),
    )
}

/// The Hive standalone metastore distribution.
pub fn hive_metastore(config: &Config) -> ArtifactSpec {
    let version = &config.hive.metastore_version;
    ArtifactSpec::apache(
        "hive-metastore",
        "hive/KEYS",
        format!("hive/hive-standalone-metastore-{version}"),
        format!("hive-standalone-metastore-{version}-bin.tar.gz"),
        config.hive.checksum.as_ref(),
    )
}

/// `org.apache.hadoop:hadoop-aws` of the given Hadoop version, jar or POM.
pub fn hadoop_aws(hadoop_version: &str, extension: &str) -> ArtifactSpec {
    let role = if extension == "pom" {
        "hadoop-aws-pom"
    } else {
        "hadoop-aws"
    };
    ArtifactSpec::maven(
        role,
        "org.apache.hadoop",
        "hadoop-aws",
        hadoop_version,
        extension,
    )
}

/// The PostgreSQL JDBC driver.
pub fn postgresql_jdbc(config: &Config) -> ArtifactSpec {
    ArtifactSpec::maven(
        "postgresql-jdbc",
        "org.postgresql",
        "postgresql",
        &config.hive.postgresql_jdbc_version,
        "jar",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maven_paths_follow_the_repository_layout() {
        let spec = hadoop_aws("3.2.0", "jar");
        assert_eq!(
            spec.path,
            "org/apache/hadoop/hadoop-aws/3.2.0/hadoop-aws-3.2.0.jar"
        );
        assert_eq!(
            spec.cache_key(),
            "maven/org/apache/hadoop/hadoop-aws/3.2.0/hadoop-aws-3.2.0.jar"
        );
    }
}
