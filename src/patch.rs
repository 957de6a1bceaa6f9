//! Patches for the Spark distribution's Kubernetes `entrypoint.sh` and `Dockerfile`.
//!
//! What changes is data: the TOML files under `patches/` (embedded at build time; the
//! format is documented in `patches/README.md`), optionally extended or overridden by a
//! user directory. This module loads them into a [`PatchSet`]; [`plan_patches`] applies
//! them to a prepared tree in memory and returns a [`PatchPlan`], which can show a unified
//! diff and write the files, each through a temporary file and a rename.
//!
//! Applying is idempotent: before the patches apply, the lines each insert patch owns are
//! removed from next to its anchor, so an already-patched tree plans to the same bytes as a
//! pristine one, and a tree patched with other values is brought to the new values instead
//! of receiving a second copy.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use similar::TextDiff;

/// The embedded patch files, applied in this order.
const BUILTIN_PATCH_FILES: &[(&str, &str)] = &[
    (
        "entrypoint.toml",
        include_str!("../patches/entrypoint.toml"),
    ),
    (
        "dockerfile.toml",
        include_str!("../patches/dockerfile.toml"),
    ),
];

/// The log4j option for Spark releases that ship log4j 1.x (before 3.3).
const LOG4J1_JAVA_OPTION: &str = "-Dlog4j.configuration=file:///opt/spark/log4j.properties";
/// The log4j option for Spark 3.3 and later, which ship log4j 2.
const LOG4J2_JAVA_OPTION: &str = "-Dlog4j.configurationFile=file:///opt/spark/log4j2.properties";

/// What can go wrong loading patches, planning them against a tree, or writing the result.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// A patch file is not valid TOML or not of the patch format.
    #[error("cannot parse patch file {source_name}")]
    Parse {
        /// The patch file: an embedded file's name or a user file's path.
        source_name: String,
        /// The TOML error.
        #[source]
        source: toml::de::Error,
    },
    /// A patch parsed but says something the engine cannot do.
    #[error("patch `{id}` in {source_name} is invalid: {reason}")]
    InvalidPatch {
        /// The patch file it came from.
        source_name: String,
        /// The patch's id.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The user patch directory could not be listed.
    #[error("cannot read the user patch directory {path}")]
    ReadUserDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A user patch file could not be read.
    #[error("cannot read user patch file {path}")]
    ReadUserPatch {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file a patch targets could not be read from the tree.
    #[error("cannot read {path}, which patch `{id}` changes")]
    ReadTarget {
        /// The file in the tree.
        path: PathBuf,
        /// The first patch that targets it.
        id: String,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A patch's anchor (or the region it is searched in) matches no line.
    #[error("patch `{id}` found no line matching {anchor} in {file} (Spark {spark_version})")]
    AnchorNotFound {
        /// The patch's id.
        id: String,
        /// The file, relative to the tree.
        file: String,
        /// The anchor, as the patch states it.
        anchor: String,
        /// The Spark version being patched.
        spark_version: String,
    },
    /// A patch's anchor matches several lines and the patch does not say `all = true`.
    #[error(
        "patch `{id}` found {count} lines matching {anchor} in {file} (Spark {spark_version}); \
         it needs exactly one unless it says `all = true`"
    )]
    AmbiguousAnchor {
        /// The patch's id.
        id: String,
        /// The file, relative to the tree.
        file: String,
        /// The anchor, as the patch states it.
        anchor: String,
        /// How many lines matched.
        count: usize,
        /// The Spark version being patched.
        spark_version: String,
    },
    /// An `append_to_line` patch's anchor line does not end with its `before_suffix`.
    #[error(
        "patch `{id}` cannot append to line {line_number} of {file} (Spark {spark_version}): \
         the line does not end with `{suffix}`"
    )]
    SuffixMissing {
        /// The patch's id.
        id: String,
        /// The file, relative to the tree.
        file: String,
        /// The 1-based line number.
        line_number: usize,
        /// The suffix the patch expects.
        suffix: String,
        /// The Spark version being patched.
        spark_version: String,
    },
    /// A `replace_word` patch's anchor line has fewer words than the patch names.
    #[error(
        "patch `{id}` cannot replace word {word} of line {line_number} in {file} \
         (Spark {spark_version}): the line has fewer words"
    )]
    WordMissing {
        /// The patch's id.
        id: String,
        /// The file, relative to the tree.
        file: String,
        /// The 1-based line number.
        line_number: usize,
        /// The 1-based word number.
        word: usize,
        /// The Spark version being patched.
        spark_version: String,
    },
    /// A patch that applies uses a value this build does not set.
    #[error("patch `{id}` uses `{{{name}}}`, which this build does not set")]
    MissingValue {
        /// The patch's id.
        id: String,
        /// The placeholder's name.
        name: &'static str,
    },
    /// A value would break the file it goes into.
    #[error("{name} `{value}` cannot go into a patched file: {reason}")]
    UnsafeValue {
        /// What the value is.
        name: &'static str,
        /// The value.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The Spark version cannot be compared.
    #[error("Spark version `{version}` does not start with a number")]
    InvalidSparkVersion {
        /// The version as given.
        version: String,
    },
    /// A file changed between planning and writing, so the plan no longer fits it.
    #[error("{path} changed after the patches were planned")]
    ChangedSincePlan {
        /// The file.
        path: PathBuf,
    },
    /// A patched file could not be written.
    #[error("cannot write the patched {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// One CA certificate to copy into the image and import into the JVM trust store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertImport {
    /// The keystore alias.
    pub alias: String,
    /// The file name under the build context's `certs/` directory.
    pub file_name: String,
}

/// Values the templates need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchContext {
    /// The Spark version being patched, e.g. `3.5.4`; named in errors, compared in conditions.
    pub spark_version: String,
    /// The full value of the JVM options variable.
    pub java_options: String,
    /// The JVM options variable: `_JAVA_OPTIONS` or `JAVA_TOOL_OPTIONS`.
    pub java_options_env: String,
    /// The log4j configuration file name, e.g. `log4j.properties`.
    pub log4j_file: String,
    /// The CA certificates to import, in order.
    pub certs: Vec<CertImport>,
    /// The image's Java major version: 8 selects the keystore path, 9 and later `-cacerts`.
    pub java_major: u32,
    /// A base image to use instead of the one in Spark's Dockerfile.
    pub base_image: Option<String>,
    /// Whether to switch the AWS SDK's certificate checks off (the plan then warns).
    pub disable_cert_checking: bool,
}

impl PatchContext {
    /// A context for `spark_version` on Java `java_major` with the log4j flavour that
    /// version ships (log4j 2 from Spark 3.3 on), no certificates and no overrides.
    pub fn for_spark(spark_version: &str, java_major: u32) -> Result<PatchContext, PatchError> {
        let version =
            parse_version(spark_version).ok_or_else(|| PatchError::InvalidSparkVersion {
                version: spark_version.to_string(),
            })?;
        let log4j2 = compare_versions(&version, &[3, 3]) != Ordering::Less;
        let (java_options, log4j_file) = if log4j2 {
            (LOG4J2_JAVA_OPTION, "log4j2.properties")
        } else {
            (LOG4J1_JAVA_OPTION, "log4j.properties")
        };
        Ok(PatchContext {
            spark_version: spark_version.to_string(),
            java_options: java_options.to_string(),
            java_options_env: "_JAVA_OPTIONS".to_string(),
            log4j_file: log4j_file.to_string(),
            certs: Vec::new(),
            java_major,
            base_image: None,
            disable_cert_checking: false,
        })
    }

    /// Refuses values that would break the files they are written into.
    fn validate(&self) -> Result<(), PatchError> {
        let plain = [
            ("Spark version", self.spark_version.as_str()),
            ("_JAVA_OPTIONS value", self.java_options.as_str()),
            ("log4j file name", self.log4j_file.as_str()),
        ];
        for (name, value) in plain {
            refuse_line_breaks(name, value)?;
        }
        if let Some(bad) = self
            .java_options
            .chars()
            .find(|c| matches!(c, '"' | '`' | '\\'))
        {
            return Err(PatchError::UnsafeValue {
                name: "_JAVA_OPTIONS value",
                value: self.java_options.clone(),
                reason: match bad {
                    '"' => "it is written inside double quotes and holds `\"`",
                    '`' => "it is written inside double quotes and holds a backquote",
                    _ => "it is written inside double quotes and holds a backslash",
                },
            });
        }
        require_file_name("log4j file name", &self.log4j_file)?;
        if !matches!(
            self.java_options_env.as_str(),
            "_JAVA_OPTIONS" | "JAVA_TOOL_OPTIONS"
        ) {
            return Err(PatchError::UnsafeValue {
                name: "JVM options variable",
                value: self.java_options_env.clone(),
                reason: "it must be _JAVA_OPTIONS or JAVA_TOOL_OPTIONS",
            });
        }
        if let Some(image) = &self.base_image {
            refuse_line_breaks("base image", image)?;
            if image.is_empty() || image.chars().any(char::is_whitespace) {
                return Err(PatchError::UnsafeValue {
                    name: "base image",
                    value: image.clone(),
                    reason: "an image reference is one non-empty word",
                });
            }
        }
        for cert in &self.certs {
            require_file_name("certificate alias", &cert.alias)?;
            require_file_name("certificate file name", &cert.file_name)?;
        }
        Ok(())
    }
}

fn refuse_line_breaks(name: &'static str, value: &str) -> Result<(), PatchError> {
    if value.contains(['\n', '\r', '\0']) {
        return Err(PatchError::UnsafeValue {
            name,
            value: value.to_string(),
            reason: "it holds a line break or NUL",
        });
    }
    Ok(())
}

/// Names that become file names and shell words: letters, digits, `.`, `_`, `-`, not
/// starting with `.` or `-`.
fn require_file_name(name: &'static str, value: &str) -> Result<(), PatchError> {
    let allowed = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let starts_well = value
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if allowed && starts_well {
        Ok(())
    } else {
        Err(PatchError::UnsafeValue {
            name,
            value: value.to_string(),
            reason: "only letters, digits, `.`, `_` and `-` are allowed, and it must not start with `.` or `-`",
        })
    }
}

/// A patch set loaded from embedded data plus an optional user directory.
#[derive(Debug, Clone)]
pub struct PatchSet {
    /// Every patch file loaded, in order: `(name, contents)`, hashed by [`PatchSet::digest`].
    sources: Vec<(String, String)>,
    /// The patches, in the order they apply.
    patches: Vec<Patch>,
}

impl PatchSet {
    /// The patches embedded in the binary.
    pub fn builtin() -> Result<PatchSet, PatchError> {
        let mut set = PatchSet {
            sources: Vec::new(),
            patches: Vec::new(),
        };
        for (name, text) in BUILTIN_PATCH_FILES {
            let patches = parse_patch_file(name, text)?;
            for patch in patches {
                if set.patches.iter().any(|existing| existing.id == patch.id) {
                    return Err(PatchError::InvalidPatch {
                        source_name: patch.source_name.clone(),
                        id: patch.id.clone(),
                        reason: "another built-in patch has the same id".to_string(),
                    });
                }
                set.patches.push(patch);
            }
            set.sources.push((name.to_string(), text.to_string()));
        }
        Ok(set)
    }

