//! `imgforge build [spark|spark-hs|hive-metastore|all]…`: from nothing to images, through the
//! Docker Engine API (see [`crate::build`]).

use std::sync::Arc;

use serde_json::json;

use crate::build::{self, BuildFailed, BuildOptions, BuildOutcome};
use crate::cli::BuildArgs;
use crate::config::Config;
use crate::images::ImageKind;
use crate::output;
use crate::progress::Reporter;
use crate::publish;

use super::{Failure, pushed_report};

/// Run `imgforge build`; a failure carries the report of what was done before it.
pub async fn run(
    config: &Config,
    args: &BuildArgs,
    reporter: Arc<dyn Reporter>,
) -> Result<BuildOutcome, Failure> {
    let images = ImageKind::wanted(&args.targets);
    // --registry and --tag name the images for the whole run: built, compared and pushed.
    let config = &config
        .with_names(args.registry.as_deref(), &args.tags, &images)
        .map_err(crate::error::Error::from)?;
    // Read --password-stdin and check the push settings before spending time on a build.
    let push = match args.push {
        true => Some(publish::options(config, &args.access)?),
        false => None,
    };
    let options = BuildOptions {
        images,
        if_changed: args.if_changed,
        no_cache: args.no_cache,
        force: args.force,
        force_replace: args.force_replace,
        locked: args
            .locked
            .then(|| crate::lock::lock_path(config.config_file.as_deref())),
        push,
        digests_file: args.digests_file.clone(),
        pull: args.pull.unwrap_or(config.images.pull),
    };
    match build::build(config, &options, reporter).await {
        Ok(outcome) => {
            let (human, json) = report(&outcome);
            output::result(&config.output, &human, &serde_json::Value::Object(json));
            Ok(outcome)
        }
        Err(BuildFailed { error, partial }) => {
            let (_, mut json) = report(&partial);
            json.remove("command");
            Err(Failure {
                error,
                partial: json,
            })
        }
    }
}

/// The human lines and the JSON report of `outcome`.
fn report(outcome: &BuildOutcome) -> (String, serde_json::Map<String, serde_json::Value>) {
    let built = &outcome.built;
    let mut human = String::new();
    for unchanged in &outcome.unchanged {
        human.push_str(&format!(
            "{:<15} unchanged: {} already has these inputs (imgforge.inputs.sha256 {}…)\n",
            unchanged.kind.label(),
            unchanged.reference,
            &unchanged.fingerprint[..12]
        ));
        for reference in &unchanged.retagged {
            human.push_str(&format!("                {reference} (tagged again)\n"));
        }
    }
    for report in built {
        // The same count as the live display's `Step n/N` and its last line.
        let cached = report.image.steps.iter().filter(|step| step.cached).count();
        human.push_str(&format!(
            "{:<15} {}  {:>10}  context {}  {} steps, {} from cache\n",
            report.kind.label(),
            report.image.id,
            crate::progress::bytes(report.image.size),
            crate::progress::bytes(report.image.context_bytes),
            report.image.steps.len(),
            cached,
        ));
        for reference in &report.references {
            human.push_str(&format!("                {reference}\n"));
        }
    }
    let mut json = serde_json::Map::new();
    json.insert("command".into(), json!("build"));
    // Whether anything was built: false when every image was unchanged (a plain build may
    // still have pushed them), whatever the exit code.
    json.insert("changed".into(), json!(!built.is_empty()));
    json.insert(
        "unchanged".into(),
        outcome
            .unchanged
            .iter()
            .map(|unchanged| {
                json!({
                    "image": unchanged.kind.label(),
                    "reference": unchanged.reference,
                    "fingerprint": unchanged.fingerprint,
                    "id": unchanged.id,
                    "tags": unchanged.references,
                    "retagged": unchanged.retagged,
                })
            })
            .collect(),
    );
    json.insert(
        "images".into(),
        built
            .iter()
            .map(|report| {
                json!({
                    "image": report.kind.label(),
                    "id": report.image.id,
                    "tags": report.references,
                    "size": report.image.size,
                    "context_bytes": report.image.context_bytes,
                    "context_files": report.image.context.files,
                    "cacheable_steps": build::cache_use(&report.image).1,
                    "cached_steps": build::cache_use(&report.image).0,
                    "fingerprint": report.fingerprint,
                })
            })
            .collect(),
    );
    let (pushed_human, pushed_json) = pushed_report(&outcome.pushed);
    human.push_str(&pushed_human);
    if outcome.pushed.iter().any(|image| !image.tags.is_empty()) {
        json.insert("pushed".into(), pushed_json);
    }
    (human, json)
}
