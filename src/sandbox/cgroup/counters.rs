//! The counter files a cell reads and resets on every run, kept open once opened.
//!
//! A run touches them 5–8 times (activation, the supervisor's CPU-time polls, the readings at
//! the end), and a pooled cell for many runs. On the v1 CI host an open+write+close of a
//! cgroupfs file costs ~9 µs, a pwrite or pread at offset 0 on a kept fd ~1 µs. Files are
//! opened on first use, so a fresh cell opens only what it touches; the owner drops them
//! (with [`CounterFiles::close`]) before it removes the cell's directories.
//!
//! Reads use pread at offset 0: cgroupfs regenerates the whole file for a read at offset 0.
//! Not for `cgroup.procs`: v1 serves a re-read through a kept fd from a pid list it caches
//! for a second, so `kill_all` opens it afresh every time.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{fsio, CellDirs, CgroupError, CgroupMode};

/// One counter file of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Counter {
    /// v1 `memory.numa_stat`: pages on the cell's LRU lists (v2: none, see the pool).
    MemoryLru,
    /// v1 `memory.kmem.usage_in_bytes`: kernel memory charged to the cell (v2: none).
    MemoryKmem,
    /// v1 `memory.max_usage_in_bytes`, v2 `memory.peak`.
    MemoryPeak,
    /// v1 `memory.failcnt` (v2: none).
    MemoryFailcnt,
    /// v1 `memory.oom_control`, v2 `memory.events`.
    OomEvents,
    /// v1 `cpuacct.usage`, v2 `cpu.stat`.
    Cpu,
}

const COUNTERS: usize = 6;

/// The counter files of one cell: where they are, and the ones opened so far.
#[derive(Debug, Default)]
pub(super) struct CounterFiles {
    paths: [Option<PathBuf>; COUNTERS],
    writable: [bool; COUNTERS],
    files: [OnceLock<File>; COUNTERS],
}

impl CounterFiles {
    /// The counter files of `dirs`. `peak_resettable`: v2 `memory.peak` takes a per-fd reset
    /// (kernel >= 6.12), so it is opened read-write.
    pub(super) fn new(dirs: &CellDirs, peak_resettable: bool) -> CounterFiles {
        let v1 = dirs.mode == CgroupMode::V1;
        let in_dir = |controller: &str, file: &str| dirs.dir_of(controller).map(|d| d.join(file));
        let paths = match dirs.mode {
            CgroupMode::V1 => [
                in_dir("memory", "memory.numa_stat"),
                in_dir("memory", "memory.kmem.usage_in_bytes"),
                in_dir("memory", "memory.max_usage_in_bytes"),
                in_dir("memory", "memory.failcnt"),
                in_dir("memory", "memory.oom_control"),
                in_dir("cpuacct", "cpuacct.usage"),
            ],
            // cpu.stat is a core file on v2: it exists without the cpu controller.
            CgroupMode::V2 => [
                None,
                None,
                in_dir("memory", "memory.peak"),
                None,
                in_dir("memory", "memory.events"),
                Some(dirs.main().join("cpu.stat")),
            ],
        };
        CounterFiles {
            paths,
            writable: [false, false, v1 || peak_resettable, v1, false, v1],
            files: Default::default(),
        }
    }

    /// Whether the cell has this counter.
    pub(super) fn has(&self, counter: Counter) -> bool {
        self.paths[counter as usize].is_some()
    }

    /// The kept file of `counter` (opened now if needed) and its path, for messages.
    fn file(&self, counter: Counter) -> Result<(&File, &Path), CgroupError> {
        let i = counter as usize;
        let path = self.paths[i].as_deref().ok_or_else(|| {
            CgroupError::Unsupported(format!("the cell has no {counter:?} counter file"))
        })?;
        if let Some(file) = self.files[i].get() {
            return Ok((file, path));
        }
        let file = OpenOptions::new()
            .read(true)
            .write(self.writable[i])
            .open(path)
            .map_err(|e| fsio::io_error(path, e))?;
        // Another thread may have won the race: either file is fine.
        let _ = self.files[i].set(file);
        let file = self.files[i]
            .get()
            .ok_or_else(|| fsio::io_error(path, std::io::Error::other("file not kept")))?;
        Ok((file, path))
    }

