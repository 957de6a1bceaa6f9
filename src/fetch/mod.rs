//! Getting artifacts onto disk, verified: mirrors tried in order, bounded retries with
//! backoff, HTTP Range resume, and the digest computed while the body streams to disk.
//!
//! The flow for one artifact: a cache hit returns at once without touching the network;
//! otherwise the per-artifact lock is taken (another process may finish the download
//! meanwhile — then it is a hit after all), the expected digest is established (pinned, or
//! from the checksum file published next to the artifact), and the body is streamed into a
//! temp file inside the cache while being hashed. Only a verified file is committed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, RANGE};
use url::Url;

mod sink;

use self::sink::{SignedBy, Sink, Written};
use crate::cache::{Cache, CacheError, CachedArtifact, IndexEntry, now_unix};
use crate::config::{Config, MirrorsConfig, NetworkConfig};
use crate::exit;
use crate::http::{self, BoundedReadError, MinSpeed, SpeedWindow};
use crate::plan::{ArtifactSpec, Expected, Repository};
use crate::progress::{Phase, Reporter, TaskId};
use crate::redact::{redact_url, strip_url};
use crate::signature::Keyring;
use crate::verify::{self, Algorithm, ChecksumFormatError, Digest};

/// First pause before a retry; doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Why fetching an artifact failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Offline and artifacts are not in the cache.
    #[error("--offline, but the cache at {cache_dir} lacks:{}", list_urls(names))]
    Offline {
        /// The missing artifacts' file names.
        names: Vec<String>,
        /// The cache directory searched.
        cache_dir: String,
    },
    /// Every mirror answered 404 (or had no checksum file) for the artifact.
    #[error("{name} was not found on any mirror; tried:{}", list_urls(tried))]
    NotFound {
        /// The artifact's file name.
        name: String,
        /// Every URL tried, in order.
        tried: Vec<String>,
    },
    /// Every mirror failed, at least one with something other than 404.
    #[error("could not download {name}; tried:{}", list_attempts(tried))]
    Unavailable {
        /// The artifact's file name.
        name: String,
        /// Each URL tried and why it failed.
        tried: Vec<(String, String)>,
    },
    /// A server answered with a status that is neither success, 404 nor retryable.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The content does not match its expected digest.
    #[error("checksum mismatch for {url}: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// Where the content came from.
        url: String,
        /// The published or pinned digest, `algorithm:hex`.
        expected: String,
        /// The digest of what was received, `algorithm:hex`.
        actual: String,
    },
    /// The published checksum file cannot be understood.
    #[error("cannot parse the checksum file {url}")]
    ChecksumFormat {
        /// The checksum file's URL.
        url: String,
        /// What is wrong with it.
        #[source]
        source: ChecksumFormatError,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
    /// No detached signature is published next to the artifact.
    #[error(
        "no signature at {url}: every Apache release is signed, so a missing .asc is an error (set [verify] signatures = false only for a mirror you trust)"
    )]
    SignatureMissing {
        /// The `.asc` URL.
        url: String,
    },
    /// The project's KEYS file (or the signature) could not be fetched.
    #[error("cannot fetch {url} to check the release signature: {why}")]
    Keys {
        /// The URL.
        url: String,
        /// Why.
        why: String,
    },
    /// The signature does not verify.
    #[error("signature check failed for {url}")]
    Signature {
        /// The artifact.
        url: String,
        /// Why.
        #[source]
        source: Box<crate::signature::SignatureError>,
    },
    /// A body is longer than a limit allows.
    #[error("{url} is larger than {}, the limit for {what} ({setting})", crate::progress::bytes(*limit))]
    TooLarge {
        /// The URL (credentials masked).
        url: String,
        /// What was downloaded, e.g. "an artifact", "a checksum file".
        what: &'static str,
        /// The limit in bytes.
        limit: u64,
        /// Where the limit comes from, e.g. "[network] max_artifact_bytes".
        setting: &'static str,
    },
    /// A body is longer than the server announced (Content-Length).
    #[error("{url} sent more than the {announced} bytes it announced; the download was discarded")]
    LongerThanAnnounced {
        /// The URL (credentials masked).
        url: String,
        /// The announced length in bytes.
        announced: u64,
    },
    /// A redirect was refused (too many, a loop, or https to http).
    #[error("cannot download {url}: {why}")]
    Redirect {
        /// The URL asked for (credentials masked).
        url: String,
        /// Which redirect was refused and why.
        why: String,
    },
    /// A cache operation failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Writing the download to disk failed (disk full, for instance).
    #[error("cannot write the download of {url} to {path}")]
    Write {
        /// The URL being downloaded.
        url: String,
        /// The temp file being written.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
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
}

