//! imgforge's integration tests: one binary, one module per concern, each driving the real
//! `imgforge` binary or library stages against real services on loopback.

mod support;

mod metastore_launch;
mod cache;
mod config;
mod fetch;
mod helpers;
mod docker_engine;
mod mirror_selftest;
