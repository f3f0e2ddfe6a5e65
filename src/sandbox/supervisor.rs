//! The parent's side of a run: one poll loop that captures output with hard caps, enforces
//! wall and CPU time, watches for cancellation, and notices the cell's PID 1 exiting.
//!
//! Output past the cap is never buffered: the run is marked OLE and the cell is killed at
//! once (reading the rest would only waste time). Everything captured before a kill is kept.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::cgroup::CellCgroup;
use super::launcher::RunEvent;
use super::sys::{self, Waited};
use super::{exec_loop, ipc};
use crate::result::Captured;

/// Why the supervisor killed the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KillReason {
    WallTime,
    CpuTime,
    Output,
    Cancelled,
}

/// What the supervisor watches.
pub(super) struct Watch<'a> {
    pub pid: libc::pid_t,
    pub pidfd: BorrowedFd<'a>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub errors: OwnedFd,
    pub status: OwnedFd,
    pub cancel: Option<BorrowedFd<'a>>,
    pub cgroup: Option<&'a CellCgroup>,
    pub started: Instant,
    pub wall_time: Duration,
    pub cpu_time: Option<Duration>,
    pub output_limit: u64,
    /// Keep the output in [`Observed`]; otherwise only count it (streaming callers).
    pub keep_output: bool,
    /// Finish once the program's status is in and its output streams are closed, without
    /// waiting for PID 1 to exit (its namespace teardown can take milliseconds); the caller
    /// reaps PID 1 later and reads usage from the cgroup.
    pub early_finish: bool,
    /// An exec in a long-lived cell (`exec_loop.rs`): PID 1's control socket. The run ends
    /// when the program's status is in (PID 1 lives on), and a kill asks PID 1 to kill the
    /// program's process group instead of killing the cell.
    pub exec_control: Option<BorrowedFd<'a>>,
    /// CPU time the cell's cgroup had used before this run (earlier execs).
    pub cpu_base: Duration,
}

/// What the supervisor saw.
pub(super) struct Observed {
    pub killed: Option<KillReason>,
    pub stdout: Captured,
    pub stderr: Captured,
    /// Bytes from the error pipe (a setup-failure report when non-empty).
    pub error_report: Vec<u8>,
    /// Bytes from the status pipe (the program's wait status when complete).
    pub status_report: Vec<u8>,
    /// wait4 of the cell's PID 1 (rusage covers every reaped process of the cell); `None`
    /// after an early finish.
    pub reaped: Option<Waited>,
    pub wall: Duration,
}

/// How long to keep reading pipes after PID 1 exited (every writer is dead by then; this
/// only guards against a descriptor leaked to a process outside the cell).
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long an exec's output is read after its program ended: a process it left in the
/// background may hold its stdout open for the cell's whole life.
const EXEC_DRAIN_GRACE: Duration = Duration::from_millis(200);
/// How long to wait for a killed cell's PID 1 to be reported dead.
const KILL_GRACE: Duration = Duration::from_secs(10);
/// At most this much per read: a quarter of an output pipe (`ipc::output_pipe`), so a
/// pass-through run's buffer stays small; a full read is followed by the next at once.
const READ_CHUNK: usize = 256 * 1024;
/// While output streams, how long to let it pile up in the pipe before the next read. A
/// program writing in small pieces (4 KiB from `head`, a line from a print loop) otherwise
/// wakes this loop for every piece, because the reader empties the pipe each time: 64 MiB
/// cost ~16,000 wake-ups (poll, read, pass on) and ~40 % more wall time than the program
/// writing to a file itself. The first read of a burst is never delayed, so a program that
/// prints once and exits pays nothing, and neither is a read after one that filled the
/// buffer (more is waiting).
const COALESCE: Duration = Duration::from_millis(1);

struct Stream {
    fd: Option<OwnedFd>,
    captured: Captured,
    /// Bytes accepted so far (kept in `captured` or only counted).
    seen: u64,
    keep: bool,
}

impl Stream {
    fn new(fd: OwnedFd, keep: bool) -> Self {
        Stream {
            fd: Some(fd),
            captured: Captured::default(),
            seen: 0,
            keep,
        }
    }

