//! Base images on the engine before a build: pulled as `docker build` would pull them
//! (`[images] pull`, `--pull`), with the credentials of the base image's own registry.
//!
//! The credentials given for the push registry (`--username`, `IMGFORGE_REGISTRY_USER` /
//! `IMGFORGE_REGISTRY_PASSWORD`) are sent only when a base image lives on that same registry;
//! for any other registry only the docker CLI's `config.json` (auths, credsStore, credHelpers)
//! is asked, by that registry's name — a password never travels to a registry it was not
//! given for.

use std::collections::BTreeMap;

use bollard::auth::DockerCredentials;

use crate::cli::PullPolicy;
use crate::credentials::{self, Credential, CredentialError, CredentialInputs};
use crate::docker::{self, DockerError, Engine};
use crate::progress::Reporter;
use crate::reference::{ImageReference, Registry};

/// Where the credentials for pulling come from.
#[derive(Debug, Clone, Default)]
pub struct PullAccess {
    /// The credential sources, as for pushing.
    pub credentials: CredentialInputs,
    /// The registry the flag and environment credentials belong to (the push registry).
    pub own_registry: Option<Registry>,
    /// An extra CA for imgforge's own registry calls (`--registry-ca`, `[push] registry_ca`).
    pub registry_ca: Option<std::path::PathBuf>,
    /// Connect and read timeout of those calls.
    pub timeout: std::time::Duration,
}

impl PullAccess {
    /// The sources of `config` (environment, `config.json`), with `flags` (`--username` and
    /// `--password-stdin`) when given, for the push registry `[images] registry` names.
    pub fn new(
        config: &crate::config::Config,
        flags: Option<(String, crate::credentials::Secret)>,
    ) -> PullAccess {
        let own_registry = format!("{}/x", config.images.registry)
            .parse::<crate::reference::Repository>()
            .ok()
            .map(|repository| repository.registry().clone());
        PullAccess {
            credentials: CredentialInputs {
                flags,
                environment: config.push.environment_credentials.clone(),
                docker_config_dir: config.push.docker_config_dir.clone(),
            },
            own_registry,
            registry_ca: config.push.registry_ca.clone(),
            timeout: config.network.timeout,
        }
    }

    /// The sources that may be asked for `registry`'s credentials.
    pub(crate) fn sources_for(&self, registry: &Registry) -> CredentialInputs {
        let own = self.own_registry.as_ref() == Some(registry);
        CredentialInputs {
            flags: self.credentials.flags.clone().filter(|_| own),
            environment: self.credentials.environment.clone().filter(|_| own),
            docker_config_dir: self.credentials.docker_config_dir.clone(),
        }
    }
}

/// What can go wrong making a base image present.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The engine refused or failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The credentials could not be looked up.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// With `--if-changed`, a base image's registry could not say what its tag holds now.
    #[error(
        "cannot check base image {image} against its registry {registry}, so --if-changed cannot tell whether it moved; pass --offline to treat the engine's copy as current, or set [images] pull = \"never\" for a base that exists only on this engine"
    )]
    Unchecked {
        /// The base image.
        image: String,
        /// Its registry.
        registry: String,
        /// What went wrong.
        #[source]
        source: Box<crate::push::PushError>,
    },
    /// With `--if-changed`, a base image's tag is not in its registry.
    #[error(
        "base image {image} is not in its registry {registry} (no tag {tag} there), so --if-changed cannot tell whether it moved; set [images] pull = \"never\" for a base that exists only on this engine"
    )]
    NotInRegistry {
        /// The base image.
        image: String,
        /// Its registry.
        registry: String,
        /// The tag.
        tag: String,
    },
    /// A base image is not a valid reference.
    #[error("base image {image:?} is not a valid image reference: {message}")]
    InvalidReference {
        /// The reference as configured or read from a Dockerfile.
        image: String,
        /// Why.
        message: String,
    },
}

impl PullError {
    /// The exit code a run ends with when it fails with this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            PullError::Docker(error) => error.exit_code(),
            PullError::Unchecked { .. } | PullError::NotInRegistry { .. } => crate::exit::PUSH,
            PullError::Credentials(_) | PullError::InvalidReference { .. } => crate::exit::CONFIG,
        }
    }
}

/// Makes base images present on one engine as the policy says, each at most once per run.
pub struct Puller<'a> {
    engine: &'a Engine,
    policy: PullPolicy,
    access: PullAccess,
    /// Reference → the engine's image ID, for the images already made present.
    ids: tokio::sync::Mutex<BTreeMap<String, String>>,
    /// Compare a present base with its registry's current digest (`--if-changed`), and
    /// whether an unreachable registry is then a warning (`--offline`) rather than an error.
    upstream: Option<Upstream>,
}