impl FetchError {
    /// Combine the failures of independent fetches into one error: every artifact missing
    /// while offline is named together; otherwise the first failure stands.
    pub fn combine(errors: Vec<FetchError>) -> Option<FetchError> {
        let all_offline = errors
            .iter()
            .all(|error| matches!(error, FetchError::Offline { .. }));
        let mut errors = errors.into_iter();
        let first = errors.next()?;
        if !all_offline {
            return Some(first);
        }
        let FetchError::Offline {
            mut names,
            cache_dir,
        } = first
        else {
            return Some(first);
        };
        for error in errors {
            if let FetchError::Offline { names: more, .. } = error {
                names.extend(more);
            }
        }
        Some(FetchError::Offline { names, cache_dir })
    }
}

fn list_urls(urls: &[String]) -> String {
    urls.iter().map(|url| format!("\n  - {url}")).collect()
}

fn list_attempts(attempts: &[(String, String)]) -> String {
    attempts
        .iter()
        .map(|(url, why)| format!("\n  - {url}: {why}"))
        .collect()
}

/// A verified artifact, either found in the cache or just downloaded.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// What was asked for.
    pub spec: ArtifactSpec,
    /// Where it is and what it is.
    pub artifact: CachedArtifact,
    /// Whether it came from the cache without a download.
    pub cached: bool,
}

/// How release signatures are checked.
#[derive(Debug, Clone)]
struct SignaturePolicy {
    /// When not empty, only these primary-key fingerprints are trusted.
    fingerprints: Vec<String>,
}

/// The outcome of one attempt at one URL, driving mirror fallback.
enum Attempt {
    /// 404/410: try the next candidate.
    Missing,
    /// Retries exhausted on transient failures.
    Failed(String),
    /// Stop everything (integrity, local I/O, unexpected status).
    Fatal(FetchError),
}

/// Downloads artifacts into a [`Cache`].
pub struct Fetcher {
    signatures: Option<SignaturePolicy>,
    client: reqwest::Client,
    cache: Arc<Cache>,
    mirrors: MirrorsConfig,
    network: NetworkConfig,
    offline: bool,
    reporter: Arc<dyn Reporter>,
    extract_limits: crate::extract::Limits,
}

impl Fetcher {
    /// A fetcher configured from `config`, storing into `cache`.
    pub fn new(
        config: &Config,
        cache: Arc<Cache>,
        reporter: Arc<dyn Reporter>,
    ) -> Result<Self, FetchError> {
        let client = http::client_builder(config.network.timeout)
            // Tarballs are already compressed; asking for gzip would only cost CPU.
            .no_gzip()
            // Resolution failures come back typed, so they are told apart from other
            // connection failures without reading error text (see `is_unresolved`).
            .dns_resolver(Arc::new(Resolver))
            .build()
            .map_err(FetchError::Client)?;
        Ok(Fetcher {
            signatures: config.verify.signatures.then(|| SignaturePolicy {
                fingerprints: config.verify.fingerprints.clone(),
            }),
            client,
            cache,
            mirrors: config.mirrors.clone(),
            network: config.network,
            offline: config.offline,
            reporter,
            extract_limits: config.extract,
        })
    }

