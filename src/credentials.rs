//! Registry credentials, found where Docker users already keep them, and kept secret.
//!
//! The sources are tried in order: `--username` with `--password-stdin`, then
//! `IMGFORGE_REGISTRY_USER` / `IMGFORGE_REGISTRY_PASSWORD`, then the docker CLI's
//! `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): its
//! per-registry `credHelpers`, its `credsStore`, then its `auths` entries (a base64
//! `user:password` or an `identitytoken`). Helpers are run as the docker CLI runs them:
//! `docker-credential-<name> get` with the server address on stdin.
//!
//! Every password and token lives in a [`Secret`], whose `Debug` and `Display` print
//! `<redacted>`; the value leaves it only through [`Secret::expose`], where it is sent.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;

use crate::reference::Registry;

/// What a credential helper answers when it holds nothing for a server.
const HELPER_NOT_FOUND: &str = "credentials not found in native keychain";
/// The user name a helper returns for an identity token instead of a password.
const HELPER_TOKEN_USERNAME: &str = "<token>";

/// A password or token. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place it is sent (a header, a helper's stdin).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("<redacted>")
    }
}

/// Where a credential came from, as error messages name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    /// `--username` and `--password-stdin`.
    Flags,
    /// `IMGFORGE_REGISTRY_USER` and `IMGFORGE_REGISTRY_PASSWORD`.
    Environment,
    /// An `auths` entry of a docker `config.json`.
    ConfigAuths {
        /// The file.
        path: PathBuf,
        /// The entry's key.
        key: String,
    },
    /// A credential helper named by `credHelpers` or `credsStore`.
    Helper {
        /// The program, `docker-credential-<name>`.
        program: String,
        /// The `config.json` naming it.
        path: PathBuf,
    },
}

impl fmt::Display for CredentialSource {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Flags => formatter.write_str("--username/--password-stdin"),
            CredentialSource::Environment => formatter.write_str(
                "environment variables IMGFORGE_REGISTRY_USER/IMGFORGE_REGISTRY_PASSWORD",
            ),
            CredentialSource::ConfigAuths { path, key } => {
                write!(formatter, "auths entry {key:?} in {}", path.display())
            }
            CredentialSource::Helper { program, path } => {
                write!(
                    formatter,
                    "credential helper {program} (named in {})",
                    path.display()
                )
            }
        }
    }
}

/// What a registry is given to prove who is pushing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user name and password (or a personal access token used as one).
    Basic {
        /// The user name.
        username: String,
        /// The password.
        password: Secret,
    },
    /// An OAuth refresh token (`identitytoken`), exchanged at the registry's token service.
    IdentityToken {
        /// The token.
        token: Secret,
    },
}

/// A credential and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The credential.
    pub credential: Credential,
    /// Its source.
    pub source: CredentialSource,
}

/// Everything the lookup may consult, resolved from flags and the environment by the caller.
#[derive(Debug, Clone, Default)]
pub struct CredentialInputs {
    /// `--username` with the password read from stdin.
    pub flags: Option<(String, Secret)>,
    /// `IMGFORGE_REGISTRY_USER` and `IMGFORGE_REGISTRY_PASSWORD`.
    pub environment: Option<(String, Secret)>,
    /// The docker CLI's configuration directory (`$DOCKER_CONFIG`, else `~/.docker`).
    pub docker_config_dir: Option<PathBuf>,
}

/// Why credentials could not be found.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// `config.json` exists but cannot be read.
    #[error("cannot read docker configuration {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `config.json` is not valid JSON of the expected shape.
    #[error("docker configuration {path} is malformed: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong (the parser's message, without the file's content).
        message: String,
    },
    /// An `auths` entry's `auth` is not base64 of `user:password`.
    #[error(
        "docker configuration {path}: the auths entry {key:?} has an `auth` value that is not base64 of user:password"
    )]
    BadAuthEntry {
        /// The file.
        path: PathBuf,
        /// The entry's key.
        key: String,
    },
    /// The credential helper program is not on PATH.
    #[error(
        "credential helper {program} (named in {path}) is not installed: no such program on PATH"
    )]
    HelperMissing {
        /// The program.
        program: String,
        /// The `config.json` naming it.
        path: PathBuf,
    },
    /// The helper could not be run.
    #[error("running credential helper {program} for {registry} failed")]
    HelperRun {
        /// The program.
        program: String,
        /// The registry asked about.
        registry: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The helper failed or answered something other than credentials.
    #[error("credential helper {program} failed for {registry}: {message}")]
    HelperFailed {
        /// The program.
        program: String,
        /// The registry asked about.
        registry: String,
        /// Its exit status and first output line (never its credentials).
        message: String,
    },
}

/// The docker CLI's `config.json`, the parts imgforge reads.
#[derive(Debug, Default, Deserialize)]
struct DockerConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

#[derive(Debug, Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

