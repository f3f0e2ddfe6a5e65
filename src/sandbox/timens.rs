//! A fresh time namespace for every cell (Linux >= 5.6), whose monotonic and boot clocks
//! start near zero: without it `/proc/uptime` and CLOCK_BOOTTIME/CLOCK_MONOTONIC tell a
//! program how long the host has been up (fingerprinting a host, correlating runs).
//!
//! A time namespace's offsets can only be set before a process enters it, so the process
//! that clones a cell's PID 1 (the CLI, or the single-threaded spawner) first unshares one
//! for its next children, writes the offsets, then clones: PID 1 starts inside, and the
//! program, started vfork-style (sharing PID 1's namespaces), too. The cloning process itself
//! stays in its own time namespace.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use nix::time::{clock_gettime, ClockId};

use super::sys;

/// Whether this kernel has time namespaces (looked up once: every run asks, twice).
pub fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| Path::new("/proc/self/ns/time").exists())
}

/// The offsets that make both clocks read less than a second in a namespace made now.
fn offsets() -> std::io::Result<String> {
    let secs = |clock| clock_gettime(clock).map(|t| t.tv_sec());
    let monotonic = secs(ClockId::CLOCK_MONOTONIC)?;
    let boottime = secs(ClockId::CLOCK_BOOTTIME)?;
    Ok(format!(
        "monotonic -{monotonic} 0\nboottime -{boottime} 0\n"
    ))
}

/// Puts the next children of this thread into a new time namespace with clocks near zero.
/// (`/proc/TID`: in a multithreaded launcher only the calling thread has unshared, and
/// `/proc/self` is the thread group's leader; `/proc/thread-self` lacks the file.)
pub(super) fn fresh_for_children() -> std::io::Result<()> {
    let offsets = offsets()?;
    sys::unshare(libc::CLONE_NEWTIME).map_err(std::io::Error::from_raw_os_error)?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{}/timens_offsets", nix::unistd::gettid()))?
        .write_all(offsets.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_cancel_the_clocks_to_whole_seconds() {
        let text = offsets().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("monotonic -") && lines[0].ends_with(" 0"));
        assert!(lines[1].starts_with("boottime -") && lines[1].ends_with(" 0"));
    }
}
