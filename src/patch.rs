//! Patches for the Spark distribution's Kubernetes `entrypoint.sh` and `Dockerfile`.
//!
//! What changes is data: the TOML files under `patches/` (embedded; the format is in
//! `patches/README.md`), extended or overridden by a user directory, loaded into a
//! [`PatchSet`]. [`plan_patches`] applies them to a prepared tree in memory, named conditions
//! on the [`PatchContext`] deciding which apply; the [`PatchPlan`] shows a unified diff and
//! writes the files. Planning is idempotent: the lines each insert patch owns are removed
//! from beside its anchor first, so a patched tree plans to the same bytes as a pristine one.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use similar::TextDiff;

use crate::config::JavaOptionsEnv;
use crate::exit;
use crate::inspect::Log4j;

/// The embedded patch files, applied in this order.
const BUILTIN_PATCH_FILES: [(&str, &str); 2] = [
    (
        "entrypoint.toml",
        include_str!("../patches/entrypoint.toml"),
    ),
    (
        "dockerfile.toml",
        include_str!("../patches/dockerfile.toml"),
    ),
];

/// A value of the build, computed from its [`PatchContext`].
type Value<T> = fn(&PatchContext) -> T;

/// The placeholders a template may use, and their values (`None`: this build has none).
const PLACEHOLDERS: [(&str, Value<Option<String>>); 6] = [
    ("spark_version", |build| Some(build.spark_version.clone())),
    ("java_options", |build| Some(build.log4j.java_option())),
    ("java_options_env", |build| {
        Some(build.java_options_env.name().into())
    }),
    ("log4j_file", |build| Some(build.log4j.config_file().into())),
    ("java_major", |build| Some(build.java_major.to_string())),
    ("base_image", |build| build.base_image.clone()),
];

/// The conditions `when` can name, and whether each holds.
const CONDITIONS: [(&str, Value<bool>); 4] = [
    ("certs", |build| !build.certs.is_empty()),
    ("java8", |build| build.java_major == 8),
    ("base_image", |build| build.base_image.is_some()),
    ("disable_cert_checking", |build| build.disable_cert_checking),
];

/// What can go wrong loading patches, planning them against a tree, or writing the result.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// A patch file is not valid TOML or holds something other than `[[patch]]` tables.
    #[error("cannot parse patch file {source_name}")]
    Parse {
        /// The patch file: an embedded file's name or a user file's path.
        source_name: String,
        /// The TOML error.
        #[source]
        source: toml::de::Error,
    },
    /// A patch says something the engine cannot do, or uses a value the build does not set.
    #[error("patch `{id}` in {source_name} is invalid: {reason}")]
    InvalidPatch {
        /// The patch file it came from.
        source_name: String,
        /// The patch's id.
        id: String,
        /// What is wrong with it, and what to write instead where that is known.
        reason: String,
    },
    /// A patch does not fit the file: no anchor line or several, or one it cannot change.
    #[error("patch `{id}` does not fit {file} (Spark {spark_version}): {reason}")]
    Misfit {
        /// The patch's id.
        id: String,
        /// The file, relative to the tree.
        file: String,
        /// The Spark version being patched.
        spark_version: String,
        /// What did not fit: the anchors tried and how many lines matched, or the line.
        reason: String,
    },
    /// The user patch directory, a file in it, or a file a patch targets could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// The Spark version, read from a jar name in the distribution, would break the files.
    #[error(
        "Spark version `{version}` cannot go into a patched file: it must start with a number \
         and hold no line break"
    )]
    UnsafeSparkVersion {
        /// The version.
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

impl PatchError {
    /// The exit code a run ends with when it fails with this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            PatchError::Write { .. } => exit::STORAGE,
            _ => exit::CONFIG,
        }
    }
}

/// One CA certificate to copy into the image and import into the JVM trust store (by
/// `certs/import-certs.sh`; the patches only ask whether there is any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertImport {
    /// The keystore alias.
    pub alias: String,
    /// The file name under the build context's `certs/` directory.
    pub file_name: String,
}

/// The build's values: what the conditions are computed from and the templates render.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchContext {
    /// The Spark version being patched, e.g. `3.5.4`, compared with `spark_min` / `spark_max`.
    pub spark_version: String,
    /// The distribution's log4j as [`crate::inspect`] read it: `{java_options}`, `{log4j_file}`.
    pub log4j: Log4j,
    /// The variable the entrypoint exports the JVM options in.
    pub java_options_env: JavaOptionsEnv,
    /// The image's Java major version; `java8` holds for 8.
    pub java_major: u32,
    /// The CA certificates to import, in order; `certs` holds when there is one.
    pub certs: Vec<CertImport>,
    /// A base image to use instead of the one in Spark's Dockerfile.
    pub base_image: Option<String>,
    /// Whether to switch the AWS SDK's certificate checks off (the plan then warns).
    pub disable_cert_checking: bool,
}

impl PatchContext {
    /// The numbers the Spark version starts with (`3.5.0-preview1`: 3, 5, 0), for the bounds.
    /// Only the version comes from outside imgforge (a jar name), so only it is checked here:
    /// `config` parsed the base image and the other values are imgforge's own.
    fn spark_version(&self) -> Result<Vec<u64>, PatchError> {
        let version = &self.spark_version;
        let numbers = version
            .split(|c: char| !c.is_ascii_digit() && c != '.')
            .next();
        numbers
            .and_then(|numbers| dotted_numbers(numbers.trim_end_matches('.')))
            .filter(|_| !version.contains(['\n', '\r', '\0']))
            .ok_or_else(|| PatchError::UnsafeSparkVersion {
                version: version.clone(),
            })
    }
}

