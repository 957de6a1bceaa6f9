//! What imgforge configures takes effect where Spark runs (issue 10): the Spark settings
//! read back from running containers of the real built images, the CA import on real
//! Dockerfile layouts and JREs, the JVM options variable, spark-hs's uid and group, and
//! several build targets in one run.

use crate::images::keytool_fingerprint;
use crate::support::conf_probe::read_spark_conf;
use crate::support::containers::{
    ContainerSpec, Finished, image_config, run_container, run_script,
};
use crate::support::docker::engine;
use crate::support::fixtures::{TarEntry, defaults, spark_dist_entries};
use crate::support::images::{EVENT_LOG_DIR, ImageEnv, S3_ENDPOINT, built, generate_cas};
use crate::support::prepared::publish_spark;

/// The Java-8-JRE-shaped base image `scripts/ci-services.sh` makes.
const JRE8_LAYOUT: &str = "imgforge-test/jre8-layout:latest";

/// The official spark-docker 3.3-shaped files, under `support/fixtures/spark-docker/`.
const SPARK_DOCKER_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/integration/support/fixtures/spark-docker"
);

/// The CA file of the builds here and the alias `[certs] aliases` gives it.
const CA_FILE: &str = "ca2.crt";
const CA_ALIAS: &str = "ca2.broadsoftware.com";

/// The default Spark fixture with `kubernetes/dockerfiles/spark/` shaped like the official
/// spark-docker 3.3 files (no java_image_tag, hard-coded FROM, no USER, gosu), published
/// over the default tarball of `image_env`'s mirror.
fn publish_spark_docker_layout(image_env: &ImageEnv) {
    let read = |name: &str| {
        std::fs::read(format!("{SPARK_DOCKER_DIR}/{name}"))
            .unwrap_or_else(|error| panic!("read the spark-docker fixture {name}: {error}"))
    };
    let top = format!(
        "spark-{}-bin-{}",
        defaults::SPARK_VERSION,
        defaults::SPARK_PACKAGE
    );
    let mut entries = spark_dist_entries(
        defaults::SPARK_VERSION,
        defaults::SPARK_PACKAGE,
        defaults::HADOOP_VERSION,
    );
    for entry in &mut entries {
        if let TarEntry::File { path, bytes, .. } = entry {
            if path.ends_with("kubernetes/dockerfiles/spark/Dockerfile") {
                *bytes = read("Dockerfile");
            } else if path.ends_with("kubernetes/dockerfiles/spark/entrypoint.sh") {
                *bytes = read("entrypoint.sh");
            }
        }
    }
    entries.push(TarEntry::executable(
        format!("{top}/kubernetes/dockerfiles/spark/gosu"),
        read("gosu"),
    ));
    publish_spark(
        &image_env.env,
        defaults::SPARK_VERSION,
        defaults::SPARK_PACKAGE,
        &entries,
    );
}

/// Fails unless keytool in `image` lists the CA under [`CA_ALIAS`] in the truststore
/// `store` (`-cacerts` or `-keystore <path>`), as `user`.
async fn assert_ca_trusted(image: &str, user: &str, store: &str, pem: &[u8]) {
    let engine = engine().await;
    let listed = run_script(
        &engine,
        image,
        user,
        &format!("keytool -list {store} -storepass changeit -alias {CA_ALIAS}"),
    )
    .await;
    listed.assert_success(&format!(
        "keytool -list {store} -alias {CA_ALIAS} in {image}"
    ));
    assert!(
        listed.stdout.contains("trustedCertEntry"),
        "{}",
        listed.describe()
    );
    let fingerprint = keytool_fingerprint(pem);
    assert!(
        listed.stdout.contains(&fingerprint),
        "{CA_ALIAS} in {image} is not {CA_FILE} (SHA-256 {fingerprint})\n{}",
        listed.describe()
    );
}

