//! `imgforge push [--registry R] [spark|spark-hs|hive-metastore|all]`, and the push step of
//! `imgforge build --push`.
//!
//! The images are found on the engine under the references `imgforge build` gave them (the
//! versions that name them are read from the Spark tarball in the cache, as the build does);
//! `--registry` tags them for another registry first. Pushing and verifying is
//! [`crate::push`]'s work.

use std::io::Read;
use std::sync::Arc;

use serde_json::json;

use crate::cli::{PushArgs, RegistryArgs};
use crate::config::{Config, ConfigError};
use crate::credentials::{CredentialInputs, Secret};
use crate::error::Error;
use crate::images::{self, Versions};
use crate::output;
use crate::progress::Reporter;
use crate::push::{self, PushOptions, PushTarget, PushedImage};

use super::build::{BuiltReport, connect, wanted};
use super::open_fetcher;

/// Run `imgforge push`.
pub async fn run(
    config: &Config,
    args: &PushArgs,
    reporter: Arc<dyn Reporter>,
) -> Result<Vec<PushedImage>, Error> {
    let options = options(config, &args.access)?;
    let kinds = wanted(&args.targets);
    if let Some(registry) = &args.registry {
        // Check the override before anything is read or contacted.
        images::references(
            config,
            kinds[0],
            &Versions::provisional(config),
            Some(registry),
        )?;
    }
    let engine = connect(config).await?;
    let versions = versions(config, Arc::clone(&reporter)).await?;
    let mut targets = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let local = images::references(config, kind, &versions, None)?;
        let references = match &args.registry {
            Some(registry) => images::references(config, kind, &versions, Some(registry))?,
            None => local.clone(),
        };
        targets.push(PushTarget {
            image: kind.label().to_string(),
            source: local[0].clone(),
            references,
        });
    }
    let pushed = push::push(&engine, &targets, &options, reporter.as_ref()).await?;
    if let Some(path) = &args.digests_file {
        write_digests(path, &pushed).await?;
    }
    print(config, &pushed);
    Ok(pushed)
}

/// Push what `imgforge build` just built, under the references it was tagged with.
pub async fn push_built(
    config: &Config,
    built: &[BuiltReport],
    options: &PushOptions,
    reporter: &dyn Reporter,
) -> Result<Vec<PushedImage>, Error> {
    let engine = connect(config).await?;
    let targets: Vec<PushTarget> = built
        .iter()
        .map(|report| PushTarget {
            image: report.kind.label().to_string(),
            source: report.image.id.clone(),
            references: report.references.clone(),
        })
        .collect();
    Ok(push::push(&engine, &targets, options, reporter).await?)
}

/// Write every pushed reference to the digests file `path`.
pub async fn write_digests(path: &std::path::Path, pushed: &[PushedImage]) -> Result<(), Error> {
    let path = path.to_path_buf();
    let entries = crate::digests::entries(pushed);
    super::blocking(move || Ok(crate::digests::write(&path, &entries)?)).await
}

/// The push options from the configuration and the flags; reads the password from stdin
/// when `--password-stdin` is given.
pub fn options(config: &Config, access: &RegistryArgs) -> Result<PushOptions, Error> {
    let flags = match (&access.username, access.password_stdin) {
        (Some(username), true) => Some((username.clone(), read_password(std::io::stdin())?)),
        _ => None,
    };
    Ok(PushOptions {
        credentials: CredentialInputs {
            flags,
            environment: config.push.environment_credentials.clone(),
            docker_config_dir: config.push.docker_config_dir.clone(),
        },
        registry_ca: access
            .registry_ca
            .clone()
            .or_else(|| config.push.registry_ca.clone()),
        attempts: config.network.retries + 1,
        timeout: config.network.timeout,
        ..PushOptions::default()
    })
}

/// The password on `input`, without the line ending `echo` adds.
pub fn read_password(mut input: impl Read) -> Result<Secret, Error> {
    let mut text = String::new();
    input
        .read_to_string(&mut text)
        .map_err(|error| ConfigError::Flag {
            flag: "--password-stdin",
            message: format!("cannot read the password from stdin: {error}"),
        })?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(ConfigError::Flag {
            flag: "--password-stdin",
            message: "stdin held no password".into(),
        }
        .into());
    }
    Ok(Secret::new(password))
}

/// The versions that name the images, read from the Spark tarball as `imgforge build` reads
/// them (a cache hit after a build).
pub(crate) async fn versions(
    config: &Config,
    reporter: Arc<dyn Reporter>,
) -> Result<Versions, Error> {
    let fetcher = open_fetcher(config, reporter).await?;
    let (_, _, facts) = super::spark_listing(config, &fetcher).await?;
    Ok(Versions {
        spark: facts.spark_version.clone(),
        scala: facts.scala_version.clone(),
        hadoop: facts.hadoop.version.clone(),
        hadoop_aws: facts.hadoop.version.clone(),
        aws_sdk: String::new(),
    })
}

/// The human lines and JSON entries of pushed images.
pub fn report(pushed: &[PushedImage]) -> (String, serde_json::Value) {
    let mut human = String::new();
    for image in pushed {
        for tag in &image.tags {
            human.push_str(&format!("{:<15} {tag}\n", image.image));
        }
    }
    (human, json!(pushed))
}

fn print(config: &Config, pushed: &[PushedImage]) {
    let (human, images) = report(pushed);
    let json = json!({ "command": "push", "images": images });
    output::result(&config.output, &human, &json);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_lose_only_the_final_line_ending() {
        assert_eq!(read_password(&b"s3cret\n"[..]).unwrap().expose(), "s3cret");
        assert_eq!(
            read_password(&b"s3cret\r\n"[..]).unwrap().expose(),
            "s3cret"
        );
        assert_eq!(
            read_password(&b" pad \n\n"[..]).unwrap().expose(),
            " pad \n"
        );
        assert!(read_password(&b"\n"[..]).is_err());
    }
}
