//! Base images pulled like `docker build` pulls them: an engine without the base pulls it
//! from its registry (a real `docker-registry` on loopback holding the local JRE image under a
//! Docker-Hub-like name), with credentials from each source and only the base registry's
//! own; `[images] pull = "never"` refuses with the setting named; `--pull` pulls a present
//! base again, so a tag moved upstream reaches the build.

use std::process::{Command, Output, Stdio};

use bollard::auth::DockerCredentials;
use bollard::query_parameters::PushImageOptionsBuilder;
use futures_util::StreamExt;

use crate::support::images::{ImageEnv, JRE_BASE};
use crate::support::registry::Registry;
use crate::support::*;

const USER: &str = "puller";
const PASSWORD: &str = "pull-s3cret-9f2";

/// Put `source` (a local image) into the registry as `reference`, then remove the tag from
/// the engine, so that only the registry has it.
pub(crate) fn seed(source: &str, reference: &str, credentials: Option<(&str, &str)>) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = crate::support::docker::engine().await;
        crate::support::containers::tag(&engine, source, reference).await;
        let (repository, tag) = reference.rsplit_once(':').expect("name:tag");
        let options = PushImageOptionsBuilder::default().tag(tag).build();
        let auth = credentials.map(|(username, password)| DockerCredentials {
            username: Some(username.into()),
            password: Some(password.into()),
            serveraddress: Some(reference.split('/').next().unwrap_or_default().into()),
            ..Default::default()
        });
        let mut stream = engine.client().push_image(repository, Some(options), auth);
        while let Some(item) = stream.next().await {
            let info = item.unwrap_or_else(|error| panic!("push {reference}: {error}"));
            if let Some(detail) = info.error_detail {
                panic!("push {reference}: {detail:?}");
            }
        }
        crate::support::containers::untag(&engine, reference).await;
    });
}

pub(crate) use crate::support::docker::engine_id;

pub(crate) fn retag(id: &str, reference: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = crate::support::docker::engine().await;
        crate::support::containers::tag(&engine, id, reference).await;
    });
}

pub(crate) fn untag(reference: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = crate::support::docker::engine().await;
        crate::support::containers::untag(&engine, reference).await;
    });
}

/// `imgforge --no-progress <args>` in `image_env`, with HOME in a temp dir, no docker
/// configuration but `envs`, and `stdin` fed.
fn run(image_env: &ImageEnv, args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let home = image_env.env.root().join("home");
    std::fs::create_dir_all(&home).expect("home");
    let mut command: Command = image_env.env.imgforge();
    command
        .arg("--no-progress")
        .args(args)
        .env("HOME", &home)
        .env_remove("DOCKER_CONFIG")
        .stdin(Stdio::piped());
    for (name, value) in envs {
        command.env(name, value);
    }
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start imgforge");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        std::io::Write::write_all(&mut input, text.as_bytes()).expect("stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait for imgforge")
}

