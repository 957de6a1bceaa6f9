//! The configuration Spark would read, read from inside a running container.
//!
//! `conf_probe/ConfProbe.java` finds `spark-defaults.conf` the way Spark's launcher does
//! (`$SPARK_CONF_DIR`, else `$SPARK_HOME/conf`) and prints every property. It is compiled
//! once per test process with the host's `javac --release 8` (`scripts/ci-services.sh`
//! installs `openjdk-17-jdk-headless`) and bind-mounted read-only into the container, where
//! the image's own JRE runs it as the image's user with the image's environment.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use imgforge::docker::Engine;

use super::containers::{ContainerSpec, Finished, run_container};
use super::env::{run_command, stderr_text};

/// Where the probe is mounted in the container.
const MOUNT: &str = "/imgforge-conf-probe";

/// The directory holding the compiled `ConfProbe.class` (compiled on first use).
pub fn probe_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/integration/support/conf_probe/ConfProbe.java");
        // Kept for the whole process: every test mounts it.
        let dir = tempfile::Builder::new()
            .prefix("imgforge-conf-probe-")
            .tempdir()
            .expect("temp dir for the probe")
            .keep();
        let mut javac = std::process::Command::new("javac");
        javac.args(["--release", "8", "-d"]).arg(&dir).arg(&source);
        let output = run_command(javac, Duration::from_secs(120));
        assert!(
            output.status.success(),
            "javac {} failed (scripts/ci-services.sh installs openjdk-17-jdk-headless): {}",
            source.display(),
            stderr_text(&output)
        );
        // The container's user (uid 185) must be able to read it.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .expect("chmod the probe directory");
        std::fs::set_permissions(
            dir.join("ConfProbe.class"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod the probe class");
        dir
    })
}

/// What the probe printed.
#[derive(Debug, Clone)]
pub struct SparkConf {
    /// The configuration directory Spark would use.
    pub conf_dir: String,
    /// The properties file Spark would read, `None` when there is none.
    pub properties_file: Option<String>,
    /// Every property in it.
    pub properties: BTreeMap<String, String>,
    /// The container's output, for failure messages.
    pub finished: Finished,
}

impl SparkConf {
    /// The value of `key`, failing the test when it is absent.
    pub fn get(&self, key: &str) -> &str {
        self.properties
            .get(key)
            .map(String::as_str)
            .unwrap_or_else(|| {
                panic!(
                    "{key} is not in {:?}\n{}",
                    self.properties_file,
                    self.finished.describe()
                )
            })
    }
}

/// Run the probe in `spec` (its entrypoint is replaced; user, environment and binds kept).
pub async fn read_spark_conf(engine: &Engine, spec: ContainerSpec) -> SparkConf {
    let spec = spec.bind(probe_dir(), &format!("{MOUNT}:ro")).entrypoint(&[
        "java",
        "-cp",
        MOUNT,
        "ConfProbe",
    ]);
    let finished = run_container(engine, &spec).await;
    finished.assert_success("the configuration probe");
    let mut conf_dir = None;
    let mut properties_file = None;
    let mut properties = BTreeMap::new();
    for line in finished.stdout.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key {
            "conf_dir" => conf_dir = Some(value.to_string()),
            "properties_file" => {
                properties_file = (value != "null").then(|| value.to_string());
            }
            _ => {
                properties.insert(key.to_string(), value.to_string());
            }
        }
    }
    SparkConf {
        conf_dir: conf_dir
            .unwrap_or_else(|| panic!("the probe printed no conf_dir\n{}", finished.describe())),
        properties_file,
        properties,
        finished,
    }
}
