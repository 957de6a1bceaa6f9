//! Turning verified archives into a prepared Spark tree: the S3A jars that match the
//! bundled Hadoop exactly, the log4j and `spark-defaults.conf` files, the CA certificates
//! and the anchored patches of `entrypoint.sh` and the `Dockerfile`.
//!
//! Everything happens in a staged copy next to the output folder; the output is replaced
//! by one rename at the end, so a failure at any step leaves the previous tree as it was.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cache::{CacheError, CachedArtifact};
use crate::certs::CaCert;
use crate::config::{Config, JarsSource};
use crate::exit;
use crate::fetch::{FetchError, Fetched, Fetcher};
use crate::inspect::{DistributionFacts, Log4j};
use crate::maven::{self, Coordinates, PomSource, SourceError};
use crate::patch::{CertImport, PatchContext, PatchError, PatchPlan, PatchSet};
use crate::plan::ArtifactSpec;

/// Why assembling failed.
#[derive(Debug, thiserror::Error)]
pub enum AssembleError {
    /// A pinned version contradicts what the distribution bundles.
    #[error(
        "[s3a] hadoop_aws_version = {pinned:?} but Spark {spark_version} bundles Hadoop {detected} \
         ({evidence}); hadoop-aws must be exactly the bundled hadoop-common version — mixed \
         hadoop-aws / hadoop-common versions fail at run time with NoSuchMethodError. Remove the pin \
         or choose a Spark package built for Hadoop {pinned}"
    )]
    HadoopPin {
        /// The pinned version.
        pinned: String,
        /// The version found in `jars/`.
        detected: String,
        /// The jar that says so.
        evidence: String,
        /// The Spark version.
        spark_version: String,
    },
    /// `[hadoop] version` contradicts the distribution.
    #[error(
        "[hadoop] version = {configured:?} but Spark {spark_version} bundles Hadoop {detected} ({evidence}); \
         the S3A jars must match the bundled Hadoop. Remove [hadoop] version or set it to {detected}"
    )]
    HadoopConfigured {
        /// The configured version.
        configured: String,
        /// The version found in `jars/`.
        detected: String,
        /// The jar that says so.
        evidence: String,
        /// The Spark version.
        spark_version: String,
    },
    /// A pinned SDK version contradicts what hadoop-aws was built against.
    #[error(
        "[s3a] sdk_version = {pinned:?} but hadoop-aws {hadoop_version} was built against {sdk}; \
         an SDK bundle other than the one hadoop-aws was built with fails at run time \
         (NoSuchMethodError / NoClassDefFoundError). Remove the pin"
    )]
    SdkPin {
        /// The pinned version.
        pinned: String,
        /// The Hadoop version.
        hadoop_version: String,
        /// The SDK bundle hadoop-aws requires.
        sdk: String,
    },
    /// Resolving hadoop-aws's dependencies failed.
    #[error("cannot work out the S3A jars for Hadoop {hadoop_version}")]
    Maven {
        /// The Hadoop version.
        hadoop_version: String,
        /// Why.
        #[source]
        source: Box<maven::MavenError>,
    },
    /// The Hadoop distribution lacks the S3A jars.
    #[error(
        "{archive} has no {what} under share/hadoop/tools/lib/; use [s3a] jars_source = \"maven\""
    )]
    MissingInHadoopDist {
        /// The Hadoop tarball.
        archive: String,
        /// What is missing.
        what: String,
    },
    /// Reading a member out of the Hadoop tarball failed.
    #[error(transparent)]
    Extract(#[from] crate::extract::ExtractError),
    /// The user's log4j file cannot be read.
    #[error("cannot read the log4j file {path} ([spark] log4j_file)")]
    Log4jFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The distribution lacks the log4j template.
    #[error("the distribution has no {template} to create {file} from; set [spark] log4j_file")]
    NoLog4jTemplate {
        /// The template looked for.
        template: &'static str,
        /// The file to be written.
        file: &'static str,
    },
    /// Writing into the staged tree failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Patching failed.
    #[error(transparent)]
    Patch(#[from] PatchError),
    /// A download failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// Listing the Hadoop tarball failed.
    #[error(transparent)]
    Inspect(#[from] crate::inspect::InspectError),
}

impl AssembleError {
    /// The exit code a run ends with when it fails with this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            AssembleError::Fetch(inner) => inner.exit_code(),
            AssembleError::Inspect(inner) => inner.exit_code(),
            AssembleError::Maven { .. } => exit::NETWORK,
            AssembleError::Extract(_) | AssembleError::MissingInHadoopDist { .. } => {
                exit::INTEGRITY
            }
            AssembleError::Write { .. } => exit::STORAGE,
            AssembleError::Patch(_)
            | AssembleError::HadoopPin { .. }
            | AssembleError::HadoopConfigured { .. }
            | AssembleError::SdkPin { .. }
            | AssembleError::Log4jFile { .. }
            | AssembleError::NoLog4jTemplate { .. } => exit::CONFIG,
        }
    }
}

