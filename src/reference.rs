//! Image references, written once: the grammar of the distribution project's `reference`
//! package and the Docker Hub rules the docker CLI applies on top of it.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component { "/" path-component }   (at most 255 characters)
//! domain     := host [ ":" port ]          host: DNS-style labels, IPv4, or "[" IPv6 "]"
//! path-component := [a-z0-9]+ { separator [a-z0-9]+ }    separator: "." "_" "__" or "-"+
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! digest     := algorithm ":" hex         algorithm: [A-Za-z][A-Za-z0-9]* joined by [-_+.]
//! ```
//!
//! The first component of a name is a domain only when it contains `.` or `:` or is
//! `localhost`; otherwise the name is on Docker Hub (`docker.io`), and a one-component Hub
//! name is an official image under `library/`. `index.docker.io` is the Hub's old name.
//! The Hub's Registry API is served from `registry-1.docker.io`, and the docker CLI keys its
//! credentials for the Hub under `https://index.docker.io/v1/`.
//!
//! Every type keeps the text it was parsed from for `Display`, so a reference reaches the
//! engine and the user as it was written; equality compares the normalized form.
//!
//! This module is a leaf: it imports nothing from the rest of imgforge.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// Docker Hub's registry name, for names that give no domain.
pub const DOCKER_HUB: &str = "docker.io";
/// Docker Hub's old registry name, normalized to [`DOCKER_HUB`].
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
/// The host serving Docker Hub's Registry API.
const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The key the docker CLI stores and looks up Docker Hub credentials under.
pub const DOCKER_HUB_CREDENTIAL_KEY: &str = "https://index.docker.io/v1/";
/// The Hub namespace of official images (`busybox` is `library/busybox`).
const OFFICIAL_NAMESPACE: &str = "library";
/// The longest name (domain and path) the grammar allows.
const NAME_MAX: usize = 255;
/// The longest tag.
const TAG_MAX: usize = 128;

/// A text that is not the kind of reference part it was read as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not {what}: {invalid}")]
pub struct ReferenceError {
    /// The text as given.
    pub text: String,
    /// What it was read as, such as `a tag`.
    pub what: &'static str,
    /// Which rule it breaks.
    pub invalid: Invalid,
}

/// The rule a reference part breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Nothing was given.
    #[error("it is empty")]
    Empty,
    /// The name is longer than the grammar allows.
    #[error("the name is {length} characters long, at most {NAME_MAX} are allowed")]
    TooLong {
        /// The name's length.
        length: usize,
    },
    /// The domain is not a host name, IPv4 or bracketed IPv6 address.
    #[error("{host:?} is not a registry host")]
    Host {
        /// The host part.
        host: String,
    },
    /// The port is not a number from 0 to 65535.
    #[error("{port:?} is not a port")]
    Port {
        /// The port part.
        port: String,
    },
    /// A path component breaks the lower-case grammar.
    #[error(
        "{component:?} is not a lower-case path component (letters, digits, separated by '.', '_', '__' or '-')"
    )]
    PathComponent {
        /// The component.
        component: String,
    },
    /// The tag breaks the tag grammar.
    #[error(
        "{tag:?} is not a tag (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')"
    )]
    Tag {
        /// The tag.
        tag: String,
    },
    /// A `{name}` in a tag template that is no placeholder.
    #[error("{name} is not a placeholder")]
    Placeholder {
        /// The braces and what they hold, e.g. `{spark}`.
        name: String,
    },
    /// A registry written as a URL: image names carry no scheme.
    #[error(
        "image names carry no scheme: drop {scheme:?} and write {rest:?} (imgforge uses HTTPS, \
         or plain HTTP only for registries the engine treats as insecure)"
    )]
    Scheme {
        /// The scheme with its `://`, e.g. `http://`.
        scheme: String,
        /// The text after it.
        rest: String,
    },
    /// The digest is not `algorithm:hex`.
    #[error("{digest:?} is not a digest like \"sha256:<64 hex digits>\"")]
    Digest {
        /// The digest.
        digest: String,
    },
}

impl ReferenceError {
    fn new(text: &str, what: &'static str, invalid: Invalid) -> ReferenceError {
        ReferenceError {
            text: text.to_string(),
            what,
            invalid,
        }
    }
}

/// A registry: a host with an optional port, such as `registry.gitlab.com`,
/// `127.0.0.1:5000`, `[::1]:5000`, `localhost` or `docker.io`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Registry(String);

