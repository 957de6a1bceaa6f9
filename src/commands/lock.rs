//! `imgforge lock` and `build --locked`: resolve everything a build uses — versions, every
//! artifact's URL and SHA-512, the base images' digests, the digests of the patch set and the
//! image definitions — into `imgforge.lock`, and refuse a build that would differ from it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::try_join_all;
use serde_json::json;

use crate::assemble::JarOrigin;
use crate::config::Config;
use crate::docker::Engine;
use crate::error::Error;
use crate::fetch::{Fetched, Fetcher};
use crate::images::{ImageData, ImageKind};
use crate::lock::{LOCK_FILE, LOCK_VERSION, Lock, LockError, LockedArtifact, LockedVersions};
use crate::output;
use crate::progress::Reporter;

use super::build::{
    HiveInputs, base_image_id, connect, listed_inputs, patch_set, spark_base_image,
};
use super::open_fetcher;

/// Where the lock lives: next to the configuration file, else in the working directory.
pub fn lock_path(config: &Config) -> PathBuf {
    config
        .config_file
        .as_ref()
        .and_then(|file| file.parent())
        .filter(|dir| !dir.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from(LOCK_FILE), |dir| dir.join(LOCK_FILE))
}

/// Run `imgforge lock`: resolve and write the lock.
pub async fn run(config: &Config, reporter: Arc<dyn Reporter>) -> Result<(), Error> {
    let engine = connect(config).await?;
    let fetcher = open_fetcher(config, reporter).await?;
    let lock = resolve(config, &fetcher, &engine).await?;
    let path = lock_path(config);
    lock.write(&path)?;
    let human = format!(
        "wrote {}: Spark {} (Hadoop {}, hadoop-aws {}, SDK {}), {} artifacts, {} base images\n",
        path.display(),
        lock.versions.spark,
        lock.versions.hadoop,
        lock.versions.hadoop_aws,
        lock.versions.aws_sdk,
        lock.artifacts.len(),
        lock.base_images.len()
    );
    output::result(
        &config.output,
        &human,
        &json!({ "command": "lock", "path": path, "lock": lock }),
    );
    Ok(())
}

/// `build --locked`: fail, listing each difference, unless resolving now gives the lock.
pub async fn check(config: &Config, fetcher: &Fetcher, engine: &Engine) -> Result<(), Error> {
    let path = lock_path(config);
    let locked = Lock::read(&path)?;
    let now = resolve(config, fetcher, engine).await?;
    let differences = locked.differences(&now);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(LockError::Differs { path, differences }.into())
    }
}

/// Resolve everything a full build uses (fetching what the cache lacks).
pub async fn resolve(config: &Config, fetcher: &Fetcher, engine: &Engine) -> Result<Lock, Error> {
    let (spark, facts, s3a) = listed_inputs(config, fetcher).await?;
    let hive = HiveInputs::fetch(config, fetcher, &facts, engine).await?;
    let maven_jars: Vec<_> = s3a
        .jars
        .iter()
        .filter_map(|jar| match &jar.origin {
            JarOrigin::Maven(spec) => Some(spec.clone()),
            JarOrigin::HadoopDist { .. } => None,
        })
        .collect();
    let jars = try_join_all(maven_jars.iter().map(|spec| fetcher.fetch(spec))).await?;

    let mut artifacts: Vec<LockedArtifact> = [&spark, &hive.metastore, &hive.hadoop, &hive.jdbc]
        .into_iter()
        .chain(jars.iter())
        .map(locked)
        .collect();
    artifacts.sort_by(|a, b| (&a.role, &a.file).cmp(&(&b.role, &b.file)));
    artifacts.dedup();

    let spark_base = spark_base_image(config, fetcher, &spark).await?;
    let base_images = BTreeMap::from([
        (
            spark_base.clone(),
            base_image_id(engine, &spark_base).await?,
        ),
        (
            config.images.hive_metastore_base.clone(),
            hive.base_id.clone(),
        ),
    ]);
    let mut inputs = BTreeMap::from([("patches".to_string(), patch_set(config)?.digest())]);
    for kind in [ImageKind::SparkHs, ImageKind::HiveMetastore] {
        let data = ImageData::load(kind, config.images.dockerfiles.as_deref())?;
        let mut fingerprint = crate::images::Fingerprint::new(kind);
        data.fingerprint_into(&mut fingerprint);
        inputs.insert(
            format!("dockerfiles/{}", kind.label()),
            fingerprint.finish(),
        );
    }
    Ok(Lock {
        lock_version: LOCK_VERSION,
        imgforge: env!("CARGO_PKG_VERSION").to_string(),
        versions: LockedVersions {
            spark: facts.spark_version.clone(),
            spark_package: config.spark.package.clone(),
            scala: facts.scala_version.clone(),
            hadoop: facts.hadoop.version.clone(),
            hadoop_aws: s3a.hadoop_aws_version.clone(),
            aws_sdk: s3a.sdk_version.clone(),
            hive_metastore: config.hive.metastore_version.clone(),
            postgresql_jdbc: config.hive.postgresql_jdbc_version.clone(),
        },
        base_images,
        inputs,
        artifacts,
    })
}

fn locked(fetched: &Fetched) -> LockedArtifact {
    LockedArtifact {
        role: fetched.spec.role.to_string(),
        file: fetched.spec.file_name.clone(),
        url: crate::redact::strip_url_text(&fetched.artifact.entry.url),
        sha512: fetched.artifact.entry.sha512.clone(),
    }
}
