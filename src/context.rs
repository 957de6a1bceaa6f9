//! The Docker build context as a deterministic tar stream holding only what the Dockerfile
//! copies.
//!
//! Planning ([`BuildContext::plan`]) reads the Dockerfile, collects the context sources of its
//! `COPY`/`ADD` instructions (a `--from=` source belongs to another stage, a URL is fetched by
//! the engine), resolves them against the tree — globs included — and drops what
//! `.dockerignore` excludes, with Docker's semantics: patterns with `*`, `?`, `[...]` and
//! `**`, `!` exceptions, the last matching pattern wins, and a pattern matching a directory
//! matches everything below it. The result is a sorted list of entries and a
//! [`ContextSummary`].
//!
//! Streaming ([`BuildContext::into_stream`]) writes the tar on a blocking thread into a
//! bounded channel, so at most a few chunks are in memory and nothing touches the disk.
//! Entries are sorted with mtime 0, uid/gid 0 and empty owner names; permission bits are kept
//! and symlinks stay symlinks. An unchanged tree therefore gives a byte-identical stream, and
//! the engine's layer cache hits.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::mpsc;

use crate::exit;

/// How many bytes the tar writer gathers before handing a chunk to the stream.
const CHUNK_SIZE: usize = 64 * 1024;
/// How many chunks may wait in the channel: the most context held in memory at once.
const CHANNEL_CHUNKS: usize = 8;
/// The name Docker reads ignore patterns from, at the root of the context.
const DOCKERIGNORE: &str = ".dockerignore";

/// What can go wrong planning or streaming a build context.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The Dockerfile's or a generated file's path is absolute or leaves the context.
    #[error("path {path:?} must be relative and inside the build context")]
    PathOutside {
        /// The path as given.
        path: String,
    },
    /// A file or directory of the context could not be read.
    #[error("cannot read {path} in the build context")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// A file changed size while it was being streamed.
    #[error("{path} changed while the build context was being streamed")]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// A context path is not valid UTF-8, which tar headers here cannot carry faithfully.
    #[error("build context path {path:?} is not valid UTF-8")]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// A `COPY`/`ADD` source leaves the build context.
    #[error("{dockerfile} line {line}: source {source_path:?} is outside the build context")]
    SourceOutside {
        /// The Dockerfile.
        dockerfile: String,
        /// The line the instruction starts on.
        line: usize,
        /// The source as written.
        source_path: String,
    },
    /// A `COPY`/`ADD` source matches nothing that `.dockerignore` lets through.
    #[error(
        "{dockerfile} line {line}: source {source_path:?} is not in the build context {root} or is excluded by .dockerignore"
    )]
    SourceMissing {
        /// The Dockerfile.
        dockerfile: String,
        /// The line the instruction starts on.
        line: usize,
        /// The source as written.
        source_path: String,
        /// The context root.
        root: PathBuf,
    },
    /// The Dockerfile uses syntax the classic builder does not support.
    #[error("{dockerfile} line {line}: {what} is not supported by the classic builder")]
    Unsupported {
        /// The Dockerfile.
        dockerfile: String,
        /// The line the instruction starts on.
        line: usize,
        /// The construct.
        what: String,
    },
    /// A `COPY ["src", "dest"]` instruction whose JSON form does not parse.
    #[error("{dockerfile} line {line}: malformed JSON argument list")]
    MalformedJson {
        /// The Dockerfile.
        dockerfile: String,
        /// The line the instruction starts on.
        line: usize,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A `.dockerignore` or `COPY` pattern with an unterminated `[` class.
    #[error("invalid pattern {pattern:?}: unterminated character class")]
    BadPattern {
        /// The pattern.
        pattern: String,
    },
    /// Streaming stopped before the tar was complete because the thread writing it died.
    #[error("the build context writer stopped unexpectedly")]
    WriterGone,
}

impl ContextError {
    /// The exit code a run ends with when it fails with this error.
    pub(crate) fn exit_code(&self) -> u8 {
        exit::BUILD
    }
}

/// Sizes of a planned context, for reports and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ContextSummary {
    /// Regular files and symlinks in the context.
    pub files: u64,
    /// Directory entries in the context.
    pub directories: u64,
    /// Bytes of file content (before tar headers and padding).
    pub(crate) content_bytes: u64,
}

/// One `COPY`/`ADD` instruction's context sources, as found in a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopySources {
    /// The 1-based line the instruction starts on.
    pub(crate) line: usize,
    /// `COPY` or `ADD`.
    pub(crate) instruction: String,
    /// The sources relative to the context, as written (a leading `/` removed).
    pub(crate) sources: Vec<String>,
}

/// What imgforge needs to know about a Dockerfile: its context sources and base images.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DockerfileFacts {
    /// `COPY`/`ADD` instructions that read from the build context.
    pub(crate) copies: Vec<CopySources>,
    /// `FROM` references in order, before variable expansion; stage names excluded.
    pub(crate) from_images: Vec<String>,
    /// `ARG` defaults declared before the first `FROM` (the only ones `FROM` can use).
    pub(crate) global_args: BTreeMap<String, Option<String>>,
    /// A source uses a variable, so the exact paths cannot be known before the build.
    pub(crate) needs_whole_context: bool,
}

