//! Reading what a cell used: CPU time, peak memory, OOM kills.
//!
//! Counters that cannot be reset (v1 `oom_kill`, v2 `usage_usec`, v2 `oom_kill`) are read
//! relative to a baseline taken when the cell was (re)issued, so pooled cells report only
//! their current run.

use std::time::Duration;

use super::setup::CgroupFeatures;
use super::{fsio, CellDirs, CgroupMode};

/// Raw counter values a cell's readings are relative to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Baseline {
    /// Nanoseconds of CPU time.
    pub cpu_ns: u64,
    pub oom_kills: u64,
}

/// Total CPU time (user + system) of the cell's processes, in nanoseconds.
pub(super) fn cpu_ns(dirs: &CellDirs) -> Option<u64> {
    match dirs.mode {
        CgroupMode::V2 => {
            let text = fsio::read(&dirs.main().join("cpu.stat")).ok()?;
            fsio::keyed(&text, "usage_usec").map(|us| us.saturating_mul(1_000))
        }
        CgroupMode::V1 => fsio::read_u64(&dirs.dir_of("cpuacct")?.join("cpuacct.usage")).ok(),
    }
}

pub(super) fn cpu_usage(dirs: &CellDirs, base: &Baseline) -> Option<Duration> {
    cpu_ns(dirs).map(|ns| Duration::from_nanos(ns.saturating_sub(base.cpu_ns)))
}

/// Peak memory use in bytes: v2 `memory.peak` (kernel >= 5.19), v1
/// `memory.max_usage_in_bytes` (reset to 0 when a pooled cell is reissued).
pub(super) fn memory_peak(dirs: &CellDirs, features: &CgroupFeatures) -> Option<u64> {
    if !features.memory_peak {
        return None;
    }
    let dir = dirs.dir_of("memory")?;
    let file = match dirs.mode {
        CgroupMode::V2 => "memory.peak",
        CgroupMode::V1 => "memory.max_usage_in_bytes",
    };
    fsio::read_u64(&dir.join(file)).ok()
}

/// The raw OOM-kill counter (see [`oom_kills`]).
pub(super) fn oom_kills_raw(dirs: &CellDirs, features: &CgroupFeatures) -> u64 {
    let Some(dir) = dirs.dir_of("memory") else {
        return 0;
    };
    match dirs.mode {
        CgroupMode::V2 => fsio::read(&dir.join("memory.events"))
            .ok()
            .and_then(|t| fsio::keyed(&t, "oom_kill"))
            .unwrap_or(0),
        CgroupMode::V1 if features.oom_kill_counter => fsio::read(&dir.join("memory.oom_control"))
            .ok()
            .and_then(|t| fsio::keyed(&t, "oom_kill"))
            .unwrap_or(0),
        // Kernels before 4.13 have no v1 oom_kill counter: `memory.failcnt` > 0 says the
        // limit was hit (reclaim may have coped). Counted as one OOM kill; the caller must
        // only call it MLE when the process also died by SIGKILL.
        CgroupMode::V1 => fsio::read_u64(&dir.join("memory.failcnt"))
            .map(|n| u64::from(n > 0))
            .unwrap_or(0),
    }
}

pub(super) fn oom_kills(dirs: &CellDirs, features: &CgroupFeatures, base: &Baseline) -> u64 {
    oom_kills_raw(dirs, features).saturating_sub(base.oom_kills)
}
