//! `imgforge fetch` end to end: the real binary against loopback mirrors, from a cold cache,
//! a warm one and offline; every published checksum format; pins; mirror fallback; and every
//! download fault of the foundation issue, each checked for its message, its exit code and
//! for leaving nothing partial in the cache.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{
    ALL_ROLES, TmpfsMount, all_roles_sorted, artifact, assert_cache_empty, assert_no_temp_files,
    assert_not_cached, dead_url, files_under, imgforge_with_cache, index_entries, json_of, roles,
    write_config,
};
use crate::support::env::{DEFAULT_RUN_TIMEOUT, run_command};
use crate::support::fixtures::{
    self, Algorithm, ChecksumStyle, HadoopChecksums, MavenTree, Published, sha512_hex,
};
use crate::support::{
    Fault, MirrorServer, TestEnv, assert_exit_code, assert_stderr_contains, assert_success,
    stderr_text,
};

const SPARK_NAME: &str = "spark-3.1.1-bin-hadoop3.2.tgz";

/// `imgforge <args>` with the mirror environment variables removed, so the mirror lists come
/// from the configuration file given with `--config`.
fn run_with_config(env: &TestEnv, config: &Path, args: &[&str]) -> Output {
    let mut command = env.imgforge();
    command
        .env_remove("IMGFORGE_APACHE_MIRROR")
        .env_remove("IMGFORGE_MAVEN_MIRROR")
        .arg("--config")
        .arg(config)
        .args(args);
    run_command(command, DEFAULT_RUN_TIMEOUT)
}

/// `imgforge --config <file> <args>` keeping the test mirrors from the environment.
fn run_config(env: &TestEnv, config_text: &str, args: &[&str]) -> Output {
    let config = write_config(env, "imgforge.toml", config_text);
    let mut full = vec!["--config", config.to_str().expect("UTF-8 path")];
    full.extend_from_slice(args);
    env.run(&full)
}

/// Replaces the default Spark tarball on the mirror with `tarball` and a `.sha512` in `style`.
fn publish_spark(env: &TestEnv, tarball: &[u8], style: ChecksumStyle) -> Published {
    env.apache.tree.spark("3.1.1", "hadoop3.2", tarball, style)
}

/// A Spark tarball of about `padding` bytes, so a body spans many chunks.
fn big_spark(padding: usize) -> Vec<u8> {
    fixtures::spark_dist_padded("3.1.1", "hadoop3.2", "3.2.0", padding)
}

/// The GET requests the server saw for `path`.
fn gets(server: &MirrorServer, path: &str) -> usize {
    server
        .requests_for(path)
        .iter()
        .filter(|record| record.method == "GET")
        .count()
}

/// The fixture everything in a default `fetch all` is checked against, by role.
fn published_for<'a>(env: &'a TestEnv, role: &str) -> &'a Published {
    match role {
        "spark" => &env.apache.spark,
        "hadoop" => &env.apache.hadoop,
        "hive-metastore" => &env.apache.hive,
        "hadoop-aws" => &env.maven.hadoop_aws_jar,
        "hadoop-aws-pom" => &env.maven.hadoop_aws_pom,
        "postgresql-jdbc" => &env.maven.postgresql,
        other => panic!("unknown role {other}"),
    }
}

fn assert_artifact_matches(env: &TestEnv, report: &Value, role: &str, cached: bool) {
    let published = published_for(env, role);
    let reported = artifact(report, role);
    assert_eq!(reported["file_name"], published.file_name(), "{role}");
    assert_eq!(reported["sha512"], published.sha512.as_str(), "{role}");
    assert_eq!(reported["size"], published.size, "{role}");
    assert_eq!(reported["cached"], cached, "{role}");
    assert_eq!(
        reported["url"],
        published.url(&env.server.url()).as_str(),
        "{role}"
    );
    let path = Path::new(reported["path"].as_str().expect("path is text"));
    assert!(
        path.starts_with(env.cache_dir()),
        "{role} stored outside the cache: {}",
        path.display()
    );
    let content = std::fs::read(path).expect("the reported path exists");
    assert_eq!(
        sha512_hex(&content),
        published.sha512,
        "{role} content on disk"
    );
}

#[test]
fn fetch_all_from_a_cold_cache_stores_and_reports_every_artifact() {
    let env = TestEnv::new();
    let output = env.run(&["--json", "fetch"]);
    assert_success(&output);
    let report = json_of(&output);
    assert_eq!(report["command"], "fetch");
    assert_eq!(report["hadoop_version"], "3.2.0");
    assert_eq!(
        report["hadoop_version_source"],
        "jars/hadoop-common-3.2.0.jar"
    );
    assert_eq!(roles(&report), all_roles_sorted());
    for role in ALL_ROLES {
        assert_artifact_matches(&env, &report, role, false);
    }
    // What each was verified against: the published file's algorithm, strongest for `.mds`.
    let verified = |role: &str| artifact(&report, role)["verified_with"].clone();
    assert_eq!(
        verified("spark"),
        format!("sha512:{}", env.apache.spark.sha512).as_str()
    );
    assert_eq!(
        verified("hadoop"),
        format!("sha512:{}", env.apache.hadoop.sha512).as_str()
    );
    assert_eq!(
        verified("hive-metastore"),
        format!("sha256:{}", env.apache.hive.sha256).as_str()
    );
    for role in ["hadoop-aws", "hadoop-aws-pom", "postgresql-jdbc"] {
        assert_eq!(
            verified(role),
            format!("sha1:{}", published_for(&env, role).sha1).as_str(),
            "{role}"
        );
    }
    assert_eq!(index_entries(&env.cache_dir()).len(), ALL_ROLES.len());
    assert_no_temp_files(&env.cache_dir());
    assert!(env.cache_dir().join("CACHEDIR.TAG").is_file());
    // Each artifact crossed the network exactly once.
    for role in ALL_ROLES {
        assert_eq!(gets(&env.server, &published_for(&env, role).url_path), 1);
    }
    // Not a terminal: one plain line per event.
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains(&format!(
            "downloading {SPARK_NAME} from {}",
            env.apache.spark.url(&env.server.url())
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "done {SPARK_NAME} sha512:{}",
            &env.apache.spark.sha512[..16]
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("verifying {SPARK_NAME}")),
        "{stderr}"
    );
}

