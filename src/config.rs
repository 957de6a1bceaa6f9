//! The effective configuration: embedded defaults, then `imgforge.toml`, then environment
//! variables, then flags — each later layer wins — resolved into a [`Config`].
//!
//! This is the only module that reads the process environment; every variable imgforge
//! honours is named in [`env_vars`]. Each value remembers where it came from so that
//! `imgforge config show` can tell the user.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use url::Url;

use crate::cli::{GlobalArgs, PullPolicy};
use crate::credentials::Secret;
use crate::exit;
use crate::reference::{ImageReference, Namespace, Placeholder, RepositoryPath, TagTemplate};
use crate::verify::Digest;

/// The names of every environment variable imgforge reads.
pub(crate) mod env_vars {
    /// Path of the configuration file.
    pub(crate) const CONFIG: &str = "IMGFORGE_CONFIG";
    /// The download cache directory.
    pub(crate) const CACHE_DIR: &str = "IMGFORGE_CACHE_DIR";
    /// One Apache dist mirror, replacing `[mirrors] apache`.
    pub(crate) const APACHE_MIRROR: &str = "IMGFORGE_APACHE_MIRROR";
    /// One Maven 2 repository, replacing `[mirrors] maven`.
    pub(crate) const MAVEN_MIRROR: &str = "IMGFORGE_MAVEN_MIRROR";
    /// The Docker engine endpoint, as the docker CLI reads it.
    pub(crate) const DOCKER_HOST: &str = "DOCKER_HOST";
    /// Verify the engine's TLS certificate and present a client certificate.
    pub(crate) const DOCKER_TLS_VERIFY: &str = "DOCKER_TLS_VERIFY";
    /// Folder holding ca.pem, cert.pem and key.pem for a TLS engine.
    pub(crate) const DOCKER_CERT_PATH: &str = "DOCKER_CERT_PATH";
    /// User name for the registry pushed to (with [`REGISTRY_PASSWORD`]).
    pub(crate) const REGISTRY_USER: &str = "IMGFORGE_REGISTRY_USER";
    /// Password or token for the registry pushed to (with [`REGISTRY_USER`]).
    pub(crate) const REGISTRY_PASSWORD: &str = "IMGFORGE_REGISTRY_PASSWORD";
    /// Registry and namespace the images are named under, replacing `[images] registry`.
    pub(crate) const REGISTRY: &str = "IMGFORGE_REGISTRY";
    /// The docker CLI's configuration directory (holding `config.json`).
    pub(crate) const DOCKER_CONFIG: &str = "DOCKER_CONFIG";
    /// The home directory; `~/.docker` is the default docker configuration directory, and
    /// `--out` never replaces it.
    pub(crate) const HOME: &str = "HOME";
}

/// The embedded defaults, kept as data so the README and the binary agree.
pub(crate) const DEFAULTS_TOML: &str = include_str!("defaults.toml");

/// The configuration file looked for in the working directory when none is named.
pub(crate) const DEFAULT_CONFIG_FILE: &str = "imgforge.toml";

/// Everything that can go wrong while assembling the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The named configuration file could not be read.
    #[error("cannot read configuration file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration file is not valid imgforge TOML.
    #[error("invalid configuration in {path} at line {line}, column {column}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column of the offending text.
        column: usize,
        /// What is wrong, as the parser put it.
        message: String,
    },
    /// An environment variable holds a value imgforge cannot use.
    #[error("invalid value in environment variable {name}: {message}")]
    Env {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A flag holds a value imgforge cannot use.
    #[error("invalid value for {flag}: {message}")]
    Flag {
        /// The flag, with its dashes.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Values that are each valid but do not work together.
    #[error("invalid value for {key}: {message}")]
    Value {
        /// The dotted key.
        key: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// No cache directory was given and the platform has no user cache directory.
    #[error("no cache directory: set {} or pass --cache-dir", env_vars::CACHE_DIR)]
    NoCacheDir,
    /// The embedded defaults do not parse: a bug in this build of imgforge.
    #[error("the embedded default configuration is invalid (a bug in imgforge): {0}")]
    Defaults(String),
}

impl ConfigError {
    /// The exit code a run ends with when it fails with this error.
    pub(crate) fn exit_code(&self) -> u8 {
        exit::CONFIG
    }
}

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// imgforge's embedded defaults.
    Default,
    /// A configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::File(path) => write!(f, "file {}", path.display()),
            Source::Env(name) => write!(f, "env {name}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// One effective value with its origin, as `imgforge config show` prints it.
#[derive(Debug, Clone)]
pub(crate) struct ShownValue {
    /// Dotted key, e.g. `spark.version`.
    pub(crate) key: String,
    /// The value in TOML syntax.
    pub(crate) value: String,
    /// Where it came from.
    pub(crate) source: Source,
}

/// How results and progress reach the user.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutputOptions {
    /// Print only errors.
    pub(crate) quiet: bool,
    /// Verbosity level from repeated `-v`.
    pub verbose: u8,
    /// Plain lines even on a terminal.
    pub(crate) no_progress: bool,
    /// A JSON report on stdout.
    pub(crate) json: bool,
}

/// `[spark]`.
#[derive(Debug, Clone)]
pub(crate) struct SparkConfig {
    /// Spark release, e.g. `3.1.1`.
    pub(crate) version: String,
    /// Package suffix of the binary tarball, e.g. `hadoop3.2`.
    pub(crate) package: String,
    /// A pinned digest that wins over the published checksum.
    pub(crate) checksum: Option<Digest>,
    /// A log4j configuration that replaces the distribution's template.
    pub(crate) log4j_file: Option<PathBuf>,
    /// `spark.hive.metastore.uris` for `spark-defaults.conf`, when set.
    pub(crate) hive_metastore_uris: Option<String>,
    /// The variable the patched entrypoint exports the JVM options in.
    pub(crate) java_options_env: JavaOptionsEnv,
}

/// `[spark] java_options_env`: the environment variable every JVM of the image reads its
/// extra options (the log4j configuration, the AWS SDK switches) from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JavaOptionsEnv {
    /// `_JAVA_OPTIONS`: read after the command line, so it overrides a job's own
    /// `-D` options (`--driver-java-options`). The reference deployment's choice.
    UnderscoreJavaOptions,
    /// `JAVA_TOOL_OPTIONS`: read before the command line, so a job's own options win.
    JavaToolOptions,
}

impl JavaOptionsEnv {
    /// The variable's name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            JavaOptionsEnv::UnderscoreJavaOptions => "_JAVA_OPTIONS",
            JavaOptionsEnv::JavaToolOptions => "JAVA_TOOL_OPTIONS",
        }
    }
}

impl FromStr for JavaOptionsEnv {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "_JAVA_OPTIONS" => Ok(JavaOptionsEnv::UnderscoreJavaOptions),
            "JAVA_TOOL_OPTIONS" => Ok(JavaOptionsEnv::JavaToolOptions),
            other => Err(format!(
                "{other:?} is not a JVM options variable: use \"_JAVA_OPTIONS\" (overrides a job's \
                 own -D options) or \"JAVA_TOOL_OPTIONS\" (a job's own options win)"
            )),
        }
    }
}

/// `[hadoop]`.
#[derive(Debug, Clone)]
pub(crate) struct HadoopConfig {
    /// The Hadoop version; when absent it is read from the Spark tarball's `jars/`.
    pub(crate) version: Option<String>,
    /// A pinned digest for the Hadoop tarball.
    pub(crate) checksum: Option<Digest>,
}

/// `[hive]`.
#[derive(Debug, Clone)]
pub(crate) struct HiveConfig {
    /// Hive standalone metastore release.
    pub(crate) metastore_version: String,
    /// PostgreSQL JDBC driver version.
    pub(crate) postgresql_jdbc_version: String,
    /// A pinned digest for the metastore tarball.
    pub(crate) checksum: Option<Digest>,
}

/// One of the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ImageKind {
    /// The patched Spark distribution.
    Spark,
    /// The Spark history server, built on the Spark image.
    SparkHs,
    /// The standalone Hive metastore.
    HiveMetastore,
}

impl ImageKind {
    /// Every image, in build order (spark-hs needs spark).
    pub const ALL: [ImageKind; 3] = [
        ImageKind::Spark,
        ImageKind::SparkHs,
        ImageKind::HiveMetastore,
    ];

    /// The images `targets` name, each once, in dependency order (spark, spark-hs,
    /// hive-metastore) whatever order they were given in; none given means all.
    pub fn wanted(targets: &[crate::cli::BuildTarget]) -> Vec<ImageKind> {
        let named = |kind: ImageKind| {
            targets.is_empty()
                || targets.iter().any(|target| match target {
                    crate::cli::BuildTarget::Spark => kind == ImageKind::Spark,
                    crate::cli::BuildTarget::SparkHs => kind == ImageKind::SparkHs,
                    crate::cli::BuildTarget::HiveMetastore => kind == ImageKind::HiveMetastore,
                    crate::cli::BuildTarget::All => true,
                })
        };
        ImageKind::ALL
            .into_iter()
            .filter(|kind| named(*kind))
            .collect()
    }

