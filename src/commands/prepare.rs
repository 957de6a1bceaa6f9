//! `imgforge prepare` and `imgforge resolve`: from the verified Spark tarball to a patched
//! distribution ready to be a build context or to run `spark-submit` locally.
//!
//! The order keeps every check ahead of every write: certificates are checked first, the
//! tarball is unpacked into a staged copy beside the output, versions are read from that
//! tree, and only a fully assembled and patched tree replaces the output, by one rename.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::json;
use similar::TextDiff;

use crate::assemble::{self, JarOrigin, S3aSelection};
use crate::certs::CaSet;
use crate::cli::PrepareArgs;
use crate::config::{Config, JarsSource};
use crate::error::Error;
use crate::extract;
use crate::fetch::{Fetched, Fetcher};
use crate::inspect::{self, DistributionFacts, Log4j};
use crate::output;
use crate::plan;
use crate::progress::Reporter;

use super::{blocking, open_fetcher};

/// A prepared distribution on disk.
#[derive(Debug, Clone)]
pub struct PreparedTree {
    /// Its root.
    pub root: PathBuf,
    /// The Spark tarball it came from.
    pub spark: Fetched,
    /// What the distribution is.
    pub facts: DistributionFacts,
    /// The S3A jars added to `jars/`.
    pub s3a: S3aSelection,
    /// The CA certificates imported by the Dockerfile.
    pub certs: CaSet,
    /// SHA-256 of the patch set applied.
    pub patch_digest: String,
    /// Files the patches changed.
    pub patched_files: Vec<String>,
}

/// The default output folder: `./build/spark-<version>-bin-<package>`.
pub fn default_out(config: &Config) -> PathBuf {
    Path::new("build").join(format!(
        "spark-{}-bin-{}",
        config.spark.version, config.spark.package
    ))
}

/// Run `imgforge prepare`.
pub async fn run(
    config: &Config,
    args: &PrepareArgs,
    reporter: Arc<dyn Reporter>,
) -> Result<Option<PreparedTree>, Error> {
    let certs = super::certs::load(config, args.certs.as_deref(), reporter.as_ref())?;
    let out = args.out.clone().unwrap_or_else(|| default_out(config));
    let fetcher = open_fetcher(config, Arc::clone(&reporter)).await?;
    match prepare(config, &fetcher, &out, certs, args.diff, reporter.as_ref()).await? {
        Outcome::Diff(diff) => {
            output::result(
                &config.output,
                &diff,
                &json!({ "command": "prepare", "diff": diff }),
            );
            Ok(None)
        }
        Outcome::Prepared(prepared) => {
            print(config, &prepared);
            Ok(Some(*prepared))
        }
    }
}

/// What `prepare` produced: a tree, or with `--diff` the changes it would make.
pub enum Outcome {
    /// The tree was written.
    Prepared(Box<PreparedTree>),
    /// Nothing was written; this is the unified diff of every change.
    Diff(String),
}

/// Prepare the distribution into `out` (or only describe the changes, with `diff_only`).
pub async fn prepare(
    config: &Config,
    fetcher: &Fetcher,
    out: &Path,
    certs: CaSet,
    diff_only: bool,
    reporter: &dyn Reporter,
) -> Result<Outcome, Error> {
    let spark = fetcher.fetch(&plan::spark(config)).await?;
    let staged = {
        let archive = spark.artifact.path.clone();
        let out = out.to_path_buf();
        blocking(move || extract::unpack_staged(&archive, &out).map_err(Error::from)).await?
    };
    let tree = staged.path().to_path_buf();
    let facts = {
        let tree = tree.clone();
        let source_name = spark.spec.file_name.clone();
        blocking(move || inspect::tree_facts(&tree, &source_name).map_err(Error::from)).await?
    };
    let present = jar_names(&tree)?;
    let install_into = (!diff_only).then_some(tree.as_path());
    let s3a = assemble::select_s3a_jars(config, fetcher, &facts, &present, install_into).await?;
    if !diff_only {
        assemble::add_jars(fetcher, &s3a, &tree).await?;
    }
    let log4j_text = assemble::log4j_config(config, &tree, facts.log4j)?;
    let log4j_path = format!("conf/{}", facts.log4j.config_file());
    let defaults_text = assemble::spark_defaults(config);
    let previous_defaults =
        std::fs::read_to_string(tree.join("conf/spark-defaults.conf")).unwrap_or_default();
    assemble::write_text(&tree, &log4j_path, &log4j_text)?;
    assemble::write_text(&tree, "conf/spark-defaults.conf", &defaults_text)?;
    let imports = assemble::write_certs(&tree, &certs.certs)?;
    assemble::write_cert_import(&tree, &imports)?;
    let (patches, patch_digest) = assemble::plan_tree_patches(config, &tree, &facts, imports)?;
    for warning in patches.warnings() {
        reporter.warn(warning);
    }

    if diff_only {
        let mut diff = patches.unified_diff();
        if config.spark.log4j_file.is_some() {
            diff.push_str(&new_file_diff(&log4j_path, "", &log4j_text));
        } else {
            diff.push_str(&format!(
                "new file {log4j_path} (copy of {})\n",
                facts.log4j.template()
            ));
        }
        diff.push_str(&new_file_diff(
            "conf/spark-defaults.conf",
            &previous_defaults,
            &defaults_text,
        ));
        for cert in &certs.certs {
            diff.push_str(&format!(
                "new file certs/{}.crt ({}, from {})\n",
                cert.alias,
                cert.subject,
                cert.path.display()
            ));
        }
        for jar in &s3a.jars {
            diff.push_str(&format!(
                "new file jars/{} ({}, {})\n",
                jar.file_name,
                jar.name,
                origin_text(&jar.origin)
            ));
        }
        return Ok(Outcome::Diff(diff));
    }

    patches.write()?;
    let patched_files = patches.changed_files().map(str::to_string).collect();
    blocking(move || staged.commit().map(|_| ()).map_err(Error::from)).await?;
    Ok(Outcome::Prepared(Box::new(PreparedTree {
        root: out.to_path_buf(),
        spark,
        facts,
        s3a,
        certs,
        patch_digest,
        patched_files,
    })))
}

