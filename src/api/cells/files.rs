//! Files in and out of a long-lived cell, through the cell's root as its PID 1 sees it.
//!
//! The daemon is root on the host, so every path is resolved by the kernel beneath the
//! cell's root (`openat2` with `RESOLVE_IN_ROOT`): `..` stops at the cell's `/`, and a
//! symlink inside the cell pointing at `/etc/shadow` names the cell's own file, never the
//! host's. Magic links (`/proc/*/fd`, `/proc/*/root`) are not followed, procfs and sysfs are
//! refused (the cell's `/proc` shows processes the daemon could read), and only regular
//! files and directories are read or written: a FIFO or device cannot block or flood the
//! daemon. A directory is read as a tar stream built from descriptors too (`openat` with
//! `O_NOFOLLOW` per entry), so swapping a directory for a symlink mid-walk leads nowhere.

use std::ffi::CStr;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};

/// Why a file could not be moved.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}: no such file or directory in the cell")]
    NotFound(String),
    #[error("{0}")]
    Refused(String),
    #[error("the cell's file system is full (its disk or inode limit)")]
    NoSpace,
    #[error("{0}: read-only in the cell (write under the work dir or /tmp)")]
    ReadOnly(String),
    #[error("more than {0} bytes")]
    TooLarge(u64),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl FileError {
    fn of(path: &str, e: rustix::io::Errno) -> FileError {
        match e {
            rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR => {
                FileError::NotFound(path.to_string())
            }
            rustix::io::Errno::NOSPC | rustix::io::Errno::DQUOT => FileError::NoSpace,
            rustix::io::Errno::ROFS => FileError::ReadOnly(path.to_string()),
            rustix::io::Errno::LOOP => {
                FileError::Refused(format!("{path}: is a symlink (not followed)"))
            }
            rustix::io::Errno::ISDIR => FileError::Refused(format!("{path}: is a directory")),
            other => FileError::Io(std::io::Error::from_raw_os_error(other.raw_os_error())),
        }
    }
}

const IN_ROOT: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);
const PROC_SUPER_MAGIC: i64 = 0x9fa0;
const SYSFS_MAGIC: i64 = 0x6265_6572;
/// Entries a directory read may hold.
pub const MAX_TAR_ENTRIES: usize = 100_000;

/// Checks a path given by a client: not empty, no NUL, at most 4096 bytes.
pub fn check_path(path: &str) -> Result<(), FileError> {
    if path.is_empty() || path.len() > 4096 || path.contains('\0') {
        return Err(FileError::Refused(
            "a path is 1 to 4096 bytes without NUL".into(),
        ));
    }
    Ok(())
}

fn refuse_pseudo_fs(fd: impl AsFd, path: &str) -> Result<(), FileError> {
    let fs = rustix::fs::fstatfs(fd).map_err(|e| FileError::of(path, e))?;
    let kind = fs.f_type as i64;
    if kind == PROC_SUPER_MAGIC || kind == SYSFS_MAGIC {
        return Err(FileError::Refused(format!(
            "{path}: /proc and /sys of a cell are not served"
        )));
    }
    Ok(())
}

/// Splits `path` into its parent and a last component that names an entry (not `.`/`..`).
fn split(path: &str) -> Result<(&str, &str), FileError> {
    let trimmed = path.trim_end_matches('/');
    let (parent, name) = match trimmed.rsplit_once('/') {
        Some((p, n)) => (if p.is_empty() { "/" } else { p }, n),
        None => (".", trimmed),
    };
    if name.is_empty() || name == "." || name == ".." {
        return Err(FileError::Refused(format!("{path}: names no file")));
    }
    Ok((parent, name))
}

/// Opens (creating what is missing, owned by `owner`) the directory `path` beneath `root`.
fn make_dirs(root: &OwnedFd, path: &str, owner: (u32, u32)) -> Result<OwnedFd, FileError> {
    let open = |at: &OwnedFd, p: &str| {
        rustix::fs::openat2(
            at,
            p,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            IN_ROOT,
        )
    };
    match open(root, path) {
        Ok(fd) => return Ok(fd),
        Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(FileError::of(path, e)),
    }
    let mut dir = open(root, "/").map_err(|e| FileError::of("/", e))?;
    for part in path.split('/').filter(|p| !p.is_empty() && *p != ".") {
        match open(&dir, part) {
            Ok(next) => dir = next,
            Err(rustix::io::Errno::NOENT) => {
                rustix::fs::mkdirat(&dir, part, Mode::from_raw_mode(0o755))
                    .map_err(|e| FileError::of(path, e))?;
                let next = rustix::fs::openat2(
                    &dir,
                    part,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )
                .map_err(|e| FileError::of(path, e))?;
                std::os::unix::fs::fchown(&next, Some(owner.0), Some(owner.1))?;
                dir = next;
            }
            Err(e) => return Err(FileError::of(path, e)),
        }
    }
    Ok(dir)
}

/// Writes `content` to `path` in the cell (parents created), owned by `owner` with `mode`.
pub fn write_file(
    root: &OwnedFd,
    path: &str,
    content: &[u8],
    owner: (u32, u32),
    mode: u32,
) -> Result<(), FileError> {
    check_path(path)?;
    let (parent, name) = split(path)?;
    let dir = make_dirs(root, parent, owner)?;
    refuse_pseudo_fs(&dir, path)?;
    let fd = rustix::fs::openat2(
        &dir,
        name,
        OFlags::WRONLY
            | OFlags::CREATE
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::NOCTTY
            | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode & 0o777),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )
    .map_err(|e| FileError::of(path, e))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| FileError::of(path, e))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(FileError::Refused(format!("{path}: not a regular file")));
    }
    rustix::fs::ftruncate(&fd, 0).map_err(|e| FileError::of(path, e))?;
    std::os::unix::fs::fchown(&fd, Some(owner.0), Some(owner.1))?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o777))
        .map_err(|e| FileError::of(path, e))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(content).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => FileError::NoSpace,
        _ => FileError::Io(e),
    })
}