    /// Adds every `*.toml` file in `dir`, in file-name order. A patch whose id is already
    /// in the set replaces that patch in place; any other is appended.
    pub fn with_user_dir(mut self, dir: &Path) -> Result<PatchSet, PatchError> {
        let read_dir_error = |source| PatchError::ReadUserDir {
            path: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in fs::read_dir(dir).map_err(read_dir_error)? {
            let path = entry.map_err(read_dir_error)?.path();
            if path
                .extension()
                .is_some_and(|extension| extension == "toml")
                && path.is_file()
            {
                files.push(path);
            }
        }
        files.sort();
        let mut user_ids: BTreeSet<String> = BTreeSet::new();
        for path in files {
            let text = fs::read_to_string(&path).map_err(|source| PatchError::ReadUserPatch {
                path: path.clone(),
                source,
            })?;
            let name = path.display().to_string();
            // The digest names the file, not where the directory happens to live.
            let digest_name = format!(
                "user/{}",
                path.file_name().unwrap_or_default().to_string_lossy()
            );
            for patch in parse_patch_file(&name, &text)? {
                if !user_ids.insert(patch.id.clone()) {
                    return Err(PatchError::InvalidPatch {
                        source_name: name,
                        id: patch.id,
                        reason: "another user patch has the same id".to_string(),
                    });
                }
                match self
                    .patches
                    .iter_mut()
                    .find(|existing| existing.id == patch.id)
                {
                    Some(existing) => *existing = patch,
                    None => self.patches.push(patch),
                }
            }
            self.sources.push((digest_name, text));
        }
        Ok(self)
    }

    /// SHA-256 (hex) over the names and contents of every patch file, in order, so a build
    /// fingerprint changes whenever the patches do.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for (name, text) in &self.sources {
            // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        hex::encode(hasher.finalize())
    }

    /// Each patch's id and description, in the order they apply.
    pub fn patches(&self) -> impl Iterator<Item = (&str, &str)> {
        self.patches
            .iter()
            .map(|patch| (patch.id.as_str(), patch.description.as_str()))
    }
}

/// Apply every patch to the tree in memory and return the new contents (nothing written).
///
/// Fails if an anchor is not found, naming the file, the anchor text and the Spark
/// version. Idempotent: planning against an already-patched tree yields byte-identical
/// contents.
pub fn plan_patches(
    tree: &Path,
    set: &PatchSet,
    context: &PatchContext,
) -> Result<PatchPlan, PatchError> {
    context.validate()?;
    let spark_version =
        parse_version(&context.spark_version).ok_or_else(|| PatchError::InvalidSparkVersion {
            version: context.spark_version.clone(),
        })?;

    // Group by target file, keeping the order in which files first appear.
    let mut targets: Vec<(&str, Vec<&Patch>)> = Vec::new();
    for patch in &set.patches {
        match targets.iter_mut().find(|(file, _)| *file == patch.file) {
            Some((_, patches)) => patches.push(patch),
            None => targets.push((patch.file.as_str(), vec![patch])),
        }
    }

    let mut plan = PatchPlan {
        files: Vec::new(),
        warnings: Vec::new(),
    };
    for (file, patches) in targets {
        let path = tree.join(file);
        let any_applies = patches
            .iter()
            .any(|patch| patch.holds(context, &spark_version));
        let original = match fs::read_to_string(&path) {
            Ok(original) => original,
            // Nothing to do in a file no applicable patch changes, so it may be absent.
            Err(error) if error.kind() == io::ErrorKind::NotFound && !any_applies => continue,
            Err(source) => {
                return Err(PatchError::ReadTarget {
                    path,
                    id: patches[0].id.clone(),
                    source,
                });
            }
        };
        let target = Target {
            file,
            spark_version: &context.spark_version,
        };
        let mut text = LineText::parse(&original);
        remove_owned_lines(&patches, &mut text.lines, context);
        for patch in patches {
            if patch.holds(context, &spark_version) {
                patch.apply(&mut text.lines, context, &target)?;
                if let Some(warning) = &patch.warning {
                    plan.warnings
                        .push(warning.render(context, None).map_err(|name| {
                            PatchError::MissingValue {
                                id: patch.id.clone(),
                                name,
                            }
                        })?);
                }
            }
        }
        plan.files.push(PlannedFile {
            path,
            relative: file.to_string(),
            patched: text.join(),
            original,
        });
    }
    Ok(plan)
}

/// The patched contents of every target file, ready to show or write.
#[derive(Debug, Clone)]
pub struct PatchPlan {
    /// Every target file, changed or not, in the order the patches name them.
    files: Vec<PlannedFile>,
    /// Warnings from the patches that applied.
    warnings: Vec<String>,
}

#[derive(Debug, Clone)]
struct PlannedFile {
    /// The file in the tree.
    path: PathBuf,
    /// The file relative to the tree, `/`-separated, as the patches name it.
    relative: String,
    /// The contents read while planning.
    original: String,
    /// The contents after every patch.
    patched: String,
}

impl PlannedFile {
    fn changed(&self) -> bool {
        self.original != self.patched
    }
}

impl PatchPlan {
    /// A unified diff of every changed file, with paths `a/…` and `b/…` relative to the tree.
    pub fn unified_diff(&self) -> String {
        let mut diff = String::new();
        for file in self.files.iter().filter(|file| file.changed()) {
            let text_diff = TextDiff::from_lines(&file.original, &file.patched);
            diff.push_str(
                &text_diff
                    .unified_diff()
                    .header(
                        &format!("a/{}", file.relative),
                        &format!("b/{}", file.relative),
                    )
                    .to_string(),
            );
        }
        diff
    }

    /// Writes every changed file through a temporary file in its directory and a rename,
    /// keeping its permissions. Refuses a file that changed since it was planned.
    pub fn write(&self) -> Result<(), PatchError> {
        for file in self.files.iter().filter(|file| file.changed()) {
            let write_error = |source| PatchError::Write {
                path: file.path.clone(),
                source,
            };
            let current = fs::read_to_string(&file.path).map_err(write_error)?;
            if current != file.original {
                return Err(PatchError::ChangedSincePlan {
                    path: file.path.clone(),
                });
            }
            let permissions = fs::metadata(&file.path).map_err(write_error)?.permissions();
            let mut temporary =
                crate::persist::temp_for(&file.path).map_err(|error| write_error(error.source))?;
            temporary
                .write_all(file.patched.as_bytes())
                .map_err(write_error)?;
            fs::set_permissions(temporary.path(), permissions).map_err(write_error)?;
            crate::persist::persist(temporary, &file.path)
                .map_err(|error| write_error(error.source))?;
        }
        Ok(())
    }

    /// Warnings from the patches that applied (e.g. certificate checks switched off).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The files the plan changes, relative to the tree, `/`-separated.
    pub fn changed_files(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .filter(|file| file.changed())
            .map(|file| file.relative.as_str())
    }

    /// The planned contents of a target file (relative, `/`-separated), changed or not.
    pub fn patched_contents(&self, relative: &str) -> Option<&str> {
        self.files
            .iter()
            .find(|file| file.relative == relative)
            .map(|file| file.patched.as_str())
    }
}

/// Where a patch is being applied, for error messages.
struct Target<'a> {
    file: &'a str,
    spark_version: &'a str,
}

/// A file as lines without their terminators, remembering how to put it back together.
struct LineText {
    lines: Vec<String>,
    line_ending: &'static str,
    final_newline: bool,
}

impl LineText {
    fn parse(text: &str) -> LineText {
        let line_ending = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let final_newline = text.ends_with('\n');
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines = if text.is_empty() {
            Vec::new()
        } else {
            body.split('\n')
                .map(|line| line.strip_suffix('\r').unwrap_or(line).to_string())
                .collect()
        };
        LineText {
            lines,
            line_ending,
            final_newline,
        }
    }

    fn join(&self) -> String {
        let mut text = self.lines.join(self.line_ending);
        if self.final_newline && !self.lines.is_empty() {
            text.push_str(self.line_ending);
        }
        text
    }
}

