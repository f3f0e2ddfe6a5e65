//! The cell's side of a run: two flat, ordered step lists prepared entirely in the parent.
//!
//! After clone3 the child (PID 1 of the new pid namespace) applies `init_steps` (descriptors,
//! cgroup, mounts, pivot_root, hostname, loopback), forks the program, and becomes a tiny
//! reaper. The program process applies `program_steps` (stdio, rlimits, identity,
//! capabilities, no_new_privs, seccomp) and ends in execve. Every step is one or two raw
//! syscalls on data built before the clone: no allocation, no locks, no panics. A failing step
//! writes `(phase, index, errno)` into the CLOEXEC error pipe and exits, so the parent can
//! name the exact step (nsjail / bubblewrap style).

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::RawFd;
use std::sync::Arc;

use libc::{c_char, c_ulong};

use super::seccomp::CompiledPolicy;
use super::sys::{self, Errno, SysResult};

/// Bind sources opened with open_tree before pivot_root, at most this many per run.
pub(super) const MAX_BIND_SLOTS: usize = 32;

/// Which step list a failure report refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(super) enum Phase {
    Init = 1,
    Fork = 2,
    Program = 3,
    /// Writing the run's files (prepared cells, after the run arrived).
    Files = 4,
    /// Receiving the run (prepared cells); the index says which part (see `prepared.rs`).
    Go = 5,
}

/// The fixed-size failure record sent over the error pipe.
pub(super) const REPORT_LEN: usize = 12;

pub(super) fn encode_report(phase: Phase, index: usize, errno: Errno) -> [u8; REPORT_LEN] {
    let mut out = [0u8; REPORT_LEN];
    out[0..4].copy_from_slice(&(phase as u32).to_ne_bytes());
    out[4..8].copy_from_slice(&(index as u32).to_ne_bytes());
    out[8..12].copy_from_slice(&errno.to_ne_bytes());
    out
}

pub(super) fn decode_report(bytes: &[u8]) -> Option<(Phase, usize, Errno)> {
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(i..i + 4)?.try_into().ok()?))
    };
    let phase = match word(0)? {
        1 => Phase::Init,
        2 => Phase::Fork,
        3 => Phase::Program,
        4 => Phase::Files,
        5 => Phase::Go,
        _ => return None,
    };
    Some((phase, word(4)? as usize, word(8)? as i32))
}

/// What to exec, with every pointer array built in the parent.
pub(super) struct ExecPlan {
    /// Candidate paths in PATH order (just argv[0] when it contains a `/`).
    pub candidates: Vec<CString>,
    /// The program name as the user wrote it (for messages).
    pub display: String,
    _argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    _env: Vec<CString>,
    env_ptrs: Vec<*const c_char>,
}

impl ExecPlan {
    pub fn new(
        display: String,
        candidates: Vec<CString>,
        argv: Vec<CString>,
        env: Vec<CString>,
    ) -> Self {
        let ptrs = |v: &[CString]| {
            v.iter()
                .map(|s| s.as_ptr())
                .chain(std::iter::once(std::ptr::null()))
                .collect::<Vec<_>>()
        };
        ExecPlan {
            candidates,
            display,
            argv_ptrs: ptrs(&argv),
            env_ptrs: ptrs(&env),
            _argv: argv,
            _env: env,
        }
    }

    /// Tries each candidate like execvp: the first error other than ENOENT/ENOTDIR wins,
    /// EACCES is remembered while later candidates are tried.
    fn exec(&self) -> Errno {
        let mut saved = libc::ENOENT;
        for path in &self.candidates {
            match sys::execve(path, &self.argv_ptrs, &self.env_ptrs) {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => saved = libc::EACCES,
                other => return other,
            }
        }
        saved
    }
}

