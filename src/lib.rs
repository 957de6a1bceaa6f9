//! imgforge: a native Spark image and artifact builder.
//!
//! The modules are listed in pipeline order (rustfmt would sort one block alphabetically,
//! so each stage is its own block).

// The image-reference grammar everything below names images with (a leaf).
pub mod reference;

// What the user asked for.
pub mod cli;
pub mod config;

// What a build needs, and getting it onto disk, verified.
pub mod plan;
// (fetch streams into the cache and verifies while it does)
pub mod fetch;
// (size caps and the redirect policy for everything read over HTTP)
pub mod http;
pub mod verify;
// (release signatures against the project's KEYS file)
pub mod signature;
// (every file write: temp, fsync, rename, fsync the directory)
pub mod persist;
// (content-addressed store, locks)
pub mod cache;

// From verified archives to a prepared Spark tree.
pub mod inspect;
// (safe extraction, then jars, conf files, certificates and patches)
pub mod extract;
pub mod maven;
// (certificates and anchored patches feed the assembly)
pub mod certs;
pub mod patch;
// (the assembly itself)
pub mod assemble;

// From prepared trees to images.
pub mod images;
// (the hive-metastore context is assembled on disk, like the Spark tree)
pub mod metastore;
// (a deterministic streamed build context, then the Engine API)
pub mod context;
pub mod docker;
// (pushing: credentials, the engine's push, digests read back over the Registry API)
pub mod credentials;
pub mod push;
pub mod registry;
// (what was pushed, by digest, and the Spark operator manifests pinned to it)
pub mod digests;
pub mod operator;

// Scheduled rebuilds: what a build resolved, pinned for review.
pub mod lock;
pub mod outdated;

// The pipeline the commands drive, each fact computed once and flowing one way:
// Config → Resolved → PreparedTree → BuildContext → BuiltImage → PushedImage.
// (every fact a run needs: artifacts, listing facts, S3A jars, certificates, patches,
// base images, names)
pub mod resolve;
// (each image's input fingerprint, from the resolved inputs alone)
pub mod fingerprint;
// (the patched Spark tree on disk)
pub mod prepare;
// (images through the Engine API; `--if-changed`; `--push`)
pub mod build;
// (pushing built images, the spark image's digest, newer base tags)
pub mod publish;

// The commands that drive the stages, and how results reach the user.
pub mod commands;
// (signals end a run like Ctrl-C; what a dead run left behind is swept by the next)
pub mod interrupt;
pub mod leftovers;
// (where a prepared tree may go, and the marker that says imgforge made it)
pub mod outdir;
// (the reporter trait and its terminal and plain implementations)
pub mod error;
pub mod output;
pub mod progress;
// (credentials in URLs and other programs' output, masked on every way out)
pub mod redact;
