//! The store's index: names ("name:tag") -> image ids, and one record per image.
//! Written atomically (temp file, fsync, rename, fsync of the directory) under the store lock;
//! read without a lock (a rename is atomic, so readers see the old or the new index).

use super::oci::LayerRecord;
use super::{ImageConfig, ImageError, UnpackStats};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

pub const INDEX_VERSION: u32 = 1;

/// Everything the store knows about one image.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct ImageRecord {
    pub id: String,
    /// "tarball", "oci-layout" or "oci-archive".
    pub source: String,
    /// sha256 of the tarball, or of the OCI manifest.
    pub digest: String,
    /// Unix seconds.
    pub created: u64,
    /// Bytes of regular files in the rootfs.
    pub size: u64,
    pub keep_setid: bool,
    pub config: ImageConfig,
    pub layers: Vec<LayerRecord>,
    pub manifest_digest: Option<String>,
    pub config_digest: Option<String>,
    pub stats: UnpackStats,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Index {
    pub version: u32,
    pub names: BTreeMap<String, String>,
    pub images: BTreeMap<String, ImageRecord>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            version: INDEX_VERSION,
            names: BTreeMap::new(),
            images: BTreeMap::new(),
        }
    }
}

impl Index {
    pub fn load(path: &Path) -> Result<Index, ImageError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(e) => return Err(ImageError::io(format!("reading {}", path.display()), e)),
        };
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| ImageError::Index {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        if index.version != INDEX_VERSION {
            return Err(ImageError::Index {
                path: path.display().to_string(),
                reason: format!("unknown version {}", index.version),
            });
        }
        Ok(index)
    }

    /// Names pointing at `id`.
    pub fn names_of(&self, id: &str) -> Vec<String> {
        self.names
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Writes the index to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), ImageError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(format!(".index.json.{}", std::process::id()));
        let ctx = |what: &str| format!("{what} {}", tmp.display());
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| ImageError::Index {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut f = File::create(&tmp).map_err(|e| ImageError::io(ctx("creating"), e))?;
        f.write_all(&bytes)
            .and_then(|_| f.sync_all())
            .map_err(|e| ImageError::io(ctx("writing"), e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| ImageError::io(ctx("renaming"), e))?;
        sync_dir(dir)
    }
}

/// fsyncs a directory (makes a rename in it durable).
pub fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ImageError::io(format!("syncing {}", dir.display()), e))
}
