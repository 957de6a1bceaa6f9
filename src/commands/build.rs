//! `imgforge build [spark|spark-hs|hive-metastore|all]…`: from nothing to images, through the
//! Docker Engine API.
//!
//! Names and tags are checked and the engine is reached before any work; then the Spark tree
//! is prepared (fetching what is missing), and the images are built in dependency order —
//! `spark`, then `spark-hs` on the image just built, then `hive-metastore` from a context
//! assembled out of the cache.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::future::try_join3;
use serde_json::json;

use crate::assemble::{self, JarOrigin, S3aSelection};
use crate::certs::CaSet;
use crate::cli::{BuildArgs, BuildTarget};
use crate::config::Config;
use crate::context::BuildContext;
use crate::docker::{self, BuildRequest, BuiltImage, Engine, EngineEndpoint};
use crate::error::Error;
use crate::fetch::{Fetched, Fetcher};
use crate::images::{self, Fingerprint, ImageData, ImageKind, Versions};
use crate::inspect::{self, DistributionFacts};
use crate::metastore::{self, MetastoreInputs};
use crate::output;
use crate::plan;
use crate::progress::Reporter;

use super::prepare::{self, Outcome, PreparedTree};
use super::{blocking, open_fetcher};

/// Why a build could not start or finish, beyond the stages' own errors.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// `spark-hs` was asked for alone and no `spark` image exists to build it on.
    #[error(
        "no spark image {reference} on the engine to build spark-hs on; build both with \
         `imgforge build` (or `imgforge build spark` first)"
    )]
    NoSparkImage {
        /// The reference looked for.
        reference: String,
    },
    /// A step importing a CA certificate into an image's truststore failed: keytool refused
    /// a certificate that passed imgforge's own checks.
    #[error(
        "the {image} image's truststore rejected CA certificate {} (alias {alias}); keytool \
         cannot read it: export it again as an X.509 certificate Java supports (for EC keys, \
         a named curve), or remove it from the certificate directory",
        path.display()
    )]
    CertificateRejected {
        /// The image being built.
        image: ImageKind,
        /// The certificate file as the user gave it.
        path: PathBuf,
        /// Its truststore alias.
        alias: String,
        /// The failed step, with keytool's output.
        #[source]
        source: Box<docker::DockerError>,
    },
}

/// When `error` is a failed step that imported one of `certs`, say which certificate file it
/// was: the step and the script name only the alias and the copy in the build context.
fn name_rejected_certificate(kind: ImageKind, certs: &CaSet, error: Error) -> Error {
    // import-certs.sh (both images) prints the alias it failed on as a marker line, which
    // the docker module reads into the step failure.
    let Error::Docker(docker::DockerError::StepFailed {
        rejected_alias: Some(alias),
        ..
    }) = &error
    else {
        return error;
    };
    let Some(cert) = certs.certs.iter().find(|cert| cert.alias == *alias) else {
        return error;
    };
    let (path, alias) = (cert.path.clone(), cert.alias.clone());
    let Error::Docker(source) = error else {
        unreachable!("matched as a Docker error above")
    };
    BuildError::CertificateRejected {
        image: kind,
        path,
        alias,
        source: Box::new(source),
    }
    .into()
}

/// One image built.
#[derive(Debug, Clone)]
pub struct BuiltReport {
    /// Which image.
    pub kind: ImageKind,
    /// What the engine built.
    pub image: BuiltImage,
    /// The full references it was tagged with.
    pub references: Vec<String>,
    /// Its input fingerprint.
    pub fingerprint: String,
}

/// Run `imgforge build`.
pub async fn run(
    config: &Config,
    args: &BuildArgs,
    reporter: Arc<dyn Reporter>,
) -> Result<BuildOutcome, Error> {
    // Read --password-stdin and check the push settings before spending time on a build.
    let push_options = match args.push {
        true => Some(super::push::options(config, &args.registry)?),
        false => None,
    };
    let outcome = build(config, args, push_options.as_ref(), Arc::clone(&reporter)).await?;
    let pushed = match &push_options {
        Some(options) if !outcome.built.is_empty() => {
            super::push::push_built(config, &outcome.built, options, reporter.as_ref()).await?
        }
        _ => Vec::new(),
    };
    if let Some(path) = &args.digests_file {
        super::push::write_digests(path, &pushed).await?;
    }
    print(config, &outcome, &pushed);
    Ok(outcome)
}

