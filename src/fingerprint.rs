//! What identifies a build's inputs. Input fingerprints: a SHA-256 over everything that goes into an image — artifact
//! digests, patches, Dockerfiles, certificates, the configuration that shapes the build and
//! the imgforge version — computed from the [`Resolved`] inputs alone.
//!
//! An image's fingerprint is recorded in its `imgforge.inputs.sha256` label so a later run
//! can tell whether it needs rebuilding without building it; a prepared tree's is recorded
//! in its marker file. And the lock (`imgforge.lock`): the same resolution written out for
//! review — versions, every artifact's URL and SHA-512, the base images' IDs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use crate::assemble::{self, JarOrigin, S3aSelection};
use crate::certs::CaSet;
use crate::config::Config;
use crate::error::Error;
use crate::fetch::{Fetched, Fetcher};
use crate::images::{ImageData, ImageKind};
use crate::lock::{LOCK_VERSION, Lock, LockedArtifact, LockedVersions};
use crate::progress::Reporter;
use crate::resolve::{self, BaseImages, Needs, Resolved};

/// Accumulates the inputs of one image into a SHA-256, each as a named field so that two
/// different input sets cannot produce the same byte stream.
#[derive(Clone)]
pub struct Fingerprint {
    hasher: Sha256,
}

impl Fingerprint {
    /// A fingerprint that already covers the imgforge version.
    pub fn new(image: ImageKind) -> Self {
        let mut fingerprint = Fingerprint {
            hasher: Sha256::new(),
        };
        fingerprint.add("imgforge.version", env!("CARGO_PKG_VERSION").as_bytes());
        fingerprint.add("image", image.label().as_bytes());
        fingerprint
    }

    /// Add one named input.
    pub fn add(&mut self, name: &str, value: &[u8]) -> &mut Self {
        // Length-prefixed fields: no concatenation of names and values is ambiguous.
        for part in [name.as_bytes(), value] {
            self.hasher.update((part.len() as u64).to_be_bytes());
            self.hasher.update(part);
        }
        self
    }

    /// Add every file of an image definition.
    pub fn add_definition(&mut self, data: &ImageData) -> &mut Self {
        self.add("Dockerfile", data.dockerfile.as_bytes());
        self.add(".dockerignore", data.dockerignore.as_bytes());
        for (name, text) in &data.scripts {
            self.add(name, text.as_bytes());
        }
        self
    }