impl Registry {
    /// Docker Hub.
    pub fn docker_hub() -> Registry {
        Registry(DOCKER_HUB.to_string())
    }

    /// The registry named by an `auths` key, a `credHelpers` key or a server address, as the
    /// docker CLI reads them: the scheme and any path dropped, so
    /// `https://127.0.0.1:5000/v2/` names `127.0.0.1:5000`.
    pub fn from_server_address(address: &str) -> Result<Registry, ReferenceError> {
        let without_scheme = address
            .strip_prefix("https://")
            .or_else(|| address.strip_prefix("http://"))
            .unwrap_or(address);
        let host = without_scheme.split('/').next().unwrap_or(without_scheme);
        host.parse()
    }

    /// Whether this is Docker Hub, under its name or its API host.
    pub fn is_docker_hub(&self) -> bool {
        self.0 == DOCKER_HUB || self.0 == DOCKER_HUB_API_HOST
    }

    /// The host that serves this registry's Registry API (`registry-1.docker.io` for the Hub).
    pub fn api_host(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_API_HOST
        } else {
            &self.0
        }
    }

    /// The key the docker CLI keeps this registry's credentials under and hands to
    /// credential helpers: `https://index.docker.io/v1/` for the Hub, the registry otherwise.
    pub fn credential_key(&self) -> &str {
        if self.is_docker_hub() {
            DOCKER_HUB_CREDENTIAL_KEY
        } else {
            &self.0
        }
    }

    /// The host without its port, and an IPv6 address without its brackets (what a resolver
    /// takes).
    pub fn host(&self) -> &str {
        if let Some(rest) = self.0.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        self.0.split(':').next().unwrap_or(&self.0)
    }
}

impl FromStr for Registry {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |invalid| ReferenceError::new(text, "a registry host[:port]", invalid);
        check_scheme(text).map_err(error)?;
        check_domain(text).map_err(error)?;
        if text == DOCKER_HUB_LEGACY {
            return Ok(Registry::docker_hub());
        }
        Ok(Registry(text.to_string()))
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A name written as a URL (`https://registry.example/ns`): refused with what to write
/// instead, rather than as a host `"https"` with the port `"//registry.example"`.
fn check_scheme(text: &str) -> Result<(), Invalid> {
    if let Some((scheme, rest)) = text.split_once("://") {
        let is_scheme = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if is_scheme {
            return Err(Invalid::Scheme {
                scheme: format!("{scheme}://"),
                rest: rest.trim_end_matches('/').to_string(),
            });
        }
    }
    Ok(())
}

/// `host[:port]`: DNS-style labels (IPv4 included), or a bracketed IPv6 address.
fn check_domain(domain: &str) -> Result<(), Invalid> {
    if domain.is_empty() {
        return Err(Invalid::Empty);
    }
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or_else(|| Invalid::Host {
            host: domain.to_string(),
        })?;
        let valid = !address.is_empty()
            && address.contains(':')
            && address
                .chars()
                .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
        if !valid {
            return Err(Invalid::Host {
                host: format!("[{address}]"),
            });
        }
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if after.is_empty() => (None, None),
            None => {
                return Err(Invalid::Host {
                    host: domain.to_string(),
                });
            }
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(domain), None),
        }
    };
    if let Some(host) = host {
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if !host.split('.').all(label_ok) {
            return Err(Invalid::Host {
                host: host.to_string(),
            });
        }
    }
    if let Some(port) = port
        && (port.is_empty()
            || !port.chars().all(|c| c.is_ascii_digit())
            || port.parse::<u16>().is_err())
    {
        return Err(Invalid::Port {
            port: port.to_string(),
        });
    }
    Ok(())
}

