//! OpenPGP release signatures: a project's `KEYS` file and the detached `.asc` signature
//! published next to each tarball, checked in pure Rust (rPGP), never with a `gpg` binary.
//!
//! [`Keyring::parse_keys_file`] reads a `KEYS` file the way Apache publishes them: free text
//! (`pub rsa4096 2019-…`, `uid …`) around ASCII-armored public key blocks, some of which may use
//! algorithms rPGP cannot parse. Those blocks are skipped and recorded, and only a file from which
//! no key at all can be read is an error. [`Keyring::restrict_to`] narrows the keyring to the
//! fingerprints a configuration pins.
//!
//! [`verify_detached`] streams the signed file through the signature's hash once, so a 350 MB
//! tarball is never held in memory. A signature made by a signing subkey verifies when that
//! subkey is bound to its primary key (binding signature and the subkey's back-signature), and is
//! reported under the primary key's fingerprint, which is what `KEYS` files and pins name.
//!
//! Key expiry is deliberately not enforced, as `gpg` does not fail on it either: Apache keeps the
//! keys of past release managers in `KEYS` so that old releases still verify. Revocation is
//! enforced: a hard revocation (key compromised, or no reason given) rejects every signature by
//! the key, a soft one (superseded, retired) rejects signatures made after it.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey, SignedPublicSubKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{
    PublicKey, PublicSubkey, RevocationCode, Signature, SignatureType, SignatureVersion,
};
use pgp::types::{Fingerprint, KeyDetails, KeyVersion, Timestamp, VerifyingKey};
use pgp_digest::{DynDigest, InvalidBufferSize};

use crate::digest::Running;
use crate::verify::Algorithm;

/// How many bytes of the signed file are read at a time while hashing it.
const READ_BUFFER_BYTES: usize = 1 << 20;

const BEGIN_PUBLIC_KEY: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
const END_PUBLIC_KEY: &str = "-----END PGP PUBLIC KEY BLOCK-----";

/// Everything that can go wrong reading a `KEYS` file or checking a signature.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// The `KEYS` text held no key rPGP could read.
    #[error(
        "the KEYS file has no usable public key ({blocks} key blocks, {skipped} unreadable{})",
        first_reason.as_ref().map(|reason| format!("; first: {reason}")).unwrap_or_default()
    )]
    NoUsableKey {
        /// How many `BEGIN PGP PUBLIC KEY BLOCK` blocks the text had.
        blocks: usize,
        /// How many of them could not be read.
        skipped: usize,
        /// Why the first unreadable block was skipped, if there was one.
        first_reason: Option<String>,
    },

    /// A pinned fingerprint is not a hexadecimal OpenPGP fingerprint.
    #[error(
        "pinned signing key `{pin}` is not an OpenPGP fingerprint (40 or 64 hexadecimal digits)"
    )]
    InvalidPin {
        /// The pin as configured.
        pin: String,
    },

    /// A pinned fingerprint names no primary key in the `KEYS` file.
    #[error("pinned signing key {fingerprint} is not in the KEYS file")]
    PinNotInKeys {
        /// The pin, normalised to upper-case hexadecimal without spaces.
        fingerprint: String,
    },

    /// The signature data is neither valid ASCII armor nor binary OpenPGP.
    #[error("the signature for {} is malformed", file.display())]
    MalformedSignature {
        /// The file the signature is for.
        file: PathBuf,
        /// What rPGP could not parse (boxed: rPGP's error is large).
        #[source]
        source: Box<pgp::errors::Error>,
    },

    /// The signature data holds no signature packet at all.
    #[error("the signature for {} contains no OpenPGP signature packet", file.display())]
    NoSignature {
        /// The file the signature is for.
        file: PathBuf,
    },

    /// The signature packet is not a detached signature over data.
    #[error("the signature for {} is not a detached data signature: {what}", file.display())]
    NotADataSignature {
        /// The file the signature is for.
        file: PathBuf,
        /// What the packet is instead, or what it lacks.
        what: String,
    },

    /// The signature names no issuer (neither key id nor fingerprint), so no key can be chosen.
    #[error("the signature for {} does not say which key made it", file.display())]
    NoIssuer {
        /// The file the signature is for.
        file: PathBuf,
    },

    /// The signature was made by a key that is not in the `KEYS` file.
    #[error("{} is signed by key {issuer}, which is not in the KEYS file", file.display())]
    UnknownKey {
        /// The file the signature is for.
        file: PathBuf,
        /// The issuer fingerprint or key id(s) the signature names, upper-case hexadecimal.
        issuer: String,
    },

    /// The signature was made by a key that is in the `KEYS` file but not among the pinned
    /// fingerprints.
    #[error(
        "{} is signed by key {key_fingerprint}, which is in the KEYS file but not among [verify] \
         fingerprints; add it there if you trust it",
        file.display()
    )]
    NotPinned {
        /// The file the signature is for.
        file: PathBuf,
        /// The signing key's primary fingerprint, upper-case hexadecimal.
        key_fingerprint: String,
    },

    /// The signing subkey is not validly bound to its primary key, so it does not speak for it.
    #[error(
        "{} is signed by subkey {subkey_fingerprint}, which is not validly bound to key {key_fingerprint}",
        file.display()
    )]
    UnboundSubkey {
        /// The file the signature is for.
        file: PathBuf,
        /// The primary key the subkey claims to belong to.
        key_fingerprint: String,
        /// The subkey that made the signature.
        subkey_fingerprint: String,
    },

    /// The signing key (or subkey) has been revoked for signatures of that date.
    #[error("{} is signed by key {key_fingerprint}, which has been revoked ({reason})", file.display())]
    RevokedKey {
        /// The file the signature is for.
        file: PathBuf,
        /// The primary key's fingerprint.
        key_fingerprint: String,
        /// The revocation reason, as the revocation states it.
        reason: String,
    },

    /// The signature does not match the file's content (or the key's material).
    #[error("BAD signature: {} does not match its signature by key {key_fingerprint}", file.display())]
    BadSignature {
        /// The file the signature is for.
        file: PathBuf,
        /// The primary key's fingerprint.
        key_fingerprint: String,
        /// What rPGP reported (boxed: rPGP's error is large).
        #[source]
        source: Box<pgp::errors::Error>,
    },

    /// The signed file could not be read.
    #[error("cannot read {} to check its signature", file.display())]
    ReadFile {
        /// The file that could not be read.
        file: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A public key block from a `KEYS` file that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedKeyBlock {
    /// The 1-based line of the block's `BEGIN` line in the `KEYS` text.
    pub(crate) line: usize,
    /// What rPGP reported (an unsupported algorithm, broken armor, a truncated block…).
    pub(crate) reason: String,
}

/// The keys a project signs its releases with, parsed from its `KEYS` file.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    skipped: Vec<SkippedKeyBlock>,
    /// Keys of the `KEYS` file left out by [`Keyring::restrict_to`]: never trusted, only
    /// consulted to say truthfully why a signature by one of them is refused.
    unpinned: Vec<SignedPublicKey>,
}

