//! The malicious-tarball suite through the real binary: a Spark tarball with a traversal,
//! an absolute path, a symbolic or hard link leaving the tree, or a device file makes
//! `prepare` fail naming the member, exit 4, with the output untouched and nothing written
//! outside the staged tree (which is removed).

use std::path::Path;

use crate::support::fixtures::{SPARK_31, TarEntry, plain_tar};
use crate::support::prepared::{ExistingOut, publish_spark_bytes, spark_section, write_config};
use crate::support::{TestEnv, assert_exit_code, assert_stderr_contains};

/// The 3.1 family tarball with `extra` appended after every legitimate member (so the
/// staged tree is well filled when the bad member arrives), gzipped.
fn tarball_with(extra: &[TarEntry], device: Option<&str>) -> Vec<u8> {
    let mut entries = SPARK_31.entries();
    entries.extend_from_slice(extra);
    let mut tar = plain_tar(&entries);
    if let Some(path) = device {
        // The `tar` builder ends the archive with two zero blocks; put a raw character
        // device header (type '3', /dev/null's numbers) before them.
        let end = tar.split_off(tar.len() - 1024);
        assert!(end.iter().all(|byte| *byte == 0));
        let mut header = tar::Header::new_gnu();
        header.set_path(path).unwrap();
        header.set_entry_type(tar::EntryType::Char);
        header.set_device_major(1).unwrap();
        header.set_device_minor(3).unwrap();
        header.set_mode(0o666);
        header.set_size(0);
        header.set_mtime(1_613_958_540);
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        tar.extend_from_slice(&end);
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut encoder, &tar).unwrap();
    encoder.finish().unwrap()
}

/// Publishes the tarball, runs prepare into an existing output, and checks the refusal.
fn assert_refused(env: &TestEnv, tarball: &[u8], member: &str, reason: &str, outside: &[&Path]) {
    publish_spark_bytes(env, SPARK_31.spark_version, SPARK_31.package, tarball);
    env.maven
        .tree
        .publish_aws_chain(&crate::support::fixtures::chain_for(&SPARK_31));
    write_config(env, &spark_section(&SPARK_31));
    let existing = ExistingOut::create(&env.root().join("build"));
    let output = env.run(&["prepare", "--out", existing.arg()]);
    assert_exit_code(&output, 4);
    assert_stderr_contains(&output, &format!("refusing to unpack member `{member}`"));
    assert_stderr_contains(&output, reason);
    existing.assert_untouched();
    for path in outside {
        assert!(
            std::fs::symlink_metadata(path).is_err(),
            "{} was written outside the tree",
            path.display()
        );
    }
}

#[test]
fn a_parent_traversal_is_refused() {
    let env = TestEnv::new();
    let member = format!("{}/../x", SPARK_31.top());
    let tarball = tarball_with(&[TarEntry::file(&member, "escaped\n")], None);
    assert_refused(
        &env,
        &tarball,
        &member,
        "`..` component",
        &[&env.root().join("build/x"), &env.root().join("x")],
    );
}

#[test]
fn an_absolute_path_is_refused() {
    let env = TestEnv::new();
    let target = env.root().join("absolute-escape");
    let member = target.to_str().unwrap().to_string();
    assert!(member.len() <= 100, "the raw header holds 100 bytes");
    let tarball = tarball_with(&[TarEntry::file(&member, "escaped\n")], None);
    assert_refused(&env, &tarball, &member, "absolute", &[&target]);
}

#[test]
fn a_symlink_leaving_the_tree_is_refused() {
    let env = TestEnv::new();
    let top = SPARK_31.top();
    let member = format!("{top}/jars/evil");
    let tarball = tarball_with(
        &[
            TarEntry::symlink(&member, "../../../outside"),
            TarEntry::file(format!("{top}/jars/evil/pwned.txt"), "escaped\n"),
        ],
        None,
    );
    assert_refused(
        &env,
        &tarball,
        &member,
        "outside the tree",
        &[
            &env.root().join("outside"),
            &env.root().join("build/outside"),
        ],
    );
    // An absolute target is refused the same way.
    let env = TestEnv::new();
    let target = env.root().join("outside-absolute");
    let tarball = tarball_with(
        &[
            TarEntry::symlink(&member, target.to_str().unwrap()),
            TarEntry::file(format!("{top}/jars/evil/pwned.txt"), "escaped\n"),
        ],
        None,
    );
    assert_refused(&env, &tarball, &member, "outside the tree", &[&target]);
}

#[test]
fn a_hard_link_leaving_the_tree_is_refused() {
    let env = TestEnv::new();
    let top = SPARK_31.top();
    let member = format!("{top}/conf/passwd");
    let tarball = tarball_with(&[TarEntry::hardlink(&member, "/etc/passwd")], None);
    assert_refused(&env, &tarball, &member, "hard link", &[]);
    let env = TestEnv::new();
    let tarball = tarball_with(
        &[TarEntry::hardlink(&member, format!("{top}/../../secret"))],
        None,
    );
    assert_refused(&env, &tarball, &member, "hard link", &[]);
}

#[test]
fn a_device_file_is_refused() {
    let env = TestEnv::new();
    let member = format!("{}/conf/null", SPARK_31.top());
    let tarball = tarball_with(&[], Some(&member));
    assert_refused(&env, &tarball, &member, "character device", &[]);
}
