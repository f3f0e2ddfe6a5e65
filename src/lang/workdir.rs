//! A host directory that carries the compile step's output into the run step: bound writable
//! at the work dir while compiling, read-only while running; removed when dropped.
//!
//! `sandcell-work-<random>/work`: the outer directory is private to root, so only cells (which
//! get `work` bound) reach the inner one, which is writable by all: the compile and run
//! cells each run as a host uid of their own (`sandbox/identity.rs`), neither of them the
//! directory's owner.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::LangError;

#[derive(Debug)]
pub(super) struct SharedWorkDir {
    outer: PathBuf,
    path: PathBuf,
}

impl SharedWorkDir {
    /// Creates `sandcell-work-<random>/work` under the host temp dir, owned by the cell's
    /// user.
    pub(super) fn create(uid: u32, gid: u32) -> Result<SharedWorkDir, LangError> {
        let base = std::env::temp_dir();
        for _ in 0..16 {
            let outer = base.join(format!("sandcell-work-{:016x}", rand::random::<u64>()));
            match std::fs::DirBuilder::new().mode(0o700).create(&outer) {
                Ok(()) => {
                    let dir = SharedWorkDir {
                        path: outer.join("work"),
                        outer,
                    };
                    let io = |what: &str, e: std::io::Error| LangError::Io {
                        context: format!("{what} {}", dir.path.display()),
                        source: e,
                    };
                    std::fs::create_dir(&dir.path).map_err(|e| io("creating", e))?;
                    std::os::unix::fs::chown(&dir.path, Some(uid), Some(gid))
                        .map_err(|e| io("chown", e))?;
                    std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o777))
                        .map_err(|e| io("chmod", e))?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(LangError::Io {
                        context: format!("creating {}", outer.display()),
                        source: e,
                    })
                }
            }
        }
        Err(LangError::Io {
            context: format!("creating a work dir in {}", base.display()),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SharedWorkDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.outer) {
            tracing::warn!("could not remove {}: {e}", self.outer.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn is_owned_by_the_cell_user_private_to_root_and_removed_on_drop() {
        let root = nix::unistd::geteuid().is_root();
        let (uid, gid) = if root {
            (65534, 65534)
        } else {
            (u32::MAX, u32::MAX)
        };
        let dir = SharedWorkDir::create(uid, gid).unwrap();
        let path = dir.path().to_owned();
        let meta = std::fs::metadata(&path).unwrap();
        if root {
            assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        }
        assert_eq!(meta.mode() & 0o777, 0o777);
        let outer = path.parent().unwrap().to_owned();
        assert_eq!(std::fs::metadata(&outer).unwrap().mode() & 0o777, 0o700);
        std::fs::write(path.join("main"), b"x").unwrap();
        drop(dir);
        assert!(!outer.exists());
    }
}
