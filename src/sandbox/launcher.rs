//! Launcher: gets a cell for a run, starts the run in it and returns its verdict.
//!
//! Every cell runs the same PID 1 program (`pid1.rs`) and, once cloned, the same [`Cell`]
//! life (`cell.rs`: start, supervise, judge, tear down). *Who clones* is the only strategy:
//! - **this process** (the CLI; no [`LauncherConfig::spawner`]): "prepare and start at
//!   once". All allocation happens here, before the clone: the step lists (CStrings, pointer
//!   arrays, file contents), the BPF programs, the cgroup and its descriptors, the pipes; PID
//!   1 gets the run ready-made and only walks the lists (threading rule 1, `sandbox/mod.rs`).
//!   The teardown is inline.
//! - **the spawner** (the daemon, the grader): "prepare ahead". A single-threaded spawner
//!   process clones the cell, which sets itself up and waits for its run on a socket; with
//!   [`LauncherConfig::warm_cells`] cells of recently used shapes are prepared before their
//!   runs, and the teardown is left to a janitor thread (`spawner.rs`, `warm.rs`,
//!   `janitor.rs`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::cell::{Cell, Teardown};
use super::cgroup::{CellCgroup, CgroupHost};
use super::child::{self, ChildPlan};
use super::identity::{self, Lease, UidRange};
use super::janitor::Janitor;
use super::limit::Limit;
use super::permits::CellPermits;
use super::pid1::{self, CellPlan, ReadyRun, Run};
use super::plan::{cgroup_limits, wants_cgroup, CgroupEntry};
use super::shape::CellShape;
use super::spawner::Spawner;
use super::sys::{self, CloneArgs, CLONE_INTO_CGROUP};
use super::timens;
use super::warm::{CellFactory, WarmPool};
use super::work_disk::{CaptureBounds, CaptureError, WorkDisk};
use super::{ipc, mounts, plan, seccomp, SandboxError};
use crate::result::{RunResult, Verdict};
use crate::spec::{FileSpec, RunSpec, StdinSource, ValidatedSpec};

/// Where runs got their cells from, and how many run (see [`Launcher::cell_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CellCounts {
    pub warm: u64,
    pub cold: u64,
    /// Cells running now.
    pub running: usize,
    /// The most cells that ever ran at once.
    pub peak: usize,
}

/// Host-wide launcher settings.
#[derive(Debug, Clone, Default)]
pub struct LauncherConfig {
    /// Run without cgroups even when the host has them (limits then count as degraded).
    pub disable_cgroups: bool,
    /// Keep this many v1 cell cgroups pre-created and reuse them (for daemons; saves the
    /// mkdir/rmdir per run). 0 = a fresh cgroup per run.
    pub cgroup_pool: usize,
    /// Clone cells through a spawner process running this `sandcell` executable (for
    /// long-lived, multithreaded launchers). `None`: clone in this process.
    pub spawner: Option<PathBuf>,
    /// With a spawner: keep this many cells prepared for each recently used shape. 0: none.
    pub warm_cells: usize,
    /// At most this many cells run at once (further runs wait for one to end); `None`: no
    /// bound. A daemon sets its worker count, so runs and gradings share the same cells.
    pub max_cells: Option<usize>,
    /// Host uids (and gids) that running cells take one each of, unique across every sandcell
    /// process on the host; the program still sees its `spec.uid` (`identity.rs`). A count
    /// of 0 turns this off: every cell then runs as `spec.uid` on the host.
    pub uid_range: UidRange,
}

/// Something that happened during a run, delivered as it happens (for streaming).
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// The cell was cloned and is setting up.
    Started,
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
}

/// Cancels a run from another thread (wakes the supervisor through an eventfd).
#[derive(Debug, Clone)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Debug)]
struct CancelInner {
    fd: nix::sys::eventfd::EventFd,
    cancelled: AtomicBool,
}

impl CancelToken {
    pub fn new() -> std::io::Result<Self> {
        let fd = nix::sys::eventfd::EventFd::from_flags(
            nix::sys::eventfd::EfdFlags::EFD_CLOEXEC | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK,
        )?;
        Ok(CancelToken {
            inner: Arc::new(CancelInner {
                fd,
                cancelled: AtomicBool::new(false),
            }),
        })
    }

