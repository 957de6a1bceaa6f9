//! `imgforge push` and `imgforge build --push` against real registries: Debian's
//! `docker-registry` with htpasswd auth over TLS (certificates from `imgforge certs init`,
//! trusted by the engine through `certs.d`) and a plain one, credentials from every source,
//! digests verified, an image pulled back and run — and every fault a user must be able to
//! read: wrong password, no credentials, registry down, 5xx mid-push, untrusted CA,
//! malformed `config.json`, missing credential helper, an image never built.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::Ordering;

use bollard::auth::DockerCredentials;
use bollard::query_parameters::{CreateImageOptions, ImportImageOptions};
use futures_util::StreamExt;
use imgforge::context::BuildContext;
use imgforge::docker::{self, BuildRequest, Engine};
use imgforge::progress::QuietReporter;
use serde_json::Value;

use crate::support::docker::{BUSYBOX, engine, remove_images, run, unique_tag, write_file};
use crate::support::registry::{Faults, FaultyProxy, Registry, RegistrySpec, free_port};
use crate::support::remote_engine::RemoteEngine;
use crate::support::{TestEnv, assert_exit_code, assert_success, stderr_text, stdout_text};

const USER: &str = "pusher";
const PASSWORD: &str = "correct-horse-battery";
const WRONG_PASSWORD: &str = "WrongPassw0rd-do-not-print";

/// A tiny image from busybox holding `/pushed.txt` with `content`; returns its ID.
async fn small_image(engine: &Engine, content: &str) -> (String, String) {
    let root = tempfile::tempdir().expect("context dir");
    write_file(
        root.path(),
        "Dockerfile",
        &format!("FROM {BUSYBOX}\nCOPY pushed.txt /pushed.txt\nCMD [\"cat\", \"/pushed.txt\"]\n"),
        0o644,
    );
    write_file(root.path(), "pushed.txt", content, 0o644);
    let tag = unique_tag("push-source");
    let context = BuildContext::plan(root.path(), "Dockerfile", Vec::new()).expect("plan");
    let request = BuildRequest {
        name: "push-source".into(),
        tags: vec![tag.clone()],
        ..Default::default()
    };
    let image = docker::build_image(engine, context, &request, &QuietReporter)
        .await
        .expect("build the small image");
    (image.id, tag)
}

/// A test environment whose `imgforge.toml` names the images `<prefix>/spark:latest` and
/// `:t1` (no version placeholders, so small test images stand in for them), with the small
/// image tagged as the spark image.
struct PushEnv {
    env: TestEnv,
    prefix: String,
    home: tempfile::TempDir,
    local: Vec<String>,
}

impl PushEnv {
    async fn new(engine: &Engine, image_id: &str, extra_config: &str) -> PushEnv {
        let env = TestEnv::new();
        let prefix = format!(
            "itest.invalid/{}",
            unique_tag("ns").replace(['/', ':'], "-")
        );
        std::fs::write(
            env.work_dir().join("imgforge.toml"),
            format!(
                "[images]\nregistry = \"{prefix}\"\ntags = [\"latest\", \"t1\"]\n\n[network]\nretries = 2\ntimeout_secs = 20\n{extra_config}"
            ),
        )
        .expect("write imgforge.toml");
        let local = vec![
            format!("{prefix}/spark:latest"),
            format!("{prefix}/spark:t1"),
        ];
        for reference in &local {
            docker::tag_image(engine, image_id, reference)
                .await
                .expect("tag the small image");
        }
        let home = tempfile::tempdir().expect("home");
        PushEnv {
            env,
            prefix,
            home,
            local,
        }
    }

    /// `imgforge <args>` with HOME in a temp dir, no docker config but what the test writes,
    /// `envs` added and `stdin` fed.
    fn run(&self, args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let mut command: Command = self.env.imgforge();
        command
            .args(args)
            .env("HOME", self.home.path())
            .env_remove("DOCKER_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in envs {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start imgforge");
        let mut input = child.stdin.take().expect("stdin is piped");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        drop(input);
        child.wait_with_output().expect("wait for imgforge")
    }