/// One setup operation of the cell, applied in order.
pub(super) enum Step {
    /// Close every descriptor except these (sorted ascending).
    CloseAllExcept(Vec<RawFd>),
    /// Die with the supervisor.
    ParentDeathSignal,
    /// Write "0" into an open cgroup.procs file: join that cgroup.
    JoinCgroup(RawFd),
    Close(RawFd),
    /// New cgroup namespace rooted at the cell's cgroup (after joining it).
    UnshareCgroupNamespace,
    Umask(u32),
    /// Stop mount propagation to and from the host.
    MakeMountsPrivate,
    /// open_tree a bind source before the host's tree disappears.
    OpenTree {
        source: CString,
        slot: usize,
        recursive: bool,
    },
    /// Bind the rootfs onto itself so it is a mount point for pivot_root.
    BindRootOntoItself(CString),
    /// pivot_root into the rootfs and detach the old root.
    PivotRoot(CString),
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
    },
    /// Hide a path if this kernel has it: /dev/null over a file, an empty read-only tmpfs
    /// over a directory.
    Mask {
        path: CString,
    },
    /// Make a path read-only by binding it onto itself, if this kernel has it.
    ReadOnlyBind {
        path: CString,
    },
    /// Change the per-mount flags of a bind/mount (read-only, nosuid, ...).
    Remount {
        target: CString,
        flags: c_ulong,
    },
    /// Attach a tree opened by OpenTree.
    MoveMount {
        slot: usize,
        target: CString,
    },
    Mkdir {
        path: CString,
        mode: u32,
        owner: Option<(u32, u32)>,
    },
    /// Create an empty file (a bind target for a file source).
    Touch {
        path: CString,
    },
    Mknod {
        path: CString,
        mode: u32,
        dev: u64,
    },
    Symlink {
        target: CString,
        link: CString,
    },
    WriteFile {
        path: CString,
        content: Arc<[u8]>,
        mode: u32,
        owner: (u32, u32),
    },
    SetHostname(CString),
    LoopbackUp,
    NewSession,
    DupOnto {
        from: RawFd,
        to: RawFd,
    },
    SetRlimit {
        resource: u32,
        soft: u64,
        hard: u64,
        name: &'static str,
    },
    ClearGroups,
    SetGid(u32),
    LockSecurebits,
    DropBoundingSet {
        last_cap: u32,
    },
    ClearAmbient,
    SetUid(u32),
    ClearCapabilities,
    NoNewPrivs,
    Chdir(CString),
    /// Mark every descriptor from this one up close-on-exec.
    CloexecFrom(u32),
    /// Install the policy's BPF programs (the last step before exec).
    Seccomp(Arc<CompiledPolicy>),
    Exec(ExecPlan),
}

const SECBIT_NOROOT: c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP_LOCKED: c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: c_ulong = 1 << 7;
const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;

