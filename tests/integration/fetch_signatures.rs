//! Release signatures through the real binary: every Apache tarball's `.asc` is checked
//! against the project's `KEYS` on the mirror, and every way that can fail is a hard error.

use pgp::crypto::hash::HashAlgorithm;

use crate::support::fixtures::coreutils_sha512;
use crate::support::signing::{ReleaseSigner, release_signer};
use crate::support::*;

/// What `-v` says when a signature was checked from the download's own hash state.
fn shared(algorithm: &str) -> String {
    format!("checked from the download's own {algorithm} hash (each byte hashed once)")
}

/// Re-sign the Spark tarball with `hash` (its checksum stays SHA-512).
fn resign_spark(env: &TestEnv, hash: HashAlgorithm) {
    let tarball = std::fs::read(&env.apache.spark.file).expect("tarball");
    std::fs::write(
        format!("{}.asc", env.apache.spark.file.display()),
        release_signer().sign_with(hash, &tarball),
    )
    .expect("asc");
}

fn spark_path(env: &TestEnv) -> String {
    env.apache.spark.url_path.clone()
}

fn write_config(env: &TestEnv, text: &str) {
    std::fs::write(env.work_dir().join("imgforge.toml"), text).expect("config");
}

#[test]
fn a_good_signature_is_checked_by_default() {
    let env = TestEnv::new();
    let output = env.run(&["fetch", "spark"]);
    assert_success(&output);
    let spark = spark_path(&env);
    assert_eq!(
        env.server.count(&format!("{spark}.asc")),
        1,
        "the signature was fetched"
    );
    assert_eq!(
        env.server.count("/spark/KEYS"),
        1,
        "the KEYS file was fetched"
    );
    // A cache hit was verified when stored: nothing is fetched again.
    env.server.clear_log();
    assert_success(&env.run(&["fetch", "spark"]));
    assert!(
        env.server.requests().is_empty(),
        "{:?}",
        env.server.requests()
    );
}

#[test]
fn a_signature_by_a_key_not_in_keys_is_rejected() {
    let env = TestEnv::new();
    let stranger = ReleaseSigner::generate("Stranger <s@example.org>");
    let tarball = std::fs::read(&env.apache.spark.file).expect("tarball");
    std::fs::write(
        format!("{}.asc", env.apache.spark.file.display()),
        stranger.sign(&tarball),
    )
    .expect("asc");
    let output = env.run(&["fetch", "spark"]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, "signature check failed");
    assert_stderr_contains(&output, &spark_path(&env));
    assert!(
        env.cache_files()
            .iter()
            .all(|path| !path.to_string_lossy().contains("artifacts-v1/")),
        "nothing stored"
    );
}

#[test]
fn content_that_does_not_match_its_signature_is_rejected() {
    let env = TestEnv::new();
    // Another tarball with a correct checksum but the old signature: only the signature can tell.
    let mut other = std::fs::read(&env.apache.spark.file).expect("tarball");
    other.extend_from_slice(b"appended");
    let asc = std::fs::read(format!("{}.asc", env.apache.spark.file.display())).expect("asc");
    let name = env
        .apache
        .spark
        .file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    std::fs::write(&env.apache.spark.file, &other).expect("tarball");
    std::fs::write(
        format!("{}.sha512", env.apache.spark.file.display()),
        coreutils_sha512(&other, &name),
    )
    .expect("checksum");
    std::fs::write(format!("{}.asc", env.apache.spark.file.display()), asc).expect("asc");
    let output = env.run(&["fetch", "spark"]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, "BAD signature");
}

#[test]
fn a_missing_signature_is_an_error_not_a_skipped_check() {
    let env = TestEnv::new();
    std::fs::remove_file(format!("{}.asc", env.apache.spark.file.display())).expect("remove asc");
    let output = env.run(&["fetch", "spark"]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, "no signature at");
    assert_stderr_contains(&output, &format!("{}.asc", spark_path(&env)));
}

#[test]
fn an_unreachable_keys_file_is_an_error() {
    let env = TestEnv::new();
    std::fs::remove_file(env.mirror_root().join("spark/KEYS")).expect("remove KEYS");
    let output = env.run(&["fetch", "spark"]);
    assert_exit_code(&output, 3);
    assert_stderr_contains(&output, "/spark/KEYS");
}

#[test]
fn pinned_fingerprints_restrict_the_keys() {
    let env = TestEnv::new();
    write_config(
        &env,
        &format!(
            "[verify]\nfingerprints = [\"{}\"]\n",
            release_signer().fingerprint()
        ),
    );
    assert_success(&env.run(&["fetch", "spark"]));

    let env = TestEnv::new();
    let other = ReleaseSigner::generate("Other <o@example.org>").fingerprint();
    write_config(&env, &format!("[verify]\nfingerprints = [\"{other}\"]\n"));
    let output = env.run(&["fetch", "spark"]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, &other);
}

#[test]
fn signatures_can_be_turned_off_explicitly() {
    let env = TestEnv::new();
    write_config(&env, "[verify]\nsignatures = false\n");
    std::fs::remove_file(format!("{}.asc", env.apache.spark.file.display())).expect("remove asc");
    assert_success(&env.run(&["fetch", "spark"]));
    assert_eq!(env.server.count(&format!("{}.asc", spark_path(&env))), 0);
}

#[test]
fn a_sha512_signature_is_checked_from_the_checksum_hash() {
    let env = TestEnv::new();
    let output = env.run(&["-v", "fetch", "spark"]);
    assert_success(&output);
    assert_stderr_contains(&output, "good signature by Test Release Manager");
    assert_stderr_contains(&output, &shared("sha512"));
}

#[test]
fn a_sha256_signature_over_a_sha512_checksum_verifies() {
    let env = TestEnv::new();
    resign_spark(&env, HashAlgorithm::Sha256);
    let output = env.run(&["-v", "fetch", "spark"]);
    assert_success(&output);
    // The SHA-256 the cache index records is hashed in the same read anyway.
    assert_stderr_contains(&output, &shared("sha256"));
}

#[test]
fn a_signature_in_an_algorithm_nothing_else_hashes_gets_a_hash_of_its_own() {
    let env = TestEnv::new();
    resign_spark(&env, HashAlgorithm::Sha384);
    let output = env.run(&["-v", "fetch", "spark"]);
    assert_success(&output);
    assert_stderr_contains(&output, "good signature by Test Release Manager");
    assert_stderr_contains(&output, "checked with a hash of its own");
}

#[test]
fn a_resumed_download_is_still_checked_against_its_signature() {
    let env = TestEnv::new();
    let cut = env.apache.spark.size / 2;
    env.server.inject(
        &spark_path(&env),
        Fault::CloseMidBody {
            after: cut,
            times: 1,
        },
    );
    let output = env.run(&["-v", "fetch", "spark"]);
    assert_success(&output);
    assert_stderr_contains(&output, &format!("at byte {cut}"));
    assert_stderr_contains(&output, &shared("sha512"));
}
