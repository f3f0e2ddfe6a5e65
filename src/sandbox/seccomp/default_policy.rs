//! The built-in policy: an allow-list close to Docker's default profile, written for cells
//! that run shells, CPython, gcc/g++/as/ld and the programs they build.
//!
//! What each syscall gets:
//!
//! - **allowed** — the allow-list ([`allowed`]); five calls only with safe arguments
//!   (`ARGUMENT_RULES`: `clone`/`unshare` without namespace flags, `ioctl` but not
//!   `TIOCSTI`/`TIOCLINUX`, `socket` of a few families, `personality` of Docker's values),
//!   `EPERM` for other arguments.
//! - **`ENOSYS`** — new-style calls that libc and runtimes probe and fall back from
//!   ([`ENOSYS_LIST`], "this kernel does not have it"): `clone3` (its flags live in memory
//!   and cannot be checked, so glibc must fall back to `clone`, whose flags can) and
//!   `io_uring_*` (a large kernel attack surface; runtimes fall back to epoll/threads).
//! - **kill** — calls whose only use in a cell is an attack on the host kernel kill the
//!   whole process ([`kill_list`], `SECCOMP_RET_KILL_PROCESS`, the run ends with SIGSYS):
//!   loading kernel code or modules, rebooting, swap and process accounting, raw port I/O
//!   and `open_by_handle_at` (the "shocker" container escape). An attacker gets no second
//!   try.
//! - **`EPERM`** — everything else that must be denied (mount, pivot_root, namespaces,
//!   keyrings, bpf, perf_event_open, userfaultfd, ptrace, process_vm_*, name_to_handle_at,
//!   …) is simply not in the allow-list, because ordinary programs do probe some of them
//!   (CPython, the JVM and Go runtimes try userfaultfd, perf or unshare and carry on).
//!
//! A syscall on two lists gets the later one's verdict (`clone3` is on the allow-list too).
//!
//! **One filter** ([`default_filters`], named `syscall-tree`): that table compiled by
//! `super::tree` into a binary search over syscall-number ranges, with the five argument
//! checks at their leaves (on x86_64: 87 ranges, 200 BPF instructions, any number decided
//! after at most 7 comparisons). One filter means one `seccomp()` call, one JIT and one pass
//! of the kernel's action cache per cell.
//!
//! The policy used to be three seccompiler filters (allow-list, enosys, kill), 1604
//! instructions of linear comparison chains that cost ~0.6 ms of kernel CPU per cell to
//! install. [`linear_filters`] still builds them, unchanged, as the reference the tree is
//! tested against (same outcome for every syscall number, architecture and argument probe)
//! and benchmarked with (`benches/seccomp_install.rs`). The argument checks are in the tree
//! rather than in a second, seccompiler-built filter because seccompiler sends unlisted
//! syscalls and failed rules to the same action: "allow the rest, `EPERM` for a failed rule"
//! would need every rule restated in inverted form, and a second install per cell.
//!
//! Syscalls issued for another ABI are not allowed: i386 (`int 0x80`) fails the
//! architecture check and kills the process; x32 numbers (bit 30 set) are above every entry
//! of the table and return `EPERM`, as do all numbers past it.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use super::tree::{self, ArgCheck, ArgTest, SyscallRule};
use super::SeccompError;

/// A syscall number and its name (names are for messages and `explain`).
pub type Syscall = (i64, &'static str);

macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        &[$((libc::$name, stringify!($name)),)*]
    };
}

