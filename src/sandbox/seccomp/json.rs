//! Policy files in seccompiler's JSON format, compiled once per file version.
//!
//! A file is a map of named filters:
//! `{"NAME": {"mismatch_action": ..., "match_action": ..., "filter": [{"syscall": ...}]}}`
//! (<https://github.com/rust-vmm/seccompiler/blob/main/docs/json_format.md>). Every filter in
//! the file is installed, in **ascending byte order of the names**. Seccomp runs all of
//! them and the most restrictive action wins; among equal errno actions the *last* installed
//! filter's errno wins, so name filters like `10-allow`, `20-enosys` when that matters.
//! Every filter but the last must allow `seccomp` itself (the next one is installed through
//! it), and the last must allow `execve`.
//!
//! Compiled policies are cached by (path, device, inode, size, mtime): a changed file is
//! compiled again, an unchanged one never.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use seccompiler::TargetArch;

use super::{CompiledPolicy, SeccompError};

/// Policy files larger than this are refused (seccompiler's own limit is 4096 instructions).
const MAX_POLICY_BYTES: u64 = 4 << 20;
/// Cached file versions kept at most; the cache is emptied when it would grow past this.
const MAX_CACHED: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

type Cache = Mutex<HashMap<PathBuf, (FileStamp, Arc<CompiledPolicy>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn policy_error(path: &Path, message: impl Into<String>) -> SeccompError {
    SeccompError::Policy {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Loads and compiles the policy file at `path`, or returns the cached compilation of the
/// same file version.
pub fn load(path: &Path, arch: TargetArch) -> Result<Arc<CompiledPolicy>, SeccompError> {
    let mut file = File::open(path).map_err(|e| policy_error(path, format!("cannot open: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| policy_error(path, format!("cannot stat: {e}")))?;
    if !meta.is_file() {
        return Err(policy_error(path, "not a regular file"));
    }
    let stamp = FileStamp {
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
    };
    let mut cache = cache()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((cached_stamp, policy)) = cache.get(path) {
        if *cached_stamp == stamp {
            return Ok(Arc::clone(policy));
        }
    }
    if stamp.len > MAX_POLICY_BYTES {
        return Err(policy_error(
            path,
            format!(
                "{} bytes is too large (at most {MAX_POLICY_BYTES})",
                stamp.len
            ),
        ));
    }
    let mut text = Vec::with_capacity(stamp.len as usize);
    file.by_ref()
        .take(MAX_POLICY_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| policy_error(path, format!("cannot read: {e}")))?;
    let policy = Arc::new(compile_json(&text, arch).map_err(|m| policy_error(path, m))?);
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(path.to_path_buf(), (stamp, Arc::clone(&policy)));
    Ok(policy)
}

/// Compiles policy JSON text; the error is a message for the user (without the path).
pub fn compile_json(text: &[u8], arch: TargetArch) -> Result<CompiledPolicy, String> {
    let map = seccompiler::compile_from_json(text, arch).map_err(describe)?;
    if map.is_empty() {
        return Err("contains no filters (use `--seccomp none` to run without seccomp)".into());
    }
    let mut filters: Vec<(String, seccompiler::BpfProgram)> = map.into_iter().collect();
    filters.sort_by(|a, b| a.0.cmp(&b.0));
    let (names, programs) = filters.into_iter().unzip();
    Ok(CompiledPolicy::new(names, programs))
}

fn describe(error: seccompiler::Error) -> String {
    use seccompiler::Error;
    match error {
        // "Error parsing Json: ... line L column C" or "Invalid syscall name: NAME for given
        // arch: ARCH." (the frontend's error type is private; its messages are clear).
        Error::JsonFrontend(e) => e.to_string(),
        Error::Backend(e) => format!("invalid filter: {e}"),
        other => other.to_string(),
    }
}