/// The images `targets` name, each once, in dependency order (spark, spark-hs,
/// hive-metastore) whatever order they were given in; none given means all.
pub fn wanted(targets: &[BuildTarget]) -> Vec<ImageKind> {
    let named = |kind: ImageKind| {
        targets.is_empty()
            || targets.iter().any(|target| match target {
                BuildTarget::Spark => kind == ImageKind::Spark,
                BuildTarget::SparkHs => kind == ImageKind::SparkHs,
                BuildTarget::HiveMetastore => kind == ImageKind::HiveMetastore,
                BuildTarget::All => true,
            })
    };
    ImageKind::ALL
        .into_iter()
        .filter(|kind| named(*kind))
        .collect()
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

/// Build the images `args` asks for.
pub async fn build(
    config: &Config,
    args: &BuildArgs,
    push: Option<&crate::push::PushOptions>,
    reporter: Arc<dyn Reporter>,
) -> Result<BuildOutcome, Error> {
    let wanted = wanted(&args.targets);
    // Names are checked before anything is downloaded or built; the final check below uses
    // the versions read from the distribution.
    let provisional = Versions::provisional(config);
    for kind in &wanted {
        images::references(config, *kind, &provisional, None)?;
    }
    // The trees under ./build are checked before anything is fetched or written.
    let spark_out = wanted
        .contains(&ImageKind::Spark)
        .then(|| prepare::output_dir(config, &prepare::default_out(config), args.force))
        .transpose()?;
    let metastore_out = wanted
        .contains(&ImageKind::HiveMetastore)
        .then(|| prepare::output_dir(config, &metastore_out(config), args.force))
        .transpose()?;
    let engine = connect(config).await?;
    let certs = super::certs::load(config, None, reporter.as_ref())?;
    let fetcher = open_fetcher(config, Arc::clone(&reporter)).await?;
    if args.locked {
        super::lock::check(config, &fetcher, &engine).await?;
    }

    // Everything the fingerprints need is read from the cache (listings are remembered), so
    // an unchanged scheduled run decides in well under a second that nothing is to be done.
    let (spark_tarball, facts, s3a) = listed_inputs(config, &fetcher).await?;
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
    let spark_base = spark_base_image(config, &fetcher, &spark_tarball).await?;
    let spark_fingerprint = spark_fingerprint(
        config,
        &spark_tarball.artifact.entry.sha512,
        &s3a,
        &certs,
        &patch_set(config)?.digest(),
        &base_image_id(&engine, &spark_base).await?,
    );
    let hs_data = ImageData::load(ImageKind::SparkHs, config.images.dockerfiles.as_deref())?;
    let hs_fingerprint = spark_hs_fingerprint(config, &spark_fingerprint, &hs_data);
    let hive = match wanted.contains(&ImageKind::HiveMetastore) {
        true => Some(HiveInputs::fetch(config, &fetcher, &facts, &engine).await?),
        false => None,
    };
    let mut fingerprints = BTreeMap::from([
        (ImageKind::Spark, spark_fingerprint.clone()),
        (ImageKind::SparkHs, hs_fingerprint.clone()),
    ]);
    if let Some(hive) = &hive {
        fingerprints.insert(
            ImageKind::HiveMetastore,
            hive.fingerprint(config, &s3a, &certs),
        );
    }

    let mut to_build = wanted.clone();
    let mut unchanged = Vec::new();
    if args.if_changed {
        let compare = Comparison {
            engine: &engine,
            registry: push,
        };
        to_build.clear();
        for kind in &wanted {
            let reference = &references[kind][0];
            match compare.fingerprint_of(reference).await? {
                Some(existing) if existing == fingerprints[kind] => {
                    unchanged.push(Unchanged {
                        kind: *kind,
                        reference: reference.clone(),
                        fingerprint: existing,
                    });
                }
                found => {
                    let why = match found {
                        None => format!(
                            "{reference} has no {} label (absent or built otherwise)",
                            images::FINGERPRINT_LABEL
                        ),
                        Some(_) => format!("the inputs of {reference} changed"),
                    };
                    reporter.info(&format!("{}: {why}; rebuilding", kind.label()));
                    to_build.push(*kind);
                }
            }
        }
        // spark-hs is built on the spark image: without it on the engine, spark is rebuilt too.
        if to_build.contains(&ImageKind::SparkHs)
            && !to_build.contains(&ImageKind::Spark)
            && !docker::image_exists(&engine, &references[&ImageKind::Spark][0]).await?
        {
            to_build.insert(0, ImageKind::Spark);
        }
    }

    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let builder = Builder {
        engine: &engine,
        config,
        versions: &versions,
        references: &references,
        created: &created,
        no_cache: args.no_cache,
        reporter: reporter.as_ref(),
    };
    let mut built = Vec::new();
    let mut spark_image_id = None;
    if to_build.contains(&ImageKind::Spark) {
        let target = prepare::Target {
            out: &spark_out
                .clone()
                .unwrap_or_else(|| prepare::default_out(config)),
            force: args.force,
        };
        let prepared =
            prepare_tree(config, &fetcher, target, certs.clone(), reporter.as_ref()).await?;
        let context = plan_context(
            &prepared.root,
            "kubernetes/dockerfiles/spark/Dockerfile",
            Vec::new(),
        )
        .await?;
        let report = builder
            .build(
                ImageKind::Spark,
                context,
                spark_build_args(config),
                &spark_fingerprint,
            )
            .await
            .map_err(|error| name_rejected_certificate(ImageKind::Spark, &certs, error))?;
        spark_image_id = Some(report.image.id.clone());
        built.push(report);
    }

    if to_build.contains(&ImageKind::SparkHs) {
        let spark_reference = match spark_image_id {
            Some(id) => id,
            None => {
                let reference = references[&ImageKind::Spark][0].clone();
                if !docker::image_exists(&engine, &reference).await? {
                    return Err(BuildError::NoSparkImage { reference }.into());
                }
                reference
            }
        };
        let root = tempfile::tempdir().map_err(|source| assemble::AssembleError::Write {
            path: std::env::temp_dir(),
            source,
        })?;
        let extra = vec![
            (
                "Dockerfile".to_string(),
                hs_data.dockerfile.clone().into_bytes(),
            ),
            (
                ".dockerignore".to_string(),
                hs_data.dockerignore.clone().into_bytes(),
            ),
        ];
        // On disk, not generated: COPY sources are checked against the files in the context.
        assemble::write_text(
            root.path(),
            "spark-defaults.conf",
            &assemble::history_server_defaults(config),
        )?;
        let context = plan_context(root.path(), "Dockerfile", extra).await?;
        let build_args = BTreeMap::from([
            ("spark_image".to_string(), spark_reference),
            ("spark_uid".to_string(), config.images.spark_uid.to_string()),
        ]);
        built.push(
            builder
                .build(ImageKind::SparkHs, context, build_args, &hs_fingerprint)
                .await?,
        );
    }

    if let Some(hive) = hive
        .as_ref()
        .filter(|_| to_build.contains(&ImageKind::HiveMetastore))
    {
        let out = metastore_out
            .clone()
            .unwrap_or_else(|| self::metastore_out(config));
        let inputs = MetastoreInputs {
            fingerprint: &fingerprints[&ImageKind::HiveMetastore],
            metastore: &hive.metastore,
            hadoop: &hive.hadoop,
            s3a: &s3a,
            jdbc: &hive.jdbc,
            certs: &certs.certs,
            data: &hive.data,
        };
        let root = metastore::assemble_context(&fetcher, inputs, &out).await?;
        let context = plan_context(&root, "Dockerfile", Vec::new()).await?;
        let build_args = BTreeMap::from([
            (
                "base".to_string(),
                config.images.hive_metastore_base.clone(),
            ),
            (
                "debug_sudo".to_string(),
                config.images.hive_metastore_debug_sudo.to_string(),
            ),
        ]);
        built.push(
            builder
                .build(
                    ImageKind::HiveMetastore,
                    context,
                    build_args,
                    &fingerprints[&ImageKind::HiveMetastore],
                )
                .await
                .map_err(|error| {
                    name_rejected_certificate(ImageKind::HiveMetastore, &certs, error)
                })?,
        );
    }
    Ok(BuildOutcome { built, unchanged })
}

/// What `build` did.
#[derive(Debug, Clone, Default)]
pub struct BuildOutcome {
    /// The images built.
    pub built: Vec<BuiltReport>,
    /// With `--if-changed`, the images whose inputs were unchanged (neither built nor pushed).
    pub unchanged: Vec<Unchanged>,
}

/// An image `--if-changed` left alone.
#[derive(Debug, Clone)]
pub struct Unchanged {
    /// Which image.
    pub kind: ImageKind,
    /// The reference whose label was compared.
    pub reference: String,
    /// Its (unchanged) fingerprint.
    pub fingerprint: String,
}

/// Where `--if-changed` reads the fingerprint of the image already built: the registry when
/// pushing (that is what a scheduled job keeps up to date), else the engine.
struct Comparison<'a> {
    engine: &'a Engine,
    registry: Option<&'a crate::push::PushOptions>,
}

