//! `imgforge manifest spark-application|scheduled-spark-application`: a Spark operator
//! manifest running the pushed spark image, pinned by digest.
//!
//! The digest comes from `--digests-file` (what `push --digests-file` wrote) or, without it,
//! from the registry: the spark image's first reference is resolved as `imgforge push`
//! resolves it and its manifest digest read over the Registry API. The resource itself is
//! [`crate::operator`]'s work.

use std::sync::Arc;

use serde_json::json;

use crate::cli::ManifestKind;
use crate::config::{Config, ConfigError};
use crate::digests;
use crate::error::Error;
use crate::images::ImageKind;
use crate::operator::{self, Job, ManifestError};
use crate::output;
use crate::progress::Reporter;
use crate::publish;
use crate::resolve::blocking;

/// Run `imgforge manifest …`.
pub async fn run(
    config: &Config,
    kind: &ManifestKind,
    reporter: Arc<dyn Reporter>,
) -> Result<(), Error> {
    let (args, schedule) = match kind {
        ManifestKind::SparkApplication(args) => (args, None),
        ManifestKind::ScheduledSparkApplication(scheduled) => {
            (&scheduled.application, Some(scheduled.schedule.as_str()))
        }
    };
    let job = Job::from_flags(args)?;
    if let Some(schedule) = schedule {
        operator::check_schedule(schedule).map_err(|message| ConfigError::Flag {
            flag: "--schedule",
            message,
        })?;
    }
    let pinned = match &args.digests_file {
        Some(path) => {
            let path = path.clone();
            blocking(move || {
                let entries = digests::read(&path)?;
                Ok(digests::find(&path, &entries, ImageKind::Spark.label())?.pinned())
            })
            .await?
        }
        None => {
            let options = publish::options(config, &args.access)?;
            publish::spark_digest(config, args.registry.as_deref(), &options, reporter).await?
        }
    };
    let spark_version = &config.spark.version;
    let (kind_name, yaml, document) = match schedule {
        None => {
            let resource = operator::spark_application(config, &job, &pinned, spark_version);
            (
                "SparkApplication",
                operator::to_yaml(&resource),
                json!(resource),
            )
        }
        Some(schedule) => {
            let resource = operator::scheduled_spark_application(
                config,
                &job,
                &pinned,
                spark_version,
                schedule,
            );
            (
                "ScheduledSparkApplication",
                operator::to_yaml(&resource),
                json!(resource),
            )
        }
    };
    let yaml = yaml.map_err(|source| ManifestError::Render {
        kind: kind_name,
        source,
    })?;
    match &args.out {
        Some(path) => {
            let target = path.clone();
            let bytes = yaml.into_bytes();
            blocking(move || {
                digests::write_beside(&target, &bytes).map_err(|source| {
                    Error::from(ManifestError::Write {
                        path: target.clone(),
                        source,
                    })
                })
            })
            .await?;
            let human = format!(
                "wrote {kind_name} {} ({pinned}) to {}\n",
                job.name,
                path.display()
            );
            let report = json!({
                "command": "manifest",
                "kind": kind_name,
                "name": job.name,
                "image": pinned,
                "out": path.display().to_string(),
            });
            output::result(&config.output, &human, &report);
        }
        None => {
            let report = json!({
                "command": "manifest",
                "kind": kind_name,
                "name": job.name,
                "image": pinned,
                "manifest": document,
            });
            output::document(&config.output, &yaml, &report);
        }
    }
    Ok(())
}
