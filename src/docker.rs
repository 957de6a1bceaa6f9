//! The Docker Engine API through bollard: connecting like the docker CLI, building an image
//! from a streamed [`BuildContext`], and the image queries around a build.
//!
//! A build's response is a 200 stream whose items carry the outcome: every item is read, any
//! error item fails the build with the failing step and its last output lines, and the image
//! ID comes from the `aux` item. Base images are checked before the build starts (the caller
//! pulls them first, [`pull_image`], as `docker build` would), so that a missing one is named
//! rather than left to the engine's own message.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::{BuildInfo, ImageInspect};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, RemoveImageOptions, TagImageOptions,
};
use futures_util::StreamExt;

use crate::context::{BuildContext, ContextError, ContextSummary};
use crate::exit;
use crate::progress::{Phase, Reporter};
use crate::reference::{ImageReference, Tag};

/// Where the docker CLI finds the engine when `DOCKER_HOST` is unset.
pub(crate) const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// How long connecting and negotiating the API version may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// bollard's per-request timeout, which covers sending a whole build context; a build's
/// output afterwards is not limited by it.
const REQUEST_TIMEOUT_SECONDS: u64 = 3600;
/// Output lines kept for the error message of a failed step.
const OUTPUT_TAIL_LINES: usize = 20;
/// The line `import-certs.sh` (`dockerfiles/common/import-certs.sh`) prints, followed by the
/// alias, when the truststore rejects a certificate: `imgforge-cert-rejected alias=<alias>`.
pub(crate) const CERT_REJECTED_MARKER: &str = "imgforge-cert-rejected alias=";

/// What can go wrong talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// `DOCKER_HOST` uses a scheme imgforge cannot speak.
    #[error("unsupported DOCKER_HOST {host:?}: use unix:///path/to/docker.sock or tcp://host:port")]
    UnsupportedHost {
        /// The value given.
        host: String,
    },
    /// A TLS file named by `DOCKER_CERT_PATH` is missing.
    #[error("TLS is enabled for {endpoint} (DOCKER_TLS_VERIFY) but {path} does not exist")]
    TlsFileMissing {
        /// The endpoint.
        endpoint: String,
        /// The missing file.
        path: PathBuf,
    },
    /// TLS was requested but no certificate directory was given or could be derived.
    #[error(
        "TLS is enabled for {endpoint} (DOCKER_TLS_VERIFY) but DOCKER_CERT_PATH is unset and there is no home directory"
    )]
    NoCertPath {
        /// The endpoint.
        endpoint: String,
    },
    /// The engine did not answer.
    #[error(
        "Docker engine not reachable at {endpoint}; start dockerd (scripts/ci-services.sh does, as root) or point DOCKER_HOST at a running engine"
    )]
    Unreachable {
        /// The endpoint.
        endpoint: String,
        /// What the client saw.
        #[source]
        source: Box<BollardError>,
    },
    /// The engine did not answer in time.
    #[error(
        "Docker engine at {endpoint} did not answer within {seconds}s; check that dockerd is running and DOCKER_HOST is right"
    )]
    ConnectTimeout {
        /// The endpoint.
        endpoint: String,
        /// The limit.
        seconds: u64,
    },
    /// A tag is not a valid image reference.
    #[error("invalid image tag {tag:?}: expected [registry/]name:tag in lower case")]
    InvalidTag {
        /// The tag.
        tag: String,
    },
    /// A base image is absent from the engine and is not to be pulled.
    #[error(
        "base image {image} is not present on the Docker engine at {endpoint}, and imgforge does not pull it ([images] pull = \"never\" or --pull=never); set [images] pull = \"missing\" (the default), or load the image onto the engine yourself"
    )]
    BaseImageMissing {
        /// The image reference.
        image: String,
        /// The endpoint.
        endpoint: String,
    },
    /// The engine could not pull a base image.
    #[error(
        "pulling base image {image} onto the Docker engine at {endpoint} failed: {message}; {hint}"
    )]
    PullFailed {
        /// The image reference.
        image: String,
        /// The endpoint.
        endpoint: String,
        /// The engine's message.
        message: String,
        /// What to do about it.
        hint: String,
    },
    /// The engine failed at a `FROM` step: the base image could not be found or pulled.
    #[error(
        "building {image}: {step} failed: base image {base} is not available on the engine: {message}"
    )]
    BaseImageUnavailable {
        /// The image being built.
        image: String,
        /// The `FROM` step.
        step: String,
        /// The base image as the step names it.
        base: String,
        /// The engine's error.
        message: String,
    },
    /// A step of the build failed.
    #[error("building {image} failed at {step}: {message}{}", format_tail(output))]
    StepFailed {
        /// The image being built.
        image: String,
        /// The failing step, as the engine printed it (`Step 3/7 : RUN …`).
        step: String,
        /// The engine's error.
        message: String,
        /// The step's last output lines.
        output: Vec<String>,
        /// The alias of the CA certificate the step's truststore rejected, read from the
        /// [`CERT_REJECTED_MARKER`] line `import-certs.sh` prints.
        rejected_alias: Option<String>,
    },
    /// The build context could not be produced.
    #[error("building {image}: the build context could not be sent")]
    Context {
        /// The image being built.
        image: String,
        /// Why.
        #[source]
        source: ContextError,
    },
    /// The request or its response stream failed.
    #[error("building {image}: the engine at {endpoint} stopped answering")]
    Build {
        /// The image being built.
        image: String,
        /// The endpoint.
        endpoint: String,
        /// What the client saw.
        #[source]
        source: Box<BollardError>,
    },
    /// The build stream ended without an image ID and without an error.
    #[error(
        "building {image}: the engine reported no image ID{}",
        format_tail(output)
    )]
    NoImageId {
        /// The image being built.
        image: String,
        /// The last output lines.
        output: Vec<String>,
    },
    /// An image is not on the engine.
    #[error("image {reference} is not present on the Docker engine at {endpoint}")]
    ImageNotFound {
        /// The reference.
        reference: String,
        /// The endpoint.
        endpoint: String,
    },
    /// An image request failed.
    #[error("{action} image {reference} on the Docker engine at {endpoint} failed")]
    Image {
        /// What was attempted: `inspecting`, `tagging`, `removing`.
        action: &'static str,
        /// The reference.
        reference: String,
        /// The endpoint.
        endpoint: String,
        /// What the engine said.
        #[source]
        source: Box<BollardError>,
    },
    /// `spark-hs` was asked for alone and no `spark` image exists to build it on.
    #[error(
        "no spark image {reference} on the engine to build spark-hs on; build both with \
         `imgforge build` (or `imgforge build spark` first)"
    )]
    NoSparkImage {
        /// The reference looked for.
        reference: String,
    },
    /// A step importing a CA certificate into an image's truststore failed: keytool refused
    /// a certificate that passed imgforge's own checks.
    #[error(
        "the {image} image's truststore rejected CA certificate {} (alias {alias}); keytool \
         cannot read it: export it again as an X.509 certificate Java supports (for EC keys, \
         a named curve), or remove it from the certificate directory",
        path.display()
    )]
    CertificateRejected {
        /// The image being built.
        image: String,
        /// The certificate file as the user gave it.
        path: std::path::PathBuf,
        /// Its truststore alias.
        alias: String,
        /// The failed step, with keytool's output.
        #[source]
        source: Box<DockerError>,
    },
}

