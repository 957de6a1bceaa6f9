//! Pushing images through the engine, as `docker push` does, and verifying what arrived.
//!
//! For each registry: the credentials are looked up ([`crate::credentials`]), the registry is
//! checked to accept them (so a wrong password fails before anything is uploaded, naming the
//! credential source), then every tag is pushed through the Engine API with the
//! `X-Registry-Auth` header. Every item of the push stream is read; an error item fails the
//! push, and a registry answering 5xx is retried a bounded number of times. Finally each
//! tag's manifest is read back over the Registry API ([`crate::registry`]) and its digest
//! must equal the one the engine reported.
//!
//! Images are pushed at once, except one built on another (`PushTarget::after`: spark-hs on
//! spark), which follows it so that the layers they share are uploaded once; what was pushed
//! is reported in the order of the targets.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::PushImageOptions;
use futures_util::StreamExt;

use crate::credentials::{self, Credential, CredentialError, CredentialInputs, Credentials};
use crate::docker::{self, DockerError, Engine};
use crate::exit;
use crate::progress::{Phase, Reporter};
use crate::reference::{ImageReference, Registry};
use crate::registry::{RegistryClient, RegistryError, RegistryOptions};

/// What can go wrong pushing.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The image to push is not on the engine.
    #[error(
        "the {image} image was never built: {reference} is not on the Docker engine at {endpoint}; run `imgforge build {image}` first"
    )]
    NotBuilt {
        /// Which image.
        image: String,
        /// The reference looked for.
        reference: String,
        /// The engine.
        endpoint: String,
    },
    /// A reference has no tag or is otherwise not `[registry/]name:tag`.
    #[error("cannot push {reference}: expected [registry/]name:tag")]
    Reference {
        /// The reference.
        reference: String,
    },
    /// Credentials could not be looked up.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// The registry refused or could not be reached by imgforge's own calls.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An engine request around the push failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The engine's registry configuration could not be read.
    #[error("reading the registry settings of the Docker engine at {endpoint} failed")]
    EngineInfo {
        /// The engine.
        endpoint: String,
        /// What the client saw.
        #[source]
        source: Box<BollardError>,
    },
    /// The engine reported an error while pushing.
    #[error("pushing {reference} failed: {message}")]
    Failed {
        /// The reference.
        reference: String,
        /// The engine's error item.
        message: String,
    },
    /// The registry kept answering with server errors.
    #[error(
        "pushing {reference} failed after {attempts} attempts: the registry kept answering with a server error: {message}"
    )]
    ServerErrors {
        /// The reference.
        reference: String,
        /// Attempts made.
        attempts: u32,
        /// The engine's last error item.
        message: String,
    },
    /// The push request or its stream broke.
    #[error("pushing {reference}: the Docker engine at {endpoint} stopped answering")]
    Stream {
        /// The reference.
        reference: String,
        /// The engine.
        endpoint: String,
        /// What the client saw.
        #[source]
        source: Box<BollardError>,
    },
    /// The push stream ended without a digest.
    #[error("pushing {reference}: the engine reported no manifest digest")]
    NoDigest {
        /// The reference.
        reference: String,
    },
    /// The registry holds a different manifest than the engine pushed.
    #[error(
        "pushing {reference}: the engine pushed manifest {engine_digest} but the registry serves {registry_digest}"
    )]
    DigestMismatch {
        /// The reference.
        reference: String,
        /// The engine's digest.
        engine_digest: String,
        /// The registry's digest.
        registry_digest: String,
    },
}

impl PushError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            PushError::Credentials(_) | PushError::Reference { .. } => exit::CONFIG,
            PushError::NotBuilt { .. } => exit::BUILD,
            _ => exit::PUSH,
        }
    }
}

