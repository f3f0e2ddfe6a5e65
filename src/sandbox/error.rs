//! Errors of the sandbox layer.

use super::cgroup::CgroupError;
use super::seccomp::SeccompError;

/// Why a cell could not be set up or supervised (verdict XX).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    /// A limit was asked for that this host cannot enforce (and degrading was not allowed).
    #[error("this host cannot enforce {0} (pass --allow-degraded to run without it)")]
    Unenforceable(String),
    /// The rootfs is unusable.
    #[error("rootfs {path}: {message}")]
    Rootfs { path: String, message: String },
    /// Preparing the run in the parent failed.
    #[error("{what}: {source}")]
    Prepare {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A setup step inside the child failed (the step names what, with errno).
    #[error("{step}: {source}")]
    Child {
        step: String,
        #[source]
        source: std::io::Error,
    },
}

impl SandboxError {
    pub(crate) fn prepare(what: impl Into<String>, source: std::io::Error) -> Self {
        SandboxError::Prepare {
            what: what.into(),
            source,
        }
    }
}