impl DockerError {
    /// The exit code a run ends with when it fails with this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            DockerError::InvalidTag { .. } => exit::CONFIG,
            _ => exit::BUILD,
        }
    }
}

fn format_tail(output: &[String]) -> String {
    if output.is_empty() {
        return String::new();
    }
    let mut text = String::from("\nlast output:");
    for line in output {
        text.push_str("\n  | ");
        text.push_str(line);
    }
    text
}

/// The client certificate files of a TLS connection, as `DOCKER_CERT_PATH` holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TlsFiles {
    /// The CA that signed the engine's certificate (`ca.pem`).
    pub(crate) ca: PathBuf,
    /// The client certificate (`cert.pem`).
    pub(crate) cert: PathBuf,
    /// The client key (`key.pem`).
    pub(crate) key: PathBuf,
}

impl TlsFiles {
    /// The three files in `directory`, named as the docker CLI names them.
    pub(crate) fn in_directory(directory: impl Into<PathBuf>) -> TlsFiles {
        let directory = directory.into();
        TlsFiles {
            ca: directory.join("ca.pem"),
            cert: directory.join("cert.pem"),
            key: directory.join("key.pem"),
        }
    }
}

/// Which engine to talk to and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEndpoint {
    /// `unix:///path` or `tcp://host:port` (also `http://`, `https://`).
    pub(crate) host: String,
    /// Verify the engine and present a client certificate (`DOCKER_TLS_VERIFY`).
    pub(crate) tls: Option<TlsFiles>,
}

impl Default for EngineEndpoint {
    fn default() -> Self {
        EngineEndpoint {
            host: DEFAULT_DOCKER_HOST.to_string(),
            tls: None,
        }
    }
}

impl fmt::Display for EngineEndpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.host)?;
        if self.tls.is_some() {
            formatter.write_str(" (TLS)")?;
        }
        Ok(())
    }
}

impl EngineEndpoint {
    /// The endpoint the docker CLI would use given the values of `DOCKER_HOST`,
    /// `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` (empty counts as unset). As in the docker CLI,
    /// any non-empty `DOCKER_TLS_VERIFY` turns TLS on, and the certificates default to
    /// `~/.docker`.
    pub fn from_env_values(
        docker_host: Option<String>,
        tls_verify: Option<String>,
        cert_path: Option<String>,
    ) -> Result<EngineEndpoint, DockerError> {
        let non_empty = |value: Option<String>| value.filter(|value| !value.trim().is_empty());
        let host = non_empty(docker_host).unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_string());
        let scheme = host.split_once("://").map(|(scheme, _)| scheme);
        if !matches!(scheme, Some("unix" | "tcp" | "http" | "https")) {
            return Err(DockerError::UnsupportedHost { host });
        }
        let tls_requested = non_empty(tls_verify).is_some() || scheme == Some("https");
        let tls = if tls_requested {
            if scheme == Some("unix") {
                None
            } else {
                let directory = match non_empty(cert_path) {
                    Some(path) => PathBuf::from(path),
                    None => dirs::home_dir()
                        .map(|home| home.join(".docker"))
                        .ok_or_else(|| DockerError::NoCertPath {
                            endpoint: host.clone(),
                        })?,
                };
                Some(TlsFiles::in_directory(directory))
            }
        } else {
            None
        };
        Ok(EngineEndpoint { host, tls })
    }
}

