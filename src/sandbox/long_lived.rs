//! Long-lived cells: one prepared cell that takes many execs (`exec_loop.rs` is its PID 1).
//!
//! A long-lived cell is made like any prepared cell (spawner, init steps, cgroup) and then
//! told to hold ([`exec_loop::HOLD`]) instead of being sent a run. Its namespaces, `/tmp`,
//! work dir and cgroup then persist across execs: the cgroup's limits (memory, pids, CPUs)
//! are the cell's as a whole and are written once, the time limits are each exec's. An exec
//! is supervised like a run (output caps, wall and CPU time against what the cell had used
//! before it, cancellation), but a kill ends only its program, never the cell; an exec that
//! runs out of memory (the whole cell's limit) ends the cell.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::cell::{judge, Baseline, Cell};
use super::cgroup::CellCgroup;
use super::janitor::Finished;
use super::launcher::{open_stdin, CancelToken, Launcher, RunEvent};
use super::plan::cgroup_limits;
use super::shape::CellShape;
use super::supervisor::{self, Watch};
use super::warm::CellFactory;
use super::{child, exec_loop, go, ipc, sys, SandboxError};
use crate::result::{RunResult, Verdict};
use crate::spec::{RunSpec, ValidatedSpec};

/// What a [`SandboxError::Prepare`] of a cell that failed to set itself up names.
pub const SET_UP: &str = "set up the long-lived cell";

const OUT_OF_MEMORY: &str = "out of memory: the cell's memory limit was exceeded";

/// How long a new cell may take to set itself up.
const SET_UP_WITHIN: Duration = Duration::from_secs(30);

/// A cell that lives across execs until it is ended (or dropped, which ends it).
pub struct LongLivedCell {
    factory: std::sync::Arc<CellFactory>,
    cell: Option<Cell>,
    shape: CellShape,
    /// Why the cell ended, once it has.
    ended: Option<String>,
    execs: u64,
}

impl std::fmt::Debug for LongLivedCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LongLivedCell")
            .field("pid", &self.cell.as_ref().map(|c| c.pid))
            .field("ended", &self.ended)
            .field("execs", &self.execs)
            .finish()
    }
}

/// What a long-lived cell has used so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CellUsage {
    pub cpu_time_ms: u64,
    pub memory_peak_bytes: Option<u64>,
    /// Bytes used in the cell's writable layers (the work dir, `/tmp`, `/dev/shm`).
    pub disk_bytes: u64,
}

impl Launcher {
    /// Makes a long-lived cell for `spec` (its rootfs, work dir, user, limits; the argv is
    /// ignored) and waits until it has set itself up. Needs a spawner
    /// ([`super::LauncherConfig::spawner`]).
    pub fn create_long_lived(&self, spec: &ValidatedSpec) -> Result<LongLivedCell, SandboxError> {
        let spec = spec.spec();
        let Some(factory) = self.factory.clone() else {
            return Err(SandboxError::prepare(
                "create a long-lived cell",
                std::io::Error::other("long-lived cells need a spawner (the daemon has one)"),
            ));
        };
        self.admit(spec)?;
        let identity = self.take_identity()?;
        let shape = CellShape::of(spec);
        // A warm cell of the same shape is as good as a new one: it has had no run.
        let warm = match &self.warm {
            Some(pool) if shape.poolable() => pool.take(&shape),
            _ => None,
        };
        let mut cell = match warm {
            Some(cell) => cell,
            None => factory.prepare(&shape)?,
        };
        cell.identity = identity;
        let mut live = LongLivedCell {
            factory,
            cell: None,
            shape,
            ended: None,
            execs: 0,
        };
        if let Some(cg) = cell.cgroup.as_mut() {
            if let Err(e) = cg.activate(&cgroup_limits(spec)) {
                live.cell = Some(cell);
                return Err(e.into());
            }
        }
        let set_up = hold(&cell);
        live.cell = Some(cell);
        set_up?;
        Ok(live)
    }