    /// The whole text of a counter file, and its path for messages.
    fn read_text(&self, counter: Counter) -> Result<(String, &Path), CgroupError> {
        let (file, path) = self.file(counter)?;
        let mut buf = vec![0u8; 512];
        let mut len = 0;
        loop {
            if len == buf.len() {
                buf.resize(len * 2, 0);
            }
            match file.read_at(&mut buf[len..], len as u64) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) => return Err(fsio::io_error(path, e)),
            }
        }
        buf.truncate(len);
        let text = String::from_utf8(buf).map_err(|_| invalid(path, "not UTF-8".into()))?;
        Ok((text, path))
    }

    pub(super) fn read_u64(&self, counter: Counter) -> Result<u64, CgroupError> {
        let (text, path) = self.read_text(counter)?;
        let text = text.trim();
        text.parse()
            .map_err(|_| invalid(path, format!("not a number: {text:?}")))
    }

    /// The value of `key` in a keyed counter file (cpu.stat, memory.events, oom_control).
    pub(super) fn read_keyed(&self, counter: Counter, key: &str) -> Result<u64, CgroupError> {
        let (text, path) = self.read_text(counter)?;
        fsio::keyed(&text, key).ok_or_else(|| invalid(path, format!("no {key:?} in {text:?}")))
    }

    /// The number after `key=` at the start of a line (memory.numa_stat: "total=12 N0=12").
    pub(super) fn read_assigned(&self, counter: Counter, key: &str) -> Result<u64, CgroupError> {
        let (text, path) = self.read_text(counter)?;
        text.lines()
            .find_map(|line| {
                let rest = line.strip_prefix(key)?.strip_prefix('=')?;
                rest.split_whitespace().next()?.parse().ok()
            })
            .ok_or_else(|| invalid(path, format!("no {key}= in {text:?}")))
    }

    /// Writes `value` with one pwrite at offset 0 (cgroupfs wants one write per value).
    pub(super) fn write(&self, counter: Counter, value: &str) -> Result<(), CgroupError> {
        let (file, path) = self.file(counter)?;
        match file.write_at(value.as_bytes(), 0) {
            Ok(n) if n == value.len() => Ok(()),
            Ok(_) => Err(fsio::io_error(
                path,
                std::io::Error::new(ErrorKind::WriteZero, "short write to a cgroup file"),
            )),
            Err(e) => Err(fsio::io_error(path, e)),
        }
    }

    /// Closes every kept file (before the cell's directories are removed).
    pub(super) fn close(&mut self) {
        for slot in &mut self.files {
            slot.take();
        }
    }
}

fn invalid(path: &Path, what: String) -> CgroupError {
    fsio::io_error(path, std::io::Error::new(ErrorKind::InvalidData, what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_dirs(root: &std::path::Path) -> CellDirs {
        CellDirs {
            mode: CgroupMode::V1,
            dirs: vec![
                (vec!["memory"], root.join("memory")),
                (vec!["cpu", "cpuacct"], root.join("cpu")),
            ],
        }
    }

    #[test]
    fn files_are_opened_once_read_and_written_at_offset_zero() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = v1_dirs(tmp.path());
        for (dir, file, text) in [
            ("memory", "memory.max_usage_in_bytes", "4096\n"),
            (
                "memory",
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
            ("cpu", "cpuacct.usage", "123456789\n"),
            (
                "memory",
                "memory.numa_stat",
                "total=12 N0=12\nfile=4 N0=4\nhierarchical_total=99 N0=99\n",
            ),
        ] {
            std::fs::create_dir_all(tmp.path().join(dir)).unwrap();
            std::fs::write(tmp.path().join(dir).join(file), text).unwrap();
        }
        let files = CounterFiles::new(&dirs, false);
        assert!(files.has(Counter::MemoryFailcnt));
        assert_eq!(files.read_u64(Counter::MemoryPeak).unwrap(), 4096);
        assert_eq!(files.read_keyed(Counter::OomEvents, "oom_kill").unwrap(), 3);
        assert_eq!(files.read_u64(Counter::Cpu).unwrap(), 123_456_789);
        assert_eq!(
            files.read_assigned(Counter::MemoryLru, "total").unwrap(),
            12
        );
        assert_eq!(files.read_assigned(Counter::MemoryLru, "file").unwrap(), 4);
        assert!(files.read_assigned(Counter::MemoryLru, "anon").is_err());
        // A write lands at offset 0 of the kept file; a later read sees it through the same fd.
        files.write(Counter::MemoryPeak, "0").unwrap();
        assert_eq!(files.read_text(Counter::MemoryPeak).unwrap().0, "0096\n");
        // The kept fd still reads the file it opened, even after the path is replaced.
        let path = tmp.path().join("cpu/cpuacct.usage");
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, "1\n").unwrap();
        assert_eq!(files.read_u64(Counter::Cpu).unwrap(), 123_456_789);
        // A missing file names its path.
        let err = files.read_u64(Counter::MemoryKmem).unwrap_err().to_string();
        assert!(err.contains("memory.kmem.usage_in_bytes"), "{err}");
    }

    #[test]
    fn v2_has_no_v1_only_counters() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = CellDirs {
            mode: CgroupMode::V2,
            dirs: vec![(vec!["memory", "pids"], tmp.path().to_path_buf())],
        };
        let files = CounterFiles::new(&dirs, false);
        assert!(!files.has(Counter::MemoryLru));
        assert!(!files.has(Counter::MemoryKmem));
        assert!(!files.has(Counter::MemoryFailcnt));
        assert!(files.has(Counter::MemoryPeak));
        assert!(files.has(Counter::Cpu));
        assert!(matches!(
            files.read_u64(Counter::MemoryFailcnt),
            Err(CgroupError::Unsupported(_))
        ));
    }
}