// ---------------------------------------------------------------------------------------
// The patch format as written in TOML.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchFileSpec {
    #[serde(default)]
    patch: Vec<PatchSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchSpec {
    id: String,
    #[serde(default)]
    description: String,
    file: String,
    #[serde(default)]
    when: Vec<String>,
    within: Option<RegionSpec>,
    anchor: MatcherSpec,
    #[serde(default)]
    otherwise: Vec<MatcherSpec>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    last: bool,
    #[serde(default)]
    or_at_end: bool,
    operation: OperationSpec,
    template: String,
    for_each: Option<String>,
    indent: Option<String>,
    owned: Option<MatcherSpec>,
    before_suffix: Option<String>,
    word: Option<usize>,
    skip_prefix: Option<String>,
    warning: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionSpec {
    start: MatcherSpec,
    end: MatcherSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatcherSpec {
    equals: Option<OneOrMany>,
    starts_with: Option<OneOrMany>,
    ends_with: Option<OneOrMany>,
    contains: Option<OneOrMany>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum OperationSpec {
    InsertBefore,
    InsertAfter,
    Replace,
    ReplaceWord,
    AppendToLine,
}

fn parse_patch_file(source_name: &str, text: &str) -> Result<Vec<Patch>, PatchError> {
    let spec: PatchFileSpec = toml::from_str(text).map_err(|source| PatchError::Parse {
        source_name: source_name.to_string(),
        source,
    })?;
    let mut patches: Vec<Patch> = Vec::new();
    for patch_spec in spec.patch {
        let id = patch_spec.id.clone();
        let patch =
            Patch::compile(source_name, patch_spec).map_err(|reason| PatchError::InvalidPatch {
                source_name: source_name.to_string(),
                id: id.clone(),
                reason,
            })?;
        if patches.iter().any(|existing| existing.id == patch.id) {
            return Err(PatchError::InvalidPatch {
                source_name: source_name.to_string(),
                id,
                reason: "the file holds another patch with the same id".to_string(),
            });
        }
        patches.push(patch);
    }
    Ok(patches)
}

// ---------------------------------------------------------------------------------------
// Patches, checked and ready to apply.

#[derive(Debug, Clone)]
struct Patch {
    id: String,
    description: String,
    source_name: String,
    /// Relative to the tree, `/`-separated.
    file: String,
    conditions: Vec<Condition>,
    region: Option<Region>,
    anchor: Matcher,
    /// Anchors tried in order when `anchor` matches no line.
    otherwise: Vec<Matcher>,
    all: bool,
    /// With several matching lines, use the last one.
    last: bool,
    /// When no anchor matches, insert at the end of the file (or region).
    or_at_end: bool,
    action: Action,
    template: Template,
    for_each_cert: bool,
    indent: Indent,
    owned: Option<Matcher>,
    warning: Option<Template>,
}

#[derive(Debug, Clone)]
struct Region {
    start: Matcher,
    end: Matcher,
}

#[derive(Debug, Clone)]
enum Action {
    Insert(Direction),
    Replace,
    ReplaceWord {
        word: usize,
        skip_prefix: Option<String>,
    },
    AppendToLine {
        before_suffix: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Direction {
    Before,
    After,
}

#[derive(Debug, Clone)]
enum Indent {
    Anchor,
    Literal(String),
}

impl Patch {
    fn compile(source_name: &str, spec: PatchSpec) -> Result<Patch, String> {
        if spec.id.trim().is_empty() {
            return Err("the id is empty".to_string());
        }
        check_relative_file(&spec.file)?;
        let for_each_cert = match spec.for_each.as_deref() {
            None => false,
            Some("certs") => true,
            Some(other) => {
                return Err(format!(
                    "`for_each = \"{other}\"` is unknown; the only list is `certs`"
                ));
            }
        };
        let action = match spec.operation {
            OperationSpec::InsertBefore => Action::Insert(Direction::Before),
            OperationSpec::InsertAfter => Action::Insert(Direction::After),
            OperationSpec::Replace => Action::Replace,
            OperationSpec::ReplaceWord => Action::ReplaceWord {
                word: match spec.word {
                    Some(word) if word >= 1 => word,
                    _ => return Err("`replace_word` needs `word`, counted from 1".to_string()),
                },
                skip_prefix: non_empty(spec.skip_prefix.clone(), "skip_prefix")?,
            },
            OperationSpec::AppendToLine => Action::AppendToLine {
                before_suffix: non_empty(spec.before_suffix.clone(), "before_suffix")?,
            },
        };
        let is_replace_word = matches!(action, Action::ReplaceWord { .. });
        let is_append = matches!(action, Action::AppendToLine { .. });
        if !is_replace_word && (spec.word.is_some() || spec.skip_prefix.is_some()) {
            return Err("`word` and `skip_prefix` belong to `replace_word`".to_string());
        }
        if !is_append && spec.before_suffix.is_some() {
            return Err("`before_suffix` belongs to `append_to_line`".to_string());
        }
        let template = Template::parse(&spec.template)?;
        if template.uses_cert() && !for_each_cert {
            return Err("`{cert.…}` placeholders need `for_each = \"certs\"`".to_string());
        }
        if !matches!(action, Action::Insert(_)) {
            if for_each_cert {
                return Err("only insert operations take `for_each`".to_string());
            }
            if template.has_line_break() {
                return Err("this operation takes a one-line template".to_string());
            }
        }
        if spec.all && spec.last {
            return Err("`all` and `last` exclude each other".to_string());
        }
        if spec.or_at_end && !matches!(action, Action::Insert(_)) {
            return Err("only insert operations take `or_at_end`".to_string());
        }
        let warning = spec.warning.as_deref().map(Template::parse).transpose()?;
        if warning.as_ref().is_some_and(Template::uses_cert) {
            return Err("a warning cannot use `{cert.…}` placeholders".to_string());
        }
        let indent = match spec.indent.as_deref() {
            None | Some("anchor") => Indent::Anchor,
            Some(literal) if literal.chars().all(|c| c == ' ' || c == '\t') => {
                Indent::Literal(literal.to_string())
            }
            Some(other) => {
                return Err(format!(
                    "`indent = \"{other}\"` is neither \"anchor\" nor spaces and tabs"
                ));
            }
        };
        Ok(Patch {
            id: spec.id,
            description: spec.description,
            source_name: source_name.to_string(),
            file: spec.file,
            conditions: spec
                .when
                .iter()
                .map(|text| Condition::parse(text))
                .collect::<Result<_, _>>()?,
            region: spec
                .within
                .map(|region| -> Result<Region, String> {
                    Ok(Region {
                        start: Matcher::compile(region.start, "within.start")?,
                        end: Matcher::compile(region.end, "within.end")?,
                    })
                })
                .transpose()?,
            anchor: Matcher::compile(spec.anchor, "anchor")?,
            otherwise: spec
                .otherwise
                .into_iter()
                .map(|matcher| Matcher::compile(matcher, "otherwise"))
                .collect::<Result<_, _>>()?,
            all: spec.all,
            last: spec.last,
            or_at_end: spec.or_at_end,
            action,
            template,
            for_each_cert,
            indent,
            owned: spec
                .owned
                .map(|owned| Matcher::compile(owned, "owned"))
                .transpose()?,
            warning,
        })
    }

    fn holds(&self, context: &PatchContext, spark_version: &[u64]) -> bool {
        self.conditions
            .iter()
            .all(|condition| condition.holds(context, spark_version))
    }

    /// The lines the patch writes with these values (before indentation).
    fn render_lines(&self, context: &PatchContext) -> Result<Vec<String>, PatchError> {
        let missing = |name| PatchError::MissingValue {
            id: self.id.clone(),
            name,
        };
        let texts = if self.for_each_cert {
            context
                .certs
                .iter()
                .map(|cert| self.template.render(context, Some(cert)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(missing)?
        } else {
            vec![self.template.render(context, None).map_err(missing)?]
        };
        let mut lines = Vec::new();
        for text in texts {
            let text = text.strip_suffix('\n').unwrap_or(&text);
            lines.extend(text.split('\n').map(str::to_string));
        }
        Ok(lines)
    }

    /// What counts as a line this patch wrote, for idempotency.
    fn ownership(&self, context: &PatchContext) -> Option<Owned<'_>> {
        match &self.owned {
            Some(matcher) => Some(Owned::Matcher(matcher)),
            None => match self.render_lines(context) {
                Ok(lines) if !lines.is_empty() => Some(Owned::Exact(
                    lines.iter().map(|line| line.trim().to_string()).collect(),
                )),
                _ => None,
            },
        }
    }

    /// The anchor lines, or why there are none (or too many).
    fn locate(&self, lines: &[String], also: Option<&Owned<'_>>) -> Result<Vec<usize>, Miss> {
        let (from, to) = match &self.region {
            None => (0, lines.len()),
            Some(region) => {
                let starts: Vec<usize> = (0..lines.len())
                    .filter(|&index| region.start.matches(&lines[index]))
                    .collect();
                let start = match starts.as_slice() {
                    [] => {
                        return Err(Miss::NotFound {
                            anchor: format!("{} (the start of the region to search)", region.start),
                        });
                    }
                    [start] => *start,
                    _ => {
                        return Err(Miss::Ambiguous {
                            anchor: format!("{} (the start of the region to search)", region.start),
                            count: starts.len(),
                        });
                    }
                };
                let end = (start + 1..lines.len())
                    .find(|&index| region.end.matches(&lines[index]))
                    .ok_or_else(|| Miss::NotFound {
                        anchor: format!(
                            "{} (the end of the region opened by {})",
                            region.end, region.start
                        ),
                    })?;
                (start + 1, end)
            }
        };
        // The anchor, then each fallback in turn: the first that matches a line is used.
        let mut found: Vec<usize> = Vec::new();
        for (position, matcher) in std::iter::once(&self.anchor)
            .chain(&self.otherwise)
            .enumerate()
        {
            found = (from..to)
                .filter(|&index| {
                    matcher.matches(&lines[index])
                        || (position == 0 && also.is_some_and(|owned| owned.matches(&lines[index])))
                })
                .collect();
            if !found.is_empty() {
                break;
            }
        }
        let mut anchor = self.anchor.to_string();
        for fallback in &self.otherwise {
            anchor.push_str(&format!(", else {fallback}"));
        }
        if let Some(region) = &self.region {
            anchor = format!("{anchor} between {} and {}", region.start, region.end);
        }
        match found.len() {
            // The end of the file (or region) stands in as the anchor.
            0 if self.or_at_end => Ok(vec![to]),
            0 => Err(Miss::NotFound { anchor }),
            1 => Ok(found),
            _ if self.all => Ok(found),
            _ if self.last => Ok(found.split_off(found.len() - 1)),
            count => Err(Miss::Ambiguous { anchor, count }),
        }
    }

    fn indent_for(&self, anchor_line: &str) -> String {
        match &self.indent {
            Indent::Anchor => {
                anchor_line[..anchor_line.len() - anchor_line.trim_start().len()].to_string()
            }
            Indent::Literal(literal) => literal.clone(),
        }
    }

    fn apply(
        &self,
        lines: &mut Vec<String>,
        context: &PatchContext,
        target: &Target<'_>,
    ) -> Result<(), PatchError> {
        let rendered = self.render_lines(context)?;
        if let Some(owned) = &self.owned
            && let Some(stray) = rendered.iter().find(|line| !owned.matches(line))
        {
            return Err(PatchError::InvalidPatch {
                source_name: self.source_name.clone(),
                id: self.id.clone(),
                reason: format!(
                    "it writes `{stray}`, which its `owned` matcher ({owned}) does not match, \
                     so applying it twice would write it twice"
                ),
            });
        }
        let also = match (&self.action, &self.owned) {
            (Action::Insert(_), _) => None,
            (_, Some(owned)) => Some(Owned::Matcher(owned)),
            (Action::Replace, None) => Some(Owned::Exact(
                rendered
                    .iter()
                    .map(|line| line.trim().to_string())
                    .collect(),
            )),
            (_, None) => None,
        };
        let anchors = self
            .locate(lines, also.as_ref())
            .map_err(|miss| miss.into_error(self, target))?;
        // From the bottom up, so insertions do not move the anchors still to come.
        for &index in anchors.iter().rev() {
            // `or_at_end` anchors at one past the last line: no anchor line to indent like.
            let indent = lines
                .get(index)
                .map(|line| self.indent_for(line))
                .unwrap_or_default();
            let line_number = index + 1;
            match &self.action {
                Action::Insert(direction) => {
                    let at = match direction {
                        Direction::Before => index,
                        Direction::After => (index + 1).min(lines.len()),
                    };
                    let block = rendered.iter().map(|line| format!("{indent}{line}"));
                    lines.splice(at..at, block);
                }
                Action::Replace => {
                    lines[index] = format!("{indent}{}", rendered.concat());
                }
                Action::ReplaceWord { word, skip_prefix } => {
                    let replaced = replace_word(
                        &lines[index],
                        *word,
                        skip_prefix.as_deref(),
                        &rendered.concat(),
                    )
                    .ok_or_else(|| PatchError::WordMissing {
                        id: self.id.clone(),
                        file: target.file.to_string(),
                        line_number,
                        word: *word,
                        spark_version: target.spark_version.to_string(),
                    })?;
                    lines[index] = replaced;
                }
                Action::AppendToLine { before_suffix } => {
                    let addition = rendered.concat();
                    let line = &lines[index];
                    let (body, suffix) = match before_suffix {
                        None => (line.as_str(), ""),
                        Some(suffix) => match line.strip_suffix(suffix.as_str()) {
                            Some(body) => (body, suffix.as_str()),
                            None => {
                                return Err(PatchError::SuffixMissing {
                                    id: self.id.clone(),
                                    file: target.file.to_string(),
                                    line_number,
                                    suffix: suffix.clone(),
                                    spark_version: target.spark_version.to_string(),
                                });
                            }
                        },
                    };
                    if !body.ends_with(&addition) {
                        lines[index] = format!("{body}{addition}{suffix}");
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why an anchor could not be used, before the file and version are known.
enum Miss {
    NotFound { anchor: String },
    Ambiguous { anchor: String, count: usize },
}

impl Miss {
    fn into_error(self, patch: &Patch, target: &Target<'_>) -> PatchError {
        match self {
            Miss::NotFound { anchor } => PatchError::AnchorNotFound {
                id: patch.id.clone(),
                file: target.file.to_string(),
                anchor,
                spark_version: target.spark_version.to_string(),
            },
            Miss::Ambiguous { anchor, count } => PatchError::AmbiguousAnchor {
                id: patch.id.clone(),
                file: target.file.to_string(),
                anchor,
                count,
                spark_version: target.spark_version.to_string(),
            },
        }
    }
}

/// Lines a patch counts as its own.
#[derive(Debug, Clone)]
enum Owned<'a> {
    Matcher(&'a Matcher),
    /// Exactly these lines (trimmed), as the patch would write them now.
    Exact(Vec<String>),
}

impl Owned<'_> {
    fn matches(&self, line: &str) -> bool {
        match self {
            Owned::Matcher(matcher) => matcher.matches(line),
            Owned::Exact(lines) => lines.iter().any(|owned| owned == line.trim()),
        }
    }
}

/// Removes, next to each insert patch's anchor, the run of lines owned by the patches that
/// insert there, so that applying afterwards yields the same text on a pristine and on an
/// already-patched file. Patches whose anchor cannot be found are skipped: if they apply,
/// the apply step reports it.
fn remove_owned_lines(patches: &[&Patch], lines: &mut Vec<String>, context: &PatchContext) {
    let mut inserts: Vec<(usize, Direction, Owned<'_>)> = Vec::new();
    for patch in patches {
        let Action::Insert(direction) = patch.action else {
            continue;
        };
        let Some(owned) = patch.ownership(context) else {
            continue;
        };
        let Ok(anchors) = patch.locate(lines, None) else {
            continue;
        };
        for index in anchors {
            inserts.push((index, direction, owned.clone()));
        }
    }
    let anchors: BTreeSet<usize> = inserts.iter().map(|(index, _, _)| *index).collect();
    let mut doomed: BTreeSet<usize> = BTreeSet::new();
    let places: BTreeSet<(usize, Direction)> = inserts
        .iter()
        .map(|(index, direction, _)| (*index, *direction))
        .collect();
    for (anchor, direction) in places {
        let owners: Vec<&Owned<'_>> = inserts
            .iter()
            .filter(|(index, dir, _)| *index == anchor && *dir == direction)
            .map(|(_, _, owned)| owned)
            .collect();
        let mut index = anchor;
        loop {
            let next = match direction {
                Direction::Before => index.checked_sub(1),
                Direction::After => Some(index + 1).filter(|&next| next < lines.len()),
            };
            let Some(next) = next else { break };
            if anchors.contains(&next) || !owners.iter().any(|owned| owned.matches(&lines[next])) {
                break;
            }
            doomed.insert(next);
            index = next;
        }
    }
    let mut index = 0;
    lines.retain(|_| {
        let keep = !doomed.contains(&index);
        index += 1;
        keep
    });
}

/// Replaces word `word` (1-based) of `line`, not counting words after the first that start
/// with `skip_prefix`; keeps every other character. `None` if the line is shorter.
fn replace_word(line: &str, word: usize, skip_prefix: Option<&str>, new: &str) -> Option<String> {
    let mut count = 0;
    let mut position = 0;
    while position < line.len() {
        let rest = &line[position..];
        let start = position + (rest.len() - rest.trim_start().len());
        if start >= line.len() {
            break;
        }
        let end = line[start..]
            .find(char::is_whitespace)
            .map_or(line.len(), |offset| start + offset);
        let text = &line[start..end];
        let skipped = count > 0 && skip_prefix.is_some_and(|prefix| text.starts_with(prefix));
        if !skipped {
            count += 1;
            if count == word {
                return Some(format!("{}{new}{}", &line[..start], &line[end..]));
            }
        }
        position = end;
    }
    None
}

fn check_relative_file(file: &str) -> Result<(), String> {
    let path = Path::new(file);
    let plain = !file.is_empty()
        && !file.contains('\\')
        && path
            .components()
            .all(|component| matches!(component, Component::Normal(_)));
    if plain {
        Ok(())
    } else {
        Err(format!(
            "`file = \"{file}\"` must be a relative path of plain names inside the Spark tree"
        ))
    }
}

fn non_empty(value: Option<String>, key: &str) -> Result<Option<String>, String> {
    match value {
        Some(text) if text.is_empty() => Err(format!("`{key}` is empty")),
        other => Ok(other),
    }
}

// ---------------------------------------------------------------------------------------
// Matchers.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchKind {
    Equals,
    StartsWith,
    EndsWith,
    Contains,
}

impl MatchKind {
    fn key(self) -> &'static str {
        match self {
            MatchKind::Equals => "equals",
            MatchKind::StartsWith => "starts_with",
            MatchKind::EndsWith => "ends_with",
            MatchKind::Contains => "contains",
        }
    }
}

/// Matches a line (trimmed) against any of several literal alternatives.
#[derive(Debug, Clone)]
struct Matcher {
    alternatives: Vec<(MatchKind, String)>,
}

impl Matcher {
    fn compile(spec: MatcherSpec, key: &str) -> Result<Matcher, String> {
        let mut alternatives = Vec::new();
        let keyed = [
            (MatchKind::Equals, spec.equals),
            (MatchKind::StartsWith, spec.starts_with),
            (MatchKind::EndsWith, spec.ends_with),
            (MatchKind::Contains, spec.contains),
        ];
        for (kind, texts) in keyed {
            let texts = match texts {
                None => continue,
                Some(OneOrMany::One(text)) => vec![text],
                Some(OneOrMany::Many(texts)) => texts,
            };
            for text in texts {
                // The line is trimmed before matching, so the pattern is trimmed on the
                // side(s) it is compared at: `starts_with = "FROM "` keeps its space.
                let text = match kind {
                    MatchKind::Equals => text.trim(),
                    MatchKind::StartsWith => text.trim_start(),
                    MatchKind::EndsWith => text.trim_end(),
                    MatchKind::Contains => text.as_str(),
                }
                .to_string();
                if text.is_empty() || text.contains(['\n', '\r']) {
                    return Err(format!(
                        "`{key}.{}` needs non-empty, single-line text",
                        kind.key()
                    ));
                }
                alternatives.push((kind, text));
            }
        }
        if alternatives.is_empty() {
            return Err(format!(
                "`{key}` needs one of `equals`, `starts_with`, `ends_with`, `contains`"
            ));
        }
        Ok(Matcher { alternatives })
    }

    fn matches(&self, line: &str) -> bool {
        let line = line.trim();
        self.alternatives.iter().any(|(kind, text)| match kind {
            MatchKind::Equals => line == text,
            MatchKind::StartsWith => line.starts_with(text.as_str()),
            MatchKind::EndsWith => line.ends_with(text.as_str()),
            MatchKind::Contains => line.contains(text.as_str()),
        })
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, (kind, text)) in self.alternatives.iter().enumerate() {
            if position > 0 {
                formatter.write_str(" or ")?;
            }
            write!(formatter, "{} `{text}`", kind.key())?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Templates.

/// A value a template or condition can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placeholder {
    SparkVersion,
    JavaOptions,
    JavaOptionsEnv,
    Log4jFile,
    JavaMajor,
    BaseImage,
    CertAlias,
    CertFileName,
}

impl Placeholder {
    const ALL: [Placeholder; 8] = [
        Placeholder::SparkVersion,
        Placeholder::JavaOptions,
        Placeholder::JavaOptionsEnv,
        Placeholder::Log4jFile,
        Placeholder::JavaMajor,
        Placeholder::BaseImage,
        Placeholder::CertAlias,
        Placeholder::CertFileName,
    ];

    fn name(self) -> &'static str {
        match self {
            Placeholder::SparkVersion => "spark_version",
            Placeholder::JavaOptions => "java_options",
            Placeholder::JavaOptionsEnv => "java_options_env",
            Placeholder::Log4jFile => "log4j_file",
            Placeholder::JavaMajor => "java_major",
            Placeholder::BaseImage => "base_image",
            Placeholder::CertAlias => "cert.alias",
            Placeholder::CertFileName => "cert.file_name",
        }
    }

    fn is_cert(self) -> bool {
        matches!(self, Placeholder::CertAlias | Placeholder::CertFileName)
    }
}

#[derive(Debug, Clone)]
enum Segment {
    Text(String),
    Value(Placeholder),
}

#[derive(Debug, Clone)]
struct Template {
    segments: Vec<Segment>,
}

impl Template {
    fn parse(text: &str) -> Result<Template, String> {
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => {
                                return Err(format!(
                                    "`{{{name}` is not closed (write `{{{{` for a literal brace)"
                                ));
                            }
                        }
                    }
                    let placeholder = Placeholder::ALL
                        .into_iter()
                        .find(|placeholder| placeholder.name() == name.trim())
                        .ok_or_else(|| format!("`{{{name}}}` is not a known placeholder"))?;
                    if !literal.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut literal)));
                    }
                    segments.push(Segment::Value(placeholder));
                }
                '}' => return Err("a lone `}` (write `}}` for a literal brace)".to_string()),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        Ok(Template { segments })
    }

    fn uses_cert(&self) -> bool {
        self.segments
            .iter()
            .any(|segment| matches!(segment, Segment::Value(placeholder) if placeholder.is_cert()))
    }

    fn has_line_break(&self) -> bool {
        let mut text = String::new();
        for segment in &self.segments {
            if let Segment::Text(literal) = segment {
                text.push_str(literal);
            } else {
                text.push('x');
            }
        }
        text.strip_suffix('\n').unwrap_or(&text).contains('\n')
    }

    /// Renders with `context` (and `cert` inside `for_each`); on a value the build does not
    /// set, returns that placeholder's name.
    fn render(
        &self,
        context: &PatchContext,
        cert: Option<&CertImport>,
    ) -> Result<String, &'static str> {
        let mut text = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(literal) => text.push_str(literal),
                Segment::Value(placeholder) => {
                    let missing = || placeholder.name();
                    match placeholder {
                        Placeholder::SparkVersion => text.push_str(&context.spark_version),
                        Placeholder::JavaOptions => text.push_str(&context.java_options),
                        Placeholder::JavaOptionsEnv => text.push_str(&context.java_options_env),
                        Placeholder::Log4jFile => text.push_str(&context.log4j_file),
                        Placeholder::JavaMajor => text.push_str(&context.java_major.to_string()),
                        Placeholder::BaseImage => {
                            text.push_str(context.base_image.as_deref().ok_or_else(missing)?)
                        }
                        Placeholder::CertAlias => text.push_str(&cert.ok_or_else(missing)?.alias),
                        Placeholder::CertFileName => {
                            text.push_str(&cert.ok_or_else(missing)?.file_name)
                        }
                    }
                }
            }
        }
        Ok(text)
    }
}

