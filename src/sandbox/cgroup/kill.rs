//! Killing every process of a cell and waiting until its cgroups are empty.
//!
//! v2: `cgroup.kill` (kernel >= 5.14) kills the cell and its descendants atomically, no fork
//! can escape. Without it (and on v1) we freeze the cell so nothing can fork, SIGKILL every
//! pid listed in `cgroup.procs`, and thaw so the signals are delivered. A frozen task cannot
//! exit, so the pids read while frozen cannot be reused before we signal them. The loop is
//! bounded: a task stuck in the kernel (D state) gives a clear error, never a hang.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::setup::CgroupFeatures;
use super::{fsio, CellDirs, CgroupError, CgroupMode};

/// How long kill_all waits for the cgroups to become empty.
const KILL_PATIENCE: Duration = Duration::from_secs(3);
/// How long a v1 freeze may stay in FREEZING before we signal anyway.
const FREEZE_PATIENCE: Duration = Duration::from_millis(100);

pub(super) fn kill_all(dirs: &CellDirs, features: &CgroupFeatures) -> Result<(), CgroupError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(50);
    loop {
        let pids = all_procs(dirs)?;
        if pids.is_empty() {
            return Ok(());
        }
        if start.elapsed() >= KILL_PATIENCE {
            return Err(CgroupError::KillFailed {
                path: dirs.main().display().to_string(),
                remaining: pids.len(),
            });
        }
        match dirs.mode {
            CgroupMode::V2 if features.cgroup_kill => {
                fsio::write(&dirs.main().join("cgroup.kill"), "1")?;
            }
            _ => freeze_kill_thaw(dirs, features)?,
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// The pids of every hierarchy of the cell (a process that died half-way through joining
/// may be in only some of them).
fn all_procs(dirs: &CellDirs) -> Result<Vec<i32>, CgroupError> {
    let mut pids = Vec::new();
    for dir in dirs.all() {
        pids.extend(fsio::procs(dir)?);
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn freeze_kill_thaw(dirs: &CellDirs, features: &CgroupFeatures) -> Result<(), CgroupError> {
    let freezer = match dirs.mode {
        _ if !features.freeze => None,
        CgroupMode::V2 => Some((dirs.main().join("cgroup.freeze"), "1", "0")),
        CgroupMode::V1 => dirs
            .dir_of("freezer")
            .map(|d| (d.join("freezer.state"), "FROZEN", "THAWED")),
    };
    if let Some((file, freeze, _)) = &freezer {
        fsio::write(file, freeze)?;
        wait_frozen(dirs);
    }
    for pid in all_procs(dirs)? {
        // ESRCH: already gone. Nothing else can fail for root.
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if let Some((file, _, thaw)) = &freezer {
        fsio::write(file, thaw)?;
    }
    Ok(())
}

/// Waits (briefly) until the freeze has taken effect.
fn wait_frozen(dirs: &CellDirs) {
    let start = Instant::now();
    while start.elapsed() < FREEZE_PATIENCE {
        let frozen = match dirs.mode {
            CgroupMode::V2 => fsio::read(&dirs.main().join("cgroup.events"))
                .is_ok_and(|t| fsio::keyed(&t, "frozen") == Some(1)),
            CgroupMode::V1 => match dirs.dir_of("freezer") {
                Some(d) => fsio::read(&d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN"),
                None => true,
            },
        };
        if frozen {
            return;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}
