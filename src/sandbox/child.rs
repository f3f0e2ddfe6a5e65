//! The cell's side of a run: two flat, ordered step lists prepared entirely in the parent.
//!
//! After clone3 the child (PID 1 of the new pid namespace, `pid1.rs`) applies `init_steps`
//! (descriptors, cgroup, mounts, pivot_root, hostname, loopback) and the run's file steps,
//! forks the program, and becomes a tiny reaper. The program process applies `program_steps` (stdio, rlimits, identity,
//! capabilities, no_new_privs, seccomp) and ends in execve. Every step is one or two raw
//! syscalls on data built before the clone: no allocation, no locks, no panics. A failing step
//! copies its own label and the errno into a fixed-size [`Report`], writes it into the
//! CLOEXEC error pipe and exits, so the parent names the exact step without knowing the
//! lists (nsjail / bubblewrap style).

use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::sync::Arc;

use libc::{c_char, c_ulong};

use super::seccomp::CompiledPolicy;
use super::sys::{self, Errno, SysResult};

/// Bind sources opened with open_tree before pivot_root, at most this many per run.
pub(super) const MAX_BIND_SLOTS: usize = 32;

/// Longest step label a failure report carries (longer ones are cut).
const LABEL_MAX: usize = 120;
/// The fixed-size failure record sent over the error pipe: errno, label length, label.
pub(super) const REPORT_LEN: usize = 8 + LABEL_MAX;

/// Text built in a fixed buffer, without allocating (the cell's processes may not allocate).
pub(super) struct FixedText<const N: usize> {
    buf: [u8; N],
    len: usize,
}

/// A step's label (what a failure report names).
pub(super) type Label = FixedText<LABEL_MAX>;

impl<const N: usize> FixedText<N> {
    pub const fn new() -> Self {
        FixedText {
            buf: [0; N],
            len: 0,
        }
    }

    /// Text from fixed text.
    pub fn text(text: &str) -> Self {
        let mut out = Self::new();
        out.push(text.as_bytes());
        out
    }