#[test]
fn quiet_prints_nothing_and_no_progress_prints_plain_lines() {
    let env = TestEnv::new();
    let output = env.run(&["-q", "fetch"]);
    assert_success(&output);
    assert_eq!(stderr_text(&output), "");
    assert!(
        output.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let output = env.run(&["--no-progress", "fetch"]);
    assert_success(&output);
    for role in ALL_ROLES {
        assert_stderr_contains(
            &output,
            &format!("cached {}", published_for(&env, role).file_name()),
        );
    }
}

#[test]
fn each_target_fetches_only_its_group() {
    let env = TestEnv::new();
    let output = env.run(&["--json", "fetch", "hive"]);
    assert_success(&output);
    assert_eq!(roles(&json_of(&output)), vec!["hive-metastore".to_string()]);
    assert_eq!(gets(&env.server, &env.apache.spark.url_path), 0);

    let output = env.run(&["--json", "fetch", "spark"]);
    assert_success(&output);
    assert_eq!(roles(&json_of(&output)), vec!["spark".to_string()]);

    // hadoop-aws follows the Hadoop version inside Spark, so Spark is part of the report.
    let output = env.run(&["--json", "fetch", "jars"]);
    assert_success(&output);
    let report = json_of(&output);
    assert_eq!(
        roles(&report),
        ["hadoop-aws", "hadoop-aws-pom", "postgresql-jdbc", "spark"].map(String::from)
    );
    assert_eq!(artifact(&report, "spark")["cached"], true);
    assert_eq!(gets(&env.server, &env.apache.hadoop.url_path), 0);
    assert_eq!(gets(&env.server, &env.apache.hive.url_path), 1);
}

#[test]
fn a_second_fetch_is_served_from_the_cache_without_any_request() {
    let env = TestEnv::new();
    assert_success(&env.run(&["fetch"]));
    env.server.clear_log();

    let output = env.run(&["--json", "fetch"]);
    assert_success(&output);
    let report = json_of(&output);
    for role in ALL_ROLES {
        assert_artifact_matches(&env, &report, role, true);
    }
    assert_eq!(report["hadoop_version"], "3.2.0");
    assert_eq!(env.server.requests(), Vec::new());
    assert_stderr_contains(&output, &format!("cached {SPARK_NAME}"));

    // --offline on the warm cache: the same, and still no request.
    let output = env.run(&["--offline", "--json", "fetch", "all"]);
    assert_success(&output);
    let report = json_of(&output);
    for role in ALL_ROLES {
        assert_artifact_matches(&env, &report, role, true);
    }
    assert_eq!(env.server.requests(), Vec::new());

    // The human report marks cached artifacts too.
    let output = env.run(&["--offline", "fetch"]);
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        stdout.contains(SPARK_NAME) && stdout.contains("(cached)"),
        "{stdout}"
    );
}

#[test]
fn offline_on_an_empty_cache_names_every_missing_artifact_and_writes_nothing() {
    let env = TestEnv::new();
    let output = env.run(&["--offline", "fetch"]);
    assert_exit_code(&output, 3);
    // Without the Spark tarball the Hadoop version is unknown, so Hadoop's artifacts cannot be
    // named; every other one is.
    for published in [&env.apache.spark, &env.apache.hive, &env.maven.postgresql] {
        assert_stderr_contains(&output, published.file_name());
    }
    assert_stderr_contains(&output, "--offline");
    assert_stderr_contains(
        &output,
        "hint: run `imgforge fetch` once with network access",
    );
    assert_eq!(env.server.requests(), Vec::new());
    assert_cache_empty(&env.cache_dir());

    // With the Hadoop version configured, all six are named.
    let output = run_config(
        &env,
        "[hadoop]\nversion = \"3.2.0\"\n",
        &["--offline", "fetch"],
    );
    assert_exit_code(&output, 3);
    for role in ALL_ROLES {
        assert_stderr_contains(&output, published_for(&env, role).file_name());
    }
    assert_eq!(env.server.requests(), Vec::new());
    assert_cache_empty(&env.cache_dir());
}