    /// Kills the run this token was given to (or makes it end at once if not started).
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        let _ = self.inner.fd.write(1);
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

/// Launches and supervises cells. One per process; cheap to share between threads.
pub struct Launcher {
    config: LauncherConfig,
    /// Runs that took a warm cell, and runs whose cell was prepared when they started.
    warm_runs: AtomicU64,
    cold_runs: AtomicU64,
    /// The host's cgroups, or why they are unusable; detected on first need so runs
    /// without cgroup limits never pay for it.
    cgroups: OnceLock<Result<Arc<CgroupHost>, String>>,
    last_cap: u32,
    /// Prepared cells (with a spawner).
    pub(super) factory: Option<Arc<CellFactory>>,
    pub(super) warm: Option<WarmPool>,
    pub(super) permits: CellPermits,
}

impl std::fmt::Debug for Launcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launcher")
            .field("config", &self.config)
            .field("prepared", &self.factory.is_some())
            .finish()
    }
}

impl Launcher {
    /// Detects the host's cgroups once. `SANDCELL_UID_RANGE` (`BASE:COUNT` or `off`) replaces
    /// a default [`LauncherConfig::uid_range`], for every front end at once.
    pub fn new(mut config: LauncherConfig) -> Result<Launcher, SandboxError> {
        sys::ensure_std_fds_open();
        if config.uid_range == UidRange::default() {
            if let Ok(text) = std::env::var(identity::RANGE_ENV) {
                config.uid_range = UidRange::parse(&text).map_err(|e| {
                    SandboxError::prepare(identity::RANGE_ENV, std::io::Error::other(e))
                })?;
            }
        }
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(63);
        let permits = CellPermits::new(config.max_cells);
        let mut launcher = Launcher {
            config,
            permits,
            warm_runs: AtomicU64::new(0),
            cold_runs: AtomicU64::new(0),
            cgroups: OnceLock::new(),
            last_cap,
            factory: None,
            warm: None,
        };
        if let Some(exe) = launcher.config.spawner.clone() {
            // Cgroups first: on v2 detection may move this process into a leaf cgroup, and
            // the spawner must start from there.
            let cgroups = launcher.detect_cgroups().as_ref().ok().cloned();
            let factory = Arc::new(CellFactory {
                janitor: Janitor::start()
                    .map_err(|e| SandboxError::prepare("start the janitor thread", e))?,
                spawner: Spawner::start(&exe)?,
                cgroups,
                last_cap,
            });
            if launcher.config.warm_cells > 0 {
                launcher.warm = Some(
                    WarmPool::start(factory.clone(), launcher.config.warm_cells)
                        .map_err(|e| SandboxError::prepare("start the warm pool thread", e))?,
                );
            }
            launcher.factory = Some(factory);
        }
        Ok(launcher)
    }

    /// Ends prepared cells, the janitor and the spawner (with a spawner; also done on drop).
    /// Runs after this go through a cold prepared cell and are cleaned up synchronously.
    pub fn shutdown(&self) {
        if let Some(warm) = &self.warm {
            warm.stop();
        }
        if let Some(factory) = &self.factory {
            factory.janitor.stop();
        }
    }

    fn detect_cgroups(&self) -> &Result<Arc<CgroupHost>, String> {
        self.cgroups.get_or_init(|| {
            if self.config.disable_cgroups {
                return Err("cgroups disabled by configuration".to_string());
            }
            let host = CgroupHost::detect().map_err(|e| e.to_string())?;
            // Cells of a sandcell process that died (SIGKILL mid-run) are removed here, by
            // the next process that needs cgroups.
            let removed = host.cleanup_stale();
            if removed > 0 {
                tracing::info!("removed {removed} stale cell cgroup(s)");
            }
            Ok(Arc::new(host.with_pool(self.config.cgroup_pool)))
        })
    }

    /// How many runs took a warm cell and how many had theirs prepared when they started
    /// (prepared cells only; both 0 without a spawner).
    pub fn cell_counts(&self) -> CellCounts {
        let (running, peak) = self.permits.counts();
        CellCounts {
            warm: self.warm_runs.load(Ordering::Relaxed),
            cold: self.cold_runs.load(Ordering::Relaxed),
            running,
            peak,
        }
    }

    /// The host's cgroups, if usable (detected on first call).
    pub fn cgroups(&self) -> Option<&CgroupHost> {
        self.detect_cgroups().as_ref().ok().map(Arc::as_ref)
    }