/// The `log4j.configuration` system property a JVM started by `image`'s entrypoint sees
/// when its own command line says `-Dlog4j.configuration=file:///job/log4j.properties`.
async fn log4j_property_with_a_job_option(image: &str) -> (String, Finished) {
    let engine = engine().await;
    let finished = run_container(
        &engine,
        &ContainerSpec::new(image).cmd(&[
            "java",
            "-Dlog4j.configuration=file:///job/log4j.properties",
            "-XshowSettings:properties",
            "-version",
        ]),
    )
    .await;
    finished.assert_success("java -XshowSettings:properties through the entrypoint");
    let value = finished
        .stderr
        .lines()
        .find_map(|line| line.trim().strip_prefix("log4j.configuration = "))
        .unwrap_or_else(|| panic!("no log4j.configuration property\n{}", finished.describe()))
        .to_string();
    (value, finished)
}

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

#[tokio::test]
async fn with_java_options_env_underscore_java_options_the_image_overrides_a_jobs_option() {
    // The shared build keeps the default, _JAVA_OPTIONS: the JVM reads it after its command
    // line, so the image's log4j configuration wins over the job's.
    let (value, finished) = log4j_property_with_a_job_option(&built().reference("spark")).await;
    assert_eq!(
        value,
        "file:///opt/spark/log4j.properties",
        "{}",
        finished.describe()
    );
}

#[test]
fn the_official_spark_docker_layout_builds_imports_the_ca_and_lets_job_options_win() {
    let certs = generate_cas(&[CA_FILE]);
    let mut image_env = ImageEnv::new(&certs);
    image_env.configure(|config| {
        config
            .set(
                "certs",
                "aliases",
                &format!("{{ \"{CA_FILE}\" = \"{CA_ALIAS}\" }}"),
            )
            .set_str("spark", "java_options_env", "JAVA_TOOL_OPTIONS");
    });
    publish_spark_docker_layout(&image_env);
    let report = image_env.build_json(&["spark", "spark-hs"]);
    assert_eq!(report.names(), ["spark", "spark-hs"]);
    let image = image_env.reference("spark");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = engine().await;
        // No USER line: the image runs as root, and the import went before ENTRYPOINT.
        let (_, config) = image_config(&engine, &image).await;
        assert_eq!(config.user.as_deref().unwrap_or_default(), "");
        assert_ca_trusted(&image, "0", "-cacerts", &certs[0].1).await;

        // The driver branch, through gosu, as spark, with JAVA_TOOL_OPTIONS and --verbose.
        let script = "set -e; cat > \"$SPARK_HOME/bin/spark-submit\" <<'LAUNCHER'\n\
             #!/bin/bash\n\
             printf 'uid=%s\\n' \"$(id -u)\"\n\
             printf 'JAVA_TOOL_OPTIONS=%s\\n' \"${JAVA_TOOL_OPTIONS-(unset)}\"\n\
             printf '_JAVA_OPTIONS=%s\\n' \"${_JAVA_OPTIONS-(unset)}\"\n\
             for argument in \"$@\"; do printf 'arg=%s\\n' \"$argument\"; done\n\
             LAUNCHER\n\
             chmod 0755 \"$SPARK_HOME/bin/spark-submit\"; exec /opt/entrypoint.sh driver --class X local:///x.jar";
        let driver = run_container(
            &engine,
            &ContainerSpec::new(&image)
                .entrypoint(&["bash", "-c", script])
                .user("0"),
        )
        .await;
        driver.assert_success("the spark-docker entrypoint's driver branch");
        let lines: Vec<&str> = driver.stdout.lines().collect();
        assert!(lines.contains(&"uid=185"), "gosu did not drop to spark\n{}", driver.describe());
        assert!(
            lines.contains(
                &"JAVA_TOOL_OPTIONS=-Dlog4j.configuration=file:///opt/spark/log4j.properties"
            ),
            "{}",
            driver.describe()
        );
        assert!(lines.contains(&"_JAVA_OPTIONS=(unset)"), "{}", driver.describe());
        let first_argument = lines.iter().find(|line| line.starts_with("arg="));
        assert_eq!(first_argument, Some(&"arg=--verbose"), "{}", driver.describe());

        // JAVA_TOOL_OPTIONS is read before the command line: the job's option wins.
        let (value, finished) = log4j_property_with_a_job_option(&image).await;
        assert_eq!(value, "file:///job/log4j.properties", "{}", finished.describe());

        // spark-defaults.conf is where Spark reads it in this layout too.
        let conf = read_spark_conf(&engine, ContainerSpec::new(&image).user("185")).await;
        assert_eq!(
            conf.properties_file.as_deref(),
            Some("/opt/spark/conf/spark-defaults.conf"),
            "{}",
            conf.finished.describe()
        );
        assert_eq!(conf.get("spark.hadoop.fs.s3a.committer.name"), "directory");

        // This spark image already names uid 185 `spark` (group spark): spark-hs keeps the
        // name and moves its primary group to 0.
        let whoami = run_container(
            &engine,
            &ContainerSpec::new(&image_env.reference("spark-hs"))
                .entrypoint(&["sh", "-c", "id -u; id -un; id -g"]),
        )
        .await;
        whoami.assert_success("id in spark-hs");
        assert_eq!(
            whoami.stdout.lines().collect::<Vec<_>>(),
            ["185", "spark", "0"],
            "{}",
            whoami.describe()
        );
    });
}