/// One image to push: the local image and every reference it must be pushed as.
#[derive(Debug, Clone)]
pub struct PushTarget {
    /// A short name for messages, such as `spark`.
    pub image: String,
    /// The local image: an ID or a reference present on the engine.
    pub source: String,
    /// Full references (`registry/name:tag`) to push; missing ones are tagged first.
    pub references: Vec<String>,
    /// The `image` of another target this one is built on: pushed after it (its layers are
    /// then in the registry already), where targets without one are pushed at once.
    pub after: Option<String>,
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Where credentials may come from.
    pub credentials: CredentialInputs,
    /// An extra CA for imgforge's own registry calls.
    pub registry_ca: Option<PathBuf>,
    /// Attempts per tag when the registry answers 5xx (at least 1).
    pub attempts: u32,
    /// Pause before the first retry; doubled for each further one.
    pub retry_delay: Duration,
    /// Connect and read timeout of imgforge's registry calls.
    pub timeout: Duration,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            credentials: CredentialInputs::default(),
            registry_ca: None,
            attempts: 3,
            retry_delay: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
        }
    }
}

/// One tag pushed and verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PushedTag {
    /// `registry/name:tag`.
    pub reference: String,
    /// `sha256:…` of the manifest, as the engine reported and the registry serves it.
    pub digest: String,
}

impl fmt::Display for PushedTag {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}@{}", self.reference, self.digest)
    }
}

/// One image pushed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PushedImage {
    /// The short name.
    pub image: String,
    /// The local image ID.
    pub id: String,
    /// `os/architecture[/variant]`, as the engine records the image.
    pub platform: String,
    /// Every tag pushed.
    pub tags: Vec<PushedTag>,
}

/// A reference split the way registries see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryReference {
    /// The registry host (`docker.io` when the reference names none).
    pub host: String,
    /// The repository path within the registry.
    pub repository: String,
    /// The tag.
    pub tag: String,
}

/// A registry client for `host` as the engine sees it: imgforge's CA option, plain HTTP only
/// where the engine itself treats the registry as insecure, and the host that serves the
/// registry's API (Docker Hub's is not `docker.io`).
pub async fn registry_client(
    engine: &Engine,
    host: &str,
    options: &PushOptions,
    credentials: Option<Credentials>,
) -> Result<RegistryClient, PushError> {
    let insecure = engine_treats_as_insecure(engine, host).await?;
    let registry_options = RegistryOptions {
        ca: options.registry_ca.clone(),
        insecure,
        timeout: Some(options.timeout),
    };
    let registry = host.parse::<Registry>();
    let api_host = registry.as_ref().map_or(host, Registry::api_host);
    Ok(RegistryClient::new(
        api_host,
        registry_options,
        credentials,
    )?)
}

/// The credentials for `host`, looked up off the async threads (a helper may run).
pub async fn credentials_for(
    options: &PushOptions,
    host: &str,
) -> Result<Option<Credentials>, PushError> {
    Ok(credentials::lookup_blocking(options.credentials.clone(), host).await?)
}

/// Split `registry/name:tag` into host, repository and tag, as the docker CLI normalizes
/// them (`busybox:1` is `docker.io`, `library/busybox`, `1`); `None` without a tag.
pub fn split_reference(reference: &str) -> Option<RegistryReference> {
    let parsed = reference.parse::<ImageReference>().ok()?;
    let tag = parsed.tag()?;
    Some(RegistryReference {
        host: parsed.registry().to_string(),
        repository: parsed.repository().path().to_string(),
        tag: tag.to_string(),
    })
}

/// Whether the engine treats `host` as an insecure registry: listed so in its `IndexConfigs`,
/// or resolving to an address in its `InsecureRegistryCIDRs` (127.0.0.0/8 by default).
pub async fn engine_treats_as_insecure(engine: &Engine, host: &str) -> Result<bool, PushError> {
    let info = engine
        .client()
        .info()
        .await
        .map_err(|source| PushError::EngineInfo {
            endpoint: engine.endpoint().to_string(),
            source: Box::new(source),
        })?;
    let Some(registry_config) = info.registry_config else {
        return Ok(false);
    };
    if let Some(index) = registry_config
        .index_configs
        .as_ref()
        .and_then(|configs| configs.get(host))
        && let Some(secure) = index.secure
    {
        return Ok(!secure);
    }
    let cidrs: Vec<(IpAddr, u8)> = registry_config
        .insecure_registry_cidrs
        .unwrap_or_default()
        .iter()
        .filter_map(|cidr| parse_cidr(cidr))
        .collect();
    if cidrs.is_empty() {
        return Ok(false);
    }
    let name = host
        .parse::<Registry>()
        .map_or_else(|_| host.to_string(), |registry| registry.host().to_string());
    let name = name.as_str();
    let addresses: Vec<IpAddr> = match name.parse::<IpAddr>() {
        Ok(address) => vec![address],
        Err(_) => match tokio::net::lookup_host((name, 0)).await {
            Ok(found) => found.map(|socket| socket.ip()).collect(),
            // Unresolvable here: the push itself will say so; treat it as secure.
            Err(_) => Vec::new(),
        },
    };
    Ok(addresses.iter().any(|address| {
        cidrs
            .iter()
            .any(|(network, prefix)| in_network(*address, *network, *prefix))
    }))
}