/// A signature that verified: which key made it, whose it is, and when it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureCheck {
    /// The primary key's fingerprint (also when a subkey signed), upper-case hex, no spaces.
    pub key_fingerprint: String,
    /// The key's primary user id (`Name <email>`); empty if the key has none.
    pub signer: String,
    /// When the signature was made, as the signature states.
    pub(crate) created: SystemTime,
    /// Whether the signed bytes were hashed for the check alone or shared with the checksum's
    /// hash.
    pub(crate) content_hash: ContentHash,
}

impl Keyring {
    /// Parses a `KEYS` file: every `BEGIN PGP PUBLIC KEY BLOCK` … `END PGP PUBLIC KEY BLOCK`
    /// block, ignoring the free text around them. Blocks rPGP cannot read are skipped and
    /// listed in [`Keyring::skipped_blocks`]; the result is an error only when no key parses.
    pub fn parse_keys_file(text: &str) -> Result<Keyring, SignatureError> {
        let blocks = armored_key_blocks(text);
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for block in &blocks {
            match parse_key_block(&block.text) {
                Ok(parsed) => keys.extend(parsed),
                Err(reason) => skipped.push(SkippedKeyBlock {
                    line: block.line,
                    reason,
                }),
            }
        }
        if keys.is_empty() {
            return Err(SignatureError::NoUsableKey {
                blocks: blocks.len(),
                skipped: skipped.len(),
                first_reason: skipped
                    .first()
                    .map(|block| format!("block at line {}: {}", block.line, block.reason)),
            });
        }
        Ok(Keyring {
            keys,
            skipped,
            unpinned: Vec::new(),
        })
    }

    /// The primary keys' fingerprints, upper-case hexadecimal without spaces, in file order,
    /// each once.
    pub fn fingerprints(&self) -> Vec<String> {
        let mut fingerprints: Vec<String> = Vec::with_capacity(self.keys.len());
        for key in &self.keys {
            let fingerprint = fingerprint_text(&key.fingerprint());
            if !fingerprints.contains(&fingerprint) {
                fingerprints.push(fingerprint);
            }
        }
        fingerprints
    }

    /// The key blocks that could not be read (worth a warning, not an error).
    pub fn skipped_blocks(&self) -> &[SkippedKeyBlock] {
        &self.skipped
    }

    /// Keeps only the primary keys whose fingerprints are pinned. Pins may be written with
    /// spaces (as `gpg --fingerprint` prints them), in any case, with or without `0x`. Every
    /// pin must name a key in the keyring; an empty list leaves the keyring unchanged (nothing
    /// is pinned).
    pub fn restrict_to(self, pinned: &[String]) -> Result<Keyring, SignatureError> {
        if pinned.is_empty() {
            return Ok(self);
        }
        let mut wanted = Vec::with_capacity(pinned.len());
        for pin in pinned {
            wanted.push(normalize_pin(pin)?);
        }
        let present = self.fingerprints();
        if let Some(missing) = wanted.iter().find(|pin| !present.contains(pin)) {
            return Err(SignatureError::PinNotInKeys {
                fingerprint: missing.clone(),
            });
        }
        let (keys, unpinned) = self
            .keys
            .into_iter()
            .partition(|key| wanted.contains(&fingerprint_text(&key.fingerprint())));
        Ok(Keyring {
            keys,
            skipped: self.skipped,
            unpinned,
        })
    }
}

/// Verifies a detached signature (`.asc` ASCII armor, or a binary `.sig`) over `file`,
/// reading the file once in chunks. The signature must be made by a key of `keyring` (or one
/// of its bound signing subkeys). A binary signature in a SHA-2 algorithm is hashed with
/// [`crate::digest`] and checked through [`PendingSignature::verify_hashed`], the path the
/// download pipeline takes; anything else goes through rPGP's own hashing.
pub fn verify_detached(
    keyring: &Keyring,
    signature_text: &[u8],
    file: &Path,
) -> Result<SignatureCheck, SignatureError> {
    let opened = File::open(file).map_err(|source| SignatureError::ReadFile {
        file: file.to_path_buf(),
        source,
    })?;
    let mut content = BufReader::with_capacity(READ_BUFFER_BYTES, opened);
    let pending = PendingSignature::new(keyring, signature_text, file)?;
    let Some(algorithm) = pending.shares() else {
        return pending.verify_reader(content);
    };
    let mut state = algorithm.running();
    loop {
        let chunk = match content.fill_buf() {
            Ok(chunk) => chunk,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(SignatureError::ReadFile {
                    file: file.to_path_buf(),
                    source,
                });
            }
        };
        if chunk.is_empty() {
            break;
        }
        state.update(chunk);
        let length = chunk.len();
        content.consume(length);
    }
    pending.verify_hashed(state)
}