// ---------------------------------------------------------------------------------------
// Conditions.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flag {
    Certs,
    BaseImage,
    DisableCertChecking,
    JavaOptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ordered {
    JavaMajor,
    SparkVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
    NotEqual,
}

#[derive(Debug, Clone)]
enum Condition {
    Flag {
        flag: Flag,
        negated: bool,
    },
    Compare {
        subject: Ordered,
        comparison: Comparison,
        value: Vec<u64>,
    },
}

impl Condition {
    fn parse(text: &str) -> Result<Condition, String> {
        let trimmed = text.trim();
        let Some(operator_at) = trimmed.find(['<', '>', '=', '!']) else {
            return Ok(Condition::Flag {
                flag: parse_flag(trimmed)?,
                negated: false,
            });
        };
        if operator_at == 0 && trimmed.starts_with('!') && !trimmed.starts_with("!=") {
            return Ok(Condition::Flag {
                flag: parse_flag(trimmed[1..].trim())?,
                negated: true,
            });
        }
        let subject_text = trimmed[..operator_at].trim();
        let rest = &trimmed[operator_at..];
        let (comparison, length) = [
            ("<=", Comparison::LessOrEqual),
            (">=", Comparison::GreaterOrEqual),
            ("==", Comparison::Equal),
            ("!=", Comparison::NotEqual),
            ("<", Comparison::Less),
            (">", Comparison::Greater),
        ]
        .into_iter()
        .find(|(operator, _)| rest.starts_with(operator))
        .map(|(operator, comparison)| (comparison, operator.len()))
        .ok_or_else(|| format!("`{trimmed}`: use one of < <= > >= == !="))?;
        let subject = match subject_text {
            "java_major" => Ordered::JavaMajor,
            "spark_version" => Ordered::SparkVersion,
            other => {
                return Err(format!(
                    "`{trimmed}`: only `java_major` and `spark_version` can be compared, not `{other}`"
                ));
            }
        };
        let value_text = rest[length..].trim();
        let value = parse_version(value_text)
            .ok_or_else(|| format!("`{trimmed}`: `{value_text}` is not a number or version"))?;
        Ok(Condition::Compare {
            subject,
            comparison,
            value,
        })
    }

