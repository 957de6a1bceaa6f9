//! `imgforge cache path|ls|verify|clean`.

use std::sync::Arc;

use serde_json::json;

use crate::cache;
use crate::cli::CacheAction;
use crate::config::Config;
use crate::error::Error;
use crate::output;
use crate::progress::{Phase, Reporter};

use super::Failure;

use crate::resolve::{blocking, open_cache};

/// Run `imgforge cache <action>`.
pub async fn run(
    config: &Config,
    action: CacheAction,
    reporter: Arc<dyn Reporter>,
) -> Result<(), Failure> {
    match action {
        CacheAction::Path => {
            let root = config.cache_dir.display().to_string();
            output::result(
                &config.output,
                &root,
                &json!({ "command": "cache path", "path": root }),
            );
        }
        CacheAction::Ls => list(config).await?,
        CacheAction::Verify => verify(config, reporter).await?,
        CacheAction::Clean => clean(config, reporter).await?,
    }
    Ok(())
}

async fn list(config: &Config) -> Result<(), Error> {
    let cache = open_cache(config).await?;
    let entries = blocking(move || cache.entries().map_err(Error::from)).await?;
    let mut human = String::new();
    for artifact in &entries {
        let entry = &artifact.entry;
        human.push_str(&format!(
            "{:<10} sha512:{}…  {}\n",
            crate::progress::bytes(entry.size),
            &entry.sha512[..16],
            entry.key
        ));
    }
    let total: u64 = entries.iter().map(|artifact| artifact.entry.size).sum();
    human.push_str(&format!(
        "{} artifact(s), {}\n",
        entries.len(),
        crate::progress::bytes(total)
    ));
    let json = json!({
        "command": "cache ls",
        "artifacts": entries.iter().map(|artifact| json!({
            "key": artifact.entry.key,
            "file_name": artifact.entry.file_name,
            "sha512": artifact.entry.sha512,
            "size": artifact.entry.size,
            "url": crate::redact::strip_url_text(&artifact.entry.url),
            "verified_with": artifact.entry.verified_with,
            "path": artifact.path,
        })).collect::<Vec<_>>(),
    });
    output::result(&config.output, &human, &json);
    Ok(())
}

async fn verify(config: &Config, reporter: Arc<dyn Reporter>) -> Result<(), Failure> {
    let cache = Arc::new(open_cache(config).await?);
    let entries = {
        let cache = Arc::clone(&cache);
        blocking(move || cache.recorded().map_err(Error::from)).await?
    };
    let mut damaged = Vec::new();
    let mut checked = Vec::new();
    for artifact in entries {
        let task = reporter.task(&artifact.entry.file_name);
        reporter.phase(task, Phase::Verifying);
        let cache = Arc::clone(&cache);
        let (artifact, mismatch) = blocking(move || {
            let mismatch = cache.rehash(&artifact)?;
            if mismatch.is_some() {
                cache.remove(&artifact)?;
            }
            Ok((artifact, mismatch))
        })
        .await?;
        match &mismatch {
            None => reporter.phase(
                task,
                Phase::Done {
                    detail: "ok".into(),
                },
            ),
            Some(actual) => {
                reporter.phase(task, Phase::Failed);
                reporter.warn(&format!(
                    "{} is damaged: expected sha512:{}, {actual}; removed",
                    artifact.entry.key, artifact.entry.sha512
                ));
                damaged.push(artifact.entry.key.clone());
            }
        }
        checked.push(json!({ "key": artifact.entry.key, "ok": mismatch.is_none() }));
    }
    let human = format!(
        "{} artifact(s) verified, {} damaged\n",
        checked.len(),
        damaged.len()
    );
    if damaged.is_empty() {
        output::result(
            &config.output,
            &human,
            &json!({ "command": "cache verify", "artifacts": checked }),
        );
        return Ok(());
    }
    // With --json the failure's document carries the report: one document per run.
    if !config.output.json {
        output::result(&config.output, &human, &serde_json::Value::Null);
    }
    Err(Failure {
        error: Error::DamagedCache {
            count: damaged.len(),
        },
        partial: serde_json::Map::from_iter([("artifacts".to_string(), json!(checked))]),
    })
}

async fn clean(config: &Config, reporter: Arc<dyn Reporter>) -> Result<(), Error> {
    let root = config.cache_dir.clone();
    let waiting_reporter = Arc::clone(&reporter);
    let report = blocking(move || {
        cache::clean(&root, || {
            waiting_reporter.info("waiting for other imgforge processes to release the cache")
        })
        .map_err(Error::from)
    })
    .await?;
    let human = format!(
        "removed {} file(s), {}\n",
        report.files,
        crate::progress::bytes(report.bytes)
    );
    output::result(
        &config.output,
        &human,
        &json!({ "command": "cache clean", "files": report.files, "bytes": report.bytes }),
    );
    Ok(())
}
