//! The daemon's state dir holds every request's code and output (`sandcell.db`): it is
//! created 0700, its database files 0600, and a state dir that others can write is refused
//! (anyone who can write it can replace the database).

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Why a state dir is not used.
#[derive(Debug, thiserror::Error)]
pub enum StateDirError {
    #[error("cannot create state dir {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "state dir {path} is writable by group or others (mode {mode:03o}); \
         refusing to keep runs there: `chmod 700 {path}` (and check its owner)"
    )]
    Writable { path: PathBuf, mode: u32 },
    #[error("cannot restrict {path} to its owner: {source}")]
    Restrict {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Creates `dir` (0700) if missing, refuses it if group or others may write it, and makes
/// it and the database files in it (`db` and its `-wal`/`-shm`) owner-only. The database file
/// is created 0600 before SQLite opens it (SQLite gives the WAL files the database's mode).
pub fn secure(dir: &Path, db: &Path) -> Result<(), StateDirError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StateDirError::Create {
            path: dir.to_owned(),
            source,
        })?;
    let restrict = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, Permissions::from_mode(mode)).map_err(|source| {
            StateDirError::Restrict {
                path: path.to_owned(),
                source,
            }
        })
    };
    let meta = std::fs::metadata(dir).map_err(|source| StateDirError::Create {
        path: dir.to_owned(),
        source,
    })?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(StateDirError::Writable {
            path: dir.to_owned(),
            mode,
        });
    }
    if mode & 0o077 != 0 {
        restrict(dir, mode & 0o700)?;
    }
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(db)
        .map_err(|source| StateDirError::Restrict {
            path: db.to_owned(),
            source,
        })?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        let path = PathBuf::from(name);
        match std::fs::metadata(&path) {
            Ok(m) if m.mode() & 0o077 != 0 => restrict(&path, 0o600)?,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn the_state_is_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state/nested");
        let db = dir.join("sandcell.db");
        secure(&dir, &db).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);
        // An existing readable dir and world-readable files are tightened.
        std::fs::set_permissions(&dir, Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&db, Permissions::from_mode(0o644)).unwrap();
        secure(&dir, &db).unwrap();
        assert_eq!((mode(&dir), mode(&db)), (0o700, 0o600));
    }

    #[test]
    fn a_dir_others_can_write_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("open");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, Permissions::from_mode(0o777)).unwrap();
        let e = secure(&dir, &dir.join("sandcell.db")).unwrap_err();
        assert!(e.to_string().contains("chmod 700"), "{e}");
        assert!(!dir.join("sandcell.db").exists());
    }
}
