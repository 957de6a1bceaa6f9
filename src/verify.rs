//! Digests and the published checksum files they are checked against.
//!
//! Every download streams through a [`MultiHasher`], which always computes SHA-512 (the cache
//! is keyed by it) and, in the same pass, whatever algorithm the artifact's published checksum
//! uses. [`parse_checksum_file`] reads that published checksum, whose layout has varied over
//! the history of Apache and Maven releases: coreutils `sha512sum` lines, BSD `shasum --tag`
//! lines, the wrapped upper-case output of `gpg --print-md` and `gpg --print-mds`, and bare
//! Maven digests.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Running, Sha1, Sha224, Sha256, Sha384, Sha512};

/// Hash algorithms imgforge can compute, ordered from weakest to strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-1, still the only digest many old Maven artifacts publish.
    Sha1,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512, the algorithm the cache is keyed by.
    Sha512,
}

impl Algorithm {
    /// Every supported algorithm, weakest first.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Sha1,
        Algorithm::Sha224,
        Algorithm::Sha256,
        Algorithm::Sha384,
        Algorithm::Sha512,
    ];

    /// The lower-case name, as used in checksum file suffixes and in [`Digest`]'s text form.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "sha1",
            Algorithm::Sha224 => "sha224",
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// The length of a digest in bytes.
    pub fn byte_len(self) -> usize {
        match self {
            Algorithm::Sha1 => 20,
            Algorithm::Sha224 => 28,
            Algorithm::Sha256 => 32,
            Algorithm::Sha384 => 48,
            Algorithm::Sha512 => 64,
        }
    }

    /// The length of a digest in hexadecimal digits.
    pub fn hex_len(self) -> usize {
        self.byte_len() * 2
    }

    /// The algorithm whose digests have `hex_len` hexadecimal digits; the supported lengths
    /// are all distinct.
    pub fn from_hex_len(hex_len: usize) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|algorithm| algorithm.hex_len() == hex_len)
    }

    /// Recognises an algorithm name as tools print it: `sha512`, `SHA512`, `SHA-512`, and
    /// OpenSSL 3's `SHA2-512`. Unsupported names such as `MD5` or `RMD160` give `None`.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        let mut normalized = [0_u8; 8];
        let mut length = 0;
        for byte in name.bytes().filter(|byte| !matches!(byte, b'-' | b'_')) {
            *normalized.get_mut(length)? = byte.to_ascii_lowercase();
            length += 1;
        }
        match &normalized[..length] {
            b"sha1" => Some(Algorithm::Sha1),
            b"sha224" | b"sha2224" => Some(Algorithm::Sha224),
            b"sha256" | b"sha2256" => Some(Algorithm::Sha256),
            b"sha384" | b"sha2384" => Some(Algorithm::Sha384),
            b"sha512" | b"sha2512" => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// The algorithm implied by a checksum file's suffix, with or without the leading dot:
    /// `.sha512` and `sha512` give [`Algorithm::Sha512`]; `.mds`, `.md5` and `.asc` give `None`.
    pub fn from_suffix(suffix: &str) -> Option<Algorithm> {
        Algorithm::from_name(suffix.strip_prefix('.').unwrap_or(suffix))
    }
}

impl Algorithm {
    /// An empty running hash of this algorithm.
    pub fn running(self) -> Running {
        match self {
            Algorithm::Sha1 => Running::Sha1(Sha1::new()),
            Algorithm::Sha224 => Running::Sha224(Sha224::new()),
            Algorithm::Sha256 => Running::Sha256(Sha256::new()),
            Algorithm::Sha384 => Running::Sha384(Sha384::new()),
            Algorithm::Sha512 => Running::Sha512(Sha512::new()),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The largest digest imgforge handles, in bytes (SHA-512).
const MAX_DIGEST_BYTES: usize = 64;

/// A digest value together with its algorithm.
///
/// The text form (`Display` and `FromStr`) is `<algorithm>:<lower-case hex>`, for example
/// `sha256:e3b0c442…`. The value is stored inline, so a `Digest` is `Copy` and never allocates.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digest {
    algorithm: Algorithm,
    /// The first `algorithm.byte_len()` bytes hold the digest; the rest stay zero so that the
    /// derived comparisons and hashing only ever see the digest itself.
    bytes: [u8; MAX_DIGEST_BYTES],
}

impl Digest {
    /// Parses the hexadecimal form of a digest, in either case, without an algorithm prefix.
    pub fn from_hex(algorithm: Algorithm, hex_digits: &str) -> Result<Digest, DigestParseError> {
        if let Some(character) = hex_digits.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(DigestParseError::NonHex {
                algorithm,
                character,
            });
        }
        if hex_digits.len() != algorithm.hex_len() {
            return Err(DigestParseError::WrongLength {
                algorithm,
                found: hex_digits.len(),
                expected: algorithm.hex_len(),
            });
        }
        let mut bytes = [0_u8; MAX_DIGEST_BYTES];
        for (byte, pair) in bytes.iter_mut().zip(hex_digits.as_bytes().chunks_exact(2)) {
            *byte = (hex_value(pair[0]) << 4) | hex_value(pair[1]);
        }
        Ok(Digest { algorithm, bytes })
    }

    /// Builds a digest from a hasher's output, whose length the hasher guarantees.
    fn from_output(algorithm: Algorithm, output: &[u8]) -> Digest {
        debug_assert_eq!(output.len(), algorithm.byte_len());
        let mut bytes = [0_u8; MAX_DIGEST_BYTES];
        let length = output.len().min(MAX_DIGEST_BYTES);
        bytes[..length].copy_from_slice(&output[..length]);
        Digest { algorithm, bytes }
    }

    /// The algorithm that produced this digest.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The raw digest bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.algorithm.byte_len()]
    }

    /// The digest as lower-case hexadecimal, without the algorithm prefix.
    pub fn hex(&self) -> String {
        hex::encode(self.as_bytes())
    }
}

/// The value of one hex digit; callers have checked that `digit` is one.
fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}:", self.algorithm)?;
        for byte in self.as_bytes() {
            write!(formatter, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = DigestParseError;

    /// Parses `<algorithm>:<hex>`; the prefix is required and the hex may be in either case.
    fn from_str(text: &str) -> Result<Digest, DigestParseError> {
        let Some((name, hex_digits)) = text.split_once(':') else {
            return Err(DigestParseError::MissingAlgorithm {
                input: excerpt(text),
            });
        };
        let algorithm =
            Algorithm::from_name(name).ok_or_else(|| DigestParseError::UnknownAlgorithm {
                name: excerpt(name),
            })?;
        Digest::from_hex(algorithm, hex_digits)
    }
}

/// Why a digest given as text or bytes could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestParseError {
    /// The text has no `<algorithm>:` prefix.
    #[error("digest `{input}` lacks an algorithm prefix such as `sha512:`")]
    MissingAlgorithm {
        /// The text that was given, shortened if long.
        input: String,
    },
    /// The prefix names an algorithm imgforge does not support.
    #[error(
        "unsupported digest algorithm `{name}` (expected sha1, sha224, sha256, sha384 or sha512)"
    )]
    UnknownAlgorithm {
        /// The prefix that was given, shortened if long.
        name: String,
    },
    /// The hexadecimal part contains something other than hex digits.
    #[error("non-hex character {character:?} in {algorithm} digest")]
    NonHex {
        /// The algorithm the digest was declared to be.
        algorithm: Algorithm,
        /// The first offending character.
        character: char,
    },
    /// The hexadecimal part is not as long as the algorithm's digests.
    #[error("{algorithm} digest has {found} hex digits, expected {expected}")]
    WrongLength {
        /// The algorithm the digest was declared to be.
        algorithm: Algorithm,
        /// How many hex digits were given.
        found: usize,
        /// How many the algorithm produces.
        expected: usize,
    },
}