    /// The hex digest.
    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// The fingerprint of an image definition alone (the lock records it).
pub fn definition(kind: ImageKind, data: &ImageData) -> String {
    let mut fingerprint = Fingerprint::new(kind);
    fingerprint.add_definition(data);
    fingerprint.finish()
}

/// The fingerprint of every image `resolved` has the inputs of: spark and spark-hs always,
/// hive-metastore when its inputs were resolved.
pub fn images(
    config: &Config,
    resolved: &Resolved,
    bases: &BaseImages,
) -> BTreeMap<ImageKind, String> {
    let spark = spark(config, resolved, bases);
    let spark_hs = spark_hs(config, resolved, &spark);
    let mut fingerprints =
        BTreeMap::from([(ImageKind::Spark, spark), (ImageKind::SparkHs, spark_hs)]);
    if resolved.hive.is_some() {
        fingerprints.insert(
            ImageKind::HiveMetastore,
            hive_metastore(config, resolved, bases),
        );
    }
    fingerprints
}

/// Everything that goes into the Spark image.
fn spark(config: &Config, resolved: &Resolved, bases: &BaseImages) -> String {
    let mut fingerprint = Fingerprint::new(ImageKind::Spark);
    fingerprint.add("spark", resolved.spark.artifact.entry.sha512.as_bytes());
    add_s3a(&mut fingerprint, &resolved.s3a);
    add_certs(&mut fingerprint, &resolved.certs);
    fingerprint.add("patches", resolved.patches.digest().as_bytes());
    fingerprint.add(
        "spark-defaults.conf",
        assemble::spark_defaults(config).as_bytes(),
    );
    if let Some(text) = &resolved.log4j_file {
        fingerprint.add("log4j_file", text.as_bytes());
    }
    fingerprint.add(
        "base",
        config
            .spark_image
            .base
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
    );
    fingerprint.add("base_id", bases.spark.id.as_bytes());
    fingerprint.add(
        "java_image_tag",
        config.spark_image.java_image_tag.as_bytes(),
    );
    fingerprint.add(
        "java_major",
        config.spark_image.java_major.to_string().as_bytes(),
    );
    fingerprint.add("spark_uid", config.images.spark_uid.to_string().as_bytes());
    fingerprint.add(
        "disable_cert_checking",
        config.s3a.disable_cert_checking.to_string().as_bytes(),
    );
    fingerprint.finish()
}

/// The spark-hs fingerprint: the spark image's, its own definition and settings.
fn spark_hs(config: &Config, resolved: &Resolved, spark_fingerprint: &str) -> String {
    let mut fingerprint = Fingerprint::new(ImageKind::SparkHs);
    fingerprint.add("spark", spark_fingerprint.as_bytes());
    fingerprint.add_definition(&resolved.spark_hs);
    fingerprint.add(
        "spark-defaults.conf",
        assemble::history_server_defaults(config).as_bytes(),
    );
    fingerprint.add("spark_uid", config.images.spark_uid.to_string().as_bytes());
    fingerprint.finish()
}

/// The hive-metastore fingerprint: its three tarballs, the S3A jars, the certificates, its
/// definition and base image.
fn hive_metastore(config: &Config, resolved: &Resolved, bases: &BaseImages) -> String {
    let mut fingerprint = Fingerprint::new(ImageKind::HiveMetastore);
    if let Some(hive) = &resolved.hive {
        for fetched in [&hive.metastore, &hive.hadoop, &hive.jdbc] {
            fingerprint.add(fetched.spec.role, fetched.artifact.entry.sha512.as_bytes());
        }
    }
    add_s3a(&mut fingerprint, &resolved.s3a);
    add_certs(&mut fingerprint, &resolved.certs);
    if let Some(hive) = &resolved.hive {
        fingerprint.add_definition(&hive.data);
    }
    fingerprint.add("base", bases.hive_metastore.reference.as_bytes());
    fingerprint.add("base_id", bases.hive_metastore.id.as_bytes());
    fingerprint.add(
        "debug_sudo",
        config
            .images
            .hive_metastore_debug_sudo
            .to_string()
            .as_bytes(),
    );
    fingerprint.finish()
}

/// The fingerprint of what a prepared tree was made from, recorded in its marker: the
/// tarball, the patches, the added jars, the certificates and the written `texts`.
pub fn tree(resolved: &Resolved, texts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    let mut add = |part: &[u8]| {
        // Length-prefixed, so no two different input lists hash alike.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    };
    add(env!("CARGO_PKG_VERSION").as_bytes());
    add(resolved.spark.artifact.entry.sha512.as_bytes());
    add(resolved.patches.digest().as_bytes());
    for jar in &resolved.s3a.jars {
        add(jar.file_name.as_bytes());
    }
    for cert in &resolved.certs.certs {
        add(cert.alias.as_bytes());
        add(cert.sha256_fingerprint.as_bytes());
    }
    for text in texts {
        add(text.as_bytes());
    }
    hex::encode(hasher.finalize())
}

fn add_s3a(fingerprint: &mut Fingerprint, s3a: &S3aSelection) {
    for jar in &s3a.jars {
        let origin = match &jar.origin {
            JarOrigin::Maven(spec) => spec.path.clone(),
            JarOrigin::HadoopDist { member } => member.clone(),
        };
        fingerprint.add("jar", format!("{} {origin}", jar.name).as_bytes());
    }
    if let Some(hadoop) = &s3a.hadoop_dist {
        fingerprint.add("hadoop-dist", hadoop.artifact.entry.sha512.as_bytes());
    }
}

fn add_certs(fingerprint: &mut Fingerprint, certs: &CaSet) {
    for cert in &certs.certs {
        fingerprint.add(
            "cert",
            format!("{} {}", cert.alias, cert.sha256_fingerprint).as_bytes(),
        );
    }
}

/// The lock of a resolution: versions, every artifact with its URL and SHA-512 (the
/// Maven S3A jars are fetched for theirs), the base images' IDs and the digests of
/// imgforge's own inputs. Needs the hive inputs and the base images.
pub async fn lock(resolved: &Resolved, config: &Config, fetcher: &Fetcher) -> Result<Lock, Error> {
    let (Some(hive), Some(bases)) = (&resolved.hive, &resolved.bases) else {
        return Err(Error::Runtime(
            "a lock needs the hive-metastore inputs and the base images resolved".into(),
        ));
    };
    let jars = resolved.s3a.fetch_maven_jars(fetcher).await?;
    let mut artifacts: Vec<LockedArtifact> =
        [&resolved.spark, &hive.metastore, &hive.hadoop, &hive.jdbc]
            .into_iter()
            .chain(jars.iter())
            .map(locked)
            .collect();
    artifacts.sort_by(|a, b| (&a.role, &a.file).cmp(&(&b.role, &b.file)));
    artifacts.dedup();
    let base_images = BTreeMap::from([
        (bases.spark.reference.clone(), bases.spark.id.clone()),
        (
            bases.hive_metastore.reference.clone(),
            bases.hive_metastore.id.clone(),
        ),
    ]);
    let mut inputs = BTreeMap::from([("patches".to_string(), resolved.patches.digest())]);
    for (kind, data) in [
        (ImageKind::SparkHs, &resolved.spark_hs),
        (ImageKind::HiveMetastore, &hive.data),
    ] {
        inputs.insert(
            format!("dockerfiles/{}", kind.label()),
            definition(kind, data),
        );
    }
    Ok(Lock {
        lock_version: LOCK_VERSION,
        imgforge: env!("CARGO_PKG_VERSION").to_string(),
        versions: LockedVersions {
            spark: resolved.facts.spark_version.clone(),
            spark_package: config.spark.package.clone(),
            scala: resolved.facts.scala_version.clone(),
            hadoop: resolved.facts.hadoop.version.clone(),
            hadoop_aws: resolved.s3a.hadoop_aws_version.clone(),
            aws_sdk: resolved.s3a.sdk_version.clone(),
            hive_metastore: config.hive.metastore_version.clone(),
            postgresql_jdbc: config.hive.postgresql_jdbc_version.clone(),
        },
        base_images,
        inputs,
        artifacts,
    })
}

/// `imgforge lock`: resolve everything a full build uses (fetching what the cache lacks) and
/// write it to the lock file next to the configuration. Returns where, and what.
pub async fn write_lock(
    config: &Config,
    reporter: Arc<dyn Reporter>,
) -> Result<(PathBuf, Lock), Error> {
    let engine = resolve::connect(config).await?;
    let fetcher = resolve::open_fetcher(config, Arc::clone(&reporter)).await?;
    let puller = crate::pull::Puller::new(
        &engine,
        config.images.pull,
        crate::pull::PullAccess::new(config, None),
    );
    let needs = Needs {
        hive: true,
        puller: Some(&puller),
        certs_dir: None,
    };
    let resolved = resolve::resolve(config, &fetcher, needs, reporter.as_ref()).await?;
    let lock = lock(&resolved, config, &fetcher).await?;
    let path = crate::lock::lock_path(config.config_file.as_deref());
    lock.write(&path)?;
    Ok((path, lock))
}

fn locked(fetched: &Fetched) -> LockedArtifact {
    LockedArtifact {
        role: fetched.spec.role.to_string(),
        file: fetched.spec.file_name.clone(),
        url: crate::redact::strip_url_text(&fetched.artifact.entry.url),
        sha512: fetched.artifact.entry.sha512.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_separate_fields() {
        let mut a = Fingerprint::new(ImageKind::Spark);
        a.add("ab", b"c");
        let mut b = Fingerprint::new(ImageKind::Spark);
        b.add("a", b"bc");
        assert_ne!(a.finish(), b.finish());
        assert_ne!(
            Fingerprint::new(ImageKind::Spark).finish(),
            Fingerprint::new(ImageKind::SparkHs).finish()
        );
    }
}
