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
