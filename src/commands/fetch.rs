//! `imgforge fetch [spark|hadoop|hive|jars|all]`: download and verify every input the
//! default build needs (see [`crate::resolve::fetch_inputs`]).

use std::sync::Arc;

use serde_json::json;

use crate::cli::FetchTarget;
use crate::config::Config;
use crate::error::Error;
use crate::output;
use crate::progress::Reporter;
use crate::resolve::{self, FetchReport};

/// Run `imgforge fetch <target>`.
pub async fn run(
    config: &Config,
    target: FetchTarget,
    reporter: Arc<dyn Reporter>,
) -> Result<(), Error> {
    let report = resolve::fetch_inputs(config, target, reporter).await?;
    print(config, &report);
    Ok(())
}

fn print(config: &Config, report: &FetchReport) {
    let mut human = String::new();
    for fetched in &report.artifacts {
        let entry = &fetched.artifact.entry;
        human.push_str(&format!(
            "{:<16} {:<48} {:>10}  sha512:{}…{}\n",
            fetched.spec.role,
            fetched.spec.file_name,
            crate::progress::bytes(entry.size),
            &entry.sha512[..16],
            if fetched.cached { "  (cached)" } else { "" }
        ));
    }
    let json = json!({
        "command": "fetch",
        "hadoop_version": report.hadoop.as_ref().map(|hadoop| &hadoop.version),
        "hadoop_version_source": report.hadoop.as_ref().map(|hadoop| &hadoop.evidence),
        "artifacts": report.artifacts.iter().map(|fetched| json!({
            "role": fetched.spec.role,
            "file_name": fetched.spec.file_name,
            "url": crate::redact::strip_url_text(&fetched.artifact.entry.url),
            "path": fetched.artifact.path,
            "sha512": fetched.artifact.entry.sha512,
            "verified_with": fetched.artifact.entry.verified_with,
            "size": fetched.artifact.entry.size,
            "cached": fetched.cached,
        })).collect::<Vec<_>>(),
    });
    output::result(&config.output, &human, &json);
}
