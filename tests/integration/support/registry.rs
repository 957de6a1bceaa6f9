//! Real registries for the push tests: Debian's `docker-registry` (CNCF distribution 2.8)
//! started per test on its own loopback port — plain, or with htpasswd (bcrypt) auth over TLS
//! whose certificates `imgforge certs init` made and which the engine trusts through
//! `/etc/docker/certs.d/127.0.0.1:<port>/ca.crt` — and a reverse proxy that answers some
//! requests with 503 to stand for a registry failing mid-push.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

/// The registry program Debian's `docker-registry` package installs.
pub const REGISTRY_PROGRAM: &str = "/usr/bin/docker-registry";

/// A loopback port nothing listens on at the time of the call.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// A running `docker-registry`; dropping it stops the process and removes the engine's
/// `certs.d` entry.
#[derive(Debug)]
pub struct Registry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// The CA that signed its certificate (TLS registries).
    pub ca: Option<PathBuf>,
    /// Its log (stdout and stderr).
    pub log: PathBuf,
    child: Child,
    certs_d: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

/// How to start a registry.
#[derive(Debug, Default, Clone)]
pub struct RegistrySpec {
    /// htpasswd user and password; implies TLS.
    pub user: Option<(String, String)>,
    /// Send relative `Location` headers (needed behind the proxy).
    pub relative_urls: bool,
    /// Trust the CA in the engine's `certs.d`.
    pub trust_in_engine: bool,
}

impl Registry {
    /// A plain HTTP registry without authentication.
    pub fn plain() -> Registry {
        Registry::start(RegistrySpec::default())
    }

    /// A TLS registry with htpasswd authentication for `user`/`password`, its CA trusted by
    /// the engine.
    pub fn tls_htpasswd(user: &str, password: &str) -> Registry {
        Registry::start(RegistrySpec {
            user: Some((user.into(), password.into())),
            trust_in_engine: true,
            ..Default::default()
        })
    }

    /// Start a registry as `spec` says; fails the test when it does not answer.
    pub fn start(spec: RegistrySpec) -> Registry {
        assert!(
            Path::new(REGISTRY_PROGRAM).exists(),
            "{REGISTRY_PROGRAM} is missing; run scripts/ci-services.sh (as root)"
        );
        let dir = tempfile::Builder::new()
            .prefix("imgforge-registry-")
            .tempdir()
            .expect("registry directory");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {host}\n  relativeurls: {}\n",
            dir.path().join("data").display(),
            spec.relative_urls
        );
        let mut ca = None;
        let mut certs_d = None;
        if let Some((user, password)) = &spec.user {
            let certs = dir.path().join("certs");
            let output = Command::new(env!("CARGO_BIN_EXE_imgforge"))
                .args(["certs", "init", "--host", "127.0.0.1", "--out"])
                .arg(&certs)
                .output()
                .expect("run imgforge certs init");
            assert!(
                output.status.success(),
                "imgforge certs init failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let htpasswd = Command::new("htpasswd")
                .args(["-Bbn", user, password])
                .output()
                .expect("run htpasswd (apache2-utils; scripts/ci-services.sh installs it)");
            assert!(htpasswd.status.success(), "htpasswd failed");
            std::fs::write(dir.path().join("htpasswd"), &htpasswd.stdout).expect("write htpasswd");
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd:\n    realm: imgforge-test\n    path: {}\n",
                certs.join("server.crt").display(),
                certs.join("server.key").display(),
                dir.path().join("htpasswd").display()
            ));
            if spec.trust_in_engine {
                let engine_dir = PathBuf::from(format!("/etc/docker/certs.d/{host}"));
                std::fs::create_dir_all(&engine_dir).expect("create the engine's certs.d entry");
                std::fs::copy(certs.join("ca.crt"), engine_dir.join("ca.crt"))
                    .expect("copy the CA into certs.d");
                certs_d = Some(engine_dir);
            }
            ca = Some(certs.join("ca.crt"));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write the registry configuration");
        let log = dir.path().join("registry.log");
        let log_file = std::fs::File::create(&log).expect("registry log");
        let child = Command::new(REGISTRY_PROGRAM)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file)
            .spawn()
            .expect("start docker-registry");
        let registry = Registry {
            host,
            ca,
            log,
            child,
            certs_d,
            _dir: dir,
        };
        registry.wait_until_listening();
        registry
    }

    fn wait_until_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&self.host).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {} within 15s; log:\n{}",
                self.host,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The registry's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.certs_d {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Which requests the proxy fails with 503, and how many times.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fail this many blob upload starts (`POST /v2/<name>/blobs/uploads/`).
    pub blob_upload_starts: usize,
    /// Fail this many manifest uploads (`PUT /v2/<name>/manifests/<tag>`).
    pub manifest_puts: usize,
    /// Let this many manifest uploads through, then fail every later one.
    pub manifest_puts_after: Option<usize>,
}