    /// A fetched archive, to be read verified against its cache entry and under the
    /// configured `[extract]` limits.
    pub fn archive(&self, fetched: &Fetched) -> crate::extract::Archive {
        crate::extract::Archive::cached(&fetched.artifact, self.extract_limits)
    }

    /// The cache this fetcher stores into.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// Fetch one artifact: from the cache when present, else from the first mirror that has it.
    pub async fn fetch(&self, spec: &ArtifactSpec) -> Result<Fetched, FetchError> {
        let task = self.reporter.task(&spec.file_name);
        let result = self.fetch_task(spec, task).await;
        if result.is_err() {
            self.reporter.phase(task, Phase::Failed);
        }
        result
    }

    async fn fetch_task(&self, spec: &ArtifactSpec, task: TaskId) -> Result<Fetched, FetchError> {
        let key = spec.cache_key();
        if let Some(hit) = self.cached(spec, &key).await? {
            self.reporter.phase(task, Phase::Cached);
            return Ok(hit);
        }
        if self.offline {
            return Err(FetchError::Offline {
                names: vec![spec.file_name.clone()],
                cache_dir: self.cache.root().display().to_string(),
            });
        }
        let _lock = {
            let cache = Arc::clone(&self.cache);
            let key = key.clone();
            tokio::task::spawn_blocking(move || cache.lock_artifact(&key))
                .await
                .map_err(|join| CacheError::Lock {
                    path: spec.cache_key().into(),
                    source: std::io::Error::other(join),
                })??
        };
        // Another process may have stored it while this one waited for the lock.
        if let Some(hit) = self.cached(spec, &key).await? {
            self.reporter.phase(task, Phase::Cached);
            return Ok(hit);
        }

        let mut not_found = Vec::new();
        let mut failures = Vec::new();
        for base in self.mirrors_for(spec.repository) {
            let url = join(base, &spec.path);
            let expected = match &spec.expected {
                Expected::Pinned(digest) => *digest,
                Expected::Published => match self.published_checksum(spec, &url, task).await {
                    Ok(Some(digest)) => digest,
                    Ok(None) => {
                        let suffixes = spec.repository.checksum_suffixes().join(", ");
                        not_found.push(format!(
                            "{} (no checksum file: {suffixes} all answered 404)",
                            redact_url(&url)
                        ));
                        continue;
                    }
                    Err(Attempt::Fatal(error)) => return Err(error),
                    Err(Attempt::Missing) => continue,
                    Err(Attempt::Failed(why)) => {
                        failures.push((redact_url(&url), why));
                        continue;
                    }
                },
            };
            match self.download(spec, base, &url, &expected, task).await {
                Ok(artifact) => {
                    self.reporter.phase(
                        task,
                        Phase::Done {
                            detail: format!("sha512:{}…", &artifact.entry.sha512[..16]),
                        },
                    );
                    return Ok(Fetched {
                        spec: spec.clone(),
                        artifact,
                        cached: false,
                    });
                }
                Err(Attempt::Missing) => not_found.push(redact_url(&url)),
                Err(Attempt::Failed(why)) => failures.push((redact_url(&url), why)),
                Err(Attempt::Fatal(error)) => return Err(error),
            }
        }
        if failures.is_empty() {
            Err(FetchError::NotFound {
                name: spec.file_name.clone(),
                tried: not_found,
            })
        } else {
            failures.extend(
                not_found
                    .into_iter()
                    .map(|url| (url, "not found (HTTP 404)".to_string())),
            );
            Err(FetchError::Unavailable {
                name: spec.file_name.clone(),
                tried: failures,
            })
        }
    }

    fn mirrors_for(&self, repository: Repository) -> &[Url] {
        match repository {
            Repository::Apache => &self.mirrors.apache,
            Repository::Maven => &self.mirrors.maven,
        }
    }