    /// Why this image has no value for `placeholder` in its tags, or `None` when it has one
    /// (`{java_version}` of hive-metastore further needs its base's Java version known).
    pub fn lacks(self, placeholder: crate::reference::Placeholder) -> Option<&'static str> {
        match (self, placeholder) {
            (ImageKind::Spark | ImageKind::SparkHs, crate::reference::Placeholder::Hive) => {
                Some("it holds no Hive metastore")
            }
            (ImageKind::HiveMetastore, crate::reference::Placeholder::Spark) => {
                Some("it holds no Spark")
            }
            (ImageKind::HiveMetastore, crate::reference::Placeholder::Scala) => {
                Some("it holds no Scala")
            }
            _ => None,
        }
    }

    /// The name used on the command line and in reports.
    pub fn label(self) -> &'static str {
        match self {
            ImageKind::Spark => "spark",
            ImageKind::SparkHs => "spark-hs",
            ImageKind::HiveMetastore => "hive-metastore",
        }
    }
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Where the S3A jars come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JarsSource {
    /// `hadoop-aws` and what its POM requires, from the Maven mirrors.
    Maven,
    /// The jars in `share/hadoop/tools/lib/` of the matching Hadoop distribution.
    HadoopDist,
}

impl FromStr for JarsSource {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "maven" => Ok(JarsSource::Maven),
            "hadoop-dist" => Ok(JarsSource::HadoopDist),
            other => Err(format!(
                "{other:?} is not a jars source: use \"maven\" or \"hadoop-dist\""
            )),
        }
    }
}

/// `[s3a]`: the S3A jars and the S3A settings written into `spark-defaults.conf`.
#[derive(Debug, Clone)]
pub(crate) struct S3aConfig {
    /// Where the jars come from.
    pub(crate) jars_source: JarsSource,
    /// A pinned hadoop-aws version; must equal the Hadoop version Spark bundles.
    pub(crate) hadoop_aws_version: Option<String>,
    /// A pinned AWS SDK bundle version; must equal the one hadoop-aws was built against.
    pub(crate) sdk_version: Option<String>,
    /// `fs.s3a.endpoint`, when set.
    pub(crate) endpoint: Option<String>,
    /// Add `-Dcom.amazonaws.sdk.disableCertChecking=true` to `_JAVA_OPTIONS` (insecure).
    pub(crate) disable_cert_checking: bool,
}

/// `[images.spark]`: how the Spark image is based.
#[derive(Debug, Clone)]
pub(crate) struct SparkImageConfig {
    /// Replaces the image of the distribution Dockerfile's `FROM` line.
    pub(crate) base: Option<String>,
    /// The `java_image_tag` build argument.
    pub(crate) java_image_tag: String,
    /// The Java major version of the base image; decides how keytool finds the truststore.
    pub(crate) java_major: u32,
}

/// `[verify]`: release signatures.
#[derive(Debug, Clone)]
pub(crate) struct VerifyConfig {
    /// Check each Apache tarball's `.asc` against the project's `KEYS`.
    pub(crate) signatures: bool,
    /// When not empty, only these primary-key fingerprints are trusted.
    pub(crate) fingerprints: Vec<String>,
}

/// `[images]`: names, tags and the settings of the images other than Spark's.
#[derive(Debug, Clone)]
pub(crate) struct ImagesConfig {
    /// Registry and namespace the image names start with, e.g. `registry.gitlab.com/gha1`.
    pub(crate) registry: Namespace,
    /// Each image's tag templates: `[images.<image>] tags`, else `[images] tags` (checked:
    /// every placeholder has a value for its image).
    pub(crate) tags: BTreeMap<ImageKind, Vec<TagTemplate>>,
    /// `org.opencontainers.image.source`, when set.
    pub(crate) source: Option<String>,
    /// `org.opencontainers.image.revision`, when set.
    pub(crate) revision: Option<String>,
    /// A folder overriding the embedded `spark-hs/` and `hive-metastore/` definitions.
    pub(crate) dockerfiles: Option<PathBuf>,
    /// Repository name of the Spark image.
    pub(crate) spark_name: RepositoryPath,
    /// The `spark_uid` build argument of Spark's Dockerfile.
    pub(crate) spark_uid: u32,
    /// Repository name of the history server image.
    pub(crate) spark_hs_name: RepositoryPath,
    /// Where the history server reads event logs.
    pub(crate) event_log_dir: String,
    /// Repository name of the metastore image.
    pub(crate) hive_metastore_name: RepositoryPath,
    /// The JRE image the metastore image is built on.
    pub(crate) hive_metastore_base: String,
    /// Install sudo for the `hive` user (debugging only).
    pub(crate) hive_metastore_debug_sudo: bool,
    /// When base images are pulled.
    pub(crate) pull: PullPolicy,
    /// The Java major version of the metastore's base image: `[images.hive-metastore]
    /// java_major`, else the number its tag starts with (`8-jre` → 8), else unknown.
    pub(crate) hive_metastore_java_major: Option<u32>,
}

/// The docker CLI's engine variables, as found in the environment.
#[derive(Debug, Clone, Default)]
pub(crate) struct EngineEnv {
    /// `DOCKER_HOST`.
    pub(crate) host: Option<String>,
    /// `DOCKER_TLS_VERIFY`.
    pub(crate) tls_verify: Option<String>,
    /// `DOCKER_CERT_PATH`.
    pub(crate) cert_path: Option<String>,
}

/// `[push]` and the credentials the environment holds for pushing.
#[derive(Debug, Clone, Default)]
pub(crate) struct PushConfig {
    /// `[push] registry_ca`: an extra CA imgforge's own registry calls trust.
    pub(crate) registry_ca: Option<PathBuf>,
    /// `IMGFORGE_REGISTRY_USER` and `IMGFORGE_REGISTRY_PASSWORD`, when both are set.
    pub(crate) environment_credentials: Option<(String, Secret)>,
    /// `$DOCKER_CONFIG`, else `$HOME/.docker`: where the docker CLI keeps `config.json`.
    pub(crate) docker_config_dir: Option<PathBuf>,
}

/// `[operator]`: what the Spark operator manifests (`imgforge manifest`) refer to.
#[derive(Debug, Clone)]
pub(crate) struct OperatorConfig {
    /// The Kubernetes secret whose `S3_ENDPOINT`, `S3_ACCESS_KEY` and `S3_SECRET_KEY` keys
    /// the driver and executors read as environment variables.
    pub(crate) s3_secret: String,
    /// The service account the driver runs as.
    pub(crate) service_account: String,
}

/// `[mirrors]`: base URLs tried in order.
#[derive(Debug, Clone)]
pub(crate) struct MirrorsConfig {
    /// Mirrors with the layout of the Apache dist tree.
    pub(crate) apache: Vec<Url>,
    /// Maven 2 repositories.
    pub(crate) maven: Vec<Url>,
}

/// `[network]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NetworkConfig {
    /// Time without progress before an attempt is abandoned.
    pub(crate) timeout: Duration,
    /// Further attempts per URL after a transient failure.
    pub(crate) retries: u32,
    /// `max_artifact_bytes`: no artifact body may be longer.
    pub(crate) max_artifact_bytes: u64,
    /// `min_speed_bytes`: a transfer slower than this many bytes per second, averaged over
    /// `min_speed`'s window, is abandoned (0: no minimum).
    pub(crate) min_speed_bytes: u64,
    /// `min_speed_secs`: the window the minimum speed is averaged over.
    pub(crate) min_speed_window: Duration,
    /// `artifact_deadline_secs`: the longest one artifact's download from one mirror may take,
    /// retries included.
    pub(crate) artifact_deadline: Duration,
}

/// The resolved configuration every command works from.
#[derive(Debug, Clone)]
pub struct Config {
    /// The configuration file that was read, if any.
    pub(crate) config_file: Option<PathBuf>,
    /// The download cache directory.
    pub(crate) cache_dir: PathBuf,
    /// `$HOME`, which an output directory may never be (nor contain).
    pub(crate) home_dir: Option<PathBuf>,
    /// Use only the cache.
    pub(crate) offline: bool,
    /// Output preferences.
    pub output: OutputOptions,
    /// `[spark]`.
    pub(crate) spark: SparkConfig,
    /// `[hadoop]`.
    pub(crate) hadoop: HadoopConfig,
    /// `[hive]`.
    pub(crate) hive: HiveConfig,
    /// `[mirrors]`.
    pub(crate) mirrors: MirrorsConfig,
    /// `[network]`.
    pub(crate) network: NetworkConfig,
    /// `[extract]`: the limits every archive is unpacked under.
    pub(crate) extract: crate::extract::Limits,
    /// `[s3a]`.
    pub(crate) s3a: S3aConfig,
    /// `[verify]`.
    pub(crate) verify: VerifyConfig,
    /// `[certs] dir`: CA certificates to trust; `None` when not configured (then
    /// `./certs` is used when present).
    pub(crate) certs_dir: Option<PathBuf>,
    /// `[certs] aliases`: truststore aliases chosen per certificate file name (the others
    /// keep the alias derived from their file name).
    pub(crate) certs_aliases: BTreeMap<String, String>,
    /// `[patches] dir`: a user patches directory added to the built-in patches.
    pub(crate) patches_dir: Option<PathBuf>,
    /// `[images.spark]`.
    pub(crate) spark_image: SparkImageConfig,
    /// `[images]`, `[images.spark-hs]`, `[images.hive-metastore]`.
    pub(crate) images: ImagesConfig,
    /// The Docker engine to talk to, from the same variables the docker CLI reads.
    pub(crate) engine: EngineEnv,
    /// `[push]` and the registry credentials from the environment.
    pub(crate) push: PushConfig,
    /// `[operator]`.
    pub(crate) operator: OperatorConfig,
    /// Every effective value and its source, for `config show`.
    pub(crate) shown: Vec<ShownValue>,
}