/// How a present base image is compared with its registry.
#[derive(Debug, Clone, Copy)]
struct Upstream {
    offline: bool,
}

impl<'a> Puller<'a> {
    /// A puller for `engine`.
    pub fn new(engine: &'a Engine, policy: PullPolicy, access: PullAccess) -> Puller<'a> {
        Puller {
            engine,
            policy,
            access,
            ids: tokio::sync::Mutex::new(BTreeMap::new()),
            upstream: None,
        }
    }

    /// Also compare each present base image with what its tag holds in the registry now, and
    /// pull it when the tag moved (`--if-changed` with `[images] pull = "missing"`): a new
    /// upstream build changes the image ID, so the images on it are rebuilt. An unreachable
    /// registry is an error, or with `offline` a warning naming the base.
    pub fn checking_upstream(mut self, offline: bool) -> Puller<'a> {
        if self.policy == PullPolicy::Missing {
            self.upstream = Some(Upstream { offline });
        }
        self
    }

    /// Make `reference` present on the engine — pulling it when it is missing, or always with
    /// [`PullPolicy::Always`]; never with [`PullPolicy::Never`], where a missing image is an
    /// error naming the setting — and return its image ID.
    pub async fn ensure(
        &self,
        reference: &str,
        reporter: &dyn Reporter,
    ) -> Result<String, PullError> {
        // Held across the pull: one image is pulled once even when two builds ask at once.
        let mut ids = self.ids.lock().await;
        if let Some(id) = ids.get(reference) {
            return Ok(id.clone());
        }
        let present = present_id(self.engine, reference).await?;
        let present = match (present, self.upstream) {
            (Some(id), Some(upstream)) => self.unmoved(reference, id, upstream, reporter).await?,
            (present, _) => present,
        };
        let id = match (self.policy, present) {
            (PullPolicy::Missing, Some(id)) => id,
            (PullPolicy::Never, Some(id)) => id,
            (PullPolicy::Never, None) => {
                return Err(DockerError::BaseImageMissing {
                    image: reference.to_string(),
                    endpoint: self.engine.endpoint().to_string(),
                }
                .into());
            }
            (PullPolicy::Always, _) | (PullPolicy::Missing, None) => {
                self.pull(reference, reporter).await?;
                present_id(self.engine, reference).await?.ok_or_else(|| {
                    DockerError::ImageNotFound {
                        reference: reference.to_string(),
                        endpoint: self.engine.endpoint().to_string(),
                    }
                })?
            }
        };
        ids.insert(reference.to_string(), id.clone());
        Ok(id)
    }

    /// The engine's ID of `reference` without pulling it, `absent` when the engine lacks it
    /// (a base image of an image this run does not build).
    pub async fn present(&self, reference: &str) -> Result<String, PullError> {
        if let Some(id) = self.ids.lock().await.get(reference) {
            return Ok(id.clone());
        }
        Ok(present_id(self.engine, reference)
            .await?
            .unwrap_or_else(|| "absent".to_string()))
    }

    /// `Some(id)` when the engine's copy of `reference` is what its registry serves now,
    /// `None` when the tag moved (so it is pulled).
    async fn unmoved(
        &self,
        reference: &str,
        id: String,
        upstream: Upstream,
        reporter: &dyn Reporter,
    ) -> Result<Option<String>, PullError> {
        let parsed = parse(reference)?;
        // A digest-pinned base cannot move.
        let Some(tag) = parsed.tag().filter(|_| parsed.digest().is_none()) else {
            return Ok(Some(id));
        };
        let registry = parsed.registry().clone();
        let credentials = self.credentials(&registry).await?;
        let current = async {
            let options = crate::push::PushOptions {
                registry_ca: self.access.registry_ca.clone(),
                timeout: self.access.timeout,
                ..crate::push::PushOptions::default()
            };
            let client = crate::push::registry_client(
                self.engine,
                &registry.to_string(),
                &options,
                credentials,
            )
            .await?;
            let digest = client
                .current_digest(parsed.repository().path(), &tag.to_string())
                .await?;
            Ok::<_, crate::push::PushError>(digest)
        }
        .await;
        let current = match current {
            Ok(Some(digest)) => digest,
            Ok(None) => {
                return Err(PullError::NotInRegistry {
                    image: reference.to_string(),
                    registry: registry.to_string(),
                    tag: tag.to_string(),
                });
            }
            Err(source) => {
                let error = PullError::Unchecked {
                    image: reference.to_string(),
                    registry: registry.to_string(),
                    source: Box::new(source),
                };
                if !upstream.offline {
                    return Err(error);
                }
                let cause = std::error::Error::source(&error)
                    .map(ToString::to_string)
                    .unwrap_or_default();
                reporter.warn(&format!(
                    "base image {reference} was not checked against {registry} ({cause}); --offline: the engine's copy is treated as current"
                ));
                return Ok(Some(id));
            }
        };
        let recorded = docker::inspect(self.engine, reference)
            .await?
            .repo_digests
            .unwrap_or_default();
        if records(&recorded, parsed.repository(), &current) {
            return Ok(Some(id));
        }
        reporter.info(&format!(
            "base image {reference} moved upstream (its registry serves {current}); pulling it"
        ));
        Ok(None)
    }

