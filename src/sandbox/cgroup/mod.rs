//! Cgroups of cells: detect v1/v2 once, create one cgroup per cell beneath our own cgroup,
//! set limits, read usage, kill everything in it, and always remove it.
//!
//! Used by the launcher:
//! - `CgroupHost::detect()` once per process (the Launcher holds it).
//! - `CgroupHost::create_cell(&self, &CgroupLimits) -> CellCgroup` before the clone, or
//!   `create_run_cell` for a cell whose limits never change (the one-shot CLI's).
//! - `CellCgroup::join_fds()` — open join files (O_WRONLY|O_CLOEXEC; v1 `tasks`, v2
//!   `cgroup.procs`) that the child writes "0" into, joining every hierarchy, before it
//!   execs anything.
//! - `CellCgroup::clone_into_fd()` — v2 only: a dir fd for clone3 CLONE_INTO_CGROUP.
//! - `CellCgroup::activate(&mut self, &CgroupLimits)` — for a cell whose PID 1 was started
//!   ahead of the request (warm path): the run's limits, counters restarted, from the parent.
//! - `cpu_usage`, `memory_peak`, `oom_kills` while/after running (since creation or the last
//!   activation); `kill_all` on timeout; `remove` (also done on Drop) at the end.
//!
//! # Theory of operation
//! * **Detection** parses /proc/self/mountinfo and /proc/self/cgroup ([`detect`]). A pure v2
//!   host (or a hybrid one whose cgroup2 offers the memory controller) is V2; a hybrid host
//!   whose cgroup2 has no controllers is V1 with the memory, pids, cpu,
//!   cpuacct and freezer hierarchies (separate or combined mounts).
//! * **Where**: in every hierarchy, beneath OUR OWN cgroup: `<own>/sandcell/<cell>`. On v1
//!   nothing is ever written in `<own>` or above, no process is moved out of it and nothing
//!   there is deleted: we only mkdir `<own>/sandcell` and write inside directories we
//!   created. On v2, `<own>/cgroup.subtree_control` must enable memory/pids/cpu for
//!   `<own>/sandcell`; if our own non-root cgroup holds our process (no-internal-process
//!   rule, EBUSY), this process moves into the leaf `<own>/sandcell-supervisor` first
//!   ([`setup`]).
//! * **Names** `<creator pid>-<counter>-<random hex>` let [`CgroupHost::cleanup_stale`]
//!   find and remove the cells of a creator that died (daemon killed with -9).
//! * **Join**: the child writes "0" to each fd of [`CellCgroup::join_fds`]; on v2 the
//!   launcher can instead clone3 straight into [`CellCgroup::clone_into_fd`]. On v1 the
//!   files are `tasks`, not `cgroup.procs`: a thread that moves *itself* ("0" into `tasks`)
//!   is the one migration the kernel does without write-locking the global
//!   `cgroup_threadgroup_rwsem` (`cgroup_procs_write_start`, in 6.1 as in 6.18), whose
//!   `percpu_down_write` waits for an RCU grace period — milliseconds on the critical path
//!   of every one-shot run. PID 1 is single-threaded when it joins, so moving its only
//!   thread moves the process; the program it forks later is born inside.
//! * **End**: rmdir. A cell's PID 1 is reaped by then, and with it every process of its pid
//!   namespace, so the directories are normally empty and go at once; a directory that is
//!   not (EBUSY) gets [`CellCgroup::kill_all`] (cgroup.kill, or freeze + SIGKILL + thaw) and
//!   then rmdir again. A pooled cell is always emptied by `kill_all` before it is parked.
//!   `remove` and Drop both do it, so errors and panics of the supervisor path clean up too.
//! * **Which hierarchies**: a cell that may be activated with other limits later (pooled
//!   and pre-started cells) gets every hierarchy; a cell made for one run's fixed limits
//!   ([`CgroupHost::create_run_cell`]) only those its limits use — on v1 no `cpu`
//!   directory without a cpus limit (each directory costs a mkdir and an rmdir, ~0.1 ms).
//! * **Activation** ([`activate`]): limits written, counters reset or baselined, so the
//!   readings describe the run from then on; used by the pool and by pre-started cells.
//! * **Pool** (optional, [`CgroupHost::with_pool`]): a few finished cells are reused, see
//!   [`pool`] for the trade-offs. Measured with `examples/cgroup_bench.rs` on the v1 CI host
//!   (5 hierarchies, medians of 1000, load ≈ 1): create+remove 480 µs fresh (+180 µs in
//!   kernel threads), 90 µs pooled (+40 µs), so long-lived launchers (the daemon) use a pool on v1.
//! * **Counter files** ([`counters`]) read or reset on every run stay open: ~1 µs per access
//!   instead of ~8 µs for open+access+close.
//!
//! Why direct cgroupfs code and not cgroups-rs: we need exactly-beneath-our-own-cgroup
//! paths on a hybrid host (cgroups-rs builds paths from the hierarchy root and its v1/v2
//! choice is global), fds of `cgroup.procs` opened in the parent for a child that joins
//! after pivot_root, a dir fd for CLONE_INTO_CGROUP, cgroup.kill, memory.peak and
//! oom_kill readings, pooled resets, and one typed error with the failing path. That is a
//! few hundred lines of plain file writes, testable against a fake tree in a temp dir.

