//! Private CA certificates for the image's Java truststore, and a development CA generator.
//!
//! Users drop the CA certificates of their private endpoints (a MinIO server, an internal
//! S3 gateway) into a directory; [`load_ca_dir`] checks every one of them before anything is
//! written, so a server certificate, an expired CA or a private key dropped in by mistake is
//! reported by file name instead of surfacing later as a TLS failure inside a Spark job.
//! Each accepted certificate gets a truststore alias derived from its file name
//! ([`alias_for`]).
//!
//! [`init_dev_ca`] backs `imgforge certs init`: it creates a development CA and a server
//! certificate signed by it, for local endpoints that have no certificate yet.
//!
//! Time is always a parameter (`now`), so every check is deterministic under test.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use x509_parser::certificate::X509Certificate;
use x509_parser::error::{PEMError, X509Error};
use x509_parser::pem::Pem;
use x509_parser::time::ASN1Time;

use crate::exit;

/// How close to expiry a CA certificate may be before loading it produces a warning.
pub const EXPIRY_WARNING_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Validity of the development CA made by [`init_dev_ca`]: ten years.
pub const DEV_CA_VALIDITY: Duration = Duration::from_secs(3650 * 24 * 60 * 60);

/// Validity of the development server certificate: 825 days, the longest that Apple
/// platforms accept for a TLS server certificate.
pub const DEV_SERVER_VALIDITY: Duration = Duration::from_secs(825 * 24 * 60 * 60);

/// How far back generated certificates are dated, so a container whose clock lags the
/// host's by a few minutes still accepts them.
const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60 * 60);

/// Prefix of every truststore alias imgforge creates, so its entries are recognisable
/// among the JRE's own.
pub const ALIAS_PREFIX: &str = "imgforge-";

/// File names [`init_dev_ca`] writes, in the order it returns them.
pub const DEV_CA_FILES: [&str; 4] = ["ca.crt", "ca.key", "server.crt", "server.key"];

/// Where a certificate sits: a file, and its position when the file is a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertLocation {
    /// The file the certificate was read from.
    pub path: PathBuf,
    /// 1-based position inside a PEM bundle; `None` when the file holds one certificate.
    pub index: Option<usize>,
}

impl fmt::Display for CertLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.index {
            None => write!(f, "{}", self.path.display()),
            Some(index) => write!(
                f,
                "{} (certificate {index} of the bundle)",
                self.path.display()
            ),
        }
    }
}

/// Everything that can go wrong checking CA certificates or generating a development CA.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// The certificate directory is required but does not exist.
    #[error(
        "certificate directory {} does not exist; create it and put the CA certificates (*.crt or *.pem) there",
        dir.display()
    )]
    MissingDir {
        /// The directory that was looked for.
        dir: PathBuf,
    },
    /// The certificate directory could not be listed.
    #[error("cannot list certificate directory {}", dir.display())]
    ReadDir {
        /// The directory being listed.
        dir: PathBuf,
        /// Why listing failed.
        #[source]
        source: io::Error,
    },
    /// A certificate file could not be read.
    #[error("cannot read {}", path.display())]
    ReadFile {
        /// The file being read.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: io::Error,
    },
    /// The file is neither PEM nor DER X.509.
    #[error(
        "{} is not an X.509 certificate ({reason}); export the CA certificate in PEM (-----BEGIN CERTIFICATE-----) or DER form",
        path.display()
    )]
    NotCertificate {
        /// The offending file.
        path: PathBuf,
        /// What was found instead, in plain words.
        reason: &'static str,
    },
    /// A PEM block is damaged (bad base64, missing END line).
    #[error("{} holds a damaged PEM block; export the CA certificate again", path.display())]
    DamagedPem {
        /// The offending file.
        path: PathBuf,
        /// What the PEM reader found wrong.
        #[source]
        source: PEMError,
    },
    /// A PEM block holds something other than a certificate.
    #[error(
        "{} holds a PEM block labelled \"{label}\"; only CERTIFICATE blocks belong here",
        path.display()
    )]
    UnexpectedPemBlock {
        /// The offending file.
        path: PathBuf,
        /// The label of the block, e.g. `CERTIFICATE REQUEST`.
        label: String,
    },
    /// The file holds a private key, which must never end up in an image.
    #[error(
        "{} contains a private key; remove it (only the CA certificate is needed, and keys must never go into an image)",
        path.display()
    )]
    PrivateKey {
        /// The offending file.
        path: PathBuf,
    },
    /// A certificate could not be decoded.
    #[error("{at} is not a valid X.509 certificate; export the CA certificate again")]
    InvalidCertificate {
        /// Which certificate.
        at: CertLocation,
        /// What the decoder found wrong.
        #[source]
        source: X509Error,
    },
    /// The certificate is not a CA certificate.
    #[error(
        "{at} ({subject}) is not a CA certificate (basicConstraints CA:TRUE missing); put the CA that signed the server certificate here, not the server certificate itself"
    )]
    NotCa {
        /// Which certificate.
        at: CertLocation,
        /// Its subject.
        subject: String,
    },
    /// The certificate has expired.
    #[error("{at} ({subject}) expired on {not_after}; get the CA's current certificate")]
    Expired {
        /// Which certificate.
        at: CertLocation,
        /// Its subject.
        subject: String,
        /// When it stopped being valid, UTC.
        not_after: String,
    },
    /// The certificate is not valid yet.
    #[error(
        "{at} ({subject}) is not valid until {not_before}; check the system clock, or wait until then"
    )]
    NotYetValid {
        /// Which certificate.
        at: CertLocation,
        /// Its subject.
        subject: String,
        /// When it becomes valid, UTC.
        not_before: String,
    },
    /// Two files would be imported under the same truststore alias.
    #[error(
        "{} and {} both map to truststore alias \"{alias}\"; rename one of them",
        first.display(), second.display()
    )]
    DuplicateAlias {
        /// The alias both map to.
        alias: String,
        /// The file that claimed the alias first.
        first: PathBuf,
        /// The file that claimed it second.
        second: PathBuf,
    },
    /// `certs init` was given no host.
    #[error("no host given for the server certificate; name at least one DNS name or IP address")]
    NoHosts,
    /// A host is neither an IP address nor a usable DNS name.
    #[error(
        "\"{host}\" is not a valid DNS name or IP address for a certificate ({reason}); use names like minio.local or 10.0.0.5"
    )]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An output file of `certs init` already exists and `force` was not given.
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// Key or certificate generation failed.
    #[error("cannot generate the development {what}")]
    Generate {
        /// What was being generated, e.g. `CA certificate`.
        what: &'static str,
        /// Why rcgen failed.
        #[source]
        source: rcgen::Error,
    },
    /// The output directory of `certs init` could not be created.
    #[error("cannot create directory {}", dir.display())]
    CreateDir {
        /// The directory.
        dir: PathBuf,
        /// Why creation failed.
        #[source]
        source: io::Error,
    },
    /// An output file of `certs init` could not be written.
    #[error("cannot write {}", path.display())]
    Write {
        /// The file being written.
        path: PathBuf,
        /// Why writing failed.
        #[source]
        source: io::Error,
    },
}