impl Step {
    fn apply(&self, slots: &mut [RawFd; MAX_BIND_SLOTS]) -> SysResult<()> {
        match self {
            Step::CloseAllExcept(keep) => {
                let mut next: u32 = 0;
                for &fd in keep {
                    let fd = fd as u32;
                    if fd > next {
                        sys::close_range(next, fd - 1, 0)?;
                    }
                    next = fd + 1;
                }
                sys::close_range(next, u32::MAX, 0)
            }
            Step::ParentDeathSignal => {
                sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0).map(drop)
            }
            Step::JoinCgroup(fd) => sys::write_all(*fd, b"0"),
            Step::Close(fd) => {
                sys::close(*fd);
                Ok(())
            }
            Step::UnshareCgroupNamespace => sys::unshare(libc::CLONE_NEWCGROUP),
            Step::Umask(mask) => {
                sys::umask(*mask);
                Ok(())
            }
            Step::MakeMountsPrivate => {
                sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None)
            }
            Step::OpenTree {
                source,
                slot,
                recursive,
            } => {
                let fd = sys::open_tree_clone(source, *recursive)?;
                match slots.get_mut(*slot) {
                    Some(s) => *s = fd,
                    None => return Err(libc::EINVAL),
                }
                Ok(())
            }
            Step::BindRootOntoItself(root) => {
                sys::mount(Some(root), root, None, libc::MS_BIND, None)
            }
            Step::PivotRoot(root) => {
                sys::chdir(root)?;
                sys::pivot_root(c".", c".")?;
                sys::umount2(c".", libc::MNT_DETACH)?;
                sys::chdir(c"/")
            }
            Step::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => sys::mount(
                source.as_deref(),
                target,
                fstype.as_deref(),
                *flags,
                data.as_deref(),
            ),
            Step::Mask { path } => mask(path),
            Step::ReadOnlyBind { path } => read_only_bind(path),
            Step::Remount { target, flags } => sys::mount(
                None,
                target,
                None,
                libc::MS_REMOUNT | libc::MS_BIND | flags,
                None,
            ),
            Step::MoveMount { slot, target } => {
                let fd = *slots.get(*slot).ok_or(libc::EINVAL)?;
                let result = sys::move_mount_onto(fd, target);
                sys::close(fd);
                result
            }
            Step::Mkdir { path, mode, owner } => {
                sys::mkdir(path, *mode)?;
                match owner {
                    Some((uid, gid)) => sys::lchown(path, *uid, *gid),
                    None => Ok(()),
                }
            }
            Step::Touch { path } => sys::write_new_file(path, &[], 0o644, 0, 0),
            Step::Mknod { path, mode, dev } => sys::mknod(path, *mode, *dev),
            Step::Symlink { target, link } => sys::symlink(target, link),
            Step::WriteFile {
                path,
                content,
                mode,
                owner,
            } => sys::write_new_file(path, content, *mode, owner.0, owner.1),
            Step::SetHostname(name) => sys::sethostname(name.as_bytes()),
            Step::LoopbackUp => sys::loopback_up(),
            Step::NewSession => sys::setsid(),
            Step::DupOnto { from, to } => sys::dup_onto(*from, *to),
            Step::SetRlimit {
                resource,
                soft,
                hard,
                ..
            } => sys::setrlimit(*resource, *soft, *hard),
            Step::ClearGroups => sys::clear_groups(),
            Step::SetGid(gid) => sys::set_gid(*gid),
            Step::LockSecurebits => sys::prctl(
                libc::PR_SET_SECUREBITS,
                SECBIT_NOROOT
                    | SECBIT_NOROOT_LOCKED
                    | SECBIT_NO_SETUID_FIXUP_LOCKED
                    | SECBIT_KEEP_CAPS_LOCKED
                    | SECBIT_NO_CAP_AMBIENT_RAISE
                    | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
                0,
            )
            .map(drop),
            Step::DropBoundingSet { last_cap } => {
                for cap in 0..=*last_cap {
                    match sys::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0) {
                        Ok(_) | Err(libc::EINVAL) => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Step::ClearAmbient => sys::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as c_ulong,
                0,
            )
            .map(drop),
            Step::SetUid(uid) => sys::set_uid(*uid),
            Step::ClearCapabilities => sys::clear_capabilities(),
            Step::NoNewPrivs => sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map(drop),
            Step::Chdir(path) => sys::chdir(path),
            Step::CloexecFrom(first) => sys::close_range(*first, u32::MAX, CLOSE_RANGE_CLOEXEC),
            Step::Seccomp(policy) => {
                for program in policy.programs() {
                    sys::install_seccomp(program)?;
                }
                Ok(())
            }
            Step::Exec(plan) => Err(plan.exec()),
        }
    }
}

const NOSUID_NODEV_NOEXEC: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// [`Step::Mask`]: a path this kernel lacks needs no hiding.
fn mask(path: &CStr) -> SysResult<()> {
    let is_dir = match sys::is_directory(path) {
        Err(libc::ENOENT) => return Ok(()),
        r => r?,
    };
    if is_dir {
        sys::mount(
            Some(c"tmpfs"),
            path,
            Some(c"tmpfs"),
            libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
            Some(c"mode=555,size=4k,nr_inodes=1"),
        )
    } else {
        sys::mount(Some(c"/dev/null"), path, None, libc::MS_BIND, None)
    }
}

