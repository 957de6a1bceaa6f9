//! `imgforge manifest`: the Spark operator resources, compared with golden files, parsed back
//! field by field against the settings the images carry, and every bad input refused with
//! its exit code and no partial file. (The digest read from a real registry after a real
//! push is proven in `push::push_digests_file_records_each_tag_and_manifest_pins_it`.)

use std::path::{Path, PathBuf};
use std::process::Output;

use imgforge::cli::GlobalArgs;
use imgforge::config::Config;
use serde_norway::Value;

use crate::support::{TestEnv, assert_exit_code, assert_success, stderr_text, stdout_text};

const DIGEST: &str = "sha256:5f0c8a3e9b1d2c4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e";
const IMAGE: &str = "registry.example.com/data/spark";
const SECRET_VALUE: &str = "Sup3r-Secret-Value-never-printed";

const CONFIG: &str = r#"[spark]
version = "3.5.3"
hive_metastore_uris = "thrift://hive-metastore.data.svc:9083"

[s3a]
endpoint = "https://minio.data.svc:9000"

[images.spark-hs]
event_log_dir = "s3a://spark/eventlogs"

[operator]
s3_secret = "minio-credentials"
service_account = "spark-driver"
"#;

/// A test environment with [`CONFIG`] and a digests file naming [`IMAGE`] at [`DIGEST`].
fn manifest_env() -> (TestEnv, PathBuf) {
    let env = TestEnv::new();
    std::fs::write(env.work_dir().join("imgforge.toml"), CONFIG).expect("imgforge.toml");
    let digests = env.work_dir().join("digests.json");
    let entry = |tag: &str| {
        serde_json::json!({
            "name": "spark", "image": IMAGE, "tag": tag, "digest": DIGEST, "platform": "linux/amd64"
        })
    };
    let hs = serde_json::json!({
        "name": "spark-hs", "image": "registry.example.com/data/spark-hs", "tag": "3.5.3",
        "digest": DIGEST.replace('5', "6"), "platform": "linux/amd64"
    });
    std::fs::write(
        &digests,
        serde_json::to_string_pretty(&serde_json::json!([entry("3.5.3"), entry("latest"), hs]))
            .expect("json"),
    )
    .expect("digests file");
    (env, digests)
}

fn run(env: &TestEnv, args: &[&str]) -> Output {
    let mut command = env.imgforge();
    command
        .args(args)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_VALUE)
        .env("S3_SECRET_KEY", SECRET_VALUE);
    crate::support::env::run_command(command, crate::support::env::DEFAULT_RUN_TIMEOUT)
}

const JOB: [&str; 8] = [
    "--name",
    "nightly-report",
    "--namespace",
    "data",
    "--main-class",
    "org.example.NightlyReport",
    "--main-application-file",
    "local:///opt/spark/jobs/nightly-report.jar",
];

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration/manifest/goldens")
        .join(name)
}

/// Compare `actual` with the golden file `name`; `IMGFORGE_UPDATE_GOLDENS=1` rewrites it.
fn assert_golden(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("IMGFORGE_UPDATE_GOLDENS").is_some() {
        std::fs::write(&path, actual).expect("update the golden file");
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("golden file {}: {error}", path.display()));
    assert_eq!(
        actual,
        expected,
        "{} differs (IMGFORGE_UPDATE_GOLDENS=1 rewrites it)",
        path.display()
    );
}

#[test]
fn both_resources_match_their_golden_files_on_stdout_and_in_out_files() {
    let (env, digests) = manifest_env();
    let digests = digests.display().to_string();
    let output = run(
        &env,
        &[
            &["manifest", "spark-application", "--digests-file", &digests][..],
            &JOB,
        ]
        .concat(),
    );
    assert_success(&output);
    assert_golden("spark-application.yaml", &stdout_text(&output));

    let out = env.work_dir().join("scheduled.yaml");
    let out_arg = out.display().to_string();
    let output = run(
        &env,
        &[
            &[
                "manifest",
                "scheduled-spark-application",
                "--digests-file",
                &digests,
                "--schedule",
                "0 2 * * *",
                "--out",
                &out_arg,
            ][..],
            &JOB,
        ]
        .concat(),
    );
    assert_success(&output);
    assert!(
        stdout_text(&output).contains(&format!("to {out_arg}")),
        "{}",
        stdout_text(&output)
    );
    let written = std::fs::read_to_string(&out).expect("the --out file");
    assert_golden("scheduled-spark-application.yaml", &written);
    for text in [written, stdout_text(&output), stderr_text(&output)] {
        assert!(
            !text.contains(SECRET_VALUE),
            "a secret value leaked:\n{text}"
        );
    }
}

