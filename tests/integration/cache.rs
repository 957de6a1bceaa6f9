//! `imgforge cache path|ls|verify|clean` against caches filled by real fetches: listing,
//! re-hashing (and removing what is damaged so the next fetch repairs it), and cleaning —
//! including while another imgforge is downloading into the same cache.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fetch::{wait_for_bytes, wait_with_timeout};
use crate::helpers::{
    ALL_ROLES, all_roles_sorted, artifact, assert_cache_empty, files_under, index_entries, json_of,
    roles,
};
use crate::support::fixtures;
use crate::support::{
    Fault, TestEnv, assert_exit_code, assert_stderr_contains, assert_success, stdout_text,
};

const SPARK_KEY: &str = "apache/spark/spark-3.1.1/spark-3.1.1-bin-hadoop3.2.tgz";

/// The cache keys every default `fetch all` stores, sorted.
fn all_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        SPARK_KEY,
        "apache/hadoop/common/hadoop-3.2.0/hadoop-3.2.0.tar.gz",
        "apache/hive/hive-standalone-metastore-3.0.0/hive-standalone-metastore-3.0.0-bin.tar.gz",
        "maven/org/apache/hadoop/hadoop-aws/3.2.0/hadoop-aws-3.2.0.jar",
        "maven/org/apache/hadoop/hadoop-aws/3.2.0/hadoop-aws-3.2.0.pom",
        "maven/org/postgresql/postgresql/42.2.19/postgresql-42.2.19.jar",
    ]
    .map(String::from)
    .to_vec();
    keys.sort();
    keys
}

/// A test environment whose cache holds everything `fetch all` stores.
fn warm() -> TestEnv {
    let env = TestEnv::new();
    assert_success(&env.run(&["fetch"]));
    env.server.clear_log();
    env
}

/// The stored path of the Spark tarball.
fn spark_path(env: &TestEnv) -> std::path::PathBuf {
    let output = env.run(&["--offline", "--json", "fetch", "spark"]);
    assert_success(&output);
    let report = json_of(&output);
    std::path::PathBuf::from(
        artifact(&report, "spark")["path"]
            .as_str()
            .expect("path is text"),
    )
}

#[test]
fn cache_path_prints_the_directory() {
    let env = TestEnv::new();
    let output = env.run(&["cache", "path"]);
    assert_success(&output);
    assert_eq!(
        stdout_text(&output).trim_end(),
        env.cache_dir().display().to_string()
    );
    let output = env.run(&["--json", "cache", "path"]);
    assert_success(&output);
    let report = json_of(&output);
    assert_eq!(
        report["path"],
        env.cache_dir().display().to_string().as_str()
    );
}

#[test]
fn cache_ls_lists_every_stored_artifact() {
    let env = TestEnv::new();
    let output = env.run(&["cache", "ls"]);
    assert_success(&output);
    assert!(
        stdout_text(&output).contains("0 artifact(s)"),
        "{}",
        stdout_text(&output)
    );

    assert_success(&env.run(&["fetch"]));
    let output = env.run(&["cache", "ls"]);
    assert_success(&output);
    let stdout = stdout_text(&output);
    for key in all_keys() {
        assert!(stdout.contains(&key), "{key} missing from\n{stdout}");
    }
    assert!(stdout.contains("6 artifact(s)"), "{stdout}");

    let output = env.run(&["--json", "cache", "ls"]);
    assert_success(&output);
    let report = json_of(&output);
    let listed = report["artifacts"].as_array().expect("artifacts array");
    let mut keys: Vec<String> = listed
        .iter()
        .map(|entry| entry["key"].as_str().expect("key").to_string())
        .collect();
    keys.sort();
    assert_eq!(keys, all_keys());
    let spark = listed
        .iter()
        .find(|entry| entry["key"] == SPARK_KEY)
        .expect("spark listed");
    assert_eq!(spark["sha512"], env.apache.spark.sha512.as_str());
    assert_eq!(spark["size"], env.apache.spark.size);
    assert_eq!(spark["file_name"], "spark-3.1.1-bin-hadoop3.2.tgz");
    assert_eq!(
        spark["url"],
        env.apache.spark.url(&env.server.url()).as_str()
    );
    assert!(
        std::path::Path::new(spark["path"].as_str().expect("path")).is_file(),
        "{spark}"
    );
}

#[test]
fn cache_verify_passes_on_a_good_cache() {
    let env = warm();
    let output = env.run(&["cache", "verify"]);
    assert_success(&output);
    assert!(
        stdout_text(&output).contains("6 artifact(s) verified, 0 damaged"),
        "{}",
        stdout_text(&output)
    );
    let output = env.run(&["--json", "cache", "verify"]);
    assert_success(&output);
    let report = json_of(&output);
    let checked = report["artifacts"].as_array().expect("artifacts array");
    assert_eq!(checked.len(), 6);
    assert!(checked.iter().all(|entry| entry["ok"] == true), "{report}");
    assert_eq!(env.server.requests(), Vec::new());
}

#[test]
fn cache_verify_finds_and_removes_an_artifact_changed_in_place() {
    let env = warm();
    let path = spark_path(&env);
    let mut bytes = std::fs::read(&path).expect("read the cached tarball");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&path, &bytes).expect("corrupt the cached tarball in place");

    let output = env.run(&["cache", "verify"]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, SPARK_KEY);
    assert_stderr_contains(&output, "damaged");
    assert_stderr_contains(
        &output,
        &format!("expected sha512:{}", env.apache.spark.sha512),
    );
    assert_stderr_contains(&output, &format!("sha512:{}", fixtures::sha512_hex(&bytes)));
    assert!(!path.exists(), "the damaged file is removed");
    assert_eq!(index_entries(&env.cache_dir()).len(), 5);

    // Verify is clean again, and the next fetch downloads only what was removed.
    assert_success(&env.run(&["cache", "verify"]));
    let output = env.run(&["--json", "fetch"]);
    assert_success(&output);
    let report = json_of(&output);
    assert_eq!(roles(&report), all_roles_sorted());
    for role in ALL_ROLES {
        assert_eq!(artifact(&report, role)["cached"], role != "spark", "{role}");
    }
    assert_eq!(
        artifact(&report, "spark")["sha512"],
        env.apache.spark.sha512.as_str()
    );
    assert_eq!(env.server.count(&env.apache.spark.url_path), 1);
}

