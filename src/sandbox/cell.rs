//! A cell's life after its PID 1 was cloned, the same whoever cloned it: [`Cell::start`]
//! (limits activated, stdin and the run delivered), [`Cell::supervise`] (output, limits,
//! the verdict) and the teardown (inline, or handed to the janitor).

use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::cgroup::CellCgroup;
use super::child;
use super::identity::Lease;
use super::janitor::{Finished, Janitor};
use super::launcher::{open_stdin, CancelToken, RunEvent};
use super::plan::cgroup_limits;
use super::supervisor::{self, KillReason, Observed, Watch};
use super::work_disk::WorkDisk;
use super::{go, ipc, sys, SandboxError};
use crate::result::{RunResult, Verdict};
use crate::spec::RunSpec;

/// A cloned cell: PID 1 and the launcher's ends of its pipes.
pub(super) struct Cell {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub errors: OwnedFd,
    pub status: OwnedFd,
    /// The launcher's end of the socket a run is sent on (cells prepared ahead; a cell
    /// started at its clone has none).
    pub control: Option<OwnedFd>,
    pub cgroup: Option<CellCgroup>,
    /// The program's own host uid/gid while the cell lives (`identity.rs`).
    pub identity: Option<Lease>,
}

/// Who tears a cell down after its run.
pub(super) enum Teardown<'a> {
    /// This thread, before the answer: PID 1 is reaped and the cgroup removed.
    Inline,
    /// The janitor thread, after the answer (usage then comes from the cgroup, so the
    /// answer need not wait for PID 1's namespace teardown).
    Janitor(&'a Janitor),
}

impl Cell {
    /// PID 1 is alive and has reported no failure.
    pub fn usable(&self) -> bool {
        let mut fds = [
            PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(self.errors.as_fd(), PollFlags::POLLIN),
        ];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(0))
    }

    /// Starts `spec` in a cell prepared ahead: writes the run's limits into its cgroup and
    /// sends it the run (stdin, the run message with the host ids of `identity`, which the
    /// cell keeps until its teardown, and, if given, the work disk to attach).
    pub fn start(
        &mut self,
        spec: &RunSpec,
        identity: Option<Lease>,
        work_disk: Option<&WorkDisk>,
    ) -> Result<(), SandboxError> {
        let Some(control) = &self.control else {
            return Err(SandboxError::prepare(
                "send the run to the cell",
                std::io::Error::other("the cell already has its run"),
            ));
        };
        if let Some(cg) = self.cgroup.as_mut() {
            cg.activate(&cgroup_limits(spec))?;
        }
        let stdin = open_stdin(&spec.stdin)?;
        let ids = identity.as_ref().map(|l| l.ids);
        self.identity = identity;
        let message =
            go::encode(spec, ids).map_err(|e| SandboxError::prepare("write the run message", e))?;
        let mut fds = vec![stdin.as_fd(), message.as_fd()];
        fds.extend(work_disk.map(WorkDisk::as_fd));
        ipc::send(control.as_fd(), b"run", &fds)
            .map_err(|e| SandboxError::prepare("send the run to the cell", e))
    }

    /// Supervises the started run until it ends, judges it, calls `before_teardown` with
    /// the result (the cell's mounts still stand: a work disk is read back there) and tears
    /// the cell down.
    pub fn supervise(
        self,
        spec: &RunSpec,
        started: Instant,
        on_event: &mut dyn FnMut(RunEvent<'_>),
        cancel: Option<&CancelToken>,
        teardown: Teardown<'_>,
        before_teardown: &mut dyn FnMut(&RunResult),
    ) -> RunResult {
        let Cell {
            pid,
            pidfd,
            stdout,
            stderr,
            errors,
            status,
            control,
            cgroup,
            identity,
        } = self;
        let observed = supervisor::supervise(
            Watch {
                pid,
                pidfd: pidfd.as_fd(),
                stdout,
                stderr,
                errors,
                status,
                cancel: cancel.map(CancelToken::as_fd),
                cgroup: cgroup.as_ref(),
                started,
                wall_time: spec.limits.wall_time,
                cpu_time: spec.limits.cpu_time,
                output_limit: spec.limits.output,
                keep_output: spec.keep_output,
                early_finish: matches!(teardown, Teardown::Janitor(_)) && cgroup.is_some(),
                exec_control: None,
                cpu_base: Duration::ZERO,
            },
            on_event,
        );
        drop(control);
        let result = judge(&observed, cgroup.as_ref(), spec, Baseline::default());
        before_teardown(&result);
        let finished = Finished {
            pid,
            pidfd,
            cgroup,
            reaped: observed.reaped.is_some(),
            _identity: identity,
        };
        match teardown {
            Teardown::Janitor(janitor) => janitor.adopt(finished),
            Teardown::Inline => tear_down_now(finished),
        }
        result
    }
}

