//! From the resolved inputs to a patched Spark distribution on disk, ready to be a build
//! context or to run `spark-submit` locally.
//!
//! The order keeps every check ahead of every write: the output is checked before anything
//! is fetched, the tarball is unpacked into a staged copy beside the output, and only a fully
//! assembled and patched tree replaces the output, by one rename.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use similar::TextDiff;

use crate::assemble::{self, AssembleError};
use crate::config::Config;
use crate::error::Error;
use crate::extract;
use crate::fetch::Fetcher;
use crate::progress::Reporter;
use crate::resolve::{self, Needs, Resolved, blocking};
use crate::{leftovers, outdir};

/// A prepared distribution on disk.
#[derive(Debug, Clone)]
pub struct PreparedTree {
    /// Its root.
    pub root: PathBuf,
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

/// Resolve and check an output directory before anything is fetched or written (see
/// [`outdir`]), then remove what interrupted runs left beside it. Called before the cache is
/// opened, while the dead runs' locks are still there to prove them dead.
pub fn output_dir(config: &Config, requested: &Path, force: bool) -> Result<PathBuf, Error> {
    let out = outdir::check(requested, config, force)?;
    let locks = crate::cache::locks_dir(&config.cache_dir);
    for removed in leftovers::sweep_beside(&out, &locks) {
        tracing::info!(path = %removed.display(), "removed what an interrupted run left behind");
    }
    Ok(out)
}

/// Where [`prepare_tree`] writes, checked by [`output_dir`].
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The resolved output directory.
    pub out: &'a Path,
    /// `--force`: the directory may be replaced even without imgforge's marker.
    pub force: bool,
}

/// What `imgforge prepare` is asked to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct PrepareOptions<'a> {
    /// `--out`; `./build/spark-<version>-bin-<package>` when absent.
    pub out: Option<&'a Path>,
    /// Only describe the changes.
    pub diff: bool,
    /// Replace a non-empty output directory without imgforge's marker.
    pub force: bool,
    /// `--certs`.
    pub certs: Option<&'a Path>,
}

/// What `prepare` produced: a tree, or with `--diff` the changes it would make.
pub enum Outcome {
    /// The tree was written.
    Prepared(PreparedTree),
    /// Nothing was written; this is the unified diff of every change.
    Diff(String),
}

/// `imgforge prepare`: check the output, resolve the inputs, and prepare the tree (or
/// describe it). Returns what was resolved, for the report.
pub async fn prepare(
    config: &Config,
    options: PrepareOptions<'_>,
    reporter: Arc<dyn Reporter>,
) -> Result<(Resolved, Outcome), Error> {
    let requested = options
        .out
        .map_or_else(|| default_out(config), Path::to_path_buf);
    let out = if options.diff {
        // Nothing replaces the output with --diff; the staging tree still goes beside it.
        requested
    } else {
        output_dir(config, &requested, options.force)?
    };
    let fetcher = resolve::open_fetcher(config, Arc::clone(&reporter)).await?;
    let needs = Needs {
        certs_dir: options.certs,
        ..Needs::default()
    };
    let resolved = resolve::resolve(config, &fetcher, needs, reporter.as_ref()).await?;
    let outcome = if options.diff {
        Outcome::Diff(diff(config, &fetcher, &resolved, &out).await?)
    } else {
        let target = Target {
            out: &out,
            force: options.force,
        };
        Outcome::Prepared(
            prepare_tree(config, &fetcher, &resolved, target, reporter.as_ref()).await?,
        )
    };
    Ok((resolved, outcome))
}

