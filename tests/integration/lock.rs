//! `imgforge lock` and `imgforge build --locked`.

use crate::support::images::ImageEnv;
use crate::support::*;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn lock_text(image_env: &ImageEnv) -> String {
    std::fs::read_to_string(image_env.env.work_dir().join("imgforge.lock"))
        .expect("imgforge.lock written")
}

#[test]
fn the_lock_records_versions_artifacts_bases_and_inputs_and_locked_builds_follow_it() {
    let image_env = ImageEnv::new(&[]);
    assert_success(&image_env.run(&["lock"]));
    let text = lock_text(&image_env);
    for expected in [
        "spark = \"3.1.1\"",
        "hadoop = \"3.2.0\"",
        "aws_sdk = \"1.11.375\"",
        "spark-3.1.1-bin-hadoop3.2.tgz",
        "hadoop-aws-3.2.0.jar",
        "aws-java-sdk-bundle-1.11.375.jar",
        "postgresql-42.2.19.jar",
        "hive-standalone-metastore-3.0.0-bin.tar.gz",
        &image_env.env.apache.spark.sha512,
        "imgforge-test/openjdk:17-jre",
        "patches",
        "dockerfiles/hive-metastore",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from the lock:\n{text}"
        );
    }
    // Writing it again gives the same text: the format is stable and reviewable.
    assert_success(&image_env.run(&["lock"]));
    assert_eq!(lock_text(&image_env), text);

    // A build that matches the lock goes ahead.
    let output = image_env.run(&["build", "--locked", "hive-metastore"]);
    assert_success(&output);

    // One that does not is refused before anything is built, naming each difference.
    let lock_file = image_env.env.work_dir().join("imgforge.lock");
    let tampered = text.replace(&image_env.env.apache.spark.sha512, &"0".repeat(128));
    std::fs::write(&lock_file, tampered).expect("edit the lock");
    let output = image_env.run(&["build", "--locked", "hive-metastore"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "would differ from");
    assert_stderr_contains(&output, "artifact spark-3.1.1-bin-hadoop3.2.tgz sha512");
    assert_stderr_contains(&output, "imgforge lock");
}

#[test]
fn a_hand_broken_lock_and_a_newer_lock_are_explained() {
    let image_env = ImageEnv::new(&[]);
    assert_success(&image_env.run(&["lock"]));
    let lock_file = image_env.env.work_dir().join("imgforge.lock");
    let text = lock_text(&image_env);

    std::fs::write(
        &lock_file,
        text.replace("lock_version = 1", "lock_version = \"one\""),
    )
    .expect("break");
    let output = image_env.run(&["build", "--locked"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "imgforge.lock at line");

    std::fs::write(
        &lock_file,
        text.replace("lock_version = 1", "lock_version = 9"),
    )
    .expect("future");
    let output = image_env.run(&["build", "--locked"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "newer imgforge");

    std::fs::remove_file(&lock_file).expect("remove");
    let output = image_env.run(&["build", "--locked"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "imgforge.lock");
}

#[test]
fn the_metastore_inputs_are_fetched_while_the_s3a_jars_still_download() {
    // Both depend only on the Spark tarball's listing: with hadoop-aws's POM held back,
    // the metastore tarball is requested anyway — a run fetching one after the other would not
    // ask for it until the S3A selection (which reads that POM) was done.
    let image_env = ImageEnv::new(&[]);
    let server = &image_env.env.server;
    let pom = image_env.env.maven.hadoop_aws_pom.url_path.clone();
    let metastore = image_env.env.apache.hive.url_path.clone();
    server.inject(&pom, Fault::DelayHeaders(Duration::from_secs(10)));
    let mut command = image_env.env.imgforge();
    command
        .args(["--no-progress", "lock"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().expect("start imgforge lock");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let requests = server.requests();
        let pom_held = requests
            .iter()
            .any(|record| record.path == pom && record.method == "GET" && record.status == 0);
        let metastore_asked = requests
            .iter()
            .any(|record| record.path == metastore && record.method == "GET");
        if pom_held && metastore_asked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the metastore tarball was not requested while hadoop-aws's POM was held back: {:#?}",
            requests
                .iter()
                .map(|record| (&record.method, &record.path, record.status))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = crate::fetch::wait_with_timeout(child, Duration::from_secs(120));
    assert_success(&output);
    assert!(lock_text(&image_env).contains("aws-java-sdk-bundle-1.11.375.jar"));
}
