//! `imgforge prepare` and `imgforge resolve` on the real binary: Spark distributions shaped
//! like each layout family, served with their Maven POM chains from the loopback mirror;
//! both S3A jar sources; version pins; Hadoop version detection; log4j; patches and
//! `--diff`; atomic replacement of the output.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::fixtures::{
    self, FAMILIES, Family, SPARK_4, SPARK_31, SPARK_33, SPARK_35, TarEntry, family_entries,
    maven_jar,
};
use crate::support::prepared::{
    ExistingOut, TREE_MARKER, assert_nothing_beside, files_of, fingerprint, member_bytes,
    member_files, publish_family, publish_spark, run_entrypoint, spark_section, write_config,
};
use crate::support::{
    TestEnv, assert_exit_code, assert_stderr_contains, assert_success, stderr_text, stdout_text,
};

const ENTRYPOINT: &str = "kubernetes/dockerfiles/spark/entrypoint.sh";
const DOCKERFILE: &str = "kubernetes/dockerfiles/spark/Dockerfile";

/// The spark-defaults.conf keys every prepared tree carries, with their values.
const S3A_DEFAULTS: [(&str, &str); 7] = [
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
];

/// `key value` pairs of a spark-defaults.conf (comments skipped).
fn conf_pairs(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once(char::is_whitespace)
                .unwrap_or_else(|| panic!("not a `key value` line: {line:?}"));
            (key.to_string(), value.trim().to_string())
        })
        .collect()
}

fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    fs::read_to_string(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// Makes a development CA with `imgforge certs init` and puts its `ca.crt` alone in a certs
/// folder. Returns (certs folder, the CA's PEM text).
fn dev_ca_certs_dir(env: &TestEnv) -> (PathBuf, String) {
    let generated = env.root().join("dev-ca");
    let output = env.run(&[
        "certs",
        "init",
        "--host",
        "minio.local",
        "--out",
        generated.to_str().unwrap(),
    ]);
    assert_success(&output);
    let certs = env.root().join("certs");
    fs::create_dir_all(&certs).unwrap();
    let pem = read(generated.join("ca.crt"));
    fs::write(certs.join("ca.crt"), &pem).unwrap();
    (certs, pem)
}

/// The base64 body of a PEM certificate, without the armour lines.
fn pem_body(pem: &str) -> String {
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<String>()
}

/// How each family is configured in [`prepare_family`]; tests/golden/prepare/generate.py
/// wrote the expected files with the same settings.
fn family_settings(family: &Family) -> (&'static str, bool) {
    match family.name {
        "spark-3.1" => (
            "[s3a]\nendpoint = \"https://minio.local:9000\"\n\
             [spark]\nhive_metastore_uris = \"thrift://metastore.example:9083\"\n",
            true,
        ),
        "spark-3.3" => (
            "[images.spark]\njava_image_tag = \"8-jre-slim\"\nbase = \"registry.example.com/base/java:8-jre\"\n",
            true,
        ),
        "spark-3.5" => (
            "[images.spark]\njava_image_tag = \"17-jre\"\nbase = \"eclipse-temurin:17-jre-jammy\"\n\
             [s3a]\ndisable_cert_checking = true\n",
            true,
        ),
        "spark-4.x" => ("[images.spark]\njava_image_tag = \"21-jre\"\n", false),
        other => panic!("unknown family {other}"),
    }
}

/// The whole acceptance check of one family: resolve (human and JSON), prepare, golden
/// entrypoint.sh and Dockerfile, jars, conf files, certificates, untouched rest of the tree.
fn prepare_family(family: Family) -> (TestEnv, PathBuf) {
    let env = TestEnv::new();
    let (_, chain) = publish_family(&env, &family);
    let (extra_config, with_certs) = family_settings(&family);
    // `[spark]` may appear twice in TOML only once: merge the family keys in.
    let config = if extra_config.contains("[spark]\n") {
        extra_config.replace("[spark]\n", &spark_section(&family))
    } else {
        format!("{}{extra_config}", spark_section(&family))
    };
    write_config(&env, &config);
    let certs = with_certs.then(|| dev_ca_certs_dir(&env));
    let expected_jars: Vec<&str> = chain.jars.iter().map(|(name, _)| name.as_str()).collect();

    // resolve, for people.
    let output = env.run(&["resolve"]);
    assert_success(&output);
    let human = stdout_text(&output);
    assert!(
        human.contains(&format!(
            "Spark {} (Scala {})",
            family.spark_version, family.scala
        )),
        "{human}"
    );
    assert!(
        human.contains(&format!(
            "Hadoop {} ({})",
            family.hadoop_version,
            family.hadoop_evidence()
        )),
        "{human}"
    );
    for name in &expected_jars {
        assert!(human.contains(name), "{name} missing from:\n{human}");
    }

    // resolve, for scripts.
    let output = env.run(&["--json", "resolve"]);
    assert_success(&output);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(json["spark_version"], family.spark_version);
    assert_eq!(json["scala_version"], family.scala);
    assert_eq!(json["hadoop_version"], family.hadoop_version);
    assert_eq!(json["hadoop_version_source"], family.hadoop_evidence());
    assert_eq!(json["log4j_file"], family.log4j_file());
    assert_eq!(json["s3a"]["source"], "maven");
    assert_eq!(json["s3a"]["hadoop_aws_version"], family.hadoop_version);
    let reported: Vec<&str> = json["s3a"]["jars"]
        .as_array()
        .expect("jars array")
        .iter()
        .map(|jar| jar["file_name"].as_str().expect("file_name"))
        .collect();
    assert_eq!(reported, expected_jars, "{json:#}");

    // prepare.
    let out = env.root().join("build/spark");
    let mut args = vec!["prepare", "--out", out.to_str().unwrap()];
    if let Some((certs_dir, _)) = &certs {
        args.extend(["--certs", certs_dir.to_str().unwrap()]);
    }
    let output = env.run(&args);
    assert_success(&output);
    assert_nothing_beside(&out);

    // The patched files equal the golden ones.
    for (file, golden) in [(ENTRYPOINT, "entrypoint.sh"), (DOCKERFILE, "Dockerfile")] {
        let golden = family.golden_prepared(golden);
        assert_eq!(
            read(out.join(file)),
            read(&golden),
            "{} {file} differs from {}",
            family.name,
            golden.display()
        );
    }

    // The S3A jars are there, byte for byte, and nothing else was added to jars/.
    let entries = family.entries();
    let tarball_files = member_files(&entries);
    for (name, published) in &chain.jars {
        assert_eq!(
            fs::read(out.join("jars").join(name)).unwrap_or_default(),
            published.bytes(),
            "jars/{name}"
        );
    }
    for published in &chain.not_needed {
        assert!(
            !out.join("jars").join(published.file_name()).exists(),
            "provided-scope {} was added",
            published.file_name()
        );
    }
    let mut expected_files: Vec<String> = tarball_files.clone();
    expected_files.extend(expected_jars.iter().map(|name| format!("jars/{name}")));
    expected_files.push(format!("conf/{}", family.log4j_file()));
    expected_files.push("conf/spark-defaults.conf".to_string());
    expected_files.push(TREE_MARKER.to_string());
    if certs.is_some() {
        expected_files.push("certs/imgforge-ca.crt".to_string());
        expected_files.push("certs/aliases".to_string());
        expected_files.push("certs/import-certs.sh".to_string());
    }
    expected_files.sort();
    assert_eq!(files_of(&out), expected_files);

    // Everything else is the distribution as shipped.
    for relative in &tarball_files {
        if relative == ENTRYPOINT || relative == DOCKERFILE {
            continue;
        }
        assert_eq!(
            fs::read(out.join(relative)).unwrap(),
            member_bytes(&entries, &format!("/{relative}")),
            "{relative} changed"
        );
    }

    // conf/: the log4j file from the template, spark-defaults with the S3A settings.
    assert_eq!(
        read(out.join("conf").join(family.log4j_file())),
        String::from_utf8(member_bytes(&entries, family.log4j_template())).unwrap()
    );
    let defaults = read(out.join("conf/spark-defaults.conf"));
    let pairs = conf_pairs(&defaults);
    for (key, value) in S3A_DEFAULTS {
        assert!(
            pairs.contains(&(key.to_string(), value.to_string())),
            "{key} {value} missing from:\n{defaults}"
        );
    }
    let lower = defaults.to_lowercase();
    assert!(!lower.contains("fs.s3a.access.key") && !lower.contains("fs.s3a.secret.key"));
    if family.name == "spark-3.1" {
        assert!(pairs.contains(&(
            "spark.hadoop.fs.s3a.endpoint".into(),
            "https://minio.local:9000".into()
        )));
        assert!(pairs.contains(&(
            "spark.hive.metastore.uris".into(),
            "thrift://metastore.example:9083".into()
        )));
        assert_eq!(pairs.len(), S3A_DEFAULTS.len() + 2, "{defaults}");
    } else {
        assert_eq!(pairs.len(), S3A_DEFAULTS.len(), "{defaults}");
    }

    // The CA certificate is in the tree under its alias.
    if let Some((_, pem)) = &certs {
        assert_eq!(
            pem_body(&read(out.join("certs/imgforge-ca.crt"))),
            pem_body(pem)
        );
    }

    // The AWS SDK switch is announced when it is on, and only then.
    let stderr = stderr_text(&output);
    let warned = stderr.contains("disableCertChecking");
    assert_eq!(warned, family.name == "spark-3.5", "stderr:\n{stderr}");
    (env, out)
}

#[test]
fn spark_3_1_family_prepares_with_golden_files_and_runs_the_driver_verbosely() {
    let (_env, out) = prepare_family(SPARK_31);
    let (printed, spark_home) = run_entrypoint(
        &out.join(ENTRYPOINT),
        &["driver", "--class", "X", "app.jar"],
    );
    assert_eq!(
        printed,
        [
            "_JAVA_OPTIONS=-Dlog4j.configuration=file:///opt/spark/log4j.properties".to_string(),
            "-s".into(),
            "--".into(),
            format!("{spark_home}/bin/spark-submit"),
            "--verbose".into(),
            "--conf".into(),
            "spark.driver.bindAddress=10.1.2.3".into(),
            "--deploy-mode".into(),
            "client".into(),
            "--class".into(),
            "X".into(),
            "app.jar".into(),
        ]
    );
}

#[test]
fn spark_3_3_family_prepares_with_java_8_and_base_override_leaving_the_truststore_to_the_image() {
    let (_env, out) = prepare_family(SPARK_33);
    let dockerfile = read(out.join(DOCKERFILE));
    assert!(dockerfile.contains("FROM registry.example.com/base/java:8-jre\n"));
    // The truststore is found inside the image at build time, not guessed from the tag.
    assert!(dockerfile.contains("RUN sh /opt/spark/certs/import-certs.sh /opt/spark/certs\n"));
    assert!(!dockerfile.contains("keytool"), "{dockerfile}");
    assert_eq!(
        read(out.join("certs/aliases")),
        "imgforge-ca.crt imgforge-ca\n"
    );
}

#[test]
fn spark_3_5_family_prepares_with_base_override_on_temurin_and_runs_the_driver_verbosely() {
    let (_env, out) = prepare_family(SPARK_35);
    let dockerfile = read(out.join(DOCKERFILE));
    assert!(dockerfile.contains("FROM eclipse-temurin:17-jre-jammy\n"));
    assert!(!dockerfile.contains("${java_image_tag}\n"));
    let (printed, spark_home) = run_entrypoint(
        &out.join(ENTRYPOINT),
        &["driver", "--class", "X", "app.jar"],
    );
    assert_eq!(
        printed,
        [
            "_JAVA_OPTIONS=-Dlog4j.configurationFile=file:///opt/spark/log4j2.properties \
             -Dcom.amazonaws.sdk.disableCertChecking=true"
                .to_string(),
            "-s".into(),
            "--".into(),
            format!("{spark_home}/bin/spark-submit"),
            "--verbose".into(),
            "--conf".into(),
            "spark.driver.bindAddress=10.1.2.3".into(),
            "--conf".into(),
            "spark.executorEnv.SPARK_DRIVER_POD_IP=10.1.2.3".into(),
            "--deploy-mode".into(),
            "client".into(),
            "--class".into(),
            "X".into(),
            "app.jar".into(),
        ]
    );
}

#[test]
fn spark_4_family_prepares_with_the_v2_sdk_bundle_and_extra_runtime_jars() {
    let (_env, out) = prepare_family(SPARK_4);
    for name in [
        "hadoop-aws-3.4.1.jar",
        "bundle-2.24.6.jar",
        "analyticsaccelerator-s3-1.0.0.jar",
        "wildfly-openssl-1.0.7.Final.jar",
    ] {
        assert!(out.join("jars").join(name).is_file(), "jars/{name}");
    }
    assert!(!out.join("jars/aws-java-sdk-core-1.12.720.jar").exists());
    assert!(out.join("jars/spark-core_2.13-4.0.1.jar").is_file());
}

#[test]
fn hadoop_dist_source_takes_only_the_s3a_jars_out_of_the_hadoop_tarball() {
    let env = TestEnv::new();
    write_config(&env, "[s3a]\njars_source = \"hadoop-dist\"\n");
    let out = env.root().join("build/spark");
    let output = env.run(&["prepare", "--out", out.to_str().unwrap()]);
    assert_success(&output);
    assert_nothing_beside(&out);

    // The Hadoop tarball was the source; Maven was never asked.
    let requests = env.server.requests();
    let hadoop_path = &env.apache.hadoop.url_path;
    assert!(
        requests
            .iter()
            .any(|request| &request.path == hadoop_path && request.completed),
        "{requests:#?}"
    );
    assert!(
        !requests
            .iter()
            .any(|request| request.path.starts_with("/maven/")),
        "{requests:#?}"
    );

    // Exactly the two jars came out of the Hadoop tarball, byte for byte, and nothing else
    // of Hadoop appears anywhere in the tree.
    assert_eq!(
        fs::read(out.join("jars/hadoop-aws-3.2.0.jar")).unwrap(),
        maven_jar("org.apache.hadoop", "hadoop-aws", "3.2.0")
    );
    assert_eq!(
        fs::read(out.join("jars/aws-java-sdk-bundle-1.11.375.jar")).unwrap(),
        maven_jar("com.amazonaws", "aws-java-sdk-bundle", "1.11.375")
    );
    let spark_entries = fixtures::spark_dist_entries("3.1.1", "hadoop3.2", "3.2.0");
    let mut expected = member_files(&spark_entries);
    expected.extend(
        [
            "jars/hadoop-aws-3.2.0.jar",
            "jars/aws-java-sdk-bundle-1.11.375.jar",
            "conf/log4j.properties",
            "conf/spark-defaults.conf",
            TREE_MARKER,
        ]
        .map(String::from),
    );
    expected.sort();
    assert_eq!(files_of(&out), expected);
    let everything = fingerprint(&out);
    for hadoop_only in [
        "hadoop-azure",
        "hadoop-nfs",
        "hadoop-kms",
        "core-site.xml",
        "hadoop-env.sh",
        "start-dfs.sh",
        "share",
        "etc",
    ] {
        assert!(
            !everything.keys().any(|path| path.contains(hadoop_only)),
            "{hadoop_only} leaked into the tree"
        );
    }

    // resolve says where the jars come from.
    let output = env.run(&["--json", "resolve"]);
    assert_success(&output);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["s3a"]["source"], "hadoop-dist");
    assert_eq!(json["s3a"]["sdk_version"], "1.11.375");
    let origins: Vec<&str> = json["s3a"]["jars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|jar| jar["origin"].as_str().unwrap())
        .collect();
    assert_eq!(
        origins,
        [
            "Hadoop tarball share/hadoop/tools/lib/hadoop-aws-3.2.0.jar",
            "Hadoop tarball share/hadoop/tools/lib/aws-java-sdk-bundle-1.11.375.jar"
        ]
    );
}

#[test]
fn hadoop_version_comes_from_the_jars_not_the_tarball_name() {
    let env = TestEnv::new();
    // Named …-bin-hadoop3.2, bundling 3.2.4.
    let entries = family_entries(&SPARK_31, "3.2.4");
    publish_spark(&env, SPARK_31.spark_version, "hadoop3.2", &entries);
    let chain = env
        .maven
        .tree
        .publish_aws_chain(&fixtures::AwsChain::v1("3.2.4", "1.11.901"));
    write_config(&env, &spark_section(&SPARK_31));
    let output = env.run(&["--json", "resolve"]);
    assert_success(&output);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["hadoop_version"], "3.2.4");
    assert_eq!(
        json["hadoop_version_source"],
        "jars/hadoop-common-3.2.4.jar"
    );

    let out = env.root().join("out");
    assert_success(&env.run(&["prepare", "--out", out.to_str().unwrap()]));
    for (name, published) in &chain.jars {
        assert_eq!(
            fs::read(out.join("jars").join(name)).unwrap(),
            published.bytes()
        );
    }
    assert!(out.join("jars/hadoop-aws-3.2.4.jar").is_file());
    assert!(!out.join("jars/hadoop-aws-3.2.0.jar").exists());
}

