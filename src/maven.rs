//! Maven POM resolution: which jars must sit beside `hadoop-aws` so Spark speaks S3A.
//!
//! Nothing here knows a Hadoop or AWS SDK version. The answer is read from the POMs
//! the way Maven reads them: `hadoop-aws-<v>.pom` names its dependencies, mostly
//! without versions; the versions live in `org.apache.hadoop:hadoop-project:<v>` as
//! properties (`aws-java-sdk.version`, `aws-java-sdk-v2.version`, …) referenced from
//! its `<dependencyManagement>`, and some properties (`hadoop.version`,
//! `leveldbjni.group`) come from `hadoop-main`, one more level up.
//!
//! # The model, as Maven builds it
//!
//! [`effective_pom`] follows the same order as Maven's model builder:
//!
//! 1. **Inheritance.** The `<parent>` chain is fetched as far as it goes. `groupId`
//!    and `version` default to the parent's; properties merge child-over-parent;
//!    `<dependencyManagement>` and `<dependencies>` merge by management key
//!    (`groupId:artifactId:type:classifier`), the child's entry winning. `packaging`
//!    is not inherited. `<relativePath>` is ignored: only the repository counts.
//! 2. **Interpolation**, in the *child's* context: `${project.version}` written in
//!    `hadoop-project` means the version of the POM being built, not of
//!    `hadoop-project`. Built-ins (`project.*`, `pom.*` for groupId, artifactId,
//!    version, packaging, parent.groupId/artifactId/version) are looked up first,
//!    then properties; values are expanded recursively, and a cycle is an error.
//!    There are no environment, system or `settings.xml` properties.
//! 3. **BOM imports.** Managed entries with `<scope>import</scope>` and
//!    `<type>pom</type>` are replaced by the imported POM's own effective
//!    management (interpolated in *its* context). Entries written in the model win
//!    over imported ones, and earlier imports win over later ones.
//! 4. **Management injection.** A dependency lacking a version or scope takes the
//!    managed one; managed exclusions apply only when the dependency lists none;
//!    `<optional>` is never managed (Maven 3's rule).
//!
//! Profiles are not activated. Hadoop's profiles only switch test and build
//! settings, and some management entries use properties that exist only inside
//! profiles (`${hbase.version}` in `hadoop-project`). That is why interpolation is
//! lenient, as Maven's is: an expression that cannot be resolved stays in place and
//! only becomes an error ([`MavenError::UnresolvedProperty`]) when a value that is
//! actually needed contains it.
//!
//! # Parents missing from the mirror
//!
//! A mirror may lack the top of the chain (the `org.apache:apache` parent POM of
//! `hadoop-main`). When a parent cannot be fetched the chain stops there and the
//! failure is remembered, logged, and reported — naming the missing POM — as soon as
//! anything needed cannot be resolved ([`MavenError::MissingParent`]). If nothing
//! needed is missing, resolution succeeds. The price, accepted knowingly: a missing
//! parent could in principle also add `<dependencies>` or managed scopes; Apache's
//! parent POMs do neither.
//!
//! # Which jars S3A needs ([`s3a_runtime_jars`])
//!
//! * **Scopes `compile` and `runtime` are kept.** Maven's runtime class path is
//!   exactly these two scopes, and Hadoop uses both on purpose: the SDK bundle is
//!   `compile` (3.2.0's `com.amazonaws:aws-java-sdk-bundle`, with its version from
//!   `${aws-java-sdk.version}` in `hadoop-project`; from 3.4,
//!   `software.amazon.awssdk:bundle` from `${aws-java-sdk-v2.version}`), and since
//!   3.3 `org.wildfly.openssl:wildfly-openssl` is `runtime`. S3A's TLS factory looks
//!   for wildfly's OpenSSL provider, and Spark's default distribution does not ship
//!   it (only builds with `-Phadoop-cloud` do, which also ship `hadoop-aws`). It is
//!   therefore added unless the caller reports it present. The newest lines add
//!   `software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3` as `compile`;
//!   it is picked up by the same rule, without naming it.
//! * **Excluded:** `test`, `provided` (hadoop-common, the v1 `aws-java-sdk-core`
//!   adapter classes and the S3 encryption client are `provided` in 3.4), `system`;
//!   `<optional>true</optional>`; every `org.apache.hadoop:*` artifact (Spark bundles
//!   Hadoop already); and whatever the caller says is already present.
//! * **Direct dependencies only.** `hadoop-project` manages both SDK bundles with a
//!   `*:*` exclusion (they are shaded), and the other runtime jars bring nothing
//!   Spark lacks: Spark's own `hadoop-cloud` dependency list shows exactly
//!   `bundle`, `analyticsaccelerator-s3` and `wildfly-openssl` beside `hadoop-aws`.
//!   A runtime dependency this resolver could not turn into a plain jar (a `pom`
//!   type, which would bring transitive dependencies, or a classifier) is an error
//!   rather than a silent omission.
//! * The SDK bundle is reported in [`S3aJars::sdk_bundle`] even when the caller
//!   says a bundle is present: a bundle of another version is exactly what the
//!   caller must be able to notice, so the predicate only filters
//!   [`S3aJars::others`].

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// The error type a [`PomSource`] reports.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Longest value a single `${…}` expansion may produce; guards against
/// exponentially nested property definitions in a hostile POM.
const MAX_EXPANSION_BYTES: usize = 1 << 20;

/// Maven coordinates. Display "group:artifact:version".
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Coordinates {
    /// `groupId`, e.g. `org.apache.hadoop`.
    pub group_id: String,
    /// `artifactId`, e.g. `hadoop-aws`.
    pub artifact_id: String,
    /// `version`, e.g. `3.3.6`.
    pub version: String,
}

impl Coordinates {
    /// Builds coordinates from their three parts.
    pub fn new(
        group_id: impl Into<String>,
        artifact_id: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        Self {
            group_id: group_id.into(),
            artifact_id: artifact_id.into(),
            version: version.into(),
        }
    }

    /// The artifact's path relative to a Maven 2 repository root, e.g.
    /// `org/apache/hadoop/hadoop-aws/3.2.0/hadoop-aws-3.2.0.jar` for extension `jar`.
    pub fn path(&self, extension: &str) -> String {
        format!(
            "{}/{artifact}/{version}/{artifact}-{version}.{extension}",
            self.group_id.replace('.', "/"),
            artifact = self.artifact_id,
            version = self.version,
        )
    }

    /// Whether `other` names the same artifact, whatever its version.
    pub fn same_artifact(&self, other: &Coordinates) -> bool {
        self.group_id == other.group_id && self.artifact_id == other.artifact_id
    }

    /// Rejects coordinates that would not make a safe repository path: empty parts,
    /// empty group segments, path separators, `.`/`..`, and characters Maven forbids.
    fn validate(&self) -> Result<(), MavenError> {
        let invalid = |reason: &str| MavenError::InvalidCoordinates {
            coordinates: self.to_string(),
            reason: reason.to_owned(),
        };
        let plain = |part: &str| {
            part.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '~'))
        };
        if self.group_id.split('.').any(str::is_empty) || !plain(&self.group_id) {
            return Err(invalid(
                "groupId must be dot-separated names of [A-Za-z0-9_-+~]",
            ));
        }
        for (name, part) in [
            ("artifactId", &self.artifact_id),
            ("version", &self.version),
        ] {
            if part.is_empty() || part == "." || part == ".." || !plain(part) {
                return Err(invalid(&format!(
                    "{name} must be a non-empty name of [A-Za-z0-9._-+~] other than . and .."
                )));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Coordinates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.group_id, self.artifact_id, self.version)
    }
}

/// A chain of POMs, displayed as `a -> b -> c`; used by the cycle errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain(pub Vec<Coordinates>);

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, coordinates) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{coordinates}")?;
        }
        Ok(())
    }
}

/// Source of POM texts (the caller fetches them through the verified cache).
///
/// `Sync` because resolution holds `&self` across awaits and its futures are `Send`.
pub trait PomSource: Sync {
    /// The text of the POM for `coordinates` (`coordinates.path("pom")` on a mirror).
    fn pom(
        &self,
        coordinates: &Coordinates,
    ) -> impl Future<Output = Result<String, SourceError>> + Send;
}