#[test]
fn cache_verify_reports_a_truncated_artifact() {
    let env = warm();
    let path = spark_path(&env);
    let hadoop = json_of(&env.run(&["--offline", "--json", "fetch", "hadoop"]));
    let hadoop_path =
        std::path::PathBuf::from(artifact(&hadoop, "hadoop")["path"].as_str().expect("path"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open the cached tarball");
    file.set_len(env.apache.spark.size / 2)
        .expect("truncate the cached tarball");
    drop(file);

    // And one whose content file vanished altogether.
    std::fs::remove_file(&hadoop_path).expect("delete the cached Hadoop tarball");

    let output = env.run(&["cache", "verify"]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, SPARK_KEY);
    assert_stderr_contains(
        &output,
        "apache/hadoop/common/hadoop-3.2.0/hadoop-3.2.0.tar.gz is damaged",
    );
    assert!(!path.exists(), "the damaged file is removed");
    assert_eq!(index_entries(&env.cache_dir()).len(), 4);
    assert!(
        stdout_text(&output).contains("6 artifact(s) verified, 2 damaged"),
        "{}",
        stdout_text(&output)
    );
    assert_success(&env.run(&["cache", "verify"]));
}

#[test]
fn cache_clean_removes_everything_and_the_next_fetch_downloads_again() {
    let env = warm();
    let output = env.run(&["--json", "cache", "clean"]);
    assert_success(&output);
    let report = json_of(&output);
    // Six artifacts and six index entries at least (lock files may add more).
    assert!(report["files"].as_u64().expect("files") >= 12, "{report}");
    assert_cache_empty(&env.cache_dir());
    let left = files_under(&env.cache_dir().join("locks"));
    assert!(left.is_empty(), "locks left: {left:?}");
    let output = env.run(&["--json", "cache", "ls"]);
    assert_success(&output);
    assert_eq!(json_of(&output)["artifacts"], serde_json::json!([]));

    let output = env.run(&["--offline", "fetch", "spark"]);
    assert_exit_code(&output, 3);
    let output = env.run(&["--json", "fetch"]);
    assert_success(&output);
    let report = json_of(&output);
    for role in ALL_ROLES {
        assert_eq!(artifact(&report, role)["cached"], false, "{role}");
    }
}

#[test]
fn cache_clean_waits_for_a_running_fetch_which_still_succeeds() {
    let env = TestEnv::new();
    let spark = env.apache.tree.spark(
        "3.1.1",
        "hadoop3.2",
        &fixtures::spark_dist_padded("3.1.1", "hadoop3.2", "3.2.0", 1 << 20),
        fixtures::ChecksumStyle::GpgPrintMd,
    );
    env.server.inject(
        &spark.url_path,
        Fault::StallBody {
            after: 200_000,
            stall: Duration::from_secs(2),
        },
    );
    let mut fetch = env.imgforge();
    fetch
        .args(["--json", "fetch"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let fetch = fetch.spawn().expect("start the fetch");
    wait_for_bytes(&env.server, &spark.url_path, 200_000);

    let mut clean = env.imgforge();
    clean
        .args(["cache", "clean"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut clean = clean.spawn().expect("start the clean");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        clean.try_wait().expect("poll the clean").is_none(),
        "cache clean must wait while a fetch holds the cache"
    );

    let fetched = wait_with_timeout(fetch, Duration::from_secs(60));
    assert_success(&fetched);
    let report = json_of(&fetched);
    assert_eq!(roles(&report), all_roles_sorted());
    assert_eq!(artifact(&report, "spark")["sha512"], spark.sha512.as_str());

    let cleaned = wait_with_timeout(clean, Duration::from_secs(30));
    assert_success(&cleaned);
    assert_stderr_contains(&cleaned, "waiting for other imgforge processes");
    assert!(started.elapsed() >= Duration::from_millis(500));
    // The clean ran after the fetch finished, so the cache is empty now.
    assert_cache_empty(&env.cache_dir());
}

#[test]
fn cache_verify_with_json_finding_damage_prints_one_document_with_the_report() {
    let env = warm();
    let path = spark_path(&env);
    std::fs::write(&path, b"not the tarball").expect("replace the cached tarball");

    let output = env.run(&["--json", "cache", "verify"]);
    assert_exit_code(&output, 4);
    // One document: the failure, with the per-artifact report it found.
    let report = json_of(&output);
    assert_eq!(report["command"], "cache verify", "{report:#}");
    assert_eq!(
        report["error"]["kind"], "integrity.damaged_cache",
        "{report:#}"
    );
    assert_eq!(report["error"]["exit_code"], 4, "{report:#}");
    let artifacts = report["artifacts"].as_array().expect("artifacts");
    assert_eq!(artifacts.len(), 6, "{report:#}");
    let damaged: Vec<_> = artifacts
        .iter()
        .filter(|entry| entry["ok"] == false)
        .collect();
    assert_eq!(damaged.len(), 1, "{report:#}");
    assert_eq!(damaged[0]["key"], SPARK_KEY, "{report:#}");
    assert_stderr_contains(&output, SPARK_KEY);
}
