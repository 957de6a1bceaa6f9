//! Cold builds in parallel (issue 13): spark (then spark-hs on it) and hive-metastore are
//! prepared and built at once, each line to its end when the other fails, and reported in
//! image order whichever finished first; pushes of images that share no build run at once and
//! the digests file keeps its order.
//!
//! Concurrency is read from the order of the plain progress lines, never from durations: the
//! history server's definition gets one extra step that keeps the spark line busy (unique to
//! the run, so the layer cache cannot serve it), and the metastore's build must start — or
//! fail — before that line is done. Built sequentially, the metastore would only start after
//! it.
//!
//! Real engine, real images (on the local JRE base), named under
//! `…/p<pid>-<n>-parallel-builds`.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support::containers::{references_under, untag};
use crate::support::docker::{block_on, engine, engine_id};
use crate::support::images::{BuildReport, ImageEnv};
use crate::support::registry::Registry;
use crate::support::*;

const IMAGES: [&str; 3] = ["spark", "spark-hs", "hive-metastore"];

/// How long the extra spark-hs step keeps the spark line busy.
const SPARK_HS_EXTRA_STEP: &str = "sleep 20";

/// An image environment named under `<namespace>-parallel-builds` (under `registry_host`
/// when given).
fn parallel_env(registry_host: Option<&str>) -> ImageEnv {
    ImageEnv::named_under(registry_host, "parallel-builds")
}

/// Write imgforge's own image definitions to `dir` (`[images] dockerfiles`), the spark-hs
/// one with an extra step that keeps the spark line busy, and `metastore_dockerfile` instead
/// of the metastore's own when given.
fn definitions(image_env: &ImageEnv, dir: &Path, metastore_dockerfile: Option<&str>) {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("dockerfiles");
    let copy = |from: &str, to: &str| {
        let target = dir.join(to);
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("create definitions");
        std::fs::copy(repository.join(from), &target)
            .unwrap_or_else(|error| panic!("copy {from}: {error}"));
    };
    copy("spark-hs/.dockerignore", "spark-hs/.dockerignore");
    copy(
        "hive-metastore/.dockerignore",
        "hive-metastore/.dockerignore",
    );
    copy("hive-metastore/Dockerfile", "hive-metastore/Dockerfile");
    copy("hive-metastore/launch.sh", "hive-metastore/launch.sh");
    copy("common/import-certs.sh", "hive-metastore/import-certs.sh");
    let spark_hs = std::fs::read_to_string(repository.join("spark-hs/Dockerfile"))
        .expect("read the spark-hs Dockerfile");
    std::fs::write(
        dir.join("spark-hs/Dockerfile"),
        format!(
            "{spark_hs}\nRUN echo 'keeping the spark line busy ({})' && {SPARK_HS_EXTRA_STEP}\n",
            image_env.namespace
        ),
    )
    .expect("write the spark-hs Dockerfile");
    if let Some(dockerfile) = metastore_dockerfile {
        std::fs::write(dir.join("hive-metastore/Dockerfile"), dockerfile)
            .expect("write the metastore Dockerfile");
        std::fs::write(dir.join("hive-metastore/.dockerignore"), "*\n!Dockerfile\n")
            .expect("write the metastore .dockerignore");
    }
}

/// Configure `image_env` with [`definitions`] under its root.
fn use_definitions(image_env: &mut ImageEnv, metastore_dockerfile: Option<&str>) {
    let dir = image_env.env.root().join("definitions");
    definitions(image_env, &dir, metastore_dockerfile);
    let dir = dir.display().to_string();
    image_env.configure(|config| {
        config.set_str("images", "dockerfiles", &dir);
    });
}

/// The index of the first stderr line of `output` starting with `prefix`.
fn line_starting(output: &Output, prefix: &str) -> usize {
    stderr_text(output)
        .lines()
        .position(|line| line.starts_with(prefix))
        .unwrap_or_else(|| {
            panic!(
                "no stderr line starts with {prefix:?}\n{}",
                stderr_text(output)
            )
        })
}

/// Remove every tag under `image_env`'s namespace (the layers stay as build cache).
fn cleanup(image_env: &ImageEnv) {
    block_on(async {
        let engine = engine().await;
        for reference in references_under(&engine, &format!("{}/", image_env.namespace)).await {
            untag(&engine, &reference).await;
        }
    });
}

#[test]
fn the_metastore_is_built_while_the_spark_line_builds_and_the_report_keeps_image_order() {
    let mut image_env = parallel_env(None);
    use_definitions(&mut image_env, None);
    let output = image_env.run(&["--json", "build"]);
    assert_success(&output);
    let report = BuildReport::parse(&output);
    // Image order, whichever build finished first.
    assert_eq!(report.names(), IMAGES);
    for image in IMAGES {
        let built = report.image(image);
        assert_eq!(
            engine_id(&built.tags[0]).as_deref(),
            Some(built.id.as_str()),
            "{image}"
        );
    }
    // The metastore's build started before the spark line (spark, then spark-hs with its
    // extra step) was done: built one after the other, it would start only after.
    let metastore_starts = line_starting(&output, "building hive-metastore: ");
    let spark_line_done = line_starting(&output, "done spark-hs ");
    assert!(
        metastore_starts < spark_line_done,
        "the metastore build started after the spark line was done:\n{}",
        stderr_text(&output)
    );
    // Both lines draw their own lines, each named by its image.
    line_starting(&output, "building spark: ");
    line_starting(&output, "done spark ");
    line_starting(&output, "done hive-metastore ");
    // The readable report lists the images in the same order.
    let output = image_env.run(&["build", "--force"]);
    assert_success(&output);
    let stdout = stdout_text(&output);
    let positions: Vec<usize> = IMAGES
        .iter()
        .map(|image| {
            stdout
                .find(&format!("{image:<15} sha256:"))
                .unwrap_or_else(|| panic!("no {image} line:\n{stdout}"))
        })
        .collect();
    assert!(positions.is_sorted(), "{stdout}");
    cleanup(&image_env);
}

