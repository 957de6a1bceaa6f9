//! The test mirror itself, checked with real HTTP requests: serving, ranges, listings, every
//! injected fault, the request log, streaming a large file, and the default fixtures.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};

use crate::support::fixtures::{self, ApacheTree};
use crate::support::{Fault, MirrorServer, TestEnv, assert_success};

const FILE_PATH: &str = "/dist/artifact.bin";

/// 100 000 distinct-looking bytes, enough for several body chunks' worth of offsets.
fn payload() -> Vec<u8> {
    fixtures::incompressible(100_000, 7)
}

fn serve_payload() -> (tempfile::TempDir, MirrorServer, Vec<u8>) {
    let root = tempfile::tempdir().expect("temp dir");
    let bytes = payload();
    ApacheTree::new(root.path()).put(FILE_PATH, &bytes);
    let server = MirrorServer::start(root.path());
    (root, server, bytes)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("build a client")
}

/// Reads a body chunk by chunk: the bytes received, and whether it ended in an error.
async fn read_body(response: reqwest::Response) -> (Vec<u8>, bool) {
    let mut stream = response.bytes_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(_) => return (bytes, true),
        }
    }
    (bytes, false)
}

#[tokio::test]
async fn serves_files_whole_with_their_length_and_logs_them() {
    let (_root, server, bytes) = serve_payload();
    let url = format!("{}{FILE_PATH}", server.url());
    let response = client().get(&url).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "application/octet-stream");
    assert_eq!(
        response.headers()[CONTENT_LENGTH],
        bytes.len().to_string().as_str()
    );
    assert_eq!(response.bytes().await.expect("body"), bytes);

    let head = client().head(&url).send().await.expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()[CONTENT_LENGTH],
        bytes.len().to_string().as_str()
    );

    let log = server.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].method, "GET");
    assert_eq!(log[0].path, FILE_PATH);
    assert_eq!(log[0].status, 200);
    assert_eq!(log[0].bytes_sent, bytes.len() as u64);
    assert!(log[0].completed);
    assert_eq!(log[0].range, None);
    assert_eq!(log[1].method, "HEAD");
    assert_eq!(log[1].bytes_sent, 0);
    assert_eq!(server.count(FILE_PATH), 2);
    assert_eq!(server.count("/dist/other.bin"), 0);

    server.clear_log();
    assert!(server.requests().is_empty());
}