mod activate;
mod counters;
mod detect;
mod fsio;
mod kill;
mod limits;
mod names;
mod pool;
mod setup;
mod usage;

use std::fs::OpenOptions;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use setup::CgroupFeatures;

use super::limit::Limit;

use counters::CounterFiles;
use detect::Layout;
use limits::Written;
use pool::Pool;
use usage::Baseline;

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
    #[error("invalid cgroup limit: {0}")]
    InvalidLimit(String),
    #[error("cgroup {path}: {remaining} process(es) still alive after SIGKILL")]
    KillFailed { path: String, remaining: usize },
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

impl CgroupLimits {
    /// The limits asked for, and the cell-wide CPU time if `cpu_time`.
    pub fn asked(&self, cpu_time: bool) -> impl Iterator<Item = Limit> {
        let asked = [
            self.memory.is_some(),
            self.pids.is_some(),
            self.cpus.is_some(),
            cpu_time,
        ];
        Limit::CGROUP
            .into_iter()
            .zip(asked)
            .filter_map(|(limit, asked)| asked.then_some(limit))
    }
}

/// What a host's cgroups give us, shared by the host and its cells.
#[derive(Debug)]
struct HostShared {
    layout: Layout,
    features: CgroupFeatures,
    kernel: (u32, u32),
    /// Why wanted controllers are unusable (v2), for check-host.
    problems: Vec<String>,
    /// v2 `memory.peak` takes a per-fd reset (kernel >= 6.12), used by `activate`.
    peak_resettable: bool,
    pool: Option<Pool>,
}

/// What this host's cgroups give us, detected once.
#[derive(Debug)]
pub struct CgroupHost {
    mode: CgroupMode,
    shared: Arc<HostShared>,
}

impl CgroupHost {
    /// Detects the layout of this process's cgroups and prepares `<own>/sandcell` in every
    /// hierarchy (on v2 also enabling controllers, see the module docs). Call it early,
    /// before this process starts children: on v2, other processes left in our own
    /// non-root cgroup keep the controllers from being enabled (see [`problems`](Self::problems)).
    pub fn detect() -> Result<CgroupHost, CgroupError> {
        let read = |p: &str| fsio::read(Path::new(p));
        Self::detect_with(
            &read("/proc/self/mountinfo")?,
            &read("/proc/self/cgroup")?,
            Path::new("/"),
        )
    }

    /// [`detect`](Self::detect) from given texts, with every mount point beneath
    /// `root_prefix` (tests point it at a fake cgroupfs tree in a temp dir).
    pub fn detect_with(
        mountinfo: &str,
        proc_self_cgroup: &str,
        root_prefix: &Path,
    ) -> Result<CgroupHost, CgroupError> {
        let mut layout = detect::detect_layout(mountinfo, proc_self_cgroup, root_prefix)?;
        let kernel = setup::kernel_version();
        let mut problems = Vec::new();
        let features = setup::prepare(&mut layout, kernel, &mut problems)?;
        let peak_resettable = setup::memory_peak_resettable(&layout, &features);
        Ok(CgroupHost {
            mode: layout.mode,
            shared: Arc::new(HostShared {
                layout,
                features,
                kernel,
                problems,
                peak_resettable,
                pool: None,
            }),
        })
    }

    /// Keeps up to `size` finished cells to reset and reuse instead of rmdir + mkdir
    /// (v1 only; on v2 this is a no-op, see [`pool`]). Call right after `detect`.
    pub fn with_pool(mut self, size: usize) -> CgroupHost {
        if self.mode == CgroupMode::V1 && size > 0 {
            if let Some(shared) = Arc::get_mut(&mut self.shared) {
                shared.pool = Some(Pool::new(size));
            }
        }
        self
    }

    pub fn mode(&self) -> CgroupMode {
        self.mode
    }

