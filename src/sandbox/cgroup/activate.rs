//! Activating a cell for a run: the run's limits, counters reset, baselines taken, so that
//! the readings describe the run from now on. A reused (pooled) cell is activated when it is
//! reissued; a pre-started cell (warm path: its PID 1 already lives in the cgroup and did its
//! setup there) is activated by the launcher when the request arrives.
//!
//! Cost, on the request's critical path: v1 three writes (`memory.max_usage_in_bytes`,
//! `memory.failcnt`, `cpuacct.usage`) and one read (`memory.oom_control`); v2 two reads
//! (`cpu.stat`, `memory.events`) and, on kernels >= 6.12, one write (`memory.peak`). All on
//! kept-open files ([`counters`](super::counters)). Plus one write per limit that differs
//! from what the cell holds (two for a v1 memory limit with swap accounting).

use super::counters::Counter;
use super::limits::{self, Written};
use super::{usage, CellCgroup, CgroupError, CgroupLimits, CgroupMode, Coverage};

impl CellCgroup {
    /// Prepares the cell for a run that starts now, from the parent, also while processes
    /// live in it (a pre-started cell's PID 1): writes `limits` (absent ones back to "no
    /// limit"), resets what can be reset (v1 `memory.max_usage_in_bytes`, `memory.failcnt`,
    /// `cpuacct.usage`; v2 `memory.peak` per fd on kernels >= 6.12) and takes baselines for
    /// the rest (v2 CPU time, OOM kills on both). Afterwards [`cpu_usage`](Self::cpu_usage),
    /// [`oom_kills`](Self::oom_kills) and [`memory_peak`](Self::memory_peak) describe only
    /// what happens from now on; on v2 before 6.12 the peak still covers what the cell's
    /// processes did before (the warm setup), since `memory.peak` cannot be reset there.
    ///
    /// The counters are restarted before the limits are written: an OOM kill caused by a
    /// limit below what the cell already uses counts for this run. After an error the
    /// cell's state is unknown: it is not reused, and a retry rewrites every limit.
    pub fn activate(&mut self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        limits::validate(limits)?;
        if !self.covers(limits) {
            return Err(CgroupError::InvalidLimit(format!(
                "cell {} was made for fixed limits and has no directory for {limits:?}",
                self.name
            )));
        }
        // None (unknown) until everything below has worked.
        let before = self.limits.take();
        self.restart_counters()?;
        let written = before.as_ref().map_or(Written::Unknown, Written::Known);
        limits::apply(&self.dirs, limits, written, &self.shared.features)?;
        self.limits = Some(limits.clone());
        Ok(())
    }

    /// Whether the cell has a directory in every hierarchy `limits` use.
    fn covers(&self, limits: &CgroupLimits) -> bool {
        self.coverage == Coverage::All
            || self
                .shared
                .layout
                .hierarchies
                .iter()
                .filter(|h| Coverage::Fixed.includes(self.dirs.mode, &h.controllers, limits))
                .all(|h| {
                    self.dirs
                        .all()
                        .any(|d| d.parent() == Some(h.cells.as_path()))
                })
    }

    /// Resets the resettable counters and takes baselines of the others (the memory
    /// baseline, taken when the cell is issued, stays).
    fn restart_counters(&mut self) -> Result<(), CgroupError> {
        let files = &self.files;
        let features = &self.shared.features;
        let mode = self.dirs.mode;
        match mode {
            CgroupMode::V1 => {
                for counter in [Counter::MemoryPeak, Counter::MemoryFailcnt, Counter::Cpu] {
                    if files.has(counter) {
                        // Writing 0 resets max_usage_in_bytes to the current usage.
                        files.write(counter, "0")?;
                    }
                }
            }
            CgroupMode::V2 => {
                if self.shared.peak_resettable && files.has(Counter::MemoryPeak) {
                    // Resets the peak read through this fd to the current usage.
                    files.write(Counter::MemoryPeak, "reset")?;
                }
            }
        }
        self.baseline.cpu_ns = match mode {
            CgroupMode::V1 => 0,
            CgroupMode::V2 => usage::cpu_ns(mode, files).unwrap_or(0),
        };
        self.baseline.oom_kills = match mode {
            // The failcnt stand-in was just reset.
            CgroupMode::V1 if !features.oom_kill_counter => 0,
            _ => usage::oom_kills_raw(mode, files, features),
        };
        Ok(())
    }
}