impl DockerfileFacts {
    /// The base images the Dockerfile starts from, with `${name}` expanded from `build_args`
    /// over the global `ARG` defaults. `scratch` and earlier stages are left out.
    pub(crate) fn base_images(&self, build_args: &BTreeMap<String, String>) -> Vec<String> {
        let mut stages = BTreeSet::new();
        let mut images = Vec::new();
        for reference in &self.from_images {
            let (image, stage) = match reference.split_once('\u{0}') {
                Some((image, stage)) => (image, Some(stage)),
                None => (reference.as_str(), None),
            };
            let expanded = expand_variables(image, |name| {
                build_args
                    .get(name)
                    .cloned()
                    .or_else(|| self.global_args.get(name).cloned().flatten())
            });
            let is_stage = stages.contains(&expanded.to_ascii_lowercase());
            if !is_stage && expanded != "scratch" && !images.contains(&expanded) {
                images.push(expanded);
            }
            if let Some(stage) = stage {
                stages.insert(stage.to_ascii_lowercase());
            }
        }
        images
    }
}

/// Parse the parts of a Dockerfile the context depends on. `name` is used in errors.
pub(crate) fn parse_dockerfile(name: &str, text: &str) -> Result<DockerfileFacts, ContextError> {
    let mut facts = DockerfileFacts::default();
    for (line, instruction, arguments) in logical_lines(text) {
        match instruction.as_str() {
            "FROM" => {
                let words: Vec<&str> = arguments
                    .split_whitespace()
                    .filter(|word| !word.starts_with("--"))
                    .collect();
                let Some(image) = words.first() else { continue };
                let reference = match words.get(1..3) {
                    Some([keyword, stage]) if keyword.eq_ignore_ascii_case("as") => {
                        format!("{image}\u{0}{stage}")
                    }
                    _ => (*image).to_string(),
                };
                facts.from_images.push(reference);
            }
            "ARG" if facts.from_images.is_empty() => {
                for declaration in arguments.split_whitespace() {
                    let (key, value) = match declaration.split_once('=') {
                        Some((key, value)) => (key, Some(unquote(value).to_string())),
                        None => (declaration, None),
                    };
                    facts.global_args.insert(key.to_string(), value);
                }
            }
            "COPY" | "ADD" => {
                let mut rest = arguments.trim_start();
                let mut from_stage = false;
                while rest.starts_with("--") {
                    let (flag, after) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
                    if flag.starts_with("--from=") {
                        from_stage = true;
                    }
                    rest = after.trim_start();
                }
                let mut words: Vec<String> = if rest.starts_with('[') {
                    serde_json::from_str(rest).map_err(|source| ContextError::MalformedJson {
                        dockerfile: name.to_string(),
                        line,
                        source,
                    })?
                } else {
                    rest.split_whitespace().map(str::to_string).collect()
                };
                if words.iter().any(|word| word.starts_with("<<")) {
                    return Err(ContextError::Unsupported {
                        dockerfile: name.to_string(),
                        line,
                        what: format!("a heredoc in {instruction}"),
                    });
                }
                // The last word is the destination.
                words.pop();
                if from_stage {
                    continue;
                }
                let sources: Vec<String> = words
                    .into_iter()
                    .filter(|source| !(instruction == "ADD" && is_remote(source)))
                    .collect();
                if sources.iter().any(|source| source.contains('$')) {
                    facts.needs_whole_context = true;
                }
                if !sources.is_empty() {
                    facts.copies.push(CopySources {
                        line,
                        instruction: instruction.clone(),
                        sources,
                    });
                }
            }
            _ => {}
        }
    }
    Ok(facts)
}

fn is_remote(source: &str) -> bool {
    ["http://", "https://", "git@", "git://"]
        .iter()
        .any(|scheme| source.starts_with(scheme))
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|inner| inner.strip_suffix('"'))
        .unwrap_or(value)
}

/// Expand `$name` and `${name}` (and `${name:-default}`) with `lookup`; unknown names become
/// empty, as in Docker.
fn expand_variables(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            chars.next();
            let inner: String = chars.by_ref().take_while(|&c| c != '}').collect();
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner.as_str(), None),
            };
            match lookup(name).filter(|value| !value.is_empty()) {
                Some(value) => out.push_str(&value),
                None => out.push_str(default.unwrap_or("")),
            }
        } else {
            let mut name = String::new();
            while let Some(&next) = chars.peek() {
                if next.is_ascii_alphanumeric() || next == '_' {
                    name.push(next);
                    chars.next();
                } else {
                    break;
                }
            }
            if name.is_empty() {
                out.push('$');
            } else {
                out.push_str(&lookup(&name).unwrap_or_default());
            }
        }
    }
    out
}

