//! Preparing the detected layout once: create `<own>/sandcell` in every hierarchy, enable the
//! v2 controllers for it, and probe which optional files this kernel has.

use std::io::ErrorKind;
use std::path::Path;

use super::detect::{Layout, CELLS_DIR, SUPERVISOR_DIR, V1_CONTROLLERS, V2_CONTROLLERS};
use super::{fsio, CgroupError, CgroupMode};

/// Optional kernel features found while preparing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CgroupFeatures {
    /// v2 `cgroup.kill` (kernel >= 5.14).
    pub cgroup_kill: bool,
    /// v2 `cgroup.freeze` or the v1 freezer controller.
    pub freeze: bool,
    /// v2 `memory.peak` (kernel >= 5.19) or v1 `memory.max_usage_in_bytes`.
    pub memory_peak: bool,
    /// v2 `memory.swap.max` or v1 `memory.memsw.limit_in_bytes` (swap accounting on).
    pub swap_limit: bool,
    /// An exact OOM-kill counter: v2 `memory.events` oom_kill, v1 `oom_kill` in
    /// memory.oom_control (kernel >= 4.13).
    pub oom_kill_counter: bool,
    /// clone3 CLONE_INTO_CGROUP (v2, kernel >= 5.7).
    pub clone_into_cgroup: bool,
}

/// The running kernel's (major, minor), or (0, 0) if unknown.
pub(super) fn kernel_version() -> (u32, u32) {
    let Ok(uts) = nix::sys::utsname::uname() else {
        return (0, 0);
    };
    let release = uts.release().to_string_lossy().into_owned();
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse::<u32>().unwrap_or(0));
    (nums.next().unwrap_or(0), nums.next().unwrap_or(0))
}

fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// Creates the cell parents and fills in the v2 controllers; returns the features. Why a
/// wanted controller is unusable goes to `problems` (shown by `sandcell check-host`).
pub(super) fn prepare(
    layout: &mut Layout,
    kernel: (u32, u32),
    problems: &mut Vec<String>,
) -> Result<CgroupFeatures, CgroupError> {
    match layout.mode {
        CgroupMode::V1 => prepare_v1(layout, problems),
        CgroupMode::V2 => prepare_v2(layout, kernel, problems),
    }
}

fn prepare_v1(layout: &Layout, problems: &mut Vec<String>) -> Result<CgroupFeatures, CgroupError> {
    for controller in V1_CONTROLLERS {
        if !layout
            .hierarchies
            .iter()
            .any(|h| h.controllers.contains(&controller))
        {
            problems.push(format!("{controller}: no cgroup v1 hierarchy mounted"));
        }
    }
    let mut features = CgroupFeatures::default();
    for h in &layout.hierarchies {
        // Only ever a mkdir beneath our own cgroup; nothing is written in `own`.
        fsio::ensure_dir(&h.cells)?;
        if h.controllers.contains(&"memory") {
            features.memory_peak = exists(&h.cells.join("memory.max_usage_in_bytes"));
            features.swap_limit = exists(&h.cells.join("memory.memsw.limit_in_bytes"));
            features.oom_kill_counter = fsio::read(&h.cells.join("memory.oom_control"))
                .is_ok_and(|t| fsio::keyed(&t, "oom_kill").is_some());
        }
        if h.controllers.contains(&"freezer") {
            features.freeze = exists(&h.cells.join("freezer.state"));
        }
    }
    Ok(features)
}

/// Enables `controller` in `dir/cgroup.subtree_control` unless it is already enabled.
fn enable(dir: &Path, controller: &str) -> Result<(), CgroupError> {
    let path = dir.join("cgroup.subtree_control");
    let current = fsio::read(&path)?;
    if current.split_whitespace().any(|c| c == controller) {
        return Ok(());
    }
    fsio::write(&path, &format!("+{controller}"))
}

fn is_ebusy(e: &CgroupError) -> bool {
    matches!(e, CgroupError::Io { source, .. } if source.raw_os_error() == Some(libc::EBUSY))
}

/// v2: enable memory/pids/cpu for `<own>/sandcell` and its children.
///
/// The no-internal-process rule: a non-root cgroup that holds processes cannot enable
/// controllers for its children (EBUSY). When our own cgroup holds our process (a systemd
/// service, say), we move this process (all its threads) into the leaf
/// `<own>/sandcell-supervisor` and retry. Other processes in our cgroup are not moved: then
/// the controller stays unusable and `unenforceable` reports it. Never done on v1.
fn prepare_v2(
    layout: &mut Layout,
    kernel: (u32, u32),
    problems: &mut Vec<String>,
) -> Result<CgroupFeatures, CgroupError> {
    let own_is_root = layout.own_is_root;
    let available = layout.v2_available.clone();
    let h = &mut layout.hierarchies[0];
    fsio::ensure_dir(&h.cells)?;

    let mut enabled: Vec<&'static str> = Vec::new();
    let mut moved = false;
    for controller in V2_CONTROLLERS {
        if !available.iter().any(|c| c == controller) {
            problems.push(format!(
                "{controller}: not offered to our cgroup {} (cgroup.controllers)",
                h.own.display()
            ));
            continue;
        }
        let mut result = enable(&h.own, controller);
        if result.as_ref().is_err_and(is_ebusy) && !own_is_root && !moved {
            let leaf = h.own.join(SUPERVISOR_DIR);
            fsio::ensure_dir(&leaf)?;
            fsio::write(&leaf.join("cgroup.procs"), "0")?;
            moved = true;
            result = enable(&h.own, controller);
        }
        match result.and_then(|()| enable(&h.cells, controller)) {
            Ok(()) => enabled.push(controller),
            Err(e) if is_ebusy(&e) => problems.push(format!(
                "{controller}: cannot be enabled for child cgroups ({e}): our cgroup holds \
                 processes other than this one (cgroup v2 no-internal-process rule; pids {}); \
                 detect cgroups before starting other processes",
                fsio::read(&h.own.join("cgroup.procs"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            Err(e) => problems.push(format!("{controller}: {e}")),
        }
    }
    h.controllers = enabled;

    let cells = h.cells.clone();
    let memory = h.controllers.contains(&"memory");
    debug_assert!(cells.ends_with(CELLS_DIR));
    Ok(CgroupFeatures {
        cgroup_kill: exists(&cells.join("cgroup.kill")),
        freeze: exists(&cells.join("cgroup.freeze")),
        // memory.peak (>= 5.19) of the parent appears once memory is enabled in `own`.
        memory_peak: memory && exists(&cells.join("memory.peak")),
        swap_limit: memory && exists(&cells.join("memory.swap.max")),
        oom_kill_counter: memory,
        clone_into_cgroup: kernel >= (5, 7),
    })
}

/// True if `err` means a file or directory does not exist.
pub(super) fn is_not_found(err: &CgroupError) -> bool {
    matches!(err, CgroupError::Io { source, .. } if source.kind() == ErrorKind::NotFound)
}

/// v2: whether `memory.peak` takes a per-fd reset (kernel >= 6.12). Probed by resetting the
/// cells parent's `memory.peak` through a fresh fd: that only changes what this fd reads
/// (other readers keep their own peaks), and older kernels refuse the write (EINVAL; they
/// do let root open the file for writing).
pub(super) fn memory_peak_resettable(layout: &Layout, features: &CgroupFeatures) -> bool {
    let Some(h) = layout.hierarchies.first() else {
        return false;
    };
    layout.mode == CgroupMode::V2
        && features.memory_peak
        && fsio::write(&h.cells.join("memory.peak"), "reset").is_ok()
}
