//! Scheduled rebuilds: `imgforge build --push --if-changed` against a real engine and a
//! real registry. A second run with nothing changed downloads, builds and pushes nothing
//! (mirror request log, engine events, registry log); each kind of change rebuilds exactly
//! the images it goes into.

use std::collections::{BTreeSet, HashMap};
use std::process::Output;

use bollard::query_parameters::EventsOptionsBuilder;
use futures_util::StreamExt;

use crate::support::images::{ImageEnv, JRE_BASE, generate_cas, unique_namespace};
use crate::support::registry::Registry;
use crate::support::*;

/// `build --push --if-changed --json`, returning the exit code and the report.
fn scheduled_run(image_env: &ImageEnv) -> (i32, serde_json::Value, Output) {
    scheduled_run_with(image_env, &[])
}

/// `build --push --if-changed --json` with `extra` arguments.
fn scheduled_run_with(image_env: &ImageEnv, extra: &[&str]) -> (i32, serde_json::Value, Output) {
    let mut args = vec!["--json", "build", "--push", "--if-changed"];
    args.extend_from_slice(extra);
    let output = image_env.run(&args);
    let code = output.status.code().unwrap_or(-1);
    assert!(
        code == 0 || code == 8,
        "scheduled run failed ({code}):\n{}\n{}",
        stdout_text(&output),
        stderr_text(&output)
    );
    let report = serde_json::from_str(&stdout_text(&output)).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}):\n{}\n{}",
            stdout_text(&output),
            stderr_text(&output)
        )
    });
    (code, report, output)
}

fn names(report: &serde_json::Value, key: &str) -> BTreeSet<String> {
    report[key]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["image"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|item| item.to_string()).collect()
}

/// Engine events that name an image under `prefix`, between two Unix times.
pub(crate) fn events_naming(prefix: &str, since: i64, until: i64) -> Vec<String> {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = crate::support::docker::engine().await;
        let filters: HashMap<&str, Vec<&str>> = HashMap::new();
        let options = EventsOptionsBuilder::default()
            .since(&since.to_string())
            .until(&until.to_string())
            .filters(&filters)
            .build();
        let mut events = engine.client().events(Some(options));
        let mut found = Vec::new();
        while let Some(event) = events.next().await {
            let event = event.expect("engine event");
            let attributes = event
                .actor
                .and_then(|actor| actor.attributes)
                .unwrap_or_default();
            if attributes.values().any(|value| value.contains(prefix)) {
                found.push(format!("{:?} {:?}", event.action, attributes));
            }
        }
        found
    })
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A base image of its own for the metastore, so that a new build of it ("security fixes")
/// can be made without touching the Spark image's base.
fn make_base(tag: &str, generation: &str) {
    crate::support::images::image_on_jre(tag, &format!("generation {generation}"));
}