/// Everything that can go wrong while resolving POMs.
#[derive(Debug, thiserror::Error)]
pub enum MavenError {
    /// The source could not deliver a POM that resolution cannot do without.
    #[error("could not fetch POM {coordinates}")]
    Source {
        /// The POM requested.
        coordinates: Coordinates,
        /// What the source reported.
        #[source]
        source: SourceError,
    },
    /// A POM is not well-formed XML.
    #[error("malformed XML in POM {}", describe_pom(.pom.as_ref()))]
    MalformedXml {
        /// The POM, when known (`parse_pom` alone does not know it).
        pom: Option<Coordinates>,
        /// 1-based line of the problem.
        line: u32,
        /// 1-based column of the problem.
        column: u32,
        /// The parser's complaint.
        #[source]
        source: Box<roxmltree::Error>,
    },
    /// A POM is well-formed XML but not a usable POM.
    #[error("invalid POM {}: {reason}", describe_pom(.pom.as_ref()))]
    InvalidPom {
        /// The POM, when known.
        pom: Option<Coordinates>,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository served a POM for other coordinates than those requested.
    #[error("the POM served for {requested} declares {declared}")]
    CoordinatesMismatch {
        /// What was asked for.
        requested: Coordinates,
        /// What the POM says it is.
        declared: String,
    },
    /// Coordinates that would not make a safe repository path.
    #[error("invalid coordinates {coordinates}: {reason}")]
    InvalidCoordinates {
        /// The coordinates, as found.
        coordinates: String,
        /// Which rule they break.
        reason: String,
    },
    /// A POM is, directly or not, its own parent.
    #[error("cycle in parent POMs: {chain}")]
    ParentCycle {
        /// The chain, ending with the repeated POM.
        chain: Chain,
    },
    /// A BOM imports, directly or not, a POM that is importing it.
    #[error("cycle in BOM imports: {chain}")]
    ImportCycle {
        /// The chain of importers, ending with the repeated POM.
        chain: Chain,
    },
    /// Properties that refer to each other.
    #[error("property cycle {cycle} in the model of {pom}")]
    PropertyCycle {
        /// The cycle, as `a -> b -> a`.
        cycle: String,
        /// The POM whose model was being interpolated.
        pom: Coordinates,
    },
    /// A property expands to an unreasonable size.
    #[error(
        "property `{property}` in the model of {pom} expands beyond {MAX_EXPANSION_BYTES} bytes"
    )]
    PropertyTooLarge {
        /// The property being expanded.
        property: String,
        /// The POM whose model was being interpolated.
        pom: Coordinates,
    },
    /// A needed value refers to a property defined nowhere in the parent chain.
    #[error("property `{property}` is not defined, but {used_in} in {pom} uses it")]
    UnresolvedProperty {
        /// The property name, without `${}`.
        property: String,
        /// The value that uses it.
        used_in: String,
        /// The POM whose model was being resolved.
        pom: Coordinates,
    },
    /// A needed value could not be resolved, and a parent POM that might define it
    /// could not be fetched.
    #[error("{needed} for {used_in} is not defined in the POMs available")]
    MissingParent {
        /// What could not be resolved, e.g. "property `aws-java-sdk.version`".
        needed: String,
        /// The value that needs it, and the POM whose model was being resolved.
        used_in: String,
        /// The parent that could not be fetched.
        #[source]
        source: Box<ParentUnavailable>,
    },
    /// A dependency has no version, neither its own nor a managed one.
    #[error("dependency {dependency} in {pom} has no version, declared or managed")]
    MissingVersion {
        /// The dependency, as `group:artifact`.
        dependency: String,
        /// The POM whose model was being resolved.
        pom: Coordinates,
    },
    /// A dependency needed at run time that this resolver cannot turn into a jar.
    #[error("dependency {dependency} in {pom} cannot be used: {reason}")]
    UnusableDependency {
        /// The dependency, as `group:artifact`.
        dependency: String,
        /// The POM whose model was being resolved.
        pom: Coordinates,
        /// Why.
        reason: String,
    },
    /// `hadoop-aws` declares no AWS SDK bundle among its runtime dependencies.
    #[error(
        "{pom} declares neither com.amazonaws:aws-java-sdk-bundle nor \
         software.amazon.awssdk:bundle as a runtime dependency"
    )]
    NoSdkBundle {
        /// The POM inspected.
        pom: Coordinates,
    },
}

/// A parent POM the source could not deliver; the chain above it is unknown.
#[derive(Debug, Clone, thiserror::Error)]
#[error("parent POM {missing} of {child} could not be fetched")]
pub struct ParentUnavailable {
    /// The parent POM that could not be fetched.
    pub missing: Coordinates,
    /// The POM that names it as parent.
    pub child: Coordinates,
    /// What the source reported.
    #[source]
    pub source: Arc<dyn std::error::Error + Send + Sync>,
}

fn describe_pom(pom: Option<&Coordinates>) -> String {
    pom.map_or_else(
        || "(coordinates unknown)".to_owned(),
        Coordinates::to_string,
    )
}

impl MavenError {
    /// Names the POM in parse errors raised before its coordinates were known.
    fn in_pom(self, coordinates: &Coordinates) -> Self {
        match self {
            Self::MalformedXml {
                pom: None,
                line,
                column,
                source,
            } => Self::MalformedXml {
                pom: Some(coordinates.clone()),
                line,
                column,
                source,
            },
            Self::InvalidPom { pom: None, reason } => Self::InvalidPom {
                pom: Some(coordinates.clone()),
                reason,
            },
            other => other,
        }
    }
}

/// An `<exclusion>` of a dependency; `*` is a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// Excluded `groupId`, or `*`.
    pub group_id: String,
    /// Excluded `artifactId`, or `*`.
    pub artifact_id: String,
}

/// A `<dependency>`, as written (in [`Pom`]) or after interpolation and management
/// (in [`EffectivePom`]). Absent elements are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// `groupId`.
    pub group_id: String,
    /// `artifactId`.
    pub artifact_id: String,
    /// `version`.
    pub version: Option<String>,
    /// `type`; Maven's default is `jar`.
    pub kind: Option<String>,
    /// `classifier`.
    pub classifier: Option<String>,
    /// `scope`; Maven's default is `compile`.
    pub scope: Option<String>,
    /// `optional`; Maven's default is `false`.
    pub optional: Option<String>,
    /// `exclusions`.
    pub exclusions: Vec<Exclusion>,
}

impl Dependency {
    /// The management key `groupId:artifactId:type:classifier`, type defaulting to `jar`.
    fn management_key(&self) -> (String, String, String, String) {
        (
            self.group_id.clone(),
            self.artifact_id.clone(),
            self.kind.clone().unwrap_or_else(|| "jar".to_owned()),
            self.classifier.clone().unwrap_or_default(),
        )
    }

    fn label(&self) -> String {
        format!("{}:{}", self.group_id, self.artifact_id)
    }

    fn is_import(&self) -> bool {
        self.scope.as_deref() == Some("import") && self.kind.as_deref() == Some("pom")
    }
}

/// A parsed POM, exactly as written (no inheritance, no interpolation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pom {
    /// The `<parent>` element.
    pub parent: Option<Coordinates>,
    /// `groupId`; inherited from the parent when absent.
    pub group_id: Option<String>,
    /// `artifactId`.
    pub artifact_id: String,
    /// `version`; inherited from the parent when absent.
    pub version: Option<String>,
    /// `packaging`; `jar` when absent.
    pub packaging: Option<String>,
    /// `<properties>`.
    pub properties: BTreeMap<String, String>,
    /// `<dependencies>`.
    pub dependencies: Vec<Dependency>,
    /// `<dependencyManagement><dependencies>`.
    pub dependency_management: Vec<Dependency>,
}

impl Pom {
    /// `groupId`, inherited from the `<parent>` element when absent.
    fn effective_group_id(&self) -> Option<&str> {
        self.group_id
            .as_deref()
            .or(self.parent.as_ref().map(|parent| parent.group_id.as_str()))
    }

    /// `version`, inherited from the `<parent>` element when absent.
    fn effective_version(&self) -> Option<&str> {
        self.version
            .as_deref()
            .or(self.parent.as_ref().map(|parent| parent.version.as_str()))
    }
}

/// Parses a POM. Elements are matched by local name, so POMs with and without the
/// `http://maven.apache.org/POM/4.0.0` namespace both work; values are trimmed.
pub fn parse_pom(xml: &str) -> Result<Pom, MavenError> {
    let document = roxmltree::Document::parse(xml).map_err(|source| {
        let position = source.pos();
        MavenError::MalformedXml {
            pom: None,
            line: position.row,
            column: position.col,
            source: Box::new(source),
        }
    })?;
    let invalid = |reason: String| MavenError::InvalidPom { pom: None, reason };
    let project = document.root_element();
    if project.tag_name().name() != "project" {
        return Err(invalid(format!(
            "the root element is <{}>, not <project>",
            project.tag_name().name()
        )));
    }
    let parent = match child(project, "parent") {
        None => None,
        Some(parent) => {
            let required = |name: &str| {
                child_text(parent, name)
                    .filter(|value| !value.is_empty())
                    .ok_or_else(|| invalid(format!("<parent> has no <{name}>")))
            };
            Some(Coordinates::new(
                required("groupId")?,
                required("artifactId")?,
                required("version")?,
            ))
        }
    };
    let artifact_id = child_text(project, "artifactId")
        .filter(|value| !value.is_empty())
        .ok_or_else(|| invalid("<project> has no <artifactId>".to_owned()))?;
    let properties = child(project, "properties")
        .map(|properties| {
            properties
                .children()
                .filter(roxmltree::Node::is_element)
                .map(|property| (property.tag_name().name().to_owned(), text(property)))
                .collect()
        })
        .unwrap_or_default();
    let dependencies = match child(project, "dependencies") {
        Some(list) => parse_dependencies(list)?,
        None => Vec::new(),
    };
    let dependency_management = match child(project, "dependencyManagement")
        .and_then(|management| child(management, "dependencies"))
    {
        Some(list) => parse_dependencies(list)?,
        None => Vec::new(),
    };
    Ok(Pom {
        parent,
        group_id: child_text(project, "groupId"),
        artifact_id,
        version: child_text(project, "version"),
        packaging: child_text(project, "packaging"),
        properties,
        dependencies,
        dependency_management,
    })
}