impl Config {
    /// Resolve the configuration from flags and the real process environment.
    pub fn load(args: &GlobalArgs) -> Result<Config, ConfigError> {
        Self::load_with_env(args, &|name| std::env::var(name).ok())
    }

    /// The configuration file `args` name: `--config`, else `$IMGFORGE_CONFIG`, else
    /// `./imgforge.toml` — where `imgforge init` writes, whether or not it exists.
    pub fn file_path(args: &GlobalArgs) -> PathBuf {
        let env = std::env::var(env_vars::CONFIG)
            .ok()
            .filter(|path| !path.is_empty());
        args.config
            .clone()
            .or(env.map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_FILE))
    }

    /// Resolve the configuration with `env` standing in for the process environment.
    pub fn load_with_env(
        args: &GlobalArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        let mut layers = Layers::default();
        layers.merge_toml(DEFAULTS_TOML, &Source::Default, Path::new("<defaults>"))?;

        let config_file = match (&args.config, env(env_vars::CONFIG)) {
            (Some(path), _) => Some((path.clone(), Source::Flag("--config"))),
            (None, Some(path)) => Some((PathBuf::from(path), Source::Env(env_vars::CONFIG))),
            (None, None) => {
                let path = PathBuf::from(DEFAULT_CONFIG_FILE);
                path.is_file().then_some((path, Source::Default))
            }
        };
        if let Some((path, _)) = &config_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            layers.merge_toml(&text, &Source::File(path.clone()), path)?;
        }

        let mirror_overrides = [
            (
                "mirrors.apache",
                env_vars::APACHE_MIRROR,
                "--apache-mirror",
                &args.apache_mirror,
            ),
            (
                "mirrors.maven",
                env_vars::MAVEN_MIRROR,
                "--maven-mirror",
                &args.maven_mirror,
            ),
        ];
        for (key, var, flag, flag_value) in mirror_overrides {
            if let Some(value) = env(var) {
                let url = MirrorUrl::from_str(&value)
                    .map_err(|message| ConfigError::Env { name: var, message })?;
                layers.set(
                    key,
                    toml::Value::Array(vec![url.0.as_str().into()]),
                    Source::Env(var),
                );
            }
            if let Some(value) = flag_value {
                let url = MirrorUrl::from_str(value)
                    .map_err(|message| ConfigError::Flag { flag, message })?;
                layers.set(
                    key,
                    toml::Value::Array(vec![url.0.as_str().into()]),
                    Source::Flag(flag),
                );
            }
        }

        if let Some(value) = env(env_vars::REGISTRY) {
            let namespace = Namespace::from_str(&value).map_err(|error| ConfigError::Env {
                name: env_vars::REGISTRY,
                message: error.to_string(),
            })?;
            layers.set(
                "images.registry",
                toml::Value::from(namespace.as_str()),
                Source::Env(env_vars::REGISTRY),
            );
        }

        let (cache_dir, cache_source) = match (&args.cache_dir, env(env_vars::CACHE_DIR)) {
            (Some(dir), _) => (dir.clone(), Source::Flag("--cache-dir")),
            (None, Some(dir)) => (PathBuf::from(dir), Source::Env(env_vars::CACHE_DIR)),
            (None, None) => (
                dirs::cache_dir()
                    .ok_or(ConfigError::NoCacheDir)?
                    .join("imgforge"),
                Source::Default,
            ),
        };

        let merged: Layer = layers
            .to_table()
            .try_into()
            .map_err(|error: toml::de::Error| ConfigError::Defaults(error.to_string()))?;

        let mut shown = vec![ShownValue {
            key: "cache_dir".into(),
            value: toml::Value::from(cache_dir.display().to_string()).to_string(),
            source: cache_source,
        }];
        if let Some((path, source)) = &config_file {
            shown.push(ShownValue {
                key: "config_file".into(),
                value: toml::Value::from(path.display().to_string()).to_string(),
                source: source.clone(),
            });
        }
        let tag_keys = layers.tag_keys();
        shown.extend(layers.values.iter().map(|(key, (value, source))| {
            // A per-image tag list that gives way to `[images] tags` from a later layer is
            // shown as what the image really gets.
            let effective = ImageKind::ALL
                .into_iter()
                .find(|kind| *key == own_tags_key(*kind))
                .and_then(|kind| layers.values.get(&tag_keys[&kind]))
                .map(|(value, source)| (value, source));
            let (value, source) = effective.unwrap_or((value, source));
            ShownValue {
                key: key.clone(),
                value: value.to_string(),
                source: source.clone(),
            }
        }));

        let engine = EngineEnv {
            host: env(env_vars::DOCKER_HOST),
            tls_verify: env(env_vars::DOCKER_TLS_VERIFY),
            cert_path: env(env_vars::DOCKER_CERT_PATH),
        };
        let environment_credentials = match (
            env(env_vars::REGISTRY_USER),
            env(env_vars::REGISTRY_PASSWORD),
        ) {
            (Some(user), Some(password)) => Some((user, Secret::new(password))),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Env {
                    name: env_vars::REGISTRY_PASSWORD,
                    message: format!("unset, but {} is set", env_vars::REGISTRY_USER),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Env {
                    name: env_vars::REGISTRY_USER,
                    message: format!("unset, but {} is set", env_vars::REGISTRY_PASSWORD),
                });
            }
        };
        let docker_config_dir = env(env_vars::DOCKER_CONFIG)
            .map(PathBuf::from)
            .or_else(|| env(env_vars::HOME).map(|home| Path::new(&home).join(".docker")));
        let config = merged.into_config(ResolvedParts {
            tag_keys: tag_keys.clone(),
            engine,
            push: (environment_credentials, docker_config_dir),
            config_file: config_file.map(|(path, _)| path),
            cache_dir,
            home_dir: env(env_vars::HOME).map(PathBuf::from),
            offline: args.offline,
            output: OutputOptions {
                quiet: args.quiet,
                verbose: args.verbose,
                no_progress: args.no_progress,
                json: args.json,
            },
            shown,
        })?;
        for kind in ImageKind::ALL {
            let key = &tag_keys[&kind];
            for (index, template) in config.images.tags[&kind].iter().enumerate() {
                if let Err(message) = config.check_placeholders(kind, template) {
                    let message = match key.as_str() {
                        "images.tags" => format!(
                            "{message}; give the {kind} image its own tags in [images.{kind}] tags"
                        ),
                        _ => message,
                    };
                    return Err(layers.error_at(key, index, message));
                }
            }
        }
        Ok(config)
    }

    /// Whether `template` can name `image`: every placeholder it holds has a value for
    /// that image. The message says which has none, and why.
    fn check_placeholders(&self, image: ImageKind, template: &TagTemplate) -> Result<(), String> {
        for placeholder in template.placeholders() {
            if let Some(why) = image.lacks(*placeholder) {
                return Err(format!(
                    "tag template {:?}: {placeholder} has no value for the {image} image ({why})",
                    template.to_string()
                ));
            }
            if image == ImageKind::HiveMetastore
                && *placeholder == Placeholder::Java
                && self.images.hive_metastore_java_major.is_none()
            {
                return Err(format!(
                    "tag template {:?}: cannot tell the Java version of the hive-metastore base \
                     {:?}; set [images.hive-metastore] java_major",
                    template.to_string(),
                    self.images.hive_metastore_base
                ));
            }
        }
        Ok(())
    }

    /// This configuration with the image names the command line gives: `--registry`
    /// replaces the registry of every image, `--tag` the tag templates of `images` (the
    /// images the command builds or pushes, and spark with spark-hs, which finds the spark
    /// image it is built on by those names). Each template is checked against those images.
    pub(crate) fn with_names(
        &self,
        registry: Option<&str>,
        tags: &[String],
        images: &[ImageKind],
    ) -> Result<Config, ConfigError> {
        let mut config = self.clone();
        if let Some(text) = registry {
            config.images.registry =
                Namespace::from_str(text).map_err(|error| ConfigError::Flag {
                    flag: "--registry",
                    message: error.to_string(),
                })?;
            config.show(
                "images.registry",
                toml::Value::from(config.images.registry.as_str()),
                Source::Flag("--registry"),
            );
        }
        if tags.is_empty() {
            return Ok(config);
        }
        let templates = tags
            .iter()
            .map(|text| {
                TagTemplate::from_str(text).map_err(|error| ConfigError::Flag {
                    flag: "--tag",
                    message: error.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut named = images.to_vec();
        if named.contains(&ImageKind::SparkHs) && !named.contains(&ImageKind::Spark) {
            named.push(ImageKind::Spark);
        }
        for kind in &named {
            for template in &templates {
                config
                    .check_placeholders(*kind, template)
                    .map_err(|message| ConfigError::Flag {
                        flag: "--tag",
                        message,
                    })?;
            }
            config.images.tags.insert(*kind, templates.clone());
            let value = toml::Value::Array(
                templates
                    .iter()
                    .map(|template| toml::Value::from(template.to_string()))
                    .collect(),
            );
            config.show(&own_tags_key(*kind), value, Source::Flag("--tag"));
        }
        Ok(config)
    }

    /// Record `key`'s effective value for `config show`, replacing what it said before.
    fn show(&mut self, key: &str, value: toml::Value, source: Source) {
        let shown = ShownValue {
            key: key.to_string(),
            value: value.to_string(),
            source,
        };
        match self.shown.iter_mut().find(|entry| entry.key == key) {
            Some(entry) => *entry = shown,
            None => self.shown.push(shown),
        }
    }
}

/// `images.<image>.tags`: an image's own tag templates.
fn own_tags_key(image: ImageKind) -> String {
    format!("images.{image}.tags")
}

/// How late a layer comes: a later one wins.
fn layer_rank(source: &Source) -> u8 {
    match source {
        Source::Default => 0,
        Source::File(_) => 1,
        Source::Env(_) => 2,
        Source::Flag(_) => 3,
    }
}

/// The parts of [`Config`] that do not come from the TOML layers.
struct ResolvedParts {
    /// The key each image's tag templates come from.
    tag_keys: BTreeMap<ImageKind, String>,
    engine: EngineEnv,
    /// The environment's registry credentials and docker configuration directory.
    push: (Option<(String, Secret)>, Option<PathBuf>),
    config_file: Option<PathBuf>,
    cache_dir: PathBuf,
    home_dir: Option<PathBuf>,
    offline: bool,
    output: OutputOptions,
    shown: Vec<ShownValue>,
}

/// Flattened `dotted.key → value` layers, later sources overwriting earlier ones.
#[derive(Default)]
struct Layers {
    values: BTreeMap<String, (toml::Value, Source)>,
    /// Where each element of a tag list read from a file was written, by key: (file, line,
    /// column), so a template that cannot name its image is reported at its place.
    tag_locations: BTreeMap<String, Vec<(PathBuf, usize, usize)>>,
}

impl Layers {
    /// Validate `text` against the schema (for errors with line and column), then flatten it in.
    fn merge_toml(&mut self, text: &str, source: &Source, path: &Path) -> Result<(), ConfigError> {
        let invalid = |error: toml::de::Error| {
            let (line, column) = line_column(text, error.span().map_or(0, |span| span.start));
            ConfigError::Invalid {
                path: path.to_path_buf(),
                line,
                column,
                message: error.message().trim_end().to_string(),
            }
        };
        // Tag templates first, so a bad one is reported at its own place in its list (the
        // schema's errors point at the list).
        let tag_lists = toml::from_str::<TagSpans>(text)
            .map(TagSpans::lists)
            .unwrap_or_default();
        for (_, tags) in &tag_lists {
            for tag in tags {
                if let toml::Value::String(template) = tag.get_ref()
                    && let Err(error) = TagTemplate::from_str(template)
                {
                    let (line, column) = line_column(text, tag.span().start);
                    return Err(ConfigError::Invalid {
                        path: path.to_path_buf(),
                        line,
                        column,
                        message: error.to_string(),
                    });
                }
            }
        }
        toml::from_str::<Layer>(text).map_err(invalid)?;
        let table: toml::Table = toml::from_str(text).map_err(invalid)?;
        self.flatten("", table, source);
        for (key, tags) in tag_lists {
            let locations = tags
                .iter()
                .map(|tag| {
                    let (line, column) = line_column(text, tag.span().start);
                    (path.to_path_buf(), line, column)
                })
                .collect();
            self.tag_locations.insert(key, locations);
        }
        if let Source::File(file) = source {
            let base = file.parent().unwrap_or(Path::new(""));
            for key in PATH_KEYS {
                if let Some((toml::Value::String(value), value_source)) = self.values.get_mut(key)
                    && value_source == source
                    && Path::new(value.as_str()).is_relative()
                {
                    *value = base.join(value.as_str()).display().to_string();
                }
            }
        }
        Ok(())
    }

    fn flatten(&mut self, prefix: &str, table: toml::Table, source: &Source) {
        for (key, value) in table {
            let dotted = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                // A table of file names (which hold dots) to aliases: one value, replaced
                // as a whole by a later layer.
                toml::Value::Table(inner) if dotted == "certs.aliases" => {
                    self.set(&dotted, toml::Value::Table(inner), source.clone())
                }
                toml::Value::Table(inner) => self.flatten(&dotted, inner, source),
                value => self.set(&dotted, value, source.clone()),
            }
        }
    }

    fn set(&mut self, key: &str, value: toml::Value, source: Source) {
        self.values.insert(key.to_string(), (value, source));
    }

    /// The key each image's tag templates come from: its own `[images.<image>] tags`,
    /// unless `[images] tags` was set in a later layer (so `[images] tags` in a file
    /// replaces the embedded per-image defaults).
    fn tag_keys(&self) -> BTreeMap<ImageKind, String> {
        let rank = |key: &str| self.values.get(key).map(|(_, source)| layer_rank(source));
        ImageKind::ALL
            .into_iter()
            .map(|kind| {
                let own = own_tags_key(kind);
                let key = match (rank(&own), rank("images.tags")) {
                    (Some(own_rank), Some(shared_rank)) if own_rank >= shared_rank => own,
                    (Some(_), None) => own,
                    _ => "images.tags".to_string(),
                };
                (kind, key)
            })
            .collect()
    }

    /// A configuration error at element `index` of the tag list `key`, placed where that
    /// element was written.
    fn error_at(&self, key: &str, index: usize, message: String) -> ConfigError {
        let location = self
            .tag_locations
            .get(key)
            .and_then(|locations| locations.get(index));
        match (self.values.get(key), location) {
            (Some((_, Source::File(_))), Some((path, line, column))) => ConfigError::Invalid {
                path: path.clone(),
                line: *line,
                column: *column,
                message,
            },
            _ => ConfigError::Value {
                key: "images.tags",
                message,
            },
        }
    }

    fn to_table(&self) -> toml::Table {
        let mut root = toml::Table::new();
        for (key, (value, _)) in &self.values {
            let mut table = &mut root;
            let mut parts = key.split('.').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    table.insert(part.to_string(), value.clone());
                } else {
                    let entry = table
                        .entry(part.to_string())
                        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                    let toml::Value::Table(inner) = entry else {
                        unreachable!("flattened keys never place a value where a table is")
                    };
                    table = inner;
                }
            }
        }
        root
    }
}

