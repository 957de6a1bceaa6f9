//! The hive-metastore image `imgforge build` makes, proven by running containers from it: its
//! user, the absence of sudo, its truststore and jars, and its launch script — which names
//! each missing variable, and against a real PostgreSQL on the host's loopback (the container
//! shares the host's network) creates the role, database and schema once, with the recording
//! doubles of `schematool` and `start-metastore` the shared build put in the image.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::images::{assert_truststore_holds_the_cas, sha256_in};
use crate::support::containers::{
    ContainerSpec, Finished, image_config, run_container, run_script,
};
use crate::support::docker::engine;
use crate::support::images::{SLF4J_BINDING, built};
use crate::support::postgres::{ADMIN_PASSWORD, ADMIN_USER, PostgresServer};

/// Every variable launch.sh requires.
const REQUIRED: [&str; 9] = [
    "POSTGRES_HOST",
    "POSTGRES_ADMIN_USER",
    "POSTGRES_ADMIN_PASSWORD",
    "METASTORE_DB",
    "METASTORE_DB_USER",
    "METASTORE_DB_PASSWORD",
    "S3_ENDPOINT",
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
];

const METASTORE_DB: &str = "itest_metastore";
const METASTORE_DB_USER: &str = "itest_hive";
const METASTORE_DB_PASSWORD: &str = "hive-pw-&<'\"x>-9Zq";

#[tokio::test]
async fn metastore_runs_as_hive_without_sudo() {
    let image = built().reference("hive-metastore");
    let engine = engine().await;
    let (_, config) = image_config(&engine, &image).await;
    assert_eq!(
        config.user.as_deref(),
        Some("1000"),
        "numeric, for runAsNonRoot"
    );
    let ports = config.exposed_ports.clone().unwrap_or_default();
    assert!(ports.iter().any(|port| port == "9083/tcp"), "{ports:?}");

    let spec = ContainerSpec::new(&image).entrypoint(&[
        "bash",
        "-c",
        "id -u; id -un; if command -v sudo || [ -e /etc/sudoers.d/hive ]; then echo sudo-present; fi",
    ]);
    let finished = run_container(&engine, &spec).await;
    finished.assert_success("id in the metastore image");
    let lines: Vec<&str> = finished.stdout.lines().collect();
    assert_eq!(lines, ["1000", "hive"], "{}", finished.describe());
}

#[tokio::test]
async fn metastore_truststore_holds_each_ca() {
    assert_truststore_holds_the_cas(&built().reference("hive-metastore"), "1000").await;
}

#[tokio::test]
async fn metastore_lib_has_the_s3a_and_jdbc_jars_and_no_competing_slf4j_binding() {
    let built = built();
    let image = built.reference("hive-metastore");
    let jars = [
        (
            "/opt/hive-metastore/lib/hadoop-aws-3.2.0.jar".to_string(),
            &built.hadoop_aws_sha256,
        ),
        (
            "/opt/hive-metastore/lib/aws-java-sdk-bundle-1.11.375.jar".to_string(),
            &built.aws_sdk_sha256,
        ),
        (
            "/opt/hive-metastore/lib/postgresql-42.2.19.jar".to_string(),
            &built.postgresql_sha256,
        ),
    ];
    let paths: Vec<String> = jars.iter().map(|(path, _)| path.clone()).collect();
    let digests = sha256_in(&image, &paths).await;
    for (path, expected) in &jars {
        let found = digests
            .iter()
            .find(|(listed, _)| listed == path)
            .unwrap_or_else(|| panic!("{path} not summed: {digests:?}"));
        assert_eq!(&found.1, *expected, "{path} differs from the published jar");
    }

    // Both fixtures (metastore lib/ and Hadoop common/lib/) carry the binding.
    let engine = engine().await;
    let found = run_script(
        &engine,
        &image,
        "0",
        "find / -xdev \\( -name 'slf4j-log4j12-*.jar' -o -name 'slf4j-reload4j-*.jar' \\) -print; \
         ls /opt/hive-metastore/lib /opt/hadoop/share/hadoop/common/lib",
    )
    .await;
    found.assert_success("looking for SLF4J bindings");
    assert!(
        !found.stdout.contains(SLF4J_BINDING),
        "{SLF4J_BINDING} is in the image\n{}",
        found.describe()
    );
    // The rest of those folders did arrive (the search looked in the right places).
    assert!(found.stdout.contains("hive-standalone-metastore-3.0.0.jar"));
    assert!(found.stdout.contains("guava-27.0-jre.jar"));
}

#[tokio::test]
async fn launch_without_environment_names_each_missing_variable() {
    let image = built().reference("hive-metastore");
    let engine = engine().await;
    let finished = run_container(&engine, &ContainerSpec::new(&image)).await;
    assert_eq!(finished.exit_code, 1, "{}", finished.describe());
    for name in REQUIRED {
        assert!(
            finished
                .stderr
                .lines()
                .any(|line| line
                    .contains(&format!("required environment variable {name} is not set"))),
            "no line names {name}\n{}",
            finished.describe()
        );
    }
    assert!(
        finished
            .stderr
            .contains("9 required environment variable(s) missing")
    );
}