#[test]
fn a_without_hadoop_build_is_a_clear_error() {
    let env = TestEnv::new();
    publish_spark(
        &env,
        "3.1.3",
        "without-hadoop",
        &family_entries(
            &fixtures::Family {
                package: "without-hadoop",
                ..SPARK_31
            },
            "",
        ),
    );
    write_config(
        &env,
        "[spark]\nversion = \"3.1.3\"\npackage = \"without-hadoop\"\n",
    );
    let existing = ExistingOut::create(&env.root().join("build"));
    let output = env.run(&["prepare", "--out", existing.arg()]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "without-hadoop");
    assert_stderr_contains(&output, "no Hadoop jars");
    // The error names the tarball, not the staged directory that no longer exists.
    assert_stderr_contains(&output, "spark-3.1.3-bin-without-hadoop.tgz");
    assert!(
        !stderr_text(&output).contains(".unpack."),
        "{}",
        stderr_text(&output)
    );
    existing.assert_untouched();
    let output = env.run(&["resolve"]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "no Hadoop jars");
}

#[test]
fn conflicting_hadoop_versions_are_a_clear_error() {
    let env = TestEnv::new();
    let mut entries = SPARK_31.entries();
    entries.push(TarEntry::file(
        format!("{}/jars/hadoop-client-api-3.3.1.jar", SPARK_31.top()),
        maven_jar("org.apache.hadoop", "hadoop-client-api", "3.3.1"),
    ));
    publish_spark(&env, SPARK_31.spark_version, SPARK_31.package, &entries);
    write_config(&env, &spark_section(&SPARK_31));
    let existing = ExistingOut::create(&env.root().join("build"));
    let output = env.run(&["prepare", "--out", existing.arg()]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "conflicting Hadoop versions");
    assert_stderr_contains(&output, "3.2.0, 3.3.1");
    assert_stderr_contains(&output, "spark-3.1.3-bin-hadoop3.2.tgz");
    assert!(
        !stderr_text(&output).contains(".unpack."),
        "{}",
        stderr_text(&output)
    );
    existing.assert_untouched();
}

