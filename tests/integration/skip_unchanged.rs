//! A plain `imgforge build` (no `--if-changed`) leaves alone an image the engine already
//! holds with the same inputs (issue 13): nothing prepared, no context sent, no engine event,
//! the report says `unchanged`; tags removed or moved are tagged onto it again; a changed
//! setting rebuilds exactly the images it reaches; `--force` and `--no-cache` build anyway;
//! spark-hs follows the spark image spark's tags name; `--push` still pushes what was skipped.
//!
//! Real engine, real images (built on the local JRE base), named under
//! `…/p<pid>-<n>-skip-unchanged`.

use std::collections::BTreeSet;
use std::process::Output;

use serde_json::Value;

use crate::scheduled::{events_naming, now};
use crate::support::containers::{references_under, tag, untag};
use crate::support::docker::{block_on, engine, engine_id, write_file};
use crate::support::images::{BuildReport, ImageEnv};
use crate::support::registry::Registry;
use crate::support::*;

const IMAGES: [&str; 3] = ["spark", "spark-hs", "hive-metastore"];

/// An image environment whose images are named under `<namespace>` ending in
/// `-skip-unchanged` (`namespace` given: under that registry instead of the test one).
fn skip_env(registry_host: Option<&str>) -> ImageEnv {
    ImageEnv::named_under(registry_host, "skip-unchanged")
}

/// `imgforge --no-progress --json build <args>`, which must succeed: its JSON document and
/// the output.
fn build(image_env: &ImageEnv, args: &[&str]) -> (Value, Output) {
    let mut all = vec!["--json", "build"];
    all.extend_from_slice(args);
    let output = image_env.run(&all);
    assert_success(&output);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}):\n{}\n{}",
            stdout_text(&output),
            stderr_text(&output)
        )
    });
    (report, output)
}

/// The `image` names of `report[key]`, in order.
fn names(report: &Value, key: &str) -> Vec<String> {
    report[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} array in {report:#}"))
        .iter()
        .map(|entry| entry["image"].as_str().expect("image").to_string())
        .collect()
}

/// The entry of `image` in `report[key]`.
fn entry<'a>(report: &'a Value, key: &str, image: &str) -> &'a Value {
    report[key]
        .as_array()
        .and_then(|entries| entries.iter().find(|entry| entry["image"] == image))
        .unwrap_or_else(|| panic!("no {image} in {key} of {report:#}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {value}"))
        .iter()
        .map(|item| item.as_str().expect("text").to_string())
        .collect()
}