/// Split a Dockerfile into (first line number, upper-case instruction, arguments), joining
/// continuation lines and dropping comments, with the `# escape=` directive honoured.
fn logical_lines(text: &str) -> Vec<(usize, String, String)> {
    let mut escape = '\\';
    let mut in_directives = true;
    let mut result = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_number = index + 1;
        let trimmed = raw.trim();
        if in_directives {
            if let Some((key, value)) = trimmed
                .strip_prefix('#')
                .and_then(|directive| directive.split_once('='))
            {
                if key.trim().eq_ignore_ascii_case("escape") {
                    escape = value.trim().chars().next().unwrap_or('\\');
                }
                continue;
            }
            in_directives = false;
        }
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_some()) {
            continue;
        }
        let (start, mut joined) = current.take().unwrap_or((line_number, String::new()));
        let content = raw.trim_end();
        if let Some(body) = content.strip_suffix(escape) {
            joined.push_str(body);
            joined.push(' ');
            current = Some((start, joined));
            continue;
        }
        joined.push_str(content);
        let joined = joined.trim();
        if joined.is_empty() {
            continue;
        }
        let (instruction, arguments) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((joined, ""));
        result.push((
            start,
            instruction.to_ascii_uppercase(),
            arguments.trim().to_string(),
        ));
    }
    if let Some((start, joined)) = current {
        let joined = joined.trim();
        if let Some((instruction, arguments)) = joined.split_once(char::is_whitespace) {
            result.push((
                start,
                instruction.to_ascii_uppercase(),
                arguments.trim().to_string(),
            ));
        }
    }
    result
}

/// A compiled path pattern: Go's `filepath.Match` syntax, plus `**` for `.dockerignore`.
#[derive(Debug, Clone)]
struct Pattern {
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    AnyChar,
    /// `*`: any run of characters without `/`.
    Star,
    /// `**`: any run of characters, `/` included.
    AnyPath,
    /// `**/`: nothing, or any run of characters ending in `/`.
    AnyDirectories,
    /// `[...]`: ranges, possibly negated with `^` or `!`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Pattern {
    /// Compile `pattern`; with `double_star` false, `**` is just two `*` (Go's `filepath.Match`).
    fn compile(pattern: &str, double_star: bool) -> Result<Pattern, ContextError> {
        let bad = || ContextError::BadPattern {
            pattern: pattern.to_string(),
        };
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' if double_star && chars.get(i + 1) == Some(&'*') => {
                    i += 2;
                    while chars.get(i) == Some(&'*') {
                        i += 1;
                    }
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                        tokens.push(Token::AnyDirectories);
                    } else {
                        tokens.push(Token::AnyPath);
                    }
                    continue;
                }
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::AnyChar),
                '\\' => {
                    i += 1;
                    tokens.push(Token::Literal(*chars.get(i).ok_or_else(bad)?));
                }
                '[' => {
                    i += 1;
                    let negated = matches!(chars.get(i), Some('^') | Some('!'));
                    if negated {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let c = *chars.get(i).ok_or_else(bad)?;
                        if c == ']' && !first {
                            break;
                        }
                        first = false;
                        let low = if c == '\\' {
                            i += 1;
                            *chars.get(i).ok_or_else(bad)?
                        } else {
                            c
                        };
                        let high =
                            if chars.get(i + 1) == Some(&'-') && chars.get(i + 2) != Some(&']') {
                                i += 2;
                                *chars.get(i).ok_or_else(bad)?
                            } else {
                                low
                            };
                        ranges.push((low, high));
                        i += 1;
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                c => tokens.push(Token::Literal(c)),
            }
            i += 1;
        }
        Ok(Pattern { tokens })
    }

    fn has_meta(text: &str) -> bool {
        text.contains(['*', '?', '[', '\\'])
    }

    fn matches(&self, path: &str) -> bool {
        let chars: Vec<char> = path.chars().collect();
        match_tokens(&self.tokens, &chars)
    }
}

fn match_tokens(tokens: &[Token], text: &[char]) -> bool {
    let Some((token, rest)) = tokens.split_first() else {
        return text.is_empty();
    };
    match token {
        Token::Literal(c) => text.first() == Some(c) && match_tokens(rest, &text[1..]),
        Token::AnyChar => {
            matches!(text.first(), Some(c) if *c != '/') && match_tokens(rest, &text[1..])
        }
        Token::Class { negated, ranges } => match text.first() {
            Some(&c) if c != '/' => {
                let inside = ranges.iter().any(|&(low, high)| low <= c && c <= high);
                inside != *negated && match_tokens(rest, &text[1..])
            }
            _ => false,
        },
        Token::Star => {
            for skip in 0..=text.len() {
                if match_tokens(rest, &text[skip..]) {
                    return true;
                }
                if text.get(skip) == Some(&'/') {
                    return false;
                }
            }
            false
        }
        Token::AnyPath => (0..=text.len()).any(|skip| match_tokens(rest, &text[skip..])),
        Token::AnyDirectories => {
            match_tokens(rest, text)
                || (0..text.len())
                    .filter(|&end| text[end] == '/')
                    .any(|end| match_tokens(rest, &text[end + 1..]))
        }
    }
}

/// The patterns of a `.dockerignore` file, in order.
#[derive(Debug, Clone, Default)]
pub(crate) struct IgnoreRules {
    rules: Vec<(Pattern, bool)>,
}

impl IgnoreRules {
    /// Parse `.dockerignore` text: one pattern a line, `#` comments, `!` exceptions, paths
    /// cleaned and made relative as Docker does.
    pub(crate) fn parse(text: &str) -> Result<IgnoreRules, ContextError> {
        let mut rules = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (pattern, exception) = match line.strip_prefix('!') {
                Some(rest) => (rest.trim(), true),
                None => (line, false),
            };
            let cleaned = clean_pattern(pattern);
            if cleaned.is_empty() {
                continue;
            }
            rules.push((Pattern::compile(&cleaned, true)?, exception));
        }
        Ok(IgnoreRules { rules })
    }

    fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|(_, exception)| *exception)
    }

    /// Whether `path` (relative, `/`-separated) is excluded: the last pattern that matches it
    /// or one of its parent directories decides.
    pub(crate) fn is_excluded(&self, path: &str) -> bool {
        let mut excluded = false;
        for (pattern, exception) in &self.rules {
            // An exclusion only matters while not excluded, an exception only while excluded.
            if *exception != excluded {
                continue;
            }
            let hit = pattern.matches(path)
                || path
                    .match_indices('/')
                    .any(|(end, _)| pattern.matches(&path[..end]));
            if hit {
                excluded = !exception;
            }
        }
        excluded
    }
}

