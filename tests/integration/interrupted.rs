//! Interrupted runs leave nothing behind. SIGTERM and SIGHUP arrive while the real binary
//! unpacks a real fixture tarball served by the loopback mirror: the run exits 143/129 and no
//! staging tree or temp file is left. A run killed outright (SIGKILL) cannot clean up, so the
//! next run must: its leftovers are removed, a live run's are not, and the rerun succeeds.
//! `cache clean` refuses a directory that is not an imgforge cache.
//!
//! "Mid-extraction" is made certain, not hoped for: the test stops the process (SIGSTOP) as
//! soon as its staging tree appears, checks that the tarball's last, large member is not
//! fully written yet, and only then sends the signal and lets the process continue.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::fetch::{wait_for_bytes, wait_with_timeout};
use crate::helpers::{assert_no_temp_files, files_under};
use crate::support::env::{DEFAULT_RUN_TIMEOUT, run_command};
use crate::support::fixtures::{
    ApacheTree, ChecksumStyle, TarEntry, spark_dist_entries, spark_dist_padded, tgz,
};
use crate::support::prepared::{TREE_MARKER, assert_nothing_beside, publish_spark_bytes};
use crate::support::{Fault, TestEnv, assert_exit_code, assert_stderr_contains, assert_success};

/// The size of the zero-filled last member: large enough that unpacking it takes far longer
/// than the test needs to notice the staging tree, small once compressed.
const ZEROS: usize = 192 << 20;
const ZEROS_MEMBER: &str = "examples/jars/zeros.bin";

/// The default Spark distribution with [`ZEROS`] zero bytes as its last member.
fn slow_to_unpack_spark() -> &'static [u8] {
    static TARBALL: OnceLock<Vec<u8>> = OnceLock::new();
    TARBALL.get_or_init(|| {
        let mut entries = spark_dist_entries("3.1.1", "hadoop3.2", "3.2.0");
        entries.push(TarEntry::file(
            format!("spark-3.1.1-bin-hadoop3.2/{ZEROS_MEMBER}"),
            vec![0u8; ZEROS],
        ));
        tgz(&entries)
    })
}

/// The zero-filled member compresses about a thousandfold, past the default decompression-bomb
/// ratio (`[extract] max_ratio`); this run's `imgforge.toml` allows it, so every run here
/// reaches the point the test interrupts instead of stopping at the bomb check.
fn allow_the_zeros(env: &TestEnv) {
    std::fs::write(
        env.work_dir().join("imgforge.toml"),
        "[extract]\nmax_ratio = 10000\n",
    )
    .expect("write imgforge.toml");
}

/// Sends `signal` to `child`.
fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) on the child this test started and has not reaped yet.
    let result = unsafe { libc::kill(pid, signal) };
    assert_eq!(result, 0, "kill({pid}, {signal}) failed");
}