/// The engine's layers of image `reference`.
fn layers(reference: &str) -> Vec<String> {
    block_on(async {
        imgforge::docker::inspect(&engine().await, reference)
            .await
            .unwrap_or_else(|error| panic!("inspect {reference}: {error}"))
            .root_fs
            .and_then(|root_fs| root_fs.layers)
            .unwrap_or_default()
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
fn an_unchanged_image_is_skipped_with_nothing_sent_and_its_missing_tags_tagged_again() {
    let image_env = skip_env(None);
    let first = BuildReport::parse(&build(&image_env, &[]).1);
    assert_eq!(first.names(), IMAGES);
    // Without the trees under ./build, a run that prepared a context would write them again.
    let trees = image_env.env.work_dir().join("build");
    std::fs::remove_dir_all(&trees).expect("remove ./build");

    std::thread::sleep(std::time::Duration::from_millis(1100));
    let since = now();
    let (report, output) = build(&image_env, &[]);
    let until = now() + 1;
    assert_eq!(report["changed"], false, "{report:#}");
    assert!(names(&report, "images").is_empty(), "{report:#}");
    assert_eq!(names(&report, "unchanged"), IMAGES, "{report:#}");
    for image in IMAGES {
        let built = first.image(image);
        let unchanged = entry(&report, "unchanged", image);
        assert_eq!(unchanged["id"], built.id.as_str(), "{unchanged:#}");
        assert_eq!(unchanged["fingerprint"], built.fingerprint.as_str());
        assert_eq!(unchanged["reference"], built.tags[0].as_str());
        assert_eq!(strings(&unchanged["tags"]), built.tags);
        assert!(strings(&unchanged["retagged"]).is_empty(), "{unchanged:#}");
        assert_eq!(
            engine_id(&built.tags[0]).as_deref(),
            Some(built.id.as_str())
        );
    }
    let stderr = stderr_text(&output);
    assert!(!stderr.contains("Step "), "a build ran:\n{stderr}");
    assert!(
        !trees.exists(),
        "a context was prepared: {}",
        trees.display()
    );
    let events = events_naming(&image_env.namespace, since, until);
    assert!(events.is_empty(), "the engine built or tagged: {events:#?}");

    // The readable report says so, one line per image.
    let output = image_env.run(&["build"]);
    assert_success(&output);
    let stdout = stdout_text(&output);
    for image in IMAGES {
        assert!(
            stdout.contains(&format!(
                "{image:<15} unchanged: {}",
                first.image(image).tags[0]
            )),
            "{stdout}"
        );
    }

    // A removed tag, a removed first tag and a tag moved to another image: each is tagged
    // onto the unchanged image again, and still nothing is built.
    let spark = first.image("spark");
    let spark_hs = first.image("spark-hs");
    let metastore = first.image("hive-metastore");
    let spark_latest = format!("{}/spark:latest", image_env.namespace);
    let metastore_latest = format!("{}/hive-metastore:latest", image_env.namespace);
    block_on(async {
        let engine = engine().await;
        untag(&engine, &spark_latest).await;
        untag(&engine, &spark_hs.tags[0]).await;
        tag(&engine, &spark.id, &metastore_latest).await;
    });
    assert_eq!(engine_id(&spark_latest), None);
    let (report, output) = build(&image_env, &[]);
    assert!(names(&report, "images").is_empty(), "{report:#}");
    assert_eq!(names(&report, "unchanged"), IMAGES, "{report:#}");
    let retagged = |image: &str| strings(&entry(&report, "unchanged", image)["retagged"]);
    assert_eq!(retagged("spark"), [spark_latest.as_str()]);
    assert_eq!(retagged("spark-hs"), [spark_hs.tags[0].as_str()]);
    assert_eq!(retagged("hive-metastore"), [metastore_latest.as_str()]);
    // spark-hs's first tag was gone: its second one was compared.
    assert_eq!(
        entry(&report, "unchanged", "spark-hs")["reference"],
        spark_hs.tags[1].as_str()
    );
    for built in [spark, spark_hs, metastore] {
        for reference in &built.tags {
            assert_eq!(
                engine_id(reference).as_deref(),
                Some(built.id.as_str()),
                "{reference}"
            );
        }
    }
    assert!(!stderr_text(&output).contains("Step "));
    cleanup(&image_env);
}

#[test]
fn a_changed_setting_rebuilds_exactly_the_images_it_reaches_and_force_and_no_cache_build_anyway() {
    let mut image_env = skip_env(None);
    let first = BuildReport::parse(&build(&image_env, &[]).1);
    assert_eq!(first.names(), IMAGES);

    // Only the history server reads the event log directory.
    image_env.configure(|config| {
        config.set_str(
            "images.spark-hs",
            "event_log_dir",
            "file:///var/skip-unchanged-events",
        );
    });
    let (report, _) = build(&image_env, &[]);
    assert_eq!(names(&report, "images"), ["spark-hs"], "{report:#}");
    assert_eq!(
        names(&report, "unchanged"),
        ["spark", "hive-metastore"],
        "{report:#}"
    );
    assert_eq!(report["changed"], true);
    let spark_hs = entry(&report, "images", "spark-hs");
    assert_ne!(
        spark_hs["fingerprint"],
        first.image("spark-hs").fingerprint.as_str()
    );

    // spark-defaults.conf of both Spark images; the metastore does not read it.
    image_env.configure(|config| {
        config.set_str("s3a", "endpoint", "http://minio.skip-unchanged.test:9000");
    });
    let (report, _) = build(&image_env, &[]);
    assert_eq!(
        names(&report, "images"),
        ["spark", "spark-hs"],
        "{report:#}"
    );
    assert_eq!(
        names(&report, "unchanged"),
        ["hive-metastore"],
        "{report:#}"
    );
    let rebuilt = BuildReport::parse(&build(&image_env, &["--force"]).1);

    // --force: every image built again (from the layer cache: the same images).
    assert_eq!(rebuilt.names(), IMAGES);
    for image in IMAGES {
        let forced = rebuilt.image(image);
        assert_eq!(
            forced.cached_steps, forced.cacheable_steps,
            "{:#}",
            forced.json
        );
        assert!(forced.context_bytes > 0, "{:#}", forced.json);
        assert_eq!(
            engine_id(&forced.tags[0]).as_deref(),
            Some(forced.id.as_str())
        );
    }
    assert_eq!(
        rebuilt.image("spark").id,
        entry(&report, "images", "spark")["id"]
    );
    assert_eq!(
        rebuilt.image("hive-metastore").id,
        first.image("hive-metastore").id
    );

    // --no-cache implies --force: built, every step afresh, a new image.
    let fresh = BuildReport::parse(&build(&image_env, &["spark-hs", "--no-cache"]).1);
    assert_eq!(fresh.names(), ["spark-hs"]);
    let spark_hs = fresh.image("spark-hs");
    assert_eq!(spark_hs.cached_steps, 0, "{:#}", spark_hs.json);
    assert_ne!(spark_hs.id, rebuilt.image("spark-hs").id);
    // …which the next plain build leaves alone.
    let (report, _) = build(&image_env, &["spark-hs"]);
    assert!(names(&report, "images").is_empty(), "{report:#}");
    assert_eq!(
        entry(&report, "unchanged", "spark-hs")["id"],
        spark_hs.id.as_str()
    );

    // With --if-changed, --no-cache only says how changed images are built; --force still
    // builds. (--offline: the local JRE base has no registry to be checked against.)
    let (report, _) = build(
        &image_env,
        &["--offline", "--if-changed", "--no-cache", "spark-hs"],
    );
    assert!(names(&report, "images").is_empty(), "{report:#}");
    assert_eq!(names(&report, "unchanged"), ["spark-hs"], "{report:#}");
    let (report, _) = build(
        &image_env,
        &["--offline", "--if-changed", "--force", "spark-hs"],
    );
    assert_eq!(names(&report, "images"), ["spark-hs"], "{report:#}");
    cleanup(&image_env);
}

#[test]
fn spark_hs_is_unchanged_only_on_the_spark_image_sparks_tags_name() {
    let image_env = skip_env(None);
    let first = BuildReport::parse(&build(&image_env, &["spark", "spark-hs"]).1);
    let spark_hs_first = first.image("spark-hs");

    // Without any spark tag, spark is built in the run (from the layer cache: the same layers
    // under a new `created` label, so a new image), and spark-hs, on those very layers, stays
    // as it is.
    block_on(async {
        let engine = engine().await;
        for reference in &first.image("spark").tags {
            untag(&engine, reference).await;
        }
    });
    let (report, output) = build(&image_env, &["spark", "spark-hs"]);
    assert_eq!(names(&report, "images"), ["spark"], "{report:#}");
    assert_eq!(names(&report, "unchanged"), ["spark-hs"], "{report:#}");
    assert_eq!(
        entry(&report, "unchanged", "spark-hs")["id"],
        spark_hs_first.id.as_str()
    );
    let second = BuildReport::parse(&output);
    let spark = second.image("spark");
    assert_ne!(spark.id, first.image("spark").id);

    // A spark image with another layer (as a --no-cache rebuild gives) but the same inputs:
    // it inherits the fingerprint label. Every spark tag now names it.
    let dir = tempfile::tempdir().expect("temp dir");
    write_file(
        dir.path(),
        "Dockerfile",
        &format!(
            "FROM {}\nUSER root\nRUN echo '{}' > /skip-unchanged-rebuilt\n",
            spark.id,
            crate::support::docker::unique_tag("skip-unchanged")
        ),
        0o644,
    );
    let other_spark = block_on(async {
        let engine = engine().await;
        let context = imgforge::context::BuildContext::plan(dir.path(), "Dockerfile", Vec::new())
            .expect("context");
        let request = imgforge::docker::BuildRequest {
            name: "another spark build".into(),
            tags: spark.tags.clone(),
            ..Default::default()
        };
        imgforge::docker::build_image(
            &engine,
            context,
            &request,
            &imgforge::progress::QuietReporter,
        )
        .await
        .expect("another spark build")
        .id
    });

    let (report, _) = build(&image_env, &["spark", "spark-hs"]);
    assert_eq!(names(&report, "unchanged"), ["spark"], "{report:#}");
    assert_eq!(
        entry(&report, "unchanged", "spark")["id"],
        other_spark.as_str()
    );
    assert_eq!(names(&report, "images"), ["spark-hs"], "{report:#}");
    let spark_hs = entry(&report, "images", "spark-hs");
    let spark_hs_id = spark_hs["id"].as_str().expect("id").to_string();
    assert_eq!(
        spark_hs["fingerprint"],
        first.image("spark-hs").fingerprint.as_str()
    );
    assert!(
        layers(&spark_hs_id).starts_with(&layers(&other_spark)),
        "spark-hs is not built on the spark image its tags name"
    );

    // Now it is: both unchanged, spark-hs alone too.
    let (report, _) = build(&image_env, &[]);
    assert_eq!(names(&report, "images"), ["hive-metastore"], "{report:#}");
    assert_eq!(
        names(&report, "unchanged"),
        ["spark", "spark-hs"],
        "{report:#}"
    );
    let (report, _) = build(&image_env, &["spark-hs"]);
    assert_eq!(
        entry(&report, "unchanged", "spark-hs")["id"],
        spark_hs_id.as_str()
    );

    cleanup(&image_env);
}

#[test]
fn build_push_still_pushes_the_images_it_found_unchanged() {
    let registry = Registry::plain();
    let image_env = skip_env(Some(&registry.host));
    let (report, _) = build(&image_env, &["spark"]);
    assert_eq!(names(&report, "images"), ["spark"]);
    let uploads = |log: &str| log.matches("\"PUT ").count();
    let log_before = registry.log_text().len();

    let (report, _) = build(&image_env, &["--push", "spark"]);
    assert!(names(&report, "images").is_empty(), "{report:#}");
    assert_eq!(names(&report, "unchanged"), ["spark"], "{report:#}");
    let pushed: BTreeSet<String> = report["pushed"]
        .as_array()
        .unwrap_or_else(|| panic!("no pushed images in {report:#}"))
        .iter()
        .flat_map(|image| image["tags"].as_array().expect("tags").clone())
        .map(|tag| tag["reference"].as_str().expect("reference").to_string())
        .collect();
    let expected: BTreeSet<String> = strings(&entry(&report, "unchanged", "spark")["tags"])
        .into_iter()
        .collect();
    assert_eq!(pushed, expected, "{report:#}");
    assert!(
        uploads(&registry.log_text()[log_before..]) > 0,
        "nothing reached the registry"
    );
    cleanup(&image_env);
}
