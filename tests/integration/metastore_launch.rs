//! The hive-metastore image's `launch.sh`, run directly under bash against a real PostgreSQL
//! started by each test, with test doubles of the metastore's `schematool` and
//! `start-metastore` (tests/metastore_launch/metastore/bin) that record what they were asked
//! to do. The doubled `schematool -initSchema` really creates the `"VERSION"` table, so the
//! script's "is the schema there?" check runs against a real database.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::env::{run_command, stderr_text, stdout_text};
use crate::support::postgres::{self, ADMIN_PASSWORD, ADMIN_USER, PostgresServer};

const LAUNCH_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/dockerfiles/hive-metastore/launch.sh"
);
const FIXTURE_BIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/metastore_launch/metastore/bin"
);
const RUN_TIMEOUT: Duration = Duration::from_secs(120);

const METASTORE_DB: &str = "hive_metastore";
const METASTORE_DB_USER: &str = "hive_user";
// Secrets hold characters XML and shells treat specially, so escaping is exercised.
const METASTORE_DB_PASSWORD: &str = "db-pw-&<'\"x>-Qm4";
const S3_ACCESS_KEY: &str = "access-key-AKIA7Y2";
const S3_SECRET_KEY: &str = "s3-secret-&amp;<z>-Lp9";
const S3_ENDPOINT: &str = "http://127.0.0.1:9000/?a=1&b=2";

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

/// A metastore home (copies of the test doubles, an empty `conf/`) and a record file.
struct Scenario {
    directory: tempfile::TempDir,
    env: BTreeMap<String, String>,
    path: String,
}

impl Scenario {
    /// A scenario whose environment holds every required variable, pointing PostgreSQL at
    /// `host:port`.
    fn new(host: &str, port: u16, bin_dir: Option<&Path>) -> Scenario {
        let directory = tempfile::Builder::new()
            .prefix("imgforge-launch-")
            .tempdir()
            .expect("create the scenario directory");
        let bin = directory.path().join("metastore/bin");
        std::fs::create_dir_all(&bin).expect("create bin/");
        std::fs::create_dir_all(directory.path().join("metastore/conf")).expect("create conf/");
        for name in ["schematool", "start-metastore", "fixture-common.sh"] {
            let target = bin.join(name);
            std::fs::copy(Path::new(FIXTURE_BIN).join(name), &target).expect("copy a double");
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .expect("make a double executable");
        }
        let mut path = String::new();
        if let Some(bin_dir) = bin_dir {
            path.push_str(&bin_dir.display().to_string());
            path.push(':');
        }
        path.push_str("/usr/local/bin:/usr/bin:/bin");
        let mut env = BTreeMap::new();
        for (name, value) in [
            ("POSTGRES_HOST", host),
            ("POSTGRES_ADMIN_USER", ADMIN_USER),
            ("POSTGRES_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("METASTORE_DB", METASTORE_DB),
            ("METASTORE_DB_USER", METASTORE_DB_USER),
            ("METASTORE_DB_PASSWORD", METASTORE_DB_PASSWORD),
            ("S3_ENDPOINT", S3_ENDPOINT),
            ("S3_ACCESS_KEY", S3_ACCESS_KEY),
            ("S3_SECRET_KEY", S3_SECRET_KEY),
            ("POSTGRES_WAIT_SECONDS", "20"),
        ] {
            env.insert(name.to_owned(), value.to_owned());
        }
        env.insert("POSTGRES_PORT".to_owned(), port.to_string());
        Scenario {
            directory,
            env,
            path,
        }
    }

    fn for_server(server: &PostgresServer) -> Scenario {
        Scenario::new(server.host(), server.port(), Some(server.bin_dir()))
    }

    fn set(&mut self, name: &str, value: &str) -> &mut Scenario {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    fn remove(&mut self, name: &str) -> &mut Scenario {
        self.env.remove(name);
        self
    }

    fn metastore_home(&self) -> PathBuf {
        self.directory.path().join("metastore")
    }

    fn record_path(&self) -> PathBuf {
        self.directory.path().join("record")
    }

    /// Runs launch.sh under bash with exactly this scenario's environment; returns its output
    /// and how long it ran.
    fn launch(&self) -> (Output, Duration) {
        let mut command = Command::new("bash");
        command
            .arg(LAUNCH_SCRIPT)
            .env_clear()
            .env("PATH", &self.path)
            .env("METASTORE_HOME", self.metastore_home())
            .env("FIXTURE_RECORD", self.record_path())
            .envs(&self.env)
            .current_dir(self.directory.path());
        let started = Instant::now();
        let output = run_command(command, RUN_TIMEOUT);
        (output, started.elapsed())
    }

    /// The recorded invocations, each split into its tool name and `key=value` fields.
    fn records(&self) -> Vec<(String, BTreeMap<String, String>)> {
        let text = std::fs::read_to_string(self.record_path()).unwrap_or_default();
        text.lines()
            .map(|line| {
                let mut fields = line.split('\t');
                let tool = fields.next().unwrap_or_default().to_owned();
                let values = fields
                    .filter_map(|field| field.split_once('='))
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
                    .collect();
                (tool, values)
            })
            .collect()
    }

    fn records_of(&self, tool: &str) -> Vec<BTreeMap<String, String>> {
        self.records()
            .into_iter()
            .filter(|(name, _)| name == tool)
            .map(|(_, fields)| fields)
            .collect()
    }
}

fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        stdout_text(output),
        stderr_text(output)
    )
}

