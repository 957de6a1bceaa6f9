//! The top-level error: every stage's error in one enum, each mapped to a documented exit
//! code and, where a user can act on it, a hint.

use std::io;
use std::process::ExitCode;

use crate::assemble::AssembleError;
use crate::cache::CacheError;
use crate::certs::CertError;
use crate::config::ConfigError;
use crate::context::ContextError;
use crate::docker::DockerError;
use crate::extract::ExtractError;
use crate::fetch::FetchError;
use crate::images::{ImageDataError, ImagesError};
use crate::inspect::InspectError;
use crate::metastore::MetastoreError;
use crate::patch::PatchError;
use crate::push::PushError;

pub(crate) use crate::exit;

/// Anything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Downloading and verifying.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The cache.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Reading facts out of a distribution.
    #[error(transparent)]
    Inspect(#[from] InspectError),
    /// Assembling the prepared tree.
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    /// Unpacking an archive.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// CA certificates.
    #[error(transparent)]
    Certs(#[from] CertError),
    /// Patching entrypoint.sh and the Dockerfile.
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// Talking to the Docker engine or building an image.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The build context.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// Image names and tags.
    #[error(transparent)]
    Images(#[from] ImagesError),
    /// An overriding image definition.
    #[error(transparent)]
    ImageData(#[from] ImageDataError),
    /// The hive-metastore context.
    #[error(transparent)]
    Metastore(#[from] MetastoreError),
    /// Pulling base images.
    #[error(transparent)]
    Pull(#[from] crate::pull::PullError),
    /// Pushing images.
    #[error(transparent)]
    Push(#[from] PushError),
    /// The digests file.
    #[error(transparent)]
    Digests(#[from] crate::digests::DigestsError),
    /// An operator manifest.
    #[error(transparent)]
    Manifest(#[from] crate::operator::ManifestError),
    /// The lock file.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// An output directory imgforge may not replace.
    #[error(transparent)]
    OutDir(#[from] crate::outdir::OutDirError),
    /// Reading upstream release listings.
    #[error(transparent)]
    Outdated(#[from] crate::outdated::OutdatedError),
    /// `imgforge init` wrote nothing.
    #[error(transparent)]
    Init(#[from] crate::starter::StarterError),
    /// `cache verify` found damaged entries (they were removed).
    #[error(
        "{count} cached artifact(s) did not match their recorded digest and were removed; the next fetch downloads them again"
    )]
    DamagedCache {
        /// How many.
        count: usize,
    },
    /// The async runtime could not start or a blocking task died.
    #[error("internal error: {0}")]
    Runtime(String),
    /// SIGINT (Ctrl-C), SIGTERM or SIGHUP.
    #[error("interrupted by {signal}; nothing partial was kept")]
    Interrupted {
        /// Which signal.
        signal: crate::interrupt::Signal,
    },
}

impl Error {
    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        // Damaged cached content and refused archives are integrity failures wherever they
        // surface (inside a POM resolution, say), not the failure of the stage around them.
        if integrity_in_chain(self) {
            return exit::INTEGRITY;
        }
        match self {
            Error::Config(error) => error.exit_code(),
            Error::Fetch(error) => error.exit_code(),
            Error::Cache(error) => error.exit_code(),
            Error::Inspect(error) => error.exit_code(),
            Error::Assemble(error) => error.exit_code(),
            Error::Extract(error) => error.exit_code(),
            Error::Certs(error) => error.exit_code(),
            Error::Patch(error) => error.exit_code(),
            Error::Docker(error) => error.exit_code(),
            Error::Context(error) => error.exit_code(),
            Error::Images(error) => error.exit_code(),
            Error::ImageData(error) => error.exit_code(),
            Error::Metastore(error) => error.exit_code(),
            Error::Pull(error) => error.exit_code(),
            Error::Push(error) => error.exit_code(),
            Error::Digests(error) => error.exit_code(),
            Error::Manifest(error) => error.exit_code(),
            Error::Lock(error) => error.exit_code(),
            Error::OutDir(error) => error.exit_code(),
            Error::Outdated(error) => error.exit_code(),
            Error::Init(error) => error.exit_code(),
            Error::DamagedCache { .. } => exit::INTEGRITY,
            Error::Runtime(_) => exit::INTERNAL,
            Error::Interrupted { signal } => signal.exit_code(),
        }
    }

    /// The process exit code as [`ExitCode`].
    pub fn exit(&self) -> ExitCode {
        ExitCode::from(self.exit_code())
    }

    /// A stable, machine-readable name for this error's class (the `kind` of a `--json`
    /// error report): the class of its exit code (`config`, `network`, `integrity`,
    /// `storage`, `build`, `push`, `internal`, `interrupted`), refined as
    /// `<class>.<detail>` for the failures scripts commonly tell apart. The README lists
    /// every value; [`KINDS`] is that list.
    pub fn kind(&self) -> &'static str {
        let class = class_of(self.exit_code());
        let detail = match self {
            Error::Fetch(FetchError::NotFound { .. }) => "network.not_found",
            Error::Fetch(FetchError::Unavailable { .. }) => "network.unavailable",
            Error::Fetch(FetchError::Offline { .. }) => "network.offline",
            Error::Fetch(FetchError::ChecksumMismatch { .. }) => "integrity.checksum_mismatch",
            Error::Fetch(FetchError::SignatureMissing { .. } | FetchError::Signature { .. }) => {
                "integrity.signature"
            }
            Error::DamagedCache { .. } => "integrity.damaged_cache",
            Error::Docker(DockerError::Unreachable { .. } | DockerError::ConnectTimeout { .. }) => {
                "build.engine_unreachable"
            }
            Error::Docker(
                DockerError::BaseImageMissing { .. } | DockerError::BaseImageUnavailable { .. },
            ) => "build.base_image_missing",
            Error::Docker(
                DockerError::StepFailed { .. } | DockerError::CertificateRejected { .. },
            ) => "build.step_failed",
            Error::Push(PushError::DigestMismatch { .. }) => "push.digest_mismatch",
            Error::Lock(crate::lock::LockError::Differs { .. }) => "config.lock_differs",
            Error::Init(crate::starter::StarterError::Exists { .. })
            | Error::Certs(CertError::Exists { .. }) => "config.exists",
            _ => class,
        };
        // A detail always refines the class the exit code says (damaged content found inside
        // another stage's error keeps the integrity class, for instance).
        match detail.split('.').next() == Some(class) {
            true => detail,
            false => class,
        }
    }

    /// What the user can do about it, when there is something specific to say.
    pub(crate) fn hint(&self) -> Option<String> {
        let io_error = match self {
            Error::Cache(error) | Error::Fetch(FetchError::Cache(error)) => error.io_error(),
            Error::Fetch(FetchError::Write { source, .. }) => Some(source),
            _ => None,
        };
        if let Some(error) = io_error {
            return match error.kind() {
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Some(
                    "free space on that disk, or point --cache-dir (IMGFORGE_CACHE_DIR) at a larger one".into(),
                ),
                _ => Some("choose a writable cache directory with --cache-dir or IMGFORGE_CACHE_DIR".into()),
            };
        }
        match self {
            Error::Lock(crate::lock::LockError::Read { .. }) => {
                Some("run `imgforge lock` to write it, and commit it next to imgforge.toml".into())
            }
            // Whether every mirror said 404 or none could be reached, the same things to check.
            Error::Fetch(FetchError::NotFound { .. } | FetchError::Unavailable { .. }) => Some(
                "check the version in imgforge.toml and the mirror lists ([mirrors], --apache-mirror, --maven-mirror); with the artifacts already in the cache, --offline needs no mirror".into(),
            ),
            Error::Fetch(FetchError::Offline { .. }) => Some(
                "run `imgforge fetch` once with network access (without --offline) to fill the cache".into(),
            ),
            Error::Fetch(FetchError::ChecksumMismatch { .. }) => Some(
                "the download was discarded; if a checksum is pinned in imgforge.toml, check it, otherwise try another mirror".into(),
            ),
            _ => None,
        }
    }
}

/// Every value [`Error::kind`] can take, and `config.usage` for a command line clap refuses
/// (documented in the README's JSON section).
pub const KINDS: &[&str] = &[
    "internal",
    "interrupted",
    "config",
    "config.usage",
    "config.lock_differs",
    "config.exists",
    "network",
    "network.not_found",
    "network.unavailable",
    "network.offline",
    "integrity",
    "integrity.checksum_mismatch",
    "integrity.signature",
    "integrity.damaged_cache",
    "storage",
    "build",
    "build.engine_unreachable",
    "build.base_image_missing",
    "build.step_failed",
    "push",
    "push.digest_mismatch",
];

/// The class name of an exit code, the prefix of every [`Error::kind`].
fn class_of(code: u8) -> &'static str {
    match code {
        exit::CONFIG => "config",
        exit::NETWORK => "network",
        exit::INTEGRITY => "integrity",
        exit::STORAGE => "storage",
        exit::BUILD => "build",
        exit::PUSH => "push",
        code if code > 128 => "interrupted",
        _ => "internal",
    }
}

/// Whether `error` or anything it was caused by is damaged cached content or an archive
/// refused by its limits.
fn integrity_in_chain(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(cause) = current {
        if matches!(
            cause.downcast_ref::<CacheError>(),
            Some(CacheError::Damaged { .. })
        ) || matches!(
            cause.downcast_ref::<ExtractError>(),
            Some(ExtractError::Damaged { .. } | ExtractError::Limit { .. })
        ) {
            return true;
        }
        current = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_errors() -> Vec<Error> {
        vec![
            FetchError::NotFound {
                name: "spark.tgz".into(),
                tried: vec![],
            }
            .into(),
            FetchError::Unavailable {
                name: "spark.tgz".into(),
                tried: vec![],
            }
            .into(),
            FetchError::Offline {
                names: vec![],
                cache_dir: "/cache".into(),
            }
            .into(),
            FetchError::Status {
                url: "http://mirror".into(),
                status: 403,
            }
            .into(),
            crate::lock::LockError::Differs {
                path: "imgforge.lock".into(),
                differences: vec![],
            }
            .into(),
            crate::starter::StarterError::Exists {
                path: "imgforge.toml".into(),
            }
            .into(),
            Error::DamagedCache { count: 1 },
            Error::Runtime("a bug".into()),
            Error::Interrupted {
                signal: crate::interrupt::Signal::Terminate,
            },
        ]
    }

    #[test]
    fn every_kind_is_listed_and_starts_with_the_class_of_its_exit_code() {
        let expected = [
            "network.not_found",
            "network.unavailable",
            "network.offline",
            "network",
            "config.lock_differs",
            "config.exists",
            "integrity.damaged_cache",
            "internal",
            "interrupted",
        ];
        for (error, expected) in sample_errors().iter().zip(expected) {
            let kind = error.kind();
            assert_eq!(kind, expected, "{error:?}");
            assert!(KINDS.contains(&kind), "{kind} is not in KINDS");
            assert!(kind.starts_with(class_of(error.exit_code())), "{kind}");
        }
    }

    #[test]
    fn the_readme_documents_exactly_the_kinds() {
        let readme = include_str!("../README.md");
        let documented: std::collections::BTreeSet<&str> = readme
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split_once("` | "))
            .map(|(kind, rest)| (kind, rest.split(" | ").next().unwrap_or_default()))
            .filter(|(_, code)| {
                code.split(", ")
                    .all(|code| !code.is_empty() && code.chars().all(|c| c.is_ascii_digit()))
            })
            .map(|(kind, _)| kind)
            .collect();
        let listed: std::collections::BTreeSet<&str> = KINDS.iter().copied().collect();
        assert_eq!(documented, listed);
    }
}
