//! Cell cgroup names: `<creator pid>-<counter>-<random hex>`, so a later start can tell the
//! cells of a dead creator (a daemon killed with -9) from the cells of a live one.

use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use rand::TryRngCore;

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh, unique cell name created by this process (pid and counter make it unique; the
/// random part keeps names unguessable).
///
/// The random part comes straight from the kernel (`getrandom`), not from `rand`'s thread
/// RNG: seeding that one probes the CPU's features with a dozen `cpuid` instructions, each a
/// trap to the hypervisor on a virtual machine (~10 µs here), on every one-shot run.
pub(super) fn new_cell_name() -> String {
    let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
    let random = rand::rngs::OsRng.try_next_u32().unwrap_or(0);
    format!("{}-{}-{:08x}", std::process::id(), counter, random)
}

/// The creator pid of a cell name, or None if `name` is not a cell name of ours.
pub(super) fn creator_of(name: &str) -> Option<i32> {
    let mut parts = name.split('-');
    let pid: i32 = parts.next()?.parse().ok()?;
    let _counter: u64 = parts.next()?.parse().ok()?;
    let random = parts.next()?;
    let valid = pid > 0
        && !random.is_empty()
        && random.chars().all(|c| c.is_ascii_hexdigit())
        && parts.next().is_none();
    valid.then_some(pid)
}

/// True if a process with this pid exists (in our pid namespace). A reused pid keeps the
/// cells alive, which is the safe mistake.
pub(super) fn process_alive(pid: i32) -> bool {
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let a = new_cell_name();
        let b = new_cell_name();
        assert_ne!(a, b);
        assert_eq!(creator_of(&a), Some(std::process::id() as i32));
    }

    #[test]
    fn foreign_names_are_not_cells() {
        for name in [
            "", "sandcell", "12", "12-3", "12-x-ab", "12-3-zz", "-1-2-ab", "1-2-ab-c",
        ] {
            assert_eq!(creator_of(name), None, "{name}");
        }
        assert_eq!(creator_of("4242-7-00ff"), Some(4242));
    }

    #[test]
    fn liveness() {
        assert!(process_alive(std::process::id() as i32));
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(!process_alive(0x7fff_fff0));
    }
}