/// `[a-z0-9]+` runs joined by `.`, `_`, `__` or one or more `-`.
fn check_path_component(component: &str) -> Result<(), Invalid> {
    let invalid = || Invalid::PathComponent {
        component: component.to_string(),
    };
    let alphanumeric = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !component.starts_with(alphanumeric) || !component.ends_with(alphanumeric) {
        return Err(invalid());
    }
    let mut separator = String::new();
    for c in component.chars() {
        if alphanumeric(c) {
            let allowed = separator.is_empty()
                || matches!(separator.as_str(), "." | "_" | "__")
                || separator.chars().all(|s| s == '-');
            if !allowed {
                return Err(invalid());
            }
            separator.clear();
        } else if matches!(c, '.' | '_' | '-') {
            separator.push(c);
        } else {
            return Err(invalid());
        }
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), Invalid> {
    if path.is_empty() {
        return Err(Invalid::Empty);
    }
    path.split('/').try_for_each(check_path_component)
}

/// The path of a repository within its registry, without a domain: `spark`, `team/spark`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RepositoryPath(String);

impl RepositoryPath {
    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RepositoryPath {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        check_path(text)
            .map_err(|invalid| ReferenceError::new(text, "a repository name", invalid))?;
        Ok(RepositoryPath(text.to_string()))
    }
}

impl fmt::Display for RepositoryPath {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A repository: `[domain/]path`, such as `busybox`, `me/app` or
/// `127.0.0.1:5000/team/spark`. Displays as written; compares by registry and full path.
#[derive(Debug, Clone)]
pub struct Repository {
    written: String,
    registry: Registry,
    path: String,
}

impl Repository {
    /// The registry (`docker.io` when the name gives no domain).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The path within the registry, with `library/` for official Hub images.
    pub fn path(&self) -> &str {
        &self.path
    }

    fn parse(text: &str, what: &'static str) -> Result<Repository, ReferenceError> {
        let error = |invalid| ReferenceError::new(text, what, invalid);
        if text.is_empty() {
            return Err(error(Invalid::Empty));
        }
        check_scheme(text).map_err(error)?;
        if text.len() > NAME_MAX {
            return Err(error(Invalid::TooLong { length: text.len() }));
        }
        let (registry, path) = match text.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':']) || first == "localhost" || first.starts_with('[') =>
            {
                let registry = first.parse::<Registry>().map_err(|e| error(e.invalid))?;
                (registry, rest.to_string())
            }
            _ => (Registry::docker_hub(), text.to_string()),
        };
        check_path(&path).map_err(error)?;
        let path = if registry.is_docker_hub() && !path.contains('/') {
            format!("{OFFICIAL_NAMESPACE}/{path}")
        } else {
            path
        };
        Ok(Repository {
            written: text.to_string(),
            registry,
            path,
        })
    }
}

impl FromStr for Repository {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Repository::parse(text, "a repository like \"registry.example/team/spark\"")
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.written)
    }
}

impl PartialEq for Repository {
    fn eq(&self, other: &Self) -> bool {
        self.registry == other.registry && self.path == other.path
    }
}

impl Eq for Repository {}

impl Hash for Repository {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.registry.hash(state);
        self.path.hash(state);
    }
}

/// Where image names are put: a registry with an optional namespace, or a Docker Hub
/// namespace, such as `registry.gitlab.com/gha1`, `127.0.0.1:5000` or `myuser`.
/// `{namespace}/{path}` must be a valid repository, which is how it is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace(String);

impl Namespace {
    /// The repository `path` under this namespace.
    pub fn repository(&self, path: &RepositoryPath) -> Result<Repository, ReferenceError> {
        Repository::parse(&format!("{}/{path}", self.0), "a repository")
    }

    /// The namespace, without a trailing `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Namespace {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim_end_matches('/');
        let what = "a registry[:port]/namespace like \"registry.gitlab.com/gha1\"";
        check_scheme(trimmed).map_err(|invalid| ReferenceError::new(text, what, invalid))?;
        // Any valid path component stands in for the image name.
        Repository::parse(&format!("{trimmed}/x"), "")
            .map(|_| Namespace(trimmed.to_string()))
            .map_err(|error| {
                let invalid = match error.invalid {
                    Invalid::Empty => Invalid::Host {
                        host: String::new(),
                    },
                    other => other,
                };
                ReferenceError::new(text, what, invalid)
            })
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl FromStr for Tag {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        let valid = text.len() <= TAG_MAX
            && text.starts_with(word)
            && text.chars().all(|c| word(c) || matches!(c, '.' | '-'));
        if valid {
            Ok(Tag(text.to_string()))
        } else {
            Err(ReferenceError::new(
                text,
                "a tag",
                Invalid::Tag {
                    tag: text.to_string(),
                },
            ))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// A placeholder a [`TagTemplate`] may hold, written `{name}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Placeholder {
    /// `{spark_version}`: the Spark release.
    Spark,
    /// `{hadoop_version}`: the Hadoop release the image carries.
    Hadoop,
    /// `{scala_version}`: Spark's Scala binary version.
    Scala,
    /// `{hive_version}`: the Hive metastore release.
    Hive,
    /// `{java_version}`: the Java major version of the image's base.
    Java,
    /// `{imgforge_version}`: the imgforge release that built the image.
    Imgforge,
}

impl Placeholder {
    /// Every placeholder, in the order messages list them.
    pub const ALL: [Placeholder; 6] = [
        Placeholder::Spark,
        Placeholder::Hadoop,
        Placeholder::Scala,
        Placeholder::Hive,
        Placeholder::Java,
        Placeholder::Imgforge,
    ];

    /// The name between the braces.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::Spark => "spark_version",
            Placeholder::Hadoop => "hadoop_version",
            Placeholder::Scala => "scala_version",
            Placeholder::Hive => "hive_version",
            Placeholder::Java => "java_version",
            Placeholder::Imgforge => "imgforge_version",
        }
    }