fn parse_cidr(text: &str) -> Option<(IpAddr, u8)> {
    let (address, prefix) = text.split_once('/')?;
    Some((address.parse().ok()?, prefix.parse().ok()?))
}

fn in_network(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    match (address, network) {
        (IpAddr::V4(address), IpAddr::V4(network)) if prefix <= 32 => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            u32::from(address) & mask == u32::from(network) & mask
        }
        (IpAddr::V6(address), IpAddr::V6(network)) if prefix <= 128 => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(address) & mask == u128::from(network) & mask
        }
        _ => false,
    }
}

/// The digest in the engine's final status line, `<tag>: digest: sha256:… size: N`.
/// (bollard's `PushImageInfo` drops the `aux` item that carries it too.)
pub fn digest_from_status(status: &str) -> Option<String> {
    let (_, rest) = status.split_once("digest: ")?;
    let digest = rest.split_whitespace().next()?;
    (digest.starts_with("sha256:") && digest.len() == 71).then(|| digest.to_string())
}

/// Whether an engine error item reports the registry answering with a 5xx status. The engine
/// passes on only the registry client's text, so the status is read from it.
pub fn is_server_error(message: &str) -> bool {
    const MARKERS: [&str; 5] = [
        "HTTP status: 5",
        "500 Internal Server Error",
        "502 Bad Gateway",
        "503 Service Unavailable",
        "504 Gateway Timeout",
    ];
    MARKERS.iter().any(|marker| message.contains(marker))
}

/// The `X-Registry-Auth` payload for `credentials` at `host`.
fn engine_credentials(host: &str, credentials: Option<&Credentials>) -> DockerCredentials {
    let serveraddress = Some(credentials::server_address(host));
    match credentials.map(|found| &found.credential) {
        Some(Credential::Basic { username, password }) => DockerCredentials {
            username: Some(username.clone()),
            password: Some(password.expose().to_string()),
            serveraddress,
            ..Default::default()
        },
        Some(Credential::IdentityToken { token }) => DockerCredentials {
            identitytoken: Some(token.expose().to_string()),
            serveraddress,
            ..Default::default()
        },
        None => DockerCredentials {
            serveraddress,
            ..Default::default()
        },
    }
}

