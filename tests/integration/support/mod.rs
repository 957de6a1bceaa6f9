//! What every integration test stands on: a real HTTP mirror on loopback with fault injection
//! ([`server`]), deterministic release fixtures and mirror trees ([`fixtures`]), and a test
//! environment that runs the real `imgforge` binary against them ([`env`]).
//!
//! Each test module uses a subset, hence `dead_code` is allowed for the whole support tree.
#![allow(dead_code)]

pub mod conf_probe;
pub mod containers;
pub mod docker;
pub mod env;
pub mod fixtures;
pub mod images;
pub mod postgres;
pub mod prepared;
pub mod registry;
pub mod remote_engine;
pub mod server;
pub mod signing;

// Re-exported for the test modules; each uses a subset.
#[allow(unused_imports)]
pub use env::{
    TestEnv, assert_exit_code, assert_stderr_contains, assert_success, stderr_text, stdout_text,
};
#[allow(unused_imports)]
pub use server::{Fault, MirrorServer, RequestRecord};