    /// A cache hit that satisfies the spec's pin, if any.
    async fn cached(&self, spec: &ArtifactSpec, key: &str) -> Result<Option<Fetched>, FetchError> {
        let Some(artifact) = self.cache.lookup(key)? else {
            return Ok(None);
        };
        if let Expected::Pinned(pin) = &spec.expected {
            let matches = if pin.algorithm() == Algorithm::Sha512 {
                pin.hex() == artifact.entry.sha512
            } else if artifact.entry.verified_with == pin.to_string() {
                true
            } else {
                let path = artifact.path.clone();
                let algorithm = pin.algorithm();
                let hashes =
                    tokio::task::spawn_blocking(move || verify::hash_file(&path, algorithm))
                        .await
                        .map_err(|join| CacheError::Read {
                            path: artifact.path.clone(),
                            source: std::io::Error::other(join),
                        })?
                        .map_err(|source| CacheError::Read {
                            path: artifact.path.clone(),
                            source,
                        })?;
                hashes.extra == *pin
            };
            if !matches {
                return Ok(None);
            }
        }
        Ok(Some(Fetched {
            spec: spec.clone(),
            artifact,
            cached: true,
        }))
    }

    /// The digest published next to `url`: `Ok(None)` when no checksum file exists there.
    async fn published_checksum(
        &self,
        spec: &ArtifactSpec,
        url: &Url,
        task: TaskId,
    ) -> Result<Option<Digest>, Attempt> {
        for suffix in spec.repository.checksum_suffixes() {
            let checksum_url = Url::parse(&format!("{url}{suffix}"))
                .map_err(|error| Attempt::Failed(format!("invalid checksum URL: {error}")))?;
            let text = match self
                .get_text(&checksum_url, http::CHECKSUM_CAP, "a checksum file", task)
                .await
            {
                Ok(text) => text,
                Err(Attempt::Missing) => continue,
                Err(other) => return Err(other),
            };
            let hint = Algorithm::from_suffix(suffix);
            return verify::parse_checksum_file(&text, &spec.file_name, hint)
                .map(Some)
                .map_err(|source| {
                    Attempt::Fatal(FetchError::ChecksumFormat {
                        url: redact_url(&checksum_url),
                        source,
                    })
                });
        }
        Ok(None)
    }

    /// GET a small text resource with retries, refusing a body longer than `cap` bytes
    /// (`what` names the document in that error).
    async fn get_text(
        &self,
        url: &Url,
        cap: u64,
        what: &'static str,
        task: TaskId,
    ) -> Result<String, Attempt> {
        let attempts = self.network.retries + 1;
        let mut attempt = 1;
        loop {
            let outcome = match self.client.get(url.clone()).send().await {
                Ok(response) => match classify(url, response.status()) {
                    Ok(()) => {
                        match http::read_bounded_at_speed(response, cap, what, self.min_speed())
                            .await
                        {
                            Ok(body) => Ok(String::from_utf8_lossy(&body).into_owned()),
                            Err(BoundedReadError::TooLarge { .. }) => {
                                return Err(Attempt::Fatal(FetchError::TooLarge {
                                    url: redact_url(url),
                                    what,
                                    limit: cap,
                                    setting: "a built-in cap",
                                }));
                            }
                            Err(BoundedReadError::Transport { source, .. }) => {
                                Err(describe(&source))
                            }
                            // Named, since the failure is reported under the artifact's URL.
                            Err(BoundedReadError::TooSlow { url, why }) => {
                                Err(format!("{url}: {why}"))
                            }
                        }
                    }
                    Err(Classified::Missing) => return Err(Attempt::Missing),
                    Err(Classified::Fatal(error)) => return Err(Attempt::Fatal(error)),
                    Err(Classified::Transient(why)) => Err(why),
                },
                Err(error) => match http::redirect_refusal(&error) {
                    Some(why) => {
                        return Err(Attempt::Fatal(FetchError::Redirect {
                            url: redact_url(url),
                            why,
                        }));
                    }
                    // A name that does not resolve will not resolve a moment later.
                    None if is_unresolved(&error) => return Err(Attempt::Failed(describe(&error))),
                    None => Err(describe(&error)),
                },
            };
            match outcome {
                Ok(text) => return Ok(text),
                Err(why) if attempt < attempts => {
                    attempt += 1;
                    let reason = format!("{}: {why}", redact_url(url));
                    self.pause_before_retry(task, attempt, attempts, reason)
                        .await;
                }
                Err(why) => return Err(Attempt::Failed(why)),
            }
        }
    }