#[test]
fn the_hadoop_version_comes_from_the_spark_jars_not_the_tarball_name() {
    let env = TestEnv::new();
    // The package is called hadoop3.2, but the jars inside are Hadoop 3.2.4.
    let spark = publish_spark(
        &env,
        &fixtures::spark_dist("3.1.1", "hadoop3.2", "3.2.4"),
        ChecksumStyle::GpgPrintMd,
    );
    let hadoop = env.apache.tree.hadoop(
        "3.2.4",
        &fixtures::hadoop_dist("3.2.4"),
        HadoopChecksums::Sha512(ChecksumStyle::Coreutils),
    );
    let (jar, pom) = env.maven.tree.hadoop_aws("3.2.4");

    let output = env.run(&["--json", "fetch"]);
    assert_success(&output);
    let report = json_of(&output);
    assert_eq!(report["hadoop_version"], "3.2.4");
    assert_eq!(
        report["hadoop_version_source"],
        "jars/hadoop-common-3.2.4.jar"
    );
    assert_eq!(artifact(&report, "spark")["sha512"], spark.sha512.as_str());
    assert_eq!(
        artifact(&report, "hadoop")["file_name"],
        "hadoop-3.2.4.tar.gz"
    );
    assert_eq!(
        artifact(&report, "hadoop")["sha512"],
        hadoop.sha512.as_str()
    );
    assert_eq!(
        artifact(&report, "hadoop-aws")["sha512"],
        jar.sha512.as_str()
    );
    assert_eq!(
        artifact(&report, "hadoop-aws-pom")["sha512"],
        pom.sha512.as_str()
    );
    // Nothing of the version the name suggests was even asked for.
    let guessed: Vec<_> = env
        .server
        .requests()
        .into_iter()
        .filter(|record| record.path.contains("3.2.0"))
        .collect();
    assert!(guessed.is_empty(), "requests for 3.2.0: {guessed:?}");
}

#[test]
fn a_configured_hadoop_version_is_used_without_reading_the_spark_tarball() {
    let env = TestEnv::new();
    // Not a tarball at all: reading its listing would fail. Its checksum is correct.
    let not_a_tarball = fixtures::incompressible(50_000, 11);
    let spark = publish_spark(&env, &not_a_tarball, ChecksumStyle::Coreutils);

    let output = run_config(
        &env,
        "[hadoop]\nversion = \"3.2.0\"\n",
        &["--json", "fetch"],
    );
    assert_success(&output);
    let report = json_of(&output);
    assert_eq!(report["hadoop_version"], "3.2.0");
    assert_eq!(report["hadoop_version_source"], "[hadoop] version");
    assert_eq!(roles(&report), all_roles_sorted());
    assert_eq!(artifact(&report, "spark")["sha512"], spark.sha512.as_str());
    assert_eq!(
        artifact(&report, "hadoop")["sha512"],
        env.apache.hadoop.sha512.as_str()
    );

    // Without the setting the same tarball must be read, and that fails as an integrity error
    // naming it.
    let output = env.run(&["fetch", "hadoop"]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, SPARK_NAME);
}

#[test]
fn every_published_spark_checksum_layout_is_accepted() {
    let tarball = fixtures::default_spark_tarball();
    let layouts: [(&str, String); 4] = [
        (
            "coreutils",
            fixtures::coreutils(Algorithm::Sha512, &tarball, SPARK_NAME),
        ),
        (
            "BSD naming the release candidate",
            fixtures::bsd(
                Algorithm::Sha512,
                &tarball,
                "spark-3.1.1-bin-hadoop3.2-rc3.tgz",
            ),
        ),
        (
            "gpg --print-md",
            fixtures::gpg_print_md(Algorithm::Sha512, &tarball, SPARK_NAME),
        ),
        (
            "bare digest",
            fixtures::maven_bare(Algorithm::Sha512, &tarball),
        ),
    ];
    for (layout, text) in layouts {
        let env = TestEnv::new();
        let mut spark = env.apache.spark.clone();
        let checksum_path = format!("{}.sha512", spark.url_path);
        env.apache
            .tree
            .put_checksum(&mut spark, &checksum_path, &text);
        let output = env.run(&["--json", "fetch", "spark"]);
        assert_success(&output);
        let report = json_of(&output);
        assert_eq!(roles(&report), vec!["spark".to_string()], "{layout}");
        let reported = artifact(&report, "spark");
        assert_eq!(reported["sha512"], spark.sha512.as_str(), "{layout}");
        assert_eq!(
            reported["verified_with"],
            format!("sha512:{}", spark.sha512).as_str(),
            "{layout}"
        );
    }
}

#[test]
fn hadoop_checksums_are_accepted_from_mds_and_sha512_files() {
    let layouts = [
        HadoopChecksums::Mds,
        HadoopChecksums::Sha512(ChecksumStyle::Coreutils),
        HadoopChecksums::Sha512(ChecksumStyle::Bsd),
        HadoopChecksums::Sha512(ChecksumStyle::GpgPrintMd),
    ];
    for layout in layouts {
        let env = TestEnv::new();
        // Publish 3.2.0 afresh with only this layout.
        let directory = env.mirror_root().join("hadoop/common/hadoop-3.2.0");
        std::fs::remove_dir_all(&directory).expect("remove the default Hadoop release");
        let hadoop = env
            .apache
            .tree
            .hadoop("3.2.0", &fixtures::hadoop_dist("3.2.0"), layout);
        let output = env.run(&["--json", "fetch", "hadoop"]);
        assert_success(&output);
        let report = json_of(&output);
        assert_eq!(
            roles(&report),
            vec!["hadoop".to_string(), "spark".to_string()],
            "{layout:?}"
        );
        let reported = artifact(&report, "hadoop");
        assert_eq!(reported["sha512"], hadoop.sha512.as_str(), "{layout:?}");
        // The strongest digest of the `.mds` file is SHA-512.
        assert_eq!(
            reported["verified_with"],
            format!("sha512:{}", hadoop.sha512).as_str(),
            "{layout:?}"
        );
        if layout == HadoopChecksums::Mds {
            for suffix in [".sha512", ".sha256", ".mds"] {
                assert_eq!(
                    gets(&env.server, &format!("{}{suffix}", hadoop.url_path)),
                    1
                );
            }
        }
    }
}

