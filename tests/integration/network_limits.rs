//! Every network input is bounded: the real binary against the loopback mirror sending too
//! much (endless checksum files, `KEYS`, signatures, POMs, listings and bodies, a body
//! announced longer than `[network] max_artifact_bytes`), too slowly (one byte a second, past
//! the minimum speed; past the artifact deadline), or redirecting badly (a loop, more than ten
//! hops, from https to plain http). Each fails with exit 3, names the URL and the limit, stops reading at the cap (the
//! server never gets to send everything) and leaves nothing in the cache.
//!
//! Slow-server tests configure windows of a second or two, so they finish in seconds; nothing
//! here asserts on elapsed time.

use std::sync::Arc;
use std::time::Duration;

use crate::helpers::{assert_no_temp_files, assert_not_cached, write_config};
use crate::support::{Fault, TestEnv, assert_exit_code, assert_stderr_contains, stderr_text};

const SPARK_NAME: &str = "spark-3.1.1-bin-hadoop3.2.tgz";

/// What an endless body sends at most: far past every cap, small enough that a client
/// without caps ends (and fails the test) rather than exhausting the machine.
const ENDLESS: u64 = 64 << 20;

/// `imgforge --config <file with network_toml> fetch <target>`, with no retries unless the
/// section says otherwise.
fn fetch_with(env: &TestEnv, network_toml: &str, target: &str) -> std::process::Output {
    let config = write_config(env, "limits.toml", &format!("[network]\n{network_toml}\n"));
    env.run(&[
        "--config",
        config.to_str().expect("UTF-8 path"),
        "fetch",
        target,
    ])
}

/// The one GET for `path` stopped early: the client hung up long before the body's end.
fn assert_stopped_early(env: &TestEnv, path: &str) {
    let records = env.server.requests_for(path);
    assert!(!records.is_empty(), "{path} was never requested");
    for record in records {
        assert!(
            !record.completed && record.bytes_sent < ENDLESS,
            "{path}: the client read on to the end ({} bytes): {record:?}",
            record.bytes_sent
        );
    }
}

fn assert_nothing_kept(env: &TestEnv) {
    assert_not_cached(&env.cache_dir(), SPARK_NAME);
    assert_no_temp_files(&env.cache_dir());
}

#[test]
fn an_endless_checksum_file_is_refused_at_its_cap() {
    let env = TestEnv::new();
    let checksum = format!("{}.sha512", env.apache.spark.url_path);
    env.server.inject(
        &checksum,
        Fault::Endless {
            stop_after: ENDLESS,
        },
    );
    let output = fetch_with(&env, "retries = 0", "spark");
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, &format!("{}{checksum}", env.apache_url()));
    assert_stderr_contains(&output, "1.0 MiB, the limit for a checksum file");
    assert_stopped_early(&env, &checksum);
    assert_nothing_kept(&env);
}

#[test]
fn an_endless_keys_file_and_an_endless_signature_are_refused_at_their_caps() {
    let env = TestEnv::new();
    env.server.inject(
        "/spark/KEYS",
        Fault::Endless {
            stop_after: ENDLESS,
        },
    );
    let output = fetch_with(&env, "retries = 0", "spark");
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, &format!("{}/spark/KEYS", env.apache_url()));
    assert_stderr_contains(&output, "8.0 MiB, the limit for a KEYS file");
    assert_stopped_early(&env, "/spark/KEYS");
    assert_nothing_kept(&env);

    env.server.clear_faults();
    let signature = format!("{}.asc", env.apache.spark.url_path);
    env.server.inject(
        &signature,
        Fault::Endless {
            stop_after: ENDLESS,
        },
    );
    let output = fetch_with(&env, "retries = 0", "spark");
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, &format!("{}{signature}", env.apache_url()));
    assert_stderr_contains(&output, "1.0 MiB, the limit for a signature");
    assert_stopped_early(&env, &signature);
    assert_nothing_kept(&env);
}

#[test]
fn an_endless_pom_is_refused_at_the_pom_cap() {
    let env = TestEnv::new();
    let pom = env.maven.hadoop_aws_pom.url_path.clone();
    env.server.inject(
        &pom,
        Fault::Endless {
            stop_after: ENDLESS,
        },
    );
    let output = fetch_with(&env, "retries = 0", "jars");
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, &format!("{}{pom}", env.apache_url()));
    assert_stderr_contains(&output, "4.0 MiB, the limit for a POM");
    assert_stopped_early(&env, &pom);
    assert_no_temp_files(&env.cache_dir());
}

