//! PID 1 of a prepared cell: sets the cell up ahead of its run, waits for the run, writes the
//! run's files, forks the program and reaps.
//!
//! Prepared cells are cloned by the spawner process (see `spawner.rs`), which is
//! single-threaded, so unlike `child::init_main` this process may allocate: it decodes the
//! run message and builds the program's steps itself, with the same builders the launcher
//! uses. The program process still only walks its prepared step list.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use super::child::{self, ChildPlan, Label, MAX_BIND_SLOTS};
use super::seccomp::CompiledPolicy;
use super::shape::CellShape;
use super::sys;
use super::{go, ipc, mounts, plan};

const RECEIVE: &str = "receive the run";
const DECODE: &str = "read the run message";
const SHAPE: &str = "check the run against the prepared cell";

/// Everything PID 1 of a prepared cell needs, built in the spawner before the clone.
pub(super) struct PreparedPlan {
    pub init_steps: Vec<child::Step>,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    pub errors: OwnedFd,
    pub status: OwnedFd,
    /// The cell's end of the control socket the run arrives on.
    pub control: OwnedFd,
    /// The key of the cell's shape; a run of another shape is refused.
    pub key: String,
    pub policy: Option<Arc<CompiledPolicy>>,
    pub have_cgroup: bool,
    pub last_cap: u32,
}

fn errno_of(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EINVAL)
}

/// Entry point of PID 1 of a prepared cell, right after clone3. Never returns.
pub(super) fn init_main(plan: &PreparedPlan) -> ! {
    let error_fd = plan.errors.as_raw_fd();
    // Named apart from the spawner it was cloned from (ps, top).
    let _ = nix::sys::prctl::set_name(c"sandcell-cell");
    let mut slots = [-1; MAX_BIND_SLOTS];
    child::apply_all(error_fd, &plan.init_steps, &mut slots);

    // Set up; now wait for the run. End of stream: the cell was discarded unused.
    let received = match ipc::recv(plan.control.as_fd(), 64) {
        Ok(r) if r.bytes.is_empty() && r.fds.is_empty() => sys::exit(0),
        Ok(r) => r,
        Err(e) => child::fail(error_fd, &Label::text(RECEIVE), errno_of(&e)),
    };
    let Ok([stdin, message]) = <[OwnedFd; 2]>::try_from(received.fds) else {
        child::fail(error_fd, &Label::text(RECEIVE), libc::EINVAL)
    };
    let mut spec = match go::decode(message) {
        Ok(spec) => spec,
        Err(e) => child::fail(error_fd, &Label::text(DECODE), errno_of(&e)),
    };
    if CellShape::of(&spec).key() != plan.key {
        child::fail(error_fd, &Label::text(SHAPE), libc::EINVAL);
    }
    // Keep stdin above 0-2, which the program's DupOnto steps overwrite.
    let stdin = match nix::fcntl::fcntl(&stdin, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3)) {
        Ok(fd) => sys::own_fd(fd),
        Err(e) => child::fail(error_fd, &Label::text(RECEIVE), e as i32),
    };

    let files = mounts::file_steps(&spec);
    child::apply_all(error_fd, &files, &mut slots);
    drop(files);
    spec.files = Vec::new();

    let fds: [RawFd; 3] = [
        stdin.as_raw_fd(),
        plan.stdout.as_raw_fd(),
        plan.stderr.as_raw_fd(),
    ];
    let program = ChildPlan {
        init_steps: Vec::new(),
        program_steps: plan::program_steps(
            &spec,
            plan.policy.clone(),
            plan.have_cgroup,
            plan.last_cap,
            fds,
        ),
        error_fd,
        status_fd: plan.status.as_raw_fd(),
        reaper_closes: vec![fds[0], fds[1], fds[2], plan.control.as_raw_fd()],
    };
    drop(spec);
    let mut stack = vec![0u8; child::PROGRAM_STACK];
    // Never returns: `stdin` and the plan's descriptors stay open for the fork; the reaper
    // closes its copies by number.
    child::start_program(&program, &mut stack)
}
