//! The hive-metastore image's build context, assembled on disk from verified artifacts:
//! the standalone metastore, the parts of Hadoop it needs, the same S3A jars as the Spark
//! image, the PostgreSQL JDBC driver, the CA certificates and the launch script.
//!
//! The context's `.dockerignore` is the single statement of which Hadoop parts the image
//! needs: the Hadoop tarball is streamed through and only members it lets in are written.
//! The folder is staged next to its destination and replaces it by one rename.

use std::fs;
use std::path::{Path, PathBuf};

use crate::assemble::{self, AssembleError, S3aSelection};
use crate::certs::CaCert;
use crate::context::IgnoreRules;
use crate::exit;
use crate::extract::{self, ExtractError};
use crate::fetch::{Fetched, Fetcher};
use crate::images::ImageData;

/// Why the metastore context could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum MetastoreError {
    /// Unpacking the metastore or Hadoop tarball failed.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// Adding jars, certificates or files failed.
    #[error(transparent)]
    Assemble(#[from] AssembleError),
    /// The `.dockerignore` of the metastore image does not parse.
    #[error("the hive-metastore .dockerignore is invalid")]
    Ignore(#[source] crate::context::ContextError),
}

impl MetastoreError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            MetastoreError::Assemble(inner) => inner.exit_code(),
            MetastoreError::Extract(_) => exit::INTEGRITY,
            MetastoreError::Ignore(_) => exit::CONFIG,
        }
    }
}

/// The inputs of the metastore context.
pub struct MetastoreInputs<'a> {
    /// `hive-standalone-metastore-<v>-bin.tar.gz`.
    pub metastore: &'a Fetched,
    /// `hadoop-<v>.tar.gz` of the Hadoop version Spark bundles.
    pub hadoop: &'a Fetched,
    /// The S3A jars (the same as the Spark image's).
    pub s3a: &'a S3aSelection,
    /// The PostgreSQL JDBC driver.
    pub jdbc: &'a Fetched,
    /// The CA certificates to import.
    pub certs: &'a [CaCert],
    /// Dockerfile, .dockerignore and scripts.
    pub data: &'a ImageData,
    /// The image's input fingerprint, recorded in the context's [`crate::outdir::MARKER`].
    pub fingerprint: &'a str,
}

/// Assemble the context into `out`, replacing what was there.
pub async fn assemble_context(
    fetcher: &Fetcher,
    inputs: MetastoreInputs<'_>,
    out: &Path,
) -> Result<PathBuf, MetastoreError> {
    let staging = extract::staging_dir(out)?;
    let root = staging.path().to_path_buf();
    let ignore = IgnoreRules::parse(&inputs.data.dockerignore).map_err(MetastoreError::Ignore)?;

    let metastore_archive = fetcher.archive(inputs.metastore);
    let hadoop_archive = fetcher.archive(inputs.hadoop);
    let unpack_root = root.clone();
    tokio::task::spawn_blocking(move || -> Result<(), ExtractError> {
        extract::unpack_staged(metastore_archive, &unpack_root.join("hive-metastore"))?.commit()?;
        let keep =
            |member: &Path| !ignore.is_excluded(&format!("hadoop/{}", member.to_string_lossy()));
        extract::unpack_staged_filtered(hadoop_archive, &unpack_root.join("hadoop"), keep)?
            .commit()?;
        Ok(())
    })
    .await
    .map_err(|join| AssembleError::Write {
        path: root.clone(),
        source: std::io::Error::other(join),
    })??;

    assemble::add_jars(fetcher, inputs.s3a, &root).await?;
    assemble::copy_into(
        &inputs.jdbc.artifact,
        &root.join("jars").join(&inputs.jdbc.spec.file_name),
    )?;

    let imports = assemble::write_certs(&root, inputs.certs)?;
    let aliases: String = imports
        .iter()
        .map(|import| format!("{} {}\n", import.file_name, import.alias))
        .collect();
    assemble::write_text(&root, "certs/aliases", &aliases)?;

    assemble::write_text(&root, "Dockerfile", &inputs.data.dockerfile)?;
    assemble::write_text(&root, ".dockerignore", &inputs.data.dockerignore)?;
    for (name, text) in &inputs.data.scripts {
        let path = assemble::write_text(&root, name, text)?;
        set_executable(&path)?;
    }
    crate::outdir::write_marker(&root, inputs.fingerprint).map_err(|source| {
        AssembleError::Write {
            path: root.join(crate::outdir::MARKER),
            source,
        }
    })?;
    let out_path = out.to_path_buf();
    tokio::task::spawn_blocking(move || extract::replace_tree(staging, &out_path))
        .await
        .map_err(|join| AssembleError::Write {
            path: out.to_path_buf(),
            source: std::io::Error::other(join),
        })??;
    Ok(out.to_path_buf())
}

fn set_executable(path: &Path) -> Result<(), AssembleError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).map_err(|source| {
        AssembleError::Write {
            path: path.to_path_buf(),
            source,
        }
    })
}