/// Allowed with any arguments, on every supported architecture.
const ALLOWED: &[Syscall] = syscalls![
    // files and descriptors
    SYS_read,
    SYS_write,
    SYS_readv,
    SYS_writev,
    SYS_pread64,
    SYS_pwrite64,
    SYS_preadv,
    SYS_pwritev,
    SYS_preadv2,
    SYS_pwritev2,
    SYS_openat,
    SYS_openat2,
    SYS_close,
    SYS_close_range,
    SYS_dup,
    SYS_dup3,
    SYS_fcntl,
    SYS_lseek,
    SYS_fstat,
    SYS_newfstatat,
    SYS_statx,
    SYS_statfs,
    SYS_fstatfs,
    SYS_getdents64,
    SYS_faccessat,
    SYS_faccessat2,
    SYS_readlinkat,
    SYS_mkdirat,
    SYS_mknodat,
    SYS_unlinkat,
    SYS_symlinkat,
    SYS_linkat,
    SYS_renameat2,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchown,
    SYS_fchownat,
    SYS_utimensat,
    SYS_truncate,
    SYS_ftruncate,
    SYS_fallocate,
    SYS_fadvise64,
    SYS_readahead,
    SYS_fsync,
    SYS_fdatasync,
    SYS_sync,
    SYS_syncfs,
    SYS_flock,
    SYS_getcwd,
    SYS_chdir,
    SYS_fchdir,
    SYS_umask,
    SYS_sendfile,
    SYS_splice,
    SYS_tee,
    SYS_vmsplice,
    SYS_copy_file_range,
    SYS_pipe2,
    SYS_memfd_create,
    SYS_setxattr,
    SYS_lsetxattr,
    SYS_fsetxattr,
    SYS_getxattr,
    SYS_lgetxattr,
    SYS_fgetxattr,
    SYS_listxattr,
    SYS_llistxattr,
    SYS_flistxattr,
    SYS_removexattr,
    SYS_lremovexattr,
    SYS_fremovexattr,
    SYS_inotify_init1,
    SYS_inotify_add_watch,
    SYS_inotify_rm_watch,
    // polling and events
    SYS_ppoll,
    SYS_pselect6,
    SYS_epoll_create1,
    SYS_epoll_ctl,
    SYS_epoll_pwait,
    SYS_epoll_pwait2,
    SYS_eventfd2,
    SYS_signalfd4,
    SYS_timerfd_create,
    SYS_timerfd_settime,
    SYS_timerfd_gettime,
    SYS_io_setup,
    SYS_io_destroy,
    SYS_io_getevents,
    SYS_io_submit,
    SYS_io_cancel,
    // memory
    SYS_brk,
    SYS_mmap,
    SYS_munmap,
    SYS_mremap,
    SYS_mprotect,
    SYS_madvise,
    SYS_msync,
    SYS_mincore,
    SYS_mlock,
    SYS_mlock2,
    SYS_munlock,
    SYS_mlockall,
    SYS_munlockall,
    SYS_remap_file_pages,
    SYS_membarrier,
    SYS_mbind,
    SYS_get_mempolicy,
    SYS_set_mempolicy,
    SYS_pkey_mprotect,
    SYS_pkey_alloc,
    SYS_pkey_free,
    SYS_mseal,
    // processes and threads (clone, unshare: see ARGUMENT_RULES)
    SYS_execve,
    SYS_execveat,
    SYS_exit,
    SYS_exit_group,
    SYS_wait4,
    SYS_waitid,
    SYS_set_tid_address,
    SYS_set_robust_list,
    SYS_get_robust_list,
    SYS_futex,
    SYS_futex_waitv,
    SYS_rseq,
    SYS_getpid,
    SYS_getppid,
    SYS_gettid,
    SYS_getpgid,
    SYS_setpgid,
    SYS_getsid,
    SYS_setsid,
    SYS_getuid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getegid,
    SYS_getresuid,
    SYS_getresgid,
    SYS_getgroups,
    SYS_setuid,
    SYS_setgid,
    SYS_setreuid,
    SYS_setregid,
    SYS_setresuid,
    SYS_setresgid,
    SYS_setfsuid,
    SYS_setfsgid,
    SYS_setgroups,
    SYS_capget,
    SYS_capset,
    SYS_prctl,
    SYS_seccomp,
    SYS_landlock_create_ruleset,
    SYS_landlock_add_rule,
    SYS_landlock_restrict_self,
    SYS_prlimit64,
    SYS_getrusage,
    SYS_times,
    SYS_getpriority,
    SYS_setpriority,
    SYS_sched_yield,
    SYS_sched_getaffinity,
    SYS_sched_setaffinity,
    SYS_sched_getparam,
    SYS_sched_setparam,
    SYS_sched_getscheduler,
    SYS_sched_setscheduler,
    SYS_sched_get_priority_max,
    SYS_sched_get_priority_min,
    SYS_sched_rr_get_interval,
    SYS_sched_getattr,
    SYS_sched_setattr,
    SYS_ioprio_get,
    SYS_ioprio_set,
    SYS_getcpu,
    SYS_pidfd_open,
    SYS_pidfd_send_signal,
    // signals
    SYS_kill,
    SYS_tkill,
    SYS_tgkill,
    SYS_rt_sigaction,
    SYS_rt_sigprocmask,
    SYS_rt_sigreturn,
    SYS_rt_sigpending,
    SYS_rt_sigsuspend,
    SYS_rt_sigtimedwait,
    SYS_rt_sigqueueinfo,
    SYS_rt_tgsigqueueinfo,
    SYS_sigaltstack,
    SYS_restart_syscall,
    // time
    SYS_nanosleep,
    SYS_clock_nanosleep,
    SYS_clock_gettime,
    SYS_clock_getres,
    SYS_gettimeofday,
    SYS_getitimer,
    SYS_setitimer,
    SYS_timer_create,
    SYS_timer_settime,
    SYS_timer_gettime,
    SYS_timer_getoverrun,
    SYS_timer_delete,
    SYS_adjtimex,
    SYS_clock_adjtime,
    // system information
    SYS_uname,
    SYS_sysinfo,
    SYS_getrandom,
    // sockets (socket itself: see ARGUMENT_RULES)
    SYS_socketpair,
    SYS_bind,
    SYS_connect,
    SYS_listen,
    SYS_accept,
    SYS_accept4,
    SYS_getsockname,
    SYS_getpeername,
    SYS_sendto,
    SYS_recvfrom,
    SYS_sendmsg,
    SYS_recvmsg,
    SYS_sendmmsg,
    SYS_recvmmsg,
    SYS_shutdown,
    SYS_setsockopt,
    SYS_getsockopt,
    // System V and POSIX IPC (the cell has its own IPC namespace)
    SYS_shmget,
    SYS_shmat,
    SYS_shmdt,
    SYS_shmctl,
    SYS_semget,
    SYS_semop,
    SYS_semtimedop,
    SYS_semctl,
    SYS_msgget,
    SYS_msgsnd,
    SYS_msgrcv,
    SYS_msgctl,
    SYS_mq_open,
    SYS_mq_unlink,
    SYS_mq_timedsend,
    SYS_mq_timedreceive,
    SYS_mq_notify,
    SYS_mq_getsetattr,
    // ENOSYS_LIST wins (allowed here so that the three linear filters, where each list is a
    // filter of its own, do not depend on which errno the kernel prefers)
    SYS_clone3,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
];