/// Why a published checksum file yielded no usable digest.
///
/// The messages describe the file's content only; the caller names the file's URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChecksumFormatError {
    /// The file holds nothing but whitespace.
    #[error("checksum file is empty")]
    Empty,
    /// No line looks like a digest in any known layout.
    #[error("no digest found in checksum file, which begins `{first_line}`")]
    NoDigest {
        /// The first non-blank line, shortened if long.
        first_line: String,
    },
    /// Entries name other files, several of them, and none names the artifact.
    #[error("checksum file lists {} but not `{file_name}`", quoted_list(.others))]
    OnlyOtherFiles {
        /// The artifact's file name.
        file_name: String,
        /// The file names the checksum file does list.
        others: Vec<String>,
    },
    /// The artifact's entries all use algorithms imgforge cannot compute.
    #[error(
        "checksum file has only {} digests for `{file_name}`; imgforge supports sha1, sha224, sha256, sha384 and sha512",
        .algorithms.join(", ")
    )]
    UnsupportedAlgorithms {
        /// The artifact's file name.
        file_name: String,
        /// The algorithm labels found, as written in the file.
        algorithms: Vec<String>,
    },
    /// A digest contains a character that is not a hex digit.
    #[error("non-hex character {character:?} in the digest on line {line}")]
    NonHex {
        /// The line the entry starts on, counting from 1.
        line: usize,
        /// The first offending character.
        character: char,
    },
    /// A digest's length does not match the algorithm it is declared (or implied) to be.
    #[error("{algorithm} digest on line {line} has {found} hex digits, expected {expected}")]
    WrongLength {
        /// The line the entry starts on, counting from 1.
        line: usize,
        /// The declared algorithm, or the one implied by the checksum file's suffix.
        algorithm: Algorithm,
        /// How many hex digits the entry has.
        found: usize,
        /// How many the algorithm produces.
        expected: usize,
    },
    /// Neither the entry nor the file's suffix names an algorithm, and the digest's length
    /// matches none.
    #[error(
        "digest on line {line} has {found} hex digits, which matches no supported algorithm (40, 56, 64, 96 or 128)"
    )]
    UnknownLength {
        /// The line the entry starts on, counting from 1.
        line: usize,
        /// How many hex digits the entry has.
        found: usize,
    },
    /// Two entries give different digests of the same algorithm for the artifact.
    #[error(
        "checksum file gives different {algorithm} digests for `{file_name}` on lines {first_line} and {second_line}"
    )]
    Conflicting {
        /// The artifact's file name.
        file_name: String,
        /// The algorithm of both entries.
        algorithm: Algorithm,
        /// The line the first entry starts on.
        first_line: usize,
        /// The line the second entry starts on.
        second_line: usize,
    },
}

/// Formats names for an error message as a backquoted, comma-separated list.
fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Shortens text quoted in an error message.
fn excerpt(text: &str) -> String {
    const LIMIT: usize = 80;
    match text.char_indices().nth(LIMIT) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// Parses a published checksum file and returns the digest it gives for `file_name`.
///
/// `hint` is the algorithm implied by the checksum file's suffix (`Some(Sha512)` for
/// `x.tgz.sha512`, `None` for `x.tgz.mds`); it decides the algorithm of entries that carry no
/// label of their own. Without a hint the algorithm follows from the digest's length. An
/// explicit label (`SHA256 (x) = …`, `x: SHA256 = …`) wins over the hint.
///
/// Accepted layouts, with CRLF or LF line endings, an optional byte order mark and
/// surrounding whitespace:
/// - coreutils: `<hex>  <name>` or `<hex> *<name>`, one line per file;
/// - BSD / `shasum --tag` / OpenSSL: `SHA512 (<name>) = <hex>`;
/// - `gpg --print-md`: `<name>: 953D3C04 EE6FD2FA …`, upper-case groups wrapped over
///   indented continuation lines;
/// - `gpg --print-mds`: `<name>: SHA512 = …` for several algorithms, of which the strongest
///   supported one is used (MD5 and RMD160 entries are ignored);
/// - Maven: the bare `<hex>`, optionally followed by a file name.
///
/// Entries whose file name (compared by its last path component) equals `file_name` are
/// preferred. When none does, the file is still accepted if it names at most one file,
/// because releases are often renamed from a release-candidate name after signing.
pub fn parse_checksum_file(
    text: &str,
    file_name: &str,
    hint: Option<Algorithm>,
) -> Result<Digest, ChecksumFormatError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let entries = scan_entries(text);
    if entries.is_empty() {
        return Err(
            match text.lines().map(str::trim).find(|line| !line.is_empty()) {
                None => ChecksumFormatError::Empty,
                Some(line) => ChecksumFormatError::NoDigest {
                    first_line: excerpt(line),
                },
            },
        );
    }
    let candidates = entries_for(&entries, file_name)?;
    strongest_digest(&candidates, file_name, hint)
}

/// One digest as written in a checksum file, not yet validated.
#[derive(Debug)]
struct Entry<'t> {
    /// The line the entry starts on, counting from 1.
    line: usize,
    /// The file name the entry is for, if the layout names one.
    name: Option<String>,
    /// The algorithm label written next to the digest (`SHA512`, `MD5`), if any.
    label: Option<&'t str>,
    /// The digest's characters with all whitespace removed.
    digits: String,
}

/// What the previous line leaves open for the next one.
enum Pending<'t> {
    /// Nothing: the next line stands alone.
    Nothing,
    /// A gpg line `<name>:` whose digest follows on the next line (gpg breaks the line there
    /// when the name is long).
    Content { name: &'t str, line: usize },
    /// A gpg entry that indented continuation lines may extend.
    Continuation(usize),
}

/// Finds every entry in the file, whichever layout each line uses.
fn scan_entries(text: &str) -> Vec<Entry<'_>> {
    let mut entries = Vec::new();
    let mut pending = Pending::Nothing;
    for (index, raw_line) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw_line.trim();
        if line.is_empty() {
            pending = Pending::Nothing;
            continue;
        }
        match std::mem::replace(&mut pending, Pending::Nothing) {
            Pending::Nothing => {}
            Pending::Content { name, line: start } => {
                if let Some(entry) = gpg_entry(name, line, start) {
                    entries.push(entry);
                    pending = Pending::Continuation(entries.len() - 1);
                    continue;
                }
            }
            Pending::Continuation(entry_index) => {
                if raw_line.starts_with([' ', '\t']) && hex_groups(line, 1) {
                    let digits = &mut entries[entry_index].digits;
                    digits.extend(line.chars().filter(|c| !c.is_whitespace()));
                    pending = Pending::Continuation(entry_index);
                    continue;
                }
            }
        }
        if let Some(entry) = coreutils_entry(line, number).or_else(|| bsd_entry(line, number)) {
            entries.push(entry);
        } else if let Some(name) = line.strip_suffix(':').filter(|name| !name.is_empty()) {
            pending = Pending::Content { name, line: number };
        } else if let Some((name, rest)) = line.split_once(": ")
            && let Some(entry) = gpg_entry(name.trim_end(), rest.trim(), number)
        {
            entries.push(entry);
            pending = Pending::Continuation(entries.len() - 1);
        }
    }
    entries
}

/// Hex digit counts a mistyped unlabeled digest might have (MD5 and every supported algorithm).
const PLAUSIBLE_HEX_LENGTHS: [usize; 6] = [32, 40, 56, 64, 96, 128];

/// Unlabeled all-hex tokens shorter than this are taken for ordinary words, not digests.
const MIN_UNLABELED_HEX: usize = 16;