    fn docker_config(&self, json: &str) -> String {
        let dir = self
            .home
            .path()
            .join(format!("docker-config-{}", rand_suffix()));
        std::fs::create_dir_all(&dir).expect("docker config dir");
        std::fs::write(dir.join("config.json"), json).expect("config.json");
        dir.display().to_string()
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos()
}

/// Both streams, checked for the secret.
fn assert_not_leaked(output: &Output, secret: &str) {
    let all = format!("{}{}", stdout_text(output), stderr_text(output));
    assert!(!all.contains(secret), "the secret leaked:\n{all}");
}

/// The pushed tags of a `--json` report: (reference, digest).
fn pushed_tags(output: &Output, key: &str) -> Vec<(String, String)> {
    let report: Value = serde_json::from_str(&stdout_text(output))
        .unwrap_or_else(|error| panic!("--json output: {error}\n{}", stdout_text(output)));
    report[key]
        .as_array()
        .expect("images array")
        .iter()
        .flat_map(|image| image["tags"].as_array().expect("tags").clone())
        .map(|tag| {
            (
                tag["reference"].as_str().expect("reference").to_string(),
                tag["digest"].as_str().expect("digest").to_string(),
            )
        })
        .collect()
}

pub(crate) fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
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

#[tokio::test]
async fn tls_registry_with_every_credential_source_then_pull_back_and_run() {
    let engine = engine().await;
    let registry = Registry::tls_htpasswd(USER, PASSWORD);
    let content = format!("pushed by {}\n", unique_tag("tls"));
    let (id, source_tag) = small_image(&engine, &content).await;
    let push_env = PushEnv::new(&engine, &id, "").await;
    let ca = registry
        .ca
        .as_ref()
        .expect("TLS registry CA")
        .display()
        .to_string();
    let host = registry.host.clone();
    let mut cleanup: Vec<String> = push_env.local.clone();
    cleanup.push(source_tag);

    // 1. --username with --password-stdin.
    let target = format!("{host}/flags");
    let output = push_env.run(
        &[
            "push",
            "--json",
            "--registry",
            &target,
            "--username",
            USER,
            "--password-stdin",
            "--registry-ca",
            &ca,
            "spark",
        ],
        &[],
        Some(&format!("{PASSWORD}\n")),
    );
    assert_success(&output);
    assert_not_leaked(&output, PASSWORD);
    let tags = pushed_tags(&output, "images");
    assert_eq!(
        tags.iter()
            .map(|(reference, _)| reference.as_str())
            .collect::<Vec<_>>(),
        [
            format!("{target}/spark:latest"),
            format!("{target}/spark:t1")
        ]
    );
    let digest = tags[0].1.clone();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(tags[1].1, digest, "both tags name the same manifest");
    cleanup.extend(tags.iter().map(|(reference, _)| reference.clone()));

    // The human report says name:tag@sha256:….
    let output = push_env.run(
        &["push", "--registry", &target, "--registry-ca", &ca, "spark"],
        &[
            ("IMGFORGE_REGISTRY_USER", USER),
            ("IMGFORGE_REGISTRY_PASSWORD", PASSWORD),
        ],
        None,
    );
    assert_success(&output);
    assert!(
        stdout_text(&output).contains(&format!("{target}/spark:latest@{digest}")),
        "{}",
        stdout_text(&output)
    );

    // 2. The environment, with the CA from the configuration file instead of the flag.
    std::fs::write(
        push_env.env.work_dir().join("imgforge.toml"),
        format!(
            "[images]\nregistry = \"{}\"\ntags = [\"latest\", \"t1\"]\n\n[push]\nregistry_ca = \"{ca}\"\n",
            push_env.prefix
        ),
    )
    .expect("rewrite imgforge.toml");
    let target = format!("{host}/env");
    let output = push_env.run(
        &["push", "--json", "--registry", &target, "spark"],
        &[
            ("IMGFORGE_REGISTRY_USER", USER),
            ("IMGFORGE_REGISTRY_PASSWORD", PASSWORD),
        ],
        None,
    );
    assert_success(&output);
    assert_not_leaked(&output, PASSWORD);
    let env_tags = pushed_tags(&output, "images");
    assert_eq!(
        env_tags[0].1, digest,
        "the same image gives the same manifest"
    );
    cleanup.extend(env_tags.iter().map(|(reference, _)| reference.clone()));

    // 3. config.json `auths`.
    let auth = base64(&format!("{USER}:{PASSWORD}"));
    let config_dir = push_env.docker_config(&format!(
        r#"{{"auths": {{"https://{host}": {{"auth": "{auth}"}}}}}}"#
    ));
    let target = format!("{host}/auths");
    let output = push_env.run(
        &["push", "--json", "--registry", &target, "spark"],
        &[("DOCKER_CONFIG", &config_dir)],
        None,
    );
    assert_success(&output);
    assert_not_leaked(&output, PASSWORD);
    assert_not_leaked(&output, &auth);
    cleanup.extend(pushed_tags(&output, "images").into_iter().map(|(r, _)| r));

    // 4. A credential helper on PATH, named by credHelpers for this registry.
    let helper_dir = push_env.home.path().join("bin");
    std::fs::create_dir_all(&helper_dir).expect("helper dir");
    let helper = helper_dir.join("docker-credential-itest");
    let log = helper_dir.join("asked");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nserver=$(cat)\necho \"$server\" >> {log}\nif [ \"$server\" = \"{host}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}\\n' \"$server\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
            log = log.display()
        ),
    )
    .expect("write helper");
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        helper_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let config_dir =
        push_env.docker_config(&format!(r#"{{"credHelpers": {{"{host}": "itest"}}}}"#));
    let target = format!("{host}/helper");
    let output = push_env.run(
        &["push", "--json", "--registry", &target, "spark"],
        &[("DOCKER_CONFIG", &config_dir), ("PATH", &path)],
        None,
    );
    assert_success(&output);
    assert_not_leaked(&output, PASSWORD);
    assert_eq!(
        std::fs::read_to_string(&log)
            .expect("the helper was asked")
            .lines()
            .next(),
        Some(host.as_str())
    );
    let helper_tags = pushed_tags(&output, "images");
    cleanup.extend(helper_tags.iter().map(|(reference, _)| reference.clone()));

    // Pull one back through the engine after removing it locally, and run it.
    let pulled = helper_tags[0].0.clone();
    docker::remove_image(&engine, &pulled)
        .await
        .expect("remove the local tag");
    assert!(
        !docker::image_exists(&engine, &pulled)
            .await
            .expect("inspect")
    );
    let (repository, tag) = pulled.rsplit_once(':').expect("tag");
    let options = CreateImageOptions {
        from_image: Some(repository.to_string()),
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    let credentials = DockerCredentials {
        username: Some(USER.into()),
        password: Some(PASSWORD.into()),
        serveraddress: Some(host.clone()),
        ..Default::default()
    };
    let mut pull = engine
        .client()
        .create_image(Some(options), None, Some(credentials));
    while let Some(item) = pull.next().await {
        item.unwrap_or_else(|error| panic!("pulling {pulled}: {error}"));
    }
    let (code, output) = run(&engine, &pulled, &["cat", "/pushed.txt"]).await;
    assert_eq!((code, output.as_str()), (0, content.as_str()));

    remove_images(
        &engine,
        &cleanup.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
}

#[tokio::test]
async fn credential_faults_name_registry_and_source_and_leak_nothing() {
    let engine = engine().await;
    let registry = Registry::tls_htpasswd(USER, PASSWORD);
    let (id, source_tag) = small_image(&engine, "faults\n").await;
    let push_env = PushEnv::new(&engine, &id, "").await;
    let ca = registry.ca.as_ref().expect("CA").display().to_string();
    let host = registry.host.clone();
    let target = format!("{host}/faults");
    let mut cleanup = push_env.local.clone();
    cleanup.push(source_tag);
    cleanup.extend(["latest", "t1"].map(|tag| format!("{target}/spark:{tag}")));

    // Wrong password through --password-stdin.
    let output = push_env.run(
        &[
            "push",
            "--registry",
            &target,
            "--registry-ca",
            &ca,
            "--username",
            USER,
            "--password-stdin",
            "spark",
        ],
        &[],
        Some(WRONG_PASSWORD),
    );
    assert_exit_code(&output, 7);
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains(&format!("authentication failed for registry {host}"))
            && stderr.contains("--username/--password-stdin"),
        "{stderr}"
    );
    assert_not_leaked(&output, WRONG_PASSWORD);

    // Wrong password through the environment, with -v debug logging on.
    let output = push_env.run(
        &[
            "-vv",
            "push",
            "--json",
            "--registry",
            &target,
            "--registry-ca",
            &ca,
            "spark",
        ],
        &[
            ("IMGFORGE_REGISTRY_USER", USER),
            ("IMGFORGE_REGISTRY_PASSWORD", WRONG_PASSWORD),
        ],
        None,
    );
    assert_exit_code(&output, 7);
    assert!(
        stderr_text(&output).contains("IMGFORGE_REGISTRY_USER/IMGFORGE_REGISTRY_PASSWORD"),
        "{}",
        stderr_text(&output)
    );
    assert_not_leaked(&output, WRONG_PASSWORD);

    // No credentials at all.
    let output = push_env.run(
        &["push", "--registry", &target, "--registry-ca", &ca, "spark"],
        &[],
        None,
    );
    assert_exit_code(&output, 7);
    assert!(
        stderr_text(&output).contains(&format!(
            "registry {host} requires authentication and no credentials were found"
        )),
        "{}",
        stderr_text(&output)
    );

    // The CA not trusted by imgforge: says which CA issued the registry's certificate.
    let output = push_env.run(
        &["push", "--registry", &target, "spark"],
        &[
            ("IMGFORGE_REGISTRY_USER", USER),
            ("IMGFORGE_REGISTRY_PASSWORD", PASSWORD),
        ],
        None,
    );
    assert_exit_code(&output, 7);
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains(&format!("TLS verification of registry {host} failed"))
            && stderr.contains("imgforge development CA")
            && stderr.contains("--registry-ca"),
        "{stderr}"
    );

    // A malformed config.json names the file.
    let config_dir = push_env.docker_config(r#"{"auths": {"x": {"auth": "c2VjcmV0"}"#);
    let output = push_env.run(
        &["push", "--registry", &target, "--registry-ca", &ca, "spark"],
        &[("DOCKER_CONFIG", &config_dir)],
        None,
    );
    assert_exit_code(&output, 2);
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains(&format!("{config_dir}/config.json")) && stderr.contains("malformed"),
        "{stderr}"
    );
    assert_not_leaked(&output, "c2VjcmV0");

    // A credential helper that is not installed is named.
    let config_dir = push_env.docker_config(r#"{"credsStore": "imgforge-itest-absent"}"#);
    let output = push_env.run(
        &["push", "--registry", &target, "--registry-ca", &ca, "spark"],
        &[("DOCKER_CONFIG", &config_dir)],
        None,
    );
    assert_exit_code(&output, 2);
    assert!(
        stderr_text(&output).contains("docker-credential-imgforge-itest-absent")
            && stderr_text(&output).contains("not installed"),
        "{}",
        stderr_text(&output)
    );

    remove_images(
        &engine,
        &cleanup.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
}

// Multi-threaded: the proxy serves on the runtime while the test waits for imgforge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_registry_rides_out_503s_mid_push_then_gives_up_after_bounded_retries() {
    let engine = engine().await;
    let registry = Registry::start(RegistrySpec {
        relative_urls: true,
        ..Default::default()
    });
    let (id, source_tag) = small_image(&engine, &format!("{}\n", unique_tag("flaky"))).await;
    let push_env = PushEnv::new(&engine, &id, "").await;
    let mut cleanup = push_env.local.clone();
    cleanup.push(source_tag);

    // A blob upload fails once (the engine retries it) and the manifest twice (imgforge does).
    let proxy = FaultyProxy::start(
        &registry.host,
        Faults {
            blob_upload_starts: 1,
            manifest_puts: 2,
            ..Default::default()
        },
    )
    .await;
    let target = format!("{}/flaky", proxy.host);
    let output = push_env.run(
        &[
            "--no-progress",
            "push",
            "--json",
            "--registry",
            &target,
            "spark",
        ],
        &[],
        None,
    );
    assert_success(&output);
    assert!(proxy.counts.failed.load(Ordering::SeqCst) >= 3);
    assert!(
        stderr_text(&output).contains("retrying"),
        "{}",
        stderr_text(&output)
    );
    let tags = pushed_tags(&output, "images");
    assert_eq!(tags.len(), 2);
    cleanup.extend(tags.iter().map(|(reference, _)| reference.clone()));

    // The same registry straight: the digest is what the proxy run reported.
    let direct = format!("{}/flaky", registry.host);
    let output = push_env.run(
        &["push", "--json", "--registry", &direct, "spark"],
        &[],
        None,
    );
    assert_success(&output);
    let direct_tags = pushed_tags(&output, "images");
    assert_eq!(direct_tags[0].1, tags[0].1);
    cleanup.extend(direct_tags.iter().map(|(reference, _)| reference.clone()));

    // A registry that never stops failing: three attempts ([network] retries = 2), then a
    // clear error.
    let broken = FaultyProxy::start(
        &registry.host,
        Faults {
            blob_upload_starts: 0,
            manifest_puts: usize::MAX,
            ..Default::default()
        },
    )
    .await;
    let target = format!("{}/broken", broken.host);
    let output = push_env.run(&["push", "--registry", &target, "spark"], &[], None);
    assert_exit_code(&output, 7);
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains(&format!(
            "pushing {target}/spark:latest failed after 3 attempts"
        )) && stderr.contains("503"),
        "{stderr}"
    );
    assert_eq!(broken.counts.manifest_puts.load(Ordering::SeqCst), 3);
    cleanup.extend(["latest", "t1"].map(|tag| format!("{target}/spark:{tag}")));

    // A registry that is down.
    let down = format!("127.0.0.1:{}/down", free_port());
    let output = push_env.run(&["push", "--registry", &down, "spark"], &[], None);
    assert_exit_code(&output, 7);
    let stderr = stderr_text(&output);
    let down_host = down.split('/').next().expect("host");
    assert!(
        stderr.contains(&format!("registry {down_host} is not reachable")),
        "{stderr}"
    );

    // An image that was never built is named.
    let output = push_env.run(
        &["push", "--registry", &direct, "hive-metastore"],
        &[],
        None,
    );
    assert_exit_code(&output, 6);
    assert!(
        stderr_text(&output).contains(&format!(
            "the hive-metastore image was never built: {}/hive-metastore:latest",
            push_env.prefix
        )),
        "{}",
        stderr_text(&output)
    );

    remove_images(
        &engine,
        &cleanup.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    drop(registry);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_tls_engine_builds_and_pushes_like_the_local_socket() {
    let local = engine().await;
    let remote = RemoteEngine::start().await;
    let remote_engine = docker::connect(&remote.endpoint())
        .await
        .expect("connect to the second engine over TLS with the client certificate");

    // The second engine has no images: give it busybox through the API.
    let mut tarball = Vec::new();
    let mut export = local.client().export_image(BUSYBOX);
    while let Some(chunk) = export.next().await {
        tarball.extend_from_slice(&chunk.expect("export busybox"));
    }
    let body =
        futures_util::stream::once(
            async move { Ok::<_, std::io::Error>(bytes::Bytes::from(tarball)) },
        );
    let mut import =
        remote_engine
            .client()
            .import_image_stream(ImportImageOptions::default(), body, None);
    while let Some(item) = import.next().await {
        item.expect("load busybox into the second engine");
    }
    assert!(
        docker::image_exists(&remote_engine, BUSYBOX)
            .await
            .expect("inspect")
    );

    // Build on the remote engine, then push from it with imgforge driven by DOCKER_HOST.
    let content = format!("built remotely {}\n", unique_tag("remote"));
    let (id, _) = small_image(&remote_engine, &content).await;
    assert!(
        !docker::image_exists(&local, &id).await.expect("inspect"),
        "the image must exist only on the remote engine"
    );
    let registry = Registry::plain();
    let push_env = PushEnv::new(&remote_engine, &id, "").await;
    let target = format!("{}/remote", registry.host);
    let vars = remote.env_vars();
    let envs: Vec<(&str, &str)> = vars
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    let output = push_env.run(
        &["push", "--json", "--registry", &target, "spark"],
        &envs,
        None,
    );
    assert_success(&output);
    let tags = pushed_tags(&output, "images");
    assert_eq!(tags.len(), 2);

    // What the remote engine pushed, the local one pulls and runs.
    let pulled = tags[0].0.clone();
    let (repository, tag) = pulled.rsplit_once(':').expect("tag");
    let options = CreateImageOptions {
        from_image: Some(repository.to_string()),
        tag: Some(tag.to_string()),
        ..Default::default()
    };
    let mut pull = local.client().create_image(Some(options), None, None);
    while let Some(item) = pull.next().await {
        item.unwrap_or_else(|error| panic!("pulling {pulled}: {error}"));
    }
    let (code, text) = run(&local, &pulled, &["cat", "/pushed.txt"]).await;
    assert_eq!((code, text.as_str()), (0, content.as_str()));

    // Without the client certificate the remote engine is refused, naming the missing file.
    let empty = tempfile::tempdir().expect("empty cert dir");
    let empty_path = empty.path().display().to_string();
    let output = push_env.run(
        &["push", "--registry", &target, "spark"],
        &[
            ("DOCKER_HOST", remote.host.as_str()),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", empty_path.as_str()),
        ],
        None,
    );
    assert_exit_code(&output, 6);
    assert!(
        stderr_text(&output).contains(&format!("{empty_path}/ca.pem")),
        "{}",
        stderr_text(&output)
    );

    remove_images(&local, &[pulled.as_str()]).await;
    drop(remote);
    // The second daemon must leave the main engine's bridge alone.
    let docker0 = std::process::Command::new("ip")
        .args(["link", "show", "docker0"])
        .output()
        .expect("run ip");
    assert!(
        docker0.status.success(),
        "docker0 is gone after the second dockerd ran"
    );
}

#[tokio::test]
async fn build_push_all_three_images_end_to_end() {
    let engine = engine().await;
    let registry = Registry::plain();
    let env = TestEnv::new();
    let namespace = format!("{}/e2e", registry.host);
    std::fs::write(
        env.work_dir().join("imgforge.toml"),
        format!(
            "[images]\nregistry = \"{namespace}\"\ntags = [\"{{spark_version}}\", \"latest\"]\n\n\
             [images.spark]\nbase = \"imgforge-test/openjdk:17-jre\"\njava_image_tag = \"17-jre\"\n\n\
             [images.hive-metastore]\nbase = \"imgforge-test/openjdk:17-jre\"\n\
             tags = [\"{{hive_version}}\", \"latest\"]\n"
        ),
    )
    .expect("write imgforge.toml");
    let output = env.run_with_timeout(
        &[
            "--json",
            "build",
            "--push",
            "--digests-file",
            "digests.json",
            "all",
        ],
        std::time::Duration::from_secs(1500),
    );
    assert_success(&output);
    let tags = pushed_tags(&output, "pushed");
    // --digests-file lists the same references and digests, one entry per tag.
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(env.work_dir().join("digests.json")).expect("digests.json"),
    )
    .expect("digests.json is JSON");
    let listed: Vec<(String, String)> = written
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|entry| {
            assert_eq!(entry["platform"], "linux/amd64", "{entry}");
            (
                format!(
                    "{}:{}",
                    entry["image"].as_str().expect("image"),
                    entry["tag"].as_str().expect("tag")
                ),
                entry["digest"].as_str().expect("digest").to_string(),
            )
        })
        .collect();
    assert_eq!(listed, tags);
    let references: Vec<&str> = tags
        .iter()
        .map(|(reference, _)| reference.as_str())
        .collect();
    assert_eq!(
        references,
        [
            ("spark", "3.1.1"),
            ("spark-hs", "3.1.1"),
            ("hive-metastore", "3.0.0")
        ]
        .iter()
        .flat_map(|(name, version)| {
            [*version, "latest"].map(|tag| format!("{namespace}/{name}:{tag}"))
        })
        .collect::<Vec<_>>()
    );
    // Each digest is checked once more here, independently: the registry's manifest bytes hash
    // to it.
    let client = reqwest::Client::new();
    for (reference, digest) in &tags {
        let (name, tag) = reference
            .strip_prefix(&format!("{}/", registry.host))
            .and_then(|rest| rest.rsplit_once(':'))
            .expect("reference in the registry");
        let body = client
            .get(format!(
                "http://{}/v2/{name}/manifests/{tag}",
                registry.host
            ))
            .header("Accept", imgforge::registry::MANIFEST_ACCEPT)
            .send()
            .await
            .expect("manifest request")
            .bytes()
            .await
            .expect("manifest body");
        let computed = format!("sha256:{}", crate::support::fixtures::sha256_hex(&body));
        assert_eq!(&computed, digest, "{reference}");
    }
    remove_images(&engine, &references).await;
}

/// `push --digests-file` records every pushed tag with the digest the registry serves (read
/// back here over the Registry API), nothing when the push fails; `manifest` pins the spark
/// image to that digest, asking the registry or reading the file, with the same result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_digests_file_records_each_tag_and_manifest_pins_it() {
    let engine = engine().await;
    let registry = Registry::plain();
    let (id, source_tag) = small_image(&engine, &format!("{}\n", unique_tag("digests"))).await;
    let push_env = PushEnv::new(&engine, &id, "").await;
    let mut cleanup = push_env.local.clone();
    cleanup.push(source_tag);
    let digests = push_env.env.work_dir().join("out/digests.json");
    std::fs::create_dir_all(digests.parent().expect("parent")).expect("out dir");
    let digests_arg = digests.display().to_string();

    // A failed push writes no digests file.
    let down = format!("127.0.0.1:{}/down", free_port());
    let output = push_env.run(
        &[
            "push",
            "--registry",
            &down,
            "--digests-file",
            &digests_arg,
            "spark",
        ],
        &[],
        None,
    );
    assert_exit_code(&output, 7);
    assert_eq!(
        std::fs::read_dir(digests.parent().expect("parent"))
            .expect("out dir")
            .count(),
        0,
        "a failed push left a file in the digests file's folder"
    );

    let target = format!("{}/pinned", registry.host);
    let output = push_env.run(
        &[
            "push",
            "--json",
            "--registry",
            &target,
            "--digests-file",
            &digests_arg,
            "spark",
        ],
        &[],
        None,
    );
    assert_success(&output);
    let tags = pushed_tags(&output, "images");
    cleanup.extend(tags.iter().map(|(reference, _)| reference.clone()));
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&digests).expect("digests file"))
            .expect("the digests file is JSON");
    let entries = written.as_array().expect("a JSON array");
    assert_eq!(entries.len(), 2, "{written:#}");
    let client = reqwest::Client::new();
    for (entry, tag) in entries.iter().zip(["latest", "t1"]) {
        assert_eq!(entry["name"], "spark");
        assert_eq!(entry["image"], format!("{target}/spark"));
        assert_eq!(entry["tag"], tag);
        assert_eq!(entry["platform"], "linux/amd64");
        assert_eq!(
            entry.as_object().expect("object").len(),
            5,
            "only name, image, tag, digest, platform: {entry}"
        );
        // The digest is the one the registry serves for the tag, hashed here.
        let url = format!("http://{}/v2/pinned/spark/manifests/{tag}", registry.host);
        let body = client
            .get(&url)
            .header("Accept", imgforge::registry::MANIFEST_ACCEPT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|error| panic!("GET {url}: {error}"))
            .bytes()
            .await
            .expect("manifest body");
        let computed = format!("sha256:{}", crate::support::fixtures::sha256_hex(&body));
        assert_eq!(entry["digest"], computed.as_str(), "{url}");
        assert!(tags.contains(&(format!("{target}/spark:{tag}"), computed)));
    }
    let pinned = format!(
        "{target}/spark@{}",
        entries[0]["digest"].as_str().expect("digest")
    );

    // The manifest asks the registry for the digest, or reads it from the file: the same
    // pinned image either way, and no tag in it.
    let job = [
        "--name",
        "pinned-job",
        "--main-application-file",
        "local:///opt/spark/examples/jars/app.jar",
    ];
    let from_registry = push_env.run(
        &[
            &["manifest", "spark-application", "--registry", &target][..],
            &job,
        ]
        .concat(),
        &[],
        None,
    );
    assert_success(&from_registry);
    let from_file = push_env.run(
        &[
            &[
                "manifest",
                "spark-application",
                "--digests-file",
                &digests_arg,
            ][..],
            &job,
        ]
        .concat(),
        &[],
        None,
    );
    assert_success(&from_file);
    assert_eq!(stdout_text(&from_registry), stdout_text(&from_file));
    let manifest: serde_norway::Value =
        serde_norway::from_str(&stdout_text(&from_file)).expect("the manifest is YAML");
    assert_eq!(manifest["spec"]["image"].as_str(), Some(pinned.as_str()));
    assert_eq!(
        manifest["spec"]["imagePullPolicy"].as_str(),
        Some("IfNotPresent")
    );

    // A tag the registry does not have is named, with the push exit code.
    let missing = format!("{}/never-pushed", registry.host);
    let output = push_env.run(
        &[
            &["manifest", "spark-application", "--registry", &missing][..],
            &job,
        ]
        .concat(),
        &[],
        None,
    );
    assert_exit_code(&output, 7);
    assert!(
        stderr_text(&output).contains("never-pushed/spark"),
        "{}",
        stderr_text(&output)
    );

    remove_images(
        &engine,
        &cleanup.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    drop(registry);
}

