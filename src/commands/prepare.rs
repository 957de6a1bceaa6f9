//! `imgforge prepare` and `imgforge resolve`: from the verified Spark tarball to a patched
//! distribution ready to be a build context or to run `spark-submit` locally (see
//! [`crate::prepare`]), and what a build would use, read without unpacking anything.

use std::sync::Arc;

use serde_json::json;

use crate::assemble::S3aSelection;
use crate::cli::PrepareArgs;
use crate::config::{Config, JarsSource};
use crate::error::Error;
use crate::inspect::Log4j;
use crate::output;
use crate::prepare::{self, Outcome, PrepareOptions, PreparedTree};
use crate::progress::Reporter;
use crate::resolve::{self, Needs, Resolved};

/// Run `imgforge prepare`.
pub async fn run(
    config: &Config,
    args: &PrepareArgs,
    reporter: Arc<dyn Reporter>,
) -> Result<(), Error> {
    let options = PrepareOptions {
        out: args.out.as_deref(),
        diff: args.diff,
        force: args.force,
        certs: args.certs.as_deref(),
    };
    match prepare::prepare(config, options, reporter).await? {
        (_, Outcome::Diff(diff)) => output::result(
            &config.output,
            &diff,
            &json!({ "command": "prepare", "diff": diff }),
        ),
        (resolved, Outcome::Prepared(prepared)) => print(config, &resolved, &prepared),
    }
    Ok(())
}

/// Run `imgforge resolve`: what the distribution bundles and what will be added, read from
/// the tarball's listing without unpacking it.
pub async fn resolve(config: &Config, reporter: Arc<dyn Reporter>) -> Result<(), Error> {
    let fetcher = resolve::open_fetcher(config, Arc::clone(&reporter)).await?;
    let resolved = resolve::resolve(config, &fetcher, Needs::default(), reporter.as_ref()).await?;
    let (spark, facts, s3a) = (&resolved.spark, &resolved.facts, &resolved.s3a);
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
        "s3a": s3a_json(s3a),
    });
    output::result(&config.output, &human, &json);
    Ok(())
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
            "origin": jar.origin.to_string(),
        })).collect::<Vec<_>>(),
    })
}

fn print(config: &Config, resolved: &Resolved, prepared: &PreparedTree) {
    let facts = &resolved.facts;
    let mut human = format!(
        "prepared {}\n  Spark {} (Scala {}), Hadoop {} ({}), log4j {}\n",
        prepared.root.display(),
        facts.spark_version,
        facts.scala_version,
        facts.hadoop.version,
        facts.hadoop.evidence,
        log4j_name(facts.log4j),
    );
    for jar in &resolved.s3a.jars {
        human.push_str(&format!("  added jars/{} ({})\n", jar.file_name, jar.name));
    }
    human.push_str(&format!(
        "  wrote conf/{} and conf/spark-defaults.conf\n",
        facts.log4j.config_file()
    ));
    for file in &prepared.patched_files {
        human.push_str(&format!("  patched {file}\n"));
    }
    for cert in &resolved.certs.certs {
        human.push_str(&format!("  trusts {} ({})\n", cert.alias, cert.subject));
    }
    let json = json!({
        "command": "prepare",
        "out": prepared.root,
        "spark_tarball": resolved.spark.spec.file_name,
        "spark_version": facts.spark_version,
        "scala_version": facts.scala_version,
        "hadoop_version": facts.hadoop.version,
        "hadoop_version_source": facts.hadoop.evidence,
        "log4j_file": facts.log4j.config_file(),
        "s3a": s3a_json(&resolved.s3a),
        "patched": prepared.patched_files,
        "patch_digest": resolved.patches.digest(),
        "certificates": super::certificates_json(&resolved.certs),
    });
    output::result(&config.output, &human, &json);
}
