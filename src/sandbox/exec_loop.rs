//! PID 1 of a long-lived cell: it serves execs, one at a time, until the launcher hangs up.
//!
//! A prepared cell whose first message is [`HOLD`] instead of a run never exits after a
//! program: it forks each exec's program with that exec's own pipes, reports its wait
//! status on that exec's status pipe, and waits for the next message. Between execs it
//! reaps whatever the programs left running in the background (they may keep running: a
//! server started by one exec answers the next). The cell ends when the launcher closes
//! the control socket (or kills PID 1): the kernel then kills every process of the pid
//! namespace.
//!
//! PID 1 was cloned by the single-threaded spawner, so it may allocate (threading rule 2 in
//! `sandbox/mod.rs`); only the program process walks raw-syscall steps. Unlike a one-run
//! PID 1 it keeps its capabilities (it sets up every program's identity), so it makes
//! itself non-dumpable: a program (another uid, no capabilities) cannot inspect or ptrace
//! it.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use super::child::{self, Label, MAX_BIND_SLOTS};
use super::ipc::{self, Received};
use super::pid1::{self, Awaited};
use super::shape::CellShape;
use super::sys::{self, Errno};
use super::{go, plan};

/// The first message to a long-lived cell (instead of a run): hold for execs. It carries
/// one descriptor, which PID 1 closes once it holds (the launcher's sign that the cell is
/// set up).
pub(super) const HOLD: &[u8] = b"hold";
/// The message that starts an exec: descriptors stdin, run message, stdout, stderr, error
/// pipe and status pipe (write ends).
pub(super) const EXEC: &[u8] = b"exec";
/// The message that kills the running exec's program (its whole process group).
pub(super) const KILL: &[u8] = b"kill";
/// Descriptors an [`EXEC`] message carries.
pub(super) const EXEC_FDS: usize = 6;

/// How often idle PID 1 reaps orphans left by earlier execs.
const IDLE_REAP_MS: u16 = 1000;

/// The exec whose program is running.
struct Running {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    status: OwnedFd,
}

/// Serves execs, starting with `first`. Never returns.
/// The cell's own pipes (set-up failures, one-run programs) stay open and unused: each exec
/// brings its own.
pub(super) fn serve(awaited: &Awaited<'_>, first: Received) -> ! {
    let _ = sys::prctl(libc::PR_SET_DUMPABLE, 0, 0);
    let _ = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0);
    let mut running: Option<Running> = None;
    let mut next = Some(first);
    loop {
        if let Some(message) = next.take() {
            if message.bytes.is_empty() && message.fds.is_empty() {
                // The launcher hung up: the cell ends with PID 1.
                sys::exit(0);
            }
            handle(awaited, message, &mut running);
        }
        let control = awaited.control;
        let mut fds = vec![PollFd::new(control, PollFlags::POLLIN)];
        if let Some(r) = &running {
            fds.push(PollFd::new(r.pidfd.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if running.is_some() {
            PollTimeout::NONE
        } else {
            PollTimeout::from(IDLE_REAP_MS)
        };
        let _ = poll(&mut fds, timeout);
        let control_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        drop(fds);
        reap(&mut running);
        if control_ready {
            match ipc::recv(control, 64) {
                Ok(message) => next = Some(message),
                Err(_) => sys::exit(0),
            }
        }
    }
}

/// Starts an exec, or kills the running one; anything else is ignored (its descriptors
/// are closed).
fn handle(awaited: &Awaited<'_>, message: Received, running: &mut Option<Running>) {
    if message.bytes == KILL {
        if let Some(r) = running {
            // The program leads its own session and process group (Step::NewSession).
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(r.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(r.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        return;
    }
    if message.bytes != EXEC || running.is_some() {
        return;
    }
    let Ok::<[OwnedFd; EXEC_FDS], _>([stdin, run, stdout, stderr, errors, status]) =
        message.fds.try_into()
    else {
        return;
    };
    // Report failures above 0-2 too: the program's first steps overwrite those.
    let errors = pid1::above_stdio(&errors).unwrap_or(errors);
    match start(awaited, stdin, run, [stdout, stderr], &errors) {
        Ok((pid, pidfd)) => *running = Some(Running { pid, pidfd, status }),
        Err(failed) => {
            let (label, errno) = *failed;
            let _ = sys::write_all(errors.as_raw_fd(), &child::encode_report(&label, errno));
        }
    }
}

/// Decodes the exec's run, forks its program and returns its pid and a pidfd for it.
fn start(
    awaited: &Awaited<'_>,
    stdin: OwnedFd,
    run: OwnedFd,
    [stdout, stderr]: [OwnedFd; 2],
    errors: &OwnedFd,
) -> Result<(libc::pid_t, OwnedFd), Box<(Label, Errno)>> {
    let fail = |what: &str, errno: Errno| Box::new((Label::text(what), errno));
    let (spec, ids) = go::decode(run).map_err(|e| fail(DECODE, errno_of(&e)))?;
    if CellShape::of(&spec).key() != awaited.key {
        return Err(fail(SHAPE, libc::EINVAL));
    }
    // The work dir belongs to the program's host ids (files sent with the exec, if any).
    let mut slots: [RawFd; MAX_BIND_SLOTS] = [-1; MAX_BIND_SLOTS];
    let steps = plan::run_file_steps(&spec, ids, None);
    child::try_apply_all(&steps, &mut slots).map_err(|(step, errno)| {
        let mut label = Label::new();
        step.label(&mut label);
        Box::new((label, errno))
    })?;
    let moved = |fd: OwnedFd| pid1::above_stdio(&fd).map_err(|errno| fail(RECEIVE, errno));
    let (stdin, stdout, stderr) = (moved(stdin)?, moved(stdout)?, moved(stderr)?);
    let fds: [RawFd; 3] = [stdin.as_raw_fd(), stdout.as_raw_fd(), stderr.as_raw_fd()];
    let program = awaited.program_plan(&spec, ids, fds, errors.as_raw_fd());
    let mut stack = vec![0u8; child::PROGRAM_STACK];
    let pid =
        child::spawn_program(&program, &mut stack).map_err(|errno| fail(child::FORK, errno))?;
    // The program has exec'd (or reported its failure and exited): PID 1's copies of its
    // stdio and error pipe close here, so the launcher sees them end with the program.
    drop((stdin, stdout, stderr));
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_raw(pid).ok_or_else(|| fail(child::FORK, libc::ESRCH))?,
        rustix::process::PidfdFlags::empty(),
    )
    .map_err(|e| fail(WATCH, e.raw_os_error()))?;
    Ok((pid, pidfd))
}

const DECODE: &str = "read the exec message";
const RECEIVE: &str = "receive the exec";
const SHAPE: &str = "check the exec against the cell";
const WATCH: &str = "watch the program";

fn errno_of(e: &std::io::Error) -> Errno {
    e.raw_os_error().unwrap_or(libc::EINVAL)
}

/// Reaps every exited process; the running program's status goes to its exec's status
/// pipe, which then closes.
fn reap(running: &mut Option<Running>) {
    loop {
        match sys::wait4(-1, libc::__WALL | libc::WNOHANG) {
            Ok(w) if w.pid > 0 => {
                if running.as_ref().is_some_and(|r| r.pid == w.pid) {
                    if let Some(r) = running.take() {
                        let _ = sys::write_all(r.status.as_raw_fd(), &w.status.to_ne_bytes());
                    }
                }
            }
            _ => return,
        }
    }
}
