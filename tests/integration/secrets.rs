//! Secrets never leave: a password planted in the mirror URLs (`http://user:pass@host/…`)
//! and one a failing credential helper prints are searched for in every output mode — plain
//! progress, `-q`, `--json`, `-vv` tracing (with `RUST_LOG=trace` set too), errors,
//! `config show`, `outdated`, the cache index and every other file in the cache, and
//! `imgforge.lock` — and found in none. Where a URL is shown, it is shown masked.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use crate::helpers::files_under;
use crate::support::docker::{BUSYBOX, engine, remove_images};
use crate::support::env::{DEFAULT_RUN_TIMEOUT, run_command};
use crate::support::images::{ImageEnv, unique_namespace};
use crate::support::{Fault, TestEnv, assert_exit_code, assert_success, stderr_text, stdout_text};

/// The planted password: in no output, no file imgforge writes.
const PLANTED: &str = "Planted-Pw-7c1e9";
/// The user name next to it (masked as well: some mirrors take a token as the user name).
const PLANTED_USER: &str = "mirror-user";

/// Both streams of `output`, checked for the planted secrets; `what` names the run.
fn assert_clean(what: &str, output: &Output) {
    let all = format!("{}{}", stdout_text(output), stderr_text(output));
    assert!(
        !all.contains(PLANTED) && !all.contains(PLANTED_USER),
        "{what}: a planted credential leaked:\n{all}"
    );
}

/// Every file under `dir`, checked for the planted secrets.
fn assert_files_clean(dir: &Path) {
    for file in files_under(dir) {
        let bytes = std::fs::read(&file).expect("read a file");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(PLANTED) && !text.contains(PLANTED_USER),
            "{} holds a planted credential",
            file.display()
        );
    }
}

/// `http://mirror-user:<planted>@127.0.0.1:PORT`, the server's URL with credentials.
fn with_credentials(url: &str) -> String {
    url.replacen("http://", &format!("http://{PLANTED_USER}:{PLANTED}@"), 1)
}

/// `imgforge <args>` in `image_env` with both mirrors given with credentials, tracing asked
/// for through `RUST_LOG` as well.
fn run(env: &TestEnv, args: &[&str]) -> Output {
    let mut command = env.imgforge();
    command
        .env(
            "IMGFORGE_APACHE_MIRROR",
            with_credentials(&env.apache_url()),
        )
        .env("IMGFORGE_MAVEN_MIRROR", with_credentials(&env.maven_url()))
        .env("RUST_LOG", "trace")
        .arg("--no-progress")
        .args(args);
    run_command(command, DEFAULT_RUN_TIMEOUT)
}

