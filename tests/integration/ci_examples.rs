//! The CI examples (`examples/gitlab-ci.yml`, `examples/github-actions.yml`) run as the
//! platforms would run them, so they cannot silently rot: each job's script lines, taken from
//! the parsed YAML, run with bash and the variables the platform sets, `imgforge` on `PATH`
//! being this test run's binary, against the test suite's own TLS engine (a second `dockerd`
//! standing for GitLab's `docker:dind` service and the GitHub runner's engine), a TLS
//! htpasswd registry standing for the project's registry (`$CI_REGISTRY_IMAGE`,
//! `ghcr.io/<owner>`), a plain registry holding the base image (the local JRE image with the
//! Dockerfiles' packages installed, see [`CI_BASE`]) under a Docker-Hub-like name, and the
//! loopback mirror. Each job starts on an engine without its base, so it really pulls it; the
//! build must succeed and push all three images; a flag imgforge does not accept fails the
//! script (exit 2 from the argument parser).
//!
//! What the test substitutes, and only through the examples' own variables: the engine
//! (`DOCKER_HOST`, `DOCKER_TLS_VERIFY`, `DOCKER_CERT_PATH`, whose example values are checked
//! to be the dind TLS ones first) and, on GitHub, `REGISTRY` (checked to be `ghcr.io`). The
//! project's committed `imgforge.toml` names the mirrors, the base image and the registry's CA;
//! its `imgforge.lock` is made with `imgforge lock`. What it leaves out: the job image itself
//! (checked to be the imgforge image of this version, whose own test is `ci_image`), GitLab's
//! `rules`, `services` and `artifacts` upload, and the GitHub actions that are not scripts —
//! `actions/checkout` (the project is already in the workspace), `actions/cache` and
//! `actions/upload-artifact` (their `path` is checked to hold what the run wrote there). Any
//! other action, or a `${{ }}` expression the test does not know, fails the test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use imgforge::context::BuildContext;
use imgforge::docker::BuildRequest;
use imgforge::progress::QuietReporter;
use serde_json::Value;

use crate::support::env::{run_command, stderr_text, stdout_text};
use crate::support::images::JRE_BASE;
use crate::support::registry::Registry;
use crate::support::remote_engine::RemoteEngine;
use crate::support::{TestEnv, assert_success};

const USER: &str = "ci-image-bot";
const PASSWORD: &str = "ci-image-job-token-5d1";

/// How long one example's job may run (three images on an engine without layer cache).
const JOB_TIMEOUT: Duration = Duration::from_secs(1500);

/// An example, parsed.
fn example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("read the example");
    serde_norway::from_str(&text).unwrap_or_else(|error| panic!("{name} is not YAML: {error}"))
}

/// The base image the examples' builds pull: the local JRE image with the packages the three
/// Dockerfiles install already installed (and apt's lists kept), built on the main engine.
/// The second engine's containers have no way out (no NAT), so there `apt-get update` only
/// warns and `apt-get install` finds everything installed — what a mirror-less CI sees with a
/// prepared base. Its tag is removed at the end; its layers stay as build cache.
const CI_BASE: &str = "imgforge-itest/ci-image-base:latest";

async fn ci_base() -> String {
    let engine = crate::support::docker::engine().await;
    let root = tempfile::tempdir().expect("context directory");
    crate::support::docker::write_file(
        root.path(),
        "Dockerfile",
        &format!(
            "FROM {JRE_BASE}\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
             bash tini libc6 libpam-modules krb5-user libnss3 procps postgresql-client\n"
        ),
        0o644,
    );
    let context = BuildContext::plan(root.path(), "Dockerfile", Vec::new()).expect("plan");
    let request = BuildRequest {
        name: "ci-image-base".into(),
        tags: vec![CI_BASE.to_string()],
        ..Default::default()
    };
    imgforge::docker::build_image(&engine, context, &request, &QuietReporter)
        .await
        .expect("build the CI base image");
    CI_BASE.to_string()
}

/// What both examples run against; see the module documentation.
struct Stage {
    env: TestEnv,
    remote: RemoteEngine,
    /// Holds the base image; kept running while the jobs pull from it.
    _bases: Registry,
    registry: Registry,
    base: String,
    bin: PathBuf,
}

impl Stage {
    async fn start() -> Stage {
        let env = TestEnv::new();
        let bases = Registry::plain();
        let base = format!("{}/library/openjdk:17-jre", bases.host);
        let seeded = base.clone();
        let source = ci_base().await;
        std::thread::spawn(move || crate::pull::seed(&source, &seeded, None))
            .join()
            .expect("seed the base registry");
        let registry = Registry::tls_htpasswd(USER, PASSWORD);
        let remote = RemoteEngine::start().await;
        // `imgforge` on PATH is this run's binary.
        let bin = env.root().join("bin");
        std::fs::create_dir_all(&bin).expect("bin directory");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_imgforge"), bin.join("imgforge"))
            .expect("link imgforge into bin/");
        Stage {
            env,
            remote,
            _bases: bases,
            registry,
            base,
            bin,
        }
    }

