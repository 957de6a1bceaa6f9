//! CA certificates through `imgforge prepare` and `imgforge certs init` on the real binary:
//! a development CA is imported, and every bad certificate input stops the run before
//! anything is written.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::support::prepared::ExistingOut;
use crate::support::{TestEnv, assert_exit_code, assert_stderr_contains, assert_success};

/// `imgforge certs init --host minio.local --out <root>/<name>`; returns the folder.
fn init_dev_ca(env: &TestEnv, name: &str) -> PathBuf {
    let dir = env.root().join(name);
    assert_success(&env.run(&[
        "certs",
        "init",
        "--host",
        "minio.local",
        "--out",
        dir.to_str().unwrap(),
    ]));
    dir
}

/// A self-signed CA certificate (CA:TRUE) that expired in 2016, as PEM.
fn expired_ca_pem() -> String {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Expired Test CA");
    params.not_before = rcgen::date_time_ymd(2015, 1, 1);
    params.not_after = rcgen::date_time_ymd(2016, 1, 1);
    params.self_signed(&key).expect("self-signed").pem()
}

/// A certs folder holding a good CA plus `bad` files; prepare must refuse it, exit 2, with
/// `needles` in stderr, and leave the output alone.
fn assert_refused(env: &TestEnv, case: &str, files: &[(&str, Vec<u8>)], needles: &[&str]) {
    let good = init_dev_ca(env, &format!("ca-{case}"));
    let certs = env.root().join(format!("certs-{case}"));
    fs::create_dir_all(&certs).unwrap();
    fs::copy(good.join("ca.crt"), certs.join("good-ca.crt")).unwrap();
    for (name, bytes) in files {
        fs::write(certs.join(name), bytes).unwrap();
    }
    let existing = ExistingOut::create(&env.root().join(format!("build-{case}")));
    env.server.clear_log();
    let output = env.run(&[
        "prepare",
        "--out",
        existing.arg(),
        "--certs",
        certs.to_str().unwrap(),
    ]);
    assert_exit_code(&output, 2);
    for needle in needles {
        assert_stderr_contains(&output, needle);
    }
    existing.assert_untouched();
    // Certificates are checked before anything is fetched.
    assert!(
        env.server.requests().is_empty(),
        "{case}: {:?}",
        env.server.requests()
    );
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

#[test]
fn a_server_certificate_is_not_a_ca() {
    let env = TestEnv::new();
    let dev = init_dev_ca(&env, "dev");
    assert_refused(
        &env,
        "server",
        &[("server.crt", read(&dev.join("server.crt")))],
        &["server.crt", "is not a CA certificate"],
    );
}

#[test]
fn an_expired_ca_is_refused() {
    let env = TestEnv::new();
    assert_refused(
        &env,
        "expired",
        &[("old-ca.crt", expired_ca_pem().into_bytes())],
        &["old-ca.crt", "expired on 2016-01-01"],
    );
}

#[test]
fn a_garbage_file_is_refused() {
    let env = TestEnv::new();
    assert_refused(
        &env,
        "garbage",
        &[("notes.pem", b"this is not a certificate at all\n".to_vec())],
        &["notes.pem", "is not an X.509 certificate"],
    );
}

#[test]
fn a_private_key_is_refused() {
    let env = TestEnv::new();
    let dev = init_dev_ca(&env, "dev");
    assert_refused(
        &env,
        "key",
        &[("ca-key.pem", read(&dev.join("ca.key")))],
        &["ca-key.pem", "contains a private key"],
    );
}

#[test]
fn two_files_with_one_alias_are_refused() {
    let env = TestEnv::new();
    let dev = init_dev_ca(&env, "dev");
    let ca = read(&dev.join("ca.crt"));
    assert_refused(
        &env,
        "duplicate",
        &[("My CA.crt", ca.clone()), ("my-ca.pem", ca)],
        &["My CA.crt", "my-ca.pem", "imgforge-my-ca"],
    );
}

#[test]
fn certs_init_writes_private_keys_0600_and_refuses_to_overwrite_without_force() {
    let env = TestEnv::new();
    let dir = init_dev_ca(&env, "dev");
    for (name, mode) in [
        ("ca.key", 0o600),
        ("server.key", 0o600),
        ("ca.crt", 0o644),
        ("server.crt", 0o644),
    ] {
        let actual = fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(actual, mode, "{name} has mode {actual:o}");
    }
    let before: Vec<Vec<u8>> = ["ca.crt", "ca.key", "server.crt", "server.key"]
        .iter()
        .map(|name| read(&dir.join(name)))
        .collect();
    let args = [
        "certs",
        "init",
        "--host",
        "minio.local",
        "--out",
        dir.to_str().unwrap(),
    ];
    let output = env.run(&args);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, "already exists");
    assert_stderr_contains(&output, "--force");
    let unchanged: Vec<Vec<u8>> = ["ca.crt", "ca.key", "server.crt", "server.key"]
        .iter()
        .map(|name| read(&dir.join(name)))
        .collect();
    assert_eq!(before, unchanged);

    let mut forced = args.to_vec();
    forced.push("--force");
    assert_success(&env.run(&forced));
    assert_ne!(
        read(&dir.join("ca.key")),
        before[1],
        "--force did not regenerate"
    );
    assert_eq!(
        fs::metadata(dir.join("ca.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    // The regenerated CA is what `certs check` accepts and prepare imports.
    let certs = env.root().join("certs");
    fs::create_dir_all(&certs).unwrap();
    fs::copy(dir.join("ca.crt"), certs.join("minio-ca.crt")).unwrap();
    let output = env.run(&["certs", "check", "--dir", certs.to_str().unwrap()]);
    assert_success(&output);
    let out = env.root().join("out");
    assert_success(&env.run(&[
        "prepare",
        "--out",
        out.to_str().unwrap(),
        "--certs",
        certs.to_str().unwrap(),
    ]));
    let dockerfile =
        fs::read_to_string(out.join("kubernetes/dockerfiles/spark/Dockerfile")).unwrap();
    assert!(dockerfile.contains(
        "COPY certs/ /opt/spark/certs/\n\
         RUN sh /opt/spark/certs/import-certs.sh /opt/spark/certs\n\
         USER ${spark_uid}\n"
    ));
    assert_eq!(
        fs::read_to_string(out.join("certs/aliases")).unwrap(),
        "imgforge-minio-ca.crt imgforge-minio-ca\n"
    );
    assert!(out.join("certs/imgforge-minio-ca.crt").is_file());
    assert!(!out.join("certs/ca.key").exists());
}

#[test]
fn a_java_8_tag_leaves_the_truststore_to_the_image_and_aliases_can_be_chosen() {
    let env = TestEnv::new();
    let dir = init_dev_ca(&env, "dev");
    let certs = env.root().join("certs");
    fs::create_dir_all(&certs).unwrap();
    fs::copy(dir.join("ca.crt"), certs.join("ca.crt")).unwrap();
    let dir2 = init_dev_ca(&env, "dev2");
    fs::copy(dir2.join("ca.crt"), certs.join("ca2.crt")).unwrap();
    fs::write(
        env.work_dir().join("imgforge.toml"),
        "[images.spark]\njava_image_tag = \"8-jre-slim\"\n\n\
         [certs]\naliases = { \"ca2.crt\" = \"ca2.broadsoftware.com\" }\n",
    )
    .unwrap();
    let out = env.root().join("out");
    assert_success(&env.run(&[
        "prepare",
        "--out",
        out.to_str().unwrap(),
        "--certs",
        certs.to_str().unwrap(),
    ]));
    let dockerfile =
        fs::read_to_string(out.join("kubernetes/dockerfiles/spark/Dockerfile")).unwrap();
    // No keystore path guessed from the tag: import-certs.sh finds it inside the image.
    assert!(
        dockerfile.contains("RUN sh /opt/spark/certs/import-certs.sh /opt/spark/certs\n"),
        "{dockerfile}"
    );
    assert!(!dockerfile.contains("jre/lib/security"), "{dockerfile}");
    // The configured alias for ca2.crt; the derived one for ca.crt.
    assert_eq!(
        fs::read_to_string(out.join("certs/aliases")).unwrap(),
        "imgforge-ca.crt imgforge-ca\nca2.broadsoftware.com.crt ca2.broadsoftware.com\n"
    );
}
