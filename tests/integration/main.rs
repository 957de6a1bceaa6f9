//! imgforge's integration tests: one binary, one module per concern, each driving the real
//! `imgforge` binary or library stages against real services on loopback.

mod support;

mod mirror_selftest;
mod prepare;
mod prepare_certs;
mod prepare_unsafe;
