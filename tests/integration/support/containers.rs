//! Containers on the real Docker engine, through bollard: run one from an image with a chosen
//! entrypoint, command, user, environment, network mode and bind mounts; wait for it (with a
//! time limit); collect stdout and stderr apart; always remove it. Also image inspection,
//! tagging and the removal of test tags.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, ImageConfig};
use bollard::query_parameters::{
    KillContainerOptions, ListImagesOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions, TagImageOptions,
};
use futures_util::StreamExt;
use imgforge::docker::{self, Engine};

/// How long a test container may run before it is killed and the test fails.
pub const CONTAINER_TIMEOUT: Duration = Duration::from_secs(180);

/// What to run: the image plus the parts of `docker run` the tests use.
#[derive(Debug, Clone, Default)]
pub struct ContainerSpec {
    /// Image reference or ID.
    pub image: String,
    /// Replaces the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's command when set.
    pub cmd: Option<Vec<String>>,
    /// Replaces the image's user when set (`"0"`, `"185"`, `"hive"`).
    pub user: Option<String>,
    /// `NAME=value` entries added to the image's environment.
    pub env: Vec<String>,
    /// `host` to share the host's network (and its 127.0.0.1).
    pub network_mode: Option<String>,
    /// `host-path:container-path` bind mounts.
    pub binds: Vec<String>,
}

impl ContainerSpec {
    /// A container of `image` with its own entrypoint, command and user.
    pub fn new(image: &str) -> ContainerSpec {
        ContainerSpec {
            image: image.to_string(),
            ..Default::default()
        }
    }

    /// Replace the entrypoint.
    pub fn entrypoint(mut self, parts: &[&str]) -> ContainerSpec {
        self.entrypoint = Some(parts.iter().map(|part| part.to_string()).collect());
        self
    }

    /// Replace the command.
    pub fn cmd(mut self, parts: &[&str]) -> ContainerSpec {
        self.cmd = Some(parts.iter().map(|part| part.to_string()).collect());
        self
    }

    /// Run as `user`.
    pub fn user(mut self, user: &str) -> ContainerSpec {
        self.user = Some(user.to_string());
        self
    }

    /// Add `name=value` to the environment.
    pub fn env(mut self, name: &str, value: &str) -> ContainerSpec {
        self.env.push(format!("{name}={value}"));
        self
    }

    /// Share the host's network namespace.
    pub fn host_network(mut self) -> ContainerSpec {
        self.network_mode = Some("host".to_string());
        self
    }

    /// Bind-mount `host` at `container`.
    pub fn bind(mut self, host: &std::path::Path, container: &str) -> ContainerSpec {
        self.binds.push(format!("{}:{container}", host.display()));
        self
    }
}

/// A finished container.
#[derive(Debug, Clone)]
pub struct Finished {
    /// Its exit code.
    pub exit_code: i64,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Finished {
    /// Both streams, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.exit_code, self.stdout, self.stderr
        )
    }

    /// Fails the test, showing both streams, unless the container exited with 0.
    pub fn assert_success(&self, what: &str) -> &Finished {
        assert_eq!(self.exit_code, 0, "{what} failed\n{}", self.describe());
        self
    }
}

/// Removes the container when dropped, so a failing assertion leaves nothing behind.
struct Removal<'a> {
    engine: &'a Engine,
    id: String,
    done: bool,
}

impl Removal<'_> {
    async fn remove(mut self) {
        remove_container(self.engine, &self.id).await;
        self.done = true;
    }
}

impl Drop for Removal<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Panicking inside an async test: remove through a short-lived runtime of our own on
        // another thread (the test's runtime may be unwinding).
        let id = self.id.clone();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(engine) = docker::connect(&docker::EngineEndpoint::default()).await {
                    remove_container(&engine, &id).await;
                }
            });
        })
        .join();
    }
}

async fn remove_container(engine: &Engine, id: &str) {
    let options = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    if let Err(error) = engine.client().remove_container(id, Some(options)).await {
        eprintln!("cleanup: removing container {id}: {error}");
    }
}