/// How the signed bytes were hashed for a signature check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentHash {
    /// The check continued from a copy of the checksum pipeline's running hash of this
    /// algorithm, taken after the last byte: every byte was hashed once, for both.
    Shared(Algorithm),
    /// The check hashed the bytes itself, in a pass of its own.
    OwnPass,
}

impl fmt::Display for ContentHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContentHash::Shared(algorithm) => write!(
                formatter,
                "checked from the download's own {algorithm} hash (each byte hashed once)"
            ),
            ContentHash::OwnPass => formatter.write_str("checked with a hash of its own"),
        }
    }
}

/// A signature checked as far as it can be before the signed bytes are read: parsed, its
/// signer found in the keyring, revocations and the subkey binding checked. What is left is
/// the hash over the content and the key's check of that hash.
#[derive(Debug)]
pub(crate) struct PendingSignature {
    signature: Signature,
    key: SignerKey,
    key_fingerprint: String,
    signer: String,
    created: SystemTime,
    subject: PathBuf,
}

/// The key that made a signature: the primary key or one of its signing subkeys.
#[derive(Debug)]
enum SignerKey {
    Primary(PublicKey),
    Subkey(PublicSubkey),
}

impl PendingSignature {
    /// Everything [`verify_detached`] checks before it reads the signed bytes.
    pub(crate) fn new(
        keyring: &Keyring,
        signature_text: &[u8],
        subject: &Path,
    ) -> Result<PendingSignature, SignatureError> {
        let signatures = parse_signatures(signature_text, subject)?;
        let (signature, signer) = choose_signature(keyring, &signatures, subject)?;
        let key_fingerprint = fingerprint_text(&signer.key.fingerprint());

        let created = signature
            .created()
            .ok_or_else(|| SignatureError::NotADataSignature {
                file: subject.to_path_buf(),
                what: "it has no creation time".to_string(),
            })?;
        if let Some(reason) = revocation_at(signer.key, signer.subkey, created) {
            return Err(SignatureError::RevokedKey {
                file: subject.to_path_buf(),
                key_fingerprint,
                reason,
            });
        }
        if let Some(subkey) = signer.subkey
            && !subkey_can_sign(signer.key, subkey)
        {
            return Err(SignatureError::UnboundSubkey {
                file: subject.to_path_buf(),
                key_fingerprint,
                subkey_fingerprint: fingerprint_text(&subkey.fingerprint()),
            });
        }
        Ok(PendingSignature {
            signature: signature.clone(),
            key: match signer.subkey {
                Some(subkey) => SignerKey::Subkey(subkey.key.clone()),
                None => SignerKey::Primary(signer.key.primary_key.clone()),
            },
            key_fingerprint,
            signer: primary_user_id(signer.key),
            created: system_time(created),
            subject: subject.to_path_buf(),
        })
    }

    /// The algorithm whose running hash of the signed bytes [`PendingSignature::verify_hashed`]
    /// can continue from, or `None` when the check needs a hash of its own: a text-mode
    /// signature hashes the bytes with canonical line endings, a salted (v6) one hashes its salt
    /// before them, and a v6 or post-quantum key is left to rPGP's own checks of those rules.
    pub(crate) fn shares(&self) -> Option<Algorithm> {
        let config = self.signature.config()?;
        let unsalted = matches!(
            config.version(),
            SignatureVersion::V2 | SignatureVersion::V3 | SignatureVersion::V4
        );
        let key_version = match &self.key {
            SignerKey::Primary(key) => key.version(),
            SignerKey::Subkey(key) => key.version(),
        };
        if config.typ != SignatureType::Binary
            || !unsalted
            || key_version == KeyVersion::V6
            || config.pub_alg.is_pqc()
        {
            return None;
        }
        match config.hash_alg {
            HashAlgorithm::Sha224 => Some(Algorithm::Sha224),
            HashAlgorithm::Sha256 => Some(Algorithm::Sha256),
            HashAlgorithm::Sha384 => Some(Algorithm::Sha384),
            HashAlgorithm::Sha512 => Some(Algorithm::Sha512),
            _ => None,
        }
    }

    /// Check the signature over `content`, hashing it in a pass of its own.
    pub(crate) fn verify_reader(
        &self,
        content: impl Read,
    ) -> Result<SignatureCheck, SignatureError> {
        let verified = match &self.key {
            SignerKey::Primary(key) => self.signature.verify(key, content),
            SignerKey::Subkey(key) => self.signature.verify(key, content),
        };
        self.conclude(verified, ContentHash::OwnPass)
    }

    /// Check the signature from `state`, a running hash of exactly the signed bytes in the
    /// algorithm [`PendingSignature::shares`] names (the caller keeps its own copy).
    pub(crate) fn verify_hashed(&self, state: Running) -> Result<SignatureCheck, SignatureError> {
        let Some(algorithm) = self.shares() else {
            return self.conclude(
                Err(pgp::errors::Error::from(
                    "this signature cannot be checked from a shared hash".to_string(),
                )),
                ContentHash::OwnPass,
            );
        };
        let verified = self.verify_state(state);
        self.conclude(verified, ContentHash::Shared(algorithm))
    }

    /// The steps of rPGP's `Signature::verify` that follow the data, through its own API:
    /// the signature's hashed fields and trailer go into the hash, the digest's first two
    /// bytes must match the ones the signature carries, and the key checks the digest.
    fn verify_state(&self, state: Running) -> pgp::errors::Result<()> {
        let (Some(config), Some(signed_hash_value), Some(signature_bytes)) = (
            self.signature.config(),
            self.signature.signed_hash_value(),
            self.signature.signature(),
        ) else {
            return Err(format!("signature version {:?}", self.signature.version()).into());
        };
        let mut hasher: Box<dyn DynDigest + Send> = Box::new(ContinuedHash(state));
        let length = config.hash_signature_data(&mut hasher)?;
        hasher.update(&config.trailer(length)?);
        let hash = hasher.finalize();
        if hash.get(..2) != Some(&signed_hash_value[..]) {
            return Err("signature: invalid signed hash value".to_string().into());
        }
        match &self.key {
            SignerKey::Primary(key) => key.verify(config.hash_alg, &hash, signature_bytes),
            SignerKey::Subkey(key) => key.verify(config.hash_alg, &hash, signature_bytes),
        }
    }

