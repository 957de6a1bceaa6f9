//! `imgforge certs check|init`: look at the CA certificates a build would import, or make a
//! development CA for a MinIO or registry endpoint.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::json;

use crate::certs::{self, CaSet};
use crate::cli::CertsAction;
use crate::config::Config;
use crate::error::Error;
use crate::output;
use crate::progress::Reporter;

/// The folder looked for when neither `--certs` nor `[certs] dir` names one.
pub const DEFAULT_CERTS_DIR: &str = "certs";

/// Run `imgforge certs <action>`.
pub fn run(config: &Config, action: CertsAction, reporter: &dyn Reporter) -> Result<(), Error> {
    match action {
        CertsAction::Check { dir } => {
            let set = load(config, dir.as_deref(), reporter)?;
            let mut human = String::new();
            for cert in &set.certs {
                human.push_str(&format!(
                    "{}  {}  {}\n",
                    cert.alias, cert.subject, cert.sha256_fingerprint
                ));
            }
            human.push_str(&format!(
                "{} CA certificate(s) ready to import\n",
                set.certs.len()
            ));
            output::result(
                &config.output,
                &human,
                &json!({ "command": "certs check", "certificates": certificates_json(&set) }),
            );
            Ok(())
        }
        CertsAction::Init { out, hosts, force } => {
            let written = certs::init_dev_ca(&out, &hosts, force, SystemTime::now())?;
            let mut human: String = written
                .iter()
                .map(|path| format!("wrote {}\n", path.display()))
                .collect();
            human.push_str(&format!(
                "copy {} into your certs folder (./{DEFAULT_CERTS_DIR}) so images trust it; server.crt and server.key are for the endpoint\n",
                out.join("ca.crt").display()
            ));
            output::result(
                &config.output,
                &human,
                &json!({ "command": "certs init", "written": written }),
            );
            Ok(())
        }
    }
}

/// Check the certificates to import: `explicit` (a flag), else `[certs] dir`, else `./certs`
/// when present. An explicitly named folder must exist.
pub fn load(
    config: &Config,
    explicit: Option<&Path>,
    reporter: &dyn Reporter,
) -> Result<CaSet, Error> {
    let (dir, required): (PathBuf, bool) = match (explicit, &config.certs_dir) {
        (Some(dir), _) => (dir.to_path_buf(), true),
        (None, Some(dir)) => (dir.clone(), true),
        (None, None) => (PathBuf::from(DEFAULT_CERTS_DIR), false),
    };
    let mut set = certs::load_ca_dir(&dir, SystemTime::now(), required, &config.certs_aliases)?;
    for file in config.certs_aliases.keys() {
        if !set.certs.iter().any(|cert| &cert.file_name == file) {
            set.warnings.push(format!(
                "[certs] aliases names {file}, which is not a certificate in {}",
                dir.display()
            ));
        }
    }
    for warning in &set.warnings {
        reporter.warn(warning);
    }
    Ok(set)
}

/// The certificates as JSON values.
pub fn certificates_json(set: &CaSet) -> Vec<serde_json::Value> {
    set.certs
        .iter()
        .map(|cert| {
            json!({
                "alias": cert.alias,
                "file": cert.path,
                "subject": cert.subject,
                "sha256_fingerprint": cert.sha256_fingerprint,
            })
        })
        .collect()
}