    /// The keyring and detached signature to check `url` against: the project's `KEYS`
    /// (restricted to pinned fingerprints) and `<url>.asc`, fetched before the download so the
    /// signature is checked as the body streams. A missing signature or an unreadable KEYS
    /// file is an error — never a skipped check.
    async fn signature_inputs(
        &self,
        policy: &SignaturePolicy,
        keys_url: &Url,
        url: &Url,
        task: TaskId,
    ) -> Result<SignedBy, FetchError> {
        let keys_text = match self
            .get_text(keys_url, http::KEYS_CAP, "a KEYS file", task)
            .await
        {
            Ok(text) => text,
            Err(Attempt::Fatal(error)) => return Err(error),
            Err(Attempt::Missing) => {
                return Err(FetchError::Keys {
                    url: redact_url(keys_url),
                    why: "not found (HTTP 404)".into(),
                });
            }
            Err(Attempt::Failed(why)) => {
                return Err(FetchError::Keys {
                    url: redact_url(keys_url),
                    why,
                });
            }
        };
        let signature_url =
            Url::parse(&format!("{url}.asc")).map_err(|error| FetchError::Keys {
                url: format!("{}.asc", redact_url(url)),
                why: error.to_string(),
            })?;
        let signature = match self
            .get_text(&signature_url, http::SIGNATURE_CAP, "a signature", task)
            .await
        {
            Ok(text) => text,
            Err(Attempt::Fatal(error)) => return Err(error),
            Err(Attempt::Missing) => {
                return Err(FetchError::SignatureMissing {
                    url: redact_url(&signature_url),
                });
            }
            Err(Attempt::Failed(why)) => {
                return Err(FetchError::Keys {
                    url: redact_url(&signature_url),
                    why,
                });
            }
        };
        let signature_error = |source| FetchError::Signature {
            url: redact_url(url),
            source: Box::new(source),
        };
        let mut keyring = Keyring::parse_keys_file(&keys_text).map_err(signature_error)?;
        if !policy.fingerprints.is_empty() {
            keyring = keyring
                .restrict_to(&policy.fingerprints)
                .map_err(signature_error)?;
        }
        Ok(SignedBy {
            keyring: Arc::new(keyring),
            signature: Arc::new(signature.into_bytes()),
        })
    }

    /// Say that attempt `attempt` of `of` follows, and wait the backoff before it.
    async fn pause_before_retry(&self, task: TaskId, attempt: u32, of: u32, reason: String) {
        self.reporter.phase(
            task,
            Phase::Retrying {
                attempt,
                of,
                reason,
            },
        );
        tokio::time::sleep(backoff(attempt)).await;
    }

