//! From the resolved inputs to images, through the Docker Engine API.
//!
//! Output directories are checked and the engine is reached before any work; then the inputs
//! are resolved once, fingerprinted, compared with what is already built (`--if-changed`),
//! and the images are built in dependency order — `spark` from the prepared tree, `spark-hs`
//! on the image just built, `hive-metastore` from a context assembled out of the cache — and
//! pushed when asked.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::assemble::{self, AssembleError};
use crate::certs::CaSet;
use crate::cli::PullPolicy;
use crate::config::Config;
use crate::context::BuildContext;
use crate::docker::{self, BuiltImage, DockerError, Engine};
use crate::error::Error;
use crate::fetch::Fetcher;
use crate::images::{self, ImageKind};
use crate::lock::{Lock, LockError};
use crate::metastore::{self, MetastoreInputs};
use crate::prepare::{self, Target};
use crate::progress::Reporter;
use crate::push::{PushOptions, PushedImage};
use crate::resolve::{self, Needs, Resolved, blocking};

/// What `imgforge build` is asked to do.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The images, in dependency order (see [`images::wanted`]).
    pub images: Vec<ImageKind>,
    /// Rebuild only images whose inputs changed.
    pub if_changed: bool,
    /// Build without the engine's layer cache.
    pub no_cache: bool,
    /// The trees under `./build` may be replaced even without imgforge's marker.
    pub force: bool,
    /// Refuse to build unless resolving gives the lock at `lock_path`.
    pub locked: Option<PathBuf>,
    /// Push what was built, with these options.
    pub push: Option<PushOptions>,
    /// Write the pushed digests here.
    pub digests_file: Option<PathBuf>,
    /// When base images are pulled (`[images] pull`, `--pull`).
    pub pull: PullPolicy,
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

/// What `build` did.
#[derive(Debug, Clone, Default)]
pub struct BuildOutcome {
    /// The images built.
    pub built: Vec<BuiltReport>,
    /// With `--if-changed`, the images whose inputs were unchanged (neither built nor pushed).
    pub unchanged: Vec<Unchanged>,
    /// What was pushed, with `--push`.
    pub pushed: Vec<PushedImage>,
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

/// A build that failed, and what it had done before the failure.
#[derive(Debug)]
pub struct BuildFailed {
    /// Why it failed.
    pub error: Error,
    /// The images built and the tags pushed before the failure, and those `--if-changed`
    /// had found unchanged.
    pub partial: BuildOutcome,
}

/// Build (and push) the images `options` asks for.
pub async fn build(
    config: &Config,
    options: &BuildOptions,
    reporter: Arc<dyn Reporter>,
) -> Result<BuildOutcome, BuildFailed> {
    let mut outcome = BuildOutcome::default();
    match build_into(config, options, reporter, &mut outcome).await {
        Ok(()) => Ok(outcome),
        Err(error) => Err(BuildFailed {
            error,
            partial: outcome,
        }),
    }
}

/// [`build`], recording each result in `outcome` as soon as it is known, so that a failure
/// can still report what came before it.
async fn build_into(
    config: &Config,
    options: &BuildOptions,
    reporter: Arc<dyn Reporter>,
    outcome: &mut BuildOutcome,
) -> Result<(), Error> {
    let wanted = &options.images;
    // The trees under ./build are checked before anything is fetched or written.
    let spark_out = wanted
        .contains(&ImageKind::Spark)
        .then(|| prepare::output_dir(config, &prepare::default_out(config), options.force))
        .transpose()?;
    let metastore_out = wanted
        .contains(&ImageKind::HiveMetastore)
        .then(|| prepare::output_dir(config, &metastore_out(config), options.force))
        .transpose()?;
    // A missing or unreadable lock is reported before anything is fetched.
    let locked = options
        .locked
        .as_deref()
        .map(|path| Lock::read(path).map(|lock| (path, lock)))
        .transpose()?;
    let engine = resolve::connect(config).await?;
    let fetcher = resolve::open_fetcher(config, Arc::clone(&reporter)).await?;
    let mut access = crate::pull::PullAccess::new(
        config,
        options
            .push
            .as_ref()
            .and_then(|push| push.credentials.flags.clone()),
    );
    if let Some(push) = &options.push {
        access.registry_ca = push.registry_ca.clone();
    }
    let mut puller = crate::pull::Puller::new(&engine, options.pull, access);
    if options.if_changed {
        puller = puller.checking_upstream(config.offline);
    }
    let needs = Needs {
        hive: wanted.contains(&ImageKind::HiveMetastore) || options.locked.is_some(),
        puller: Some(&puller),
        certs_dir: None,
    };
    // Everything the fingerprints need is read from the cache (listings are remembered), so
    // an unchanged scheduled run decides in well under a second that nothing is to be done.
    let resolved = resolve::resolve(config, &fetcher, needs, reporter.as_ref()).await?;
    if let Some((path, lock)) = &locked {
        check_lock(config, &fetcher, &resolved, path, lock).await?;
    }
    let bases = resolved
        .bases
        .as_ref()
        .ok_or_else(|| Error::Runtime("the base images were not resolved".into()))?;
    let fingerprints = crate::fingerprint::images(config, &resolved, bases);

    let (to_build, unchanged) = match options.if_changed {
        true => {
            let compare = Comparison {
                engine: &engine,
                registry: options.push.as_ref(),
            };
            compare
                .changed(wanted, &resolved, &fingerprints, reporter.as_ref())
                .await?
        }
        false => (wanted.clone(), Vec::new()),
    };
    outcome.unchanged = unchanged;

    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let builder = Builder {
        engine: &engine,
        puller: &puller,
        config,
        resolved: &resolved,
        created: &created,
        no_cache: options.no_cache,
        reporter: reporter.as_ref(),
    };
    let built = &mut outcome.built;
    let mut spark_image_id = None;
    if to_build.contains(&ImageKind::Spark) {
        let out = spark_out.unwrap_or_else(|| prepare::default_out(config));
        let target = Target {
            out: &out,
            force: options.force,
        };
        let prepared =
            prepare::prepare_tree(config, &fetcher, &resolved, target, reporter.as_ref()).await?;
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
                resolve::spark_build_args(config),
                &fingerprints[&ImageKind::Spark],
            )
            .await
            .map_err(|error| name_rejected_certificate(ImageKind::Spark, &resolved.certs, error))?;
        spark_image_id = Some(report.image.id.clone());
        built.push(report);
    }

