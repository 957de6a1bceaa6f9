//! `imgforge build` on the real engine: the spark and spark-hs images proven by running
//! containers from them, the labels of all three, the layer cache on an unchanged rebuild,
//! the input fingerprint, and `--no-cache`. The images are built once per test process
//! ([`built`]); tests that need a build of their own get an [`ImageEnv`] with its own
//! registry namespace.

use sha2::{Digest, Sha256};

use crate::support::containers::{
    self, ContainerSpec, Finished, image_config, run_container, run_script,
};
use crate::support::docker::engine;
use crate::support::images::{
    CA_FILES, ImageEnv, REVISION, SOURCE, built, generate_cas, product_version,
};

const IMAGES: [&str; 3] = ["spark", "spark-hs", "hive-metastore"];

/// The SHA-256 fingerprint of a PEM certificate as keytool prints it (`AB:CD:…`).
pub fn keytool_fingerprint(pem: &[u8]) -> String {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).expect("a PEM certificate");
    Sha256::digest(&block.contents)
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Fails unless keytool in `image` lists each CA of the shared build under its alias, with
/// the fingerprint of the certificate file.
pub async fn assert_truststore_holds_the_cas(image: &str, user: &str) {
    let engine = engine().await;
    let built = built();
    for (file, alias) in CA_FILES {
        let pem = &built
            .certs
            .iter()
            .find(|(name, _)| name == file)
            .expect("the shared build has this CA")
            .1;
        let listed = run_script(
            &engine,
            image,
            user,
            &format!("keytool -list -cacerts -storepass changeit -alias {alias}"),
        )
        .await;
        listed.assert_success(&format!("keytool -list -alias {alias} in {image}"));
        assert!(
            listed.stdout.contains("trustedCertEntry"),
            "{alias} is not a trusted certificate in {image}\n{}",
            listed.describe()
        );
        let fingerprint = keytool_fingerprint(pem);
        assert!(
            listed.stdout.contains(&fingerprint),
            "{alias} in {image} is not {file} (SHA-256 {fingerprint})\n{}",
            listed.describe()
        );
    }
}

/// `sha256sum` of `paths` inside `image`: path → hex digest.
pub async fn sha256_in(image: &str, paths: &[String]) -> Vec<(String, String)> {
    let engine = engine().await;
    let script = format!("sha256sum {}", paths.join(" "));
    let summed = run_script(&engine, image, "0", &script).await;
    summed.assert_success(&format!("sha256sum in {image}"));
    summed
        .stdout
        .lines()
        .map(|line| {
            let (digest, path) = line.split_once("  ").expect("sha256sum output");
            (path.to_string(), digest.to_string())
        })
        .collect()
}

/// A stand-in for a Spark launcher script: prints the program, the options the entrypoint
/// exported and each argument on its own line.
const RECORDING_LAUNCHER: &str = r#"#!/bin/bash
printf 'program=%s\n' "$0"
printf '_JAVA_OPTIONS=%s\n' "${_JAVA_OPTIONS-(unset)}"
printf 'SPARK_HISTORY_OPTS=%s\n' "${SPARK_HISTORY_OPTS-(unset)}"
for argument in "$@"; do printf 'arg=%s\n' "$argument"; done
"#;

/// Run `/opt/entrypoint.sh <arguments>` in `image` as root, with `$SPARK_HOME/bin/<launcher>`
/// replaced by [`RECORDING_LAUNCHER`].
async fn entrypoint_with_recording(image: &str, launcher: &str, arguments: &[&str]) -> Finished {
    let engine = engine().await;
    let script = format!(
        "set -e; cat > \"$SPARK_HOME/bin/{launcher}\" <<'LAUNCHER'\n{RECORDING_LAUNCHER}LAUNCHER\n\
         chmod 0755 \"$SPARK_HOME/bin/{launcher}\"; exec /opt/entrypoint.sh \"$@\""
    );
    let mut command = vec!["bash", "-c", script.as_str(), "entrypoint-test"];
    command.extend_from_slice(arguments);
    let spec = ContainerSpec::new(image).entrypoint(&command).user("0");
    run_container(&engine, &spec).await
}

