//! imgforge's own calls to a registry over the Registry HTTP API v2: checking that the
//! credentials are accepted before a push, and reading each pushed tag's manifest back to
//! verify its digest.
//!
//! Authentication follows the registry's `WWW-Authenticate` challenge: `Basic` sends the
//! credentials, `Bearer realm=…,service=…,scope=…` fetches a token from the realm (with the
//! credentials as Basic auth, or an identity token as an OAuth refresh token) and retries.
//!
//! TLS is always verified, against the system store plus `--registry-ca`. Plain HTTP is used
//! only for a registry the engine treats as insecure, and only when HTTPS fails and the plain
//! endpoint answers like a registry. When verification fails, the registry's certificate is
//! fetched once more without verification to say which CA issued it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, WWW_AUTHENTICATE};
use reqwest::{Client, Method, Response, StatusCode};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::credentials::{Credential, CredentialSource, Credentials};

/// The manifest media types imgforge accepts, as `docker push` writes them.
pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json";

/// The client id sent when exchanging an identity token, as OAuth requires one.
const OAUTH_CLIENT_ID: &str = "imgforge";

/// What can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client for registry {registry}")]
    Client {
        /// The registry.
        registry: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The `--registry-ca` file cannot be read.
    #[error("cannot read the registry CA file {path}")]
    CaRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The `--registry-ca` file is not a PEM certificate.
    #[error("registry CA file {path} is not a PEM certificate")]
    CaInvalid {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// Nothing answers at the registry's address.
    #[error("registry {registry} is not reachable at {url}")]
    Unreachable {
        /// The registry.
        registry: String,
        /// The URL tried.
        url: String,
        /// What the client saw.
        #[source]
        source: reqwest::Error,
    },
    /// The registry's certificate is not signed by a trusted CA.
    #[error(
        "TLS verification of registry {registry} failed: its certificate was issued by \"{issuer}\", \
         a CA imgforge does not trust{}; pass that CA with --registry-ca FILE (or [push] registry_ca) \
         or add it to the system store",
        trusted_note(ca.as_deref())
    )]
    TlsUntrusted {
        /// The registry.
        registry: String,
        /// The issuer of the registry's certificate.
        issuer: String,
        /// The extra CA that was configured, if any.
        ca: Option<PathBuf>,
    },
    /// The registry refused the credentials.
    #[error(
        "authentication failed for registry {registry} with the credentials from {source_name}"
    )]
    AuthenticationFailed {
        /// The registry.
        registry: String,
        /// Where the credentials came from.
        source_name: CredentialSource,
    },
    /// The registry demands credentials and none were found.
    #[error(
        "registry {registry} requires authentication and no credentials were found for it: pass \
         --username with --password-stdin, set IMGFORGE_REGISTRY_USER and IMGFORGE_REGISTRY_PASSWORD, \
         or add it to the docker config.json (docker login)"
    )]
    NoCredentials {
        /// The registry.
        registry: String,
    },
    /// The registry's challenge cannot be followed.
    #[error(
        "registry {registry} sent an authentication challenge imgforge cannot follow: {challenge:?}"
    )]
    Challenge {
        /// The registry.
        registry: String,
        /// The `WWW-Authenticate` value.
        challenge: String,
    },
    /// The token service did not give a token.
    #[error("the token service {realm} of registry {registry} did not issue a token: {message}")]
    Token {
        /// The registry.
        registry: String,
        /// The token service URL.
        realm: String,
        /// What went wrong.
        message: String,
    },
    /// A response body is longer than imgforge reads from a registry.
    #[error("registry {registry} sent more than {} for {url}; imgforge reads at most that", crate::progress::bytes(*cap))]
    TooLarge {
        /// The registry.
        registry: String,
        /// The URL.
        url: String,
        /// The cap in bytes.
        cap: u64,
    },
    /// A response body arrived slower than the minimum speed.
    #[error("registry {registry} sent {url} too slowly: {why}")]
    TooSlow {
        /// The registry.
        registry: String,
        /// The URL.
        url: String,
        /// How slow.
        why: String,
    },
    /// A request failed on the way.
    #[error("request to registry {registry} failed: {url}")]
    Request {
        /// The registry.
        registry: String,
        /// The URL.
        url: String,
        /// What the client saw.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected status.
    #[error("registry {registry} answered {status} for {url}")]
    Status {
        /// The registry.
        registry: String,
        /// The URL.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// The registry sent a manifest whose bytes do not hash to the digest it announced.
    #[error(
        "registry {registry} sent a manifest for {reference} whose sha256 is {computed} but announced {announced}"
    )]
    ManifestDigest {
        /// The registry.
        registry: String,
        /// `name:tag`.
        reference: String,
        /// `Docker-Content-Digest`.
        announced: String,
        /// What the bytes hash to.
        computed: String,
    },
}