    /// Appends `bytes`, cutting what does not fit.
    fn push(&mut self, bytes: &[u8]) -> &mut Self {
        let n = bytes.len().min(N - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        self
    }

    fn push_number(&mut self, mut n: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text as a C string; `ENAMETOOLONG` when it (and its NUL) did not fit whole.
    fn as_cstr(&mut self) -> SysResult<&CStr> {
        if self.len >= N {
            return Err(libc::ENAMETOOLONG);
        }
        self.buf[self.len] = 0;
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).map_err(|_| libc::EINVAL)
    }
}

/// Encodes the failure record of the step labelled `label`.
pub(super) fn encode_report(label: &Label, errno: Errno) -> [u8; REPORT_LEN] {
    let mut out = [0u8; REPORT_LEN];
    out[0..4].copy_from_slice(&errno.to_ne_bytes());
    out[4..8].copy_from_slice(&(label.len as u32).to_ne_bytes());
    out[8..8 + label.len].copy_from_slice(label.as_bytes());
    out
}

/// The failed step's label and errno from a failure record (in the parent).
pub(super) fn decode_report(bytes: &[u8]) -> Option<(String, Errno)> {
    let word = |i: usize| -> Option<[u8; 4]> { bytes.get(i..i + 4)?.try_into().ok() };
    let errno = i32::from_ne_bytes(word(0)?);
    let len = u32::from_ne_bytes(word(4)?) as usize;
    let label = bytes.get(8..8 + len.min(LABEL_MAX))?;
    Some((String::from_utf8_lossy(label).into_owned(), errno))
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
    /// Write "0" into an open cgroup join file (`tasks` or `cgroup.procs`): join that cgroup.
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
    /// Mount the rootfs (a host directory) on itself as a read-only overlay whose layers are
    /// named by descriptors, so the cell's mountinfo shows no host path ([`mount_root`]).
    MountRoot(CString),
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
    /// Attach a detached mount (a [`WorkDisk`](super::work_disk::WorkDisk)) over the work
    /// dir, then close its descriptor.
    AttachWorkDisk {
        fd: RawFd,
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
    /// Set this process's dumpable flag. `true` after a uid change, so its /proc files
    /// (uid_map) are its own to write; `false` once they are written: until exec the flag
    /// is that of the memory the program shares with PID 1, which stays non-dumpable (exec
    /// decides again for the program).
    Dumpable(bool),
    /// Enter a new user namespace (the program's: its own host uid mapped to the visible one).
    NewUserNamespace,
    /// Write a /proc control file of this process (`setgroups`, `uid_map`, `gid_map`).
    WriteProc {
        path: &'static CStr,
        content: Vec<u8>,
    },
    /// Give an existing path (a work dir tmpfs root) to the program's host ids.
    Chown {
        path: CString,
        owner: (u32, u32),
    },
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
                // SAFETY: the step list owns its descriptors; this process (a cell's PID 1)
                // ends in execve or _exit and never drops an owner of them.
                unsafe { sys::close(*fd) };
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
            Step::MountRoot(root) => mount_root(root),
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
                // SAFETY: OpenTree put a descriptor only this step list owns in the slot.
                unsafe { sys::close(fd) };
                result
            }
            Step::AttachWorkDisk { fd, target } => {
                let result = sys::move_mount_onto(*fd, target);
                // SAFETY: the step was handed the disk's descriptor (a copy inherited at the
                // clone or received with the run); nothing else in this process owns it.
                unsafe { sys::close(*fd) };
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
            // SAFETY: the program process replaces its 0-2 before execve; nothing in it owns
            // them (its copies of the launcher's owners are never dropped).
            Step::DupOnto { from, to } => unsafe { sys::dup_onto(*from, *to) },
            Step::SetRlimit {
                resource,
                soft,
                hard,
                ..
            } => sys::setrlimit(*resource, *soft, *hard),
            Step::ClearGroups => sys::clear_groups(),
            Step::Dumpable(on) => {
                sys::prctl(libc::PR_SET_DUMPABLE, c_ulong::from(*on), 0).map(drop)
            }
            Step::NewUserNamespace => sys::unshare(libc::CLONE_NEWUSER),
            Step::WriteProc { path, content } => sys::write_file(path, content),
            Step::Chown { path, owner } => sys::lchown(path, owner.0, owner.1),
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

/// Label of [`Step::MountRoot`] (the rootfs path follows).
const ROOT_OVERLAY: &str = "mount the rootfs overlay on ";

/// What to add to a failed step's message, for the steps whose failure has a usual cause.
pub(super) fn failure_hint(label: &str) -> &'static str {
    if label.starts_with(ROOT_OVERLAY) {
        " (the rootfs must be on a filesystem overlayfs takes as a lower layer, at most one \
         overlay deep; the kernel log says why)"
    } else {
        ""
    }
}

/// Room for the overlay's options: two descriptor paths and the fixed options.
const OVERLAY_DATA_MAX: usize = 160;

/// [`Step::MountRoot`]: the cell's `/` before pivot_root.
///
/// A bind mount of the rootfs would do, but the kernel shows a mount's root as its path
/// within its filesystem: `/proc/self/mountinfo` in the cell would name the image store (or
/// the `--rootfs` dir) on the host. An overlay is a filesystem of its own whose root is the
/// mount's root (`/`), and its options name its layers as given: here `/proc/self/fd/N`,
/// descriptors of this process, closed again before the program runs.
///
/// An overlay without an upper layer needs two lower ones (every kernel up to at least
/// 6.18), and layers may not overlap: the second is an empty read-only tmpfs, mounted on
/// the rootfs path after the image's descriptor was opened (so the path resolves exactly as
/// before, and the tmpfs is detached with the host's tree after pivot_root). The overlay is
/// mounted on top of it, where pivot_root finds it.
///
/// What a program may notice: the layers are on two filesystems, so with `xino=off`
/// directories report the overlay's device and inode numbers of its own, files the real
/// inode number and a device per layer (not the host's device as with a bind). A
/// character device 0/0 in the image reads as a whiteout (absent), as in any overlay.
fn mount_root(root: &CStr) -> SysResult<()> {
    let image = sys::open_directory_path(root)?;
    let result = mount_root_over(root, image);
    // SAFETY: opened just above; nothing else owns it.
    unsafe { sys::close(image) };
    result
}

/// The overlay's options: its two lower layers by descriptor, the image's on top.
fn overlay_data(image: RawFd, empty: RawFd) -> FixedText<OVERLAY_DATA_MAX> {
    let mut data = FixedText::new();
    data.push(b"lowerdir=/proc/self/fd/")
        .push_number(image as u64)
        .push(b":/proc/self/fd/")
        .push_number(empty as u64)
        // Layer metadata in the image (redirect or metacopy xattrs) is not followed.
        .push(b",redirect_dir=nofollow,metacopy=off")
        // Real inode numbers whatever the kernel's default: xino would set high bits in
        // every st_ino (beyond 2^53, so JavaScript's numbers lose them and files collide).
        .push(b",xino=off");
    data
}

fn mount_root_over(root: &CStr, image: RawFd) -> SysResult<()> {
    sys::mount(
        Some(c"sandcell-empty"),
        root,
        Some(c"tmpfs"),
        libc::MS_RDONLY | NOSUID_NODEV_NOEXEC,
        Some(c"mode=555,size=4k,nr_inodes=1"),
    )?;
    let empty = sys::open_directory_path(root)?;
    let mut data = overlay_data(image, empty);
    let result = data.as_cstr().and_then(|data| {
        sys::mount(
            Some(c"sandcell"),
            root,
            Some(c"overlay"),
            libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            Some(data),
        )
    });
    // SAFETY: opened just above; nothing else owns it.
    unsafe { sys::close(empty) };
    result
}

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

/// The labels of `steps`, in order (for tests of step lists).
#[cfg(test)]
pub(super) fn labels(steps: &[Step]) -> Vec<String> {
    steps
        .iter()
        .map(|s| {
            let mut label = Label::new();
            s.label(&mut label);
            String::from_utf8_lossy(label.as_bytes()).into_owned()
        })
        .collect()
}

impl Step {
    /// Writes this step's label (what a failure report names) without allocating.
    pub(super) fn label(&self, out: &mut Label) {
        let text = |out: &mut Label, t: &str| {
            out.push(t.as_bytes());
        };
        match self {
            Step::CloseAllExcept(_) => text(out, "close inherited descriptors"),
            Step::ParentDeathSignal => text(out, "set parent-death signal"),
            Step::JoinCgroup(_) => text(out, "join the cell's cgroup"),
            Step::Close(_) => text(out, "close descriptor"),
            Step::UnshareCgroupNamespace => text(out, "create cgroup namespace"),
            Step::Umask(_) => text(out, "set umask"),
            Step::MakeMountsPrivate => text(out, "make mounts private"),
            Step::OpenTree { source, .. } => {
                out.push(b"open bind source ").push(source.as_bytes());
            }
            Step::MountRoot(root) => {
                out.push(ROOT_OVERLAY.as_bytes()).push(root.as_bytes());
            }
            Step::PivotRoot(root) => {
                out.push(b"pivot_root into ").push(root.as_bytes());
            }
            Step::Mount { target, fstype, .. } => {
                let fstype = fstype.as_deref().map_or(&b"bind"[..], CStr::to_bytes);
                out.push(b"mount ")
                    .push(fstype)
                    .push(b" on ")
                    .push(target.as_bytes());
            }
            Step::Remount { target, .. } => {
                out.push(b"remount ").push(target.as_bytes());
            }
            Step::Mask { path } => {
                out.push(b"mask ").push(path.as_bytes());
            }
            Step::ReadOnlyBind { path } => {
                out.push(b"make ").push(path.as_bytes()).push(b" read-only");
            }
            Step::MoveMount { target, .. } => {
                out.push(b"bind onto ").push(target.as_bytes());
            }
            Step::AttachWorkDisk { target, .. } => {
                out.push(b"attach the work disk at ")
                    .push(target.as_bytes());
            }
            Step::Mkdir { path, .. } => {
                out.push(b"mkdir ").push(path.as_bytes());
            }
            Step::Touch { path } => {
                out.push(b"create ").push(path.as_bytes());
            }
            Step::Mknod { path, .. } => {
                out.push(b"mknod ").push(path.as_bytes());
            }
            Step::Symlink { link, .. } => {
                out.push(b"symlink ").push(link.as_bytes());
            }
            Step::WriteFile { path, .. } => {
                out.push(b"write file ").push(path.as_bytes());
            }
            Step::SetHostname(_) => text(out, "set hostname"),
            Step::LoopbackUp => text(out, "bring up loopback"),
            Step::NewSession => text(out, "setsid"),
            Step::DupOnto { to, .. } => {
                out.push(b"set up descriptor ").push_number(*to as u64);
            }
            Step::SetRlimit { name, .. } => {
                out.push(b"setrlimit ").push(name.as_bytes());
            }
            Step::ClearGroups => text(out, "setgroups"),
            Step::Dumpable(true) => text(out, "set dumpable"),
            Step::Dumpable(false) => text(out, "clear dumpable"),
            Step::NewUserNamespace => text(out, "create user namespace"),
            Step::WriteProc { path, .. } => {
                out.push(b"write ").push(path.to_bytes());
            }
            Step::Chown { path, owner } => {
                out.push(b"chown ")
                    .push(path.as_bytes())
                    .push(b" to ")
                    .push_number(u64::from(owner.0));
            }
            Step::SetGid(gid) => {
                out.push(b"setgid ").push_number(u64::from(*gid));
            }
            Step::LockSecurebits => text(out, "lock securebits"),
            Step::DropBoundingSet { .. } => text(out, "drop capability bounding set"),
            Step::ClearAmbient => text(out, "clear ambient capabilities"),
            Step::SetUid(uid) => {
                out.push(b"setuid ").push_number(u64::from(*uid));
            }
            Step::ClearCapabilities => text(out, "drop capabilities"),
            Step::NoNewPrivs => text(out, "set no_new_privs"),
            Step::Chdir(path) => {
                out.push(b"chdir ").push(path.as_bytes());
            }
            Step::CloexecFrom(_) => text(out, "close descriptors on exec"),
            Step::Seccomp(_) => text(out, "install seccomp filter"),
            Step::Exec(plan) => {
                out.push(b"exec ").push(plan.display.as_bytes());
            }
        }
    }
}

/// What the program process and the reaper need, built before the program is forked.
pub(super) struct ChildPlan {
    pub program_steps: Vec<Step>,
    /// Write end of the CLOEXEC error pipe.
    pub error_fd: RawFd,
    /// Write end of the status pipe (the reaper reports the program's wait status).
    pub status_fd: RawFd,
    /// Descriptors the reaper closes after forking the program (stdio sources).
    pub reaper_closes: Vec<RawFd>,
}

/// Reports the failed step (its label) over the error pipe and exits.
pub(super) fn fail(error_fd: RawFd, label: &Label, errno: Errno) -> ! {
    let _ = sys::write_all(error_fd, &encode_report(label, errno));
    sys::exit(127)
}

/// Applies `steps` in order; the first failure is reported and ends the process.
pub(super) fn apply_all(error_fd: RawFd, steps: &[Step], slots: &mut [RawFd; MAX_BIND_SLOTS]) {
    if let Err((failed, errno)) = try_apply_all(steps, slots) {
        fail(error_fd, &failed.label_of(), errno);
    }
}

/// Applies `steps` in order; the first failure comes back with its step (for a PID 1 that
/// lives on after a failed exec). Allocates nothing.
pub(super) fn try_apply_all<'s>(
    steps: &'s [Step],
    slots: &mut [RawFd; MAX_BIND_SLOTS],
) -> Result<(), (&'s Step, Errno)> {
    for step in steps {
        step.apply(slots).map_err(|errno| (step, errno))?;
    }
    Ok(())
}

impl Step {
    fn label_of(&self) -> Label {
        let mut label = Label::new();
        self.label(&mut label);
        label
    }
}

/// Size of the stack the program process uses between its clone and execve.
pub(super) const PROGRAM_STACK: usize = 256 * 1024;

/// The program process: applies `program_steps`, ending in execve (or a failure report).
fn program_main(plan: &ChildPlan) -> ! {
    let mut slots = [-1; MAX_BIND_SLOTS];
    apply_all(plan.error_fd, &plan.program_steps, &mut slots);
    // The last step is Exec, which only returns as an error.
    fail(plan.error_fd, &Label::new(), libc::EINVAL)
}

/// Starts the program vfork-style (it shares this process's memory until it execs: no page
/// table copy, no copy-on-write faults), then reaps. Never returns.
pub(super) fn start_program(plan: &ChildPlan, stack: &mut [u8]) -> ! {
    match spawn_program(plan, stack) {
        Ok(program) => reap(plan, program),
        Err(errno) => fail(plan.error_fd, &Label::text(FORK), errno),
    }
}

/// The label of a failed program fork.
pub(super) const FORK: &str = "fork the program";

/// Starts the program (see [`start_program`]) and returns its pid once it has exec'd or
/// failed: the caller reaps it.
pub(super) fn spawn_program(plan: &ChildPlan, stack: &mut [u8]) -> SysResult<libc::pid_t> {
    // SAFETY: this process is single-threaded (PID 1 of a cell) and suspended until the
    // program execs or exits; `program_main` runs only the prepared raw-syscall steps on
    // `stack`, which nothing else uses, and ends in execve or _exit.
    unsafe { sys::clone_vfork(stack, program_main, plan) }
}

/// PID 1 after the fork: drop privileges, reap every process, report the program's status.
/// When PID 1 exits, the kernel kills every other process of the pid namespace.
fn reap(plan: &ChildPlan, program: libc::pid_t) -> ! {
    // SAFETY: PID 1 ends in _exit below and never drops the owners of these copies (the
    // plan's borrowed pipe ends), so closing them by number cannot double-close.
    unsafe {
        sys::close(plan.error_fd);
        for &fd in &plan.reaper_closes {
            sys::close(fd);
        }
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
    fn reports_round_trip_with_the_step_label() {
        let step = Step::Mkdir {
            path: c"/work/dir".into(),
            mode: 0o755,
            owner: None,
        };
        let mut label = Label::new();
        step.label(&mut label);
        let bytes = encode_report(&label, libc::ENOENT);
        assert_eq!(
            decode_report(&bytes),
            Some(("mkdir /work/dir".to_string(), libc::ENOENT))
        );
        assert_eq!(decode_report(&bytes[..5]), None);
    }

    #[test]
    fn overlay_options_name_descriptors_and_fit_any_descriptor_numbers() {
        let mut data = overlay_data(3, 4);
        assert_eq!(
            data.as_cstr().unwrap().to_bytes(),
            b"lowerdir=/proc/self/fd/3:/proc/self/fd/4,redirect_dir=nofollow,metacopy=off,xino=off"
        );
        let mut data = overlay_data(RawFd::MAX, RawFd::MAX);
        assert!(data.as_cstr().is_ok());
        let mut full = FixedText::<4>::text("abcd");
        assert_eq!(full.as_cstr(), Err(libc::ENAMETOOLONG));
    }

    #[test]
    fn a_failed_root_overlay_says_what_the_rootfs_needs() {
        let mut label = Label::new();
        Step::MountRoot(c"/srv/img".into()).label(&mut label);
        let label = String::from_utf8_lossy(label.as_bytes()).into_owned();
        assert_eq!(label, "mount the rootfs overlay on /srv/img");
        assert!(failure_hint(&label).contains("overlayfs"));
        assert_eq!(failure_hint("mkdir /work/x"), "");
    }

    #[test]
    fn long_labels_are_cut_and_numbers_written() {
        let long = CString::new("x".repeat(500)).unwrap();
        let mut label = Label::new();
        Step::Chdir(long).label(&mut label);
        assert_eq!(label.as_bytes().len(), LABEL_MAX);
        let mut label = Label::new();
        Step::DupOnto { from: 7, to: 2 }.label(&mut label);
        assert_eq!(label.as_bytes(), b"set up descriptor 2");
        let mut label = Label::new();
        Step::SetUid(65534).label(&mut label);
        assert_eq!(label.as_bytes(), b"setuid 65534");
    }
}
