//! The command line as clap sees it: flags and subcommands, validated for shape only.
//!
//! Nothing here knows how to do the work. [`crate::config`] merges these flags with the
//! environment, `imgforge.toml` and the embedded defaults into a [`crate::config::Config`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// imgforge: build Spark images and artifacts, reproducibly.
#[derive(Debug, Parser)]
#[command(name = "imgforge", version, about, long_about = None)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options accepted before or after any subcommand.
#[derive(Debug, Args, Clone, Default)]
pub struct GlobalArgs {
    /// Configuration file [env: IMGFORGE_CONFIG] [default: ./imgforge.toml when present]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Download cache directory [env: IMGFORGE_CACHE_DIR] [default: the XDG cache dir]/imgforge
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use only the cache; fail naming whatever is missing from it
    #[arg(long, global = true)]
    pub offline: bool,
    /// Plain progress lines instead of progress bars
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Print only errors
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print more detail (repeat for debug output)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print a machine-readable JSON report on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// Base URL of an Apache dist mirror; replaces [mirrors] apache [env: IMGFORGE_APACHE_MIRROR]
    #[arg(long, global = true, value_name = "URL")]
    pub apache_mirror: Option<String>,
    /// Base URL of a Maven 2 repository; replaces [mirrors] maven [env: IMGFORGE_MAVEN_MIRROR]
    #[arg(long, global = true, value_name = "URL")]
    pub maven_mirror: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter imgforge.toml here (or at --config); never overwrites one
    Init,
    /// Download and verify the release artifacts a build needs
    Fetch {
        /// Which artifacts
        #[arg(value_enum, default_value_t = FetchTarget::All)]
        target: FetchTarget,
    },
    /// Prepare a patched Spark distribution: S3A jars, conf files, CA certificates, patches
    Prepare(PrepareArgs),
    /// Build the spark, spark-hs and hive-metastore images through the Docker Engine API
    Build(BuildArgs),
    /// Push built images to their registry, verifying each tag's digest
    Push(PushArgs),
    /// Write a Spark operator manifest running the pushed spark image, pinned by digest
    Manifest {
        /// Which resource
        #[command(subcommand)]
        kind: ManifestKind,
    },
    /// Show what the Spark distribution bundles and which S3A jars will be added
    Resolve,
    /// Check CA certificates, or generate a development CA
    Certs {
        /// What to do
        #[command(subcommand)]
        action: CertsAction,
    },
    /// Resolve everything a build uses into imgforge.lock (commit it next to imgforge.toml)
    Lock,
    /// Report newer upstream releases (never changes versions)
    Outdated,
    /// Inspect or maintain the download cache
    Cache {
        /// What to do with the cache
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Inspect the effective configuration
    Config {
        /// What to show
        #[command(subcommand)]
        action: ConfigAction,
    },
}

/// The artifact groups `imgforge fetch` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FetchTarget {
    /// The Spark binary distribution
    Spark,
    /// The Hadoop distribution matching Spark's bundled Hadoop
    Hadoop,
    /// The Hive standalone metastore distribution
    Hive,
    /// hadoop-aws (jar and POM) and the PostgreSQL JDBC driver from Maven
    Jars,
    /// Everything the default build needs
    All,
}

/// `imgforge prepare …`
#[derive(Debug, Clone, Args)]
pub struct PrepareArgs {
    /// Output folder [default: ./build/spark-<version>-bin-<package>]
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
    /// Print a unified diff of every change instead of writing the tree
    #[arg(long)]
    pub(crate) diff: bool,
    /// Replace --out even when it is a non-empty directory imgforge did not make (never /,
    /// $HOME, the current directory or its parents, or the cache)
    #[arg(long)]
    pub(crate) force: bool,
    /// CA certificates to trust (*.crt, *.pem) [default: [certs] dir, else ./certs when present]
    #[arg(long, value_name = "DIR")]
    pub(crate) certs: Option<PathBuf>,
}