/// Sends `request` verbatim and returns the whole answer as text.
fn raw_request(server: &MirrorServer, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server.address()).expect("connect");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[tokio::test]
async fn missing_files_are_404_and_traversal_is_refused() {
    let (_root, server, _bytes) = serve_payload();
    let missing = client()
        .get(format!("{}/dist/missing.tgz", server.url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // HTTP clients normalise `..` away, so this request is written by hand.
    let traversal = raw_request(
        &server,
        "GET /dist/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(traversal.starts_with("HTTP/1.1 400"), "{traversal}");
    let post = client()
        .post(format!("{}{FILE_PATH}", server.url()))
        .send()
        .await
        .expect("POST");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    let statuses: Vec<u16> = server
        .requests()
        .iter()
        .map(|record| record.status)
        .collect();
    assert_eq!(statuses, [404, 400, 405]);
}

#[tokio::test]
async fn ranges_are_answered_with_206_and_content_range() {
    let (_root, server, bytes) = serve_payload();
    let url = format!("{}{FILE_PATH}", server.url());
    let total = bytes.len();

    let open_ended = client()
        .get(&url)
        .header(RANGE, "bytes=60000-")
        .send()
        .await
        .expect("GET");
    assert_eq!(open_ended.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        open_ended.headers()[CONTENT_RANGE],
        format!("bytes 60000-{}/{total}", total - 1).as_str()
    );
    assert_eq!(
        open_ended.headers()[CONTENT_LENGTH],
        (total - 60_000).to_string().as_str()
    );
    assert_eq!(open_ended.bytes().await.expect("body"), bytes[60_000..]);

    let bounded = client()
        .get(&url)
        .header(RANGE, "bytes=10-19")
        .send()
        .await
        .expect("GET");
    assert_eq!(bounded.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        bounded.headers()[CONTENT_RANGE],
        format!("bytes 10-19/{total}").as_str()
    );
    assert_eq!(bounded.bytes().await.expect("body"), bytes[10..20]);

    let past_end = client()
        .get(&url)
        .header(RANGE, format!("bytes={total}-"))
        .send()
        .await
        .expect("GET");
    assert_eq!(past_end.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        past_end.headers()[CONTENT_RANGE],
        format!("bytes */{total}").as_str()
    );

    let log = server.requests();
    assert_eq!(log[0].range.as_deref(), Some("bytes=60000-"));
    assert_eq!(log[0].status, 206);
    assert_eq!(log[0].bytes_sent, (total - 60_000) as u64);
    assert_eq!(log[1].bytes_sent, 10);
    assert_eq!(log[2].status, 416);
}

#[tokio::test]
async fn directories_get_an_apache_style_index() {
    let env_root = tempfile::tempdir().expect("temp dir");
    let (apache, _maven) = fixtures::default_mirrors(env_root.path());
    let server = MirrorServer::start(env_root.path());

    let redirect = client()
        .get(format!("{}/spark", server.url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(redirect.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(redirect.headers()[LOCATION], "/spark/");

    let index = client()
        .get(format!("{}/spark/", server.url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(index.status(), StatusCode::OK);
    assert!(
        index.headers()[CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/html")
    );
    let html = index.text().await.expect("body");
    assert!(html.contains("<title>Index of /spark/</title>"), "{html}");
    assert!(
        html.contains("<a href=\"spark-3.1.1/\">spark-3.1.1/</a>"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"/\">Parent Directory</a>"),
        "{html}"
    );

    let release = client()
        .get(format!("{}/spark/spark-3.1.1/", server.url()))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    let name = apache.spark.file_name();
    assert!(
        release.contains(&format!("<a href=\"{name}\">{name}</a>")),
        "{release}"
    );
    assert!(
        release.contains(&format!("<a href=\"{name}.sha512\">")),
        "{release}"
    );

    let maven_root = client()
        .get(format!("{}/maven/", server.url()))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("body");
    assert!(
        maven_root.contains("<a href=\"org/\">org/</a>"),
        "{maven_root}"
    );
}

#[tokio::test]
async fn status_faults_apply_the_given_number_of_times() {
    let (_root, server, bytes) = serve_payload();
    let url = format!("{}{FILE_PATH}", server.url());
    server.inject(
        FILE_PATH,
        Fault::Status {
            code: 503,
            times: 2,
        },
    );
    for _ in 0..2 {
        let response = client().get(&url).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let response = client().get(&url).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.bytes().await.expect("body"), bytes);
    assert_eq!(server.count(FILE_PATH), 3);
    let statuses: Vec<u16> = server
        .requests_for(FILE_PATH)
        .iter()
        .map(|record| record.status)
        .collect();
    assert_eq!(statuses, [503, 503, 200]);

    // Forever, until cleared; other paths are unaffected.
    server.inject(
        FILE_PATH,
        Fault::Status {
            code: 404,
            times: usize::MAX,
        },
    );
    for _ in 0..3 {
        let response = client().head(&url).send().await.expect("HEAD");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
    let other = client()
        .get(format!("{}/dist/", server.url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(other.status(), StatusCode::OK);
    server.clear_faults();
    let response = client().get(&url).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn close_mid_body_sends_the_true_length_then_drops_the_connection() {
    let (_root, server, bytes) = serve_payload();
    let url = format!("{}{FILE_PATH}", server.url());
    server.inject(
        FILE_PATH,
        Fault::CloseMidBody {
            after: 30_000,
            times: 2,
        },
    );

    let response = client().get(&url).send().await.expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[CONTENT_LENGTH],
        bytes.len().to_string().as_str()
    );
    let (received, failed) = read_body(response).await;
    assert!(failed, "the body must end in an error");
    assert_eq!(received, bytes[..30_000]);

    // A resumed request is cut the same way, counted from the range start.
    let response = client()
        .get(&url)
        .header(RANGE, "bytes=30000-")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let (received, failed) = read_body(response).await;
    assert!(failed);
    assert_eq!(received, bytes[30_000..60_000]);

    // Used up: the third request completes.
    let response = client()
        .get(&url)
        .header(RANGE, "bytes=60000-")
        .send()
        .await
        .expect("GET");
    let (received, failed) = read_body(response).await;
    assert!(!failed);
    assert_eq!(received, bytes[60_000..]);

    let log = server.requests_for(FILE_PATH);
    assert_eq!(log[0].bytes_sent, 30_000);
    assert!(!log[0].completed);
    assert_eq!(log[1].status, 206);
    assert!(log[2].completed);
}

#[tokio::test]
async fn ignore_range_answers_200_with_the_whole_body() {
    let (_root, server, bytes) = serve_payload();
    server.inject(FILE_PATH, Fault::IgnoreRange);
    let response = client()
        .get(format!("{}{FILE_PATH}", server.url()))
        .header(RANGE, "bytes=500-")
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get(CONTENT_RANGE).is_none());
    assert_eq!(response.bytes().await.expect("body"), bytes);
    let log = server.requests();
    assert_eq!(log[0].range.as_deref(), Some("bytes=500-"));
    assert_eq!(log[0].status, 200);
}

#[tokio::test]
async fn delay_headers_holds_the_response_back() {
    let (_root, server, bytes) = serve_payload();
    let url = format!("{}{FILE_PATH}", server.url());
    server.inject(FILE_PATH, Fault::DelayHeaders(Duration::from_millis(400)));
    let started = Instant::now();
    let response = client().get(&url).send().await.expect("GET");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(response.bytes().await.expect("body"), bytes);

    // A server that never answers: the client's timeout fires, the log shows no status yet.
    server.clear_faults();
    server.clear_log();
    server.inject(FILE_PATH, Fault::DelayHeaders(Duration::MAX));
    let result = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client")
        .get(&url)
        .send()
        .await;
    assert!(result.expect_err("must time out").is_timeout());
    assert_eq!(server.requests()[0].status, 0);

    // Dropping the server does not wait for the stuck connection.
    let started = Instant::now();
    drop(server);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn stall_body_pauses_after_the_given_bytes_then_finishes() {
    let (_root, server, bytes) = serve_payload();
    server.inject(
        FILE_PATH,
        Fault::StallBody {
            after: 1_000,
            stall: Duration::from_millis(500),
        },
    );
    let started = Instant::now();
    let response = client()
        .get(format!("{}{FILE_PATH}", server.url()))
        .send()
        .await
        .expect("GET");
    let mut stream = response.bytes_stream();
    let mut received = Vec::new();
    let mut first_thousand_at = None;
    while let Some(chunk) = stream.next().await {
        received.extend_from_slice(&chunk.expect("chunk"));
        if received.len() >= 1_000 && first_thousand_at.is_none() {
            first_thousand_at = Some(started.elapsed());
        }
    }
    let first_thousand_at = first_thousand_at.expect("received 1000 bytes");
    assert!(
        first_thousand_at < Duration::from_millis(400),
        "{first_thousand_at:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(500));
    assert_eq!(received, bytes);
    assert!(server.requests()[0].completed);
}

/// Resident set size of this process in KiB, from /proc.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

#[tokio::test]
async fn a_300_mb_file_streams_without_being_buffered() {
    const SIZE: u64 = 300 * 1024 * 1024;
    let root = tempfile::tempdir().expect("temp dir");
    let path = root.path().join("big.bin");
    {
        // Sparse: zeros that cost no disk, except one marker near the end.
        let file = std::fs::File::create(&path).expect("create");
        file.set_len(SIZE).expect("set length");
        use std::os::unix::fs::FileExt;
        file.write_at(b"end-marker", SIZE - 10)
            .expect("write marker");
    }
    let server = MirrorServer::start(root.path());
    let before = resident_kib();
    let response = client()
        .get(format!("{}/big.bin", server.url()))
        .send()
        .await
        .expect("GET");
    assert_eq!(
        response.headers()[CONTENT_LENGTH],
        SIZE.to_string().as_str()
    );
    let mut stream = response.bytes_stream();
    let mut received: u64 = 0;
    let mut tail = Vec::new();
    let mut peak_kib = before;
    let mut next_sample: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        received += chunk.len() as u64;
        if received >= next_sample {
            peak_kib = peak_kib.max(resident_kib());
            next_sample += 8 * 1024 * 1024;
        }
        tail.extend_from_slice(&chunk);
        if tail.len() > 64 {
            tail.drain(..tail.len() - 64);
        }
    }
    // Buffering the file anywhere would show up as 300 MB; the margin absorbs whatever
    // tests running in parallel allocate meanwhile.
    let grown_kib = peak_kib.max(resident_kib()).saturating_sub(before);
    assert_eq!(received, SIZE);
    assert!(tail.ends_with(b"end-marker"));
    assert!(
        grown_kib < 200 * 1024,
        "resident memory grew by {grown_kib} KiB while streaming"
    );
    let log = server.requests();
    assert_eq!(log[0].bytes_sent, SIZE);
    drop(server);
    remove(&path);
}

fn remove(path: &Path) {
    std::fs::remove_file(path).expect("delete the big file");
}

#[test]
fn test_env_runs_the_real_binary_against_the_mirror() {
    let env = TestEnv::new();
    let command = env.imgforge();
    let envs: Vec<(String, Option<String>)> = command
        .get_envs()
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.map(|value| value.to_string_lossy().into_owned()),
            )
        })
        .collect();
    assert!(envs.contains(&("IMGFORGE_APACHE_MIRROR".into(), Some(env.server.url()))));
    assert!(envs.contains(&(
        "IMGFORGE_MAVEN_MIRROR".into(),
        Some(format!("{}/maven", env.server.url()))
    )));
    assert!(envs.contains(&("IMGFORGE_CONFIG".into(), None)));
    assert_eq!(command.get_current_dir(), Some(env.work_dir().as_path()));

    assert_success(&env.run(&["--version"]));
    assert!(
        env.cache_files()
            .iter()
            .all(|file| file.starts_with(env.cache_dir()))
    );

    std::fs::create_dir_all(env.cache_dir().join("downloads-v1/ab")).expect("mkdir");
    std::fs::write(env.cache_dir().join("downloads-v1/ab/file.partial"), b"x").expect("write");
    assert_eq!(
        env.cache_files(),
        [env.cache_dir().join("downloads-v1/ab/file.partial")]
    );

    // The default fixtures are served where the environment says.
    let spark_path = env.apache.spark.url_path.clone();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let bytes = runtime.block_on(async {
        client()
            .get(env.apache.spark.url(&env.apache_url()))
            .send()
            .await
            .expect("GET")
            .bytes()
            .await
            .expect("body")
    });
    assert_eq!(fixtures::sha512_hex(&bytes), env.apache.spark.sha512);
    let jar = runtime.block_on(async {
        client()
            .get(format!(
                "{}/org/postgresql/postgresql/42.2.19/postgresql-42.2.19.jar",
                env.maven_url()
            ))
            .send()
            .await
            .expect("GET")
            .bytes()
            .await
            .expect("body")
    });
    assert_eq!(fixtures::sha1_hex(&jar), env.maven.postgresql.sha1);
    assert_eq!(env.server.count(&spark_path), 1);
}
