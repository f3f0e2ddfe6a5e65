//! The one program of a cell's PID 1, whoever cloned it: set the cell up (`init_steps`), get
//! the run, write the run's files, fork the program and reap.
//!
//! How the run arrives is the only difference between the two ways to get a cell:
//! - [`Run::Ready`]: cloned by the launcher's own process with the run already known ("prepare
//!   and start at once", `sandcell run`). The files and the program's steps were built before
//!   the clone, so PID 1 allocates nothing (threading rule 1 in `sandbox/mod.rs`: the
//!   launcher's process may have threads).
//! - [`Run::Awaited`]: cloned ahead by the single-threaded spawner ("prepare ahead", the
//!   daemon and the grader). PID 1 waits on its control socket for the run, then decodes it
//!   and builds the program's steps itself, with the same builders (threading rule 2: it may
//!   allocate). Waiting on a socket is also what lets a cell later take another run.
//!
//! The program process only ever walks its prepared step list (`child.rs`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::child::{self, ChildPlan, Label, Step, MAX_BIND_SLOTS};
use super::identity::HostIds;
use super::seccomp::CompiledPolicy;
use super::shape::CellShape;
use super::sys::{self, Errno};
use super::{exec_loop, go, ipc, plan};
use crate::spec::RunSpec;

const RECEIVE: &str = "receive the run";
const DECODE: &str = "read the run message";
const SHAPE: &str = "check the run against the prepared cell";

/// Everything PID 1 needs to set its cell up, built before the clone.
pub(super) struct CellPlan<'a> {
    pub init_steps: Vec<Step>,
    /// Write ends of the cell's pipes (the error pipe is CLOEXEC).
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    pub errors: BorrowedFd<'a>,
    pub status: BorrowedFd<'a>,
    /// What an awaited run needs to build the program's steps.
    pub awaited: Option<Awaited<'a>>,
}

/// A prepared cell's means to receive and check its run.
pub(super) struct Awaited<'a> {
    /// The cell's end of the control socket the run arrives on.
    pub control: BorrowedFd<'a>,
    /// The key of the cell's shape; a run of another shape is refused.
    pub key: String,
    pub policy: Option<Arc<CompiledPolicy>>,
    pub have_cgroup: bool,
    pub last_cap: u32,
}

impl Awaited<'_> {
    /// The program's plan for a run that arrived on the control socket: its steps with the
    /// cell's policy and capabilities, `fds` as its stdin, stdout and stderr (none of them
    /// 0-2, which its steps overwrite). No status pipe and nothing for the reaper to close
    /// yet: the caller sets those.
    pub fn program_plan(
        &self,
        spec: &RunSpec,
        ids: Option<HostIds>,
        fds: [RawFd; 3],
        error_fd: RawFd,
    ) -> ChildPlan {
        ChildPlan {
            program_steps: plan::program_steps(
                spec,
                ids,
                self.policy.clone(),
                self.have_cgroup,
                self.last_cap,
                fds,
            ),
            error_fd,
            status_fd: -1,
            reaper_closes: Vec::new(),
        }
    }
}

/// A descriptor of a received run moved above 0-2 (the program's DupOnto steps overwrite
/// those), close-on-exec.
pub(super) fn above_stdio(fd: &OwnedFd) -> Result<OwnedFd, Errno> {
    rustix::io::fcntl_dupfd_cloexec(fd, 3).map_err(|e| e.raw_os_error())
}

/// A run known when the cell is cloned, with every step built.
pub(super) struct ReadyRun<'a> {
    pub files: Vec<Step>,
    pub program: ChildPlan,
    /// Where the program process runs until it execs ([`child::PROGRAM_STACK`] bytes).
    pub stack: &'a mut [u8],
}

/// How PID 1 gets its run.
pub(super) enum Run<'a, 'b> {
    Ready(&'b mut ReadyRun<'a>),
    Awaited,
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EINVAL)
}

/// Entry point of every cell's PID 1, right after clone3. Never returns.
pub(super) fn main(plan: &CellPlan<'_>, run: Run<'_, '_>) -> ! {
    let error_fd = plan.errors.as_raw_fd();
    let mut slots = [-1; MAX_BIND_SLOTS];
    child::apply_all(error_fd, &plan.init_steps, &mut slots);
    match (run, &plan.awaited) {
        (Run::Ready(run), _) => {
            child::apply_all(error_fd, &run.files, &mut slots);
            child::start_program(&run.program, run.stack)
        }
        (Run::Awaited, Some(awaited)) => await_run(plan, awaited, &mut slots),
        (Run::Awaited, None) => child::fail(error_fd, &Label::text(RECEIVE), libc::EINVAL),
    }
}

/// Waits for the run on the control socket, then starts it like a ready one.
fn await_run(plan: &CellPlan<'_>, awaited: &Awaited<'_>, slots: &mut [RawFd; MAX_BIND_SLOTS]) -> ! {
    let error_fd = plan.errors.as_raw_fd();
    // Named apart from the spawner it was cloned from (ps, top).
    let _ = nix::sys::prctl::set_name(c"sandcell-cell");
    // End of stream: the cell was discarded unused.
    let received = match ipc::recv(awaited.control.as_fd(), 64) {
        Ok(r) if r.bytes.is_empty() && r.fds.is_empty() => sys::exit(0),
        Ok(r) if r.bytes == exec_loop::HOLD => exec_loop::serve(awaited, r),
        Ok(r) => r,
        Err(e) => child::fail(error_fd, &Label::text(RECEIVE), errno_of(&e)),
    };
    let mut fds = received.fds.into_iter();
    let (Some(stdin), Some(message), work_disk, None) =
        (fds.next(), fds.next(), fds.next(), fds.next())
    else {
        child::fail(error_fd, &Label::text(RECEIVE), libc::EINVAL)
    };
    let (mut spec, ids) = match go::decode(message) {
        Ok(run) => run,
        Err(e) => child::fail(error_fd, &Label::text(DECODE), errno_of(&e)),
    };
    if CellShape::of(&spec).key() != awaited.key {
        child::fail(error_fd, &Label::text(SHAPE), libc::EINVAL);
    }
    // Keep stdin above 0-2, which the program's DupOnto steps overwrite.
    let stdin = match nix::fcntl::fcntl(&stdin, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)) {
        Ok(fd) => fd,
        Err(e) => child::fail(error_fd, &Label::text(RECEIVE), e as i32),
    };

    // The work disk's descriptor is owned by its step from here: it closes it once attached.
    let files = plan::run_file_steps(&spec, ids, work_disk.map(IntoRawFd::into_raw_fd));
    spec.files = Vec::new();
    let fds: [RawFd; 3] = [stdin, plan.stdout.as_raw_fd(), plan.stderr.as_raw_fd()];
    let mut program = awaited.program_plan(&spec, ids, fds, error_fd);
    program.status_fd = plan.status.as_raw_fd();
    program.reaper_closes = vec![fds[0], fds[1], fds[2], awaited.control.as_raw_fd()];
    drop(spec);
    let mut stack = vec![0u8; child::PROGRAM_STACK];
    let run = ReadyRun {
        files,
        program,
        stack: &mut stack,
    };
    // Never returns: `stdin` and the plan's descriptors stay open for the fork; the reaper
    // closes its copies by number.
    child::apply_all(error_fd, &run.files, slots);
    child::start_program(&run.program, run.stack)
}