/// Run `spec` to completion (at most [`CONTAINER_TIMEOUT`]) and return what it did. The
/// container is removed whatever happens.
pub async fn run_container(engine: &Engine, spec: &ContainerSpec) -> Finished {
    let client = engine.client();
    let host_config = HostConfig {
        network_mode: spec.network_mode.clone(),
        binds: (!spec.binds.is_empty()).then(|| spec.binds.clone()),
        ..Default::default()
    };
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: spec.entrypoint.clone(),
        cmd: spec.cmd.clone(),
        user: spec.user.clone(),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        host_config: Some(host_config),
        ..Default::default()
    };
    let created = client
        .create_container(None, body)
        .await
        .unwrap_or_else(|error| panic!("creating a container from {}: {error}", spec.image));
    let removal = Removal {
        engine,
        id: created.id.clone(),
        done: false,
    };
    client
        .start_container(&created.id, None)
        .await
        .unwrap_or_else(|error| panic!("starting a container from {}: {error}", spec.image));

    let wait = async {
        let mut exit_code = None;
        let mut waits = client.wait_container(&created.id, None);
        while let Some(item) = waits.next().await {
            match item {
                Ok(response) => exit_code = Some(response.status_code),
                Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => {
                    exit_code = Some(code)
                }
                Err(error) => panic!("waiting for a container of {}: {error}", spec.image),
            }
        }
        exit_code
    };
    let exit_code = match tokio::time::timeout(CONTAINER_TIMEOUT, wait).await {
        Ok(code) => code.expect("the engine reported an exit code"),
        Err(_) => {
            let _ = client
                .kill_container(&created.id, None::<KillContainerOptions>)
                .await;
            let logs = logs(engine, &created.id).await;
            panic!(
                "a container of {} did not finish within {CONTAINER_TIMEOUT:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                spec.image, logs.0, logs.1
            );
        }
    };
    let (stdout, stderr) = logs(engine, &created.id).await;
    removal.remove().await;
    Finished {
        exit_code,
        stdout,
        stderr,
    }
}

async fn logs(engine: &Engine, id: &str) -> (String, String) {
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    let mut stream = engine.client().logs(id, Some(options));
    while let Some(item) = stream.next().await {
        match item.unwrap_or_else(|error| panic!("reading the logs of container {id}: {error}")) {
            LogOutput::StdErr { message } => stderr.push_str(&String::from_utf8_lossy(&message)),
            other => stdout.push_str(&String::from_utf8_lossy(&other.into_bytes())),
        }
    }
    (stdout, stderr)
}

/// Run a shell script (`bash -c`) in a fresh container of `image` as `user`, bypassing the
/// image's entrypoint.
pub async fn run_script(engine: &Engine, image: &str, user: &str, script: &str) -> Finished {
    let spec = ContainerSpec::new(image)
        .entrypoint(&["bash", "-c", script])
        .user(user);
    run_container(engine, &spec).await
}

/// The configuration of image `reference` (entrypoint, command, user, environment, ports,
/// labels) and its ID.
pub async fn image_config(engine: &Engine, reference: &str) -> (String, ImageConfig) {
    let inspected = docker::inspect(engine, reference)
        .await
        .unwrap_or_else(|error| panic!("inspecting {reference}: {error}"));
    let id = inspected.id.clone().expect("an inspected image has an ID");
    let config = inspected
        .config
        .unwrap_or_else(|| panic!("image {reference} has no configuration"));
    (id, config)
}

/// Give image `id` the extra reference `reference` (`repository:tag`).
pub async fn tag(engine: &Engine, id: &str, reference: &str) {
    let (repository, tag) = reference
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("{reference} has no tag"));
    let options = TagImageOptions {
        repo: Some(repository.to_string()),
        tag: Some(tag.to_string()),
    };
    engine
        .client()
        .tag_image(id, Some(options))
        .await
        .unwrap_or_else(|error| panic!("tagging {id} as {reference}: {error}"));
}

/// Every `repository:tag` on the engine that starts with `prefix`.
pub async fn references_under(engine: &Engine, prefix: &str) -> Vec<String> {
    let images = engine
        .client()
        .list_images(Some(ListImagesOptions {
            all: false,
            ..Default::default()
        }))
        .await
        .unwrap_or_else(|error| panic!("listing images: {error}"));
    let mut references: Vec<String> = images
        .into_iter()
        .flat_map(|image| image.repo_tags)
        .filter(|reference| reference.starts_with(prefix))
        .collect();
    references.sort();
    references
}

/// Remove the reference `reference` but keep its untagged parent layers, which are the
/// engine's build cache for the next test run.
pub async fn untag(engine: &Engine, reference: &str) {
    let options = RemoveImageOptions {
        force: false,
        noprune: true,
        ..Default::default()
    };
    if let Err(error) = engine
        .client()
        .remove_image(reference, Some(options), None)
        .await
    {
        eprintln!("cleanup: removing {reference}: {error}");
    }
}
