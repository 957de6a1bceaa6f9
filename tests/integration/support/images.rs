//! The images `imgforge build` makes, built once per test process, and environments for the
//! builds the tests run themselves.
//!
//! [`ImageEnv`] is a [`TestEnv`] whose mirror also serves a hive-standalone-metastore tarball
//! whose `bin/schematool` and `bin/start-metastore` are the recording test doubles of
//! `tests/metastore_launch/metastore/bin` (bash + psql, so they work inside the image), and
//! whose `lib/` (and Hadoop's `share/hadoop/common/lib/`) hold the `slf4j-log4j12` binding the
//! image must drop. Its `imgforge.toml` builds on the local JRE base image into a registry
//! namespace of its own, so builds of different tests never retag each other's images.
//!
//! [`built`] builds all three images once (two CA certificates in `certs/`, a non-default
//! event log directory, source and revision labels), then builds them again with nothing
//! changed (`--force`: a plain build would skip them as unchanged), and keeps both `--json`
//! reports. Image builds take tens of seconds: every test
//! that only looks at the images shares these.
//!
//! Tags are removed by the next test process (those whose process is gone), keeping their
//! layers as the engine's build cache.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::containers;
use super::env::{TestEnv, run_command, stderr_text, stdout_text};
use super::fixtures::{
    self, ChecksumStyle, HadoopChecksums, Published, TarEntry, defaults, hadoop_dist,
    hive_metastore_dist, tgz,
};

/// The JRE base image `scripts/ci-services.sh` makes.
pub const JRE_BASE: &str = "imgforge-test/openjdk:17-jre";

/// The registry host every test namespace lives under.
pub const TEST_REGISTRY: &str = "imgforge-itest.local";

/// The event log directory the shared build configures (not the default).
pub const EVENT_LOG_DIR: &str = "file:///var/spark-events-itest";

/// `[s3a] endpoint` of the shared build.
pub const S3_ENDPOINT: &str = "http://minio.itest.local:9000";

/// `org.opencontainers.image.source` of the shared build.
pub const SOURCE: &str = "https://example.test/imgforge-itest";

/// `org.opencontainers.image.revision` of the shared build.
pub const REVISION: &str = "0123abc";

/// How long one `imgforge build` may take (a cold build installs packages in two images).
pub const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The doubles of the metastore's scripts.
const METASTORE_DOUBLES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/metastore_launch/metastore/bin"
);

/// The SLF4J binding both the metastore and Hadoop fixtures carry, which the image drops.
pub const SLF4J_BINDING: &str = "slf4j-log4j12-1.7.25.jar";

/// The CA certificates of the shared build: (file name in `certs/`, truststore alias).
pub const CA_FILES: [(&str, &str); 2] = [
    ("minio-ca.crt", "imgforge-minio-ca"),
    ("corp-root.pem", "imgforge-corp-root"),
];

/// The version an image's default tags and `org.opencontainers.image.version` carry: the
/// Hive metastore's for hive-metastore, Spark's for the others.
pub fn product_version(image: &str) -> &'static str {
    match image {
        "hive-metastore" => defaults::HIVE_METASTORE_VERSION,
        _ => defaults::SPARK_VERSION,
    }
}

/// A registry namespace for one environment: unique to this process and call.
pub fn unique_namespace() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{TEST_REGISTRY}/p{}-{count}", std::process::id())
}

/// `imgforge.toml`, as sections of `key = <TOML value>` lines.
#[derive(Debug, Clone)]
pub struct ConfigToml {
    sections: BTreeMap<String, BTreeMap<String, String>>,
}

