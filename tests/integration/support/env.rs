//! A test environment for running the real `imgforge` binary: a temporary directory holding
//! `cache/`, `work/` and `mirror/`, and a [`MirrorServer`] over `mirror/` filled by
//! [`default_mirrors`].
//!
//! One server answers both mirrors: the Apache dist tree at `<url>` and the Maven repository at
//! `<url>/maven` (files under `mirror/maven/`). The server reads files live, so a test may add,
//! replace or corrupt files under [`TestEnv::mirror_root`] after the start.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::fixtures::{DefaultApache, DefaultMaven, default_mirrors};
use super::server::MirrorServer;

/// How long [`TestEnv::run`] lets imgforge run before killing it and failing the test.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// A temporary directory, a running mirror over the default fixtures, and a preconfigured
/// `imgforge` command. Dropping it stops the server and deletes the directory.
#[derive(Debug)]
pub struct TestEnv {
    /// The mirror serving `mirror/` (declared first so it stops before the directory goes).
    pub server: MirrorServer,
    /// What was published on the Apache side.
    pub apache: DefaultApache,
    /// What was published in the Maven repository.
    pub maven: DefaultMaven,
    dir: tempfile::TempDir,
}

impl TestEnv {
    /// Creates the directories, writes the default mirror fixtures and starts the server.
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("imgforge-test-")
            .tempdir()
            .expect("create the test directory");
        for name in ["cache", "work", "mirror", "xdg/cache", "xdg/config"] {
            std::fs::create_dir_all(dir.path().join(name)).expect("create a test subdirectory");
        }
        let (apache, maven) = default_mirrors(&dir.path().join("mirror"));
        let server = MirrorServer::start(&dir.path().join("mirror"));
        TestEnv {
            server,
            apache,
            maven,
            dir,
        }
    }

    /// The temporary directory everything lives in.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The cache directory passed as `--cache-dir`.
    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// The working directory imgforge runs in.
    pub fn work_dir(&self) -> PathBuf {
        self.dir.path().join("work")
    }

    /// The directory the server serves (Apache tree; Maven repository in `maven/`).
    pub fn mirror_root(&self) -> PathBuf {
        self.dir.path().join("mirror")
    }

    /// The Apache mirror base URL, `http://127.0.0.1:PORT`.
    pub fn apache_url(&self) -> String {
        self.server.url()
    }

    /// The Maven repository base URL, `http://127.0.0.1:PORT/maven`.
    pub fn maven_url(&self) -> String {
        format!("{}/maven", self.server.url())
    }

    /// `imgforge --cache-dir <cache>` with the mirrors set through `IMGFORGE_APACHE_MIRROR` and
    /// `IMGFORGE_MAVEN_MIRROR`, run in `work/`, with `NO_COLOR=1`, no inherited `IMGFORGE_*`
    /// configuration, and XDG directories inside the test directory.
    pub fn imgforge(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_imgforge"));
        command.arg("--cache-dir").arg(self.cache_dir());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("IMGFORGE_") {
                command.env_remove(&name);
            }
        }
        command
            .env_remove("IMGFORGE_CONFIG")
            .env("IMGFORGE_APACHE_MIRROR", self.apache_url())
            .env("IMGFORGE_MAVEN_MIRROR", self.maven_url())
            .env("NO_COLOR", "1")
            .env("XDG_CACHE_HOME", self.dir.path().join("xdg/cache"))
            .env("XDG_CONFIG_HOME", self.dir.path().join("xdg/config"))
            .current_dir(self.work_dir());
        command
    }

    /// Runs `imgforge <args>` to completion (at most [`DEFAULT_RUN_TIMEOUT`]).
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with_timeout(args, DEFAULT_RUN_TIMEOUT)
    }

    /// Runs `imgforge <args>`, killing it and failing the test after `timeout`.
    pub fn run_with_timeout(&self, args: &[&str], timeout: Duration) -> Output {
        let mut command = self.imgforge();
        command.args(args);
        run_command(command, timeout)
    }

    /// Every file under `cache/`, sorted (directories themselves are not listed).
    pub fn cache_files(&self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        collect_files(&self.cache_dir(), &mut files);
        files.sort();
        files
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        TestEnv::new()
    }
}

fn collect_files(directory: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries {
        let entry = entry.expect("read a cache directory entry");
        let file_type = entry.file_type().expect("read a cache entry's type");
        if file_type.is_dir() {
            collect_files(&entry.path(), files);
        } else {
            files.push(entry.path());
        }
    }
}

/// Runs `command` with piped output, killing it and panicking after `timeout`.
pub fn run_command(mut command: Command, timeout: Duration) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let description = format!("{command:?}");
    let mut child = command.spawn().expect("start imgforge");
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let stdout = drain(&mut child, true);
    let stderr = drain(&mut child, false);
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll imgforge") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap_or_default();
            panic!(
                "{description} did not finish within {timeout:?}; stderr so far:\n{}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader"),
        stderr: stderr.join().expect("stderr reader"),
    }
}

fn drain(child: &mut Child, stdout: bool) -> std::thread::JoinHandle<Vec<u8>> {
    let mut pipe: Box<dyn Read + Send> = if stdout {
        Box::new(child.stdout.take().expect("stdout is piped"))
    } else {
        Box::new(child.stderr.take().expect("stderr is piped"))
    };
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// The process's stdout as text.
pub fn stdout_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The process's stderr as text.
pub fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        stdout_text(output),
        stderr_text(output)
    )
}

/// Fails the test, showing both streams, unless the process exited with status 0.
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "expected success\n{}",
        describe(output)
    );
}

/// Fails the test, showing both streams, unless the process exited with `code`.
pub fn assert_exit_code(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "expected exit code {code}\n{}",
        describe(output)
    );
}

/// Fails the test, showing both streams, unless stderr contains `needle`.
pub fn assert_stderr_contains(output: &Output, needle: &str) {
    assert!(
        stderr_text(output).contains(needle),
        "expected stderr to contain {needle:?}\n{}",
        describe(output)
    );
}