/// Push every target's references and verify each digest; see the module documentation.
/// On return `pushed` holds, in the order of `targets`, each image whose push started and each
/// tag once its digest was verified, so after a failure it holds what did reach the registry
/// (an image whose first tag failed has no tags).
pub async fn push(
    engine: &Engine,
    targets: &[PushTarget],
    options: &PushOptions,
    reporter: &dyn Reporter,
    pushed: &mut Vec<PushedImage>,
) -> Result<(), PushError> {
    // Every image must exist, and every reference must be well formed, before anything moves.
    let mut ids = Vec::with_capacity(targets.len());
    let mut hosts = BTreeMap::<String, String>::new();
    for target in targets {
        let image = match docker::inspect(engine, &target.source).await {
            Ok(image) => image,
            Err(DockerError::ImageNotFound { .. }) => {
                return Err(PushError::NotBuilt {
                    image: target.image.clone(),
                    reference: target.source.clone(),
                    endpoint: engine.endpoint().to_string(),
                });
            }
            Err(error) => return Err(error.into()),
        };
        let platform = platform_of(&image);
        let size = image.size.and_then(|size| u64::try_from(size).ok());
        ids.push(Local {
            id: image.id.unwrap_or_else(|| target.source.clone()),
            platform,
            size,
        });
        for reference in &target.references {
            let split = split_reference(reference).ok_or_else(|| PushError::Reference {
                reference: reference.clone(),
            })?;
            hosts.entry(split.host).or_insert(split.repository);
        }
    }

    let mut clients = BTreeMap::new();
    for (host, repository) in &hosts {
        let found = credentials_for(options, host).await?;
        let client = registry_client(engine, host, options, found.clone()).await?;
        client.check_access(repository).await?;
        tracing::info!(registry = %host, source = ?found.as_ref().map(|c| c.source.to_string()), "registry accepts the credentials");
        clients.insert(
            host.clone(),
            (client, engine_credentials(host, found.as_ref())),
        );
    }

    // Images built apart are pushed at once; one built on another (`after`) is pushed once
    // that one is, so the layers they share reach the registry once. Every line runs to its
    // end even when another fails; the first failure is the run's.
    let lines = chains(targets);
    let runner = crate::lines::Lines::new(lines.len(), reporter);
    let work: Vec<_> = lines
        .iter()
        .map(|line| {
            let line: Vec<(usize, &PushTarget, Local)> = line
                .iter()
                .map(|&index| (index, &targets[index], ids[index].clone()))
                .collect();
            let clients = &clients;
            let runner = &runner;
            async move {
                let mut done = Vec::new();
                let result = runner
                    .run(push_line(
                        engine, clients, line, options, reporter, &mut done,
                    ))
                    .await;
                (done, result)
            }
        })
        .collect();
    let mut results = Vec::new();
    let mut started = Vec::new();
    for (done, result) in futures_util::future::join_all(work).await {
        started.extend(done);
        results.push(result);
    }
    // In the order of `targets`, whichever push finished first.
    started.sort_by_key(|(index, _)| *index);
    pushed.extend(started.into_iter().map(|(_, image)| image));
    runner.first_failure(results)
}

/// `targets` (by index) in lines: each target joins the line of the target it is built on
/// (`after`), or starts its own.
fn chains(targets: &[PushTarget]) -> Vec<Vec<usize>> {
    let mut lines: Vec<Vec<usize>> = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        let parent = target.after.as_ref().and_then(|after| {
            lines
                .iter()
                .position(|line| line.iter().any(|&other| targets[other].image == *after))
        });
        match parent {
            Some(line) => lines[line].push(index),
            None => lines.push(vec![index]),
        }
    }
    lines
}

/// A target's image as the engine holds it.
#[derive(Debug, Clone)]
struct Local {
    /// The image ID.
    id: String,
    /// `os/architecture[/variant]`.
    platform: String,
    /// Its size, when the engine says.
    size: Option<u64>,
}

/// Push one line of targets in order, each with its image on the engine; each image goes
/// into `done` (with its index) as its push starts and each tag once its digest is verified.
async fn push_line(
    engine: &Engine,
    clients: &BTreeMap<String, (RegistryClient, DockerCredentials)>,
    line: Vec<(usize, &PushTarget, Local)>,
    options: &PushOptions,
    reporter: &dyn Reporter,
    done: &mut Vec<(usize, PushedImage)>,
) -> Result<(), PushError> {
    for (index, target, Local { id, platform, size }) in line {
        done.push((
            index,
            PushedImage {
                image: target.image.clone(),
                id: id.clone(),
                platform,
                tags: Vec::with_capacity(target.references.len()),
            },
        ));
        for reference in &target.references {
            let present = docker::inspect(engine, reference)
                .await
                .ok()
                .and_then(|image| image.id);
            if present.as_deref() != Some(id.as_str()) {
                docker::tag_image(engine, &id, reference).await?;
            }
            let split = split_reference(reference).ok_or_else(|| PushError::Reference {
                reference: reference.clone(),
            })?;
            let (client, auth) = &clients[&split.host];
            let task = reporter.task(reference);
            reporter.phase(
                task,
                Phase::Pushing {
                    registry: split.host.clone(),
                    status: None,
                },
            );
            let outcome =
                match push_with_retry(engine, reference, auth, options, reporter, task).await {
                    Ok(outcome) => outcome,
                    Err(error) => {
                        reporter.phase(task, Phase::Failed);
                        return Err(error);
                    }
                };
            let engine_digest = outcome.digest;
            reporter.phase(task, Phase::Verifying);
            let manifest = client.manifest(&split.repository, &split.tag).await?;
            if manifest.digest != engine_digest {
                reporter.phase(task, Phase::Failed);
                return Err(PushError::DigestMismatch {
                    reference: reference.clone(),
                    engine_digest,
                    registry_digest: manifest.digest,
                });
            }
            reporter.phase(
                task,
                Phase::Done {
                    detail: format!(
                        "{engine_digest} ({}; {} layer(s) uploaded, {} already there)",
                        size.map_or_else(
                            || "size unknown".to_string(),
                            |size| format!("{} image", crate::progress::bytes(size))
                        ),
                        outcome.uploaded,
                        outcome.existing
                    ),
                },
            );
            if let Some((_, image)) = done.last_mut() {
                image.tags.push(PushedTag {
                    reference: reference.clone(),
                    digest: engine_digest,
                });
            }
        }
    }
    Ok(())
}