/// Where one added jar comes from.
#[derive(Debug, Clone)]
pub(crate) enum JarOrigin {
    /// A Maven artifact, fetched and verified against its published checksum.
    Maven(ArtifactSpec),
    /// A member of the Hadoop distribution tarball.
    HadoopDist {
        /// The member path, relative to the tarball's top directory.
        member: String,
    },
}

impl std::fmt::Display for JarOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JarOrigin::Maven(spec) => write!(f, "Maven {}", spec.path),
            JarOrigin::HadoopDist { member } => write!(f, "Hadoop tarball {member}"),
        }
    }
}

/// One jar added to `jars/`.
#[derive(Debug, Clone)]
pub(crate) struct SelectedJar {
    /// `group:artifact:version`, or the file name for jars taken from the Hadoop tarball.
    pub(crate) name: String,
    /// The file name under `jars/`.
    pub(crate) file_name: String,
    /// Where it comes from.
    pub(crate) origin: JarOrigin,
}

/// The S3A jars for one Hadoop version.
#[derive(Debug, Clone)]
pub(crate) struct S3aSelection {
    /// Where they come from.
    pub(crate) source: JarsSource,
    /// The hadoop-aws version (equal to the bundled Hadoop).
    pub(crate) hadoop_aws_version: String,
    /// The AWS SDK bundle's version.
    pub(crate) sdk_version: String,
    /// Every jar to add, hadoop-aws and the SDK bundle first.
    pub(crate) jars: Vec<SelectedJar>,
    /// The Hadoop tarball, for the `hadoop-dist` source.
    pub(crate) hadoop_dist: Option<Fetched>,
}

impl S3aSelection {
    /// The Maven jars of the selection, fetched (concurrently) through the cache.
    pub async fn fetch_maven_jars(&self, fetcher: &Fetcher) -> Result<Vec<Fetched>, FetchError> {
        let specs = self.jars.iter().filter_map(|jar| match &jar.origin {
            JarOrigin::Maven(spec) => Some(spec),
            JarOrigin::HadoopDist { .. } => None,
        });
        futures_util::future::try_join_all(specs.map(|spec| fetcher.fetch(spec))).await
    }
}

/// Check `facts` against the configured pins.
pub(crate) fn check_pins(config: &Config, facts: &DistributionFacts) -> Result<(), AssembleError> {
    let detected = &facts.hadoop.version;
    if let Some(pinned) = &config.s3a.hadoop_aws_version
        && pinned != detected
    {
        return Err(AssembleError::HadoopPin {
            pinned: pinned.clone(),
            detected: detected.clone(),
            evidence: facts.hadoop.evidence.clone(),
            spark_version: facts.spark_version.clone(),
        });
    }
    if let Some(configured) = &config.hadoop.version
        && configured != detected
    {
        return Err(AssembleError::HadoopConfigured {
            configured: configured.clone(),
            detected: detected.clone(),
            evidence: facts.hadoop.evidence.clone(),
            spark_version: facts.spark_version.clone(),
        });
    }
    Ok(())
}

/// POMs fetched through the verified cache.
struct CachedPoms<'a> {
    fetcher: &'a Fetcher,
}