/// [`Step::ReadOnlyBind`]: a path this kernel lacks needs no protecting.
fn read_only_bind(path: &CStr) -> SysResult<()> {
    match sys::mount(Some(path), path, None, libc::MS_BIND | libc::MS_REC, None) {
        Err(libc::ENOENT) => return Ok(()),
        r => r?,
    }
    sys::mount(
        None,
        path,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
        None,
    )
}

fn lossy(s: &CString) -> std::borrow::Cow<'_, str> {
    s.to_string_lossy()
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::CloseAllExcept(_) => write!(f, "close inherited descriptors"),
            Step::ParentDeathSignal => write!(f, "set parent-death signal"),
            Step::JoinCgroup(_) => write!(f, "join the cell's cgroup"),
            Step::Close(_) => write!(f, "close descriptor"),
            Step::UnshareCgroupNamespace => write!(f, "create cgroup namespace"),
            Step::Umask(_) => write!(f, "set umask"),
            Step::MakeMountsPrivate => write!(f, "make mounts private"),
            Step::OpenTree { source, .. } => write!(f, "open bind source {}", lossy(source)),
            Step::BindRootOntoItself(root) => write!(f, "bind rootfs {}", lossy(root)),
            Step::PivotRoot(root) => write!(f, "pivot_root into {}", lossy(root)),
            Step::Mount { target, fstype, .. } => write!(
                f,
                "mount {} on {}",
                fstype.as_ref().map_or("bind".into(), lossy),
                lossy(target)
            ),
            Step::Remount { target, .. } => write!(f, "remount {}", lossy(target)),
            Step::Mask { path } => write!(f, "mask {}", lossy(path)),
            Step::ReadOnlyBind { path } => write!(f, "make {} read-only", lossy(path)),
            Step::MoveMount { target, .. } => write!(f, "bind onto {}", lossy(target)),
            Step::Mkdir { path, .. } => write!(f, "mkdir {}", lossy(path)),
            Step::Touch { path } => write!(f, "create {}", lossy(path)),
            Step::Mknod { path, .. } => write!(f, "mknod {}", lossy(path)),
            Step::Symlink { link, .. } => write!(f, "symlink {}", lossy(link)),
            Step::WriteFile { path, .. } => write!(f, "write file {}", lossy(path)),
            Step::SetHostname(_) => write!(f, "set hostname"),
            Step::LoopbackUp => write!(f, "bring up loopback"),
            Step::NewSession => write!(f, "setsid"),
            Step::DupOnto { to, .. } => write!(f, "set up descriptor {to}"),
            Step::SetRlimit { name, .. } => write!(f, "setrlimit {name}"),
            Step::ClearGroups => write!(f, "setgroups"),
            Step::SetGid(gid) => write!(f, "setgid {gid}"),
            Step::LockSecurebits => write!(f, "lock securebits"),
            Step::DropBoundingSet { .. } => write!(f, "drop capability bounding set"),
            Step::ClearAmbient => write!(f, "clear ambient capabilities"),
            Step::SetUid(uid) => write!(f, "setuid {uid}"),
            Step::ClearCapabilities => write!(f, "drop capabilities"),
            Step::NoNewPrivs => write!(f, "set no_new_privs"),
            Step::Chdir(path) => write!(f, "chdir {}", lossy(path)),
            Step::CloexecFrom(_) => write!(f, "close descriptors on exec"),
            Step::Seccomp(_) => write!(f, "install seccomp filter"),
            Step::Exec(plan) => write!(f, "exec {}", plan.display),
        }
    }
}

/// Everything the cell's processes need, built before the clone.
pub(super) struct ChildPlan {
    pub init_steps: Vec<Step>,
    pub program_steps: Vec<Step>,
    /// Write end of the CLOEXEC error pipe.
    pub error_fd: RawFd,
    /// Write end of the status pipe (the reaper reports the program's wait status).
    pub status_fd: RawFd,
    /// Descriptors the reaper closes after forking the program (stdio sources).
    pub reaper_closes: Vec<RawFd>,
}