/// A connected engine with its negotiated API version.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    endpoint: EngineEndpoint,
}

impl Engine {
    /// The bollard client, for operations this module does not wrap.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Where the engine is.
    pub(crate) fn endpoint(&self) -> &EngineEndpoint {
        &self.endpoint
    }
}

/// Connect to the engine at `endpoint` and negotiate the API version.
pub async fn connect(endpoint: &EngineEndpoint) -> Result<Engine, DockerError> {
    let name = endpoint.to_string();
    let unreachable = |source| DockerError::Unreachable {
        endpoint: name.clone(),
        source: Box::new(source),
    };
    let version = bollard::API_DEFAULT_VERSION;
    let docker = if endpoint.host.starts_with("unix://") {
        Docker::connect_with_unix(&endpoint.host, REQUEST_TIMEOUT_SECONDS, version)
            .map_err(unreachable)?
    } else if let Some(tls) = &endpoint.tls {
        for path in [&tls.ca, &tls.cert, &tls.key] {
            if !path.exists() {
                return Err(DockerError::TlsFileMissing {
                    endpoint: name,
                    path: path.clone(),
                });
            }
        }
        let host = endpoint.host.replacen("tcp://", "https://", 1);
        Docker::connect_with_ssl(
            &host,
            &tls.key,
            &tls.cert,
            &tls.ca,
            REQUEST_TIMEOUT_SECONDS,
            version,
        )
        .map_err(unreachable)?
    } else {
        let host = endpoint.host.replacen("tcp://", "http://", 1);
        Docker::connect_with_http(&host, REQUEST_TIMEOUT_SECONDS, version).map_err(unreachable)?
    };
    let handshake = async {
        docker.ping().await?;
        docker.negotiate_version().await
    };
    let docker = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
        .await
        .map_err(|_| DockerError::ConnectTimeout {
            endpoint: name.clone(),
            seconds: CONNECT_TIMEOUT.as_secs(),
        })?
        .map_err(unreachable)?;
    tracing::debug!(endpoint = %name, api = %docker.client_version(), "connected to the Docker engine");
    Ok(Engine {
        docker,
        endpoint: endpoint.clone(),
    })
}

/// What to build, besides the context.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// A short name for progress and errors, such as `spark`.
    pub name: String,
    /// Full references (`registry/name:tag`) to give the image; the first is passed to the build.
    pub tags: Vec<String>,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// Labels added to the image.
    pub labels: BTreeMap<String, String>,
    /// Build every step afresh.
    pub no_cache: bool,
}

/// One step of a build as the engine reported it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BuildStep {
    /// The step line, such as `Step 2/5 : COPY a /a`.
    pub text: String,
    /// The engine reused a cached layer for it (`---> Using cache`).
    pub cached: bool,
}

impl BuildStep {
    /// Whether this is a `FROM` step, which never reports a cache hit.
    pub fn is_from(&self) -> bool {
        step_instruction(&self.text).eq_ignore_ascii_case("FROM")
    }
}

fn step_instruction(step: &str) -> &str {
    step.split_once(" : ")
        .map(|(_, rest)| rest.split_whitespace().next().unwrap_or(""))
        .unwrap_or("")
}

/// A built image.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BuiltImage {
    /// The image ID (`sha256:…`).
    pub id: String,
    /// Its tags, as the engine lists them.
    pub tags: Vec<String>,
    /// Its size in bytes.
    pub size: u64,
    /// What the context held.
    pub(crate) context: ContextSummary,
    /// Tar bytes sent to the engine.
    pub context_bytes: u64,
    /// The steps, in order.
    pub steps: Vec<BuildStep>,
}

/// Check that `tag` is a `[registry[:port]/]path:tag` reference.
pub(crate) fn validate_tag(tag: &str) -> Result<(), DockerError> {
    parse_tag(tag).map(|_| ())
}

/// `tag` as a reference that names a tag (a digest or a bare name cannot be a build tag).
fn parse_tag(tag: &str) -> Result<(ImageReference, Tag), DockerError> {
    let invalid = || DockerError::InvalidTag {
        tag: tag.to_string(),
    };
    let reference = tag.parse::<ImageReference>().map_err(|_| invalid())?;
    match (reference.tag(), reference.digest()) {
        (Some(version), None) => {
            let version = version.clone();
            Ok((reference, version))
        }
        _ => Err(invalid()),
    }
}