/// The Java major version a tag like `11-jre-slim` or `8u292-jre` starts with.
fn java_major_of(tag: &str) -> Option<u32> {
    let digits: String = tag.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Keys whose values are paths; relative ones in a file are relative to that file.
const PATH_KEYS: [&str; 5] = [
    "spark.log4j_file",
    "push.registry_ca",
    "certs.dir",
    "patches.dir",
    "images.dockerfiles",
];

/// Convert a byte offset into 1-based line and column.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map_or(0, |tail| tail.chars().count())
        + 1;
    (line, column)
}

/// Where the tag lists of a file are written (everything else is ignored).
#[derive(Default, Deserialize)]
struct TagSpans {
    #[serde(default)]
    images: ImagesTagSpans,
}

impl TagSpans {
    /// Each tag list the file sets, by dotted key.
    fn lists(self) -> Vec<(String, Vec<toml::Spanned<toml::Value>>)> {
        let images = self.images;
        [
            ("images.tags".to_string(), images.tags),
            (own_tags_key(ImageKind::Spark), images.spark.tags),
            (own_tags_key(ImageKind::SparkHs), images.spark_hs.tags),
            (
                own_tags_key(ImageKind::HiveMetastore),
                images.hive_metastore.tags,
            ),
        ]
        .into_iter()
        .filter_map(|(key, tags)| tags.map(|tags| (key, tags)))
        .collect()
    }
}

#[derive(Default, Deserialize)]
struct ImagesTagSpans {
    tags: Option<Vec<toml::Spanned<toml::Value>>>,
    #[serde(default)]
    spark: ImageTagSpans,
    #[serde(default, rename = "spark-hs")]
    spark_hs: ImageTagSpans,
    #[serde(default, rename = "hive-metastore")]
    hive_metastore: ImageTagSpans,
}

#[derive(Default, Deserialize)]
struct ImageTagSpans {
    tags: Option<Vec<toml::Spanned<toml::Value>>>,
}