#[test]
fn a_password_in_a_mirror_url_reaches_no_output_and_no_file() {
    let image_env = ImageEnv::new(&[]);
    let env = &image_env.env;
    let masked = format!("http://***@{}", env.server.address());

    // Failures first, while the cache is cold: a checksum file answering 500 after a retry,
    // in every output mode.
    let checksum = format!("{}.sha512", env.apache.spark.url_path);
    env.server.inject(
        &checksum,
        Fault::Status {
            code: 500,
            times: usize::MAX,
        },
    );
    let config = env.root().join("retry.toml");
    std::fs::write(&config, "[network]\nretries = 1\n").expect("write retry.toml");
    let config = config.to_str().expect("UTF-8 path");
    for mode in [&[][..], &["-q"], &["--json"], &["-vv"]] {
        let mut args = vec!["--config", config];
        args.extend_from_slice(mode);
        args.extend_from_slice(&["fetch", "spark"]);
        let output = run(env, &args);
        assert_exit_code(&output, 3);
        assert_clean(&format!("failing fetch {mode:?}"), &output);
        assert!(
            stderr_text(&output).contains(&format!("{masked}{}", env.apache.spark.url_path)),
            "the error names the URL, masked:\n{}",
            stderr_text(&output)
        );
    }
    env.server.clear_faults();

    // A cold fetch of everything with debug tracing, then a warm one in each mode.
    let output = run(env, &["-vv", "fetch", "all"]);
    assert_success(&output);
    assert_clean("fetch -vv", &output);
    assert!(
        stderr_text(&output).contains(&format!(
            "downloading spark-3.1.1-bin-hadoop3.2.tgz from {masked}/spark/"
        )),
        "progress names the URL, masked:\n{}",
        stderr_text(&output)
    );
    for mode in [
        &["fetch", "all"][..],
        &["-q", "fetch", "all"],
        &["--json", "fetch", "all"],
    ] {
        let output = run(env, mode);
        assert_success(&output);
        assert_clean(&format!("{mode:?}"), &output);
    }

    // The configuration, as shown and as JSON.
    for mode in [&["config", "show"][..], &["--json", "config", "show"]] {
        let output = run(env, mode);
        assert_success(&output);
        assert_clean(&format!("{mode:?}"), &output);
        assert!(
            stdout_text(&output).contains(&masked),
            "config show names the mirror, masked:\n{}",
            stdout_text(&output)
        );
    }

    // The release listing.
    let output = run(env, &["--json", "outdated"]);
    assert_clean("outdated --json", &output);

    // The lock users commit: the URLs without credentials.
    let output = run(env, &["lock"]);
    assert_success(&output);
    assert_clean("lock", &output);
    let lock = std::fs::read_to_string(env.work_dir().join("imgforge.lock")).expect("the lock");
    assert!(
        lock.contains(&format!("url = \"{}/spark/", env.apache_url())),
        "the lock records the URL without credentials:\n{lock}"
    );

    // The cache index and everything else imgforge wrote.
    assert_files_clean(&env.cache_dir());
    assert_files_clean(&env.work_dir());
}

#[test]
fn a_failing_credential_helper_is_reported_by_status_and_a_redacted_line() {
    let env = TestEnv::new();
    let namespace = unique_namespace();
    std::fs::write(
        env.work_dir().join("imgforge.toml"),
        format!("[images]\nregistry = \"{namespace}\"\ntags = [\"latest\"]\n"),
    )
    .expect("write imgforge.toml");
    let reference = format!("{namespace}/spark:latest");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let engine = runtime.block_on(engine());
    runtime
        .block_on(imgforge::docker::tag_image(&engine, BUSYBOX, &reference))
        .expect("tag busybox as the spark image");

    // A helper that fails after printing its answer on stdout and the secret on stderr.
    let home = tempfile::tempdir().expect("home");
    let bin = home.path().join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let helper = bin.join("docker-credential-imgforge-leaky");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\ncat >/dev/null\n\
             printf '{{\"ServerURL\":\"x\",\"Username\":\"{PLANTED_USER}\",\"Secret\":\"{PLANTED}\"}}\\n'\n\
             echo 'login failed: token={PLANTED} for https://{PLANTED_USER}:{PLANTED}@registry.example' >&2\n\
             exit 1\n"
        ),
    )
    .expect("write the helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let config_dir = home.path().join("docker");
    std::fs::create_dir_all(&config_dir).expect("docker config dir");
    std::fs::write(
        config_dir.join("config.json"),
        r#"{"credsStore": "imgforge-leaky"}"#,
    )
    .expect("config.json");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    for mode in [&[][..], &["-q"], &["--json"], &["-vv"]] {
        let mut command = env.imgforge();
        command
            .env("HOME", home.path())
            .env("DOCKER_CONFIG", &config_dir)
            .env("PATH", &path)
            .env("RUST_LOG", "trace")
            .arg("--no-progress")
            .args(mode)
            .args(["push", "spark"]);
        let output = run_command(command, DEFAULT_RUN_TIMEOUT);
        assert_exit_code(&output, 2);
        assert_clean(&format!("push {mode:?}"), &output);
        let stderr = stderr_text(&output);
        assert!(
            stderr.contains("docker-credential-imgforge-leaky")
                && stderr.contains("exit status: 1")
                && stderr.contains("token=*** for https://***@registry.example"),
            "the helper is named with its status and a redacted line:\n{stderr}"
        );
    }
    runtime.block_on(remove_images(&engine, &[reference.as_str()]));
}