/// Docker's `filepath.Clean` of a pattern, with a leading `/` removed.
fn clean_pattern(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Clean a context-relative path; `None` when it climbs out of the context.
fn clean_relative(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            other => parts.push(other),
        }
    }
    Some(parts.join("/"))
}

#[derive(Debug, Clone)]
enum EntryKind {
    Directory { mode: u32 },
    File { mode: u32, size: u64 },
    Symlink { target: PathBuf },
    Generated { content: Bytes },
}

/// A planned build context: the sorted entries that will be streamed.
#[derive(Debug, Clone)]
pub struct BuildContext {
    root: PathBuf,
    dockerfile: String,
    facts: DockerfileFacts,
    entries: BTreeMap<String, EntryKind>,
    summary: ContextSummary,
}

impl BuildContext {
    /// Plan the context for `dockerfile` (relative to `root`). `extra` files (name relative to
    /// the root, content) are added as mode 0644 files and replace files of the same name on
    /// disk — a generated Dockerfile, for instance.
    pub fn plan(
        root: &Path,
        dockerfile: &str,
        extra: Vec<(String, Vec<u8>)>,
    ) -> Result<BuildContext, ContextError> {
        let dockerfile_name = clean_relative(dockerfile)
            .filter(|name| !name.is_empty() && !dockerfile.starts_with('/'))
            .ok_or_else(|| ContextError::PathOutside {
                path: dockerfile.to_string(),
            })?;
        let mut generated = BTreeMap::new();
        for (name, content) in extra {
            let name = clean_relative(&name)
                .filter(|name| !name.is_empty())
                .ok_or(ContextError::PathOutside { path: name })?;
            generated.insert(name, Bytes::from(content));
        }
        let read_text = |name: &str| -> Result<Option<String>, ContextError> {
            if let Some(content) = generated.get(name) {
                return Ok(Some(String::from_utf8_lossy(content).into_owned()));
            }
            let path = root.join(name);
            match fs::read(&path) {
                Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
                Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(source) => Err(ContextError::Read { path, source }),
            }
        };
        let dockerfile_text = read_text(&dockerfile_name)?.ok_or_else(|| ContextError::Read {
            path: root.join(&dockerfile_name),
            source: io::Error::from(io::ErrorKind::NotFound),
        })?;
        let facts = parse_dockerfile(&dockerfile_name, &dockerfile_text)?;
        let ignore = match read_text(DOCKERIGNORE)? {
            Some(text) => IgnoreRules::parse(&text)?,
            None => IgnoreRules::default(),
        };

        let mut planner = Planner {
            root,
            ignore: &ignore,
            entries: BTreeMap::new(),
        };
        if facts.needs_whole_context {
            planner.add_tree("")?;
        } else {
            for copy in &facts.copies {
                for source in &copy.sources {
                    let found = planner.add_source(source).map_err(|error| match error {
                        PlanError::Outside => ContextError::SourceOutside {
                            dockerfile: dockerfile_name.clone(),
                            line: copy.line,
                            source_path: source.clone(),
                        },
                        PlanError::Context(error) => error,
                    })?;
                    if !found {
                        return Err(ContextError::SourceMissing {
                            dockerfile: dockerfile_name.clone(),
                            line: copy.line,
                            source_path: source.clone(),
                            root: root.to_path_buf(),
                        });
                    }
                }
            }
        }
        let mut entries = planner.entries;
        if !generated.contains_key(&dockerfile_name) {
            let path = root.join(&dockerfile_name);
            let metadata = fs::metadata(&path).map_err(|source| ContextError::Read {
                path: path.clone(),
                source,
            })?;
            entries.insert(
                dockerfile_name.clone(),
                EntryKind::File {
                    mode: metadata.permissions().mode() & 0o7777,
                    size: metadata.len(),
                },
            );
        }
        for (name, content) in generated {
            entries.insert(name, EntryKind::Generated { content });
        }
        // Every entry's parent directories, so modes are explicit rather than the engine's
        // defaults.
        let parents: BTreeSet<String> = entries
            .keys()
            .flat_map(|name| {
                name.match_indices('/')
                    .map(|(end, _)| name[..end].to_string())
                    .collect::<Vec<_>>()
            })
            .collect();
        for parent in parents {
            if let std::collections::btree_map::Entry::Vacant(vacant) = entries.entry(parent) {
                let mode = match fs::symlink_metadata(root.join(vacant.key())) {
                    Ok(metadata) if metadata.is_dir() => metadata.permissions().mode() & 0o7777,
                    _ => 0o755,
                };
                vacant.insert(EntryKind::Directory { mode });
            }
        }

        let mut summary = ContextSummary::default();
        for kind in entries.values() {
            match kind {
                EntryKind::Directory { .. } => summary.directories += 1,
                EntryKind::Symlink { .. } => summary.files += 1,
                EntryKind::File { size, .. } => {
                    summary.files += 1;
                    summary.content_bytes += size;
                }
                EntryKind::Generated { content } => {
                    summary.files += 1;
                    summary.content_bytes += content.len() as u64;
                }
            }
        }
        Ok(BuildContext {
            root: root.to_path_buf(),
            dockerfile: dockerfile_name,
            facts,
            entries,
            summary,
        })
    }