/// The keys of a YAML mapping, sorted.
fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_mapping()
        .unwrap_or_else(|| panic!("not a mapping: {value:?}"))
        .keys()
        .map(|key| key.as_str().expect("string key").to_string())
        .collect();
    keys.sort();
    keys
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value:?}"))
}

/// Check a parsed `SparkApplicationSpec` field by field.
fn check_application_spec(spec: &Value, config: &Config) {
    assert_eq!(
        keys(spec),
        [
            "driver",
            "executor",
            "image",
            "imagePullPolicy",
            "mainApplicationFile",
            "mainClass",
            "mode",
            "restartPolicy",
            "sparkConf",
            "sparkVersion",
            "type"
        ]
    );
    assert_eq!(text(&spec["type"], "type"), "Scala");
    assert_eq!(text(&spec["mode"], "mode"), "cluster");
    // Pinned by digest: no tag, nothing to pull again.
    assert_eq!(text(&spec["image"], "image"), format!("{IMAGE}@{DIGEST}"));
    assert_eq!(
        text(&spec["imagePullPolicy"], "imagePullPolicy"),
        "IfNotPresent"
    );
    assert_eq!(
        text(&spec["mainClass"], "mainClass"),
        "org.example.NightlyReport"
    );
    assert_eq!(
        text(&spec["mainApplicationFile"], "mainApplicationFile"),
        "local:///opt/spark/jobs/nightly-report.jar"
    );
    assert_eq!(text(&spec["sparkVersion"], "sparkVersion"), "3.5.3");
    assert_eq!(keys(&spec["restartPolicy"]), ["type"]);
    assert_eq!(
        text(&spec["restartPolicy"]["type"], "restartPolicy"),
        "Never"
    );

    // sparkConf is exactly what the images carry, every value a string.
    let conf: Vec<(String, String)> = spec["sparkConf"]
        .as_mapping()
        .expect("sparkConf mapping")
        .iter()
        .map(|(key, value)| {
            (
                text(key, "sparkConf key").to_string(),
                text(value, "sparkConf value").to_string(),
            )
        })
        .collect();
    let mut expected: Vec<(String, String)> = imgforge::assemble::spark_settings(config)
        .into_iter()
        .chain(imgforge::assemble::event_log_settings(config))
        .map(|(key, value)| (key.to_string(), value))
        .collect();
    expected.sort();
    assert_eq!(conf, expected);
    // …and those are the reference deployment's values and this configuration's.
    for (key, value) in [
        ("spark.hadoop.fs.s3a.committer.name", "directory"),
        ("spark.hadoop.fs.s3a.path.style.access", "true"),
        (
            "spark.hadoop.fs.s3a.endpoint",
            "https://minio.data.svc:9000",
        ),
        (
            "spark.hive.metastore.uris",
            "thrift://hive-metastore.data.svc:9083",
        ),
        ("spark.eventLog.enabled", "true"),
        ("spark.eventLog.dir", "s3a://spark/eventlogs"),
    ] {
        assert!(
            conf.contains(&(key.to_string(), value.to_string())),
            "sparkConf lacks {key} = {value}: {conf:?}"
        );
    }

    for (role, pod) in [("driver", &spec["driver"]), ("executor", &spec["executor"])] {
        let expected_keys: &[&str] = match role {
            "driver" => &["cores", "env", "memory", "serviceAccount"],
            _ => &["cores", "env", "instances", "memory"],
        };
        assert_eq!(keys(pod), expected_keys, "{role}");
        assert_eq!(pod["cores"].as_u64(), Some(1), "{role} cores");
        assert_eq!(text(&pod["memory"], "memory"), "1g", "{role} memory");
        if role == "driver" {
            assert_eq!(
                text(&pod["serviceAccount"], "serviceAccount"),
                "spark-driver"
            );
        } else {
            assert_eq!(pod["instances"].as_u64(), Some(1));
        }
        // Every variable comes from the configured secret; no value is written.
        let env: Vec<(String, String, String)> = pod["env"]
            .as_sequence()
            .expect("env list")
            .iter()
            .map(|var| {
                assert_eq!(keys(var), ["name", "valueFrom"], "{role}: {var:?}");
                assert_eq!(keys(&var["valueFrom"]), ["secretKeyRef"]);
                let reference = &var["valueFrom"]["secretKeyRef"];
                assert_eq!(keys(reference), ["key", "name"]);
                (
                    text(&var["name"], "env name").to_string(),
                    text(&reference["name"], "secret name").to_string(),
                    text(&reference["key"], "secret key").to_string(),
                )
            })
            .collect();
        let secret = "minio-credentials".to_string();
        let expected_env: Vec<(String, String, String)> = [
            ("S3_ENDPOINT", "S3_ENDPOINT"),
            ("S3_ACCESS_KEY", "S3_ACCESS_KEY"),
            ("S3_SECRET_KEY", "S3_SECRET_KEY"),
            ("AWS_ACCESS_KEY_ID", "S3_ACCESS_KEY"),
            ("AWS_SECRET_ACCESS_KEY", "S3_SECRET_KEY"),
        ]
        .iter()
        .map(|(name, key)| (name.to_string(), secret.clone(), key.to_string()))
        .collect();
        assert_eq!(env, expected_env, "{role}");
    }
}