    fn holds(&self, context: &PatchContext, spark_version: &[u64]) -> bool {
        match self {
            Condition::Flag { flag, negated } => {
                let set = match flag {
                    Flag::Certs => !context.certs.is_empty(),
                    Flag::BaseImage => context.base_image.is_some(),
                    Flag::DisableCertChecking => context.disable_cert_checking,
                    Flag::JavaOptions => !context.java_options.is_empty(),
                };
                set != *negated
            }
            Condition::Compare {
                subject,
                comparison,
                value,
            } => {
                let java_major = [u64::from(context.java_major)];
                let actual: &[u64] = match subject {
                    Ordered::JavaMajor => &java_major,
                    Ordered::SparkVersion => spark_version,
                };
                let ordering = compare_versions(actual, value);
                match comparison {
                    Comparison::Less => ordering == Ordering::Less,
                    Comparison::LessOrEqual => ordering != Ordering::Greater,
                    Comparison::Greater => ordering == Ordering::Greater,
                    Comparison::GreaterOrEqual => ordering != Ordering::Less,
                    Comparison::Equal => ordering == Ordering::Equal,
                    Comparison::NotEqual => ordering != Ordering::Equal,
                }
            }
        }
    }
}

fn parse_flag(name: &str) -> Result<Flag, String> {
    match name {
        "certs" => Ok(Flag::Certs),
        "base_image" => Ok(Flag::BaseImage),
        "disable_cert_checking" => Ok(Flag::DisableCertChecking),
        "java_options" => Ok(Flag::JavaOptions),
        other => Err(format!(
            "`{other}` is not a condition; use certs, base_image, disable_cert_checking, \
             java_options, or compare java_major / spark_version"
        )),
    }
}

/// The leading numbers of a dotted version: `3.5.0-preview1` is `[3, 5, 0]`. `None` if
/// it does not start with a number.
fn parse_version(text: &str) -> Option<Vec<u64>> {
    let mut components = Vec::new();
    for part in text.trim().split('.') {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        let Ok(number) = digits.parse::<u64>() else {
            break;
        };
        components.push(number);
        if digits.len() != part.len() {
            break;
        }
    }
    (!components.is_empty()).then_some(components)
}