/// Remove terminal control sequences (the engine colours a step's stderr red) so that
/// lines are plain text in errors and logs.
fn strip_terminal_codes(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters… final byte in @..~; other escapes are two characters long.
            if chars.next() == Some('[') {
                for next in chars.by_ref() {
                    if ('@'..='~').contains(&next) {
                        break;
                    }
                }
            }
        } else if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// Tracks the build output: steps, cache hits, the current step's last lines and the
/// certificate it says was rejected.
struct OutputTracker {
    steps: Vec<BuildStep>,
    tail: VecDeque<String>,
    partial: String,
    image_id: Option<String>,
    rejected_alias: Option<String>,
}

impl OutputTracker {
    fn new() -> Self {
        OutputTracker {
            steps: Vec::new(),
            tail: VecDeque::new(),
            partial: String::new(),
            image_id: None,
            rejected_alias: None,
        }
    }

    fn current_step(&self) -> String {
        self.steps
            .last()
            .map(|step| step.text.clone())
            .unwrap_or_else(|| "the start of the build".to_string())
    }

    fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    /// Feed a `stream` text; complete lines are handled, the rest waits for more.
    fn feed(&mut self, text: &str, reporter: &dyn Reporter, task: crate::progress::TaskId) {
        self.partial.push_str(text);
        while let Some(end) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=end).collect();
            self.line(line.trim_end(), reporter, task);
        }
    }

    fn finish(&mut self, reporter: &dyn Reporter, task: crate::progress::TaskId) {
        let rest = std::mem::take(&mut self.partial);
        if !rest.trim().is_empty() {
            self.line(rest.trim_end(), reporter, task);
        }
    }

    fn line(&mut self, raw: &str, reporter: &dyn Reporter, task: crate::progress::TaskId) {
        let cleaned = strip_terminal_codes(raw);
        let line = cleaned.as_str();
        if line.starts_with("Step ") && line.contains(" : ") {
            self.steps.push(BuildStep {
                text: line.to_string(),
                cached: false,
            });
            self.tail.clear();
            self.rejected_alias = None;
            reporter.phase(
                task,
                Phase::Building {
                    step: line.to_string(),
                    output: None,
                },
            );
            return;
        }
        let trimmed = line.trim();
        if let (true, Some(step)) = (trimmed == "---> Using cache", self.steps.last_mut()) {
            step.cached = true;
        }
        if let Some(id) = trimmed.strip_prefix("Successfully built ") {
            self.image_id.get_or_insert_with(|| id.trim().to_string());
        }
        if trimmed.is_empty() {
            return;
        }
        // Read anywhere in the step, not only in the tail: keytool may print more after it.
        let marker = trimmed.strip_prefix(CERT_REJECTED_MARKER);
        if let Some(alias) = marker.filter(|alias| !alias.trim().is_empty()) {
            self.rejected_alias = Some(alias.trim().to_string());
        }
        // The builder's own bookkeeping (and the marker, which is for imgforge) says nothing
        // the user needs about why a step failed.
        let bookkeeping = marker.is_some()
            || trimmed.starts_with("--->")
            || trimmed.starts_with("Removing intermediate container");
        if !bookkeeping && self.tail.len() == OUTPUT_TAIL_LINES {
            self.tail.pop_front();
        }
        if !bookkeeping {
            self.tail.push_back(line.to_string());
        }
        reporter.phase(
            task,
            Phase::Building {
                step: self.current_step(),
                output: Some(line.to_string()),
            },
        );
    }
}