#[test]
fn maven_bare_sha1_and_sha512_files_are_accepted() {
    // Default fixtures: `.sha1` only.
    let env = TestEnv::new();
    let output = env.run(&["--json", "fetch", "jars"]);
    assert_success(&output);
    let report = json_of(&output);
    let postgresql = artifact(&report, "postgresql-jdbc");
    assert_eq!(postgresql["sha512"], env.maven.postgresql.sha512.as_str());
    assert_eq!(
        postgresql["verified_with"],
        format!("sha1:{}", env.maven.postgresql.sha1).as_str()
    );

    // With `.sha512` published too, the stronger one is used.
    let env = TestEnv::new();
    let tree = MavenTree::new(&env.mirror_root().join("maven"), "/maven").with_sha512(true);
    let postgresql = tree.postgresql("42.2.19");
    let output = env.run(&["--json", "fetch", "jars"]);
    assert_success(&output);
    let report = json_of(&output);
    assert_eq!(
        artifact(&report, "postgresql-jdbc")["verified_with"],
        format!("sha512:{}", postgresql.sha512).as_str()
    );
}

#[test]
fn a_pinned_spark_checksum_wins_over_the_published_one() {
    let env = TestEnv::new();
    let spark = env.apache.spark.clone();
    // The published checksum is wrong; the pin is right.
    let mut published = spark.clone();
    env.apache.tree.put_checksum(
        &mut published,
        &format!("{}.sha512", spark.url_path),
        &fixtures::coreutils(Algorithm::Sha512, b"something else", SPARK_NAME),
    );
    let pin = format!("sha512:{}", spark.sha512);
    let output = run_config(
        &env,
        &format!("[spark]\nchecksum = \"{pin}\"\n"),
        &["--json", "fetch", "spark"],
    );
    assert_success(&output);
    let report = json_of(&output);
    assert_eq!(artifact(&report, "spark")["verified_with"], pin.as_str());
    assert_eq!(artifact(&report, "spark")["sha512"], spark.sha512.as_str());
    assert_eq!(
        gets(&env.server, &format!("{}.sha512", spark.url_path)),
        0,
        "a pinned artifact needs no published checksum"
    );

    // A wrong pin is a mismatch, even though the published checksum would now match.
    let env = TestEnv::new();
    let wrong = format!("sha512:{}", sha512_hex(b"not spark"));
    let output = run_config(
        &env,
        &format!("[spark]\nchecksum = \"{wrong}\"\n"),
        &["fetch", "spark"],
    );
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, "checksum mismatch");
    assert_stderr_contains(&output, &wrong);
    assert_stderr_contains(&output, &format!("sha512:{}", env.apache.spark.sha512));
    assert_not_cached(&env.cache_dir(), SPARK_NAME);
}

#[test]
fn a_pinned_checksum_is_checked_against_a_cache_hit() {
    let env = TestEnv::new();
    assert_success(&env.run(&["fetch", "spark"]));
    env.server.clear_log();
    // A pin that the cached artifact does not satisfy is no hit: it goes to the network and
    // fails there, rather than handing out content the pin rejects.
    let wrong = format!("sha512:{}", sha512_hex(b"not spark"));
    let output = run_config(
        &env,
        &format!("[spark]\nchecksum = \"{wrong}\"\n"),
        &["fetch", "spark"],
    );
    assert_exit_code(&output, 4);
    assert_eq!(gets(&env.server, &env.apache.spark.url_path), 1);
    // A matching SHA-256 pin is satisfied by the cache without any request.
    env.server.clear_log();
    let pin = format!("sha256:{}", env.apache.spark.sha256);
    let output = run_config(
        &env,
        &format!("[spark]\nchecksum = \"{pin}\"\n"),
        &["--json", "fetch", "spark"],
    );
    assert_success(&output);
    assert_eq!(artifact(&json_of(&output), "spark")["cached"], true);
    assert_eq!(env.server.requests(), Vec::new());
}

/// A configuration whose mirror lists put `first` before the test environment's server.
fn fallback_config(env: &TestEnv, first: &str, retries: u32) -> std::path::PathBuf {
    write_config(
        env,
        "mirrors.toml",
        &format!(
            "[mirrors]\napache = [\"{first}\", \"{good}\"]\nmaven = [\"{first}/maven\", \"{good}/maven\"]\n\
             [network]\nretries = {retries}\n",
            good = env.apache_url()
        ),
    )
}

#[test]
fn a_mirror_that_lacks_the_artifacts_falls_back_to_the_next() {
    let env = TestEnv::new();
    let empty = tempfile::tempdir().expect("temp dir");
    let first = MirrorServer::start(empty.path());
    let config = fallback_config(&env, &first.url(), 3);

    let output = run_with_config(&env, &config, &["--json", "fetch"]);
    assert_success(&output);
    let report = json_of(&output);
    for role in ALL_ROLES {
        assert_artifact_matches(&env, &report, role, false);
    }
    // The first mirror was asked (404) and never retried.
    let spark_checksum = format!("{}.sha512", env.apache.spark.url_path);
    assert_eq!(gets(&first, &spark_checksum), 1);
    for record in first.requests() {
        assert_eq!(record.status, 404, "{record:?}");
    }
    let mut paths: Vec<String> = first.requests().into_iter().map(|r| r.path).collect();
    let total = paths.len();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), total, "a 404 was retried: {paths:?}");
}