    /// Runs one exec in `cell`: `spec` must be of the cell's shape (made from the spec the
    /// cell was created with); its argv, env, cwd, stdin and time and output limits are the
    /// exec's. Waits for a cell permit like any run. Never panics; failures are verdict XX.
    pub fn exec_in(
        &self,
        cell: &mut LongLivedCell,
        spec: &ValidatedSpec,
        on_event: &mut dyn FnMut(RunEvent<'_>),
        cancel: Option<&CancelToken>,
    ) -> RunResult {
        let Some(_permit) = self.permits.acquire(cancel) else {
            let mut r = RunResult::sandbox_error("cancelled before start");
            r.verdict = Verdict::CANCELLED;
            return r;
        };
        match cell.exec(spec.spec(), on_event, cancel) {
            Ok(result) => result,
            Err(e) => RunResult::sandbox_error(e.to_string()),
        }
    }
}

/// The root of the cell whose PID 1 is `pid`, as PID 1 sees it (`O_PATH`). PID 1 is this
/// process's unreaped child while its cell lives: its pid cannot name anyone else.
fn proc_root(pid: libc::pid_t) -> rustix::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        format!("/proc/{pid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Tells a prepared cell's PID 1 to hold for execs and waits until it has (its set-up
/// done) or has died (the set-up failure it reported comes back).
fn hold(cell: &Cell) -> Result<(), SandboxError> {
    let set_up = |e: std::io::Error| SandboxError::prepare(SET_UP, e);
    let control = cell
        .control
        .as_ref()
        .ok_or_else(|| set_up(std::io::Error::other("the cell has no control socket")))?;
    let (ready, ready_w) = ipc::pipe("ready")?;
    // The cell may already have died: its report says why.
    let sent = ipc::send(control.as_fd(), exec_loop::HOLD, &[ready_w.as_fd()]);
    drop(ready_w);
    if sent.is_ok() {
        // PID 1 closes its copy of `ready_w` once it holds; it closes too if PID 1 dies.
        let mut fds = [PollFd::new(ready.as_fd(), PollFlags::POLLIN)];
        let ms = SET_UP_WITHIN.as_millis() as i32;
        if matches!(
            poll(
                &mut fds,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            ),
            Ok(0)
        ) {
            return Err(set_up(std::io::Error::from_raw_os_error(libc::ETIMEDOUT)));
        }
    }
    if let Some(report) = failure_report(cell) {
        return Err(set_up(std::io::Error::other(report)));
    }
    if !alive(cell) {
        return Err(set_up(std::io::Error::other(
            "the cell's PID 1 died while setting up",
        )));
    }
    Ok(())
}

/// The set-up failure the cell's PID 1 reported, if it did.
fn failure_report(cell: &Cell) -> Option<String> {
    let mut buf = [0u8; 256];
    let mut fds = [PollFd::new(cell.errors.as_fd(), PollFlags::POLLIN)];
    if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
        return None;
    }
    let n = sys::read(cell.errors.as_raw_fd(), &mut buf).ok()?;
    child::decode_report(&buf[..n])
        .map(|(label, errno)| format!("{label}: {}", std::io::Error::from_raw_os_error(errno)))
}

fn alive(cell: &Cell) -> bool {
    let mut fds = [PollFd::new(cell.pidfd.as_fd(), PollFlags::POLLIN)];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
}

impl LongLivedCell {
    /// Why the cell ended, or `None` while it lives (a dead PID 1 is noticed here).
    pub fn ended(&mut self) -> Option<&str> {
        if self.ended.is_none() && !self.cell.as_ref().is_some_and(alive) {
            self.end_because("the cell's PID 1 died");
        }
        self.ended.as_deref()
    }

    /// How many execs were started in the cell.
    pub fn execs(&self) -> u64 {
        self.execs
    }

    /// The cell's PID 1 (host pid) while it lives.
    pub fn pid(&self) -> Option<libc::pid_t> {
        self.cell.as_ref().map(|c| c.pid)
    }

    /// The host ids that own the program's files in the cell (its own, or the spec's).
    pub fn owner(&self) -> (u32, u32) {
        match self.cell.as_ref().and_then(|c| c.identity.as_ref()) {
            Some(lease) => (lease.ids.uid, lease.ids.gid),
            None => (self.shape.uid, self.shape.gid),
        }
    }

    /// The cell's work dir (absolute, inside the cell).
    pub fn work_dir(&self) -> &str {
        &self.shape.work_dir
    }

    /// CPU and memory used by the cell so far (from its cgroup; zero without one).
    pub fn usage(&self) -> CellUsage {
        let cg = self.cell.as_ref().and_then(|c| c.cgroup.as_ref());
        CellUsage {
            cpu_time_ms: cg
                .and_then(CellCgroup::cpu_usage)
                .map_or(0, |d| d.as_millis() as u64),
            memory_peak_bytes: cg.and_then(CellCgroup::memory_peak),
            disk_bytes: self.disk_used(),
        }
    }

    /// What the cell's writable tmpfs layers hold (0 when the cell has ended).
    fn disk_used(&self) -> u64 {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let Some(Ok(root)) = self.pid().map(proc_root) else {
            return 0;
        };
        [self.shape.work_dir.as_str(), "/tmp", "/dev/shm"]
            .iter()
            .filter_map(|dir| {
                let fd = rustix::fs::openat2(
                    &root,
                    *dir,
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
                )
                .ok()?;
                let fs = rustix::fs::fstatfs(&fd).ok()?;
                Some((fs.f_blocks - fs.f_bfree) as u64 * fs.f_bsize as u64)
            })
            .sum()
    }

