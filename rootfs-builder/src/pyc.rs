//! Keeps Python's timestamp-based bytecode caches valid after the builder fixes every mtime.
//!
//! A `.pyc` (PEP 552, flags 0) records its source's mtime; the image gives all files the fixed
//! mtime, so a cache whose recorded mtime equals its host source's mtime is rewritten to record
//! the fixed one. Without this, a read-only image recompiles every module on every import.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const HEADER_LEN: usize = 16;

/// `dir/__pycache__/name.cpython-311.pyc` -> `dir/name.py`.
pub fn source_of(pyc: &Path) -> Option<PathBuf> {
    let file = pyc.file_name()?.to_str()?;
    let cache_dir = pyc.parent()?;
    if cache_dir.file_name()? != "__pycache__" || !file.ends_with(".pyc") {
        return None;
    }
    let module = file.split('.').next()?;
    Some(cache_dir.parent()?.join(format!("{module}.py")))
}

/// Rewrites `data`'s recorded source mtime from `host_mtime` to `fixed_mtime`; returns whether
/// it did. Hash-based caches and caches of a different source are left alone.
pub fn retime(data: &mut [u8], host_mtime: i64, fixed_mtime: u64) -> bool {
    if data.len() < HEADER_LEN {
        return false;
    }
    let flags = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    let recorded = u32::from_le_bytes([data[8], data[9], data[10], data[11]]);
    if flags != 0 || recorded != host_mtime as u32 {
        return false;
    }
    data[8..12].copy_from_slice(&(fixed_mtime as u32).to_le_bytes());
    true
}

/// The host mtime of the `.py` a cache belongs to, if it exists.
pub fn host_source_mtime(pyc: &Path) -> Option<i64> {
    let source = source_of(pyc)?;
    std::fs::metadata(source).ok().map(|m| m.mtime())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_source_of_a_cache() {
        assert_eq!(
            source_of(Path::new(
                "/usr/lib/python3.11/__pycache__/os.cpython-311.pyc"
            )),
            Some(PathBuf::from("/usr/lib/python3.11/os.py"))
        );
        assert_eq!(source_of(Path::new("/usr/lib/python3.11/os.py")), None);
    }

    #[test]
    fn retimes_only_matching_timestamp_caches() {
        let mut data = vec![0u8; 20];
        data[8..12].copy_from_slice(&1234u32.to_le_bytes());
        assert!(!retime(&mut data, 999, 0));
        assert!(retime(&mut data, 1234, 7));
        assert_eq!(&data[8..12], &7u32.to_le_bytes());
        data[4] = 1; // hash-based
        assert!(!retime(&mut data, 7, 0));
    }
}
