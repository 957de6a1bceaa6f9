//! imgforge: a native Spark image and artifact builder.
//!
//! The modules are listed in pipeline order: the command line and configuration come
//! first, then the artifacts a build needs, how they are fetched, verified and cached,
//! how the Spark tree is assembled, and finally how progress and results reach the user.

pub mod verify;
pub mod certs;
pub mod extract;
pub mod maven;
pub mod patch;
