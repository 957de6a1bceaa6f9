//! `imgforge outdated` against the loopback mirror's Apache-style directory listing.

use crate::support::*;

#[test]
fn newer_patch_releases_of_the_configured_line_are_reported() {
    let env = TestEnv::new();
    for release in ["spark-3.1.2", "spark-3.1.3", "spark-3.2.0", "spark-3.0.9"] {
        std::fs::create_dir_all(env.mirror_root().join("spark").join(release))
            .expect("release dir");
    }
    let output = env.run(&["--json", "outdated"]);
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_str(&stdout_text(&output)).expect("json");
    assert_eq!(report["spark"]["current"], "3.1.1");
    assert_eq!(
        report["spark"]["newer_patches"],
        serde_json::json!(["3.1.2", "3.1.3"])
    );
    assert_eq!(report["spark"]["newest"], "3.2.0");
    // Reporting never changes anything: the configured version is still what fetch uses.
    let output = env.run(&["fetch", "spark"]);
    assert_success(&output);
    assert!(
        stdout_text(&output).contains("spark-3.1.1-bin-hadoop3.2.tgz"),
        "{}",
        stdout_text(&output)
    );
}

#[test]
fn an_up_to_date_line_says_so() {
    let env = TestEnv::new();
    let output = env.run(&["outdated"]);
    assert_success(&output);
    assert!(
        stdout_text(&output).contains("no newer patch release"),
        "{}",
        stdout_text(&output)
    );
}

#[test]
fn an_unreachable_mirror_is_a_network_error_naming_the_listing() {
    let env = TestEnv::new();
    let output = env.run(&["--apache-mirror", "http://127.0.0.1:9/dist", "outdated"]);
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, "http://127.0.0.1:9/dist/spark/");
}

#[test]
fn newer_tags_of_the_base_images_come_from_their_registry() {
    use futures_util::StreamExt;

    let registry = crate::support::registry::Registry::plain();
    let repository = format!("{}/bases/jre", registry.host);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = crate::support::docker::engine().await;
        for tag in ["1.0-jre", "1.1-jre", "2.0-jre", "1.2-jdk"] {
            crate::support::containers::tag(
                &engine,
                "imgforge-test/busybox:latest",
                &format!("{repository}:{tag}"),
            )
            .await;
            let options = bollard::query_parameters::PushImageOptionsBuilder::default()
                .tag(tag)
                .build();
            let mut stream = engine.client().push_image(&repository, Some(options), None);
            while let Some(item) = stream.next().await {
                let item = item.expect("push progress");
                assert!(item.error_detail.is_none(), "push failed: {item:?}");
            }
        }
    });
    let env = TestEnv::new();
    std::fs::write(
        env.work_dir().join("imgforge.toml"),
        format!(
            "[images.spark]\nbase = \"{repository}:1.0-jre\"\njava_major = 17\n[images.hive-metastore]\nbase = \"{repository}:1.0-jre\"\n"
        ),
    )
    .expect("config");
    let output = env.run(&["--json", "outdated"]);
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_str(&stdout_text(&output)).expect("json");
    let bases = report["base_images"].as_array().expect("base images");
    assert_eq!(bases.len(), 1, "one base shared by both images: {report}");
    assert_eq!(bases[0]["image"], format!("{repository}:1.0-jre"));
    assert_eq!(
        bases[0]["newer_tags"],
        serde_json::json!(["1.1-jre", "2.0-jre"])
    );
    assert!(bases[0]["error"].is_null(), "{report}");
    assert!(bases[0]["moved_digest"].is_null(), "{report}");

    // A new build is pushed under the same tag while the engine keeps the old one: the
    // report names the digest the tag serves now.
    let base = format!("{repository}:1.0-jre");
    runtime.block_on(async {
        let engine = crate::support::docker::engine().await;
        let old = imgforge::docker::inspect(&engine, &base)
            .await
            .expect("the engine has the base")
            .id
            .expect("an id");
        crate::support::containers::tag(&engine, "imgforge-test/jre8-layout:latest", &base).await;
        let options = bollard::query_parameters::PushImageOptionsBuilder::default()
            .tag("1.0-jre")
            .build();
        let mut stream = engine.client().push_image(&repository, Some(options), None);
        while let Some(item) = stream.next().await {
            let item = item.expect("push progress");
            assert!(item.error_detail.is_none(), "push failed: {item:?}");
        }
        crate::support::containers::tag(&engine, &old, &base).await;
    });
    let output = env.run(&["--json", "outdated"]);
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_str(&stdout_text(&output)).expect("json");
    let moved = report["base_images"][0]["moved_digest"]
        .as_str()
        .unwrap_or_else(|| panic!("the moved tag is reported: {report}"));
    assert!(
        registry.log_text().contains("manifests/1.0-jre") && moved.starts_with("sha256:"),
        "{report}"
    );
    let output = env.run(&["outdated"]);
    assert!(
        stdout_text(&output).contains(&format!(
            "base {base}: the registry serves a new build of this tag ({moved})"
        )),
        "{}",
        stdout_text(&output)
    );
    runtime.block_on(async {
        let engine = crate::support::docker::engine().await;
        for reference in crate::support::containers::references_under(&engine, &repository).await {
            crate::support::containers::untag(&engine, &reference).await;
        }
    });
}
