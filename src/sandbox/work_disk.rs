//! A work dir whose contents outlive its cell: how a compile step's artifact leaves the cell
//! without a host directory.
//!
//! The disk is a tmpfs made with the mount API (`fsopen`/`fsmount`) and never attached to
//! the host's tree: it appears in no host mount table and no host path leads to it. It is
//! sized like the cell's own work dir (`limits.disk` bytes, `limits.inodes` inodes), so a
//! build that tries to fill it gets ENOSPC, and it is memory, charged to the cell that wrote
//! it: nothing lands on the host's disk. The cell's PID 1 attaches it over its work dir
//! (`Step::AttachWorkDisk`) before the run's files are written; when the run ends, the
//! launcher reads the files back through the mount's descriptor ([`WorkDisk::read_files`])
//! before the cell is torn down, and dropping the descriptor frees the disk.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::fs::{Dir, FileType, Mode, OFlags};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
    MountAttrFlags,
};

use super::SandboxError;
use crate::spec::FileSpec;

/// How much of a work disk may be read back, and why reading stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureBounds {
    /// Most bytes of file contents in all.
    pub max_bytes: u64,
    /// Most regular files.
    pub max_files: usize,
    /// Deepest directory nesting followed.
    pub max_depth: usize,
}

/// Why a work disk's files could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("the work dir holds more than {0} files")]
    TooManyFiles(usize),
    #[error("the work dir's files exceed {0} bytes")]
    TooLarge(u64),
    #[error("the work dir nests directories deeper than {0}")]
    TooDeep(usize),
    #[error("reading the work dir at {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A detached tmpfs (see the module doc).
#[derive(Debug)]
pub struct WorkDisk {
    mount: OwnedFd,
}

impl WorkDisk {
    /// A fresh, empty tmpfs of `size` bytes and `inodes` inodes whose root belongs to
    /// `uid:gid` (the program writes there), nosuid and nodev.
    pub fn create(size: u64, inodes: u64, uid: u32, gid: u32) -> Result<WorkDisk, SandboxError> {
        let fail = |what: &str, e: rustix::io::Errno| {
            SandboxError::prepare(format!("work disk: {what}"), e.into())
        };
        let fs = fsopen("tmpfs", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| fail("fsopen", e))?;
        for (key, value) in [
            ("size", size.to_string()),
            ("nr_inodes", inodes.to_string()),
            ("mode", "755".to_string()),
            ("uid", uid.to_string()),
            ("gid", gid.to_string()),
        ] {
            fsconfig_set_string(&fs, key, value.as_str())
                .map_err(|e| fail(&format!("set {key}={value}"), e))?;
        }
        fsconfig_create(&fs).map_err(|e| fail("create", e))?;
        let mount = fsmount(
            &fs,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::MOUNT_ATTR_NOSUID | MountAttrFlags::MOUNT_ATTR_NODEV,
        )
        .map_err(|e| fail("fsmount", e))?;
        Ok(WorkDisk { mount })
    }

    /// The mount's descriptor, for the cell to attach.
    pub(super) fn as_fd(&self) -> BorrowedFd<'_> {
        self.mount.as_fd()
    }

    /// Every regular file on the disk with its permission bits, in a stable order (sorted
    /// by path). Symlinks, devices, sockets and fifos are skipped; nothing is followed, so
    /// what a program planted there cannot point the read anywhere else.
    pub fn read_files(&self, bounds: CaptureBounds) -> Result<Vec<FileSpec>, CaptureError> {
        let root = open_dir(self.mount.as_fd(), c".", "")?;
        let mut walk = Walk {
            bounds,
            files: Vec::new(),
            bytes: 0,
        };
        walk.dir(root, "", 0)?;
        walk.files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(walk.files)
    }
}

struct Walk {
    bounds: CaptureBounds,
    files: Vec<FileSpec>,
    bytes: u64,
}

fn read_error(path: &str, e: rustix::io::Errno) -> CaptureError {
    CaptureError::Read {
        path: if path.is_empty() {
            ".".into()
        } else {
            path.into()
        },
        source: e.into(),
    }
}

fn open_dir(parent: BorrowedFd<'_>, name: &CStr, path: &str) -> Result<OwnedFd, CaptureError> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| read_error(path, e))
}

