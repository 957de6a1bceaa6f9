//! `imgforge build` on bad input, each run against the real engine: the message names the
//! thing at fault and the exit code says what kind of failure it was (6: the build; 2: the
//! configuration). Names are rejected before anything is downloaded or built.

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::containers::{references_under, tag};
use crate::support::docker::block_on;
use crate::support::docker::engine;
use crate::support::env::run_command;
use crate::support::images::{ImageEnv, built};
use crate::support::{assert_exit_code, assert_stderr_contains, stderr_text};

const BUILD_FAILED: i32 = 6;
const BAD_CONFIG: i32 = 2;

/// Give `image_env`'s namespace the shared build's spark image.
fn tag_shared_spark(image_env: &ImageEnv) {
    block_on(async {
        let engine = engine().await;
        tag(
            &engine,
            &built().first.image("spark").id,
            &image_env.reference("spark"),
        )
        .await;
    });
}

/// Fails unless the engine holds no image under `image_env`'s namespace.
fn assert_nothing_built(image_env: &ImageEnv) {
    let found = block_on(async {
        let engine = engine().await;
        references_under(&engine, &format!("{}/", image_env.namespace)).await
    });
    assert!(found.is_empty(), "images were built: {found:?}");
}

fn build_with_docker_host(image_env: &ImageEnv, docker_host: &str) -> Output {
    let mut command = image_env.env.imgforge();
    command
        .env("DOCKER_HOST", docker_host)
        .env_remove("DOCKER_TLS_VERIFY")
        .args(["--no-progress", "build"]);
    run_command(command, Duration::from_secs(120))
}

#[test]
fn an_absent_unix_socket_is_named_as_the_unreachable_engine() {
    let image_env = ImageEnv::new(&[]);
    let output = build_with_docker_host(&image_env, "unix:///nonexistent.sock");
    assert_exit_code(&output, BUILD_FAILED);
    assert_stderr_contains(
        &output,
        "Docker engine not reachable at unix:///nonexistent.sock",
    );
    assert!(
        image_env.env.server.requests().is_empty(),
        "downloads started before the engine was reached: {:?}",
        image_env.env.server.requests()
    );
}

#[test]
fn a_closed_tcp_port_is_named_as_the_unreachable_engine() {
    let image_env = ImageEnv::new(&[]);
    let port = crate::support::postgres::free_port();
    let host = format!("tcp://127.0.0.1:{port}");
    let output = build_with_docker_host(&image_env, &host);
    assert_exit_code(&output, BUILD_FAILED);
    assert_stderr_contains(&output, &format!("Docker engine not reachable at {host}"));
    assert!(image_env.env.server.requests().is_empty());
}

#[test]
fn an_absent_base_image_that_cannot_be_pulled_is_named() {
    let mut image_env = ImageEnv::new(&[]);
    image_env.configure(|config| {
        config.set_str("images.hive-metastore", "base", "imgforge-test/absent:1");
    });
    // Nothing can be pulled from Docker Hub here: the pull fails, naming the image.
    let output = image_env.run(&["build", "hive-metastore"]);
    assert_exit_code(&output, BUILD_FAILED);
    assert_stderr_contains(&output, "pulling base image imgforge-test/absent:1");
    assert_stderr_contains(&output, "docker login");
    assert_nothing_built(&image_env);
}

#[test]
fn a_failing_run_step_is_shown_with_its_output() {
    let mut image_env = ImageEnv::new(&[]);
    let definitions = image_env.env.root().join("definitions");
    std::fs::create_dir_all(definitions.join("spark-hs")).expect("create definitions");
    std::fs::write(
        definitions.join("spark-hs/Dockerfile"),
        "ARG spark_image\nFROM ${spark_image}\n\
         RUN echo \"checking the history server's prerequisites\" && echo 'prerequisite missing' >&2 && exit 3\n\
         CMD [\"true\"]\n",
    )
    .expect("write the Dockerfile");
    std::fs::write(
        definitions.join("spark-hs/.dockerignore"),
        "*\n!Dockerfile\n",
    )
    .expect("write .dockerignore");
    let definitions = definitions.display().to_string();
    image_env.configure(|config| {
        config.set_str("images", "dockerfiles", &definitions);
    });
    tag_shared_spark(&image_env);

    let output = image_env.run(&["build", "spark-hs"]);
    assert_exit_code(&output, BUILD_FAILED);
    assert_stderr_contains(&output, "building spark-hs failed at Step 3/");
    assert_stderr_contains(
        &output,
        "RUN echo \"checking the history server's prerequisites\"",
    );
    assert_stderr_contains(&output, "returned a non-zero code: 3");
    assert_stderr_contains(&output, "checking the history server's prerequisites");
    assert_stderr_contains(&output, "prerequisite missing");
    // The error names the command once (the engine's own message repeats it).
    let stderr = crate::support::stderr_text(&output);
    let error = &stderr[stderr.find("error: ").expect("an error line")..];
    assert_eq!(
        error.matches("echo 'prerequisite missing'").count(),
        1,
        "{error}"
    );
    let found = block_on(async {
        let engine = engine().await;
        references_under(&engine, &format!("{}/spark-hs", image_env.namespace)).await
    });
    assert!(found.is_empty(), "a failed build was tagged: {found:?}");
}