/// What a path in the cell is, opened for reading.
pub enum Opened {
    File { file: std::fs::File, size: u64 },
    Dir(OwnedFd),
}

/// Opens `path` in the cell for reading: a regular file or a directory.
pub fn open(root: &OwnedFd, path: &str) -> Result<Opened, FileError> {
    check_path(path)?;
    let fd = rustix::fs::openat2(
        root,
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        IN_ROOT,
    )
    .map_err(|e| FileError::of(path, e))?;
    refuse_pseudo_fs(&fd, path)?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| FileError::of(path, e))?;
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::RegularFile => Ok(Opened::File {
            file: std::fs::File::from(fd),
            size: stat.st_size.max(0) as u64,
        }),
        FileType::Directory => Ok(Opened::Dir(fd)),
        _ => Err(FileError::Refused(format!(
            "{path}: not a regular file or directory"
        ))),
    }
}

/// Writes the tree under `dir` to `out` as a tar stream: directories, regular files and
/// symlinks (as links), at most `max_bytes` of file content and [`MAX_TAR_ENTRIES`]
/// entries; anything else (devices, FIFOs, sockets, /proc) is left out.
pub fn write_tar(dir: OwnedFd, out: impl Write, max_bytes: u64) -> Result<(), FileError> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut budget = Budget {
        bytes: max_bytes,
        entries: MAX_TAR_ENTRIES,
    };
    let mut stack: Vec<(OwnedFd, String)> = vec![(dir, String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let mut names: Vec<std::ffi::CString> = Vec::new();
        let dup = rustix::io::dup(&dir).map_err(|e| FileError::of(&prefix, e))?;
        for entry in rustix::fs::Dir::read_from(dup).map_err(|e| FileError::of(&prefix, e))? {
            let entry = entry.map_err(|e| FileError::of(&prefix, e))?;
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            names.push(name.to_owned());
        }
        names.sort();
        for name in names {
            budget.entry()?;
            let rel = format!("{prefix}{}", name.to_string_lossy());
            add_entry(&mut tar, &dir, &name, &rel, &mut budget, &mut stack)?;
        }
    }
    tar.into_inner()?.flush()?;
    Ok(())
}

struct Budget {
    bytes: u64,
    entries: usize,
}

impl Budget {
    fn entry(&mut self) -> Result<(), FileError> {
        self.entries = self
            .entries
            .checked_sub(1)
            .ok_or_else(|| FileError::Refused(format!("more than {MAX_TAR_ENTRIES} entries")))?;
        Ok(())
    }
}

fn add_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    dir: &OwnedFd,
    name: &CStr,
    rel: &str,
    budget: &mut Budget,
    stack: &mut Vec<(OwnedFd, String)>,
) -> Result<(), FileError> {
    let stat = match rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(s) => s,
        // Gone meanwhile (the cell's programs keep running).
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(FileError::of(rel, e)),
    };
    let mut header = tar::Header::new_gnu();
    header.set_mode(stat.st_mode & 0o777);
    header.set_mtime(stat.st_mtime.max(0) as u64);
    match FileType::from_raw_mode(stat.st_mode) {
        FileType::Directory => {
            let sub = match rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP) => return Ok(()),
                Err(e) => return Err(FileError::of(rel, e)),
            };
            if refuse_pseudo_fs(&sub, rel).is_err() {
                return Ok(());
            }
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            tar.append_data(&mut header, format!("{rel}/"), std::io::empty())?;
            stack.push((sub, format!("{rel}/")));
        }
        FileType::RegularFile => {
            let fd = match rustix::fs::openat(
                dir,
                name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::LOOP) => return Ok(()),
                Err(e) => return Err(FileError::of(rel, e)),
            };
            let now = rustix::fs::fstat(&fd).map_err(|e| FileError::of(rel, e))?;
            if FileType::from_raw_mode(now.st_mode) != FileType::RegularFile {
                return Ok(());
            }
            let size = now.st_size.max(0) as u64;
            budget.bytes = budget
                .bytes
                .checked_sub(size)
                .ok_or(FileError::TooLarge(budget.bytes))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(size);
            // Exactly `size` bytes: a file that grows meanwhile is cut, one that shrinks is
            // padded with zeros, so the stream stays a valid tar.
            let content = std::fs::File::from(fd)
                .take(size)
                .chain(std::io::repeat(0))
                .take(size);
            tar.append_data(&mut header, rel, content)?;
        }
        FileType::Symlink => {
            let target = match rustix::fs::readlinkat(dir, name, Vec::new()) {
                Ok(t) => t,
                Err(rustix::io::Errno::NOENT) => return Ok(()),
                Err(e) => return Err(FileError::of(rel, e)),
            };
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            tar.append_link(&mut header, rel, target.to_string_lossy().as_ref())?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_file_or_are_refused() {
        assert_eq!(split("a/b/c").unwrap(), ("a/b", "c"));
        assert_eq!(split("/work/x").unwrap(), ("/work", "x"));
        assert_eq!(split("x").unwrap(), (".", "x"));
        assert_eq!(split("/x/").unwrap(), ("/", "x"));
        for bad in ["/", "..", "a/..", "a/.", ""] {
            assert!(split(bad).is_err(), "{bad}");
        }
        assert!(check_path("a\0b").is_err());
        assert!(check_path(&"a".repeat(5000)).is_err());
    }
}