/// The schema of `imgforge.toml`: every key optional, unknown keys rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layer {
    #[serde(default)]
    spark: SparkLayer,
    #[serde(default)]
    hadoop: HadoopLayer,
    #[serde(default)]
    hive: HiveLayer,
    #[serde(default)]
    mirrors: MirrorsLayer,
    #[serde(default)]
    network: NetworkLayer,
    #[serde(default)]
    s3a: S3aLayer,
    #[serde(default)]
    verify: VerifyLayer,
    #[serde(default)]
    certs: CertsLayer,
    #[serde(default)]
    patches: DirLayer,
    #[serde(default)]
    images: ImagesLayer,
    #[serde(default)]
    push: PushLayer,
    #[serde(default)]
    extract: ExtractLayer,
    #[serde(default)]
    operator: OperatorLayer,
}

/// `[extract]`: what one archive may unpack to.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtractLayer {
    max_bytes: Option<Parsed<Ranged<{ 1 << 20 }, { 1 << 40 }>>>,
    max_entries: Option<Parsed<Ranged<100, 100_000_000>>>,
    max_ratio: Option<Parsed<Ranged<2, 10_000>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorLayer {
    s3_secret: Option<KubernetesName>,
    service_account: Option<KubernetesName>,
}

/// A Kubernetes object name (RFC 1123 subdomain: lower-case letters, digits, `-` and `.`,
/// starting and ending with a letter or digit, at most 253 characters).
#[derive(Debug)]
struct KubernetesName(String);

impl<'de> Deserialize<'de> for KubernetesName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        check_kubernetes_name(&text, 253)
            .map(|()| KubernetesName(text))
            .map_err(serde::de::Error::custom)
    }
}

