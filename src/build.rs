//! From the resolved inputs to images, through the Docker Engine API.
//!
//! Output directories are checked and the engine is reached before any work; then the inputs
//! are resolved once, fingerprinted, compared with what is already built — the images the
//! engine holds under the image's tags, or with `--if-changed --push` the registry's — and the
//! images whose inputs changed are built in two lines at once — `spark` from the prepared tree
//! then `spark-hs` on the spark image, and `hive-metastore` from a context assembled out of
//! the cache (see [`crate::lines`]) — and pushed when asked. `--force` (and, without
//! `--if-changed`, `--no-cache`) builds every image asked for whatever its label says.

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
use crate::lines::Lines;
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
    /// `--if-changed`: compare with the registry when pushing, check base images upstream,
    /// and never push an unchanged image.
    pub if_changed: bool,
    /// Build without the engine's layer cache.
    pub no_cache: bool,
    /// `--force`: build every image even when its inputs are unchanged.
    pub force: bool,
    /// `--force-replace`: replace the trees under `./build` even without imgforge's marker (a
    /// rebuild never implies deleting a directory imgforge did not make).
    pub force_replace: bool,
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

impl BuildOptions {
    /// Whether every image is built whatever its label says: `--force`, or `--no-cache`
    /// outside `--if-changed` (a scheduled run may ask for changed images to be built afresh).
    pub fn build_all(&self) -> bool {
        self.force || (self.no_cache && !self.if_changed)
    }
}

/// What `build` did.
#[derive(Debug, Clone, Default)]
pub struct BuildOutcome {
    /// The images built.
    pub built: Vec<BuiltReport>,
    /// The images whose inputs were unchanged: not built (pushed only without `--if-changed`).
    pub unchanged: Vec<Unchanged>,
    /// What was pushed, with `--push`.
    pub pushed: Vec<PushedImage>,
}

/// An image left alone because its label holds its fingerprint already.
#[derive(Debug, Clone)]
pub struct Unchanged {
    /// Which image.
    pub kind: ImageKind,
    /// The reference whose label was compared.
    pub reference: String,
    /// Its (unchanged) fingerprint.
    pub fingerprint: String,
    /// The engine's image ID; `None` when the label was read from the registry
    /// (`--if-changed --push`).
    pub id: Option<String>,
    /// Every reference of the image (each names `id` when it is known).
    pub references: Vec<String>,
    /// The references that did not name the unchanged image and were tagged onto it.
    pub retagged: Vec<String>,
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

/// [`build`], recording each result in `outcome` once it is known (a build line's when both
/// lines are done), so that a failure can still report what came before it and what the
/// other line built.
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
        .then(|| prepare::output_dir(config, &prepare::default_out(config), options.force_replace))
        .transpose()?;
    let metastore_out = wanted
        .contains(&ImageKind::HiveMetastore)
        .then(|| prepare::output_dir(config, &metastore_out(config), options.force_replace))
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