    /// Optional kernel features found at detection.
    pub fn features(&self) -> CgroupFeatures {
        self.shared.features
    }

    fn has(&self, controller: &str) -> bool {
        self.shared
            .layout
            .hierarchies
            .iter()
            .any(|h| h.controllers.contains(&controller))
    }

    /// Names of controllers usable for cells: "memory", "pids", "cpu", "cpuacct", "freezer",
    /// "kill". On v2 "cpuacct" (cpu.stat) is always there and "freezer"/"kill" mean
    /// cgroup.freeze/cgroup.kill.
    pub fn controllers(&self) -> Vec<&'static str> {
        let f = &self.shared.features;
        let mut out: Vec<&'static str> = ["memory", "pids", "cpu", "cpuacct", "freezer"]
            .into_iter()
            .filter(|c| match (self.mode, *c) {
                (CgroupMode::V2, "cpuacct") => true,
                (CgroupMode::V2, "freezer") => f.freeze,
                (CgroupMode::V1, "freezer") => f.freeze && self.has("freezer"),
                _ => self.has(c),
            })
            .collect();
        if f.cgroup_kill || f.freeze {
            out.push("kill");
        }
        out
    }

    /// Which of `limits` (and the cell-wide CPU time, if `cpu_time`) this host cannot
    /// enforce.
    pub fn unenforceable(&self, limits: &CgroupLimits, cpu_time: bool) -> Vec<Limit> {
        let usable = self.controllers();
        limits
            .asked(cpu_time)
            .filter(|l| l.controller().is_some_and(|c| !usable.contains(&c)))
            .collect()
    }

    /// Creates a cell's cgroup (or reuses a pooled one) with `limits` written.
    pub fn create_cell(&self, limits: &CgroupLimits) -> Result<CellCgroup, CgroupError> {
        limits::validate(limits)?;
        if let Some(pool) = &self.shared.pool {
            if let Some(mut cell) = pool.take(&self.shared) {
                match cell.reissue(limits) {
                    Ok(()) => return Ok(cell),
                    // A cell that cannot be reset is dropped (and removed); make a new one.
                    Err(e) => tracing::warn!("pooled cgroup not reusable: {e}"),
                }
            }
        }
        CellCgroup::create(Arc::clone(&self.shared), limits, Coverage::All)
    }

    /// A cell for one run whose limits never change (the one-shot CLI's): from the pool when
    /// there is one, else a fresh cell in only the hierarchies `limits` use (see
    /// [`Coverage::Fixed`]); it refuses [`CellCgroup::activate`] with limits that need
    /// another.
    pub fn create_run_cell(&self, limits: &CgroupLimits) -> Result<CellCgroup, CgroupError> {
        if self.shared.pool.is_some() {
            return self.create_cell(limits);
        }
        limits::validate(limits)?;
        CellCgroup::create(Arc::clone(&self.shared), limits, Coverage::Fixed)
    }

    /// Kills and removes the cells whose creator process is gone (a daemon killed with -9).
    /// Returns how many cells were removed.
    pub fn cleanup_stale(&self) -> usize {
        let mut stale: Vec<String> = Vec::new();
        for h in &self.shared.layout.hierarchies {
            let Ok(entries) = std::fs::read_dir(&h.cells) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let dead = names::creator_of(&name).is_some_and(|pid| !names::process_alive(pid));
                if dead && !stale.contains(&name) {
                    stale.push(name);
                }
            }
        }
        let mut removed = 0;
        for name in stale {
            let all = Coverage::All;
            let dirs = CellDirs::of(&self.shared.layout, &name, all, &CgroupLimits::default());
            let killed = kill::kill_all(&dirs, &self.shared.features);
            let gone = dirs.all().try_for_each(fsio::rmdir_tree);
            match (killed, gone) {
                (Ok(()), Ok(())) => removed += 1,
                (Err(e), _) | (_, Err(e)) => tracing::warn!("stale cgroup {name}: {e}"),
            }
        }
        removed
    }

    /// What `sandcell check-host` prints about cgroups.
    pub fn describe(&self) -> serde_json::Value {
        let layout = &self.shared.layout;
        let hierarchies: Vec<serde_json::Value> = layout
            .hierarchies
            .iter()
            .map(|h| {
                serde_json::json!({
                    "controllers": h.controllers,
                    "own_cgroup": h.own.display().to_string(),
                    "cells_dir": h.cells.display().to_string(),
                })
            })
            .collect();
        serde_json::json!({
            "mode": self.mode,
            "kernel": format!("{}.{}", self.shared.kernel.0, self.shared.kernel.1),
            "controllers": self.controllers(),
            "hierarchies": hierarchies,
            "features": self.shared.features,
            "memory_peak_resettable": self.shared.peak_resettable,
            "problems": self.shared.problems,
            "pool_size": self.shared.pool.as_ref().map_or(0, Pool::capacity),
        })
    }

    /// Why controllers this layer wants are unusable on this host (empty when all are).
    pub fn problems(&self) -> &[String] {
        &self.shared.problems
    }

    /// Directories of the cells parent (`<own>/sandcell`) of every hierarchy.
    pub fn cells_dirs(&self) -> Vec<PathBuf> {
        let hs = &self.shared.layout.hierarchies;
        hs.iter().map(|h| h.cells.clone()).collect()
    }
}