#[test]
fn an_unreachable_mirror_falls_back_to_the_next() {
    let env = TestEnv::new();
    let config = fallback_config(&env, &dead_url(), 1);
    let started = Instant::now();
    let output = run_with_config(&env, &config, &["--json", "fetch"]);
    assert_success(&output);
    let report = json_of(&output);
    for role in ALL_ROLES {
        assert_artifact_matches(&env, &report, role, false);
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_mirror_failing_with_server_errors_falls_back_after_its_retries() {
    let env = TestEnv::new();
    // A second server over the same tree is the fallback; the first keeps answering 503.
    let second = MirrorServer::start(&env.mirror_root());
    let spark = env.apache.spark.clone();
    env.server.inject(
        &spark.url_path,
        Fault::Status {
            code: 503,
            times: usize::MAX,
        },
    );
    let config = write_config(
        &env,
        "mirrors.toml",
        &format!(
            "[mirrors]\napache = [\"{}\", \"{}\"]\n[network]\nretries = 1\n",
            env.apache_url(),
            second.url()
        ),
    );
    let output = run_with_config(&env, &config, &["--json", "fetch", "spark"]);
    assert_success(&output);
    let reported = artifact(&json_of(&output), "spark").clone();
    assert_eq!(reported["url"], spark.url(&second.url()).as_str());
    assert_eq!(reported["sha512"], spark.sha512.as_str());
    assert_eq!(gets(&env.server, &spark.url_path), 2, "1 attempt + 1 retry");
    assert_eq!(gets(&second, &spark.url_path), 1);
}

#[test]
fn not_found_on_every_mirror_lists_each_url_and_is_not_retried() {
    let env = TestEnv::new();
    // Both mirrors publish Spark's checksum but not the tarball.
    let other_root = tempfile::tempdir().expect("temp dir");
    let other = MirrorServer::start(other_root.path());
    let spark = env.apache.spark.clone();
    let checksum_path = format!("{}.sha512", spark.url_path);
    let checksum_text = std::fs::read_to_string(
        env.mirror_root()
            .join(checksum_path.trim_start_matches('/')),
    )
    .expect("read the published checksum");
    let mut copy = spark.clone();
    fixtures::ApacheTree::new(other_root.path()).put_checksum(
        &mut copy,
        &checksum_path,
        &checksum_text,
    );
    std::fs::remove_file(&spark.file).expect("withdraw the tarball");
    let config = fallback_config(&env, &other.url(), 3);

    let output = run_with_config(&env, &config, &["fetch", "spark"]);
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, SPARK_NAME);
    assert_stderr_contains(&output, &spark.url(&other.url()));
    assert_stderr_contains(&output, &spark.url(&env.server.url()));
    assert_stderr_contains(&output, "not found on any mirror");
    assert_eq!(gets(&other, &spark.url_path), 1, "404 must not be retried");
    assert_eq!(
        gets(&env.server, &spark.url_path),
        1,
        "404 must not be retried"
    );
    assert_not_cached(&env.cache_dir(), SPARK_NAME);

    // A release nobody has: the message lists every URL, checksum files included once each.
    let output = run_with_config(
        &env,
        &write_config(
            &env,
            "missing.toml",
            &format!(
                "[spark]\nversion = \"9.9.9\"\n[mirrors]\napache = [\"{}\", \"{}\"]\n",
                other.url(),
                env.apache_url()
            ),
        ),
        &["fetch", "spark"],
    );
    assert_exit_code(&output, 3);
    let missing = "/spark/spark-9.9.9/spark-9.9.9-bin-hadoop3.2.tgz";
    for base in [other.url(), env.server.url()] {
        assert_stderr_contains(&output, &format!("{base}{missing}"));
        for suffix in [".sha512", ".sha256", ".mds"] {
            let server = if base == other.url() {
                &other
            } else {
                &env.server
            };
            assert_eq!(gets(server, &format!("{missing}{suffix}")), 1);
        }
    }
    assert_stderr_contains(&output, "hint:");
}

#[test]
fn a_checksum_mismatch_names_url_and_digests_and_is_not_retried() {
    let env = TestEnv::new();
    let spark = env.apache.spark.clone();
    // The mirror now serves other bytes under the same name; the checksum file is unchanged.
    let tampered = fixtures::spark_dist("3.1.1", "hadoop3.2", "3.2.1");
    fixtures::write_atomically(&spark.file, &tampered);

    let output = env.run(&["fetch"]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, "checksum mismatch");
    assert_stderr_contains(&output, &spark.url(&env.server.url()));
    assert_stderr_contains(&output, &format!("expected sha512:{}", spark.sha512));
    assert_stderr_contains(&output, &format!("sha512:{}", sha512_hex(&tampered)));
    assert_stderr_contains(&output, "hint:");
    assert_eq!(
        gets(&env.server, &spark.url_path),
        1,
        "a mismatch is not retried"
    );
    assert_not_cached(&env.cache_dir(), SPARK_NAME);
}

#[test]
fn an_unparsable_checksum_file_is_an_integrity_error() {
    let env = TestEnv::new();
    let mut spark = env.apache.spark.clone();
    let checksum_path = format!("{}.sha512", spark.url_path);
    env.apache.tree.put_checksum(
        &mut spark,
        &checksum_path,
        "<html><body>Mirror maintenance</body></html>\n",
    );
    let output = env.run(&["fetch", "spark"]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, &format!("{}{checksum_path}", env.server.url()));
    assert_stderr_contains(&output, "caused by:");
    assert_eq!(gets(&env.server, &spark.url_path), 0);
    assert_not_cached(&env.cache_dir(), SPARK_NAME);
}

#[test]
fn a_connection_closed_mid_body_is_resumed_with_range() {
    let env = TestEnv::new();
    let spark = publish_spark(&env, &big_spark(1 << 20), ChecksumStyle::GpgPrintMd);
    let cut = 300_000;
    env.server.inject(
        &spark.url_path,
        Fault::CloseMidBody {
            after: cut,
            times: 1,
        },
    );
    let output = env.run(&["--json", "fetch", "spark"]);
    assert_success(&output);
    let report = json_of(&output);
    assert_eq!(artifact(&report, "spark")["sha512"], spark.sha512.as_str());
    let requests = env.server.requests_for(&spark.url_path);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].range, None);
    assert_eq!(requests[0].bytes_sent, cut);
    assert!(!requests[0].completed);
    assert_eq!(requests[1].range.as_deref(), Some("bytes=300000-"));
    assert_eq!(requests[1].status, 206);
    assert_eq!(requests[1].bytes_sent, spark.size - cut);
    assert_stderr_contains(&output, &format!("resuming {SPARK_NAME} at byte {cut}"));
    assert_no_temp_files(&env.cache_dir());
}