    /// A project checkout in `dir`: its committed `imgforge.toml` and `imgforge.lock`.
    fn project(&self, dir: &Path) {
        std::fs::create_dir_all(dir).expect("project directory");
        let ca = self.registry.ca.as_ref().expect("a TLS registry has a CA");
        std::fs::write(
            dir.join("imgforge.toml"),
            format!(
                "[mirrors]\napache = [\"{}\"]\nmaven = [\"{}\"]\n\n\
                 [images.spark]\nbase = \"{base}\"\njava_major = 17\n\n\
                 [images.hive-metastore]\nbase = \"{base}\"\n\n\
                 [push]\nregistry_ca = \"{}\"\n",
                self.env.apache_url(),
                self.env.maven_url(),
                ca.display(),
                base = self.base,
            ),
        )
        .expect("write imgforge.toml");
        let mut command = Command::new(env!("CARGO_BIN_EXE_imgforge"));
        command
            .args(["--no-progress", "lock"])
            .current_dir(dir)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", dir.join(".home"))
            .env("IMGFORGE_CACHE_DIR", self.env.cache_dir());
        for (name, value) in self.remote.env_vars() {
            command.env(name, value);
        }
        let output = run_command(command, Duration::from_secs(300));
        assert_success(&output);
    }

    /// Take the base image off the engine again (`imgforge lock` pulled it): the job starts
    /// on an engine without it, like a fresh dind service, and must pull it itself.
    async fn forget_base(&self) {
        let engine = imgforge::docker::connect(&self.remote.endpoint())
            .await
            .expect("connect to the second engine");
        let options = bollard::query_parameters::RemoveImageOptions {
            noprune: true,
            ..Default::default()
        };
        engine
            .client()
            .remove_image(&self.base, Some(options), None)
            .await
            .unwrap_or_else(|error| panic!("untag {} on the second engine: {error}", self.base));
    }

    /// Run `script` with bash as the platform does (`bash --noprofile --norc -eo pipefail`),
    /// with exactly `vars` and `PATH` leading to this run's imgforge.
    fn run(&self, script: &str, dir: &Path, vars: &BTreeMap<String, String>) -> Output {
        let mut command = Command::new("bash");
        command
            .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
            .current_dir(dir)
            .env_clear()
            .env("HOME", dir.join(".home"))
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin.display()));
        for (name, value) in vars {
            command.env(name, value);
        }
        let output = run_command(command, JOB_TIMEOUT);
        assert!(
            output.status.success(),
            "the example's script failed: {}\n--- script ---\n{script}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            stdout_text(&output),
            stderr_text(&output)
        );
        output
    }

    /// The engine variables, replacing the example's after checking they are the dind TLS
    /// ones (`check`) or adding them (the GitHub runner's engine sets none).
    fn engine_vars(&self, vars: &mut BTreeMap<String, String>, check: bool) {
        if check {
            assert_eq!(vars["DOCKER_HOST"], "tcp://docker:2376");
            assert_eq!(vars["DOCKER_TLS_VERIFY"], "1");
            assert_eq!(vars["DOCKER_CERT_PATH"], "/certs/client");
            assert_eq!(vars["DOCKER_TLS_CERTDIR"], "/certs");
        }
        for (name, value) in self.remote.env_vars() {
            vars.insert(name.to_string(), value);
        }
    }

    /// The report the script wrote, checked: all three images pushed under `namespace`, and
    /// the registry serving each of their tags.
    async fn check_pushed(&self, report_path: &Path, namespace: &str) {
        let text = std::fs::read_to_string(report_path).expect("the script wrote the report");
        let report: Value =
            serde_json::from_str(&text).unwrap_or_else(|error| panic!("report: {error}\n{text}"));
        assert_eq!(report["command"], "build", "{report:#}");
        let pushed: Vec<String> = report["pushed"]
            .as_array()
            .unwrap_or_else(|| panic!("nothing pushed: {report:#}"))
            .iter()
            .flat_map(|image| image["tags"].as_array().expect("tags").clone())
            .map(|tag| tag["reference"].as_str().expect("reference").to_string())
            .collect();
        for image in ["spark", "spark-hs", "hive-metastore"] {
            assert!(
                pushed
                    .iter()
                    .any(|reference| reference.starts_with(&format!("{namespace}/{image}:"))),
                "{image} not pushed under {namespace}: {pushed:?}"
            );
        }
        let ca = std::fs::read(self.registry.ca.as_ref().expect("CA")).expect("read the CA");
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA PEM"))
            .build()
            .expect("client");
        for reference in &pushed {
            let (name, tag) = reference
                .strip_prefix(&format!("{}/", self.registry.host))
                .and_then(|rest| rest.rsplit_once(':'))
                .unwrap_or_else(|| panic!("{reference} is not in the registry"));
            let response = client
                .head(format!(
                    "https://{}/v2/{name}/manifests/{tag}",
                    self.registry.host
                ))
                .basic_auth(USER, Some(PASSWORD))
                .header("Accept", imgforge::registry::MANIFEST_ACCEPT)
                .send()
                .await
                .expect("manifest request");
            assert!(response.status().is_success(), "{reference}: {response:?}");
        }
    }
}