    /// Stream `url` into a cache temp file, hashing as it goes; resume with Range after a
    /// transient failure; verify; commit.
    async fn download(
        &self,
        spec: &ArtifactSpec,
        base: &Url,
        url: &Url,
        expected: &Digest,
        task: TaskId,
    ) -> Result<CachedArtifact, Attempt> {
        let fatal = |error: FetchError| Attempt::Fatal(error);
        // The signature inputs are fetched once the artifact has answered (see `transfer`), so a
        // mirror without the artifact is a plain "not found" there, not a signature error.
        let signature_keys = match (&self.signatures, &spec.keys) {
            (Some(_), Some(keys)) => Some(join(base, keys)),
            _ => None,
        };
        let temp = self
            .cache
            .temp_file()
            .map_err(|error| fatal(error.into()))?;
        let mut sink = Sink::new(temp, url, expected.algorithm()).map_err(fatal)?;
        let mut signature_keys = signature_keys;
        let attempts = self.network.retries + 1;
        let mut attempt = 1;
        self.reporter.phase(
            task,
            Phase::Downloading {
                url: redact_url(url),
            },
        );
        let limits = TransferLimits {
            body: self.body_limit(spec),
            deadline: tokio::time::Instant::now() + self.network.artifact_deadline,
        };
        loop {
            match self
                .transfer(url, &mut sink, &mut signature_keys, &limits, task)
                .await
            {
                Ok(()) => break,
                Err(Transfer::Fatal(error)) => return Err(fatal(error)),
                Err(Transfer::Missing) => return Err(Attempt::Missing),
                Err(Transfer::Unresolved(why)) => return Err(Attempt::Failed(why)),
                Err(Transfer::Deadline) => {
                    return Err(Attempt::Failed(format!(
                        "not downloaded within {} s ([network] artifact_deadline_secs)",
                        self.network.artifact_deadline.as_secs()
                    )));
                }
                Err(Transfer::Transient(why)) if attempt < attempts => {
                    // What was received is now on disk, and only what is on disk counts.
                    sink.settle().await.map_err(fatal)?;
                    attempt += 1;
                    self.pause_before_retry(task, attempt, attempts, why).await;
                }
                Err(Transfer::Transient(why)) => return Err(Attempt::Failed(why)),
            }
        }

        self.reporter.phase(task, Phase::Verifying);
        let Written {
            temp,
            size,
            hashes,
            sha256,
            signature: signature_check,
        } = sink.finish().await.map_err(fatal)?;
        if hashes.extra != *expected {
            return Err(fatal(FetchError::ChecksumMismatch {
                url: redact_url(url),
                expected: expected.to_string(),
                actual: hashes.extra.to_string(),
            }));
        }
        if let Some(check) = signature_check {
            let check = check.map_err(|source| {
                fatal(FetchError::Signature {
                    url: redact_url(url),
                    source: Box::new(source),
                })
            })?;
            tracing::info!(
                "{}: good signature by {} ({}), {}",
                redact_url(url),
                check.signer,
                check.key_fingerprint,
                check.content_hash
            );
        }
        let entry = IndexEntry {
            key: spec.cache_key(),
            file_name: spec.file_name.clone(),
            sha512: hashes.sha512.hex(),
            sha256: Some(sha256),
            size,
            // The index (and the lock written from it) records where, never with which credentials.
            url: strip_url(url).to_string(),
            verified_with: expected.to_string(),
            stored_at: now_unix(),
        };
        let cache = Arc::clone(&self.cache);
        tokio::task::spawn_blocking(move || cache.commit(temp, entry))
            .await
            .map_err(|join| {
                fatal(FetchError::Cache(CacheError::Write {
                    path: spec.file_name.clone().into(),
                    source: std::io::Error::other(join),
                }))
            })?
            .map_err(|error| fatal(error.into()))
    }

    /// `[network] min_speed_bytes` and `min_speed_secs`.
    fn min_speed(&self) -> MinSpeed {
        MinSpeed {
            bytes_per_second: self.network.min_speed_bytes,
            window: self.network.min_speed_window,
        }
    }

    /// The size limit for `spec`'s body: the POM cap for a POM, else
    /// `[network] max_artifact_bytes`.
    fn body_limit(&self, spec: &ArtifactSpec) -> BodyLimit {
        let max = self.network.max_artifact_bytes;
        if spec.file_name.ends_with(".pom") && http::POM_CAP < max {
            BodyLimit {
                bytes: http::POM_CAP,
                what: "a POM",
                setting: "a built-in cap",
            }
        } else {
            BodyLimit {
                bytes: max,
                what: "an artifact",
                setting: "[network] max_artifact_bytes",
            }
        }
    }

