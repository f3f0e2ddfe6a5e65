//! The host directory a submission is built in and its tests read from: created private to
//! root, its contents owned by the cell's uid, removed on drop. The directories are
//! writable by all (only cells reach them, through the private outer directory): each cell
//! runs as a host uid of its own (`sandbox/identity.rs`), so the compile cell is not the
//! owner of what the grader created for it.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{chown, Gid, Uid};

use super::prepare::BoxFile;

/// `<tmp>/sandcell-grade-XXXX/box`; the outer directory is 0700 root, so only cells (which
/// get `box` bound at /work) can reach the contents.
#[derive(Debug)]
pub struct BoxDir {
    outer: PathBuf,
    dir: PathBuf,
}

impl BoxDir {
    /// Creates the directory under `parent` with `files`, all owned by `uid:gid`.
    pub fn create(parent: &Path, files: &[BoxFile], uid: u32, gid: u32) -> io::Result<BoxDir> {
        let outer = make_unique_dir(parent)?;
        let boxed = BoxDir {
            dir: outer.join("box"),
            outer,
        };
        let owner = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        std::fs::DirBuilder::new().mode(0o755).create(&boxed.dir)?;
        chown(&boxed.dir, owner.0, owner.1).map_err(io::Error::from)?;
        std::fs::set_permissions(&boxed.dir, std::fs::Permissions::from_mode(0o777))?;
        for file in files {
            let path = boxed.dir.join(&file.name);
            let mut dir = boxed.dir.clone();
            if let Some(parent) = Path::new(&file.name).parent() {
                for part in parent.components() {
                    dir.push(part);
                    if !dir.is_dir() {
                        std::fs::DirBuilder::new().mode(0o755).create(&dir)?;
                        chown(&dir, owner.0, owner.1).map_err(io::Error::from)?;
                        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
                    }
                }
            }
            std::fs::write(&path, &file.content)?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode & 0o777))?;
            chown(&path, owner.0, owner.1).map_err(io::Error::from)?;
        }
        Ok(boxed)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Every regular file in the directory (e.g. a compiled checker), with its mode.
    pub fn read_files(&self, max_total: u64) -> io::Result<Vec<BoxFile>> {
        let mut out = Vec::new();
        let mut total = 0u64;
        read_tree(&self.dir, "", &mut out, &mut total, max_total)?;
        Ok(out)
    }
}

fn read_tree(
    dir: &Path,
    prefix: &str,
    out: &mut Vec<BoxFile>,
    total: &mut u64,
    max_total: u64,
) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let rel = format!("{prefix}{name}");
        // file_type does not follow symlinks: a symlink planted by the build is skipped.
        let kind = entry.file_type()?;
        if kind.is_dir() {
            read_tree(&entry.path(), &format!("{rel}/"), out, total, max_total)?;
        } else if kind.is_file() {
            let meta = entry.metadata()?;
            *total += meta.len();
            if *total > max_total {
                return Err(io::Error::other(format!(
                    "the built files exceed {} MiB",
                    max_total >> 20
                )));
            }
            out.push(BoxFile {
                name: rel,
                content: std::fs::read(entry.path())?,
                mode: meta.permissions().mode() & 0o777,
            });
        }
    }
    Ok(())
}

fn make_unique_dir(parent: &Path) -> io::Result<PathBuf> {
    for _ in 0..16 {
        let candidate = parent.join(format!(
            "sandcell-grade-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "cannot create a unique temporary directory",
    ))
}

impl Drop for BoxDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.outer);
    }
}