/// Allowed with any arguments, x86_64 only (the legacy calls the generic table dropped).
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH: &[Syscall] = syscalls![
    SYS_arch_prctl,
    SYS_open,
    SYS_creat,
    SYS_stat,
    SYS_lstat,
    SYS_access,
    SYS_readlink,
    SYS_mkdir,
    SYS_rmdir,
    SYS_mknod,
    SYS_unlink,
    SYS_symlink,
    SYS_link,
    SYS_rename,
    SYS_renameat,
    SYS_chmod,
    SYS_chown,
    SYS_lchown,
    SYS_utime,
    SYS_utimes,
    SYS_futimesat,
    SYS_getdents,
    SYS_dup2,
    SYS_pipe,
    SYS_poll,
    SYS_select,
    SYS_epoll_create,
    SYS_epoll_wait,
    SYS_eventfd,
    SYS_signalfd,
    SYS_inotify_init,
    SYS_fork,
    SYS_vfork,
    SYS_pause,
    SYS_alarm,
    SYS_time,
    SYS_getpgrp,
    SYS_sync_file_range,
    SYS_getrlimit,
    SYS_setrlimit,
    SYS_fchmodat2,
];

/// Allowed on x86_64 but missing from libc's table.
#[cfg(target_arch = "x86_64")]
const ALLOWED_ARCH_RAW: &[Syscall] = &[(333, "SYS_io_pgetevents")];

