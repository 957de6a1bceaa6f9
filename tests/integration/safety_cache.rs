//! The cache trusts nothing it cannot prove, archives are bounded, errors tell the truth —
//! through the real binary against the loopback mirror: a tampered index entry is reported
//! and never followed, a swapped or bit-flipped cached tarball never reaches `--out`, a
//! `.partial` changed on disk between attempts is never stored as verified, bombs and
//! over-long names are refused, a signature refusal is exit 4 every time, and numeric
//! settings are range-checked.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fetch::wait_with_timeout;
use crate::helpers::{artifact, files_under, json_of};
use crate::support::fixtures::{SPARK_31, TarEntry, coreutils_sha512, plain_tar, tgz};
use crate::support::prepared::{
    assert_nothing_beside, publish_family, publish_spark_bytes, spark_section, write_config,
};
use crate::support::signing::{ReleaseSigner, release_signer};
use crate::support::{
    Fault, TestEnv, assert_exit_code, assert_stderr_contains, assert_success, stderr_text,
};

const SPARK_KEY: &str = "apache/spark/spark-3.1.1/spark-3.1.1-bin-hadoop3.2.tgz";

/// The index file recording `key`, and its JSON.
fn index_entry(env: &TestEnv, key: &str) -> (PathBuf, serde_json::Value) {
    files_under(&env.cache_dir().join("index-v1"))
        .into_iter()
        .find_map(|path| {
            let value: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
            (value["key"] == key).then_some((path, value))
        })
        .unwrap_or_else(|| panic!("no index entry for {key}"))
}

/// The cached content file named `name`.
fn cached_file(env: &TestEnv, name: &str) -> PathBuf {
    files_under(&env.cache_dir().join("artifacts-v1"))
        .into_iter()
        .find(|path| path.file_name().is_some_and(|file| file == name))
        .unwrap_or_else(|| panic!("{name} is not cached"))
}

/// Resolve `.` and `..` lexically (what a naive join of the entry's parts points at).
fn lexical(path: &Path) -> PathBuf {
    let mut resolved = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                resolved.pop();
            }
            std::path::Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    resolved
}

#[test]
fn an_index_entry_pointing_out_of_the_cache_is_reported_damaged_and_never_followed() {
    // A file name that climbs out, and a digest that is not hex and climbs out.
    let tamperings: [(&str, &str); 2] = [
        ("file_name", "../../../../outside-by-name.tgz"),
        ("sha512", "00/../../../../outside-by-digest"),
    ];
    for (field, value) in tamperings {
        let env = TestEnv::new();
        assert_success(&env.run(&["fetch", "spark"]));
        let (index, mut entry) = index_entry(&env, SPARK_KEY);
        entry[field] = serde_json::Value::from(value);
        std::fs::write(&index, serde_json::to_vec_pretty(&entry).unwrap()).unwrap();
        // What the entry points at: a file of the recorded size outside the cache.
        let sha512 = entry["sha512"].as_str().unwrap();
        let pointed = lexical(
            &env.cache_dir()
                .join("artifacts-v1")
                .join(&sha512[..2])
                .join(sha512)
                .join(entry["file_name"].as_str().unwrap()),
        );
        assert!(
            !pointed.starts_with(env.cache_dir()),
            "{}",
            pointed.display()
        );
        let size = entry["size"].as_u64().unwrap() as usize;
        std::fs::create_dir_all(pointed.parent().unwrap()).unwrap();
        std::fs::write(&pointed, vec![b'x'; size]).unwrap();

        // `cache verify` re-hashes and removes what is damaged: never outside the cache.
        let verify = env.run(&["cache", "verify"]);
        assert_stderr_contains(&verify, "damaged cache index entry");
        assert_eq!(
            std::fs::read(&pointed).expect("the file outside the cache is still there"),
            vec![b'x'; size],
            "{field}: the file outside the cache was touched"
        );

        // Online, the damaged entry is a miss: downloaded again, stored inside the cache.
        env.server.clear_log();
        let output = env.run(&["--json", "fetch", "spark"]);
        assert_success(&output);
        assert_stderr_contains(&output, "damaged cache index entry");
        assert_eq!(
            env.server.count(&env.apache.spark.url_path),
            1,
            "{field}: not downloaded again"
        );
        let report = json_of(&output);
        let stored = PathBuf::from(artifact(&report, "spark")["path"].as_str().unwrap());
        assert!(stored.starts_with(env.cache_dir()), "{}", stored.display());
        assert_eq!(
            std::fs::read(&stored).unwrap(),
            std::fs::read(&env.apache.spark.file).unwrap()
        );
        assert_eq!(std::fs::read(&pointed).unwrap(), vec![b'x'; size]);
    }
}