#[test]
fn an_endless_artifact_body_stops_at_max_artifact_bytes() {
    let env = TestEnv::new();
    let spark = env.apache.spark.url_path.clone();
    env.server.inject(
        &spark,
        Fault::Endless {
            stop_after: ENDLESS,
        },
    );
    let output = fetch_with(&env, "retries = 0\nmax_artifact_bytes = 2097152", "spark");
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, &format!("{}{spark}", env.apache_url()));
    assert_stderr_contains(
        &output,
        "2.0 MiB, the limit for an artifact ([network] max_artifact_bytes)",
    );
    assert_stopped_early(&env, &spark);
    assert_nothing_kept(&env);
}

#[test]
fn a_body_announced_longer_than_max_artifact_bytes_is_refused_before_it_streams() {
    let env = TestEnv::new();
    let spark = env.apache.spark.clone();
    let limit = spark.size - 1;
    let output = fetch_with(
        &env,
        &format!("retries = 0\nmax_artifact_bytes = {limit}"),
        "spark",
    );
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, &format!("{}{}", env.apache_url(), spark.url_path));
    assert_stderr_contains(&output, "[network] max_artifact_bytes");
    assert_nothing_kept(&env);

    // The same artifact within the limit downloads: the limit is what refused it.
    let output = fetch_with(
        &env,
        &format!("retries = 0\nmax_artifact_bytes = {}", spark.size),
        "spark",
    );
    crate::support::assert_success(&output);
}

#[test]
fn a_body_longer_than_its_content_length_is_never_stored() {
    let env = TestEnv::new();
    let spark = env.apache.spark.clone();
    // The server announces one byte less than it has; whatever arrives past that is refused,
    // and what arrives up to it does not match the checksum.
    env.server.inject(
        &spark.url_path,
        Fault::AnnounceLength {
            announced: spark.size - 1,
        },
    );
    let output = fetch_with(&env, "retries = 0", "spark");
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, &format!("{}{}", env.apache_url(), spark.url_path));
    assert_nothing_kept(&env);
}

#[test]
fn a_server_dripping_a_byte_a_second_fails_within_the_speed_window() {
    let env = TestEnv::new();
    let spark = env.apache.spark.url_path.clone();
    env.server.inject(
        &spark,
        Fault::Drip {
            every: Duration::from_secs(1),
        },
    );
    // A byte a second never trips the 30 s read timeout; the minimum speed does, after 2 s.
    let output = fetch_with(
        &env,
        "retries = 0\ntimeout_secs = 30\nmin_speed_bytes = 100\nmin_speed_secs = 2\nartifact_deadline_secs = 600",
        "spark",
    );
    assert_exit_code(&output, 3);
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains(&format!("{}{spark}: too slow", env.apache_url()))
            && stderr.contains("below the minimum of 100 bytes/s")
            && stderr.contains("[network] min_speed_bytes"),
        "{stderr}"
    );
    assert_nothing_kept(&env);
}

#[test]
fn a_checksum_file_dripping_a_byte_a_second_fails_within_the_speed_window() {
    let env = TestEnv::new();
    let checksum = format!("{}.sha512", env.apache.spark.url_path);
    env.server.inject(
        &checksum,
        Fault::Drip {
            every: Duration::from_secs(1),
        },
    );
    let output = fetch_with(
        &env,
        "retries = 0\ntimeout_secs = 30\nmin_speed_bytes = 100\nmin_speed_secs = 2",
        "spark",
    );
    assert_exit_code(&output, 3);
    assert_stderr_contains(
        &output,
        &format!("{}{checksum}: too slow", env.apache_url()),
    );
    assert_nothing_kept(&env);
}

#[test]
fn a_download_past_its_deadline_fails_naming_the_setting() {
    let env = TestEnv::new();
    let spark = env.apache.spark.url_path.clone();
    env.server.inject(
        &spark,
        Fault::Drip {
            every: Duration::from_millis(100),
        },
    );
    // Ten bytes a second pass a minimum of 1 byte/s, so only the deadline can stop it.
    let output = fetch_with(
        &env,
        "retries = 2\nmin_speed_bytes = 1\nmin_speed_secs = 1\nartifact_deadline_secs = 2",
        "spark",
    );
    assert_exit_code(&output, 3);
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains(&format!(
            "{}{spark}: not downloaded within 2 s ([network] artifact_deadline_secs)",
            env.apache_url()
        )),
        "{stderr}"
    );
    assert_nothing_kept(&env);
}

