//! A real PostgreSQL server for one test: `initdb` into a temporary directory, then `postgres`
//! on a free loopback port with its socket in that directory, run as the `postgres` system
//! user when the tests run as root (the server refuses to run as root).
//!
//! The administrator role authenticates with a password over TCP (SCRAM), so clients prove
//! their credentials as they would against a production server. Dropping the server stops it
//! (fast shutdown) and deletes the directory.
//!
//! Missing PostgreSQL binaries fail the test with a message saying what to install: a test
//! that needs PostgreSQL never passes without it.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The administrator role `initdb` creates.
pub const ADMIN_USER: &str = "imgforge_admin";

/// The administrator's password (deliberately holding characters shells and XML care about).
pub const ADMIN_PASSWORD: &str = "admin-pw-'q\"&<x>-7Hc";

/// How long the server may take to accept connections after it starts.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// A running PostgreSQL server; see the module documentation.
#[derive(Debug)]
pub struct PostgresServer {
    child: Child,
    port: u16,
    bin_dir: PathBuf,
    directory: tempfile::TempDir,
}

impl PostgresServer {
    /// Initialises a cluster and starts a server on a free port of 127.0.0.1, waiting until it
    /// accepts connections. Panics with the server's log if it does not.
    pub fn start() -> PostgresServer {
        let bin_dir = server_bin_dir();
        let directory = tempfile::Builder::new()
            .prefix("imgforge-postgres-")
            .tempdir()
            .expect("create the PostgreSQL directory");
        let owner = server_owner();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(directory.path(), Some(uid), Some(gid))
                .expect("give the PostgreSQL directory to the postgres user");
        }
        let password_file = directory.path().join("admin-password");
        std::fs::write(&password_file, ADMIN_PASSWORD).expect("write the password file");
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&password_file, Some(uid), Some(gid))
                .expect("give the password file to the postgres user");
        }

        let data_dir = directory.path().join("data");
        let mut initdb = server_command(&bin_dir.join("initdb"), owner);
        initdb
            .arg("--pgdata")
            .arg(&data_dir)
            .arg("--username")
            .arg(ADMIN_USER)
            .arg("--pwfile")
            .arg(&password_file)
            .args([
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]);
        let output = run(initdb);
        assert!(
            output.status.success(),
            "initdb failed: {}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );

        let port = free_port();
        let log_path = directory.path().join("postgres.log");
        let log = std::fs::File::create(&log_path).expect("create the PostgreSQL log");
        let mut postgres = server_command(&bin_dir.join("postgres"), owner);
        postgres
            .arg("-D")
            .arg(&data_dir)
            .arg("-k")
            .arg(directory.path())
            .arg("-p")
            .arg(port.to_string())
            .args([
                "-h",
                "127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=20",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log);
        let child = postgres.spawn().expect("start postgres");
        let mut server = PostgresServer {
            child,
            port,
            bin_dir,
            directory,
        };
        server.wait_until_ready(&log_path);
        server
    }

    /// The TCP port the server listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The host clients connect to.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Runs `sql` through psql as the administrator in `database`; returns the unaligned,
    /// tuples-only output, trimmed. Panics with psql's error output if it fails.
    pub fn query(&self, database: &str, sql: &str) -> String {
        self.query_as(ADMIN_USER, ADMIN_PASSWORD, database, sql)
    }

    /// Like [`PostgresServer::query`], connecting as `user` with `password`.
    pub fn query_as(&self, user: &str, password: &str, database: &str, sql: &str) -> String {
        let output = self.try_query_as(user, password, database, sql);
        assert!(
            output.status.success(),
            "psql as {user} in {database} failed on {sql:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Runs `sql` through psql as `user`, returning psql's output whatever its status.
    pub fn try_query_as(&self, user: &str, password: &str, database: &str, sql: &str) -> Output {
        let mut psql = Command::new(self.psql());
        psql.env("PGPASSWORD", password)
            .env_remove("PGSERVICE")
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.host())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg(user)
            .arg("-d")
            .arg(database)
            .arg("-c")
            .arg(sql);
        run(psql)
    }

    /// The psql client beside the server binaries (or on PATH).
    pub fn psql(&self) -> PathBuf {
        let beside = self.bin_dir.join("psql");
        if beside.is_file() {
            beside
        } else {
            PathBuf::from("psql")
        }
    }

    /// The directory holding the server binaries (psql and pg_isready are there too).
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    fn wait_until_ready(&mut self, log_path: &Path) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll postgres") {
                panic!(
                    "postgres exited with {status} before accepting connections:\n{}",
                    std::fs::read_to_string(log_path).unwrap_or_default()
                );
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok()
                && self
                    .try_query_as(ADMIN_USER, ADMIN_PASSWORD, "postgres", "SELECT 1")
                    .status
                    .success()
            {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "postgres did not accept connections within {STARTUP_TIMEOUT:?}:\n{}",
                    std::fs::read_to_string(log_path).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: it disconnects clients and stops at once.
        let pid = libc::pid_t::try_from(self.child.id()).expect("a process id fits in pid_t");
        // SAFETY: kill(2) with a pid this struct owns and has not reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The directory holding `initdb` and `postgres`: the one on PATH, else the newest
/// `/usr/lib/postgresql/<version>/bin`. Panics when neither has them.
fn server_bin_dir() -> PathBuf {
    let has_server = |directory: &Path| {
        directory.join("initdb").is_file() && directory.join("postgres").is_file()
    };
    if let Some(path) = std::env::var_os("PATH") {
        for directory in std::env::split_paths(&path) {
            if has_server(&directory) {
                // /usr/local/bin holds symbolic links into the versioned directory, where
                // psql and pg_isready of the same version live too.
                let initdb = std::fs::canonicalize(directory.join("initdb"))
                    .expect("resolve the initdb path");
                let resolved = initdb.parent().map(Path::to_path_buf).unwrap_or(directory);
                return resolved;
            }
        }
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, directory)| has_server(directory))
        .collect();
    versioned.sort();
    match versioned.pop() {
        Some((_, directory)) => directory,
        None => panic!(
            "the PostgreSQL server binaries (initdb, postgres) are neither on PATH nor in \
             /usr/lib/postgresql/<version>/bin: install Debian's `postgresql` package \
             (apt-get install postgresql); these tests need a real server"
        ),
    }
}

/// The uid and gid of the `postgres` system user when the tests run as root (PostgreSQL
/// refuses root); `None` when they already run as an ordinary user.
fn server_owner() -> Option<(u32, u32)> {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let entry = passwd
        .lines()
        .find(|line| line.starts_with("postgres:"))
        .unwrap_or_else(|| {
            panic!(
                "the tests run as root and there is no `postgres` user to run PostgreSQL as: \
                 install Debian's `postgresql` package, which creates it"
            )
        });
    let fields: Vec<&str> = entry.split(':').collect();
    let uid = fields[2].parse().expect("postgres uid is a number");
    let gid = fields[3].parse().expect("postgres gid is a number");
    Some((uid, gid))
}

fn server_command(program: &Path, owner: Option<(u32, u32)>) -> Command {
    let mut command = Command::new(program);
    if let Some((uid, gid)) = owner {
        // The standard library drops supplementary groups when root switches users.
        command.uid(uid).gid(gid);
    }
    command.env_remove("PGDATA").env("LC_ALL", "C");
    command
}

fn run(mut command: Command) -> Output {
    let description = format!("{command:?}");
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("run {description}: {error}"))
}

/// A port of 127.0.0.1 nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address").port()
}