    /// One request: continue from what `sink` already holds when it holds anything. The
    /// signature inputs at `signature_keys` are fetched (once) when the artifact answers.
    async fn transfer(
        &self,
        url: &Url,
        sink: &mut Sink,
        signature_keys: &mut Option<Url>,
        limits: &TransferLimits,
        task: TaskId,
    ) -> Result<(), Transfer> {
        let offset = sink.written();
        let mut request = self.client.get(url.clone());
        if offset > 0 {
            request = request.header(RANGE, format!("bytes={offset}-"));
        }
        let response = match tokio::time::timeout_at(limits.deadline, request.send()).await {
            Err(_) => return Err(Transfer::Deadline),
            Ok(Err(error)) => {
                return Err(match http::redirect_refusal(&error) {
                    Some(why) => Transfer::Fatal(FetchError::Redirect {
                        url: redact_url(url),
                        why,
                    }),
                    None if is_unresolved(&error) => Transfer::Unresolved(describe(&error)),
                    None => Transfer::Transient(describe(&error)),
                });
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        classify(url, status).map_err(Transfer::from)?;
        if let (Some(keys_url), Some(policy)) = (signature_keys.take(), &self.signatures) {
            let signed_by = self
                .signature_inputs(policy, &keys_url, url, task)
                .await
                .map_err(Transfer::Fatal)?;
            sink.verify_with(signed_by).map_err(Transfer::Fatal)?;
        }
        if offset > 0 {
            let resumes = status == StatusCode::PARTIAL_CONTENT
                && response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|value| value.to_str().ok())
                    .and_then(content_range_start)
                    == Some(offset);
            if resumes {
                // The bytes kept from the earlier attempt are hashed again from the `.partial`
                // file: a change on disk in between must not be stored as verified.
                sink.rehash_from_disk().await.map_err(Transfer::Fatal)?;
                self.reporter.phase(task, Phase::Resuming { offset });
            } else {
                self.reporter.phase(task, Phase::Restarting);
                sink.restart().await.map_err(Transfer::Fatal)?;
                self.reporter.position(task, 0);
            }
        }
        let remaining = response.content_length();
        let expected_total = remaining.map(|length| sink.written() + length);
        let too_large = || {
            Transfer::Fatal(FetchError::TooLarge {
                url: redact_url(url),
                what: limits.body.what,
                limit: limits.body.bytes,
                setting: limits.body.setting,
            })
        };
        // A body announced longer than the limit is refused before its first byte.
        if expected_total.is_some_and(|total| total > limits.body.bytes) {
            return Err(too_large());
        }
        self.reporter.length(task, expected_total);
        let mut speed = SpeedWindow::new(self.min_speed());
        let mut body = response.bytes_stream();
        loop {
            // Wake at the end of the speed window (or the deadline) even when nothing arrives.
            let wake = speed.window_end().min(limits.deadline);
            let next = match tokio::time::timeout_at(wake, body.next()).await {
                Ok(next) => next,
                Err(_) if tokio::time::Instant::now() >= limits.deadline => {
                    return Err(Transfer::Deadline);
                }
                Err(_) => {
                    speed.check().map_err(Transfer::Transient)?;
                    continue;
                }
            };
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|error| Transfer::Transient(describe(&error)))?;
            let length = chunk.len() as u64;
            // Refused as it streams: memory and disk stay bounded whatever a server sends.
            if sink.written() + length > limits.body.bytes {
                return Err(too_large());
            }
            if let Some(total) = expected_total
                && sink.written() + length > total
            {
                return Err(Transfer::Fatal(FetchError::LongerThanAnnounced {
                    url: redact_url(url),
                    announced: total,
                }));
            }
            sink.write(chunk).await.map_err(Transfer::Fatal)?;
            self.reporter.advance(task, length);
            speed.record(length);
            speed.check().map_err(Transfer::Transient)?;
        }
        match expected_total {
            Some(total) if sink.written() != total => Err(Transfer::Transient(format!(
                "connection closed after {} of {total} bytes",
                sink.written()
            ))),
            _ => Ok(()),
        }
    }
}

