//! `imgforge manifest spark-application|scheduled-spark-application`: a Spark operator
//! manifest running the pushed spark image, pinned by digest.
//!
//! The digest comes from `--digests-file` (what `push --digests-file` wrote) or, without it,
//! from the registry: the spark image's first reference is resolved as `imgforge push`
//! resolves it and its manifest digest read over the Registry API. The resource itself is
//! [`crate::operator`]'s work.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::json;

use crate::cli::{ManifestArgs, ManifestKind};
use crate::config::{Config, ConfigError, check_kubernetes_name};
use crate::digests;
use crate::error::Error;
use crate::images::{self, ImageKind};
use crate::operator::{self, Job};
use crate::output;
use crate::progress::Reporter;
use crate::push::{self, PushError};

use super::blocking;
use super::build::connect;

/// Why a manifest could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Writing `--out` failed.
    #[error("cannot write the manifest {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The resource could not be rendered as YAML.
    #[error("cannot render the {kind} as YAML")]
    Render {
        /// The resource kind.
        kind: &'static str,
        /// Why.
        #[source]
        source: serde_norway::Error,
    },
}

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
    let job = job(args)?;
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
        None => registry_digest(config, args, reporter).await?,
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

/// The job from the flags, its names checked as Kubernetes checks them.
fn job(args: &ManifestArgs) -> Result<Job, ConfigError> {
    // Pod names derive from the application's name, and those are DNS labels.
    check_kubernetes_name(&args.name, 63).map_err(|message| ConfigError::Flag {
        flag: "--name",
        message,
    })?;
    if args.namespace.contains('.') {
        return Err(ConfigError::Flag {
            flag: "--namespace",
            message: format!(
                "{:?} is not a namespace name: no '.' allowed",
                args.namespace
            ),
        });
    }
    check_kubernetes_name(&args.namespace, 63).map_err(|message| ConfigError::Flag {
        flag: "--namespace",
        message,
    })?;
    if args.main_application_file.trim().is_empty() {
        return Err(ConfigError::Flag {
            flag: "--main-application-file",
            message: "empty; give the jar or script, e.g. local:///opt/spark/examples/jars/app.jar"
                .into(),
        });
    }
    if let Some(class) = &args.main_class
        && class.trim().is_empty()
    {
        return Err(ConfigError::Flag {
            flag: "--main-class",
            message: "empty; leave it out for Python and R applications".into(),
        });
    }
    Ok(Job {
        name: args.name.clone(),
        namespace: args.namespace.clone(),
        main_class: args.main_class.clone(),
        main_application_file: args.main_application_file.clone(),
    })
}

/// `repository@sha256:…` of the spark image's first tag, as its registry serves it.
async fn registry_digest(
    config: &Config,
    args: &ManifestArgs,
    reporter: Arc<dyn Reporter>,
) -> Result<String, Error> {
    let options = super::push::options(config, &args.access)?;
    let versions = super::push::versions(config, reporter).await?;
    let references = images::references(
        config,
        ImageKind::Spark,
        &versions,
        args.registry.as_deref(),
    )?;
    let reference = &references[0];
    let split = push::split_reference(reference).ok_or_else(|| PushError::Reference {
        reference: reference.clone(),
    })?;
    let engine = connect(config).await?;
    let credentials = push::credentials_for(&options, &split.host).await?;
    let client = push::registry_client(&engine, &split.host, &options, credentials).await?;
    let manifest = client
        .manifest(&split.repository, &split.tag)
        .await
        .map_err(PushError::from)?;
    let (repository, _) = digests::split_tag(reference);
    Ok(format!("{repository}@{}", manifest.digest))
}
