//! Small cgroupfs file helpers: one write per value, keyed-file parsing, process lists, and
//! rmdir that tolerates the short EBUSY window after the last task exited.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;

/// How long `rmdir` keeps retrying EBUSY (v1 memory cgroups race with exiting tasks).
const RMDIR_PATIENCE: Duration = Duration::from_secs(2);

pub(super) fn io_error(path: &Path, source: std::io::Error) -> CgroupError {
    CgroupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `value` with a single write(2), as cgroupfs expects. Never creates the file.
pub(super) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let written = file
        .write(value.as_bytes())
        .map_err(|e| io_error(path, e))?;
    if written != value.len() {
        return Err(io_error(
            path,
            std::io::Error::new(ErrorKind::WriteZero, "short write to a cgroup file"),
        ));
    }
    Ok(())
}

pub(super) fn read(path: &Path) -> Result<String, CgroupError> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| io_error(path, e))?;
    Ok(text)
}

/// The value of `key` in a flat keyed file ("key value" per line: memory.events, cpu.stat,
/// memory.oom_control, cgroup.events).
pub(super) fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        (parts.next() == Some(key))
            .then(|| parts.next()?.parse().ok())
            .flatten()
    })
}

/// The cgroup directories beneath `dir` (its descendants), deepest first.
fn descendants(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    // cgroupfs (kernfs) keeps a directory's link count at 2 + its subdirectories: one stat
    // saves listing the ~30 files of a cell that has no child cgroups (the usual case).
    if std::fs::metadata(dir).is_ok_and(|m| m.nlink() <= 2) {
        return out;
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let path = entry.path();
                out.extend(descendants(&path));
                out.push(path);
            }
        }
    }
    out
}

/// The pids in `cgroup.procs` of `dir` and of every cgroup beneath it. A missing directory
/// has no processes.
pub(super) fn procs(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut pids = Vec::new();
    for d in std::iter::once(dir.to_path_buf()).chain(descendants(dir)) {
        let path = d.join("cgroup.procs");
        match std::fs::read_to_string(&path) {
            Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok())),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path, e)),
        }
    }
    Ok(pids)
}

/// Removes the cgroup `dir` and any cgroups beneath it, retrying EBUSY for a short while.
/// A directory that is already gone counts as removed.
pub(super) fn rmdir_tree(dir: &Path) -> Result<(), CgroupError> {
    for d in descendants(dir)
        .iter()
        .chain(std::iter::once(&dir.to_path_buf()))
    {
        rmdir_retry(d)?;
    }
    Ok(())
}

/// One rmdir of `dir`: true if it is gone now (removed, or already absent); false if it
/// holds processes or child cgroups (EBUSY) or could not be removed for another reason (the
/// caller then kills and retries with [`rmdir_tree`], which reports the error).
pub(super) fn rmdir_if_empty(dir: &Path) -> bool {
    match std::fs::remove_dir(dir) {
        Ok(()) => true,
        Err(e) => e.kind() == ErrorKind::NotFound,
    }
}

fn rmdir_retry(dir: &Path) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(50);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < RMDIR_PATIENCE => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(io_error(dir, e)),
        }
    }
}

/// Creates `dir` unless it exists (a cgroup directory we own, e.g. `<own>/sandcell`).
pub(super) fn ensure_dir(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_error(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_finds_exact_keys_only() {
        let text = "oom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(keyed(text, "oom_kill"), Some(2));
        assert_eq!(keyed(text, "oom"), Some(3));
        assert_eq!(keyed(text, "missing"), None);
        assert_eq!(keyed("usage_usec abc\n", "usage_usec"), None);
    }

    #[test]
    fn procs_and_rmdir_on_plain_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let cell = tmp.path().join("cell");
        std::fs::create_dir_all(cell.join("sub")).unwrap();
        std::fs::write(cell.join("cgroup.procs"), "12\n13\n").unwrap();
        std::fs::write(cell.join("sub/cgroup.procs"), "14\n").unwrap();
        let mut pids = procs(&cell).unwrap();
        pids.sort();
        assert_eq!(pids, vec![12, 13, 14]);
        assert!(procs(&tmp.path().join("gone")).unwrap().is_empty());
        // Plain directories with files cannot be rmdir'ed: the error names the path.
        let err = rmdir_tree(&cell).unwrap_err().to_string();
        assert!(err.contains("cell"), "{err}");
        assert!(rmdir_tree(&tmp.path().join("gone")).is_ok());
    }
}
