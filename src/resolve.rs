//! `resolve`: every fact a run needs, computed once and handed to every stage after it (and
//! `imgforge fetch`, which only downloads and verifies the inputs).
//!
//! From the configuration and the cache (downloading only what is missing), [`resolve`]
//! works out what the Spark tarball is (Spark, Scala, Hadoop, log4j — read from its cached
//! listing, not unpacked), which S3A jars make it talk to S3, the CA certificates and
//! patches to apply, the image definitions, the names every image gets, and — when the run
//! builds or locks — the Hive metastore inputs and the base images with their engine IDs.
//! `prepare`, `build`, `push`, `lock`, `outdated` and `--if-changed` consume the
//! [`Resolved`] value; none of them works a fact out again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use futures_util::future::{join, join_all, try_join3};

use crate::assemble::{self, S3aSelection};
use crate::cache::Cache;
use crate::certs::{self, CaSet};
use crate::cli::FetchTarget;
use crate::config::Config;
use crate::docker::{self, Engine, EngineEndpoint};
use crate::error::Error;
use crate::fetch::{FetchError, Fetched, Fetcher};
use crate::images::{self, ImageData, ImageKind, Versions};
use crate::inspect::{self, DistributionFacts, HadoopVersion};
use crate::patch::PatchSet;
use crate::plan::{self, ArtifactSpec};
use crate::progress::Reporter;
use crate::pull::Puller;

/// The folder looked for when neither `--certs` nor `[certs] dir` names one.
pub const DEFAULT_CERTS_DIR: &str = "certs";

/// What a run asks [`resolve`] for beyond the facts every run needs.
#[derive(Clone, Copy, Default)]
pub struct Needs<'a> {
    /// The hive-metastore inputs (its three tarballs, fetched through the cache).
    pub hive: bool,
    /// The base images, made present on the puller's engine (pulled as its policy says), and
    /// their IDs there (for fingerprints and the lock).
    pub puller: Option<&'a Puller<'a>>,
    /// `prepare --certs`: the certificate folder named on the command line.
    pub certs_dir: Option<&'a Path>,
}

/// Everything a run needs, resolved once.
pub struct Resolved {
    /// The Spark tarball, verified in the cache.
    pub spark: Fetched,
    /// What the distribution is, read from its listing.
    pub facts: DistributionFacts,
    /// The S3A jars for its Hadoop.
    pub s3a: S3aSelection,
    /// The CA certificates the images trust.
    pub certs: CaSet,
    /// The patch set (built-in plus the user's directory).
    pub patches: PatchSet,
    /// The content of `[spark] log4j_file`, when one is configured.
    pub log4j_file: Option<String>,
    /// The spark-hs image definition.
    pub spark_hs: ImageData,
    /// The hive-metastore inputs, when asked for.
    pub hive: Option<HiveInputs>,
    /// The base images, when an engine was given.
    pub bases: Option<BaseImages>,
    /// The versions that name and label the images.
    pub versions: Versions,
    /// Every image's full references, the first one the image is looked up by.
    pub references: BTreeMap<ImageKind, Vec<String>>,
}

/// The hive-metastore image's inputs.
pub struct HiveInputs {
    /// The standalone metastore tarball.
    pub metastore: Fetched,
    /// The Hadoop tarball of the version Spark bundles.
    pub hadoop: Fetched,
    /// The PostgreSQL JDBC driver.
    pub jdbc: Fetched,
    /// Dockerfile, `.dockerignore` and scripts.
    pub data: ImageData,
}

/// One base image: the reference an image is built `FROM`, and its ID on the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// The reference.
    pub reference: String,
    /// The engine's image ID (the image is pulled first when missing, as the pull policy
    /// allows): a new build of the same tag (security fixes) changes the fingerprint of every
    /// image on it.
    pub id: String,
}

/// The base images of the images imgforge builds.
#[derive(Debug, Clone)]
pub struct BaseImages {
    /// What the Spark image is built on.
    pub spark: BaseImage,
    /// What the hive-metastore image is built on.
    pub hive_metastore: BaseImage,
}

