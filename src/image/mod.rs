//! The local image store: content-addressed, unpacked root filesystems that cells run over.
//!
//! Users bring images as rootfs tarballs (`.tar`, `.tar.gz`), OCI image layout directories, or
//! OCI layouts packed as a tar (`oci-archive`). Every archive, whatever its source, goes through
//! one safe extractor ([`unpack`]): attacker-supplied archives are unpacked as root, so every
//! path is resolved beneath the target with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`,
//! nothing is created through a symlink, no device nodes appear, and size/entry/ratio limits
//! are enforced while streaming.
//!
//! Layout of the store under `<state_dir>/images/`:
//! ```text
//! index.json            names ("name:tag") -> image ids, and one record per image (atomic writes)
//! .lock                 flock serialising index updates
//! blobs/sha256/<hex>    OCI manifests and configs of imported images
//! by-id/<id>/rootfs     the unpacked root filesystem a cell bind-mounts read-only as `/`
//! by-id/<id>/lease.lock shared flock held while a run uses the image
//! tmp/<x>, tmp/<x>.lock imports (and removals) in progress; stale ones are swept
//! ```

mod config;
mod defaults;
mod error;
mod fsutil;
mod index;
mod limits;
mod lock;
mod meter;
mod names;
pub mod oci;
mod paths;
mod progress;
mod store;
mod stream;
pub mod tarball;
pub mod unpack;

pub use config::{image_user, ImageConfig};
pub use defaults::{merge_env, Defaults, Given, NoCommand};
pub use error::{ImageError, LimitExceeded};
pub use limits::UnpackLimits;
pub use meter::Meter;
pub use store::{ImageInfo, ImageLease, ImageStore, ImportOptions, PruneReport, ResolvedImage};
pub use unpack::{UnpackOptions, UnpackStats};

use std::path::PathBuf;

/// The state directory: `$SANDCELL_STATE_DIR`, else `/var/lib/sandcell`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os("SANDCELL_STATE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/sandcell"))
}
