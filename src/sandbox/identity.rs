//! Per-cell identity: every running cell's program gets a host uid/gid of its own, taken
//! from a configurable range ([`UidRange`]), while the program still sees its stable uid
//! (65534 or the image's `User`) through a user namespace of its own.
//!
//! Why: with one shared host uid, everything the kernel keys by uid is shared between
//! concurrent cells — RLIMIT_NPROC and other per-user counts (inotify instances, user
//! namespaces, mqueue bytes, pending signals), the owner of files on shared writable binds,
//! and signal/ptrace permissions if a pid namespace ever leaked. isolate gives each box its
//! own uid and the program sees it; here the program keeps seeing `spec.uid`, so images and
//! tests that expect `nobody` are unaffected.
//!
//! How (see `plan::program_steps`): the program process, still host root, clears its groups
//! and switches to the cell's host uid H and gid first, then creates a user namespace and
//! writes its maps itself — an unprivileged process may map exactly its own ids: the visible
//! `spec.uid` → H (`"U H 1"`), `spec.gid` → H's gid (host root could not: a map's writer
//! needs capabilities in the parent namespace of the process whose map it opens, checked
//! when it opens it). It then switches to the visible ids inside, drops every capability,
//! sets no_new_privs and installs seccomp (which still refuses namespace flags, so the
//! program cannot nest namespaces). Because the namespace is created without privilege,
//! hosts that restrict unprivileged user namespaces are degraded ([`support`]). Host-side
//! files the program must own (the work dir tmpfs, spec files, parent dirs) are given to H
//! by PID 1.
//!
//! Uniqueness across every sandcell process on the host: a slot is a file
//! `/run/sandcell/uid-slots/<uid>` locked with `flock(LOCK_EX)` by the launcher process for
//! the cell's whole life (until PID 1 is reaped, which is after every process of the cell's
//! pid namespace is gone). The kernel drops the lock when the descriptor closes, also when
//! the process dies, so slots never leak.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// The environment variable that sets the range of every launcher left at the default.
pub const RANGE_ENV: &str = "SANDCELL_UID_RANGE";

/// Where slot lock files live (tmpfs on systemd hosts: gone at reboot).
pub const SLOT_DIR: &str = "/run/sandcell/uid-slots";

/// First host uid of the default range. Far above the usual subuid allocations (100000 +
/// 65536 per user) and systemd's container range (524288…1879048191), below 2^31 (some tools
/// treat uids as signed) and outside systemd's reserved 0x7FFE0000… block.
pub const DEFAULT_UID_BASE: u32 = 2_000_000_000;
/// Slots of the default range: cells that may run at once on the host with their own uid.
pub const DEFAULT_UID_COUNT: u32 = 4096;

/// The host uids (and equal gids) cells take their identity from: `base..base + count`.
/// `count == 0` turns per-cell identities off (every cell runs as `spec.uid` on the host).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UidRange {
    pub base: u32,
    pub count: u32,
}

impl Default for UidRange {
    fn default() -> Self {
        UidRange {
            base: DEFAULT_UID_BASE,
            count: DEFAULT_UID_COUNT,
        }
    }
}

impl UidRange {
    /// `BASE:COUNT` (e.g. `2000000000:4096`), or `off`.
    pub fn parse(text: &str) -> Result<UidRange, String> {
        if text == "off" {
            return Ok(UidRange { base: 0, count: 0 });
        }
        let (base, count) = text
            .split_once(':')
            .ok_or_else(|| format!("uid range {text:?}: expected BASE:COUNT or off"))?;
        let num = |s: &str, what: &str| {
            s.parse::<u32>()
                .map_err(|e| format!("uid range {text:?}: {what}: {e}"))
        };
        let range = UidRange {
            base: num(base, "base")?,
            count: num(count, "count")?,
        };
        if range.count > 0 && range.base < 1000 {
            return Err(format!(
                "uid range {text:?}: base below 1000 would share ids with system accounts"
            ));
        }
        if u64::from(range.base) + u64::from(range.count) > u64::from(u32::MAX) {
            return Err(format!("uid range {text:?}: ends above the largest uid"));
        }
        Ok(range)
    }

    pub fn enabled(&self) -> bool {
        self.count > 0
    }
}

/// A cell's host uid and gid (equal numbers), as sent to a prepared cell with its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIds {
    pub uid: u32,
    pub gid: u32,
}

/// A held slot: the host ids are this cell's until the lease is dropped.
#[derive(Debug)]
pub(super) struct Lease {
    pub ids: HostIds,
    /// The flock'd slot file; closing it frees the slot.
    _lock: Flock<std::fs::File>,
}

