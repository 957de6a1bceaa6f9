//! One real Spark: the jars, `bin/` and `sbin/` of a Spark 3.5.3 release (from the `pyspark`
//! source distribution `scripts/ci-services.sh` downloads once, sha256-pinned) assembled with
//! the project's Spark 3.5 fixture files (`kubernetes/dockerfiles/spark`, `conf/` templates)
//! into a distribution the loopback mirror serves; imgforge builds spark and spark-hs from it
//! on the real engine. A job runs through the patched entrypoint in driver mode with a local
//! master (`spark-sql -e`), the settings imgforge configures are read back from the running
//! JVM with `SET`, and the spark-hs history server lists the job's event log over its REST
//! API. This is the one test that proves the images run Spark.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use flate2::Compression;
use imgforge::cli::GlobalArgs;
use imgforge::config::Config;
use serde_json::Value;

use crate::support::containers::{ContainerSpec, run_container};
use crate::support::docker::engine;
use crate::support::fixtures::{
    ChecksumStyle, Family, SPARK_35, TarEntry, chain_for, tgz_with_level,
};
use crate::support::images::{ImageEnv, JRE_BASE};

/// The Spark release whose jars the pyspark sdist carries.
const SPARK_VERSION: &str = "3.5.3";

/// Where `scripts/ci-services.sh` keeps the verified pyspark sdist.
const PYSPARK_SDIST: &str = "/var/cache/imgforge-ci/pyspark-3.5.3/pyspark-3.5.3.tar.gz";

/// The event log directory, inside both containers (the same host folder is mounted there).
const EVENTS_IN_CONTAINER: &str = "/spark-events";

/// The Spark 3.5 fixture family, at the version of the real jars.
const REAL_35: Family = Family {
    spark_version: SPARK_VERSION,
    ..SPARK_35
};

