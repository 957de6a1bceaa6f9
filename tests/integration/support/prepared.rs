//! Helpers for the `prepare` tests: publishing a family on the test mirror, writing
//! `imgforge.toml`, fingerprinting a whole tree, checking that a failed run left the output
//! alone, and running a prepared `entrypoint.sh` under bash with a fake `tini`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::env::TestEnv;
use super::fixtures::{
    ApacheTree, ChecksumStyle, Family, Published, PublishedChain, TarEntry, chain_for, sha256_hex,
    tgz,
};

/// What one path of a tree is: kind, permission bits, and content digest or link target.
pub type TreeFingerprint = BTreeMap<String, String>;

/// Publishes `family`'s tarball and its hadoop-aws chain on `env`'s mirror.
pub fn publish_family(env: &TestEnv, family: &Family) -> (Published, PublishedChain) {
    let spark = publish_spark(env, family.spark_version, family.package, &family.entries());
    let chain = env.maven.tree.publish_aws_chain(&chain_for(family));
    (spark, chain)
}

/// Publishes a Spark tarball made of `entries` as `spark-{version}-bin-{package}.tgz`.
pub fn publish_spark(
    env: &TestEnv,
    version: &str,
    package: &str,
    entries: &[TarEntry],
) -> Published {
    publish_spark_bytes(env, version, package, &tgz(entries))
}

/// Publishes `tarball` as `spark-{version}-bin-{package}.tgz` with a `.sha512`.
pub fn publish_spark_bytes(
    env: &TestEnv,
    version: &str,
    package: &str,
    tarball: &[u8],
) -> Published {
    ApacheTree::new(&env.mirror_root()).spark(version, package, tarball, ChecksumStyle::Coreutils)
}

/// Writes `work/imgforge.toml`.
pub fn write_config(env: &TestEnv, text: &str) {
    fs::write(env.work_dir().join("imgforge.toml"), text).expect("write imgforge.toml");
}

/// `[spark]` lines selecting `family`.
pub fn spark_section(family: &Family) -> String {
    format!(
        "[spark]\nversion = \"{}\"\npackage = \"{}\"\n",
        family.spark_version, family.package
    )
}

/// Every path under `root` (relative, `/`-separated) with its kind, mode and content digest
/// or link target. Directory modes are included; times are not.
pub fn fingerprint(root: &Path) -> TreeFingerprint {
    let mut map = BTreeMap::new();
    walk(root, root, &mut map);
    map
}

fn walk(root: &Path, directory: &Path, map: &mut TreeFingerprint) {
    let mut entries: Vec<_> = fs::read_dir(directory)
        .expect("list a tree directory")
        .map(|entry| entry.expect("read a tree entry"))
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = entry.path();
        let relative = path
            .strip_prefix(root)
            .expect("below the root")
            .to_string_lossy()
            .into_owned();
        let metadata = fs::symlink_metadata(&path).expect("stat a tree entry");
        let mode = metadata.permissions().mode() & 0o7777;
        let kind = metadata.file_type();
        if kind.is_symlink() {
            let target = fs::read_link(&path).expect("read a link");
            map.insert(relative, format!("link -> {}", target.display()));
        } else if kind.is_dir() {
            map.insert(relative, format!("dir {mode:o}"));
            walk(root, &path, map);
        } else if kind.is_file() {
            let digest = sha256_hex(&fs::read(&path).expect("read a file"));
            map.insert(relative, format!("file {mode:o} {digest}"));
        } else {
            map.insert(relative, format!("special {mode:o}"));
        }
    }
}

/// The regular files of a tree (relative paths), sorted.
pub fn files_of(root: &Path) -> Vec<String> {
    fingerprint(root)
        .into_iter()
        .filter(|(_, description)| description.starts_with("file "))
        .map(|(path, _)| path)
        .collect()
}

/// The regular-file members of `entries` below their top directory.
pub fn member_files(entries: &[TarEntry]) -> Vec<String> {
    let mut files: Vec<String> = entries
        .iter()
        .filter_map(|entry| match entry {
            TarEntry::File { path, .. } => Some(
                path.split_once('/')
                    .expect("under a top directory")
                    .1
                    .to_string(),
            ),
            _ => None,
        })
        .collect();
    files.sort();
    files
}

