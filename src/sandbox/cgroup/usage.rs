//! Reading what a cell used: CPU time, peak memory, OOM kills.
//!
//! The readings describe the cell's current run, from its activation on (see
//! [`activate`](super::activate)): v1 counters that can be reset are reset then, and the
//! others (v1 `oom_kill`, v2 `usage_usec`, v2 `oom_kill`) are read relative to a baseline
//! taken then.
//!
//! Peak memory is the highest usage of the cell since activation (v1: `max_usage_in_bytes`
//! reset at activation; v2: `memory.peak`, reset per fd at activation on kernels >= 6.12,
//! otherwise since the cell was created) minus the bytes that were still charged when the
//! cell was issued: 0 for a fresh cell, what earlier runs left (< 1 MiB, see
//! [`pool`](super::pool)) for a reused one. So it includes what the cell's own PID 1 holds,
//! whether it was set up before activation (warm path) or after (cold path), but not what
//! earlier runs left charged. On v1 the kernel charges in batches of up to 64 pages per CPU,
//! so a peak can be off by that much (a fresh cell's first charge precharges a batch, a
//! reused cell may still have one).

use std::time::Duration;

use super::counters::{Counter, CounterFiles};
use super::setup::CgroupFeatures;
use super::CgroupMode;

/// Raw counter values a cell's readings are relative to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Baseline {
    /// Nanoseconds of CPU time.
    pub cpu_ns: u64,
    pub oom_kills: u64,
    /// Bytes charged to the cell when it was issued (leftovers of an earlier run).
    pub memory: u64,
}

/// Total CPU time (user + system) of the cell's processes, in nanoseconds.
pub(super) fn cpu_ns(mode: CgroupMode, files: &CounterFiles) -> Option<u64> {
    match mode {
        CgroupMode::V2 => files
            .read_keyed(Counter::Cpu, "usage_usec")
            .ok()
            .map(|us| us.saturating_mul(1_000)),
        CgroupMode::V1 => files.read_u64(Counter::Cpu).ok(),
    }
}

pub(super) fn cpu_usage(
    mode: CgroupMode,
    files: &CounterFiles,
    base: &Baseline,
) -> Option<Duration> {
    cpu_ns(mode, files).map(|ns| Duration::from_nanos(ns.saturating_sub(base.cpu_ns)))
}

/// Peak memory use in bytes (see the module docs).
pub(super) fn memory_peak(
    files: &CounterFiles,
    features: &CgroupFeatures,
    base: &Baseline,
) -> Option<u64> {
    if !features.memory_peak {
        return None;
    }
    let peak = files.read_u64(Counter::MemoryPeak).ok()?;
    Some(peak.saturating_sub(base.memory))
}

/// v1: the bytes charged to the cell that belong to something (pages on its LRU lists and
/// kernel memory), i.e. `memory.usage_in_bytes` without the charges the kernel keeps
/// precharged per CPU (up to 64 pages each). None on v2.
pub(super) fn memory_held(files: &CounterFiles) -> Option<u64> {
    let pages = files.read_assigned(Counter::MemoryLru, "total").ok()?;
    let kmem = files.read_u64(Counter::MemoryKmem).unwrap_or(0);
    Some(pages.saturating_mul(page_size()).saturating_add(kmem))
}

fn page_size() -> u64 {
    static SIZE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096, |n| n as u64)
    })
}

/// The raw OOM-kill counter (see [`oom_kills`]).
pub(super) fn oom_kills_raw(
    mode: CgroupMode,
    files: &CounterFiles,
    features: &CgroupFeatures,
) -> u64 {
    match mode {
        CgroupMode::V2 => files
            .read_keyed(Counter::OomEvents, "oom_kill")
            .unwrap_or(0),
        CgroupMode::V1 if features.oom_kill_counter => files
            .read_keyed(Counter::OomEvents, "oom_kill")
            .unwrap_or(0),
        // Kernels before 4.13 have no v1 oom_kill counter: `memory.failcnt` > 0 says the
        // limit was hit (reclaim may have coped). Counted as one OOM kill; the caller must
        // only call it MLE when the process also died by SIGKILL.
        CgroupMode::V1 => files
            .read_u64(Counter::MemoryFailcnt)
            .map(|n| u64::from(n > 0))
            .unwrap_or(0),
    }
}

pub(super) fn oom_kills(
    mode: CgroupMode,
    files: &CounterFiles,
    features: &CgroupFeatures,
    base: &Baseline,
) -> u64 {
    oom_kills_raw(mode, files, features).saturating_sub(base.oom_kills)
}