/// Fails unless no secret value appears in either stream.
fn assert_no_secret_echoed(output: &Output) {
    let text = format!("{}{}", stdout_text(output), stderr_text(output));
    for secret in [
        ADMIN_PASSWORD,
        METASTORE_DB_PASSWORD,
        S3_SECRET_KEY,
        S3_ACCESS_KEY,
    ] {
        assert!(
            !text.contains(secret),
            "a secret was echoed\n{}",
            describe(output)
        );
    }
}

/// The lines of `text` in which `name` appears as a whole variable name.
fn lines_naming<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|line| {
            line.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .any(|word| word == name)
        })
        .collect()
}

/// The `<property>` names and values of a Hadoop-style configuration file, which must be
/// well-formed XML.
fn site_properties(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).expect("read metastore-site.xml");
    let document = roxmltree::Document::parse(&text)
        .unwrap_or_else(|error| panic!("metastore-site.xml is not valid XML ({error}):\n{text}"));
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "configuration");
    root.children()
        .filter(|node| node.has_tag_name("property"))
        .map(|property| {
            let child = |tag: &str| {
                property
                    .children()
                    .find(|node| node.has_tag_name(tag))
                    .and_then(|node| node.text())
                    .unwrap_or_default()
                    .to_owned()
            };
            (child("name"), child("value"))
        })
        .collect()
}

#[test]
fn missing_variables_are_each_named_on_one_line_without_echoing_secrets() {
    let mut scenario = Scenario::new("127.0.0.1", postgres::free_port(), None);
    let missing = [
        "POSTGRES_ADMIN_USER",
        "METASTORE_DB",
        "METASTORE_DB_PASSWORD",
        "S3_ENDPOINT",
        "S3_ACCESS_KEY",
    ];
    for name in missing {
        scenario.remove(name);
    }
    // Set but empty counts as missing.
    scenario.set("METASTORE_DB_USER", "");
    let (output, _) = scenario.launch();
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = stderr_text(&output);
    for name in missing.iter().chain(&["METASTORE_DB_USER"]) {
        let lines = lines_naming(&stderr, name);
        assert_eq!(
            lines.len(),
            1,
            "{name} should be named on one line\n{stderr}"
        );
        assert!(lines[0].contains("not set"), "{}", lines[0]);
    }
    for name in REQUIRED
        .iter()
        .filter(|name| !missing.contains(name) && **name != "METASTORE_DB_USER")
    {
        assert!(
            lines_naming(&stderr, name).is_empty(),
            "{name} is set and must not be reported\n{stderr}"
        );
    }
    assert_no_secret_echoed(&output);
    assert!(
        !scenario
            .metastore_home()
            .join("conf/metastore-site.xml")
            .exists(),
        "no configuration may be written when variables are missing"
    );
    assert!(scenario.records().is_empty(), "nothing may be started");
}

