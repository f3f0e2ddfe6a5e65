//! flock(2)-based locks on files in the store (released by the kernel when a process dies).

use super::ImageError;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

pub type Locked = Flock<File>;

/// How to take a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Shared,
    Exclusive,
    /// Exclusive, or `Ok(None)` at once when someone else holds it.
    TryExclusive,
}

/// Opens (creating) `path` and locks it.
pub fn lock(path: &Path, mode: Mode) -> Result<Option<Locked>, ImageError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| ImageError::io(format!("opening lock {}", path.display()), e))?;
    lock_file(file, mode, path)
}

/// Locks an open file.
pub fn lock_file(file: File, mode: Mode, path: &Path) -> Result<Option<Locked>, ImageError> {
    let arg = match mode {
        Mode::Shared => FlockArg::LockShared,
        Mode::Exclusive => FlockArg::LockExclusive,
        Mode::TryExclusive => FlockArg::LockExclusiveNonblock,
    };
    match Flock::lock(file, arg) {
        Ok(l) => Ok(Some(l)),
        Err((_, Errno::EWOULDBLOCK)) if mode == Mode::TryExclusive => Ok(None),
        Err((f, Errno::EINTR)) => lock_file(f, mode, path),
        Err((_, e)) => Err(ImageError::sys(format!("locking {}", path.display()), e)),
    }
}

/// True when the open lock file is still the one at `path` (it was not moved or replaced).
pub fn still_at(lock: &Locked, path: &Path) -> bool {
    match (lock.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