impl ConfigToml {
    /// Set `key` of `[section]` to the TOML value `value` (quote strings yourself).
    pub fn set(&mut self, section: &str, key: &str, value: &str) -> &mut ConfigToml {
        self.sections
            .entry(section.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
        self
    }

    /// Set `key` of `[section]` to the string `value`.
    pub fn set_str(&mut self, section: &str, key: &str, value: &str) -> &mut ConfigToml {
        let quoted = toml_string(value);
        self.set(section, key, &quoted)
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for (section, keys) in &self.sections {
            text.push_str(&format!("[{section}]\n"));
            for (key, value) in keys {
                text.push_str(&format!("{key} = {value}\n"));
            }
            text.push('\n');
        }
        text
    }
}

/// `value` as a TOML basic string.
pub fn toml_string(value: &str) -> String {
    serde_json::to_string(value).expect("a string serialises")
}

/// A test environment for `imgforge build`; see the module documentation.
#[derive(Debug)]
pub struct ImageEnv {
    /// The mirror, cache and working directory.
    pub env: TestEnv,
    /// The registry namespace images are named under (`imgforge-itest.local/p<pid>-<n>`).
    pub namespace: String,
    /// The metastore tarball with the recording doubles, as published.
    pub metastore: Published,
    /// The Hadoop tarball (with the SLF4J binding), as published.
    pub hadoop: Published,
    config: ConfigToml,
}

impl ImageEnv {
    /// A new environment with `certs` ((file name, bytes)) in `work/certs/` and the base
    /// configuration written.
    pub fn new(certs: &[(String, Vec<u8>)]) -> ImageEnv {
        let env = TestEnv::new();
        let metastore = env.apache.tree.hive_metastore(
            defaults::HIVE_METASTORE_VERSION,
            &recording_metastore_dist(),
            ChecksumStyle::Coreutils,
        );
        let hadoop = env.apache.tree.hadoop(
            defaults::HADOOP_VERSION,
            &hadoop_dist_with_binding(),
            HadoopChecksums::Mds,
        );
        if !certs.is_empty() {
            let dir = env.work_dir().join("certs");
            std::fs::create_dir_all(&dir).expect("create certs/");
            for (name, bytes) in certs {
                std::fs::write(dir.join(name), bytes).expect("write a certificate");
            }
        }
        let namespace = unique_namespace();
        let mut config = ConfigToml {
            sections: BTreeMap::new(),
        };
        config
            .set_str("images", "registry", &namespace)
            .set_str("images.spark", "base", JRE_BASE)
            .set("images.spark", "java_major", "17")
            .set_str("images.hive-metastore", "base", JRE_BASE);
        let image_env = ImageEnv {
            env,
            namespace,
            metastore,
            hadoop,
            config,
        };
        image_env.write_config();
        image_env
    }

    /// An environment configured as the shared build is (in another namespace), with `certs`.
    pub fn like_shared(certs: &[(String, Vec<u8>)]) -> ImageEnv {
        let mut image_env = ImageEnv::new(certs);
        image_env.configure(|config| {
            config
                .set_str("images", "source", SOURCE)
                .set_str("images", "revision", REVISION)
                .set_str("images.spark-hs", "event_log_dir", EVENT_LOG_DIR)
                .set_str("s3a", "endpoint", S3_ENDPOINT);
        });
        image_env
    }

    /// A new environment (no certificates) whose images are named under its namespace with
    /// `-<suffix>` appended (under `registry_host` instead of the test registry when given),
    /// so that a module's images are told apart from every other module's.
    pub fn named_under(registry_host: Option<&str>, suffix: &str) -> ImageEnv {
        let mut image_env = ImageEnv::new(&[]);
        let unique = image_env
            .namespace
            .rsplit('/')
            .next()
            .expect("a namespace has a last part")
            .to_string();
        image_env.namespace = match registry_host {
            Some(host) => format!("{host}/{unique}-{suffix}"),
            None => format!("{}-{suffix}", image_env.namespace),
        };
        let namespace = image_env.namespace.clone();
        image_env.configure(|config| {
            config.set_str("images", "registry", &namespace);
        });
        image_env
    }