impl CertError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CertError::Write { .. } | CertError::CreateDir { .. } => exit::STORAGE,
            _ => exit::CONFIG,
        }
    }
}

/// One checked CA certificate ready to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaCert {
    /// The file it came from.
    pub path: PathBuf,
    /// The truststore alias: [`alias_for`] of the file name, with `-N` appended for the
    /// N-th certificate of a bundle.
    pub alias: String,
    /// The file name alone, for messages.
    pub file_name: String,
    /// The subject distinguished name, e.g. `CN=Example Root CA, O=Example`.
    pub subject: String,
    /// The end of the validity period.
    pub not_after: SystemTime,
    /// SHA-256 of the DER encoding as colon-separated upper-case hex, the form `keytool`
    /// and `openssl x509 -fingerprint -sha256` print, so users can compare.
    pub sha256_fingerprint: String,
    /// The certificate alone, as PEM with 64-column lines and `\n` line endings.
    pub pem: String,
}

/// The outcome of checking a certificate directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaSet {
    /// The accepted certificates, ordered by file name, then by position in the file.
    pub certs: Vec<CaCert>,
    /// Things the user should know that do not stop the build (certificates close to
    /// expiry, files that are skipped but look like they were meant to be used).
    pub warnings: Vec<String>,
}

/// Check every `*.crt` / `*.pem` file in `dir` and return the certificates to import.
///
/// Files are visited sorted by name; other files are ignored. A missing `dir` yields an
/// empty set when `required` is false and [`CertError::MissingDir`] otherwise. The first
/// problem found is returned as the error, naming the file.
///
/// A PEM file may hold several certificates (a bundle, e.g. a root and an intermediate):
/// each is checked and imported under `<alias>-1`, `<alias>-2`, … in file order, because
/// a JRE truststore holds one trusted certificate per alias.
///
/// `aliases` chooses the alias of a file by its name (`[certs] aliases`); a bundle's
/// certificates then get `<alias>-1`, `<alias>-2`, ….
pub fn load_ca_dir(
    dir: &Path,
    now: SystemTime,
    required: bool,
    aliases: &BTreeMap<String, String>,
) -> Result<CaSet, CertError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(source) if source.kind() == io::ErrorKind::NotFound => {
            return if required {
                Err(CertError::MissingDir {
                    dir: dir.to_path_buf(),
                })
            } else {
                Ok(CaSet::default())
            };
        }
        Err(source) => {
            return Err(CertError::ReadDir {
                dir: dir.to_path_buf(),
                source,
            });
        }
    };

    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| CertError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        })?;
        paths.push(entry.path());
    }
    paths.sort_by(|left, right| left.file_name().cmp(&right.file_name()));

    let mut set = CaSet::default();
    let mut alias_owners: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut fingerprint_owners: BTreeMap<String, String> = BTreeMap::new();
    for path in paths {
        let file_name = path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let wanted = match extension_of(&file_name).as_deref() {
            Some("crt" | "pem") => true,
            Some("key") => false,
            _ => continue,
        };
        // Follows symlinks on purpose: a link to a system CA file is a reasonable thing to drop here.
        let is_file = fs::metadata(&path)
            .map_err(|source| CertError::ReadFile {
                path: path.clone(),
                source,
            })?
            .is_file();
        if !is_file {
            continue;
        }
        if !wanted {
            set.warnings.push(format!(
                "{} is ignored (only *.crt and *.pem files are imported); private keys never belong in the certificate directory",
                path.display()
            ));
            continue;
        }

        let alias = aliases
            .get(&file_name)
            .cloned()
            .unwrap_or_else(|| alias_for(&file_name));
        let certs = load_ca_file(&path, &file_name, &alias, now)?;
        for cert in certs {
            if let Some(first) = alias_owners.get(&cert.alias) {
                return Err(CertError::DuplicateAlias {
                    alias: cert.alias,
                    first: first.clone(),
                    second: cert.path,
                });
            }
            alias_owners.insert(cert.alias.clone(), cert.path.clone());

            if let Some(first) = fingerprint_owners.get(&cert.sha256_fingerprint) {
                set.warnings.push(format!(
                    "{} and {} hold the same certificate ({}); it is imported twice",
                    first, cert.file_name, cert.subject
                ));
            } else {
                fingerprint_owners.insert(cert.sha256_fingerprint.clone(), cert.file_name.clone());
            }

            let remaining = unix_seconds(cert.not_after) - unix_seconds(now);
            if remaining <= EXPIRY_WARNING_WINDOW.as_secs() as i64 {
                set.warnings.push(format!(
                    "{} ({}) expires on {} (in {} days); renew it before then",
                    cert.path.display(),
                    cert.subject,
                    format_utc(unix_seconds(cert.not_after)),
                    remaining / 86_400,
                ));
            }
            set.certs.push(cert);
        }
    }
    Ok(set)
}

