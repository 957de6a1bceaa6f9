//! The Docker foundation on the real engine: streamed, filtered, deterministic build contexts;
//! builds whose files, labels, build args and cache hits are checked by inspecting the image
//! and running containers from it; and the failures a user must be able to read — a failing
//! `RUN` step and an absent base image.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use imgforge::context::{BuildContext, context_stream};
use imgforge::docker::{self, BuildRequest, DockerError};
use imgforge::progress::QuietReporter;
use sha2::{Digest, Sha256};

use crate::support::docker::{BUSYBOX, engine, remove_images, run, unique_tag, write_file};

/// A context with files the Dockerfile copies, one it copies but `.dockerignore` drops, and
/// files nothing refers to.
fn selective_tree(root: &Path) {
    write_file(
        root,
        "Dockerfile",
        &format!(
            "FROM {BUSYBOX}\nCOPY app/ /app/\nCOPY --chown=1:1 conf/settings.conf /etc/settings.conf\nCMD [\"sh\"]\n"
        ),
        0o644,
    );
    write_file(root, ".dockerignore", "**/*.secret\nunrelated\n", 0o644);
    write_file(root, "app/run.sh", "#!/bin/sh\necho run\n", 0o755);
    write_file(root, "app/notes.secret", "do not ship\n", 0o600);
    write_file(root, "app/sub/data.txt", "data\n", 0o640);
    symlink("run.sh", root.join("app/start")).expect("symlink");
    write_file(root, "conf/settings.conf", "key=value\n", 0o644);
    write_file(root, "conf/other.conf", "not copied\n", 0o644);
    write_file(root, "unrelated/big.bin", &"x".repeat(100_000), 0o644);
}

/// `Rival.Dockerfile` in `root`: busybox plus the `COPY app/` step other builds share.
fn write_rival_dockerfile(root: &Path) -> String {
    write_file(
        root,
        "Rival.Dockerfile",
        &format!("FROM {BUSYBOX}\nCOPY app/ /app/\n"),
        0o644,
    );
    "Rival.Dockerfile".to_string()
}

async fn stream_digest(root: &Path, dockerfile: &str) -> (String, Vec<u8>) {
    let (mut stream, _summary) = context_stream(root, dockerfile, Vec::new()).expect("plan");
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.expect("context chunk"));
    }
    (hex::encode(Sha256::digest(&bytes)), bytes)
}

#[tokio::test]
async fn context_holds_only_copied_unignored_files_with_fixed_metadata() {
    let root = tempfile::tempdir().expect("temp dir");
    selective_tree(root.path());
    let context = BuildContext::plan(root.path(), "Dockerfile", Vec::new()).expect("plan");
    let paths: Vec<&str> = context.paths().collect();
    assert_eq!(
        paths,
        vec![
            "Dockerfile",
            "app",
            "app/run.sh",
            "app/start",
            "app/sub",
            "app/sub/data.txt",
            "conf",
            "conf/settings.conf",
        ]
    );
    let summary = context.summary();
    assert_eq!((summary.files, summary.directories), (5, 3));

    let (_, bytes) = stream_digest(root.path(), "Dockerfile").await;
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut seen = Vec::new();
    for entry in archive.entries().expect("tar entries") {
        let entry = entry.expect("tar entry");
        let header = entry.header();
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        assert_eq!(header.username().unwrap(), Some(""));
        let path = entry.path().unwrap().display().to_string();
        match path.trim_end_matches('/') {
            "app/run.sh" => assert_eq!(header.mode().unwrap(), 0o755),
            "app/sub/data.txt" => assert_eq!(header.mode().unwrap(), 0o640),
            "app/start" => {
                assert_eq!(header.entry_type(), tar::EntryType::Symlink);
                assert_eq!(
                    entry.link_name().unwrap().unwrap().display().to_string(),
                    "run.sh"
                );
            }
            _ => {}
        }
        seen.push(path.trim_end_matches('/').to_string());
    }
    assert_eq!(seen, paths);
}

