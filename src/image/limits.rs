//! Limits that bound what one import may unpack.

use serde::{Deserialize, Serialize};

/// Bounds enforced while an archive streams through the extractor. Exceeding any of them aborts
/// the import with [`ImageError::Limit`](super::ImageError::Limit).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Total bytes: both the decompressed archive stream and the file contents written.
    pub max_total_bytes: u64,
    /// Archive entries (files, directories, links, whiteouts, skipped specials) in all layers.
    pub max_entries: u64,
    /// Bytes in one path component.
    pub max_name_len: usize,
    /// Bytes in one full path.
    pub max_path_len: usize,
    /// Components in one path.
    pub max_path_depth: usize,
    /// Decompressed / compressed bytes; 0 disables the check.
    pub max_compression_ratio: u64,
    /// The ratio is only checked once this many decompressed bytes were read (small archives
    /// of zeros legitimately compress very well).
    pub ratio_grace_bytes: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits {
            max_total_bytes: 4 << 30,
            max_entries: 1_000_000,
            max_name_len: 255,
            max_path_len: 4096,
            max_path_depth: 128,
            max_compression_ratio: 100,
            ratio_grace_bytes: 64 << 20,
        }
    }
}
