//! The real Docker engine for integration tests: connect (failing loudly when it is down),
//! write small build contexts, run a container from an image and collect its output, and
//! remove test images afterwards.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{LogsOptions, RemoveContainerOptions};
use futures_util::StreamExt;
use imgforge::docker::{self, Engine, EngineEndpoint};

/// The busybox base image `scripts/ci-services.sh` creates.
pub const BUSYBOX: &str = "imgforge-test/busybox:latest";

/// Connect to the local engine, or fail the test saying how to start it. Tests never skip.
pub async fn engine() -> Engine {
    let endpoint = EngineEndpoint::default();
    match docker::connect(&endpoint).await {
        Ok(engine) => match docker::image_exists(&engine, BUSYBOX).await {
            Ok(true) => engine,
            Ok(false) => panic!(
                "base image {BUSYBOX} is missing on the Docker engine at {endpoint}; run scripts/ci-services.sh (as root)"
            ),
            Err(error) => panic!("inspecting {BUSYBOX}: {error}"),
        },
        Err(error) => panic!(
            "Docker engine not reachable at {endpoint}; run scripts/ci-services.sh (as root)\n{error}"
        ),
    }
}

/// A tag unique to this test process and call, under `imgforge-itest/`.
pub fn unique_tag(name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("imgforge-itest/{name}:p{}-{count}", std::process::id())
}

/// Write `content` to `root/relative` with permission bits `mode`, creating parents.
pub fn write_file(root: &Path, relative: &str, content: &str, mode: u32) {
    let path = root.join(relative);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create parent directories");
    }
    fs::write(&path, content).expect("write context file");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("set mode");
}

/// Run `command` in a fresh container of `image`; return its exit code and combined output.
pub async fn run(engine: &Engine, image: &str, command: &[&str]) -> (i64, String) {
    let client = engine.client();
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: Some(command.iter().map(|part| part.to_string()).collect()),
        ..Default::default()
    };
    let created = client
        .create_container(None, body)
        .await
        .unwrap_or_else(|error| panic!("creating a container from {image}: {error}"));
    client
        .start_container(&created.id, None)
        .await
        .unwrap_or_else(|error| panic!("starting a container from {image}: {error}"));
    let mut exit_code = None;
    let mut waits = client.wait_container(&created.id, None);
    while let Some(item) = waits.next().await {
        match item {
            Ok(response) => exit_code = Some(response.status_code),
            Err(bollard::errors::Error::DockerContainerWaitError { code, .. }) => {
                exit_code = Some(code)
            }
            Err(error) => panic!("waiting for a container of {image}: {error}"),
        }
    }
    let options = LogsOptions {
        stdout: true,
        stderr: true,
        ..Default::default()
    };
    let mut output = String::new();
    let mut logs = client.logs(&created.id, Some(options));
    while let Some(item) = logs.next().await {
        let chunk = item.unwrap_or_else(|error| panic!("reading logs of {image}: {error}"));
        output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
    }
    let remove = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    client
        .remove_container(&created.id, Some(remove))
        .await
        .unwrap_or_else(|error| panic!("removing a container of {image}: {error}"));
    (exit_code.expect("the engine reported an exit code"), output)
}

/// Remove test images, reporting failures without failing the test that already ran.
pub async fn remove_images(engine: &Engine, references: &[&str]) {
    for reference in references {
        if let Err(error) = docker::remove_image(engine, reference).await {
            eprintln!("cleanup: {error}");
        }
    }
}

/// Run `future` to its end on a runtime of its own (the tests are synchronous).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(future)
}

/// The engine's image ID of `reference`, `None` when it does not have it.
pub fn engine_id(reference: &str) -> Option<String> {
    block_on(async {
        docker::inspect(&engine().await, reference)
            .await
            .ok()
            .and_then(|image| image.id)
    })
}