    fn conclude(
        &self,
        verified: pgp::errors::Result<()>,
        content_hash: ContentHash,
    ) -> Result<SignatureCheck, SignatureError> {
        if let Err(source) = verified {
            // A read failure surfaces from inside rPGP's hashing loop; keep it an I/O error.
            return Err(match source {
                pgp::errors::Error::IO { source, .. } => SignatureError::ReadFile {
                    file: self.subject.clone(),
                    source,
                },
                source => SignatureError::BadSignature {
                    file: self.subject.clone(),
                    key_fingerprint: self.key_fingerprint.clone(),
                    source: Box::new(source),
                },
            });
        }
        Ok(SignatureCheck {
            key_fingerprint: self.key_fingerprint.clone(),
            signer: self.signer.clone(),
            created: self.created,
            content_hash,
        })
    }
}

/// A running hash of imgforge's own, seen by rPGP as the `DynDigest` it hashes signature
/// data into: how a check continues from the checksum pipeline's state.
#[derive(Clone)]
struct ContinuedHash(Running);

impl DynDigest for ContinuedHash {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finalize_into(self, out: &mut [u8]) -> Result<(), InvalidBufferSize> {
        if out.len() != self.0.length() {
            return Err(InvalidBufferSize);
        }
        out.copy_from_slice(&self.0.finish());
        Ok(())
    }

    fn finalize_into_reset(&mut self, out: &mut [u8]) -> Result<(), InvalidBufferSize> {
        let fresh = self.0.fresh();
        ContinuedHash(std::mem::replace(&mut self.0, fresh)).finalize_into(out)
    }

    fn reset(&mut self) {
        self.0 = self.0.fresh();
    }

    fn output_size(&self) -> usize {
        self.0.length()
    }

    fn box_clone(&self) -> Box<dyn DynDigest> {
        Box::new(self.clone())
    }
}

/// One `BEGIN`…`END` public key block cut out of a `KEYS` file.
struct KeyBlock {
    line: usize,
    text: String,
}

/// Cuts the armored public key blocks out of `KEYS` text. Armor lines may be indented or carry
/// trailing spaces (copied by hand into the file); an unterminated last block is kept so that it
/// is reported as unreadable rather than silently dropped.
fn armored_key_blocks(text: &str) -> Vec<KeyBlock> {
    let mut blocks = Vec::new();
    let mut current: Option<KeyBlock> = None;
    for (index, raw_line) in text.lines().enumerate() {
        let line = raw_line.trim();
        if line == BEGIN_PUBLIC_KEY {
            // A BEGIN inside an open block means the open block was never terminated.
            if let Some(open) = current.take() {
                blocks.push(open);
            }
            current = Some(KeyBlock {
                line: index + 1,
                text: String::new(),
            });
        }
        if let Some(block) = current.as_mut() {
            block.text.push_str(line);
            block.text.push('\n');
            if line == END_PUBLIC_KEY {
                blocks.extend(current.take());
            }
        }
    }
    blocks.extend(current);
    blocks
}

/// Parses one armored block into its keys (`gpg --export --armor` of several keys puts them
/// all in one block); any failure makes the whole block unreadable.
fn parse_key_block(armored: &str) -> Result<Vec<SignedPublicKey>, String> {
    let (keys, _headers) =
        SignedPublicKey::from_string_many(armored).map_err(|error| error.to_string())?;
    let keys = keys
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| error.to_string())?;
    if keys.is_empty() {
        return Err("the block holds no public key".to_string());
    }
    Ok(keys)
}

/// Reads every signature packet from ASCII-armored or binary signature data.
fn parse_signatures(
    signature_text: &[u8],
    subject: &Path,
) -> Result<Vec<DetachedSignature>, SignatureError> {
    let malformed = |source| SignatureError::MalformedSignature {
        file: subject.to_path_buf(),
        source: Box::new(source),
    };
    if signature_text.iter().all(u8::is_ascii_whitespace) {
        return Err(SignatureError::NoSignature {
            file: subject.to_path_buf(),
        });
    }
    let (signatures, _headers) =
        DetachedSignature::from_reader_many(signature_text).map_err(malformed)?;
    let signatures = signatures
        .collect::<Result<Vec<_>, _>>()
        .map_err(malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoSignature {
            file: subject.to_path_buf(),
        });
    }
    Ok(signatures)
}

/// The key (and, when a subkey signed, the subkey) that made a signature.
struct Signer<'a> {
    key: &'a SignedPublicKey,
    subkey: Option<&'a SignedPublicSubKey>,
}

/// Picks the first signature whose issuer is in the keyring, so the file is hashed once even
/// when an `.asc` carries several signatures.
fn choose_signature<'a>(
    keyring: &'a Keyring,
    signatures: &'a [DetachedSignature],
    subject: &Path,
) -> Result<(&'a Signature, Signer<'a>), SignatureError> {
    let mut issuers: Vec<String> = Vec::new();
    for detached in signatures {
        let signature = &detached.signature;
        match signature.typ() {
            Some(SignatureType::Binary | SignatureType::Text) => {}
            other => {
                return Err(SignatureError::NotADataSignature {
                    file: subject.to_path_buf(),
                    what: match other {
                        Some(typ) => format!("it is a {typ:?} signature"),
                        None => format!("it is a version {:?} signature", signature.version()),
                    },
                });
            }
        }
        let issuer = Issuer::of(signature);
        if issuer.is_empty() {
            continue;
        }
        if let Some(signer) = find_signer(&keyring.keys, &issuer) {
            return Ok((signature, signer));
        }
        issuers.push(issuer.to_string());
    }
    // Say "not pinned" only for a key that is really in KEYS; "not in KEYS" only when absent.
    for detached in signatures {
        let issuer = Issuer::of(&detached.signature);
        if !issuer.is_empty()
            && let Some(signer) = find_signer(&keyring.unpinned, &issuer)
        {
            return Err(SignatureError::NotPinned {
                file: subject.to_path_buf(),
                key_fingerprint: fingerprint_text(&signer.key.fingerprint()),
            });
        }
    }
    if issuers.is_empty() {
        return Err(SignatureError::NoIssuer {
            file: subject.to_path_buf(),
        });
    }
    Err(SignatureError::UnknownKey {
        file: subject.to_path_buf(),
        issuer: issuers.join(", "),
    })
}