/// The server address the docker CLI hands helpers and uses as the `auths` key: the Hub's
/// legacy URL for Docker Hub, the registry otherwise (an address that names no registry is
/// passed on as given).
pub fn server_address(registry: &str) -> String {
    Registry::from_server_address(registry).map_or_else(
        |_| registry.to_string(),
        |parsed| parsed.credential_key().to_string(),
    )
}

/// Whether a `config.json` key names `registry` (given as `address`, or parsed): keys may
/// carry a scheme and a path (`https://127.0.0.1:5000/v2/`), and the Hub has several names.
fn key_names(key: &str, address: &str, registry: Option<&Registry>) -> bool {
    key == address
        || registry.is_some_and(|registry| {
            Registry::from_server_address(key).is_ok_and(|named| named == *registry)
        })
}

/// The credentials for `registry` (a host such as `registry.gitlab.com` or `127.0.0.1:5000`)
/// from the first source that has some; `None` when no source has any.
///
/// Runs a credential helper when `config.json` names one, so call it off the async threads.
pub fn lookup(
    inputs: &CredentialInputs,
    registry: &str,
) -> Result<Option<Credentials>, CredentialError> {
    if let Some((username, password)) = &inputs.flags {
        return Ok(Some(Credentials {
            credential: Credential::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            source: CredentialSource::Flags,
        }));
    }
    if let Some((username, password)) = &inputs.environment {
        return Ok(Some(Credentials {
            credential: Credential::Basic {
                username: username.clone(),
                password: password.clone(),
            },
            source: CredentialSource::Environment,
        }));
    }
    let Some(directory) = &inputs.docker_config_dir else {
        return Ok(None);
    };
    let path = directory.join("config.json");
    let Some(file) = read_config(&path)? else {
        return Ok(None);
    };
    let parsed = Registry::from_server_address(registry).ok();
    let address = server_address(registry);
    let helper = file
        .cred_helpers
        .iter()
        .find(|(key, _)| key_names(key, &address, parsed.as_ref()))
        .map(|(_, name)| name)
        .or(file.creds_store.as_ref())
        .filter(|name| !name.is_empty());
    if let Some(name) = helper
        && let Some(credentials) = run_helper(name, &path, &address)?
    {
        return Ok(Some(credentials));
    }
    from_auths(&file, &path, parsed.as_ref(), &address)
}

/// [`lookup`] on a blocking thread, for async callers: a credential helper may run.
pub(crate) async fn lookup_blocking(
    inputs: CredentialInputs,
    registry: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let host = registry.to_string();
    tokio::task::spawn_blocking(move || lookup(&inputs, &host))
        .await
        .map_err(|join| CredentialError::HelperRun {
            program: "docker-credential helper".into(),
            registry: registry.to_string(),
            source: std::io::Error::other(join.to_string()),
        })?
}

fn read_config(path: &Path) -> Result<Option<DockerConfigFile>, CredentialError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|error| CredentialError::Malformed {
            path: path.to_path_buf(),
            // serde_json's message names line and column and never quotes the input.
            message: error.to_string(),
        })
}

fn from_auths(
    file: &DockerConfigFile,
    path: &Path,
    registry: Option<&Registry>,
    address: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let Some((key, entry)) = file
        .auths
        .iter()
        .find(|(key, _)| key_names(key, address, registry))
    else {
        return Ok(None);
    };
    let source = CredentialSource::ConfigAuths {
        path: path.to_path_buf(),
        key: key.clone(),
    };
    if let Some(token) = entry
        .identitytoken
        .as_ref()
        .filter(|token| !token.is_empty())
    {
        return Ok(Some(Credentials {
            credential: Credential::IdentityToken {
                token: Secret::new(token.clone()),
            },
            source,
        }));
    }
    let bad = || CredentialError::BadAuthEntry {
        path: path.to_path_buf(),
        key: key.clone(),
    };
    let (username, password) = match (&entry.auth, &entry.username, &entry.password) {
        (Some(auth), _, _) if !auth.is_empty() => {
            let decoded = base64_decode(auth.trim()).ok_or_else(bad)?;
            let text = String::from_utf8(decoded).map_err(|_| bad())?;
            let (username, password) = text.split_once(':').ok_or_else(bad)?;
            (username.to_string(), password.to_string())
        }
        (_, Some(username), Some(password)) => (username.clone(), password.clone()),
        _ => return Ok(None),
    };
    Ok(Some(Credentials {
        credential: Credential::Basic {
            username,
            password: Secret::new(password),
        },
        source,
    }))
}