impl PomSource for CachedPoms<'_> {
    async fn pom(&self, coordinates: &Coordinates) -> Result<String, SourceError> {
        let spec = maven_spec("pom", coordinates, "pom");
        let fetched = self.fetcher.fetch(&spec).await?;
        let artifact = fetched.artifact;
        let bytes = tokio::task::spawn_blocking(move || artifact.read_verified()).await??;
        Ok(String::from_utf8(bytes)?)
    }
}

fn maven_spec(role: &'static str, coordinates: &Coordinates, extension: &str) -> ArtifactSpec {
    ArtifactSpec::maven(
        role,
        &coordinates.group_id,
        &coordinates.artifact_id,
        &coordinates.version,
        extension,
    )
}

/// Decide which jars make S3A work for the bundled Hadoop; `present` lists the file names
/// already in `jars/`. For the `hadoop-dist` source the Hadoop tarball's `tools/lib` is
/// listed once and the listing remembered in the cache.
pub(crate) async fn select_s3a_jars(
    config: &Config,
    fetcher: &Fetcher,
    facts: &DistributionFacts,
    present: &BTreeSet<String>,
) -> Result<S3aSelection, AssembleError> {
    check_pins(config, facts)?;
    let hadoop_version = facts.hadoop.version.clone();
    let selection = match config.s3a.jars_source {
        JarsSource::Maven => {
            let already_present = |coordinates: &Coordinates| {
                let prefix = format!("{}-", coordinates.artifact_id);
                present.iter().any(|name| {
                    name.strip_prefix(&prefix).is_some_and(|rest| {
                        rest.starts_with(|c: char| c.is_ascii_digit()) && rest.ends_with(".jar")
                    })
                })
            };
            let resolved =
                maven::s3a_runtime_jars(&CachedPoms { fetcher }, &hadoop_version, &already_present)
                    .await
                    .map_err(|source| AssembleError::Maven {
                        hadoop_version: hadoop_version.clone(),
                        source: Box::new(source),
                    })?;
            let mut jars = vec![
                maven_jar("hadoop-aws", &resolved.hadoop_aws),
                maven_jar("aws-sdk", &resolved.sdk_bundle),
            ];
            jars.extend(
                resolved
                    .others
                    .iter()
                    .map(|coordinates| maven_jar("s3a-runtime", coordinates)),
            );
            S3aSelection {
                source: JarsSource::Maven,
                hadoop_aws_version: resolved.hadoop_aws.version.clone(),
                sdk_version: resolved.sdk_bundle.version.clone(),
                jars,
                hadoop_dist: None,
            }
        }
        JarsSource::HadoopDist => {
            let hadoop = fetcher
                .fetch(&crate::plan::hadoop(config, &hadoop_version))
                .await?;
            let cache = Arc::clone(fetcher.cache());
            let artifact = hadoop.artifact.clone();
            let limits = config.extract;
            let members = tokio::task::spawn_blocking(move || {
                crate::inspect::cached_members(
                    &cache,
                    &artifact,
                    limits,
                    HADOOP_TOOLS_MEMBERS,
                    |member| member.starts_with(HADOOP_TOOLS_LIB),
                )
            })
            .await
            .map_err(|join| AssembleError::Write {
                path: hadoop.artifact.path.clone(),
                source: std::io::Error::other(join),
            })??;
            hadoop_dist_selection(&members, &hadoop_version, &hadoop)?
        }
    };
    if let Some(pinned) = &config.s3a.sdk_version
        && *pinned != selection.sdk_version
    {
        return Err(AssembleError::SdkPin {
            pinned: pinned.clone(),
            hadoop_version,
            sdk: selection
                .jars
                .get(1)
                .map_or_else(|| selection.sdk_version.clone(), |jar| jar.name.clone()),
        });
    }
    Ok(selection)
}

fn maven_jar(role: &'static str, coordinates: &Coordinates) -> SelectedJar {
    let spec = maven_spec(role, coordinates, "jar");
    SelectedJar {
        name: coordinates.to_string(),
        file_name: spec.file_name.clone(),
        origin: JarOrigin::Maven(spec),
    }
}

