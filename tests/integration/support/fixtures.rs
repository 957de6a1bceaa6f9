//! Fixture generators: release archives, checksum files and mirror trees, all deterministic.
//!
//! Everything is re-exported here, so tests write `fixtures::spark_dist(…)`,
//! `fixtures::gpg_print_md_sha512(…)` or `fixtures::default_mirrors(…)`.

pub mod archives;
pub mod checksums;
pub mod families;
pub mod trees;

pub use archives::*;
pub use checksums::*;
pub use families::*;
pub use trees::*;
