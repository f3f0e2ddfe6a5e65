//! An optional pool of finished, empty cell cgroups that are reset and reused (v1 only).
//!
//! Trade-offs:
//! * v1 saves the mkdir/rmdir of 5 hierarchies per run. On reuse the limits are rewritten
//!   (absent ones back to "no limit"), `memory.max_usage_in_bytes`, `memory.failcnt` and
//!   `cpuacct.usage` are reset to 0, and the `oom_kill` counter (not resettable) is read
//!   relative to a baseline taken at reissue.
//! * Page cache charged by an earlier run stays charged to the reused cell until reclaimed;
//!   `memory.force_empty` is written when a cell is parked so the next run starts near 0
//!   (best effort: the kernel may keep a few pages).
//! * v2 keeps fresh directories: memory.peak cannot be reset before kernel 6.12, and a peak
//!   cannot be read "relative to a baseline". `with_pool` is a no-op there.
//! * Parked cells are named after the process that created them, so if the daemon dies
//!   they are cleaned by the next start's `cleanup_stale` like any other cell.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::limits::{self, Written};
use super::usage::Baseline;
use super::{fsio, CellCgroup, CellDirs, CgroupError, CgroupLimits, HostShared};

/// A parked cell: everything but the link to the host.
#[derive(Debug)]
struct Parked {
    name: String,
    dirs: CellDirs,
    join: Vec<OwnedFd>,
    dir_fd: Option<OwnedFd>,
    limits: CgroupLimits,
}

#[derive(Debug)]
pub(super) struct Pool {
    capacity: usize,
    parked: Mutex<Vec<Parked>>,
    /// Set when the host is dropped: cells still running then are removed, not parked.
    closed: AtomicBool,
}

impl Pool {
    pub(super) fn new(capacity: usize) -> Pool {
        Pool {
            capacity,
            parked: Mutex::new(Vec::with_capacity(capacity)),
            closed: AtomicBool::new(false),
        }
    }

    pub(super) fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Parked>> {
        // A panic while holding the lock leaves a valid Vec: keep using it.
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A parked cell, if any, ready for [`CellCgroup::reissue`].
    pub(super) fn take(&self, shared: &Arc<HostShared>) -> Option<CellCgroup> {
        let parked = self.lock().pop()?;
        Some(CellCgroup {
            name: parked.name,
            dirs: parked.dirs,
            join: parked.join,
            dir_fd: parked.dir_fd,
            baseline: Baseline::default(),
            limits: parked.limits,
            shared: Arc::clone(shared),
            done: false,
        })
    }

    /// Parks an emptied cell if there is room: `Some(Ok(()))`. `None`: the caller removes it.
    pub(super) fn park(&self, cell: &mut CellCgroup) -> Option<Result<(), CgroupError>> {
        let mut parked = self.lock();
        if parked.len() >= self.capacity || self.closed.load(Ordering::Acquire) {
            return None;
        }
        if let Some(dir) = cell.dirs.dir_of("memory") {
            let _ = fsio::write(&dir.join("memory.force_empty"), "0");
        }
        parked.push(Parked {
            name: std::mem::take(&mut cell.name),
            dirs: cell.dirs.clone(),
            join: std::mem::take(&mut cell.join),
            dir_fd: cell.dir_fd.take(),
            limits: std::mem::take(&mut cell.limits),
        });
        Some(Ok(()))
    }

    /// Removes every parked cell (the host is going away).
    pub(super) fn drain(&self) {
        self.closed.store(true, Ordering::Release);
        for cell in self.lock().drain(..) {
            for dir in cell.dirs.all() {
                if let Err(e) = fsio::rmdir_tree(dir) {
                    tracing::warn!("pooled cgroup {}: {e}", cell.name);
                }
            }
        }
    }
}

impl CellCgroup {
    /// Resets a pooled cell's counters and writes `limits` (absent ones back to no limit).
    pub(super) fn reissue(&mut self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        if let Some(dir) = self.dirs.dir_of("memory") {
            fsio::write(&dir.join("memory.max_usage_in_bytes"), "0")?;
            fsio::write(&dir.join("memory.failcnt"), "0")?;
        }
        if let Some(dir) = self.dirs.dir_of("cpuacct") {
            fsio::write(&dir.join("cpuacct.usage"), "0")?;
        }
        limits::apply(
            &self.dirs,
            limits,
            Written::Known(&self.limits),
            &self.shared.features,
        )?;
        self.limits = limits.clone();
        self.baseline = self.read_baseline();
        Ok(())
    }
}