    /// The cell's root directory as the cell sees it (`/proc/PID/root` of its PID 1), for
    /// file transfers; opened with `O_PATH`. Resolve paths beneath it with `RESOLVE_IN_ROOT`.
    pub fn open_root(&mut self) -> std::io::Result<OwnedFd> {
        if let Some(why) = self.ended() {
            return Err(std::io::Error::other(why.to_string()));
        }
        Ok(proc_root(self.pid().unwrap_or(0))?)
    }

    /// Ends the cell now: PID 1 and every process of the cell are killed, the rest of the
    /// teardown is the janitor's.
    pub fn end(mut self, why: &str) {
        self.end_because(why);
    }

    fn end_because(&mut self, why: &str) {
        if self.ended.is_none() {
            self.ended = Some(why.to_string());
        }
        if let Some(cell) = self.cell.take() {
            let _ = sys::pidfd_send_signal(cell.pidfd.as_fd(), libc::SIGKILL);
            self.factory.janitor.adopt(Finished {
                pid: cell.pid,
                pidfd: cell.pidfd,
                cgroup: cell.cgroup,
                reaped: false,
                _identity: cell.identity,
            });
        }
    }

    fn exec(
        &mut self,
        spec: &RunSpec,
        on_event: &mut dyn FnMut(RunEvent<'_>),
        cancel: Option<&CancelToken>,
    ) -> Result<RunResult, SandboxError> {
        let send = |e: std::io::Error| SandboxError::prepare("send the exec to the cell", e);
        if let Some(why) = self.ended() {
            return Err(send(std::io::Error::other(format!(
                "the cell has ended: {why}"
            ))));
        }
        if CellShape::of(spec) != self.shape {
            return Err(send(std::io::Error::other(
                "the exec asks for another cell (rootfs, user, work dir or disk)",
            )));
        }
        let Some(cell) = self.cell.as_ref() else {
            return Err(send(std::io::Error::other("the cell has ended")));
        };
        let control = cell
            .control
            .as_ref()
            .ok_or_else(|| send(std::io::Error::other("the cell has no control socket")))?;
        let (stdout, stdout_w) = ipc::output_pipe("stdout")?;
        let (stderr, stderr_w) = ipc::output_pipe("stderr")?;
        let (errors, errors_w) = ipc::pipe("error")?;
        let (status, status_w) = ipc::pipe("status")?;
        let stdin = open_stdin(&spec.stdin)?;
        let ids = cell.identity.as_ref().map(|l| l.ids);
        let message = go::encode(spec, ids).map_err(send)?;
        let base = Baseline::of(cell.cgroup.as_ref());
        ipc::send(
            control.as_fd(),
            exec_loop::EXEC,
            &[
                stdin.as_fd(),
                message.as_fd(),
                stdout_w.as_fd(),
                stderr_w.as_fd(),
                errors_w.as_fd(),
                status_w.as_fd(),
            ],
        )
        .map_err(send)?;
        drop((stdin, message, stdout_w, stderr_w, errors_w, status_w));
        self.execs += 1;
        let started = Instant::now();
        on_event(RunEvent::Started);
        let observed = supervisor::supervise(
            Watch {
                pid: cell.pid,
                pidfd: cell.pidfd.as_fd(),
                stdout,
                stderr,
                errors,
                status,
                cancel: cancel.map(CancelToken::as_fd),
                cgroup: cell.cgroup.as_ref(),
                started,
                wall_time: spec.limits.wall_time,
                cpu_time: spec.limits.cpu_time,
                output_limit: spec.limits.output,
                keep_output: spec.keep_output,
                early_finish: true,
                exec_control: Some(control.as_fd()),
                cpu_base: base.cpu,
            },
            on_event,
        );
        let pid1_died = observed.reaped.is_some();
        let mut result = judge(&observed, cell.cgroup.as_ref(), spec, base);
        if pid1_died {
            // Reaped by the supervisor: the janitor must not wait for it again.
            if let Some(cell) = self.cell.take() {
                self.factory.janitor.adopt(Finished {
                    pid: cell.pid,
                    pidfd: cell.pidfd,
                    cgroup: cell.cgroup,
                    reaped: true,
                    _identity: cell.identity,
                });
            }
            // The OOM killer may pick PID 1 itself: the cell then ended out of memory.
            self.ended = Some(if result.verdict == Verdict::MLE {
                OUT_OF_MEMORY.into()
            } else {
                "the cell's PID 1 died".into()
            });
            if result.verdict != Verdict::MLE {
                result.verdict = Verdict::XX;
                result.message = Some("the cell ended during the exec".into());
            }
        }
        if result.verdict == Verdict::MLE {
            self.end_because(OUT_OF_MEMORY);
        } else if observed.status_report.len() < 4 && observed.error_report.is_empty() {
            // The program was not reported: PID 1 is stuck or gone; the cell is unusable.
            self.end_because("the cell stopped answering");
        }
        Ok(result)
    }
}

impl Drop for LongLivedCell {
    fn drop(&mut self) {
        self.end_because("dropped");
    }
}