/// `$NAME` and `${NAME}` in `text` replaced from `vars`, as GitLab expands variables; an
/// unknown name fails the test.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(index) = rest.find('$') {
        out.push_str(&rest[..index]);
        let after = &rest[index + 1..];
        let (name, remainder) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').expect("closing brace");
            (&braced[..end], &braced[end + 1..])
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        let value = vars
            .get(name)
            .unwrap_or_else(|| panic!("{text:?} names ${name}, which nothing sets"));
        out.push_str(value);
        rest = remainder;
    }
    out.push_str(rest);
    out
}

/// `${{ … }}` expressions in `text` evaluated as GitHub would for the known contexts; any
/// other expression fails the test.
fn evaluate(text: &str, github: &BTreeMap<&str, String>, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("closing }}") + start;
        let expression = rest[start + 3..end].trim();
        let value = if let Some(name) = expression.strip_prefix("env.") {
            env.get(name).cloned()
        } else {
            github.get(expression).cloned()
        };
        out.push_str(
            &value.unwrap_or_else(|| panic!("the test does not know ${{{{ {expression} }}}}")),
        );
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The string items of `value[key]` (a list), or none.
fn strings(value: &Value, key: &str) -> Vec<String> {
    value[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item.as_str().expect("a string item").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Both examples' jobs, one after the other on the same engine and registries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_ci_examples_build_and_push_with_the_platform_variables() {
    let stage = Stage::start().await;
    gitlab(&stage).await;
    github(&stage).await;
    drop(stage);
    let engine = crate::support::docker::engine().await;
    crate::support::containers::untag(&engine, CI_BASE).await;
}

async fn gitlab(stage: &Stage) {
    let pipeline = example("gitlab-ci.yml");
    let job = &pipeline["rebuild-images"];
    let project = stage.env.root().join("gitlab/ci-image-project");
    stage.project(&project);
    stage.forget_base().await;
    let namespace = format!("{}/ci-image-group/ci-image-project", stage.registry.host);
    let mut vars: BTreeMap<String, String> = [
        ("CI", "true".to_string()),
        ("GITLAB_CI", "true".to_string()),
        ("CI_PIPELINE_SOURCE", "schedule".to_string()),
        ("CI_PROJECT_DIR", project.display().to_string()),
        ("CI_REGISTRY", stage.registry.host.clone()),
        ("CI_REGISTRY_IMAGE", namespace.clone()),
        ("CI_REGISTRY_USER", USER.to_string()),
        ("CI_REGISTRY_PASSWORD", PASSWORD.to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect();
    for scope in [&pipeline["variables"], &job["variables"]] {
        for (name, value) in scope.as_object().into_iter().flatten() {
            let value = value.as_str().expect("a variable is a string");
            let expanded = expand(value, &vars);
            vars.insert(name.clone(), expanded);
        }
    }
    let image = expand(job["image"].as_str().expect("the job's image"), &vars);
    assert!(
        image.ends_with(&format!("/imgforge:{}", env!("CARGO_PKG_VERSION"))),
        "the job runs in the imgforge image of this version: {image}"
    );
    let services = job["services"].to_string();
    assert!(services.contains("dind"), "{services}");
    stage.engine_vars(&mut vars, true);

    let mut lines = strings(job, "before_script");
    lines.extend(strings(job, "script"));
    assert!(!lines.is_empty(), "the job has script lines");
    let output = stage.run(&lines.join("\n"), &project, &vars);
    assert!(
        stdout_text(&output).contains(&format!("imgforge {}", env!("CARGO_PKG_VERSION"))),
        "{}",
        stdout_text(&output)
    );
    // The engine had no base image: the job pulled it, as on a fresh dind service.
    let base_host = stage.base.split('/').next().unwrap_or_default();
    assert!(
        stderr_text(&output).contains(&format!("pulling {} from {base_host}", stage.base)),
        "{}",
        stderr_text(&output)
    );

    // What the platform keeps from the run: the cache paths and the artifacts.
    for path in strings(&job["cache"], "paths") {
        assert!(
            project.join(&path).join("CACHEDIR.TAG").exists(),
            "the cached path {path} holds imgforge's download cache"
        );
    }
    let artifacts = strings(&job["artifacts"], "paths");
    for path in &artifacts {
        assert!(project.join(path).exists(), "artifact {path} was written");
    }
    stage
        .check_pushed(&project.join("imgforge-report.json"), &namespace)
        .await;
}

async fn github(stage: &Stage) {
    let workflow = example("github-actions.yml");
    let job = &workflow["jobs"]["rebuild"];
    let workspace = stage.env.root().join("github/ci-image-repo");
    stage.project(&workspace);
    stage.forget_base().await;
    // Mixed case, as GitHub owners may be: the registry wants it lower-cased.
    let owner = "Ci-Image-Org";
    let github: BTreeMap<&str, String> = [
        ("github.actor", USER.to_string()),
        ("github.repository_owner", owner.to_string()),
        ("secrets.GITHUB_TOKEN", PASSWORD.to_string()),
    ]
    .into_iter()
    .collect();
    let mut vars: BTreeMap<String, String> = [
        ("CI", "true"),
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_ACTOR", USER),
        ("GITHUB_REPOSITORY_OWNER", owner),
        ("GITHUB_REPOSITORY", "Ci-Image-Org/ci-image-repo"),
        ("GITHUB_EVENT_NAME", "schedule"),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    vars.insert("GITHUB_WORKSPACE".into(), workspace.display().to_string());

    let image = evaluate(
        job["container"]["image"].as_str().expect("the job's image"),
        &github,
        &vars,
    );
    assert!(
        image.ends_with(&format!("/imgforge:{}", env!("CARGO_PKG_VERSION"))),
        "the job runs in the imgforge image of this version: {image}"
    );
    assert_eq!(workflow["defaults"]["run"]["shell"], "bash");
    for (name, value) in workflow["env"].as_object().into_iter().flatten() {
        let value = evaluate(value.as_str().expect("an env value"), &github, &vars);
        vars.insert(name.clone(), value);
    }
    assert_eq!(vars["REGISTRY"], "ghcr.io");
    vars.insert("REGISTRY".into(), stage.registry.host.clone());
    for (name, value) in job["env"].as_object().into_iter().flatten() {
        let value = evaluate(value.as_str().expect("an env value"), &github, &vars);
        vars.insert(name.clone(), value);
    }
    stage.engine_vars(&mut vars, false);

    let mut kept = Vec::new();
    let mut ran = 0;
    let mut stderr = String::new();
    for step in job["steps"].as_array().expect("steps") {
        if let Some(action) = step["uses"].as_str() {
            let path = || {
                step["with"]["path"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{action} has a path"))
                    .to_string()
            };
            match action.split('@').next().unwrap_or_default() {
                "actions/checkout" => {}
                "actions/cache" => {
                    // Keyed by the committed lock, so a new lock saves a new cache.
                    let key = step["with"]["key"].as_str().expect("a cache key");
                    assert!(key.contains("hashFiles('imgforge.lock')"), "{key}");
                    assert!(workspace.join("imgforge.lock").exists());
                    kept.push((path(), true))
                }
                "actions/upload-artifact" => kept.push((path(), false)),
                other => panic!("the test does not know the action {other}; map it"),
            }
            continue;
        }
        let script = evaluate(step["run"].as_str().expect("a run step"), &github, &vars);
        let mut step_vars = vars.clone();
        for (name, value) in step["env"].as_object().into_iter().flatten() {
            let value = evaluate(value.as_str().expect("an env value"), &github, &vars);
            step_vars.insert(name.clone(), value);
        }
        let output = stage.run(&script, &workspace, &step_vars);
        stderr.push_str(&stderr_text(&output));
        ran += 1;
    }
    assert!(ran > 0, "the job has run steps");
    let base_host = stage.base.split('/').next().unwrap_or_default();
    assert!(
        stderr.contains(&format!("pulling {} from {base_host}", stage.base)),
        "the job pulled its base image:\n{stderr}"
    );
    for (path, is_cache) in &kept {
        let path = workspace.join(path);
        if *is_cache {
            assert!(
                path.join("CACHEDIR.TAG").exists(),
                "the cached path {} holds imgforge's download cache",
                path.display()
            );
        } else {
            assert!(path.exists(), "{} was written", path.display());
        }
    }
    let namespace = format!("{}/{}", stage.registry.host, owner.to_lowercase());
    stage
        .check_pushed(&workspace.join("imgforge-report.json"), &namespace)
        .await;
}
