//! A release manager for the test mirror: one OpenPGP key per test process, a `KEYS` file
//! in the Apache layout, and detached `.asc` signatures over every published tarball — so
//! the default configuration, which checks signatures, runs against the fixtures as it would
//! against the real Apache dist tree.

use std::sync::OnceLock;

use pgp::composed::{
    ArmorOptions, DetachedSignature, EncryptionCaps, KeyType, SecretKeyParamsBuilder,
    SignedSecretKey, SubkeyParamsBuilder,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{KeyDetails as _, Password};

/// The signing key of the test mirror's "release manager".
pub struct ReleaseSigner {
    key: SignedSecretKey,
}

/// The process-wide release signer (generated once: key generation is the slow part).
pub fn release_signer() -> &'static ReleaseSigner {
    static SIGNER: OnceLock<ReleaseSigner> = OnceLock::new();
    SIGNER.get_or_init(|| ReleaseSigner::generate("Test Release Manager <rm@example.org>"))
}

impl ReleaseSigner {
    /// A certify-only primary key with a signing subkey, the shape Apache keys have.
    pub fn generate(user_id: &str) -> ReleaseSigner {
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
            .subkeys(vec![signing_subkey.build().expect("subkey params")]);
        let key = params
            .build()
            .expect("key params")
            .generate(rand::thread_rng())
            .expect("key generation");
        ReleaseSigner { key }
    }

    /// The primary key's fingerprint, upper-case hex.
    pub fn fingerprint(&self) -> String {
        format!("{:X}", self.key.fingerprint())
    }

    /// A `KEYS` file holding this key, with the free text Apache's files have around blocks.
    pub fn keys_file(&self) -> String {
        let block = self
            .key
            .to_public_key()
            .to_armored_string(ArmorOptions::default())
            .expect("armored public key");
        format!(
            "This file contains the PGP keys of the test release managers.\n\npub   ed25519 [SC]\n      {}\n\n{block}\n",
            self.fingerprint()
        )
    }

    /// An armored detached signature over `bytes`, made with the signing subkey.
    pub fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self.sign_with(HashAlgorithm::Sha512, bytes)
    }

    /// [`ReleaseSigner::sign`] with another digest algorithm than Apache's SHA-512.
    pub fn sign_with(&self, hash: HashAlgorithm, bytes: &[u8]) -> Vec<u8> {
        DetachedSignature::sign_binary_data(
            rand::thread_rng(),
            &self.key.secret_subkeys[0].key,
            &Password::empty(),
            hash,
            bytes,
        )
        .expect("signature")
        .to_armored_bytes(ArmorOptions::default())
        .expect("armored signature")
    }
}