#[test]
fn a_java_8_jre_layout_gets_the_ca_in_its_own_cacerts_and_several_targets_build_in_order() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = engine().await;
        let (_, config) = image_config(&engine, JRE8_LAYOUT).await;
        assert!(
            config
                .env
                .unwrap_or_default()
                .contains(&"JAVA_HOME=/opt/java/jre8".to_string()),
            "{JRE8_LAYOUT} is not the Java 8 layout scripts/ci-services.sh makes; run it again"
        );
    });
    let certs = generate_cas(&[CA_FILE]);
    let mut image_env = ImageEnv::new(&certs);
    image_env.configure(|config| {
        config
            .set_str("images.spark", "base", JRE8_LAYOUT)
            .set("images.spark", "java_major", "8")
            .set(
                "certs",
                "aliases",
                &format!("{{ \"{CA_FILE}\" = \"{CA_ALIAS}\" }}"),
            );
    });
    // Two targets, given out of order: built in dependency order, in one run.
    let report = image_env.build_json(&["spark-hs", "spark"]);
    assert_eq!(report.names(), ["spark", "spark-hs"]);

    runtime.block_on(async {
        let engine = engine().await;
        for image in ["spark", "spark-hs"] {
            let reference = image_env.reference(image);
            // The JRE's own cacerts, at $JAVA_HOME/lib/security (no jre/ there), read by
            // the image's user.
            assert_ca_trusted(
                &reference,
                "185",
                "-keystore /opt/java/jre8/lib/security/cacerts",
                &certs[0].1,
            )
            .await;
        }
        // This keytool has no -cacerts, as Java 8's: the import did not use it.
        let refused = run_script(
            &engine,
            &image_env.reference("spark"),
            "185",
            "keytool -list -cacerts -storepass changeit",
        )
        .await;
        assert_ne!(refused.exit_code, 0, "{}", refused.describe());
        // spark-hs on this base too: uid 185 named spark, primary group 0.
        let whoami = run_container(
            &engine,
            &ContainerSpec::new(&image_env.reference("spark-hs")).entrypoint(&[
                "sh",
                "-c",
                "id -un; id -g",
            ]),
        )
        .await;
        whoami.assert_success("id in spark-hs");
        assert_eq!(
            whoami.stdout.lines().collect::<Vec<_>>(),
            ["spark", "0"],
            "{}",
            whoami.describe()
        );
    });
}