    /// Reads what is available; returns the newly captured bytes' range and whether the
    /// cap was passed.
    fn read(&mut self, buf: &mut [u8], limit: u64) -> (std::ops::Range<usize>, bool) {
        let Some(fd) = &self.fd else {
            return (0..0, false);
        };
        match sys::read(fd.as_raw_fd(), buf) {
            Ok(0) => {
                self.fd = None;
                (0..0, false)
            }
            Ok(n) => {
                let room = limit.saturating_sub(self.seen) as usize;
                let keep = n.min(room);
                self.seen += keep as u64;
                if self.keep {
                    self.captured.bytes.extend_from_slice(&buf[..keep]);
                }
                let over = n > room;
                if over {
                    self.captured.truncated = true;
                }
                (0..keep, over)
            }
            Err(libc::EAGAIN) | Err(libc::EINTR) => (0..0, false),
            Err(_) => {
                self.fd = None;
                (0..0, false)
            }
        }
    }
}

/// A small pipe read completely (error and status reports).
struct Report {
    fd: Option<OwnedFd>,
    bytes: Vec<u8>,
}

impl Report {
    fn read(&mut self, buf: &mut [u8]) {
        let Some(fd) = &self.fd else { return };
        match sys::read(fd.as_raw_fd(), buf) {
            Ok(0) => self.fd = None,
            Ok(n) => {
                if self.bytes.len() < 256 {
                    self.bytes.extend_from_slice(&buf[..n]);
                }
            }
            Err(libc::EAGAIN) | Err(libc::EINTR) => {}
            Err(_) => self.fd = None,
        }
    }
}

fn set_nonblocking(fd: &OwnedFd) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    if let Ok(flags) = fcntl(fd, FcntlArg::F_GETFL) {
        let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
        let _ = fcntl(fd, FcntlArg::F_SETFL(flags));
    }
}