#[test]
fn a_failed_build_with_json_reports_the_error_and_the_images_built_before_it() {
    let mut image_env = ImageEnv::new(&[]);
    let definitions = image_env.env.root().join("definitions");
    std::fs::create_dir_all(definitions.join("spark-hs")).expect("create definitions");
    std::fs::write(
        definitions.join("spark-hs/Dockerfile"),
        "ARG spark_image\nFROM ${spark_image}\nRUN echo 'prerequisite missing' >&2 && exit 3\n",
    )
    .expect("write the Dockerfile");
    std::fs::write(
        definitions.join("spark-hs/.dockerignore"),
        "*\n!Dockerfile\n",
    )
    .expect("write .dockerignore");
    let definitions = definitions.display().to_string();
    image_env.configure(|config| {
        config.set_str("images", "dockerfiles", &definitions);
    });

    let output = image_env.run(&["--json", "build", "spark", "spark-hs"]);
    assert_exit_code(&output, BUILD_FAILED);
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "stdout is not one JSON document ({error}):\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                stderr_text(&output)
            )
        });
    assert_eq!(report["command"], "build", "{report:#}");
    let error = &report["error"];
    assert_eq!(error["kind"], "build.step_failed", "{report:#}");
    assert_eq!(error["exit_code"], BUILD_FAILED, "{report:#}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|message| message.contains("building spark-hs failed")),
        "{report:#}"
    );
    assert!(
        error["causes"].is_array() && error.get("hint").is_some(),
        "{report:#}"
    );
    // The spark image was built before spark-hs failed: the partial report says so.
    let images = report["images"]
        .as_array()
        .expect("images built before the failure");
    assert_eq!(images.len(), 1, "{report:#}");
    assert_eq!(images[0]["image"], "spark", "{report:#}");
    assert!(
        images[0]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("sha256:"))
    );
    assert_eq!(report["changed"], true, "{report:#}");
    block_on(async {
        let engine = engine().await;
        for reference in references_under(&engine, &format!("{}/", image_env.namespace)).await {
            crate::support::containers::untag(&engine, &reference).await;
        }
    });
}

#[test]
fn an_invalid_registry_is_rejected_before_anything_is_fetched_or_built() {
    let mut image_env = ImageEnv::new(&[]);
    image_env.configure(|config| {
        config.set_str("images", "registry", "Bad Registry");
    });
    let output = image_env.run(&["build"]);
    assert_exit_code(&output, BAD_CONFIG);
    assert_stderr_contains(&output, "Bad Registry");
    assert!(
        image_env.env.server.requests().is_empty(),
        "{:?}",
        image_env.env.server.requests()
    );
    assert!(!image_env.env.work_dir().join("build").exists());
}

#[test]
fn an_invalid_tag_is_rejected_before_anything_is_fetched_or_built() {
    let mut image_env = ImageEnv::new(&[]);
    image_env.configure(|config| {
        config.set("images", "tags", "[\"x y\"]");
    });
    let output = image_env.run(&["build"]);
    assert_exit_code(&output, BAD_CONFIG);
    assert_stderr_contains(&output, "x y");
    assert!(
        image_env.env.server.requests().is_empty(),
        "{:?}",
        image_env.env.server.requests()
    );
    assert!(!image_env.env.work_dir().join("build").exists());
    assert_nothing_built(&image_env);
}

#[test]
fn spark_hs_alone_without_a_spark_image_names_the_missing_image() {
    let image_env = ImageEnv::new(&[]);
    let output = image_env.run(&["build", "spark-hs"]);
    assert_exit_code(&output, BUILD_FAILED);
    assert_stderr_contains(
        &output,
        &format!(
            "no spark image {} on the engine",
            image_env.reference("spark")
        ),
    );
    assert_nothing_built(&image_env);
}