    /// A value of the usual shape, to check a template before the real values are known.
    fn sample(self) -> &'static str {
        match self {
            Placeholder::Spark => "3.1.1",
            Placeholder::Hadoop => "3.2.0",
            Placeholder::Scala => "2.12",
            Placeholder::Hive => "3.0.0",
            Placeholder::Java => "11",
            Placeholder::Imgforge => "0.1.0",
        }
    }

    /// `{spark_version}, {hadoop_version}, …`: every placeholder, for messages.
    pub fn list() -> String {
        Placeholder::ALL
            .iter()
            .map(|placeholder| placeholder.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{{{}}}", self.name())
    }
}

/// The values a [`TagTemplate`] is filled with for one image; `None` where the image has no
/// such version (the metastore image holds no Spark, the Spark image no Hive metastore).
#[derive(Debug, Clone, Copy, Default)]
pub struct TagVersions<'a> {
    /// `{spark_version}`.
    pub spark: Option<&'a str>,
    /// `{hadoop_version}`.
    pub hadoop: Option<&'a str>,
    /// `{scala_version}`.
    pub scala: Option<&'a str>,
    /// `{hive_version}`.
    pub hive: Option<&'a str>,
    /// `{java_version}`.
    pub java: Option<&'a str>,
    /// `{imgforge_version}`.
    pub imgforge: Option<&'a str>,
}

impl<'a> TagVersions<'a> {
    /// The value of `placeholder`, when the image has one.
    pub fn get(&self, placeholder: Placeholder) -> Option<&'a str> {
        match placeholder {
            Placeholder::Spark => self.spark,
            Placeholder::Hadoop => self.hadoop,
            Placeholder::Scala => self.scala,
            Placeholder::Hive => self.hive,
            Placeholder::Java => self.java,
            Placeholder::Imgforge => self.imgforge,
        }
    }
}

/// A tag with placeholders (see [`Placeholder`]) that makes a valid tag once they are
/// filled with values of the usual shape. A `{name}` that is no placeholder is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagTemplate {
    text: String,
    placeholders: Vec<Placeholder>,
}

impl TagTemplate {
    /// The placeholders the template holds, each once, in order of first use.
    pub fn placeholders(&self) -> &[Placeholder] {
        &self.placeholders
    }

    /// The text with the placeholders filled in (a valid tag only if the values are), or
    /// the first placeholder `versions` has no value for.
    pub fn fill(&self, versions: &TagVersions<'_>) -> Result<String, Placeholder> {
        let mut text = self.text.clone();
        for placeholder in &self.placeholders {
            let value = versions.get(*placeholder).ok_or(*placeholder)?;
            text = text.replace(&placeholder.to_string(), value);
        }
        Ok(text)
    }
}

impl FromStr for TagTemplate {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |invalid| {
            ReferenceError::new(
                text,
                "a tag template (placeholders {spark_version}, {hadoop_version}, \
                 {scala_version}, {hive_version}, {java_version}, {imgforge_version})",
                invalid,
            )
        };
        let mut placeholders = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            // An unclosed brace is left to the tag grammar, which refuses it.
            let Some(close) = after.find('}') else { break };
            let name = &after[..close];
            let placeholder = Placeholder::ALL
                .into_iter()
                .find(|placeholder| placeholder.name() == name)
                .ok_or_else(|| {
                    error(Invalid::Placeholder {
                        name: format!("{{{name}}}"),
                    })
                })?;
            if !placeholders.contains(&placeholder) {
                placeholders.push(placeholder);
            }
            rest = &after[close + 1..];
        }
        let template = TagTemplate {
            text: text.to_string(),
            placeholders,
        };
        let samples = TagVersions {
            spark: Some(Placeholder::Spark.sample()),
            hadoop: Some(Placeholder::Hadoop.sample()),
            scala: Some(Placeholder::Scala.sample()),
            hive: Some(Placeholder::Hive.sample()),
            java: Some(Placeholder::Java.sample()),
            imgforge: Some(Placeholder::Imgforge.sample()),
        };
        let sample = template.fill(&samples).map_err(|placeholder| {
            error(Invalid::Placeholder {
                name: placeholder.to_string(),
            })
        })?;
        sample
            .parse::<Tag>()
            .map_err(|tag_error| error(tag_error.invalid))?;
        Ok(template)
    }
}