/// The most bytes one body may have, and how to name that limit.
#[derive(Debug, Clone, Copy)]
struct BodyLimit {
    bytes: u64,
    what: &'static str,
    setting: &'static str,
}

/// What bounds the transfers of one artifact from one mirror.
struct TransferLimits {
    body: BodyLimit,
    /// `[network] artifact_deadline_secs` after the first request.
    deadline: tokio::time::Instant,
}

/// The failure of one request.
enum Transfer {
    Missing,
    Transient(String),
    /// The mirror's host name does not resolve: the next mirror, without retries.
    Unresolved(String),
    /// `[network] artifact_deadline_secs` passed.
    Deadline,
    Fatal(FetchError),
}

impl From<Classified> for Transfer {
    fn from(classified: Classified) -> Self {
        match classified {
            Classified::Missing => Transfer::Missing,
            Classified::Transient(why) => Transfer::Transient(why),
            Classified::Fatal(error) => Transfer::Fatal(error),
        }
    }
}

enum Classified {
    Missing,
    Transient(String),
    Fatal(FetchError),
}

/// Sort an HTTP status into success, not-found, retryable or fatal.
fn classify(url: &Url, status: StatusCode) -> Result<(), Classified> {
    if status.is_success() {
        Ok(())
    } else if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
        Err(Classified::Missing)
    } else if status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
    {
        Err(Classified::Transient(format!("HTTP {}", status.as_u16())))
    } else {
        Err(Classified::Fatal(FetchError::Status {
            url: redact_url(url),
            status: status.as_u16(),
        }))
    }
}

/// A short description of a transport error, classified by the error's kind, not its text.
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "connection broke while reading the body"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

/// Resolves host names as reqwest's default resolver does (the system's `getaddrinfo`, off
/// the async threads), but fails with [`Unresolved`], which the retry decision recognises.
struct Resolver;

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map(|addresses| addresses.collect::<Vec<_>>());
            match found {
                Ok(addresses) => Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs),
                Err(why) => Err(Box::new(Unresolved { host, why }) as _),
            }
        })
    }
}

/// A host name the system resolver could not turn into addresses.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve the host name {host}: {why}")]
struct Unresolved {
    host: String,
    // Part of the message rather than a source: `describe` shows only the innermost cause.
    why: std::io::Error,
}

/// Whether `error` failed because a host name did not resolve.
fn is_unresolved(error: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause.is::<Unresolved>() {
            return true;
        }
        source = cause.source();
    }
    false
}

/// The start offset of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(value: &str) -> Option<u64> {
    value
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn backoff(attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(2).min(6);
    (FIRST_BACKOFF * factor).min(MAX_BACKOFF)
}

/// Join a mirror base URL and a layout path, keeping the base's own path.
pub fn join(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    url.set_path(&joined);
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_keeps_the_base_path() {
        let base = Url::parse("http://127.0.0.1:8080/dist/").expect("url");
        assert_eq!(
            join(&base, "spark/x.tgz").as_str(),
            "http://127.0.0.1:8080/dist/spark/x.tgz"
        );
        let base = Url::parse("https://archive.apache.org/dist").expect("url");
        assert_eq!(
            join(&base, "/a").as_str(),
            "https://archive.apache.org/dist/a"
        );
    }

    #[test]
    fn content_range_start_parses() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes */200"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(2), FIRST_BACKOFF);
        assert_eq!(backoff(3), FIRST_BACKOFF * 2);
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