/// `imgforge build …`
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Which images, one or several (built in dependency order: spark, spark-hs on it,
    /// hive-metastore) [default: all]
    #[arg(value_enum, value_name = "TARGET")]
    pub(crate) targets: Vec<BuildTarget>,
    /// Build every step afresh, ignoring the engine's layer cache; every image asked for is
    /// built, unchanged or not (with --if-changed: only those that changed)
    #[arg(long)]
    pub(crate) no_cache: bool,
    /// Pull the base images first even when the engine has them, like `docker build --pull`;
    /// --pull=missing or --pull=never override [images] pull [default: the setting, "missing"]
    #[arg(
        long,
        value_name = "WHEN",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "always",
        value_parser = <PullPolicy as std::str::FromStr>::from_str
    )]
    pub(crate) pull: Option<PullPolicy>,
    /// Push the images after building them (as `imgforge push` does)
    #[arg(long)]
    pub(crate) push: bool,
    /// For scheduled runs: compare with the image in the registry (with --push) instead of
    /// the engine, check base images upstream, and push only what was built; exit 0 when
    /// nothing changed (see --exit-code)
    #[arg(long)]
    pub(crate) if_changed: bool,
    /// With --if-changed: exit 8 when every image was up to date and nothing was built or
    /// pushed, like `git diff --exit-code`, for scripts that branch on it
    #[arg(long, requires = "if_changed")]
    pub(crate) exit_code: bool,
    /// Refuse to build when anything would differ from imgforge.lock, listing each difference
    #[arg(long)]
    pub(crate) locked: bool,
    /// Build every image asked for even when the engine already holds it with the same
    /// inputs
    #[arg(long)]
    pub(crate) force: bool,
    /// Replace the trees under ./build even when one is a non-empty directory imgforge did
    /// not make (everything in it is deleted)
    #[arg(long)]
    pub(crate) force_replace: bool,
    /// With --push: write every pushed reference to FILE as JSON (name, image, tag, digest,
    /// platform), replacing it only once every push was verified
    #[arg(long, value_name = "FILE", requires = "push")]
    pub(crate) digests_file: Option<PathBuf>,
    /// Name the images under this registry and namespace instead of [images] registry, e.g.
    /// registry.gitlab.com/gha1 (no scheme) [env: IMGFORGE_REGISTRY]
    #[arg(long, value_name = "REGISTRY")]
    pub(crate) registry: Option<String>,
    /// Tag template replacing the configured tags of the images built (repeat for more),
    /// e.g. --tag '{spark_version}-rc1' --tag latest
    #[arg(long = "tag", value_name = "TEMPLATE")]
    pub(crate) tags: Vec<String>,
    /// Registry credentials and TLS, used with --push
    #[command(flatten)]
    pub(crate) access: RegistryArgs,
}

/// `imgforge push …`
#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Which images, one or several (pushed in dependency order) [default: all]
    #[arg(value_enum, value_name = "TARGET")]
    pub(crate) targets: Vec<BuildTarget>,
    /// Push to this registry and namespace instead of [images] registry (the images are
    /// tagged for it first), e.g. registry.gitlab.com/gha1 (no scheme) [env: IMGFORGE_REGISTRY]
    #[arg(long, value_name = "REGISTRY")]
    pub(crate) registry: Option<String>,
    /// Tag template replacing the configured tags of the images pushed (repeat for more;
    /// the images are tagged with them first)
    #[arg(long = "tag", value_name = "TEMPLATE")]
    pub(crate) tags: Vec<String>,
    /// Write every pushed reference to FILE as JSON (name, image, tag, digest, platform),
    /// replacing it only once every push was verified
    #[arg(long, value_name = "FILE")]
    pub(crate) digests_file: Option<PathBuf>,
    /// Registry credentials and TLS
    #[command(flatten)]
    pub(crate) access: RegistryArgs,
}

/// The resources `imgforge manifest` writes.
#[derive(Debug, Clone, Subcommand)]
pub enum ManifestKind {
    /// A SparkApplication (sparkoperator.k8s.io/v1beta2)
    SparkApplication(ManifestArgs),
    /// A ScheduledSparkApplication (sparkoperator.k8s.io/v1beta2)
    ScheduledSparkApplication(ScheduledManifestArgs),
}

