//! Checks shared by the command-level tests (`fetch`, `cache`, `config`): reading the JSON
//! report, looking inside the cache directory, writing a configuration file, and mounting a
//! tmpfs for the storage faults.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::support::{TestEnv, stderr_text, stdout_text};

/// Every artifact role `imgforge fetch all` reports, in no particular order.
pub const ALL_ROLES: [&str; 6] = [
    "spark",
    "hadoop",
    "hive-metastore",
    "hadoop-aws",
    "hadoop-aws-pom",
    "postgresql-jdbc",
];

/// Parses stdout as the JSON report, failing with both streams shown when it is not JSON.
pub fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error})\n--- stdout ---\n{}\n--- stderr ---\n{}",
            stdout_text(output),
            stderr_text(output)
        )
    })
}

/// The artifact with `role` in a `fetch --json` report.
pub fn artifact<'a>(report: &'a Value, role: &str) -> &'a Value {
    report["artifacts"]
        .as_array()
        .expect("the report has an artifacts array")
        .iter()
        .find(|artifact| artifact["role"] == role)
        .unwrap_or_else(|| panic!("no artifact with role {role} in {report:#}"))
}

/// The roles in a `fetch --json` report, sorted.
pub fn roles(report: &Value) -> Vec<String> {
    let mut roles: Vec<String> = report["artifacts"]
        .as_array()
        .expect("the report has an artifacts array")
        .iter()
        .map(|artifact| artifact["role"].as_str().expect("role is text").to_string())
        .collect();
    roles.sort();
    roles
}

/// [`ALL_ROLES`], sorted, as owned strings.
pub fn all_roles_sorted() -> Vec<String> {
    let mut roles: Vec<String> = ALL_ROLES.iter().map(|role| role.to_string()).collect();
    roles.sort();
    roles
}

/// Writes `text` as a configuration file in the test directory (not the working directory,
/// so it is only read when passed with `--config`) and returns its path.
pub fn write_config(env: &TestEnv, name: &str, text: &str) -> PathBuf {
    let path = env.root().join(name);
    std::fs::write(&path, text).expect("write a configuration file");
    path
}

/// Every file under `dir`, recursively, sorted; empty when `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    collect(dir, &mut files);
    files.sort();
    files
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
            collect(&path, files);
        } else {
            files.push(path);
        }
    }
}

/// The index entries in the cache at `cache`, parsed.
pub fn index_entries(cache: &Path) -> Vec<Value> {
    files_under(&cache.join("index-v1"))
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).expect("read an index entry");
            serde_json::from_str(&text).expect("an index entry is JSON")
        })
        .collect()
}

/// Fails unless the cache's `tmp/` holds no file: nothing of a download in flight survived.
pub fn assert_no_temp_files(cache: &Path) {
    let left = files_under(&cache.join("tmp"));
    assert!(left.is_empty(), "temp files left in the cache: {left:?}");
}

/// Fails unless nothing about `file_name` is in the cache: no index entry and no content file,
/// and no temp file at all.
pub fn assert_not_cached(cache: &Path, file_name: &str) {
    assert_no_temp_files(cache);
    let entries: Vec<Value> = index_entries(cache)
        .into_iter()
        .filter(|entry| entry["file_name"] == file_name)
        .collect();
    assert!(
        entries.is_empty(),
        "{file_name} has an index entry: {entries:?}"
    );
    let content: Vec<PathBuf> = files_under(&cache.join("artifacts-v1"))
        .into_iter()
        .filter(|path| path.file_name().is_some_and(|name| name == file_name))
        .collect();
    assert!(
        content.is_empty(),
        "{file_name} has content in the cache: {content:?}"
    );
}

/// Fails unless the cache holds no artifact, no index entry and no temp file.
pub fn assert_cache_empty(cache: &Path) {
    for dir in ["artifacts-v1", "index-v1", "tmp"] {
        let files = files_under(&cache.join(dir));
        assert!(files.is_empty(), "{dir} is not empty: {files:?}");
    }
}

/// `env.imgforge()` (mirrors, clean environment, `work/`) but with `cache` as `--cache-dir`.
pub fn imgforge_with_cache(env: &TestEnv, cache: &Path) -> Command {
    let mut command = env.imgforge();
    let args: Vec<_> = command.get_args().map(|arg| arg.to_os_string()).collect();
    assert_eq!(
        args.first().map(|arg| arg.to_string_lossy().into_owned()),
        Some("--cache-dir".to_string()),
        "TestEnv::imgforge starts with --cache-dir"
    );
    let mut replaced = Command::new(command.get_program());
    replaced.arg("--cache-dir").arg(cache).args(&args[2..]);
    if let Some(dir) = command.get_current_dir() {
        replaced.current_dir(dir);
    }
    for (name, value) in command.get_envs() {
        match value {
            Some(value) => replaced.env(name, value),
            None => replaced.env_remove(name),
        };
    }
    command = replaced;
    command
}

/// A loopback URL nothing listens on: a port bound and released again.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let address = listener.local_addr().expect("read the bound address");
    drop(listener);
    format!("http://{address}")
}

/// A tmpfs mounted at a directory for the life of the guard.
#[derive(Debug)]
pub struct TmpfsMount {
    path: PathBuf,
}

impl TmpfsMount {
    /// Mounts a tmpfs with `options` (e.g. `size=512k` or `ro,size=1m`) at `path`. Fails the
    /// test with the reason when the mount is refused: these tests run as root on purpose.
    pub fn new(path: &Path, options: &str) -> TmpfsMount {
        std::fs::create_dir_all(path).expect("create the mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(path)
            .output()
            .unwrap_or_else(|error| panic!("cannot run mount: {error}"));
        assert!(
            output.status.success(),
            "mounting a tmpfs ({options}) at {} failed; these storage tests need root and \
             mount(8): {}",
            path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        TmpfsMount {
            path: path.to_path_buf(),
        }
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        // Lazy unmount: a process killed mid-test may still hold a file open there.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