    /// The credentials for `registry` from the sources allowed for it (a helper may run).
    async fn credentials(
        &self,
        registry: &Registry,
    ) -> Result<Option<crate::credentials::Credentials>, PullError> {
        let sources = self.access.sources_for(registry);
        Ok(credentials::lookup_blocking(sources, &registry.to_string()).await?)
    }

    async fn pull(&self, reference: &str, reporter: &dyn Reporter) -> Result<(), PullError> {
        let parsed = parse(reference)?;
        let registry = parsed.registry().clone();
        let found = self.credentials(&registry).await?;
        let auth = found.map(|found| engine_credentials(&registry, &found.credential));
        docker::pull_image(self.engine, &parsed, auth, reporter).await?;
        Ok(())
    }
}

/// Whether the engine's `RepoDigests` of an image record `digest` for `repository` (entries
/// are `name@sha256:…`, Docker Hub names in their short form).
pub(crate) fn records(
    repo_digests: &[String],
    repository: &crate::reference::Repository,
    digest: &str,
) -> bool {
    repo_digests.iter().any(|entry| {
        entry.rsplit_once('@').is_some_and(|(name, recorded)| {
            recorded == digest
                && name
                    .parse::<crate::reference::Repository>()
                    .is_ok_and(|named| named == *repository)
        })
    })
}

fn parse(reference: &str) -> Result<ImageReference, PullError> {
    reference
        .parse()
        .map_err(
            |error: crate::reference::ReferenceError| PullError::InvalidReference {
                image: reference.to_string(),
                message: error.to_string(),
            },
        )
}

/// The engine's ID of `reference`, `None` when it does not have it.
async fn present_id(engine: &Engine, reference: &str) -> Result<Option<String>, DockerError> {
    match docker::inspect(engine, reference).await {
        Ok(image) => Ok(Some(image.id.unwrap_or_default())),
        Err(DockerError::ImageNotFound { .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The `X-Registry-Auth` payload for `credential` at `registry`.
fn engine_credentials(registry: &Registry, credential: &Credential) -> DockerCredentials {
    let serveraddress = Some(registry.credential_key().to_string());
    match credential {
        Credential::Basic { username, password } => DockerCredentials {
            username: Some(username.clone()),
            password: Some(password.expose().to_string()),
            serveraddress,
            ..Default::default()
        },
        Credential::IdentityToken { token } => DockerCredentials {
            identitytoken: Some(token.expose().to_string()),
            serveraddress,
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;

    #[test]
    fn recorded_digests_match_by_repository_in_either_form() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let other = format!("sha256:{}", "b".repeat(64));
        let hub: crate::reference::Repository = "eclipse-temurin".parse().unwrap();
        let local: crate::reference::Repository = "127.0.0.1:5000/library/jre".parse().unwrap();
        let recorded = vec![
            format!("eclipse-temurin@{digest}"),
            format!("127.0.0.1:5000/library/jre@{other}"),
        ];
        assert!(records(&recorded, &hub, &digest));
        assert!(!records(&recorded, &hub, &other));
        assert!(records(&recorded, &local, &other));
        assert!(
            !records(&recorded, &local, &digest),
            "another repository's digest"
        );
        let long = vec![format!("docker.io/library/eclipse-temurin@{digest}")];
        assert!(records(&long, &hub, &digest));
        assert!(!records(&[], &hub, &digest));
    }

    #[test]
    fn push_credentials_go_only_to_the_push_registry() {
        let access = PullAccess {
            credentials: CredentialInputs {
                flags: Some(("ci".into(), Secret::new("flag-secret"))),
                environment: Some(("ci".into(), Secret::new("env-secret"))),
                docker_config_dir: Some("/home/ci/.docker".into()),
            },
            own_registry: Some("registry.gitlab.com".parse().unwrap()),
            ..PullAccess::default()
        };
        let own = access.sources_for(&"registry.gitlab.com".parse().unwrap());
        assert!(own.flags.is_some() && own.environment.is_some());
        for other in ["docker.io", "ghcr.io", "registry.gitlab.com:5050"] {
            let sources = access.sources_for(&other.parse().unwrap());
            assert!(sources.flags.is_none(), "{other}");
            assert!(sources.environment.is_none(), "{other}");
            assert_eq!(
                sources.docker_config_dir.as_deref(),
                Some(std::path::Path::new("/home/ci/.docker"))
            );
        }
    }
}