/// A coreutils (`<hex>  <name>`, `<hex> *<name>`) or bare Maven (`<hex>`) line.
fn coreutils_entry(line: &str, number: usize) -> Option<Entry<'_>> {
    // coreutils marks lines whose name contains a backslash or newline with a leading `\`.
    let (escaped, body) = match line.strip_prefix('\\') {
        Some(body) => (true, body),
        None => (false, line),
    };
    let (token, rest) = body.split_once(char::is_whitespace).unwrap_or((body, ""));
    if token.contains([':', '(', ')', '=']) {
        return None;
    }
    let plausible = if token.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        token.len() >= MIN_UNLABELED_HEX
    } else {
        PLAUSIBLE_HEX_LENGTHS.contains(&token.chars().count()) && mostly_hex(token, 1)
    };
    if !plausible {
        return None;
    }
    let name = rest.trim_start();
    let name = name.strip_prefix('*').unwrap_or(name);
    let name = (!name.is_empty()).then(|| {
        if escaped {
            unescape_coreutils(name)
        } else {
            name.to_owned()
        }
    });
    Some(Entry {
        line: number,
        name,
        label: None,
        digits: token.to_owned(),
    })
}

/// Undoes coreutils' escaping of `\\` and `\n` in file names.
fn unescape_coreutils(name: &str) -> String {
    let mut unescaped = String::with_capacity(name.len());
    let mut characters = name.chars();
    while let Some(character) = characters.next() {
        if character != '\\' {
            unescaped.push(character);
            continue;
        }
        match characters.next() {
            Some('n') => unescaped.push('\n'),
            Some(other) => unescaped.push(other),
            None => unescaped.push('\\'),
        }
    }
    unescaped
}

/// A BSD-style line: `SHA512 (<name>) = <hex>`, also OpenSSL's `SHA512(<name>)= <hex>`.
fn bsd_entry(line: &str, number: usize) -> Option<Entry<'_>> {
    let open = line.find('(')?;
    let label = line[..open].trim_end();
    if !is_label(label) {
        return None;
    }
    let (head, digits) = line.rsplit_once('=')?;
    let head = head.trim_end();
    let name = head.strip_suffix(')')?.get(open + 1..)?;
    Some(Entry {
        line: number,
        name: (!name.is_empty()).then(|| name.to_owned()),
        label: Some(label),
        digits: without_whitespace(digits),
    })
}

/// The part of a gpg line after `<name>:`, either `SHA512 = <hex groups>` (`--print-mds`) or
/// the hex groups alone (`--print-md`).
fn gpg_entry<'t>(name: &'t str, content: &'t str, number: usize) -> Option<Entry<'t>> {
    let (label, digits) = match content.split_once('=') {
        Some((label, digits)) => {
            let label = label.trim();
            if !is_label(label) {
                return None;
            }
            (Some(label), digits)
        }
        None if hex_groups(content, 8) => (None, content),
        None => return None,
    };
    Some(Entry {
        line: number,
        name: Some(name.to_owned()),
        label,
        digits: without_whitespace(digits),
    })
}

/// Whether `text` can be an algorithm label such as `SHA512`, `RMD160` or `SHA2-256`.
fn is_label(text: &str) -> bool {
    text.len() <= 16
        && text.starts_with(|c: char| c.is_ascii_alphabetic())
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether at least `min_len` non-whitespace characters are present and three quarters of
/// them are hex digits: enough to treat the text as an intended, possibly mistyped, digest.
fn mostly_hex(text: &str, min_len: usize) -> bool {
    let (mut total, mut hex_digits) = (0_usize, 0_usize);
    for character in text.chars().filter(|c| !c.is_whitespace()) {
        total += 1;
        hex_digits += usize::from(character.is_ascii_hexdigit());
    }
    total >= min_len && hex_digits * 4 >= total * 3
}

/// Whether `text` looks like gpg's upper-case digest groups, which are at most 8 digits wide;
/// the limit tells them apart from a coreutils line, whose digest is one long word.
fn hex_groups(text: &str, min_len: usize) -> bool {
    text.split_whitespace().all(|group| group.len() <= 8) && mostly_hex(text, min_len)
}

fn without_whitespace(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// The last component of a path as written in a checksum file. Only `/` separates: a
/// backslash is an ordinary character in the POSIX names these files list.
fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// The entries that describe `file_name`.
fn entries_for<'e, 't>(
    entries: &'e [Entry<'t>],
    file_name: &str,
) -> Result<Vec<&'e Entry<'t>>, ChecksumFormatError> {
    let matching: Vec<_> = entries
        .iter()
        .filter(|entry| {
            entry
                .name
                .as_deref()
                .is_some_and(|name| basename(name) == file_name)
        })
        .collect();
    if !matching.is_empty() {
        return Ok(matching);
    }
    let mut names: Vec<&str> = entries
        .iter()
        .filter_map(|entry| entry.name.as_deref())
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.len() <= 1 {
        Ok(entries.iter().collect())
    } else {
        Err(ChecksumFormatError::OnlyOtherFiles {
            file_name: file_name.to_owned(),
            others: names.into_iter().map(excerpt).collect(),
        })
    }
}

/// Validates every supported entry and returns the strongest digest.
///
/// A malformed entry fails the whole file even when a weaker entry is fine: falling back
/// silently to a weaker algorithm would hide a damaged or tampered checksum file.
fn strongest_digest(
    candidates: &[&Entry<'_>],
    file_name: &str,
    hint: Option<Algorithm>,
) -> Result<Digest, ChecksumFormatError> {
    let mut unsupported: Vec<String> = Vec::new();
    let mut found: [Option<(Digest, usize)>; Algorithm::ALL.len()] = [None; Algorithm::ALL.len()];
    for entry in candidates {
        let algorithm = match entry.label {
            Some(label) => match Algorithm::from_name(label) {
                Some(algorithm) => algorithm,
                None => {
                    if !unsupported.iter().any(|known| known == label) {
                        unsupported.push(label.to_owned());
                    }
                    continue;
                }
            },
            None => {
                check_hex(entry)?;
                match hint {
                    Some(algorithm) => algorithm,
                    None => Algorithm::from_hex_len(entry.digits.len()).ok_or(
                        ChecksumFormatError::UnknownLength {
                            line: entry.line,
                            found: entry.digits.len(),
                        },
                    )?,
                }
            }
        };
        let digest = decode(entry, algorithm)?;
        let slot = &mut found[algorithm as usize];
        match slot {
            None => *slot = Some((digest, entry.line)),
            Some((earlier, earlier_line)) if *earlier != digest => {
                return Err(ChecksumFormatError::Conflicting {
                    file_name: file_name.to_owned(),
                    algorithm,
                    first_line: *earlier_line,
                    second_line: entry.line,
                });
            }
            Some(_) => {}
        }
    }
    match found.into_iter().rev().flatten().next() {
        Some((digest, _)) => Ok(digest),
        None => Err(ChecksumFormatError::UnsupportedAlgorithms {
            file_name: file_name.to_owned(),
            algorithms: unsupported,
        }),
    }
}

fn check_hex(entry: &Entry<'_>) -> Result<(), ChecksumFormatError> {
    match entry.digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        Some(character) => Err(ChecksumFormatError::NonHex {
            line: entry.line,
            character,
        }),
        None => Ok(()),
    }
}

fn decode(entry: &Entry<'_>, algorithm: Algorithm) -> Result<Digest, ChecksumFormatError> {
    check_hex(entry)?;
    Digest::from_hex(algorithm, &entry.digits).map_err(|_| ChecksumFormatError::WrongLength {
        line: entry.line,
        algorithm,
        found: entry.digits.len(),
        expected: algorithm.hex_len(),
    })
}

/// Computes SHA-512 and, when it is a different algorithm, a second digest in the same pass.
///
/// SHA-512 is always computed because the cache is keyed by it; the second algorithm is the
/// one the artifact's published checksum uses. Updating never allocates.
#[derive(Clone)]
pub struct MultiHasher {
    sha512: Sha512,
    extra: ExtraHasher,
}

/// The second hasher, absent when the published checksum is itself SHA-512.
#[derive(Clone)]
enum ExtraHasher {
    SameAsSha512,
    Sha1(Sha1),
    Sha224(Sha224),
    Sha256(Sha256),
    Sha384(Sha384),
}

impl MultiHasher {
    /// Starts hashing for a published checksum of algorithm `extra`.
    pub fn new(extra: Algorithm) -> MultiHasher {
        let extra = match extra {
            Algorithm::Sha1 => ExtraHasher::Sha1(Sha1::new()),
            Algorithm::Sha224 => ExtraHasher::Sha224(Sha224::new()),
            Algorithm::Sha256 => ExtraHasher::Sha256(Sha256::new()),
            Algorithm::Sha384 => ExtraHasher::Sha384(Sha384::new()),
            Algorithm::Sha512 => ExtraHasher::SameAsSha512,
        };
        MultiHasher {
            sha512: Sha512::new(),
            extra,
        }
    }

    /// The algorithm of the second digest.
    pub fn extra_algorithm(&self) -> Algorithm {
        match self.extra {
            ExtraHasher::SameAsSha512 => Algorithm::Sha512,
            ExtraHasher::Sha1(_) => Algorithm::Sha1,
            ExtraHasher::Sha224(_) => Algorithm::Sha224,
            ExtraHasher::Sha256(_) => Algorithm::Sha256,
            ExtraHasher::Sha384(_) => Algorithm::Sha384,
        }
    }

    /// Feeds the next chunk of the download.
    pub fn update(&mut self, data: &[u8]) {
        self.sha512.update(data);
        match &mut self.extra {
            ExtraHasher::SameAsSha512 => {}
            ExtraHasher::Sha1(hasher) => hasher.update(data),
            ExtraHasher::Sha224(hasher) => hasher.update(data),
            ExtraHasher::Sha256(hasher) => hasher.update(data),
            ExtraHasher::Sha384(hasher) => hasher.update(data),
        }
    }

    /// A copy of the running state of `algorithm`, if it is one of the two computed: what a
    /// signature over the same bytes continues from instead of hashing them again.
    pub fn state(&self, algorithm: Algorithm) -> Option<Running> {
        if algorithm == Algorithm::Sha512 {
            return Some(Running::Sha512(self.sha512.clone()));
        }
        match &self.extra {
            ExtraHasher::Sha1(hasher) if algorithm == Algorithm::Sha1 => {
                Some(Running::Sha1(hasher.clone()))
            }
            ExtraHasher::Sha224(hasher) if algorithm == Algorithm::Sha224 => {
                Some(Running::Sha224(hasher.clone()))
            }
            ExtraHasher::Sha256(hasher) if algorithm == Algorithm::Sha256 => {
                Some(Running::Sha256(hasher.clone()))
            }
            ExtraHasher::Sha384(hasher) if algorithm == Algorithm::Sha384 => {
                Some(Running::Sha384(hasher.clone()))
            }
            _ => None,
        }
    }

    /// Completes both digests.
    pub fn finish(self) -> Hashes {
        let sha512 = Digest::from_output(Algorithm::Sha512, &self.sha512.finish());
        let extra = match self.extra {
            ExtraHasher::SameAsSha512 => sha512,
            ExtraHasher::Sha1(hasher) => Digest::from_output(Algorithm::Sha1, &hasher.finish()),
            ExtraHasher::Sha224(hasher) => Digest::from_output(Algorithm::Sha224, &hasher.finish()),
            ExtraHasher::Sha256(hasher) => Digest::from_output(Algorithm::Sha256, &hasher.finish()),
            ExtraHasher::Sha384(hasher) => Digest::from_output(Algorithm::Sha384, &hasher.finish()),
        };
        Hashes { sha512, extra }
    }
}

impl fmt::Debug for MultiHasher {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("MultiHasher")
            .field("extra", &self.extra_algorithm())
            .finish_non_exhaustive()
    }
}