    /// The Dockerfile's path inside the context, as the engine's `dockerfile` parameter wants it.
    pub(crate) fn dockerfile(&self) -> &str {
        &self.dockerfile
    }

    /// What the Dockerfile says about sources and base images.
    pub(crate) fn facts(&self) -> &DockerfileFacts {
        &self.facts
    }

    /// Counts and sizes of what will be sent.
    pub fn summary(&self) -> ContextSummary {
        self.summary
    }

    /// The entry names in stream order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Start writing the tar on a blocking thread and return the stream of its bytes.
    pub(crate) fn into_stream(self) -> ContextStream {
        let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
        let monitor = ContextMonitor::default();
        let writer_monitor = monitor.clone();
        std::thread::spawn(move || {
            let mut writer = ChunkWriter {
                buffer: Vec::with_capacity(CHUNK_SIZE),
                sender: sender.clone(),
            };
            let result = write_tar(&self.root, &self.entries, &mut writer)
                .and_then(|()| writer.flush_chunk().map_err(|_| ContextError::WriterGone));
            if let Err(error) = result {
                let message = io::Error::other(error.to_string());
                writer_monitor.record_failure(error);
                // The receiver may be gone already; then nobody needs the error item.
                let _ = sender.blocking_send(Err(message));
            }
        });
        ContextStream {
            receiver,
            monitor,
            finished: false,
        }
    }
}

enum PlanError {
    Outside,
    Context(ContextError),
}

impl From<ContextError> for PlanError {
    fn from(error: ContextError) -> Self {
        PlanError::Context(error)
    }
}

struct Planner<'a> {
    root: &'a Path,
    ignore: &'a IgnoreRules,
    entries: BTreeMap<String, EntryKind>,
}

impl Planner<'_> {
    /// Add what `source` names; `false` when it names nothing that is not ignored.
    fn add_source(&mut self, source: &str) -> Result<bool, PlanError> {
        let cleaned = clean_relative(source).ok_or(PlanError::Outside)?;
        if cleaned.is_empty() {
            // `.` is the whole context, which exists even when everything in it is ignored.
            self.add_tree("")?;
            return Ok(true);
        }
        if !Pattern::has_meta(&cleaned) {
            if self.ignore.is_excluded(&cleaned) && !self.ignore.has_exceptions() {
                return Ok(false);
            }
            return Ok(self.add_path(&cleaned)?);
        }
        let components: Vec<&str> = cleaned.split('/').collect();
        let mut found = false;
        self.add_glob("", &components, &mut found)?;
        Ok(found)
    }

    fn add_glob(
        &mut self,
        prefix: &str,
        components: &[&str],
        found: &mut bool,
    ) -> Result<(), ContextError> {
        let Some((component, rest)) = components.split_first() else {
            *found |= self.add_path(prefix)?;
            return Ok(());
        };
        let join = |name: &str| {
            if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            }
        };
        if !Pattern::has_meta(component) {
            let next = join(component);
            if fs::symlink_metadata(self.root.join(&next)).is_ok() {
                self.add_glob(&next, rest, found)?;
            }
            return Ok(());
        }
        let pattern = Pattern::compile(component, false)?;
        for name in self.list_dir(prefix)? {
            if pattern.matches(&name) {
                let next = join(&name);
                let is_dir = fs::symlink_metadata(self.root.join(&next))
                    .map(|metadata| metadata.is_dir())
                    .unwrap_or(false);
                if rest.is_empty() || is_dir {
                    self.add_glob(&next, rest, found)?;
                }
            }
        }
        Ok(())
    }

    fn list_dir(&self, relative: &str) -> Result<Vec<String>, ContextError> {
        let path = self.root.join(relative);
        let read = fs::read_dir(&path).map_err(|source| ContextError::Read {
            path: path.clone(),
            source,
        })?;
        let mut names = Vec::new();
        for entry in read {
            let entry = entry.map_err(|source| ContextError::Read {
                path: path.clone(),
                source,
            })?;
            let name = entry.file_name();
            let name = name
                .to_str()
                .ok_or_else(|| ContextError::NonUtf8Path { path: entry.path() })?;
            names.push(name.to_string());
        }
        names.sort();
        Ok(names)
    }

    /// Add a whole tree (`""` is the context root); `true` when anything was added.
    fn add_tree(&mut self, relative: &str) -> Result<bool, ContextError> {
        let mut added = false;
        for name in self.list_dir(relative)? {
            let child = if relative.is_empty() {
                name
            } else {
                format!("{relative}/{name}")
            };
            added |= self.add_path(&child)?;
        }
        Ok(added)
    }

    /// Add one path (and a directory's contents) unless ignored; `true` when anything was added.
    fn add_path(&mut self, relative: &str) -> Result<bool, ContextError> {
        let path = self.root.join(relative);
        let metadata = match fs::symlink_metadata(&path) {
            Ok(metadata) => metadata,
            Err(source) if source.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(source) => return Err(ContextError::Read { path, source }),
        };
        let excluded = self.ignore.is_excluded(relative);
        let mode = metadata.permissions().mode() & 0o7777;
        if metadata.is_dir() {
            if excluded && !self.ignore.has_exceptions() {
                return Ok(false);
            }
            let children = self.add_tree(relative)?;
            if !excluded {
                self.entries
                    .insert(relative.to_string(), EntryKind::Directory { mode });
            }
            return Ok(children || !excluded);
        }
        if excluded {
            return Ok(false);
        }
        let kind = if metadata.file_type().is_symlink() {
            let target = fs::read_link(&path).map_err(|source| ContextError::Read {
                path: path.clone(),
                source,
            })?;
            if target.to_str().is_none() {
                return Err(ContextError::NonUtf8Path { path: target });
            }
            EntryKind::Symlink { target }
        } else if metadata.is_file() {
            EntryKind::File {
                mode,
                size: metadata.len(),
            }
        } else {
            // Sockets, fifos and devices cannot be copied into an image.
            return Ok(false);
        };
        self.entries.insert(relative.to_string(), kind);
        Ok(true)
    }
}

