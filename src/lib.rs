//! imgforge: a native Spark image and artifact builder.
//!
//! The modules are listed in pipeline order — config → resolve → fingerprint →
//! fetch/verify/cache → assemble → context → docker → registry/push — and the values that
//! flow between the stages are `Config → Resolved → PreparedTree → BuildContext →
//! BuiltImage → PushedImage`. Each fact is computed once and flows one way: no stage imports
//! a command, and `error` imports only the stages' error types. (rustfmt would sort one block
//! alphabetically, so each stage is its own block.)
//!
//! A module is `pub` only when the binary or the integration tests use it, and inside it only
//! what they use (and the types those items name) is `pub`; everything else is `pub(crate)`,
//! so the compiler reports what nothing calls.

// Leaves every stage uses: the image-reference grammar, the exit codes, every file write
// (temp, fsync, rename, fsync the directory), credentials masked in URLs and other
// programs' output.
pub(crate) mod reference;
// (exit codes; each stage error knows its own)
pub mod exit;
pub(crate) mod persist;
// (redaction)
pub mod redact;

// 1. config — what the user asked for.
pub mod cli;
pub mod config;
// (the commented starter imgforge.toml `imgforge init` writes)
pub(crate) mod starter;

// 2. resolve — every fact a run needs, computed once: the artifacts (`plan`), the listing
// facts, the S3A jars, certificates, patches, base images and names.
pub(crate) mod resolve;
// (where each artifact is and how it is checked)
pub(crate) mod plan;

// 3. fingerprint — each image's input fingerprint, from the resolved inputs alone.
pub(crate) mod fingerprint;

// 4. fetch / verify / cache — getting the artifacts onto disk, verified as they stream.
pub(crate) mod fetch;
// (the hash functions every hashing site uses: one implementation, measured)
pub(crate) mod digest;
// (size caps and the redirect policy for everything read over HTTP)
pub(crate) mod http;
pub(crate) mod verify;
// (release signatures against the project's KEYS file)
pub mod signature;
// (content-addressed store, locks)
pub(crate) mod cache;

// 5. assemble — from verified archives to a prepared Spark tree.
pub(crate) mod inspect;
// (safe extraction; the S3A jars matching the bundled Hadoop)
pub(crate) mod extract;
pub(crate) mod maven;
// (certificates and anchored patches feed the assembly)
pub mod assemble;
pub(crate) mod certs;
pub(crate) mod patch;
// (the patched tree on disk, and the marker that says imgforge made it)
pub(crate) mod outdir;
pub(crate) mod prepare;

// 6. context — what each image is built from.
pub(crate) mod images;
// (the hive-metastore context is assembled on disk, like the Spark tree)
pub(crate) mod metastore;
// (a deterministic streamed build context)
pub mod context;

// 7. docker — the Engine API, and the builds in dependency order.
pub(crate) mod build;
// (independent builds and pushes run at once, each to its end)
pub mod docker;
pub(crate) mod lines;
// (base images pulled as `docker build` would, with their own registry's credentials)
pub(crate) mod pull;

// 8. registry / push — credentials, the engine's push, digests read back over the Registry
// API, and the Spark operator manifests pinned to them.
pub(crate) mod credentials;
pub(crate) mod digests;
pub(crate) mod operator;
pub(crate) mod publish;
pub(crate) mod push;
pub mod registry;

// Scheduled rebuilds: what a build resolved, pinned for review; newer upstream releases.
pub(crate) mod lock;
pub(crate) mod outdated;

// The user's view: one thin command per subcommand, the top-level error with its hints,
// results and progress, signals and what a dead run left behind.
pub mod commands;
pub mod error;
pub mod interrupt;
pub mod leftovers;
pub mod output;
pub mod progress;
