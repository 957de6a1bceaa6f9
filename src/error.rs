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

/// Exit codes, documented in the README. Scripts and CI branch on them.
pub mod exit {
    /// Success.
    pub const SUCCESS: u8 = 0;
    /// An unexpected internal failure.
    pub const INTERNAL: u8 = 1;
    /// Bad configuration or command-line input (clap also uses 2 for usage errors).
    pub const CONFIG: u8 = 2;
    /// A download failed: not found, unreachable, timed out, or not cached while offline.
    pub const NETWORK: u8 = 3;
    /// Integrity: checksum mismatch, unparsable checksum file, damaged cache entry.
    pub const INTEGRITY: u8 = 4;
    /// Local storage: cache directory unusable, disk full.
    pub const STORAGE: u8 = 5;
    /// An image build failed: a step, the engine, a base image, the context.
    pub const BUILD: u8 = 6;
    /// A push failed: registry unreachable or refusing the credentials, TLS, digest mismatch.
    pub const PUSH: u8 = 7;
    /// `build --if-changed`: every image was up to date; nothing was built or pushed.
    pub const NOTHING_TO_DO: u8 = 8;
    /// Interrupted by SIGINT (Ctrl-C); SIGTERM exits 143 and SIGHUP 129 (128 + the signal).
    pub const INTERRUPTED: u8 = 130;
}

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
    pub fn exit_code(&self) -> u8 {
        // Damaged cached content and refused archives are integrity failures wherever they
        // surface (inside a POM resolution, say), not the failure of the stage around them.
        if integrity_in_chain(self) {
            return exit::INTEGRITY;
        }
        match self {
            Error::Config(_) => exit::CONFIG,
            Error::Fetch(error) => Error::fetch_exit_code(error),
            Error::Cache(CacheError::NotACache { .. }) => exit::CONFIG,
            Error::Cache(CacheError::Damaged { .. }) => exit::INTEGRITY,
            Error::Cache(_) => exit::STORAGE,
            Error::Inspect(InspectError::Archive { .. }) => exit::INTEGRITY,
            Error::Inspect(InspectError::Tree { .. }) => exit::STORAGE,
            Error::Inspect(_) => exit::CONFIG,
            Error::Assemble(error) => Error::assemble_exit_code(error),
            Error::Extract(ExtractError::Write { .. } | ExtractError::Replace { .. }) => {
                exit::STORAGE
            }
            Error::Extract(_) => exit::INTEGRITY,
            Error::Certs(CertError::Write { .. } | CertError::CreateDir { .. }) => exit::STORAGE,
            Error::Certs(_) => exit::CONFIG,
            Error::Patch(PatchError::Write { .. }) => exit::STORAGE,
            Error::Patch(_) => exit::CONFIG,
            Error::DamagedCache { .. } => exit::INTEGRITY,
            Error::Docker(DockerError::InvalidTag { .. }) => exit::CONFIG,
            Error::Docker(_) | Error::Context(_) => exit::BUILD,
            Error::Images(_) | Error::ImageData(_) => exit::CONFIG,
            Error::Metastore(MetastoreError::Assemble(inner)) => Error::assemble_exit_code(inner),
            Error::Metastore(MetastoreError::Extract(_)) => exit::INTEGRITY,
            Error::Metastore(MetastoreError::Ignore(_)) => exit::CONFIG,
            Error::Outdated(_) => exit::NETWORK,
            Error::Digests(crate::digests::DigestsError::Write { .. }) => exit::STORAGE,
            Error::Digests(_) => exit::CONFIG,
            Error::Manifest(crate::operator::ManifestError::Write { .. }) => exit::STORAGE,
            Error::Manifest(_) => exit::INTERNAL,
            Error::Lock(crate::lock::LockError::Write { .. }) => exit::STORAGE,
            Error::Lock(_) => exit::CONFIG,
            Error::OutDir(_) => exit::CONFIG,
            Error::Push(PushError::Credentials(_) | PushError::Reference { .. }) => exit::CONFIG,
            Error::Push(PushError::NotBuilt { .. }) => exit::BUILD,
            Error::Push(_) => exit::PUSH,
            Error::Runtime(_) => exit::INTERNAL,
            Error::Interrupted { signal } => signal.exit_code(),
        }
    }

    fn assemble_exit_code(error: &AssembleError) -> u8 {
        match error {
            AssembleError::Fetch(inner) => Error::fetch_exit_code(inner),
            AssembleError::Maven { .. } => exit::NETWORK,
            AssembleError::Extract(_) | AssembleError::MissingInHadoopDist { .. } => {
                exit::INTEGRITY
            }
            AssembleError::Write { .. } => exit::STORAGE,
            AssembleError::Inspect(crate::inspect::InspectError::Archive { .. }) => exit::INTEGRITY,
            AssembleError::Inspect(crate::inspect::InspectError::Tree { .. }) => exit::STORAGE,
            AssembleError::Inspect(_) => exit::CONFIG,
            AssembleError::Patch(_)
            | AssembleError::HadoopPin { .. }
            | AssembleError::HadoopConfigured { .. }
            | AssembleError::SdkPin { .. }
            | AssembleError::Log4jFile { .. }
            | AssembleError::NoLog4jTemplate { .. } => exit::CONFIG,
        }
    }

    fn fetch_exit_code(error: &FetchError) -> u8 {
        match error {
            FetchError::ChecksumMismatch { .. } | FetchError::ChecksumFormat { .. } => {
                exit::INTEGRITY
            }
            FetchError::Cache(CacheError::Damaged { .. }) => exit::INTEGRITY,
            FetchError::Cache(_) | FetchError::Write { .. } => exit::STORAGE,
            FetchError::SignatureMissing { .. } | FetchError::Signature { .. } => exit::INTEGRITY,
            FetchError::Keys { .. } => exit::NETWORK,
            // A body longer than a limit, a refused redirect: the download failed.
            FetchError::TooLarge { .. } | FetchError::Redirect { .. } => exit::NETWORK,
            // More bytes than announced: the content is not what the server said it was.
            FetchError::LongerThanAnnounced { .. } => exit::INTEGRITY,
            FetchError::Client(_) => exit::INTERNAL,
            FetchError::Offline { .. }
            | FetchError::NotFound { .. }
            | FetchError::Unavailable { .. }
            | FetchError::Status { .. } => exit::NETWORK,
        }
    }

    /// The process exit code as [`ExitCode`].
    pub fn exit(&self) -> ExitCode {
        ExitCode::from(self.exit_code())
    }

    /// What the user can do about it, when there is something specific to say.
    pub fn hint(&self) -> Option<String> {
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
            Error::Fetch(FetchError::NotFound { .. }) => Some(
                "check the version in imgforge.toml, or the mirror lists ([mirrors], --apache-mirror, --maven-mirror)".into(),
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