/// Run `imgforge resolve`: what the distribution bundles and what will be added, read from
/// the tarball's listing without unpacking it.
pub async fn resolve(config: &Config, reporter: Arc<dyn Reporter>) -> Result<(), Error> {
    let fetcher = open_fetcher(config, reporter).await?;
    let (spark, members, facts) = super::spark_listing(config, &fetcher).await?;
    let present: BTreeSet<String> = members
        .iter()
        .filter_map(|member| member.strip_prefix("jars/"))
        .map(str::to_string)
        .collect();
    let s3a = assemble::select_s3a_jars(config, &fetcher, &facts, &present, None).await?;

    let mut human = format!(
        "{}\n  Spark {} (Scala {})\n  Hadoop {} ({})\n  log4j {} → conf/{}\nwill add to jars/ (from {}):\n",
        spark.spec.file_name,
        facts.spark_version,
        facts.scala_version,
        facts.hadoop.version,
        facts.hadoop.evidence,
        log4j_name(facts.log4j),
        facts.log4j.config_file(),
        source_name(s3a.source),
    );
    for jar in &s3a.jars {
        human.push_str(&format!("  {:<48} {}\n", jar.file_name, jar.name));
    }
    let json = json!({
        "command": "resolve",
        "spark_tarball": spark.spec.file_name,
        "spark_version": facts.spark_version,
        "scala_version": facts.scala_version,
        "hadoop_version": facts.hadoop.version,
        "hadoop_version_source": facts.hadoop.evidence,
        "log4j": log4j_name(facts.log4j),
        "log4j_file": facts.log4j.config_file(),
        "s3a": s3a_json(&s3a),
    });
    output::result(&config.output, &human, &json);
    Ok(())
}

fn jar_names(tree: &Path) -> Result<BTreeSet<String>, Error> {
    let jars = tree.join("jars");
    let listing = std::fs::read_dir(&jars).map_err(|source| inspect::InspectError::Tree {
        path: jars.clone(),
        source,
    })?;
    Ok(listing
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect())
}

fn new_file_diff(path: &str, old: &str, new: &str) -> String {
    let old_name = if old.is_empty() {
        "/dev/null".to_string()
    } else {
        format!("a/{path}")
    };
    TextDiff::from_lines(old, new)
        .unified_diff()
        .header(&old_name, &format!("b/{path}"))
        .to_string()
}

fn origin_text(origin: &JarOrigin) -> String {
    match origin {
        JarOrigin::Maven(spec) => format!("Maven {}", spec.path),
        JarOrigin::HadoopDist { member } => format!("Hadoop tarball {member}"),
    }
}

fn log4j_name(log4j: Log4j) -> &'static str {
    match log4j {
        Log4j::V1 => "1",
        Log4j::V2 => "2",
    }
}

fn source_name(source: JarsSource) -> &'static str {
    match source {
        JarsSource::Maven => "maven",
        JarsSource::HadoopDist => "hadoop-dist",
    }
}

fn s3a_json(s3a: &S3aSelection) -> serde_json::Value {
    json!({
        "source": source_name(s3a.source),
        "hadoop_aws_version": s3a.hadoop_aws_version,
        "sdk_version": s3a.sdk_version,
        "jars": s3a.jars.iter().map(|jar| json!({
            "name": jar.name,
            "file_name": jar.file_name,
            "origin": origin_text(&jar.origin),
        })).collect::<Vec<_>>(),
    })
}

fn print(config: &Config, prepared: &PreparedTree) {
    let facts = &prepared.facts;
    let mut human = format!(
        "prepared {}\n  Spark {} (Scala {}), Hadoop {} ({}), log4j {}\n",
        prepared.root.display(),
        facts.spark_version,
        facts.scala_version,
        facts.hadoop.version,
        facts.hadoop.evidence,
        log4j_name(facts.log4j),
    );
    for jar in &prepared.s3a.jars {
        human.push_str(&format!("  added jars/{} ({})\n", jar.file_name, jar.name));
    }
    human.push_str(&format!(
        "  wrote conf/{} and conf/spark-defaults.conf\n",
        facts.log4j.config_file()
    ));
    for file in &prepared.patched_files {
        human.push_str(&format!("  patched {file}\n"));
    }
    for cert in &prepared.certs.certs {
        human.push_str(&format!("  trusts {} ({})\n", cert.alias, cert.subject));
    }
    let json = json!({
        "command": "prepare",
        "out": prepared.root,
        "spark_tarball": prepared.spark.spec.file_name,
        "spark_version": facts.spark_version,
        "scala_version": facts.scala_version,
        "hadoop_version": facts.hadoop.version,
        "hadoop_version_source": facts.hadoop.evidence,
        "log4j_file": facts.log4j.config_file(),
        "s3a": s3a_json(&prepared.s3a),
        "patched": prepared.patched_files,
        "patch_digest": prepared.patch_digest,
        "certificates": super::certs::certificates_json(&prepared.certs),
    });
    output::result(&config.output, &human, &json);
}