#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_ARCH_RAW: &[Syscall] = &[];

#[cfg(target_arch = "aarch64")]
const ALLOWED_ARCH: &[Syscall] = &[
    (libc::SYS_renameat, "SYS_renameat"),
    (libc::SYS_sync_file_range, "SYS_sync_file_range"),
    (libc::SYS_getrlimit, "SYS_getrlimit"),
    (libc::SYS_setrlimit, "SYS_setrlimit"),
    // not (yet) in libc for aarch64-gnu; numbers from the generic syscall table
    (292, "SYS_io_pgetevents"),
    (452, "SYS_fchmodat2"),
];

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ALLOWED_ARCH: &[Syscall] = &[];

/// Return ENOSYS (see the module documentation).
pub const ENOSYS_LIST: &[Syscall] = syscalls![
    SYS_clone3,
    SYS_io_uring_setup,
    SYS_io_uring_enter,
    SYS_io_uring_register,
];

/// Kill the process (see the module documentation).
const KILL_COMMON: &[Syscall] = syscalls![
    SYS_kexec_load,
    SYS_kexec_file_load,
    SYS_init_module,
    SYS_finit_module,
    SYS_delete_module,
    SYS_reboot,
    SYS_swapon,
    SYS_swapoff,
    SYS_acct,
    SYS_open_by_handle_at,
];

#[cfg(target_arch = "x86_64")]
const KILL_ARCH: &[Syscall] = syscalls![SYS_iopl, SYS_ioperm];

#[cfg(not(target_arch = "x86_64"))]
const KILL_ARCH: &[Syscall] = &[];

/// Namespace flags: a clone/unshare carrying any of them is denied.
const NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP) as u64;

/// CLONE_NEWTIME (0x80) only means "new time namespace" for unshare and clone3; in clone()'s
/// flags the low byte is the exit signal.
const CLONE_NEWTIME: u64 = 0x80;

/// Terminal ioctls that inject input or poke the console.
const DENIED_IOCTLS: &[u64] = &[libc::TIOCSTI, libc::TIOCLINUX];

/// Socket families a cell may create (it only has loopback anyway).
const SOCKET_FAMILIES: &[u64] = &[
    libc::AF_UNIX as u64,
    libc::AF_INET as u64,
    libc::AF_INET6 as u64,
    libc::AF_NETLINK as u64,
];

/// personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26 variants, and the
/// 0xffffffff query. ADDR_NO_RANDOMIZE is not among them (it would switch ASLR off).
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// Syscalls allowed only when one argument passes a test; any other value returns EPERM.
const ARGUMENT_RULES: &[(Syscall, u8, ArgTest)] = &[
    (
        (libc::SYS_clone, "SYS_clone"),
        0,
        ArgTest::NoBits(NAMESPACE_FLAGS),
    ),
    (
        (libc::SYS_unshare, "SYS_unshare"),
        0,
        ArgTest::NoBits(NAMESPACE_FLAGS | CLONE_NEWTIME),
    ),
    (
        (libc::SYS_ioctl, "SYS_ioctl"),
        1,
        ArgTest::NotIn(DENIED_IOCTLS),
    ),
    (
        (libc::SYS_socket, "SYS_socket"),
        0,
        ArgTest::In(SOCKET_FAMILIES),
    ),
    (
        (libc::SYS_personality, "SYS_personality"),
        0,
        ArgTest::In(PERSONALITIES),
    ),
];

/// Bit 30 of a syscall number marks the x32 ABI; no table entry may have it.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// All syscalls the allow-list allows without conditions.
pub fn allowed() -> impl Iterator<Item = Syscall> {
    ALLOWED
        .iter()
        .chain(ALLOWED_ARCH)
        .chain(ALLOWED_ARCH_RAW)
        .copied()
}

/// All syscalls on the kill list.
pub fn kill_list() -> impl Iterator<Item = Syscall> {
    KILL_COMMON.iter().chain(KILL_ARCH).copied()
}