impl Comparison<'_> {
    /// The `imgforge.inputs.sha256` label of `reference`, `None` when the image or the label
    /// is absent or the label is not a SHA-256 (treated as changed).
    async fn fingerprint_of(&self, reference: &str) -> Result<Option<String>, Error> {
        let labels = match self.registry {
            Some(options) => {
                let Some(parts) = crate::push::split_reference(reference) else {
                    return Ok(None);
                };
                let credentials = crate::push::credentials_for(options, &parts.host).await?;
                let client =
                    crate::push::registry_client(self.engine, &parts.host, options, credentials)
                        .await?;
                match client.image_labels(&parts.repository, &parts.tag).await {
                    Ok(labels) => labels,
                    Err(error) => return Err(crate::push::PushError::from(error).into()),
                }
            }
            None => match docker::inspect(self.engine, reference).await {
                Ok(image) => image
                    .config
                    .and_then(|config| config.labels)
                    .map(|labels| labels.into_iter().collect()),
                Err(docker::DockerError::ImageNotFound { .. }) => None,
                Err(error) => return Err(error.into()),
            },
        };
        Ok(labels
            .and_then(|labels: BTreeMap<String, String>| {
                labels.get(images::FINGERPRINT_LABEL).cloned()
            })
            .filter(|value| value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit())))
    }
}