#[test]
fn a_server_that_ignores_range_gets_a_clean_restart() {
    let env = TestEnv::new();
    let spark = publish_spark(&env, &big_spark(1 << 20), ChecksumStyle::GpgPrintMd);
    env.server.inject(&spark.url_path, Fault::IgnoreRange);
    env.server.inject(
        &spark.url_path,
        Fault::CloseMidBody {
            after: 300_000,
            times: 1,
        },
    );
    let output = env.run(&["--json", "fetch", "spark"]);
    assert_success(&output);
    let report = json_of(&output);
    assert_eq!(artifact(&report, "spark")["sha512"], spark.sha512.as_str());
    assert_eq!(artifact(&report, "spark")["size"], spark.size);
    let requests = env.server.requests_for(&spark.url_path);
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[1].range.as_deref(), Some("bytes=300000-"));
    assert_eq!(requests[1].status, 200);
    assert!(requests[1].completed);
    assert_stderr_contains(&output, &format!("restarting {SPARK_NAME}"));
    let stored = std::fs::read(artifact(&report, "spark")["path"].as_str().expect("path"))
        .expect("read the stored artifact");
    assert_eq!(stored, spark.bytes());
}

#[test]
fn a_connection_that_keeps_closing_fails_after_bounded_retries() {
    let env = TestEnv::new();
    let spark = publish_spark(&env, &big_spark(1 << 20), ChecksumStyle::GpgPrintMd);
    env.server.inject(
        &spark.url_path,
        Fault::CloseMidBody {
            after: 1000,
            times: usize::MAX,
        },
    );
    let output = run_config(&env, "[network]\nretries = 2\n", &["fetch", "spark"]);
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, SPARK_NAME);
    assert_stderr_contains(&output, &spark.url(&env.server.url()));
    assert_eq!(
        gets(&env.server, &spark.url_path),
        3,
        "1 attempt + 2 retries"
    );
    assert_stderr_contains(&output, &format!("retrying {SPARK_NAME} (attempt 3 of 3)"));
    assert_not_cached(&env.cache_dir(), SPARK_NAME);
}

#[test]
fn server_errors_are_retried_until_the_server_recovers() {
    let env = TestEnv::new();
    let spark = env.apache.spark.clone();
    env.server.inject(
        &spark.url_path,
        Fault::Status {
            code: 503,
            times: 2,
        },
    );
    let output = env.run(&["--json", "fetch", "spark"]);
    assert_success(&output);
    assert_eq!(
        artifact(&json_of(&output), "spark")["sha512"],
        spark.sha512.as_str()
    );
    let statuses: Vec<u16> = env
        .server
        .requests_for(&spark.url_path)
        .iter()
        .map(|record| record.status)
        .collect();
    assert_eq!(statuses, [503, 503, 200]);
    assert_stderr_contains(&output, &format!("retrying {SPARK_NAME} (attempt 2 of 4)"));
    assert_stderr_contains(&output, "HTTP 503");
}

#[test]
fn persistent_server_errors_on_every_mirror_fail_with_each_url() {
    let env = TestEnv::new();
    let spark = env.apache.spark.clone();
    env.server.inject(
        &spark.url_path,
        Fault::Status {
            code: 500,
            times: usize::MAX,
        },
    );
    let output = run_config(&env, "[network]\nretries = 1\n", &["fetch", "spark"]);
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, &spark.url(&env.server.url()));
    assert_stderr_contains(&output, "HTTP 500");
    assert_eq!(gets(&env.server, &spark.url_path), 2);
    assert_not_cached(&env.cache_dir(), SPARK_NAME);
}

#[test]
fn a_server_slower_than_the_timeout_fails_in_bounded_time() {
    let env = TestEnv::new();
    let spark = env.apache.spark.clone();
    env.server.inject(
        &spark.url_path,
        Fault::DelayHeaders(Duration::from_secs(60)),
    );
    let started = Instant::now();
    let output = run_config(
        &env,
        "[network]\ntimeout_secs = 1\nretries = 1\n",
        &["fetch", "spark"],
    );
    let elapsed = started.elapsed();
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, "timed out");
    assert_stderr_contains(&output, &spark.url(&env.server.url()));
    assert!(elapsed < Duration::from_secs(10), "took {elapsed:?}");
    assert_eq!(gets(&env.server, &spark.url_path), 2);
    assert_not_cached(&env.cache_dir(), SPARK_NAME);
}