    /// Change the configuration and write it again.
    pub fn configure(&mut self, change: impl FnOnce(&mut ConfigToml)) {
        change(&mut self.config);
        self.write_config();
    }

    fn write_config(&self) {
        std::fs::write(
            self.env.work_dir().join("imgforge.toml"),
            self.config.render(),
        )
        .expect("write imgforge.toml");
    }

    /// `imgforge --no-progress <args>` (at most [`BUILD_TIMEOUT`]).
    pub fn run(&self, args: &[&str]) -> Output {
        let mut command = self.env.imgforge();
        command.arg("--no-progress").args(args);
        run_command(command, BUILD_TIMEOUT)
    }

    /// `imgforge --no-progress --json build <args>`, which must succeed; its report.
    pub fn build_json(&self, args: &[&str]) -> BuildReport {
        let mut all = vec!["--json", "build"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        assert!(
            output.status.success(),
            "imgforge build {args:?} failed: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            output.status,
            stdout_text(&output),
            stderr_text(&output)
        );
        BuildReport::parse(&output)
    }

    /// The reference `<namespace>/<image>:<version>`: the Spark version for spark and
    /// spark-hs, the Hive metastore version for hive-metastore (the default tags).
    pub fn reference(&self, image: &str) -> String {
        format!("{}/{image}:{}", self.namespace, product_version(image))
    }
}

/// One image of a `build --json` report.
#[derive(Debug, Clone)]
pub struct ReportedImage {
    /// `spark`, `spark-hs` or `hive-metastore`.
    pub image: String,
    /// The image ID.
    pub id: String,
    /// Full references.
    pub tags: Vec<String>,
    /// `imgforge.inputs.sha256`.
    pub fingerprint: String,
    /// Steps served from the layer cache.
    pub cached_steps: u64,
    /// Steps the layer cache could serve.
    pub cacheable_steps: u64,
    /// Tar bytes sent.
    pub context_bytes: u64,
    /// The whole entry.
    pub json: Value,
}

/// A `build --json` report.
#[derive(Debug, Clone)]
pub struct BuildReport {
    /// The images, in build order.
    pub images: Vec<ReportedImage>,
}

impl BuildReport {
    /// Parse stdout of `imgforge --json build`.
    pub fn parse(output: &Output) -> BuildReport {
        let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "build --json printed no JSON ({error})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                stdout_text(output),
                stderr_text(output)
            )
        });
        assert_eq!(json["command"], "build", "{json:#}");
        let images = json["images"]
            .as_array()
            .unwrap_or_else(|| panic!("no images array in {json:#}"))
            .iter()
            .map(|entry| {
                let text = |key: &str| {
                    entry[key]
                        .as_str()
                        .unwrap_or_else(|| panic!("{key} missing in {entry:#}"))
                        .to_string()
                };
                let number = |key: &str| {
                    entry[key]
                        .as_u64()
                        .unwrap_or_else(|| panic!("{key} missing in {entry:#}"))
                };
                ReportedImage {
                    image: text("image"),
                    id: text("id"),
                    tags: entry["tags"]
                        .as_array()
                        .unwrap_or_else(|| panic!("tags missing in {entry:#}"))
                        .iter()
                        .map(|tag| tag.as_str().expect("a tag is text").to_string())
                        .collect(),
                    fingerprint: text("fingerprint"),
                    cached_steps: number("cached_steps"),
                    cacheable_steps: number("cacheable_steps"),
                    context_bytes: number("context_bytes"),
                    json: entry.clone(),
                }
            })
            .collect();
        BuildReport { images }
    }

    /// The entry of `image`.
    pub fn image(&self, image: &str) -> &ReportedImage {
        self.images
            .iter()
            .find(|entry| entry.image == image)
            .unwrap_or_else(|| panic!("no {image} in the report: {:#?}", self.images))
    }

    /// The image names, in report order.
    pub fn names(&self) -> Vec<&str> {
        self.images
            .iter()
            .map(|entry| entry.image.as_str())
            .collect()
    }
}