#[test]
fn a_hadoop_aws_pin_that_does_not_match_explains_nosuchmethoderror() {
    let env = TestEnv::new();
    write_config(&env, "[s3a]\nhadoop_aws_version = \"3.3.4\"\n");
    let existing = ExistingOut::create(&env.root().join("build"));
    let output = env.run(&["prepare", "--out", existing.arg()]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "hadoop_aws_version");
    assert_stderr_contains(&output, "3.3.4");
    assert_stderr_contains(&output, "3.2.0");
    assert_stderr_contains(&output, "NoSuchMethodError");
    existing.assert_untouched();
}

#[test]
fn an_sdk_pin_that_does_not_match_is_refused() {
    let env = TestEnv::new();
    write_config(&env, "[s3a]\nsdk_version = \"1.12.262\"\n");
    let existing = ExistingOut::create(&env.root().join("build"));
    let output = env.run(&["prepare", "--out", existing.arg()]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "sdk_version");
    assert_stderr_contains(&output, "1.12.262");
    assert_stderr_contains(&output, "1.11.375");
    assert_stderr_contains(&output, "NoSuchMethodError");
    existing.assert_untouched();
    // The matching pin is accepted.
    write_config(
        &env,
        "[s3a]\nsdk_version = \"1.11.375\"\nhadoop_aws_version = \"3.2.0\"\n",
    );
    assert_success(&env.run(&["prepare", "--out", existing.arg()]));
    assert!(
        existing
            .out
            .join("jars/aws-java-sdk-bundle-1.11.375.jar")
            .is_file()
    );
}