#[test]
fn a_body_that_stalls_past_the_timeout_fails_in_bounded_time() {
    let env = TestEnv::new();
    let spark = publish_spark(&env, &big_spark(1 << 20), ChecksumStyle::GpgPrintMd);
    env.server.inject(
        &spark.url_path,
        Fault::StallBody {
            after: 100_000,
            stall: Duration::from_secs(60),
        },
    );
    let started = Instant::now();
    let output = run_config(
        &env,
        "[network]\ntimeout_secs = 1\nretries = 0\n",
        &["fetch", "spark"],
    );
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, "timed out");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_not_cached(&env.cache_dir(), SPARK_NAME);
}

#[test]
fn a_cache_dir_below_a_regular_file_is_a_storage_error() {
    let env = TestEnv::new();
    let file = env.root().join("not-a-directory");
    std::fs::write(&file, "x").expect("write a regular file");
    let cache = file.join("cache");
    let output = run_command(
        {
            let mut command = imgforge_with_cache(&env, &cache);
            command.arg("fetch");
            command
        },
        DEFAULT_RUN_TIMEOUT,
    );
    assert_exit_code(&output, 5);
    assert_stderr_contains(&output, "cache directory");
    assert_stderr_contains(&output, &file.display().to_string());
    assert_stderr_contains(&output, "hint:");
    assert_eq!(env.server.requests(), Vec::new());
}

#[test]
fn a_read_only_cache_dir_is_a_storage_error() {
    let env = TestEnv::new();
    let cache = env.root().join("read-only-cache");
    let _mount = TmpfsMount::new(&cache, "ro,size=1m");
    let output = run_command(
        {
            let mut command = imgforge_with_cache(&env, &cache);
            command.arg("fetch");
            command
        },
        DEFAULT_RUN_TIMEOUT,
    );
    assert_exit_code(&output, 5);
    assert_stderr_contains(&output, &cache.display().to_string());
    assert_stderr_contains(&output, "hint:");
    assert_eq!(env.server.requests(), Vec::new());
}

#[test]
fn a_full_disk_is_a_storage_error_and_leaves_nothing_partial() {
    let env = TestEnv::new();
    let spark = publish_spark(&env, &big_spark(4 << 20), ChecksumStyle::GpgPrintMd);
    let cache = env.root().join("small-cache");
    let _mount = TmpfsMount::new(&cache, "size=1m");
    let mut command = imgforge_with_cache(&env, &cache);
    command.args(["fetch", "spark"]);
    let output = run_command(command, DEFAULT_RUN_TIMEOUT);
    assert_exit_code(&output, 5);
    let stderr = stderr_text(&output);
    assert!(
        stderr.to_lowercase().contains("no space left"),
        "expected a no-space message\n{stderr}"
    );
    assert_stderr_contains(&output, SPARK_NAME);
    assert_stderr_contains(&output, "hint: free space");
    assert_not_cached(&cache, spark.file_name());
    assert_cache_empty(&cache);
}

#[test]
fn two_processes_sharing_a_cache_download_each_artifact_once() {
    let env = TestEnv::new();
    let spark = publish_spark(&env, &big_spark(1 << 20), ChecksumStyle::GpgPrintMd);
    env.server.inject(
        &spark.url_path,
        Fault::StallBody {
            after: 200_000,
            stall: Duration::from_millis(1500),
        },
    );
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let mut command = env.imgforge();
            command.args(["--json", "fetch"]);
            std::thread::spawn(move || run_command(command, DEFAULT_RUN_TIMEOUT))
        })
        .collect();
    let outputs: Vec<Output> = runs
        .into_iter()
        .map(|run| run.join().expect("a fetch thread"))
        .collect();
    let reports: Vec<Value> = outputs
        .iter()
        .map(|output| {
            assert_success(output);
            json_of(output)
        })
        .collect();
    for role in ALL_ROLES {
        let published = if role == "spark" {
            &spark
        } else {
            published_for(&env, role)
        };
        assert_eq!(
            gets(&env.server, &published.url_path),
            1,
            "{role} downloaded more than once"
        );
        let cached: Vec<bool> = reports
            .iter()
            .map(|report| {
                let reported = artifact(report, role);
                assert_eq!(reported["sha512"], published.sha512.as_str(), "{role}");
                reported["cached"].as_bool().expect("cached is a bool")
            })
            .collect();
        assert!(
            cached.contains(&true) && cached.contains(&false),
            "{role}: one process downloads, the other finds it cached; got {cached:?}"
        );
    }
    assert_eq!(index_entries(&env.cache_dir()).len(), ALL_ROLES.len());
    assert_no_temp_files(&env.cache_dir());
}

