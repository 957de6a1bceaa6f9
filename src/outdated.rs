//! Newer upstream releases: read the Apache dist directory listing (through the configured
//! mirrors) and report newer patch releases of the configured Spark line, and the newest
//! release overall. Versions are only ever reported, never changed.

use std::cmp::Ordering;
use std::fmt;

use url::Url;

use crate::config::Config;
use crate::exit;

/// Why the listing could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OutdatedError {
    /// No mirror answered with a listing.
    #[error("cannot read the Spark release listing; tried:{}", tried.iter().map(|(url, why)| format!("\n  - {url}: {why}")).collect::<String>())]
    Unavailable {
        /// Each URL and why it failed.
        tried: Vec<(String, String)>,
    },
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl OutdatedError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        exit::NETWORK
    }
}

/// A dotted numeric release version such as `3.1.2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    parts: Vec<u64>,
    text: String,
}

impl Release {
    /// Parse `3.1.2`; `None` for anything that is not dot-separated numbers (`3.2.0-preview`).
    pub fn parse(text: &str) -> Option<Release> {
        let parts: Option<Vec<u64>> = text.split('.').map(|part| part.parse().ok()).collect();
        parts.filter(|parts| parts.len() >= 2).map(|parts| Release {
            parts,
            text: text.to_string(),
        })
    }

    /// Same major and minor version.
    pub fn same_line(&self, other: &Release) -> bool {
        self.parts[..2] == other.parts[..2]
    }
}