/// The SDK bundles' file-name prefixes: v1 (`aws-java-sdk-bundle`) up to Hadoop 3.3, v2 (`bundle`) from 3.4.
const SDK_BUNDLE_PREFIXES: [&str; 2] = ["aws-java-sdk-bundle-", "bundle-"];
/// Other runtime jars Hadoop ships beside hadoop-aws in `tools/lib` for S3A.
const HADOOP_DIST_EXTRAS: [&str; 1] = ["analyticsaccelerator-s3-"];
/// Where a Hadoop distribution keeps the S3A jars.
const HADOOP_TOOLS_LIB: &str = "share/hadoop/tools/lib/";
/// Name of the derived listing of a Hadoop tarball's `tools/lib` in the cache.
const HADOOP_TOOLS_MEMBERS: &str = "hadoop-tools-members-v1.json";

fn hadoop_dist_selection(
    members: &[String],
    hadoop_version: &str,
    hadoop: &Fetched,
) -> Result<S3aSelection, AssembleError> {
    let tools = HADOOP_TOOLS_LIB;
    let in_tools: Vec<&str> = members
        .iter()
        .filter_map(|member| member.strip_prefix(tools))
        .filter(|name| !name.contains('/'))
        .collect();
    let missing = |what: String| AssembleError::MissingInHadoopDist {
        archive: hadoop.spec.file_name.clone(),
        what,
    };
    let hadoop_aws = format!("hadoop-aws-{hadoop_version}.jar");
    if !in_tools.contains(&hadoop_aws.as_str()) {
        return Err(missing(hadoop_aws));
    }
    let versioned = |prefix: &str| {
        in_tools.iter().find_map(|name| {
            let version = name.strip_prefix(prefix)?.strip_suffix(".jar")?;
            version
                .starts_with(|c: char| c.is_ascii_digit())
                .then(|| (name.to_string(), version.to_string()))
        })
    };
    let (sdk_file, sdk_version) = SDK_BUNDLE_PREFIXES
        .iter()
        .find_map(|prefix| versioned(prefix))
        .ok_or_else(|| {
            missing("AWS SDK bundle (aws-java-sdk-bundle-*.jar or bundle-*.jar)".into())
        })?;
    let from_tools = |file_name: String| SelectedJar {
        name: file_name.clone(),
        origin: JarOrigin::HadoopDist {
            member: format!("{tools}{file_name}"),
        },
        file_name,
    };
    let mut jars = vec![from_tools(hadoop_aws), from_tools(sdk_file)];
    jars.extend(
        HADOOP_DIST_EXTRAS
            .iter()
            .filter_map(|prefix| versioned(prefix))
            .map(|(file, _)| from_tools(file)),
    );
    Ok(S3aSelection {
        source: JarsSource::HadoopDist,
        hadoop_aws_version: hadoop_version.to_string(),
        sdk_version,
        jars,
        hadoop_dist: Some(hadoop.clone()),
    })
}

/// Put the selected jars into `tree/jars/`, fetching Maven ones through the cache.
pub(crate) async fn add_jars(
    fetcher: &Fetcher,
    selection: &S3aSelection,
    tree: &Path,
) -> Result<Vec<PathBuf>, AssembleError> {
    gather_jars(fetcher, selection, tree).await?.move_into(tree)
}

/// The selected jars, gathered in a staging directory beside the output before the tree they
/// go into exists, so that taking them out of the Hadoop tarball overlaps unpacking Spark.
pub(crate) struct GatheredJars {
    staging: tempfile::TempDir,
    file_names: Vec<String>,
}

