//! imgforge: a native Spark image and artifact builder.
//!
//! The modules are listed in pipeline order: the command line and configuration come
//! first, then the artifacts a build needs, how they are fetched, verified and cached,
//! how the Spark tree is assembled, and finally how progress and results reach the user.

pub mod assemble;
pub mod cache;
pub mod certs;
pub mod cli;
pub mod commands;
pub mod config;
pub mod context;
pub mod docker;
pub mod error;
pub mod extract;
pub mod fetch;
pub mod images;
pub mod inspect;
pub mod maven;
pub mod output;
pub mod patch;
pub mod plan;
pub mod progress;
pub mod verify;