/// The 3.1 family's tarball name.
fn spark_31_name() -> String {
    format!("{}.tgz", SPARK_31.top())
}

/// An environment whose cache holds the 3.1 family (prepared once into `first`).
fn prepared_once() -> TestEnv {
    let env = TestEnv::new();
    publish_family(&env, &SPARK_31);
    write_config(&env, &spark_section(&SPARK_31));
    let first = env.root().join("first/spark");
    assert_success(&env.run(&["prepare", "--out", first.to_str().unwrap()]));
    env
}

/// `prepare` into a fresh folder must refuse the damaged cache: exit 4, nothing created.
fn assert_prepare_refuses_damage(env: &TestEnv) {
    let out = env.root().join("second/spark");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let output = env.run(&["prepare", "--out", out.to_str().unwrap()]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, "does not match its recorded digest");
    assert_stderr_contains(&output, &spark_31_name());
    assert!(
        std::fs::symlink_metadata(&out).is_err(),
        "--out was created"
    );
    std::fs::create_dir_all(&out).unwrap();
    assert_nothing_beside(&out);
}

#[test]
fn a_flipped_byte_in_the_cached_tarball_never_reaches_out() {
    let env = prepared_once();
    let cached = cached_file(&env, &spark_31_name());
    let mut bytes = std::fs::read(&cached).unwrap();
    // A byte of the gzip header's MTIME: the archive still decodes, to the same tree, so only
    // the digest can tell.
    bytes[4] ^= 0x01;
    std::fs::write(&cached, &bytes).unwrap();
    assert_prepare_refuses_damage(&env);
}

#[test]
fn a_same_size_swapped_tarball_never_reaches_out() {
    let env = prepared_once();
    let cached = cached_file(&env, &spark_31_name());
    let original_size = std::fs::metadata(&cached).unwrap().len() as usize;
    // Another valid Spark tarball: one jar's content replaced, compressed, then padded to the
    // same size with the gzip header's extra field.
    let mut entries = SPARK_31.entries();
    let jar = entries
        .iter_mut()
        .rev()
        .find_map(|entry| match entry {
            TarEntry::File { path, bytes, .. } if path.contains("/jars/") => Some(bytes),
            _ => None,
        })
        .expect("the family has jars");
    let evil = vec![b'A'; jar.len()];
    *jar = evil;
    let tar = plain_tar(&entries);
    let compress = |extra: Vec<u8>| {
        let mut encoder = flate2::GzBuilder::new()
            .mtime(0)
            .extra(extra)
            .write(Vec::new(), flate2::Compression::best());
        encoder.write_all(&tar).unwrap();
        encoder.finish().unwrap()
    };
    // The extra field adds its data (and, once present, a 2-byte length) to the header.
    let bare = compress(Vec::new());
    assert!(
        bare.len() + 2 <= original_size,
        "{} vs {original_size}",
        bare.len()
    );
    let mut padding = original_size - bare.len();
    let mut swapped = compress(vec![0; padding]);
    if swapped.len() > original_size {
        padding -= swapped.len() - original_size;
        swapped = compress(vec![0; padding]);
    }
    assert_eq!(swapped.len(), original_size);
    assert_ne!(swapped, std::fs::read(&cached).unwrap());
    std::fs::write(&cached, &swapped).unwrap();
    assert_prepare_refuses_damage(&env);
}

