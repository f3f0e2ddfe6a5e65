//! Cgroups of cells: detect v1/v2 once, create one cgroup per cell beneath our own cgroup,
//! set limits, read usage, kill everything in it, and always remove it.
//!
//! INTERFACE CONTRACT (used by the launcher; keep these signatures):
//! - `CgroupHost::detect()` once per process (the Launcher holds it).
//! - `CgroupHost::create_cell(&self, &CgroupLimits) -> CellCgroup` before the clone.
//! - `CellCgroup::join_fds()` — open `cgroup.procs` files (O_WRONLY|O_CLOEXEC) that the
//!   child writes "0" into, joining every hierarchy, before it execs anything.
//! - `CellCgroup::clone_into_fd()` — v2 only: a dir fd for clone3 CLONE_INTO_CGROUP.
//! - `cpu_usage`, `memory_peak`, `oom_kills` while/after running; `kill_all` on timeout;
//!   `remove` (also done on Drop) at the end.

use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

/// Errors of the cgroup layer.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no usable cgroup hierarchy: {0}")]
    Unsupported(String),
    #[error("cgroup {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Which cgroup layout this host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupMode {
    V1,
    V2,
}

/// The limits a cgroup enforces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CgroupLimits {
    pub memory: Option<u64>,
    pub pids: Option<u64>,
    pub cpus: Option<f64>,
}

/// What this host's cgroups give us, detected once.
#[derive(Debug)]
pub struct CgroupHost {
    mode: CgroupMode,
}

impl CgroupHost {
    pub fn detect() -> Result<CgroupHost, CgroupError> {
        Err(CgroupError::Unsupported("not implemented".into()))
    }
    pub fn mode(&self) -> CgroupMode {
        self.mode
    }
    /// Names of controllers usable for cells: "memory", "pids", "cpu", "cpuacct", "freezer", "kill".
    pub fn controllers(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Which of `limits` this host cannot enforce (e.g. "memory", "pids", "cpus", "cpu_time").
    pub fn unenforceable(&self, _limits: &CgroupLimits, _cpu_time: bool) -> Vec<String> {
        Vec::new()
    }
    pub fn create_cell(&self, _limits: &CgroupLimits) -> Result<CellCgroup, CgroupError> {
        Err(CgroupError::Unsupported("not implemented".into()))
    }
}

/// One cell's cgroup (one directory per hierarchy on v1). Removed on drop.
#[derive(Debug)]
pub struct CellCgroup {
    join: Vec<OwnedFd>,
}

impl CellCgroup {
    pub fn join_fds(&self) -> &[OwnedFd] {
        &self.join
    }
    pub fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
    pub fn cpu_usage(&self) -> Option<Duration> {
        None
    }
    pub fn memory_peak(&self) -> Option<u64> {
        None
    }
    pub fn oom_kills(&self) -> u64 {
        0
    }
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        Ok(())
    }
    pub fn remove(self) -> Result<(), CgroupError> {
        Ok(())
    }
}