impl Drop for CgroupHost {
    fn drop(&mut self) {
        if let Some(pool) = &self.shared.pool {
            pool.drain();
        }
    }
}

/// Which of the host's hierarchies a cell has a directory in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coverage {
    /// Every hierarchy: the cell may be activated later with any limits (pooled and
    /// pre-started cells).
    All,
    /// Every hierarchy but a v1 one that holds only the `cpu` controller, unless its limits
    /// ask for CPU bandwidth: memory, pids, cpuacct and freezer are always needed (usage,
    /// OOM kills, CPU time, killing), and v2's one hierarchy holds everything (its core files
    /// count CPU time and kill even with no controller enabled). For a cell whose limits
    /// never change.
    Fixed,
}

impl Coverage {
    /// Whether a cell of this coverage, made for `made_for`, has a directory in a hierarchy
    /// of `controllers` of a `mode` layout.
    fn includes(self, mode: CgroupMode, controllers: &[&str], made_for: &CgroupLimits) -> bool {
        match (self, mode) {
            (Coverage::All, _) | (Coverage::Fixed, CgroupMode::V2) => true,
            (Coverage::Fixed, CgroupMode::V1) => made_for.cpus.is_some() || controllers != ["cpu"],
        }
    }
}

/// The directories of one cell: one per hierarchy (v1) or one (v2).
#[derive(Debug, Clone)]
struct CellDirs {
    mode: CgroupMode,
    dirs: Vec<(Vec<&'static str>, PathBuf)>,
}

impl CellDirs {
    fn of(layout: &Layout, name: &str, coverage: Coverage, limits: &CgroupLimits) -> CellDirs {
        CellDirs {
            mode: layout.mode,
            dirs: layout
                .hierarchies
                .iter()
                .filter(|h| coverage.includes(layout.mode, &h.controllers, limits))
                .map(|h| (h.controllers.clone(), h.cells.join(name)))
                .collect(),
        }
    }

    /// The directory of the hierarchy that has `controller`.
    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(c, _)| c.contains(&controller))
            .map(|(_, d)| d.as_path())
    }

    fn has(&self, controller: &str) -> bool {
        self.dir_of(controller).is_some()
    }

    /// The first directory (v2: the only one), used in messages.
    fn main(&self) -> &Path {
        self.dirs
            .first()
            .map_or(Path::new("/"), |(_, d)| d.as_path())
    }

    fn all(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, d)| d.as_path())
    }
}

/// One cell's cgroup (one directory per hierarchy on v1). Removed on drop.
#[derive(Debug)]
pub struct CellCgroup {
    name: String,
    dirs: CellDirs,
    join: Vec<OwnedFd>,
    /// v2: the cell directory, for CLONE_INTO_CGROUP.
    dir_fd: Option<OwnedFd>,
    /// The counter files read and reset per run, kept open.
    files: CounterFiles,
    baseline: Baseline,
    /// The limits written into the cell (an activation rewrites only what changes); None
    /// after a failed write: the next activation writes every limit, and the cell is not
    /// pooled.
    limits: Option<CgroupLimits>,
    shared: Arc<HostShared>,
    coverage: Coverage,
    /// Set once removed (or handed back to the pool): Drop does nothing more.
    done: bool,
}