#[tokio::test]
async fn context_stream_is_byte_identical_for_an_unchanged_tree() {
    let root = tempfile::tempdir().expect("temp dir");
    selective_tree(root.path());
    let (first, _) = stream_digest(root.path(), "Dockerfile").await;
    // Touching a file changes its mtime but not what the stream carries.
    let touched = fs::File::options()
        .write(true)
        .open(root.path().join("app/run.sh"))
        .expect("open");
    touched
        .set_modified(SystemTime::now() + Duration::from_secs(3600))
        .expect("set mtime");
    let (second, _) = stream_digest(root.path(), "Dockerfile").await;
    assert_eq!(first, second);
    // A changed byte in a copied file changes the stream; one in an ignored file does not.
    write_file(root.path(), "app/notes.secret", "changed\n", 0o600);
    assert_eq!(stream_digest(root.path(), "Dockerfile").await.0, first);
    write_file(root.path(), "app/sub/data.txt", "datA\n", 0o640);
    assert_ne!(stream_digest(root.path(), "Dockerfile").await.0, first);
}

#[tokio::test]
async fn built_image_holds_only_the_wanted_files() {
    let engine = engine().await;
    let root = tempfile::tempdir().expect("temp dir");
    selective_tree(root.path());
    let tag = unique_tag("selective");
    let context = BuildContext::plan(root.path(), "Dockerfile", Vec::new()).expect("plan");
    let request = BuildRequest {
        name: "selective".to_string(),
        tags: vec![tag.clone()],
        ..Default::default()
    };
    let built = docker::build_image(&engine, context, &request, &QuietReporter)
        .await
        .unwrap_or_else(|error| panic!("build: {error}"));
    assert!(built.tags.contains(&tag), "{:?}", built.tags);
    assert!(built.size > 0);
    assert!(built.context_bytes > 0);
    assert!(
        built.context_bytes < 100_000,
        "the unreferenced 100 kB file was not sent: {} bytes",
        built.context_bytes
    );
    let (code, output) = run(
        &engine,
        &tag,
        &[
            "sh",
            "-c",
            "find /app | sort; stat -c '%a %u' /app/run.sh /etc/settings.conf; readlink /app/start; cat /etc/settings.conf; ls /etc/other.conf /unrelated 2>&1 | wc -l",
        ],
    )
    .await;
    remove_images(&engine, &[&tag]).await;
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        output,
        "/app\n/app/run.sh\n/app/start\n/app/sub\n/app/sub/data.txt\n755 0\n644 1\nrun.sh\nkey=value\n2\n"
    );
}

#[tokio::test]
async fn a_failing_run_step_names_the_step_and_shows_its_output() {
    let engine = engine().await;
    let root = tempfile::tempdir().expect("temp dir");
    write_file(
        root.path(),
        "Dockerfile",
        &format!(
            "FROM {BUSYBOX}\nRUN echo preparing\nRUN echo first-line && echo second-line >&2 && exit 3\nRUN echo never\n"
        ),
        0o644,
    );
    let tag = unique_tag("failing");
    let context = BuildContext::plan(root.path(), "Dockerfile", Vec::new()).expect("plan");
    let request = BuildRequest {
        name: "failing".to_string(),
        tags: vec![tag.clone()],
        ..Default::default()
    };
    let error = docker::build_image(&engine, context, &request, &QuietReporter)
        .await
        .expect_err("the RUN step fails");
    assert!(!docker::image_exists(&engine, &tag).await.unwrap());
    let DockerError::StepFailed {
        image,
        step,
        message,
        output,
        ..
    } = &error
    else {
        panic!("expected a failed step, got: {error}");
    };
    assert_eq!(image, "failing");
    assert!(step.starts_with("Step 3/4 : RUN echo first-line"), "{step}");
    assert!(message.contains("non-zero code: 3"), "{message}");
    assert!(output.iter().any(|line| line == "first-line"), "{output:?}");
    assert!(
        output.iter().any(|line| line == "second-line"),
        "{output:?}"
    );
    assert!(
        !output.iter().any(|line| line.contains("preparing")),
        "only the failing step's output: {output:?}"
    );
    let shown = error.to_string();
    assert!(shown.contains("Step 3/4 : RUN"), "{shown}");
    assert!(shown.contains("| second-line"), "{shown}");
}