/// Build an image from `context` on `engine`, reporting the steps through `reporter`.
///
/// The base images are checked first; the context is streamed as the request body; every
/// item of the response is read and any error item fails the build. Extra tags are applied
/// after the build, and the result is inspected for its size and tags.
pub async fn build_image(
    engine: &Engine,
    context: BuildContext,
    request: &BuildRequest,
    reporter: &dyn Reporter,
) -> Result<BuiltImage, DockerError> {
    let image = if request.name.is_empty() {
        request
            .tags
            .first()
            .cloned()
            .unwrap_or_else(|| context.dockerfile().to_string())
    } else {
        request.name.clone()
    };
    for tag in &request.tags {
        validate_tag(tag)?;
    }
    let endpoint = engine.endpoint.to_string();
    for base in context.facts().base_images(&request.build_args) {
        if !image_exists(engine, &base).await? {
            return Err(DockerError::BaseImageMissing {
                image: base,
                endpoint,
            });
        }
    }

    let task = reporter.task(&image);
    let summary = context.summary();
    let dockerfile = context.dockerfile().to_string();
    let stream = context.into_stream();
    let monitor = stream.monitor();
    let build_args: HashMap<String, String> = request.build_args.clone().into_iter().collect();
    let labels: HashMap<String, String> = request.labels.clone().into_iter().collect();
    let mut options = BuildImageOptionsBuilder::default()
        .dockerfile(&dockerfile)
        .rm(true)
        .forcerm(true)
        .nocache(request.no_cache)
        .buildargs(&build_args)
        .labels(&labels);
    if let Some(tag) = request.tags.first() {
        options = options.t(tag);
    }
    let mut output = OutputTracker::new();
    let mut items = engine.docker.build_image(
        options.build(),
        None,
        Some(bollard::body_try_stream(stream)),
    );
    let fail = |error: DockerError| {
        reporter.phase(task, Phase::Failed);
        error
    };
    while let Some(item) = items.next().await {
        let engine_error = match item {
            Ok(BuildInfo {
                error_detail: Some(detail),
                ..
            }) => detail
                .message
                .unwrap_or_else(|| "unknown error".to_string()),
            Ok(info) => {
                if let Some(text) = &info.stream {
                    output.feed(text, reporter, task);
                }
                if let Some(id) = info.aux.and_then(|aux| aux.id) {
                    output.image_id = Some(id);
                }
                continue;
            }
            Err(BollardError::DockerStreamError { error }) => error,
            Err(source) => {
                if let Some(context_error) = monitor.take_failure() {
                    return Err(fail(DockerError::Context {
                        image,
                        source: context_error,
                    }));
                }
                return Err(fail(DockerError::Build {
                    image,
                    endpoint,
                    source: Box::new(source),
                }));
            }
        };
        output.finish(reporter, task);
        let step = output.current_step();
        if step_instruction(&step).eq_ignore_ascii_case("FROM") {
            let base = step
                .split_once(" : ")
                .and_then(|(_, rest)| {
                    rest.split_whitespace()
                        .skip(1)
                        .find(|word| !word.starts_with("--"))
                })
                .unwrap_or("")
                .to_string();
            return Err(fail(DockerError::BaseImageUnavailable {
                image,
                step,
                base,
                message: engine_error.trim().to_string(),
            }));
        }
        return Err(fail(DockerError::StepFailed {
            image,
            message: without_repeated_command(engine_error.trim()),
            step,
            output: output.tail(),
            rejected_alias: output.rejected_alias.clone(),
        }));
    }
    output.finish(reporter, task);
    if let Some(context_error) = monitor.take_failure() {
        return Err(fail(DockerError::Context {
            image,
            source: context_error,
        }));
    }
    let Some(id) = output.image_id.clone() else {
        return Err(fail(DockerError::NoImageId {
            image,
            output: output.tail(),
        }));
    };
    for tag in request.tags.iter().skip(1) {
        tag_image(engine, &id, tag).await.map_err(fail)?;
    }
    let inspected = inspect(engine, &id).await.map_err(fail)?;
    let built = BuiltImage {
        id: inspected.id.clone().unwrap_or(id),
        tags: inspected.repo_tags.clone().unwrap_or_default(),
        size: inspected
            .size
            .and_then(|size| u64::try_from(size).ok())
            .unwrap_or(0),
        context: summary,
        context_bytes: monitor.bytes_sent(),
        steps: output.steps,
    };
    let cached = built.steps.iter().filter(|step| step.cached).count();
    reporter.phase(
        task,
        Phase::Done {
            detail: format!(
                "{} ({} steps, {} from cache)",
                short_id(&built.id),
                built.steps.len(),
                cached
            ),
        },
    );
    Ok(built)
}

fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

/// Give image `id` the extra reference `tag`.
pub async fn tag_image(engine: &Engine, id: &str, tag: &str) -> Result<(), DockerError> {
    let (reference, version) = parse_tag(tag)?;
    let options = TagImageOptions {
        repo: Some(reference.repository().to_string()),
        tag: Some(version.to_string()),
    };
    engine
        .docker
        .tag_image(id, Some(options))
        .await
        .map_err(|source| DockerError::Image {
            action: "tagging",
            reference: format!("{id} as {tag}"),
            endpoint: engine.endpoint.to_string(),
            source: Box::new(source),
        })
}