impl ChildPlan {
    /// The step a failure report names.
    pub fn step(&self, phase: Phase, index: usize) -> Option<&Step> {
        match phase {
            Phase::Init => self.init_steps.get(index),
            Phase::Program => self.program_steps.get(index),
            Phase::Fork | Phase::Files | Phase::Go => None,
        }
    }
}

/// Reports the failed step over the error pipe and exits.
pub(super) fn fail(error_fd: RawFd, phase: Phase, index: usize, errno: Errno) -> ! {
    let _ = sys::write_all(error_fd, &encode_report(phase, index, errno));
    sys::exit(127)
}

/// Applies `steps` in order; the first failure is reported and ends the process.
pub(super) fn apply_all(
    error_fd: RawFd,
    phase: Phase,
    steps: &[Step],
    slots: &mut [RawFd; MAX_BIND_SLOTS],
) {
    for (index, step) in steps.iter().enumerate() {
        if let Err(errno) = step.apply(slots) {
            fail(error_fd, phase, index, errno);
        }
    }
}

/// Size of the stack the program process uses between its clone and execve.
pub(super) const PROGRAM_STACK: usize = 256 * 1024;

/// Entry point of PID 1 of the cell, right after clone3. Never returns. `stack` (of
/// [`PROGRAM_STACK`] bytes, allocated before the clone) is where the program process runs
/// until it execs.
pub(super) fn init_main(plan: &ChildPlan, stack: &mut [u8]) -> ! {
    let mut slots = [-1; MAX_BIND_SLOTS];
    apply_all(plan.error_fd, Phase::Init, &plan.init_steps, &mut slots);
    start_program(plan, stack)
}

/// The program process: applies `program_steps`, ending in execve (or a failure report).
fn program_main(plan: &ChildPlan) -> ! {
    let mut slots = [-1; MAX_BIND_SLOTS];
    apply_all(
        plan.error_fd,
        Phase::Program,
        &plan.program_steps,
        &mut slots,
    );
    // The last step is Exec, which only returns as an error.
    fail(
        plan.error_fd,
        Phase::Program,
        plan.program_steps.len(),
        libc::EINVAL,
    )
}

/// Starts the program vfork-style (it shares this process's memory until it execs: no page
/// table copy, no copy-on-write faults), then reaps. Never returns.
pub(super) fn start_program(plan: &ChildPlan, stack: &mut [u8]) -> ! {
    // SAFETY: this process is single-threaded (PID 1 of a cell) and suspended until the
    // program execs or exits; `program_main` runs only the prepared raw-syscall steps on
    // `stack`, which nothing else uses, and ends in execve or _exit.
    match unsafe { sys::clone_vfork(stack, program_main, plan) } {
        Ok(program) => reap(plan, program),
        Err(errno) => fail(plan.error_fd, Phase::Fork, 0, errno),
    }
}

/// PID 1 after the fork: drop privileges, reap every process, report the program's status.
/// When PID 1 exits, the kernel kills every other process of the pid namespace.
fn reap(plan: &ChildPlan, program: libc::pid_t) -> ! {
    sys::close(plan.error_fd);
    for &fd in &plan.reaper_closes {
        sys::close(fd);
    }
    let _ = sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0);
    let _ = sys::clear_capabilities();
    loop {
        match sys::wait4(-1, libc::__WALL) {
            Ok(w) if w.pid == program => {
                let _ = sys::write_all(plan.status_fd, &w.status.to_ne_bytes());
                sys::exit(0)
            }
            Ok(_) => {}
            Err(_) => sys::exit(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        let bytes = encode_report(Phase::Program, 17, libc::ENOENT);
        assert_eq!(
            decode_report(&bytes),
            Some((Phase::Program, 17, libc::ENOENT))
        );
        assert_eq!(decode_report(&bytes[..5]), None);
        assert_eq!(decode_report(&[9; REPORT_LEN]), None);
    }
}