#[tokio::test]
async fn an_absent_base_image_is_named_and_not_pulled() {
    let engine = engine().await;
    let root = tempfile::tempdir().expect("temp dir");
    write_file(
        root.path(),
        "Dockerfile",
        "ARG base_tag=1.0\nFROM imgforge-test/does-not-exist:${base_tag}\nRUN true\n",
        0o644,
    );
    let context = BuildContext::plan(root.path(), "Dockerfile", Vec::new()).expect("plan");
    let request = BuildRequest {
        name: "orphan".to_string(),
        build_args: BTreeMap::from([("base_tag".to_string(), "2.0".to_string())]),
        ..Default::default()
    };
    let error = docker::build_image(&engine, context, &request, &QuietReporter)
        .await
        .expect_err("the base image is absent");
    assert!(
        matches!(&error, DockerError::BaseImageMissing { image, .. } if image == "imgforge-test/does-not-exist:2.0"),
        "{error}"
    );
    let shown = error.to_string();
    assert!(
        shown.contains("imgforge-test/does-not-exist:2.0"),
        "{shown}"
    );
    // build_image itself never pulls: the message names the setting that would.
    assert!(shown.contains("[images] pull"), "{shown}");
}

#[tokio::test]
async fn an_unchanged_context_rebuilds_entirely_from_the_cache() {
    let engine = engine().await;
    let root = tempfile::tempdir().expect("temp dir");
    selective_tree(root.path());
    // The step unique to this test run comes first. The classic builder takes, for each step,
    // the *newest* image whose parent and step match; a step shared with other builds
    // (`COPY app/` on busybox, as `selective_tree` has) can gain a newer sibling from any
    // concurrent or `--no-cache` build, and the steps after it then miss the cache because
    // they hang off the older sibling. That was the cause of this test's rare failures.
    let marker = unique_tag("marker");
    write_file(
        root.path(),
        "Dockerfile",
        &format!(
            "FROM {BUSYBOX}\nRUN echo '{marker}' > /marker\nCOPY app/ /app/\nCOPY conf/settings.conf /etc/\nENV MODE=test\n"
        ),
        0o644,
    );
    let tag = unique_tag("cached");
    let request = BuildRequest {
        name: "cached".to_string(),
        tags: vec![tag.clone()],
        ..Default::default()
    };
    let build = || async {
        let context = BuildContext::plan(root.path(), "Dockerfile", Vec::new()).expect("plan");
        docker::build_image(&engine, context, &request, &QuietReporter)
            .await
            .unwrap_or_else(|error| panic!("build: {error}"))
    };
    let first = build().await;
    // A rival build sharing the old first step, without the cache: it makes a newer sibling of
    // every step of the common prefix, as the suite's other builds of `selective_tree` can.
    let rival = write_rival_dockerfile(root.path());
    let rival_request = BuildRequest {
        name: "rival".to_string(),
        no_cache: true,
        ..Default::default()
    };
    let context = BuildContext::plan(root.path(), &rival, Vec::new()).expect("plan");
    let rival_image = docker::build_image(&engine, context, &rival_request, &QuietReporter)
        .await
        .unwrap_or_else(|error| panic!("rival build: {error}"));
    // Only the mtimes change between the builds.
    let touched = fs::File::options()
        .write(true)
        .open(root.path().join("app/run.sh"))
        .expect("open");
    touched
        .set_modified(SystemTime::now() + Duration::from_secs(60))
        .expect("set mtime");
    let second = build().await;
    let no_cache = BuildRequest {
        no_cache: true,
        ..request.clone()
    };
    let context = BuildContext::plan(root.path(), "Dockerfile", Vec::new()).expect("plan");
    let fresh = docker::build_image(&engine, context, &no_cache, &QuietReporter)
        .await
        .unwrap_or_else(|error| panic!("build: {error}"));
    remove_images(
        &engine,
        &[&tag, &first.id, &second.id, &fresh.id, &rival_image.id],
    )
    .await;

    assert!(
        first
            .steps
            .iter()
            .any(|step| !step.is_from() && !step.cached),
        "the first build runs its unique step: {:?}",
        first.steps
    );
    assert_eq!(second.steps.len(), 5, "{:?}", second.steps);
    for step in second.steps.iter().filter(|step| !step.is_from()) {
        assert!(step.cached, "not from the cache: {}", step.text);
    }
    assert_eq!(first.id, second.id);
    assert!(
        fresh.steps.iter().all(|step| !step.cached),
        "--no-cache: {:?}",
        fresh.steps
    );
}

