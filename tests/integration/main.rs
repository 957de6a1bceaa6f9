//! imgforge's integration tests: one binary, one module per concern, each driving the real
//! `imgforge` binary or library stages against real services on loopback.

mod helpers;
mod support;

// The loopback mirror the download tests stand on.
mod mirror_selftest;

// Foundation: configuration, downloads, the cache.
mod config;
// (every fault a download can meet)
mod cache;
mod fetch;
// (every network input bounded: sizes, speed, deadlines, redirects)
mod network_limits;
// (credentials in mirror URLs and from credential helpers never reach any output)
mod secrets;
// (verify-on-use, a tampered index, bombs, truthful errors, setting ranges)
mod safety_cache;
// (release signatures, checked against KEYS files and signatures the real gpg made)
mod signatures;
// (the same checks through the binary, on every Apache tarball it fetches)
mod fetch_signatures;

// A prepared Spark tree: each layout family, certificates, hostile tarballs.
mod prepare;
mod prepare_certs;
mod prepare_unsafe;
// (--out replaces only what imgforge made; signals and killed runs leave nothing behind)
mod interrupted;
mod output_dirs;

// Scheduled rebuilds.
mod outdated;
// (--if-changed on a real engine and registry: nothing done twice, every change rebuilt)
mod scheduled;
// (imgforge.lock and build --locked)
mod lock;

// Image stages on a real Docker engine and a real PostgreSQL.
mod docker_engine;
// (base images pulled as docker build pulls them, with their own registry's credentials)
mod pull;
// (the metastore's launch script against PostgreSQL)
mod metastore_launch;
// `imgforge build`: the three images, proven by running them; then every bad input.
mod build_errors;
mod images;
// (a plain build skips what the engine already holds with the same inputs; --force rebuilds)
mod skip_unchanged;
// (spark and hive-metastore built at once, each line to its end; pushes at once, in order)
mod parallel_builds;
// (issue 10: settings, CA imports and users where Spark runs)
mod images_conf;
mod images_metastore;
// (real Spark 3.5 jars in the images: a job, its settings read back, the history server)
mod real_spark;
// (pushing to real registries: credentials, TLS, digests, faults, remote engines)
mod push;
// (the Spark operator manifests, pinned to what was pushed)
mod manifest;

// CI: the imgforge image itself, and the example pipelines run against a real TLS engine.
mod ci_image;
// (each example pipeline's script lines, run with the platform's variables)
mod ci_examples;