#[test]
fn a_redirect_loop_is_refused_naming_the_urls() {
    let env = TestEnv::new();
    let spark = env.apache.spark.url_path.clone();
    let base = env.apache_url();
    env.server.inject(
        &spark,
        Fault::Redirect {
            to: "/loop/a".into(),
        },
    );
    env.server.inject(
        "/loop/a",
        Fault::Redirect {
            to: "/loop/b".into(),
        },
    );
    env.server.inject(
        "/loop/b",
        Fault::Redirect {
            to: "/loop/a".into(),
        },
    );
    let output = fetch_with(&env, "retries = 3", "spark");
    assert_exit_code(&output, 3);
    assert_stderr_contains(
        &output,
        &format!(
            "cannot download {base}{spark}: redirect loop: {base}/loop/b redirects back to {base}/loop/a"
        ),
    );
    // Refused at once, not retried.
    assert_eq!(env.server.count(&spark), 1, "{:?}", env.server.requests());
    assert_nothing_kept(&env);
}

#[test]
fn ten_redirects_are_followed_and_an_eleventh_is_refused() {
    let env = TestEnv::new();
    let spark = env.apache.spark.clone();
    let base = env.apache_url();
    let copy = env.mirror_root().join("moved").join(SPARK_NAME);
    std::fs::create_dir_all(copy.parent().expect("parent")).expect("moved/");
    std::fs::copy(&spark.file, &copy).expect("copy the tarball");
    let chain = |hops: usize| {
        env.server.clear_faults();
        let mut from = spark.url_path.clone();
        for hop in 1..hops {
            let to = format!("/hop/{hop}");
            env.server.inject(&from, Fault::Redirect { to: to.clone() });
            from = to;
        }
        env.server.inject(
            &from,
            Fault::Redirect {
                to: format!("/moved/{SPARK_NAME}"),
            },
        );
    };

    chain(11);
    let output = fetch_with(&env, "retries = 0", "spark");
    assert_exit_code(&output, 3);
    assert_stderr_contains(
        &output,
        &format!(
            "more than 10 redirects, starting at {base}{}",
            spark.url_path
        ),
    );
    assert_stderr_contains(&output, &format!("the last to {base}/moved/{SPARK_NAME}"));
    assert_nothing_kept(&env);

    chain(10);
    let output = fetch_with(&env, "retries = 0", "spark");
    crate::support::assert_success(&output);
}

/// An https server on loopback, with a certificate from a CA of its own, answering every
/// request with a redirect to the same path under `target` (a plain http URL).
struct TlsRedirector {
    url: String,
    ca_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
    // Dropping the runtime stops the server.
    _runtime: tokio::runtime::Runtime,
}

impl TlsRedirector {
    fn start(target: String) -> TlsRedirector {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls;

        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "imgforge network_limits test CA");
        let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_key = KeyPair::generate().expect("server key");
        let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("server params")
            .signed_by(&server_key, &issuer)
            .expect("server certificate");
        let dir = tempfile::tempdir().expect("CA dir");
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).expect("write the CA");

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![server_cert.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("address"));
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut stream) = acceptor.accept(socket).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|window| window == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(read) => request.extend_from_slice(&buffer[..read]),
                        }
                    }
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let response = format!(
                        "HTTP/1.1 302 Found\r\nLocation: {target}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        TlsRedirector {
            url,
            ca_file,
            _dir: dir,
            _runtime: runtime,
        }
    }
}

#[test]
fn a_redirect_from_https_to_plain_http_is_refused() {
    let env = TestEnv::new();
    let redirector = TlsRedirector::start(env.apache_url());
    let spark = env.apache.spark.url_path.clone();
    let mut command = env.imgforge();
    command
        // The test CA is the only one trusted, so the https mirror is genuinely verified.
        .env("SSL_CERT_FILE", &redirector.ca_file)
        .env_remove("SSL_CERT_DIR")
        .env("IMGFORGE_APACHE_MIRROR", &redirector.url)
        .args(["fetch", "spark"]);
    let output =
        crate::support::env::run_command(command, crate::support::env::DEFAULT_RUN_TIMEOUT);
    assert_exit_code(&output, 3);
    // The first request (the checksum file) is redirected, and refused.
    assert_stderr_contains(
        &output,
        &format!(
            "refused a redirect from {}{spark}.sha512 to plain http at {}{spark}.sha512",
            redirector.url,
            env.apache_url()
        ),
    );
    assert_eq!(
        env.server.count(&format!("{spark}.sha512")),
        0,
        "the plain http URL was never requested"
    );
    assert_nothing_kept(&env);
}