/// What the proxy saw.
#[derive(Debug, Default)]
pub struct ProxyCounts {
    /// Blob upload starts, failed or passed.
    pub blob_upload_starts: AtomicUsize,
    /// Manifest PUTs, failed or passed.
    pub manifest_puts: AtomicUsize,
    /// Requests answered with 503.
    pub failed: AtomicUsize,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    faults: Faults,
    counts: Arc<ProxyCounts>,
    client: reqwest::Client,
}

/// A reverse proxy on loopback in front of a plain registry, failing some requests.
pub struct FaultyProxy {
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// What it saw.
    pub counts: Arc<ProxyCounts>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultyProxy {
    /// Start a proxy forwarding to `upstream` (`127.0.0.1:<port>`, plain HTTP).
    pub async fn start(upstream: &str, faults: Faults) -> FaultyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let host = listener.local_addr().expect("proxy address").to_string();
        let counts = Arc::new(ProxyCounts::default());
        let state = ProxyState {
            upstream: upstream.to_string(),
            faults,
            counts: Arc::clone(&counts),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("proxy client"),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("serve the proxy");
        });
        FaultyProxy { host, counts, task }
    }
}

async fn forward(State(state): State<ProxyState>, request: Request) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let is_blob_start = method == "POST" && path.ends_with("/blobs/uploads/");
    let is_manifest_put = method == "PUT" && path.contains("/manifests/");
    let fail = |counter: &AtomicUsize, limit: usize| counter.fetch_add(1, Ordering::SeqCst) < limit;
    let manifest_put =
        is_manifest_put.then(|| state.counts.manifest_puts.fetch_add(1, Ordering::SeqCst));
    let should_fail = (is_blob_start
        && fail(
            &state.counts.blob_upload_starts,
            state.faults.blob_upload_starts,
        ))
        || manifest_put.is_some_and(|index| {
            index < state.faults.manifest_puts
                || state
                    .faults
                    .manifest_puts_after
                    .is_some_and(|after| index >= after)
        });
    if should_fail {
        state.counts.failed.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::SERVICE_UNAVAILABLE, "injected failure").into_response();
    }
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|value| value.as_str().to_string())
        .unwrap_or_else(|| path.clone());
    let url = format!("http://{}{path_and_query}", state.upstream);
    let mut headers = request.headers().clone();
    headers.remove(axum::http::header::HOST);
    let body = match to_bytes(request.into_body(), usize::MAX).await {
        Ok(body) => body,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let upstream = match state
        .client
        .request(method, url)
        .headers(headers)
        .body(body)
        .send()
        .await
    {
        Ok(response) => response,
        Err(_) => return StatusCode::BAD_GATEWAY.into_response(),
    };
    let status = upstream.status();
    let headers = upstream.headers().clone();
    let bytes = upstream.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != HeaderName::from_static("transfer-encoding") {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}