#[test]
fn an_interrupted_fetch_exits_130_and_keeps_nothing_partial() {
    let env = TestEnv::new();
    let spark = publish_spark(&env, &big_spark(1 << 20), ChecksumStyle::GpgPrintMd);
    env.server.inject(
        &spark.url_path,
        Fault::StallBody {
            after: 200_000,
            stall: Duration::from_secs(30),
        },
    );
    let mut command = env.imgforge();
    command
        .args(["fetch", "spark"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().expect("start imgforge");
    wait_for_bytes(&env.server, &spark.url_path, 200_000);
    // The partial download is on disk now.
    assert!(!files_under(&env.cache_dir().join("tmp")).is_empty());
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
    let output = wait_with_timeout(child, Duration::from_secs(10));
    assert_exit_code(&output, 130);
    assert_stderr_contains(&output, "interrupted");
    assert_not_cached(&env.cache_dir(), SPARK_NAME);
}

/// Waits (at most 30 s) until the server has sent at least `bytes` body bytes for `path`.
pub fn wait_for_bytes(server: &MirrorServer, path: &str, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let sent: u64 = server
            .requests_for(path)
            .iter()
            .map(|record| record.bytes_sent)
            .max()
            .unwrap_or(0);
        if sent >= bytes {
            // Give the client a moment to write what it received.
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never sent {bytes} bytes of {path}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` (output piped), killing it and failing the test after `timeout`.
pub fn wait_with_timeout(mut child: std::process::Child, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait().expect("poll the child").is_some() {
            return child
                .wait_with_output()
                .expect("collect the child's output");
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let output = child
                .wait_with_output()
                .expect("collect the child's output");
            panic!(
                "the child did not finish within {timeout:?}\n{}",
                stderr_text(&output)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `hint:` line of a failed run's stderr.
fn hint_line(output: &Output) -> String {
    stderr_text(output)
        .lines()
        .find(|line| line.trim_start().starts_with("hint:"))
        .unwrap_or_else(|| panic!("no hint:\n{}", stderr_text(output)))
        .trim()
        .to_string()
}

#[test]
fn every_mirror_unreachable_ends_with_the_same_hint_as_not_found() {
    let env = TestEnv::new();
    let dead = dead_url();
    let unreachable = write_config(
        &env,
        "dead.toml",
        &format!("[mirrors]\napache = [\"{dead}\"]\n[network]\nretries = 0\n"),
    );
    let output = run_with_config(&env, &unreachable, &["fetch", "spark"]);
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, &dead);
    assert_stderr_contains(&output, "connection failed");
    let connection_hint = hint_line(&output);

    let missing = write_config(
        &env,
        "missing.toml",
        &format!(
            "[spark]\nversion = \"9.9.9\"\n[mirrors]\napache = [\"{}\"]\n",
            env.apache_url()
        ),
    );
    let output = run_with_config(&env, &missing, &["fetch", "spark"]);
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, "not found on any mirror");
    assert_eq!(connection_hint, hint_line(&output));
    for named in ["[mirrors]", "--apache-mirror", "--offline"] {
        assert!(connection_hint.contains(named), "{connection_hint}");
    }
}

#[test]
fn an_unresolvable_mirror_host_is_not_retried() {
    let env = TestEnv::new();
    // `.invalid` never resolves (RFC 2606); three retries are allowed and none may be used.
    let unresolvable = "http://nonexistent.invalid";
    let only = write_config(
        &env,
        "unresolvable.toml",
        &format!("[mirrors]\napache = [\"{unresolvable}\"]\n[network]\nretries = 3\n"),
    );
    let started = Instant::now();
    let output = run_with_config(&env, &only, &["--no-progress", "fetch", "spark"]);
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, "cannot resolve the host name nonexistent.invalid");
    assert!(
        !stderr_text(&output).contains("retrying"),
        "a resolution failure was retried:\n{}",
        stderr_text(&output)
    );
    // Backoffs before three retries would take 0.25 + 0.5 + 1 s at least.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_stderr_contains(&output, "--offline");

    // With a good mirror after it, the fetch falls through to that one at once.
    let config = fallback_config(&env, unresolvable, 3);
    let output = run_with_config(
        &env,
        &config,
        &["--no-progress", "--json", "fetch", "spark"],
    );
    assert_success(&output);
    assert!(
        !stderr_text(&output).contains("retrying"),
        "a resolution failure was retried:\n{}",
        stderr_text(&output)
    );
    assert_eq!(
        artifact(&json_of(&output), "spark")["sha512"],
        env.apache.spark.sha512.as_str()
    );
}

#[test]
fn a_failed_fetch_with_json_prints_the_error_document() {
    let env = TestEnv::new();
    let missing = write_config(
        &env,
        "missing.toml",
        &format!(
            "[spark]\nversion = \"9.9.9\"\n[mirrors]\napache = [\"{}\"]\n",
            env.apache_url()
        ),
    );
    let output = run_with_config(&env, &missing, &["--json", "fetch", "spark"]);
    assert_exit_code(&output, 3);
    let report = json_of(&output);
    assert_eq!(report["command"], "fetch", "{report:#}");
    let error = &report["error"];
    assert_eq!(error["kind"], "network.not_found", "{report:#}");
    assert_eq!(error["exit_code"], 3, "{report:#}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|message| message.contains("spark-9.9.9-bin-hadoop3.2.tgz")),
        "{report:#}"
    );
    assert!(error["causes"].is_array(), "{report:#}");
    assert_eq!(
        error["hint"].as_str(),
        Some(&hint_line(&output)["hint: ".len()..])
    );

    let dead = write_config(
        &env,
        "dead.toml",
        &format!(
            "[mirrors]\napache = [\"{}\"]\n[network]\nretries = 0\n",
            dead_url()
        ),
    );
    let output = run_with_config(&env, &dead, &["--json", "fetch", "spark"]);
    assert_exit_code(&output, 3);
    let report = json_of(&output);
    assert_eq!(report["error"]["kind"], "network.unavailable", "{report:#}");

    // Success output is unchanged: the report, no error field.
    let output = env.run(&["--json", "fetch", "spark"]);
    assert_success(&output);
    let report = json_of(&output);
    assert!(report.get("error").is_none(), "{report:#}");
    assert_eq!(report["command"], "fetch");
}
