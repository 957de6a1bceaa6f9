//! The hash functions, in one place: every site that hashes artifact bytes (the download
//! pipeline, `cache verify`, verify-on-use while extracting, release signatures) uses these
//! streaming hashers, so there is one implementation to make fast.
//!
//! The implementation is AWS-LC's (`aws-lc-rs`, already built for rustls and bollard), chosen
//! by measurement on the project machine (2 cores of an AMD EPYC with AVX2 and SHA-NI) against
//! the other SHA-2 implementations in the dependency tree, RustCrypto `sha2` 0.11 and 0.10:
//! hashing a buffer already in cache they are within noise of each other, but hashing a file as
//! it is read in 1 MiB chunks (what imgforge does) AWS-LC was ahead in 4 of 5 interleaved runs,
//! by about 10%. None reaches `openssl speed sha512` (about 0.75× of it): OpenSSL has an
//! AVX2+BMI2 assembly path for SHA-512, AWS-LC and ring only the AVX one, `sha2` AVX2 intrinsics.
//! A state clones cheaply, which the signature check relies on (see [`crate::signature`]).
//! `benches/fetch.sh` prints the ratio to OpenSSL on the machine it runs on.

macro_rules! hasher {
    ($(#[$doc:meta])* $name:ident, $algorithm:expr, $length:expr) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $name(aws_lc_rs::digest::Context);

        impl $name {
            /// An empty state.
            pub fn new() -> Self {
                Self(aws_lc_rs::digest::Context::new(&$algorithm))
            }

            /// Feed the next bytes.
            pub fn update(&mut self, data: &[u8]) {
                self.0.update(data);
            }

            /// The digest of everything fed.
            pub fn finish(self) -> [u8; $length] {
                let mut output = [0u8; $length];
                // The algorithm fixes the length: the copy always fits exactly.
                output.copy_from_slice(self.0.finish().as_ref());
                output
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str(stringify!($name))
            }
        }

        impl std::io::Write for $name {
            fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
                self.update(data);
                Ok(data.len())
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}

hasher!(
    /// SHA-1 (Maven's `.sha1` files: a checksum format, not a security decision here).
    Sha1,
    aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
    20
);
hasher!(
    /// SHA-224.
    Sha224,
    aws_lc_rs::digest::SHA224,
    28
);
hasher!(
    /// SHA-256 (the cache index's verify-on-use digest, some published checksums).
    Sha256,
    aws_lc_rs::digest::SHA256,
    32
);
hasher!(
    /// SHA-384.
    Sha384,
    aws_lc_rs::digest::SHA384,
    48
);
hasher!(
    /// SHA-512 (the cache key, current Apache checksums and signatures).
    Sha512,
    aws_lc_rs::digest::SHA512,
    64
);

impl Sha512 {
    /// The digest of `data`, in one call.
    pub fn digest(data: &[u8]) -> [u8; 64] {
        let mut hasher = Self::new();
        hasher.update(data);
        hasher.finish()
    }
}

/// A running hash of any of the algorithms above: what a signature check continues from.
#[derive(Clone, Debug)]
pub enum Running {
    /// SHA-1.
    Sha1(Sha1),
    /// SHA-224.
    Sha224(Sha224),
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-384.
    Sha384(Sha384),
    /// SHA-512.
    Sha512(Sha512),
}

impl Running {
    /// Feed the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Running::Sha1(hasher) => hasher.update(data),
            Running::Sha224(hasher) => hasher.update(data),
            Running::Sha256(hasher) => hasher.update(data),
            Running::Sha384(hasher) => hasher.update(data),
            Running::Sha512(hasher) => hasher.update(data),
        }
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Running::Sha1(hasher) => hasher.finish().to_vec(),
            Running::Sha224(hasher) => hasher.finish().to_vec(),
            Running::Sha256(hasher) => hasher.finish().to_vec(),
            Running::Sha384(hasher) => hasher.finish().to_vec(),
            Running::Sha512(hasher) => hasher.finish().to_vec(),
        }
    }

    /// The digest's length in bytes.
    pub fn length(&self) -> usize {
        match self {
            Running::Sha1(_) => 20,
            Running::Sha224(_) => 28,
            Running::Sha256(_) => 32,
            Running::Sha384(_) => 48,
            Running::Sha512(_) => 64,
        }
    }

    /// An empty state of the same algorithm.
    pub fn fresh(&self) -> Running {
        match self {
            Running::Sha1(_) => Running::Sha1(Sha1::new()),
            Running::Sha224(_) => Running::Sha224(Sha224::new()),
            Running::Sha256(_) => Running::Sha256(Sha256::new()),
            Running::Sha384(_) => Running::Sha384(Sha384::new()),
            Running::Sha512(_) => Running::Sha512(Sha512::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answers_in_one_call_and_in_pieces() {
        let mut sha256 = Sha256::new();
        sha256.update(b"abc");
        assert_eq!(
            hex::encode(sha256.finish()),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut sha1 = Sha1::new();
        sha1.update(b"abc");
        assert_eq!(
            hex::encode(sha1.finish()),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let whole = Sha512::digest(b"abcdef");
        let mut pieces = Running::Sha512(Sha512::new());
        pieces.update(b"abc");
        let copy = pieces.clone();
        pieces.update(b"def");
        assert_eq!(pieces.length(), 64);
        assert_eq!(pieces.finish(), whole.to_vec());
        // A clone continues independently of the state it was taken from.
        let mut copy = copy;
        copy.update(b"xyz");
        assert_eq!(copy.finish(), Sha512::digest(b"abcxyz").to_vec());
    }
}