#[test]
fn a_failing_metastore_build_fails_the_run_naming_it_while_the_spark_line_finishes_and_is_reported()
{
    let mut image_env = parallel_env(None);
    let failing = format!(
        "ARG base\nFROM ${{base}}\n\
         RUN echo 'metastore prerequisite missing ({})' >&2 && exit 4\n",
        image_env.namespace
    );
    use_definitions(&mut image_env, Some(&failing));
    let output = image_env.run(&["--json", "build"]);
    assert_exit_code(&output, 6);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not one JSON document ({error}):\n{}\n{}",
            stdout_text(&output),
            stderr_text(&output)
        )
    });
    let error = &report["error"];
    assert_eq!(error["kind"], "build.step_failed", "{report:#}");
    assert_eq!(error["exit_code"], 6, "{report:#}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|message| message.contains("building hive-metastore failed at Step")),
        "{report:#}"
    );
    assert!(
        stderr_text(&output).contains("metastore prerequisite missing"),
        "{}",
        stderr_text(&output)
    );
    // The metastore failed while the spark line was still building: that line was let
    // finish, and what it built is whole, tagged and reported, in image order.
    let failed_at = line_starting(&output, "building hive-metastore failed at Step");
    let spark_line_done = line_starting(&output, "done spark-hs ");
    assert!(failed_at < spark_line_done, "{}", stderr_text(&output));
    assert!(
        stderr_text(&output)[..].lines().nth(failed_at).is_some_and(
            |line| line.ends_with("the work still running is let finish, then the run stops")
        ),
        "{}",
        stderr_text(&output)
    );
    let images = report["images"].as_array().expect("images built");
    let names: Vec<&str> = images
        .iter()
        .map(|image| image["image"].as_str().expect("image"))
        .collect();
    assert_eq!(names, ["spark", "spark-hs"], "{report:#}");
    for image in images {
        let id = image["id"].as_str().expect("id");
        let first_tag = image["tags"][0].as_str().expect("a tag");
        assert_eq!(engine_id(first_tag).as_deref(), Some(id), "{image:#}");
    }
    // Nothing of the failed image is tagged.
    let found = block_on(async {
        let engine = engine().await;
        references_under(&engine, &format!("{}/hive-metastore", image_env.namespace)).await
    });
    assert!(found.is_empty(), "a failed build was tagged: {found:?}");
    cleanup(&image_env);
}

/// The `(name, image:tag, digest)` entries of a digests file.
fn digests_entries(path: &Path) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    let json: Value = serde_json::from_str(&text).expect("the digests file is JSON");
    json.as_array()
        .expect("a JSON array")
        .iter()
        .map(|entry| {
            let text = |key: &str| entry[key].as_str().expect(key).to_string();
            (
                text("name"),
                format!("{}:{}", text("image"), text("tag")),
                text("digest"),
            )
        })
        .collect()
}

#[test]
fn concurrent_pushes_write_the_digests_file_in_image_order() {
    let registry = Registry::plain();
    let mut image_env = parallel_env(Some(&registry.host));
    image_env.configure(|config| {
        config
            .set("images", "tags", r#"["{spark_version}", "latest"]"#)
            .set(
                "images.hive-metastore",
                "tags",
                r#"["{hive_version}", "latest"]"#,
            );
    });
    let output = image_env.run(&["build", "--push", "--digests-file", "build-digests.json"]);
    assert_success(&output);
    let from_build = digests_entries(&image_env.env.work_dir().join("build-digests.json"));
    // `imgforge push` of the same images: the same file, entry for entry.
    let output = image_env.run(&["push", "--digests-file", "push-digests.json"]);
    assert_success(&output);
    let from_push = digests_entries(&image_env.env.work_dir().join("push-digests.json"));
    assert_eq!(from_build, from_push);
    // One entry per tag, every image's tags together, the images in their order.
    let expected: Vec<(String, String)> = IMAGES
        .iter()
        .flat_map(|image| {
            let version = crate::support::images::product_version(image);
            [version, "latest"].map(|tag| {
                (
                    image.to_string(),
                    format!("{}/{image}:{tag}", image_env.namespace),
                )
            })
        })
        .collect();
    let listed: Vec<(String, String)> = from_build
        .iter()
        .map(|(name, reference, _)| (name.clone(), reference.clone()))
        .collect();
    assert_eq!(listed, expected);
    for (_, reference, digest) in &from_build {
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{reference}: {digest}"
        );
    }
    // The engine's spark image is the one the digests name (no image was rebuilt).
    assert!(engine_id(&format!("{}/spark:latest", image_env.namespace)).is_some());
    cleanup(&image_env);
}
