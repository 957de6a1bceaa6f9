//! Exit codes, documented in the README. Scripts and CI branch on them; every stage error
//! says which one it ends a run with (`exit_code`).

/// An unexpected internal failure.
pub const INTERNAL: u8 = 1;
/// Bad configuration or command-line input (clap also uses 2 for usage errors).
pub(crate) const CONFIG: u8 = 2;
/// A download failed: not found, unreachable, timed out, or not cached while offline.
pub(crate) const NETWORK: u8 = 3;
/// Integrity: checksum mismatch, unparsable checksum file, damaged cache entry.
pub(crate) const INTEGRITY: u8 = 4;
/// Local storage: cache directory unusable, disk full.
pub(crate) const STORAGE: u8 = 5;
/// An image build failed: a step, the engine, a base image, the context.
pub(crate) const BUILD: u8 = 6;
/// A push failed: registry unreachable or refusing the credentials, TLS, digest mismatch.
pub(crate) const PUSH: u8 = 7;
/// `build --if-changed --exit-code`: every image was up to date; nothing was built or pushed.
pub const NOTHING_TO_DO: u8 = 8;
/// Interrupted by SIGINT (Ctrl-C); SIGTERM exits 143 and SIGHUP 129 (128 + the signal).
pub(crate) const INTERRUPTED: u8 = 130;