impl Ord for Release {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl PartialOrd for Release {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The Spark releases named in an Apache dist directory listing (`<a href="spark-3.1.2/">`).
pub fn releases_in_listing(html: &str) -> Vec<Release> {
    let mut releases: Vec<Release> = html
        .split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter_map(|href| href.trim_end_matches('/').strip_prefix("spark-"))
        .filter_map(Release::parse)
        .collect();
    releases.sort();
    releases.dedup();
    releases
}

/// What `outdated` found for Spark.
#[derive(Debug, Clone)]
pub struct SparkUpdates {
    /// The configured version.
    pub current: String,
    /// Newer patch releases of the same line, oldest first.
    pub newer_patches: Vec<Release>,
    /// The newest release of any line, when newer than the current one.
    pub newest: Option<Release>,
    /// The listing that answered.
    pub listing_url: String,
}

/// Read the listing from the first mirror that answers and compare.
pub async fn spark_updates(config: &Config) -> Result<SparkUpdates, OutdatedError> {
    let client = crate::http::client_builder(config.network.timeout)
        .build()
        .map_err(OutdatedError::Client)?;
    let mut tried = Vec::new();
    for base in &config.mirrors.apache {
        let url: Url = crate::fetch::join(base, "spark/");
        let outcome = match client.get(url.clone()).send().await {
            Ok(response) if response.status().is_success() => {
                // A listing is read with a cap: an endless answer cannot fill memory.
                crate::http::read_bounded(response, crate::http::LISTING_CAP, "a directory listing")
                    .await
                    .map(|body| String::from_utf8_lossy(&body).into_owned())
                    .map_err(|error| match error {
                        crate::http::BoundedReadError::TooLarge { .. }
                        | crate::http::BoundedReadError::TooSlow { .. } => error.to_string(),
                        crate::http::BoundedReadError::Transport { source, .. } => {
                            crate::redact::redact_text(&source.to_string()).into_owned()
                        }
                    })
            }
            Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
            Err(error) => Err(crate::http::redirect_refusal(&error)
                .unwrap_or_else(|| crate::redact::redact_text(&error.to_string()).into_owned())),
        };
        let shown = crate::redact::redact_url(&url);
        match outcome {
            Ok(html) => return Ok(compare(&config.spark.version, &html, shown)),
            Err(why) => tried.push((shown, why)),
        }
    }
    Err(OutdatedError::Unavailable { tried })
}

fn compare(current: &str, html: &str, listing_url: String) -> SparkUpdates {
    let releases = releases_in_listing(html);
    let (newer_patches, newest) = match Release::parse(current) {
        Some(current) => (
            releases
                .iter()
                .filter(|release| release.same_line(&current) && **release > current)
                .cloned()
                .collect(),
            releases.last().filter(|newest| **newest > current).cloned(),
        ),
        None => (Vec::new(), None),
    };
    SparkUpdates {
        current: current.to_string(),
        newer_patches,
        newest,
        listing_url,
    }
}

/// Tags of `tags` that have the same form as `current` (digit runs aside) and a higher
/// version: for `17.0.2-jre`, `17.0.3-jre` and `21.0.1-jre` but not `17.0.3-jdk`. Sorted.
pub fn newer_tags(current: &str, tags: &[String]) -> Vec<String> {
    let (form, numbers) = tag_shape(current);
    if numbers.is_empty() {
        return Vec::new();
    }
    let mut newer: Vec<(Vec<u64>, String)> = tags
        .iter()
        .filter_map(|tag| {
            let (tag_form, tag_numbers) = tag_shape(tag);
            (tag_form == form && tag_numbers > numbers).then(|| (tag_numbers, tag.clone()))
        })
        .collect();
    newer.sort();
    newer.into_iter().map(|(_, tag)| tag).collect()
}

/// A tag's form (each run of digits replaced by `#`) and its numbers in order.
fn tag_shape(tag: &str) -> (String, Vec<u64>) {
    let mut form = String::new();
    let mut numbers = Vec::new();
    let mut digits = String::new();
    for c in tag.chars().chain(std::iter::once('\0')) {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        if !digits.is_empty() {
            numbers.push(digits.parse().unwrap_or(u64::MAX));
            digits.clear();
            form.push('#');
        }
        if c != '\0' {
            form.push(c);
        }
    }
    (form, numbers)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"<html><body><h1>Index of /dist/spark</h1><pre>
<a href="../">Parent Directory</a>
<a href="KEYS">KEYS</a>
<a href="spark-3.0.3/">spark-3.0.3/</a>
<a href="spark-3.1.1/">spark-3.1.1/</a>
<a href="spark-3.1.3/">spark-3.1.3/</a>
<a href="spark-3.1.2/">spark-3.1.2/</a>
<a href="spark-3.2.0-preview/">spark-3.2.0-preview/</a>
<a href="spark-3.5.1/">spark-3.5.1/</a>
<a href="spark-connect-go/">spark-connect-go/</a>
</pre></body></html>"#;

    #[test]
    fn newer_patches_of_the_line_and_the_newest_overall() {
        let updates = compare("3.1.1", LISTING, "u".into());
        let patches: Vec<String> = updates
            .newer_patches
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(patches, ["3.1.2", "3.1.3"]);
        assert_eq!(
            updates.newest.map(|release| release.to_string()),
            Some("3.5.1".into())
        );
    }

    #[test]
    fn nothing_newer_is_nothing() {
        let updates = compare("3.5.1", LISTING, "u".into());
        assert!(updates.newer_patches.is_empty() && updates.newest.is_none());
    }

    #[test]
    fn newer_tags_keep_the_form() {
        let tags: Vec<String> = [
            "17.0.2-jre",
            "17.0.10-jre",
            "21.0.1-jre",
            "17.0.3-jdk",
            "17-jre",
            "latest",
            "17.0.1-jre",
        ]
        .iter()
        .map(|tag| tag.to_string())
        .collect();
        assert_eq!(
            newer_tags("17.0.2-jre", &tags),
            ["17.0.10-jre", "21.0.1-jre"]
        );
        assert_eq!(newer_tags("17-jre", &tags), Vec::<String>::new());
        assert!(newer_tags("latest", &tags).is_empty());
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(Release::parse("3.10.0") > Release::parse("3.9.9"));
        assert!(Release::parse("3.2.0-preview").is_none());
    }
}