/// The metastore's inputs, fetched (from the cache when present) for its fingerprint.
pub(crate) struct HiveInputs {
    pub(crate) metastore: Fetched,
    pub(crate) hadoop: Fetched,
    pub(crate) jdbc: Fetched,
    pub(crate) data: ImageData,
    pub(crate) base_id: String,
}

impl HiveInputs {
    pub(crate) async fn fetch(
        config: &Config,
        fetcher: &Fetcher,
        facts: &DistributionFacts,
        engine: &Engine,
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
        let base_id = base_image_id(engine, &config.images.hive_metastore_base).await?;
        Ok(HiveInputs {
            metastore,
            hadoop,
            jdbc,
            data,
            base_id,
        })
    }

    fn fingerprint(&self, config: &Config, s3a: &S3aSelection, certs: &CaSet) -> String {
        let mut fingerprint = Fingerprint::new(ImageKind::HiveMetastore);
        for fetched in [&self.metastore, &self.hadoop, &self.jdbc] {
            fingerprint.add(fetched.spec.role, fetched.artifact.entry.sha512.as_bytes());
        }
        add_s3a(&mut fingerprint, s3a);
        add_certs(&mut fingerprint, certs);
        self.data.fingerprint_into(&mut fingerprint);
        fingerprint.add("base", config.images.hive_metastore_base.as_bytes());
        fingerprint.add("base_id", self.base_id.as_bytes());
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
}

/// The spark-hs fingerprint: the spark image's, its own definition and settings.
fn spark_hs_fingerprint(config: &Config, spark_fingerprint: &str, data: &ImageData) -> String {
    let mut fingerprint = Fingerprint::new(ImageKind::SparkHs);
    fingerprint.add("spark", spark_fingerprint.as_bytes());
    data.fingerprint_into(&mut fingerprint);
    fingerprint.add(
        "spark-defaults.conf",
        assemble::history_server_defaults(config).as_bytes(),
    );
    fingerprint.add("spark_uid", config.images.spark_uid.to_string().as_bytes());
    fingerprint.finish()
}

/// The Spark Dockerfile's build arguments. A configured base image is patched into the FROM
/// line, not passed as an argument.
fn spark_build_args(config: &Config) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "java_image_tag".to_string(),
            config.spark_image.java_image_tag.clone(),
        ),
        ("spark_uid".to_string(), config.images.spark_uid.to_string()),
    ])
}

/// The built-in patches plus the user's patches directory.
pub(crate) fn patch_set(config: &Config) -> Result<crate::patch::PatchSet, Error> {
    let mut set = crate::patch::PatchSet::builtin()?;
    if let Some(dir) = &config.patches_dir {
        set = set.with_user_dir(dir)?;
    }
    Ok(set)
}