/// Truststore alias for a certificate file: the name without its extension, lower-cased,
/// every character outside `[a-z0-9-]` turned into `-`, runs of `-` collapsed, leading and
/// trailing `-` trimmed, prefixed with [`ALIAS_PREFIX`].
///
/// `"My CA.crt"` becomes `"imgforge-my-ca"`. A name with nothing usable left becomes
/// `"imgforge-cert"`.
pub fn alias_for(file_name: &str) -> String {
    let stem = Path::new(file_name)
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut alias = String::from(ALIAS_PREFIX);
    let mut pending_dash = false;
    for character in stem.chars() {
        let character = character.to_ascii_lowercase();
        if character.is_ascii_lowercase() || character.is_ascii_digit() {
            if pending_dash && alias.len() > ALIAS_PREFIX.len() {
                alias.push('-');
            }
            pending_dash = false;
            alias.push(character);
        } else {
            pending_dash = true;
        }
    }
    if alias.len() == ALIAS_PREFIX.len() {
        alias.push_str("cert");
    }
    alias
}

/// `imgforge certs init`: create a development CA and a server certificate signed by it.
///
/// `hosts` are DNS names and/or IP addresses; all become subject alternative names and the
/// first is also the common name. Writes `ca.crt`, `ca.key`, `server.crt` and `server.key`
/// into `out` (created if missing), keys with mode 0600 and certificates with 0644. No file
/// is touched when one already exists and `force` is false. Every file is written to a
/// temporary file in `out` and renamed into place. Returns the paths written, in
/// [`DEV_CA_FILES`] order.
///
/// Keys are ECDSA P-256. The CA is valid for [`DEV_CA_VALIDITY`] with `CA:TRUE,
/// pathlen:0` and key usages keyCertSign + cRLSign; the server certificate for
/// [`DEV_SERVER_VALIDITY`] with digitalSignature + keyEncipherment and extended key usage
/// serverAuth. Both start one hour before `now` to tolerate clock skew.
pub fn init_dev_ca(
    out: &Path,
    hosts: &[String],
    force: bool,
    now: SystemTime,
) -> Result<Vec<PathBuf>, CertError> {
    let Some(first_host) = hosts.first() else {
        return Err(CertError::NoHosts);
    };
    let subject_alt_names = hosts
        .iter()
        .map(|host| san_for(host))
        .collect::<Result<Vec<_>, _>>()?;

    let targets: Vec<PathBuf> = DEV_CA_FILES.iter().map(|name| out.join(name)).collect();
    if !force && let Some(existing) = targets.iter().find(|path| path.exists()) {
        return Err(CertError::Exists {
            path: existing.clone(),
        });
    }

    let not_before = now.checked_sub(CLOCK_SKEW_ALLOWANCE).unwrap_or(now);

    let ca_key = KeyPair::generate().map_err(|source| CertError::Generate {
        what: "CA key",
        source,
    })?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = DistinguishedName::new();
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!(
            "imgforge development CA (created {})",
            format_utc(unix_seconds(now))
        ),
    );
    ca_params
        .distinguished_name
        .push(DnType::OrganizationName, "imgforge development");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = not_before.into();
    ca_params.not_after = (now + DEV_CA_VALIDITY).into();
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|source| CertError::Generate {
            what: "CA certificate",
            source,
        })?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate().map_err(|source| CertError::Generate {
        what: "server key",
        source,
    })?;
    let mut server_params = CertificateParams::default();
    server_params.distinguished_name = DistinguishedName::new();
    server_params
        .distinguished_name
        .push(DnType::CommonName, first_host.as_str());
    server_params.subject_alt_names = subject_alt_names;
    server_params.is_ca = IsCa::ExplicitNoCa;
    server_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    server_params.use_authority_key_identifier_extension = true;
    server_params.not_before = not_before.into();
    server_params.not_after = (now + DEV_SERVER_VALIDITY).into();
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(|source| CertError::Generate {
            what: "server certificate",
            source,
        })?;

    let contents = [
        (ca_cert.pem(), PUBLIC_MODE),
        (ca_key_pem, SECRET_MODE),
        (server_cert.pem(), PUBLIC_MODE),
        (server_key.serialize_pem(), SECRET_MODE),
    ];

    fs::create_dir_all(out).map_err(|source| CertError::CreateDir {
        dir: out.to_path_buf(),
        source,
    })?;
    // Every file is complete on disk before the first one becomes visible, so a failure
    // part-way leaves at most a set of renamed, complete files, never a truncated one.
    let mut staged = Vec::with_capacity(targets.len());
    for (target, (content, mode)) in targets.iter().zip(contents) {
        staged.push(stage_file(target, content.as_bytes(), mode)?);
    }
    for (target, temp) in targets.iter().zip(staged) {
        let persisted = if force {
            crate::persist::persist(temp, target)
        } else {
            crate::persist::persist_new(temp, target)
        };
        persisted.map_err(|error| {
            if error.source.kind() == io::ErrorKind::AlreadyExists {
                CertError::Exists { path: error.path }
            } else {
                CertError::Write {
                    path: error.path,
                    source: error.source,
                }
            }
        })?;
    }
    Ok(targets)
}

/// File mode of generated certificates.
const PUBLIC_MODE: u32 = 0o644;
/// File mode of generated private keys.
const SECRET_MODE: u32 = 0o600;

/// Write `content` to a temporary file next to `target`, with `mode` set before any byte.
fn stage_file(
    target: &Path,
    content: &[u8],
    mode: u32,
) -> Result<tempfile::NamedTempFile, CertError> {
    let write_error = |source| CertError::Write {
        path: target.to_path_buf(),
        source,
    };
    let mut temp = crate::persist::temp_for(target).map_err(|error| write_error(error.source))?;
    set_mode(temp.as_file(), mode).map_err(write_error)?;
    temp.write_all(content).map_err(write_error)?;
    Ok(temp)
}

#[cfg(unix)]
fn set_mode(file: &fs::File, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_file: &fs::File, _mode: u32) -> io::Result<()> {
    Ok(())
}