/// The filters of the default policy, with their names, in install order: one, the
/// syscall tree (see the module documentation).
pub fn default_filters(arch: TargetArch) -> Result<Vec<(&'static str, BpfProgram)>, SeccompError> {
    let tree = tree::compile(
        arch,
        &syscall_table()?,
        SeccompAction::Errno(libc::EPERM as u32),
    )?;
    Ok(vec![("syscall-tree", tree)])
}

/// Every syscall the policy names, with its verdict; later lists override earlier ones
/// (allowed < argument rules < ENOSYS < kill).
fn syscall_table() -> Result<BTreeMap<u32, SyscallRule>, SeccompError> {
    let mut table = BTreeMap::new();
    let mut set = |syscall: Syscall, verdict: SyscallRule| -> Result<(), SeccompError> {
        table.insert(table_number(syscall)?, verdict);
        Ok(())
    };
    for syscall in allowed() {
        set(syscall, SyscallRule::Fixed(SeccompAction::Allow))?;
    }
    for &(syscall, arg, test) in ARGUMENT_RULES {
        let check = ArgCheck {
            arg,
            test,
            pass: SeccompAction::Allow,
            fail: SeccompAction::Errno(libc::EPERM as u32),
        };
        set(syscall, SyscallRule::Check(check))?;
    }
    for &syscall in ENOSYS_LIST {
        set(
            syscall,
            SyscallRule::Fixed(SeccompAction::Errno(libc::ENOSYS as u32)),
        )?;
    }
    for syscall in kill_list() {
        set(syscall, SyscallRule::Fixed(SeccompAction::KillProcess))?;
    }
    Ok(table)
}

/// The number of `syscall` as a table key: a native number, never an x32 one.
fn table_number((nr, name): Syscall) -> Result<u32, SeccompError> {
    u32::try_from(nr)
        .ok()
        .filter(|&nr| nr & X32_SYSCALL_BIT == 0)
        .ok_or_else(|| SeccompError::Compile(format!("default policy: {name} is number {nr}")))
}

