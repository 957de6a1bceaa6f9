//! A second Docker engine for the remote-engine tests: `dockerd` on `127.0.0.1:<port>` with
//! `--tlsverify`, server and client certificates made with rcgen, its own data and exec
//! roots and socket, and no iptables so it leaves the main engine alone. Dropping it stops
//! the daemon (SIGTERM, so its containerd stops too) and removes its files.
//!
//! It gets a bridge of its own (`-b`), never `--bridge none`: a daemon started with
//! `--bridge none` deletes the host's `docker0`, which the main engine's containers need.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use super::registry::free_port;

/// A running second engine.
pub struct RemoteEngine {
    /// `tcp://127.0.0.1:<port>`.
    pub host: String,
    /// ca.pem, cert.pem and key.pem for a client, as `DOCKER_CERT_PATH` holds them.
    pub client_certs: PathBuf,
    /// The daemon's log.
    pub log: PathBuf,
    child: Child,
    bridge: String,
    dir: tempfile::TempDir,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stderr(Stdio::null())
        .status()
        .map(|status| status.success())
        .unwrap_or(false)
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|error| panic!("write {}: {error}", path.display()));
}

/// A CA, a server certificate for 127.0.0.1 (serverAuth) and a client certificate
/// (clientAuth), written as `server/{ca,cert,key}.pem` and `client/{ca,cert,key}.pem`.
pub fn engine_certificates(dir: &Path) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "imgforge test engine CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);

    let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![usage];
        params.subject_alt_names = vec![
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
            SanType::DnsName("localhost".try_into().expect("DNS name")),
        ];
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        (cert.pem(), key.serialize_pem())
    };
    for (side, name, usage) in [
        ("server", "127.0.0.1", ExtendedKeyUsagePurpose::ServerAuth),
        (
            "client",
            "imgforge test client",
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    ] {
        let folder = dir.join(side);
        std::fs::create_dir_all(&folder).expect("certificate folder");
        let (cert, key) = leaf(name, usage);
        write(&folder.join("ca.pem"), &ca_cert.pem());
        write(&folder.join("cert.pem"), &cert);
        write(&folder.join("key.pem"), &key);
    }
}

impl RemoteEngine {
    /// Start the daemon and wait until it answers on its TCP port (TLS handshake included).
    pub async fn start() -> RemoteEngine {
        // Short path: the daemon's unix sockets must fit in 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("ifd-")
            .tempdir_in("/tmp")
            .expect("engine directory");
        engine_certificates(dir.path());
        let port = free_port();
        let host = format!("tcp://127.0.0.1:{port}");
        let server = dir.path().join("server");
        write(&dir.path().join("daemon.json"), "{}");
        // A bridge and subnet for this daemon alone — tests of one process may run two at
        // once (interface names are at most 15 bytes).
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let instance = STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 50;
        let pid = std::process::id();
        let bridge = format!("ifit{}i{instance}", pid % 100_000);
        let address = format!("10.{}.{}.1/24", 254 - instance, pid % 250);
        let _ = ip(&["link", "del", &bridge]);
        assert!(
            ip(&["link", "add", &bridge, "type", "bridge"])
                && ip(&["addr", "add", &address, "dev", &bridge]),
            "cannot create bridge {bridge} for the second dockerd (iproute2, root needed)"
        );
        let log = dir.path().join("dockerd.log");
        let log_file = std::fs::File::create(&log).expect("dockerd log");
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(dir.path().join("daemon.json"))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .arg("-H")
            .arg(format!(
                "unix://{}",
                dir.path().join("docker.sock").display()
            ))
            .arg("-H")
            .arg(&host)
            .arg("--tlsverify")
            .arg("--tlscacert")
            .arg(server.join("ca.pem"))
            .arg("--tlscert")
            .arg(server.join("cert.pem"))
            .arg("--tlskey")
            .arg(server.join("key.pem"))
            .args(["--bridge", &bridge, "--iptables=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone log handle"))
            .stderr(log_file)
            .spawn()
            .expect("start a second dockerd");
        let mut engine = RemoteEngine {
            host,
            client_certs: dir.path().join("client"),
            log,
            child,
            bridge,
            dir,
        };
        engine.wait_until_answering().await;
        engine
    }

    /// The endpoint as `DOCKER_HOST`, `DOCKER_TLS_VERIFY` and `DOCKER_CERT_PATH` give it.
    pub fn endpoint(&self) -> imgforge::docker::EngineEndpoint {
        imgforge::docker::EngineEndpoint::from_env_values(
            Some(self.host.clone()),
            Some("1".into()),
            Some(self.client_certs.display().to_string()),
        )
        .expect("endpoint")
    }

    /// The variables a user sets for this engine.
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DOCKER_HOST", self.host.clone()),
            ("DOCKER_TLS_VERIFY", "1".into()),
            ("DOCKER_CERT_PATH", self.client_certs.display().to_string()),
        ]
    }

    async fn wait_until_answering(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(engine) = imgforge::docker::connect(&self.endpoint()).await
                && engine.client().ping().await.is_ok()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the second dockerd exited ({status}); log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the second dockerd did not answer on {} within 60s; log:\n{}",
                self.host,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for RemoteEngine {
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: sending a signal to the child this struct started; no memory is touched.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Overlay mounts may linger under data/; unmount what is left before deleting.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "grep -o ' {0}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l",
                self.dir.path().display()
            ))
            .status();
        let _ = ip(&["link", "del", &self.bridge]);
    }
}
