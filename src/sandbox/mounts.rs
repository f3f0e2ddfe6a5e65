//! The cell's filesystem as a list of steps: the image as a read-only overlay on `/`, fresh
//! /proc, a minimal /dev, size-capped tmpfs on /tmp and the work dir, user binds and files.
//!
//! Order matters: bind sources are opened (open_tree) while the host tree is still visible;
//! everything else is mounted after pivot_root, so paths resolve inside the new root and a
//! symlink in the image can never point a mount at the host.
//!
//! No host path in the cell: `/` is an overlay (not a bind) because the kernel shows a bind
//! mount's root as its path within the host's filesystem, in `/proc/self/mountinfo`, which
//! would name the image store or the `--rootfs` dir (`child::mount_root` says how). Every
//! other mount is a fresh filesystem. User binds are the exception, by the user's choice:
//! their mountinfo line shows the source's path within its filesystem, because a bind is
//! that path (and a writable bind cannot be anything else); whoever binds a host path shows
//! it to the cell.

use std::ffi::CString;
use std::path::Path;
use std::sync::Arc;

use libc::c_ulong;

use super::child::{Step, MAX_BIND_SLOTS};
use super::SandboxError;
use crate::spec::RunSpec;

/// Directories the image must provide as mount points.
pub(super) const REQUIRED_DIRS: [&str; 3] = ["proc", "dev", "tmp"];

fn cstr(s: impl Into<Vec<u8>>) -> CString {
    // Paths were validated (no NUL) by RunSpec::validate; a NUL here is a bug, replaced
    // defensively rather than panicking.
    CString::new(s).unwrap_or_else(|e| {
        let mut bytes = e.into_vec();
        bytes.retain(|&b| b != 0);
        CString::new(bytes).unwrap_or_default()
    })
}

/// Checks in the parent that the rootfs can be used: a directory whose mount points exist
/// as real directories (not symlinks). Returns a clear error naming what is wrong.
pub(super) fn check_rootfs(rootfs: &Path, work_dir: &str) -> Result<(), SandboxError> {
    let err = |message: String| SandboxError::Rootfs {
        path: rootfs.display().to_string(),
        message,
    };
    let meta = std::fs::metadata(rootfs).map_err(|e| err(e.to_string()))?;
    if !meta.is_dir() {
        return Err(err("not a directory".into()));
    }
    let work = work_dir.trim_start_matches('/');
    for dir in REQUIRED_DIRS.iter().copied().chain(std::iter::once(work)) {
        let path = rootfs.join(dir);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(err(format!(
                    "/{dir} must be a real directory (it is a symlink or file)"
                )))
            }
            Err(_) => {
                return Err(err(format!(
                    "missing mount point /{dir} (create the directory in the image)"
                )))
            }
        }
    }
    Ok(())
}

const NOSUID_NODEV: c_ulong = libc::MS_NOSUID | libc::MS_NODEV;

fn tmpfs(target: &str, flags: c_ulong, options: String) -> Step {
    Step::Mount {
        source: Some(c"tmpfs".into()),
        target: cstr(target),
        fstype: Some(c"tmpfs".into()),
        flags,
        data: Some(cstr(options)),
    }
}

fn makedev(major: u64, minor: u64) -> u64 {
    libc::makedev(major as u32, minor as u32)
}

/// The device nodes of the cell's /dev.
const DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

const DEV_LINKS: [(&str, &str); 4] = [
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
];

/// What runc and Docker hide in /proc: kernel memory, keys, timers and scheduler internals
/// (files: /dev/null is bound over them; directories: an empty read-only tmpfs).
pub(super) const MASKED_PROC_PATHS: [&str; 8] = [
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
];

/// What runc and Docker make read-only in /proc (kernel tunables and hardware state).
pub(super) const READ_ONLY_PROC_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Defence in depth: the program is unprivileged and could not write most of these anyway.
/// Paths this kernel does not have are skipped.
fn proc_mask_steps() -> Vec<Step> {
    let masked = MASKED_PROC_PATHS
        .iter()
        .map(|p| Step::Mask { path: cstr(*p) });
    let read_only = READ_ONLY_PROC_PATHS
        .iter()
        .map(|p| Step::ReadOnlyBind { path: cstr(*p) });
    masked.chain(read_only).collect()
}

