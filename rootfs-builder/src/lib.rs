//! rootfs-builder: builds the OCI images sandcell ships from data recipes
//! (`recipes/*.toml`) by copying host binaries with their shared-library closure.
//!
//! Output is deterministic: sorted tar entries, uid/gid 0, one fixed mtime
//! (`SOURCE_DATE_EPOCH` or 0), fixed gzip settings and sorted JSON, so building the same
//! recipe on the same host twice gives the same manifest digest.

pub mod build;
pub mod closure;
pub mod command;
pub mod error;
pub mod host;
pub mod layer;
pub mod oci;
pub mod pyc;
pub mod recipe;
pub mod skeleton;
pub mod tree;

pub use build::{build, BuildOptions, BuildReport};
pub use error::BuildError;
pub use layer::Compression;
pub use recipe::{load, Recipe};
