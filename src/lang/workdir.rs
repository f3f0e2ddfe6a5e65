//! A host directory that carries the compile step's output into the run step: bound writable
//! at the work dir while compiling, read-only while running; removed when dropped.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::LangError;

#[derive(Debug)]
pub(super) struct SharedWorkDir {
    path: PathBuf,
}

impl SharedWorkDir {
    /// Creates `sandcell-work-<random>` under the host temp dir, owned by the cell's user.
    pub(super) fn create(uid: u32, gid: u32) -> Result<SharedWorkDir, LangError> {
        let base = std::env::temp_dir();
        for _ in 0..16 {
            let path = base.join(format!("sandcell-work-{:016x}", rand::random::<u64>()));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let dir = SharedWorkDir { path };
                    std::os::unix::fs::chown(&dir.path, Some(uid), Some(gid)).map_err(|e| {
                        LangError::Io {
                            context: format!("chown {}", dir.path.display()),
                            source: e,
                        }
                    })?;
                    return Ok(dir);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(LangError::Io {
                        context: format!("creating {}", path.display()),
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
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!("could not remove {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn is_owned_by_the_cell_user_and_removed_on_drop() {
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
        std::fs::write(path.join("main"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }
}