/// A docker configuration directory with `auths` for `host`.
fn docker_config_with_auths(image_env: &ImageEnv, host: &str) -> String {
    let dir = image_env.env.root().join("docker-config");
    std::fs::create_dir_all(&dir).expect("docker config dir");
    let auth = crate::push::base64(&format!("{USER}:{PASSWORD}"));
    std::fs::write(
        dir.join("config.json"),
        format!(r#"{{"auths": {{"https://{host}": {{"auth": "{auth}"}}}}}}"#),
    )
    .expect("config.json");
    dir.display().to_string()
}

/// The manifest requests (`HEAD` or `GET`, the engine's pull) in a registry log.
fn manifest_reads(log: &str) -> usize {
    ["\"HEAD ", "\"GET "]
        .iter()
        .map(|method| {
            log.matches(&format!("{method}/v2/library/eclipse-temurin/manifests/"))
                .count()
        })
        .sum()
}

fn assert_pulled(output: &Output, base: &str, registry: &Registry) {
    assert_success(output);
    assert_stderr_contains(output, &format!("pulling {base} from {}", registry.host));
    assert!(engine_id(base).is_some(), "{base} is on the engine now");
    assert!(
        !stderr_text(output).contains(PASSWORD) && !stdout_text(output).contains(PASSWORD),
        "the password leaked"
    );
}

#[test]
fn a_missing_base_is_pulled_with_the_credentials_of_its_own_registry_from_each_source() {
    let registry = Registry::tls_htpasswd(USER, PASSWORD);
    let host = registry.host.clone();
    let base = format!(
        "{host}/library/eclipse-temurin:17-jre-{}",
        crate::support::docker::unique_tag("pull").replace([':', '/'], "-")
    );
    seed(JRE_BASE, &base, Some((USER, PASSWORD)));
    assert!(
        engine_id(&base).is_none(),
        "the engine must start without {base}"
    );
    let mut image_env = ImageEnv::new(&[]);
    image_env.configure(|config| {
        config.set_str("images.spark", "base", &base);
    });

    // 1. config.json `auths` for the base image's registry.
    let config_dir = docker_config_with_auths(&image_env, &host);
    let output = run(
        &image_env,
        &["build", "spark"],
        &[("DOCKER_CONFIG", &config_dir)],
        None,
    );
    assert_pulled(&output, &base, &registry);
    let log = registry.log_text();
    assert!(
        manifest_reads(&log) > 0,
        "the engine asked the registry for the manifest:\n{log}"
    );

    // 1b. A credential helper that config.json's `credHelpers` names for that registry.
    untag(&base);
    let bin = image_env.env.root().join("bin");
    std::fs::create_dir_all(&bin).expect("helper dir");
    let asked = bin.join("asked");
    let helper = bin.join("docker-credential-pulltest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nserver=$(cat)\necho \"$server\" >> {asked}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}\\n' \"$server\"\n",
            asked = asked.display()
        ),
    )
    .expect("write the helper");
    std::fs::set_permissions(
        &helper,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
    )
    .expect("chmod the helper");
    let helpers_dir = image_env.env.root().join("docker-config-helpers");
    std::fs::create_dir_all(&helpers_dir).expect("docker config dir");
    std::fs::write(
        helpers_dir.join("config.json"),
        format!(r#"{{"credHelpers": {{"{host}": "pulltest"}}}}"#),
    )
    .expect("config.json");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = run(
        &image_env,
        &["build", "spark"],
        &[
            ("DOCKER_CONFIG", &helpers_dir.display().to_string()),
            ("PATH", &path),
        ],
        None,
    );
    assert_pulled(&output, &base, &registry);
    assert_eq!(
        std::fs::read_to_string(&asked)
            .expect("the helper was asked")
            .lines()
            .next(),
        Some(host.as_str())
    );

    // 2. IMGFORGE_REGISTRY_USER/PASSWORD, when the base lives on the push registry.
    untag(&base);
    image_env.configure(|config| {
        config.set_str("images", "registry", &format!("{host}/team"));
    });
    let output = run(
        &image_env,
        &["build", "spark"],
        &[
            ("IMGFORGE_REGISTRY_USER", USER),
            ("IMGFORGE_REGISTRY_PASSWORD", PASSWORD),
        ],
        None,
    );
    assert_pulled(&output, &base, &registry);

    // 3. --username/--password-stdin with --push: the same credentials pull the base and
    //    push the image.
    untag(&base);
    let ca = registry.ca.clone().expect("a TLS registry has a CA");
    let output = run(
        &image_env,
        &[
            "build",
            "--push",
            "--registry-ca",
            &ca.display().to_string(),
            "--username",
            USER,
            "--password-stdin",
            "spark",
        ],
        &[],
        Some(PASSWORD),
    );
    assert_pulled(&output, &base, &registry);

    // 4. The push registry's credentials never go to another registry: with the images
    //    named elsewhere, the environment's password is not offered and the pull is refused.
    untag(&base);
    image_env.configure(|config| {
        config.set_str("images", "registry", "imgforge-itest.local/elsewhere");
    });
    let output = run(
        &image_env,
        &["build", "spark"],
        &[
            ("IMGFORGE_REGISTRY_USER", USER),
            ("IMGFORGE_REGISTRY_PASSWORD", PASSWORD),
        ],
        None,
    );
    assert_exit_code(&output, 6);
    assert_stderr_contains(&output, &format!("pulling base image {base}"));
    assert_stderr_contains(&output, &format!("docker login {host}"));
    assert!(engine_id(&base).is_none());
    untag(&base);
    untag(&format!("{host}/team/spark:3.1.1"));
}

/// A JRE base that only `registry` holds (under a Docker-Hub-like name unique to `label`), and
/// an environment whose spark image is built on it.
fn spark_on_a_registry_base(registry: &Registry, label: &str) -> (String, ImageEnv) {
    let base = format!(
        "{}/library/eclipse-temurin:17-jre-{}",
        registry.host,
        crate::support::docker::unique_tag(label).replace([':', '/'], "-")
    );
    seed(JRE_BASE, &base, None);
    let mut image_env = ImageEnv::new(&[]);
    image_env.configure(|config| {
        config.set_str("images.spark", "base", &base);
    });
    (base, image_env)
}

#[test]
fn pull_never_refuses_a_missing_base_and_names_the_setting() {
    let registry = Registry::plain();
    let (base, mut image_env) = spark_on_a_registry_base(&registry, "never");
    image_env.configure(|config| {
        config.set_str("images", "pull", "never");
    });
    let log_before = registry.log_text().len();
    let output = run(&image_env, &["build", "spark"], &[], None);
    assert_exit_code(&output, 6);
    assert_stderr_contains(&output, &base);
    assert_stderr_contains(&output, "[images] pull = \"never\"");
    // The flag wins over the setting either way.
    let refused = run(&image_env, &["build", "--pull=never", "spark"], &[], None);
    assert_exit_code(&refused, 6);
    assert_eq!(
        manifest_reads(&registry.log_text()[log_before..]),
        0,
        "nothing was pulled"
    );
    let output = run(&image_env, &["build", "--pull=missing", "spark"], &[], None);
    assert_success(&output);
    assert!(engine_id(&base).is_some());
    untag(&base);
}

#[test]
fn pull_always_brings_a_moved_tag_to_the_build() {
    let registry = Registry::plain();
    let (base, image_env) = spark_on_a_registry_base(&registry, "always");
    let output = run(&image_env, &["build", "spark"], &[], None);
    assert_success(&output);
    let first = engine_id(&base).expect("pulled");

    // The tag moves upstream (a security fix): a present base is not pulled again by default…
    // (--force: the inputs are unchanged, and the build's step counts are checked below.)
    let moved = moved_image(&base);
    seed(&moved, &base, None);
    retag(&first, &base);
    let output = run(&image_env, &["build", "--force", "spark"], &[], None);
    assert_success(&output);
    assert!(
        !stderr_text(&output).contains("pulling"),
        "{}",
        stderr_text(&output)
    );
    assert_counts_agree(&output);
    assert_eq!(engine_id(&base).as_deref(), Some(first.as_str()));

    // …but --pull pulls it, and the build is on the new image.
    let output = run(
        &image_env,
        &["--json", "build", "--pull", "spark"],
        &[],
        None,
    );
    assert_success(&output);
    assert_stderr_contains(&output, &format!("pulling {base}"));
    let second = engine_id(&base).expect("pulled again");
    assert_ne!(second, first, "the moved tag was pulled");
    assert_eq!(Some(second), engine_id(&moved));
    untag(&base);
    untag(&moved);
}

/// The live display's step count (`Step n/N`), its last line and the final summary give the
/// same numbers.
fn assert_counts_agree(output: &Output) {
    let stderr = stderr_text(output);
    let stdout = stdout_text(output);
    let total = stderr
        .lines()
        .rev()
        .filter_map(|line| line.split("Step ").nth(1))
        .filter_map(|rest| rest.split(' ').next())
        .filter_map(|count| count.split_once('/'))
        .map(|(_, total)| total.to_string())
        .next()
        .unwrap_or_else(|| panic!("no step lines:\n{stderr}"));
    let live = stderr
        .lines()
        .find(|line| line.starts_with("done spark "))
        .unwrap_or_else(|| panic!("no done line:\n{stderr}"));
    let counts = live
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("no counts in {live:?}"));
    assert!(
        counts.starts_with(&format!("{total} steps, ")),
        "{live} vs Step …/{total}"
    );
    assert!(
        stdout.contains(counts),
        "the summary says {counts:?} too:\n{stdout}"
    );
}

/// A new image on top of the JRE base ("a security fix"), under a local name of its own.
pub(crate) fn moved_image(base: &str) -> String {
    let reference = format!(
        "imgforge-test/moved-jre:{}",
        crate::support::docker::unique_tag("m").replace([':', '/'], "-")
    );
    crate::support::images::image_on_jre(&reference, &format!("moved {base}"));
    reference
}