/// Inline teardown: PID 1 (already reaped after a normal end) and the cgroup.
fn tear_down_now(cell: Finished) {
    if !cell.reaped {
        let _ = sys::pidfd_send_signal(cell.pidfd.as_fd(), libc::SIGKILL);
        let _ = sys::wait4(cell.pid, libc::__WALL);
    }
    if let Some(cg) = cell.cgroup {
        if let Err(e) = cg.remove() {
            tracing::warn!("removing the cell's cgroup: {e}");
        }
    }
}

fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// What a cell's cgroup had counted before a run (earlier execs of a long-lived cell):
/// the run is judged on what it added.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Baseline {
    pub cpu: Duration,
    pub oom_kills: u64,
}

impl Baseline {
    pub fn of(cgroup: Option<&CellCgroup>) -> Baseline {
        Baseline {
            cpu: cgroup.and_then(CellCgroup::cpu_usage).unwrap_or_default(),
            oom_kills: cgroup.map_or(0, CellCgroup::oom_kills),
        }
    }
}

/// Turns what the supervisor observed into one verdict with usage.
pub(super) fn judge(
    seen: &Observed,
    cgroup: Option<&CellCgroup>,
    spec: &RunSpec,
    base: Baseline,
) -> RunResult {
    let mut result = RunResult::sandbox_error("");
    result.message = None;
    result.stdout = seen.stdout.clone();
    result.stderr = seen.stderr.clone();
    result.wall_time_ms = seen.wall.as_millis() as u64;
    let rusage_cpu = seen.reaped.map(|w| {
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(w.rusage.ru_utime) + tv(w.rusage.ru_stime)
    });
    let cpu = cgroup
        .and_then(CellCgroup::cpu_usage)
        .map(|used| used.saturating_sub(base.cpu))
        .or(rusage_cpu);
    result.cpu_time_ms = cpu.map_or(0, |d| d.as_millis() as u64);
    result.memory_peak_bytes = cgroup
        .and_then(CellCgroup::memory_peak)
        .or_else(|| seen.reaped.map(|w| w.rusage.ru_maxrss as u64 * 1024));
    let oom = cgroup.map_or(0, CellCgroup::oom_kills) > base.oom_kills;

    if let Some((label, errno)) = child::decode_report(&seen.error_report) {
        let step = if label.is_empty() {
            "set up the cell".to_string()
        } else {
            label
        };
        result.verdict = Verdict::XX;
        let hint = child::failure_hint(&step);
        result.message = Some(format!("{step}: {}{hint}", errno_text(errno)));
        return result;
    }
    let status = seen
        .status_report
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes);
    if let Some(status) = status {
        if libc::WIFEXITED(status) {
            result.exit_code = Some(libc::WEXITSTATUS(status));
        } else if libc::WIFSIGNALED(status) {
            result.signal = Some(libc::WTERMSIG(status));
        }
    }
    let limit_text = |d: Option<Duration>| d.map(crate::spec::format_duration).unwrap_or_default();
    match seen.killed {
        Some(KillReason::Cancelled) => {
            result.verdict = Verdict::CANCELLED;
            result.message = Some("cancelled".into());
        }
        Some(KillReason::Output) => {
            result.verdict = Verdict::OLE;
            result.message = Some(format!(
                "output limit of {} per stream exceeded",
                crate::spec::format_size(spec.limits.output)
            ));
        }
        _ if oom => {
            result.verdict = Verdict::MLE;
            result.message = Some(format!(
                "memory limit of {} exceeded",
                spec.limits
                    .memory
                    .map(crate::spec::format_size)
                    .unwrap_or_default()
            ));
        }
        Some(KillReason::WallTime) => {
            result.verdict = Verdict::TO;
            result.reason = Some("wall".into());
            result.message = Some(format!(
                "wall time limit of {} exceeded",
                limit_text(Some(spec.limits.wall_time))
            ));
        }
        Some(KillReason::CpuTime) => {
            result.verdict = Verdict::TO;
            result.reason = Some("cpu".into());
            result.message = Some(format!(
                "CPU time limit of {} exceeded",
                limit_text(spec.limits.cpu_time)
            ));
        }
        None => match (result.exit_code, result.signal) {
            (Some(0), _) => result.verdict = Verdict::OK,
            (Some(_), _) => result.verdict = Verdict::RE,
            (_, Some(libc::SIGXCPU)) => {
                result.verdict = Verdict::TO;
                result.reason = Some("cpu".into());
                result.message = Some(format!(
                    "CPU time limit of {} exceeded",
                    limit_text(spec.limits.cpu_time)
                ));
            }
            (_, Some(_)) => result.verdict = Verdict::SG,
            (None, None) => {
                result.verdict = Verdict::XX;
                result.message =
                    Some("the cell ended without reporting the program's status".into());
            }
        },
    }
    result
}