#[tokio::test]
async fn labels_build_args_and_extra_tags_are_applied() {
    let engine = engine().await;
    let root = tempfile::tempdir().expect("temp dir");
    let dockerfile = format!(
        "FROM {BUSYBOX}\nARG greeting=unset\nARG spark_uid=0\nRUN echo \"$greeting $spark_uid\" > /greeting\nCMD [\"cat\", \"/greeting\"]\n"
    );
    let tags = vec![unique_tag("labelled"), unique_tag("labelled")];
    let request = BuildRequest {
        name: "labelled".to_string(),
        tags: tags.clone(),
        build_args: BTreeMap::from([
            ("greeting".to_string(), "hello".to_string()),
            ("spark_uid".to_string(), "185".to_string()),
        ]),
        labels: BTreeMap::from([
            (
                "org.opencontainers.image.title".to_string(),
                "labelled".to_string(),
            ),
            ("imgforge.spark.version".to_string(), "3.5.1".to_string()),
        ]),
        ..Default::default()
    };
    // The Dockerfile is generated: it exists only in the stream, not on disk.
    let context = BuildContext::plan(
        root.path(),
        "Dockerfile.generated",
        vec![("Dockerfile.generated".to_string(), dockerfile.into_bytes())],
    )
    .expect("plan");
    let built = docker::build_image(&engine, context, &request, &QuietReporter)
        .await
        .unwrap_or_else(|error| panic!("build: {error}"));
    let inspected = docker::inspect(&engine, &built.id).await.expect("inspect");
    let (code, output) = run(&engine, &tags[1], &["cat", "/greeting"]).await;
    remove_images(&engine, &[&tags[0], &tags[1]]).await;

    let labels = inspected
        .config
        .and_then(|config| config.labels)
        .unwrap_or_default();
    assert_eq!(
        labels.get("imgforge.spark.version").map(String::as_str),
        Some("3.5.1")
    );
    assert_eq!(
        labels
            .get("org.opencontainers.image.title")
            .map(String::as_str),
        Some("labelled")
    );
    for tag in &tags {
        assert!(built.tags.contains(tag), "{tag} in {:?}", built.tags);
    }
    assert_eq!((code, output.as_str()), (0, "hello 185\n"));
}

#[tokio::test]
async fn invalid_tags_are_rejected_before_anything_is_built() {
    let engine = engine().await;
    let root = tempfile::tempdir().expect("temp dir");
    write_file(
        root.path(),
        "Dockerfile",
        &format!("FROM {BUSYBOX}\n"),
        0o644,
    );
    let context = BuildContext::plan(root.path(), "Dockerfile", Vec::new()).expect("plan");
    let request = BuildRequest {
        name: "bad".to_string(),
        tags: vec!["Registry.Example/UPPER:tag".to_string()],
        ..Default::default()
    };
    let error = docker::build_image(&engine, context, &request, &QuietReporter)
        .await
        .expect_err("invalid tag");
    assert!(
        matches!(&error, DockerError::InvalidTag { tag } if tag == "Registry.Example/UPPER:tag"),
        "{error}"
    );
}