/// Issue 10: `imgforge push spark-hs spark` pushes both, in dependency order, in one run
/// (one target per run was the limit before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_targets_are_pushed_in_dependency_order_in_one_run() {
    let engine = engine().await;
    let registry = Registry::start(RegistrySpec::default());
    let (id, source_tag) = small_image(&engine, &format!("{}\n", unique_tag("several"))).await;
    let push_env = PushEnv::new(&engine, &id, "").await;
    let mut cleanup = push_env.local.clone();
    cleanup.push(source_tag);
    // The same small image stands in for spark-hs too.
    for tag in ["latest", "t1"] {
        let reference = format!("{}/spark-hs:{tag}", push_env.prefix);
        docker::tag_image(&engine, &id, &reference)
            .await
            .expect("tag the small image as spark-hs");
        cleanup.push(reference);
    }
    let target = format!("{}/several", registry.host);
    let output = push_env.run(
        &["push", "--json", "--registry", &target, "spark-hs", "spark"],
        &[],
        None,
    );
    assert_success(&output);
    let report: Value = serde_json::from_str(&stdout_text(&output)).expect("--json output");
    let images: Vec<&str> = report["images"]
        .as_array()
        .expect("images array")
        .iter()
        .map(|image| image["image"].as_str().expect("image name"))
        .collect();
    assert_eq!(images, ["spark", "spark-hs"], "{report:#}");
    // The display says what happens: pushing, to where, and how much went over the wire.
    let stderr = stderr_text(&output);
    let first = format!("{target}/spark:latest");
    assert!(
        stderr.contains(&format!("pushing {first} to {}", registry.host)),
        "{stderr}"
    );
    let done = stderr
        .lines()
        .find(|line| line.starts_with(&format!("done {first} sha256:")))
        .unwrap_or_else(|| panic!("no done line for {first}:\n{stderr}"));
    assert!(
        done.contains(" image; ") && done.contains("layer(s) uploaded"),
        "{done}"
    );
    let again = stderr
        .lines()
        .find(|line| line.starts_with(&format!("done {target}/spark:t1 sha256:")))
        .unwrap_or_else(|| panic!("no done line for the second tag:\n{stderr}"));
    assert!(
        again.contains("0 layer(s) uploaded"),
        "the layers were there: {again}"
    );
    assert!(
        !stderr.contains("building"),
        "a push is not a build:\n{stderr}"
    );
    let tags = pushed_tags(&output, "images");
    let references: Vec<&str> = tags
        .iter()
        .map(|(reference, _)| reference.as_str())
        .collect();
    assert_eq!(
        references,
        [
            format!("{target}/spark:latest"),
            format!("{target}/spark:t1"),
            format!("{target}/spark-hs:latest"),
            format!("{target}/spark-hs:t1"),
        ],
        "{report:#}"
    );
    cleanup.extend(tags.iter().map(|(reference, _)| reference.clone()));
    remove_images(
        &engine,
        &cleanup.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    drop(registry);
}