/// Gather the selected jars (Maven ones through the cache, Hadoop-distribution ones out of its
/// tarball) into a staging directory beside `out`, named so a later run can tell whose it is.
pub(crate) async fn gather_jars(
    fetcher: &Fetcher,
    selection: &S3aSelection,
    out: &Path,
) -> Result<GatheredJars, AssembleError> {
    let parent = out
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let write_error = |source| AssembleError::Write {
        path: parent.to_path_buf(),
        source,
    };
    fs::create_dir_all(parent).map_err(write_error)?;
    let out_name = out.file_name().unwrap_or(std::ffi::OsStr::new("jars"));
    let staging = tempfile::Builder::new()
        .prefix(&crate::leftovers::staging_prefix(out_name, "jars"))
        .tempdir_in(parent)
        .map_err(write_error)?;
    let maven = async {
        let mut file_names = Vec::new();
        for artifact in selection.fetch_maven_jars(fetcher).await? {
            copy_into(
                &artifact.artifact,
                &staging.path().join(&artifact.spec.file_name),
            )?;
            file_names.push(artifact.spec.file_name.clone());
        }
        Ok::<_, AssembleError>(file_names)
    };
    let dist = async {
        let Some(hadoop) = &selection.hadoop_dist else {
            return Ok(Vec::new());
        };
        let wanted: Vec<(String, String)> = selection
            .jars
            .iter()
            .filter_map(|jar| match &jar.origin {
                JarOrigin::HadoopDist { member } => Some((member.clone(), jar.file_name.clone())),
                JarOrigin::Maven(_) => None,
            })
            .collect();
        let archive = fetcher.archive(hadoop);
        let destination = staging.path().to_path_buf();
        let extracted = tokio::task::spawn_blocking(move || {
            crate::extract::extract_members(archive, &destination, |member| {
                let member = member.to_string_lossy();
                wanted
                    .iter()
                    .find(|(path, _)| *path == member)
                    .map(|(_, file_name)| file_name.clone())
            })
        })
        .await
        .map_err(|join| AssembleError::Write {
            path: staging.path().to_path_buf(),
            source: std::io::Error::other(join),
        })??;
        Ok::<_, AssembleError>(
            extracted
                .iter()
                .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
                .collect::<Vec<_>>(),
        )
    };
    let (mut file_names, from_dist) = tokio::try_join!(maven, dist)?;
    file_names.extend(from_dist);
    Ok(GatheredJars {
        staging,
        file_names,
    })
}

impl GatheredJars {
    /// Move the gathered jars into `tree/jars/` (renames on one file system) and remove the
    /// staging directory. Returns the jars' paths in the tree.
    pub(crate) fn move_into(self, tree: &Path) -> Result<Vec<PathBuf>, AssembleError> {
        let jars_dir = tree.join("jars");
        fs::create_dir_all(&jars_dir).map_err(|source| AssembleError::Write {
            path: jars_dir.clone(),
            source,
        })?;
        let mut written = Vec::with_capacity(self.file_names.len());
        for file_name in &self.file_names {
            let target = jars_dir.join(file_name);
            fs::rename(self.staging.path().join(file_name), &target).map_err(|source| {
                AssembleError::Write {
                    path: target.clone(),
                    source,
                }
            })?;
            written.push(target);
        }
        Ok(written)
    }
}

