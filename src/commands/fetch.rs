//! `imgforge fetch [spark|hadoop|hive|jars|all]`: download and verify every input the
//! default build needs, independent artifacts in parallel.
//!
//! The Hadoop version is `[hadoop] version` when set; otherwise it is read from the Spark
//! tarball's `jars/` listing, so the Spark tarball comes first on that branch while the
//! Hive and JDBC downloads proceed alongside.

use std::sync::Arc;

use futures_util::future::{join, join_all};
use serde_json::json;

use crate::cli::FetchTarget;
use crate::config::Config;
use crate::error::Error;
use crate::fetch::{FetchError, Fetched, Fetcher};
use crate::inspect::{self, HadoopVersion};
use crate::output;
use crate::plan::{self, ArtifactSpec};
use crate::progress::Reporter;

use crate::resolve::{blocking, open_fetcher};

/// What `fetch` produced.
#[derive(Debug, Clone)]
pub struct FetchReport {
    /// The Hadoop version used, and where it came from.
    pub hadoop: Option<HadoopVersion>,
    /// Every artifact fetched or found in the cache.
    pub artifacts: Vec<Fetched>,
}

/// Run `imgforge fetch <target>`.
pub async fn run(
    config: &Config,
    target: FetchTarget,
    reporter: Arc<dyn Reporter>,
) -> Result<(), Error> {
    let fetcher = open_fetcher(config, Arc::clone(&reporter)).await?;
    let report = fetch_inputs(config, &fetcher, target, reporter.as_ref()).await?;
    print(config, &report);
    Ok(())
}

/// Fetch what `target` names; usable by later stages that need the inputs on disk.
pub async fn fetch_inputs(
    config: &Config,
    fetcher: &Fetcher,
    target: FetchTarget,
    reporter: &dyn Reporter,
) -> Result<FetchReport, Error> {
    let wants = |group: FetchTarget| target == FetchTarget::All || target == group;
    // Every fetch of a group runs to its end so that, offline, all missing artifacts are named.
    let fetch_all = |specs: Vec<ArtifactSpec>| async move {
        let results = join_all(specs.iter().map(|spec| fetcher.fetch(spec))).await;
        let (fetched, errors): (Vec<_>, Vec<_>) = results.into_iter().partition(Result::is_ok);
        match FetchError::combine(errors.into_iter().filter_map(Result::err).collect()) {
            Some(error) => Err(Error::from(error)),
            None => Ok(fetched
                .into_iter()
                .filter_map(Result::ok)
                .collect::<Vec<_>>()),
        }
    };

    let spark_and_hadoop = async {
        let needs_hadoop = wants(FetchTarget::Hadoop) || wants(FetchTarget::Jars);
        let hadoop_group = |version: &str| {
            let mut specs = Vec::new();
            if wants(FetchTarget::Hadoop) {
                specs.push(plan::hadoop(config, version));
            }
            if wants(FetchTarget::Jars) {
                specs.push(plan::hadoop_aws(version, "jar"));
                specs.push(plan::hadoop_aws(version, "pom"));
            }
            specs
        };
        let spark_spec = plan::spark(config);
        match (&config.hadoop.version, needs_hadoop) {
            (Some(version), _) => {
                let hadoop = HadoopVersion {
                    version: version.clone(),
                    evidence: "[hadoop] version".into(),
                };
                let spark = if wants(FetchTarget::Spark) {
                    vec![spark_spec]
                } else {
                    Vec::new()
                };
                let (spark, rest) = join(fetch_all(spark), fetch_all(hadoop_group(version))).await;
                let fetched = combine(vec![spark, rest])?;
                Ok::<_, Error>((Some(hadoop), fetched))
            }
            (None, true) => {
                let spark = fetcher.fetch(&spark_spec).await.map_err(Error::from)?;
                let cache = Arc::clone(fetcher.cache());
                let artifact = spark.artifact.clone();
                let limits = config.extract;
                let name = spark.spec.file_name.clone();
                let hadoop = blocking(move || {
                    let members = inspect::spark_members(&cache, &artifact, limits)?;
                    Ok(inspect::hadoop_version(
                        members.iter().map(String::as_str),
                        &name,
                    )?)
                })
                .await?;
                reporter.info(&format!(
                    "Hadoop {} is bundled in {} ({})",
                    hadoop.version, spark.spec.file_name, hadoop.evidence
                ));
                let mut fetched = vec![spark];
                fetched.extend(fetch_all(hadoop_group(&hadoop.version)).await?);
                Ok((Some(hadoop), fetched))
            }
            (None, false) if wants(FetchTarget::Spark) => {
                Ok((None, fetch_all(vec![spark_spec]).await?))
            }
            (None, false) => Ok((None, Vec::new())),
        }
    };
    let hive = fetch_all(if wants(FetchTarget::Hive) {
        vec![plan::hive_metastore(config)]
    } else {
        Vec::new()
    });
    let jdbc = fetch_all(if wants(FetchTarget::Jars) {
        vec![plan::postgresql_jdbc(config)]
    } else {
        Vec::new()
    });

    let (spark_and_hadoop, (hive, jdbc)) = join(spark_and_hadoop, join(hive, jdbc)).await;
    let (hadoop, spark_and_hadoop) = match spark_and_hadoop {
        Ok((hadoop, fetched)) => (hadoop, Ok(fetched)),
        Err(error) => (None, Err(error)),
    };
    let artifacts = combine(vec![spark_and_hadoop, hive, jdbc])?;
    Ok(FetchReport { hadoop, artifacts })
}

/// Concatenate the groups' artifacts, or fail with their combined error.
fn combine(groups: Vec<Result<Vec<Fetched>, Error>>) -> Result<Vec<Fetched>, Error> {
    let mut artifacts = Vec::new();
    let mut fetch_errors = Vec::new();
    for group in groups {
        match group {
            Ok(fetched) => artifacts.extend(fetched),
            Err(Error::Fetch(error)) => fetch_errors.push(error),
            Err(other) => return Err(other),
        }
    }
    match FetchError::combine(fetch_errors) {
        Some(error) => Err(error.into()),
        None => Ok(artifacts),
    }
}

fn print(config: &Config, report: &FetchReport) {
    let mut human = String::new();
    for fetched in &report.artifacts {
        let entry = &fetched.artifact.entry;
        human.push_str(&format!(
            "{:<16} {:<48} {:>10}  sha512:{}…{}\n",
            fetched.spec.role,
            fetched.spec.file_name,
            crate::progress::bytes(entry.size),
            &entry.sha512[..16],
            if fetched.cached { "  (cached)" } else { "" }
        ));
    }
    let json = json!({
        "command": "fetch",
        "hadoop_version": report.hadoop.as_ref().map(|hadoop| &hadoop.version),
        "hadoop_version_source": report.hadoop.as_ref().map(|hadoop| &hadoop.evidence),
        "artifacts": report.artifacts.iter().map(|fetched| json!({
            "role": fetched.spec.role,
            "file_name": fetched.spec.file_name,
            "url": crate::redact::strip_url_text(&fetched.artifact.entry.url),
            "path": fetched.artifact.path,
            "sha512": fetched.artifact.entry.sha512,
            "verified_with": fetched.artifact.entry.verified_with,
            "size": fetched.artifact.entry.size,
            "cached": fetched.cached,
        })).collect::<Vec<_>>(),
    });
    output::result(&config.output, &human, &json);
}