/// `imgforge manifest spark-application …`
#[derive(Debug, Clone, Args)]
pub struct ManifestArgs {
    /// metadata.name of the resource
    #[arg(long, value_name = "NAME")]
    pub(crate) name: String,
    /// metadata.namespace of the resource
    #[arg(long, value_name = "NAMESPACE", default_value = "default")]
    pub(crate) namespace: String,
    /// spec.mainClass, for JVM applications
    #[arg(long, value_name = "CLASS")]
    pub(crate) main_class: Option<String>,
    /// spec.mainApplicationFile, e.g. local:///opt/spark/examples/jars/app.jar
    #[arg(long, value_name = "URI")]
    pub(crate) main_application_file: String,
    /// Take the spark image's digest from this file (written by push --digests-file)
    /// instead of asking the registry
    #[arg(long, value_name = "FILE", conflicts_with = "registry")]
    pub(crate) digests_file: Option<PathBuf>,
    /// Ask this registry and namespace for the digest instead of [images] registry (as
    /// push --registry)
    #[arg(long, value_name = "REGISTRY")]
    pub(crate) registry: Option<String>,
    /// Write the manifest to FILE (whole or not at all) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Registry credentials and TLS, for reading the digest
    #[command(flatten)]
    pub(crate) access: RegistryArgs,
}

/// `imgforge manifest scheduled-spark-application …`
#[derive(Debug, Clone, Args)]
pub struct ScheduledManifestArgs {
    /// Everything a SparkApplication takes
    #[command(flatten)]
    pub(crate) application: ManifestArgs,
    /// spec.schedule: a cron expression ("0 2 * * *") or a descriptor ("@every 6h")
    #[arg(long, value_name = "SCHEDULE")]
    pub(crate) schedule: String,
}

/// How imgforge authenticates to a registry and trusts its certificate.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct RegistryArgs {
    /// Registry user name; the password is read from stdin (requires --password-stdin)
    #[arg(long, value_name = "NAME", requires = "password_stdin")]
    pub(crate) username: Option<String>,
    /// Read the registry password (or token) from stdin (requires --username)
    #[arg(long, requires = "username")]
    pub(crate) password_stdin: bool,
    /// A CA certificate (PEM) to trust for the registry, besides the system store
    /// [default: [push] registry_ca]
    #[arg(long, value_name = "FILE")]
    pub(crate) registry_ca: Option<PathBuf>,
}

/// The images `imgforge build` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildTarget {
    /// The patched Spark distribution image
    Spark,
    /// The Spark history server, on the spark image
    SparkHs,
    /// The standalone Hive metastore
    HiveMetastore,
    /// All three, in dependency order
    All,
}

/// `imgforge certs …`
#[derive(Debug, Clone, Subcommand)]
pub enum CertsAction {
    /// Check every certificate that would be imported
    Check {
        /// Folder to check [default: [certs] dir, else ./certs]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Generate a development CA and a server certificate signed by it
    Init {
        /// Where to write ca.crt, ca.key, server.crt and server.key
        #[arg(long, value_name = "DIR", default_value = "dev-ca")]
        out: PathBuf,
        /// DNS name or IP address of the server (repeat for more)
        #[arg(long = "host", value_name = "NAME", required = true)]
        hosts: Vec<String>,
        /// Overwrite existing files
        #[arg(long)]
        force: bool,
    },
}

/// `imgforge cache …`
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum CacheAction {
    /// Print the cache directory
    Path,
    /// List cached artifacts
    Ls,
    /// Re-hash every cached artifact and report any that no longer match
    Verify,
    /// Remove every cached artifact (waits for running imgforge processes)
    Clean,
}

/// `imgforge config …`
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration and where each value came from
    Show,
}

/// When the engine pulls a base image (`[images] pull`, `--pull`), as `docker build` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Pull only the base images the engine does not have (the default).
    #[default]
    Missing,
    /// Pull every base image before building, as `docker build --pull` does: a tag moved
    /// upstream (a security fix) reaches the build.
    Always,
    /// Never pull: build only from images already on the engine (offline machines).
    Never,
}

impl std::str::FromStr for PullPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "missing" => Ok(PullPolicy::Missing),
            "always" => Ok(PullPolicy::Always),
            "never" => Ok(PullPolicy::Never),
            other => Err(format!(
                "{other:?} is not a pull policy: use \"missing\", \"always\" or \"never\""
            )),
        }
    }
}

impl std::fmt::Display for PullPolicy {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            PullPolicy::Missing => "missing",
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
        })
    }
}
