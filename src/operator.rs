//! The hand-off to the Spark operator: `SparkApplication` and `ScheduledSparkApplication`
//! (`sparkoperator.k8s.io/v1beta2`) skeletons that run exactly the image that was pushed.
//!
//! `spec.image` is pinned by digest (`name@sha256:…`), so a tag moving later changes
//! nothing; `sparkConf` carries the same settings the images carry
//! ([`crate::assemble::spark_settings`] and [`crate::assemble::event_log_settings`]) because
//! on Kubernetes the operator mounts its own configuration over `$SPARK_CONF_DIR` and the
//! image's `spark-defaults.conf` is not read. S3 credentials are referenced from a secret
//! (`secretKeyRef`), never written.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cli::ManifestArgs;
use crate::config::{Config, ConfigError, check_kubernetes_name};
use crate::exit;

/// The API group and version of the Spark operator's resources.
pub const API_VERSION: &str = "sparkoperator.k8s.io/v1beta2";

/// The keys of the S3 secret, each passed to the pods as the variable of the same name.
pub const S3_SECRET_KEYS: [&str; 3] = ["S3_ENDPOINT", "S3_ACCESS_KEY", "S3_SECRET_KEY"];

/// The S3A credential chain's variables, filled from the same secret so S3A finds the
/// credentials without any setting in `sparkConf`.
pub const S3A_CREDENTIAL_VARIABLES: [(&str, &str); 2] = [
    ("AWS_ACCESS_KEY_ID", "S3_ACCESS_KEY"),
    ("AWS_SECRET_ACCESS_KEY", "S3_SECRET_KEY"),
];

/// What the job runs, from the command line.
#[derive(Debug, Clone)]
pub struct Job {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.mainClass`, when the application is a JVM one with a class to name.
    pub main_class: Option<String>,
    /// `spec.mainApplicationFile`, e.g. `local:///opt/spark/examples/jars/app.jar`.
    pub main_application_file: String,
}

/// A `SparkApplication` or `ScheduledSparkApplication` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource<Spec> {
    /// [`API_VERSION`].
    pub api_version: String,
    /// `SparkApplication` or `ScheduledSparkApplication`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: Metadata,
    /// The resource's spec.
    pub spec: Spec,
}

/// `metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The resource's name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

/// `SparkApplicationSpec` (the fields imgforge fills).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// `Scala`, `Java`, `Python` or `R`.
    #[serde(rename = "type")]
    pub application_type: String,
    /// `cluster`: the operator runs the driver in a pod.
    pub mode: String,
    /// `name@sha256:…`.
    pub image: String,
    /// `IfNotPresent`: a digest never moves, so there is nothing to pull again.
    pub image_pull_policy: String,
    /// The main class, for JVM applications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_class: Option<String>,
    /// The application jar or script.
    pub main_application_file: String,
    /// The Spark version in the image.
    pub spark_version: String,
    /// The settings the images carry.
    pub spark_conf: BTreeMap<String, String>,
    /// What the operator does when the application ends.
    pub restart_policy: RestartPolicy,
    /// The driver pod.
    pub driver: PodSpec,
    /// The executor pods.
    pub executor: PodSpec,
}

/// `restartPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// `Never`, `OnFailure` or `Always`.
    #[serde(rename = "type")]
    pub policy: String,
}

/// The part of `DriverSpec` / `ExecutorSpec` imgforge fills.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// CPU cores.
    pub cores: u32,
    /// Executors only: how many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<u32>,
    /// Heap memory, e.g. `1g`.
    pub memory: String,
    /// Driver only: the service account that may create executor pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    /// Environment variables, each from a secret key.
    pub env: Vec<EnvVar>,
}

/// A container environment variable taken from a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvVar {
    /// The variable's name.
    pub name: String,
    /// Where its value comes from.
    pub value_from: EnvSource,
}

/// `valueFrom`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvSource {
    /// The secret and key.
    pub secret_key_ref: SecretKeyRef,
}

/// `secretKeyRef`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretKeyRef {
    /// The secret's name.
    pub name: String,
    /// The key within it.
    pub key: String,
}

/// `ScheduledSparkApplicationSpec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledSpec {
    /// A cron expression or `@every 1h`-style schedule.
    pub schedule: String,
    /// `Forbid`: a run still going when the next is due is not doubled.
    pub concurrency_policy: String,
    /// The application each run creates.
    pub template: ApplicationSpec,
}

/// The application spec running `job` on `pinned_image` (Spark `spark_version`).
pub fn application_spec(
    config: &Config,
    job: &Job,
    pinned_image: &str,
    spark_version: &str,
) -> ApplicationSpec {
    let spark_conf = crate::assemble::spark_settings(config)
        .into_iter()
        .chain(crate::assemble::event_log_settings(config))
        .map(|(key, value)| (key.to_string(), value))
        .collect();
    let env = secret_env(&config.operator.s3_secret);
    ApplicationSpec {
        application_type: application_type(&job.main_application_file).into(),
        mode: "cluster".into(),
        image: pinned_image.into(),
        image_pull_policy: "IfNotPresent".into(),
        main_class: job.main_class.clone(),
        main_application_file: job.main_application_file.clone(),
        spark_version: spark_version.into(),
        spark_conf,
        restart_policy: RestartPolicy {
            policy: "Never".into(),
        },
        driver: PodSpec {
            cores: 1,
            instances: None,
            memory: "1g".into(),
            service_account: Some(config.operator.service_account.clone()),
            env: env.clone(),
        },
        executor: PodSpec {
            cores: 1,
            instances: Some(1),
            memory: "1g".into(),
            service_account: None,
            env,
        },
    }
}