impl fmt::Display for TagTemplate {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

/// A content digest, `algorithm:hex`, such as `sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: String,
    hex: String,
}

impl FromStr for Digest {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || {
            ReferenceError::new(
                text,
                "a digest",
                Invalid::Digest {
                    digest: text.to_string(),
                },
            )
        };
        let (algorithm, hex) = text.split_once(':').ok_or_else(error)?;
        let component_ok = |component: &str| {
            component.starts_with(|c: char| c.is_ascii_alphabetic())
                && component.chars().all(|c| c.is_ascii_alphanumeric())
        };
        let algorithm_ok = algorithm.split(['-', '_', '+', '.']).all(component_ok);
        let length_ok = match algorithm {
            "sha256" => hex.len() == 64,
            "sha512" => hex.len() == 128,
            _ => hex.len() >= 32,
        };
        let hex_ok = hex.chars().all(|c| c.is_ascii_hexdigit())
            && (!matches!(algorithm, "sha256" | "sha512")
                || hex.chars().all(|c| !c.is_ascii_uppercase()));
        if algorithm_ok && length_ok && hex_ok {
            Ok(Digest {
                algorithm: algorithm.to_string(),
                hex: hex.to_string(),
            })
        } else {
            Err(error())
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:{}", self.algorithm, self.hex)
    }
}

/// A full image reference: `repository[:tag][@digest]`, such as `eclipse-temurin:17-jre` or
/// `registry:5000/ns/jre@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    repository: Repository,
    tag: Option<Tag>,
    digest: Option<Digest>,
}

impl ImageReference {
    /// `repository:tag`.
    pub fn tagged(repository: Repository, tag: Tag) -> ImageReference {
        ImageReference {
            repository,
            tag: Some(tag),
            digest: None,
        }
    }

    /// The repository.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The registry (`docker.io` when the reference gives no domain).
    pub fn registry(&self) -> &Registry {
        self.repository.registry()
    }

    /// The tag, when one is given.
    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// The digest, when one is given.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
}

const IMAGE_REFERENCE: &str = "an image reference like \"eclipse-temurin:17-jre\"";

