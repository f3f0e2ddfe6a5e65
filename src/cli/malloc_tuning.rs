//! glibc malloc settings of the daemon.
//!
//! glibc raises its mmap threshold each time a large mmapped block is freed, so after a few
//! multi-MB request bodies those buffers come from malloc arenas, which keep the memory: the
//! daemon's RSS went from 19 MB idle to a 127 MB plateau after six 2-8 MB requests. With a
//! fixed threshold (128 KiB, glibc's default starting point) large buffers stay mmapped and
//! go back to the kernel when freed (the same requests: 23-29 MB).
//!
//! The threshold is a GLIBC_TUNABLES setting, read when a process starts, so `serve`
//! re-executes itself once with it set (same pid, arguments and environment otherwise),
//! before it starts any thread. An operator's own `glibc.malloc.mmap_threshold` is kept.

use std::os::unix::process::CommandExt;

const TUNABLE: &str = "glibc.malloc.mmap_threshold";
const SETTING: &str = "glibc.malloc.mmap_threshold=131072";

/// The GLIBC_TUNABLES value to re-execute with, or None when it is set already.
fn tuned(current: Option<&str>) -> Option<String> {
    match current {
        Some(c) if c.contains(TUNABLE) => None,
        Some(c) if !c.is_empty() => Some(format!("{c}:{SETTING}")),
        _ => Some(SETTING.to_string()),
    }
}

/// Re-executes this process with the malloc setting unless it is set already; returns only if
/// it is set or the exec failed (then the daemon runs with glibc's defaults).
pub fn reexec_tuned() {
    let current = std::env::var("GLIBC_TUNABLES").ok();
    let Some(value) = tuned(current.as_deref()) else {
        return;
    };
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    let error = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", value)
        .exec();
    tracing::warn!(error = %error, "cannot re-execute with a fixed malloc mmap threshold");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_is_added_once() {
        assert_eq!(tuned(None).as_deref(), Some(SETTING));
        assert_eq!(
            tuned(Some("glibc.malloc.arena_max=2")).unwrap(),
            format!("glibc.malloc.arena_max=2:{SETTING}")
        );
        assert_eq!(tuned(Some(SETTING)), None);
        assert_eq!(tuned(Some("glibc.malloc.mmap_threshold=65536")), None);
    }
}