#[test]
fn a_hadoop_version_contradicting_the_tree_is_refused() {
    let env = TestEnv::new();
    write_config(&env, "[hadoop]\nversion = \"3.3.4\"\n");
    let existing = ExistingOut::create(&env.root().join("build"));
    let output = env.run(&["prepare", "--out", existing.arg()]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "[hadoop] version");
    assert_stderr_contains(&output, "3.2.0");
    existing.assert_untouched();
}

#[test]
fn a_user_log4j_file_replaces_the_template() {
    let env = TestEnv::new();
    let custom = "log4j.rootCategory=WARN, console\n# from the user\n";
    fs::write(env.work_dir().join("my-log4j.properties"), custom).unwrap();
    write_config(&env, "[spark]\nlog4j_file = \"my-log4j.properties\"\n");
    let out = env.root().join("out");
    assert_success(&env.run(&["prepare", "--out", out.to_str().unwrap()]));
    assert_eq!(read(out.join("conf/log4j.properties")), custom);
    assert!(read(out.join(DOCKERFILE)).contains("COPY conf/log4j.properties /opt/spark/\n"));
    assert!(read(out.join(ENTRYPOINT)).contains(
        "export _JAVA_OPTIONS=\"-Dlog4j.configuration=file:///opt/spark/log4j.properties\"\n"
    ));
}