impl FromStr for ImageReference {
    type Err = ReferenceError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |invalid| ReferenceError::new(text, IMAGE_REFERENCE, invalid);
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (
                rest,
                Some(digest.parse::<Digest>().map_err(|e| error(e.invalid))?),
            ),
            None => (text, None),
        };
        // The tag's colon is the last one after the last '/' (a port's colon comes before it).
        let after_slash = rest.rfind('/').map_or(0, |index| index + 1);
        let (name, tag) = match rest[after_slash..].rfind(':') {
            Some(colon) => {
                let colon = after_slash + colon;
                let tag = &rest[colon + 1..];
                (
                    &rest[..colon],
                    Some(tag.parse::<Tag>().map_err(|e| error(e.invalid))?),
                )
            }
            None => (rest, None),
        };
        let repository = Repository::parse(name, IMAGE_REFERENCE).map_err(|e| error(e.invalid))?;
        Ok(ImageReference {
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.repository)?;
        if let Some(tag) = &self.tag {
            write!(formatter, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(formatter, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// text, registry, path, tag, digest
    type Split = (
        &'static str,
        &'static str,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
    );

    const SHA: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn references_split_and_normalize_like_the_docker_cli() {
        let cases: &[Split] = &[
            ("busybox", "docker.io", "library/busybox", None, None),
            ("busybox:1", "docker.io", "library/busybox", Some("1"), None),
            ("me/app:1", "docker.io", "me/app", Some("1"), None),
            (
                "docker.io/busybox:1",
                "docker.io",
                "library/busybox",
                Some("1"),
                None,
            ),
            ("index.docker.io/me/app", "docker.io", "me/app", None, None),
            (
                "docker.io/library/busybox",
                "docker.io",
                "library/busybox",
                None,
                None,
            ),
            (
                "127.0.0.1:5000/team/spark:3.1.1",
                "127.0.0.1:5000",
                "team/spark",
                Some("3.1.1"),
                None,
            ),
            (
                "registry.gitlab.com/gha1/spark:latest",
                "registry.gitlab.com",
                "gha1/spark",
                Some("latest"),
                None,
            ),
            (
                "localhost/spark:latest",
                "localhost",
                "spark",
                Some("latest"),
                None,
            ),
            (
                "localhost:5000/spark",
                "localhost:5000",
                "spark",
                None,
                None,
            ),
            ("[::1]:5000/spark:1", "[::1]:5000", "spark", Some("1"), None),
            (
                "Registry.Example/spark:1",
                "Registry.Example",
                "spark",
                Some("1"),
                None,
            ),
            (
                "eclipse-temurin:17-jre",
                "docker.io",
                "library/eclipse-temurin",
                Some("17-jre"),
                None,
            ),
            (
                "a__b/c.d_e--f:x",
                "docker.io",
                "a__b/c.d_e--f",
                Some("x"),
                None,
            ),
            (
                "imgforge-test/openjdk:17-jre",
                "docker.io",
                "imgforge-test/openjdk",
                Some("17-jre"),
                None,
            ),
        ];
        for (text, registry, path, tag, digest) in cases {
            let reference: ImageReference = text
                .parse()
                .unwrap_or_else(|error| panic!("{text}: {error}"));
            assert_eq!(reference.registry().to_string(), *registry, "{text}");
            assert_eq!(reference.repository().path(), *path, "{text}");
            assert_eq!(
                reference.tag().map(Tag::to_string).as_deref(),
                *tag,
                "{text}"
            );
            assert_eq!(
                reference.digest().map(|d| d.to_string()).as_deref(),
                *digest
            );
            assert_eq!(reference.to_string(), *text, "displays as written");
        }
        let pinned: ImageReference = format!("registry:5000/ns/jre:8@{SHA}").parse().unwrap();
        assert_eq!(
            pinned.registry().to_string(),
            "registry:5000",
            "a port makes a domain"
        );
        let hub: ImageReference = "registry/ns/jre:8".parse().unwrap();
        assert_eq!(
            hub.registry().to_string(),
            "docker.io",
            "no '.' or ':': a Hub namespace"
        );
        assert_eq!(pinned.digest().unwrap().to_string(), SHA);
        let pinned: ImageReference = format!("registry.example:5000/jre@{SHA}").parse().unwrap();
        assert_eq!(pinned.registry().to_string(), "registry.example:5000");
        assert_eq!(pinned.tag(), None);
        assert_eq!(
            pinned.to_string(),
            format!("registry.example:5000/jre@{SHA}")
        );
    }

    #[test]
    fn invalid_references_name_the_broken_part() {
        let cases: &[(&str, Invalid)] = &[
            ("", Invalid::Empty),
            ("Spark:latest", component("Spark")),
            ("a//b:1", component("")),
            ("reg istry/spark:1", component("reg istry")),
            ("spark:-bad", tag("-bad")),
            ("registry.gitlab.com/gha1/spark:", tag("")),
            (
                "host:notaport/spark:1",
                Invalid::Port {
                    port: "notaport".into(),
                },
            ),
            (
                "host:99999/spark",
                Invalid::Port {
                    port: "99999".into(),
                },
            ),
            (
                "-bad.example/spark",
                Invalid::Host {
                    host: "-bad.example".into(),
                },
            ),
            ("registry.example/", Invalid::Empty),
            ("a-/b", component("a-")),
            ("a___b", component("a___b")),
            ("a._b", component("a._b")),
            (
                "spark@sha256:abc",
                Invalid::Digest {
                    digest: "sha256:abc".into(),
                },
            ),
            ("Registry.Example/UPPER:tag", component("UPPER")),
        ];
        for (text, invalid) in cases {
            let error = text.parse::<ImageReference>().expect_err(text);
            assert_eq!(&error.invalid, invalid, "{text}");
            assert!(error.to_string().contains(&format!("{text:?}")), "{error}");
        }
        let long = format!("{}/x", "a".repeat(NAME_MAX));
        assert!(matches!(
            long.parse::<ImageReference>().unwrap_err().invalid,
            Invalid::TooLong { .. }
        ));
    }

    fn component(text: &str) -> Invalid {
        Invalid::PathComponent {
            component: text.into(),
        }
    }

    fn tag(text: &str) -> Invalid {
        Invalid::Tag { tag: text.into() }
    }

    #[test]
    fn docker_hub_has_an_api_host_and_a_legacy_credential_key() {
        let cases = [
            // registry, api host, credential key, host without port
            (
                "docker.io",
                "registry-1.docker.io",
                DOCKER_HUB_CREDENTIAL_KEY,
                "docker.io",
            ),
            (
                "index.docker.io",
                "registry-1.docker.io",
                DOCKER_HUB_CREDENTIAL_KEY,
                "docker.io",
            ),
            (
                "registry-1.docker.io",
                "registry-1.docker.io",
                DOCKER_HUB_CREDENTIAL_KEY,
                "registry-1.docker.io",
            ),
            (
                "127.0.0.1:5000",
                "127.0.0.1:5000",
                "127.0.0.1:5000",
                "127.0.0.1",
            ),
            ("[::1]:5000", "[::1]:5000", "[::1]:5000", "::1"),
            ("[::1]", "[::1]", "[::1]", "::1"),
            (
                "registry.example",
                "registry.example",
                "registry.example",
                "registry.example",
            ),
        ];
        for (text, api_host, key, host) in cases {
            let registry: Registry = text.parse().unwrap();
            assert_eq!(registry.api_host(), api_host, "{text}");
            assert_eq!(registry.credential_key(), key, "{text}");
            assert_eq!(registry.host(), host, "{text}");
        }
    }

    #[test]
    fn server_addresses_lose_scheme_and_path() {
        for (address, registry) in [
            ("https://index.docker.io/v1/", "docker.io"),
            ("https://127.0.0.1:5000/v2/", "127.0.0.1:5000"),
            ("http://registry.example", "registry.example"),
            ("127.0.0.1:5000", "127.0.0.1:5000"),
        ] {
            assert_eq!(
                Registry::from_server_address(address).unwrap().to_string(),
                registry
            );
        }
        assert!(Registry::from_server_address("https://bad host/").is_err());
    }

    #[test]
    fn namespaces_are_checked_as_the_start_of_a_repository() {
        let spark: RepositoryPath = "spark".parse().unwrap();
        for (text, full) in [
            ("registry.gitlab.com/gha1", "registry.gitlab.com/gha1/spark"),
            (
                "registry.gitlab.com/gha1/",
                "registry.gitlab.com/gha1/spark",
            ),
            ("127.0.0.1:5000", "127.0.0.1:5000/spark"),
            ("localhost", "localhost/spark"),
            ("myuser", "docker.io/myuser/spark"),
        ] {
            let namespace: Namespace = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            let repository = namespace.repository(&spark).unwrap();
            assert_eq!(
                format!("{}/{}", repository.registry(), repository.path()),
                full
            );
        }
        for text in [
            "Bad Registry",
            "",
            "registry.example//x",
            "host:port/x",
            "Upper",
        ] {
            let error = text.parse::<Namespace>().expect_err(text);
            assert!(error.to_string().contains(&format!("{text:?}")), "{error}");
        }
        for text in ["team/spark", "spark-hs", "a.b/c"] {
            text.parse::<RepositoryPath>().unwrap();
        }
        for text in [
            "",
            "Spark",
            "/spark",
            "spark/",
            "registry.example:5000/spark",
        ] {
            assert!(text.parse::<RepositoryPath>().is_err(), "{text}");
        }
    }

    #[test]
    fn tags_and_templates() {
        let long = "a".repeat(TAG_MAX);
        for text in ["latest", "3.5.1-hadoop3.3.4", "_x", "A.b-C", long.as_str()] {
            text.parse::<Tag>()
                .unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        let too_long = "a".repeat(TAG_MAX + 1);
        for text in ["", ".x", "-x", "x y", "x/y", "x:y", too_long.as_str()] {
            assert!(text.parse::<Tag>().is_err(), "{text}");
        }
        let versions = TagVersions {
            spark: Some("3.5.1"),
            hadoop: Some("3.3.4"),
            scala: Some("2.13"),
            hive: Some("3.1.3"),
            java: Some("17"),
            imgforge: Some("0.4.0"),
        };
        for (template, filled) in [
            ("{spark_version}", "3.5.1"),
            (
                "{spark_version}-hadoop{hadoop_version}",
                "3.5.1-hadoop3.3.4",
            ),
            ("{spark_version}-scala{scala_version}", "3.5.1-scala2.13"),
            ("{hive_version}-hadoop{hadoop_version}", "3.1.3-hadoop3.3.4"),
            ("{spark_version}-java{java_version}", "3.5.1-java17"),
            (
                "{spark_version}-imgforge{imgforge_version}",
                "3.5.1-imgforge0.4.0",
            ),
            ("{hive_version}-{hive_version}", "3.1.3-3.1.3"),
            ("latest", "latest"),
        ] {
            let parsed: TagTemplate = template.parse().unwrap();
            assert_eq!(parsed.fill(&versions).unwrap(), filled);
            assert_eq!(parsed.to_string(), template);
        }
        for template in [
            "x y",
            "{spark_version}/x",
            "-{spark_version}",
            "{unknown}",
            "{spark_version",
        ] {
            let error = template.parse::<TagTemplate>().expect_err(template);
            assert!(error.to_string().contains("placeholders"), "{error}");
        }
    }

    #[test]
    fn an_unknown_placeholder_is_named_and_a_missing_value_reported() {
        for (template, name) in [
            ("{spark}", "{spark}"),
            ("{spark_version}-{hive_versoin}", "{hive_versoin}"),
            ("{}", "{}"),
        ] {
            let error = template.parse::<TagTemplate>().expect_err(template);
            assert_eq!(
                error.invalid,
                Invalid::Placeholder { name: name.into() },
                "{template}"
            );
            assert!(
                error
                    .to_string()
                    .contains(&format!("{name} is not a placeholder")),
                "{error}"
            );
        }
        let template: TagTemplate = "{hive_version}-hadoop{hadoop_version}".parse().unwrap();
        assert_eq!(
            template.placeholders(),
            [Placeholder::Hive, Placeholder::Hadoop]
        );
        let spark_only = TagVersions {
            spark: Some("3.1.1"),
            hadoop: Some("3.2.0"),
            ..TagVersions::default()
        };
        assert_eq!(template.fill(&spark_only), Err(Placeholder::Hive));
    }

    #[test]
    fn a_registry_written_as_a_url_is_told_to_drop_the_scheme() {
        for (text, scheme, rest) in [
            ("http://127.0.0.1:5000/ns", "http://", "127.0.0.1:5000/ns"),
            (
                "https://registry.example/team/",
                "https://",
                "registry.example/team",
            ),
            ("HTTPS://ghcr.io", "HTTPS://", "ghcr.io"),
        ] {
            let expected = Invalid::Scheme {
                scheme: scheme.into(),
                rest: rest.into(),
            };
            let error = text.parse::<Namespace>().expect_err(text);
            assert_eq!(error.invalid, expected, "{text}");
            let message = error.to_string();
            assert!(
                message.contains(&format!("drop {scheme:?} and write {rest:?}")),
                "{message}"
            );
            assert!(!message.contains("is not a port"), "{message}");
            let reference = format!("{}/spark:1", text.trim_end_matches('/'));
            let error = reference.parse::<ImageReference>().expect_err(&reference);
            assert!(matches!(error.invalid, Invalid::Scheme { .. }), "{error}");
        }
        let error = "http://127.0.0.1:5000"
            .parse::<Registry>()
            .expect_err("scheme");
        assert!(matches!(error.invalid, Invalid::Scheme { .. }), "{error}");
    }

    #[test]
    fn digests() {
        SHA.parse::<Digest>().unwrap();
        format!("sha512:{}", "a".repeat(128))
            .parse::<Digest>()
            .unwrap();
        format!("multihash+base58:{}", "a".repeat(32))
            .parse::<Digest>()
            .unwrap();
        for text in [
            "sha256",
            "sha256:abc",
            &format!("sha256:{}", "A".repeat(64)),
            &format!("sha256:{}", "g".repeat(64)),
            &format!("1sha:{}", "a".repeat(64)),
            &format!(":{}", "a".repeat(64)),
        ] {
            assert!(text.parse::<Digest>().is_err(), "{text}");
        }
    }

    #[test]
    fn equality_is_by_normalized_name() {
        let short: Repository = "busybox".parse().unwrap();
        let full: Repository = "docker.io/library/busybox".parse().unwrap();
        assert_eq!(short, full);
        assert_eq!(short.to_string(), "busybox");
        assert_eq!(
            format!("{}/{}", full.registry(), full.path()),
            "docker.io/library/busybox"
        );
    }
}