/// A CA certificate with explicit EC domain parameters (the P-256 curve spelled out rather
/// than named): valid X.509, CA:TRUE, current — imgforge's checks accept it — but Java's
/// certificate parser only supports named curves, so keytool refuses to import it.
fn explicit_parameters_ca() -> Vec<u8> {
    let scratch = tempfile::tempdir().expect("temp dir");
    let certificate = scratch.path().join("ca.crt");
    let mut openssl = Command::new("openssl");
    openssl
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-pkeyopt",
            "ec_param_enc:explicit",
            "-nodes",
            "-subj",
            "/CN=imgforge explicit-parameters test CA",
            "-days",
            "365",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
        ])
        .arg(scratch.path().join("ca.key"))
        .arg("-out")
        .arg(&certificate);
    let output = run_command(openssl, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "openssl (Debian's openssl package) is needed to make the test CA: {}",
        stderr_text(&output)
    );
    std::fs::read(&certificate).expect("read the test CA")
}

/// An environment whose `certs/` holds the explicit-parameters CA, which imgforge's own
/// check accepts.
fn env_with_rejected_ca() -> ImageEnv {
    // After the shared build, so that on a cold engine the steps before the import come from
    // its layers instead of installing the same packages a second time in parallel.
    built();
    let image_env = ImageEnv::new(&[("explicit-ec.crt".to_string(), explicit_parameters_ca())]);
    let output = image_env.run(&["certs", "check"]);
    assert!(
        output.status.success(),
        "imgforge should accept the certificate; the truststore is what rejects it: {}",
        stderr_text(&output)
    );
    image_env
}

#[test]
fn a_certificate_the_spark_truststore_rejects_fails_the_build_naming_it() {
    let image_env = env_with_rejected_ca();
    let output = image_env.run(&["build", "spark"]);
    assert_exit_code(&output, BUILD_FAILED);
    assert_stderr_contains(
        &output,
        "the spark image's truststore rejected CA certificate ",
    );
    assert_stderr_contains(
        &output,
        "certs/explicit-ec.crt (alias imgforge-explicit-ec)",
    );
    // The failed step and keytool's own words follow; the shared script names the file.
    assert_stderr_contains(&output, "building spark failed at Step");
    assert_stderr_contains(
        &output,
        "import-certs.sh: the truststore (keytool -cacerts) rejected imgforge-explicit-ec.crt (alias imgforge-explicit-ec)",
    );
    assert_stderr_contains(&output, "keytool error");
    assert_nothing_built(&image_env);
}

#[test]
fn a_certificate_the_metastore_truststore_rejects_fails_the_build_naming_it() {
    let image_env = env_with_rejected_ca();
    let output = image_env.run(&["build", "hive-metastore"]);
    assert_exit_code(&output, BUILD_FAILED);
    assert_stderr_contains(
        &output,
        "the hive-metastore image's truststore rejected CA certificate ",
    );
    assert_stderr_contains(
        &output,
        "certs/explicit-ec.crt (alias imgforge-explicit-ec)",
    );
    assert_stderr_contains(&output, "building hive-metastore failed at Step");
    assert_stderr_contains(
        &output,
        "import-certs.sh: the truststore (keytool -cacerts) rejected imgforge-explicit-ec.crt (alias imgforge-explicit-ec)",
    );
    assert_stderr_contains(&output, "keytool error");
    assert_nothing_built(&image_env);
}

#[test]
fn force_replace_lets_build_replace_a_foreign_directory_under_build() {
    // The tree is replaced before the engine builds (this build then fails at the truststore,
    // which is what keeps the test cheap): `--force-replace` is what allows it, not `--force`
    // (output_dirs::build_refuses_a_foreign_directory_under_build_before_anything).
    let image_env = env_with_rejected_ca();
    let foreign = image_env
        .env
        .work_dir()
        .join("build/spark-3.1.1-bin-hadoop3.2");
    std::fs::create_dir_all(&foreign).expect("foreign dir");
    std::fs::write(foreign.join("notes.txt"), "mine\n").expect("user file");
    let output = image_env.run(&["build", "--force-replace", "spark"]);
    assert_exit_code(&output, BUILD_FAILED);
    assert!(
        !foreign.join("notes.txt").exists(),
        "the foreign tree was kept"
    );
    assert!(
        foreign.join(".imgforge-tree").is_file(),
        "no prepared tree in its place"
    );
}