/// The `docker-image-tool.sh -r/-t` habit: `build --push --registry R --tag T…` names the
/// images after the flags (the flag beating `IMGFORGE_REGISTRY`, which beats the file), the
/// hive-metastore image tagged and labelled with its own Hive metastore version and Java
/// version; `push` with the same flags finds the images under those names.
#[tokio::test]
async fn build_push_registry_and_tag_flags_name_the_metastore_after_its_own_versions() {
    use crate::support::containers::image_config;
    use crate::support::images::{BUILD_TIMEOUT, ImageEnv};

    let engine = engine().await;
    let registry = Registry::plain();
    let image_env = ImageEnv::new(&[]);
    let namespace = format!("{}/names-registry-{}", registry.host, rand_suffix());
    let flags = [
        "--registry",
        namespace.as_str(),
        "--tag",
        "{hive_version}-java{java_version}",
        "--tag",
        "names-registry",
        "hive-metastore",
    ];
    let run_with_flags = |command: &[&str]| {
        let mut imgforge = image_env.env.imgforge();
        imgforge
            .env("IMGFORGE_REGISTRY", "env.invalid/names-registry")
            .args(["--no-progress", "--json"])
            .args(command)
            .args(flags);
        crate::support::env::run_command(imgforge, BUILD_TIMEOUT)
    };
    let output = run_with_flags(&["build", "--push"]);
    assert_success(&output);
    let expected = [
        format!("{namespace}/hive-metastore:3.0.0-java17"),
        format!("{namespace}/hive-metastore:names-registry"),
    ];
    let references: Vec<String> = pushed_tags(&output, "pushed")
        .into_iter()
        .map(|(reference, _)| reference)
        .collect();
    assert_eq!(references, expected);
    let (_, config) = image_config(&engine, &expected[0]).await;
    let labels = config.labels.unwrap_or_default();
    assert_eq!(
        labels
            .get("org.opencontainers.image.version")
            .map(String::as_str),
        Some("3.0.0"),
        "the Hive metastore version, not Spark's: {labels:#?}"
    );
    assert_eq!(
        labels.get("imgforge.hadoop.version").map(String::as_str),
        Some("3.2.0")
    );

    let output = run_with_flags(&["push"]);
    assert_success(&output);
    let pushed: Vec<String> = pushed_tags(&output, "images")
        .into_iter()
        .map(|(reference, _)| reference)
        .collect();
    assert_eq!(pushed, expected);

    let cleanup: Vec<&str> = expected.iter().map(String::as_str).collect();
    remove_images(&engine, &cleanup).await;
}