impl Walk {
    fn dir(&mut self, fd: OwnedFd, prefix: &str, depth: usize) -> Result<(), CaptureError> {
        if depth > self.bounds.max_depth {
            return Err(CaptureError::TooDeep(self.bounds.max_depth));
        }
        let mut entries = Dir::read_from(&fd).map_err(|e| read_error(prefix, e))?;
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(|e| read_error(prefix, e))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let Ok(text) = name.to_str() else {
                // A path the run spec could not carry; the program cannot depend on it.
                continue;
            };
            let path = format!("{prefix}{text}");
            match entry.file_type() {
                FileType::Directory => {
                    let sub = open_dir(fd.as_fd(), name, &path)?;
                    self.dir(sub, &format!("{path}/"), depth + 1)?;
                }
                FileType::RegularFile => self.file(fd.as_fd(), name, path)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn file(&mut self, dir: BorrowedFd<'_>, name: &CStr, path: String) -> Result<(), CaptureError> {
        if self.files.len() >= self.bounds.max_files {
            return Err(CaptureError::TooManyFiles(self.bounds.max_files));
        }
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| read_error(&path, e))?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| read_error(&path, e))?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Ok(());
        }
        let left = self.bounds.max_bytes.saturating_sub(self.bytes);
        let size = u64::try_from(stat.st_size).unwrap_or(u64::MAX);
        if size > left {
            return Err(CaptureError::TooLarge(self.bounds.max_bytes));
        }
        let mut content = Vec::with_capacity(size as usize);
        // One byte more than allowed tells a file that grew since fstat.
        let mut reader = std::io::Read::take(std::fs::File::from(fd), left + 1);
        std::io::Read::read_to_end(&mut reader, &mut content).map_err(|e| CaptureError::Read {
            path: path.clone(),
            source: e,
        })?;
        self.bytes += content.len() as u64;
        if self.bytes > self.bounds.max_bytes {
            return Err(CaptureError::TooLarge(self.bounds.max_bytes));
        }
        self.files.push(FileSpec {
            path,
            content,
            mode: Some(stat.st_mode & 0o777),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work disks need root (fsopen of a tmpfs); without it the test skips loudly, or fails
    /// under SANDCELL_MUST_RUN=1 as the integration tests do.
    fn have_root() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        let why = "work disks need root (fsopen tmpfs)";
        assert!(
            std::env::var("SANDCELL_MUST_RUN").map_or(true, |v| v != "1"),
            "SANDCELL_MUST_RUN=1 but this test cannot run: {why}"
        );
        eprintln!("\n*** SKIPPED: {why} (set SANDCELL_MUST_RUN=1 to make this a failure) ***\n");
        false
    }

    /// Writes through the mount's descriptor as a cell would through its work dir.
    fn put(disk: &WorkDisk, path: &str, content: &[u8], mode: u32) {
        let dir = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&disk.mount)
        );
        let full = std::path::Path::new(&dir).join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&full, content).unwrap();
        std::fs::set_permissions(&full, std::os::unix::fs::PermissionsExt::from_mode(mode))
            .unwrap();
    }

    const BOUNDS: CaptureBounds = CaptureBounds {
        max_bytes: 1 << 20,
        max_files: 8,
        max_depth: 4,
    };

    #[test]
    fn files_come_back_sorted_with_modes_and_links_are_skipped() {
        if !have_root() {
            return;
        }
        let disk = WorkDisk::create(1 << 20, 64, 0, 0).unwrap();
        put(&disk, "main", b"\x7fELF", 0o755);
        put(&disk, "src/a.c", b"int x;", 0o644);
        let dir = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&disk.mount)
        );
        std::os::unix::fs::symlink("/etc/shadow", format!("{dir}/leak")).unwrap();
        let files = disk.read_files(BOUNDS).unwrap();
        let got: Vec<(&str, u32)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.mode.unwrap()))
            .collect();
        assert_eq!(got, vec![("main", 0o755), ("src/a.c", 0o644)]);
        assert_eq!(files[0].content, b"\x7fELF");
    }

    #[test]
    fn bounds_are_errors_and_the_disk_is_size_capped() {
        if !have_root() {
            return;
        }
        let disk = WorkDisk::create(1 << 20, 64, 0, 0).unwrap();
        for i in 0..3 {
            put(&disk, &format!("f{i}"), b"x", 0o644);
        }
        let few = CaptureBounds {
            max_files: 2,
            ..BOUNDS
        };
        assert!(matches!(
            disk.read_files(few),
            Err(CaptureError::TooManyFiles(2))
        ));
        let small = CaptureBounds {
            max_bytes: 2,
            ..BOUNDS
        };
        assert!(matches!(
            disk.read_files(small),
            Err(CaptureError::TooLarge(2))
        ));
        // The tmpfs itself stops a write past its size.
        let dir = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&disk.mount)
        );
        let big = vec![0u8; 2 << 20];
        let err = std::fs::write(format!("{dir}/big"), &big).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    }
}