/// A `SparkApplication`.
pub fn spark_application(
    config: &Config,
    job: &Job,
    pinned_image: &str,
    spark_version: &str,
) -> Resource<ApplicationSpec> {
    Resource {
        api_version: API_VERSION.into(),
        kind: "SparkApplication".into(),
        metadata: metadata(job),
        spec: application_spec(config, job, pinned_image, spark_version),
    }
}

/// A `ScheduledSparkApplication` running the job on `schedule`.
pub fn scheduled_spark_application(
    config: &Config,
    job: &Job,
    pinned_image: &str,
    spark_version: &str,
    schedule: &str,
) -> Resource<ScheduledSpec> {
    Resource {
        api_version: API_VERSION.into(),
        kind: "ScheduledSparkApplication".into(),
        metadata: metadata(job),
        spec: ScheduledSpec {
            schedule: schedule.into(),
            concurrency_policy: "Forbid".into(),
            template: application_spec(config, job, pinned_image, spark_version),
        },
    }
}

fn metadata(job: &Job) -> Metadata {
    Metadata {
        name: job.name.clone(),
        namespace: job.namespace.clone(),
    }
}

/// `Python` for `.py`, `R` for `.R`, else `Scala` (the operator runs Java jars the same way).
fn application_type(main_application_file: &str) -> &'static str {
    if main_application_file.ends_with(".py") {
        "Python"
    } else if main_application_file.ends_with(".R") || main_application_file.ends_with(".r") {
        "R"
    } else {
        "Scala"
    }
}

/// The S3 secret's keys as variables of the same name, then the S3A credential chain's.
fn secret_env(secret: &str) -> Vec<EnvVar> {
    let from = |name: &str, key: &str| EnvVar {
        name: name.into(),
        value_from: EnvSource {
            secret_key_ref: SecretKeyRef {
                name: secret.into(),
                key: key.into(),
            },
        },
    };
    S3_SECRET_KEYS
        .iter()
        .map(|key| from(key, key))
        .chain(
            S3A_CREDENTIAL_VARIABLES
                .iter()
                .map(|(name, key)| from(name, key)),
        )
        .collect()
}

/// Check a schedule: a five-field cron expression or a `@`-descriptor (`@hourly`,
/// `@every 30m`), as the operator's cron library accepts.
pub fn check_schedule(schedule: &str) -> Result<(), String> {
    let trimmed = schedule.trim();
    let fields = trimmed.split_whitespace().count();
    if trimmed.starts_with('@') || fields == 5 {
        Ok(())
    } else {
        Err(format!(
            "{schedule:?} is neither a five-field cron expression (\"0 2 * * *\") nor a \
             descriptor such as \"@daily\" or \"@every 6h\""
        ))
    }
}

/// Render `resource` as YAML.
pub fn to_yaml<T: Serialize>(resource: &T) -> Result<String, serde_norway::Error> {
    serde_norway::to_string(resource)
}

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

impl ManifestError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ManifestError::Write { .. } => exit::STORAGE,
            ManifestError::Render { .. } => exit::INTERNAL,
        }
    }
}

impl Job {
    /// The job from the flags, its names checked as Kubernetes checks them.
    pub fn from_flags(args: &ManifestArgs) -> Result<Job, ConfigError> {
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
                message:
                    "empty; give the jar or script, e.g. local:///opt/spark/examples/jars/app.jar"
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_types_follow_the_file() {
        assert_eq!(application_type("local:///opt/app.py"), "Python");
        assert_eq!(application_type("local:///opt/app.R"), "R");
        assert_eq!(application_type("local:///opt/app.jar"), "Scala");
    }

    #[test]
    fn schedules_are_cron_or_descriptors() {
        assert!(check_schedule("0 2 * * *").is_ok());
        assert!(check_schedule("@every 6h").is_ok());
        assert!(check_schedule("daily").is_err());
        assert!(check_schedule("0 2 * *").is_err());
    }

    #[test]
    fn secrets_are_references_never_values() {
        let env = secret_env("s3-credentials");
        let names: Vec<&str> = env.iter().map(|var| var.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "S3_ENDPOINT",
                "S3_ACCESS_KEY",
                "S3_SECRET_KEY",
                "AWS_ACCESS_KEY_ID",
                "AWS_SECRET_ACCESS_KEY"
            ]
        );
        assert!(
            env.iter()
                .all(|var| var.value_from.secret_key_ref.name == "s3-credentials")
        );
    }
}
