//! Small filesystem helpers that never follow symlinks.

use super::ImageError;
use nix::dir::{Dir, Type};
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Removes `name` in `dir` (a directory tree or anything else) without following symlinks.
pub fn remove_tree_at(dir: BorrowedFd<'_>, name: &[u8]) -> nix::Result<()> {
    let name = OsStr::from_bytes(name);
    let st = match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(nix::Error::ENOENT) => return Ok(()),
        Err(e) => return Err(e),
    };
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        return unlinkat(dir, name, UnlinkatFlags::NoRemoveDir);
    }
    let child = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    empty_dir(child.as_fd(), |_| true)?;
    unlinkat(dir, name, UnlinkatFlags::RemoveDir)
}

/// Removes every child of `dir` for which `remove` returns true.
pub fn empty_dir(dir: BorrowedFd<'_>, mut remove: impl FnMut(&[u8]) -> bool) -> nix::Result<()> {
    let names: Vec<(Vec<u8>, Option<Type>)> = {
        let dup = dir.try_clone_to_owned().map_err(|_| nix::Error::EMFILE)?;
        let mut d = Dir::from_fd(dup)?;
        d.iter()
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name().to_bytes().to_vec(), e.file_type()))
            .filter(|(n, _)| n != b"." && n != b"..")
            .collect()
    };
    for (name, kind) in names {
        if !remove(&name) {
            continue;
        }
        match kind {
            Some(Type::Directory) | None => remove_tree_at(dir, &name)?,
            Some(_) => match unlinkat(dir, OsStr::from_bytes(&name), UnlinkatFlags::NoRemoveDir) {
                Ok(()) | Err(nix::Error::ENOENT) => {}
                Err(e) => return Err(e),
            },
        }
    }
    Ok(())
}

/// Removes a directory tree by path, tolerating its absence.
pub fn remove_dir_all(path: &Path) -> Result<(), ImageError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io(format!("removing {}", path.display()), e)),
    }
}

/// Makes sure the directories the launcher mounts over exist as real directories at the top
/// of the rootfs (root-owned 0755; /tmp 1777), replacing anything else in their place, and
/// sets the root itself to 0755.
pub fn ensure_cell_dirs(root: &OwnedFd) -> Result<(), ImageError> {
    for (name, mode) in [
        ("proc", 0o755),
        ("dev", 0o755),
        ("tmp", 0o1777),
        ("work", 0o755),
    ] {
        let ctx = || format!("creating /{name} in the image");
        let is_dir = match fstatat(root, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR,
            Err(nix::Error::ENOENT) => false,
            Err(e) => return Err(ImageError::sys(ctx(), e)),
        };
        if !is_dir {
            remove_tree_at(root.as_fd(), name.as_bytes()).map_err(|e| ImageError::sys(ctx(), e))?;
            mkdirat(root, name, Mode::from_bits_truncate(0o700))
                .map_err(|e| ImageError::sys(ctx(), e))?;
        }
        let fd = openat(
            root,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ImageError::sys(ctx(), e))?;
        fchmod(&fd, Mode::from_bits_truncate(mode)).map_err(|e| ImageError::sys(ctx(), e))?;
    }
    fchmod(root, Mode::from_bits_truncate(0o755))
        .map_err(|e| ImageError::sys("setting the mode of the image root", e))?;
    Ok(())
}

/// Apparent size of the regular files under `path` (hard links counted once), never following
/// symlinks.
pub fn tree_size(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() && (md.nlink() == 1 || seen.insert((md.dev(), md.ino()))) {
                total += md.len();
            }
        }
    }
    total
}

/// The process umask (read from /proc, so that no thread ever sees it changed).
pub fn current_umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        })
        .unwrap_or(0o022)
}