/// The steps that build the cell's filesystem, run by PID 1 of the cell.
pub(super) fn filesystem_steps(spec: &RunSpec) -> Result<Vec<Step>, SandboxError> {
    if spec.binds.len() > MAX_BIND_SLOTS {
        return Err(SandboxError::Rootfs {
            path: spec.rootfs.display().to_string(),
            message: format!("at most {MAX_BIND_SLOTS} binds per run"),
        });
    }
    let root = cstr(spec.rootfs.as_os_str().as_encoded_bytes());
    let disk = spec.limits.disk;
    let inodes = spec.limits.inodes;
    let (uid, gid) = (spec.uid, spec.gid);
    let work = spec.work_dir.as_str();
    let mut steps = vec![Step::MakeMountsPrivate];

    for (slot, bind) in spec.binds.iter().enumerate() {
        steps.push(Step::OpenTree {
            source: cstr(bind.source.as_os_str().as_encoded_bytes()),
            slot,
            recursive: false,
        });
    }
    steps.push(Step::MountRoot(root.clone()));
    steps.push(Step::PivotRoot(root));

    steps.push(Step::Mount {
        source: Some(c"proc".into()),
        target: c"/proc".into(),
        fstype: Some(c"proc".into()),
        flags: NOSUID_NODEV | libc::MS_NOEXEC,
        data: Some(c"hidepid=2".into()),
    });

    steps.push(tmpfs(
        "/dev",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        "mode=755,size=64k,nr_inodes=64".into(),
    ));
    for (name, major, minor) in DEVICES {
        steps.push(Step::Mknod {
            path: cstr(format!("/dev/{name}")),
            mode: libc::S_IFCHR | 0o666,
            dev: makedev(major, minor),
        });
    }
    for (target, link) in DEV_LINKS {
        steps.push(Step::Symlink {
            target: cstr(target),
            link: cstr(format!("/dev/{link}")),
        });
    }
    steps.push(Step::Mkdir {
        path: c"/dev/shm".into(),
        mode: 0o1777,
        owner: None,
    });
    steps.push(tmpfs(
        "/dev/shm",
        NOSUID_NODEV | libc::MS_NOEXEC,
        format!("mode=1777,size={disk},nr_inodes={inodes}"),
    ));
    steps.push(Step::Remount {
        target: c"/dev".into(),
        flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NOEXEC,
    });
    steps.extend(proc_mask_steps());

    steps.push(tmpfs(
        "/tmp",
        NOSUID_NODEV,
        format!("mode=1777,size={disk},nr_inodes={inodes}"),
    ));
    let work_is_bound = spec.binds.iter().any(|b| b.target == work);
    if !work_is_bound {
        steps.push(tmpfs(
            work,
            NOSUID_NODEV,
            format!("mode=755,size={disk},nr_inodes={inodes},uid={uid},gid={gid}"),
        ));
    }

    let work_prefix = format!("{work}/");
    for (slot, bind) in spec.binds.iter().enumerate() {
        if let Some(rel) = bind.target.strip_prefix(&work_prefix) {
            push_parent_dirs(&mut steps, work, rel, (uid, gid));
            if bind.source.is_dir() {
                steps.push(Step::Mkdir {
                    path: cstr(bind.target.as_str()),
                    mode: 0o755,
                    owner: Some((uid, gid)),
                });
            } else {
                steps.push(Step::Touch {
                    path: cstr(bind.target.as_str()),
                });
            }
        }
        let target = cstr(bind.target.as_str());
        steps.push(Step::MoveMount {
            slot,
            target: target.clone(),
        });
        let ro = if bind.writable { 0 } else { libc::MS_RDONLY };
        steps.push(Step::Remount {
            target,
            flags: NOSUID_NODEV | ro,
        });
    }

    steps.push(Step::Remount {
        target: c"/".into(),
        flags: libc::MS_RDONLY | NOSUID_NODEV,
    });
    Ok(steps)
}

/// The steps that put the spec's files into the work dir (after [`filesystem_steps`]; the
/// work dir is its own writable mount, so this works after `/` went read-only).
pub(super) fn file_steps(spec: &RunSpec) -> Vec<Step> {
    let work = spec.work_dir.as_str();
    let owner = (spec.uid, spec.gid);
    let mut steps = Vec::new();
    for file in &spec.files {
        push_parent_dirs(&mut steps, work, &file.path, owner);
        steps.push(Step::WriteFile {
            path: cstr(format!("{work}/{}", file.path)),
            content: Arc::from(file.content.as_slice()),
            mode: file.mode.unwrap_or(0o644) & 0o777,
            owner,
        });
    }
    steps
}

/// The step that puts a work disk (its descriptor `fd`, closed by the step) over the work
/// dir; it comes before [`file_steps`], so the run's files land on the disk.
pub(super) fn attach_work_disk(spec: &RunSpec, fd: std::os::fd::RawFd) -> Step {
    Step::AttachWorkDisk {
        fd,
        target: cstr(spec.work_dir.as_str()),
    }
}

/// Mkdir steps for the directories above `rel` (relative to `base`), owned by the program.
fn push_parent_dirs(steps: &mut Vec<Step>, base: &str, rel: &str, owner: (u32, u32)) {
    let mut path = base.to_string();
    let parts: Vec<&str> = rel.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        path.push('/');
        path.push_str(part);
        steps.push(Step::Mkdir {
            path: cstr(path.as_str()),
            mode: 0o755,
            owner: Some(owner),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_pivot_before_mounting_inside_the_cell() {
        let mut spec = RunSpec::new("/images/x", vec!["/bin/true".into()]);
        spec.files.push(crate::spec::FileSpec {
            path: "src/main.c".into(),
            content: b"int main(){}".to_vec(),
            mode: None,
        });
        let mut steps = filesystem_steps(&spec).unwrap();
        steps.extend(file_steps(&spec));
        let names = crate::sandbox::child::labels(&steps);
        let pos = |n: &str| {
            names
                .iter()
                .position(|s| s == n)
                .unwrap_or_else(|| panic!("{n} in {names:?}"))
        };
        assert!(pos("pivot_root into /images/x") < pos("mount proc on /proc"));
        assert!(pos("mount tmpfs on /work") < pos("mkdir /work/src"));
        assert!(pos("mkdir /work/src") < pos("write file /work/src/main.c"));
        assert!(pos("remount /") < pos("write file /work/src/main.c"));
    }

    #[test]
    fn rootfs_without_mount_points_is_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_rootfs(dir.path(), "/work").unwrap_err().to_string();
        assert!(err.contains("missing mount point /proc"), "{err}");
        for d in ["proc", "dev", "tmp"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        std::os::unix::fs::symlink("/etc", dir.path().join("work")).unwrap();
        let err = check_rootfs(dir.path(), "/work").unwrap_err().to_string();
        assert!(err.contains("real directory"), "{err}");
    }
}