/// Prepare the distribution into `target`.
pub async fn prepare_tree(
    config: &Config,
    fetcher: &Fetcher,
    resolved: &Resolved,
    target: Target<'_>,
    reporter: &dyn Reporter,
) -> Result<PreparedTree, Error> {
    let out = target.out;
    // The S3A jars are gathered beside the output while Spark unpacks: taking them out of
    // the Hadoop tarball is independent work, and on a second core it costs no wall time.
    let jars = async {
        assemble::gather_jars(fetcher, &resolved.s3a, out)
            .await
            .map_err(Error::from)
    };
    let (staged, jars) = tokio::try_join!(stage(fetcher, resolved, out), jars)?;
    let tree = staged.path().to_path_buf();
    jars.move_into(&tree)?;
    let files = write_files(config, resolved, &tree)?;
    for warning in files.patches.warnings() {
        reporter.warn(warning);
    }
    files.patches.write()?;
    let patched_files = files.patches.changed_files().map(str::to_string).collect();
    let fingerprint =
        crate::fingerprint::tree(resolved, &[&files.log4j_text, &files.defaults_text]);
    outdir::write_marker(&tree, &fingerprint).map_err(|source| AssembleError::Write {
        path: tree.join(outdir::MARKER),
        source,
    })?;
    // The output may have changed during the run: check it again right before replacing it.
    outdir::recheck(out, config, target.force)?;
    blocking(move || staged.commit().map(|_| ()).map_err(Error::from)).await?;
    Ok(PreparedTree {
        root: out.to_path_buf(),
        patched_files,
    })
}

/// `prepare --diff`: every change [`prepare_tree`] would make to the distribution, as a
/// unified diff; nothing replaces `out` (the staged copy goes beside it and is removed).
pub async fn diff(
    config: &Config,
    fetcher: &Fetcher,
    resolved: &Resolved,
    out: &Path,
) -> Result<String, Error> {
    let staged = stage(fetcher, resolved, out).await?;
    let tree = staged.path();
    let previous_defaults =
        std::fs::read_to_string(tree.join("conf/spark-defaults.conf")).unwrap_or_default();
    let files = write_files(config, resolved, tree)?;
    let mut diff = files.patches.unified_diff();
    if resolved.log4j_file.is_some() {
        diff.push_str(&new_file_diff(&files.log4j_path, "", &files.log4j_text));
    } else {
        diff.push_str(&format!(
            "new file {} (copy of {})\n",
            files.log4j_path,
            resolved.facts.log4j.template()
        ));
    }
    diff.push_str(&new_file_diff(
        "conf/spark-defaults.conf",
        &previous_defaults,
        &files.defaults_text,
    ));
    for cert in &resolved.certs.certs {
        diff.push_str(&format!(
            "new file certs/{}.crt ({}, from {})\n",
            cert.alias,
            cert.subject,
            cert.path.display()
        ));
    }
    for jar in &resolved.s3a.jars {
        diff.push_str(&format!(
            "new file jars/{} ({}, {})\n",
            jar.file_name, jar.name, jar.origin
        ));
    }
    Ok(diff)
}

/// Unpack the Spark tarball into a staged tree beside `out`.
async fn stage(
    fetcher: &Fetcher,
    resolved: &Resolved,
    out: &Path,
) -> Result<extract::StagedTree, Error> {
    let archive = fetcher.archive(&resolved.spark);
    let out = out.to_path_buf();
    blocking(move || extract::unpack_staged(archive, &out).map_err(Error::from)).await
}

/// What [`write_files`] wrote, and the patches planned for the tree.
struct TreeFiles {
    log4j_path: String,
    log4j_text: String,
    defaults_text: String,
    patches: crate::patch::PatchPlan,
}

/// Write the log4j and Spark configuration and the certificates into the staged tree, and
/// plan the patches of `entrypoint.sh` and the `Dockerfile`.
fn write_files(config: &Config, resolved: &Resolved, tree: &Path) -> Result<TreeFiles, Error> {
    let log4j = resolved.facts.log4j;
    let log4j_text = assemble::log4j_config(resolved.log4j_file.as_deref(), tree, log4j)?;
    let log4j_path = format!("conf/{}", log4j.config_file());
    let defaults_text = assemble::spark_defaults(config);
    assemble::write_text(tree, &log4j_path, &log4j_text)?;
    assemble::write_text(tree, "conf/spark-defaults.conf", &defaults_text)?;
    let imports = assemble::write_certs(tree, &resolved.certs.certs)?;
    assemble::write_cert_import(tree, &imports)?;
    let patches =
        assemble::plan_tree_patches(config, tree, &resolved.facts, &resolved.patches, imports)?;
    Ok(TreeFiles {
        log4j_path,
        log4j_text,
        defaults_text,
        patches,
    })
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
