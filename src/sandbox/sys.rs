//! Every raw syscall of the crate lives here, each `unsafe` block with its `// SAFETY:` note.
//!
//! The functions used by the cell's child processes (between clone and execve) are
//! async-signal-safe: they issue one syscall each, take pre-built `&CStr`s and buffers, never
//! allocate, never lock, never panic, and report failure as a raw errno (`Errno`).

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use libc::{c_char, c_int, c_ulong, pid_t};

/// A raw errno value.
pub type Errno = i32;
/// The result of one raw syscall.
pub type SysResult<T> = Result<T, Errno>;

fn errno() -> Errno {
    // SAFETY: __errno_location returns the calling thread's errno slot, always valid to read.
    unsafe { *libc::__errno_location() }
}

fn check(ret: c_int) -> SysResult<c_int> {
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

fn check_long(ret: libc::c_long) -> SysResult<libc::c_long> {
    if ret < 0 {
        Err(errno())
    } else {
        Ok(ret)
    }
}

/// `struct clone_args` of clone3(2) (libc 0.2 does not define it).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
pub struct CloneArgs {
    pub flags: u64,
    pub pidfd: u64,
    pub child_tid: u64,
    pub parent_tid: u64,
    pub exit_signal: u64,
    pub stack: u64,
    pub stack_size: u64,
    pub tls: u64,
    pub set_tid: u64,
    pub set_tid_size: u64,
    pub cgroup: u64,
}

/// CLONE_INTO_CGROUP (linux/sched.h), not in libc 0.2.
pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// CLONE_CLEAR_SIGHAND (linux/sched.h, 5.5): the child starts with default signal handlers.
pub const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;

/// clone3(2) without a new stack: like fork, the child continues here with a copy of the
/// parent's memory and gets `Ok(0)`; the parent gets the child's pid.
///
/// # Safety
/// The process may be multithreaded. In the child only async-signal-safe code may run (no
/// allocation, no locks, no std I/O) until it execs or exits, and it must never return into
/// code that assumes the parent's threads exist. Pointers in `args` (pidfd) must be valid.
pub unsafe fn clone3(args: &mut CloneArgs) -> SysResult<pid_t> {
    // SAFETY: args points to a properly initialised clone_args of the size we pass; the
    // caller upholds the fork-like contract above.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    check_long(ret).map(|p| p as pid_t)
}

/// The child side of [`clone_vfork`]: calls the entry function with its argument.
extern "C" fn vfork_child<T>(call: *mut libc::c_void) -> c_int {
    // SAFETY: `clone_vfork` passes a pointer to its `(entry, arg)` pair, which stays valid
    // while the caller is suspended by CLONE_VFORK, i.e. until this process execs or exits.
    let (entry, arg) = unsafe { &*(call as *const (fn(&T) -> !, &T)) };
    entry(arg)
}

/// clone(2) with CLONE_VM | CLONE_VFORK, as posix_spawn does: the child runs `entry(arg)` on
/// `stack` in the caller's memory (no page tables are copied, no copy-on-write faults
/// follow), and the caller is suspended until the child execs or exits.
///
/// The child may change its credentials and unshare a user namespace (the per-cell uid does
/// both; tested on 6.1 and 6.18): the kernel refuses `unshare(CLONE_NEWUSER)` only to a
/// process with other threads, not to one that shares its memory. What a uid change does to
/// the shared memory is its dumpable flag, which the child sets while it writes its own
/// uid_map and clears afterwards (`Step::Dumpable`), so the caller ends non-dumpable.
///
/// # Safety
/// `entry` may only make async-signal-safe raw syscalls on data that stays valid, must not
/// unwind, and must end in execve or _exit (it never returns); `stack` must be unused by
/// anything else until this returns.
pub unsafe fn clone_vfork<T>(stack: &mut [u8], entry: fn(&T) -> !, arg: &T) -> SysResult<pid_t> {
    let call: (fn(&T) -> !, &T) = (entry, arg);
    // The stack grows down from its 16-byte aligned top.
    let top = stack.as_mut_ptr().wrapping_add(stack.len());
    let top = top.wrapping_sub(top as usize % 16);
    // SAFETY: `top` is the aligned end of a writable buffer the child alone uses; `call`
    // outlives the child's use of it (CLONE_VFORK suspends us until it execs or exits); the
    // caller upholds the contract above.
    check(unsafe {
        libc::clone(
            vfork_child::<T>,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &call as *const (fn(&T) -> !, &T) as *mut libc::c_void,
        )
    })
}

/// mount(2).
pub fn mount(
    source: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> SysResult<()> {
    let opt = |s: Option<&CStr>| s.map_or(std::ptr::null(), CStr::as_ptr);
    // SAFETY: all pointers are NUL-terminated strings or null, valid for the call.
    check(unsafe {
        libc::mount(
            opt(source),
            target.as_ptr(),
            opt(fstype),
            flags,
            opt(data).cast(),
        )
    })
    .map(drop)
}

/// umount2(2).
pub fn umount2(target: &CStr, flags: c_int) -> SysResult<()> {
    // SAFETY: target is a valid NUL-terminated path.
    check(unsafe { libc::umount2(target.as_ptr(), flags) }).map(drop)
}

/// pivot_root(2).
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult<()> {
    // SAFETY: both are valid NUL-terminated paths.
    check_long(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })
        .map(drop)
}

/// chdir(2).
pub fn chdir(path: &CStr) -> SysResult<()> {
    // SAFETY: path is a valid NUL-terminated string.
    check(unsafe { libc::chdir(path.as_ptr()) }).map(drop)
}

/// mkdir(2); an existing directory is not an error.
pub fn mkdir(path: &CStr, mode: u32) -> SysResult<()> {
    // SAFETY: path is a valid NUL-terminated string.
    match check(unsafe { libc::mkdir(path.as_ptr(), mode) }) {
        Err(libc::EEXIST) => Ok(()),
        r => r.map(drop),
    }
}

/// open(2) of a directory with O_PATH (no access to its contents, only a handle on where it
/// is), close-on-exec.
pub fn open_directory_path(path: &CStr) -> SysResult<RawFd> {
    let flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
    // SAFETY: path is a valid NUL-terminated string; no mode argument is needed without
    // O_CREAT.
    check(unsafe { libc::open(path.as_ptr(), flags) })
}

/// lstat(2): whether `path` is a directory (not following a final symlink).
pub fn is_directory(path: &CStr) -> SysResult<bool> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: path is a valid NUL-terminated string; st is a writable stat buffer.
    check(unsafe { libc::lstat(path.as_ptr(), st.as_mut_ptr()) })?;
    // SAFETY: lstat succeeded, so it filled st.
    let st = unsafe { st.assume_init() };
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// mknod(2).
pub fn mknod(path: &CStr, mode: u32, dev: u64) -> SysResult<()> {
    // SAFETY: path is a valid NUL-terminated string.
    check(unsafe { libc::mknod(path.as_ptr(), mode, dev) }).map(drop)
}

/// symlink(2).
pub fn symlink(target: &CStr, link: &CStr) -> SysResult<()> {
    // SAFETY: both are valid NUL-terminated strings.
    check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }).map(drop)
}