#[test]
fn a_partial_download_changed_on_disk_between_attempts_is_not_stored_as_verified() {
    let env = TestEnv::new();
    let tarball =
        crate::support::fixtures::spark_dist_padded("3.1.1", "hadoop3.2", "3.2.0", 2 << 20);
    let spark = env.apache.tree.spark(
        "3.1.1",
        "hadoop3.2",
        &tarball,
        crate::support::fixtures::ChecksumStyle::Coreutils,
    );
    let cut = 300_000u64;
    let gate = env.root().join("resume-gate");
    env.server.inject(
        &spark.url_path,
        Fault::CloseMidBody {
            after: cut,
            times: 1,
        },
    );
    env.server
        .inject(&spark.url_path, Fault::HoldRangeUntil(gate.clone()));
    let child = env
        .imgforge()
        .args(["fetch", "spark"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start imgforge");

    // The resumed request is held: the first attempt's bytes are where they will stay.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env
        .server
        .requests_for(&spark.url_path)
        .iter()
        .any(|record| record.range.is_some())
    {
        assert!(Instant::now() < deadline, "no resumed request");
        std::thread::sleep(Duration::from_millis(20));
    }
    let partial = files_under(&env.cache_dir().join("tmp"))
        .into_iter()
        .find(|path| path.to_string_lossy().ends_with(".partial"))
        .expect("a .partial file");
    let mut bytes = std::fs::read(&partial).unwrap();
    assert_eq!(
        bytes.len() as u64,
        cut,
        "the bytes received before the cut are on disk before the resume"
    );
    bytes[1000] ^= 0xff;
    std::fs::write(&partial, &bytes).unwrap();
    std::fs::write(&gate, b"go").unwrap();

    let output = wait_with_timeout(child, Duration::from_secs(120));
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, "checksum mismatch");
    assert!(
        files_under(&env.cache_dir().join("artifacts-v1")).is_empty(),
        "stored: {:?}",
        files_under(&env.cache_dir().join("artifacts-v1"))
    );
    assert!(files_under(&env.cache_dir().join("index-v1")).is_empty());
}

/// Publishes a 3.1 family tarball with `extra` members, runs prepare, expects exit 4 with
/// `needle` in the message and nothing created.
fn assert_archive_refused(env: &TestEnv, tarball: &[u8], needle: &str) {
    publish_spark_bytes(env, SPARK_31.spark_version, SPARK_31.package, tarball);
    env.maven
        .tree
        .publish_aws_chain(&crate::support::fixtures::chain_for(&SPARK_31));
    let out = env.root().join("build/spark");
    let output = env.run(&["prepare", "--out", out.to_str().unwrap()]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, needle);
    assert!(
        std::fs::symlink_metadata(&out).is_err(),
        "--out was created"
    );
    std::fs::create_dir_all(&out).unwrap();
    assert_nothing_beside(&out);
}

#[test]
fn a_decompression_bomb_is_refused_before_it_is_written() {
    let env = TestEnv::new();
    write_config(&env, &spark_section(&SPARK_31));
    // The family's members, then 256 MiB of zeros in one member: about 250 KiB compressed.
    let mut tar = plain_tar(&SPARK_31.entries());
    tar.truncate(tar.len() - 1024);
    let size: u64 = 256 << 20;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(&tar).unwrap();
    let mut header = tar::Header::new_gnu();
    header
        .set_path(format!("{}/jars/zeros.jar", SPARK_31.top()))
        .unwrap();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(1_613_958_540);
    header.set_cksum();
    encoder.write_all(header.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..(size >> 20) {
        encoder.write_all(&zeros).unwrap();
    }
    encoder.write_all(&[0u8; 1024]).unwrap();
    let tarball = encoder.finish().unwrap();
    assert!(tarball.len() < 2 << 20, "{}", tarball.len());
    assert_archive_refused(
        &env,
        &tarball,
        "a decompression bomb? ([extract] max_ratio)",
    );
}

#[test]
fn an_entries_bomb_is_refused_at_the_configured_limit() {
    let env = TestEnv::new();
    write_config(
        &env,
        &format!(
            "{}[extract]\nmax_entries = 1000\n",
            spark_section(&SPARK_31)
        ),
    );
    let mut entries = SPARK_31.entries();
    for index in 0..2000 {
        entries.push(TarEntry::file(
            format!("{}/data/entry-{index}", SPARK_31.top()),
            "",
        ));
    }
    assert_archive_refused(&env, &tgz(&entries), "more than 1000 members");
}

#[test]
fn a_member_name_over_255_bytes_is_an_archive_error() {
    let env = TestEnv::new();
    write_config(&env, &spark_section(&SPARK_31));
    let mut entries = SPARK_31.entries();
    entries.push(TarEntry::file(
        format!("{}/jars/{}.jar", SPARK_31.top(), "a".repeat(300)),
        "x",
    ));
    assert_archive_refused(&env, &tgz(&entries), "has a name of 304 bytes");
}

#[test]
fn a_signature_refusal_is_exit_4_every_time() {
    let env = TestEnv::new();
    // Big enough that the download is still streaming when the verifier refuses the key.
    let tarball = crate::support::fixtures::incompressible(48 << 20, 7);
    let name = "spark-3.1.1-bin-hadoop3.2.tgz";
    std::fs::write(&env.apache.spark.file, &tarball).unwrap();
    std::fs::write(
        format!("{}.sha512", env.apache.spark.file.display()),
        coreutils_sha512(&tarball, name),
    )
    .unwrap();
    let stranger = ReleaseSigner::generate("Stranger <s@example.org>");
    std::fs::write(
        format!("{}.asc", env.apache.spark.file.display()),
        stranger.sign(&tarball),
    )
    .unwrap();
    for run in 0..20 {
        let output = env.run(&["fetch", "spark"]);
        assert_eq!(
            output.status.code(),
            Some(4),
            "run {run}: {}",
            stderr_text(&output)
        );
        assert_stderr_contains(&output, "signature check failed");
        assert_stderr_contains(&output, "which is not in the KEYS file");
        assert!(
            !stderr_text(&output).contains("stopped early"),
            "run {run}: {}",
            stderr_text(&output)
        );
    }
}

#[test]
fn a_key_in_keys_but_not_pinned_is_named_as_such() {
    let env = TestEnv::new();
    let other = ReleaseSigner::generate("Other <o@example.org>");
    std::fs::write(
        env.mirror_root().join("spark/KEYS"),
        format!("{}{}", release_signer().keys_file(), other.keys_file()),
    )
    .unwrap();
    write_config(
        &env,
        &format!("[verify]\nfingerprints = [\"{}\"]\n", other.fingerprint()),
    );
    let output = env.run(&["fetch", "spark"]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(
        &output,
        &format!(
            "signed by key {}, which is in the KEYS file but not among [verify] fingerprints",
            release_signer().fingerprint()
        ),
    );
    assert!(!stderr_text(&output).contains("not in the KEYS file"));
}

#[test]
fn numeric_settings_out_of_their_range_are_configuration_errors() {
    let cases = [
        ("[network]\nretries = 1000\n", "from 0 to 10"),
        ("[network]\ntimeout_secs = 86400\n", "from 1 to 3600"),
        ("[images.spark]\nspark_uid = 0\n", "from 1 to 2147483647"),
        ("[images.spark]\njava_major = 3\n", "from 8 to 99"),
        ("[extract]\nmax_ratio = 1\n", "from 2 to 10000"),
        ("[extract]\nmax_entries = 10\n", "from 100 to 100000000"),
        (
            "[extract]\nmax_bytes = 1024\n",
            "from 1048576 to 1099511627776",
        ),
    ];
    for (text, range) in cases {
        let env = TestEnv::new();
        write_config(&env, text);
        let output = env.run(&["config", "show"]);
        assert_exit_code(&output, 2);
        assert_stderr_contains(&output, range);
        assert_stderr_contains(&output, "imgforge.toml");
    }
}

#[test]
fn a_changed_cached_jar_or_pom_never_reaches_out() {
    for name in ["hadoop-aws-3.2.0.jar", "hadoop-aws-3.2.0.pom"] {
        let env = prepared_once();
        let cached = cached_file(&env, name);
        let mut bytes = std::fs::read(&cached).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x20;
        std::fs::write(&cached, &bytes).unwrap();
        let out = env.root().join("second/spark");
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let output = env.run(&["prepare", "--out", out.to_str().unwrap()]);
        assert_exit_code(&output, 4);
        assert_stderr_contains(&output, "does not match its recorded digest");
        assert_stderr_contains(&output, name);
        assert!(
            std::fs::symlink_metadata(&out).is_err(),
            "{name}: --out was created"
        );
    }
}