#[test]
fn a_missing_anchor_names_file_anchor_and_version_and_writes_nothing() {
    let env = TestEnv::new();
    let mut entries = SPARK_31.entries();
    for entry in &mut entries {
        if let TarEntry::File { path, bytes, .. } = entry
            && path.ends_with(ENTRYPOINT)
        {
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(text.contains("case \"$1\" in\n"));
            *bytes = text
                .replace("case \"$1\" in\n", "case \"${1}\" in\n")
                .into_bytes();
        }
    }
    publish_spark(&env, SPARK_31.spark_version, SPARK_31.package, &entries);
    env.maven
        .tree
        .publish_aws_chain(&fixtures::chain_for(&SPARK_31));
    write_config(&env, &spark_section(&SPARK_31));
    let existing = ExistingOut::create(&env.root().join("build"));
    let output = env.run(&["prepare", "--out", existing.arg()]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "entrypoint.sh");
    assert_stderr_contains(&output, "case \"$1\" in");
    assert_stderr_contains(&output, "3.1.3");
    existing.assert_untouched();
    // --diff fails the same way.
    let output = env.run(&["prepare", "--diff", "--out", existing.arg()]);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "case \"$1\" in");
    existing.assert_untouched();
}

#[test]
fn preparing_twice_gives_byte_identical_trees() {
    for family in [SPARK_31, SPARK_35] {
        let env = TestEnv::new();
        publish_family(&env, &family);
        write_config(
            &env,
            &format!(
                "{}[s3a]\nendpoint = \"http://minio:9000\"\n",
                spark_section(&family)
            ),
        );
        let (certs, _) = dev_ca_certs_dir(&env);
        let first = env.root().join("first");
        let second = env.root().join("second");
        for out in [&first, &second, &first] {
            assert_success(&env.run(&[
                "prepare",
                "--out",
                out.to_str().unwrap(),
                "--certs",
                certs.to_str().unwrap(),
            ]));
        }
        let first_print = fingerprint(&first);
        assert!(first_print.len() > 50, "{}", family.name);
        assert_eq!(first_print, fingerprint(&second), "{}", family.name);
    }
}