#[test]
fn manifests_parse_back_with_every_field_from_the_same_settings_as_the_images() {
    let (env, digests) = manifest_env();
    let config = Config::load_with_env(
        &GlobalArgs {
            config: Some(env.work_dir().join("imgforge.toml")),
            ..Default::default()
        },
        &|_| None,
    )
    .expect("the test configuration loads");
    let digests = digests.display().to_string();

    let output = run(
        &env,
        &[
            &["manifest", "spark-application", "--digests-file", &digests][..],
            &JOB,
        ]
        .concat(),
    );
    let resource = parse_resource(&output, "SparkApplication");
    assert_eq!(keys(&resource["metadata"]), ["name", "namespace"]);
    check_application_spec(&resource["spec"], &config);

    let output = run(
        &env,
        &[
            &[
                "manifest",
                "scheduled-spark-application",
                "--digests-file",
                &digests,
                "--schedule",
                "@every 6h",
            ][..],
            &JOB,
        ]
        .concat(),
    );
    let resource = parse_resource(&output, "ScheduledSparkApplication");
    let spec = &resource["spec"];
    assert_eq!(keys(spec), ["concurrencyPolicy", "schedule", "template"]);
    assert_eq!(text(&spec["schedule"], "schedule"), "@every 6h");
    assert_eq!(
        text(&spec["concurrencyPolicy"], "concurrencyPolicy"),
        "Forbid"
    );
    check_application_spec(&spec["template"], &config);

    // --json carries the same resource.
    let output = run(
        &env,
        &[
            &[
                "--json",
                "manifest",
                "spark-application",
                "--digests-file",
                &digests,
            ][..],
            &JOB,
        ]
        .concat(),
    );
    assert_success(&output);
    let report: serde_json::Value = serde_json::from_str(&stdout_text(&output)).expect("JSON");
    assert_eq!(report["image"], format!("{IMAGE}@{DIGEST}"));
    assert_eq!(
        report["manifest"]["spec"]["image"],
        format!("{IMAGE}@{DIGEST}")
    );
}