fn trusted_note(ca: Option<&Path>) -> String {
    match ca {
        Some(path) => format!(
            " (neither the system store nor {} holds it)",
            path.display()
        ),
        None => " (only the system store was consulted)".to_string(),
    }
}

/// A manifest read back from the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ManifestDigest {
    /// `sha256:<hex>` of the manifest bytes (checked against `Docker-Content-Digest`).
    pub(crate) digest: String,
    /// Its media type, when the registry said.
    pub(crate) media_type: Option<String>,
    /// Its size in bytes.
    pub(crate) size: u64,
}

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub(crate) struct RegistryOptions {
    /// An extra CA to trust besides the system store.
    pub(crate) ca: Option<PathBuf>,
    /// The engine treats the registry as insecure: plain HTTP is allowed when HTTPS fails.
    pub(crate) insecure: bool,
    /// Connect and read timeout.
    pub(crate) timeout: Option<Duration>,
}

/// A client for one registry host.
#[derive(Debug)]
pub(crate) struct RegistryClient {
    host: String,
    options: RegistryOptions,
    client: Client,
    credentials: Option<Credentials>,
    /// `https://host` or `http://host`, once chosen.
    base: Mutex<Option<String>>,
    /// The `Authorization` value that last worked, with the scope it was issued for.
    authorization: Mutex<Option<(String, String)>>,
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// `Basic realm=…`.
    Basic,
    /// `Bearer realm=…,service=…,scope=…`.
    Bearer {
        /// The token service URL.
        realm: String,
        /// The `service` parameter.
        service: Option<String>,
        /// The `scope` parameter.
        scope: Option<String>,
    },
}

/// Parse a `WWW-Authenticate` value (one challenge, quoted or token parameters).
pub(crate) fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let mut realm = None;
    let mut service = None;
    let mut scope = None;
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (parameter, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (&quoted[..end], &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim(), &after[end..])
        };
        match key.as_str() {
            "realm" => realm = Some(parameter.to_string()),
            "service" => service = Some(parameter.to_string()),
            "scope" => scope = Some(parameter.to_string()),
            _ => {}
        }
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    if scheme.eq_ignore_ascii_case("basic") {
        Some(Challenge::Basic)
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Some(Challenge::Bearer {
            realm: realm?,
            service,
            scope,
        })
    } else {
        None
    }
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