/// The policy as it was before the tree: three seccompiler filters of linear comparison
/// chains (allow-list with the argument rules, enosys, kill), 1604 instructions on x86_64.
/// Not installed by sandcell; the reference the tree is tested against and benchmarked
/// with. Filters with their names, in install order.
pub fn linear_filters(arch: TargetArch) -> Result<Vec<(&'static str, BpfProgram)>, SeccompError> {
    let mut allow: BTreeMap<i64, Vec<SeccompRule>> =
        allowed().map(|(nr, _)| (nr, Vec::new())).collect();
    for ((nr, _), rules) in conditional()? {
        allow.insert(nr, rules);
    }
    let allow_list = SeccompFilter::new(
        allow,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(backend)?;

    let enosys = SeccompFilter::new(
        ENOSYS_LIST
            .iter()
            .map(|&(nr, _)| (nr, Vec::new()))
            .collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(backend)?;

    let kill = SeccompFilter::new(
        kill_list().map(|(nr, _)| (nr, Vec::new())).collect(),
        SeccompAction::Allow,
        SeccompAction::KillProcess,
        arch,
    )
    .map_err(backend)?;

    [
        ("allow-list", allow_list),
        ("enosys", enosys),
        ("kill", kill),
    ]
    .into_iter()
    .map(|(name, filter)| Ok((name, BpfProgram::try_from(filter).map_err(backend)?)))
    .collect()
}

/// [`ARGUMENT_RULES`] as the linear filters state them, unchanged from before the tree so
/// that the equivalence test checks the table's transcription too: syscalls allowed if any
/// of their rules matches.
fn conditional() -> Result<Vec<(Syscall, Vec<SeccompRule>)>, SeccompError> {
    Ok(vec![
        ((libc::SYS_clone, "SYS_clone"), no_bits(0, NAMESPACE_FLAGS)?),
        (
            (libc::SYS_unshare, "SYS_unshare"),
            no_bits(0, NAMESPACE_FLAGS | CLONE_NEWTIME)?,
        ),
        ((libc::SYS_ioctl, "SYS_ioctl"), none_of(1, DENIED_IOCTLS)?),
        (
            (libc::SYS_socket, "SYS_socket"),
            any_of(0, SOCKET_FAMILIES)?,
        ),
        (
            (libc::SYS_personality, "SYS_personality"),
            any_of(0, PERSONALITIES)?,
        ),
    ])
}

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompError> {
    // Every checked argument is an int/unsigned int, or (clone, unshare) has all its flags in
    // the low 32 bits; the kernel ignores the high half of int arguments, so comparing only
    // the low half (Dword) is the check that cannot be bypassed with junk in the high half.
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).map_err(backend)
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, SeccompError> {
    SeccompRule::new(conditions).map_err(backend)
}

/// One rule per allowed value of argument `arg` (rules are OR-ed).
fn any_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, SeccompError> {
    values
        .iter()
        .map(|&v| rule(vec![cond(arg, SeccompCmpOp::Eq, v)?]))
        .collect()
}

/// One rule requiring argument `arg` to differ from each of `values` (conditions are AND-ed).
fn none_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, SeccompError> {
    let conditions = values
        .iter()
        .map(|&v| cond(arg, SeccompCmpOp::Ne, v))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(vec![rule(conditions)?])
}

/// One rule requiring that no bit of `mask` is set in argument `arg`.
fn no_bits(arg: u8, mask: u64) -> Result<Vec<SeccompRule>, SeccompError> {
    Ok(vec![rule(vec![cond(
        arg,
        SeccompCmpOp::MaskedEq(mask),
        0,
    )?])?])
}

fn backend(e: seccompiler::BackendError) -> SeccompError {
    SeccompError::Compile(format!("default policy: {e}"))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::super::eval::{self, run_program, SeccompOutcome, SyscallQuery};
    use super::super::{native_arch, AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64};
    use super::*;

    fn programs(filters: Vec<(&'static str, BpfProgram)>) -> Vec<BpfProgram> {
        filters.into_iter().map(|(_, program)| program).collect()
    }

    fn outcome(programs: &[BpfProgram], query: &SyscallQuery) -> SeccompOutcome {
        eval::evaluate(programs.iter().map(Vec::as_slice), query).unwrap()
    }

    /// Argument values that hit every side of every argument rule: each namespace flag alone
    /// and together, CLONE_NEWTIME, thread and fork flags, the denied and some allowed
    /// ioctls, allowed and refused socket families, allowed and refused personalities, and
    /// junk in the high half of each.
    fn argument_probes() -> Vec<u64> {
        let mut values = vec![0, 1, 0x80, 0xffff_ffff, u64::MAX, 1 << 32];
        values.extend((0..32).map(|bit| 1u64 << bit));
        values.extend([
            NAMESPACE_FLAGS,
            NAMESPACE_FLAGS | CLONE_NEWTIME,
            (libc::CLONE_VM | libc::CLONE_THREAD | libc::CLONE_SETTLS) as u64,
            (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64,
            (libc::CLONE_FILES | libc::CLONE_NEWNET) as u64,
            libc::TCGETS,
            libc::FIONREAD,
            libc::TIOCGWINSZ,
            libc::AF_PACKET as u64,
            libc::AF_VSOCK as u64,
            libc::AF_BLUETOOTH as u64,
            0x0040000, // ADDR_NO_RANDOMIZE
            0xffff_fffe,
        ]);
        values.extend(DENIED_IOCTLS);
        values.extend(SOCKET_FAMILIES);
        values.extend(PERSONALITIES);
        let high_junk: Vec<u64> = values.iter().map(|v| v | 0xdead_beef << 32).collect();
        values.extend(high_junk);
        values.sort_unstable();
        values.dedup();
        values
    }

    /// The architectures a syscall can arrive with: the native one and foreign ones.
    fn arches() -> [u32; 4] {
        let foreign = if cfg!(target_arch = "aarch64") {
            AUDIT_ARCH_X86_64
        } else {
            AUDIT_ARCH_AARCH64
        };
        [eval::native_audit_arch(), AUDIT_ARCH_I386, foreign, 0]
    }

    /// Syscall numbers: 0..=1100, their x32 twins, and numbers past every table.
    fn numbers() -> Vec<u32> {
        let mut numbers: Vec<u32> = (0..=1100).collect();
        numbers.extend((0..=1100).map(|nr| nr | X32_SYSCALL_BIT));
        numbers.extend([
            0x3fff_ffff,
            0x7fff_ffff,
            0x8000_0000,
            0xbfff_ffff,
            0xc000_0000,
            0xffff_fffe,
            u32::MAX,
            1 << 20,
        ]);
        numbers
    }

    #[test]
    fn the_tree_decides_exactly_like_the_three_linear_filters() {
        let arch = native_arch().unwrap();
        let old = programs(linear_filters(arch).unwrap());
        let new = programs(default_filters(arch).unwrap());
        let probes = argument_probes();
        let checked: Vec<u32> = ARGUMENT_RULES
            .iter()
            .map(|&(s, _, _)| table_number(s).unwrap())
            .collect();
        let mut rng = StdRng::seed_from_u64(7);
        let mut compared = 0usize;
        for arch in arches() {
            for nr in numbers() {
                let mut query = SyscallQuery::native(0, &[]);
                query.arch = arch;
                query.nr = nr as i32;
                // The syscalls with argument rules get every probe in each of their first
                // two arguments; every number gets a few probes and random arguments.
                let mut arg_sets: Vec<[u64; 6]> = vec![[0; 6], [u64::MAX; 6]];
                arg_sets.extend((0..4).map(|_| std::array::from_fn(|_| rng.random())));
                if checked.contains(&(nr & !X32_SYSCALL_BIT)) {
                    for &a in &probes {
                        arg_sets.push([a, 0, 0, 0, 0, 0]);
                        arg_sets.push([0, a, 0, 0, 0, 0]);
                        arg_sets.push([a, a, a, a, a, a]);
                    }
                }
                for args in arg_sets {
                    query.args = args;
                    assert_eq!(
                        outcome(&new, &query),
                        outcome(&old, &query),
                        "arch {arch:#x}, nr {nr:#x}, args {args:x?}"
                    );
                    compared += 1;
                }
            }
        }
        assert!(compared > 50_000, "{compared}");
    }

    #[test]
    fn every_program_lets_the_next_install_and_the_exec_through() {
        for program in programs(default_filters(native_arch().unwrap()).unwrap()) {
            for nr in [libc::SYS_seccomp, libc::SYS_execve, libc::SYS_exit_group] {
                let ret = run_program(&program, &SyscallQuery::native(nr, &[])).unwrap();
                assert_eq!(ret, u32::from(SeccompAction::Allow), "{nr}");
            }
        }
    }

    #[test]
    fn the_tree_is_a_fraction_of_the_linear_filters() {
        let arch = native_arch().unwrap();
        let length = |filters: Vec<(&str, BpfProgram)>| -> usize {
            filters.iter().map(|(_, program)| program.len()).sum()
        };
        let old = length(linear_filters(arch).unwrap());
        let new = length(default_filters(arch).unwrap());
        assert!(new * 2 < old, "tree {new} vs linear {old} instructions");
    }

    #[test]
    fn table_numbers_are_native_numbers() {
        assert_eq!(
            table_number((libc::SYS_read, "read")).unwrap(),
            libc::SYS_read as u32
        );
        assert!(table_number((-1, "negative")).is_err());
        assert!(table_number((0x4000_0001, "x32 write")).is_err());
        assert!(table_number((1 << 33, "huge")).is_err());
    }

    #[test]
    fn later_lists_win_in_the_table() {
        let table = syscall_table().unwrap();
        let nr = |nr: i64| &table[&(nr as u32)];
        let enosys = SyscallRule::Fixed(SeccompAction::Errno(libc::ENOSYS as u32));
        assert_eq!(
            nr(libc::SYS_clone3),
            &enosys,
            "clone3 is on the allow-list too"
        );
        assert_eq!(
            nr(libc::SYS_read),
            &SyscallRule::Fixed(SeccompAction::Allow)
        );
        assert!(matches!(nr(libc::SYS_ioctl), SyscallRule::Check(_)));
        assert_eq!(
            nr(libc::SYS_reboot),
            &SyscallRule::Fixed(SeccompAction::KillProcess)
        );
    }
}
