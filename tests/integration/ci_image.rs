//! The imgforge image itself (`dockerfiles/imgforge/Dockerfile`): its `prebuilt` stage built
//! through the Engine API's classic builder with `target`, on the local JRE image as the
//! runtime base (glibc, a shell, Debian's CA bundle; nothing can be pulled here), from the
//! binary this test run built — then `imgforge --version` and one `imgforge fetch` against the
//! loopback mirror run inside it, on the host's network.
//!
//! The stage order is under test too: the classic builder builds every stage before the
//! target, so the build succeeds only while the Rust toolchain stage (whose base cannot be
//! pulled here) comes after `prebuilt`.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;
use imgforge::docker::Engine;
use serde_json::Value;

use crate::helpers::{artifact, roles};
use crate::support::TestEnv;
use crate::support::containers::{ContainerSpec, image_config, run_container};
use crate::support::docker::{engine, remove_images};
use crate::support::fixtures::sha512_hex;
use crate::support::images::JRE_BASE;

/// The Dockerfile under test.
const DOCKERFILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/dockerfiles/imgforge/Dockerfile"
);

/// A tag for the image, unique to this process, with this branch's name in it.
fn image_tag() -> String {
    format!("imgforge-itest/ci-image:p{}", std::process::id())
}

/// A build context holding the Dockerfile and the test run's binary as `imgforge` (mode
/// 0755), written as a tar file (the debug binary is hundreds of MB: streamed, not held).
fn write_context(path: &Path) {
    let file = std::fs::File::create(path).expect("create the context tar");
    let mut builder = tar::Builder::new(file);
    let dockerfile = std::fs::read(DOCKERFILE).expect("read dockerfiles/imgforge/Dockerfile");
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, "Dockerfile", dockerfile.as_slice())
        .expect("add the Dockerfile");
    let binary = std::fs::File::open(env!("CARGO_BIN_EXE_imgforge")).expect("open the binary");
    let size = binary.metadata().expect("binary metadata").len();
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o755);
    header.set_cksum();
    builder
        .append_data(&mut header, "imgforge", binary)
        .expect("add the binary");
    builder.finish().expect("finish the context tar");
}

/// Build `target` of the Dockerfile from the context tar at `context`, with `build_args`,
/// tagged `tag`; every item of the engine's stream is read and any error item fails the test.
/// Returns the build output.
async fn build(
    engine: &Engine,
    context: &Path,
    target: &str,
    build_args: &HashMap<String, String>,
    tag: &str,
) -> String {
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .target(target)
        .buildargs(build_args)
        .rm(true)
        .forcerm(true)
        .build();
    let file = std::fs::File::open(context).expect("open the context tar");
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; 1 << 20];
        match file.read(&mut buffer) {
            Ok(0) => None,
            Ok(read) => {
                buffer.truncate(read);
                Some((Ok(bytes::Bytes::from(buffer)), file))
            }
            Err(error) => Some((Err(error), file)),
        }
    });
    let mut output = String::new();
    let mut items =
        engine
            .client()
            .build_image(options, None, Some(bollard::body_try_stream(chunks)));
    while let Some(item) = items.next().await {
        let info = item.unwrap_or_else(|error| {
            panic!("building the {target} stage: {error}\n--- output ---\n{output}")
        });
        if let Some(detail) = info.error_detail {
            panic!("building the {target} stage: {detail:?}\n--- output ---\n{output}");
        }
        if let Some(text) = info.stream {
            output.push_str(&text);
        }
    }
    output
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_prebuilt_stage_runs_version_and_fetch_against_the_loopback_mirror() {
    let engine = engine().await;
    let scratch = tempfile::tempdir().expect("scratch directory");
    let context = scratch.path().join("context.tar");
    write_context(&context);
    let tag = image_tag();
    let build_args = HashMap::from([("RUNTIME_BASE".to_string(), JRE_BASE.to_string())]);
    let output = build(&engine, &context, "prebuilt", &build_args, &tag).await;
    // The stage checks its own binary; the toolchain stage after it was never reached.
    assert!(
        output.contains(&format!("imgforge {}", env!("CARGO_PKG_VERSION"))),
        "{output}"
    );
    assert!(!output.contains("cargo build"), "{output}");

    // No entrypoint: CI systems hand the job script to the image's shell.
    let (_, config) = image_config(&engine, &tag).await;
    assert!(
        config
            .entrypoint
            .as_ref()
            .is_none_or(|parts| parts.is_empty()),
        "{:?}",
        config.entrypoint
    );
    assert_eq!(
        config.cmd,
        Some(vec!["imgforge".to_string(), "--help".to_string()])
    );

    let version = run_container(
        &engine,
        &ContainerSpec::new(&tag).cmd(&["imgforge", "--version"]),
    )
    .await;
    version.assert_success("imgforge --version in the image");
    assert_eq!(
        version.stdout,
        format!("imgforge {}\n", env!("CARGO_PKG_VERSION"))
    );

    // What a CI job's script has: a shell, the binary on PATH, the CA bundle for HTTPS.
    let shell = run_container(
        &engine,
        &ContainerSpec::new(&tag).cmd(&[
            "sh",
            "-c",
            "test -s /etc/ssl/certs/ca-certificates.crt && command -v imgforge",
        ]),
    )
    .await;
    shell.assert_success("the shell, the CA bundle and PATH in the image");
    assert_eq!(shell.stdout, "/usr/local/bin/imgforge\n");

    // One fetch over the host's loopback, into a cache bind-mounted from here.
    let env = TestEnv::new();
    let spec = ContainerSpec::new(&tag)
        .host_network()
        .bind(&env.cache_dir(), "/cache")
        .env("IMGFORGE_APACHE_MIRROR", &env.apache_url())
        .env("IMGFORGE_MAVEN_MIRROR", &env.maven_url())
        .cmd(&[
            "imgforge",
            "--json",
            "--no-progress",
            "--cache-dir",
            "/cache",
            "fetch",
            "spark",
        ]);
    let fetched = run_container(&engine, &spec).await;
    fetched.assert_success("imgforge fetch spark in the image");
    let report: Value = serde_json::from_str(&fetched.stdout)
        .unwrap_or_else(|error| panic!("fetch --json: {error}\n{}", fetched.describe()));
    assert_eq!(report["command"], "fetch");
    assert_eq!(roles(&report), ["spark"]);
    let spark = artifact(&report, "spark");
    assert_eq!(spark["sha512"], env.apache.spark.sha512.as_str());
    assert_eq!(spark["cached"], false);
    assert_eq!(
        spark["url"],
        env.apache.spark.url(&env.apache_url()).as_str()
    );
    let path = spark["path"].as_str().expect("path is text");
    let relative = path
        .strip_prefix("/cache/")
        .unwrap_or_else(|| panic!("stored outside the cache: {path}"));
    let stored = std::fs::read(env.cache_dir().join(relative)).expect("the stored tarball");
    assert_eq!(sha512_hex(&stored), env.apache.spark.sha512);
    let gets = env
        .server
        .requests_for(&env.apache.spark.url_path)
        .iter()
        .filter(|record| record.method == "GET")
        .count();
    assert_eq!(gets, 1, "the tarball came from the loopback mirror once");

    remove_images(&engine, &[tag.as_str()]).await;
}