fn parse_dependencies(list: roxmltree::Node<'_, '_>) -> Result<Vec<Dependency>, MavenError> {
    list.children()
        .filter(|node| node.is_element() && node.tag_name().name() == "dependency")
        .map(|dependency| {
            let required = |name: &str| {
                child_text(dependency, name)
                    .filter(|value| !value.is_empty())
                    .ok_or_else(|| MavenError::InvalidPom {
                        pom: None,
                        reason: format!(
                            "a <dependency> at byte {} has no <{name}>",
                            dependency.range().start
                        ),
                    })
            };
            let exclusions = child(dependency, "exclusions")
                .map(|exclusions| {
                    exclusions
                        .children()
                        .filter(|node| node.is_element() && node.tag_name().name() == "exclusion")
                        .map(|exclusion| Exclusion {
                            group_id: child_text(exclusion, "groupId").unwrap_or_default(),
                            artifact_id: child_text(exclusion, "artifactId").unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(Dependency {
                group_id: required("groupId")?,
                artifact_id: required("artifactId")?,
                version: child_text(dependency, "version"),
                kind: child_text(dependency, "type"),
                classifier: child_text(dependency, "classifier"),
                scope: child_text(dependency, "scope"),
                optional: child_text(dependency, "optional"),
                exclusions,
            })
        })
        .collect()
}

fn child<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    node.children()
        .find(|candidate| candidate.is_element() && candidate.tag_name().name() == name)
}

fn child_text(node: roxmltree::Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name).map(text)
}

/// The element's own text (comments skipped, CDATA included), trimmed.
fn text(node: roxmltree::Node<'_, '_>) -> String {
    node.children()
        .filter(roxmltree::Node::is_text)
        .filter_map(|text| text.text())
        .collect::<String>()
        .trim()
        .to_owned()
}

/// Scope of a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `compile`, the default: needed to compile and to run.
    Compile,
    /// `provided`: expected from the runtime environment.
    Provided,
    /// `runtime`: needed to run only.
    Runtime,
    /// `test`: tests only.
    Test,
    /// `system`: a local file, never from a repository.
    System,
    /// `import`: a BOM, only meaningful in dependency management.
    Import,
}

/// The effective model of a POM: parent chain merged, interpolated, BOMs imported
/// and management applied (see the module documentation for the rules).
///
/// Interpolation is lenient, like Maven's: a value may still contain a `${…}` that
/// nothing defines. Read dependencies through [`EffectivePom::scope`],
/// [`EffectivePom::optional`], [`EffectivePom::artifact`] and friends, which turn
/// such leftovers (and missing versions) into errors naming the property.
#[derive(Debug, Clone)]
pub struct EffectivePom {
    /// The POM's own coordinates (inherited parts filled in).
    pub coordinates: Coordinates,
    /// Dependencies (inherited ones included), interpolated, with management applied.
    pub dependencies: Vec<Dependency>,
    /// The effective dependency management, interpolated, BOM imports expanded.
    pub dependency_management: Vec<Dependency>,
    gaps: Vec<ParentUnavailable>,
}

impl EffectivePom {
    /// The dependency's scope (`compile` when absent).
    pub fn scope(&self, dependency: &Dependency) -> Result<Scope, MavenError> {
        let Some(raw) = &dependency.scope else {
            return Ok(Scope::Compile);
        };
        let scope = self.checked(raw, || format!("the scope of {}", dependency.label()))?;
        match scope.as_str() {
            "compile" => Ok(Scope::Compile),
            "provided" => Ok(Scope::Provided),
            "runtime" => Ok(Scope::Runtime),
            "test" => Ok(Scope::Test),
            "system" => Ok(Scope::System),
            "import" => Ok(Scope::Import),
            other => Err(self.unusable(dependency, format!("unknown scope `{other}`"))),
        }
    }

    /// Whether the dependency is `<optional>true</optional>`.
    pub fn optional(&self, dependency: &Dependency) -> Result<bool, MavenError> {
        let Some(raw) = &dependency.optional else {
            return Ok(false);
        };
        let optional = self.checked(raw, || format!("<optional> of {}", dependency.label()))?;
        match optional.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(self.unusable(dependency, format!("<optional> is `{other}`"))),
        }
    }

    /// The dependency's `groupId`.
    pub fn group_id(&self, dependency: &Dependency) -> Result<String, MavenError> {
        self.checked(&dependency.group_id, || {
            format!("the groupId of dependency {}", dependency.label())
        })
    }

    /// The dependency's type (`jar` when absent).
    pub fn kind(&self, dependency: &Dependency) -> Result<String, MavenError> {
        match &dependency.kind {
            None => Ok("jar".to_owned()),
            Some(raw) => self.checked(raw, || format!("the type of {}", dependency.label())),
        }
    }

    /// The dependency's classifier, if any.
    pub fn classifier(&self, dependency: &Dependency) -> Result<Option<String>, MavenError> {
        dependency
            .classifier
            .as_ref()
            .map(|raw| self.checked(raw, || format!("the classifier of {}", dependency.label())))
            .transpose()
    }

    /// The dependency's resolved, validated coordinates.
    pub fn artifact(&self, dependency: &Dependency) -> Result<Coordinates, MavenError> {
        let label = dependency.label();
        let group_id = self.group_id(dependency)?;
        let artifact_id = self.checked(&dependency.artifact_id, || {
            format!("the artifactId of dependency {label}")
        })?;
        let Some(version) = &dependency.version else {
            return Err(match self.gaps.first() {
                Some(gap) => self.missing_parent(
                    gap,
                    "a managed version".to_owned(),
                    format!("dependency {label}"),
                ),
                None => MavenError::MissingVersion {
                    dependency: label,
                    pom: self.coordinates.clone(),
                },
            });
        };
        let version = self.checked(version, || format!("the version of dependency {label}"))?;
        let coordinates = Coordinates::new(group_id, artifact_id, version);
        coordinates.validate()?;
        Ok(coordinates)
    }

    /// `value` if it holds no unresolved `${…}`; otherwise the error naming it.
    fn checked(&self, value: &str, used_in: impl FnOnce() -> String) -> Result<String, MavenError> {
        match first_expression(value) {
            None => Ok(value.to_owned()),
            Some(property) => Err(match self.gaps.first() {
                Some(gap) => self.missing_parent(gap, format!("property `{property}`"), used_in()),
                None => MavenError::UnresolvedProperty {
                    property: property.to_owned(),
                    used_in: used_in(),
                    pom: self.coordinates.clone(),
                },
            }),
        }
    }

    fn missing_parent(
        &self,
        gap: &ParentUnavailable,
        needed: String,
        used_in: String,
    ) -> MavenError {
        MavenError::MissingParent {
            needed,
            used_in: format!("{used_in} in {}", self.coordinates),
            source: Box::new(gap.clone()),
        }
    }

    fn unusable(&self, dependency: &Dependency, reason: String) -> MavenError {
        MavenError::UnusableDependency {
            dependency: dependency.label(),
            pom: self.coordinates.clone(),
            reason,
        }
    }
}

/// The name inside the first `${…}` of `value`, if there is one.
fn first_expression(value: &str) -> Option<&str> {
    let start = value.find("${")? + 2;
    let length = value[start..].find('}')?;
    Some(&value[start..start + length])
}

/// Expands `${…}` in one model's context: built-ins first, then properties.
struct Interpolator<'a> {
    builtins: BTreeMap<String, String>,
    properties: &'a BTreeMap<String, String>,
    pom: &'a Coordinates,
}

impl<'a> Interpolator<'a> {
    fn new(pom: &'a Coordinates, model: &Pom, properties: &'a BTreeMap<String, String>) -> Self {
        let mut builtins = BTreeMap::new();
        let mut add = |name: &str, value: Option<&str>| {
            if let Some(value) = value {
                for prefix in ["project.", "pom."] {
                    builtins.insert(format!("{prefix}{name}"), value.to_owned());
                }
            }
        };
        add("groupId", model.effective_group_id());
        add("artifactId", Some(&model.artifact_id));
        add("version", model.effective_version());
        add(
            "packaging",
            Some(model.packaging.as_deref().unwrap_or("jar")),
        );
        if let Some(parent) = &model.parent {
            add("parent.groupId", Some(&parent.group_id));
            add("parent.artifactId", Some(&parent.artifact_id));
            add("parent.version", Some(&parent.version));
        }
        Self {
            builtins,
            properties,
            pom,
        }
    }

    /// Expands every resolvable expression; unresolvable ones stay as written.
    fn interpolate(&self, value: &str) -> Result<String, MavenError> {
        self.expand(value, &mut Vec::new())
    }

    fn expand(&self, value: &str, stack: &mut Vec<String>) -> Result<String, MavenError> {
        let mut expanded = String::with_capacity(value.len());
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            expanded.push_str(&rest[..start]);
            let Some(length) = rest[start + 2..].find('}') else {
                break;
            };
            let name = &rest[start + 2..start + 2 + length];
            let end = start + 2 + length + 1;
            match self.lookup(name, stack)? {
                Some(replacement) => expanded.push_str(&replacement),
                None => expanded.push_str(&rest[start..end]),
            }
            if expanded.len() > MAX_EXPANSION_BYTES {
                return Err(MavenError::PropertyTooLarge {
                    property: stack.last().map_or(name, String::as_str).to_owned(),
                    pom: self.pom.clone(),
                });
            }
            rest = &rest[end..];
        }
        expanded.push_str(rest);
        Ok(expanded)
    }

    fn lookup(&self, name: &str, stack: &mut Vec<String>) -> Result<Option<String>, MavenError> {
        let Some(raw) = self
            .builtins
            .get(name)
            .or_else(|| self.properties.get(name))
        else {
            return Ok(None);
        };
        if let Some(position) = stack.iter().position(|entered| entered == name) {
            let mut cycle = stack[position..].to_vec();
            cycle.push(name.to_owned());
            return Err(MavenError::PropertyCycle {
                cycle: cycle.join(" -> "),
                pom: self.pom.clone(),
            });
        }
        stack.push(name.to_owned());
        let value = self.expand(raw, stack)?;
        stack.pop();
        Ok(Some(value))
    }

    fn optional(&self, value: Option<&String>) -> Result<Option<String>, MavenError> {
        value.map(|value| self.interpolate(value)).transpose()
    }

    fn dependency(&self, dependency: &Dependency) -> Result<Dependency, MavenError> {
        Ok(Dependency {
            group_id: self.interpolate(&dependency.group_id)?,
            artifact_id: self.interpolate(&dependency.artifact_id)?,
            version: self.optional(dependency.version.as_ref())?,
            kind: self.optional(dependency.kind.as_ref())?,
            classifier: self.optional(dependency.classifier.as_ref())?,
            scope: self.optional(dependency.scope.as_ref())?,
            optional: self.optional(dependency.optional.as_ref())?,
            exclusions: dependency
                .exclusions
                .iter()
                .map(|exclusion| {
                    Ok(Exclusion {
                        group_id: self.interpolate(&exclusion.group_id)?,
                        artifact_id: self.interpolate(&exclusion.artifact_id)?,
                    })
                })
                .collect::<Result<_, MavenError>>()?,
        })
    }
}