fn readable(fd: &PollFd<'_>) -> bool {
    fd.revents()
        .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// Runs the poll loop until the cell's PID 1 has exited and its pipes are drained.
pub(super) fn supervise(w: Watch<'_>, on_event: &mut dyn FnMut(RunEvent<'_>)) -> Observed {
    for fd in [&w.stdout, &w.stderr, &w.errors, &w.status] {
        set_nonblocking(fd);
    }
    let mut out = Stream::new(w.stdout, w.keep_output);
    let mut err = Stream::new(w.stderr, w.keep_output);
    let mut errors = Report {
        fd: Some(w.errors),
        bytes: Vec::new(),
    };
    let mut status = Report {
        fd: Some(w.status),
        bytes: Vec::new(),
    };
    let mut buf = vec![0u8; READ_CHUNK];
    let deadline = w.started + w.wall_time;
    let mut killed: Option<KillReason> = None;
    let mut reaped: Option<Waited> = None;
    let mut exited_at: Option<Instant> = None;
    let mut killed_at: Option<Instant> = None;
    // The cell's CPU time is read at most once per poll interval, not on every wake-up:
    // a program streaming output wakes this loop for every pipe buffer.
    let cpu_interval = cpu_poll_interval(w.cpu_time);
    let mut next_cpu_check = w.started;
    // Whether the last wake-up read program output (see COALESCE).
    let mut streaming = false;
    let pidfd = w.pidfd;
    let cgroup = w.cgroup;
    let exec_control = w.exec_control;
    let drain_grace = if exec_control.is_some() {
        EXEC_DRAIN_GRACE
    } else {
        DRAIN_GRACE
    };
    let kill = |reason: KillReason, killed: &mut Option<KillReason>, at: &mut Option<Instant>| {
        if killed.is_none() {
            *killed = Some(reason);
            *at = Some(Instant::now());
        }
        match exec_control {
            Some(control) => {
                let _ = ipc::send(control, exec_loop::KILL, &[]);
            }
            None => {
                let _ = sys::pidfd_send_signal(pidfd, libc::SIGKILL);
                if let Some(cg) = cgroup {
                    let _ = cg.kill_all();
                }
            }
        }
    };

    loop {
        let now = Instant::now();
        if reaped.is_none() && killed.is_none() {
            if now >= deadline {
                kill(KillReason::WallTime, &mut killed, &mut killed_at);
            } else if let (Some(limit), Some(cg), true) =
                (w.cpu_time, w.cgroup, now >= next_cpu_check)
            {
                next_cpu_check = now + cpu_interval;
                if cg
                    .cpu_usage()
                    .is_some_and(|used| used.saturating_sub(w.cpu_base) >= limit)
                {
                    kill(KillReason::CpuTime, &mut killed, &mut killed_at);
                }
            }
        }
        let pipes_open =
            out.fd.is_some() || err.fd.is_some() || errors.fd.is_some() || status.fd.is_some();
        if w.early_finish
            && killed.is_none()
            && exited_at.is_none()
            && status.bytes.len() >= 4
            && out.fd.is_none()
            && err.fd.is_none()
            && errors.fd.is_none()
        {
            exited_at = Some(now);
            break;
        }
        if exec_control.is_some() && exited_at.is_none() && status.fd.is_none() {
            // PID 1 reported the exec's program (or its failure to start) and closed the
            // exec's status pipe: what is left is draining its output.
            exited_at = Some(now);
        }
        match exited_at {
            Some(t) if !pipes_open || now >= t + drain_grace => break,
            _ => {}
        }
        if exited_at.is_none() && killed_at.is_some_and(|t| now >= t + KILL_GRACE) {
            // PID 1 did not die after SIGKILL (stuck in the kernel): stop waiting for it.
            break;
        }

        let timeout = match (exited_at, killed) {
            (Some(t), _) => (t + drain_grace).saturating_duration_since(now),
            // Killed: PID 1 is going away; wait for pidfd without busy looping.
            (None, Some(_)) => Duration::from_millis(100),
            (None, None) => {
                let mut t = deadline.saturating_duration_since(now);
                if w.cpu_time.is_some() && w.cgroup.is_some() {
                    t = t.min(next_cpu_check.saturating_duration_since(now));
                }
                t
            }
        };

        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(6);
        let mut slots: [Option<usize>; 6] = [None; 6];
        let sources: [Option<BorrowedFd<'_>>; 6] = [
            out.fd.as_ref().map(|f| f.as_fd()),
            err.fd.as_ref().map(|f| f.as_fd()),
            errors.fd.as_ref().map(|f| f.as_fd()),
            status.fd.as_ref().map(|f| f.as_fd()),
            reaped.is_none().then_some(w.pidfd),
            if killed.is_none() { w.cancel } else { None },
        ];
        for (i, src) in sources.iter().enumerate() {
            if let Some(fd) = src {
                slots[i] = Some(fds.len());
                fds.push(PollFd::new(*fd, PollFlags::POLLIN));
            }
        }
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        let ms = if timeout > Duration::ZERO && ms == 0 {
            1
        } else {
            ms
        };
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
        let ready: [bool; 6] = std::array::from_fn(|i| slots[i].is_some_and(|j| readable(&fds[j])));
        drop(fds);

        let mut got_output = false;
        let mut got_full = false;
        if ready[0] {
            let (range, over) = out.read(&mut buf, w.output_limit);
            if !range.is_empty() {
                got_output = true;
                got_full |= range.len() == buf.len();
                on_event(RunEvent::Stdout(&buf[range]));
            }
            if over {
                kill(KillReason::Output, &mut killed, &mut killed_at);
            }
        }
        if ready[1] {
            let (range, over) = err.read(&mut buf, w.output_limit);
            if !range.is_empty() {
                got_output = true;
                got_full |= range.len() == buf.len();
                on_event(RunEvent::Stderr(&buf[range]));
            }
            if over {
                kill(KillReason::Output, &mut killed, &mut killed_at);
            }
        }
        if ready[2] {
            errors.read(&mut buf);
        }
        if ready[3] {
            status.read(&mut buf);
        }
        if ready[4] {
            if let Ok(waited) = sys::wait4(w.pid, libc::__WALL) {
                reaped = Some(waited);
                exited_at = Some(Instant::now());
            }
        }
        if ready[5] {
            kill(KillReason::Cancelled, &mut killed, &mut killed_at);
        }
        let still_running = reaped.is_none() && killed.is_none() && exited_at.is_none();
        if got_output && streaming && !got_full && still_running {
            std::thread::sleep(COALESCE.min(deadline.saturating_duration_since(Instant::now())));
        }
        streaming = got_output;
    }

    let wall = exited_at.unwrap_or_else(Instant::now) - w.started;
    if reaped.is_none() && exec_control.is_none() {
        // PID 1 did not go away in time: try once more without blocking.
        let _ = sys::pidfd_send_signal(w.pidfd, libc::SIGKILL);
        reaped = sys::wait4(w.pid, libc::__WALL | libc::WNOHANG)
            .ok()
            .filter(|w| w.pid > 0);
    }
    Observed {
        killed,
        stdout: out.captured,
        stderr: err.captured,
        error_report: errors.bytes,
        status_report: status.bytes,
        reaped,
        wall,
    }
}

/// How often to sample the cgroup's CPU usage: often enough that a CPU limit is noticed
/// within a few percent, rarely enough to cost nothing.
fn cpu_poll_interval(limit: Option<Duration>) -> Duration {
    let limit = limit.unwrap_or(Duration::from_secs(1));
    (limit / 20).clamp(Duration::from_millis(5), Duration::from_millis(100))
}