/// Whether this host lets a cell's program create its user namespace (as its own host uid,
/// without capabilities), or why not.
pub fn support() -> Result<(), String> {
    let number = |path: &str| -> Option<u64> {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    };
    if !Path::new("/proc/self/ns/user").exists() {
        return Err("this kernel has no user namespaces".into());
    }
    if number("/proc/sys/user/max_user_namespaces") == Some(0) {
        return Err("user namespaces are disabled (user.max_user_namespaces = 0)".into());
    }
    // Debian's switch for user namespaces created without CAP_SYS_ADMIN.
    if number("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return Err("kernel.unprivileged_userns_clone = 0".into());
    }
    // Ubuntu >= 23.10: such namespaces get no capabilities, so their maps cannot be written.
    if number("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
        return Err("kernel.apparmor_restrict_unprivileged_userns = 1".into());
    }
    Ok(())
}

/// [`support`], asked once.
pub fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| support().is_ok())
}

/// Where the next search starts, so slots rotate instead of the lowest one being reused at
/// once (files a cell left on a shared bind meet the next owner of its uid later).
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// How long a run waits for a slot when all are taken: cells prepared ahead give theirs back
/// from the janitor, moments after their answer.
const WAIT_FOR_SLOT: Duration = Duration::from_secs(2);

/// Takes a free slot of `range`: the first one, from a rotating start, whose lock file this
/// process can lock; waits a little when all are taken.
pub(super) fn acquire(range: UidRange) -> std::io::Result<Lease> {
    let deadline = Instant::now() + WAIT_FOR_SLOT;
    loop {
        match try_acquire_in(Path::new(SLOT_DIR), range) {
            Ok(Some(lease)) => return Ok(lease),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(None) => return Err(all_taken(range)),
            Err(e) => return Err(e),
        }
    }
}

fn all_taken(range: UidRange) -> std::io::Error {
    std::io::Error::other(format!(
        "all {} uids of {}..{} are taken by running cells",
        range.count,
        range.base,
        u64::from(range.base) + u64::from(range.count)
    ))
}

/// One pass over the slots; `None` when every one is taken.
fn try_acquire_in(dir: &Path, range: UidRange) -> std::io::Result<Option<Lease>> {
    if !range.enabled() {
        return Err(std::io::Error::other("per-cell uids are off"));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let start = match NEXT.load(Ordering::Relaxed) {
        u32::MAX => {
            // Processes start apart from each other.
            let seed = std::process::id().wrapping_mul(2_654_435_761);
            let _ = NEXT.compare_exchange(u32::MAX, seed, Ordering::Relaxed, Ordering::Relaxed);
            NEXT.fetch_add(1, Ordering::Relaxed)
        }
        _ => NEXT.fetch_add(1, Ordering::Relaxed),
    };
    for i in 0..range.count {
        let uid = range.base + start.wrapping_add(i) % range.count;
        let path: PathBuf = dir.join(uid.to_string());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                NEXT.store(start.wrapping_add(i + 1), Ordering::Relaxed);
                return Ok(Some(Lease {
                    ids: HostIds { uid, gid: uid },
                    _lock: lock,
                }));
            }
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => continue,
            Err((_, e)) => return Err(e.into()),
        }
    }
    Ok(None)
}

/// The uid_map (or gid_map) line that maps `visible` inside to `host` outside.
pub(super) fn map_line(visible: u32, host: u32) -> Vec<u8> {
    format!("{visible} {host} 1\n").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_refuse_nonsense() {
        assert_eq!(
            UidRange::parse("3000000:16").unwrap(),
            UidRange {
                base: 3_000_000,
                count: 16
            }
        );
        assert!(!UidRange::parse("off").unwrap().enabled());
        assert!(UidRange::default().enabled());
        assert!(UidRange::parse("0:10").is_err());
        assert!(UidRange::parse("4294967290:100").is_err());
        assert!(UidRange::parse("12").is_err());
    }

    #[test]
    fn slots_are_exclusive_while_held_and_free_after() {
        let dir = tempfile::tempdir().unwrap();
        let range = UidRange {
            base: 5_000_000,
            count: 3,
        };
        let take = || try_acquire_in(dir.path(), range).unwrap();
        let (a, b, c) = (take().unwrap(), take().unwrap(), take().unwrap());
        let mut uids = vec![a.ids.uid, b.ids.uid, c.ids.uid];
        uids.sort_unstable();
        uids.dedup();
        assert_eq!(uids.len(), 3, "{uids:?}");
        assert!(uids.iter().all(|u| (5_000_000..5_000_003).contains(u)));
        assert!(take().is_none());
        let freed = b.ids.uid;
        drop(b);
        assert_eq!(take().unwrap().ids.uid, freed);
    }

    #[test]
    fn map_lines_map_one_id() {
        assert_eq!(map_line(65534, 2_000_000_007), b"65534 2000000007 1\n");
    }
}