/// Compares component by component, missing components counting as 0.
fn compare_versions(left: &[u64], right: &[u64]) -> Ordering {
    let length = left.len().max(right.len());
    for index in 0..length {
        let ordering = left
            .get(index)
            .unwrap_or(&0)
            .cmp(right.get(index).unwrap_or(&0));
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;

    const ENTRYPOINT: &str = "kubernetes/dockerfiles/spark/entrypoint.sh";
    const DOCKERFILE: &str = "kubernetes/dockerfiles/spark/Dockerfile";

    macro_rules! golden {
        ($family:literal, $kind:literal, $file:literal) => {
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/golden/patches/",
                $family,
                "/",
                $kind,
                "/",
                $file
            ))
        };
    }

    /// One family of Spark's Kubernetes files: the fixture, the values the golden output was
    /// made with, and the golden output.
    struct Family {
        name: &'static str,
        entrypoint: &'static str,
        dockerfile: &'static str,
        expected_entrypoint: &'static str,
        expected_dockerfile: &'static str,
        context: PatchContext,
    }

    fn cert(alias: &str, file_name: &str) -> CertImport {
        CertImport {
            alias: alias.to_string(),
            file_name: file_name.to_string(),
        }
    }

    fn two_certs() -> Vec<CertImport> {
        vec![
            cert("corp-root-ca", "corp-root-ca.pem"),
            cert("partner-ca", "partner_ca.crt"),
        ]
    }

    fn families() -> Vec<Family> {
        let spark31 = PatchContext {
            certs: vec![cert("corp-root-ca", "corp-root-ca.pem")],
            ..PatchContext::for_spark("3.1.3", 11).unwrap()
        };
        let spark33 = PatchContext {
            certs: two_certs(),
            base_image: Some("registry.example.com/base/java:8-jre".to_string()),
            ..PatchContext::for_spark("3.3.4", 8).unwrap()
        };
        let spark35 = PatchContext {
            certs: two_certs(),
            disable_cert_checking: true,
            ..PatchContext::for_spark("3.5.4", 17).unwrap()
        };
        let spark4 = PatchContext {
            base_image: Some("eclipse-temurin:21-jre-noble".to_string()),
            ..PatchContext::for_spark("4.0.1", 21).unwrap()
        };
        vec![
            Family {
                name: "spark-3.1",
                entrypoint: golden!("spark-3.1", "input", "entrypoint.sh"),
                dockerfile: golden!("spark-3.1", "input", "Dockerfile"),
                expected_entrypoint: golden!("spark-3.1", "expected", "entrypoint.sh"),
                expected_dockerfile: golden!("spark-3.1", "expected", "Dockerfile"),
                context: spark31,
            },
            Family {
                name: "spark-3.3",
                entrypoint: golden!("spark-3.3", "input", "entrypoint.sh"),
                dockerfile: golden!("spark-3.3", "input", "Dockerfile"),
                expected_entrypoint: golden!("spark-3.3", "expected", "entrypoint.sh"),
                expected_dockerfile: golden!("spark-3.3", "expected", "Dockerfile"),
                context: spark33,
            },
            Family {
                name: "spark-3.5",
                entrypoint: golden!("spark-3.5", "input", "entrypoint.sh"),
                dockerfile: golden!("spark-3.5", "input", "Dockerfile"),
                expected_entrypoint: golden!("spark-3.5", "expected", "entrypoint.sh"),
                expected_dockerfile: golden!("spark-3.5", "expected", "Dockerfile"),
                context: spark35,
            },
            Family {
                name: "spark-4.x",
                entrypoint: golden!("spark-4.x", "input", "entrypoint.sh"),
                dockerfile: golden!("spark-4.x", "input", "Dockerfile"),
                expected_entrypoint: golden!("spark-4.x", "expected", "entrypoint.sh"),
                expected_dockerfile: golden!("spark-4.x", "expected", "Dockerfile"),
                context: spark4,
            },
        ]
    }

    fn family(name: &str) -> Family {
        families()
            .into_iter()
            .find(|family| family.name == name)
            .unwrap()
    }

    /// A Spark tree holding just the two files the patches change.
    fn tree_with(entrypoint: &str, dockerfile: &str) -> tempfile::TempDir {
        let tree = tempfile::tempdir().unwrap();
        let directory = tree.path().join("kubernetes/dockerfiles/spark");
        fs::create_dir_all(&directory).unwrap();
        fs::write(directory.join("entrypoint.sh"), entrypoint).unwrap();
        fs::set_permissions(
            directory.join("entrypoint.sh"),
            fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        fs::write(directory.join("Dockerfile"), dockerfile).unwrap();
        tree
    }

    fn read(tree: &tempfile::TempDir, relative: &str) -> String {
        fs::read_to_string(tree.path().join(relative)).unwrap()
    }

    fn plan(entrypoint: &str, dockerfile: &str, context: &PatchContext) -> PatchPlan {
        let tree = tree_with(entrypoint, dockerfile);
        plan_patches(tree.path(), &PatchSet::builtin().unwrap(), context).unwrap()
    }

    fn dockerfile_of(plan: &PatchPlan) -> &str {
        plan.patched_contents(DOCKERFILE).unwrap()
    }

    fn entrypoint_of(plan: &PatchPlan) -> &str {
        plan.patched_contents(ENTRYPOINT).unwrap()
    }

    fn user_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
        let directory = tempfile::tempdir().unwrap();
        for (name, text) in files {
            fs::write(directory.path().join(name), text).unwrap();
        }
        directory
    }

    #[test]
    fn every_family_matches_its_golden_output() {
        for family in families() {
            let plan = plan(family.entrypoint, family.dockerfile, &family.context);
            assert_eq!(
                entrypoint_of(&plan),
                family.expected_entrypoint,
                "{} entrypoint.sh",
                family.name
            );
            assert_eq!(
                dockerfile_of(&plan),
                family.expected_dockerfile,
                "{} Dockerfile",
                family.name
            );
        }
    }

    #[test]
    fn applying_to_a_patched_tree_is_byte_identical() {
        let set = PatchSet::builtin().unwrap();
        for family in families() {
            let tree = tree_with(family.entrypoint, family.dockerfile);
            plan_patches(tree.path(), &set, &family.context)
                .unwrap()
                .write()
                .unwrap();
            let first = (read(&tree, ENTRYPOINT), read(&tree, DOCKERFILE));
            let again = plan_patches(tree.path(), &set, &family.context).unwrap();
            assert_eq!(again.changed_files().count(), 0, "{}", family.name);
            assert_eq!(again.unified_diff(), "", "{}", family.name);
            again.write().unwrap();
            assert_eq!(
                (read(&tree, ENTRYPOINT), read(&tree, DOCKERFILE)),
                first,
                "{}",
                family.name
            );
            assert_eq!(first.0, family.expected_entrypoint, "{}", family.name);
        }
    }

    #[test]
    fn reapplying_with_other_values_matches_a_fresh_application() {
        let spark35 = family("spark-3.5");
        let set = PatchSet::builtin().unwrap();
        let tree = tree_with(spark35.entrypoint, spark35.dockerfile);
        let one_cert = PatchContext {
            certs: vec![cert("only-ca", "only.pem")],
            ..spark35.context.clone()
        };
        plan_patches(tree.path(), &set, &one_cert)
            .unwrap()
            .write()
            .unwrap();
        for context in [
            spark35.context.clone(),
            PatchContext {
                certs: Vec::new(),
                disable_cert_checking: false,
                ..spark35.context.clone()
            },
        ] {
            let replanned = plan_patches(tree.path(), &set, &context).unwrap();
            let fresh = plan(spark35.entrypoint, spark35.dockerfile, &context);
            assert_eq!(entrypoint_of(&replanned), entrypoint_of(&fresh));
            assert_eq!(dockerfile_of(&replanned), dockerfile_of(&fresh));
        }
    }

    #[test]
    fn a_missing_anchor_names_file_anchor_and_version_and_nothing_is_written() {
        let spark35 = family("spark-3.5");
        let entrypoint = spark35
            .entrypoint
            .replace("case \"$1\" in\n", "case \"$MODE\" in\n");
        let tree = tree_with(&entrypoint, spark35.dockerfile);
        let error =
            plan_patches(tree.path(), &PatchSet::builtin().unwrap(), &spark35.context).unwrap_err();
        assert!(
            matches!(error, PatchError::AnchorNotFound { .. }),
            "{error:?}"
        );
        let message = error.to_string();
        for needle in [
            ENTRYPOINT,
            "equals `case \"$1\" in`",
            "Spark 3.5.4",
            "entrypoint-java-options",
        ] {
            assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        }
        assert_eq!(read(&tree, ENTRYPOINT), entrypoint);
        assert_eq!(read(&tree, DOCKERFILE), spark35.dockerfile);
    }

    #[test]
    fn a_missing_driver_branch_is_reported_as_the_region_start() {
        let spark31 = family("spark-3.1");
        let entrypoint = spark31.entrypoint.replace("  driver)\n", "  submit)\n");
        let tree = tree_with(&entrypoint, spark31.dockerfile);
        let message = plan_patches(tree.path(), &PatchSet::builtin().unwrap(), &spark31.context)
            .unwrap_err()
            .to_string();
        assert!(message.contains("equals `driver)`"), "{message}");
        assert!(message.contains("Spark 3.1.3"), "{message}");
    }

    #[test]
    fn a_dockerfile_without_the_workdir_line_is_an_error_for_the_log4j_copy() {
        let spark4 = family("spark-4.x");
        let dockerfile = spark4
            .dockerfile
            .replace("WORKDIR /opt/spark/work-dir\n", "");
        let tree = tree_with(spark4.entrypoint, &dockerfile);
        let message = plan_patches(tree.path(), &PatchSet::builtin().unwrap(), &spark4.context)
            .unwrap_err()
            .to_string();
        assert!(message.contains(DOCKERFILE), "{message}");
        assert!(
            message.contains("`WORKDIR /opt/spark/work-dir`"),
            "{message}"
        );
        assert!(message.contains("Spark 4.0.1"), "{message}");
    }

    #[test]
    fn an_anchor_matching_twice_is_an_error_unless_the_patch_says_all() {
        let spark35 = family("spark-3.5");
        let dockerfile = spark35
            .dockerfile
            .replace("RUN chmod a+x", "USER root\nRUN chmod a+x");
        let tree = tree_with(spark35.entrypoint, &dockerfile);
        let patch = |extra: &str| {
            format!(
                r#"
[[patch]]
id = "label-every-user-switch"
file = "kubernetes/dockerfiles/spark/Dockerfile"
anchor = {{ starts_with = "USER " }}
{extra}
operation = "insert_after"
template = "LABEL switched=yes"
"#
            )
        };
        let no_certs = PatchContext {
            certs: Vec::new(),
            ..spark35.context.clone()
        };
        let ambiguous = user_dir(&[("label.toml", &patch(""))]);
        let set = PatchSet::builtin()
            .unwrap()
            .with_user_dir(ambiguous.path())
            .unwrap();
        let error = plan_patches(tree.path(), &set, &no_certs).unwrap_err();
        assert!(
            matches!(error, PatchError::AmbiguousAnchor { count: 2, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("all = true"), "{error}");

        let user = user_dir(&[("label.toml", &patch("all = true"))]);
        let set = PatchSet::builtin()
            .unwrap()
            .with_user_dir(user.path())
            .unwrap();
        let patched = plan_patches(tree.path(), &set, &no_certs).unwrap();
        assert_eq!(
            dockerfile_of(&patched)
                .matches("LABEL switched=yes\n")
                .count(),
            2
        );
        patched.write().unwrap();
        let again = plan_patches(tree.path(), &set, &no_certs).unwrap();
        assert_eq!(again.changed_files().count(), 0);

        let both = user_dir(&[("label.toml", &patch("all = true\nlast = true"))]);
        let error = PatchSet::builtin()
            .unwrap()
            .with_user_dir(both.path())
            .unwrap_err();
        assert!(error.to_string().contains("exclude each other"), "{error}");
    }

    #[test]
    fn verbose_follows_both_spark_submit_spellings_in_the_driver_branch_only() {
        for (family_name, spelling) in [
            ("spark-3.5", "\"$SPARK_HOME/bin/spark-submit\""),
            ("spark-4.x", "\"${SPARK_HOME}/bin/spark-submit\""),
        ] {
            let family = family(family_name);
            let plan = plan(family.entrypoint, family.dockerfile, &family.context);
            let lines: Vec<&str> = entrypoint_of(&plan).lines().collect();
            let submit = lines
                .iter()
                .position(|line| line.trim() == spelling)
                .unwrap();
            assert_eq!(lines[submit + 1], "      --verbose", "{family_name}");
            assert_eq!(
                lines
                    .iter()
                    .filter(|line| line.contains("--verbose"))
                    .count(),
                1,
                "{family_name}"
            );
        }
        // A spark-submit line outside the driver branch is left alone.
        let spark35 = family("spark-3.5");
        let entrypoint = spark35.entrypoint.replace(
            "      ${JAVA_HOME}/bin/java\n",
            "      \"$SPARK_HOME/bin/spark-submit\"\n",
        );
        let plan = plan(&entrypoint, spark35.dockerfile, &spark35.context);
        assert_eq!(entrypoint_of(&plan).matches("--verbose").count(), 1);
    }

    const IMPORT_LINES: [&str; 2] = [
        "COPY certs/ /opt/spark/certs/",
        "RUN sh /opt/spark/certs/import-certs.sh /opt/spark/certs",
    ];

    /// Plans `dockerfile` with `certs`, checks that planning the result again changes
    /// nothing, and returns the patched Dockerfile's lines.
    fn patched_dockerfile_lines(dockerfile: &str, certs: Vec<CertImport>) -> Vec<String> {
        let spark35 = family("spark-3.5");
        let context = PatchContext {
            certs,
            ..spark35.context.clone()
        };
        let tree = tree_with(spark35.entrypoint, dockerfile);
        let plan = plan_patches(tree.path(), &PatchSet::builtin().unwrap(), &context).unwrap();
        plan.write().unwrap();
        let again = plan_patches(tree.path(), &PatchSet::builtin().unwrap(), &context).unwrap();
        assert_eq!(again.changed_files().count(), 0, "not idempotent");
        read(&tree, DOCKERFILE)
            .lines()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn certificates_are_imported_as_root_before_the_user_switch() {
        let spark35 = family("spark-3.5");
        for count in 0..=2 {
            for java_major in [8, 17] {
                let context = PatchContext {
                    certs: two_certs().into_iter().take(count).collect(),
                    java_major,
                    ..spark35.context.clone()
                };
                let plan = plan(spark35.entrypoint, spark35.dockerfile, &context);
                let dockerfile = dockerfile_of(&plan);
                let lines: Vec<&str> = dockerfile.lines().collect();
                let imports = lines
                    .iter()
                    .filter(|line| IMPORT_LINES.contains(line))
                    .count();
                // One script imports every certificate; the JRE decides the truststore.
                assert_eq!(imports, if count > 0 { 2 } else { 0 }, "{count} certs");
                assert!(!dockerfile.contains("keytool"), "{dockerfile}");
                assert_eq!(lines.last(), Some(&"USER ${spark_uid}"));
                if count > 0 {
                    let user = lines.len() - 1;
                    assert_eq!(lines[user - 2..user], IMPORT_LINES);
                }
            }
        }
    }

    #[test]
    fn the_ca_import_goes_before_the_last_user_else_entrypoint_else_at_the_end() {
        let spark35 = family("spark-3.5");
        let certs = two_certs;
        // Two USER lines: before the last one.
        let two_users = spark35
            .dockerfile
            .replace("RUN chmod a+x", "USER root\nRUN chmod a+x");
        let lines = patched_dockerfile_lines(&two_users, certs());
        let user = lines.len() - 1;
        assert_eq!(lines[user], "USER ${spark_uid}");
        assert_eq!(lines[user - 2..user], IMPORT_LINES);
        assert_eq!(
            lines
                .iter()
                .filter(|line| line.starts_with("USER "))
                .count(),
            2
        );

        // No USER line (the official spark-docker 3.3 Dockerfile): before ENTRYPOINT.
        let no_user = spark35
            .dockerfile
            .replace("USER ${spark_uid}\n", "")
            .replace("ENTRYPOINT [", "CMD [\"bash\"]\nENTRYPOINT [");
        let lines = patched_dockerfile_lines(&no_user, certs());
        let entrypoint = lines
            .iter()
            .position(|line| line.starts_with("ENTRYPOINT"))
            .unwrap();
        assert_eq!(lines[entrypoint - 2..entrypoint], IMPORT_LINES);

        // Neither USER nor ENTRYPOINT nor CMD: at the end.
        let bare: String = spark35
            .dockerfile
            .lines()
            .filter(|line| !line.starts_with("USER ") && !line.starts_with("ENTRYPOINT "))
            .map(|line| format!("{line}\n"))
            .collect();
        let lines = patched_dockerfile_lines(&bare, certs());
        assert_eq!(lines[lines.len() - 2..], IMPORT_LINES);
        // Without certificates nothing is added anywhere.
        let lines = patched_dockerfile_lines(&bare, Vec::new());
        assert!(
            !lines
                .iter()
                .any(|line| IMPORT_LINES.contains(&line.as_str()))
        );
    }

    #[test]
    fn the_base_image_is_replaced_keeping_arguments_and_stage_name() {
        let spark31 = family("spark-3.1");
        let spark35 = family("spark-3.5");
        let context = PatchContext {
            base_image: Some("registry.example.com/jre:17".to_string()),
            ..spark35.context.clone()
        };
        let cases = [
            (spark31.dockerfile.to_string(), "FROM registry.example.com/jre:17\n"),
            (spark35.dockerfile.to_string(), "FROM registry.example.com/jre:17\n"),
            (
                spark35.dockerfile.replace(
                    "FROM eclipse-temurin:${java_image_tag}\n",
                    "FROM eclipse-temurin:${java_image_tag} AS runtime\n",
                ),
                "FROM registry.example.com/jre:17 AS runtime\n",
            ),
            (
                spark35.dockerfile.replace(
                    "FROM eclipse-temurin:${java_image_tag}\n",
                    "FROM --platform=$TARGETPLATFORM eclipse-temurin:${java_image_tag}  AS  runtime\n",
                ),
                "FROM --platform=$TARGETPLATFORM registry.example.com/jre:17  AS  runtime\n",
            ),
        ];
        for (dockerfile, expected_from) in cases {
            let plan = plan(spark35.entrypoint, &dockerfile, &context);
            let patched = dockerfile_of(&plan);
            assert!(patched.contains(expected_from), "{patched}");
            assert_eq!(patched.matches("\nFROM ").count(), 1);
            let arguments = |text: &str| -> Vec<String> {
                text.lines()
                    .filter(|line| line.starts_with("ARG "))
                    .map(str::to_string)
                    .collect()
            };
            assert_eq!(arguments(patched), arguments(&dockerfile));
        }
        // Without an override the FROM line stays.
        let plan = plan(spark31.entrypoint, spark31.dockerfile, &spark31.context);
        assert!(dockerfile_of(&plan).contains("\nFROM openjdk:${java_image_tag}\n"));
    }

    #[test]
    fn a_user_patch_directory_adds_and_overrides_patches() {
        let spark33 = family("spark-3.3");
        let user = user_dir(&[
            (
                "10-label.toml",
                r#"
[[patch]]
id = "label-spark-version"
description = "record the Spark version"
file = "kubernetes/dockerfiles/spark/Dockerfile"
anchor = { starts_with = "ENTRYPOINT " }
operation = "insert_after"
template = 'LABEL org.opencontainers.image.version="{spark_version}"'
"#,
            ),
            (
                "20-quiet.toml",
                r#"
[[patch]]
id = "entrypoint-driver-verbose"
file = "kubernetes/dockerfiles/spark/entrypoint.sh"
within = { start = { equals = "driver)" }, end = { equals = ";;" } }
anchor = { equals = ['"$SPARK_HOME/bin/spark-submit"', '"${SPARK_HOME}/bin/spark-submit"'] }
operation = "insert_after"
template = "--conf spark.ui.showConsoleProgress=false"
"#,
            ),
            ("notes.txt", "not a patch"),
        ]);
        let builtin = PatchSet::builtin().unwrap();
        let builtin_digest = builtin.digest();
        let set = builtin.with_user_dir(user.path()).unwrap();
        assert_ne!(set.digest(), builtin_digest);
        assert_eq!(set.digest(), set.clone().digest());
        let ids: Vec<&str> = set.patches().map(|(id, _)| id).collect();
        assert_eq!(ids.last(), Some(&"label-spark-version"));
        assert_eq!(
            ids.iter()
                .filter(|id| **id == "entrypoint-driver-verbose")
                .count(),
            1
        );

        let tree = tree_with(spark33.entrypoint, spark33.dockerfile);
        let plan = plan_patches(tree.path(), &set, &spark33.context).unwrap();
        assert!(dockerfile_of(&plan).contains(
            "ENTRYPOINT [ \"/opt/entrypoint.sh\" ]\nLABEL org.opencontainers.image.version=\"3.3.4\"\n"
        ));
        let entrypoint = entrypoint_of(&plan);
        assert!(!entrypoint.contains("--verbose"));
        assert!(entrypoint.contains(
            "\"$SPARK_HOME/bin/spark-submit\"\n      --conf spark.ui.showConsoleProgress=false\n"
        ));
        plan.write().unwrap();
        let again = plan_patches(tree.path(), &set, &spark33.context).unwrap();
        assert_eq!(again.changed_files().count(), 0);
    }

    #[test]
    fn the_digest_depends_on_patch_files_not_on_where_they_live() {
        let patch = r#"
[[patch]]
id = "pyspark-only"
file = "kubernetes/dockerfiles/spark/bindings/python/Dockerfile"
when = ["spark_version < 3.0"]
anchor = { starts_with = "USER " }
operation = "insert_before"
template = "RUN true"
"#;
        let first = user_dir(&[("extra.toml", patch)]);
        let second = user_dir(&[("extra.toml", patch)]);
        let changed = user_dir(&[("extra.toml", &patch.replace("RUN true", "RUN false"))]);
        let digest = |directory: &tempfile::TempDir| {
            PatchSet::builtin()
                .unwrap()
                .with_user_dir(directory.path())
                .unwrap()
                .digest()
        };
        assert_eq!(digest(&first), digest(&second));
        assert_ne!(digest(&first), digest(&changed));
        assert_eq!(digest(&first).len(), 64);

        // Its target is absent from the tree, which is fine while it does not apply.
        let spark35 = family("spark-3.5");
        let tree = tree_with(spark35.entrypoint, spark35.dockerfile);
        let set = PatchSet::builtin()
            .unwrap()
            .with_user_dir(first.path())
            .unwrap();
        plan_patches(tree.path(), &set, &spark35.context).unwrap();
        let old_spark = PatchContext {
            spark_version: "2.4.8".to_string(),
            ..spark35.context.clone()
        };
        let error = plan_patches(tree.path(), &set, &old_spark).unwrap_err();
        assert!(matches!(error, PatchError::ReadTarget { .. }), "{error:?}");
    }

    #[test]
    fn invalid_patches_are_rejected_when_loaded() {
        let cases = [
            (
                "[[patch]]\nid = \"x\"\nfile = \"Dockerfile\"\nanchor = { equals = \"A\" }\noperation = \"insert_after\"\ntemplate = \"{nope}\"\n",
                "`{nope}` is not a known placeholder",
            ),
            (
                "[[patch]]\nid = \"x\"\nfile = \"Dockerfile\"\nanchor = { equals = \"A\" }\noperation = \"insert_after\"\ntemplate = \"{cert.alias}\"\n",
                "for_each",
            ),
            (
                "[[patch]]\nid = \"x\"\nfile = \"Dockerfile\"\nwhen = [\"rainy\"]\nanchor = { equals = \"A\" }\noperation = \"insert_after\"\ntemplate = \"B\"\n",
                "`rainy` is not a condition",
            ),
            (
                "[[patch]]\nid = \"x\"\nfile = \"../etc/passwd\"\nanchor = { equals = \"A\" }\noperation = \"insert_after\"\ntemplate = \"B\"\n",
                "relative path",
            ),
            (
                "[[patch]]\nid = \"x\"\nfile = \"Dockerfile\"\nanchor = {}\noperation = \"insert_after\"\ntemplate = \"B\"\n",
                "`anchor` needs one of",
            ),
            (
                "[[patch]]\nid = \"x\"\nfile = \"Dockerfile\"\nanchor = { equals = \"A\" }\noperation = \"replace_word\"\ntemplate = \"B\"\n",
                "needs `word`",
            ),
            (
                "[[patch]]\nid = \"x\"\nfile = \"Dockerfile\"\nanchor = { equals = \"A\" }\noperation = \"replace\"\ntemplate = \"B\\nC\"\n",
                "one-line template",
            ),
        ];
        for (text, reason) in cases {
            let user = user_dir(&[("bad.toml", text)]);
            let error = PatchSet::builtin()
                .unwrap()
                .with_user_dir(user.path())
                .unwrap_err();
            assert!(
                matches!(error, PatchError::InvalidPatch { .. }),
                "{error:?}"
            );
            assert!(error.to_string().contains(reason), "{error} lacks {reason}");
        }
        let user = user_dir(&[(
            "typo.toml",
            "[[patch]]\nid = \"x\"\nfile = \"Dockerfile\"\nanchr = { equals = \"A\" }\noperation = \"insert_after\"\ntemplate = \"B\"\n",
        )]);
        let error = PatchSet::builtin()
            .unwrap()
            .with_user_dir(user.path())
            .unwrap_err();
        assert!(matches!(error, PatchError::Parse { .. }), "{error:?}");
        let missing = tempfile::tempdir().unwrap().path().join("absent");
        assert!(matches!(
            PatchSet::builtin().unwrap().with_user_dir(&missing),
            Err(PatchError::ReadUserDir { .. })
        ));
    }

    #[test]
    fn a_patch_writing_lines_its_owned_matcher_misses_is_refused() {
        let spark31 = family("spark-3.1");
        let user = user_dir(&[(
            "owned.toml",
            r#"
[[patch]]
id = "mislabelled"
file = "kubernetes/dockerfiles/spark/Dockerfile"
anchor = { starts_with = "ENTRYPOINT " }
operation = "insert_before"
template = "LABEL a=b"
owned = { starts_with = "LABEL c=" }
"#,
        )]);
        let set = PatchSet::builtin()
            .unwrap()
            .with_user_dir(user.path())
            .unwrap();
        let tree = tree_with(spark31.entrypoint, spark31.dockerfile);
        let error = plan_patches(tree.path(), &set, &spark31.context).unwrap_err();
        assert!(error.to_string().contains("writes `LABEL a=b`"), "{error}");
    }

    #[test]
    fn writing_keeps_the_mode_and_refuses_a_file_changed_since_planning() {
        let spark31 = family("spark-3.1");
        let tree = tree_with(spark31.entrypoint, spark31.dockerfile);
        let set = PatchSet::builtin().unwrap();
        let plan = plan_patches(tree.path(), &set, &spark31.context).unwrap();
        plan.write().unwrap();
        let mode = fs::metadata(tree.path().join(ENTRYPOINT))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(read(&tree, ENTRYPOINT), spark31.expected_entrypoint);
        let leftovers: Vec<_> = fs::read_dir(tree.path().join("kubernetes/dockerfiles/spark"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(leftovers.len(), 2, "{leftovers:?}");

        let tree = tree_with(spark31.entrypoint, spark31.dockerfile);
        let plan = plan_patches(tree.path(), &set, &spark31.context).unwrap();
        fs::write(tree.path().join(DOCKERFILE), "FROM scratch\n").unwrap();
        let error = plan.write().unwrap_err();
        assert!(
            matches!(error, PatchError::ChangedSincePlan { .. }),
            "{error:?}"
        );
        assert_eq!(read(&tree, DOCKERFILE), "FROM scratch\n");
    }

    #[test]
    fn the_unified_diff_names_files_a_and_b() {
        let spark31 = family("spark-3.1");
        let plan = plan(spark31.entrypoint, spark31.dockerfile, &spark31.context);
        let diff = plan.unified_diff();
        assert!(
            diff.starts_with(&format!("--- a/{ENTRYPOINT}\n+++ b/{ENTRYPOINT}\n")),
            "{diff}"
        );
        assert!(
            diff.contains(&format!("--- a/{DOCKERFILE}\n+++ b/{DOCKERFILE}\n")),
            "{diff}"
        );
        assert!(diff.contains("\n+      --verbose\n"), "{diff}");
        assert!(
            diff.contains("\n+COPY conf/log4j.properties /opt/spark/\n"),
            "{diff}"
        );
        let changed: Vec<&str> = plan.changed_files().collect();
        assert_eq!(changed, [ENTRYPOINT, DOCKERFILE]);
    }

    #[test]
    fn switching_cert_checks_off_is_explicit_and_warned_about() {
        let spark35 = family("spark-3.5");
        let plan_on = plan(spark35.entrypoint, spark35.dockerfile, &spark35.context);
        assert_eq!(plan_on.warnings().len(), 1);
        assert!(plan_on.warnings()[0].contains("disableCertChecking"));
        let off = PatchContext {
            disable_cert_checking: false,
            ..spark35.context.clone()
        };
        let plan_off = plan(spark35.entrypoint, spark35.dockerfile, &off);
        assert!(plan_off.warnings().is_empty());
        assert!(!entrypoint_of(&plan_off).contains("disableCertChecking"));
    }

    #[test]
    fn values_that_would_break_the_files_are_refused() {
        let spark35 = family("spark-3.5");
        let tree = tree_with(spark35.entrypoint, spark35.dockerfile);
        let set = PatchSet::builtin().unwrap();
        let bad_contexts = [
            PatchContext {
                certs: vec![cert("ok", "../escape.pem")],
                ..spark35.context.clone()
            },
            PatchContext {
                certs: vec![cert("two words", "ca.pem")],
                ..spark35.context.clone()
            },
            PatchContext {
                java_options: "-Dx=\"quoted\"".to_string(),
                ..spark35.context.clone()
            },
            PatchContext {
                base_image: Some("image\nRUN evil".to_string()),
                ..spark35.context.clone()
            },
            PatchContext {
                spark_version: "latest".to_string(),
                ..spark35.context.clone()
            },
        ];
        for context in bad_contexts {
            let error = plan_patches(tree.path(), &set, &context).unwrap_err();
            assert!(
                matches!(
                    error,
                    PatchError::UnsafeValue { .. } | PatchError::InvalidSparkVersion { .. }
                ),
                "{error:?}"
            );
        }
        assert_eq!(read(&tree, DOCKERFILE), spark35.dockerfile);
    }

    #[test]
    fn the_log4j_flavour_follows_the_spark_version() {
        let old = PatchContext::for_spark("3.2.4", 11).unwrap();
        assert_eq!(old.java_options, LOG4J1_JAVA_OPTION);
        assert_eq!(old.log4j_file, "log4j.properties");
        for version in ["3.3.0", "3.5.4", "4.0.0-preview2"] {
            let new = PatchContext::for_spark(version, 17).unwrap();
            assert_eq!(new.java_options, LOG4J2_JAVA_OPTION, "{version}");
            assert_eq!(new.log4j_file, "log4j2.properties", "{version}");
        }
        assert!(PatchContext::for_spark("main", 17).is_err());
    }

    #[test]
    fn conditions_compare_versions_component_by_component() {
        let context = PatchContext::for_spark("3.3.0-preview1", 11).unwrap();
        let version = parse_version(&context.spark_version).unwrap();
        assert_eq!(version, [3, 3, 0]);
        let holds = |text: &str| Condition::parse(text).unwrap().holds(&context, &version);
        assert!(holds("spark_version >= 3.3"));
        assert!(holds("spark_version == 3.3.0"));
        assert!(holds("spark_version<3.10"));
        assert!(!holds("spark_version > 3.3"));
        assert!(holds("java_major >= 9"));
        assert!(holds("java_major != 8"));
        assert!(!holds("java_major <= 8"));
        assert!(holds("!certs"));
        assert!(!holds("certs"));
        assert!(holds("java_options"));
        assert!(!holds("base_image"));
        assert!(Condition::parse("java_major => 9").is_err());
        assert!(Condition::parse("hadoop_version >= 3").is_err());
        assert!(Condition::parse("java_major >= x").is_err());
    }

    #[test]
    fn templates_escape_braces_and_reject_strays() {
        let context = PatchContext::for_spark("3.5.4", 17).unwrap();
        let template = Template::parse("ENV A=${{spark_uid}} V={spark_version}").unwrap();
        assert_eq!(
            template.render(&context, None).unwrap(),
            "ENV A=${spark_uid} V=3.5.4"
        );
        assert!(Template::parse("a } b").is_err());
        assert!(Template::parse("a {spark_version").is_err());
        let image = Template::parse("{base_image}").unwrap();
        assert_eq!(image.render(&context, None), Err("base_image"));
    }

    #[test]
    fn replace_word_counts_words_and_skips_flags() {
        assert_eq!(
            replace_word("FROM a AS b", 2, Some("--"), "x").as_deref(),
            Some("FROM x AS b")
        );
        assert_eq!(
            replace_word("  FROM --platform=p a", 2, Some("--"), "x").as_deref(),
            Some("  FROM --platform=p x")
        );
        assert_eq!(replace_word("FROM", 2, Some("--"), "x"), None);
    }

    #[test]
    fn crlf_files_keep_their_line_endings() {
        let spark31 = family("spark-3.1");
        let plan = plan(
            &spark31.entrypoint.replace('\n', "\r\n"),
            &spark31.dockerfile.replace('\n', "\r\n"),
            &spark31.context,
        );
        assert_eq!(
            entrypoint_of(&plan),
            spark31.expected_entrypoint.replace('\n', "\r\n")
        );
        assert_eq!(
            dockerfile_of(&plan),
            spark31.expected_dockerfile.replace('\n', "\r\n")
        );
    }

    /// Runs a patched entrypoint under real bash with a fake `tini` that prints
    /// `_JAVA_OPTIONS=…` and then its arguments, one per line. Spark's script calls tini by
    /// its absolute path, so that one path is pointed at `tini` on PATH in the copy that
    /// runs. Returns the lines tini printed and the fake SPARK_HOME.
    fn run_entrypoint(entrypoint: &str, arguments: &[&str]) -> (Vec<String>, String) {
        let sandbox = tempfile::tempdir().unwrap();
        let bin = sandbox.path().join("bin");
        let spark_home = sandbox.path().join("spark");
        let java_home = sandbox.path().join("java");
        for directory in [
            &bin,
            &spark_home.join("bin"),
            &spark_home.join("jars"),
            &java_home,
        ] {
            fs::create_dir_all(directory).unwrap();
        }
        fs::write(
            bin.join("tini"),
            "#!/bin/sh\nprintf '_JAVA_OPTIONS=%s\\n' \"$_JAVA_OPTIONS\"\n\
             for argument in \"$@\"; do printf '%s\\n' \"$argument\"; done\n",
        )
        .unwrap();
        fs::set_permissions(bin.join("tini"), fs::Permissions::from_mode(0o755)).unwrap();
        assert!(entrypoint.contains("exec /usr/bin/tini -s -- \"${CMD[@]}\""));
        let script = sandbox.path().join("entrypoint.sh");
        fs::write(&script, entrypoint.replace("/usr/bin/tini", "tini")).unwrap();

        let output = Command::new("bash")
            .arg(&script)
            .args(arguments)
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("HOME", sandbox.path())
            .env("SPARK_HOME", &spark_home)
            .env("JAVA_HOME", &java_home)
            .env("SPARK_DRIVER_BIND_ADDRESS", "10.1.2.3")
            .current_dir(sandbox.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(
            output.status.success(),
            "entrypoint failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<String> = stdout
            .lines()
            .skip_while(|line| !line.starts_with("_JAVA_OPTIONS="))
            .map(str::to_string)
            .collect();
        (lines, spark_home.display().to_string())
    }

    #[test]
    fn the_patched_3_1_entrypoint_runs_the_driver_verbosely_with_java_options() {
        let spark31 = family("spark-3.1");
        let plan = plan(spark31.entrypoint, spark31.dockerfile, &spark31.context);
        let (printed, spark_home) =
            run_entrypoint(entrypoint_of(&plan), &["driver", "--class", "X", "app.jar"]);
        assert_eq!(
            printed,
            [
                format!("_JAVA_OPTIONS={LOG4J1_JAVA_OPTION}"),
                "-s".to_string(),
                "--".to_string(),
                format!("{spark_home}/bin/spark-submit"),
                "--verbose".to_string(),
                "--conf".to_string(),
                "spark.driver.bindAddress=10.1.2.3".to_string(),
                "--deploy-mode".to_string(),
                "client".to_string(),
                "--class".to_string(),
                "X".to_string(),
                "app.jar".to_string(),
            ]
        );
    }

    #[test]
    fn the_patched_3_5_entrypoint_runs_the_driver_verbosely_with_java_options() {
        let spark35 = family("spark-3.5");
        let plan = plan(spark35.entrypoint, spark35.dockerfile, &spark35.context);
        let (printed, spark_home) =
            run_entrypoint(entrypoint_of(&plan), &["driver", "--class", "X", "app.jar"]);
        assert_eq!(
            printed,
            [
                format!(
                    "_JAVA_OPTIONS={LOG4J2_JAVA_OPTION} -Dcom.amazonaws.sdk.disableCertChecking=true"
                ),
                "-s".to_string(),
                "--".to_string(),
                format!("{spark_home}/bin/spark-submit"),
                "--verbose".to_string(),
                "--conf".to_string(),
                "spark.driver.bindAddress=10.1.2.3".to_string(),
                "--conf".to_string(),
                "spark.executorEnv.SPARK_DRIVER_POD_IP=10.1.2.3".to_string(),
                "--deploy-mode".to_string(),
                "client".to_string(),
                "--class".to_string(),
                "X".to_string(),
                "app.jar".to_string(),
            ]
        );
        // The executor branch keeps its command as it was, and sees the options too.
        let (printed, _) = run_entrypoint(entrypoint_of(&plan), &["executor"]);
        assert!(printed[0].starts_with("_JAVA_OPTIONS=-Dlog4j.configurationFile="));
        assert!(printed[3].ends_with("/java/bin/java"), "{printed:?}");
        assert!(
            !printed.iter().any(|argument| argument == "--verbose"),
            "{printed:?}"
        );
    }
}