/// Starts `imgforge prepare --out <out>` with piped output.
fn start_prepare(env: &TestEnv, out: &Path) -> Child {
    let mut command = env.imgforge();
    command
        .args(["prepare", "--out", out.to_str().expect("UTF-8 path")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.spawn().expect("start imgforge")
}

/// The entries beside `out` that a run staged (`.<out name>.…`).
fn staged_beside(out: &Path) -> Vec<PathBuf> {
    let prefix = format!(
        ".{}.",
        out.file_name().expect("out has a name").to_string_lossy()
    );
    let Ok(entries) = fs::read_dir(out.parent().expect("out has a parent")) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(&prefix))
        .map(|entry| entry.path())
        .collect()
}

/// Waits until the run has created its staging tree beside `out`, stops the process there
/// (SIGSTOP) and checks that it is mid-extraction: `out` not replaced yet, the last member not
/// fully written. Returns the staging tree.
fn stop_mid_extraction(child: &mut Child, out: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(120);
    let staging = loop {
        if let Some(staging) = staged_beside(out).into_iter().next() {
            signal(child, libc::SIGSTOP);
            break staging;
        }
        if let Some(status) = child.try_wait().expect("poll imgforge") {
            panic!("imgforge ended ({status}) before it started unpacking");
        }
        assert!(
            Instant::now() < deadline,
            "imgforge never started unpacking"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    // SIGSTOP takes effect before kill(2) returns for a process on this machine; a short
    // wait for /proc to say so keeps the check below honest on a loaded machine.
    let state = format!("/proc/{}/stat", child.id());
    while !fs::read_to_string(&state).is_ok_and(|stat| stat.contains(") T ")) {
        assert!(
            Instant::now() < deadline,
            "imgforge never showed as stopped in {state}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        !out.exists(),
        "the output was replaced before the test could stop the run"
    );
    let written = fs::metadata(staging.join(ZEROS_MEMBER)).map_or(0, |metadata| metadata.len());
    assert!(
        written < ZEROS as u64,
        "the run finished unpacking before the test could stop it"
    );
    staging
}

/// The run lock files in the cache (each live or killed run has one).
fn run_locks(env: &TestEnv) -> Vec<PathBuf> {
    files_under(&env.cache_dir().join("locks"))
        .into_iter()
        .filter(|path| {
            path.file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with("run-"))
        })
        .collect()
}

/// SIGTERM or SIGHUP mid-extraction: exit `code`, nothing staged, no temp file, no lock.
fn signal_mid_extraction_cleans_up(sig: libc::c_int, name: &str, code: i32) {
    let env = TestEnv::new();
    publish_spark_bytes(&env, "3.1.1", "hadoop3.2", slow_to_unpack_spark());
    allow_the_zeros(&env);
    let out = env.root().join("build/spark");
    let mut child = start_prepare(&env, &out);
    let staging = stop_mid_extraction(&mut child, &out);
    signal(&child, sig);
    signal(&child, libc::SIGCONT);
    let output = wait_with_timeout(child, Duration::from_secs(120));
    assert_exit_code(&output, code);
    assert_stderr_contains(&output, &format!("interrupted by {name}"));
    assert!(!staging.exists(), "the staging tree is still there");
    assert!(!out.exists(), "an interrupted run replaced the output");
    assert_eq!(staged_beside(&out), Vec::<PathBuf>::new());
    assert_no_temp_files(&env.cache_dir());
    assert_eq!(run_locks(&env), Vec::<PathBuf>::new());
}

#[test]
fn sigterm_mid_extraction_exits_143_and_leaves_nothing() {
    signal_mid_extraction_cleans_up(libc::SIGTERM, "SIGTERM", 143);
}

#[test]
fn sighup_mid_extraction_exits_129_and_leaves_nothing() {
    signal_mid_extraction_cleans_up(libc::SIGHUP, "SIGHUP", 129);
}

#[test]
fn after_sigkill_mid_extraction_the_next_run_removes_the_leftovers_and_succeeds() {
    let env = TestEnv::new();
    publish_spark_bytes(&env, "3.1.1", "hadoop3.2", slow_to_unpack_spark());
    allow_the_zeros(&env);
    let out = env.root().join("build/spark");
    let mut child = start_prepare(&env, &out);
    let staging = stop_mid_extraction(&mut child, &out);
    signal(&child, libc::SIGKILL);
    let killed = wait_with_timeout(child, Duration::from_secs(60));
    assert_eq!(killed.status.code(), None, "the run was killed");
    // What a killed run leaves: its staging tree and its run lock.
    assert!(staging.is_dir(), "the killed run left no staging tree?");
    assert_eq!(run_locks(&env).len(), 1, "{:?}", run_locks(&env));

    let output = env.run(&["prepare", "--out", out.to_str().expect("UTF-8 path")]);
    assert_success(&output);
    assert!(
        !staging.exists(),
        "the dead run's staging tree is still there"
    );
    assert_nothing_beside(&out);
    assert!(out.join(TREE_MARKER).is_file());
    assert_eq!(
        fs::metadata(out.join(ZEROS_MEMBER))
            .expect("unpacked")
            .len(),
        ZEROS as u64
    );
    assert_no_temp_files(&env.cache_dir());
    assert_eq!(run_locks(&env), Vec::<PathBuf>::new());
}

/// Starts `imgforge fetch spark` against a Spark tarball whose body stalls after 200 000
/// bytes, and returns once those bytes are in the cache's temp file.
fn start_stalled_fetch(env: &TestEnv) -> (Child, Vec<PathBuf>) {
    start_stalled_fetch_with(env, &[])
}

/// [`start_stalled_fetch`] with `global` options before the subcommand.
fn start_stalled_fetch_with(env: &TestEnv, global: &[&str]) -> (Child, Vec<PathBuf>) {
    let spark = ApacheTree::new(&env.mirror_root()).spark(
        "3.1.1",
        "hadoop3.2",
        &spark_dist_padded("3.1.1", "hadoop3.2", "3.2.0", 1 << 20),
        ChecksumStyle::GpgPrintMd,
    );
    env.server.inject(
        &spark.url_path,
        Fault::StallBody {
            after: 200_000,
            stall: Duration::from_secs(600),
        },
    );
    let mut command = env.imgforge();
    command
        .args(global)
        .args(["fetch", "spark"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().expect("start imgforge");
    wait_for_bytes(&env.server, &spark.url_path, 200_000);
    let partial = files_under(&env.cache_dir().join("tmp"));
    assert_eq!(partial.len(), 1, "one download in flight: {partial:?}");
    (child, partial)
}

#[test]
fn sigterm_mid_download_exits_143_and_keeps_no_partial_file() {
    let env = TestEnv::new();
    let (child, _) = start_stalled_fetch(&env);
    signal(&child, libc::SIGTERM);
    let output = wait_with_timeout(child, Duration::from_secs(60));
    assert_exit_code(&output, 143);
    assert_stderr_contains(&output, "interrupted by SIGTERM");
    assert_no_temp_files(&env.cache_dir());
    assert_eq!(run_locks(&env), Vec::<PathBuf>::new());
}

#[test]
fn sigterm_with_json_prints_the_interruption_as_one_error_document() {
    let env = TestEnv::new();
    let (child, _) = start_stalled_fetch_with(&env, &["--json"]);
    signal(&child, libc::SIGTERM);
    let output = wait_with_timeout(child, Duration::from_secs(60));
    assert_exit_code(&output, 143);
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("stdout is not one JSON document: {error}"));
    assert_eq!(report["command"], "fetch", "{report:#}");
    assert_eq!(report["error"]["kind"], "interrupted", "{report:#}");
    assert_eq!(report["error"]["exit_code"], 143, "{report:#}");
    assert_eq!(
        report["error"]["message"], "interrupted by SIGTERM; nothing partial was kept",
        "{report:#}"
    );
    assert_no_temp_files(&env.cache_dir());
}

#[test]
fn after_sigkill_mid_download_the_partial_file_goes_but_a_live_runs_stays() {
    let env = TestEnv::new();
    let (child, partial) = start_stalled_fetch(&env);

    // Another run opens the cache while the download is alive: the partial file stays.
    assert_success(&env.run(&["cache", "ls"]));
    assert_eq!(files_under(&env.cache_dir().join("tmp")), partial);

    signal(&child, libc::SIGKILL);
    let killed: Output = wait_with_timeout(child, Duration::from_secs(60));
    assert_eq!(killed.status.code(), None, "the run was killed");
    assert_eq!(files_under(&env.cache_dir().join("tmp")), partial);

    env.server.clear_faults();
    assert_success(&env.run(&["fetch", "spark"]));
    assert_no_temp_files(&env.cache_dir());
    assert_eq!(run_locks(&env), Vec::<PathBuf>::new());
}

#[test]
fn cache_clean_refuses_a_directory_without_imgforge_cachedir_tag() {
    let env = TestEnv::new();
    // A directory of the user's that happens to have folders named like the cache's.
    let mine = env.root().join("mine");
    for folder in ["tmp", "artifacts-v1", "locks"] {
        fs::create_dir_all(mine.join(folder)).expect("user folder");
        fs::write(mine.join(folder).join("keep.txt"), "keep me\n").expect("user file");
    }
    let before = files_under(&mine);
    let mut command = Command::new(env!("CARGO_BIN_EXE_imgforge"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("IMGFORGE_") {
            command.env_remove(&name);
        }
    }
    command
        .arg("--cache-dir")
        .arg(&mine)
        .args(["cache", "clean"])
        .current_dir(env.work_dir());
    let output = run_command(command, DEFAULT_RUN_TIMEOUT);
    assert_exit_code(&output, 2);
    assert_stderr_contains(&output, &mine.display().to_string());
    assert_stderr_contains(&output, "CACHEDIR.TAG");
    assert_eq!(files_under(&mine), before);
    for file in &before {
        assert_eq!(fs::read_to_string(file).expect("user file"), "keep me\n");
    }
}