/// A push that fails midway under `--json`: one document with the error and every tag that
/// did reach the registry, verified, before the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_failing_midway_with_json_reports_the_tags_already_pushed() {
    let engine = engine().await;
    let registry = Registry::start(RegistrySpec {
        relative_urls: true,
        ..Default::default()
    });
    let (id, source_tag) = small_image(&engine, &format!("{}\n", unique_tag("midway"))).await;
    let push_env = PushEnv::new(&engine, &id, "").await;
    let mut cleanup = push_env.local.clone();
    cleanup.push(source_tag);
    for tag in ["latest", "t1"] {
        let reference = format!("{}/spark-hs:{tag}", push_env.prefix);
        docker::tag_image(&engine, &id, &reference)
            .await
            .expect("tag the small image as spark-hs");
        cleanup.push(reference);
    }
    // spark's two tags go through; every manifest after them is refused.
    let proxy = FaultyProxy::start(
        &registry.host,
        Faults {
            manifest_puts_after: Some(2),
            ..Default::default()
        },
    )
    .await;
    let target = format!("{}/midway", proxy.host);
    let output = push_env.run(
        &[
            "--no-progress",
            "--json",
            "push",
            "--registry",
            &target,
            "spark",
            "spark-hs",
        ],
        &[],
        None,
    );
    assert_exit_code(&output, 7);
    let report: Value = serde_json::from_str(&stdout_text(&output)).unwrap_or_else(|error| {
        panic!(
            "stdout is not one JSON document ({error}):\n{}\n{}",
            stdout_text(&output),
            stderr_text(&output)
        )
    });
    assert_eq!(report["command"], "push", "{report:#}");
    assert_eq!(report["error"]["kind"], "push", "{report:#}");
    assert_eq!(report["error"]["exit_code"], 7, "{report:#}");
    assert!(
        report["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains(&format!("{target}/spark-hs:latest"))),
        "{report:#}"
    );
    let tags = pushed_tags(&output, "images");
    let references: Vec<&str> = tags
        .iter()
        .map(|(reference, _)| reference.as_str())
        .collect();
    assert_eq!(
        references,
        [
            format!("{target}/spark:latest"),
            format!("{target}/spark:t1")
        ],
        "{report:#}"
    );
    assert!(
        tags.iter().all(|(_, digest)| digest.starts_with("sha256:")),
        "{report:#}"
    );
    cleanup.extend(
        ["spark:latest", "spark:t1", "spark-hs:latest", "spark-hs:t1"]
            .map(|name| format!("{target}/{name}")),
    );
    remove_images(
        &engine,
        &cleanup.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    drop(registry);
}