#[test]
fn invalid_values_are_rejected_naming_the_variable_not_the_value() {
    let port = postgres::free_port();
    let mut level = Scenario::new("127.0.0.1", port, None);
    level.set("LOG_LEVEL", "chatty");
    let (output, _) = level.launch();
    assert!(!output.status.success(), "{}", describe(&output));
    assert_eq!(lines_naming(&stderr_text(&output), "LOG_LEVEL").len(), 1);

    let mut control = Scenario::new("127.0.0.1", port, None);
    let secret = "secret-with-\u{1}-control";
    control.set("S3_SECRET_KEY", secret);
    let (output, _) = control.launch();
    assert!(!output.status.success(), "{}", describe(&output));
    let stderr = stderr_text(&output);
    assert_eq!(lines_naming(&stderr, "S3_SECRET_KEY").len(), 1, "{stderr}");
    assert!(!stderr.contains("secret-with"), "{stderr}");
}

#[test]
fn first_start_creates_role_database_and_schema_and_second_start_does_not_reinitialise() {
    let server = PostgresServer::start();
    let mut scenario = Scenario::for_server(&server);
    scenario
        .set("METASTORE_PORT", "tcp://10.96.0.12:9083")
        .set("LOG_LEVEL", "debug")
        .set("METASTORE_THRIFT_PORT", "9183")
        .set("WAREHOUSE_DIR", "s3a://lake/warehouse");

    let (first, _) = scenario.launch();
    assert!(first.status.success(), "{}", describe(&first));
    assert_no_secret_echoed(&first);

    // The role and the database exist, the role owns the database and logs in with its
    // password, and the schema double's table is there.
    assert_eq!(
        server.query(
            "postgres",
            &format!("SELECT rolcanlogin FROM pg_roles WHERE rolname = '{METASTORE_DB_USER}'")
        ),
        "t"
    );
    assert_eq!(
        server.query(
            "postgres",
            &format!(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{METASTORE_DB}'"
            )
        ),
        METASTORE_DB_USER
    );
    assert_eq!(
        server.query_as(
            METASTORE_DB_USER,
            METASTORE_DB_PASSWORD,
            METASTORE_DB,
            "SELECT \"SCHEMA_VERSION\" FROM \"VERSION\""
        ),
        "3.0.0"
    );

    let schematool = scenario.records_of("schematool");
    assert_eq!(schematool.len(), 1, "{:?}", scenario.records());
    assert_eq!(schematool[0]["args"], "-dbType postgres -initSchema");
    let starts = scenario.records_of("start-metastore");
    assert_eq!(starts.len(), 1, "{:?}", scenario.records());
    for record in schematool.iter().chain(&starts) {
        assert_eq!(record["METASTORE_PORT"], "(unset)");
        assert_eq!(record["POSTGRES_ADMIN_PASSWORD"], "(unset)");
        assert_eq!(
            Path::new(&record["METASTORE_HOME"]),
            scenario.metastore_home()
        );
    }
    assert_eq!(starts[0]["args"], "");

    // The configuration: valid XML holding the environment's values, readable by its owner
    // alone.
    let site_path = scenario.metastore_home().join("conf/metastore-site.xml");
    let mode = std::fs::metadata(&site_path)
        .expect("metastore-site.xml exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "metastore-site.xml mode {mode:o}");
    let site = site_properties(&site_path);
    let port = server.port();
    for (name, value) in [
        ("metastore.thrift.uris", "thrift://localhost:9183"),
        ("metastore.thrift.port", "9183"),
        ("metastore.warehouse.dir", "s3a://lake/warehouse"),
        (
            "javax.jdo.option.ConnectionURL",
            &format!("jdbc:postgresql://127.0.0.1:{port}/{METASTORE_DB}"),
        ),
        (
            "javax.jdo.option.ConnectionDriverName",
            "org.postgresql.Driver",
        ),
        ("javax.jdo.option.ConnectionUserName", METASTORE_DB_USER),
        ("javax.jdo.option.ConnectionPassword", METASTORE_DB_PASSWORD),
        ("fs.s3a.impl", "org.apache.hadoop.fs.s3a.S3AFileSystem"),
        ("fs.s3a.endpoint", S3_ENDPOINT),
        ("fs.s3a.access.key", S3_ACCESS_KEY),
        ("fs.s3a.secret.key", S3_SECRET_KEY),
        ("fs.s3a.path.style.access", "true"),
        ("fs.s3a.connection.request.timeout", "60s"),
    ] {
        assert_eq!(
            site.get(name).map(String::as_str),
            Some(value),
            "{name} in {site:?}"
        );
    }
    let log4j = std::fs::read_to_string(
        scenario
            .metastore_home()
            .join("conf/metastore-log4j2.properties"),
    )
    .expect("read metastore-log4j2.properties");
    assert!(
        log4j.lines().any(|line| line == "rootLogger.level = DEBUG"),
        "{log4j}"
    );

    // Second start: everything exists, so nothing is initialised again.
    let (second, _) = scenario.launch();
    assert!(second.status.success(), "{}", describe(&second));
    assert_no_secret_echoed(&second);
    assert_eq!(
        scenario.records_of("schematool").len(),
        1,
        "{:?}",
        scenario.records()
    );
    assert_eq!(scenario.records_of("start-metastore").len(), 2);
    assert!(
        stderr_text(&second).contains("schema is present"),
        "{}",
        describe(&second)
    );
}

#[test]
fn a_half_initialised_schema_is_reported_and_left_alone() {
    let server = PostgresServer::start();
    server.query(
        "postgres",
        &format!("CREATE ROLE {METASTORE_DB_USER} LOGIN PASSWORD 'plain-pw'"),
    );
    server.query(
        "postgres",
        &format!("CREATE DATABASE {METASTORE_DB} OWNER {METASTORE_DB_USER}"),
    );
    server.query_as(
        METASTORE_DB_USER,
        "plain-pw",
        METASTORE_DB,
        "CREATE TABLE \"VERSION\" (\"VER_ID\" bigint)",
    );
    let mut scenario = Scenario::for_server(&server);
    scenario.set("METASTORE_DB_PASSWORD", "plain-pw");
    let (output, _) = scenario.launch();
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        stderr_text(&output).contains("empty \"VERSION\" table"),
        "{}",
        describe(&output)
    );
    assert!(scenario.records().is_empty(), "{:?}", scenario.records());
}