/// `2026-01-02T03:04:05Z` (fractional seconds allowed), as imgforge writes it.
fn is_rfc3339_utc(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        bytes
            .get(range)
            .is_some_and(|part| part.iter().all(u8::is_ascii_digit))
    };
    digits(0..4)
        && bytes.get(4) == Some(&b'-')
        && digits(5..7)
        && bytes.get(7) == Some(&b'-')
        && digits(8..10)
        && bytes.get(10) == Some(&b'T')
        && digits(11..13)
        && bytes.get(13) == Some(&b':')
        && digits(14..16)
        && bytes.get(16) == Some(&b':')
        && digits(17..19)
        && text.ends_with('Z')
}

fn recorded(finished: &Finished, key: &str) -> Vec<String> {
    let prefix = format!("{key}=");
    finished
        .stdout
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn spark_image_trusts_each_ca_under_its_alias() {
    assert_truststore_holds_the_cas(&built().reference("spark"), "185").await;
}

#[tokio::test]
async fn spark_entrypoint_exports_the_log4j_option_and_passes_verbose_to_the_driver() {
    let image = built().reference("spark");
    let finished = entrypoint_with_recording(
        &image,
        "spark-submit",
        &["driver", "--class", "org.example.Main", "local:///x.jar"],
    )
    .await;
    finished.assert_success("the entrypoint's driver");
    assert_eq!(
        recorded(&finished, "program"),
        ["/opt/spark/bin/spark-submit"],
        "{}",
        finished.describe()
    );
    let java_options = recorded(&finished, "_JAVA_OPTIONS").join("\n");
    assert!(
        java_options.contains("-Dlog4j.configuration=file:///opt/spark/log4j.properties"),
        "{}",
        finished.describe()
    );
    let arguments = recorded(&finished, "arg");
    assert_eq!(
        arguments.first().map(String::as_str),
        Some("--verbose"),
        "--verbose must come right after spark-submit\n{}",
        finished.describe()
    );
    assert_eq!(
        arguments[arguments.len() - 3..],
        ["--class", "org.example.Main", "local:///x.jar"],
        "{}",
        finished.describe()
    );
    assert!(arguments.contains(&"--deploy-mode".to_string()));
}

#[tokio::test]
async fn spark_image_holds_the_fetched_s3a_jars_and_the_prepared_log4j_file() {
    let built = built();
    let image = built.reference("spark");
    let jars = [
        (
            "/opt/spark/jars/hadoop-aws-3.2.0.jar".to_string(),
            &built.hadoop_aws_sha256,
        ),
        (
            "/opt/spark/jars/aws-java-sdk-bundle-1.11.375.jar".to_string(),
            &built.aws_sdk_sha256,
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

    let engine = engine().await;
    let log4j = run_script(&engine, &image, "185", "cat /opt/spark/log4j.properties").await;
    log4j.assert_success("reading /opt/spark/log4j.properties");
    assert_eq!(
        log4j.stdout.as_bytes(),
        built.log4j_properties.as_slice(),
        "/opt/spark/log4j.properties is not the prepared conf/log4j.properties"
    );
}

#[tokio::test]
async fn spark_hs_names_uid_185_and_starts_the_history_server_by_default() {
    let built = built();
    let image = built.reference("spark-hs");
    let engine = engine().await;

    let (_, config) = image_config(&engine, &image).await;
    assert_eq!(config.user.as_deref(), Some("185"));
    assert_eq!(
        config.entrypoint.as_deref(),
        Some(&["/opt/entrypoint.sh".to_string()][..])
    );
    let command = config.cmd.clone().expect("spark-hs has a default command");
    assert_eq!(
        command,
        [
            "/opt/spark/bin/spark-class",
            "org.apache.spark.deploy.history.HistoryServer"
        ]
    );
    let ports = config.exposed_ports.clone().unwrap_or_default();
    assert!(
        ports.iter().any(|port| port == "18080/tcp"),
        "18080 is not exposed: {ports:?}"
    );
    // The event log directory is in the history server's spark-defaults.conf (see
    // images_conf), so SPARK_HISTORY_OPTS stays free for run-time overrides.
    assert!(
        !config
            .env
            .clone()
            .unwrap_or_default()
            .iter()
            .any(|entry| entry.starts_with("SPARK_HISTORY_OPTS=")),
        "SPARK_HISTORY_OPTS is baked: {:?}",
        config.env
    );

    // The image's own user (uid 185) has a name.
    let whoami = run_container(
        &engine,
        &ContainerSpec::new(&image).entrypoint(&["sh", "-c", "id -u; id -un; id -g"]),
    )
    .await;
    whoami.assert_success("id -un as the image's user");
    let lines: Vec<&str> = whoami.stdout.lines().collect();
    // Primary group 0, like the spark image (OpenShift-style random uids run with gid 0).
    assert_eq!(lines, ["185", "spark", "0"], "{}", whoami.describe());

    // The default command, through the image's entrypoint, reaches spark-class with the
    // history server's class, the event log directory and the patched Java options.
    let arguments: Vec<&str> = command.iter().map(String::as_str).collect();
    let finished = entrypoint_with_recording(&image, "spark-class", &arguments).await;
    finished.assert_success("the default command through the entrypoint");
    assert_eq!(
        recorded(&finished, "program"),
        ["/opt/spark/bin/spark-class"]
    );
    assert_eq!(
        recorded(&finished, "arg"),
        ["org.apache.spark.deploy.history.HistoryServer"],
        "{}",
        finished.describe()
    );
    assert_eq!(recorded(&finished, "SPARK_HISTORY_OPTS"), ["(unset)"]);
    assert!(
        recorded(&finished, "_JAVA_OPTIONS")
            .join("\n")
            .contains("-Dlog4j.configuration=file:///opt/spark/log4j.properties"),
        "{}",
        finished.describe()
    );
}

#[tokio::test]
async fn every_image_carries_the_oci_and_imgforge_labels() {
    let built = built();
    let engine = engine().await;
    for image in IMAGES {
        let reported = built.first.image(image);
        let (id, config) = image_config(&engine, &built.reference(image)).await;
        assert_eq!(
            id, reported.id,
            "{image}: the tag points at the reported image"
        );
        let labels = config.labels.unwrap_or_default();
        let label = |key: &str| {
            labels
                .get(key)
                .unwrap_or_else(|| panic!("{image} has no label {key}: {labels:#?}"))
                .as_str()
        };
        assert_eq!(label("org.opencontainers.image.title"), image);
        let version = product_version(image);
        assert_eq!(label("org.opencontainers.image.version"), version);
        assert_eq!(label("org.opencontainers.image.source"), SOURCE);
        assert_eq!(label("org.opencontainers.image.revision"), REVISION);
        let created = label("org.opencontainers.image.created");
        assert!(
            is_rfc3339_utc(created),
            "{image}: created {created:?} is not RFC 3339"
        );
        assert_eq!(label("imgforge.spark.version"), "3.1.1");
        assert_eq!(label("imgforge.hadoop.version"), "3.2.0");
        assert_eq!(label("imgforge.hadoop_aws.version"), "3.2.0");
        assert_eq!(label("imgforge.aws_sdk.version"), "1.11.375");
        let fingerprint = label("imgforge.inputs.sha256");
        assert_eq!(fingerprint, reported.fingerprint, "{image}");
        assert!(
            fingerprint.len() == 64 && fingerprint.bytes().all(|b| b.is_ascii_hexdigit()),
            "{image}: {fingerprint:?} is not a SHA-256"
        );
        let mut tags = reported.tags.clone();
        tags.sort();
        assert_eq!(
            tags,
            [
                format!("{}/{image}:{version}", built.namespace),
                format!("{}/{image}:{version}-hadoop3.2.0", built.namespace),
                format!("{}/{image}:latest", built.namespace),
            ]
        );
    }
    let fingerprints: std::collections::BTreeSet<&str> = IMAGES
        .iter()
        .map(|image| built.first.image(image).fingerprint.as_str())
        .collect();
    assert_eq!(fingerprints.len(), 3, "each image has its own fingerprint");
}

#[tokio::test]
async fn an_unchanged_rebuild_takes_every_step_from_the_layer_cache_and_gives_the_same_ids() {
    let built = built();
    assert_eq!(built.first.names(), IMAGES, "built in dependency order");
    assert_eq!(built.second.names(), IMAGES);
    for image in IMAGES {
        let first = built.first.image(image);
        let second = built.second.image(image);
        assert!(
            second.cacheable_steps > 0,
            "{image}: no cacheable step reported: {:#}",
            second.json
        );
        assert_eq!(
            second.cached_steps, second.cacheable_steps,
            "{image}: not every step came from the cache: {:#}",
            second.json
        );
        assert_eq!(
            first.id, second.id,
            "{image}: the rebuild is a different image"
        );
        assert_eq!(first.fingerprint, second.fingerprint, "{image}");
        assert_eq!(first.context_bytes, second.context_bytes, "{image}");
    }
    let engine = engine().await;
    for image in IMAGES {
        let (id, _) = image_config(&engine, &built.reference(image)).await;
        assert_eq!(id, built.second.image(image).id);
    }
}

#[test]
fn the_input_fingerprint_changes_with_a_certificate_and_not_with_the_registry_or_mirror() {
    // Inputs and configuration as the shared build's; only where things live differs.
    let built = built();
    let image_env = ImageEnv::like_shared(&built.certs);
    // Another registry namespace, mirror URL, cache and working directory, the same inputs.
    let same = image_env.build_json(&[]);
    for image in IMAGES {
        assert_eq!(
            same.image(image).fingerprint,
            built.first.image(image).fingerprint,
            "{image}: the fingerprint moved though no input changed"
        );
    }
    // The same file name (so the same alias), a different CA.
    let replacement = generate_cas(&[CA_FILES[0].0]);
    std::fs::write(
        image_env.env.work_dir().join("certs").join(CA_FILES[0].0),
        &replacement[0].1,
    )
    .expect("replace the CA");
    let changed = image_env.build_json(&[]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = engine().await;
        for image in IMAGES {
            let fingerprint = &changed.image(image).fingerprint;
            assert_ne!(
                fingerprint,
                &same.image(image).fingerprint,
                "{image}: the fingerprint ignores a changed certificate"
            );
            let (_, config) = image_config(&engine, &image_env.reference(image)).await;
            assert_eq!(
                config
                    .labels
                    .unwrap_or_default()
                    .get("imgforge.inputs.sha256"),
                Some(fingerprint),
                "{image}"
            );
        }
    });
}

#[test]
fn no_cache_builds_every_step_afresh() {
    let built = built();
    let image_env = ImageEnv::new(&built.certs);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let engine = engine().await;
        containers::tag(
            &engine,
            &built.first.image("spark").id,
            &image_env.reference("spark"),
        )
        .await;
    });
    let report = image_env.build_json(&["spark-hs", "--no-cache"]);
    assert_eq!(report.names(), ["spark-hs"]);
    let spark_hs = report.image("spark-hs");
    assert!(spark_hs.cacheable_steps >= 5, "{:#}", spark_hs.json);
    assert_eq!(
        spark_hs.cached_steps, 0,
        "--no-cache still took steps from the cache: {:#}",
        spark_hs.json
    );
    // Without --no-cache the same build (forced: its inputs are unchanged) is served from the
    // cache.
    let cached = image_env.build_json(&["spark-hs", "--force"]);
    let spark_hs = cached.image("spark-hs");
    assert_eq!(
        spark_hs.cached_steps, spark_hs.cacheable_steps,
        "{:#}",
        spark_hs.json
    );
}