    if to_build.contains(&ImageKind::SparkHs) {
        let spark_reference = match spark_image_id {
            Some(id) => id,
            None => {
                let reference = resolved.references[&ImageKind::Spark][0].clone();
                if !docker::image_exists(&engine, &reference).await? {
                    return Err(DockerError::NoSparkImage { reference }.into());
                }
                reference
            }
        };
        let root = tempfile::tempdir().map_err(|source| AssembleError::Write {
            path: std::env::temp_dir(),
            source,
        })?;
        let extra = vec![
            (
                "Dockerfile".to_string(),
                resolved.spark_hs.dockerfile.clone().into_bytes(),
            ),
            (
                ".dockerignore".to_string(),
                resolved.spark_hs.dockerignore.clone().into_bytes(),
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
                .build(
                    ImageKind::SparkHs,
                    context,
                    build_args,
                    &fingerprints[&ImageKind::SparkHs],
                )
                .await?,
        );
    }

    if let Some(hive) = resolved
        .hive
        .as_ref()
        .filter(|_| to_build.contains(&ImageKind::HiveMetastore))
    {
        let out = metastore_out.unwrap_or_else(|| self::metastore_out(config));
        let fingerprint = &fingerprints[&ImageKind::HiveMetastore];
        let inputs = MetastoreInputs {
            fingerprint,
            metastore: &hive.metastore,
            hadoop: &hive.hadoop,
            s3a: &resolved.s3a,
            jdbc: &hive.jdbc,
            certs: &resolved.certs.certs,
            data: &hive.data,
        };
        let root = metastore::assemble_context(&fetcher, inputs, &out).await?;
        let context = plan_context(&root, "Dockerfile", Vec::new()).await?;
        let build_args = BTreeMap::from([
            ("base".to_string(), bases.hive_metastore.reference.clone()),
            (
                "debug_sudo".to_string(),
                config.images.hive_metastore_debug_sudo.to_string(),
            ),
        ]);
        built.push(
            builder
                .build(ImageKind::HiveMetastore, context, build_args, fingerprint)
                .await
                .map_err(|error| {
                    name_rejected_certificate(ImageKind::HiveMetastore, &resolved.certs, error)
                })?,
        );
    }

    if let Some(push_options) = &options.push
        && !built.is_empty()
    {
        let pushed = &mut outcome.pushed;
        push_built(&engine, built, push_options, reporter.as_ref(), pushed).await?;
    }
    if let Some(path) = &options.digests_file {
        write_digests(path, &outcome.pushed).await?;
    }
    Ok(())
}

/// `build --locked`: fail, listing each difference, unless resolving now gives the lock.
async fn check_lock(
    config: &Config,
    fetcher: &Fetcher,
    resolved: &Resolved,
    path: &Path,
    locked: &Lock,
) -> Result<(), Error> {
    let now = crate::fingerprint::lock(resolved, config, fetcher).await?;
    let differences = locked.differences(&now);
    if differences.is_empty() {
        Ok(())
    } else {
        Err(LockError::Differs {
            path: path.to_path_buf(),
            differences,
        }
        .into())
    }
}

/// Push what was just built, under the references it was tagged with, into `pushed`.
async fn push_built(
    engine: &Engine,
    built: &[BuiltReport],
    options: &PushOptions,
    reporter: &dyn Reporter,
    pushed: &mut Vec<PushedImage>,
) -> Result<(), Error> {
    let targets: Vec<crate::push::PushTarget> = built
        .iter()
        .map(|report| crate::push::PushTarget {
            image: report.kind.label().to_string(),
            source: report.image.id.clone(),
            references: report.references.clone(),
        })
        .collect();
    Ok(crate::push::push(engine, &targets, options, reporter, pushed).await?)
}

/// Write every pushed reference to the digests file `path`.
pub async fn write_digests(path: &Path, pushed: &[PushedImage]) -> Result<(), Error> {
    let path = path.to_path_buf();
    let entries = crate::digests::entries(pushed);
    blocking(move || Ok(crate::digests::write(&path, &entries)?)).await
}

/// When `error` is a failed step that imported one of `certs`, say which certificate file it
/// was: the step and the script name only the alias and the copy in the build context.
fn name_rejected_certificate(kind: ImageKind, certs: &CaSet, error: Error) -> Error {
    // import-certs.sh (both images) prints the alias it failed on as a marker line, which
    // the docker module reads into the step failure.
    let Error::Docker(DockerError::StepFailed {
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
    match error {
        Error::Docker(source) => DockerError::CertificateRejected {
            image: kind.label().to_string(),
            path,
            alias,
            source: Box::new(source),
        }
        .into(),
        error => error,
    }
}

/// Where `build` assembles the hive-metastore context: `./build/hive-metastore-<version>`.
fn metastore_out(config: &Config) -> PathBuf {
    PathBuf::from("build").join(format!("hive-metastore-{}", config.hive.metastore_version))
}

/// Where `--if-changed` reads the fingerprint of the image already built: the registry when
/// pushing (that is what a scheduled job keeps up to date), else the engine.
struct Comparison<'a> {
    engine: &'a Engine,
    registry: Option<&'a PushOptions>,
}

impl Comparison<'_> {
    /// The images of `wanted` to build, and those left alone because their label holds
    /// their fingerprint already.
    async fn changed(
        &self,
        wanted: &[ImageKind],
        resolved: &Resolved,
        fingerprints: &BTreeMap<ImageKind, String>,
        reporter: &dyn Reporter,
    ) -> Result<(Vec<ImageKind>, Vec<Unchanged>), Error> {
        let mut to_build = Vec::new();
        let mut unchanged = Vec::new();
        for kind in wanted {
            let reference = &resolved.references[kind][0];
            match self.fingerprint_of(reference).await? {
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
            && !docker::image_exists(self.engine, &resolved.references[&ImageKind::Spark][0])
                .await?
        {
            to_build.insert(0, ImageKind::Spark);
        }
        Ok((to_build, unchanged))
    }

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
                Err(DockerError::ImageNotFound { .. }) => None,
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
    puller: &'a crate::pull::Puller<'a>,
    config: &'a Config,
    resolved: &'a Resolved,
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
        // Every FROM of the Dockerfile is on the engine before the build starts (the
        // configured bases already are: resolving made them present).
        // The Spark image spark-hs is built on is this run's own (an ID or one of its names):
        // it is never pulled.
        let own = |base: &str| {
            base.starts_with("sha256:")
                || self
                    .resolved
                    .references
                    .values()
                    .any(|references| references.iter().any(|reference| reference == base))
        };
        for base in context.facts().base_images(&build_args) {
            if !own(&base) {
                self.puller.ensure(&base, self.reporter).await?;
            }
        }
        let references = self.resolved.references[&kind].clone();
        let created = created_for(self.engine, &references[0], fingerprint, self.created).await?;
        let request = docker::BuildRequest {
            name: kind.label().to_string(),
            tags: references.clone(),
            build_args,
            labels: images::labels(
                self.config,
                kind,
                &self.resolved.versions,
                fingerprint,
                &created,
            ),
            no_cache: self.no_cache,
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
        Err(DockerError::ImageNotFound { .. }) => return Ok(now.to_string()),
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