/// The subject alternative name for one host given to `certs init`.
fn san_for(host: &str) -> Result<SanType, CertError> {
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(address));
    }
    let invalid = |reason| CertError::InvalidHost {
        host: host.to_owned(),
        reason,
    };
    if host.is_empty() {
        return Err(invalid("it is empty"));
    }
    if host.len() > 253 {
        return Err(invalid("it is longer than 253 characters"));
    }
    let name = host.strip_prefix("*.").unwrap_or(host);
    for label in name.split('.') {
        if label.is_empty() {
            return Err(invalid("it has an empty label"));
        }
        if label.len() > 63 {
            return Err(invalid("a label is longer than 63 characters"));
        }
        if !label
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '-')
        {
            return Err(invalid(
                "only letters, digits, '-' and '.' are allowed (and a leading '*.')",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("a label starts or ends with '-'"));
        }
    }
    let name = host
        .try_into()
        .map_err(|_| invalid("it is not plain ASCII"))?;
    Ok(SanType::DnsName(name))
}

/// Check one certificate file; returns its certificates in file order.
fn load_ca_file(
    path: &Path,
    file_name: &str,
    alias: &str,
    now: SystemTime,
) -> Result<Vec<CaCert>, CertError> {
    let bytes = fs::read(path).map_err(|source| CertError::ReadFile {
        path: path.to_path_buf(),
        source,
    })?;
    let ders = decode_certificates(path, &bytes)?;
    let bundle = ders.len() > 1;
    ders.iter()
        .enumerate()
        .map(|(position, der)| {
            let index = bundle.then_some(position + 1);
            let at = CertLocation {
                path: path.to_path_buf(),
                index,
            };
            let alias = match index {
                Some(index) => format!("{alias}-{index}"),
                None => alias.to_string(),
            };
            check_ca(at, der, now).map(|checked| CaCert {
                path: path.to_path_buf(),
                alias,
                file_name: file_name.to_owned(),
                subject: checked.subject,
                not_after: checked.not_after,
                sha256_fingerprint: sha256_fingerprint(der),
                pem: pem_encode(der),
            })
        })
        .collect()
}

/// The DER encodings of the certificates in a PEM or DER file.
fn decode_certificates(path: &Path, bytes: &[u8]) -> Result<Vec<Vec<u8>>, CertError> {
    let not_certificate = |reason| CertError::NotCertificate {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(not_certificate("the file is empty"));
    }
    if !contains(bytes, b"-----BEGIN ") {
        if x509_parser::parse_x509_certificate(bytes).is_ok() {
            return Ok(vec![bytes.to_vec()]);
        }
        // A bare PKCS#8 key in DER form is worth naming: it is the likeliest non-certificate.
        if KeyPair::try_from(bytes).is_ok() {
            return Err(CertError::PrivateKey {
                path: path.to_path_buf(),
            });
        }
        return Err(not_certificate("it is neither PEM nor DER"));
    }

    let mut ders = Vec::new();
    for block in Pem::iter_from_buffer(bytes) {
        let block = block.map_err(|source| CertError::DamagedPem {
            path: path.to_path_buf(),
            source,
        })?;
        if block.label.contains("PRIVATE KEY") {
            return Err(CertError::PrivateKey {
                path: path.to_path_buf(),
            });
        }
        if block.label != "CERTIFICATE" {
            return Err(CertError::UnexpectedPemBlock {
                path: path.to_path_buf(),
                label: block.label,
            });
        }
        ders.push(block.contents);
    }
    if ders.is_empty() {
        return Err(not_certificate(
            "no line starts with -----BEGIN CERTIFICATE-----",
        ));
    }
    Ok(ders)
}

/// What [`check_ca`] learns about an accepted certificate.
struct CheckedCa {
    subject: String,
    not_after: SystemTime,
}

/// Decode one certificate and check it is a CA valid at `now`.
fn check_ca(at: CertLocation, der: &[u8], now: SystemTime) -> Result<CheckedCa, CertError> {
    let certificate = match x509_parser::parse_x509_certificate(der) {
        Ok(([], certificate)) => certificate,
        Err(x509_parser::nom::Err::Error(source) | x509_parser::nom::Err::Failure(source)) => {
            return Err(CertError::InvalidCertificate { at, source });
        }
        // Bytes after the certificate, or a truncated one.
        Ok(_) | Err(x509_parser::nom::Err::Incomplete(_)) => {
            return Err(CertError::InvalidCertificate {
                at,
                source: X509Error::InvalidCertificate,
            });
        }
    };
    let subject = certificate.subject().to_string();
    if !is_ca(&certificate).map_err(|source| CertError::InvalidCertificate {
        at: at.clone(),
        source,
    })? {
        return Err(CertError::NotCa { at, subject });
    }

    let now_seconds = unix_seconds(now);
    let validity = certificate.validity();
    let not_before = validity.not_before.timestamp();
    let not_after = validity.not_after.timestamp();
    if now_seconds < not_before {
        return Err(CertError::NotYetValid {
            at,
            subject,
            not_before: format_utc(not_before),
        });
    }
    if now_seconds > not_after {
        return Err(CertError::Expired {
            at,
            subject,
            not_after: format_utc(not_after),
        });
    }
    Ok(CheckedCa {
        subject,
        not_after: system_time(not_after),
    })
}