/// Check `name` as a Kubernetes object name of at most `max` characters.
pub(crate) fn check_kubernetes_name(name: &str, max: usize) -> Result<(), String> {
    let valid_characters = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    let valid_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > max || !valid_characters || !valid_ends {
        return Err(format!(
            "{name:?} is not a Kubernetes name: lower-case letters, digits, '-' and '.', \
             starting and ending with a letter or digit, at most {max} characters"
        ));
    }
    Ok(())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushLayer {
    registry_ca: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct S3aLayer {
    jars_source: Option<Parsed<JarsSource>>,
    hadoop_aws_version: Option<Parsed<Version>>,
    sdk_version: Option<Parsed<Version>>,
    endpoint: Option<Parsed<MirrorUrl>>,
    disable_cert_checking: Option<bool>,
    // Present only to refuse them with a message that says where credentials belong:
    // deserializing one is the error, so the values are never read.
    #[allow(dead_code)]
    access_key: Option<Refused>,
    #[allow(dead_code)]
    secret_key: Option<Refused>,
    #[allow(dead_code)]
    session_token: Option<Refused>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyLayer {
    signatures: Option<bool>,
    fingerprints: Option<Vec<Parsed<KeyFingerprint>>>,
}

/// An OpenPGP fingerprint: 40 or 64 hex digits, spaces allowed.
#[derive(Debug)]
struct KeyFingerprint(String);

impl FromStr for KeyFingerprint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let hex: String = text
            .trim_start_matches("0x")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if matches!(hex.len(), 40 | 64) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            Ok(KeyFingerprint(hex.to_ascii_uppercase()))
        } else {
            Err(format!(
                "{text:?} is not an OpenPGP fingerprint (40 or 64 hex digits)"
            ))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirLayer {
    dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CertsLayer {
    dir: Option<String>,
    aliases: Option<BTreeMap<String, Parsed<CertAlias>>>,
}

/// A truststore alias: letters, digits, `.`, `_` and `-`, starting with a letter, digit or
/// `_` (it becomes a file name and a shell word in the build).
#[derive(Debug)]
struct CertAlias(String);

impl FromStr for CertAlias {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let allowed = text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        let starts_well = text
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if allowed && starts_well {
            Ok(CertAlias(text.to_string()))
        } else {
            Err(format!(
                "{text:?} is not a truststore alias: use letters, digits, '.', '_' and '-', \
                 starting with a letter, digit or '_'"
            ))
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagesLayer {
    registry: Option<Parsed<Namespace>>,
    tags: Option<Vec<Parsed<TagTemplate>>>,
    source: Option<String>,
    revision: Option<String>,
    dockerfiles: Option<String>,
    pull: Option<Parsed<PullPolicy>>,
    #[serde(default)]
    spark: SparkImageLayer,
    #[serde(default, rename = "spark-hs")]
    spark_hs: SparkHsLayer,
    #[serde(default, rename = "hive-metastore")]
    hive_metastore: HiveMetastoreLayer,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SparkHsLayer {
    name: Option<Parsed<RepositoryPath>>,
    tags: Option<Vec<Parsed<TagTemplate>>>,
    event_log_dir: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HiveMetastoreLayer {
    name: Option<Parsed<RepositoryPath>>,
    tags: Option<Vec<Parsed<TagTemplate>>>,
    base: Option<Parsed<ImageReference>>,
    java_major: Option<Parsed<Ranged<8, 99>>>,
    debug_sudo: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SparkImageLayer {
    name: Option<Parsed<RepositoryPath>>,
    tags: Option<Vec<Parsed<TagTemplate>>>,
    base: Option<Parsed<ImageReference>>,
    java_image_tag: Option<Parsed<Version>>,
    java_major: Option<Parsed<Ranged<8, 99>>>,
    spark_uid: Option<Parsed<Ranged<1, 2_147_483_647>>>,
}

impl ImagesLayer {
    /// The `[images]` settings, each image's tags taken from the key `tag_keys` names.
    fn to_config(
        &self,
        tag_keys: &BTreeMap<ImageKind, String>,
    ) -> Result<ImagesConfig, ConfigError> {
        let missing = |key: &str| ConfigError::Defaults(format!("no value for {key}"));
        let name = |layer: &Option<Parsed<RepositoryPath>>, key: &str| {
            layer
                .as_ref()
                .map(|parsed| parsed.0.clone())
                .ok_or_else(|| missing(key))
        };
        Ok(ImagesConfig {
            registry: self
                .registry
                .as_ref()
                .map(|parsed| parsed.0.clone())
                .ok_or_else(|| missing("images.registry"))?,
            tags: ImageKind::ALL
                .into_iter()
                .map(|kind| {
                    let own = match kind {
                        ImageKind::Spark => &self.spark.tags,
                        ImageKind::SparkHs => &self.spark_hs.tags,
                        ImageKind::HiveMetastore => &self.hive_metastore.tags,
                    };
                    let templates = match tag_keys.get(&kind).map(String::as_str) {
                        Some("images.tags") | None => &self.tags,
                        Some(_) => own,
                    };
                    let templates = templates
                        .as_ref()
                        .ok_or_else(|| missing("images.tags"))?
                        .iter()
                        .map(|parsed| parsed.0.clone())
                        .collect();
                    Ok((kind, templates))
                })
                .collect::<Result<_, ConfigError>>()?,
            source: self.source.clone(),
            revision: self.revision.clone(),
            dockerfiles: self.dockerfiles.as_ref().map(PathBuf::from),
            spark_name: name(&self.spark.name, "images.spark.name")?,
            spark_uid: self
                .spark
                .spark_uid
                .as_ref()
                .map(|parsed| parsed.0.as_u32())
                .ok_or_else(|| missing("images.spark.spark_uid"))?,
            spark_hs_name: name(&self.spark_hs.name, "images.spark-hs.name")?,
            event_log_dir: self
                .spark_hs
                .event_log_dir
                .clone()
                .ok_or_else(|| missing("images.spark-hs.event_log_dir"))?,
            hive_metastore_name: name(&self.hive_metastore.name, "images.hive-metastore.name")?,
            hive_metastore_base: self
                .hive_metastore
                .base
                .as_ref()
                .map(|parsed| parsed.0.to_string())
                .ok_or_else(|| missing("images.hive-metastore.base"))?,
            hive_metastore_debug_sudo: self.hive_metastore.debug_sudo.unwrap_or(false),
            pull: self
                .pull
                .as_ref()
                .map(|parsed| parsed.0)
                .ok_or_else(|| missing("images.pull"))?,
            hive_metastore_java_major: match &self.hive_metastore.java_major {
                Some(major) => Some(major.0.as_u32()),
                None => self
                    .hive_metastore
                    .base
                    .as_ref()
                    .and_then(|base| base.0.tag())
                    .and_then(|tag| java_major_of(&tag.to_string())),
            },
        })
    }
}

impl SparkImageLayer {
    fn to_config(&self) -> Result<SparkImageConfig, ConfigError> {
        let java_image_tag = self
            .java_image_tag
            .as_ref()
            .ok_or_else(|| {
                ConfigError::Defaults("no value for images.spark.java_image_tag".into())
            })?
            .0
            .0
            .clone();
        let java_major = match &self.java_major {
            Some(major) => major.0.as_u32(),
            None => java_major_of(&java_image_tag).ok_or_else(|| ConfigError::Value {
                key: "images.spark.java_image_tag",
                message: format!(
                    "cannot tell the Java version of {java_image_tag:?}; set [images.spark] java_major"
                ),
            })?,
        };
        Ok(SparkImageConfig {
            base: self.base.as_ref().map(|parsed| parsed.0.to_string()),
            java_image_tag,
            java_major,
        })
    }
}

/// A credential key: always rejected, because credentials are never written anywhere.
#[derive(Debug)]
struct Refused;

impl<'de> Deserialize<'de> for Refused {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer)?;
        Err(serde::de::Error::custom(
            "[s3a] access_key, secret_key and session_token are refused: S3 credentials are never \
             written into configuration, spark-defaults.conf or an image; remove the key and give \
             the job its credentials through the environment (AWS_ACCESS_KEY_ID / \
             AWS_SECRET_ACCESS_KEY, or a Kubernetes secret)",
        ))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SparkLayer {
    version: Option<Parsed<Version>>,
    package: Option<Parsed<Version>>,
    checksum: Option<Parsed<Digest>>,
    log4j_file: Option<String>,
    hive_metastore_uris: Option<String>,
    java_options_env: Option<Parsed<JavaOptionsEnv>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HadoopLayer {
    version: Option<Parsed<Version>>,
    checksum: Option<Parsed<Digest>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HiveLayer {
    metastore_version: Option<Parsed<Version>>,
    postgresql_jdbc_version: Option<Parsed<Version>>,
    checksum: Option<Parsed<Digest>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorsLayer {
    apache: Option<MirrorList>,
    maven: Option<MirrorList>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkLayer {
    timeout_secs: Option<Parsed<Ranged<1, 3600>>>,
    retries: Option<Parsed<Ranged<0, 10>>>,
    max_artifact_bytes: Option<Parsed<Ranged<1, MAX_ARTIFACT_BYTES>>>,
    min_speed_bytes: Option<Parsed<Ranged<0, MAX_MIN_SPEED_BYTES>>>,
    min_speed_secs: Option<Parsed<Ranged<1, MAX_MIN_SPEED_SECS>>>,
    artifact_deadline_secs: Option<Parsed<Ranged<1, MAX_DEADLINE_SECS>>>,
}

/// The largest `[network] max_artifact_bytes`: 1 TiB.
const MAX_ARTIFACT_BYTES: u64 = 1 << 40;
/// The largest `[network] min_speed_bytes`: 1 GiB/s.
const MAX_MIN_SPEED_BYTES: u64 = 1 << 30;
/// The longest `[network] min_speed_secs` window: one hour.
const MAX_MIN_SPEED_SECS: u64 = 3600;
/// The longest `[network] artifact_deadline_secs`: one week.
const MAX_DEADLINE_SECS: u64 = 7 * 24 * 3600;

impl Layer {
    fn into_config(self, parts: ResolvedParts) -> Result<Config, ConfigError> {
        let missing = |key: &str| ConfigError::Defaults(format!("no value for {key}"));
        Ok(Config {
            config_file: parts.config_file,
            cache_dir: parts.cache_dir,
            home_dir: parts.home_dir,
            offline: parts.offline,
            output: parts.output,
            spark: SparkConfig {
                version: self
                    .spark
                    .version
                    .ok_or_else(|| missing("spark.version"))?
                    .0
                    .0,
                package: self
                    .spark
                    .package
                    .ok_or_else(|| missing("spark.package"))?
                    .0
                    .0,
                checksum: self.spark.checksum.map(|parsed| parsed.0),
                log4j_file: self.spark.log4j_file.map(PathBuf::from),
                hive_metastore_uris: self.spark.hive_metastore_uris,
                java_options_env: self
                    .spark
                    .java_options_env
                    .ok_or_else(|| missing("spark.java_options_env"))?
                    .0,
            },
            hadoop: HadoopConfig {
                version: self.hadoop.version.map(|parsed| parsed.0.0),
                checksum: self.hadoop.checksum.map(|parsed| parsed.0),
            },
            hive: HiveConfig {
                metastore_version: self
                    .hive
                    .metastore_version
                    .ok_or_else(|| missing("hive.metastore_version"))?
                    .0
                    .0,
                postgresql_jdbc_version: self
                    .hive
                    .postgresql_jdbc_version
                    .ok_or_else(|| missing("hive.postgresql_jdbc_version"))?
                    .0
                    .0,
                checksum: self.hive.checksum.map(|parsed| parsed.0),
            },
            mirrors: MirrorsConfig {
                apache: self
                    .mirrors
                    .apache
                    .ok_or_else(|| missing("mirrors.apache"))?
                    .0,
                maven: self
                    .mirrors
                    .maven
                    .ok_or_else(|| missing("mirrors.maven"))?
                    .0,
            },
            network: NetworkConfig {
                timeout: Duration::from_secs(
                    self.network
                        .timeout_secs
                        .ok_or_else(|| missing("network.timeout_secs"))?
                        .0
                        .0,
                ),
                retries: self
                    .network
                    .retries
                    .ok_or_else(|| missing("network.retries"))?
                    .0
                    .as_u32(),
                max_artifact_bytes: self
                    .network
                    .max_artifact_bytes
                    .ok_or_else(|| missing("network.max_artifact_bytes"))?
                    .0
                    .0,
                min_speed_bytes: self
                    .network
                    .min_speed_bytes
                    .ok_or_else(|| missing("network.min_speed_bytes"))?
                    .0
                    .0,
                min_speed_window: Duration::from_secs(
                    self.network
                        .min_speed_secs
                        .ok_or_else(|| missing("network.min_speed_secs"))?
                        .0
                        .0,
                ),
                artifact_deadline: Duration::from_secs(
                    self.network
                        .artifact_deadline_secs
                        .ok_or_else(|| missing("network.artifact_deadline_secs"))?
                        .0
                        .0,
                ),
            },
            extract: crate::extract::Limits {
                max_bytes: self
                    .extract
                    .max_bytes
                    .ok_or_else(|| missing("extract.max_bytes"))?
                    .0
                    .0,
                max_entries: self
                    .extract
                    .max_entries
                    .ok_or_else(|| missing("extract.max_entries"))?
                    .0
                    .0,
                max_ratio: self
                    .extract
                    .max_ratio
                    .ok_or_else(|| missing("extract.max_ratio"))?
                    .0
                    .0,
            },
            s3a: S3aConfig {
                jars_source: self
                    .s3a
                    .jars_source
                    .ok_or_else(|| missing("s3a.jars_source"))?
                    .0,
                hadoop_aws_version: self.s3a.hadoop_aws_version.map(|parsed| parsed.0.0),
                sdk_version: self.s3a.sdk_version.map(|parsed| parsed.0.0),
                endpoint: self
                    .s3a
                    .endpoint
                    .map(|parsed| parsed.0.0.as_str().trim_end_matches('/').to_string()),
                disable_cert_checking: self.s3a.disable_cert_checking.unwrap_or(false),
            },
            verify: VerifyConfig {
                signatures: self.verify.signatures.unwrap_or(true),
                fingerprints: self
                    .verify
                    .fingerprints
                    .unwrap_or_default()
                    .into_iter()
                    .map(|parsed| parsed.0.0)
                    .collect(),
            },
            certs_dir: self.certs.dir.map(PathBuf::from),
            certs_aliases: self
                .certs
                .aliases
                .unwrap_or_default()
                .into_iter()
                .map(|(file, alias)| (file, alias.0.0))
                .collect(),
            patches_dir: self.patches.dir.map(PathBuf::from),
            spark_image: self.images.spark.to_config()?,
            images: self.images.to_config(&parts.tag_keys)?,
            engine: parts.engine,
            push: PushConfig {
                registry_ca: self.push.registry_ca.map(PathBuf::from),
                environment_credentials: parts.push.0,
                docker_config_dir: parts.push.1,
            },
            operator: OperatorConfig {
                s3_secret: self
                    .operator
                    .s3_secret
                    .ok_or_else(|| missing("operator.s3_secret"))?
                    .0,
                service_account: self
                    .operator
                    .service_account
                    .ok_or_else(|| missing("operator.service_account"))?
                    .0,
            },
            shown: parts.shown,
        })
    }
}

/// A value deserialized from a string through `FromStr`, so that a bad value is reported at
/// its own line and column.
#[derive(Debug)]
struct Parsed<T>(T);

impl<'de, T> Deserialize<'de> for Parsed<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = ParsedText::deserialize(deserializer)?;
        let text = match text {
            ParsedText::Text(text) => text,
            ParsedText::Integer(number) => number.to_string(),
        };
        T::from_str(&text)
            .map(Parsed)
            .map_err(serde::de::Error::custom)
    }
}

/// Strings, and integers where a key takes a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum ParsedText {
    Text(String),
    Integer(i64),
}

/// A version or package name: a non-empty run of letters, digits, `.`, `-` and `_`.
#[derive(Debug)]
struct Version(String);

impl FromStr for Version {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let valid = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if valid {
            Ok(Version(text.to_string()))
        } else {
            Err(format!(
                "{text:?} is not a version: use letters, digits, '.', '-' and '_' only"
            ))
        }
    }
}

/// A whole number in `MIN..=MAX`: every numeric setting has a documented sane range, so a
/// typo (`retries = 3000`, `timeout_secs = 0`) is an error at its line, not a hang.
#[derive(Debug, Clone, Copy)]
struct Ranged<const MIN: u64, const MAX: u64>(u64);

impl<const MIN: u64, const MAX: u64> Ranged<MIN, MAX> {
    /// The value as a `u32`; every range used for `u32` settings ends below `u32::MAX`.
    fn as_u32(self) -> u32 {
        u32::try_from(self.0).unwrap_or(u32::MAX)
    }
}

impl<const MIN: u64, const MAX: u64> FromStr for Ranged<MIN, MAX> {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.parse::<u64>() {
            Ok(value) if (MIN..=MAX).contains(&value) => Ok(Ranged(value)),
            _ => Err(format!(
                "{text:?} is not a whole number from {MIN} to {MAX}"
            )),
        }
    }
}

/// An `http` or `https` base URL with no query or fragment.
#[derive(Debug)]
struct MirrorUrl(Url);

impl FromStr for MirrorUrl {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let url = Url::parse(text).map_err(|error| format!("{text:?} is not a URL ({error})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{text:?} is not an http:// or https:// URL"));
        }
        if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
            return Err(format!(
                "{text:?} must be a plain base URL, without query or fragment"
            ));
        }
        Ok(MirrorUrl(url))
    }
}

/// A non-empty list of mirror URLs.
#[derive(Debug)]
struct MirrorList(Vec<Url>);

impl<'de> Deserialize<'de> for MirrorList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let urls = Vec::<Parsed<MirrorUrl>>::deserialize(deserializer)?;
        if urls.is_empty() {
            return Err(serde::de::Error::custom(
                "the mirror list is empty: name at least one URL",
            ));
        }
        Ok(MirrorList(
            urls.into_iter().map(|parsed| parsed.0.0).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        file: Option<&str>,
        env: &[(&str, &str)],
        args: GlobalArgs,
    ) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut args = args;
        if let Some(text) = file {
            let path = dir.path().join("imgforge.toml");
            std::fs::write(&path, text).expect("write config");
            args.config = Some(path);
        }
        args.cache_dir
            .get_or_insert_with(|| dir.path().join("cache"));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with_env(&args, &move |name| {
            env.iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
        })
    }

    #[test]
    fn network_limits_have_documented_defaults_and_ranges() {
        let config = load(None, &[], GlobalArgs::default()).expect("defaults load");
        assert_eq!(config.network.max_artifact_bytes, 4 << 30);
        assert_eq!(config.network.min_speed_bytes, 1024);
        assert_eq!(config.network.min_speed_window, Duration::from_secs(30));
        assert_eq!(config.network.artifact_deadline, Duration::from_secs(3600));
        for (line, expected) in [
            ("max_artifact_bytes = 0", "from 1 to 1099511627776"),
            (
                "max_artifact_bytes = 1099511627777",
                "from 1 to 1099511627776",
            ),
            ("min_speed_bytes = -1", "from 0 to 1073741824"),
            ("min_speed_secs = 0", "from 1 to 3600"),
            ("artifact_deadline_secs = 604801", "from 1 to 604800"),
            ("artifact_deadline_secs = \"soon\"", "from 1 to 604800"),
        ] {
            let error = load(
                Some(&format!("[network]\n{line}\n")),
                &[],
                GlobalArgs::default(),
            )
            .expect_err(line);
            let message = error.to_string();
            assert!(
                message.contains(expected) && message.contains("line 2"),
                "{line}: {message}"
            );
        }
        let config = load(
            Some("[network]\nmin_speed_bytes = 0\n"),
            &[],
            GlobalArgs::default(),
        )
        .expect("0 turns the minimum speed off");
        assert_eq!(config.network.min_speed_bytes, 0);
    }

    #[test]
    fn defaults_reproduce_the_reference_deployment() {
        let config = load(None, &[], GlobalArgs::default()).expect("defaults load");
        assert_eq!(config.spark.version, "3.1.1");
        assert_eq!(config.spark.package, "hadoop3.2");
        assert_eq!(config.hive.metastore_version, "3.0.0");
        assert_eq!(config.hive.postgresql_jdbc_version, "42.2.19");
        assert_eq!(config.mirrors.apache.len(), 2);
        assert_eq!(
            config.mirrors.apache[0].as_str(),
            "https://dlcdn.apache.org/"
        );
        assert!(config.hadoop.version.is_none());
    }

    #[test]
    fn flag_beats_env_beats_file_beats_default() {
        let file = "[mirrors]\napache = [\"http://file.example/a\"]\nmaven = [\"http://file.example/m\"]\n";
        let env = [("IMGFORGE_APACHE_MIRROR", "http://env.example/a")];
        let args = GlobalArgs {
            maven_mirror: Some("http://flag.example/m".into()),
            ..GlobalArgs::default()
        };
        let config = load(Some(file), &env, args).expect("loads");
        assert_eq!(config.mirrors.apache[0].as_str(), "http://env.example/a");
        assert_eq!(config.mirrors.maven[0].as_str(), "http://flag.example/m");
        let source = |key: &str| {
            config
                .shown
                .iter()
                .find(|shown| shown.key == key)
                .map(|shown| shown.source.clone())
        };
        assert_eq!(
            source("mirrors.apache"),
            Some(Source::Env("IMGFORGE_APACHE_MIRROR"))
        );
        assert_eq!(
            source("mirrors.maven"),
            Some(Source::Flag("--maven-mirror"))
        );
        assert_eq!(source("spark.version"), Some(Source::Default));
    }

    #[test]
    fn unknown_key_is_reported_with_line_and_column() {
        let error = load(
            Some("[spark]\nversion = \"3.5.1\"\nflavour = \"x\"\n"),
            &[],
            GlobalArgs::default(),
        )
        .expect_err("unknown key");
        let text = error.to_string();
        assert!(text.contains("line 3, column 1"), "{text}");
        assert!(text.contains("flavour"), "{text}");
    }

    #[test]
    fn bad_url_is_reported_at_its_value() {
        let error = load(
            Some("[mirrors]\napache = [\"ftp://x\"]\n"),
            &[],
            GlobalArgs::default(),
        )
        .expect_err("bad url");
        let text = error.to_string();
        assert!(text.contains("line 2, column 10"), "{text}");
        assert!(text.contains("ftp://x"), "{text}");
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let error = load(
            None,
            &[("IMGFORGE_MAVEN_MIRROR", "not a url")],
            GlobalArgs::default(),
        )
        .expect_err("bad env");
        assert!(
            error.to_string().contains("IMGFORGE_MAVEN_MIRROR"),
            "{error}"
        );
    }

    #[test]
    fn pinned_checksum_parses() {
        let pin = format!("[spark]\nchecksum = \"sha512:{}\"\n", "ab".repeat(64));
        let config = load(Some(&pin), &[], GlobalArgs::default()).expect("loads");
        assert_eq!(
            config.spark.checksum.expect("pinned").to_string(),
            format!("sha512:{}", "ab".repeat(64))
        );
    }

    #[test]
    fn credentials_in_config_are_refused_with_a_pointer_to_the_environment() {
        let error = load(
            Some("[s3a]\nsecret_key = \"hunter2\"\n"),
            &[],
            GlobalArgs::default(),
        )
        .expect_err("refused");
        let text = error.to_string();
        assert!(text.contains("line 2"), "{text}");
        assert!(text.contains("AWS_SECRET_ACCESS_KEY"), "{text}");
        assert!(
            !text.contains("hunter2"),
            "the secret must not be echoed: {text}"
        );
    }

    #[test]
    fn relative_paths_in_a_file_are_relative_to_that_file() {
        let config = load(
            Some("[certs]\ndir = \"my-certs\"\n"),
            &[],
            GlobalArgs::default(),
        )
        .expect("loads");
        let dir = config.certs_dir.expect("set");
        assert!(
            dir.is_absolute() && dir.ends_with("my-certs"),
            "{}",
            dir.display()
        );
    }

    #[test]
    fn java_major_comes_from_the_image_tag_unless_set() {
        let config = load(None, &[], GlobalArgs::default()).expect("defaults");
        assert_eq!(config.spark_image.java_major, 11);
        let config = load(
            Some("[images.spark]\njava_image_tag = \"8-jre-slim\"\n"),
            &[],
            GlobalArgs::default(),
        )
        .expect("loads");
        assert_eq!(config.spark_image.java_major, 8);
        let error = load(
            Some("[images.spark]\njava_image_tag = \"latest\"\n"),
            &[],
            GlobalArgs::default(),
        )
        .expect_err("unknown java");
        assert!(error.to_string().contains("java_major"), "{error}");
    }

    fn tags_of(config: &Config, kind: ImageKind) -> Vec<String> {
        config.images.tags[&kind]
            .iter()
            .map(TagTemplate::to_string)
            .collect()
    }

    #[test]
    fn each_image_has_its_own_default_tags_and_a_file_s_shared_tags_replace_them() {
        let config = load(None, &[], GlobalArgs::default()).expect("defaults");
        let spark_tags = [
            "{spark_version}",
            "{spark_version}-hadoop{hadoop_version}",
            "latest",
        ];
        assert_eq!(tags_of(&config, ImageKind::Spark), spark_tags);
        assert_eq!(tags_of(&config, ImageKind::SparkHs), spark_tags);
        assert_eq!(
            tags_of(&config, ImageKind::HiveMetastore),
            [
                "{hive_version}",
                "{hive_version}-hadoop{hadoop_version}",
                "latest"
            ]
        );

        let config = load(
            Some("[images]\ntags = [\"dev\", \"{hadoop_version}\"]\n"),
            &[],
            GlobalArgs::default(),
        )
        .expect("loads");
        for kind in ImageKind::ALL {
            assert_eq!(
                tags_of(&config, kind),
                ["dev", "{hadoop_version}"],
                "{kind}"
            );
        }
        let shown = config
            .shown
            .iter()
            .find(|shown| shown.key == "images.hive-metastore.tags")
            .expect("shown");
        assert_eq!(shown.value, r#"["dev", "{hadoop_version}"]"#);
        assert!(
            matches!(shown.source, Source::File(_)),
            "{:?}",
            shown.source
        );

        let config = load(
            Some(
                "[images]\ntags = [\"{spark_version}\"]\n\
                 [images.spark-hs]\ntags = [\"hs-{spark_version}\"]\n\
                 [images.hive-metastore]\ntags = [\"{hive_version}\", \"{java_version}\"]\n",
            ),
            &[],
            GlobalArgs::default(),
        )
        .expect("loads");
        assert_eq!(tags_of(&config, ImageKind::Spark), ["{spark_version}"]);
        assert_eq!(tags_of(&config, ImageKind::SparkHs), ["hs-{spark_version}"]);
        assert_eq!(
            tags_of(&config, ImageKind::HiveMetastore),
            ["{hive_version}", "{java_version}"]
        );
        assert_eq!(config.images.hive_metastore_java_major, Some(8));
    }

    #[test]
    fn a_tag_placeholder_that_is_unknown_or_has_no_value_is_reported_at_its_place() {
        for (file, place, expected) in [
            (
                "[images]\ntags = [\"latest\", \"{spark_versoin}\"]\n",
                "line 2, column 19",
                "{spark_versoin} is not a placeholder",
            ),
            (
                "[images.spark]\nname = \"spark\"\ntags = [\"{hive_version}\"]\n",
                "line 3, column 9",
                "{hive_version} has no value for the spark image (it holds no Hive metastore)",
            ),
            (
                "[images.spark-hs]\ntags = [\"x\",\n  \"{hive_version}-y\"]\n",
                "line 3, column 3",
                "{hive_version} has no value for the spark-hs image",
            ),
            (
                "[images]\ntags = [\"{spark_version}\", \"latest\"]\n",
                "line 2, column 9",
                "{spark_version} has no value for the hive-metastore image (it holds no Spark); \
                 give the hive-metastore image its own tags in [images.hive-metastore] tags",
            ),
            (
                "[images.hive-metastore]\ntags = [\"{scala_version}\"]\n",
                "line 2, column 9",
                "{scala_version} has no value for the hive-metastore image (it holds no Scala)",
            ),
            (
                "[images.hive-metastore]\nbase = \"eclipse-temurin:latest\"\ntags = [\"j{java_version}\"]\n",
                "line 3, column 9",
                "cannot tell the Java version of the hive-metastore base \"eclipse-temurin:latest\"; \
                 set [images.hive-metastore] java_major",
            ),
        ] {
            let error = load(Some(file), &[], GlobalArgs::default()).expect_err(file);
            assert!(matches!(error, ConfigError::Invalid { .. }), "{error:?}");
            assert_eq!(error.exit_code(), exit::CONFIG);
            let text = error.to_string();
            assert!(text.contains(place), "{file}: {text}");
            assert!(text.contains(expected), "{file}: {text}");
        }
        let config = load(
            Some(
                "[images.hive-metastore]\nbase = \"eclipse-temurin:latest\"\njava_major = 17\n\
                 tags = [\"j{java_version}\"]\n",
            ),
            &[],
            GlobalArgs::default(),
        )
        .expect("java_major tells the Java version");
        assert_eq!(config.images.hive_metastore_java_major, Some(17));
    }

    #[test]
    fn registry_comes_from_the_flag_then_the_environment_then_the_file() {
        let file = "[images]\nregistry = \"file.example/ns\"\n";
        let config = load(Some(file), &[], GlobalArgs::default()).expect("loads");
        assert_eq!(config.images.registry.as_str(), "file.example/ns");
        let env = [("IMGFORGE_REGISTRY", "env.example:5000/team")];
        let config = load(Some(file), &env, GlobalArgs::default()).expect("loads");
        assert_eq!(config.images.registry.as_str(), "env.example:5000/team");
        let source = |config: &Config| {
            config
                .shown
                .iter()
                .find(|shown| shown.key == "images.registry")
                .map(|shown| shown.source.clone())
        };
        assert_eq!(source(&config), Some(Source::Env("IMGFORGE_REGISTRY")));
        let flagged = config
            .with_names(Some("flag.example/x"), &[], &ImageKind::ALL)
            .expect("valid flag");
        assert_eq!(flagged.images.registry.as_str(), "flag.example/x");
        assert_eq!(source(&flagged), Some(Source::Flag("--registry")));

        let error = load(
            None,
            &[("IMGFORGE_REGISTRY", "http://127.0.0.1:5000/ns")],
            GlobalArgs::default(),
        )
        .expect_err("scheme");
        let text = error.to_string();
        assert!(text.contains("IMGFORGE_REGISTRY"), "{text}");
        assert!(
            text.contains(r#"drop "http://" and write "127.0.0.1:5000/ns""#),
            "{text}"
        );
        let error = load(
            Some("[images]\nregistry = \"https://ghcr.io/me\"\n"),
            &[],
            GlobalArgs::default(),
        )
        .expect_err("scheme in the file");
        let text = error.to_string();
        assert!(
            text.contains("line 2, column 12")
                && text.contains(r#"drop "https://" and write "ghcr.io/me""#),
            "{text}"
        );
        let error = config
            .with_names(Some("https://ghcr.io/me"), &[], &ImageKind::ALL)
            .expect_err("scheme");
        let text = error.to_string();
        assert!(
            text.contains("--registry") && text.contains(r#"write "ghcr.io/me""#),
            "{text}"
        );
        assert!(!text.contains("is not a port"), "{text}");
    }

    #[test]
    fn tag_flags_replace_the_templates_of_the_images_named() {
        let config = load(None, &[], GlobalArgs::default()).expect("defaults");
        let tags = ["{spark_version}-rc1".to_string(), "latest".to_string()];
        let flagged = config
            .with_names(None, &tags, &[ImageKind::SparkHs])
            .expect("spark-hs has a Spark version");
        assert_eq!(tags_of(&flagged, ImageKind::SparkHs), tags);
        assert_eq!(
            tags_of(&flagged, ImageKind::Spark),
            tags,
            "spark-hs finds its spark image under the same tags"
        );
        assert_eq!(
            tags_of(&flagged, ImageKind::HiveMetastore),
            tags_of(&config, ImageKind::HiveMetastore),
            "not named, not renamed"
        );
        let error = config
            .with_names(None, &tags, &ImageKind::ALL)
            .expect_err("hive-metastore holds no Spark");
        let text = error.to_string();
        assert!(
            text.contains("--tag")
                && text.contains("{spark_version} has no value for the hive-metastore image"),
            "{text}"
        );
        let error = config
            .with_names(None, &["{spark}".to_string()], &ImageKind::ALL)
            .expect_err("unknown placeholder");
        assert!(
            error.to_string().contains("{spark} is not a placeholder"),
            "{error}"
        );
        let flagged = config
            .with_names(None, &["v2".to_string()], &ImageKind::ALL)
            .expect("a literal tag names every image");
        for kind in ImageKind::ALL {
            assert_eq!(tags_of(&flagged, kind), ["v2"], "{kind}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let mut layers = Layers::default();
            let _ = layers.merge_toml(&text, &Source::Default, Path::new("x.toml"));
        }

        #[test]
        fn arbitrary_versions_round_trip_or_fail_cleanly(version in "[ -~]{0,20}") {
            let text = format!("[spark]\nversion = {}\n", toml::Value::from(version.clone()));
            let mut layers = Layers::default();
            match layers.merge_toml(&text, &Source::Default, Path::new("x.toml")) {
                Ok(()) => proptest::prop_assert_eq!(
                    layers.values.get("spark.version").map(|(value, _)| value.as_str().map(str::to_owned)),
                    Some(Some(version))
                ),
                Err(ConfigError::Invalid { line, .. }) => proptest::prop_assert_eq!(line, 2),
                Err(other) => proptest::prop_assert!(false, "unexpected error {other}"),
            }
        }
    }
}