#[test]
fn diff_prints_every_change_and_writes_nothing() {
    let env = TestEnv::new();
    let out = env.root().join("build/spark");
    let output = env.run(&["prepare", "--diff", "--out", out.to_str().unwrap()]);
    assert_success(&output);
    let diff = stdout_text(&output);
    for line in [
        "+++ b/kubernetes/dockerfiles/spark/entrypoint.sh",
        "+export _JAVA_OPTIONS=\"-Dlog4j.configuration=file:///opt/spark/log4j.properties\"",
        " case \"$1\" in",
        "+      --verbose",
        "+++ b/kubernetes/dockerfiles/spark/Dockerfile",
        "+COPY conf/log4j.properties /opt/spark/",
        "+++ b/conf/spark-defaults.conf",
    ] {
        assert!(
            diff.lines().any(|candidate| candidate == line),
            "{line:?} missing from the diff:\n{diff}"
        );
    }
    assert!(diff.contains("@@ "), "{diff}");
    assert!(
        diff.lines().any(
            |line| line.starts_with("+spark.hadoop.fs.s3a.committer.name ")
                && line.ends_with(" directory")
        ),
        "{diff}"
    );
    assert!(diff.contains("jars/hadoop-aws-3.2.0.jar"), "{diff}");
    assert!(!out.exists(), "--diff created {}", out.display());
    let build = env.root().join("build");
    let leftovers: Vec<_> = fs::read_dir(&build)
        .map(|listing| listing.map(|entry| entry.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_user_patch_directory_adds_a_patch() {
    let env = TestEnv::new();
    fs::create_dir_all(env.work_dir().join("my-patches")).unwrap();
    fs::write(
        env.work_dir().join("my-patches/team.toml"),
        r#"[[patch]]
id = "team-label"
description = "label the image with its team"
file = "kubernetes/dockerfiles/spark/Dockerfile"
anchor = { starts_with = "ENTRYPOINT " }
operation = "insert_before"
template = 'LABEL org.example.team="data" org.example.spark="{spark_version}"'
"#,
    )
    .unwrap();
    write_config(&env, "[patches]\ndir = \"my-patches\"\n");
    let out = env.root().join("out");
    assert_success(&env.run(&["prepare", "--out", out.to_str().unwrap()]));
    let dockerfile = read(out.join(DOCKERFILE));
    assert!(
        dockerfile.contains(
            "LABEL org.example.team=\"data\" org.example.spark=\"3.1.1\"\nENTRYPOINT [ \"/opt/entrypoint.sh\" ]\n"
        ),
        "{dockerfile}"
    );
    // The built-in patches still apply.
    assert!(dockerfile.contains("COPY conf/log4j.properties /opt/spark/\n"));
}

#[test]
fn credentials_in_the_configuration_are_refused_without_echoing_them() {
    let env = TestEnv::new();
    for key in ["secret_key", "access_key", "session_token"] {
        write_config(&env, &format!("[s3a]\n{key} = \"TOPSECRET-{key}-VALUE\"\n"));
        let out = env.root().join("out");
        let output = env.run(&["prepare", "--out", out.to_str().unwrap()]);
        assert_exit_code(&output, 2);
        // The error points at the key (line 2 of the file) and at environment credentials.
        assert_stderr_contains(&output, "imgforge.toml at line 2");
        assert_stderr_contains(&output, "environment");
        assert_stderr_contains(&output, "AWS_ACCESS_KEY_ID");
        let everything = format!("{}{}", stdout_text(&output), stderr_text(&output));
        assert!(
            !everything.contains("TOPSECRET"),
            "the secret was printed:\n{everything}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn rerunning_prepare_replaces_the_tree_atomically() {
    let env = TestEnv::new();
    let out = env.root().join("build/spark");
    assert_success(&env.run(&["prepare", "--out", out.to_str().unwrap()]));
    let before = fingerprint(&out);
    fs::write(out.join("stray.txt"), "left by hand").unwrap();
    fs::write(out.join("jars/stray.jar"), "left by hand").unwrap();
    fs::remove_file(out.join("conf/spark-defaults.conf")).unwrap();
    assert_success(&env.run(&["prepare", "--out", out.to_str().unwrap()]));
    assert_eq!(fingerprint(&out), before);
    assert_nothing_beside(&out);
}

#[test]
fn every_family_fixture_is_detected_as_its_family() {
    // Guards the fixtures themselves: each family's tarball has its own layout markers.
    for family in FAMILIES {
        let files = member_files(&family.entries());
        assert!(files.contains(&family.hadoop_evidence()), "{}", family.name);
        assert!(
            files.contains(&family.log4j_template().to_string()),
            "{}",
            family.name
        );
        assert_eq!(
            files
                .iter()
                .any(|file| file.starts_with("jars/log4j-1.2.17")),
            !family.log4j2,
            "{}",
            family.name
        );
        let dockerfile = String::from_utf8(member_bytes(&family.entries(), DOCKERFILE)).unwrap();
        let temurin = dockerfile.contains("FROM eclipse-temurin:");
        assert_eq!(
            temurin,
            matches!(family.name, "spark-3.5" | "spark-4.x"),
            "{}",
            family.name
        );
    }
}