/// lchown(2).
pub fn lchown(path: &CStr, uid: u32, gid: u32) -> SysResult<()> {
    // SAFETY: path is a valid NUL-terminated string.
    check(unsafe { libc::lchown(path.as_ptr(), uid, gid) }).map(drop)
}

/// Creates `path` exclusively (no symlink following), writes `content`, sets owner and mode.
pub fn write_new_file(path: &CStr, content: &[u8], mode: u32, uid: u32, gid: u32) -> SysResult<()> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: path is a valid NUL-terminated string; the mode argument is passed as O_CREAT
    // requires.
    let fd = check(unsafe { libc::open(path.as_ptr(), flags, mode as libc::c_uint) })?;
    let result = write_all(fd, content).and_then(|()| {
        // SAFETY: fd is the file we just opened.
        check(unsafe { libc::fchown(fd, uid, gid) })?;
        // SAFETY: fd is the file we just opened.
        check(unsafe { libc::fchmod(fd, mode) }).map(drop)
    });
    // SAFETY: fd was opened above and is owned by nothing else.
    unsafe { close(fd) };
    result
}

/// Writes `content` into an existing file (a /proc control file) in one write(2).
pub fn write_file(path: &CStr, content: &[u8]) -> SysResult<()> {
    // SAFETY: path is a valid NUL-terminated string.
    let fd = check(unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    let result = write_all(fd, content);
    // SAFETY: fd was opened above and is owned by nothing else.
    unsafe { close(fd) };
    result
}

/// write(2) until everything is written.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        // SAFETY: buf is a valid readable slice of the given length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// close(2), ignoring errors.
///
/// # Safety
/// `fd` must be a descriptor the caller owns and that no `OwnedFd`/`File` of this process
/// still owns (I/O safety: it would be closed twice, or close a reused number). In a cell's
/// processes, which end in execve or _exit and never drop their owners, a step list's own
/// descriptors qualify.
pub unsafe fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` (above).
    unsafe { libc::close(fd) };
}

/// close_range(2).
pub fn close_range(first: u32, last: u32, flags: u32) -> SysResult<()> {
    // SAFETY: plain syscall with integer arguments.
    check_long(unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) }).map(drop)
}

/// dup2(2) that also clears close-on-exec when `from == to`.
///
/// # Safety
/// `to` is closed and replaced: no owner in this process may still own it (a cell's program
/// process replacing its 0-2 before execve qualifies).
pub unsafe fn dup_onto(from: RawFd, to: RawFd) -> SysResult<()> {
    if from == to {
        // SAFETY: fcntl on a descriptor number with integer arguments.
        return check(unsafe { libc::fcntl(from, libc::F_SETFD, 0) }).map(drop);
    }
    // SAFETY: dup2 on descriptor numbers.
    check(unsafe { libc::dup2(from, to) }).map(drop)
}

/// sethostname(2).
pub fn sethostname(name: &[u8]) -> SysResult<()> {
    // SAFETY: name is a valid slice of the given length.
    check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// unshare(2).
pub fn unshare(flags: c_int) -> SysResult<()> {
    // SAFETY: plain syscall with an integer argument.
    check(unsafe { libc::unshare(flags) }).map(drop)
}

/// setsid(2).
pub fn setsid() -> SysResult<()> {
    // SAFETY: no arguments.
    check(unsafe { libc::setsid() }).map(drop)
}

/// umask(2).
pub fn umask(mask: u32) {
    // SAFETY: no failure mode.
    unsafe { libc::umask(mask) };
}

/// setrlimit(2).
pub fn setrlimit(resource: u32, soft: u64, hard: u64) -> SysResult<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: lim is a valid rlimit for the duration of the call.
    check(unsafe { libc::setrlimit(resource as _, &lim) }).map(drop)
}

/// Whether this process has exactly one thread (counted in /proc/self/task). Threading rule 2
/// of the module (`sandbox/mod.rs`): only then may a child cloned from it allocate.
pub fn single_threaded() -> std::io::Result<bool> {
    let mut threads = 0;
    for entry in std::fs::read_dir("/proc/self/task")? {
        entry?;
        threads += 1;
        if threads > 1 {
            return Ok(false);
        }
    }
    Ok(threads == 1)
}

// The identity calls below are raw syscalls on purpose: glibc's setresuid/setresgid/
// setgroups broadcast the change to every thread of the process (__nptl_setxid). In a child
// cloned from a multithreaded parent, glibc's copied thread list still names the parent's
// threads, and the broadcast waits forever for threads that do not exist here.

/// setgroups(2) with an empty list (raw syscall, no glibc thread broadcast).
pub fn clear_groups() -> SysResult<()> {
    // SAFETY: size 0 with a null list is valid.
    check_long(unsafe { libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()) })
        .map(drop)
}

/// setresgid(2) to one gid (raw syscall, no glibc thread broadcast).
pub fn set_gid(gid: u32) -> SysResult<()> {
    // SAFETY: integer arguments.
    check_long(unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) }).map(drop)
}

/// setresuid(2) to one uid (raw syscall, no glibc thread broadcast).
pub fn set_uid(uid: u32) -> SysResult<()> {
    // SAFETY: integer arguments.
    check_long(unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) }).map(drop)
}

/// prctl(2) with integer arguments.
pub fn prctl(option: c_int, arg2: c_ulong, arg3: c_ulong) -> SysResult<c_int> {
    // SAFETY: the options we use take integer arguments only.
    check(unsafe { libc::prctl(option, arg2, arg3, 0 as c_ulong, 0 as c_ulong) })
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// capset(2): clears the effective, permitted and inheritable sets of the calling thread.
pub fn clear_capabilities() -> SysResult<()> {
    let mut header = CapHeader {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and data are valid for the v3 ABI (two CapData entries).
    check_long(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) }).map(drop)
}

/// seccomp(SECCOMP_SET_MODE_FILTER) with one BPF program.
pub fn install_seccomp(program: &[seccompiler::sock_filter]) -> SysResult<()> {
    // seccompiler's sock_filter is #[repr(C)] with the kernel's layout, like libc's.
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prog points to a valid filter array for the duration of the call; the kernel
    // copies it.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const libc::sock_fprog,
        )
    })
    .map(drop)
}

/// execve(2); returns only on failure.
pub fn execve(path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
    // SAFETY: argv and envp are null-terminated arrays of pointers to NUL-terminated strings
    // that the caller keeps alive (built before the clone).
    unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    errno()
}

/// The result of wait4(2).
#[derive(Debug, Clone, Copy)]
pub struct Waited {
    pub pid: pid_t,
    pub status: c_int,
    pub rusage: libc::rusage,
}

/// wait4(2), retrying on EINTR.
pub fn wait4(pid: pid_t, options: c_int) -> SysResult<Waited> {
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain data; all-zero is a valid value.
        let mut rusage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: status and rusage are valid for writes.
        let ret = unsafe { libc::wait4(pid, &mut status, options, &mut rusage) };
        if ret < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        return Ok(Waited {
            pid: ret,
            status,
            rusage,
        });
    }
}

/// _exit(2): ends the process without running any user-space cleanup.
pub fn exit(code: c_int) -> ! {
    // SAFETY: _exit never returns and runs no atexit handlers (safe after clone).
    unsafe { libc::_exit(code) }
}

/// Brings the loopback interface up (SIOCGIFFLAGS / SIOCSIFFLAGS on a datagram socket).
pub fn loopback_up() -> SysResult<()> {
    // SAFETY: plain socket(2) call.
    let fd =
        check(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })?;
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as c_char;
    }
    // SAFETY: req is a valid ifreq for SIOCGIFFLAGS, which fills ifru_flags.
    let result = check(unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) }).and_then(|_| {
        // SAFETY: ifru_flags was just filled in by the kernel (union member of ifreq).
        unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
        // SAFETY: req is a valid ifreq for SIOCSIFFLAGS.
        check(unsafe { libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) })
    });
    // SAFETY: fd is the socket opened above, owned by nothing else.
    unsafe { close(fd) };
    result.map(drop)
}

/// open_tree(2) with OPEN_TREE_CLONE: a detached copy of the mount at `path`.
pub fn open_tree_clone(path: &CStr, recursive: bool) -> SysResult<RawFd> {
    const OPEN_TREE_CLONE: u32 = 1;
    const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
    const AT_RECURSIVE: u32 = 0x8000;
    let flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: path is a valid NUL-terminated string.
    check_long(unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) })
        .map(|fd| fd as RawFd)
}

/// move_mount(2) of a detached tree (from open_tree) onto `target`.
pub fn move_mount_onto(tree: RawFd, target: &CStr) -> SysResult<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 4;
    // SAFETY: the empty string and target are valid NUL-terminated strings.
    check_long(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    })
    .map(drop)
}

/// read(2) once; `Ok(0)` is end of file.
pub fn read(fd: RawFd, buf: &mut [u8]) -> SysResult<usize> {
    // SAFETY: buf is a valid writable slice of the given length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(errno())
    } else {
        Ok(n as usize)
    }
}

/// pidfd_send_signal(2).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: c_int) -> SysResult<()> {
    // SAFETY: integer arguments and a null siginfo (allowed).
    check_long(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// Takes ownership of a raw descriptor the kernel handed us (e.g. clone3's pidfd).
///
/// # Safety
/// `fd` must be open and owned by nothing else (freshly returned by the kernel).
pub unsafe fn own_fd(fd: RawFd) -> OwnedFd {
    // SAFETY: the caller hands over sole ownership of an open descriptor (above).
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// The uid of this process.
pub fn geteuid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() }
}

/// Makes sure descriptors 0, 1 and 2 are open (onto /dev/null), so descriptors we create
/// never take those numbers.
pub fn ensure_std_fds_open() {
    for fd in 0..3 {
        // SAFETY: F_GETFD on a descriptor number only queries it.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
            // SAFETY: opening /dev/null with a valid path; the lowest free number is `fd`.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}