/// Who a signature says made it: issuer fingerprints and legacy 8-byte key ids.
struct Issuer {
    fingerprints: Vec<Vec<u8>>,
    key_ids: Vec<[u8; 8]>,
}

impl Issuer {
    fn of(signature: &Signature) -> Issuer {
        Issuer {
            fingerprints: signature
                .issuer_fingerprint()
                .into_iter()
                .map(|fingerprint| fingerprint.as_bytes().to_vec())
                .collect(),
            key_ids: signature
                .issuer_key_id()
                .into_iter()
                .filter_map(|key_id| key_id.as_ref().try_into().ok())
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.fingerprints.is_empty() && self.key_ids.is_empty()
    }

    /// A fingerprint names the key exactly; the key id is only consulted when there is none.
    fn names(&self, key: &impl KeyDetails) -> bool {
        if !self.fingerprints.is_empty() {
            let fingerprint = key.fingerprint();
            return self
                .fingerprints
                .iter()
                .any(|issuer| issuer.as_slice() == fingerprint.as_bytes());
        }
        let key_id = key.legacy_key_id();
        self.key_ids
            .iter()
            .any(|issuer| issuer.as_slice() == key_id.as_ref())
    }
}

impl fmt::Display for Issuer {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.fingerprints.first() {
            Some(fingerprint) => write!(formatter, "{}", hex::encode_upper(fingerprint)),
            None => {
                let ids: Vec<String> = self.key_ids.iter().map(hex::encode_upper).collect();
                write!(formatter, "{}", ids.join("/"))
            }
        }
    }
}

fn find_signer<'a>(keys: &'a [SignedPublicKey], issuer: &Issuer) -> Option<Signer<'a>> {
    keys.iter().find_map(|key| {
        if issuer.names(key) {
            return Some(Signer { key, subkey: None });
        }
        key.public_subkeys
            .iter()
            .find(|subkey| issuer.names(*subkey))
            .map(|subkey| Signer {
                key,
                subkey: Some(subkey),
            })
    })
}

/// Whether `subkey` has a binding signature from `key` that grants it signing, with the
/// subkey's own back-signature (without it, anyone could attach someone else's signing key).
fn subkey_can_sign(key: &SignedPublicKey, subkey: &SignedPublicSubKey) -> bool {
    subkey.signatures.iter().any(|binding| {
        binding.typ() == Some(SignatureType::SubkeyBinding)
            && binding.key_flags().sign()
            && binding
                .verify_subkey_binding(&key.primary_key, &subkey.key)
                .is_ok()
            && binding.embedded_signature().is_some_and(|back_signature| {
                back_signature
                    .verify_primary_key_binding(&subkey.key, &key.primary_key)
                    .is_ok()
            })
    })
}

/// The reason a valid revocation of the primary key or of the signing subkey applies to a
/// signature made at `signed_at`, if one does.
fn revocation_at(
    key: &SignedPublicKey,
    subkey: Option<&SignedPublicSubKey>,
    signed_at: Timestamp,
) -> Option<String> {
    let key_revocations = key
        .details
        .revocation_signatures
        .iter()
        .filter(|revocation| revocation.typ() == Some(SignatureType::KeyRevocation))
        .filter(|revocation| revocation.verify_key(&key.primary_key).is_ok());
    let subkey_revocations = subkey.into_iter().flat_map(|subkey| {
        subkey
            .signatures
            .iter()
            .filter(|revocation| revocation.typ() == Some(SignatureType::SubkeyRevocation))
            .filter(|revocation| {
                revocation
                    .verify_subkey_binding(&key.primary_key, &subkey.key)
                    .is_ok()
            })
    });
    key_revocations
        .chain(subkey_revocations)
        .find_map(|revocation| {
            let code = revocation.revocation_reason_code();
            // A soft revocation (the key was retired or replaced) leaves earlier signatures
            // valid; anything else may mean the key was compromised, so it condemns them all.
            let soft = matches!(
                code,
                Some(RevocationCode::KeySuperseded | RevocationCode::KeyRetired)
            );
            let applies = !soft
                || revocation
                    .created()
                    .is_none_or(|revoked_at| revoked_at.as_secs() <= signed_at.as_secs());
            applies.then(|| match code {
                Some(code) => format!("{code:?}"),
                None => "no reason given".to_string(),
            })
        })
}

/// The primary user id: the one flagged primary, else the first; empty if there is none.
fn primary_user_id(key: &SignedPublicKey) -> String {
    let users = &key.details.users;
    users
        .iter()
        .find(|user| user.is_primary())
        .or_else(|| users.first())
        .map(|user| String::from_utf8_lossy(user.id.id()).into_owned())
        .unwrap_or_default()
}

fn system_time(timestamp: Timestamp) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(timestamp.as_secs()))
}

fn fingerprint_text(fingerprint: &Fingerprint) -> String {
    format!("{fingerprint:X}")
}

