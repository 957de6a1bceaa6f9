//! `imgforge certs check|init`: look at the CA certificates a build would import, or make a
//! development CA for a MinIO or registry endpoint.

use std::time::SystemTime;

use serde_json::json;

use crate::certs;
use crate::cli::CertsAction;
use crate::config::Config;
use crate::error::Error;
use crate::output;
use crate::progress::Reporter;
use crate::resolve::{self, DEFAULT_CERTS_DIR};

use super::certificates_json;

/// Run `imgforge certs <action>`.
pub fn run(config: &Config, action: CertsAction, reporter: &dyn Reporter) -> Result<(), Error> {
    match action {
        CertsAction::Check { dir } => {
            let set = resolve::certificates(config, dir.as_deref(), reporter)?;
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