fn fixed_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

fn write_tar(
    root: &Path,
    entries: &BTreeMap<String, EntryKind>,
    writer: &mut ChunkWriter,
) -> Result<(), ContextError> {
    let gone = |_: io::Error| ContextError::WriterGone;
    let mut builder = tar::Builder::new(writer);
    for (name, kind) in entries {
        match kind {
            EntryKind::Directory { mode } => {
                let mut header = fixed_header(tar::EntryType::Directory, *mode, 0);
                builder
                    .append_data(&mut header, format!("{name}/"), io::empty())
                    .map_err(gone)?;
            }
            EntryKind::Symlink { target } => {
                let mut header = fixed_header(tar::EntryType::Symlink, 0o777, 0);
                builder
                    .append_link(&mut header, name, target)
                    .map_err(gone)?;
            }
            EntryKind::Generated { content } => {
                let mut header = fixed_header(tar::EntryType::Regular, 0o644, content.len() as u64);
                builder
                    .append_data(&mut header, name, &content[..])
                    .map_err(gone)?;
            }
            EntryKind::File { mode, .. } => {
                let path = root.join(name);
                let read_error = |source| ContextError::Read {
                    path: path.clone(),
                    source,
                };
                let file = fs::File::open(&path).map_err(read_error)?;
                // The size is taken from the open file: what is streamed is what the header says.
                let size = file.metadata().map_err(read_error)?.len();
                let mut header = fixed_header(tar::EntryType::Regular, *mode, size);
                let failure = Arc::new(Mutex::new(None));
                let reader = ExactReader {
                    inner: file,
                    remaining: size,
                    failure: Arc::clone(&failure),
                };
                let appended = builder.append_data(&mut header, name, reader);
                let recorded = failure
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .take();
                match (appended, recorded) {
                    (Ok(()), _) => {}
                    (Err(_), Some(ReadFailure::Changed)) => {
                        return Err(ContextError::Changed { path });
                    }
                    (Err(_), Some(ReadFailure::Io(source))) => {
                        return Err(ContextError::Read { path, source });
                    }
                    (Err(error), None) => return Err(gone(error)),
                }
            }
        }
    }
    builder.finish().map_err(gone)?;
    Ok(())
}

enum ReadFailure {
    Changed,
    Io(io::Error),
}

/// Reads exactly `remaining` bytes, recording why it could not.
struct ExactReader {
    inner: fs::File,
    remaining: u64,
    failure: Arc<Mutex<Option<ReadFailure>>>,
}

impl ExactReader {
    fn fail(&self, failure: ReadFailure) -> io::Error {
        let error = io::Error::other("build context file could not be read as planned");
        *self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(failure);
        error
    }
}

impl Read for ExactReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let limit = buffer
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        match self.inner.read(&mut buffer[..limit]) {
            Ok(0) => Err(self.fail(ReadFailure::Changed)),
            Ok(read) => {
                self.remaining -= read as u64;
                Ok(read)
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Err(error),
            Err(error) => Err(self.fail(ReadFailure::Io(error))),
        }
    }
}

/// Collects tar bytes into chunks and sends them, blocking while the channel is full.
struct ChunkWriter {
    buffer: Vec<u8>,
    sender: mpsc::Sender<Result<Bytes, io::Error>>,
}

impl ChunkWriter {
    fn flush_chunk(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK_SIZE),
        ));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= CHUNK_SIZE {
            self.flush_chunk()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks are sent when full and at the end; an intermediate flush has no reader to serve.
        Ok(())
    }
}

/// Watches a [`ContextStream`] after it has been handed to the engine client: bytes sent and
/// why streaming failed.
#[derive(Debug, Clone, Default)]
pub(crate) struct ContextMonitor {
    sent: Arc<AtomicU64>,
    failure: Arc<Mutex<Option<ContextError>>>,
}

impl ContextMonitor {
    /// Tar bytes the stream has yielded so far.
    pub(crate) fn bytes_sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Why the tar could not be completed, taken once.
    pub(crate) fn take_failure(&self) -> Option<ContextError> {
        self.failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }

    fn record_failure(&self, error: ContextError) {
        *self
            .failure
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(error);
    }
}

/// The tar bytes of a [`BuildContext`], produced on the fly.
pub struct ContextStream {
    receiver: mpsc::Receiver<Result<Bytes, io::Error>>,
    monitor: ContextMonitor,
    finished: bool,
}

impl ContextStream {
    /// A handle that outlives the stream: bytes sent and any failure.
    pub(crate) fn monitor(&self) -> ContextMonitor {
        self.monitor.clone()
    }
}

impl Stream for ContextStream {
    type Item = Result<Bytes, io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(context) {
            Poll::Ready(Some(Ok(chunk))) => {
                self.monitor
                    .sent
                    .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(error))) => {
                self.finished = true;
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                self.finished = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Plan the context for `dockerfile` under `root` and start streaming it: the convenience
/// form of [`BuildContext::plan`] followed by [`BuildContext::into_stream`].
pub fn context_stream(
    root: &Path,
    dockerfile: &str,
    extra: Vec<(String, Vec<u8>)>,
) -> Result<(ContextStream, ContextSummary), ContextError> {
    let context = BuildContext::plan(root, dockerfile, extra)?;
    let summary = context.summary();
    Ok((context.into_stream(), summary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(text: &str) -> Vec<String> {
        parse_dockerfile("Dockerfile", text)
            .expect("parses")
            .copies
            .into_iter()
            .flat_map(|copy| copy.sources)
            .collect()
    }

    #[test]
    fn copy_sources_skip_other_stages_urls_and_flags() {
        let text = "\
# escape=\\
ARG base=imgforge-test/busybox:latest
FROM ${base} AS build
COPY --chown=185:185 jars /opt/spark/jars
copy --from=build /out /opt/out
COPY --from=0 /a /b
ADD https://example.com/x.tgz /tmp/
ADD --chown=1:1 --chmod=755 local.tgz /tmp/
COPY [\"bin\", \"sbin\", \"/opt/spark/\"]
COPY kubernetes/dockerfiles/spark/entrypoint.sh \\
     kubernetes/dockerfiles/spark/decom.sh \\
  # a comment inside a continuation
     /opt/
RUN echo COPY not-a-source /x
";
        assert_eq!(
            sources(text),
            vec![
                "jars",
                "local.tgz",
                "bin",
                "sbin",
                "kubernetes/dockerfiles/spark/entrypoint.sh",
                "kubernetes/dockerfiles/spark/decom.sh",
            ]
        );
    }

    #[test]
    fn copy_line_numbers_point_at_the_instruction() {
        let facts =
            parse_dockerfile("Dockerfile", "FROM x\n\nCOPY a \\\n  b /c\nCOPY d /e\n").unwrap();
        let lines: Vec<usize> = facts.copies.iter().map(|copy| copy.line).collect();
        assert_eq!(lines, vec![3, 5]);
    }

    #[test]
    fn backtick_escape_directive_joins_lines() {
        assert_eq!(
            sources("# escape=`\nFROM x\nCOPY a `\n  b /c\n"),
            vec!["a", "b"]
        );
    }

    #[test]
    fn heredoc_copy_is_rejected() {
        let error = parse_dockerfile("Dockerfile", "FROM x\nCOPY <<EOF /a\nhi\nEOF\n")
            .expect_err("heredoc");
        assert!(error.to_string().contains("line 2"), "{error}");
        assert!(error.to_string().contains("heredoc"), "{error}");
    }

    #[test]
    fn variables_in_sources_need_the_whole_context() {
        let facts = parse_dockerfile("Dockerfile", "FROM x\nARG dir\nCOPY ${dir} /a\n").unwrap();
        assert!(facts.needs_whole_context);
    }

    #[test]
    fn base_images_expand_global_args_and_skip_stages() {
        let text = "ARG java_image_tag=17-jre\nARG registry\nFROM ${registry:-imgforge-test}/openjdk:${java_image_tag} AS jre\nFROM jre\nFROM scratch\nFROM --platform=linux/amd64 $registry/other AS x\n";
        let facts = parse_dockerfile("Dockerfile", text).unwrap();
        assert_eq!(
            facts.base_images(&BTreeMap::new()),
            vec!["imgforge-test/openjdk:17-jre", "/other"]
        );
        let args = BTreeMap::from([
            ("java_image_tag".to_string(), "11".to_string()),
            ("registry".to_string(), "r.example".to_string()),
        ]);
        assert_eq!(
            facts.base_images(&args),
            vec!["r.example/openjdk:11", "r.example/other"]
        );
    }

    fn tree(files: &[&str], dockerfile: &str, dockerignore: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().expect("temp dir");
        for file in files {
            let path = root.path().join(file);
            fs::create_dir_all(path.parent().expect("has a parent")).expect("mkdir");
            fs::write(&path, file).expect("write");
        }
        fs::write(root.path().join("Dockerfile"), dockerfile).expect("write");
        fs::write(root.path().join(DOCKERIGNORE), dockerignore).expect("write");
        root
    }

    fn planned(root: &Path) -> Result<Vec<String>, ContextError> {
        BuildContext::plan(root, "Dockerfile", Vec::new())
            .map(|context| context.paths().map(str::to_string).collect())
    }

    #[test]
    fn glob_sources_select_matching_files_only() {
        let root = tree(
            &[
                "bin/a.sh",
                "bin/b.sh",
                "bin/c.txt",
                "lib/x/one.jar",
                "lib/y/two.jar",
                "lib/y/no.txt",
            ],
            "FROM x\nCOPY bin/*.sh lib/*/*.jar /opt/\n",
            "",
        );
        assert_eq!(
            planned(root.path()).unwrap(),
            vec![
                "Dockerfile",
                "bin",
                "bin/a.sh",
                "bin/b.sh",
                "lib",
                "lib/x",
                "lib/x/one.jar",
                "lib/y",
                "lib/y/two.jar",
            ]
        );
    }

    #[test]
    fn ignored_directories_keep_their_exceptions() {
        let root = tree(
            &["jars/keep.jar", "jars/drop.jar", "jars/sub/deep.jar"],
            "FROM x\nCOPY jars /opt/jars\n",
            "jars\n!jars/keep.jar\n",
        );
        assert_eq!(
            planned(root.path()).unwrap(),
            vec!["Dockerfile", "jars", "jars/keep.jar"]
        );
    }

    #[test]
    fn missing_ignored_and_escaping_sources_are_errors() {
        let root = tree(
            &["a.txt", "secret.txt"],
            "FROM x\nCOPY nothere /x\n",
            "secret.txt\n",
        );
        assert!(matches!(
            planned(root.path()),
            Err(ContextError::SourceMissing { line: 2, .. })
        ));
        fs::write(
            root.path().join("Dockerfile"),
            "FROM x\nCOPY secret.txt /x\n",
        )
        .unwrap();
        let error = planned(root.path()).expect_err("ignored source");
        assert!(
            error.to_string().contains("excluded by .dockerignore"),
            "{error}"
        );
        fs::write(root.path().join("Dockerfile"), "FROM x\nCOPY ../a.txt /x\n").unwrap();
        assert!(matches!(
            planned(root.path()),
            Err(ContextError::SourceOutside { .. })
        ));
        fs::write(root.path().join("Dockerfile"), "FROM x\nCOPY *.none /x\n").unwrap();
        assert!(matches!(
            planned(root.path()),
            Err(ContextError::SourceMissing { .. })
        ));
        assert!(matches!(
            BuildContext::plan(root.path(), "../Dockerfile", Vec::new()),
            Err(ContextError::PathOutside { .. })
        ));
    }

    #[test]
    fn whole_context_sources_still_honour_dockerignore() {
        let root = tree(
            &["a.txt", "b/c.txt", "b/d.log"],
            "FROM x\nCOPY . /src\n",
            "**/*.log\n",
        );
        assert_eq!(
            planned(root.path()).unwrap(),
            vec![".dockerignore", "Dockerfile", "a.txt", "b", "b/c.txt"]
        );
    }

    fn excluded(rules: &str, path: &str) -> bool {
        IgnoreRules::parse(rules).expect("valid").is_excluded(path)
    }

    #[test]
    fn dockerignore_patterns_and_exceptions() {
        let rules = "# comment\n*.md\n!README.md\nsecret\n/build/**\n**/*.tmp\ndocs/*/draft\n";
        assert!(excluded(rules, "notes.md"));
        assert!(!excluded(rules, "README.md"));
        assert!(excluded(rules, "secret"));
        assert!(
            excluded(rules, "secret/inner/file"),
            "parent directory matches"
        );
        assert!(excluded(rules, "build/out/x.jar"));
        assert!(excluded(rules, "x.tmp"));
        assert!(excluded(rules, "a/b/c/x.tmp"));
        assert!(excluded(rules, "docs/v1/draft"));
        assert!(!excluded(rules, "docs/v1/v2/draft"), "* does not cross /");
        assert!(
            !excluded(rules, "sub/notes.md"),
            "*.md is anchored at the root"
        );
        assert!(!excluded(rules, "jars/spark-core.jar"));
    }

    #[test]
    fn dockerignore_last_match_wins() {
        assert!(!excluded("jars\n!jars/keep.jar\n", "jars/keep.jar"));
        assert!(excluded("jars\n!jars/keep.jar\n", "jars/drop.jar"));
        assert!(excluded("!a\na\n", "a"));
        assert!(excluded("*\n!keep\n", "other"));
        assert!(!excluded("*\n!keep\n", "keep"));
    }

    #[test]
    fn dockerignore_cleans_paths_and_classes() {
        assert!(excluded("./a/../b\n", "b"));
        assert!(excluded("file[0-9].txt\n", "file7.txt"));
        assert!(!excluded("file[!0-9].txt\n", "file7.txt"));
        assert!(excluded("f?le\n", "file"));
        assert!(!excluded("f?le\n", "f/le"));
        assert!(excluded("\\*literal\n", "*literal"));
        assert!(matches!(
            IgnoreRules::parse("[abc\n"),
            Err(ContextError::BadPattern { .. })
        ));
    }

    #[test]
    fn double_star_matches_zero_or_more_directories() {
        assert!(excluded("**/target\n", "target"));
        assert!(excluded("**/target\n", "a/b/target"));
        assert!(excluded("a/**/z\n", "a/z"));
        assert!(excluded("a/**/z\n", "a/b/c/z"));
        assert!(!excluded("a/**/z\n", "b/z"));
        assert!(excluded("a**\n", "ab/c"));
    }
}