/// Copy a cached artifact into the tree: a temp file beside the target, then a rename. The
/// bytes are hashed as they are copied and the copy is refused (nothing made visible) when
/// they no longer match the cache index.
pub(crate) fn copy_into(artifact: &CachedArtifact, target: &Path) -> Result<(), AssembleError> {
    let write_error = |error| AssembleError::Write {
        path: target.to_path_buf(),
        source: error,
    };
    let parent = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(write_error)?;
    let mut temp = crate::persist::temp_for(target).map_err(|error| write_error(error.source))?;
    let read_error = |source| {
        AssembleError::Fetch(FetchError::Cache(CacheError::Read {
            path: artifact.path.clone(),
            source,
        }))
    };
    let mut source = fs::File::open(&artifact.path).map_err(read_error)?;
    // One pass: each chunk is hashed (SHA-256 when the index has it: SHA-NI makes it cheap)
    // and written; the kernel's copy_file_range would be faster but proves nothing.
    let mut sha256 = crate::digest::Sha256::new();
    let mut sha512 = crate::digest::Sha512::new();
    let use_sha256 = artifact.entry.sha256.is_some();
    let mut buffer = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let count = match std::io::Read::read(&mut source, &mut buffer) {
            Ok(0) => break,
            Ok(count) => count,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(read_error(error)),
        };
        if use_sha256 {
            sha256.update(&buffer[..count]);
        } else {
            sha512.update(&buffer[..count]);
        }
        std::io::Write::write_all(&mut temp, &buffer[..count]).map_err(write_error)?;
        size += count as u64;
    }
    let matches = match &artifact.entry.sha256 {
        Some(expected) => hex::encode(sha256.finish()) == *expected,
        None => hex::encode(sha512.finish()) == artifact.entry.sha512,
    };
    if !matches || size != artifact.entry.size {
        // The SHA-512 is what the cache is keyed by and what the message names.
        let actual = crate::verify::hash_file(&artifact.path, crate::verify::Algorithm::Sha512)
            .map(|hashes| hashes.sha512.hex())
            .unwrap_or_else(|error| format!("(unreadable: {error})"));
        return Err(AssembleError::Fetch(FetchError::Cache(
            CacheError::Damaged {
                path: artifact.path.clone(),
                expected: artifact.entry.sha512.clone(),
                actual,
            },
        )));
    }
    set_mode(temp.path(), 0o644).map_err(write_error)?;
    crate::persist::persist_staged(temp, target).map_err(|error| write_error(error.source))?;
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Write a text file into the tree through a temp file and a rename.
pub(crate) fn write_text(
    tree: &Path,
    relative: &str,
    text: &str,
) -> Result<PathBuf, AssembleError> {
    let path = tree.join(relative);
    let parent = path.parent().unwrap_or(tree).to_path_buf();
    fs::create_dir_all(&parent).map_err(|source| AssembleError::Write {
        path: parent.clone(),
        source,
    })?;
    crate::persist::write_staged(&path, text.as_bytes()).map_err(|error| AssembleError::Write {
        path: error.path,
        source: error.source,
    })?;
    set_mode(&path, 0o644).map_err(|source| AssembleError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The log4j configuration: the user's file (its text, read when resolving) when
/// configured, else the distribution's template.
pub(crate) fn log4j_config(
    user_file: Option<&str>,
    tree: &Path,
    log4j: Log4j,
) -> Result<String, AssembleError> {
    match user_file {
        Some(text) => Ok(text.to_string()),
        None => fs::read_to_string(tree.join(log4j.template())).map_err(|_| {
            AssembleError::NoLog4jTemplate {
                template: log4j.template(),
                file: log4j.config_file(),
            }
        }),
    }
}

/// The Spark settings every image and every job shares: the S3A committer settings of the
/// reference deployment, `[s3a] endpoint` and `[spark] hive_metastore_uris`, in file order.
/// Credentials are never part of them: S3A reads those from the environment at run time.
/// The spark image's `spark-defaults.conf` and the operator manifests both come from here.
pub fn spark_settings(config: &Config) -> Vec<(&'static str, String)> {
    let mut settings: Vec<(&'static str, String)> = vec![
        (
            "spark.hadoop.mapreduce.outputcommitter.factory.scheme.s3a",
            "org.apache.hadoop.fs.s3a.commit.S3ACommitterFactory".into(),
        ),
        ("spark.hadoop.fs.s3a.committer.name", "directory".into()),
        (
            "spark.hadoop.fs.s3a.committer.staging.tmp.path",
            "/tmp/spark_staging".into(),
        ),
        (
            "spark.hadoop.fs.s3a.buffer.dir",
            "/tmp/spark_local_buf".into(),
        ),
        (
            "spark.hadoop.fs.s3a.committer.staging.conflict-mode",
            "fail".into(),
        ),
        (
            "spark.hadoop.fs.s3a.impl",
            "org.apache.hadoop.fs.s3a.S3AFileSystem".into(),
        ),
        ("spark.hadoop.fs.s3a.path.style.access", "true".into()),
    ];
    if let Some(endpoint) = &config.s3a.endpoint {
        settings.push(("spark.hadoop.fs.s3a.endpoint", endpoint.clone()));
    }
    if let Some(uris) = &config.spark.hive_metastore_uris {
        settings.push(("spark.hive.metastore.uris", uris.clone()));
    }
    settings
}

/// The event-log settings a job needs so the spark-hs history server can list it:
/// `spark.eventLog.enabled` and `spark.eventLog.dir` = `[images.spark-hs] event_log_dir`.
pub fn event_log_settings(config: &Config) -> Vec<(&'static str, String)> {
    vec![
        ("spark.eventLog.enabled", "true".into()),
        ("spark.eventLog.dir", config.images.event_log_dir.clone()),
    ]
}

/// The spark-hs history server's settings: [`spark_settings`] (so it reaches the same S3A
/// endpoint, path-style, with the same committer settings) plus
/// `spark.history.fs.logDirectory` = `[images.spark-hs] event_log_dir`. The history server
/// reads them from `$SPARK_CONF_DIR/spark-defaults.conf` at start; credentials come from the
/// environment (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`) through the S3A chain.
pub(crate) fn history_server_settings(config: &Config) -> Vec<(&'static str, String)> {
    let mut settings = spark_settings(config);
    settings.push((
        "spark.history.fs.logDirectory",
        config.images.event_log_dir.clone(),
    ));
    settings
}

/// The spark-hs image's `spark-defaults.conf`: [`history_server_settings`] as a properties file.
pub(crate) fn history_server_defaults(config: &Config) -> String {
    render_properties(&history_server_settings(config))
}

/// Render settings as a Spark properties file (`key  value` lines, aligned), with a header
/// that says where credentials come from.
pub(crate) fn render_properties(settings: &[(&'static str, String)]) -> String {
    let width = settings.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    let mut text = String::from(
        "# Written by imgforge. S3 credentials are not configured here: S3A takes them from the\n\
         # environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) or a credentials provider.\n",
    );
    for (key, value) in settings {
        text.push_str(&format!("{key:<width$}  {value}\n"));
    }
    text
}

/// `conf/spark-defaults.conf`: [`spark_settings`] as a properties file.
pub(crate) fn spark_defaults(config: &Config) -> String {
    render_properties(&spark_settings(config))
}

/// Write the checked CA certificates into `tree/certs/<alias>.crt`; the imports for the patches.
pub(crate) fn write_certs(tree: &Path, certs: &[CaCert]) -> Result<Vec<CertImport>, AssembleError> {
    let mut imports = Vec::new();
    for cert in certs {
        let file_name = format!("{}.crt", cert.alias);
        write_text(tree, &format!("certs/{file_name}"), &cert.pem)?;
        imports.push(CertImport {
            alias: cert.alias.clone(),
            file_name,
        });
    }
    Ok(imports)
}

/// The script both the spark and hive-metastore images import CA certificates with; see
/// `dockerfiles/common/import-certs.sh`.
pub(crate) const IMPORT_CERTS_SCRIPT: &str = include_str!("../dockerfiles/common/import-certs.sh");

/// Write what the spark image's CA import runs beside the certificates: `certs/aliases`
/// (one `<file> <alias>` line per certificate) and `certs/import-certs.sh`. Nothing when
/// there are no certificates (the Dockerfile patch then does not apply either).
pub(crate) fn write_cert_import(tree: &Path, imports: &[CertImport]) -> Result<(), AssembleError> {
    if imports.is_empty() {
        return Ok(());
    }
    let aliases: String = imports
        .iter()
        .map(|import| format!("{} {}\n", import.file_name, import.alias))
        .collect();
    write_text(tree, "certs/aliases", &aliases)?;
    write_text(tree, "certs/import-certs.sh", IMPORT_CERTS_SCRIPT)?;
    Ok(())
}

/// Plan the patches of `entrypoint.sh` and the `Dockerfile` for this tree.
pub(crate) fn plan_tree_patches(
    config: &Config,
    tree: &Path,
    facts: &DistributionFacts,
    set: &PatchSet,
    certs: Vec<CertImport>,
) -> Result<PatchPlan, AssembleError> {
    let context = PatchContext {
        spark_version: facts.spark_version.clone(),
        // The tree, not the version number, decides the log4j flavour.
        log4j: facts.log4j,
        java_options_env: config.spark.java_options_env,
        java_major: config.spark_image.java_major,
        certs,
        base_image: config.spark_image.base.clone(),
        disable_cert_checking: config.s3a.disable_cert_checking,
    };
    Ok(crate::patch::plan_patches(tree, set, &context)?)
}