/// The image the Spark image is built on: the configured base, else the distribution
/// Dockerfile's FROM with the build arguments applied.
pub(crate) async fn spark_base_image(
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

/// The engine's ID of a base image, so a new build of the same tag (security fixes) changes
/// the fingerprint of every image on it; `absent` when the engine does not have it.
pub(crate) async fn base_image_id(engine: &Engine, reference: &str) -> Result<String, Error> {
    match docker::inspect(engine, reference).await {
        Ok(image) => Ok(image.id.unwrap_or_default()),
        Err(docker::DockerError::ImageNotFound { .. }) => Ok("absent".into()),
        Err(error) => Err(error.into()),
    }
}

/// Where `build` assembles the hive-metastore context: `./build/hive-metastore-<version>`.
fn metastore_out(config: &Config) -> PathBuf {
    PathBuf::from("build").join(format!("hive-metastore-{}", config.hive.metastore_version))
}

async fn prepare_tree(
    config: &Config,
    fetcher: &Fetcher,
    target: prepare::Target<'_>,
    certs: CaSet,
    reporter: &dyn Reporter,
) -> Result<PreparedTree, Error> {
    match prepare::prepare(config, fetcher, target, certs, false, reporter).await? {
        Outcome::Prepared(prepared) => Ok(*prepared),
        Outcome::Diff(_) => unreachable!("prepare writes the tree when not asked for a diff"),
    }
}

pub(crate) async fn listed_inputs(
    config: &Config,
    fetcher: &Fetcher,
) -> Result<(Fetched, DistributionFacts, S3aSelection), Error> {
    let (spark, members, facts) = super::spark_listing(config, fetcher).await?;
    let present = members
        .iter()
        .filter_map(|member| member.strip_prefix("jars/"))
        .map(str::to_string)
        .collect();
    let s3a = assemble::select_s3a_jars(config, fetcher, &facts, &present, None).await?;
    Ok((spark, facts, s3a))
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

/// Everything that goes into the Spark image.
fn spark_fingerprint(
    config: &Config,
    spark_sha512: &str,
    s3a: &S3aSelection,
    certs: &CaSet,
    patch_digest: &str,
    base_id: &str,
) -> String {
    let mut fingerprint = Fingerprint::new(ImageKind::Spark);
    fingerprint.add("spark", spark_sha512.as_bytes());
    add_s3a(&mut fingerprint, s3a);
    add_certs(&mut fingerprint, certs);
    fingerprint.add("patches", patch_digest.as_bytes());
    fingerprint.add(
        "spark-defaults.conf",
        assemble::spark_defaults(config).as_bytes(),
    );
    if let Some(path) = &config.spark.log4j_file {
        fingerprint.add("log4j_file", &std::fs::read(path).unwrap_or_default());
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
    fingerprint.add("base_id", base_id.as_bytes());
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

async fn plan_context(
    root: &Path,
    dockerfile: &str,
    extra: Vec<(String, Vec<u8>)>,
) -> Result<BuildContext, Error> {
    let root = root.to_path_buf();
    let dockerfile = dockerfile.to_string();
    blocking(move || BuildContext::plan(&root, &dockerfile, extra).map_err(Error::from)).await
}

/// What every image build of one run shares.
struct Builder<'a> {
    engine: &'a Engine,
    config: &'a Config,
    versions: &'a Versions,
    references: &'a BTreeMap<ImageKind, Vec<String>>,
    created: &'a str,
    no_cache: bool,
    reporter: &'a dyn Reporter,
}

impl Builder<'_> {
    /// Build one image from its context, tagged with every reference and labelled.
    async fn build(
        &self,
        kind: ImageKind,
        context: BuildContext,
        build_args: BTreeMap<String, String>,
        fingerprint: &str,
    ) -> Result<BuiltReport, Error> {
        let references = self.references[&kind].clone();
        let created = created_for(self.engine, &references[0], fingerprint, self.created).await?;
        let request = BuildRequest {
            name: kind.label().to_string(),
            tags: references.clone(),
            build_args,
            labels: images::labels(self.config, kind, self.versions, fingerprint, &created),
            no_cache: self.no_cache,
            pull: false,
        };
        let image = docker::build_image(self.engine, context, &request, self.reporter).await?;
        Ok(BuiltReport {
            kind,
            image,
            references,
            fingerprint: fingerprint.to_string(),
        })
    }
}

/// The `created` label: kept from the existing image when its inputs are the same, so that
/// an unchanged rebuild is the same image (every step from the layer cache, same ID) rather
/// than a new one differing only in a timestamp.
async fn created_for(
    engine: &Engine,
    reference: &str,
    fingerprint: &str,
    now: &str,
) -> Result<String, Error> {
    let existing = match docker::inspect(engine, reference).await {
        Ok(image) => image,
        Err(docker::DockerError::ImageNotFound { .. }) => return Ok(now.to_string()),
        Err(error) => return Err(error.into()),
    };
    let labels = existing
        .config
        .and_then(|config| config.labels)
        .unwrap_or_default();
    let same_inputs =
        labels.get(images::FINGERPRINT_LABEL).map(String::as_str) == Some(fingerprint);
    Ok(match labels.get(CREATED_LABEL) {
        Some(created) if same_inputs => created.clone(),
        _ => now.to_string(),
    })
}

const CREATED_LABEL: &str = "org.opencontainers.image.created";

/// Steps the layer cache can serve, and how many it did: `FROM` and the `ARG`s before the
/// first `FROM` are never "cached" in the engine's sense, so they are not counted.
pub fn cache_use(image: &BuiltImage) -> (usize, usize) {
    let first_from = image
        .steps
        .iter()
        .position(|step| step.is_from())
        .unwrap_or(0);
    let cacheable: Vec<_> = image
        .steps
        .iter()
        .enumerate()
        .filter(|(index, step)| *index > first_from && !step.is_from())
        .collect();
    (
        cacheable.iter().filter(|(_, step)| step.cached).count(),
        cacheable.len(),
    )
}

fn print(config: &Config, outcome: &BuildOutcome, pushed: &[crate::push::PushedImage]) {
    let built = &outcome.built;
    let mut human = String::new();
    for unchanged in &outcome.unchanged {
        human.push_str(&format!(
            "{:<15} unchanged: {} already has these inputs (imgforge.inputs.sha256 {}…)\n",
            unchanged.kind.label(),
            unchanged.reference,
            &unchanged.fingerprint[..12]
        ));
    }
    for report in built {
        let (cached, cacheable) = cache_use(&report.image);
        human.push_str(&format!(
            "{:<15} {}  {:>10}  context {}  {}/{} steps from cache\n",
            report.kind.label(),
            report.image.id,
            output::bytes(report.image.size),
            output::bytes(report.image.context_bytes),
            cached,
            cacheable,
        ));
        for reference in &report.references {
            human.push_str(&format!("                {reference}\n"));
        }
    }
    let mut json = json!({
        "command": "build",
        "unchanged": outcome.unchanged.iter().map(|unchanged| json!({
            "image": unchanged.kind.label(),
            "reference": unchanged.reference,
            "fingerprint": unchanged.fingerprint,
        })).collect::<Vec<_>>(),
        "images": built.iter().map(|report| json!({
            "image": report.kind.label(),
            "id": report.image.id,
            "tags": report.references,
            "size": report.image.size,
            "context_bytes": report.image.context_bytes,
            "context_files": report.image.context.files,
            "cacheable_steps": cache_use(&report.image).1,
            "cached_steps": cache_use(&report.image).0,
            "fingerprint": report.fingerprint,
        })).collect::<Vec<_>>(),
    });
    let (pushed_human, pushed_json) = super::push::report(pushed);
    human.push_str(&pushed_human);
    if !pushed.is_empty() {
        json["pushed"] = pushed_json;
    }
    output::result(&config.output, &human, &json);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_targets_come_once_each_in_dependency_order() {
        use BuildTarget::{All, HiveMetastore, Spark, SparkHs};
        assert_eq!(wanted(&[]), ImageKind::ALL);
        assert_eq!(wanted(&[All]), ImageKind::ALL);
        assert_eq!(
            wanted(&[SparkHs, Spark, SparkHs]),
            [ImageKind::Spark, ImageKind::SparkHs]
        );
        assert_eq!(
            wanted(&[HiveMetastore, Spark]),
            [ImageKind::Spark, ImageKind::HiveMetastore]
        );
        assert_eq!(wanted(&[SparkHs, All]), ImageKind::ALL);
    }
}