#[test]
fn scheduled_rebuilds_do_nothing_when_nothing_changed_and_exactly_what_a_change_needs() {
    let registry = Registry::plain();
    let base = format!(
        "imgforge-test/metastore-jre:{}",
        unique_namespace().replace(['/', '.'], "-")
    );
    make_base(&base, "1");
    let mut image_env = ImageEnv::new(&generate_cas(&["first.crt"]));
    let prefix = format!("{}/sched", registry.host);
    // The bases exist only on this engine: with pull = "never" the engine's copies are the
    // truth, and a new local build of one is what changes (registry-hosted bases that move
    // upstream are the next test's).
    image_env.configure(|config| {
        config
            .set_str("images", "registry", &prefix)
            .set_str("images", "pull", "never")
            .set_str("images.hive-metastore", "base", &base);
    });

    // First run: nothing in the registry, so everything is built and pushed.
    let (code, report, _) = scheduled_run(&image_env);
    assert_eq!(code, 0);
    assert_eq!(report["changed"], true, "{report}");
    assert_eq!(
        names(&report, "images"),
        set(&["spark", "spark-hs", "hive-metastore"])
    );

    // Second run with nothing changed: no download, no build, no push; a success (exit 0).
    image_env.env.server.clear_log();
    let registry_log = registry.log_text().len();
    // Engine events carry whole seconds: start the window after the first run's last second.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let since = now();
    let (code, report, output) = scheduled_run(&image_env);
    let until = now() + 1;
    assert_eq!(
        code,
        0,
        "nothing to do is a success: {}",
        stderr_text(&output)
    );
    assert_eq!(report["changed"], false, "{report}");
    assert!(names(&report, "images").is_empty(), "{report}");
    assert_eq!(
        names(&report, "unchanged"),
        set(&["spark", "spark-hs", "hive-metastore"])
    );
    assert!(
        image_env.env.server.requests().is_empty(),
        "downloads: {:?}",
        image_env.env.server.requests()
    );
    let events = events_naming(&prefix, since, until);
    assert!(
        events.is_empty(),
        "the engine built, tagged or pushed: {events:#?}"
    );
    let new_log = &registry.log_text()[registry_log..];
    assert!(
        !new_log.contains("\"PUT ") && !new_log.contains("\"POST ") && !new_log.contains("PATCH"),
        "the registry received uploads:\n{new_log}"
    );
    // Scripts that branch on a no-op ask for exit 8, like `git diff --exit-code`.
    let (code, report, output) = scheduled_run_with(&image_env, &["--exit-code"]);
    assert_eq!(
        code,
        8,
        "--exit-code: nothing to do is exit 8: {}",
        stderr_text(&output)
    );
    assert_eq!(report["changed"], false, "{report}");
    assert!(names(&report, "images").is_empty(), "{report}");

    // A new build of the metastore's base image: only the metastore is rebuilt.
    make_base(&base, "2");
    let (code, report, _) = scheduled_run(&image_env);
    assert_eq!(code, 0);
    assert_eq!(names(&report, "images"), set(&["hive-metastore"]));
    assert_eq!(names(&report, "unchanged"), set(&["spark", "spark-hs"]));

    // The history server's settings go into spark-hs alone.
    image_env.configure(|config| {
        config.set_str("images.spark-hs", "event_log_dir", "s3a://other/eventlogs");
    });
    let (_, report, _) = scheduled_run(&image_env);
    assert_eq!(names(&report, "images"), set(&["spark-hs"]));

    // A changed CA certificate goes into every image (spark-hs through spark).
    let certs = image_env.env.work_dir().join("certs");
    for (name, bytes) in generate_cas(&["first.crt"]) {
        std::fs::write(certs.join(name), bytes).expect("replace the certificate");
    }
    let (_, report, _) = scheduled_run(&image_env);
    assert_eq!(
        names(&report, "images"),
        set(&["spark", "spark-hs", "hive-metastore"])
    );

    // A new Spark patch release (same Hadoop): spark and spark-hs are rebuilt under the new
    // version's tags; the metastore holds no Spark, keeps its Hive-version name and inputs,
    // and is left alone.
    image_env.env.apache.tree.spark(
        "3.1.2",
        "hadoop3.2",
        &crate::support::fixtures::spark_dist("3.1.2", "hadoop3.2", "3.2.0"),
        crate::support::fixtures::ChecksumStyle::Coreutils,
    );
    image_env.configure(|config| {
        config.set_str("spark", "version", "3.1.2");
    });
    let (_, report, _) = scheduled_run(&image_env);
    assert_eq!(names(&report, "images"), set(&["spark", "spark-hs"]));
    assert_eq!(names(&report, "unchanged"), set(&["hive-metastore"]));
    assert!(
        report["images"][0]["tags"][0]
            .as_str()
            .unwrap_or_default()
            .ends_with(":3.1.2"),
        "{report}"
    );
    untag_all(&[base.as_str()], &prefix);
}

#[test]
fn a_registry_image_without_the_label_is_treated_as_changed_and_says_so() {
    let registry = Registry::plain();
    let mut image_env = ImageEnv::new(&[]);
    let prefix = format!("{}/nolabel", registry.host);
    image_env.configure(|config| {
        config
            .set_str("images", "registry", &prefix)
            .set_str("images", "pull", "never");
    });
    // Put an unrelated image (no imgforge labels) where the spark image would be.
    let reference = format!("{prefix}/spark:3.1.1");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = crate::support::docker::engine().await;
        for tag in ["3.1.1", "3.1.1-hadoop3.2.0", "latest"] {
            crate::support::containers::tag(&engine, JRE_BASE, &format!("{prefix}/spark:{tag}"))
                .await;
        }
    });
    let output = image_env.run(&["push", "spark"]);
    assert_success(&output);
    let output = image_env.run(&["build", "--push", "--if-changed", "spark"]);
    assert_success(&output);
    assert_stderr_contains(
        &output,
        &format!("{reference} has no imgforge.inputs.sha256 label"),
    );
    untag_all(&[], &prefix);
}