fn run_helper(
    name: &str,
    path: &Path,
    address: &str,
) -> Result<Option<Credentials>, CredentialError> {
    let program = format!("docker-credential-{name}");
    let spawned = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(CredentialError::HelperMissing {
                program,
                path: path.to_path_buf(),
            });
        }
        Err(source) => {
            return Err(CredentialError::HelperRun {
                program,
                registry: address.to_string(),
                source,
            });
        }
    };
    let run_error = |source| CredentialError::HelperRun {
        program: program.clone(),
        registry: address.to_string(),
        source,
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(address.as_bytes()).map_err(run_error)?;
    }
    let output = child.wait_with_output().map_err(run_error)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stdout.contains(HELPER_NOT_FOUND) || stderr.contains(HELPER_NOT_FOUND) {
            return Ok(None);
        }
        // Its output is never echoed verbatim: stdout is where a helper puts secrets, so the
        // first line of stderr is preferred, and whichever line is shown is redacted.
        let first_line = |text: &str| {
            text.lines()
                .map(str::trim)
                .find(|line| !line.is_empty())
                .map(crate::redact::redact_line)
        };
        let said = first_line(&stderr)
            .or_else(|| first_line(&stdout))
            .map_or_else(
                || "no output".to_string(),
                |line| format!("it said: {line}"),
            );
        return Err(CredentialError::HelperFailed {
            program,
            registry: address.to_string(),
            message: format!("{}; {said}", output.status),
        });
    }
    let answer: HelperAnswer =
        serde_json::from_str(stdout.trim()).map_err(|error| CredentialError::HelperFailed {
            program: program.clone(),
            registry: address.to_string(),
            // The line and column only: the text would hold the secret.
            message: format!(
                "its answer is not the JSON {{\"Username\", \"Secret\"}} expected (line {}, column {})",
                error.line(),
                error.column()
            ),
        })?;
    let source = CredentialSource::Helper {
        program,
        path: path.to_path_buf(),
    };
    let credential = if answer.username == HELPER_TOKEN_USERNAME {
        Credential::IdentityToken {
            token: Secret::new(answer.secret),
        }
    } else {
        Credential::Basic {
            username: answer.username,
            password: Secret::new(answer.secret),
        }
    };
    Ok(Some(Credentials { credential, source }))
}

/// Standard base64 (padding optional), as the docker CLI writes `auth` values.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits: u32 = 0;
    let mut count = 0;
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for byte in text.trim_end_matches('=').bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path, text: &str) {
        std::fs::write(dir.join("config.json"), text).unwrap();
    }

    fn inputs(dir: &Path) -> CredentialInputs {
        CredentialInputs {
            docker_config_dir: Some(dir.to_path_buf()),
            ..Default::default()
        }
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(secret.to_string(), "<redacted>");
        assert!(!format!("{secret:?}").contains("hunter2"));
        let credentials = Credentials {
            credential: Credential::Basic {
                username: "me".into(),
                password: secret,
            },
            source: CredentialSource::Flags,
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }

    #[test]
    fn base64_matches_known_values() {
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert!(base64_decode("not base64!").is_none());
    }

    #[test]
    fn flags_win_over_environment_and_file() {
        let dir = tempfile::tempdir().unwrap();
        write_config(
            dir.path(),
            r#"{"auths":{"r.example":{"auth":"dXNlcjpwYXNz"}}}"#,
        );
        let mut inputs = inputs(dir.path());
        inputs.environment = Some(("env".into(), Secret::new("e")));
        inputs.flags = Some(("flag".into(), Secret::new("f")));
        let found = lookup(&inputs, "r.example").unwrap().unwrap();
        assert_eq!(found.source, CredentialSource::Flags);
        inputs.flags = None;
        let found = lookup(&inputs, "r.example").unwrap().unwrap();
        assert_eq!(found.source, CredentialSource::Environment);
    }

    #[test]
    fn auths_entries_match_by_host_whatever_the_key_form() {
        let dir = tempfile::tempdir().unwrap();
        write_config(
            dir.path(),
            r#"{"auths":{"https://r.example:5000/v2/":{"auth":"dXNlcjpwYXNz"},
                "t.example":{"identitytoken":"tok"}}}"#,
        );
        let found = lookup(&inputs(dir.path()), "r.example:5000")
            .unwrap()
            .unwrap();
        assert_eq!(
            found.credential,
            Credential::Basic {
                username: "user".into(),
                password: Secret::new("pass")
            }
        );
        let found = lookup(&inputs(dir.path()), "t.example").unwrap().unwrap();
        assert_eq!(
            found.credential,
            Credential::IdentityToken {
                token: Secret::new("tok")
            }
        );
        assert!(
            lookup(&inputs(dir.path()), "other.example")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn malformed_config_names_the_file_without_its_content() {
        let dir = tempfile::tempdir().unwrap();
        write_config(
            dir.path(),
            r#"{"auths": {"r": {"auth": "c2VjcmV0OnNlY3JldA=="}"#,
        );
        let error = lookup(&inputs(dir.path()), "r").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("config.json"), "{message}");
        assert!(!message.contains("c2VjcmV0"), "{message}");
        write_config(dir.path(), r#"{"auths": {"r": {"auth": "%%%"}}}"#);
        let error = lookup(&inputs(dir.path()), "r").unwrap_err();
        assert!(
            matches!(error, CredentialError::BadAuthEntry { .. }),
            "{error}"
        );
    }

    #[test]
    fn missing_helper_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_config(dir.path(), r#"{"credsStore":"imgforge-absent-helper"}"#);
        let error = lookup(&inputs(dir.path()), "r.example").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("docker-credential-imgforge-absent-helper"),
            "{error}"
        );
    }
}