/// The launch script's container, on the host's network, recording into `record_dir`.
fn launch_spec(image: &str, server: &PostgresServer, record_dir: &Path) -> ContainerSpec {
    let port = server.port().to_string();
    ContainerSpec::new(image)
        .host_network()
        .bind(record_dir, "/record")
        .env("FIXTURE_RECORD", "/record/record")
        .env("POSTGRES_HOST", server.host())
        .env("POSTGRES_PORT", &port)
        .env("POSTGRES_ADMIN_USER", ADMIN_USER)
        .env("POSTGRES_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("POSTGRES_WAIT_SECONDS", "30")
        .env("METASTORE_DB", METASTORE_DB)
        .env("METASTORE_DB_USER", METASTORE_DB_USER)
        .env("METASTORE_DB_PASSWORD", METASTORE_DB_PASSWORD)
        .env("S3_ENDPOINT", "http://127.0.0.1:9/")
        .env("S3_ACCESS_KEY", "itest-access")
        .env("S3_SECRET_KEY", "itest-secret")
        // What Kubernetes injects for a Service named `metastore`; launch.sh must drop it.
        .env("METASTORE_PORT", "tcp://10.0.0.7:9083")
}

/// The recorded invocations: (tool, fields).
fn records(record_dir: &Path) -> Vec<(String, BTreeMap<String, String>)> {
    let text = std::fs::read_to_string(record_dir.join("record")).unwrap_or_default();
    text.lines()
        .map(|line| {
            let mut fields = line.split('\t');
            let tool = fields.next().unwrap_or_default().to_string();
            let fields = fields
                .filter_map(|field| field.split_once('='))
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect();
            (tool, fields)
        })
        .collect()
}

fn count(records: &[(String, BTreeMap<String, String>)], tool: &str) -> usize {
    records.iter().filter(|(name, _)| name == tool).count()
}

fn assert_started(finished: &Finished, what: &str) {
    finished.assert_success(what);
    assert!(
        finished.stderr.contains("starting the metastore"),
        "{what}\n{}",
        finished.describe()
    );
}

#[tokio::test]
async fn first_start_creates_role_database_and_schema_and_a_second_start_does_not_reinitialise() {
    let image = built().reference("hive-metastore");
    let engine = engine().await;
    let server = PostgresServer::start();
    let record_dir = tempfile::tempdir().expect("record dir");
    // The container's hive user (uid 1000) writes the record.
    std::fs::set_permissions(record_dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("open the record dir");

    let first = run_container(&engine, &launch_spec(&image, &server, record_dir.path())).await;
    assert_started(&first, "the first start");
    assert!(
        first.stderr.contains("initialising the metastore schema"),
        "{}",
        first.describe()
    );
    let after_first = records(record_dir.path());
    assert_eq!(count(&after_first, "schematool"), 1, "{after_first:?}");
    assert_eq!(count(&after_first, "start-metastore"), 1, "{after_first:?}");
    for (tool, fields) in &after_first {
        assert_eq!(fields["METASTORE_HOME"], "/opt/hive-metastore", "{tool}");
        assert_eq!(fields["METASTORE_PORT"], "(unset)", "{tool}");
        assert_eq!(fields["POSTGRES_ADMIN_PASSWORD"], "(unset)", "{tool}");
    }
    let (_, schematool) = after_first
        .iter()
        .find(|(tool, _)| tool == "schematool")
        .expect("schematool ran");
    assert_eq!(schematool["args"], "-dbType postgres -initSchema");

    assert_eq!(
        server.query(
            "postgres",
            &format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{METASTORE_DB_USER}'"),
        ),
        "t",
        "the role was created with LOGIN"
    );
    assert_eq!(
        server.query(
            "postgres",
            &format!(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{METASTORE_DB}'"
            ),
        ),
        METASTORE_DB_USER,
        "the database belongs to the metastore's role"
    );
    let version_rows = || {
        server.query_as(
            METASTORE_DB_USER,
            METASTORE_DB_PASSWORD,
            METASTORE_DB,
            "SELECT count(*) FROM \"VERSION\"",
        )
    };
    assert_eq!(version_rows(), "1");

    // A new container on the same database.
    let second = run_container(&engine, &launch_spec(&image, &server, record_dir.path())).await;
    assert_started(&second, "the second start");
    assert!(
        second
            .stderr
            .contains("schema is present in database itest_metastore; not initialising it"),
        "{}",
        second.describe()
    );
    let after_second = records(record_dir.path());
    assert_eq!(
        count(&after_second, "schematool"),
        1,
        "schematool ran again: {after_second:?}"
    );
    assert_eq!(
        count(&after_second, "start-metastore"),
        2,
        "{after_second:?}"
    );
    assert_eq!(version_rows(), "1");
    assert_eq!(
        server.query(
            "postgres",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{METASTORE_DB_USER}'"),
        ),
        "1"
    );
}