#[test]
fn a_base_image_that_moved_upstream_is_pulled_and_exactly_the_images_on_it_are_rebuilt() {
    use crate::pull::{engine_id, moved_image, retag, seed, untag};
    let bases = Registry::plain();
    let registry = Registry::plain();
    let unique = unique_namespace().replace(['/', '.'], "-");
    let spark_base = format!("{}/library/spark-jre:17-{unique}", bases.host);
    let hive_base = format!("{}/library/hive-jre:17-{unique}", bases.host);
    seed(JRE_BASE, &spark_base, None);
    seed(JRE_BASE, &hive_base, None);
    let mut image_env = ImageEnv::new(&[]);
    let prefix = format!("{}/upstream", registry.host);
    image_env.configure(|config| {
        config
            .set_str("images", "registry", &prefix)
            .set_str("images.spark", "base", &spark_base)
            .set_str("images.hive-metastore", "base", &hive_base);
    });

    // First run: the engine has neither base; both are pulled, everything is built and pushed.
    let (_, report, output) = scheduled_run(&image_env);
    assert_eq!(
        names(&report, "images"),
        set(&["spark", "spark-hs", "hive-metastore"])
    );
    assert_stderr_contains(&output, &format!("pulling {hive_base}"));

    // Nothing moved: the bases' registry is asked for the tags' digests (HEAD) and nothing is
    // pulled, built or pushed.
    let bases_log = bases.log_text().len();
    let registry_log = registry.log_text().len();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let since = now();
    let (_, report, output) = scheduled_run(&image_env);
    let until = now() + 1;
    assert!(names(&report, "images").is_empty(), "{report}");
    assert!(
        !stderr_text(&output).contains("pulling"),
        "{}",
        stderr_text(&output)
    );
    let new_bases_log = &bases.log_text()[bases_log..];
    assert!(
        new_bases_log.contains("\"HEAD /v2/library/hive-jre/manifests/")
            && new_bases_log.contains("\"HEAD /v2/library/spark-jre/manifests/"),
        "each base was checked:\n{new_bases_log}"
    );
    assert!(
        !new_bases_log.contains("\"GET /v2/library/"),
        "nothing was pulled:\n{new_bases_log}"
    );
    assert!(events_naming(&prefix, since, until).is_empty());
    assert!(!registry.log_text()[registry_log..].contains("\"PUT "));

    // A new build of the metastore's base is pushed under the same tag (a security fix):
    // it is pulled, and exactly the metastore is rebuilt and pushed.
    let old_id = engine_id(&hive_base).expect("the engine has the base");
    let moved = moved_image(&hive_base);
    seed(&moved, &hive_base, None);
    retag(&old_id, &hive_base);
    let (_, report, output) = scheduled_run(&image_env);
    assert_eq!(names(&report, "images"), set(&["hive-metastore"]));
    assert_eq!(names(&report, "unchanged"), set(&["spark", "spark-hs"]));
    assert_stderr_contains(&output, &format!("base image {hive_base} moved upstream"));
    assert_eq!(engine_id(&hive_base), engine_id(&moved));

    // The bases' registry is unreachable: the run says which base it could not check and
    // stops (exit 7) — unless --offline says to trust the engine's copies.
    drop(bases);
    let output = image_env.run(&["build", "--push", "--if-changed"]);
    assert_exit_code(&output, 7);
    assert_stderr_contains(&output, &format!("cannot check base image {spark_base}"));
    let output = image_env.run(&["--offline", "build", "--push", "--if-changed"]);
    assert!(
        matches!(output.status.code(), Some(0 | 8)),
        "{}",
        stderr_text(&output)
    );
    assert_stderr_contains(&output, &format!("base image {spark_base} was not checked"));
    for base in [&spark_base, &hive_base, &moved] {
        untag(base);
    }
    untag_all(&[], &prefix);
}

/// Remove the tags a test made (the layers stay as build cache for the next run).
fn untag_all(references: &[&str], prefix: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = crate::support::docker::engine().await;
        let mut all: Vec<String> = references
            .iter()
            .map(|reference| reference.to_string())
            .collect();
        all.extend(crate::support::containers::references_under(&engine, prefix).await);
        for reference in all {
            crate::support::containers::untag(&engine, &reference).await;
        }
    });
}