#[test]
fn unreachable_postgres_fails_after_the_bounded_wait_with_a_clear_message() {
    let port = postgres::free_port();
    let mut scenario = Scenario::new("127.0.0.1", port, None);
    scenario.set("POSTGRES_WAIT_SECONDS", "2");
    let (output, elapsed) = scenario.launch();
    assert!(!output.status.success(), "{}", describe(&output));
    assert!(
        elapsed >= Duration::from_secs(2) && elapsed < Duration::from_secs(30),
        "waited {elapsed:?}"
    );
    assert!(
        stderr_text(&output).contains(&format!(
            "PostgreSQL at 127.0.0.1:{port} did not accept connections within 2s"
        )),
        "{}",
        describe(&output)
    );
    assert_no_secret_echoed(&output);
    assert!(scenario.records().is_empty());
}

#[test]
fn wait_on_error_delays_the_exit_after_a_configuration_failure() {
    let mut scenario = Scenario::new("127.0.0.1", postgres::free_port(), None);
    scenario.remove("S3_ENDPOINT");
    let (quick, quick_elapsed) = scenario.launch();
    assert!(!quick.status.success(), "{}", describe(&quick));
    assert!(quick_elapsed < Duration::from_secs(2), "{quick_elapsed:?}");

    scenario.set("WAIT_ON_ERROR", "2");
    let (waited, elapsed) = scenario.launch();
    assert_eq!(waited.status.code(), quick.status.code());
    assert!(
        elapsed >= Duration::from_secs(2),
        "exited after {elapsed:?}"
    );
    assert!(
        stderr_text(&waited).contains("WAIT_ON_ERROR=2s"),
        "{}",
        describe(&waited)
    );
}

#[test]
fn wait_on_error_covers_a_metastore_that_exits_with_an_error() {
    let server = PostgresServer::start();
    let mut scenario = Scenario::for_server(&server);
    scenario
        .set("FIXTURE_START_EXIT", "3")
        .set("WAIT_ON_ERROR", "2")
        .set("METASTORE_PORT", "tcp://10.96.0.12:9083");
    let (output, elapsed) = scenario.launch();
    assert_eq!(output.status.code(), Some(3), "{}", describe(&output));
    assert!(
        elapsed >= Duration::from_secs(2),
        "exited after {elapsed:?}"
    );
    assert!(
        stderr_text(&output).contains("the metastore exited with status 3"),
        "{}",
        describe(&output)
    );
    let starts = scenario.records_of("start-metastore");
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0]["METASTORE_PORT"], "(unset)");
}