/// Builds the effective model of the POM at `coordinates` (see the module
/// documentation for the rules followed).
pub async fn effective_pom(
    source: &impl PomSource,
    coordinates: &Coordinates,
) -> Result<EffectivePom, MavenError> {
    build(source, coordinates.clone(), Vec::new()).await
}

type BuildFuture<'a> = Pin<Box<dyn Future<Output = Result<EffectivePom, MavenError>> + Send + 'a>>;

/// Fetches and parses one POM, checking it is what was asked for.
async fn fetch(source: &impl PomSource, coordinates: &Coordinates) -> Result<Pom, MavenError> {
    coordinates.validate()?;
    let text = source
        .pom(coordinates)
        .await
        .map_err(|source| MavenError::Source {
            coordinates: coordinates.clone(),
            source,
        })?;
    let pom = parse_pom(&text).map_err(|error| error.in_pom(coordinates))?;
    let declared = (
        pom.effective_group_id().unwrap_or(""),
        pom.artifact_id.as_str(),
        pom.effective_version().unwrap_or(""),
    );
    let requested = (
        coordinates.group_id.as_str(),
        coordinates.artifact_id.as_str(),
        coordinates.version.as_str(),
    );
    // Parts still holding an expression (CI-friendly `${revision}`) are checked
    // after interpolation, for the POM resolved; parents rarely use them.
    let agree = |declared: &str, requested: &str| declared.contains("${") || declared == requested;
    if !(agree(declared.0, requested.0)
        && declared.1 == requested.1
        && agree(declared.2, requested.2))
    {
        return Err(MavenError::CoordinatesMismatch {
            requested: coordinates.clone(),
            declared: format!("{}:{}:{}", declared.0, declared.1, declared.2),
        });
    }
    Ok(pom)
}

/// Builds one effective model; `importers` are the POMs whose BOM imports led here.
fn build<S: PomSource>(
    source: &S,
    coordinates: Coordinates,
    importers: Vec<Coordinates>,
) -> BuildFuture<'_> {
    Box::pin(async move {
        let pom = fetch(source, &coordinates).await?;

        // 1. The parent chain, child first, as far as the source has it.
        let mut chain = vec![pom];
        let mut chain_coordinates = vec![coordinates.clone()];
        let mut gaps = Vec::new();
        while let Some(parent) = chain.last().and_then(|pom| pom.parent.clone()) {
            if chain_coordinates.contains(&parent) {
                chain_coordinates.push(parent);
                return Err(MavenError::ParentCycle {
                    chain: Chain(chain_coordinates),
                });
            }
            match fetch(source, &parent).await {
                Ok(pom) => {
                    chain.push(pom);
                    chain_coordinates.push(parent);
                }
                Err(MavenError::Source { source: error, .. }) => {
                    let child = chain_coordinates
                        .last()
                        .cloned()
                        .unwrap_or_else(|| coordinates.clone());
                    // Expected for mirrors without the Apache parent POMs; it only
                    // becomes an error if something needed is then missing.
                    tracing::debug!(
                        parent = %parent,
                        child = %child,
                        error = %error,
                        "parent POM unavailable; resolving without it"
                    );
                    gaps.push(ParentUnavailable {
                        missing: parent,
                        child,
                        source: Arc::from(error),
                    });
                    break;
                }
                Err(other) => return Err(other),
            }
        }

        // 2. Inheritance: properties child over parent, lists merged by key.
        let mut properties = BTreeMap::new();
        for pom in chain.iter().rev() {
            properties.extend(pom.properties.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let merge = |select: fn(&Pom) -> &Vec<Dependency>| {
            let mut merged: Vec<Dependency> = Vec::new();
            for pom in &chain {
                for dependency in select(pom) {
                    let key = dependency.management_key();
                    if !merged
                        .iter()
                        .any(|existing| existing.management_key() == key)
                    {
                        merged.push(dependency.clone());
                    }
                }
            }
            merged
        };
        let declared_management = merge(|pom| &pom.dependency_management);
        let declared_dependencies = merge(|pom| &pom.dependencies);
        let own = &chain[0];

        // 3. Interpolation in this model's context.
        let interpolator = Interpolator::new(&coordinates, own, &properties);
        let effective_coordinates = Coordinates::new(
            interpolator.interpolate(own.effective_group_id().unwrap_or(""))?,
            own.artifact_id.clone(),
            interpolator.interpolate(own.effective_version().unwrap_or(""))?,
        );
        if effective_coordinates != coordinates {
            return Err(MavenError::CoordinatesMismatch {
                requested: coordinates,
                declared: effective_coordinates.to_string(),
            });
        }
        let management = declared_management
            .iter()
            .map(|dependency| interpolator.dependency(dependency))
            .collect::<Result<Vec<_>, _>>()?;

        // 4. BOM imports: declared entries first, then each import's in order.
        let (imports, mut dependency_management): (Vec<_>, Vec<_>) =
            management.into_iter().partition(Dependency::is_import);
        // The packaging is not kept, but it must interpolate, as Maven requires.
        interpolator.interpolate(own.packaging.as_deref().unwrap_or("jar"))?;
        let partial = EffectivePom {
            coordinates: coordinates.clone(),
            dependencies: Vec::new(),
            dependency_management: Vec::new(),
            gaps,
        };
        let mut gaps = partial.gaps.clone();
        for import in &imports {
            let bom = partial.artifact(import)?;
            if bom == coordinates || importers.contains(&bom) {
                let mut cycle = importers.clone();
                cycle.push(coordinates.clone());
                cycle.push(bom);
                return Err(MavenError::ImportCycle {
                    chain: Chain(cycle),
                });
            }
            let mut nested = importers.clone();
            nested.push(coordinates.clone());
            let imported = build(source, bom, nested).await?;
            for entry in imported.dependency_management {
                let key = entry.management_key();
                if !dependency_management
                    .iter()
                    .any(|existing| existing.management_key() == key)
                {
                    dependency_management.push(entry);
                }
            }
            gaps.extend(imported.gaps);
        }

        // 5. Management injection.
        let dependencies = declared_dependencies
            .iter()
            .map(|dependency| {
                let mut dependency = interpolator.dependency(dependency)?;
                let key = dependency.management_key();
                if let Some(managed) = dependency_management
                    .iter()
                    .find(|managed| managed.management_key() == key)
                {
                    if dependency.version.is_none() {
                        dependency.version.clone_from(&managed.version);
                    }
                    if dependency.scope.is_none() {
                        dependency.scope.clone_from(&managed.scope);
                    }
                    if dependency.exclusions.is_empty() {
                        dependency.exclusions.clone_from(&managed.exclusions);
                    }
                }
                Ok(dependency)
            })
            .collect::<Result<Vec<_>, MavenError>>()?;

        Ok(EffectivePom {
            dependencies,
            dependency_management,
            gaps,
            ..partial
        })
    })
}

/// The jars that must sit beside `hadoop-aws` for S3A to work in a Spark tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3aJars {
    /// `org.apache.hadoop:hadoop-aws:<hadoop version>` itself.
    pub hadoop_aws: Coordinates,
    /// The AWS SDK bundle `hadoop-aws` was built against
    /// (`com.amazonaws:aws-java-sdk-bundle` or `software.amazon.awssdk:bundle`),
    /// reported even if the caller says a bundle is present. Should a POM declare
    /// both, the first declared is this one and the other is in `others`.
    pub sdk_bundle: Coordinates,
    /// Every other runtime jar `hadoop-aws` requires and the tree lacks.
    pub others: Vec<Coordinates>,
}

/// Is this one of the AWS SDK bundles S3A is built against?
fn is_sdk_bundle(coordinates: &Coordinates) -> bool {
    matches!(
        (
            coordinates.group_id.as_str(),
            coordinates.artifact_id.as_str()
        ),
        ("com.amazonaws", "aws-java-sdk-bundle") | ("software.amazon.awssdk", "bundle")
    )
}