/// The shared build; see the module documentation.
#[derive(Debug)]
pub struct BuiltImages {
    /// Its registry namespace.
    pub namespace: String,
    /// The first build's report.
    pub first: BuildReport,
    /// The report of the second build (`--force`), with nothing changed.
    pub second: BuildReport,
    /// The CA certificates in `certs/`: (file name, bytes).
    pub certs: Vec<(String, Vec<u8>)>,
    /// The Spark image's `conf/log4j.properties`, as prepared.
    pub log4j_properties: Vec<u8>,
    /// SHA-256 of the published hadoop-aws jar.
    pub hadoop_aws_sha256: String,
    /// SHA-256 of the published AWS SDK bundle.
    pub aws_sdk_sha256: String,
    /// SHA-256 of the published PostgreSQL JDBC driver.
    pub postgresql_sha256: String,
}

impl BuiltImages {
    /// The reference `<namespace>/<image>:<version>`: the Spark version for spark and
    /// spark-hs, the Hive metastore version for hive-metastore (the default tags).
    pub fn reference(&self, image: &str) -> String {
        format!("{}/{image}:{}", self.namespace, product_version(image))
    }
}

/// The images built once for this test process. A failed build fails every test using it
/// with the same message, without building again.
pub fn built() -> &'static BuiltImages {
    static BUILT: OnceLock<Result<BuiltImages, String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        // On a thread of its own: callers may be inside a runtime, and the build blocks.
        std::thread::spawn(build_shared).join().map_err(|panic| {
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_else(|| "the shared image build panicked".to_string())
        })
    });
    match result {
        Ok(built) => built,
        Err(message) => panic!("the shared image build failed:\n{message}"),
    }
}

fn build_shared() -> BuiltImages {
    sweep_stale_namespaces();
    let certs = generate_cas(&CA_FILES.map(|(name, _)| name));
    let image_env = ImageEnv::like_shared(&certs);
    let first = image_env.build_json(&[]);
    // --force: the rebuild from the layer cache is what the tests look at.
    let second = image_env.build_json(&["--force"]);
    let log4j_properties = std::fs::read(
        image_env
            .env
            .work_dir()
            .join("build/spark-3.1.1-bin-hadoop3.2/conf/log4j.properties"),
    )
    .expect("read the prepared log4j.properties");
    BuiltImages {
        namespace: image_env.namespace.clone(),
        first,
        second,
        certs,
        log4j_properties,
        hadoop_aws_sha256: image_env.env.maven.hadoop_aws_jar.sha256.clone(),
        aws_sdk_sha256: image_env.env.maven.aws_sdk_bundle.sha256.clone(),
        postgresql_sha256: image_env.env.maven.postgresql.sha256.clone(),
    }
}

/// Development CAs made by `imgforge certs init`, one per name: (name, PEM bytes of ca.crt).
pub fn generate_cas(names: &[&str]) -> Vec<(String, Vec<u8>)> {
    let scratch = tempfile::tempdir().expect("temp dir");
    names
        .iter()
        .enumerate()
        .map(|(index, name)| {
            let out = scratch.path().join(format!("ca-{index}"));
            let output = run_command(
                {
                    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_imgforge"));
                    command
                        .args(["certs", "init", "--host"])
                        .arg(format!("ca{index}.minio.test"))
                        .arg("--out")
                        .arg(&out);
                    command
                },
                Duration::from_secs(60),
            );
            assert!(
                output.status.success(),
                "imgforge certs init failed: {}",
                stderr_text(&output)
            );
            let bytes = std::fs::read(out.join("ca.crt")).expect("read ca.crt");
            (name.to_string(), bytes)
        })
        .collect()
}

