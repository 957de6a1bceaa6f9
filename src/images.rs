//! The three images imgforge builds — their names, tags, labels and input fingerprints.
//!
//! A fingerprint is a SHA-256 over everything that goes into an image: artifact digests,
//! patches, Dockerfiles, certificates, the configuration that shapes the build, and the
//! imgforge version. It is recorded in the `imgforge.inputs.sha256` label so a later run can
//! tell whether an image needs rebuilding without building it.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::exit;
use crate::reference::{ImageReference, Namespace, Placeholder, Tag, TagVersions};

/// The image kinds are part of the configuration (`[images.<kind>]`); what depends on the
/// configured names lives here.
pub use crate::config::ImageKind;

impl ImageKind {
    /// The repository name configured for this image.
    pub fn repository_name(self, config: &Config) -> &str {
        self.repository_path(config).as_str()
    }

    /// The repository path configured for this image, without the registry.
    pub fn repository_path(self, config: &Config) -> &crate::reference::RepositoryPath {
        match self {
            ImageKind::Spark => &config.images.spark_name,
            ImageKind::SparkHs => &config.images.spark_hs_name,
            ImageKind::HiveMetastore => &config.images.hive_metastore_name,
        }
    }
}

/// A bad image name or tag, caught before anything is built.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    /// The registry part of the name is not valid.
    #[error("invalid registry {registry:?} for the {image} image: {reason}")]
    Registry {
        /// The registry value.
        registry: String,
        /// Which image.
        image: ImageKind,
        /// What is wrong.
        reason: String,
    },
    /// A tag template names a value the image does not have (the configuration check
    /// prevents this; kept so a bug is an error, not a wrong tag).
    #[error("tag template {template:?} has no value for {placeholder} in the {image} image")]
    Placeholder {
        /// The template.
        template: String,
        /// The placeholder without a value.
        placeholder: Placeholder,
        /// Which image.
        image: ImageKind,
    },
    /// A tag template rendered to something Docker rejects.
    #[error(
        "tag template {template:?} gives {tag:?} for the {image} image, which is not a valid tag"
    )]
    Tag {
        /// The template.
        template: String,
        /// What it rendered to.
        tag: String,
        /// Which image.
        image: ImageKind,
    },
}

impl ImagesError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        exit::CONFIG
    }
}

/// The versions that name and label the images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// Spark.
    pub spark: String,
    /// Scala binary version.
    pub scala: String,
    /// The Hadoop Spark bundles.
    pub hadoop: String,
    /// hadoop-aws (equal to `hadoop`).
    pub hadoop_aws: String,
    /// The AWS SDK bundle.
    pub aws_sdk: String,
}

/// Check a registry given on the command line (`push --registry`) for `image`.
pub fn check_registry_override(image: ImageKind, registry: &str) -> Result<Namespace, ImagesError> {
    registry
        .parse::<Namespace>()
        .map_err(|error| ImagesError::Registry {
            registry: registry.to_string(),
            image,
            reason: error.invalid.to_string(),
        })
}

/// Every full reference (`registry/name:tag`) of `image`, validated. `registry` overrides
/// the configured one (`push --registry`).
pub fn references(
    config: &Config,
    image: ImageKind,
    versions: &Versions,
    registry: Option<&str>,
) -> Result<Vec<String>, ImagesError> {
    let invalid_registry = |registry: &str, reason: String| ImagesError::Registry {
        registry: registry.to_string(),
        image,
        reason,
    };
    let namespace = match registry {
        Some(text) => check_registry_override(image, text)?,
        None => config.images.registry.clone(),
    };
    let repository = namespace
        .repository(image.repository_path(config))
        .map_err(|error| invalid_registry(namespace.as_str(), error.invalid.to_string()))?;
    let java = java_major(config, image).map(|major| major.to_string());
    // A value the image does not have stays unset, so a template naming it is an error.
    let own = |placeholder: Placeholder| image.lacks(placeholder).is_none();
    let tag_versions = TagVersions {
        spark: Some(versions.spark.as_str()).filter(|_| own(Placeholder::Spark)),
        hadoop: Some(versions.hadoop.as_str()).filter(|_| own(Placeholder::Hadoop)),
        scala: Some(versions.scala.as_str()).filter(|_| own(Placeholder::Scala)),
        hive: Some(config.hive.metastore_version.as_str()).filter(|_| own(Placeholder::Hive)),
        java: java.as_deref(),
        imgforge: Some(env!("CARGO_PKG_VERSION")),
    };
    let templates = config
        .images
        .tags
        .get(&image)
        .map(Vec::as_slice)
        .unwrap_or_default();
    templates
        .iter()
        .map(|template| {
            let tag =
                template
                    .fill(&tag_versions)
                    .map_err(|placeholder| ImagesError::Placeholder {
                        template: template.to_string(),
                        placeholder,
                        image,
                    })?;
            match tag.parse::<Tag>() {
                Ok(tag) => Ok(ImageReference::tagged(repository.clone(), tag).to_string()),
                Err(_) => Err(ImagesError::Tag {
                    template: template.to_string(),
                    tag,
                    image,
                }),
            }
        })
        .collect()
}