#[test]
fn bad_inputs_are_refused_with_their_exit_code_and_leave_the_out_file_alone() {
    let (env, digests) = manifest_env();
    let digests_arg = digests.display().to_string();
    let out = env.work_dir().join("app.yaml");
    let out_arg = out.display().to_string();
    std::fs::write(&out, "previous\n").expect("an existing --out file");
    let with = |extra: &[&str], job: &[&str]| {
        let mut args = vec!["manifest", "spark-application", "--out", out_arg.as_str()];
        args.extend_from_slice(extra);
        args.extend_from_slice(job);
        run(&env, &args)
    };
    let job_named = |name: &'static str| {
        [
            "--name",
            name,
            "--main-application-file",
            "local:///opt/app.jar",
        ]
    };

    let output = with(&["--digests-file", &digests_arg], &job_named("Bad_Name"));
    assert_exit_code(&output, 2);
    assert!(
        stderr_text(&output).contains("--name"),
        "{}",
        stderr_text(&output)
    );

    let output = run(
        &env,
        &[
            &[
                "manifest",
                "scheduled-spark-application",
                "--digests-file",
                &digests_arg,
                "--schedule",
                "daily",
            ][..],
            &job_named("ok"),
        ]
        .concat(),
    );
    assert_exit_code(&output, 2);
    assert!(
        stderr_text(&output).contains("--schedule"),
        "{}",
        stderr_text(&output)
    );

    // A digests file without the spark image, one that is not JSON, one that is missing.
    let only_hs = env.work_dir().join("only-hs.json");
    std::fs::write(
        &only_hs,
        format!(
            r#"[{{"name":"spark-hs","image":"r.example/spark-hs","tag":"t","digest":"{DIGEST}","platform":"linux/amd64"}}]"#
        ),
    )
    .expect("write");
    let not_json = env.work_dir().join("not.json");
    std::fs::write(&not_json, "spark: sha256:x\n").expect("write");
    let absent = env.work_dir().join("absent.json");
    for (file, needle) in [
        (&only_hs, "lists no spark image"),
        (&not_json, "is not a JSON array"),
        (&absent, "cannot read the digests file"),
    ] {
        let file_arg = file.display().to_string();
        let output = with(&["--digests-file", &file_arg], &job_named("ok"));
        assert_exit_code(&output, 2);
        let stderr = stderr_text(&output);
        assert!(
            stderr.contains(needle) && stderr.contains(&file_arg),
            "{stderr}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&out).expect("out file"),
        "previous\n",
        "a failed run touched --out"
    );

    // An --out in a folder that does not exist: exit 5, naming it, nothing written.
    let nowhere = env.work_dir().join("no-such-dir/app.yaml");
    let nowhere_arg = nowhere.display().to_string();
    let output = run(
        &env,
        &[
            &[
                "manifest",
                "spark-application",
                "--digests-file",
                &digests_arg,
                "--out",
                &nowhere_arg,
            ][..],
            &job_named("ok"),
        ]
        .concat(),
    );
    assert_exit_code(&output, 5);
    assert!(
        stderr_text(&output).contains(&format!("cannot write the manifest {nowhere_arg}")),
        "{}",
        stderr_text(&output)
    );
    assert!(!nowhere.exists());

    // A good run replaces the file whole.
    let output = with(&["--digests-file", &digests_arg], &job_named("ok"));
    assert_success(&output);
    let written = std::fs::read_to_string(&out).expect("out file");
    assert!(
        written.starts_with("apiVersion: sparkoperator.k8s.io/v1beta2\n"),
        "{written}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(env.work_dir())
        .expect("work dir")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

/// The resource a successful `manifest` run printed, with its top-level keys, `apiVersion`,
/// `kind` and the test job's name and namespace checked.
fn parse_resource(output: &std::process::Output, kind: &str) -> Value {
    assert_success(output);
    let resource: Value = serde_norway::from_str(&stdout_text(output)).expect("YAML");
    assert_eq!(keys(&resource), ["apiVersion", "kind", "metadata", "spec"]);
    assert_eq!(
        text(&resource["apiVersion"], "apiVersion"),
        "sparkoperator.k8s.io/v1beta2"
    );
    assert_eq!(text(&resource["kind"], "kind"), kind);
    assert_eq!(
        text(&resource["metadata"]["name"], "name"),
        "nightly-report"
    );
    assert_eq!(
        text(&resource["metadata"]["namespace"], "namespace"),
        "data"
    );
    resource
}