    let compare = Comparison {
        engine: &engine,
        // A scheduled run keeps the registry up to date; a plain build, the engine.
        registry: options.push.as_ref().filter(|_| options.if_changed),
        scheduled: options.if_changed,
    };
    let (to_build, unchanged) = match options.build_all() {
        true => (wanted.clone(), Vec::new()),
        false => {
            compare
                .changed(wanted, &resolved, &fingerprints, reporter.as_ref())
                .await?
        }
    };
    outcome.unchanged = unchanged;
    for unchanged in &mut outcome.unchanged {
        compare.restore_tags(unchanged, reporter.as_ref()).await?;
    }

    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let builder = Builder {
        engine: &engine,
        puller: &puller,
        fetcher: &fetcher,
        config,
        resolved: &resolved,
        fingerprints: &fingerprints,
        created: &created,
        no_cache: options.no_cache,
        reporter: reporter.as_ref(),
    };
    // spark (then spark-hs on it) and hive-metastore share nothing but the cache and the
    // engine: the two lines are prepared and built at once. Each runs to its end even when
    // the other fails, so what was built is tagged whole and reported; the first failure is
    // the run's.
    let lines = Lines::new(2, reporter.as_ref());
    let mut spark_built = Vec::new();
    let mut metastore_built = Vec::new();
    let spark_line = SparkLine {
        to_build: &to_build,
        out: spark_out,
        force_replace: options.force_replace,
    };
    let (spark_result, metastore_result) = tokio::join!(
        lines.run(builder.spark_line(
            spark_line,
            &compare,
            &mut outcome.unchanged,
            &mut spark_built
        )),
        lines.run(builder.metastore_line(
            to_build.contains(&ImageKind::HiveMetastore),
            metastore_out,
            &mut metastore_built
        )),
    );
    // Reported in image order, whichever build finished first.
    outcome.built.extend(spark_built);
    outcome.built.extend(metastore_built);
    outcome.built.sort_by_key(|report| report.kind);
    lines.first_failure([spark_result, metastore_result])?;
    if let Some(push_options) = &options.push {
        let targets = push_targets(&outcome.built, &outcome.unchanged, options.if_changed);
        if !targets.is_empty() {
            let pushed = &mut outcome.pushed;
            crate::push::push(&engine, &targets, push_options, reporter.as_ref(), pushed).await?;
        }
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

/// What `--push` pushes, in dependency order: what was just built, under the references it
/// was tagged with, and — unless `--if-changed` found the registry up to date — the unchanged
/// images the engine holds, so that `build --push` always leaves every image in the registry.
fn push_targets(
    built: &[BuiltReport],
    unchanged: &[Unchanged],
    if_changed: bool,
) -> Vec<crate::push::PushTarget> {
    let mut targets = Vec::new();
    for kind in ImageKind::ALL {
        if let Some(report) = built.iter().find(|report| report.kind == kind) {
            targets.push(crate::push::PushTarget {
                image: kind.label().to_string(),
                source: report.image.id.clone(),
                references: report.references.clone(),
                after: push_after(kind),
            });
        } else if let Some(unchanged) = unchanged.iter().find(|unchanged| unchanged.kind == kind)
            && let Some(id) = unchanged.id.as_ref().filter(|_| !if_changed)
        {
            targets.push(crate::push::PushTarget {
                image: kind.label().to_string(),
                source: id.clone(),
                references: unchanged.references.clone(),
                after: push_after(kind),
            });
        }
    }
    targets
}

/// The image `kind` is built on, pushed before it: spark-hs after spark (its layers are then
/// in the registry already); spark and hive-metastore share no build and push at once.
pub(crate) fn push_after(kind: ImageKind) -> Option<String> {
    (kind == ImageKind::SparkHs).then(|| ImageKind::Spark.label().to_string())
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

/// Where the fingerprint of the image already built is read: the registry with
/// `--if-changed --push` (that is what a scheduled job keeps up to date; the first tag), else
/// the engine, under every tag of the image.
struct Comparison<'a> {
    engine: &'a Engine,
    registry: Option<&'a PushOptions>,
    /// `--if-changed`: a spark-hs to build brings a spark image the engine lacks along.
    scheduled: bool,
}

/// What one image's references hold, compared with its fingerprint.
enum Found {
    /// An image whose label holds the fingerprint, under `reference`; its engine ID when the
    /// engine was asked.
    Same {
        reference: String,
        id: Option<String>,
    },
    /// No such image: why it is built.
    Differs(String),
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
        let mut unchanged: Vec<Unchanged> = Vec::new();
        for kind in wanted {
            let references = &resolved.references[kind];
            let fingerprint = &fingerprints[kind];
            let mut found = match self.registry {
                Some(options) => {
                    self.in_registry(options, &references[0], fingerprint)
                        .await?
                }
                None => self.on_engine(references, fingerprint).await?,
            };
            // spark-hs is unchanged only on the spark image it would be built on now: its
            // fingerprint covers spark's inputs, not which build of them it sits on. (When
            // spark is built in this run, that is checked once it is built.)
            if *kind == ImageKind::SparkHs
                && !to_build.contains(&ImageKind::Spark)
                && let Found::Same {
                    reference,
                    id: Some(id),
                } = &found
            {
                let spark_reference = &resolved.references[&ImageKind::Spark][0];
                let spark_id = match unchanged
                    .iter()
                    .find(|unchanged| unchanged.kind == ImageKind::Spark)
                    .and_then(|unchanged| unchanged.id.clone())
                {
                    Some(id) => Some(id),
                    None => self.engine_id(spark_reference).await?,
                };
                if let Some(spark_id) = spark_id
                    && !self.built_on(id, &spark_id).await?
                {
                    found = Found::Differs(format!(
                        "{reference} is not built on the spark image {spark_reference}"
                    ));
                }
            }
            match found {
                Found::Same { reference, id } => unchanged.push(Unchanged {
                    kind: *kind,
                    reference,
                    fingerprint: fingerprint.clone(),
                    id,
                    references: references.clone(),
                    retagged: Vec::new(),
                }),
                Found::Differs(why) => {
                    reporter.info(&format!("{}: {why}; rebuilding", kind.label()));
                    to_build.push(*kind);
                }
            }
        }
        // spark-hs is built on the spark image: without it on the engine, a scheduled run
        // rebuilds spark too (a plain `build spark-hs` names the missing image instead).
        if self.scheduled
            && to_build.contains(&ImageKind::SparkHs)
            && !to_build.contains(&ImageKind::Spark)
            && !unchanged
                .iter()
                .any(|unchanged| unchanged.kind == ImageKind::Spark && unchanged.id.is_some())
            && !docker::image_exists(self.engine, &resolved.references[&ImageKind::Spark][0])
                .await?
        {
            to_build.insert(0, ImageKind::Spark);
        }
        Ok((to_build, unchanged))
    }

    /// The registry's label of `reference` compared with `fingerprint`.
    async fn in_registry(
        &self,
        options: &PushOptions,
        reference: &str,
        fingerprint: &str,
    ) -> Result<Found, Error> {
        let labels = match crate::push::split_reference(reference) {
            None => None,
            Some(parts) => {
                let credentials = crate::push::credentials_for(options, &parts.host).await?;
                let client =
                    crate::push::registry_client(self.engine, &parts.host, options, credentials)
                        .await?;
                match client.image_labels(&parts.repository, &parts.tag).await {
                    Ok(labels) => labels,
                    Err(error) => return Err(crate::push::PushError::from(error).into()),
                }
            }
        };
        let label = labels.as_ref().and_then(fingerprint_label);
        Ok(found(reference, label, fingerprint, None))
    }

    /// The first of `references` on the engine whose label is `fingerprint`; otherwise why
    /// not, as the first reference shows it.
    async fn on_engine(&self, references: &[String], fingerprint: &str) -> Result<Found, Error> {
        let mut first = None;
        for reference in references {
            let (id, label) = match docker::inspect(self.engine, reference).await {
                Ok(image) => {
                    let labels: Option<BTreeMap<String, String>> = image
                        .config
                        .and_then(|config| config.labels)
                        .map(|labels| labels.into_iter().collect());
                    (image.id, labels.as_ref().and_then(fingerprint_label))
                }
                Err(DockerError::ImageNotFound { .. }) => (None, None),
                Err(error) => return Err(error.into()),
            };
            match found(reference, label, fingerprint, id) {
                same @ Found::Same { id: Some(_), .. } => return Ok(same),
                other => {
                    first.get_or_insert(other);
                }
            }
        }
        Ok(first.unwrap_or_else(|| Found::Differs("the image has no references".into())))
    }

    /// Tag every reference of `unchanged` that does not name its image (removed, or moved to
    /// another image) onto it, as a build would have tagged it.
    async fn restore_tags(
        &self,
        unchanged: &mut Unchanged,
        reporter: &dyn Reporter,
    ) -> Result<(), Error> {
        let Some(id) = unchanged.id.clone() else {
            return Ok(());
        };
        for reference in &unchanged.references {
            if self.engine_id(reference).await?.as_deref() != Some(id.as_str()) {
                docker::tag_image(self.engine, &id, reference).await?;
                reporter.info(&format!(
                    "{}: unchanged; tagged {reference} again",
                    unchanged.kind.label()
                ));
                unchanged.retagged.push(reference.clone());
            }
        }
        Ok(())
    }

    /// The engine's ID of `reference`, `None` when it does not hold it.
    async fn engine_id(&self, reference: &str) -> Result<Option<String>, Error> {
        match docker::inspect(self.engine, reference).await {
            Ok(image) => Ok(image.id),
            Err(DockerError::ImageNotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Whether image `child` is built on image `parent`: `parent`'s layers begin `child`'s.
    async fn built_on(&self, child: &str, parent: &str) -> Result<bool, Error> {
        let layers = |image: bollard::models::ImageInspect| {
            image
                .root_fs
                .and_then(|root_fs| root_fs.layers)
                .unwrap_or_default()
        };
        let child = layers(docker::inspect(self.engine, child).await?);
        let parent = layers(docker::inspect(self.engine, parent).await?);
        Ok(!parent.is_empty() && child.starts_with(&parent))
    }
}

/// The `imgforge.inputs.sha256` label in `labels`, `None` when it is not a SHA-256 (treated
/// as changed).
fn fingerprint_label(labels: &BTreeMap<String, String>) -> Option<String> {
    labels
        .get(images::FINGERPRINT_LABEL)
        .filter(|value| value.len() == 64 && value.chars().all(|c| c.is_ascii_hexdigit()))
        .cloned()
}

/// `reference`, whose label is `label`, compared with `fingerprint`.
fn found(reference: &str, label: Option<String>, fingerprint: &str, id: Option<String>) -> Found {
    match label {
        Some(label) if label == fingerprint => Found::Same {
            reference: reference.to_string(),
            id,
        },
        None => Found::Differs(format!(
            "{reference} has no {} label (absent or built otherwise)",
            images::FINGERPRINT_LABEL
        )),
        Some(_) => Found::Differs(format!("the inputs of {reference} changed")),
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

/// What the spark line is asked to do.
struct SparkLine<'a> {
    /// The images found changed (spark-hs may join them once spark is built).
    to_build: &'a [ImageKind],
    /// The checked `./build/spark-…` tree, when spark is wanted.
    out: Option<PathBuf>,
    /// `--force-replace`.
    force_replace: bool,
}

/// What every image build of one run shares.
struct Builder<'a> {
    engine: &'a Engine,
    puller: &'a crate::pull::Puller<'a>,
    fetcher: &'a Fetcher,
    config: &'a Config,
    resolved: &'a Resolved,
    fingerprints: &'a BTreeMap<ImageKind, String>,
    created: &'a str,
    no_cache: bool,
    reporter: &'a dyn Reporter,
}

impl Builder<'_> {
    /// The spark image from the prepared tree, then spark-hs on it; `built` receives each
    /// image as it is built. An unchanged spark-hs that is not built on the spark image just
    /// built leaves `unchanged` and is rebuilt.
    async fn spark_line(
        &self,
        line: SparkLine<'_>,
        compare: &Comparison<'_>,
        unchanged: &mut Vec<Unchanged>,
        built: &mut Vec<BuiltReport>,
    ) -> Result<(), Error> {
        let (config, resolved) = (self.config, self.resolved);
        let mut build_spark_hs = line.to_build.contains(&ImageKind::SparkHs);
        let mut spark_image_id = None;
        if line.to_build.contains(&ImageKind::Spark) {
            let out = line.out.unwrap_or_else(|| prepare::default_out(config));
            let target = Target {
                out: &out,
                force: line.force_replace,
            };
            let prepared =
                prepare::prepare_tree(config, self.fetcher, resolved, target, self.reporter)
                    .await?;
            let context = plan_context(
                &prepared.root,
                "kubernetes/dockerfiles/spark/Dockerfile",
                Vec::new(),
            )
            .await?;
            let report = self
                .build(
                    ImageKind::Spark,
                    context,
                    resolve::spark_build_args(config),
                    &self.fingerprints[&ImageKind::Spark],
                )
                .await
                .map_err(|error| {
                    name_rejected_certificate(ImageKind::Spark, &resolved.certs, error)
                })?;
            spark_image_id = Some(report.image.id.clone());
            built.push(report);
        }
        // spark-hs found unchanged before spark was built: still unchanged only on this spark.
        if let Some(spark_id) = &spark_image_id
            && let Some(position) = unchanged.iter().position(|unchanged| {
                unchanged.kind == ImageKind::SparkHs && unchanged.id.is_some()
            })
        {
            let spark_hs = &unchanged[position];
            let child = spark_hs.id.as_deref().unwrap_or_default();
            if !compare.built_on(child, spark_id).await? {
                self.reporter.info(&format!(
                    "spark-hs: {} is not built on the spark image just built; rebuilding",
                    spark_hs.reference
                ));
                unchanged.remove(position);
                build_spark_hs = true;
            }
        }
        if !build_spark_hs {
            return Ok(());
        }
        let unchanged_spark = unchanged
            .iter()
            .find(|unchanged| unchanged.kind == ImageKind::Spark)
            .and_then(|unchanged| unchanged.id.clone());
        let spark_reference = match spark_image_id.or(unchanged_spark) {
            Some(id) => id,
            None => {
                let reference = resolved.references[&ImageKind::Spark][0].clone();
                if !docker::image_exists(self.engine, &reference).await? {
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
            self.build(
                ImageKind::SparkHs,
                context,
                build_args,
                &self.fingerprints[&ImageKind::SparkHs],
            )
            .await?,
        );
        Ok(())
    }

    /// The hive-metastore image (when `wanted`), from a context assembled out of the cache
    /// into `out` (checked; else the default tree).
    async fn metastore_line(
        &self,
        wanted: bool,
        out: Option<PathBuf>,
        built: &mut Vec<BuiltReport>,
    ) -> Result<(), Error> {
        let (config, resolved) = (self.config, self.resolved);
        let Some(hive) = resolved.hive.as_ref().filter(|_| wanted) else {
            return Ok(());
        };
        let bases = resolved
            .bases
            .as_ref()
            .ok_or_else(|| Error::Runtime("the base images were not resolved".into()))?;
        let out = out.unwrap_or_else(|| metastore_out(config));
        let fingerprint = &self.fingerprints[&ImageKind::HiveMetastore];
        let inputs = MetastoreInputs {
            fingerprint,
            metastore: &hive.metastore,
            hadoop: &hive.hadoop,
            s3a: &resolved.s3a,
            jdbc: &hive.jdbc,
            certs: &resolved.certs.certs,
            data: &hive.data,
        };
        let root = metastore::assemble_context(self.fetcher, inputs, &out).await?;
        let context = plan_context(&root, "Dockerfile", Vec::new()).await?;
        let build_args = BTreeMap::from([
            ("base".to_string(), bases.hive_metastore.reference.clone()),
            (
                "debug_sudo".to_string(),
                config.images.hive_metastore_debug_sudo.to_string(),
            ),
        ]);
        built.push(
            self.build(ImageKind::HiveMetastore, context, build_args, fingerprint)
                .await
                .map_err(|error| {
                    name_rejected_certificate(ImageKind::HiveMetastore, &resolved.certs, error)
                })?,
        );
        Ok(())
    }

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
