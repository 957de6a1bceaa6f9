//! Interoperability with real GnuPG release signatures: a release manager's key (RSA primary
//! with a signing subkey, the usual Apache shape) is made by the `gpg` binary in a throwaway
//! GNUPGHOME, exported into a KEYS file the way Apache asks committers to
//! (`gpg --list-sigs` then `gpg --armor --export`), and a tarball is signed with
//! `gpg --armor --detach-sign`. imgforge's pure-Rust check must accept exactly what `gpg`
//! made, and refuse it once the file changes. `gpg` only makes the fixtures; imgforge never
//! runs it.

use std::fs;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use imgforge::signature::{Keyring, SignatureError, verify_detached};

const USER_ID: &str = "Release Manager (CODE SIGNING KEY) <rm@example.org>";

/// A throwaway GnuPG home; its agent is stopped when the test ends.
struct GnupgHome {
    dir: tempfile::TempDir,
}

impl GnupgHome {
    fn new() -> GnupgHome {
        // Short path: gpg-agent's socket must fit in a Unix socket address.
        let dir = tempfile::Builder::new()
            .prefix("imgforge-gpg")
            .tempdir_in("/tmp")
            .expect("temp GNUPGHOME");
        let mut permissions = fs::metadata(dir.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o700);
        fs::set_permissions(dir.path(), permissions).unwrap();
        GnupgHome { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `gpg --batch <args>` in this home; fails the test with gpg's stderr on error,
    /// and with an installation hint when gpg is missing.
    fn gpg(&self, args: &[&str]) -> Output {
        let output = Command::new("gpg")
            .env("GNUPGHOME", self.path())
            .args([
                "--batch",
                "--no-tty",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .unwrap_or_else(|error| {
                if error.kind() == ErrorKind::NotFound {
                    panic!(
                        "the signature interoperability test needs the `gpg` binary to make its \
                         fixtures: install gnupg (apt-get install gnupg; scripts/ci-services.sh \
                         installs it)"
                    )
                }
                panic!("cannot run gpg: {error}")
            });
        assert!(
            output.status.success(),
            "gpg {args:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }
}

impl Drop for GnupgHome {
    fn drop(&mut self) {
        // The agent gpg started would otherwise outlive the test and its directory.
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

/// Generates an RSA certify-only primary key with an RSA signing subkey; returns the primary
/// key's fingerprint as gpg prints it in `--with-colons` output.
fn generate_release_key(home: &GnupgHome) -> String {
    home.gpg(&["--quick-gen-key", USER_ID, "rsa3072", "cert", "never"]);
    let fingerprint = primary_fingerprint(home);
    home.gpg(&["--quick-add-key", &fingerprint, "rsa3072", "sign", "never"]);
    fingerprint
}

fn primary_fingerprint(home: &GnupgHome) -> String {
    let listing = home.gpg(&["--with-colons", "--fingerprint", USER_ID]);
    let listing = String::from_utf8(listing.stdout).unwrap();
    // The first `fpr` record follows the `pub` record: the primary key's.
    listing
        .lines()
        .find_map(|line| line.strip_prefix("fpr:::::::::"))
        .map(|rest| rest.trim_end_matches(':').to_string())
        .unwrap_or_else(|| panic!("no fingerprint in gpg's listing:\n{listing}"))
}

/// The first signing subkey's fingerprint, to check gpg really signed with the subkey.
fn signing_subkey_fingerprint(home: &GnupgHome) -> String {
    let listing = home.gpg(&["--with-colons", "--fingerprint", "--fingerprint", USER_ID]);
    let listing = String::from_utf8(listing.stdout).unwrap();
    let mut in_subkey = false;
    for line in listing.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        match fields[0] {
            "sub" => in_subkey = fields.get(11).is_some_and(|caps| caps.contains('s')),
            "fpr" if in_subkey => return fields[9].to_string(),
            _ => {}
        }
    }
    panic!("no signing subkey in gpg's listing:\n{listing}")
}

/// A KEYS file as Apache projects grow them: a header, then for each key the output of
/// `gpg --list-sigs` followed by `gpg --armor --export`.
fn keys_file(home: &GnupgHome) -> String {
    let mut keys = String::from(
        "This file contains the PGP keys of various developers.\n\n\
         Users: pgp < KEYS\n       gpg --import KEYS\n\
         Developers: pgp -kxa <your name> and append it to this file.\n\n",
    );
    keys.push_str(&String::from_utf8(home.gpg(&["--list-sigs", USER_ID]).stdout).unwrap());
    keys.push_str(&String::from_utf8(home.gpg(&["--armor", "--export", USER_ID]).stdout).unwrap());
    keys
}

/// A pretend release tarball of a few MB.
fn release_tarball(dir: &Path) -> PathBuf {
    let path = dir.join("spark-3.5.8-bin-hadoop3.tgz");
    let mut file = fs::File::create(&path).unwrap();
    let chunk: Vec<u8> = (0..1_u32 << 20)
        .map(|index| (index * 7 % 253) as u8)
        .collect();
    for _ in 0..4 {
        file.write_all(&chunk).unwrap();
    }
    path
}

#[test]
fn gpg_detached_signatures_verify_with_the_keys_file() {
    let home = GnupgHome::new();
    let fingerprint = generate_release_key(&home);
    let subkey_fingerprint = signing_subkey_fingerprint(&home);
    let work = tempfile::tempdir().unwrap();
    let tarball = release_tarball(work.path());
    let asc = work.path().join("spark-3.5.8-bin-hadoop3.tgz.asc");
    let sig = work.path().join("spark-3.5.8-bin-hadoop3.tgz.sig");
    home.gpg(&[
        "--armor",
        "--detach-sign",
        "--output",
        asc.to_str().unwrap(),
        tarball.to_str().unwrap(),
    ]);
    home.gpg(&[
        "--detach-sign",
        "--output",
        sig.to_str().unwrap(),
        tarball.to_str().unwrap(),
    ]);
    let keyring = Keyring::parse_keys_file(&keys_file(&home)).expect("gpg's export parses");
    assert_eq!(keyring.fingerprints(), vec![fingerprint.clone()]);
    assert!(
        keyring.skipped_blocks().is_empty(),
        "{:?}",
        keyring.skipped_blocks()
    );

    for signature in [&asc, &sig] {
        let check = verify_detached(&keyring, &fs::read(signature).unwrap(), &tarball)
            .unwrap_or_else(|error| panic!("{} does not verify: {error:?}", signature.display()));
        assert_eq!(
            check.key_fingerprint, fingerprint,
            "the primary key, not the subkey"
        );
        assert_eq!(check.signer, USER_ID);
    }
    // Pinned as `gpg --fingerprint` prints it, the key still verifies the release.
    let pinned = keyring
        .clone()
        .restrict_to(&[spaced(&fingerprint)])
        .expect("the pin names the key");
    verify_detached(&pinned, &fs::read(&asc).unwrap(), &tarball).unwrap();

    // One changed byte in the middle of the tarball.
    let mut content = fs::read(&tarball).unwrap();
    content[3 << 20] ^= 0x80;
    fs::write(&tarball, &content).unwrap();
    let error = verify_detached(&keyring, &fs::read(&asc).unwrap(), &tarball).unwrap_err();
    assert!(
        matches!(&error, SignatureError::BadSignature { key_fingerprint, .. } if key_fingerprint == &fingerprint),
        "{error:?}"
    );

    // Made by the subkey: without its primary key in KEYS, the subkey is what is named.
    let stranger = GnupgHome::new();
    generate_release_key(&stranger);
    let other_keys = Keyring::parse_keys_file(&keys_file(&stranger)).unwrap();
    let error = verify_detached(&other_keys, &fs::read(&asc).unwrap(), &tarball).unwrap_err();
    assert!(
        matches!(&error, SignatureError::UnknownKey { issuer, .. } if issuer == &subkey_fingerprint),
        "{error:?}"
    );
}

/// `ABCD1234…` → `ABCD 1234 …`, as `gpg --fingerprint` groups it.
fn spaced(fingerprint: &str) -> String {
    fingerprint
        .as_bytes()
        .chunks(4)
        .map(|group| std::str::from_utf8(group).unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}