impl std::io::Write for MultiHasher {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.update(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The digests of one download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hashes {
    /// The SHA-512 digest, which keys the cache.
    pub sha512: Digest,
    /// The digest in the published checksum's algorithm; equal to `sha512` when that
    /// algorithm is SHA-512.
    pub extra: Digest,
}

/// Hash a whole file: SHA-512 and `extra`, in one read.
pub fn hash_file(path: &std::path::Path, extra: Algorithm) -> std::io::Result<Hashes> {
    let file = std::fs::File::open(path)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut hasher = MultiHasher::new(extra);
    std::io::copy(&mut reader, &mut hasher)?;
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::Digest as _;

    /// Hashes `data` in one call with the hash crates directly, independently of `MultiHasher`.
    fn one_shot(algorithm: Algorithm, data: &[u8]) -> Digest {
        let output: Vec<u8> = match algorithm {
            Algorithm::Sha1 => sha1::Sha1::digest(data).to_vec(),
            Algorithm::Sha224 => sha2::Sha224::digest(data).to_vec(),
            Algorithm::Sha256 => sha2::Sha256::digest(data).to_vec(),
            Algorithm::Sha384 => sha2::Sha384::digest(data).to_vec(),
            Algorithm::Sha512 => sha2::Sha512::digest(data).to_vec(),
        };
        Digest::from_output(algorithm, &output)
    }

    const ARTIFACT: &[u8] = b"pretend this is spark-3.1.1-bin-hadoop3.2.tgz\n";

    fn upper_hex(bytes: &[u8]) -> String {
        hex::encode_upper(bytes)
    }

    /// `gpg --print-md` / `--print-mds` layout of one digest: `<name>: [LABEL = ]` then
    /// upper-case groups (1 byte for 16-byte digests, 2 for 20-byte ones, 4 otherwise),
    /// wrapped before column 80 onto lines indented to the first group. A `<name>: ` longer
    /// than 40 columns is followed by a line break and no indentation.
    fn gpg_layout(name: &str, bytes: &[u8], label: Option<&str>) -> String {
        let mut out = format!("{name}: ");
        let mut indent = out.len();
        if indent > 40 {
            out.push('\n');
            indent = 0;
        }
        if let Some(label) = label {
            let label = format!("{label:>6} = ");
            indent += label.len();
            out.push_str(&label);
        }
        let continuation = format!("\n{}", " ".repeat(indent.max(1)));
        let mut column = indent;
        let (group, extra_space_every) = match bytes.len() {
            16 => (1, 8),
            20 => (2, 10),
            _ => (4, usize::MAX),
        };
        for (index, byte) in bytes.iter().enumerate() {
            if index > 0 {
                if index % group == 0 {
                    if column + 2 * group > 79 {
                        out.push_str(&continuation);
                        column = indent;
                    } else {
                        out.push(' ');
                        column += 1;
                    }
                }
                if index % extra_space_every == 0 {
                    out.push(' ');
                    column += 1;
                }
            }
            out.push_str(&upper_hex(&[*byte]));
            column += 2;
        }
        out.push('\n');
        out
    }

    /// `gpg --print-mds` output for `data`: MD5 and RMD160 (made-up values, which imgforge
    /// must ignore) around real digests of the given algorithms, in gpg's order.
    fn mds_layout(name: &str, data: &[u8], algorithms: &[Algorithm]) -> String {
        let mut out = gpg_layout(name, &[0x1c; 16], Some("MD5"));
        if algorithms.contains(&Algorithm::Sha1) {
            out += &gpg_layout(
                name,
                one_shot(Algorithm::Sha1, data).as_bytes(),
                Some("SHA1"),
            );
        }
        out += &gpg_layout(name, &[0x9b; 20], Some("RMD160"));
        for algorithm in [
            Algorithm::Sha224,
            Algorithm::Sha256,
            Algorithm::Sha384,
            Algorithm::Sha512,
        ] {
            if algorithms.contains(&algorithm) {
                let label = algorithm.name().to_ascii_uppercase();
                out += &gpg_layout(name, one_shot(algorithm, data).as_bytes(), Some(&label));
            }
        }
        out
    }

    fn bsd_line(digest: &Digest, name: &str) -> String {
        format!(
            "{} ({name}) = {}\n",
            digest.algorithm().name().to_ascii_uppercase(),
            digest.hex()
        )
    }

    // --- Algorithm and Digest -------------------------------------------------------------

    #[test]
    fn algorithm_names_lengths_and_order() {
        let expected = [
            ("sha1", 40),
            ("sha224", 56),
            ("sha256", 64),
            ("sha384", 96),
            ("sha512", 128),
        ];
        for (algorithm, (name, hex_len)) in Algorithm::ALL.into_iter().zip(expected) {
            assert_eq!(algorithm.name(), name);
            assert_eq!(algorithm.hex_len(), hex_len);
            assert_eq!(Algorithm::from_hex_len(hex_len), Some(algorithm));
            assert_eq!(one_shot(algorithm, b"").hex().len(), hex_len);
        }
        assert!(Algorithm::Sha1 < Algorithm::Sha224);
        assert!(Algorithm::Sha384 < Algorithm::Sha512);
        assert_eq!(Algorithm::ALL.into_iter().max(), Some(Algorithm::Sha512));
    }

    #[test]
    fn algorithm_from_suffix_and_name() {
        assert_eq!(Algorithm::from_suffix(".sha512"), Some(Algorithm::Sha512));
        assert_eq!(Algorithm::from_suffix("sha512"), Some(Algorithm::Sha512));
        assert_eq!(Algorithm::from_suffix(".sha1"), Some(Algorithm::Sha1));
        assert_eq!(Algorithm::from_suffix(".sha256"), Some(Algorithm::Sha256));
        assert_eq!(Algorithm::from_suffix(".mds"), None);
        assert_eq!(Algorithm::from_suffix(".md5"), None);
        assert_eq!(Algorithm::from_suffix(".asc"), None);
        assert_eq!(Algorithm::from_suffix(""), None);
        assert_eq!(Algorithm::from_name("SHA-384"), Some(Algorithm::Sha384));
        assert_eq!(Algorithm::from_name("SHA2-224"), Some(Algorithm::Sha224));
        assert_eq!(Algorithm::from_name("RMD160"), None);
        assert_eq!(Algorithm::from_name("sha5120000000000"), None);
    }

    #[test]
    fn digest_text_form_round_trips() {
        for algorithm in Algorithm::ALL {
            let digest = one_shot(algorithm, ARTIFACT);
            let text = digest.to_string();
            assert_eq!(text, format!("{}:{}", algorithm.name(), digest.hex()));
            assert_eq!(text.parse::<Digest>(), Ok(digest));
            let upper = format!("{}:{}", algorithm.name(), digest.hex().to_ascii_uppercase());
            assert_eq!(upper.parse::<Digest>(), Ok(digest));
            assert_eq!(Digest::from_hex(algorithm, &digest.hex()), Ok(digest));
            assert_eq!(Digest::from_output(algorithm, digest.as_bytes()), digest);
        }
        // Known answer, so a broken hex codec cannot round-trip with itself unnoticed.
        assert_eq!(
            one_shot(Algorithm::Sha256, b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn digest_parse_errors() {
        let sha256 = one_shot(Algorithm::Sha256, ARTIFACT).hex();
        assert_eq!(
            sha256.parse::<Digest>(),
            Err(DigestParseError::MissingAlgorithm {
                input: sha256.clone()
            })
        );
        assert_eq!(
            format!("md5:{sha256}").parse::<Digest>(),
            Err(DigestParseError::UnknownAlgorithm { name: "md5".into() })
        );
        assert_eq!(
            format!("sha512:{sha256}").parse::<Digest>(),
            Err(DigestParseError::WrongLength {
                algorithm: Algorithm::Sha512,
                found: 64,
                expected: 128
            })
        );
        let mut bad = sha256.clone();
        bad.replace_range(10..11, "g");
        assert_eq!(
            format!("sha256:{bad}").parse::<Digest>(),
            Err(DigestParseError::NonHex {
                algorithm: Algorithm::Sha256,
                character: 'g'
            })
        );
        assert_eq!(
            format!("sha256: {sha256}").parse::<Digest>(),
            Err(DigestParseError::NonHex {
                algorithm: Algorithm::Sha256,
                character: ' '
            })
        );
        assert_eq!(
            DigestParseError::WrongLength {
                algorithm: Algorithm::Sha512,
                found: 64,
                expected: 128
            }
            .to_string(),
            "sha512 digest has 64 hex digits, expected 128"
        );
    }

    // --- Checksum file layouts ------------------------------------------------------------

    /// A checksum file, the artifact and suffix hint it is read for, and the digest it must give.
    struct Accepted {
        name: &'static str,
        file: String,
        file_name: &'static str,
        hint: Option<Algorithm>,
        digest: Digest,
    }

    #[test]
    fn checksum_layouts_give_the_artifacts_digest() {
        let sha1 = one_shot(Algorithm::Sha1, ARTIFACT);
        let sha256 = one_shot(Algorithm::Sha256, ARTIFACT);
        let sha512 = one_shot(Algorithm::Sha512, ARTIFACT);
        let spark = "spark-3.5.1-bin-hadoop3.tgz";
        let hadoop = "hadoop-3.3.6.tar.gz";
        let renamed = "spark-3.1.1-bin-hadoop3.2.tgz";
        let jar = "hadoop-aws-3.3.4.jar";
        let gpg_crlf = gpg_layout(spark, sha512.as_bytes(), None).replace('\n', "\r\n");
        let cases = [
            Accepted {
                name: "coreutils_text_and_binary_lines (text mode, hinted)",
                file: format!("{}  {spark}\n", sha512.hex()),
                file_name: spark,
                hint: Some(Algorithm::Sha512),
                digest: sha512,
            },
            Accepted {
                name: "coreutils_text_and_binary_lines (text mode, no hint)",
                file: format!("{}  {spark}\n", sha512.hex()),
                file_name: spark,
                hint: None,
                digest: sha512,
            },
            Accepted {
                name: "coreutils_text_and_binary_lines (binary mode, hinted)",
                file: format!("{} *{spark}\n", sha512.hex()),
                file_name: spark,
                hint: Some(Algorithm::Sha512),
                digest: sha512,
            },
            Accepted {
                name: "coreutils_text_and_binary_lines (binary mode, no hint)",
                file: format!("{} *{spark}\n", sha512.hex()),
                file_name: spark,
                hint: None,
                digest: sha512,
            },
            Accepted {
                name: "coreutils_picks_the_line_for_the_file",
                file: format!(
                    "{}  hive-4.0.0-src.tar.gz\n{} *dist/apache-hive-4.0.0-bin.tar.gz\n{}  hive-standalone-metastore-4.0.0-bin.tar.gz\n",
                    one_shot(Algorithm::Sha256, b"source").hex(),
                    sha256.hex(),
                    one_shot(Algorithm::Sha256, b"metastore").hex(),
                ),
                file_name: "apache-hive-4.0.0-bin.tar.gz",
                hint: Some(Algorithm::Sha256),
                digest: sha256,
            },
            Accepted {
                name: "coreutils_single_line_for_a_renamed_file_is_accepted",
                file: format!("{}  spark-3.1.1-rc3-bin-hadoop3.2.tgz\n", sha512.hex()),
                file_name: renamed,
                hint: Some(Algorithm::Sha512),
                digest: sha512,
            },
            Accepted {
                name: "coreutils_escaped_name_is_unescaped",
                file: format!(
                    "\\{}  odd\\\\name.jar\n{}  other.jar\n",
                    sha1.hex(),
                    one_shot(Algorithm::Sha1, b"other").hex()
                ),
                file_name: "odd\\name.jar",
                hint: Some(Algorithm::Sha1),
                digest: sha1,
            },
            Accepted {
                name: "coreutils_line_after_a_heading_is_not_taken_for_gpg",
                file: format!("Checksums:\n{}  x.tgz\n", sha512.hex()),
                file_name: "x.tgz",
                hint: None,
                digest: sha512,
            },
            Accepted {
                name: "bsd_tag_line (hinted)",
                file: format!("SHA512 ({hadoop}) = {}\n", sha512.hex()),
                file_name: hadoop,
                hint: Some(Algorithm::Sha512),
                digest: sha512,
            },
            Accepted {
                name: "bsd_tag_line (no hint)",
                file: format!("SHA512 ({hadoop}) = {}\n", sha512.hex()),
                file_name: hadoop,
                hint: None,
                digest: sha512,
            },
            Accepted {
                name: "bsd_tag_with_release_candidate_name_is_accepted",
                file: bsd_line(&sha512, "spark-3.1.1-rc3-bin-hadoop3.2.tgz"),
                file_name: renamed,
                hint: Some(Algorithm::Sha512),
                digest: sha512,
            },
            Accepted {
                name: "bsd_tag_prefers_the_matching_line",
                file: format!(
                    "{}{}{}",
                    bsd_line(
                        &one_shot(Algorithm::Sha256, b"a"),
                        "spark-3.4.3-bin-hadoop3.tgz"
                    ),
                    bsd_line(&sha256, "spark-3.4.3-bin-without-hadoop.tgz"),
                    bsd_line(&one_shot(Algorithm::Sha256, b"b"), "spark-3.4.3.tgz"),
                ),
                file_name: "spark-3.4.3-bin-without-hadoop.tgz",
                hint: None,
                digest: sha256,
            },
            Accepted {
                name: "bsd_tag_twice_with_the_same_digest_is_merely_redundant",
                file: format!(
                    "{}{}",
                    bsd_line(&sha512, "x.tgz"),
                    bsd_line(&sha512, "x.tgz")
                ),
                file_name: "x.tgz",
                hint: None,
                digest: sha512,
            },
            Accepted {
                name: "openssl_dgst_line (openssl 1)",
                file: format!("SHA256({jar})= {}\n", sha256.hex()),
                file_name: jar,
                hint: None,
                digest: sha256,
            },
            Accepted {
                name: "openssl_dgst_line (openssl 3)",
                file: format!("SHA2-256({jar})= {}\n", sha256.hex()),
                file_name: jar,
                hint: None,
                digest: sha256,
            },
            Accepted {
                name: "explicit_label_wins_over_the_suffix_hint",
                file: bsd_line(&sha256, "x.tgz"),
                file_name: "x.tgz",
                hint: Some(Algorithm::Sha512),
                digest: sha256,
            },
            Accepted {
                name: "mds_picks_the_strongest_algorithm_present",
                file: mds_layout(
                    "hadoop-2.9.2.tar.gz",
                    ARTIFACT,
                    &[Algorithm::Sha1, Algorithm::Sha256],
                ),
                file_name: "hadoop-2.9.2.tar.gz",
                hint: None,
                digest: sha256,
            },
            Accepted {
                name: "maven_bare_digests (sha1 with a newline)",
                file: format!("{}\n", sha1.hex()),
                file_name: jar,
                hint: Some(Algorithm::Sha1),
                digest: sha1,
            },
            Accepted {
                name: "maven_bare_digests (sha512 without a newline)",
                file: sha512.hex(),
                file_name: jar,
                hint: Some(Algorithm::Sha512),
                digest: sha512,
            },
            Accepted {
                // Older Maven deployments appended the file name, sometimes with a local path.
                name: "maven_bare_digests (with a local path)",
                file: format!(
                    "{} /home/builder/.m2/repository/org/apache/hadoop/{jar}",
                    sha256.hex()
                ),
                file_name: jar,
                hint: Some(Algorithm::Sha256),
                digest: sha256,
            },
            Accepted {
                name: "crlf_bom_blank_lines_and_surrounding_whitespace (coreutils)",
                file: format!("\u{feff}{}  {spark}\r\n\r\n\r\n", sha512.hex()),
                file_name: spark,
                hint: Some(Algorithm::Sha512),
                digest: sha512,
            },
            Accepted {
                name: "crlf_bom_blank_lines_and_surrounding_whitespace (bare)",
                file: format!("\u{feff}  \n\t{}  \n\n", sha512.hex()),
                file_name: spark,
                hint: Some(Algorithm::Sha512),
                digest: sha512,
            },
            Accepted {
                name: "crlf_bom_blank_lines_and_surrounding_whitespace (gpg)",
                file: format!("\u{feff}{gpg_crlf}\r\n  \r\n"),
                file_name: spark,
                hint: Some(Algorithm::Sha512),
                digest: sha512,
            },
            Accepted {
                name: "crlf_bom_blank_lines_and_surrounding_whitespace (bsd)",
                file: format!(
                    "\u{feff}   {}",
                    bsd_line(&sha512, spark).replace('\n', " \r\n\r\n")
                ),
                file_name: spark,
                hint: Some(Algorithm::Sha512),
                digest: sha512,
            },
        ];
        for case in cases {
            assert_eq!(
                parse_checksum_file(&case.file, case.file_name, case.hint),
                Ok(case.digest),
                "{}: {:?}",
                case.name,
                case.file
            );
        }
    }

    #[test]
    fn gpg_print_md_layout() {
        let name = "spark-3.1.1-bin-hadoop3.2.tgz";
        let digest = one_shot(Algorithm::Sha512, ARTIFACT);
        let file = gpg_layout(name, digest.as_bytes(), None);
        // The layout as Spark published it: groups of 8, five to a line, aligned continuations.
        let lines: Vec<&str> = file.lines().collect();
        assert_eq!(lines.len(), 4, "{file}");
        assert!(lines[0].starts_with(&format!("{name}: {} ", &upper_hex(digest.as_bytes())[..8])));
        assert!(lines[1].starts_with(&" ".repeat(name.len() + 2)));
        assert_eq!(
            parse_checksum_file(&file, name, Some(Algorithm::Sha512)),
            Ok(digest)
        );
        assert_eq!(parse_checksum_file(&file, name, None), Ok(digest));
    }

    #[test]
    fn gpg_print_md_with_a_long_name_breaks_after_the_name() {
        let name = "spark-3.3.0-bin-hadoop3-scala2.13-extra-long.tgz";
        let digest = one_shot(Algorithm::Sha512, ARTIFACT);
        let file = gpg_layout(name, digest.as_bytes(), None);
        assert_eq!(file.lines().next(), Some(format!("{name}: ").as_str()));
        assert_eq!(
            parse_checksum_file(&file, name, Some(Algorithm::Sha512)),
            Ok(digest)
        );
    }

    #[test]
    fn gpg_print_md_sha1_layout() {
        let name = "hadoop-2.7.7.tar.gz";
        let digest = one_shot(Algorithm::Sha1, ARTIFACT);
        let file = gpg_layout(name, digest.as_bytes(), None);
        assert!(
            file.contains("  "),
            "SHA1 groups have a double space: {file}"
        );
        assert_eq!(
            parse_checksum_file(&file, name, Some(Algorithm::Sha1)),
            Ok(digest)
        );
    }

    #[test]
    fn mds_picks_sha512_and_ignores_md5_and_rmd160() {
        let name = "hadoop-3.2.0.tar.gz";
        let file = mds_layout(name, ARTIFACT, &Algorithm::ALL);
        assert!(
            file.starts_with(&format!("{name}:    MD5 = 1C 1C")),
            "{file}"
        );
        assert!(
            file.contains(&format!("{name}: RMD160 = 9B9B 9B9B")),
            "{file}"
        );
        assert_eq!(
            parse_checksum_file(&file, name, None),
            Ok(one_shot(Algorithm::Sha512, ARTIFACT))
        );
    }

    #[test]
    fn mds_with_a_long_name_puts_labels_on_their_own_lines() {
        let name = "hadoop-3.2.0-with-a-really-quite-long-name.tar.gz";
        let file = mds_layout(name, ARTIFACT, &Algorithm::ALL);
        assert!(file.contains(&format!("{name}: \nSHA512 = ")), "{file}");
        assert_eq!(
            parse_checksum_file(&file, name, None),
            Ok(one_shot(Algorithm::Sha512, ARTIFACT))
        );
    }

    // --- Errors ---------------------------------------------------------------------------

    /// A checksum file that yields no digest for the artifact, the error it must give and,
    /// where it matters, that error's exact message.
    struct Refused {
        name: &'static str,
        file: String,
        file_name: &'static str,
        hint: Option<Algorithm>,
        error: ChecksumFormatError,
        message: Option<&'static str>,
    }

    #[test]
    fn malformed_checksum_files_are_reported() {
        let sha256 = one_shot(Algorithm::Sha256, ARTIFACT);
        let sha512 = one_shot(Algorithm::Sha512, ARTIFACT);
        let spark = "spark-3.1.1-bin-hadoop3.2.tgz";
        let old_hadoop = "hadoop-2.7.1.tar.gz";
        let wrong_length = |line| ChecksumFormatError::WrongLength {
            line,
            algorithm: Algorithm::Sha512,
            found: 64,
            expected: 128,
        };
        let non_hex = |line, character| ChecksumFormatError::NonHex { line, character };
        let mut bad_hex = sha512.hex();
        bad_hex.replace_range(100..101, "x");
        let gpg_truncated: String = gpg_layout(spark, sha512.as_bytes(), None)
            .lines()
            .take(2)
            .map(|line| format!("{line}\n"))
            .collect();
        let gpg_damaged = gpg_layout("x.tgz", sha512.as_bytes(), None).replacen(
            |c: char| c.is_ascii_hexdigit() && c.is_ascii_alphabetic(),
            "Z",
            1,
        );
        let mds = mds_layout("hadoop-3.2.0.tar.gz", ARTIFACT, &Algorithm::ALL);
        let sha512_line = 1 + mds
            .lines()
            .position(|line| line.contains("SHA512 = "))
            .expect("the layout has a SHA512 entry");
        let cases = [
            Refused {
                name: "empty_file_is_reported (nothing)",
                file: String::new(),
                file_name: "x.tgz",
                hint: Some(Algorithm::Sha512),
                error: ChecksumFormatError::Empty,
                message: None,
            },
            Refused {
                name: "empty_file_is_reported (a byte-order mark)",
                file: "\u{feff}".to_owned(),
                file_name: "x.tgz",
                hint: Some(Algorithm::Sha512),
                error: ChecksumFormatError::Empty,
                message: None,
            },
            Refused {
                name: "empty_file_is_reported (white space)",
                file: " \r\n\n\t\n".to_owned(),
                file_name: "x.tgz",
                hint: Some(Algorithm::Sha512),
                error: ChecksumFormatError::Empty,
                message: None,
            },
            Refused {
                name: "file_without_a_digest_is_reported_with_its_beginning",
                file: "\n<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head></html>\n"
                    .to_owned(),
                file_name: "x.tgz",
                hint: Some(Algorithm::Sha512),
                error: ChecksumFormatError::NoDigest {
                    first_line: "<!DOCTYPE html>".into(),
                },
                message: Some("no digest found in checksum file, which begins `<!DOCTYPE html>`"),
            },
            Refused {
                // Short hex-looking words and key/value headers are not digests.
                name: "file_without_a_digest_is_reported_with_its_beginning (hex-looking words)",
                file: "Hash: SHA256\ncafe babe\n".to_owned(),
                file_name: "x.tgz",
                hint: None,
                error: ChecksumFormatError::NoDigest {
                    first_line: "Hash: SHA256".into(),
                },
                message: None,
            },
            Refused {
                name: "digest_of_the_wrong_length_for_the_suffix",
                file: format!("{}  x.tgz\n", sha256.hex()),
                file_name: "x.tgz",
                hint: Some(Algorithm::Sha512),
                error: wrong_length(1),
                message: Some("sha512 digest on line 1 has 64 hex digits, expected 128"),
            },
            Refused {
                name: "truncated_gpg_digest_has_the_wrong_length",
                file: gpg_truncated,
                file_name: spark,
                hint: Some(Algorithm::Sha512),
                error: ChecksumFormatError::WrongLength {
                    line: 1,
                    algorithm: Algorithm::Sha512,
                    found: 80,
                    expected: 128,
                },
                message: None,
            },
            Refused {
                name: "labeled_digest_of_the_wrong_length",
                file: format!("\n\nSHA512 (x.tgz) = {}\n", sha256.hex()),
                file_name: "x.tgz",
                hint: None,
                error: wrong_length(3),
                message: None,
            },
            Refused {
                name: "unlabeled_digest_of_no_known_length",
                file: format!("{}  x.tgz\n", "ab".repeat(50)),
                file_name: "x.tgz",
                hint: None,
                error: ChecksumFormatError::UnknownLength {
                    line: 1,
                    found: 100,
                },
                message: Some(
                    "digest on line 1 has 100 hex digits, which matches no supported algorithm \
                     (40, 56, 64, 96 or 128)",
                ),
            },
            Refused {
                name: "non_hex_characters_are_reported (bsd)",
                file: format!("SHA512 (x.tgz) = {bad_hex}\n"),
                file_name: "x.tgz",
                hint: Some(Algorithm::Sha512),
                error: non_hex(1, 'x'),
                message: None,
            },
            Refused {
                name: "non_hex_characters_are_reported (coreutils)",
                file: format!("{bad_hex}  x.tgz\n"),
                file_name: "x.tgz",
                hint: Some(Algorithm::Sha512),
                error: non_hex(1, 'x'),
                message: None,
            },
            Refused {
                name: "non_hex_characters_are_reported (bare)",
                file: format!("\n{bad_hex}\n"),
                file_name: "x.tgz",
                hint: Some(Algorithm::Sha512),
                error: non_hex(2, 'x'),
                message: None,
            },
            Refused {
                name: "non_hex_characters_are_reported (gpg)",
                file: gpg_damaged,
                file_name: "x.tgz",
                hint: None,
                error: non_hex(1, 'Z'),
                message: Some("non-hex character 'Z' in the digest on line 1"),
            },
            Refused {
                name: "damaged_strongest_entry_is_not_replaced_by_a_weaker_one",
                file: mds.replace("SHA512 = ", "SHA512 = Q"),
                file_name: "hadoop-3.2.0.tar.gz",
                hint: None,
                error: non_hex(sha512_line, 'Q'),
                message: None,
            },
            Refused {
                name: "only_entries_for_other_files_names_them",
                file: format!(
                    "{}  spark-3.5.1-bin-hadoop3.tgz\n{}  spark-3.5.1.tgz\n",
                    one_shot(Algorithm::Sha512, b"a").hex(),
                    one_shot(Algorithm::Sha512, b"b").hex()
                ),
                file_name: "spark-3.5.1-bin-without-hadoop.tgz",
                hint: None,
                error: ChecksumFormatError::OnlyOtherFiles {
                    file_name: "spark-3.5.1-bin-without-hadoop.tgz".into(),
                    others: vec![
                        "spark-3.5.1-bin-hadoop3.tgz".into(),
                        "spark-3.5.1.tgz".into(),
                    ],
                },
                message: Some(
                    "checksum file lists `spark-3.5.1-bin-hadoop3.tgz`, `spark-3.5.1.tgz` but not \
                     `spark-3.5.1-bin-without-hadoop.tgz`",
                ),
            },
            Refused {
                name: "only_unsupported_algorithms (gpg)",
                file: format!(
                    "{}{}",
                    gpg_layout(old_hadoop, &[0x1c; 16], Some("MD5")),
                    gpg_layout(old_hadoop, &[0x9b; 20], Some("RMD160"))
                ),
                file_name: old_hadoop,
                hint: None,
                error: ChecksumFormatError::UnsupportedAlgorithms {
                    file_name: old_hadoop.into(),
                    algorithms: vec!["MD5".into(), "RMD160".into()],
                },
                message: Some(
                    "checksum file has only MD5, RMD160 digests for `hadoop-2.7.1.tar.gz`; \
                     imgforge supports sha1, sha224, sha256, sha384 and sha512",
                ),
            },
            Refused {
                name: "only_unsupported_algorithms (bsd)",
                file: format!("MD5 ({old_hadoop}) = {}\n", "0f".repeat(16)),
                file_name: old_hadoop,
                hint: None,
                error: ChecksumFormatError::UnsupportedAlgorithms {
                    file_name: old_hadoop.into(),
                    algorithms: vec!["MD5".into()],
                },
                message: None,
            },
            Refused {
                name: "conflicting_entries_for_the_file",
                file: format!(
                    "{}  x.tgz\n{}  y.tgz\n{}  x.tgz\n",
                    one_shot(Algorithm::Sha512, b"a").hex(),
                    one_shot(Algorithm::Sha512, b"b").hex(),
                    one_shot(Algorithm::Sha512, b"c").hex()
                ),
                file_name: "x.tgz",
                hint: Some(Algorithm::Sha512),
                error: ChecksumFormatError::Conflicting {
                    file_name: "x.tgz".into(),
                    algorithm: Algorithm::Sha512,
                    first_line: 1,
                    second_line: 3,
                },
                message: None,
            },
        ];
        for case in cases {
            let error =
                parse_checksum_file(&case.file, case.file_name, case.hint).expect_err(case.name);
            assert_eq!(error, case.error, "{}: {:?}", case.name, case.file);
            if let Some(message) = case.message {
                assert_eq!(error.to_string(), message, "{}", case.name);
            }
        }
    }

    // --- MultiHasher ----------------------------------------------------------------------

    #[test]
    fn multi_hasher_with_sha512_computes_it_once() {
        let mut hasher = MultiHasher::new(Algorithm::Sha512);
        assert!(matches!(hasher.extra, ExtraHasher::SameAsSha512));
        assert_eq!(hasher.extra_algorithm(), Algorithm::Sha512);
        hasher.update(ARTIFACT);
        let hashes = hasher.finish();
        assert_eq!(hashes.sha512, one_shot(Algorithm::Sha512, ARTIFACT));
        assert_eq!(hashes.extra, hashes.sha512);
        assert_eq!(hashes.sha512.algorithm(), Algorithm::Sha512);
    }

    #[test]
    fn multi_hasher_is_an_io_writer() {
        let mut hasher = MultiHasher::new(Algorithm::Sha1);
        std::io::copy(&mut &ARTIFACT[..], &mut hasher).expect("writing to a hasher cannot fail");
        let hashes = hasher.finish();
        assert_eq!(hashes.extra, one_shot(Algorithm::Sha1, ARTIFACT));
        assert_eq!(hashes.extra.algorithm(), Algorithm::Sha1);
    }

    // --- Properties -----------------------------------------------------------------------

    fn algorithm_strategy() -> impl Strategy<Value = Algorithm> {
        proptest::sample::select(Algorithm::ALL.to_vec())
    }

    fn file_name_strategy() -> impl Strategy<Value = String> {
        "[A-Za-z0-9][A-Za-z0-9._+-]{0,59}"
    }

    /// The five layouts a published checksum can take.
    #[derive(Debug, Clone, Copy)]
    enum Layout {
        Coreutils { binary: bool },
        Bsd,
        GpgPrintMd,
        GpgPrintMds,
        MavenBare { with_name: bool },
    }

    fn layout_strategy() -> impl Strategy<Value = Layout> {
        prop_oneof![
            any::<bool>().prop_map(|binary| Layout::Coreutils { binary }),
            Just(Layout::Bsd),
            Just(Layout::GpgPrintMd),
            Just(Layout::GpgPrintMds),
            any::<bool>().prop_map(|with_name| Layout::MavenBare { with_name }),
        ]
    }

    proptest! {
        #[test]
        fn every_layout_round_trips(
            data in proptest::collection::vec(any::<u8>(), 0..512),
            name in file_name_strategy(),
            algorithm in algorithm_strategy(),
            layout in layout_strategy(),
            give_hint in any::<bool>(),
            crlf in any::<bool>(),
            bom in any::<bool>(),
            mds_subset in proptest::collection::vec(any::<bool>(), 5),
        ) {
            let digest = one_shot(algorithm, &data);
            let (file, expected, hint) = match layout {
                Layout::Coreutils { binary } => {
                    let marker = if binary { "*" } else { " " };
                    (format!("{} {marker}{name}\n", digest.hex()), digest, Some(algorithm))
                }
                Layout::Bsd => (bsd_line(&digest, &name), digest, Some(algorithm)),
                Layout::GpgPrintMd => (gpg_layout(&name, digest.as_bytes(), None), digest, Some(algorithm)),
                Layout::GpgPrintMds => {
                    let mut present: Vec<Algorithm> = Algorithm::ALL
                        .into_iter()
                        .zip(&mds_subset)
                        .filter_map(|(algorithm, keep)| keep.then_some(algorithm))
                        .collect();
                    present.push(algorithm);
                    let strongest = present.iter().copied().max().unwrap_or(algorithm);
                    (mds_layout(&name, &data, &present), one_shot(strongest, &data), None)
                }
                Layout::MavenBare { with_name } => {
                    let file = if with_name {
                        format!("{} {name}", digest.hex())
                    } else {
                        digest.hex()
                    };
                    (file, digest, Some(algorithm))
                }
            };
            let mut file = if crlf { file.replace('\n', "\r\n") } else { file };
            if bom {
                file.insert(0, '\u{feff}');
            }
            let hint = if give_hint { hint } else { None };
            prop_assert_eq!(parse_checksum_file(&file, &name, hint), Ok(expected), "{:?}", file);
        }

        #[test]
        fn the_matching_entry_is_chosen_among_several(
            data in proptest::collection::vec(any::<u8>(), 0..64),
            names in proptest::collection::btree_set(file_name_strategy(), 2..6),
            pick in any::<proptest::sample::Index>(),
            algorithm in algorithm_strategy(),
        ) {
            let names: Vec<String> = names.into_iter().collect();
            let wanted = pick.index(names.len());
            let file: String = names
                .iter()
                .enumerate()
                .map(|(index, name)| {
                    let mut content = data.clone();
                    content.push(u8::try_from(index).unwrap_or(u8::MAX));
                    format!("{}  {name}\n", one_shot(algorithm, &content).hex())
                })
                .collect();
            let mut content = data.clone();
            content.push(u8::try_from(wanted).unwrap_or(u8::MAX));
            prop_assert_eq!(
                parse_checksum_file(&file, &names[wanted], None),
                Ok(one_shot(algorithm, &content))
            );
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in any::<String>(), name in any::<String>()) {
            let _ = parse_checksum_file(&text, &name, None);
            let _ = parse_checksum_file(&text, &name, Some(Algorithm::Sha512));
        }

        #[test]
        fn parsing_checksum_like_noise_never_panics(
            text in "[0-9a-fA-FxZ :()=*\\\\/\t\r\n\u{feff}é-]{0,400}",
            hint in proptest::option::of(algorithm_strategy()),
        ) {
            let _ = parse_checksum_file(&text, "x.tgz", hint);
        }

        #[test]
        fn digest_from_str_never_panics(text in any::<String>()) {
            let _ = text.parse::<Digest>();
        }

        #[test]
        fn multi_hasher_chunking_does_not_matter(
            data in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..16),
            algorithm in algorithm_strategy(),
        ) {
            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(data.len() + 1)).collect();
            cuts.sort_unstable();
            let mut hasher = MultiHasher::new(algorithm);
            let mut start = 0;
            for cut in cuts.into_iter().chain([data.len()]) {
                hasher.update(&data[start..cut]);
                start = cut;
            }
            let hashes = hasher.finish();
            prop_assert_eq!(hashes.sha512, one_shot(Algorithm::Sha512, &data));
            prop_assert_eq!(hashes.extra, one_shot(algorithm, &data));
        }
    }
}