    /// Runs one cell to completion. Never panics on bad input; sandbox failures come back as
    /// verdict XX with a message.
    pub fn run(
        &self,
        spec: &ValidatedSpec,
        on_event: &mut dyn FnMut(RunEvent<'_>),
        cancel: Option<&CancelToken>,
    ) -> RunResult {
        self.run_with(spec, None, on_event, cancel)
    }

    /// Runs one cell whose work dir is a [`WorkDisk`] (sized by the spec's `disk` and
    /// `inodes`) and, when the run ends OK, reads the files it left there before the cell
    /// is torn down: how a compile step's artifact leaves its cell. `files` is `None` when
    /// the run did not end OK (nothing was read).
    pub fn run_capturing(
        &self,
        spec: &ValidatedSpec,
        bounds: CaptureBounds,
        on_event: &mut dyn FnMut(RunEvent<'_>),
        cancel: Option<&CancelToken>,
    ) -> CapturedRun {
        let s = spec.spec();
        let disk = match WorkDisk::create(s.limits.disk, s.limits.inodes, s.uid, s.gid) {
            Ok(disk) => disk,
            Err(e) => {
                return CapturedRun {
                    result: RunResult::sandbox_error(e.to_string()),
                    files: None,
                }
            }
        };
        let mut files = None;
        let capture = Capture {
            disk: Some(disk),
            bounds,
            files: &mut files,
        };
        let result = self.run_with(spec, Some(capture), on_event, cancel);
        CapturedRun { result, files }
    }

    fn run_with(
        &self,
        spec: &ValidatedSpec,
        capture: Option<Capture<'_>>,
        on_event: &mut dyn FnMut(RunEvent<'_>),
        cancel: Option<&CancelToken>,
    ) -> RunResult {
        let cancelled = || {
            let mut r = RunResult::sandbox_error("cancelled before start");
            r.verdict = Verdict::CANCELLED;
            r
        };
        if cancel.is_some_and(CancelToken::is_cancelled) {
            return cancelled();
        }
        // The wall clock starts once the cell has its permit.
        let Some(_permit) = self.permits.acquire(cancel) else {
            return cancelled();
        };
        match self.try_run(spec.spec(), capture, on_event, cancel) {
            Ok(result) => result,
            Err(e) => RunResult::sandbox_error(e.to_string()),
        }
    }

    /// Checks that a cell of `spec` can be made here (root, rootfs, every limit enforceable
    /// or degradation allowed); returns the limits it goes without.
    pub(super) fn admit(&self, spec: &RunSpec) -> Result<Vec<Limit>, SandboxError> {
        if sys::geteuid() != 0 {
            return Err(SandboxError::prepare(
                "create cell",
                std::io::Error::other("sandcell must run as root to create cells"),
            ));
        }
        mounts::check_rootfs(&spec.rootfs, &spec.work_dir)?;

        let degraded = self.unenforceable(spec);
        if !degraded.is_empty() && !spec.allow_degraded {
            let why = match self.detect_cgroups() {
                Err(problem) => format!(" ({problem})"),
                Ok(_) => String::new(),
            };
            let names: Vec<&str> = degraded.iter().map(|l| l.name()).collect();
            return Err(SandboxError::Unenforceable(format!(
                "{}{why}",
                names.join(", ")
            )));
        }
        Ok(degraded)
    }

    /// Limits asked for that this host cannot enforce.
    fn unenforceable(&self, spec: &RunSpec) -> Vec<Limit> {
        let mut missing = self.unenforceable_limits(spec);
        if !timens::supported() {
            missing.push(Limit::TimeNamespace);
        }
        if self.config.uid_range.enabled() && !identity::supported() {
            missing.push(Limit::PerCellUid);
        }
        missing
    }

    /// The cell's own host uid/gid, when configured and possible (else the program runs as
    /// `spec.uid` on the host; that case was refused or listed as degraded before).
    pub(super) fn take_identity(&self) -> Result<Option<Lease>, SandboxError> {
        if !self.config.uid_range.enabled() || !identity::supported() {
            return Ok(None);
        }
        identity::acquire(self.config.uid_range)
            .map(Some)
            .map_err(|e| SandboxError::prepare("take a host uid for the cell", e))
    }

    /// Cgroup limits asked for that this host cannot enforce.
    fn unenforceable_limits(&self, spec: &RunSpec) -> Vec<Limit> {
        if !wants_cgroup(spec) {
            return Vec::new();
        }
        let limits = cgroup_limits(spec);
        let cpu_time = spec.limits.cpu_time.is_some();
        match self.cgroups() {
            Some(host) => host.unenforceable(&limits, cpu_time),
            // Without cgroups RLIMIT_CPU still applies per process; the cell-wide limit does
            // not.
            None => limits.asked(cpu_time).collect(),
        }
    }

    fn try_run(
        &self,
        spec: &RunSpec,
        capture: Option<Capture<'_>>,
        on_event: &mut dyn FnMut(RunEvent<'_>),
        cancel: Option<&CancelToken>,
    ) -> Result<RunResult, SandboxError> {
        let degraded = self.admit(spec)?;
        let mut result = match &self.factory {
            Some(factory) => self.run_prepared(factory, spec, capture, on_event, cancel)?,
            None => self.run_in_process(spec, capture, on_event, cancel)?,
        };
        result.degraded = degraded.iter().map(|l| l.name().to_string()).collect();
        Ok(result)
    }

    /// Builds every step here, clones the cell from this process and waits for its end.
    fn run_in_process(
        &self,
        spec: &RunSpec,
        mut capture: Option<Capture<'_>>,
        on_event: &mut dyn FnMut(RunEvent<'_>),
        cancel: Option<&CancelToken>,
    ) -> Result<RunResult, SandboxError> {
        let policy = seccomp::compile(&spec.seccomp)?;
        let cgroup = match self.cgroups() {
            Some(host) if wants_cgroup(spec) => Some(host.create_run_cell(&cgroup_limits(spec))?),
            _ => None,
        };

        let stdin = open_stdin(&spec.stdin)?;
        let (out_r, out_w) = ipc::output_pipe("stdout")?;
        let (err_r, err_w) = ipc::output_pipe("stderr")?;
        let (report_r, report_w) = ipc::pipe("error")?;
        let (status_r, status_w) = ipc::pipe("status")?;

        let clone_into = cgroup.as_ref().and_then(CellCgroup::clone_into_fd);
        let entry = match (&cgroup, clone_into) {
            (None, _) => CgroupEntry::None,
            (Some(_), Some(_)) => CgroupEntry::Cloned,
            (Some(_), None) => CgroupEntry::Join,
        };
        let join: Vec<RawFd> = match (entry, &cgroup) {
            (CgroupEntry::Join, Some(cg)) => cg.join_fds().iter().map(AsRawFd::as_raw_fd).collect(),
            _ => Vec::new(),
        };
        let identity = self.take_identity()?;
        let ids = identity.as_ref().map(|l| l.ids);
        let disk_fd = capture
            .as_ref()
            .and_then(|c| c.disk.as_ref())
            .map(|d| d.as_fd().as_raw_fd());
        let mut pass = vec![
            stdin.as_raw_fd(),
            out_w.as_raw_fd(),
            err_w.as_raw_fd(),
            report_w.as_raw_fd(),
            status_w.as_raw_fd(),
        ];
        pass.extend(disk_fd);
        let mut init_steps = plan::init_steps(spec, entry, &join, &pass)?;
        if let Some(ids) = ids {
            plan::give_to(&mut init_steps, ids);
        }
        let cell = CellPlan {
            init_steps,
            stdout: out_w.as_fd(),
            stderr: err_w.as_fd(),
            errors: report_w.as_fd(),
            status: status_w.as_fd(),
            awaited: None,
        };
        let mut stack = vec![0u8; child::PROGRAM_STACK];
        let mut run = ReadyRun {
            files: plan::run_file_steps(spec, ids, disk_fd),
            program: ChildPlan {
                program_steps: plan::program_steps(
                    spec,
                    ids,
                    policy,
                    cgroup.is_some(),
                    self.last_cap,
                    [stdin.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
                ),
                error_fd: report_w.as_raw_fd(),
                status_fd: status_w.as_raw_fd(),
                reaper_closes: vec![stdin.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
            },
            stack: &mut stack,
        };

        let mut pidfd: RawFd = -1;
        let mut args = CloneArgs {
            flags: plan::CELL_CLONE_FLAGS,
            pidfd: &mut pidfd as *mut RawFd as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        if let Some(fd) = clone_into {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = fd.as_raw_fd() as u64;
        }
        if timens::supported() {
            timens::fresh_for_children()
                .map_err(|e| SandboxError::prepare("create a time namespace", e))?;
        }
        let started = Instant::now();
        // SAFETY: the child runs only `pid1::main` with a ready run, which applies the
        // prepared step lists with async-signal-safe raw syscalls (threading rule 1) and
        // ends in execve or _exit.
        let pid = match unsafe { sys::clone3(&mut args) } {
            Ok(0) => pid1::main(&cell, Run::Ready(&mut run)),
            Ok(pid) => pid,
            Err(errno) => {
                return Err(SandboxError::prepare(
                    "clone the cell",
                    std::io::Error::from_raw_os_error(errno),
                ))
            }
        };
        // SAFETY: clone3 just returned this pidfd; nothing else owns it.
        let pidfd = unsafe { sys::own_fd(pidfd) };
        // The child has its copies; the parent keeps only the read ends.
        drop((cell, run));
        drop((stdin, out_w, err_w, report_w, status_w));
        on_event(RunEvent::Started);
        let cell = Cell {
            pid,
            pidfd,
            stdout: out_r,
            stderr: err_r,
            errors: report_r,
            status: status_r,
            control: None,
            cgroup,
            identity,
        };
        Ok(cell.supervise(
            spec,
            started,
            on_event,
            cancel,
            Teardown::Inline,
            &mut |result| collect(&mut capture, result),
        ))
    }

    /// Takes a prepared cell (warm, or cloned now through the spawner), sends it the run and
    /// supervises it; the teardown is left to the janitor.
    fn run_prepared(
        &self,
        factory: &CellFactory,
        spec: &RunSpec,
        mut capture: Option<Capture<'_>>,
        on_event: &mut dyn FnMut(RunEvent<'_>),
        cancel: Option<&CancelToken>,
    ) -> Result<RunResult, SandboxError> {
        // Before a warm cell is taken, so a run that gets no uid does not waste one.
        let identity = self.take_identity()?;
        let shape = CellShape::of(spec);
        let warm = match &self.warm {
            Some(pool) if shape.poolable() => pool.take(&shape),
            _ => None,
        };
        let counter = if warm.is_some() {
            &self.warm_runs
        } else {
            &self.cold_runs
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut cell = match warm {
            Some(cell) => cell,
            None => factory.prepare(&shape)?,
        };
        let disk = capture.as_ref().and_then(|c| c.disk.as_ref());
        if let Err(e) = cell.start(spec, identity, disk) {
            factory.discard(cell);
            return Err(e);
        }
        let started = Instant::now();
        on_event(RunEvent::Started);
        let teardown = Teardown::Janitor(&factory.janitor);
        Ok(
            cell.supervise(spec, started, on_event, cancel, teardown, &mut |result| {
                collect(&mut capture, result)
            }),
        )
    }
}

/// A run's work disk, what may be read back from it, and where the files go.
struct Capture<'a> {
    /// Dropped once read: its pages are freed before the cell's cgroup is removed or reused.
    disk: Option<WorkDisk>,
    bounds: CaptureBounds,
    files: &'a mut Option<Result<Vec<FileSpec>, CaptureError>>,
}

/// What [`Launcher::run_capturing`] returns.
#[derive(Debug)]
pub struct CapturedRun {
    pub result: RunResult,
    /// The files the run left in its work dir; `None` unless it ended OK.
    pub files: Option<Result<Vec<FileSpec>, CaptureError>>,
}

/// Reads the work disk back after a run that ended OK and drops it, before the cell's
/// teardown: its pages are freed with the cell's mounts, before the cgroup is removed or
/// reused.
fn collect(capture: &mut Option<Capture<'_>>, result: &RunResult) {
    let Some(c) = capture.as_mut() else { return };
    if let Some(disk) = c.disk.take() {
        if result.verdict == Verdict::OK {
            *c.files = Some(disk.read_files(c.bounds));
        }
    }
}

impl Drop for Launcher {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(super) fn open_stdin(source: &StdinSource) -> Result<OwnedFd, SandboxError> {
    match source {
        StdinSource::Null => std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| SandboxError::prepare("open /dev/null", e)),
        StdinSource::File(path) => std::fs::File::open(path)
            .map(OwnedFd::from)
            .map_err(|e| SandboxError::prepare(format!("open stdin file {}", path.display()), e)),
        StdinSource::Bytes(bytes) => memfd_with(bytes),
    }
}

/// A sealed memfd holding `bytes`, positioned at 0: stdin without a writer thread.
fn memfd_with(bytes: &[u8]) -> Result<OwnedFd, SandboxError> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MFdFlags};
    use std::io::{Seek, Write};
    let fd = memfd_create(
        c"sandcell-stdin",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(|e| SandboxError::prepare("create stdin memfd", e.into()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)
        .and_then(|()| file.seek(std::io::SeekFrom::Start(0)).map(drop))
        .map_err(|e| SandboxError::prepare("write stdin memfd", e))?;
    let seals = SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_SEAL;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals))
        .map_err(|e| SandboxError::prepare("seal stdin memfd", e.into()))?;
    Ok(OwnedFd::from(file))
}