impl RegistryClient {
    /// A client for `host` (such as `registry.gitlab.com` or `127.0.0.1:5000`).
    pub(crate) fn new(
        host: &str,
        options: RegistryOptions,
        credentials: Option<Credentials>,
    ) -> Result<RegistryClient, RegistryError> {
        // The same bounded redirect policy as downloads: at most 10, no loops, never https to http.
        let mut builder = Client::builder().redirect(crate::http::redirect_policy());
        if let Some(timeout) = options.timeout {
            builder = builder.connect_timeout(timeout).read_timeout(timeout);
        }
        if let Some(path) = &options.ca {
            let pem = std::fs::read(path).map_err(|source| RegistryError::CaRead {
                path: path.clone(),
                source,
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|source| {
                RegistryError::CaInvalid {
                    path: path.clone(),
                    source,
                }
            })?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder.build().map_err(|source| RegistryError::Client {
            registry: host.to_string(),
            source,
        })?;
        Ok(RegistryClient {
            host: host.to_string(),
            options,
            client,
            credentials,
            base: Mutex::new(None),
            authorization: Mutex::new(None),
        })
    }

    /// Check that the registry answers and accepts the credentials for pushing to
    /// `repository` (`GET /v2/`, following its challenge with a push scope).
    pub(crate) async fn check_access(&self, repository: &str) -> Result<(), RegistryError> {
        let scope = format!("repository:{repository}:pull,push");
        let response = self.get("/v2/", &scope, None).await?;
        self.expect_success(response, "/v2/").await.map(|_| ())
    }

    /// Read the manifest of `repository:reference` and return its verified digest.
    pub(crate) async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<ManifestDigest, RegistryError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let scope = format!("repository:{repository}:pull");
        let response = self.get(&path, &scope, Some(MANIFEST_ACCEPT)).await?;
        let response = self.expect_success(response, &path).await?;
        let announced = header_text(response.headers(), "docker-content-digest");
        let media_type = header_text(response.headers(), "content-type");
        let body = self.body(response).await?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&body)));
        if let Some(announced) = announced
            && announced != digest
        {
            return Err(RegistryError::ManifestDigest {
                registry: self.host.clone(),
                reference: format!("{repository}:{reference}"),
                announced,
                computed: digest,
            });
        }
        Ok(ManifestDigest {
            digest,
            media_type,
            size: body.len() as u64,
        })
    }

    /// The digest of `repository:reference` as the registry serves it now (a manifest list's
    /// own digest for a multi-platform tag, as the engine records it when it pulls), `Ok(None)`
    /// when the registry has no such tag. A `HEAD` request, which Docker Hub does not count
    /// against its pull limit; the manifest is read (and hashed) only when the registry does
    /// not announce the digest.
    pub(crate) async fn current_digest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let scope = format!("repository:{repository}:pull");
        let response = self
            .request(Method::HEAD, &path, &scope, Some(MANIFEST_ACCEPT))
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.expect_success(response, &path).await?;
        match header_text(response.headers(), "docker-content-digest") {
            Some(digest) if digest.starts_with("sha256:") => Ok(Some(digest)),
            _ => Ok(Some(self.manifest(repository, reference).await?.digest)),
        }
    }

    /// The labels of the image at `repository:reference` (its config blob's `config.Labels`),
    /// `Ok(None)` when the registry has no such tag. A manifest list is followed to its
    /// linux/amd64 entry.
    pub(crate) async fn image_labels(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<Option<std::collections::BTreeMap<String, String>>, RegistryError> {
        let scope = format!("repository:{repository}:pull");
        let mut manifest = match self
            .json(
                &format!("/v2/{repository}/manifests/{reference}"),
                &scope,
                Some(MANIFEST_ACCEPT),
            )
            .await?
        {
            Some(manifest) => manifest,
            None => return Ok(None),
        };
        if let Some(entries) = manifest
            .get("manifests")
            .and_then(|entries| entries.as_array())
        {
            let chosen = entries.iter().find(|entry| {
                let platform = &entry["platform"];
                platform["os"] == "linux" && platform["architecture"] == "amd64"
            });
            let Some(digest) = chosen.and_then(|entry| entry["digest"].as_str()) else {
                return Ok(None);
            };
            manifest = match self
                .json(
                    &format!("/v2/{repository}/manifests/{digest}"),
                    &scope,
                    Some(MANIFEST_ACCEPT),
                )
                .await?
            {
                Some(manifest) => manifest,
                None => return Ok(None),
            };
        }
        let Some(config_digest) = manifest["config"]["digest"].as_str() else {
            return Ok(None);
        };
        let Some(config) = self
            .json(
                &format!("/v2/{repository}/blobs/{config_digest}"),
                &scope,
                None,
            )
            .await?
        else {
            return Ok(None);
        };
        let labels = config["config"]["Labels"]
            .as_object()
            .map(|labels| {
                labels
                    .iter()
                    .filter_map(|(key, value)| Some((key.clone(), value.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(labels))
    }

    /// The tags of `repository` (`GET /v2/<repository>/tags/list`, following `Link` pages).
    pub(crate) async fn tags(&self, repository: &str) -> Result<Vec<String>, RegistryError> {
        let scope = format!("repository:{repository}:pull");
        let mut tags = Vec::new();
        let mut path = format!("/v2/{repository}/tags/list?n=1000");
        // Bounded: a registry that keeps sending pages is not followed forever.
        for _ in 0..100 {
            let response = self.get(&path, &scope, None).await?;
            let response = self.expect_success(response, &path).await?;
            let next = header_text(response.headers(), "link").and_then(|link| {
                link.split(';').next().map(|target| {
                    target
                        .trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                })
            });
            let bytes = self.body(response).await?;
            let page: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            tags.extend(
                page["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|tag| tag.as_str().map(str::to_string)),
            );
            match next {
                Some(next) if next.starts_with("/v2/") => path = next,
                _ => break,
            }
        }
        Ok(tags)
    }

    /// The whole body of a response, at most [`crate::http::REGISTRY_JSON_CAP`] bytes: read
    /// incrementally, so an endless answer cannot fill memory.
    async fn body(&self, response: Response) -> Result<bytes::Bytes, RegistryError> {
        let cap = crate::http::REGISTRY_JSON_CAP;
        crate::http::read_bounded(response, cap, "a registry document")
            .await
            .map(bytes::Bytes::from)
            .map_err(|error| match error {
                crate::http::BoundedReadError::TooLarge { url, .. } => RegistryError::TooLarge {
                    registry: self.host.clone(),
                    url,
                    cap,
                },
                crate::http::BoundedReadError::TooSlow { url, why } => RegistryError::TooSlow {
                    registry: self.host.clone(),
                    url,
                    why,
                },
                crate::http::BoundedReadError::Transport { url, source } => {
                    RegistryError::Request {
                        registry: self.host.clone(),
                        url,
                        source,
                    }
                }
            })
    }

    /// GET a JSON document; `Ok(None)` on 404.
    async fn json(
        &self,
        path: &str,
        scope: &str,
        accept: Option<&str>,
    ) -> Result<Option<serde_json::Value>, RegistryError> {
        let response = self.get(path, scope, accept).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let response = self.expect_success(response, path).await?;
        let bytes = self.body(response).await?;
        // A body that is not JSON is treated like a missing document: the caller rebuilds.
        Ok(serde_json::from_slice(&bytes).ok())
    }

    async fn expect_success(
        &self,
        response: Response,
        path: &str,
    ) -> Result<Response, RegistryError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.refused());
        }
        Err(RegistryError::Status {
            registry: self.host.clone(),
            url: format!("{}{path}", self.base().await?),
            status,
        })
    }

    fn refused(&self) -> RegistryError {
        match &self.credentials {
            Some(credentials) => RegistryError::AuthenticationFailed {
                registry: self.host.clone(),
                source_name: credentials.source.clone(),
            },
            None => RegistryError::NoCredentials {
                registry: self.host.clone(),
            },
        }
    }

    /// GET `path`, answering an authentication challenge once.
    async fn get(
        &self,
        path: &str,
        scope: &str,
        accept: Option<&str>,
    ) -> Result<Response, RegistryError> {
        self.request(Method::GET, path, scope, accept).await
    }

    /// `method` on `path`, answering an authentication challenge once.
    async fn request(
        &self,
        method: Method,
        path: &str,
        scope: &str,
        accept: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let base = self.base().await?;
        let url = format!("{base}{path}");
        let cached = self
            .authorization
            .lock()
            .ok()
            .and_then(|guard| guard.clone())
            .filter(|(for_scope, _)| for_scope == scope)
            .map(|(_, value)| value);
        let response = self
            .send(method.clone(), &url, accept, cached.as_deref())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge_text =
            header_text(response.headers(), WWW_AUTHENTICATE.as_str()).unwrap_or_default();
        let challenge =
            parse_challenge(&challenge_text).ok_or_else(|| RegistryError::Challenge {
                registry: self.host.clone(),
                challenge: challenge_text.clone(),
            })?;
        let authorization = self.authorize(&challenge, scope).await?;
        let response = self
            .send(method, &url, accept, Some(&authorization))
            .await?;
        if response.status() == StatusCode::UNAUTHORIZED {
            return Err(self.refused());
        }
        if let Ok(mut guard) = self.authorization.lock() {
            *guard = Some((scope.to_string(), authorization));
        }
        Ok(response)
    }

    async fn send(
        &self,
        method: Method,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Response, RegistryError> {
        let mut request = self.client.request(method, url);
        if let Some(accept) = accept {
            request = request.header(ACCEPT, accept);
        }
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        request
            .send()
            .await
            .map_err(|source| RegistryError::Request {
                registry: self.host.clone(),
                url: url.to_string(),
                source,
            })
    }

    /// The `Authorization` value answering `challenge`.
    async fn authorize(&self, challenge: &Challenge, scope: &str) -> Result<String, RegistryError> {
        match challenge {
            Challenge::Basic => match &self.credentials {
                Some(Credentials {
                    credential: Credential::Basic { username, password },
                    ..
                }) => Ok(format!(
                    "Basic {}",
                    base64_encode(format!("{username}:{}", password.expose()).as_bytes())
                )),
                Some(_) => Err(self.refused()),
                None => Err(RegistryError::NoCredentials {
                    registry: self.host.clone(),
                }),
            },
            Challenge::Bearer {
                realm,
                service,
                scope: challenged_scope,
            } => {
                let scope = challenged_scope.as_deref().unwrap_or(scope);
                let token = self.fetch_token(realm, service.as_deref(), scope).await?;
                Ok(format!("Bearer {token}"))
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let token_error = |message: String| RegistryError::Token {
            registry: self.host.clone(),
            realm: realm.to_string(),
            message,
        };
        let mut url = url::Url::parse(realm)
            .map_err(|error| token_error(format!("the realm is not a URL: {error}")))?;
        let request = match self.credentials.as_ref().map(|found| &found.credential) {
            Some(Credential::IdentityToken { token }) => {
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", token.expose()),
                    ("client_id", OAUTH_CLIENT_ID),
                    ("scope", scope),
                ];
                if let Some(service) = service {
                    form.push(("service", service));
                }
                let body = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish();
                self.client
                    .post(url.clone())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body)
            }
            credential => {
                {
                    let mut query = url.query_pairs_mut();
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    if !scope.is_empty() {
                        query.append_pair("scope", scope);
                    }
                }
                let request = self.client.get(url.clone());
                match credential {
                    Some(Credential::Basic { username, password }) => {
                        request.basic_auth(username, Some(password.expose()))
                    }
                    _ => request,
                }
            }
        };
        let response = request
            .send()
            .await
            .map_err(|source| RegistryError::Request {
                registry: self.host.clone(),
                url: realm.to_string(),
                source,
            })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(self.refused());
        }
        if !status.is_success() {
            return Err(token_error(format!("it answered {status}")));
        }
        let body = self.body(response).await?;
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|error| token_error(format!("its answer is not a token document: {error}")))?;
        answer
            .token
            .or(answer.access_token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| token_error("its answer holds no token".into()))
    }

    /// `https://host`, or `http://host` for an insecure registry whose HTTPS fails.
    async fn base(&self) -> Result<String, RegistryError> {
        if let Some(base) = self.base.lock().ok().and_then(|guard| guard.clone()) {
            return Ok(base);
        }
        let https = format!("https://{}", self.host);
        let chosen = match self.client.get(format!("{https}/v2/")).send().await {
            Ok(_) => https,
            Err(https_error) => {
                let http = format!("http://{}", self.host);
                let plain_ok = self.options.insecure
                    && match self.client.get(format!("{http}/v2/")).send().await {
                        Ok(response) => answers_like_a_registry(&response),
                        Err(_) => false,
                    };
                if plain_ok {
                    tracing::debug!(registry = %self.host, "HTTPS failed; using plain HTTP for this insecure registry");
                    http
                } else {
                    return Err(self.diagnose_https(&https, https_error).await);
                }
            }
        };
        if let Ok(mut guard) = self.base.lock() {
            *guard = Some(chosen.clone());
        }
        Ok(chosen)
    }

    /// Why HTTPS failed: an untrusted certificate (naming its issuer) or no answer.
    async fn diagnose_https(&self, https: &str, error: reqwest::Error) -> RegistryError {
        let probe = Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .tls_info(true)
            .connect_timeout(self.options.timeout.unwrap_or(Duration::from_secs(10)))
            .build();
        if let Ok(probe) = probe
            && let Ok(response) = probe.get(format!("{https}/v2/")).send().await
        {
            let issuer = response
                .extensions()
                .get::<reqwest::tls::TlsInfo>()
                .and_then(|info| info.peer_certificate())
                .and_then(|der| {
                    x509_parser::parse_x509_certificate(der)
                        .ok()
                        .map(|(_, certificate)| certificate.issuer().to_string())
                })
                .unwrap_or_else(|| "an unknown issuer".to_string());
            return RegistryError::TlsUntrusted {
                registry: self.host.clone(),
                issuer,
                ca: self.options.ca.clone(),
            };
        }
        RegistryError::Unreachable {
            registry: self.host.clone(),
            url: format!("{https}/v2/"),
            source: error,
        }
    }
}

/// A registry answers `/v2/` with 200 or 401 (a TLS port spoken to in plain HTTP says 400).
fn answers_like_a_registry(response: &Response) -> bool {
    matches!(response.status(), StatusCode::OK | StatusCode::UNAUTHORIZED)
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or(value).trim().to_string())
}

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let value = chunk.iter().enumerate().fold(0u32, |acc, (index, byte)| {
            acc | (u32::from(*byte) << (16 - 8 * index))
        });
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(
                    ALPHABET[((value >> (18 - 6 * index)) & 63) as usize],
                ));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Secret;
    use axum::Router;
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap as AxumHeaders, StatusCode as AxumStatus, header};
    use axum::response::{IntoResponse, Response as AxumResponse};
    use axum::routing::get;
    use std::collections::HashMap;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn base64_encodes_known_values() {
        assert_eq!(base64_encode(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64_encode(b"a"), "YQ==");
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_encode(b""), "");
    }

    #[test]
    fn challenges_parse() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://gitlab.com/jwt/auth",service="container_registry",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://gitlab.com/jwt/auth".into(),
                service: Some("container_registry".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            parse_challenge("Bearer realm=http://t/token, service=reg"),
            Some(Challenge::Bearer {
                realm: "http://t/token".into(),
                service: Some("reg".into()),
                scope: None,
            })
        );
        assert_eq!(parse_challenge("Bearer service=x"), None);
        assert_eq!(parse_challenge("Negotiate abc"), None);
    }

    /// A minimal registry with a Bearer token service: `/token` issues a token for
    /// user `u`/password `p` (Basic auth), `/v2/…` demands it.
    #[derive(Clone)]
    struct Fake {
        base: Arc<Mutex<String>>,
        manifest: &'static [u8],
        announced: Option<String>,
        token_requests: Arc<AtomicUsize>,
        scopes: Arc<Mutex<Vec<String>>>,
    }

    const TOKEN: &str = "issued-token";

    async fn token(
        State(fake): State<Fake>,
        Query(query): Query<HashMap<String, String>>,
        headers: AxumHeaders,
    ) -> AxumResponse {
        fake.token_requests.fetch_add(1, Ordering::SeqCst);
        fake.scopes
            .lock()
            .unwrap()
            .push(query.get("scope").cloned().unwrap_or_default());
        let expected = format!("Basic {}", base64_encode(b"u:p"));
        if query.get("service").map(String::as_str) != Some("fake-registry") {
            return AxumStatus::BAD_REQUEST.into_response();
        }
        if headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            != Some(&expected)
        {
            return AxumStatus::UNAUTHORIZED.into_response();
        }
        axum::Json(serde_json::json!({ "token": TOKEN })).into_response()
    }

    async fn registry(
        State(fake): State<Fake>,
        headers: AxumHeaders,
        uri: axum::http::Uri,
    ) -> AxumResponse {
        let authorized = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"));
        if !authorized {
            let base = fake.base.lock().unwrap().clone();
            let challenge = format!(
                r#"Bearer realm="{base}/token",service="fake-registry",scope="repository:team/app:pull""#
            );
            return (
                AxumStatus::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, challenge)],
            )
                .into_response();
        }
        if uri.path() == "/v2/" {
            return AxumStatus::OK.into_response();
        }
        if uri.path() != "/v2/team/app/manifests/1.0" {
            return AxumStatus::NOT_FOUND.into_response();
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !accept.contains("application/vnd.oci.image.index.v1+json") {
            return AxumStatus::NOT_ACCEPTABLE.into_response();
        }
        let digest = fake
            .announced
            .clone()
            .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(fake.manifest))));
        (
            [
                (
                    header::CONTENT_TYPE,
                    "application/vnd.docker.distribution.manifest.v2+json".to_string(),
                ),
                (
                    header::HeaderName::from_static("docker-content-digest"),
                    digest,
                ),
            ],
            fake.manifest,
        )
            .into_response()
    }

    async fn serve(announced: Option<String>) -> (String, Fake) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = Fake {
            base: Arc::new(Mutex::new(base.clone())),
            manifest: br#"{"schemaVersion":2}"#,
            announced,
            token_requests: Arc::new(AtomicUsize::new(0)),
            scopes: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Router::new()
            .route("/token", get(token))
            .fallback(registry)
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (base.trim_start_matches("http://").to_string(), fake)
    }

    fn basic(username: &str, password: &str) -> Option<Credentials> {
        Some(Credentials {
            credential: Credential::Basic {
                username: username.into(),
                password: Secret::new(password),
            },
            source: CredentialSource::Environment,
        })
    }

    fn insecure() -> RegistryOptions {
        RegistryOptions {
            insecure: true,
            timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn bearer_flow_fetches_a_token_with_basic_credentials_and_verifies_the_digest() {
        let (host, fake) = serve(None).await;
        let client = RegistryClient::new(&host, insecure(), basic("u", "p")).unwrap();
        let manifest = client.manifest("team/app", "1.0").await.unwrap();
        assert_eq!(
            manifest.digest,
            format!(
                "sha256:{}",
                hex::encode(Sha256::digest(br#"{"schemaVersion":2}"#))
            )
        );
        assert_eq!(
            manifest.media_type.as_deref(),
            Some("application/vnd.docker.distribution.manifest.v2+json")
        );
        // The token is reused for the same scope.
        client.manifest("team/app", "1.0").await.unwrap();
        assert_eq!(fake.token_requests.load(Ordering::SeqCst), 1);
        assert_eq!(
            fake.scopes.lock().unwrap().as_slice(),
            ["repository:team/app:pull"]
        );
    }

    #[tokio::test]
    async fn wrong_password_names_registry_and_source_but_not_the_password() {
        let (host, _fake) = serve(None).await;
        let client = RegistryClient::new(&host, insecure(), basic("u", "wrong-secret")).unwrap();
        let error = client.manifest("team/app", "1.0").await.unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, RegistryError::AuthenticationFailed { .. }),
            "{message}"
        );
        assert!(message.contains(&host), "{message}");
        assert!(message.contains("IMGFORGE_REGISTRY_USER"), "{message}");
        assert!(!format!("{error:?}").contains("wrong-secret"));
    }

    #[tokio::test]
    async fn no_credentials_says_so() {
        let (host, _fake) = serve(None).await;
        let client = RegistryClient::new(&host, insecure(), None).unwrap();
        let error = client.check_access("team/app").await.unwrap_err();
        assert!(
            matches!(error, RegistryError::NoCredentials { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_manifest_not_matching_its_announced_digest_is_an_error() {
        let (host, _fake) = serve(Some(format!("sha256:{}", "0".repeat(64)))).await;
        let client = RegistryClient::new(&host, insecure(), basic("u", "p")).unwrap();
        let error = client.manifest("team/app", "1.0").await.unwrap_err();
        assert!(
            matches!(error, RegistryError::ManifestDigest { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn plain_http_is_refused_for_a_registry_the_engine_treats_as_secure() {
        let (host, _fake) = serve(None).await;
        let options = RegistryOptions {
            insecure: false,
            timeout: Some(Duration::from_secs(5)),
            ..Default::default()
        };
        let client = RegistryClient::new(&host, options, basic("u", "p")).unwrap();
        let error = client.manifest("team/app", "1.0").await.unwrap_err();
        assert!(
            matches!(error, RegistryError::Unreachable { .. }),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_registry_that_is_down_is_unreachable() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let host = listener.local_addr().unwrap().to_string();
        drop(listener);
        let client = RegistryClient::new(&host, insecure(), None).unwrap();
        let error = client.check_access("a").await.unwrap_err();
        assert!(
            matches!(error, RegistryError::Unreachable { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(&host));
    }
}
