//! `imgforge outdated`: newer upstream releases — patch releases of the configured Spark line
//! and newer tags of the base images — reported, never applied.

use std::sync::Arc;

use serde_json::json;

use crate::config::Config;
use crate::credentials::CredentialInputs;
use crate::error::Error;
use crate::outdated;
use crate::output;
use crate::progress::Reporter;
use crate::push::{self, PushOptions};

use super::build::{connect, spark_base_image};
use super::open_fetcher;

/// What was found for one base image.
struct BaseReport {
    image: String,
    newer: Vec<String>,
    /// Why it could not be checked (reported, never skipped silently).
    error: Option<String>,
}

/// Run `imgforge outdated`.
pub async fn run(config: &Config, reporter: Arc<dyn Reporter>) -> Result<(), Error> {
    let updates = outdated::spark_updates(config).await?;
    let bases = base_updates(config, reporter).await;
    let patches: Vec<String> = updates
        .newer_patches
        .iter()
        .map(ToString::to_string)
        .collect();
    let newest = updates.newest.as_ref().map(ToString::to_string);
    let mut human = if patches.is_empty() {
        format!(
            "spark {}: no newer patch release of its line\n",
            updates.current
        )
    } else {
        format!(
            "spark {}: newer patch releases {}\n",
            updates.current,
            patches.join(", ")
        )
    };
    if let Some(newest) = &newest {
        human.push_str(&format!("  newest Spark release: {newest}\n"));
    }
    human.push_str(&format!(
        "  (from {}; set [spark] version to move)\n",
        updates.listing_url
    ));
    for base in &bases {
        match (&base.error, base.newer.is_empty()) {
            (Some(error), _) => {
                human.push_str(&format!("base {}: cannot check: {error}\n", base.image))
            }
            (None, true) => human.push_str(&format!(
                "base {}: no newer tag of the same form\n",
                base.image
            )),
            (None, false) => human.push_str(&format!(
                "base {}: newer tags {}\n",
                base.image,
                base.newer.join(", ")
            )),
        }
    }
    let json = json!({
        "command": "outdated",
        "spark": {
            "current": updates.current,
            "newer_patches": patches,
            "newest": newest,
            "listing": updates.listing_url,
        },
        "base_images": bases.iter().map(|base| json!({
            "image": base.image,
            "newer_tags": base.newer,
            "error": base.error,
        })).collect::<Vec<_>>(),
    });
    output::result(&config.output, &human, &json);
    Ok(())
}

/// Newer tags of the Spark and metastore base images, from their registries' tag lists.
async fn base_updates(config: &Config, reporter: Arc<dyn Reporter>) -> Vec<BaseReport> {
    let failed = |image: &str, error: &dyn std::fmt::Display| BaseReport {
        image: image.to_string(),
        newer: Vec::new(),
        error: Some(error.to_string()),
    };
    let spark_base = match open_fetcher(config, reporter).await {
        Ok(fetcher) => match fetcher.fetch(&crate::plan::spark(config)).await {
            Ok(spark) => spark_base_image(config, &fetcher, &spark)
                .await
                .map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        },
        Err(error) => Err(error.to_string()),
    };
    let mut images = vec![config.images.hive_metastore_base.clone()];
    let mut reports = Vec::new();
    match spark_base {
        Ok(image) => images.insert(0, image),
        Err(error) => reports.push(failed("(spark base image)", &error)),
    }
    images.dedup();
    let engine = match connect(config).await {
        Ok(engine) => engine,
        Err(error) => {
            reports.extend(images.iter().map(|image| failed(image, &error)));
            return reports;
        }
    };
    let options = PushOptions {
        credentials: CredentialInputs {
            flags: None,
            environment: config.push.environment_credentials.clone(),
            docker_config_dir: config.push.docker_config_dir.clone(),
        },
        registry_ca: config.push.registry_ca.clone(),
        timeout: config.network.timeout,
        ..PushOptions::default()
    };
    for image in images {
        let Some(reference) = push::split_reference(&image) else {
            reports.push(failed(&image, &"not a name:tag reference"));
            continue;
        };
        let tags = async {
            let credentials = push::credentials_for(&options, &reference.host).await?;
            let client =
                push::registry_client(&engine, &reference.host, &options, credentials).await?;
            client
                .tags(&reference.repository)
                .await
                .map_err(push::PushError::from)
        }
        .await;
        match tags {
            Ok(tags) => reports.push(BaseReport {
                newer: outdated::newer_tags(&reference.tag, &tags),
                image,
                error: None,
            }),
            Err(error) => reports.push(failed(&image, &error)),
        }
    }
    reports
}
