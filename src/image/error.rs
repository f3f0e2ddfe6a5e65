//! Errors of the image layer.

use std::io;

/// A limit of [`UnpackLimits`](super::UnpackLimits) that an archive exceeded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitExceeded {
    #[error("archive expands past the total size limit of {limit} bytes")]
    TotalSize { limit: u64 },
    #[error("archive has more than {limit} entries")]
    Entries { limit: u64 },
    #[error("compression ratio above {limit}:1 ({decompressed} bytes from {compressed}): refusing a likely decompression bomb")]
    Ratio {
        limit: u64,
        decompressed: u64,
        compressed: u64,
    },
    #[error("path component longer than {limit} bytes: {path}")]
    NameLength { limit: usize, path: String },
    #[error("path longer than {limit} bytes: {path}")]
    PathLength { limit: usize, path: String },
    #[error("path deeper than {limit} components: {path}")]
    PathDepth { limit: usize, path: String },
}

/// Everything that can go wrong importing, resolving or removing an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    #[error("import limit exceeded: {0}")]
    Limit(#[from] LimitExceeded),
    #[error("unsafe archive entry {path:?}: {reason}")]
    UnsafePath { path: String, reason: String },
    #[error("hard link {path:?} -> {target:?}: {reason}")]
    HardLink {
        path: String,
        target: String,
        reason: String,
    },
    #[error("malformed archive: {0}")]
    Archive(String),
    #[error("{what}: digest mismatch: descriptor says {expected}, content is {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{what}: size mismatch: descriptor says {expected} bytes, content has {actual}")]
    SizeMismatch {
        what: String,
        expected: u64,
        actual: u64,
    },
    #[error("invalid OCI layout: {0}")]
    Oci(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("no such image: {0}")]
    NotFound(String),
    #[error("image reference {0:?} is ambiguous (matches several image ids)")]
    Ambiguous(String),
    #[error("image {0} is in use by a running cell; try again when the run ends")]
    InUse(String),
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("image index {path}: {reason}")]
    Index { path: String, reason: String },
}

impl ImageError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> ImageError {
        ImageError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn sys(context: impl Into<String>, source: nix::Error) -> ImageError {
        ImageError::Sys {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn unsafe_path(path: &[u8], reason: impl Into<String>) -> ImageError {
        ImageError::UnsafePath {
            path: String::from_utf8_lossy(path).into_owned(),
            reason: reason.into(),
        }
    }

    /// True for errors the user caused with a bad argument (the CLI exits 2 for these).
    pub fn is_usage(&self) -> bool {
        matches!(self, ImageError::InvalidName { .. })
    }
}