/// `os/architecture[/variant]` of an image on the engine (`linux/amd64` when it says nothing).
fn platform_of(image: &bollard::models::ImageInspect) -> String {
    let os = image.os.as_deref().unwrap_or("linux");
    let architecture = image.architecture.as_deref().unwrap_or("amd64");
    match image.variant.as_deref() {
        Some(variant) if !variant.is_empty() => format!("{os}/{architecture}/{variant}"),
        _ => format!("{os}/{architecture}"),
    }
}

async fn push_with_retry(
    engine: &Engine,
    reference: &str,
    auth: &DockerCredentials,
    options: &PushOptions,
    reporter: &dyn Reporter,
    task: crate::progress::TaskId,
) -> Result<PushOutcome, PushError> {
    let attempts = options.attempts.max(1);
    let mut delay = options.retry_delay;
    let mut attempt = 1;
    loop {
        match push_once(engine, reference, auth, reporter, task).await {
            Err(PushError::Failed { message, .. }) if is_server_error(&message) => {
                if attempt >= attempts {
                    return Err(PushError::ServerErrors {
                        reference: reference.to_string(),
                        attempts,
                        message,
                    });
                }
                attempt += 1;
                reporter.phase(
                    task,
                    Phase::Retrying {
                        attempt,
                        of: attempts,
                        reason: message,
                    },
                );
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
}

/// What one push of a reference did.
struct PushOutcome {
    /// The manifest digest the engine reported.
    digest: String,
    /// Layers the registry received.
    uploaded: usize,
    /// Layers the registry had already.
    existing: usize,
}

/// One push of `reference`: every stream item read, the digest taken from the last status.
async fn push_once(
    engine: &Engine,
    reference: &str,
    auth: &DockerCredentials,
    reporter: &dyn Reporter,
    task: crate::progress::TaskId,
) -> Result<PushOutcome, PushError> {
    let not_tagged = || PushError::Reference {
        reference: reference.to_string(),
    };
    let parsed = reference
        .parse::<ImageReference>()
        .map_err(|_| not_tagged())?;
    let tag = parsed.tag().ok_or_else(not_tagged)?;
    let options = PushImageOptions {
        tag: Some(tag.to_string()),
        platform: None,
    };
    let repository = parsed.repository().to_string();
    let mut stream = engine
        .client()
        .push_image(&repository, Some(options), Some(auth.clone()));
    let mut digest = None;
    let (mut uploaded, mut existing) = (0, 0);
    let registry = parsed.registry().to_string();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(status) = &info.status {
                    if let Some(found) = digest_from_status(status) {
                        digest = Some(found);
                    }
                    match status.as_str() {
                        "Pushed" => uploaded += 1,
                        "Layer already exists" => existing += 1,
                        _ => {}
                    }
                    reporter.phase(
                        task,
                        Phase::Pushing {
                            registry: registry.clone(),
                            status: Some(status.clone()),
                        },
                    );
                }
            }
            Err(BollardError::DockerStreamError { error }) => {
                return Err(PushError::Failed {
                    reference: reference.to_string(),
                    message: error,
                });
            }
            Err(BollardError::DockerResponseServerError { message, .. }) => {
                return Err(PushError::Failed {
                    reference: reference.to_string(),
                    message,
                });
            }
            Err(source) => {
                return Err(PushError::Stream {
                    reference: reference.to_string(),
                    endpoint: engine.endpoint().to_string(),
                    source: Box::new(source),
                });
            }
        }
    }
    let digest = digest.ok_or_else(|| PushError::NoDigest {
        reference: reference.to_string(),
    })?;
    Ok(PushOutcome {
        digest,
        uploaded,
        existing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_like_docker() {
        let split = split_reference("127.0.0.1:5000/team/spark:3.1.1").unwrap();
        assert_eq!(
            (
                split.host.as_str(),
                split.repository.as_str(),
                split.tag.as_str()
            ),
            ("127.0.0.1:5000", "team/spark", "3.1.1")
        );
        let split = split_reference("registry.gitlab.com/gha1/spark:latest").unwrap();
        assert_eq!(split.host, "registry.gitlab.com");
        let split = split_reference("busybox:1").unwrap();
        assert_eq!(
            (split.host.as_str(), split.repository.as_str()),
            ("docker.io", "library/busybox")
        );
        let split = split_reference("me/app:1").unwrap();
        assert_eq!(
            (split.host.as_str(), split.repository.as_str()),
            ("docker.io", "me/app")
        );
        assert!(split_reference("127.0.0.1:5000/app").is_none());
        assert!(split_reference("app:").is_none());
    }

    #[test]
    fn digests_come_from_the_final_status_line() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            digest_from_status(&format!("3.1.1: digest: {digest} size: 528")),
            Some(digest)
        );
        assert_eq!(digest_from_status("Pushed"), None);
        assert_eq!(digest_from_status("x: digest: sha256:short size: 1"), None);
    }

    #[test]
    fn server_errors_are_recognised() {
        assert!(is_server_error(
            "received unexpected HTTP status: 503 Service Unavailable"
        ));
        assert!(!is_server_error("unauthorized: authentication required"));
        assert!(!is_server_error(
            "denied: requested access to the resource is denied"
        ));
    }

    #[test]
    fn an_image_built_on_another_is_pushed_after_it_and_the_others_at_once() {
        let target = |image: &str, after: Option<&str>| PushTarget {
            image: image.to_string(),
            source: format!("{image}:1"),
            references: vec![format!("{image}:1")],
            after: after.map(str::to_string),
        };
        let targets = [
            target("spark", None),
            target("spark-hs", Some("spark")),
            target("hive-metastore", None),
        ];
        assert_eq!(chains(&targets), [vec![0, 1], vec![2]]);
        // Without the image it is built on, it is a line of its own.
        let targets = [
            target("spark-hs", Some("spark")),
            target("hive-metastore", None),
        ];
        assert_eq!(chains(&targets), [vec![0], vec![1]]);
    }

    #[test]
    fn cidrs_match() {
        let (network, prefix) = parse_cidr("127.0.0.0/8").unwrap();
        assert!(in_network("127.1.2.3".parse().unwrap(), network, prefix));
        assert!(!in_network("10.0.0.1".parse().unwrap(), network, prefix));
        let (network, prefix) = parse_cidr("::1/128").unwrap();
        assert!(in_network("::1".parse().unwrap(), network, prefix));
    }

    #[test]
    fn engine_credentials_carry_the_server_address() {
        let credentials = Credentials {
            credential: Credential::Basic {
                username: "u".into(),
                password: credentials::Secret::new("p"),
            },
            source: credentials::CredentialSource::Flags,
        };
        let auth = engine_credentials("127.0.0.1:5000", Some(&credentials));
        assert_eq!(auth.serveraddress.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(auth.username.as_deref(), Some("u"));
        let auth = engine_credentials("docker.io", None);
        assert_eq!(
            auth.serveraddress.as_deref(),
            Some(crate::reference::DOCKER_HUB_CREDENTIAL_KEY)
        );
    }
}
