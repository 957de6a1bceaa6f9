//! What imgforge configures takes effect where Spark runs (issue 10): the Spark settings
//! read back from running containers of the real built images, the CA import on real
//! Dockerfile layouts and JREs, the JVM options variable, spark-hs's uid and group, and
//! several build targets in one run.

use crate::support::conf_probe::read_spark_conf;
use crate::support::containers::{ContainerSpec, image_config, run_container};
use crate::support::docker::engine;
use crate::support::images::{EVENT_LOG_DIR, S3_ENDPOINT, built};

/// The settings every image shares (`assemble::spark_settings`), as the shared build has them.
fn shared_settings() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "spark.hadoop.mapreduce.outputcommitter.factory.scheme.s3a",
            "org.apache.hadoop.fs.s3a.commit.S3ACommitterFactory",
        ),
        ("spark.hadoop.fs.s3a.committer.name", "directory"),
        (
            "spark.hadoop.fs.s3a.committer.staging.tmp.path",
            "/tmp/spark_staging",
        ),
        ("spark.hadoop.fs.s3a.buffer.dir", "/tmp/spark_local_buf"),
        (
            "spark.hadoop.fs.s3a.committer.staging.conflict-mode",
            "fail",
        ),
        (
            "spark.hadoop.fs.s3a.impl",
            "org.apache.hadoop.fs.s3a.S3AFileSystem",
        ),
        ("spark.hadoop.fs.s3a.path.style.access", "true"),
        ("spark.hadoop.fs.s3a.endpoint", S3_ENDPOINT),
    ]
}

/// No credential of any kind is baked into an image's configuration or environment.
async fn assert_no_credentials(
    image: &str,
    properties: &std::collections::BTreeMap<String, String>,
) {
    for key in properties.keys() {
        assert!(
            !key.contains("access.key")
                && !key.contains("secret.key")
                && !key.contains("session.token"),
            "{image} bakes a credential setting: {key}"
        );
    }
    let engine = engine().await;
    let (_, config) = image_config(&engine, image).await;
    for entry in config.env.unwrap_or_default() {
        assert!(
            !entry.starts_with("AWS_") && !entry.starts_with("S3_"),
            "{image} bakes {entry:?} into its environment"
        );
    }
}

#[tokio::test]
async fn spark_image_carries_spark_defaults_where_spark_reads_them() {
    let image = built().reference("spark");
    let engine = engine().await;
    // As the image's own user, with the image's own environment (SPARK_HOME=/opt/spark).
    let conf = read_spark_conf(&engine, ContainerSpec::new(&image)).await;
    assert_eq!(
        conf.conf_dir,
        "/opt/spark/conf",
        "{}",
        conf.finished.describe()
    );
    assert_eq!(
        conf.properties_file.as_deref(),
        Some("/opt/spark/conf/spark-defaults.conf"),
        "Spark finds no spark-defaults.conf in the spark image\n{}",
        conf.finished.describe()
    );
    for (key, value) in shared_settings() {
        assert_eq!(conf.get(key), value, "{key}");
    }
    // The event log settings are the jobs' (and the operator manifests'), not the image's.
    assert!(
        !conf
            .properties
            .contains_key("spark.history.fs.logDirectory")
    );
    assert_no_credentials(&image, &conf.properties).await;

    // SPARK_CONF_DIR semantics: a configuration directory mounted elsewhere (as the driver
    // pod on Kubernetes mounts its own) replaces the image's, so these settings are gone.
    let mounted = tempfile::tempdir().expect("temp dir");
    let replaced = read_spark_conf(
        &engine,
        ContainerSpec::new(&image)
            .env("SPARK_CONF_DIR", "/opt/spark/mounted-conf")
            .bind(mounted.path(), "/opt/spark/mounted-conf"),
    )
    .await;
    assert_eq!(replaced.conf_dir, "/opt/spark/mounted-conf");
    assert_eq!(
        replaced.properties_file,
        None,
        "{}",
        replaced.finished.describe()
    );
}

#[tokio::test]
async fn spark_hs_reads_the_event_log_directory_and_the_s3a_settings_from_its_conf() {
    let image = built().reference("spark-hs");
    let engine = engine().await;
    let conf = read_spark_conf(&engine, ContainerSpec::new(&image)).await;
    assert_eq!(
        conf.properties_file.as_deref(),
        Some("/opt/spark/conf/spark-defaults.conf"),
        "{}",
        conf.finished.describe()
    );
    assert_eq!(conf.get("spark.history.fs.logDirectory"), EVENT_LOG_DIR);
    for (key, value) in shared_settings() {
        assert_eq!(conf.get(key), value, "{key}");
    }
    assert_no_credentials(&image, &conf.properties).await;

    // Credentials come at run time, through the environment the S3A chain reads: the
    // history server's command (through the image's entrypoint) sees them.
    let finished = run_container(
        &engine,
        &ContainerSpec::new(&image)
            .env("AWS_ACCESS_KEY_ID", "itest-access")
            .env("AWS_SECRET_ACCESS_KEY", "itest-secret")
            .cmd(&["sh", "-c", "printf '%s\\n' \"$AWS_ACCESS_KEY_ID\""]),
    )
    .await;
    finished.assert_success("the entrypoint with credentials in the environment");
    assert_eq!(
        finished.stdout.lines().last(),
        Some("itest-access"),
        "{}",
        finished.describe()
    );
}