/// The runtime jars to add beside `hadoop-aws-<hadoop_version>.jar`: its direct
/// `compile` and `runtime` dependencies (Maven's runtime class path), minus optional
/// ones, `org.apache.hadoop:*`, and those `already_present` reports (matched by
/// group and artifact). Versions come from the effective POM. The module
/// documentation explains each rule.
pub async fn s3a_runtime_jars(
    source: &impl PomSource,
    hadoop_version: &str,
    already_present: &(dyn Fn(&Coordinates) -> bool + Sync),
) -> Result<S3aJars, MavenError> {
    let hadoop_aws = Coordinates::new("org.apache.hadoop", "hadoop-aws", hadoop_version);
    let pom = effective_pom(source, &hadoop_aws).await?;
    let mut sdk_bundle = None;
    let mut others: Vec<Coordinates> = Vec::new();
    for dependency in &pom.dependencies {
        if !matches!(pom.scope(dependency)?, Scope::Compile | Scope::Runtime)
            || pom.optional(dependency)?
            || pom.group_id(dependency)? == "org.apache.hadoop"
        {
            continue;
        }
        let kind = pom.kind(dependency)?;
        if !matches!(kind.as_str(), "jar" | "bundle") {
            return Err(pom.unusable(
                dependency,
                format!(
                    "type `{kind}` is not a plain jar, and transitive dependencies are not followed"
                ),
            ));
        }
        if let Some(classifier) = pom.classifier(dependency)? {
            return Err(pom.unusable(
                dependency,
                format!("classifier `{classifier}` is not supported"),
            ));
        }
        let coordinates = pom.artifact(dependency)?;
        if sdk_bundle.is_none() && is_sdk_bundle(&coordinates) {
            sdk_bundle = Some(coordinates);
        } else if !already_present(&coordinates)
            && !others.iter().any(|other| other.same_artifact(&coordinates))
        {
            others.push(coordinates);
        }
    }
    let sdk_bundle = sdk_bundle.ok_or_else(|| MavenError::NoSdkBundle {
        pom: hadoop_aws.clone(),
    })?;
    Ok(S3aJars {
        hadoop_aws,
        sdk_bundle,
        others,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// POM texts by coordinates; anything else is "not on the mirror".
    #[derive(Default)]
    struct Repository(HashMap<Coordinates, String>);

    impl Repository {
        fn with(mut self, group: &str, artifact: &str, version: &str, text: String) -> Self {
            self.0
                .insert(Coordinates::new(group, artifact, version), text);
            self
        }

        fn without(mut self, group: &str, artifact: &str, version: &str) -> Self {
            self.0.remove(&Coordinates::new(group, artifact, version));
            self
        }
    }

    impl PomSource for Repository {
        async fn pom(&self, coordinates: &Coordinates) -> Result<String, SourceError> {
            self.0
                .get(coordinates)
                .cloned()
                .ok_or_else(|| format!("{} not found (404)", coordinates.path("pom")).into())
        }
    }

    const HEADER: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- Licensed under the Apache License, Version 2.0. -->
<project xmlns="http://maven.apache.org/POM/4.0.0"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
  xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>"#;

    fn apache_parent(version: &str) -> String {
        format!(
            r#"{HEADER}
  <groupId>org.apache</groupId>
  <artifactId>apache</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <properties>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
    <surefire.version>2.22.2</surefire.version>
  </properties>
</project>"#
        )
    }

    fn hadoop_main(version: &str, apache_version: &str) -> String {
        format!(
            r#"{HEADER}
  <parent>
    <groupId>org.apache</groupId>
    <artifactId>apache</artifactId>
    <version>{apache_version}</version>
    <relativePath/>
  </parent>
  <groupId>org.apache.hadoop</groupId>
  <artifactId>hadoop-main</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <properties>
    <!-- required as child projects with different version can't use ${{project.version}} -->
    <hadoop.version>{version}</hadoop.version>
    <distMgmtSnapshotsId>apache.snapshots.https</distMgmtSnapshotsId>
    <leveldbjni.group>org.fusesource.leveldbjni</leveldbjni.group>
  </properties>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>com.cenqua.clover</groupId>
        <artifactId>clover</artifactId>
        <version>3.0.2</version>
      </dependency>
    </dependencies>
  </dependencyManagement>
</project>"#
        )
    }

    /// `hadoop-project`: versions as properties, management referring to them, and
    /// the entries every line shares, including one whose property only a profile
    /// defines (`hbase.version`) and one whose groupId is a property.
    fn hadoop_project(version: &str, properties: &str, management: &str) -> String {
        format!(
            r#"{HEADER}
  <parent>
    <groupId>org.apache.hadoop</groupId>
    <artifactId>hadoop-main</artifactId>
    <version>{version}</version>
  </parent>
  <artifactId>hadoop-project</artifactId>
  <version>{version}</version>
  <description>Apache Hadoop Project POM</description>
  <packaging>pom</packaging>
  <properties>
    <failIfNoTests>false</failIfNoTests>
    <test.build.dir>${{project.build.directory}}/test-dir</test.build.dir>
    <jackson2.version>2.12.7</jackson2.version>
    <junit.version>4.13.2</junit.version>
    <openssl-wildfly.version>1.1.3.Final</openssl-wildfly.version>
{properties}
  </properties>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>org.apache.hadoop</groupId>
        <artifactId>hadoop-common</artifactId>
        <version>${{hadoop.version}}</version>
      </dependency>
      <dependency>
        <groupId>org.apache.hadoop</groupId>
        <artifactId>hadoop-common</artifactId>
        <version>${{hadoop.version}}</version>
        <type>test-jar</type>
      </dependency>
      <dependency>
        <groupId>${{leveldbjni.group}}</groupId>
        <artifactId>leveldbjni-all</artifactId>
        <version>1.8</version>
      </dependency>
      <dependency>
        <groupId>org.apache.hbase</groupId>
        <artifactId>hbase-common</artifactId>
        <version>${{hbase.version}}</version>
      </dependency>
      <dependency>
        <groupId>junit</groupId>
        <artifactId>junit</artifactId>
        <version>${{junit.version}}</version>
        <scope>test</scope>
      </dependency>
      <dependency>
        <groupId>org.wildfly.openssl</groupId>
        <artifactId>wildfly-openssl</artifactId>
        <version>${{openssl-wildfly.version}}</version>
      </dependency>
      <dependency>
        <groupId>org.assertj</groupId>
        <artifactId>assertj-core</artifactId>
        <version>3.12.2</version>
        <scope>test</scope>
      </dependency>
{management}
    </dependencies>
  </dependencyManagement>
</project>"#
        )
    }

    fn hadoop_aws(version: &str, dependencies: &str) -> String {
        format!(
            r#"{HEADER}
  <parent>
    <groupId>org.apache.hadoop</groupId>
    <artifactId>hadoop-project</artifactId>
    <version>{version}</version>
    <relativePath>../../hadoop-project</relativePath>
  </parent>
  <artifactId>hadoop-aws</artifactId>
  <version>{version}</version>
  <name>Apache Hadoop Amazon Web Services support</name>
  <packaging>jar</packaging>
  <properties>
    <file.encoding>UTF-8</file.encoding>
    <hadoop.tmp.dir>${{project.build.directory}}/test</hadoop.tmp.dir>
  </properties>
  <profiles>
    <profile>
      <id>scale</id>
      <properties><fs.s3a.scale.test.enabled>true</fs.s3a.scale.test.enabled></properties>
    </profile>
  </profiles>
  <dependencies>
    <dependency>
      <groupId>org.apache.hadoop</groupId>
      <artifactId>hadoop-common</artifactId>
      <scope>provided</scope>
      <exclusions>
        <exclusion>
          <groupId>javax.servlet</groupId>
          <artifactId>servlet-api</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>org.apache.hadoop</groupId>
      <artifactId>hadoop-common</artifactId>
      <scope>test</scope>
      <type>test-jar</type>
    </dependency>
{dependencies}
    <dependency>
      <groupId>junit</groupId>
      <artifactId>junit</artifactId>
    </dependency>
  </dependencies>
</project>"#
        )
    }

    /// hadoop-project's management entry for the v1 bundle, at `${aws-java-sdk.version}` and
    /// excluding every artifact of `excluded_group`.
    fn v1_bundle_management(excluded_group: &str) -> String {
        format!(
            r#"      <dependency>
        <groupId>com.amazonaws</groupId>
        <artifactId>aws-java-sdk-bundle</artifactId>
        <version>${{aws-java-sdk.version}}</version>
        <exclusions>
          <exclusion>
            <groupId>{excluded_group}</groupId>
            <artifactId>*</artifactId>
          </exclusion>
        </exclusions>
      </dependency>"#
        )
    }

    /// hadoop-aws's compile-scoped dependency on the v1 bundle, its version managed.
    const V1_BUNDLE_COMPILE: &str = r#"    <dependency>
      <groupId>com.amazonaws</groupId>
      <artifactId>aws-java-sdk-bundle</artifactId>
      <scope>compile</scope>
    </dependency>"#;

    fn hadoop_3_2_0() -> Repository {
        Repository::default()
            .with("org.apache", "apache", "21", apache_parent("21"))
            .with(
                "org.apache.hadoop",
                "hadoop-main",
                "3.2.0",
                hadoop_main("3.2.0", "21"),
            )
            .with(
                "org.apache.hadoop",
                "hadoop-project",
                "3.2.0",
                hadoop_project(
                    "3.2.0",
                    "    <aws-java-sdk.version>1.11.375</aws-java-sdk.version>",
                    &v1_bundle_management("io.netty"),
                ),
            )
            .with(
                "org.apache.hadoop",
                "hadoop-aws",
                "3.2.0",
                hadoop_aws(
                    "3.2.0",
                    &format!(
                        r#"{V1_BUNDLE_COMPILE}
    <dependency>
      <groupId>org.mockito</groupId>
      <artifactId>mockito-all</artifactId>
      <version>1.10.19</version>
      <scope>test</scope>
    </dependency>"#
                    ),
                ),
            )
    }

    /// 3.3.6: the v1 bundle plus wildfly-openssl at runtime scope; the Apache
    /// parent of hadoop-main is not on this mirror.
    fn hadoop_3_3_6() -> Repository {
        Repository::default()
            .with(
                "org.apache.hadoop",
                "hadoop-main",
                "3.3.6",
                hadoop_main("3.3.6", "23"),
            )
            .with(
                "org.apache.hadoop",
                "hadoop-project",
                "3.3.6",
                hadoop_project(
                    "3.3.6",
                    "    <aws-java-sdk.version>1.12.367</aws-java-sdk.version>",
                    &v1_bundle_management("*"),
                ),
            )
            .with(
                "org.apache.hadoop",
                "hadoop-aws",
                "3.3.6",
                hadoop_aws(
                    "3.3.6",
                    &format!(
                        r#"{V1_BUNDLE_COMPILE}
    <dependency>
      <groupId>org.assertj</groupId>
      <artifactId>assertj-core</artifactId>
    </dependency>
    <dependency>
      <groupId>org.wildfly.openssl</groupId>
      <artifactId>wildfly-openssl</artifactId>
      <scope>runtime</scope>
    </dependency>"#
                    ),
                ),
            )
    }

    const AWS_3_4_PROPERTIES: &str = r#"    <aws-java-sdk.version>1.12.720</aws-java-sdk.version>
    <aws-java-sdk-v2.version>2.29.52</aws-java-sdk-v2.version>
    <amazon-s3-encryption-client-java.version>3.1.1</amazon-s3-encryption-client-java.version>
    <amazon-s3-analyticsaccelerator-s3.version>1.0.0</amazon-s3-analyticsaccelerator-s3.version>"#;

    const AWS_3_4_MANAGEMENT: &str = r#"      <dependency>
        <groupId>com.amazonaws</groupId>
        <artifactId>aws-java-sdk-core</artifactId>
        <version>${aws-java-sdk.version}</version>
        <exclusions>
          <exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion>
        </exclusions>
      </dependency>
      <dependency>
        <groupId>software.amazon.awssdk</groupId>
        <artifactId>bundle</artifactId>
        <version>${aws-java-sdk-v2.version}</version>
        <exclusions>
          <exclusion><groupId>*</groupId><artifactId>*</artifactId></exclusion>
        </exclusions>
      </dependency>
      <dependency>
        <groupId>software.amazon.encryption.s3</groupId>
        <artifactId>amazon-s3-encryption-client-java</artifactId>
        <version>${amazon-s3-encryption-client-java.version}</version>
      </dependency>
      <dependency>
        <groupId>software.amazon.eventstream</groupId>
        <artifactId>eventstream</artifactId>
        <version>1.0.1</version>
      </dependency>"#;

    const AWS_3_4_DEPENDENCIES: &str = r#"    <!-- The v1 SDK is used at compilation time for adapter classes. -->
    <dependency>
      <groupId>com.amazonaws</groupId>
      <artifactId>aws-java-sdk-core</artifactId>
      <scope>provided</scope>
    </dependency>
    <dependency>
      <groupId>software.amazon.awssdk</groupId>
      <artifactId>bundle</artifactId>
      <scope>compile</scope>
    </dependency>
    <dependency>
      <groupId>software.amazon.encryption.s3</groupId>
      <artifactId>amazon-s3-encryption-client-java</artifactId>
      <scope>provided</scope>
    </dependency>
    <dependency>
      <groupId>software.amazon.eventstream</groupId>
      <artifactId>eventstream</artifactId>
      <scope>test</scope>
    </dependency>
    <dependency>
      <groupId>org.wildfly.openssl</groupId>
      <artifactId>wildfly-openssl</artifactId>
      <scope>runtime</scope>
    </dependency>
    <dependency>
      <groupId>software.amazon.awssdk.crt</groupId>
      <artifactId>aws-crt</artifactId>
      <version>0.29.10</version>
      <optional>true</optional>
    </dependency>"#;

    const ANALYTICS_DEPENDENCY: &str = r#"    <dependency>
      <groupId>software.amazon.s3.analyticsaccelerator</groupId>
      <artifactId>analyticsaccelerator-s3</artifactId>
      <scope>compile</scope>
    </dependency>"#;

    /// 3.4.2: the v2 bundle, the analytics accelerator, provided/test/optional
    /// dependencies that must not be added; no Apache parent on the mirror.
    fn hadoop_3_4_2() -> Repository {
        let management = format!(
            r#"{AWS_3_4_MANAGEMENT}
      <dependency>
        <groupId>software.amazon.s3.analyticsaccelerator</groupId>
        <artifactId>analyticsaccelerator-s3</artifactId>
        <version>${{amazon-s3-analyticsaccelerator-s3.version}}</version>
      </dependency>"#
        );
        Repository::default()
            .with(
                "org.apache.hadoop",
                "hadoop-main",
                "3.4.2",
                hadoop_main("3.4.2", "31"),
            )
            .with(
                "org.apache.hadoop",
                "hadoop-project",
                "3.4.2",
                hadoop_project("3.4.2", AWS_3_4_PROPERTIES, &management),
            )
            .with(
                "org.apache.hadoop",
                "hadoop-aws",
                "3.4.2",
                hadoop_aws(
                    "3.4.2",
                    &format!("{AWS_3_4_DEPENDENCIES}\n{ANALYTICS_DEPENDENCY}"),
                ),
            )
    }

    /// The error and its sources, one message each.
    fn chain(error: &dyn std::error::Error) -> Vec<String> {
        let mut messages = vec![error.to_string()];
        let mut source = error.source();
        while let Some(error) = source {
            messages.push(error.to_string());
            source = error.source();
        }
        messages
    }

    fn nothing_present(_: &Coordinates) -> bool {
        false
    }

    fn coordinates(text: &str) -> Coordinates {
        let parts: Vec<&str> = text.split(':').collect();
        Coordinates::new(parts[0], parts[1], parts[2])
    }

    #[test]
    fn coordinates_layout_path_and_display() {
        let hadoop_aws = coordinates("org.apache.hadoop:hadoop-aws:3.2.0");
        assert_eq!(
            hadoop_aws.path("jar"),
            "org/apache/hadoop/hadoop-aws/3.2.0/hadoop-aws-3.2.0.jar"
        );
        assert_eq!(
            hadoop_aws.path("pom"),
            "org/apache/hadoop/hadoop-aws/3.2.0/hadoop-aws-3.2.0.pom"
        );
        assert_eq!(hadoop_aws.to_string(), "org.apache.hadoop:hadoop-aws:3.2.0");
    }

    /// A repository `s3a_runtime_jars` resolves for `hadoop_version`, what the tree already
    /// has, and the SDK bundle and other jars it must report.
    struct Resolved {
        name: &'static str,
        repository: Repository,
        hadoop_version: &'static str,
        present: fn(&Coordinates) -> bool,
        sdk_bundle: &'static str,
        others: &'static [&'static str],
    }

    #[tokio::test]
    async fn s3a_jars_are_the_runtime_dependencies_of_each_hadoop_aws() {
        let cases = [
            Resolved {
                name: "hadoop_3_2_0_takes_the_v1_bundle_version_from_hadoop_project",
                repository: hadoop_3_2_0(),
                hadoop_version: "3.2.0",
                present: nothing_present,
                sdk_bundle: "com.amazonaws:aws-java-sdk-bundle:1.11.375",
                others: &[],
            },
            Resolved {
                name: "hadoop_3_3_6_adds_runtime_scoped_wildfly_openssl",
                repository: hadoop_3_3_6(),
                hadoop_version: "3.3.6",
                present: nothing_present,
                sdk_bundle: "com.amazonaws:aws-java-sdk-bundle:1.12.367",
                others: &["org.wildfly.openssl:wildfly-openssl:1.1.3.Final"],
            },
            Resolved {
                // Not the provided v1 core or encryption client, the test-scoped
                // eventstream, the optional CRT, nor anything from org.apache.hadoop.
                name: "hadoop_3_4_2_takes_the_v2_bundle_and_the_analytics_accelerator",
                repository: hadoop_3_4_2(),
                hadoop_version: "3.4.2",
                present: nothing_present,
                sdk_bundle: "software.amazon.awssdk:bundle:2.29.52",
                others: &[
                    "org.wildfly.openssl:wildfly-openssl:1.1.3.Final",
                    "software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.0.0",
                ],
            },
            Resolved {
                name: "jars_already_in_the_tree_are_not_added_but_the_bundle_is_still_reported",
                repository: hadoop_3_4_2(),
                hadoop_version: "3.4.2",
                present: |candidate| {
                    candidate.group_id == "org.wildfly.openssl" || candidate.artifact_id == "bundle"
                },
                sdk_bundle: "software.amazon.awssdk:bundle:2.29.52",
                others: &["software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.0.0"],
            },
        ];
        for case in cases {
            let jars = s3a_runtime_jars(&case.repository, case.hadoop_version, &case.present)
                .await
                .unwrap_or_else(|error| panic!("{}: {error:?}", case.name));
            let hadoop_aws = format!("org.apache.hadoop:hadoop-aws:{}", case.hadoop_version);
            assert_eq!(jars.hadoop_aws, coordinates(&hadoop_aws), "{}", case.name);
            assert_eq!(
                jars.sdk_bundle,
                coordinates(case.sdk_bundle),
                "{}",
                case.name
            );
            let others: Vec<Coordinates> = case.others.iter().copied().map(coordinates).collect();
            assert_eq!(jars.others, others, "{}", case.name);
        }
    }

    #[tokio::test]
    async fn management_applies_versions_scopes_and_exclusions_by_full_key() {
        let pom = effective_pom(
            &hadoop_3_2_0(),
            &coordinates("org.apache.hadoop:hadoop-aws:3.2.0"),
        )
        .await
        .unwrap();
        let find = |artifact: &str, kind: Option<&str>| {
            pom.dependencies
                .iter()
                .find(|d| d.artifact_id == artifact && d.kind.as_deref() == kind)
                .unwrap()
        };
        let test_jar = find("hadoop-common", Some("test-jar"));
        assert_eq!(test_jar.version.as_deref(), Some("3.2.0"));
        assert_eq!(pom.scope(test_jar).unwrap(), Scope::Test);
        // The declared exclusion wins; the managed list applies only when none is declared.
        let common = find("hadoop-common", None);
        assert_eq!(common.exclusions[0].artifact_id, "servlet-api");
        let bundle = find("aws-java-sdk-bundle", None);
        assert_eq!(
            bundle.exclusions,
            vec![Exclusion {
                group_id: "io.netty".into(),
                artifact_id: "*".into()
            }]
        );
        // junit's scope comes from management alone.
        assert_eq!(pom.scope(find("junit", None)).unwrap(), Scope::Test);
        // A property used as groupId, from hadoop-main, two levels up.
        assert!(
            pom.dependency_management
                .iter()
                .any(|d| d.group_id == "org.fusesource.leveldbjni")
        );
    }

    #[tokio::test]
    async fn project_version_means_the_child_even_when_written_in_the_parent() {
        let parent = format!(
            r#"{HEADER}
  <groupId>org.example</groupId><artifactId>parent</artifactId><version>1.0</version>
  <packaging>pom</packaging>
  <properties><siblings.version>${{project.version}}</siblings.version></properties>
  <dependencyManagement><dependencies>
    <dependency><groupId>org.example</groupId><artifactId>sibling</artifactId>
      <version>${{siblings.version}}</version></dependency>
    <dependency><groupId>org.example</groupId><artifactId>tool</artifactId>
      <version>${{project.parent.version}}</version></dependency>
  </dependencies></dependencyManagement>
</project>"#
        );
        let child = format!(
            r#"{HEADER}
  <parent><groupId>org.example</groupId><artifactId>parent</artifactId><version>1.0</version></parent>
  <artifactId>child</artifactId><version>2.0</version>
  <properties><tool.pin>${{pom.parent.version}}</tool.pin></properties>
  <dependencies>
    <dependency><groupId>${{project.groupId}}</groupId><artifactId>sibling</artifactId></dependency>
    <dependency><groupId>org.example</groupId><artifactId>tool</artifactId></dependency>
    <dependency><groupId>org.example</groupId><artifactId>pinned</artifactId>
      <version>${{tool.pin}}-patched</version></dependency>
  </dependencies>
</project>"#
        );
        let repository = Repository::default()
            .with("org.example", "parent", "1.0", parent)
            .with("org.example", "child", "2.0", child);
        let pom = effective_pom(&repository, &coordinates("org.example:child:2.0"))
            .await
            .unwrap();
        let versions: Vec<String> = pom
            .dependencies
            .iter()
            .map(|d| pom.artifact(d).unwrap().to_string())
            .collect();
        assert_eq!(
            versions,
            [
                "org.example:sibling:2.0",
                "org.example:tool:1.0",
                "org.example:pinned:1.0-patched"
            ]
        );
    }

    /// A BOM importing one more BOM; the importer's own entries win over both.
    fn with_bom_import(repository: Repository) -> Repository {
        let management = format!(
            r#"{AWS_3_4_MANAGEMENT}
      <dependency>
        <groupId>org.example.aws</groupId>
        <artifactId>aws-versions-bom</artifactId>
        <version>${{aws-versions-bom.version}}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>"#
        );
        let properties = format!(
            "{AWS_3_4_PROPERTIES}\n    <aws-versions-bom.version>7</aws-versions-bom.version>"
        );
        let bom = format!(
            r#"{HEADER}
  <groupId>org.example.aws</groupId>
  <artifactId>aws-versions-bom</artifactId>
  <version>7</version>
  <packaging>pom</packaging>
  <properties><accelerator.version>1.2.1</accelerator.version></properties>
  <dependencyManagement><dependencies>
    <dependency>
      <groupId>software.amazon.s3.analyticsaccelerator</groupId>
      <artifactId>analyticsaccelerator-s3</artifactId>
      <version>${{accelerator.version}}</version>
    </dependency>
    <dependency>
      <groupId>software.amazon.awssdk</groupId>
      <artifactId>bundle</artifactId>
      <version>2.0.0-from-the-bom</version>
    </dependency>
    <dependency>
      <groupId>org.example.aws</groupId>
      <artifactId>nested-bom</artifactId>
      <version>${{project.version}}</version>
      <type>pom</type>
      <scope>import</scope>
    </dependency>
  </dependencies></dependencyManagement>
</project>"#
        );
        let nested = format!(
            r#"{HEADER}
  <groupId>org.example.aws</groupId><artifactId>nested-bom</artifactId><version>7</version>
  <packaging>pom</packaging>
  <dependencyManagement><dependencies>
    <dependency><groupId>org.example</groupId><artifactId>from-nested</artifactId>
      <version>3</version></dependency>
  </dependencies></dependencyManagement>
</project>"#
        );
        repository
            .with(
                "org.apache.hadoop",
                "hadoop-project",
                "3.4.2",
                hadoop_project("3.4.2", &properties, &management),
            )
            .with("org.example.aws", "aws-versions-bom", "7", bom)
            .with("org.example.aws", "nested-bom", "7", nested)
    }

    #[tokio::test]
    async fn versions_come_through_bom_imports_with_declared_entries_winning() {
        let repository = with_bom_import(hadoop_3_4_2());
        let jars = s3a_runtime_jars(&repository, "3.4.2", &nothing_present)
            .await
            .unwrap();
        assert_eq!(
            jars.sdk_bundle,
            coordinates("software.amazon.awssdk:bundle:2.29.52")
        );
        assert_eq!(
            jars.others.last(),
            Some(&coordinates(
                "software.amazon.s3.analyticsaccelerator:analyticsaccelerator-s3:1.2.1"
            ))
        );
        let pom = effective_pom(
            &repository,
            &coordinates("org.apache.hadoop:hadoop-aws:3.4.2"),
        )
        .await
        .unwrap();
        assert!(
            pom.dependency_management
                .iter()
                .any(|d| d.artifact_id == "from-nested" && d.version.as_deref() == Some("3"))
        );
        assert!(!pom.dependency_management.iter().any(Dependency::is_import));
    }

    /// Runs one row of a table test; a failing row is named (its own assertion message is
    /// printed just above).
    fn row(name: &str, check: impl FnOnce()) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
        assert!(outcome.is_ok(), "table row `{name}` failed");
    }

    /// Hadoop 3.2.0 whose hadoop-aws POM declares `dependencies`.
    fn hadoop_3_2_0_declaring(dependencies: &str) -> Repository {
        hadoop_3_2_0().with(
            "org.apache.hadoop",
            "hadoop-aws",
            "3.2.0",
            hadoop_aws("3.2.0", dependencies),
        )
    }

    /// An SDK bundle whose version would climb out of the repository's layout.
    const ESCAPING_SDK_BUNDLE: &str = r#"    <dependency>
      <groupId>com.amazonaws</groupId>
      <artifactId>aws-java-sdk-bundle</artifactId>
      <version>../../../etc</version>
    </dependency>"#;

    /// A repository `s3a_runtime_jars` must refuse for `hadoop_version`, and what the error
    /// must say.
    struct Refused {
        name: &'static str,
        repository: Repository,
        hadoop_version: &'static str,
        check: fn(&MavenError),
    }

    #[tokio::test]
    async fn unresolvable_s3a_jars_are_errors_naming_the_cause() {
        let cases = [
            Refused {
                name: "a_missing_bom_is_an_error_naming_it",
                repository: with_bom_import(hadoop_3_4_2()).without(
                    "org.example.aws",
                    "nested-bom",
                    "7",
                ),
                hadoop_version: "3.4.2",
                check: |error| {
                    assert!(
                        matches!(error, MavenError::Source { coordinates, .. }
                            if coordinates.to_string() == "org.example.aws:nested-bom:7"),
                        "{error:?}"
                    );
                },
            },
            Refused {
                name: "a_missing_parent_that_is_needed_is_named",
                repository: hadoop_3_3_6().without("org.apache.hadoop", "hadoop-project", "3.3.6"),
                hadoop_version: "3.3.6",
                check: |error| {
                    let MavenError::MissingParent { source, needed, .. } = error else {
                        panic!("expected MissingParent, got {error:?}");
                    };
                    assert_eq!(needed, "a managed version");
                    assert_eq!(
                        source.missing,
                        coordinates("org.apache.hadoop:hadoop-project:3.3.6")
                    );
                    assert_eq!(
                        source.child,
                        coordinates("org.apache.hadoop:hadoop-aws:3.3.6")
                    );
                    assert_eq!(
                        chain(error),
                        [
                            "a managed version for dependency com.amazonaws:aws-java-sdk-bundle in \
                             org.apache.hadoop:hadoop-aws:3.3.6 is not defined in the POMs available",
                            "parent POM org.apache.hadoop:hadoop-project:3.3.6 of \
                             org.apache.hadoop:hadoop-aws:3.3.6 could not be fetched",
                            "org/apache/hadoop/hadoop-project/3.3.6/hadoop-project-3.3.6.pom not found (404)",
                        ]
                    );
                },
            },
            Refused {
                name: "an_undefined_property_is_named_with_its_use",
                repository: hadoop_3_2_0_declaring(
                    r#"    <dependency>
      <groupId>com.amazonaws</groupId>
      <artifactId>aws-java-sdk-bundle</artifactId>
      <version>${aws-sdk-typo.version}</version>
    </dependency>"#,
                ),
                hadoop_version: "3.2.0",
                check: |error| {
                    let MavenError::UnresolvedProperty {
                        property,
                        used_in,
                        pom,
                    } = error
                    else {
                        panic!("expected UnresolvedProperty, got {error:?}");
                    };
                    assert_eq!(property, "aws-sdk-typo.version");
                    assert!(
                        used_in.contains("com.amazonaws:aws-java-sdk-bundle"),
                        "{used_in}"
                    );
                    assert_eq!(pom.to_string(), "org.apache.hadoop:hadoop-aws:3.2.0");
                },
            },
            Refused {
                name: "a_runtime_dependency_without_any_version_is_reported",
                repository: hadoop_3_2_0_declaring(
                    r#"    <dependency>
      <groupId>com.amazonaws</groupId>
      <artifactId>aws-java-sdk-bundle</artifactId>
    </dependency>
    <dependency>
      <groupId>org.example</groupId>
      <artifactId>unmanaged</artifactId>
      <scope>runtime</scope>
    </dependency>"#,
                ),
                hadoop_version: "3.2.0",
                check: |error| {
                    assert_eq!(
                        error.to_string(),
                        "dependency org.example:unmanaged in org.apache.hadoop:hadoop-aws:3.2.0 \
                         has no version, declared or managed"
                    );
                },
            },
            Refused {
                name: "no_sdk_bundle_names_the_pom_inspected",
                repository: hadoop_3_2_0_declaring(
                    r#"    <dependency>
      <groupId>com.amazonaws</groupId>
      <artifactId>aws-java-sdk-bundle</artifactId>
      <scope>provided</scope>
    </dependency>"#,
                ),
                hadoop_version: "3.2.0",
                check: |error| {
                    assert!(
                        matches!(error, MavenError::NoSdkBundle { pom }
                            if pom.artifact_id == "hadoop-aws"),
                        "{error:?}"
                    );
                },
            },
            Refused {
                name: "malformed_xml_names_the_pom_and_position",
                repository: hadoop_3_2_0().with(
                    "org.apache.hadoop",
                    "hadoop-project",
                    "3.2.0",
                    format!("{HEADER}\n  <properties>\n    <a>1</b>\n</project>"),
                ),
                hadoop_version: "3.2.0",
                check: |error| {
                    let MavenError::MalformedXml { pom, line, .. } = error else {
                        panic!("expected MalformedXml, got {error:?}");
                    };
                    assert_eq!(pom.as_ref().unwrap().artifact_id, "hadoop-project");
                    assert_eq!(*line, 8);
                },
            },
            Refused {
                name: "a_pom_for_other_coordinates_is_rejected",
                repository: hadoop_3_2_0().with(
                    "org.apache.hadoop",
                    "hadoop-aws",
                    "3.2.1",
                    hadoop_aws("3.2.0", ""),
                ),
                hadoop_version: "3.2.1",
                check: |error| {
                    assert!(
                        matches!(error, MavenError::CoordinatesMismatch { .. }),
                        "{error:?}"
                    );
                },
            },
            Refused {
                name: "a_dependency_version_that_would_escape_the_repository_is_rejected",
                repository: hadoop_3_2_0_declaring(ESCAPING_SDK_BUNDLE),
                hadoop_version: "3.2.0",
                check: |error| {
                    assert!(
                        matches!(error, MavenError::InvalidCoordinates { .. }),
                        "{error:?}"
                    );
                },
            },
            Refused {
                name: "a_hadoop_version_that_would_escape_the_repository_is_rejected",
                repository: hadoop_3_2_0_declaring(ESCAPING_SDK_BUNDLE),
                hadoop_version: "..",
                check: |error| {
                    assert!(
                        matches!(error, MavenError::InvalidCoordinates { .. }),
                        "{error:?}"
                    );
                },
            },
        ];
        for case in cases {
            let error = s3a_runtime_jars(&case.repository, case.hadoop_version, &nothing_present)
                .await
                .unwrap_err();
            row(case.name, || (case.check)(&error));
        }
    }

    /// A repository whose `org.example:a:1` has no effective POM, and what the error must say.
    struct NoEffectivePom {
        name: &'static str,
        repository: Repository,
        check: fn(&MavenError),
    }

    #[tokio::test]
    async fn cycles_and_runaway_properties_are_reported() {
        let parent_pom = |artifact: &str, parent: &str| {
            format!(
                r#"{HEADER}<parent><groupId>org.example</groupId><artifactId>{parent}</artifactId>
  <version>1</version></parent><artifactId>{artifact}</artifactId></project>"#
            )
        };
        let bom = |artifact: &str, imports: &str| {
            format!(
                r#"{HEADER}<groupId>org.example</groupId><artifactId>{artifact}</artifactId>
  <version>1</version><packaging>pom</packaging>
  <dependencyManagement><dependencies><dependency>
    <groupId>org.example</groupId><artifactId>{imports}</artifactId><version>1</version>
    <type>pom</type><scope>import</scope>
  </dependency></dependencies></dependencyManagement></project>"#
            )
        };
        // `a` with `properties` and one dependency on `b` at `version`.
        let with_properties = |properties: &str, version: &str| {
            let text = format!(
                r#"{HEADER}<groupId>org.example</groupId><artifactId>a</artifactId><version>1</version>
  <properties>{properties}</properties>
  <dependencies><dependency><groupId>org.example</groupId><artifactId>b</artifactId>
    <version>{version}</version></dependency></dependencies></project>"#
            );
            Repository::default().with("org.example", "a", "1", text)
        };
        let mut exponential = String::from("<p0>0123456789abcdef</p0>");
        for level in 1..40 {
            let below = level - 1;
            exponential.push_str(&format!("<p{level}>${{p{below}}}${{p{below}}}</p{level}>"));
        }
        let cases = [
            NoEffectivePom {
                name: "a_parent_cycle_is_reported",
                repository: Repository::default()
                    .with("org.example", "a", "1", parent_pom("a", "b"))
                    .with("org.example", "b", "1", parent_pom("b", "a")),
                check: |error| {
                    assert_eq!(
                        error.to_string(),
                        "cycle in parent POMs: org.example:a:1 -> org.example:b:1 -> org.example:a:1"
                    );
                },
            },
            NoEffectivePom {
                name: "a_bom_import_cycle_is_reported",
                repository: Repository::default()
                    .with("org.example", "a", "1", bom("a", "b"))
                    .with("org.example", "b", "1", bom("b", "a")),
                check: |error| {
                    assert!(
                        matches!(error, MavenError::ImportCycle { chain } if chain.0.len() == 3),
                        "{error:?}"
                    );
                },
            },
            NoEffectivePom {
                name: "a_property_cycle_is_reported",
                repository: with_properties("<x>${y}</x><y>v${x}</y>", "${x}"),
                check: |error| {
                    assert!(
                        matches!(error, MavenError::PropertyCycle { cycle, .. }
                            if cycle == "x -> y -> x"),
                        "{error:?}"
                    );
                },
            },
            NoEffectivePom {
                name: "exponential_properties_are_cut_off",
                repository: with_properties(&exponential, "${p39}"),
                check: |error| {
                    assert!(
                        matches!(error, MavenError::PropertyTooLarge { .. }),
                        "{error:?}"
                    );
                },
            },
        ];
        for case in cases {
            let error = effective_pom(&case.repository, &coordinates("org.example:a:1"))
                .await
                .unwrap_err();
            row(case.name, || (case.check)(&error));
        }
    }

    #[tokio::test]
    async fn a_missing_parent_blames_it_for_an_unresolved_property() {
        // hadoop-main holds hadoop.version; without it hadoop-common's managed
        // version cannot be resolved — but that only matters if it is needed.
        let repository = hadoop_3_3_6().without("org.apache.hadoop", "hadoop-main", "3.3.6");
        let jars = s3a_runtime_jars(&repository, "3.3.6", &nothing_present)
            .await
            .unwrap();
        assert_eq!(jars.sdk_bundle.version, "1.12.367");
        let pom = effective_pom(
            &repository,
            &coordinates("org.apache.hadoop:hadoop-aws:3.3.6"),
        )
        .await
        .unwrap();
        let common = pom
            .dependencies
            .iter()
            .find(|d| d.artifact_id == "hadoop-common")
            .unwrap();
        let error = pom.artifact(common).unwrap_err();
        assert!(
            matches!(&error, MavenError::MissingParent { source, needed, .. }
                if source.missing.artifact_id == "hadoop-main"
                    && needed == "property `hadoop.version`"),
            "{error:?}"
        );
    }

    #[test]
    fn parse_pom_reads_values_without_namespace_comments_or_whitespace() {
        let pom = parse_pom(
            r#"<project><artifactId>
              a <!-- note --></artifactId>
              <groupId><![CDATA[org.example]]></groupId>
              <dependencies><dependency><groupId>g</groupId><artifactId>x</artifactId>
                <optional> true </optional></dependency></dependencies>
            </project>"#,
        )
        .unwrap();
        assert_eq!(pom.artifact_id, "a");
        assert_eq!(pom.group_id.as_deref(), Some("org.example"));
        assert_eq!(pom.dependencies[0].optional.as_deref(), Some("true"));
        assert!(matches!(
            parse_pom("<settings/>"),
            Err(MavenError::InvalidPom { .. })
        ));
        assert!(matches!(
            parse_pom("<project><groupId>g</groupId></project>"),
            Err(MavenError::InvalidPom { .. })
        ));
    }

    #[test]
    fn resolution_futures_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        let repository = hadoop_3_2_0();
        let hadoop_aws = coordinates("org.apache.hadoop:hadoop-aws:3.2.0");
        assert_send(&effective_pom(&repository, &hadoop_aws));
        assert_send(&s3a_runtime_jars(&repository, "3.2.0", &nothing_present));
    }

    proptest::proptest! {
        #[test]
        fn parse_pom_never_panics_on_arbitrary_text(text in "\\PC*") {
            let _ = parse_pom(&text);
        }

        #[test]
        fn parse_pom_never_panics_on_pom_like_text(
            fragments in proptest::collection::vec(
                proptest::sample::select(vec![
                    "<project>", "</project>", "<parent>", "</parent>", "<groupId>", "</groupId>",
                    "<artifactId>", "</artifactId>", "<version>", "</version>", "<dependencies>",
                    "</dependencies>", "<dependency>", "</dependency>", "<properties>",
                    "</properties>", "<a.b>", "</a.b>", "${x}", "x", "<![CDATA[y]]>", "<!-- c -->",
                    "&amp;", "&bogus;", "<", ">", "\u{0}", "é",
                ]),
                0..40,
            )
        ) {
            let _ = parse_pom(&fragments.concat());
        }
    }
}
