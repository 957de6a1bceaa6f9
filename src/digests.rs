//! The digests file: every reference a push wrote, as JSON, for GitOps tools and for
//! `imgforge manifest --digests-file`.
//!
//! The file is a JSON array with one object per pushed tag:
//! `{"name": "spark", "image": "registry/ns/spark", "tag": "3.5.3", "digest": "sha256:…",
//! "platform": "linux/amd64"}`. It is written through a temp file and a rename, so a reader
//! never sees half of it, and it is written only after every push was verified.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::exit;
use crate::push::PushedImage;
use crate::reference::ImageReference;

/// Why the digests file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum DigestsError {
    /// Writing failed.
    #[error("cannot write the digests file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading failed.
    #[error("cannot read the digests file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what `--digests-file` writes.
    #[error(
        "the digests file {path} is not a JSON array of {{name, image, tag, digest, platform}} objects"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The file has no entry for the image.
    #[error("the digests file {path} lists no {name} image; push it with --digests-file first")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The image looked for.
        name: String,
    },
    /// The file gives one image two different digests.
    #[error(
        "the digests file {path} gives the {name} image two digests ({first} and {second}); \
         write it again from one push"
    )]
    Ambiguous {
        /// The file.
        path: PathBuf,
        /// The image.
        name: String,
        /// One digest.
        first: String,
        /// Another.
        second: String,
    },
    /// A digest in the file is not `sha256:` and 64 hex digits.
    #[error(
        "the digests file {path} gives the {name} image the digest {digest:?}, which is not sha256:<64 hex digits>"
    )]
    BadDigest {
        /// The file.
        path: PathBuf,
        /// The image.
        name: String,
        /// What it says.
        digest: String,
    },
}

impl DigestsError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            DigestsError::Write { .. } => exit::STORAGE,
            _ => exit::CONFIG,
        }
    }
}

/// One pushed tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// imgforge's name of the image: `spark`, `spark-hs` or `hive-metastore`.
    pub name: String,
    /// The repository, registry included: `registry.example.com/ns/spark`.
    pub image: String,
    /// The tag pushed.
    pub tag: String,
    /// `sha256:…` of the manifest the registry serves for the tag.
    pub digest: String,
    /// `os/architecture[/variant]` of the image.
    pub platform: String,
}

impl DigestEntry {
    /// `image@digest`: the reference that pins exactly this manifest.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.image, self.digest)
    }
}

/// The entries for `pushed`, in push order.
pub fn entries(pushed: &[PushedImage]) -> Vec<DigestEntry> {
    let mut entries = Vec::new();
    for image in pushed {
        for tag in &image.tags {
            let (repository, tag_name) = split_tag(&tag.reference);
            entries.push(DigestEntry {
                name: image.image.clone(),
                image: repository,
                tag: tag_name,
                digest: tag.digest.clone(),
                platform: image.platform.clone(),
            });
        }
    }
    entries
}

/// `registry/name:tag` as its repository (as written) and tag, by the one reference grammar
/// ([`crate::reference`]); a reference that does not parse stays whole, with no tag.
pub fn split_tag(reference: &str) -> (String, String) {
    match reference.parse::<ImageReference>() {
        Ok(parsed) => (
            parsed.repository().to_string(),
            parsed.tag().map(ToString::to_string).unwrap_or_default(),
        ),
        Err(_) => (reference.to_string(), String::new()),
    }
}

/// Write `entries` to `path` (temp file beside it, then rename).
pub fn write(path: &Path, entries: &[DigestEntry]) -> Result<(), DigestsError> {
    let mut text = serde_json::to_string_pretty(entries).map_err(|error| DigestsError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(error),
    })?;
    text.push('\n');
    write_beside(path, text.as_bytes()).map_err(|source| DigestsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Write `bytes` to `path` through a temp file in the same folder and a rename, so the file
/// appears whole or not at all.
pub fn write_beside(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    crate::persist::write(path, bytes).map_err(|error| error.source)
}

/// Read the entries of `path`.
pub fn read(path: &Path) -> Result<Vec<DigestEntry>, DigestsError> {
    let text = std::fs::read_to_string(path).map_err(|source| DigestsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| DigestsError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// The one entry of image `name` in `entries` (read from `path`); its tags must agree on
/// the digest.
pub fn find<'a>(
    path: &Path,
    entries: &'a [DigestEntry],
    name: &str,
) -> Result<&'a DigestEntry, DigestsError> {
    let mut matching = entries.iter().filter(|entry| entry.name == name);
    let first = matching.next().ok_or_else(|| DigestsError::Missing {
        path: path.to_path_buf(),
        name: name.to_string(),
    })?;
    if let Some(other) = matching.find(|entry| entry.digest != first.digest) {
        return Err(DigestsError::Ambiguous {
            path: path.to_path_buf(),
            name: name.to_string(),
            first: first.digest.clone(),
            second: other.digest.clone(),
        });
    }
    if !is_sha256_digest(&first.digest) {
        return Err(DigestsError::BadDigest {
            path: path.to_path_buf(),
            name: name.to_string(),
            digest: first.digest.clone(),
        });
    }
    Ok(first)
}

/// Whether `digest` is `sha256:` followed by 64 lower-case hex digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::PushedTag;

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn entries_split_registry_ports_from_tags() {
        let pushed = [PushedImage {
            image: "spark".into(),
            id: "sha256:abc".into(),
            platform: "linux/amd64".into(),
            tags: vec![PushedTag {
                reference: "127.0.0.1:5000/ns/spark:3.5.3".into(),
                digest: DIGEST.into(),
            }],
        }];
        let entries = entries(&pushed);
        assert_eq!(entries[0].image, "127.0.0.1:5000/ns/spark");
        assert_eq!(entries[0].tag, "3.5.3");
        assert_eq!(
            entries[0].pinned(),
            format!("127.0.0.1:5000/ns/spark@{DIGEST}")
        );
    }

    #[test]
    fn find_refuses_missing_conflicting_and_malformed_digests() {
        let entry = |name: &str, digest: &str| DigestEntry {
            name: name.into(),
            image: format!("r.example/{name}"),
            tag: "t".into(),
            digest: digest.into(),
            platform: "linux/amd64".into(),
        };
        let path = Path::new("d.json");
        let good = [entry("spark", DIGEST), entry("spark-hs", DIGEST)];
        assert_eq!(find(path, &good, "spark").unwrap().name, "spark");
        assert!(matches!(
            find(path, &good, "hive-metastore"),
            Err(DigestsError::Missing { .. })
        ));
        let other = DIGEST.replace('0', "f");
        let conflicting = [entry("spark", DIGEST), entry("spark", &other)];
        assert!(matches!(
            find(path, &conflicting, "spark"),
            Err(DigestsError::Ambiguous { .. })
        ));
        let malformed = [entry("spark", "latest")];
        assert!(matches!(
            find(path, &malformed, "spark"),
            Err(DigestsError::BadDigest { .. })
        ));
    }
}
