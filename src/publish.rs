//! What the registries hold: pushing images already built, the digest of the spark image for
//! the operator manifests, and newer tags of the base images — each from the [`Resolved`]
//! names, never from names worked out again.

use std::io::Read;
use std::sync::Arc;

use crate::cli::RegistryArgs;
use crate::config::{Config, ConfigError};
use crate::credentials::{CredentialInputs, Secret};
use crate::error::Error;
use crate::images::{self, ImageKind};
use crate::progress::Reporter;
use crate::push::{self, PushError, PushOptions, PushTarget, PushedImage};
use crate::resolve::{self, Needs, Resolved};

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

/// Resolve the names the images were built under (a cache hit after a build).
async fn resolve_names(config: &Config, reporter: Arc<dyn Reporter>) -> Result<Resolved, Error> {
    let fetcher = resolve::open_fetcher(config, Arc::clone(&reporter)).await?;
    resolve::resolve(config, &fetcher, Needs::default(), reporter.as_ref()).await
}

/// `imgforge push`: push `kinds` under the names `target` gives them (`config` with
/// `--registry` and `--tag` applied). Each image is found on the engine under its first
/// target name when `imgforge build` was given the same flags, else under the name
/// `config` gives it, and tagged with the target names first. What was pushed goes into
/// `pushed` as it is verified (see [`push::push`]), so a failure can still report it.
pub async fn push(
    config: &Config,
    target: &Config,
    kinds: &[ImageKind],
    options: &PushOptions,
    reporter: Arc<dyn Reporter>,
    pushed: &mut Vec<PushedImage>,
) -> Result<(), Error> {
    let engine = resolve::connect(config).await?;
    let resolved = resolve_names(config, Arc::clone(&reporter)).await?;
    let mut targets = Vec::with_capacity(kinds.len());
    for kind in kinds {
        let local = resolved.references[kind].clone();
        let references = images::references(target, *kind, &resolved.versions, None)?;
        let source = match references.first() {
            Some(first)
                if *first != local[0] && crate::docker::image_exists(&engine, first).await? =>
            {
                first.clone()
            }
            _ => local[0].clone(),
        };
        targets.push(PushTarget {
            image: kind.label().to_string(),
            source,
            references,
            after: crate::build::push_after(*kind),
        });
    }
    Ok(push::push(&engine, &targets, options, reporter.as_ref(), pushed).await?)
}

/// `repository@sha256:…` of the spark image's first tag, as its registry serves it.
pub async fn spark_digest(
    config: &Config,
    registry: Option<&str>,
    options: &PushOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<String, Error> {
    let resolved = resolve_names(config, reporter).await?;
    let references = images::references(config, ImageKind::Spark, &resolved.versions, registry)?;
    let reference = &references[0];
    let split = push::split_reference(reference).ok_or_else(|| PushError::Reference {
        reference: reference.clone(),
    })?;
    let engine = resolve::connect(config).await?;
    let credentials = push::credentials_for(options, &split.host).await?;
    let client = push::registry_client(&engine, &split.host, options, credentials).await?;
    let manifest = client
        .manifest(&split.repository, &split.tag)
        .await
        .map_err(PushError::from)?;
    let (repository, _) = crate::digests::split_tag(reference);
    Ok(format!("{repository}@{}", manifest.digest))
}

/// What `imgforge outdated` found for one base image.
pub struct BaseReport {
    /// The base image reference.
    pub image: String,
    /// Newer tags of the same form.
    pub newer: Vec<String>,
    /// The digest the tag serves now, when the engine holds an older build of the same tag
    /// (the next `build --if-changed` pulls it and rebuilds the images on it).
    pub moved: Option<String>,
    /// Why it could not be checked (reported, never skipped silently).
    pub error: Option<String>,
}

/// Newer tags of the Spark and metastore base images, from their registries' tag lists.
pub async fn base_updates(config: &Config, reporter: Arc<dyn Reporter>) -> Vec<BaseReport> {
    let failed = |image: &str, error: &dyn std::fmt::Display| BaseReport {
        image: image.to_string(),
        newer: Vec::new(),
        moved: None,
        error: Some(error.to_string()),
    };
    let spark_base = async {
        let fetcher = resolve::open_fetcher(config, reporter).await?;
        let spark = fetcher.fetch(&crate::plan::spark(config)).await?;
        resolve::spark_base_image(config, &fetcher, &spark).await
    }
    .await
    .map_err(|error: Error| error.to_string());
    let mut images = vec![config.images.hive_metastore_base.clone()];
    let mut reports = Vec::new();
    match spark_base {
        Ok(image) => images.insert(0, image),
        Err(error) => reports.push(failed("(spark base image)", &error)),
    }
    images.dedup();
    let engine = match resolve::connect(config).await {
        Ok(engine) => engine,
        Err(error) => {
            reports.extend(images.iter().map(|image| failed(image, &error)));
            return reports;
        }
    };
    let access = crate::pull::PullAccess::new(config, None);
    for image in images {
        let Ok(parsed) = image.parse::<crate::reference::ImageReference>() else {
            reports.push(failed(&image, &"not a valid image reference"));
            continue;
        };
        let Some(tag) = parsed.tag().map(ToString::to_string) else {
            reports.push(failed(&image, &"not a name:tag reference"));
            continue;
        };
        // The push credentials go only to the push registry (see `pull`).
        let options = PushOptions {
            credentials: access.sources_for(parsed.registry()),
            registry_ca: config.push.registry_ca.clone(),
            timeout: config.network.timeout,
            ..PushOptions::default()
        };
        let host = parsed.registry().to_string();
        let repository = parsed.repository().path().to_string();
        let checked = async {
            let credentials = push::credentials_for(&options, &host).await?;
            let client = push::registry_client(&engine, &host, &options, credentials).await?;
            let tags = client.tags(&repository).await?;
            let current = client.current_digest(&repository, &tag).await?;
            Ok::<_, PushError>((tags, current))
        }
        .await;
        match checked {
            Ok((tags, current)) => {
                let recorded = crate::docker::inspect(&engine, &image)
                    .await
                    .ok()
                    .map(|inspect| inspect.repo_digests.unwrap_or_default());
                let moved = match (current, recorded) {
                    (Some(current), Some(recorded))
                        if !crate::pull::records(&recorded, parsed.repository(), &current) =>
                    {
                        Some(current)
                    }
                    _ => None,
                };
                reports.push(BaseReport {
                    newer: crate::outdated::newer_tags(&tag, &tags),
                    moved,
                    image,
                    error: None,
                })
            }
            Err(error) => reports.push(failed(&image, &error)),
        }
    }
    reports
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