/// Resolve everything a run needs (fetching what the cache lacks).
pub async fn resolve(
    config: &Config,
    fetcher: &Fetcher,
    needs: Needs<'_>,
    reporter: &dyn Reporter,
) -> Result<Resolved, Error> {
    let certs = certificates(config, needs.certs_dir, reporter)?;
    let patches = patch_set(config)?;
    let log4j_file = log4j_file(config)?;
    let spark_hs = ImageData::load(ImageKind::SparkHs, config.images.dockerfiles.as_deref())?;
    let (spark, members, facts) = spark_listing(config, fetcher).await?;
    // Everything else depends only on the Spark tarball and its listing, not on each other:
    // the S3A jars, the metastore's inputs and the base images are fetched and pulled at once.
    let hive = async {
        match needs.hive {
            true => Ok(Some(hive_inputs(config, fetcher, &facts).await?)),
            false => Ok(None),
        }
    };
    let bases = async {
        let Some(puller) = needs.puller else {
            return Ok(None);
        };
        let spark_base = spark_base_image(config, fetcher, &spark).await?;
        let hive_base = config.images.hive_metastore_base.clone();
        Ok(Some(BaseImages {
            spark: BaseImage {
                id: puller.ensure(&spark_base, reporter).await?,
                reference: spark_base,
            },
            hive_metastore: BaseImage {
                // Pulled only for a run that builds (or locks) the metastore image.
                id: match needs.hive {
                    true => puller.ensure(&hive_base, reporter).await?,
                    false => puller.present(&hive_base).await?,
                },
                reference: hive_base,
            },
        }))
    };
    let (s3a, hive, bases) = tokio::try_join!(
        s3a_selection(config, fetcher, &facts, &members),
        hive,
        bases
    )?;
    let versions = Versions {
        spark: facts.spark_version.clone(),
        scala: facts.scala_version.clone(),
        hadoop: facts.hadoop.version.clone(),
        hadoop_aws: s3a.hadoop_aws_version.clone(),
        aws_sdk: s3a.sdk_version.clone(),
    };
    let mut references = BTreeMap::new();
    for kind in ImageKind::ALL {
        references.insert(kind, images::references(config, kind, &versions, None)?);
    }
    Ok(Resolved {
        spark,
        facts,
        s3a,
        certs,
        patches,
        log4j_file,
        spark_hs,
        hive,
        bases,
        versions,
        references,
    })
}

/// Open the cache (waiting while `cache clean` runs) and a fetcher storing into it.
pub async fn open_fetcher(config: &Config, reporter: Arc<dyn Reporter>) -> Result<Fetcher, Error> {
    let cache = open_cache(config).await?;
    Ok(Fetcher::new(config, Arc::new(cache), reporter)?)
}

/// Open the cache off the async threads: taking its shared lock may block.
pub async fn open_cache(config: &Config) -> Result<Cache, Error> {
    let root = config.cache_dir.clone();
    blocking(move || Cache::open(&root).map_err(Error::from)).await
}

/// Connect to the engine the configuration names.
pub async fn connect(config: &Config) -> Result<Engine, Error> {
    let endpoint = EngineEndpoint::from_env_values(
        config.engine.host.clone(),
        config.engine.tls_verify.clone(),
        config.engine.cert_path.clone(),
    )?;
    Ok(docker::connect(&endpoint).await?)
}

/// Run blocking work (archive reads, locks, hashing whole files) on the blocking pool.
pub async fn blocking<T, F>(work: F) -> Result<T, Error>
where
    F: FnOnce() -> Result<T, Error> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|join| Error::Runtime(format!("a background task failed: {join}")))?
}

/// The Spark tarball (fetched through the cache), the member paths facts are read from
/// (remembered in the cache), and those facts.
pub async fn spark_listing(
    config: &Config,
    fetcher: &Fetcher,
) -> Result<(Fetched, Vec<String>, DistributionFacts), Error> {
    let spark = fetcher.fetch(&plan::spark(config)).await?;
    let cache = Arc::clone(fetcher.cache());
    let artifact = spark.artifact.clone();
    let limits = config.extract;
    let members = blocking(move || Ok(inspect::spark_members(&cache, &artifact, limits)?)).await?;
    let facts = inspect::distribution_facts(&members, &spark.spec.file_name)?;
    Ok((spark, members, facts))
}

/// The S3A jars for the distribution whose members are `members`.
async fn s3a_selection(
    config: &Config,
    fetcher: &Fetcher,
    facts: &DistributionFacts,
    members: &[String],
) -> Result<S3aSelection, Error> {
    let present: BTreeSet<String> = members
        .iter()
        .filter_map(|member| member.strip_prefix("jars/"))
        .map(str::to_string)
        .collect();
    Ok(assemble::select_s3a_jars(config, fetcher, facts, &present).await?)
}