/// Normalises a configured pin to upper-case hex without spaces, rejecting anything that
/// cannot be a v4 (40 digits) or v6 (64 digits) fingerprint.
fn normalize_pin(pin: &str) -> Result<String, SignatureError> {
    let compact: String = pin.chars().filter(|c| !c.is_whitespace()).collect();
    let digits = compact
        .strip_prefix("0x")
        .or_else(|| compact.strip_prefix("0X"))
        .unwrap_or(&compact);
    let valid = matches!(digits.len(), 40 | 64) && digits.chars().all(|c| c.is_ascii_hexdigit());
    if !valid {
        return Err(SignatureError::InvalidPin {
            pin: pin.to_string(),
        });
    }
    Ok(digits.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use pgp::composed::{
        ArmorOptions, EncryptionCaps, KeyType, SecretKeyParamsBuilder, SignedSecretKey,
        SubkeyParamsBuilder, SubpacketConfig,
    };
    use pgp::crypto::hash::HashAlgorithm;
    use pgp::packet::{SignatureConfig, Subpacket, SubpacketData};
    use pgp::ser::Serialize as _;
    use pgp::types::{KeyDetails as _, Password, SigningKey};
    use tempfile::NamedTempFile;

    use super::*;

    /// A certify-only Ed25519 primary key with an Ed25519 signing subkey, as Apache release
    /// managers' keys usually look (with RSA), generated fresh for each test.
    fn generate_key(user_id: &str) -> SignedSecretKey {
        let mut signing_subkey = SubkeyParamsBuilder::default();
        signing_subkey
            .key_type(KeyType::Ed25519Legacy)
            .can_sign(true)
            .can_encrypt(EncryptionCaps::None)
            .can_authenticate(false);
        let mut params = SecretKeyParamsBuilder::default();
        params
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(false)
            .can_encrypt(EncryptionCaps::None)
            .primary_user_id(user_id.into())
            .subkeys(vec![signing_subkey.build().unwrap()]);
        params
            .build()
            .unwrap()
            .generate(rand::thread_rng())
            .unwrap()
    }

    fn armored_public(key: &SignedSecretKey) -> String {
        key.to_public_key()
            .to_armored_string(ArmorOptions::default())
            .unwrap()
    }

    fn fingerprint_of(key: &SignedSecretKey) -> String {
        format!("{:X}", key.fingerprint())
    }

    /// A file of a few MB whose content varies, so a flipped byte anywhere matters.
    fn release_file(megabytes: usize) -> NamedTempFile {
        let mut file = NamedTempFile::new().unwrap();
        let chunk: Vec<u8> = (0..1 << 20).map(|index: u32| (index % 251) as u8).collect();
        for _ in 0..megabytes {
            file.write_all(&chunk).unwrap();
        }
        file.flush().unwrap();
        file
    }

    fn sign_file(signer: &impl SigningKey, path: &Path) -> DetachedSignature {
        sign_file_with(signer, path, SubpacketConfig::Default)
    }

    fn sign_file_with(
        signer: &impl SigningKey,
        path: &Path,
        subpackets: SubpacketConfig,
    ) -> DetachedSignature {
        DetachedSignature::sign_binary_data_with_subpackets(
            rand::thread_rng(),
            signer,
            &Password::empty(),
            HashAlgorithm::Sha512,
            BufReader::new(File::open(path).unwrap()),
            subpackets,
        )
        .unwrap()
    }

    fn armored(signature: &DetachedSignature) -> Vec<u8> {
        signature.to_armored_bytes(ArmorOptions::default()).unwrap()
    }

    fn keys_file(blocks: &[String]) -> String {
        let mut text = String::from("This file contains the PGP keys of release managers.\n\n");
        for (index, block) in blocks.iter().enumerate() {
            text.push_str(&format!(
                "pub   ed25519 2024-01-0{index} [SC]\nuid           [ultimate] Manager {index}\nsub   ed25519 [S]\n\n{block}\n"
            ));
        }
        text
    }

    #[test]
    fn subkey_signature_verifies_and_reports_the_primary_fingerprint() {
        let key = generate_key("Release Manager <rm@apache.org>");
        let keyring = Keyring::parse_keys_file(&keys_file(&[armored_public(&key)])).unwrap();
        let file = release_file(3);
        let signature = sign_file(&key.secret_subkeys[0].key, file.path());

        let check = verify_detached(&keyring, &armored(&signature), file.path()).unwrap();

        assert_eq!(check.key_fingerprint, fingerprint_of(&key));
        assert_ne!(
            check.key_fingerprint,
            format!("{:X}", key.secret_subkeys[0].key.fingerprint()),
            "a subkey signature reports the primary key"
        );
        assert_eq!(check.signer, "Release Manager <rm@apache.org>");
        let age = SystemTime::now().duration_since(check.created).unwrap();
        assert!(age < Duration::from_secs(600), "created {age:?} ago");
    }

    #[test]
    fn primary_key_signature_and_binary_sig_verify() {
        let key = generate_key("Primary Signer <ps@apache.org>");
        let keyring = Keyring::parse_keys_file(&armored_public(&key)).unwrap();
        let file = release_file(2);
        let signature = sign_file(&key.primary_key, file.path());
        let binary = signature.to_bytes().unwrap();
        assert!(binary[0] & 0x80 != 0, "the .sig form is binary OpenPGP");

        let check = verify_detached(&keyring, &binary, file.path()).unwrap();

        assert_eq!(check.key_fingerprint, fingerprint_of(&key));
    }

    #[test]
    fn modified_file_is_a_bad_signature() {
        let key = generate_key("Release Manager <rm@apache.org>");
        let keyring = Keyring::parse_keys_file(&armored_public(&key)).unwrap();
        let file = release_file(3);
        let signature = armored(&sign_file(&key.secret_subkeys[0].key, file.path()));
        let mut content = std::fs::read(file.path()).unwrap();
        content[2 << 20] ^= 0x01;
        std::fs::write(file.path(), &content).unwrap();

        let error = verify_detached(&keyring, &signature, file.path()).unwrap_err();

        match &error {
            SignatureError::BadSignature {
                file: named,
                key_fingerprint,
                ..
            } => {
                assert_eq!(named, file.path());
                assert_eq!(key_fingerprint, &fingerprint_of(&key));
            }
            other => panic!("expected BadSignature, got {other:?}"),
        }
        assert!(error.to_string().contains("BAD signature"), "{error}");
    }

    #[test]
    fn signature_by_a_key_not_in_keys_names_the_issuer() {
        let trusted = generate_key("Trusted <t@apache.org>");
        let stranger = generate_key("Stranger <s@example.com>");
        let keyring = Keyring::parse_keys_file(&armored_public(&trusted)).unwrap();
        let file = release_file(1);
        let subkey = &stranger.secret_subkeys[0].key;
        let signature = armored(&sign_file(subkey, file.path()));

        let error = verify_detached(&keyring, &signature, file.path()).unwrap_err();

        let key_id = hex::encode_upper(subkey.legacy_key_id());
        assert!(
            matches!(&error, SignatureError::UnknownKey { issuer, .. } if issuer.ends_with(&key_id)),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains(&key_id), "{message}");
        assert!(
            message.contains(&file.path().display().to_string()),
            "{message}"
        );
    }

    #[test]
    fn issuer_key_id_alone_finds_the_subkey() {
        let key = generate_key("Old Style <old@apache.org>");
        let keyring = Keyring::parse_keys_file(&armored_public(&key)).unwrap();
        let file = release_file(1);
        let subkey = &key.secret_subkeys[0].key;
        let subpackets = SubpacketConfig::UserDefined {
            hashed: vec![
                Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::now())).unwrap(),
            ],
            unhashed: vec![
                Subpacket::regular(SubpacketData::IssuerKeyId(subkey.legacy_key_id())).unwrap(),
            ],
        };
        let signature = armored(&sign_file_with(subkey, file.path(), subpackets));

        let check = verify_detached(&keyring, &signature, file.path()).unwrap();

        assert_eq!(check.key_fingerprint, fingerprint_of(&key));
    }

    #[test]
    fn subkey_not_bound_to_the_primary_is_refused() {
        let owner = generate_key("Owner <o@apache.org>");
        let impostor = generate_key("Impostor <i@example.com>");
        // The impostor grafts the owner's public key onto its own signing subkey.
        let mut grafted = owner.to_public_key();
        grafted.public_subkeys = impostor.to_public_key().public_subkeys;
        let keys = grafted.to_armored_string(ArmorOptions::default()).unwrap();
        let keyring = Keyring::parse_keys_file(&keys).unwrap();
        let file = release_file(1);
        let signature = armored(&sign_file(&impostor.secret_subkeys[0].key, file.path()));

        let error = verify_detached(&keyring, &signature, file.path()).unwrap_err();

        assert!(
            matches!(&error, SignatureError::UnboundSubkey { key_fingerprint, .. }
                if key_fingerprint == &fingerprint_of(&owner)),
            "{error:?}"
        );
    }

    /// Adds a self-signed key revocation with `code`, made at `revoked_at`.
    fn revoke(key: &SignedSecretKey, code: RevocationCode, revoked_at: u32) -> SignedPublicKey {
        let mut config = SignatureConfig::v4(
            SignatureType::KeyRevocation,
            key.primary_key.algorithm(),
            HashAlgorithm::Sha256,
        );
        config.hashed_subpackets = vec![
            Subpacket::regular(SubpacketData::IssuerFingerprint(key.fingerprint())).unwrap(),
            Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::from_secs(
                revoked_at,
            )))
            .unwrap(),
            Subpacket::regular(SubpacketData::RevocationReason(code, "test".into())).unwrap(),
        ];
        let public = key.to_public_key();
        let revocation = config
            .sign_key(&key.primary_key, &Password::empty(), &public.primary_key)
            .unwrap();
        let mut revoked = public;
        revoked.details.revocation_signatures.push(revocation);
        revoked
    }

    fn signature_made_at(key: &SignedSecretKey, path: &Path, made_at: u32) -> Vec<u8> {
        let subkey = &key.secret_subkeys[0].key;
        let subpackets = SubpacketConfig::UserDefined {
            hashed: vec![
                Subpacket::regular(SubpacketData::IssuerFingerprint(subkey.fingerprint())).unwrap(),
                Subpacket::regular(SubpacketData::SignatureCreationTime(Timestamp::from_secs(
                    made_at,
                )))
                .unwrap(),
            ],
            unhashed: vec![],
        };
        armored(&sign_file_with(subkey, path, subpackets))
    }

    #[test]
    fn compromised_key_rejects_every_signature_retired_key_only_later_ones() {
        let key = generate_key("Revoked <r@apache.org>");
        let file = release_file(1);
        let now = Timestamp::now().as_secs();
        let before = signature_made_at(&key, file.path(), now - 1000);
        let after = signature_made_at(&key, file.path(), now);
        let keyring_with = |revoked: SignedPublicKey| {
            let text = revoked.to_armored_string(ArmorOptions::default()).unwrap();
            Keyring::parse_keys_file(&text).unwrap()
        };

        let compromised = keyring_with(revoke(&key, RevocationCode::KeyCompromised, now - 500));
        for signature in [&before, &after] {
            let error = verify_detached(&compromised, signature, file.path()).unwrap_err();
            assert!(
                matches!(error, SignatureError::RevokedKey { .. }),
                "{error:?}"
            );
        }

        let retired = keyring_with(revoke(&key, RevocationCode::KeyRetired, now - 500));
        verify_detached(&retired, &before, file.path()).unwrap();
        let error = verify_detached(&retired, &after, file.path()).unwrap_err();
        assert!(
            matches!(&error, SignatureError::RevokedKey { reason, .. } if reason.contains("Retired")),
            "{error:?}"
        );
    }

    #[test]
    fn keys_file_with_free_text_and_a_garbage_block_parses() {
        let first = generate_key("First <first@apache.org>");
        let second = generate_key("Second <second@apache.org>");
        let garbage = format!(
            "{BEGIN_PUBLIC_KEY}\n\nmQINBGarbageGarbageGarbageGarbage\nAAAAAAAAAAAA\n=abcd\n{END_PUBLIC_KEY}"
        );
        // Indented armor, as some KEYS files have after hand editing.
        let indented: String = armored_public(&second)
            .lines()
            .map(|line| format!("  {line}  \n"))
            .collect();
        let text = keys_file(&[armored_public(&first), garbage, indented]);

        let keyring = Keyring::parse_keys_file(&text).unwrap();

        assert_eq!(
            keyring.fingerprints(),
            vec![fingerprint_of(&first), fingerprint_of(&second)]
        );
        assert_eq!(keyring.skipped_blocks().len(), 1);
        let garbage_line = text
            .lines()
            .enumerate()
            .filter(|(_, line)| line.trim() == BEGIN_PUBLIC_KEY)
            .nth(1)
            .unwrap()
            .0
            + 1;
        assert_eq!(keyring.skipped_blocks()[0].line, garbage_line);
    }

    #[test]
    fn keys_file_without_a_usable_key_is_an_error() {
        let garbage = format!("{BEGIN_PUBLIC_KEY}\n\nnot base64 at all!\n{END_PUBLIC_KEY}\n");
        let error = Keyring::parse_keys_file(&format!("pub rsa4096\n{garbage}")).unwrap_err();
        assert!(
            matches!(
                &error,
                SignatureError::NoUsableKey { blocks: 1, skipped: 1, first_reason: Some(reason) }
                    if reason.starts_with("block at line 2")
            ),
            "{error:?}"
        );

        let error = Keyring::parse_keys_file("just some text\n").unwrap_err();
        assert!(
            matches!(error, SignatureError::NoUsableKey { blocks: 0, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn pins_restrict_the_keyring() {
        let pinned = generate_key("Pinned <p@apache.org>");
        let other = generate_key("Other <o@apache.org>");
        let text = keys_file(&[armored_public(&pinned), armored_public(&other)]);
        let keyring = Keyring::parse_keys_file(&text).unwrap();
        // As `gpg --fingerprint` prints it: groups of four, lower case here.
        let spaced: String = fingerprint_of(&pinned)
            .to_lowercase()
            .as_bytes()
            .chunks(4)
            .map(|group| std::str::from_utf8(group).unwrap())
            .collect::<Vec<_>>()
            .join(" ");

        let restricted = keyring.restrict_to(&[spaced]).unwrap();

        assert_eq!(restricted.fingerprints(), vec![fingerprint_of(&pinned)]);
        let file = release_file(1);
        let by_other = armored(&sign_file(&other.secret_subkeys[0].key, file.path()));
        let error = verify_detached(&restricted, &by_other, file.path()).unwrap_err();
        // The key is in KEYS, only not pinned: the message says exactly that.
        assert!(
            matches!(&error, SignatureError::NotPinned { key_fingerprint, .. }
                if *key_fingerprint == fingerprint_of(&other)),
            "{error:?}"
        );
        assert!(
            !error.to_string().contains("not in the KEYS file"),
            "{error}"
        );
        let by_pinned = armored(&sign_file(&pinned.secret_subkeys[0].key, file.path()));
        verify_detached(&restricted, &by_pinned, file.path()).unwrap();
    }

    #[test]
    fn pin_matching_no_key_is_an_error_naming_it() {
        let key = generate_key("Only <only@apache.org>");
        let keyring = Keyring::parse_keys_file(&armored_public(&key)).unwrap();
        let absent = "0123 4567 89ab cdef 0123  4567 89AB CDEF 0123 4567".to_string();

        let error = keyring.clone().restrict_to(&[absent]).unwrap_err();

        assert!(
            error
                .to_string()
                .contains("0123456789ABCDEF0123456789ABCDEF01234567"),
            "{error}"
        );
        let error = keyring.restrict_to(&["DEADBEEF".to_string()]).unwrap_err();
        assert!(
            matches!(&error, SignatureError::InvalidPin { pin } if pin == "DEADBEEF"),
            "{error:?}"
        );
    }

    #[test]
    fn signature_data_without_a_signature_is_refused() {
        let key = generate_key("Someone <s@apache.org>");
        let keyring = Keyring::parse_keys_file(&armored_public(&key)).unwrap();
        let file = release_file(1);

        let error = verify_detached(&keyring, b"", file.path()).unwrap_err();
        assert!(
            matches!(error, SignatureError::NoSignature { .. }),
            "{error:?}"
        );

        let broken = b"-----BEGIN PGP SIGNATURE-----\n\n!!!!\n-----END PGP SIGNATURE-----\n";
        let error = verify_detached(&keyring, broken, file.path()).unwrap_err();
        assert!(
            matches!(error, SignatureError::MalformedSignature { .. }),
            "{error:?}"
        );

        // A public key where the signature should be (a common mix-up of file names).
        let error =
            verify_detached(&keyring, armored_public(&key).as_bytes(), file.path()).unwrap_err();
        assert!(
            matches!(
                error,
                SignatureError::MalformedSignature { .. } | SignatureError::NoSignature { .. }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn missing_file_is_a_read_error_naming_it() {
        let key = generate_key("Someone <s@apache.org>");
        let keyring = Keyring::parse_keys_file(&armored_public(&key)).unwrap();
        let file = release_file(1);
        let signature = armored(&sign_file(&key.secret_subkeys[0].key, file.path()));
        let gone = file.path().with_extension("gone");

        let error = verify_detached(&keyring, &signature, &gone).unwrap_err();

        assert!(
            matches!(&error, SignatureError::ReadFile { file, .. } if file == &gone),
            "{error:?}"
        );
    }
}