/// Whether basicConstraints is present with CA:TRUE.
fn is_ca(certificate: &X509Certificate<'_>) -> Result<bool, X509Error> {
    Ok(certificate
        .basic_constraints()?
        .is_some_and(|constraints| constraints.value.ca))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn extension_of(file_name: &str) -> Option<String> {
    Path::new(file_name)
        .extension()
        .map(|extension| extension.to_string_lossy().to_ascii_lowercase())
}

fn sha256_fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// PEM encoding of one certificate: 64-column base64 lines, `\n` line endings.
fn pem_encode(der: &[u8]) -> String {
    let encoded = base64_encode(der);
    let mut pem = String::with_capacity(encoded.len() + encoded.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk boundary is a char boundary.
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// Standard base64 (RFC 4648, with padding).
fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::with_capacity(data.len().div_ceil(3) * 4);
    for group in data.chunks(3) {
        let bits = group
            .iter()
            .enumerate()
            .fold(0u32, |bits, (position, byte)| {
                bits | (u32::from(*byte) << (16 - 8 * position))
            });
        for position in 0..4 {
            if position <= group.len() {
                let index = (bits >> (18 - 6 * position)) & 0x3f;
                encoded.push(char::from(ALPHABET[index as usize]));
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

/// Seconds since the Unix epoch, negative before it.
fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |secs| -secs),
    }
}

fn system_time(seconds: i64) -> SystemTime {
    // X.509 times stop at year 9999, well inside SystemTime's range on every platform.
    if seconds >= 0 {
        UNIX_EPOCH + Duration::from_secs(seconds.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs())
    }
}

/// `2030-01-31 12:00:00 UTC`.
fn format_utc(seconds: i64) -> String {
    match ASN1Time::from_timestamp(seconds) {
        Ok(time) => {
            let time = time.to_datetime();
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
                time.year(),
                u8::from(time.month()),
                time.day(),
                time.hour(),
                time.minute(),
                time.second()
            )
        }
        Err(_) => format!("{seconds} seconds after 1970-01-01 UTC"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rcgen::Certificate;
    use x509_parser::extensions::GeneralName;

    /// 2025-06-15 15:06:40 UTC: a fixed "now" for every test.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_750_000_000)
    }

    fn days(count: u64) -> Duration {
        Duration::from_secs(count * 86_400)
    }

    fn params(
        common_name: &str,
        is_ca: IsCa,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = is_ca;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        params
    }

    fn self_signed_ca(
        common_name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Certificate {
        let key = KeyPair::generate().unwrap();
        params(
            common_name,
            IsCa::Ca(BasicConstraints::Unconstrained),
            not_before,
            not_after,
        )
        .self_signed(&key)
        .unwrap()
    }

    fn valid_ca(common_name: &str) -> Certificate {
        self_signed_ca(common_name, now() - days(365), now() + days(3650))
    }

    fn server_cert(is_ca: IsCa) -> Certificate {
        let ca_key = KeyPair::generate().unwrap();
        let ca_params = params(
            "Issuing CA",
            IsCa::Ca(BasicConstraints::Unconstrained),
            now() - days(365),
            now() + days(3650),
        );
        let issuer = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut server = params("minio.local", is_ca, now() - days(1), now() + days(300));
        server.subject_alt_names = vec![SanType::DnsName("minio.local".try_into().unwrap())];
        server.signed_by(&key, &issuer).unwrap()
    }

    fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, content).unwrap();
        path
    }

    fn load(dir: &Path) -> Result<CaSet, CertError> {
        load_ca_dir(dir, now(), true, &BTreeMap::new())
    }

    fn error_text(dir: &Path) -> String {
        load(dir).unwrap_err().to_string()
    }

    #[test]
    fn valid_ca_is_accepted_with_alias_subject_and_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let ca = valid_ca("Example Root CA");
        let path = write(dir.path(), "My CA.crt", ca.pem());

        let set = load(dir.path()).unwrap();

        assert_eq!(set.warnings, Vec::<String>::new());
        assert_eq!(set.certs.len(), 1);
        let cert = &set.certs[0];
        assert_eq!(cert.path, path);
        assert_eq!(cert.file_name, "My CA.crt");
        assert_eq!(cert.alias, "imgforge-my-ca");
        assert_eq!(cert.subject, "CN=Example Root CA");
        let expected_fingerprint = Sha256::digest(ca.der().as_ref())
            .iter()
            .map(|byte| format!("{byte:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(cert.sha256_fingerprint, expected_fingerprint);
        assert_eq!(cert.sha256_fingerprint.len(), 32 * 3 - 1);
        assert_eq!(cert.pem, ca.pem().replace("\r\n", "\n"));
        assert_eq!(cert.not_after, now() + days(3650));
    }

    #[test]
    fn fingerprint_matches_openssl_form_for_known_bytes() {
        // SHA-256 of the empty input, a value anyone can check.
        assert_eq!(
            sha256_fingerprint(b""),
            "E3:B0:C4:42:98:FC:1C:14:9A:FB:F4:C8:99:6F:B9:24:27:AE:41:E4:64:9B:93:4C:A4:95:99:1B:78:52:B8:55"
        );
    }

    #[test]
    fn server_certificate_is_rejected_as_not_a_ca() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "minio.crt",
            server_cert(IsCa::ExplicitNoCa).pem(),
        );

        let error = load(dir.path()).unwrap_err();

        assert!(matches!(error, CertError::NotCa { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("minio.crt"), "{message}");
        assert!(message.contains("CN=minio.local"), "{message}");
        assert!(
            message.contains(
                "is not a CA certificate (basicConstraints CA:TRUE missing); put the CA that signed the server certificate here, not the server certificate itself"
            ),
            "{message}"
        );
    }

    #[test]
    fn certificate_without_basic_constraints_is_rejected_as_not_a_ca() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "leaf.pem", server_cert(IsCa::NoCa).pem());

        let error = load(dir.path()).unwrap_err();

        assert!(matches!(error, CertError::NotCa { .. }), "{error:?}");
        assert!(error.to_string().contains("leaf.pem"));
    }

    #[test]
    fn expired_ca_is_rejected_saying_when() {
        let dir = tempfile::tempdir().unwrap();
        let expired = self_signed_ca("Old CA", now() - days(3650), now() - days(1));
        write(dir.path(), "old.crt", expired.pem());

        let error = load(dir.path()).unwrap_err();

        assert!(matches!(error, CertError::Expired { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("old.crt"), "{message}");
        assert!(message.contains("CN=Old CA"), "{message}");
        assert!(
            message.contains("expired on 2025-06-14 15:06:40 UTC"),
            "{message}"
        );
    }

    #[test]
    fn ca_not_yet_valid_is_rejected_saying_when() {
        let dir = tempfile::tempdir().unwrap();
        let future = self_signed_ca("Future CA", now() + days(2), now() + days(3650));
        write(dir.path(), "future.pem", future.pem());

        let error = load(dir.path()).unwrap_err();

        assert!(matches!(error, CertError::NotYetValid { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("future.pem"), "{message}");
        assert!(
            message.contains("not valid until 2025-06-17 15:06:40 UTC"),
            "{message}"
        );
    }

    #[test]
    fn ca_expiring_in_ten_days_is_accepted_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let expiring = self_signed_ca("Expiring CA", now() - days(300), now() + days(10));
        write(dir.path(), "expiring.crt", expiring.pem());

        let set = load(dir.path()).unwrap();

        assert_eq!(set.certs.len(), 1);
        assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
        let warning = &set.warnings[0];
        assert!(warning.contains("expiring.crt"), "{warning}");
        assert!(warning.contains("CN=Expiring CA"), "{warning}");
        assert!(warning.contains("2025-06-25 15:06:40 UTC"), "{warning}");
        assert!(warning.contains("in 10 days"), "{warning}");
    }

    #[test]
    fn ca_expiring_in_forty_days_gives_no_warning() {
        let dir = tempfile::tempdir().unwrap();
        let ca = self_signed_ca("Later CA", now() - days(300), now() + days(40));
        write(dir.path(), "later.crt", ca.pem());

        assert_eq!(load(dir.path()).unwrap().warnings, Vec::<String>::new());
    }

    #[test]
    fn garbage_file_is_rejected_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "garbage.crt",
            b"\x00\x01this is not a certificate\xff",
        );

        let error = load(dir.path()).unwrap_err();

        assert!(
            matches!(error, CertError::NotCertificate { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("garbage.crt"), "{message}");
        assert!(message.contains("is not an X.509 certificate"), "{message}");
    }

    #[test]
    fn empty_file_is_rejected_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "empty.pem", "\n");

        let message = error_text(dir.path());

        assert!(message.contains("empty.pem"), "{message}");
        assert!(message.contains("the file is empty"), "{message}");
    }

    #[test]
    fn damaged_pem_block_is_rejected_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "damaged.pem",
            "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
        );

        let error = load(dir.path()).unwrap_err();

        assert!(matches!(error, CertError::DamagedPem { .. }), "{error:?}");
        assert!(error.to_string().contains("damaged.pem"));
    }

    #[test]
    fn pem_block_decoding_to_garbage_is_rejected_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "bogus.pem",
            format!(
                "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
                base64_encode(b"definitely not DER")
            ),
        );

        let error = load(dir.path()).unwrap_err();

        assert!(
            matches!(error, CertError::InvalidCertificate { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("bogus.pem"));
    }

    #[test]
    fn other_pem_blocks_are_rejected_with_their_label() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        write(dir.path(), "public.pem", key.public_key_pem());

        let error = load(dir.path()).unwrap_err();

        assert!(
            matches!(error, CertError::UnexpectedPemBlock { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("public.pem"), "{message}");
        assert!(message.contains("\"PUBLIC KEY\""), "{message}");
    }

    #[test]
    fn private_key_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        write(dir.path(), "oops.pem", key.serialize_pem());

        let error = load(dir.path()).unwrap_err();

        assert!(matches!(error, CertError::PrivateKey { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("oops.pem"), "{message}");
        assert!(
            message.contains("contains a private key; remove it"),
            "{message}"
        );
    }

    #[test]
    fn certificate_with_its_private_key_appended_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        let ca = params(
            "Combined CA",
            IsCa::Ca(BasicConstraints::Unconstrained),
            now() - days(1),
            now() + days(100),
        )
        .self_signed(&key)
        .unwrap();
        write(
            dir.path(),
            "combined.pem",
            format!("{}{}", ca.pem(), key.serialize_pem()),
        );

        let error = load(dir.path()).unwrap_err();

        assert!(matches!(error, CertError::PrivateKey { .. }), "{error:?}");
    }

    #[test]
    fn der_private_key_is_rejected_as_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let key = KeyPair::generate().unwrap();
        write(dir.path(), "key.crt", key.serialize_der());

        let error = load(dir.path()).unwrap_err();

        assert!(matches!(error, CertError::PrivateKey { .. }), "{error:?}");
        assert!(error.to_string().contains("key.crt"));
    }

    #[test]
    fn duplicate_aliases_are_rejected_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "My CA.crt", valid_ca("First").pem());
        write(dir.path(), "my_ca.pem", valid_ca("Second").pem());

        let error = load(dir.path()).unwrap_err();

        assert!(
            matches!(error, CertError::DuplicateAlias { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("My CA.crt"), "{message}");
        assert!(message.contains("my_ca.pem"), "{message}");
        assert!(message.contains("\"imgforge-my-ca\""), "{message}");
    }

    #[test]
    fn der_certificate_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let ca = valid_ca("DER CA");
        write(dir.path(), "der.crt", ca.der().as_ref());

        let set = load(dir.path()).unwrap();

        assert_eq!(set.certs.len(), 1);
        assert_eq!(set.certs[0].alias, "imgforge-der");
        assert_eq!(set.certs[0].subject, "CN=DER CA");
        assert_eq!(set.certs[0].pem, ca.pem().replace("\r\n", "\n"));
    }

    #[test]
    fn pem_with_crlf_and_surrounding_text_is_accepted_and_normalized() {
        let dir = tempfile::tempdir().unwrap();
        let ca = valid_ca("Windows CA");
        let messy = format!(
            "subject=CN = Windows CA\r\n{}\r\n\r\n",
            ca.pem().replace("\r\n", "\n").replace('\n', "\r\n")
        );
        write(dir.path(), "windows.cer.pem", messy);

        let set = load(dir.path()).unwrap();

        assert_eq!(set.certs[0].alias, "imgforge-windows-cer");
        assert_eq!(set.certs[0].pem, ca.pem().replace("\r\n", "\n"));
    }

    #[test]
    fn non_certificate_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "README", "put your CA certificates here");
        write(dir.path(), "notes.txt", "garbage");
        write(dir.path(), "ca.crt.bak", "garbage");
        fs::create_dir(dir.path().join("sub.crt")).unwrap();
        write(dir.path(), "ca.crt", valid_ca("Only CA").pem());

        let set = load(dir.path()).unwrap();

        assert_eq!(set.certs.len(), 1);
        assert_eq!(set.certs[0].file_name, "ca.crt");
        assert_eq!(set.warnings, Vec::<String>::new());
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_are_followed_and_broken_ones_only_matter_for_certificate_names() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = write(elsewhere.path(), "real.pem", valid_ca("Linked").pem());
        std::os::unix::fs::symlink(&target, dir.path().join("linked.crt")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("README")).unwrap();

        let set = load(dir.path()).unwrap();
        assert_eq!(set.certs.len(), 1);
        assert_eq!(set.certs[0].subject, "CN=Linked");

        std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("broken.crt")).unwrap();
        let error = load(dir.path()).unwrap_err();
        assert!(matches!(error, CertError::ReadFile { .. }), "{error:?}");
        assert!(error.to_string().contains("broken.crt"));
    }

    #[test]
    fn key_files_are_ignored_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "server.key",
            KeyPair::generate().unwrap().serialize_pem(),
        );

        let set = load(dir.path()).unwrap();

        assert!(set.certs.is_empty());
        assert_eq!(set.warnings.len(), 1);
        assert!(set.warnings[0].contains("server.key"), "{:?}", set.warnings);
    }

    #[test]
    fn upper_case_extensions_count() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "CORP.CRT", valid_ca("Corp").pem());

        let set = load(dir.path()).unwrap();

        assert_eq!(set.certs.len(), 1);
        assert_eq!(set.certs[0].alias, "imgforge-corp");
    }

    #[test]
    fn files_are_visited_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.crt", valid_ca("B").pem());
        write(dir.path(), "c.pem", valid_ca("C").pem());
        write(dir.path(), "a.pem", valid_ca("A").pem());

        let set = load(dir.path()).unwrap();

        let names: Vec<_> = set
            .certs
            .iter()
            .map(|cert| cert.file_name.as_str())
            .collect();
        assert_eq!(names, ["a.pem", "b.crt", "c.pem"]);
    }

    #[test]
    fn the_same_certificate_in_two_files_gives_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let ca = valid_ca("Twice");
        write(dir.path(), "one.crt", ca.pem());
        write(dir.path(), "two.crt", ca.der().as_ref());

        let set = load(dir.path()).unwrap();

        assert_eq!(set.certs.len(), 2);
        assert_eq!(set.warnings.len(), 1, "{:?}", set.warnings);
        assert!(set.warnings[0].contains("one.crt") && set.warnings[0].contains("two.crt"));
    }

    #[test]
    fn bundle_is_imported_one_alias_per_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let root = valid_ca("Root");
        let intermediate = valid_ca("Intermediate");
        write(
            dir.path(),
            "chain.pem",
            format!("{}{}", root.pem(), intermediate.pem()),
        );

        let set = load(dir.path()).unwrap();

        let aliases: Vec<_> = set.certs.iter().map(|cert| cert.alias.as_str()).collect();
        assert_eq!(aliases, ["imgforge-chain-1", "imgforge-chain-2"]);
        assert_eq!(set.certs[0].subject, "CN=Root");
        assert_eq!(set.certs[1].subject, "CN=Intermediate");
    }

    #[test]
    fn bundle_holding_a_server_certificate_is_rejected_saying_which_one() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "fullchain.pem",
            format!(
                "{}{}",
                valid_ca("Root").pem(),
                server_cert(IsCa::ExplicitNoCa).pem()
            ),
        );

        let message = error_text(dir.path());

        assert!(
            message.contains("fullchain.pem (certificate 2 of the bundle)"),
            "{message}"
        );
        assert!(message.contains("is not a CA certificate"), "{message}");
    }

    #[test]
    fn bundle_alias_clashing_with_another_file_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "corp.pem",
            format!("{}{}", valid_ca("One").pem(), valid_ca("Two").pem()),
        );
        write(dir.path(), "corp-1.crt", valid_ca("Other").pem());

        let error = load(dir.path()).unwrap_err();

        assert!(
            matches!(error, CertError::DuplicateAlias { ref alias, .. } if alias == "imgforge-corp-1"),
            "{error:?}"
        );
    }

    #[test]
    fn missing_directory_is_empty_unless_required() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("certs");

        assert_eq!(
            load_ca_dir(&missing, now(), false, &BTreeMap::new()).unwrap(),
            CaSet::default()
        );
        let error = load_ca_dir(&missing, now(), true, &BTreeMap::new()).unwrap_err();
        assert!(matches!(error, CertError::MissingDir { .. }), "{error:?}");
        assert!(error.to_string().contains(&missing.display().to_string()));
    }

    #[test]
    fn empty_directory_is_an_empty_set() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), CaSet::default());
    }

    #[test]
    fn alias_is_derived_from_the_file_name() {
        assert_eq!(alias_for("My CA.crt"), "imgforge-my-ca");
        assert_eq!(alias_for("minio.pem"), "imgforge-minio");
        assert_eq!(
            alias_for("Corp__Root--CA 2024.crt"),
            "imgforge-corp-root-ca-2024"
        );
        assert_eq!(alias_for("  -weird- .pem"), "imgforge-weird");
        assert_eq!(alias_for("ca.bundle.pem"), "imgforge-ca-bundle");
        assert_eq!(alias_for("Zürich CA.crt"), "imgforge-z-rich-ca");
        assert_eq!(alias_for("___.crt"), "imgforge-cert");
        assert_eq!(alias_for("noextension"), "imgforge-noextension");
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in vectors {
            assert_eq!(base64_encode(input.as_bytes()), expected, "{input}");
        }
        assert_eq!(base64_encode(&[0xfb, 0xff]), "+/8=");
    }

    fn hosts(names: &[&str]) -> Vec<String> {
        names.iter().map(|name| name.to_string()).collect()
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn init_dev_ca_writes_a_ca_that_loads_and_a_server_certificate_it_signed() {
        let out = tempfile::tempdir().unwrap();
        let written = init_dev_ca(
            out.path(),
            &hosts(&["minio.local", "localhost", "127.0.0.1", "::1"]),
            false,
            now(),
        )
        .unwrap();

        let expected: Vec<PathBuf> = DEV_CA_FILES
            .iter()
            .map(|name| out.path().join(name))
            .collect();
        assert_eq!(written, expected);
        let mut present: Vec<_> = fs::read_dir(out.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        present.sort();
        assert_eq!(present, ["ca.crt", "ca.key", "server.crt", "server.key"]);

        // The CA alone is what users put in ./certs.
        let certs = tempfile::tempdir().unwrap();
        fs::copy(out.path().join("ca.crt"), certs.path().join("ca.crt")).unwrap();
        let set = load_ca_dir(certs.path(), now(), true, &BTreeMap::new()).unwrap();
        assert_eq!(set.certs.len(), 1);
        assert_eq!(set.warnings, Vec::<String>::new());
        assert_eq!(set.certs[0].not_after, now() + DEV_CA_VALIDITY);

        let ca_pem = fs::read(out.path().join("ca.crt")).unwrap();
        let server_pem = fs::read(out.path().join("server.crt")).unwrap();
        let ca_block = Pem::iter_from_buffer(&ca_pem).next().unwrap().unwrap();
        let server_block = Pem::iter_from_buffer(&server_pem).next().unwrap().unwrap();
        let ca = ca_block.parse_x509().unwrap();
        let server = server_block.parse_x509().unwrap();

        let constraints = ca.basic_constraints().unwrap().unwrap().value;
        assert!(constraints.ca);
        assert_eq!(constraints.path_len_constraint, Some(0));
        let ca_usage = ca.key_usage().unwrap().unwrap().value;
        assert!(ca_usage.key_cert_sign() && ca_usage.crl_sign());
        assert!(!ca_usage.digital_signature());
        assert_eq!(ca.subject(), ca.issuer());
        ca.verify_signature(None).unwrap();

        assert_eq!(server.issuer(), ca.subject());
        assert_eq!(server.subject().to_string(), "CN=minio.local");
        assert!(!server.is_ca());
        let server_usage = server.key_usage().unwrap().unwrap().value;
        assert!(server_usage.digital_signature() && server_usage.key_encipherment());
        assert!(!server_usage.key_cert_sign());
        let extended = server.extended_key_usage().unwrap().unwrap().value;
        assert!(extended.server_auth);
        let names = &server
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names;
        assert_eq!(
            names,
            &[
                GeneralName::DNSName("minio.local"),
                GeneralName::DNSName("localhost"),
                GeneralName::IPAddress(&[127, 0, 0, 1]),
                GeneralName::IPAddress(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            ]
        );
        assert_eq!(
            server.validity().not_after.timestamp(),
            unix_seconds(now() + DEV_SERVER_VALIDITY)
        );
        assert_eq!(
            server.validity().not_before.timestamp(),
            unix_seconds(now() - CLOCK_SKEW_ALLOWANCE)
        );
        server.verify_signature(Some(ca.public_key())).unwrap();
        // And the signature check is real: the server's own key did not sign it.
        assert!(server.verify_signature(Some(server.public_key())).is_err());

        // The key files are usable keys matching their certificates.
        let server_key =
            KeyPair::from_pem(&fs::read_to_string(out.path().join("server.key")).unwrap()).unwrap();
        assert_eq!(
            server_key.public_key_raw(),
            server.public_key().subject_public_key.data.as_ref()
        );
        let ca_key =
            KeyPair::from_pem(&fs::read_to_string(out.path().join("ca.key")).unwrap()).unwrap();
        assert_eq!(
            ca_key.public_key_raw(),
            ca.public_key().subject_public_key.data.as_ref()
        );
    }

    #[cfg(unix)]
    #[test]
    fn init_dev_ca_keys_are_private_and_certificates_readable() {
        let out = tempfile::tempdir().unwrap();
        init_dev_ca(out.path(), &hosts(&["minio.local"]), false, now()).unwrap();

        assert_eq!(mode(&out.path().join("ca.key")), 0o600);
        assert_eq!(mode(&out.path().join("server.key")), 0o600);
        assert_eq!(mode(&out.path().join("ca.crt")), 0o644);
        assert_eq!(mode(&out.path().join("server.crt")), 0o644);
    }

    #[test]
    fn init_dev_ca_refuses_to_overwrite_without_force_and_overwrites_with_force() {
        let out = tempfile::tempdir().unwrap();
        write(out.path(), "server.key", "precious");

        let error = init_dev_ca(out.path(), &hosts(&["minio.local"]), false, now()).unwrap_err();

        assert!(matches!(error, CertError::Exists { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("server.key"), "{message}");
        assert!(message.contains("--force"), "{message}");
        assert_eq!(
            fs::read_to_string(out.path().join("server.key")).unwrap(),
            "precious"
        );
        assert!(
            !out.path().join("ca.crt").exists(),
            "nothing is written when refusing"
        );

        init_dev_ca(out.path(), &hosts(&["minio.local"]), true, now()).unwrap();
        let key = fs::read_to_string(out.path().join("server.key")).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "{key}");
        #[cfg(unix)]
        assert_eq!(mode(&out.path().join("server.key")), 0o600);

        let first_ca = fs::read(out.path().join("ca.crt")).unwrap();
        let error = init_dev_ca(out.path(), &hosts(&["minio.local"]), false, now()).unwrap_err();
        assert!(error.to_string().contains("ca.crt"), "{error}");
        init_dev_ca(out.path(), &hosts(&["minio.local"]), true, now()).unwrap();
        assert_ne!(fs::read(out.path().join("ca.crt")).unwrap(), first_ca);

        let leftovers: Vec<_> = fs::read_dir(out.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with('.'))
            .collect();
        assert_eq!(leftovers, Vec::<String>::new());
    }

    #[test]
    fn init_dev_ca_creates_the_output_directory() {
        let parent = tempfile::tempdir().unwrap();
        let out = parent.path().join("dev").join("tls");

        init_dev_ca(&out, &hosts(&["10.0.0.5"]), false, now()).unwrap();

        assert!(out.join("server.crt").is_file());
    }

    #[test]
    fn init_dev_ca_rejects_missing_and_invalid_hosts() {
        let out = tempfile::tempdir().unwrap();

        let error = init_dev_ca(out.path(), &[], false, now()).unwrap_err();
        assert!(matches!(error, CertError::NoHosts), "{error:?}");

        for bad in [
            "",
            "minio local",
            "-minio.local",
            "minio..local",
            "mínio.local",
            "a/b",
        ] {
            let error =
                init_dev_ca(out.path(), &hosts(&["ok.local", bad]), false, now()).unwrap_err();
            assert!(
                matches!(error, CertError::InvalidHost { ref host, .. } if host == bad),
                "{bad}: {error:?}"
            );
        }
        assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);

        init_dev_ca(out.path(), &hosts(&["*.minio.local"]), false, now()).unwrap();
    }
}