fn is_not_found(error: &BollardError) -> bool {
    matches!(
        error,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Inspect image `reference` (a tag or an ID); absent is [`DockerError::ImageNotFound`].
pub async fn inspect(engine: &Engine, reference: &str) -> Result<ImageInspect, DockerError> {
    engine
        .docker
        .inspect_image(reference)
        .await
        .map_err(|source| {
            if is_not_found(&source) {
                DockerError::ImageNotFound {
                    reference: reference.to_string(),
                    endpoint: engine.endpoint.to_string(),
                }
            } else {
                DockerError::Image {
                    action: "inspecting",
                    reference: reference.to_string(),
                    endpoint: engine.endpoint.to_string(),
                    source: Box::new(source),
                }
            }
        })
}

/// The engine's message for a failed `RUN` step repeats the command the step line already
/// shows (`The command '/bin/sh -c …' returned a non-zero code: 3`): keep what it adds.
fn without_repeated_command(message: &str) -> String {
    let repeated = message
        .strip_prefix("The command '")
        .and_then(|rest| rest.rsplit_once("' returned a non-zero code: "))
        .map(|(_, code)| code);
    match repeated {
        Some(code) => format!("the command returned a non-zero code: {code}"),
        None => message.to_string(),
    }
}

/// Pull `reference` onto the engine (`POST /images/create`, the `X-Registry-Auth` header from
/// `credentials`), reporting the layers' bytes as one task; every item of the response is read
/// and an error item fails the pull with the engine's message and what to do about it.
pub async fn pull_image(
    engine: &Engine,
    reference: &ImageReference,
    credentials: Option<DockerCredentials>,
    reporter: &dyn Reporter,
) -> Result<(), DockerError> {
    let image = reference.to_string();
    let repository = reference.repository().to_string();
    // A digest goes where the tag would: the engine takes `fromImage=name&tag=sha256:…`.
    let tag = match (reference.digest(), reference.tag()) {
        (Some(digest), _) => digest.to_string(),
        (None, Some(tag)) => tag.to_string(),
        (None, None) => "latest".to_string(),
    };
    let options = CreateImageOptionsBuilder::default()
        .from_image(&repository)
        .tag(&tag)
        .build();
    let task = reporter.task(&image);
    reporter.phase(
        task,
        Phase::Pulling {
            registry: reference.registry().to_string(),
        },
    );
    let endpoint = engine.endpoint.to_string();
    let with_credentials = credentials.is_some();
    let failed = |message: String| {
        reporter.phase(task, Phase::Failed);
        DockerError::PullFailed {
            image: image.clone(),
            endpoint: endpoint.clone(),
            hint: pull_hint(&message, reference, with_credentials),
            message,
        }
    };
    let mut layers = LayerProgress::default();
    let mut items = engine.docker.create_image(Some(options), None, credentials);
    while let Some(item) = items.next().await {
        let info = match item {
            Ok(info) => info,
            Err(BollardError::DockerStreamError { error }) => return Err(failed(error)),
            Err(BollardError::DockerResponseServerError { message, .. }) => {
                return Err(failed(message));
            }
            Err(other) => return Err(failed(other.to_string())),
        };
        if let Some(detail) = info.error_detail {
            return Err(failed(
                detail.message.unwrap_or_else(|| "unknown error".into()),
            ));
        }
        if layers.feed(&info) {
            reporter.length(task, Some(layers.total()));
            reporter.position(task, layers.done());
        }
    }
    reporter.phase(
        task,
        Phase::Done {
            detail: format!("pulled ({})", crate::progress::bytes(layers.total())),
        },
    );
    Ok(())
}

/// The bytes of a pull, summed over its layers as the engine reports them.
#[derive(Default)]
struct LayerProgress {
    /// Layer ID → (bytes downloaded, layer size).
    layers: BTreeMap<String, (u64, u64)>,
}

impl LayerProgress {
    /// Take in one status item; whether the totals changed.
    fn feed(&mut self, info: &bollard::models::CreateImageInfo) -> bool {
        let (Some(id), Some(status)) = (&info.id, &info.status) else {
            return false;
        };
        let detail = info.progress_detail.as_ref();
        let number = |value: Option<i64>| value.and_then(|value| u64::try_from(value).ok());
        match status.as_str() {
            "Downloading" => {
                let current = number(detail.and_then(|detail| detail.current)).unwrap_or(0);
                let total = number(detail.and_then(|detail| detail.total)).unwrap_or(current);
                self.layers
                    .insert(id.clone(), (current, total.max(current)));
                true
            }
            "Download complete" | "Pull complete" => match self.layers.get_mut(id) {
                Some((current, total)) => {
                    *current = *total;
                    true
                }
                None => false,
            },
            _ => false,
        }
    }

    fn total(&self) -> u64 {
        self.layers.values().map(|(_, total)| total).sum()
    }

    fn done(&self) -> u64 {
        self.layers.values().map(|(current, _)| current).sum()
    }
}

/// What to do about a failed pull, from the engine's message and whether credentials were
/// sent.
fn pull_hint(message: &str, reference: &ImageReference, with_credentials: bool) -> String {
    let registry = reference.registry();
    let lower = message.to_ascii_lowercase();
    let mentions = |markers: &[&str]| markers.iter().any(|marker| lower.contains(marker));
    let refused = mentions(&[
        "unauthorized",
        "authentication required",
        "denied",
        "no basic auth",
    ]);
    let hint = if refused && with_credentials {
        format!("the registry {registry} refused the credentials imgforge found for it")
    } else if refused {
        format!("the registry {registry} wants credentials")
    } else if mentions(&["manifest unknown", "not found", "does not exist"]) {
        format!("check the image name and tag ({reference}), or configure another base image")
    } else if mentions(&[
        "connection refused",
        "connection reset",
        "no such host",
        "timeout",
        "server misbehaving",
        "network is unreachable",
        "tls",
        "x509",
    ]) {
        format!(
            "the engine could not reach {registry}: check its network and proxy settings and its trust of the registry's CA, or load the image onto the engine and set [images] pull = \"never\""
        )
    } else {
        "see the engine's log; [images] pull = \"never\" builds only from images already on the engine".to_string()
    };
    let login = match registry.is_docker_hub() {
        true => "docker login".to_string(),
        false => format!("docker login {registry}"),
    };
    match with_credentials {
        true => hint,
        false => format!(
            "{hint}. imgforge found no credentials for {registry}: log in with `{login}` or add them to config.json (auths, credsStore, credHelpers); IMGFORGE_REGISTRY_USER/PASSWORD and --username go only to the push registry"
        ),
    }
}

/// Whether image `reference` is present on the engine.
pub async fn image_exists(engine: &Engine, reference: &str) -> Result<bool, DockerError> {
    match inspect(engine, reference).await {
        Ok(_) => Ok(true),
        Err(DockerError::ImageNotFound { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Remove image `reference` (forcefully, with its untagged parents); absent is not an error.
pub async fn remove_image(engine: &Engine, reference: &str) -> Result<(), DockerError> {
    let options = RemoveImageOptions {
        force: true,
        ..Default::default()
    };
    match engine
        .docker
        .remove_image(reference, Some(options), None)
        .await
    {
        Ok(_) => Ok(()),
        Err(source) if is_not_found(&source) => Ok(()),
        Err(source) => Err(DockerError::Image {
            action: "removing",
            reference: reference.to_string(),
            endpoint: engine.endpoint.to_string(),
            source: Box::new(source),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_step_names_its_command_once() {
        assert_eq!(
            without_repeated_command(
                "The command '/bin/sh -c echo 'it's here' && exit 3' returned a non-zero code: 3"
            ),
            "the command returned a non-zero code: 3"
        );
        let other = "failed to compute cache key: \"/missing\" not found";
        assert_eq!(without_repeated_command(other), other);
    }

    #[test]
    fn pull_hints_say_what_to_do_and_whether_credentials_were_sent() {
        let hub: ImageReference = "eclipse-temurin:17-jre".parse().unwrap();
        let local: ImageReference = "127.0.0.1:5000/library/jre:17".parse().unwrap();
        let denied = "pull access denied for x, repository does not exist or may require 'docker login': denied: requested access to the resource is denied";
        let hint = pull_hint(denied, &hub, false);
        assert!(hint.contains("wants credentials"), "{hint}");
        assert!(hint.contains("`docker login`"), "{hint}");
        let hint = pull_hint("unauthorized: authentication required", &local, true);
        assert!(hint.contains("refused the credentials"), "{hint}");
        assert!(!hint.contains("docker login"), "{hint}");
        let hint = pull_hint("manifest unknown: manifest unknown", &local, true);
        assert!(hint.contains("127.0.0.1:5000/library/jre:17"), "{hint}");
        let hint = pull_hint(
            "dial tcp 127.0.0.1:5000: connect: connection refused",
            &local,
            false,
        );
        assert!(hint.contains("could not reach 127.0.0.1:5000"), "{hint}");
        assert!(hint.contains("`docker login 127.0.0.1:5000`"), "{hint}");
    }

    #[test]
    fn pull_progress_sums_the_layers() {
        let item = |id: &str, status: &str, current: Option<i64>, total: Option<i64>| {
            bollard::models::CreateImageInfo {
                id: Some(id.into()),
                status: Some(status.into()),
                progress_detail: Some(bollard::models::ProgressDetail { current, total }),
                ..Default::default()
            }
        };
        let mut layers = LayerProgress::default();
        assert!(!layers.feed(&item("a", "Pulling fs layer", None, None)));
        assert!(layers.feed(&item("a", "Downloading", Some(10), Some(100))));
        assert!(layers.feed(&item("b", "Downloading", Some(5), Some(50))));
        assert_eq!((layers.done(), layers.total()), (15, 150));
        assert!(layers.feed(&item("a", "Download complete", None, None)));
        assert_eq!((layers.done(), layers.total()), (105, 150));
        assert!(!layers.feed(&item("c", "Already exists", None, None)));
        assert!(layers.feed(&item("b", "Pull complete", None, None)));
        assert_eq!((layers.done(), layers.total()), (150, 150));
    }

    #[test]
    fn endpoint_defaults_to_the_local_socket() {
        let endpoint = EngineEndpoint::from_env_values(None, None, None).unwrap();
        assert_eq!(endpoint, EngineEndpoint::default());
        let endpoint =
            EngineEndpoint::from_env_values(Some(String::new()), Some(String::new()), None)
                .unwrap();
        assert_eq!(endpoint.host, DEFAULT_DOCKER_HOST);
        assert_eq!(endpoint.tls, None);
    }

    #[test]
    fn tls_verify_uses_the_cert_path_files() {
        let endpoint = EngineEndpoint::from_env_values(
            Some("tcp://127.0.0.1:2376".to_string()),
            Some("1".to_string()),
            Some("/certs".to_string()),
        )
        .unwrap();
        assert_eq!(endpoint.tls, Some(TlsFiles::in_directory("/certs")));
        assert_eq!(endpoint.to_string(), "tcp://127.0.0.1:2376 (TLS)");
        let plain = EngineEndpoint::from_env_values(
            Some("tcp://127.0.0.1:2375".to_string()),
            None,
            Some("/certs".to_string()),
        )
        .unwrap();
        assert_eq!(plain.tls, None);
    }

    #[test]
    fn unsupported_hosts_are_rejected() {
        for host in [
            "ssh://user@host",
            "npipe:////./pipe/docker_engine",
            "host:2375",
        ] {
            let error =
                EngineEndpoint::from_env_values(Some(host.to_string()), None, None).unwrap_err();
            assert!(
                matches!(error, DockerError::UnsupportedHost { .. }),
                "{host}: {error}"
            );
        }
    }

    #[tokio::test]
    async fn missing_tls_files_are_named() {
        let directory = tempfile::tempdir().unwrap();
        let endpoint = EngineEndpoint::from_env_values(
            Some("tcp://127.0.0.1:1".to_string()),
            Some("1".to_string()),
            Some(directory.path().display().to_string()),
        )
        .unwrap();
        let error = connect(&endpoint).await.unwrap_err();
        assert!(
            error.to_string().contains("ca.pem"),
            "the missing file is named: {error}"
        );
    }

    #[tokio::test]
    async fn unreachable_engine_names_the_endpoint() {
        let directory = tempfile::tempdir().unwrap();
        let socket = directory.path().join("docker.sock");
        let endpoint = EngineEndpoint {
            host: format!("unix://{}", socket.display()),
            tls: None,
        };
        let error = connect(&endpoint).await.unwrap_err();
        assert!(matches!(error, DockerError::Unreachable { .. }), "{error}");
        assert!(error.to_string().contains(&socket.display().to_string()));
        // A TCP port nobody listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let endpoint = EngineEndpoint {
            host: format!("tcp://127.0.0.1:{port}"),
            tls: None,
        };
        let error = connect(&endpoint).await.unwrap_err();
        assert!(
            error.to_string().contains(&format!("127.0.0.1:{port}")),
            "{error}"
        );
    }

    #[test]
    fn tags_are_validated() {
        for tag in [
            "registry.gitlab.com/gha1/spark:3.5.1",
            "127.0.0.1:5000/spark:3.5.1-hadoop3.3.4",
            "localhost/spark:latest",
            "spark:latest",
            "imgforge-test/busybox:latest",
        ] {
            validate_tag(tag).unwrap_or_else(|error| panic!("{tag}: {error}"));
        }
        for tag in [
            "spark",
            "Spark:latest",
            "registry.gitlab.com/gha1/spark:",
            "reg istry/spark:1",
            "spark:-bad",
            "host:notaport/spark:1",
            "a//b:1",
        ] {
            assert!(validate_tag(tag).is_err(), "{tag} should be rejected");
        }
    }

    #[test]
    fn output_tracker_records_steps_cache_hits_and_tail() {
        let reporter = crate::progress::QuietReporter;
        let task = reporter.task("x");
        let mut tracker = OutputTracker::new();
        tracker.feed(
            "Step 1/3 : FROM base\n ---> abc\nStep 2/3 : COPY a /a\n",
            &reporter,
            task,
        );
        tracker.feed(" ---> Using ca", &reporter, task);
        tracker.feed("che\n ---> def\nStep 3/3 : RUN make\n", &reporter, task);
        for line in 0..30 {
            tracker.feed(&format!("line {line}\n"), &reporter, task);
        }
        let cached: Vec<bool> = tracker.steps.iter().map(|step| step.cached).collect();
        assert_eq!(cached, vec![false, true, false]);
        assert!(tracker.steps[0].is_from());
        assert_eq!(tracker.tail().len(), OUTPUT_TAIL_LINES);
        assert_eq!(tracker.tail().last().map(String::as_str), Some("line 29"));
        assert_eq!(tracker.current_step(), "Step 3/3 : RUN make");
    }

    #[test]
    fn output_lines_lose_colour_codes_and_bookkeeping() {
        let reporter = crate::progress::QuietReporter;
        let task = reporter.task("x");
        let mut tracker = OutputTracker::new();
        tracker.feed(
            "Step 1/1 : RUN x\n ---> Running in 1234\n\u{1b}[91merr line\n\u{1b}[0mout line\r\nRemoving intermediate container 1234\n",
            &reporter,
            task,
        );
        assert_eq!(tracker.tail(), vec!["err line", "out line"]);
    }

    #[test]
    fn the_rejected_certificate_marker_names_the_alias_of_its_step_only() {
        let reporter = crate::progress::QuietReporter;
        let task = reporter.task("x");
        let mut tracker = OutputTracker::new();
        tracker.feed(
            "Step 1/2 : RUN sh import-certs.sh\nkeytool error: bad key\n\u{1b}[91mimgforge-cert-rejected alias=corp-root\r\n",
            &reporter,
            task,
        );
        assert_eq!(tracker.rejected_alias.as_deref(), Some("corp-root"));
        assert_eq!(tracker.tail(), vec!["keytool error: bad key"]);
        tracker.feed("Step 2/2 : RUN false\n", &reporter, task);
        assert_eq!(tracker.rejected_alias, None);
    }

    #[test]
    fn import_certs_prints_the_marker_docker_reads() {
        let script = crate::assemble::IMPORT_CERTS_SCRIPT;
        assert!(
            script.contains(&format!("echo \"{CERT_REJECTED_MARKER}$alias\" >&2")),
            "{script}"
        );
    }
}
