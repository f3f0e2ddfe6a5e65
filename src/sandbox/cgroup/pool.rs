//! An optional pool of finished, empty cell cgroups that are reused (v1 only).
//!
//! Trade-offs:
//! * v1 saves the mkdir/rmdir of 5 hierarchies per run. A reused cell is activated like a
//!   pre-started one ([`CellCgroup::activate`]): limits rewritten where they differ (absent
//!   ones back to "no limit"), `memory.max_usage_in_bytes`, `memory.failcnt` and
//!   `cpuacct.usage` reset, the `oom_kill` counter (not resettable) read relative to a
//!   baseline taken then.
//! * What a finished cell still has charged (`/bin/true` runs, `examples/cgroup_bench.rs`):
//!   kernel memory of the exited processes that the kernel frees later by itself (deferred
//!   frees such as RCU callbacks; 50–800 KiB, down to one page 2 s later), up to 64 pages
//!   per CPU the kernel keeps precharged (not memory in use), and sometimes up to a few
//!   hundred KiB of page cache the run was first to read (it stays cached, charged to the
//!   cell).
//! * No `memory.force_empty` when parking. Measured per cell (1000 cells, load ≈ 1): park +
//!   force_empty + reissue 0.38 ms of CPU in the caller plus 0.25 ms in kernel threads (it
//!   drains the LRU caches of every CPU, then retries reclaim while the deferred frees and
//!   the precharge keep the usage above 0); park + reissue without it 0.09 + 0.04 ms;
//!   mkdir and rmdir 0.48 + 0.18 ms. force_empty reclaimed nothing the kernel would not
//!   free anyway, except page cache that other cells may share. Instead:
//!   - A cell that holds more than [`LEFTOVER_LIMIT`] when it finishes (pages on its LRU
//!     lists plus kernel memory; the precharge does not count) is removed, not parked, like
//!     a cell without a pool: a run that read megabytes of files first leaves them cached,
//!     charged to the removed cgroup, and the next run gets a clean cell. One read of
//!     `memory.numa_stat` and one of `memory.kmem.usage_in_bytes` per park (~4 µs).
//!   - The peak memory of a reused cell is reported relative to what it held when it was
//!     reissued (see [`usage`](super::usage)), so what earlier runs left is not in it. What
//!     is left (< 1 MiB) still counts against the next run's limit until the kernel frees or
//!     reclaims it; if that happens during the run, its peak is under-reported by up to as
//!     much. Without the subtraction it would be over-reported by as much.
//! * v2 keeps fresh directories: `memory.peak` cannot be reset before kernel 6.12, and the
//!   peak of an earlier run cannot be subtracted away. (6.12's per-fd reset, which
//!   `activate` uses, would allow a v2 pool; not done.) `with_pool` is a no-op there.
//! * Parked cells are named after the process that created them, so if the daemon dies
//!   they are cleaned by the next start's `cleanup_stale` like any other cell.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::counters::CounterFiles;
use super::usage::{self, Baseline};
use super::{fsio, CellCgroup, CellDirs, CgroupError, CgroupLimits, Coverage, HostShared};

/// A finished cell that holds more than this is removed, not parked (see the module docs):
/// it bounds what an earlier run can add to a later run's usage and peak.
pub(super) const LEFTOVER_LIMIT: u64 = 1 << 20;

/// A parked cell: everything but the link to the host.
#[derive(Debug)]
struct Parked {
    name: String,
    dirs: CellDirs,
    join: Vec<OwnedFd>,
    dir_fd: Option<OwnedFd>,
    files: CounterFiles,
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
            files: parked.files,
            baseline: Baseline::default(),
            limits: Some(parked.limits),
            shared: Arc::clone(shared),
            coverage: Coverage::All,
            done: false,
        })
    }

    /// Parks an emptied cell if it is reusable and there is room (true); false: the caller
    /// removes it. Reusable: complete, its last activation worked, and at most
    /// [`LEFTOVER_LIMIT`] bytes still charged to it.
    pub(super) fn park(&self, cell: &mut CellCgroup) -> bool {
        if cell.limits.is_none()
            || cell.coverage != Coverage::All
            || usage::memory_held(&cell.files).is_some_and(|b| b > LEFTOVER_LIMIT)
        {
            return false;
        }
        let mut parked = self.lock();
        if parked.len() >= self.capacity || self.closed.load(Ordering::Acquire) {
            return false;
        }
        let Some(limits) = cell.limits.take() else {
            return false;
        };
        parked.push(Parked {
            name: std::mem::take(&mut cell.name),
            dirs: cell.dirs.clone(),
            join: std::mem::take(&mut cell.join),
            dir_fd: cell.dir_fd.take(),
            files: std::mem::take(&mut cell.files),
            limits,
        });
        true
    }

    /// Removes every parked cell (the host is going away).
    pub(super) fn drain(&self) {
        self.closed.store(true, Ordering::Release);
        for mut cell in self.lock().drain(..) {
            cell.files.close();
            for dir in cell.dirs.all() {
                if let Err(e) = fsio::rmdir_tree(dir) {
                    tracing::warn!("pooled cgroup {}: {e}", cell.name);
                }
            }
        }
    }
}

impl CellCgroup {
    /// Makes a parked cell ready for a new run with `limits`: the bytes still charged to it
    /// become the memory baseline, then it is activated like a pre-started cell.
    pub(super) fn reissue(&mut self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        self.baseline = Baseline {
            memory: usage::memory_held(&self.files).unwrap_or(0),
            ..Baseline::default()
        };
        self.activate(limits)
    }
}