/// `(path under the distribution, bytes, executable)` of every file of the sdist's
/// `deps/jars`, `deps/bin` and `deps/sbin` (Windows `.cmd` scripts left out). The system
/// `tar` unpacks it: its native gzip takes seconds where an unoptimised test build takes
/// minutes.
fn real_spark_files() -> Vec<(String, Vec<u8>, bool)> {
    assert!(
        Path::new(PYSPARK_SDIST).is_file(),
        "{PYSPARK_SDIST} is missing; run scripts/ci-services.sh (as root) to download the \
         pinned pyspark {SPARK_VERSION} source distribution"
    );
    let scratch = tempfile::tempdir().expect("scratch folder");
    let deps = format!("pyspark-{SPARK_VERSION}/deps");
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(PYSPARK_SDIST)
        .arg("-C")
        .arg(scratch.path())
        .args(["jars", "bin", "sbin"].map(|folder| format!("{deps}/{folder}")))
        .status()
        .expect("run tar");
    assert!(
        status.success(),
        "tar -xzf {PYSPARK_SDIST} failed: {status}"
    );
    let mut files = Vec::new();
    for folder in ["jars", "bin", "sbin"] {
        let dir = scratch.path().join(&deps).join(folder);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| {
                entry
                    .expect("an sdist file")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .filter(|name| !name.ends_with(".cmd"))
            .collect();
        names.sort();
        for name in names {
            let bytes = std::fs::read(dir.join(&name)).expect("read an sdist file");
            files.push((format!("{folder}/{name}"), bytes, folder != "jars"));
        }
    }
    assert!(
        files
            .iter()
            .any(|(path, _, _)| path == "jars/spark-core_2.12-3.5.3.jar"),
        "{PYSPARK_SDIST} holds no jars/spark-core_2.12-3.5.3.jar"
    );
    files
}

/// The distribution tarball: the fixture family's files with the real `jars/`, `bin/`, `sbin/`.
fn real_spark_tarball() -> Vec<u8> {
    let top = REAL_35.top();
    let real = real_spark_files();
    let mut entries: Vec<TarEntry> = REAL_35
        .entries()
        .into_iter()
        .filter(|entry| {
            let path = entry.path();
            !["jars/", "bin/", "sbin/"]
                .iter()
                .any(|folder| path.starts_with(&format!("{top}/{folder}")))
        })
        .collect();
    for (relative, bytes, executable) in real {
        let path = format!("{top}/{relative}");
        entries.push(if executable {
            TarEntry::executable(path, bytes)
        } else {
            TarEntry::file(path, bytes)
        });
    }
    // Stored, not compressed: jars are compressed already, and deflate in an unoptimised
    // test build would take minutes.
    tgz_with_level(&entries, Compression::none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_spark_runs_a_job_with_the_settings_and_the_history_server_lists_it() {
    let engine = engine().await;
    let mut image_env = ImageEnv::new(&[]);
    let tarball = real_spark_tarball();
    image_env.env.apache.tree.spark(
        SPARK_VERSION,
        REAL_35.package,
        &tarball,
        ChecksumStyle::GpgPrintMd,
    );
    drop(tarball);
    image_env
        .env
        .maven
        .tree
        .publish_aws_chain(&chain_for(&REAL_35));
    image_env.configure(|config| {
        config
            .set_str("spark", "version", SPARK_VERSION)
            .set_str("spark", "package", REAL_35.package)
            .set("images", "tags", "[\"{spark_version}\"]")
            // The metastore holds no Spark: its tags name its own version.
            .set("images.hive-metastore", "tags", "[\"{hive_version}\"]")
            .set_str("images.spark", "java_image_tag", "17-jre")
            .set_str(
                "images.spark-hs",
                "event_log_dir",
                &format!("file://{EVENTS_IN_CONTAINER}"),
            )
            .set_str("s3a", "endpoint", "http://minio.itest.invalid:9000");
    });
    let config = Config::load_with_env(
        &GlobalArgs {
            config: Some(image_env.env.work_dir().join("imgforge.toml")),
            ..Default::default()
        },
        &|_| None,
    )
    .expect("the test configuration loads");

    let spark = image_env.build_json(&["spark"]);
    let spark_reference = spark.image("spark").tags[0].clone();
    let hs = image_env.build_json(&["spark-hs"]);
    let hs_reference = hs.image("spark-hs").tags[0].clone();
    assert_ne!(spark_reference, JRE_BASE);

    // The event log folder both containers mount; uid 185 writes it.
    let events = tempfile::tempdir().expect("event log folder");
    std::fs::set_permissions(events.path(), std::fs::Permissions::from_mode(0o777))
        .expect("open the event log folder");

    // The job: spark-sql through the patched entrypoint's driver mode, local master, event
    // logs as a job on the operator gets them (event_log_settings).
    let settings = imgforge::assemble::spark_settings(&config);
    let mut statements: Vec<String> = settings
        .iter()
        // Backquoted: `conflict-mode` is not a plain identifier to the SQL parser.
        .map(|(key, _)| format!("SET `{key}`"))
        .collect();
    statements.push("SELECT 40 + 2 AS answer".into());
    let query = statements.join("; ");
    let mut command: Vec<String> = vec![
        "driver".into(),
        "--master".into(),
        "local[1]".into(),
        "--class".into(),
        "org.apache.spark.sql.hive.thriftserver.SparkSQLCLIDriver".into(),
    ];
    for (key, value) in imgforge::assemble::event_log_settings(&config) {
        command.push("--conf".into());
        command.push(format!("{key}={value}"));
    }
    command.extend(["spark-internal".into(), "-e".into(), query]);
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let driver = run_container(
        &engine,
        &ContainerSpec::new(&spark_reference)
            .env("SPARK_DRIVER_BIND_ADDRESS", "127.0.0.1")
            .bind(events.path(), EVENTS_IN_CONTAINER)
            .cmd(&command),
    )
    .await;
    driver.assert_success("spark-sql in driver mode");

    // Every setting imgforge configures is what the running JVM has.
    let lines: Vec<&str> = driver.stdout.lines().map(str::trim_end).collect();
    for (key, value) in &settings {
        let expected = format!("{key}\t{value}");
        assert!(
            lines.contains(&expected.as_str()),
            "the running Spark does not have {key} = {value}\n{}",
            driver.describe()
        );
    }
    assert!(
        settings.contains(&(
            "spark.hadoop.fs.s3a.endpoint",
            "http://minio.itest.invalid:9000".to_string()
        )) && settings.contains(&("spark.hadoop.fs.s3a.committer.name", "directory".into())),
        "{settings:?}"
    );
    assert!(lines.contains(&"42"), "{}", driver.describe());
    assert!(
        !driver.stderr.contains("Using properties file: null"),
        "spark-submit found no spark-defaults.conf\n{}",
        driver.describe()
    );

    // The job's event log, complete.
    let logs: Vec<String> = std::fs::read_dir(events.path())
        .expect("event log folder")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(logs.len(), 1, "one event log expected: {logs:?}");
    let application = &logs[0];
    assert!(
        application.starts_with("local-") && !application.ends_with(".inprogress"),
        "{logs:?}"
    );

    // The history server of the spark-hs image, configured by imgforge only, lists it.
    let listing = run_container(
        &engine,
        &ContainerSpec::new(&hs_reference)
            .bind(events.path(), EVENTS_IN_CONTAINER)
            .cmd(&["bash", "-c", HISTORY_SERVER_SCRIPT]),
    )
    .await;
    listing.assert_success("the history server listing the event log");
    let body = listing
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("LISTING:"))
        .skip(1)
        .collect::<Vec<_>>()
        .join("\n");
    let applications: Value = serde_json::from_str(&body).unwrap_or_else(|error| {
        panic!("REST answer is not JSON ({error})\n{}", listing.describe())
    });
    let applications = applications.as_array().expect("an array of applications");
    assert_eq!(applications.len(), 1, "{applications:?}");
    assert_eq!(applications[0]["id"], application.as_str());
    assert_eq!(applications[0]["attempts"][0]["completed"], true);
}

/// Start the image's history server (its CMD) in the background, then ask its REST API for
/// the applications until it lists one (bash's `/dev/tcp`: the image has no HTTP client);
/// print the answer after a `LISTING:` line.
const HISTORY_SERVER_SCRIPT: &str = r#"set -u
/opt/spark/bin/spark-class org.apache.spark.deploy.history.HistoryServer >/tmp/history.log 2>&1 &
for attempt in $(seq 1 150); do
  answer=$( (exec 3<>/dev/tcp/127.0.0.1/18080 \
      && printf 'GET /api/v1/applications HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 \
      && cat <&3) 2>/dev/null | tr -d '\r')
  body=$(printf '%s\n' "$answer" | sed '1,/^$/d')
  case "$body" in
    *'"id"'*) echo "LISTING:"; printf '%s\n' "$body"; exit 0 ;;
  esac
  sleep 1
done
echo "the history server listed no application after 150 attempts" >&2
cat /tmp/history.log >&2
exit 1
"#;