impl CellCgroup {
    fn create(
        shared: Arc<HostShared>,
        limits: &CgroupLimits,
        coverage: Coverage,
    ) -> Result<CellCgroup, CgroupError> {
        let name = names::new_cell_name();
        let dirs = CellDirs::of(&shared.layout, &name, coverage, limits);
        let files = CounterFiles::new(&dirs, shared.peak_resettable);
        let mut cell = CellCgroup {
            name,
            dirs: CellDirs {
                mode: dirs.mode,
                dirs: Vec::new(),
            },
            join: Vec::new(),
            dir_fd: None,
            files,
            // A new cgroup's counters are all 0: no baseline to read.
            baseline: Baseline::default(),
            limits: None,
            shared,
            coverage,
            done: false,
        };
        // From here on, Drop removes whatever was created if a step fails.
        for (controllers, dir) in dirs.dirs {
            std::fs::create_dir(&dir).map_err(|e| fsio::io_error(&dir, e))?;
            cell.dirs.dirs.push((controllers, dir));
        }
        limits::apply(&cell.dirs, limits, Written::Fresh, &cell.shared.features)?;
        let join_file = match cell.dirs.mode {
            CgroupMode::V1 => "tasks",
            CgroupMode::V2 => "cgroup.procs",
        };
        for dir in cell.dirs.all() {
            let procs = dir.join(join_file);
            let fd = OpenOptions::new()
                .write(true)
                .open(&procs)
                .map_err(|e| fsio::io_error(&procs, e))?;
            cell.join.push(fd.into());
        }
        if cell.dirs.mode == CgroupMode::V2 && cell.shared.features.clone_into_cgroup {
            let dir = cell.dirs.main().to_path_buf();
            let fd = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY)
                .open(&dir)
                .map_err(|e| fsio::io_error(&dir, e))?;
            cell.dir_fd = Some(fd.into());
        }
        // Only a complete cell is ever pooled (see `limits`).
        cell.limits = Some(limits.clone());
        Ok(cell)
    }

    /// The cell's name (the last component of its directories).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The cell's directories, one per hierarchy (v2: one).
    pub fn dirs(&self) -> Vec<&Path> {
        self.dirs.all().collect()
    }

    pub fn join_fds(&self) -> &[OwnedFd] {
        &self.join
    }

    /// v2 with kernel >= 5.7: the cell directory for clone3 CLONE_INTO_CGROUP.
    pub fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        self.dir_fd.as_ref().map(AsFd::as_fd)
    }

    /// Moves process `pid` (all its threads) into the cell from outside: writes it into
    /// every `cgroup.procs` of the cell. Cells' own PID 1s join through [`Self::join_fds`]
    /// instead; this is for processes started some other way (tests, benchmarks).
    pub fn attach(&self, pid: u32) -> Result<(), CgroupError> {
        for dir in self.dirs.all() {
            fsio::write(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// CPU time used by the cell's processes (user + system).
    pub fn cpu_usage(&self) -> Option<Duration> {
        usage::cpu_usage(self.dirs.mode, &self.files, &self.baseline)
    }

    /// Peak memory of the cell in bytes, when the kernel reports it: the highest usage since
    /// the cell was created or last activated, without what earlier runs of a reused cell
    /// left charged (see [`usage`]).
    pub fn memory_peak(&self) -> Option<u64> {
        usage::memory_peak(&self.files, &self.shared.features, &self.baseline)
    }

    /// How many processes the OOM killer killed in the cell. Exact on v2 and on v1 with
    /// kernel >= 4.13 (`features().oom_kill_counter`); otherwise 1 if the memory limit was
    /// hit at all (memory.failcnt > 0): call that MLE only if the program died by SIGKILL.
    pub fn oom_kills(&self) -> u64 {
        usage::oom_kills(
            self.dirs.mode,
            &self.files,
            &self.shared.features,
            &self.baseline,
        )
    }

    /// SIGKILLs every process of the cell and waits until the cell is empty.
    pub fn kill_all(&self) -> Result<(), CgroupError> {
        kill::kill_all(&self.dirs, &self.shared.features)
    }

    /// Kills everything and removes the cell's directories (or returns the cell to the pool).
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.done = true;
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), CgroupError> {
        let shared = Arc::clone(&self.shared);
        if let Some(pool) = &shared.pool {
            self.kill_all()?;
            if pool.park(self) {
                return Ok(());
            }
        }
        self.join.clear();
        self.dir_fd = None;
        self.files.close();
        // Normally every process is gone with the cell's PID 1: plain rmdirs then suffice.
        self.dirs.dirs.retain(|(_, dir)| !fsio::rmdir_if_empty(dir));
        if self.dirs.dirs.is_empty() {
            return Ok(());
        }
        self.kill_all()?;
        let mut first_error = None;
        for dir in self.dirs.all() {
            if let Err(e) = fsio::rmdir_tree(dir) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for CellCgroup {
    fn drop(&mut self) {
        if !self.done {
            self.done = true;
            if let Err(e) = self.teardown() {
                tracing::warn!("cgroup cell {} not removed: {e}", self.name);
            }
        }
    }
}

#[cfg(test)]
mod tests;