/// Check the certificates to import: `explicit` (a flag), else `[certs] dir`, else `./certs`
/// when present. An explicitly named folder must exist. Warnings go to `reporter`.
pub fn certificates(
    config: &Config,
    explicit: Option<&Path>,
    reporter: &dyn Reporter,
) -> Result<CaSet, Error> {
    let (dir, required): (PathBuf, bool) = match (explicit, &config.certs_dir) {
        (Some(dir), _) => (dir.to_path_buf(), true),
        (None, Some(dir)) => (dir.clone(), true),
        (None, None) => (PathBuf::from(DEFAULT_CERTS_DIR), false),
    };
    let mut set = certs::load_ca_dir(&dir, SystemTime::now(), required, &config.certs_aliases)?;
    for file in config.certs_aliases.keys() {
        if !set.certs.iter().any(|cert| &cert.file_name == file) {
            set.warnings.push(format!(
                "[certs] aliases names {file}, which is not a certificate in {}",
                dir.display()
            ));
        }
    }
    for warning in &set.warnings {
        reporter.warn(warning);
    }
    Ok(set)
}

/// The built-in patches plus the user's patches directory.
pub fn patch_set(config: &Config) -> Result<PatchSet, Error> {
    let mut set = PatchSet::builtin()?;
    if let Some(dir) = &config.patches_dir {
        set = set.with_user_dir(dir)?;
    }
    Ok(set)
}

/// The configured log4j file's text: unreadable is an error, never an empty input.
fn log4j_file(config: &Config) -> Result<Option<String>, Error> {
    let Some(path) = &config.spark.log4j_file else {
        return Ok(None);
    };
    std::fs::read_to_string(path).map(Some).map_err(|source| {
        assemble::AssembleError::Log4jFile {
            path: path.clone(),
            source,
        }
        .into()
    })
}

/// Fetch the metastore's three tarballs (from the cache when present).
async fn hive_inputs(
    config: &Config,
    fetcher: &Fetcher,
    facts: &DistributionFacts,
) -> Result<HiveInputs, Error> {
    let data = ImageData::load(
        ImageKind::HiveMetastore,
        config.images.dockerfiles.as_deref(),
    )?;
    let (metastore, hadoop, jdbc) = try_join3(
        fetcher.fetch(&plan::hive_metastore(config)),
        fetcher.fetch(&plan::hadoop(config, &facts.hadoop.version)),
        fetcher.fetch(&plan::postgresql_jdbc(config)),
    )
    .await?;
    Ok(HiveInputs {
        metastore,
        hadoop,
        jdbc,
        data,
    })
}

/// The image the Spark image is built on: the configured base, else the distribution
/// Dockerfile's FROM with the build arguments applied.
pub async fn spark_base_image(
    config: &Config,
    fetcher: &Fetcher,
    spark: &Fetched,
) -> Result<String, Error> {
    if let Some(base) = &config.spark_image.base {
        return Ok(base.clone());
    }
    let cache = Arc::clone(fetcher.cache());
    let artifact = spark.artifact.clone();
    let limits = config.extract;
    let text = blocking(move || Ok(inspect::spark_dockerfile(&cache, &artifact, limits)?)).await?;
    let facts = crate::context::parse_dockerfile(inspect::SPARK_DOCKERFILE, &text)?;
    Ok(facts
        .base_images(&spark_build_args(config))
        .into_iter()
        .next()
        .unwrap_or_default())
}

/// The Spark Dockerfile's build arguments. A configured base image is patched into the FROM
/// line, not passed as an argument.
pub fn spark_build_args(config: &Config) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "java_image_tag".to_string(),
            config.spark_image.java_image_tag.clone(),
        ),
        ("spark_uid".to_string(), config.images.spark_uid.to_string()),
    ])
}

/// What `fetch` produced.
#[derive(Debug, Clone)]
pub struct FetchReport {
    /// The Hadoop version used, and where it came from.
    pub hadoop: Option<HadoopVersion>,
    /// Every artifact fetched or found in the cache.
    pub artifacts: Vec<Fetched>,
}

/// `imgforge fetch <target>`: download and verify what `target` names, independent artifacts
/// in parallel. The Hadoop version is `[hadoop] version` when set; otherwise it is read from
/// the Spark tarball's `jars/` listing, so the Spark tarball comes first on that branch while
/// the Hive and JDBC downloads proceed alongside.
pub async fn fetch_inputs(
    config: &Config,
    target: FetchTarget,
    reporter: Arc<dyn Reporter>,
) -> Result<FetchReport, Error> {
    let fetcher = &open_fetcher(config, Arc::clone(&reporter)).await?;
    let reporter = reporter.as_ref();
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