/// The bytes of the file member whose path ends with `suffix`.
pub fn member_bytes(entries: &[TarEntry], suffix: &str) -> Vec<u8> {
    entries
        .iter()
        .find_map(|entry| match entry {
            TarEntry::File { path, bytes, .. } if path.ends_with(suffix) => Some(bytes.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no member ends with {suffix}"))
}

/// The marker imgforge writes at the root of every tree it prepares.
pub const TREE_MARKER: &str = ".imgforge-tree";

/// The marker text of an earlier imgforge tree (format 1).
pub const TREE_MARKER_TEXT: &str = "imgforge-tree 1\nfingerprint 0123abcd\n";

/// An output folder an earlier imgforge run made (it carries imgforge's marker) and that
/// holds one more file, so a test can show a failed run left it alone.
pub struct ExistingOut {
    /// The output folder.
    pub out: PathBuf,
}

impl ExistingOut {
    /// Creates `<parent>/spark` holding imgforge's marker and `marker.txt`; `parent` holds
    /// nothing else.
    pub fn create(parent: &Path) -> ExistingOut {
        let out = parent.join("spark");
        fs::create_dir_all(&out).expect("create out");
        fs::write(out.join(TREE_MARKER), TREE_MARKER_TEXT).expect("write imgforge's marker");
        fs::write(out.join("marker.txt"), "previous tree\n").expect("write the marker");
        ExistingOut { out }
    }

    /// `--out` as an argument.
    pub fn arg(&self) -> &str {
        self.out.to_str().expect("UTF-8 path")
    }

    /// Fails unless the folder still holds exactly the marker and nothing else sits beside
    /// it (no staged temp directory left over).
    pub fn assert_untouched(&self) {
        let fingerprint = fingerprint(&self.out);
        assert_eq!(
            fingerprint.keys().collect::<Vec<_>>(),
            [TREE_MARKER, "marker.txt"],
            "the output folder changed: {fingerprint:?}"
        );
        assert_eq!(
            fs::read_to_string(self.out.join(TREE_MARKER)).expect("imgforge's marker"),
            TREE_MARKER_TEXT
        );
        assert_eq!(
            fs::read_to_string(self.out.join("marker.txt")).expect("marker"),
            "previous tree\n"
        );
        assert_nothing_beside(&self.out);
    }
}

/// Fails if the parent of `out` holds anything but `out` itself (e.g. a staged temp tree).
pub fn assert_nothing_beside(out: &Path) {
    let parent = out.parent().expect("out has a parent");
    let names: Vec<String> = fs::read_dir(parent)
        .expect("list the parent of out")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| Some(name.as_str()) != out.file_name().and_then(|name| name.to_str()))
        .collect();
    assert!(names.is_empty(), "left beside {}: {names:?}", out.display());
}

/// Runs `entrypoint` (a prepared `entrypoint.sh`) under real bash with `arguments`, with a
/// fake `tini` on PATH that prints `_JAVA_OPTIONS=…` and then its arguments one per line.
/// The script's absolute `/usr/bin/tini` is pointed at that fake in the copy that runs.
/// Returns the printed lines from `_JAVA_OPTIONS=` on, and the fake SPARK_HOME.
pub fn run_entrypoint(entrypoint: &Path, arguments: &[&str]) -> (Vec<String>, String) {
    let sandbox = tempfile::tempdir().expect("sandbox");
    let bin = sandbox.path().join("bin");
    let spark_home = sandbox.path().join("spark");
    let java_home = sandbox.path().join("java");
    for directory in [
        &bin,
        &spark_home.join("bin"),
        &spark_home.join("jars"),
        &java_home,
    ] {
        fs::create_dir_all(directory).expect("sandbox directories");
    }
    fs::write(
        bin.join("tini"),
        "#!/bin/sh\nprintf '_JAVA_OPTIONS=%s\\n' \"$_JAVA_OPTIONS\"\n\
         for argument in \"$@\"; do printf '%s\\n' \"$argument\"; done\n",
    )
    .expect("write fake tini");
    fs::set_permissions(bin.join("tini"), fs::Permissions::from_mode(0o755)).expect("chmod");
    let text = fs::read_to_string(entrypoint).expect("read the prepared entrypoint");
    assert!(
        text.contains("exec /usr/bin/tini -s -- \"${CMD[@]}\""),
        "the entrypoint no longer runs tini as expected"
    );
    let script = sandbox.path().join("entrypoint.sh");
    fs::write(&script, text.replace("/usr/bin/tini", "tini")).expect("write the script copy");
    let output = Command::new("bash")
        .arg(&script)
        .args(arguments)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("HOME", sandbox.path())
        .env("SPARK_HOME", &spark_home)
        .env("JAVA_HOME", &java_home)
        .env("SPARK_DRIVER_BIND_ADDRESS", "10.1.2.3")
        .current_dir(sandbox.path())
        .output()
        .expect("run bash");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    assert!(
        output.status.success(),
        "entrypoint failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let lines = stdout
        .lines()
        .skip_while(|line| !line.starts_with("_JAVA_OPTIONS="))
        .map(str::to_string)
        .collect();
    (lines, spark_home.display().to_string())
}