/// The Java major version of `image` as imgforge knows it: spark's from `[images.spark]`
/// (`java_major`, else `java_image_tag`), which spark-hs is built on; hive-metastore's from
/// `[images.hive-metastore]` (`java_major`, else its base's tag), when known.
pub fn java_major(config: &Config, image: ImageKind) -> Option<u32> {
    match image {
        ImageKind::Spark | ImageKind::SparkHs => Some(config.spark_image.java_major),
        ImageKind::HiveMetastore => config.images.hive_metastore_java_major,
    }
}

/// The version of the product `image` holds, for `org.opencontainers.image.version`: Spark
/// for spark and spark-hs, the Hive metastore for hive-metastore.
pub fn product_version<'a>(
    config: &'a Config,
    image: ImageKind,
    versions: &'a Versions,
) -> &'a str {
    match image {
        ImageKind::Spark | ImageKind::SparkHs => &versions.spark,
        ImageKind::HiveMetastore => &config.hive.metastore_version,
    }
}

/// The labels of `image`: OCI annotations plus imgforge's own.
pub fn labels(
    config: &Config,
    image: ImageKind,
    versions: &Versions,
    fingerprint: &str,
    created: &str,
) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut put = |key: &str, value: &str| {
        labels.insert(key.to_string(), value.to_string());
    };
    put(
        "org.opencontainers.image.title",
        image.repository_name(config),
    );
    put(
        "org.opencontainers.image.version",
        product_version(config, image, versions),
    );
    put("org.opencontainers.image.created", created);
    if let Some(source) = &config.images.source {
        put("org.opencontainers.image.source", source);
    }
    if let Some(revision) = &config.images.revision {
        put("org.opencontainers.image.revision", revision);
    }
    put("imgforge.spark.version", &versions.spark);
    put("imgforge.hadoop.version", &versions.hadoop);
    put("imgforge.hadoop_aws.version", &versions.hadoop_aws);
    put("imgforge.aws_sdk.version", &versions.aws_sdk);
    put(FINGERPRINT_LABEL, fingerprint);
    labels
}

/// Dockerfile, `.dockerignore` and scripts of one of imgforge's own images: embedded in the
/// binary, or read from `[images] dockerfiles` when that folder is configured.
#[derive(Debug, Clone)]
pub struct ImageData {
    /// The Dockerfile.
    pub dockerfile: String,
    /// The `.dockerignore`.
    pub dockerignore: String,
    /// Scripts copied into the context root, executable: (file name, text).
    pub scripts: Vec<(String, String)>,
}

/// Reading an overriding image definition failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot read {path} ([images] dockerfiles)")]
pub struct ImageDataError {
    /// The file.
    pub path: std::path::PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

impl ImageDataError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        exit::CONFIG
    }
}

impl ImageData {
    /// The definition of `image` (`spark-hs` or `hive-metastore`), from `dir` when given.
    pub fn load(
        image: ImageKind,
        dir: Option<&std::path::Path>,
    ) -> Result<ImageData, ImageDataError> {
        let embedded: &[(&str, &str)] = match image {
            ImageKind::SparkHs => &[
                (
                    "Dockerfile",
                    include_str!("../dockerfiles/spark-hs/Dockerfile"),
                ),
                (
                    ".dockerignore",
                    include_str!("../dockerfiles/spark-hs/.dockerignore"),
                ),
            ],
            ImageKind::HiveMetastore => &[
                (
                    "Dockerfile",
                    include_str!("../dockerfiles/hive-metastore/Dockerfile"),
                ),
                (
                    ".dockerignore",
                    include_str!("../dockerfiles/hive-metastore/.dockerignore"),
                ),
                (
                    "launch.sh",
                    include_str!("../dockerfiles/hive-metastore/launch.sh"),
                ),
                ("import-certs.sh", crate::assemble::IMPORT_CERTS_SCRIPT),
            ],
            // The Spark image's definition comes from the distribution itself.
            ImageKind::Spark => &[],
        };
        let mut data = ImageData {
            dockerfile: String::new(),
            dockerignore: String::new(),
            scripts: Vec::new(),
        };
        for (name, text) in embedded {
            let text = match dir {
                Some(dir) => {
                    let path = dir.join(image.label()).join(name);
                    std::fs::read_to_string(&path)
                        .map_err(|source| ImageDataError { path, source })?
                }
                None => (*text).to_string(),
            };
            match *name {
                "Dockerfile" => data.dockerfile = text,
                ".dockerignore" => data.dockerignore = text,
                _ => data.scripts.push((name.to_string(), text)),
            }
        }
        Ok(data)
    }
}

/// The label holding an image's input fingerprint.
pub const FINGERPRINT_LABEL: &str = "imgforge.inputs.sha256";

#[cfg(test)]
mod tests {
    use super::*;