/// A patch set loaded from embedded data plus an optional user directory.
#[derive(Debug, Clone, Default)]
pub struct PatchSet {
    /// Every patch file loaded, in order: `(name, contents)`, hashed by [`PatchSet::digest`].
    sources: Vec<(String, String)>,
    /// The patches, in the order they apply.
    patches: Vec<Patch>,
}

impl PatchSet {
    /// The patches embedded in the binary.
    pub fn builtin() -> Result<PatchSet, PatchError> {
        let files = BUILTIN_PATCH_FILES.map(|(name, text)| (name.into(), name.into(), text.into()));
        PatchSet::default().add(files.into(), "built-in")
    }

    /// Adds every `*.toml` file in `dir`, in file-name order. A patch whose id is already
    /// in the set replaces that patch in place; any other is appended.
    pub fn with_user_dir(self, dir: &Path) -> Result<PatchSet, PatchError> {
        let read_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PatchError::Read { path, source }
        };
        let mut paths = Vec::new();
        for entry in fs::read_dir(dir).map_err(read_error(dir))? {
            let path = entry.map_err(read_error(dir))?.path();
            if path
                .extension()
                .is_some_and(|extension| extension == "toml")
                && path.is_file()
            {
                paths.push(path);
            }
        }
        paths.sort();
        let mut files = Vec::new();
        for path in paths {
            let text = fs::read_to_string(&path).map_err(read_error(&path))?;
            // The digest names the file, not where the directory happens to live.
            let digest_name = format!("user/{}", path.file_name().unwrap_or_default().display());
            files.push((path.display().to_string(), digest_name, text));
        }
        self.add(files, "user")
    }

    /// Adds `(name, name in the digest, contents)` files of one `kind`, whose patch ids must
    /// differ; a patch replaces the one with its id already in the set.
    fn add(
        mut self,
        files: Vec<(String, String, String)>,
        kind: &str,
    ) -> Result<PatchSet, PatchError> {
        let mut ids = BTreeSet::new();
        for (name, digest_name, text) in files {
            for patch in parse_patch_file(&name, &text)? {
                if !ids.insert(patch.id.clone()) {
                    return Err(patch.invalid(format!("another {kind} patch has the same id")));
                }
                match self.patches.iter_mut().find(|old| old.id == patch.id) {
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
        for text in self.sources.iter().flat_map(|(name, text)| [name, text]) {
            // Length prefixes keep ("ab", "c") and ("a", "bc") apart.
            hasher.update((text.len() as u64).to_le_bytes());
            hasher.update(text.as_bytes());
        }
        hex::encode(hasher.finalize())
    }
}

/// Apply every patch to the tree in memory and return the new contents (nothing written).
///
/// Fails if an anchor is not found, naming the file, the anchor text and the Spark version.
/// Planning against an already-patched tree yields byte-identical contents.
pub fn plan_patches(
    tree: &Path,
    set: &PatchSet,
    context: &PatchContext,
) -> Result<PatchPlan, PatchError> {
    let spark_version = context.spark_version()?;
    let mut plan = PatchPlan::default();
    // Each target file once, in the order the patches first name it.
    let mut files: Vec<&str> = Vec::new();
    for patch in &set.patches {
        if !files.contains(&patch.file.as_str()) {
            files.push(&patch.file);
        }
    }
    for file in files {
        let patches: Vec<&Patch> = set
            .patches
            .iter()
            .filter(|patch| patch.file == file)
            .collect();
        let mut applying = patches
            .iter()
            .filter(|patch| patch.applies(context, &spark_version))
            .peekable();
        let path = tree.join(file);
        let original = match fs::read_to_string(&path) {
            Ok(original) => original,
            // A file no applicable patch changes may be absent.
            Err(error) if error.kind() == io::ErrorKind::NotFound && applying.peek().is_none() => {
                continue;
            }
            Err(source) => return Err(PatchError::Read { path, source }),
        };
        let mut lines: Vec<String> = original.lines().map(str::to_string).collect();
        // Last first, so each finds its lines next to its anchor, nearer than earlier ones'.
        for patch in patches.iter().rev() {
            patch.remove_owned(&mut lines, context);
        }
        for patch in applying {
            patch.apply(&mut lines, context)?;
            if let Some(warning) = &patch.warning {
                plan.warnings.push(patch.render(warning, context)?);
            }
        }
        let ending = if original.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        let mut patched = lines.join(ending);
        if original.ends_with('\n') && !lines.is_empty() {
            patched.push_str(ending);
        }
        let relative = file.to_string();
        plan.files.push(PlannedFile {
            path,
            relative,
            original,
            patched,
        });
    }
    Ok(plan)
}

/// The patched contents of every target file, ready to show or write.
#[derive(Debug, Clone, Default)]
pub struct PatchPlan {
    /// Every target file, changed or not, in the order the patches name them.
    files: Vec<PlannedFile>,
    /// Warnings from the patches that applied.
    warnings: Vec<String>,
}

/// A target file: where it is, as the patches name it, as read and as patched.
#[derive(Debug, Clone)]
struct PlannedFile {
    path: PathBuf,
    relative: String,
    original: String,
    patched: String,
}

impl PatchPlan {
    fn changed(&self) -> impl Iterator<Item = &PlannedFile> {
        self.files
            .iter()
            .filter(|file| file.original != file.patched)
    }

    /// A unified diff of every changed file, with paths `a/…` and `b/…` relative to the tree.
    pub fn unified_diff(&self) -> String {
        let diff = |file: &PlannedFile| {
            let (old, new) = (
                format!("a/{}", file.relative),
                format!("b/{}", file.relative),
            );
            let text_diff = TextDiff::from_lines(&file.original, &file.patched);
            text_diff.unified_diff().header(&old, &new).to_string()
        };
        self.changed().map(diff).collect()
    }

    /// Writes every changed file through a temporary file in its directory and a rename,
    /// keeping its permissions. Refuses a file that changed since it was planned.
    pub fn write(&self) -> Result<(), PatchError> {
        for file in self.changed() {
            let path = &file.path;
            let error = |source| PatchError::Write {
                path: path.clone(),
                source,
            };
            if fs::read_to_string(path).map_err(error)? != file.original {
                return Err(PatchError::ChangedSincePlan { path: path.clone() });
            }
            let permissions = fs::metadata(path).map_err(error)?.permissions();
            // The files are in a staged tree, made visible by one rename of the whole tree.
            crate::persist::write_staged(path, file.patched.as_bytes())
                .map_err(|persist| error(persist.source))?;
            fs::set_permissions(path, permissions).map_err(error)?;
        }
        Ok(())
    }

    /// Warnings from the patches that applied (e.g. certificate checks switched off).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The files the plan changes, relative to the tree, `/`-separated.
    pub fn changed_files(&self) -> impl Iterator<Item = &str> {
        self.changed().map(|file| file.relative.as_str())
    }
}

/// A patch: one `[[patch]]` table as written (patches/README.md), checked when it is loaded.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    id: String,
    /// For whoever reads the patch file; the engine has no use for it.
    #[serde(default, rename = "description")]
    _description: String,
    file: String,
    #[serde(default)]
    when: Vec<String>,
    spark_min: Option<Bound>,
    spark_max: Option<Bound>,
    within: Option<Region>,
    anchor: Matcher,
    #[serde(default)]
    otherwise: Vec<Matcher>,
    #[serde(default)]
    last: bool,
    #[serde(default)]
    or_at_end: bool,
    operation: Operation,
    template: String,
    owned: Option<Matcher>,
    before_suffix: Option<String>,
    word: Option<NonZeroUsize>,
    skip_prefix: Option<String>,
    warning: Option<String>,
    /// The patch file it came from.
    #[serde(skip)]
    source_name: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Region {
    start: Matcher,
    end: Matcher,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Operation {
    InsertBefore,
    InsertAfter,
    ReplaceWord,
    AppendToLine,
}

/// The patches of one file. Each `[[patch]]` table is read on its own, so that whatever is
/// wrong with it, from an unknown key to an unknown condition, is reported with its id.
fn parse_patch_file(source_name: &str, text: &str) -> Result<Vec<Patch>, PatchError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PatchFile {
        #[serde(default)]
        patch: Vec<toml::Table>,
    }
    let source_name = source_name.to_string();
    let file: PatchFile = toml::from_str(text).map_err(|source| PatchError::Parse {
        source_name: source_name.clone(),
        source,
    })?;
    let mut patches = Vec::new();
    for table in file.patch {
        let id = String::from(table.get("id").and_then(toml::Value::as_str).unwrap_or(""));
        let invalid = |reason| PatchError::InvalidPatch {
            source_name: source_name.clone(),
            id: id.clone(),
            reason,
        };
        // Without the input, a TOML error reads `<message>\nin `<key>``.
        let message = |error: toml::de::Error| error.to_string().trim().replace('\n', " ");
        let patch = toml::Value::Table(table).try_into();
        let mut patch: Patch = patch.map_err(|error| invalid(message(error)))?;
        patch.source_name = source_name.clone();
        patch.check().map_err(invalid)?;
        patches.push(patch);
    }
    Ok(patches)
}

/// The value of placeholder `name` for this build, `None` when it has none.
fn placeholder(context: &PatchContext, name: &str) -> Option<String> {
    let (_, value) = PLACEHOLDERS.iter().find(|(known, _)| *known == name)?;
    value(context)
}

/// An entry of `when`, `name` or `!name`: whether it is negated, and the condition's test.
fn condition(text: &str) -> Option<(bool, Value<bool>)> {
    let (negated, name) = match text.trim().strip_prefix('!') {
        Some(name) => (true, name.trim()),
        None => (false, text.trim()),
    };
    let (_, holds) = CONDITIONS.iter().find(|(known, _)| *known == name)?;
    Some((negated, *holds))
}

impl Patch {
    /// Checks what the types of the fields cannot say.
    fn check(&self) -> Result<(), String> {
        if let Some(unknown) = self.when.iter().find(|text| condition(text).is_none()) {
            return Err(format!(
                "`{unknown}` is not a condition: `when` takes certs, java8, base_image and \
                 disable_cert_checking, each negated by `!`; Spark versions are bounded by \
                 `spark_min` / `spark_max` beside it, such as `spark_max = \"3.2\"`"
            ));
        }
        let plain_path = Path::new(&self.file)
            .components()
            .all(|part| matches!(part, Component::Normal(_)));
        let one_line = self.template.strip_suffix('\n').unwrap_or(&self.template);
        let regions = self
            .within
            .iter()
            .flat_map(|region| [&region.start, &region.end]);
        let mut matchers = regions.chain(self.anchors()).chain(&self.owned);
        let rules = [
            (self.id.trim().is_empty(), "the id is empty"),
            (
                matchers.any(|m| m.equals.is_empty() && m.starts_with.is_empty()),
                "a matcher needs `equals` or `starts_with`",
            ),
            (
                self.file.is_empty() || self.file.contains('\\') || !plain_path,
                "`file` must be a relative path of plain names inside the Spark tree",
            ),
            (
                (self.operation == Operation::ReplaceWord) != self.word.is_some(),
                "`replace_word` needs `word`, counted from 1, and no other operation takes it",
            ),
            (
                self.operation != Operation::ReplaceWord && self.skip_prefix.is_some(),
                "`skip_prefix` goes with `replace_word`",
            ),
            (
                self.operation != Operation::AppendToLine && self.before_suffix.is_some(),
                "`before_suffix` goes with `append_to_line`",
            ),
            (
                !self.inserts() && (self.or_at_end || self.owned.is_some()),
                "`or_at_end` and `owned` go with `insert_before` and `insert_after`",
            ),
            (
                !self.inserts() && one_line.contains('\n'),
                "this operation takes a one-line template",
            ),
        ];
        if let Some((_, reason)) = rules.iter().find(|(broken, _)| *broken) {
            return Err(reason.to_string());
        }
        let known = |name: &str| match PLACEHOLDERS.iter().any(|(known, _)| *known == name) {
            true => Ok(String::new()),
            false => Err(format!("`{{{name}}}` is not a known placeholder")),
        };
        expand(&self.template, known)?;
        expand(self.warning.as_deref().unwrap_or(""), known).map(drop)
    }

    fn invalid(&self, reason: String) -> PatchError {
        PatchError::InvalidPatch {
            source_name: self.source_name.clone(),
            id: self.id.clone(),
            reason,
        }
    }

    fn inserts(&self) -> bool {
        matches!(
            self.operation,
            Operation::InsertBefore | Operation::InsertAfter
        )
    }

    /// `anchor`, then the fallbacks of `otherwise`.
    fn anchors(&self) -> impl Iterator<Item = &Matcher> {
        [&self.anchor].into_iter().chain(&self.otherwise)
    }

    fn applies(&self, context: &PatchContext, spark_version: &[u64]) -> bool {
        // A bound covers its whole line: `spark_max = "3.2"` includes 3.2.4.
        let line = |Bound(bound): &Bound| -> Vec<u64> {
            (0..bound.len())
                .map(|index| spark_version.get(index).copied().unwrap_or(0))
                .collect()
        };
        let holds = |(negated, holds): (bool, Value<bool>)| holds(context) != negated;
        let mut conditions = self.when.iter().filter_map(|text| condition(text));
        conditions.all(holds)
            && self.spark_min.as_ref().is_none_or(|min| line(min) >= min.0)
            && self.spark_max.as_ref().is_none_or(|max| line(max) <= max.0)
    }

    /// `template` rendered with `context`.
    fn render(&self, template: &str, context: &PatchContext) -> Result<String, PatchError> {
        // Checked when loaded, a template can only fail here on a value the build lacks.
        let value = |name: &str| placeholder(context, name).ok_or(name.to_string());
        let unset = |name| format!("it uses `{{{name}}}`, which this build does not set");
        expand(template, value).map_err(|name| self.invalid(unset(name)))
    }

    /// The lines the patch writes with these values (before indentation).
    fn render_lines(&self, context: &PatchContext) -> Result<Vec<String>, PatchError> {
        let text = self.render(&self.template, context)?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        Ok(text.split('\n').map(str::to_string).collect())
    }

    /// The anchor line: in the region, the one of the first of [`Patch::anchors`] that
    /// matches (the last with `last`, the region's end with `or_at_end` when none does);
    /// an error says what matched no line or several.
    fn locate(&self, lines: &[String]) -> Result<usize, String> {
        let find = |matcher: &Matcher, range: Range<usize>| -> Vec<usize> {
            range
                .filter(|&index| matcher.matches(&lines[index]))
                .collect()
        };
        let mut range = 0..lines.len();
        if let Some(Region { start, end }) = &self.within {
            let region = match find(start, range)[..] {
                [start_at] => find(end, start_at + 1..lines.len())
                    .first()
                    .map(|&end_at| start_at + 1..end_at),
                _ => None,
            };
            range = region.ok_or_else(|| {
                format!(
                    "found no region from the one line matching {start} to a line matching {end}"
                )
            })?;
        }
        let found = self
            .anchors()
            .map(|matcher| find(matcher, range.clone()))
            .find(|found| !found.is_empty());
        match found.unwrap_or_default()[..] {
            [] if self.or_at_end => Ok(range.end),
            [only] => Ok(only),
            [.., last] if self.last => Ok(last),
            ref found => {
                let anchors: Vec<String> = self.anchors().map(Matcher::to_string).collect();
                let mut anchor = anchors.join(", else ");
                if let Some(Region { start, end }) = &self.within {
                    anchor.push_str(&format!(" between {start} and {end}"));
                }
                Err(match found.len() {
                    0 => format!("found no line matching {anchor}"),
                    count => format!(
                        "found {count} lines matching {anchor}; it needs exactly one unless it \
                         says `last = true`"
                    ),
                })
            }
        }
    }

    /// Removes the run of lines beside the anchor that this insert patch owns: lines its
    /// `owned` matcher matches, else lines equal to what it would write now. A patch whose
    /// anchor is not found is skipped: if it applies, applying reports it.
    fn remove_owned(&self, lines: &mut Vec<String>, context: &PatchContext) {
        let rendered = || {
            Some(Matcher {
                equals: self.render_lines(context).ok()?,
                starts_with: Vec::new(),
            })
        };
        let owned = self.owned.clone().or_else(rendered);
        let (true, Some(owned), Ok(anchor)) = (self.inserts(), owned, self.locate(lines)) else {
            return;
        };
        let owns = |index: &usize| owned.matches(&lines[*index]);
        let run = match self.operation {
            Operation::InsertBefore => anchor - (0..anchor).rev().take_while(owns).count()..anchor,
            _ => {
                let after = (anchor + 1).min(lines.len());
                after..after + (after..lines.len()).take_while(owns).count()
            }
        };
        lines.drain(run);
    }

    fn apply(&self, lines: &mut Vec<String>, context: &PatchContext) -> Result<(), PatchError> {
        let rendered = self.render_lines(context)?;
        if let Some(owned) = &self.owned
            && let Some(stray) = rendered.iter().find(|line| !owned.matches(line))
        {
            return Err(self.invalid(format!(
                "it writes `{stray}`, which its `owned` matcher ({owned}) does not match, \
                 so applying it twice would write it twice"
            )));
        }
        let misfit = |reason| PatchError::Misfit {
            id: self.id.clone(),
            file: self.file.clone(),
            spark_version: context.spark_version.clone(),
            reason,
        };
        let index = self.locate(lines).map_err(misfit)?;
        // Written lines take the anchor line's indentation; `or_at_end` has no anchor line.
        let anchor = lines.get(index).map_or("", String::as_str);
        let indent = anchor[..anchor.len() - anchor.trim_start().len()].to_string();
        let indented = rendered.iter().map(|line| format!("{indent}{line}"));
        let text = rendered.concat();
        let at = match self.operation {
            Operation::InsertBefore => index,
            Operation::InsertAfter => (index + 1).min(lines.len()),
            Operation::ReplaceWord => {
                let word = self.word.map_or(0, NonZeroUsize::get);
                let short = || misfit(format!("line {} has fewer than {word} words", index + 1));
                let skip_prefix = self.skip_prefix.as_deref();
                lines[index] =
                    replace_word(&lines[index], word, skip_prefix, &text).ok_or_else(short)?;
                return Ok(());
            }
            Operation::AppendToLine => {
                let suffix = self.before_suffix.as_deref().unwrap_or("");
                let body = lines[index].strip_suffix(suffix).ok_or_else(|| {
                    misfit(format!("line {} does not end with `{suffix}`", index + 1))
                })?;
                if !body.ends_with(&text) {
                    lines[index] = format!("{body}{text}{suffix}");
                }
                return Ok(());
            }
        };
        lines.splice(at..at, indented);
        Ok(())
    }
}

/// Replaces word `word` (1-based) of `line`, not counting words after the first that start
/// with `skip_prefix`; keeps every other character. `None` if the line is shorter.
fn replace_word(line: &str, word: usize, skip_prefix: Option<&str>, new: &str) -> Option<String> {
    let skipped = |position, text: &str| {
        position > 0 && skip_prefix.is_some_and(|prefix| text.starts_with(prefix))
    };
    let words = line.split_whitespace().enumerate();
    let (_, old) = words
        .filter(|&(position, text)| !skipped(position, text))
        .nth(word.checked_sub(1)?)?;
    // `old` is a slice of `line`: its offset says where it starts.
    let start = old.as_ptr() as usize - line.as_ptr() as usize;
    Some(format!(
        "{}{new}{}",
        &line[..start],
        &line[start + old.len()..]
    ))
}

/// Which lines a patch looks for: a line matches when, trimmed, it equals one of `equals`
/// or starts with one of `starts_with` (so `"FROM "` keeps its space).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Matcher {
    #[serde(default, deserialize_with = "one_or_many")]
    equals: Vec<String>,
    #[serde(default, deserialize_with = "one_or_many")]
    starts_with: Vec<String>,
}

/// A matcher's text: a string or a list of strings, each non-empty and one line.
fn one_or_many<'de, D: serde::Deserializer<'de>>(input: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let texts = match OneOrMany::deserialize(input)? {
        OneOrMany::One(text) => vec![text],
        OneOrMany::Many(texts) => texts,
    };
    match texts
        .iter()
        .any(|text| text.trim().is_empty() || text.contains(['\n', '\r']))
    {
        true => Err(serde::de::Error::custom(
            "a matcher takes non-empty, one-line text",
        )),
        false => Ok(texts),
    }
}

impl Matcher {
    fn matches(&self, line: &str) -> bool {
        let line = line.trim();
        self.equals.iter().any(|text| line == text.trim())
            || (self.starts_with.iter()).any(|text| line.starts_with(text.trim_start()))
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let equals = self
            .equals
            .iter()
            .map(|text| format!("equals `{}`", text.trim()));
        let starts_with =
            (self.starts_with.iter()).map(|text| format!("starts_with `{}`", text.trim_start()));
        let alternatives: Vec<String> = equals.chain(starts_with).collect();
        formatter.write_str(&alternatives.join(" or "))
    }
}

/// Expands the `{name}` placeholders of `template` through `value` (`{{` and `}}` are
/// literal braces); an error is a malformed template's reason or what `value` returned.
fn expand(
    template: &str,
    mut value: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut text = String::new();
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        text.push_str(&rest[..at]);
        let (brace, after) = rest[at..].split_at(1);
        if let Some(after) = after.strip_prefix(brace) {
            text.push_str(brace);
            rest = after;
            continue;
        }
        let Some(end) = after.find('}').filter(|_| brace == "{") else {
            return Err(format!(
                "a lone `{brace}` (write `{brace}{brace}` for a literal brace)"
            ));
        };
        text.push_str(&value(after[..end].trim())?);
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    Ok(text)
}

/// A Spark version bound, `spark_min` or `spark_max`: dotted numbers such as `3.3`.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
struct Bound(Vec<u64>);

impl TryFrom<String> for Bound {
    type Error = String;

    fn try_from(text: String) -> Result<Bound, String> {
        let numbers = dotted_numbers(text.trim());
        numbers
            .map(Bound)
            .ok_or_else(|| format!("`{text}` is not a version such as \"3.3\""))
    }
}

/// Dotted numbers such as `3.3`; `None` for anything else.
fn dotted_numbers(text: &str) -> Option<Vec<u64>> {
    let number = |part: &str| {
        part.parse()
            .ok()
            .filter(|_| part.bytes().all(|byte| byte.is_ascii_digit()))
    };
    text.split('.').map(number).collect()
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

    /// The family named `$name`, its files read from its golden directory.
    macro_rules! family {
        ($name:literal, $context:expr) => {
            Family {
                name: $name,
                entrypoint: golden!($name, "input", "entrypoint.sh"),
                dockerfile: golden!($name, "input", "Dockerfile"),
                expected_entrypoint: golden!($name, "expected", "entrypoint.sh"),
                expected_dockerfile: golden!($name, "expected", "Dockerfile"),
                context: $context,
            }
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

    /// Spark `version` on Java `java_major` with `log4j`, no certificates and no overrides.
    fn context(version: &str, java_major: u32, log4j: Log4j) -> PatchContext {
        PatchContext {
            spark_version: version.to_string(),
            log4j,
            java_options_env: JavaOptionsEnv::UnderscoreJavaOptions,
            java_major,
            certs: Vec::new(),
            base_image: None,
            disable_cert_checking: false,
        }
    }

    /// The planned contents of a target file (relative, `/`-separated), changed or not.
    impl PatchPlan {
        fn patched_contents(&self, relative: &str) -> Option<&str> {
            self.files
                .iter()
                .find(|file| file.relative == relative)
                .map(|file| file.patched.as_str())
        }
    }

    fn families() -> Vec<Family> {
        let spark31 = PatchContext {
            certs: vec![cert("corp-root-ca", "corp-root-ca.pem")],
            ..context("3.1.3", 11, Log4j::V1)
        };
        let spark33 = PatchContext {
            certs: two_certs(),
            base_image: Some("registry.example.com/base/java:8-jre".to_string()),
            ..context("3.3.4", 8, Log4j::V2)
        };
        let spark35 = PatchContext {
            certs: two_certs(),
            disable_cert_checking: true,
            ..context("3.5.4", 17, Log4j::V2)
        };
        let spark4 = PatchContext {
            base_image: Some("eclipse-temurin:21-jre-noble".to_string()),
            ..context("4.0.1", 21, Log4j::V2)
        };
        vec![
            family!("spark-3.1", spark31),
            family!("spark-3.3", spark33),
            family!("spark-3.5", spark35),
            family!("spark-4.x", spark4),
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
        assert!(matches!(error, PatchError::Misfit { .. }), "{error:?}");
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
    fn an_anchor_matching_twice_is_an_error_unless_the_patch_says_last() {
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
        assert!(matches!(error, PatchError::Misfit { .. }), "{error:?}");
        assert!(error.to_string().contains("found 2 lines"), "{error}");
        assert!(error.to_string().contains("last = true"), "{error}");

        let user = user_dir(&[("label.toml", &patch("last = true"))]);
        let set = PatchSet::builtin()
            .unwrap()
            .with_user_dir(user.path())
            .unwrap();
        let patched = plan_patches(tree.path(), &set, &no_certs).unwrap();
        assert!(
            dockerfile_of(&patched).ends_with("USER ${spark_uid}\nLABEL switched=yes\n"),
            "{}",
            dockerfile_of(&patched)
        );
        assert_eq!(dockerfile_of(&patched).matches("LABEL switched").count(), 1);
        patched.write().unwrap();
        let again = plan_patches(tree.path(), &set, &no_certs).unwrap();
        assert_eq!(again.changed_files().count(), 0);
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
        let ids: Vec<&str> = set.patches.iter().map(|patch| patch.id.as_str()).collect();
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
spark_max = "2"
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
        assert!(matches!(error, PatchError::Read { .. }), "{error:?}");
    }

    #[test]
    fn invalid_patches_are_rejected_when_loaded() {
        // Each case changes one line of a valid patch: (what replaces `from`, by what, reason).
        let valid = "[[patch]]\nid = \"x\"\nfile = \"Dockerfile\"\nanchor = { equals = \"A\" }\n\
                     operation = \"insert_after\"\ntemplate = \"B\"\n";
        let cases = [
            (
                "template = \"B\"",
                "template = \"{nope}\"",
                "`{nope}` is not a known placeholder",
            ),
            (
                "template = \"B\"",
                "template = \"{cert.alias}\"",
                "`{cert.alias}` is not a known",
            ),
            ("template = \"B\"", "template = \"a } b\"", "a lone `}`"),
            (
                "file = \"Dockerfile\"",
                "file = \"Dockerfile\"\nwhen = [\"rainy\"]",
                "`rainy` is not a condition",
            ),
            (
                "file = \"Dockerfile\"",
                "file = \"../etc/passwd\"",
                "relative path",
            ),
            (
                "{ equals = \"A\" }",
                "{}",
                "a matcher needs `equals` or `starts_with`",
            ),
            (
                "{ equals = \"A\" }",
                "{ equals = \" \" }",
                "non-empty, one-line text in `anchor.equals`",
            ),
            (
                "{ equals = \"A\" }",
                "{ equals = \"A\", ends_with = \"B\" }",
                "unknown field `ends_with`",
            ),
            (
                "{ equals = \"A\" }",
                "{ contains = \"A\" }",
                "unknown field `contains`",
            ),
            ("\"insert_after\"", "\"replace_word\"", "needs `word`"),
            (
                "\"insert_after\"",
                "\"replace\"",
                "unknown variant `replace`",
            ),
            (
                "template = \"B\"",
                "template = \"B\"\nword = 2",
                "no other operation takes it",
            ),
            (
                "template = \"B\"",
                "template = \"B\"\nbefore_suffix = '\"'",
                "`before_suffix` goes with",
            ),
            (
                "\"insert_after\"\ntemplate = \"B\"",
                "\"append_to_line\"\ntemplate = \"B\\nC\"",
                "one-line template",
            ),
            (
                "\"insert_after\"",
                "\"append_to_line\"\nor_at_end = true",
                "`or_at_end` and `owned` go with `insert_before` and `insert_after`",
            ),
        ];
        for (from, to, reason) in cases {
            assert!(valid.contains(from), "{from}");
            let user = user_dir(&[("bad.toml", &valid.replacen(from, to, 1))]);
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
        assert!(
            matches!(error, PatchError::InvalidPatch { .. }),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("unknown field `anchr`"),
            "{error}"
        );
        let missing = tempfile::tempdir().unwrap().path().join("absent");
        assert!(matches!(
            PatchSet::builtin().unwrap().with_user_dir(&missing),
            Err(PatchError::Read { .. })
        ));
    }

    #[test]
    fn removed_keys_fail_at_load_naming_the_patch_and_the_key() {
        for removed in ["for_each = \"certs\"", "indent = \"\"", "all = true"] {
            let text = format!(
                "[[patch]]\nid = \"old-import\"\nfile = \"Dockerfile\"\n{removed}\n\
                 anchor = {{ starts_with = \"USER \" }}\noperation = \"insert_before\"\n\
                 template = \"RUN true\"\n"
            );
            let user = user_dir(&[("40-old.toml", &text)]);
            let error = PatchSet::builtin()
                .unwrap()
                .with_user_dir(user.path())
                .unwrap_err();
            let key = removed.split(' ').next().unwrap();
            let message = error.to_string();
            for needle in [
                "40-old.toml".to_string(),
                "patch `old-import`".to_string(),
                format!("unknown field `{key}`"),
            ] {
                assert!(message.contains(&needle), "{message:?} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn patches_inserting_at_one_anchor_are_undone_last_first_when_one_stops_applying() {
        let spark31 = family("spark-3.1");
        let patch = |id: &str, when: &str| {
            format!(
                "[[patch]]\nid = \"{id}\"\nfile = \"kubernetes/dockerfiles/spark/Dockerfile\"\n\
                 when = [{when}]\nanchor = {{ starts_with = \"ENTRYPOINT \" }}\n\
                 operation = \"insert_before\"\ntemplate = \"LABEL {id}=yes\"\n\
                 owned = {{ starts_with = \"LABEL {id}=\" }}\n"
            )
        };
        let text = [patch("a", ""), patch("b", "\"certs\""), patch("c", "")].concat();
        let user = user_dir(&[("labels.toml", &text)]);
        let set = PatchSet::builtin()
            .unwrap()
            .with_user_dir(user.path())
            .unwrap();
        let tree = tree_with(spark31.entrypoint, spark31.dockerfile);
        plan_patches(tree.path(), &set, &spark31.context)
            .unwrap()
            .write()
            .unwrap();
        assert!(read(&tree, DOCKERFILE).contains("LABEL a=yes\nLABEL b=yes\nLABEL c=yes\n"));
        let no_certs = PatchContext {
            certs: Vec::new(),
            ..spark31.context.clone()
        };
        let replanned = plan_patches(tree.path(), &set, &no_certs).unwrap();
        let fresh = tree_with(spark31.entrypoint, spark31.dockerfile);
        let fresh = plan_patches(fresh.path(), &set, &no_certs).unwrap();
        assert_eq!(dockerfile_of(&replanned), dockerfile_of(&fresh));
        assert!(dockerfile_of(&fresh).contains("LABEL a=yes\nLABEL c=yes\nENTRYPOINT "));
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
                spark_version: "3.5.4\nRUN evil".to_string(),
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
                matches!(error, PatchError::UnsafeSparkVersion { .. }),
                "{error:?}"
            );
        }
        assert_eq!(read(&tree, DOCKERFILE), spark35.dockerfile);
    }

    #[test]
    fn the_log4j_option_and_file_come_from_the_distribution_not_the_version() {
        // A 3.5 tree that still ships log4j 1 (say, a vendor build) keeps log4j 1.
        let spark35 = family("spark-3.5");
        let context = PatchContext {
            log4j: Log4j::V1,
            ..spark35.context.clone()
        };
        let plan = plan(spark35.entrypoint, spark35.dockerfile, &context);
        let option = format!("export _JAVA_OPTIONS=\"{} ", Log4j::V1.java_option());
        assert!(entrypoint_of(&plan).contains(&option), "{option}");
        assert!(dockerfile_of(&plan).contains("\nCOPY conf/log4j.properties /opt/spark/\n"));
    }

    #[test]
    fn named_conditions_and_spark_bounds_decide_what_applies() {
        let base = context("3.3.0-preview1", 11, Log4j::V2);
        let with_all = PatchContext {
            certs: vec![cert("ca", "ca.pem")],
            base_image: Some("jre:8".to_string()),
            disable_cert_checking: true,
            java_major: 8,
            ..base.clone()
        };
        // (when, comma-separated; spark_min; spark_max; holds for `base`; for `with_all`)
        let cases = [
            ("", None, None, true, true),
            ("certs", None, None, false, true),
            ("!certs", None, None, true, false),
            ("java8", None, None, false, true),
            ("! java8", None, None, true, false),
            ("base_image", None, None, false, true),
            ("disable_cert_checking", None, None, false, true),
            ("certs,!java8", None, None, false, false),
            ("", Some("3.3"), None, true, true),
            ("", Some("3.3.1"), None, false, false),
            ("", None, Some("3.3"), true, true),
            ("", None, Some("3.2"), false, false),
            ("", Some("3"), Some("3"), true, true),
            ("", None, Some("3.10"), true, true),
        ];
        let version = base.spark_version().unwrap();
        assert_eq!(version, [3, 3, 0]);
        for (when, spark_min, spark_max, for_base, for_all) in cases {
            let when: Vec<&str> = when.split(',').filter(|name| !name.is_empty()).collect();
            let mut text = format!(
                "[[patch]]\nid = \"x\"\nfile = \"Dockerfile\"\nwhen = {when:?}\n\
                 anchor = {{ equals = \"A\" }}\noperation = \"insert_after\"\ntemplate = \"B\"\n"
            );
            for (key, bound) in [("spark_min", spark_min), ("spark_max", spark_max)] {
                if let Some(bound) = bound {
                    text.push_str(&format!("{key} = \"{bound}\"\n"));
                }
            }
            let patches = parse_patch_file("case.toml", &text).unwrap();
            let case = format!("{when:?} {spark_min:?} {spark_max:?}");
            assert_eq!(patches[0].applies(&base, &version), for_base, "{case}");
            assert_eq!(patches[0].applies(&with_all, &version), for_all, "{case}");
        }
    }

    #[test]
    fn old_comparisons_fail_at_load_naming_file_patch_and_what_to_write_instead() {
        // One hint names what `when` takes and where Spark versions go instead.
        let hint = [
            "certs, java8, base_image and disable_cert_checking",
            "`!`",
            "`spark_min` / `spark_max`",
        ];
        for condition in [
            "java_major >= 9",
            "spark_version < 3.3",
            "java_options",
            "rainy",
        ] {
            let text = format!(
                "[[patch]]\nid = \"old-style\"\nfile = \"Dockerfile\"\nwhen = [\"{condition}\"]\n\
                 anchor = {{ equals = \"A\" }}\noperation = \"insert_after\"\ntemplate = \"B\"\n"
            );
            let user = user_dir(&[("50-old.toml", &text)]);
            let error = PatchSet::builtin()
                .unwrap()
                .with_user_dir(user.path())
                .unwrap_err();
            let message = error.to_string();
            let needles = ["50-old.toml", "`old-style`", "is not a condition"];
            for needle in needles.into_iter().chain(hint) {
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
            }
        }
        for (key, bound) in [
            ("spark_min", "3.x"),
            ("spark_max", ""),
            ("spark_max", "3..2"),
        ] {
            let text = format!(
                "[[patch]]\nid = \"x\"\nfile = \"Dockerfile\"\n{key} = \"{bound}\"\n\
                 anchor = {{ equals = \"A\" }}\noperation = \"insert_after\"\ntemplate = \"B\"\n"
            );
            let error = parse_patch_file("bad.toml", &text).unwrap_err().to_string();
            assert!(error.contains("is not a version"), "{error}");
        }
    }

    #[test]
    fn templates_escape_braces_and_reject_strays() {
        let context = context("3.5.4", 17, Log4j::V2);
        let lookup = |name: &str| placeholder(&context, name).ok_or(name.to_string());
        assert_eq!(
            expand("ENV A=${{spark_uid}} V={spark_version}", lookup).unwrap(),
            "ENV A=${spark_uid} V=3.5.4"
        );
        assert!(expand("a } b", lookup).is_err());
        assert!(expand("a {spark_version", lookup).is_err());
        assert_eq!(
            expand("{base_image}", lookup),
            Err("base_image".to_string())
        );
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
                format!("_JAVA_OPTIONS={}", Log4j::V1.java_option()),
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
                    "_JAVA_OPTIONS={} -Dcom.amazonaws.sdk.disableCertChecking=true",
                    Log4j::V2.java_option()
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