/// The default metastore tarball with `bin/` replaced by the recording doubles, and the SLF4J
/// binding in `lib/`.
pub fn recording_metastore_dist() -> Vec<u8> {
    let version = defaults::HIVE_METASTORE_VERSION;
    let top = format!("apache-hive-metastore-{version}-bin");
    let mut entries: Vec<TarEntry> = entries_of(&hive_metastore_dist(version))
        .into_iter()
        .filter(|entry| {
            !(entry.path().starts_with(&format!("{top}/bin/"))
                && matches!(entry, TarEntry::File { .. }))
        })
        .collect();
    for name in ["schematool", "start-metastore", "fixture-common.sh"] {
        let bytes = std::fs::read(Path::new(METASTORE_DOUBLES).join(name))
            .unwrap_or_else(|error| panic!("read the {name} double: {error}"));
        entries.push(TarEntry::executable(format!("{top}/bin/{name}"), bytes));
    }
    entries.push(TarEntry::file(
        format!("{top}/lib/{SLF4J_BINDING}"),
        fixtures::jar(&[("fixture.txt", SLF4J_BINDING.as_bytes())]),
    ));
    tgz(&entries)
}

/// The default Hadoop tarball with the SLF4J binding in `share/hadoop/common/lib/`.
pub fn hadoop_dist_with_binding() -> Vec<u8> {
    let version = defaults::HADOOP_VERSION;
    let mut entries = entries_of(&hadoop_dist(version));
    entries.push(TarEntry::file(
        format!("hadoop-{version}/share/hadoop/common/lib/{SLF4J_BINDING}"),
        fixtures::jar(&[("fixture.txt", SLF4J_BINDING.as_bytes())]),
    ));
    tgz(&entries)
}

/// The files and directories of a gzipped tarball, with their modes.
fn entries_of(tgz_bytes: &[u8]) -> Vec<TarEntry> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz_bytes));
    archive
        .entries()
        .expect("read fixture entries")
        .map(|entry| {
            let mut entry = entry.expect("read a fixture entry");
            let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let mode = entry.header().mode().expect("entry mode");
            if entry.header().entry_type().is_dir() {
                TarEntry::Dir { path, mode }
            } else {
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).expect("read a fixture file");
                TarEntry::File { path, bytes, mode }
            }
        })
        .collect()
}

/// Remove the tags earlier test processes left under [`TEST_REGISTRY`] (those whose process
/// is gone), keeping their layers as build cache.
fn sweep_stale_namespaces() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a runtime");
    runtime.block_on(async {
        let engine = super::docker::engine().await;
        let prefix = format!("{TEST_REGISTRY}/p");
        for reference in containers::references_under(&engine, &prefix).await {
            let pid = reference[prefix.len()..]
                .split(['-', '/'])
                .next()
                .and_then(|pid| pid.parse::<u32>().ok());
            let alive = pid.is_some_and(|pid| PathBuf::from(format!("/proc/{pid}")).exists());
            if !alive {
                containers::untag(&engine, &reference).await;
            }
        }
    });
}

/// Build a small image on [`JRE_BASE`] tagged `tag`, told apart from other such images by
/// `variant` (a label): a "new build" of a base image, for the tests of base images that move.
pub fn image_on_jre(tag: &str, variant: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = super::docker::engine().await;
        let dir = tempfile::tempdir().expect("temp dir");
        super::docker::write_file(
            dir.path(),
            "Dockerfile",
            &format!("FROM {JRE_BASE}\nLABEL imgforge.test.variant=\"{variant}\"\n"),
            0o644,
        );
        let context = imgforge::context::BuildContext::plan(dir.path(), "Dockerfile", Vec::new())
            .expect("context");
        let request = imgforge::docker::BuildRequest {
            name: "image on the JRE base".into(),
            tags: vec![tag.to_string()],
            build_args: Default::default(),
            labels: Default::default(),
            no_cache: false,
        };
        imgforge::docker::build_image(
            &engine,
            context,
            &request,
            &imgforge::progress::QuietReporter,
        )
        .await
        .expect("an image on the JRE base");
    });
}