    fn versions() -> Versions {
        Versions {
            spark: "3.1.1".into(),
            scala: "2.12".into(),
            hadoop: "3.2.0".into(),
            hadoop_aws: "3.2.0".into(),
            aws_sdk: "1.11.375".into(),
        }
    }

    fn config() -> Config {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = crate::cli::GlobalArgs {
            cache_dir: Some(dir.path().into()),
            ..Default::default()
        };
        Config::load_with_env(&args, &|_| None).expect("defaults")
    }

    #[test]
    fn default_references_follow_the_reference_deployment() {
        let refs = references(&config(), ImageKind::Spark, &versions(), None).expect("valid");
        assert_eq!(
            refs,
            [
                "registry.gitlab.com/gha1/spark:3.1.1",
                "registry.gitlab.com/gha1/spark:3.1.1-hadoop3.2.0",
                "registry.gitlab.com/gha1/spark:latest"
            ]
        );
        let refs = references(
            &config(),
            ImageKind::HiveMetastore,
            &versions(),
            Some("127.0.0.1:5000/x/"),
        )
        .expect("valid");
        assert_eq!(
            refs,
            [
                "127.0.0.1:5000/x/hive-metastore:3.0.0",
                "127.0.0.1:5000/x/hive-metastore:3.0.0-hadoop3.2.0",
                "127.0.0.1:5000/x/hive-metastore:latest"
            ],
            "named after the Hive metastore it holds, not Spark"
        );
    }

    #[test]
    fn every_placeholder_fills_with_the_image_s_own_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("imgforge.toml");
        std::fs::write(
            &path,
            "[images.spark]\ntags = [\"{spark_version}-scala{scala_version}-java{java_version}-{imgforge_version}\"]\n\
             [images.spark-hs]\ntags = [\"hs{spark_version}-hadoop{hadoop_version}\"]\n\
             [images.hive-metastore]\ntags = [\"{hive_version}-java{java_version}\"]\n",
        )
        .expect("write");
        let args = crate::cli::GlobalArgs {
            cache_dir: Some(dir.path().into()),
            config: Some(path),
            ..Default::default()
        };
        let config = Config::load_with_env(&args, &|_| None).expect("loads");
        let tag = |kind| references(&config, kind, &versions(), None).expect("valid")[0].clone();
        assert_eq!(
            tag(ImageKind::Spark),
            format!(
                "registry.gitlab.com/gha1/spark:3.1.1-scala2.12-java11-{}",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(
            tag(ImageKind::SparkHs),
            "registry.gitlab.com/gha1/spark-hs:hs3.1.1-hadoop3.2.0"
        );
        assert_eq!(
            tag(ImageKind::HiveMetastore),
            "registry.gitlab.com/gha1/hive-metastore:3.0.0-java8"
        );
    }

    #[test]
    fn the_version_label_is_each_image_s_own_product() {
        let config = config();
        let version = |kind| {
            labels(&config, kind, &versions(), "f00", "2026-01-01T00:00:00Z")
                ["org.opencontainers.image.version"]
                .clone()
        };
        assert_eq!(version(ImageKind::Spark), "3.1.1");
        assert_eq!(version(ImageKind::SparkHs), "3.1.1");
        assert_eq!(version(ImageKind::HiveMetastore), "3.0.0");
    }

    #[test]
    fn bad_registries_are_rejected() {
        for registry in [
            "Registry.Example/UPPER",
            "host:port/x",
            "/x",
            "a//b",
            "h/-x",
        ] {
            assert!(
                references(&config(), ImageKind::Spark, &versions(), Some(registry)).is_err(),
                "{registry}"
            );
        }
    }

    #[test]
    fn a_version_that_makes_an_invalid_tag_is_rejected() {
        let mut bad = versions();
        bad.spark = "3.1.1+local".into();
        let error = references(&config(), ImageKind::Spark, &bad, None).expect_err("invalid tag");
        assert!(error.to_string().contains("3.1.1+local"), "{error}");
    }

    #[test]
    fn several_targets_come_once_each_in_dependency_order() {
        use crate::cli::BuildTarget::{All, HiveMetastore, Spark, SparkHs};
        assert_eq!(ImageKind::wanted(&[]), ImageKind::ALL);
        assert_eq!(ImageKind::wanted(&[All]), ImageKind::ALL);
        assert_eq!(
            ImageKind::wanted(&[SparkHs, Spark, SparkHs]),
            [ImageKind::Spark, ImageKind::SparkHs]
        );
        assert_eq!(
            ImageKind::wanted(&[HiveMetastore, Spark]),
            [ImageKind::Spark, ImageKind::HiveMetastore]
        );
        assert_eq!(ImageKind::wanted(&[SparkHs, All]), ImageKind::ALL);
    }

    #[test]
    fn labels_carry_versions_and_fingerprint() {
        let labels = labels(
            &config(),
            ImageKind::Spark,
            &versions(),
            "f00",
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(labels["imgforge.aws_sdk.version"], "1.11.375");
        assert_eq!(labels[FINGERPRINT_LABEL], "f00");
        assert_eq!(labels["org.opencontainers.image.title"], "spark");
    }
}
