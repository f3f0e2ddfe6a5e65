//! Writing a cell's limits: memory (no swap), pids, cpus — v2 files or their v1 twins.

use std::path::Path;

use super::setup::{is_not_found, CgroupFeatures};
use super::{fsio, CellDirs, CgroupError, CgroupLimits, CgroupMode};

/// The CFS period used for `cpus` quotas.
pub(super) const CPU_PERIOD_US: u64 = 100_000;
/// The kernel refuses quotas below 1 ms.
const MIN_QUOTA_US: u64 = 1_000;

/// Refuses limits no cgroup can express (the CLI validates earlier; this is the last guard).
pub(super) fn validate(limits: &CgroupLimits) -> Result<(), CgroupError> {
    let bad = |what: String| Err(CgroupError::InvalidLimit(what));
    if limits.memory == Some(0) {
        return bad("memory must be more than 0 bytes".into());
    }
    if limits.memory.is_some_and(|m| m > i64::MAX as u64) {
        return bad("memory limit is too large".into());
    }
    if limits.pids == Some(0) || limits.pids.is_some_and(|p| p > i32::MAX as u64) {
        return bad("pids must be between 1 and 2^31-1".into());
    }
    if let Some(cpus) = limits.cpus {
        if !cpus.is_finite() || cpus <= 0.0 || cpus > 65_536.0 {
            return bad(format!(
                "cpus must be a positive number of CPUs, not {cpus}"
            ));
        }
    }
    Ok(())
}

fn cpu_quota_us(cpus: f64) -> u64 {
    ((cpus * CPU_PERIOD_US as f64).round() as u64).max(MIN_QUOTA_US)
}

/// What a cell's limit files hold before [`apply`] writes new limits.
#[derive(Debug, Clone, Copy)]
pub(super) enum Written<'a> {
    /// A new cell: the kernel's defaults (no limit), and the one-time settings not yet made.
    Fresh,
    /// These limits, written by an earlier `apply`.
    Known(&'a CgroupLimits),
    /// Unknown (an earlier `apply` failed half-way): every limit is written.
    Unknown,
}

/// Writes `limits` into a cell. A fresh cell gets only the limits asked for (plus the
/// one-time settings: no swap, group OOM kills); a reused or activated cell gets what
/// differs from what it holds, absent limits written back to "no limit". A limit whose
/// controller is missing is skipped: the launcher asked `unenforceable` first.
pub(super) fn apply(
    dirs: &CellDirs,
    limits: &CgroupLimits,
    written: Written<'_>,
    features: &CgroupFeatures,
) -> Result<(), CgroupError> {
    let fresh = matches!(written, Written::Fresh);
    let default = CgroupLimits::default();
    let before = match written {
        Written::Fresh => Some(&default),
        Written::Known(limits) => Some(limits),
        Written::Unknown => None,
    };
    // Some(value) when the file must be written: value None means "no limit".
    let memory = before
        .is_none_or(|b| b.memory != limits.memory)
        .then_some(limits.memory);
    let pids = before
        .is_none_or(|b| b.pids != limits.pids)
        .then_some(limits.pids);
    let cpus = before
        .is_none_or(|b| b.cpus != limits.cpus)
        .then_some(limits.cpus);
    // v1: the CFS period goes with the first quota a cell gets (fresh or activated later).
    let first_quota = limits.cpus.is_some() && before.is_none_or(|b| b.cpus.is_none());
    match dirs.mode {
        CgroupMode::V1 => {
            if let Some(dir) = dirs.dir_of("memory") {
                if let Some(m) = memory {
                    let value = m.map_or("-1".to_string(), |b| b.to_string());
                    set_v1_memory(dir, &value, features.swap_limit)?;
                }
                if fresh && !features.swap_limit {
                    // No swap accounting: at least make the cell unlikely to be swapped.
                    let _ = fsio::write(&dir.join("memory.swappiness"), "0");
                }
            }
            if let (Some(dir), Some(p)) = (dirs.dir_of("pids"), pids) {
                fsio::write(
                    &dir.join("pids.max"),
                    &p.map_or("max".into(), |n| n.to_string()),
                )?;
            }
            if let (Some(dir), Some(c)) = (dirs.dir_of("cpu"), cpus) {
                if first_quota {
                    fsio::write(&dir.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                }
                let quota = c.map_or("-1".into(), |c| cpu_quota_us(c).to_string());
                fsio::write(&dir.join("cpu.cfs_quota_us"), &quota)?;
            }
        }
        CgroupMode::V2 => {
            let dir = dirs.main();
            if dirs.has("memory") {
                if let Some(m) = memory {
                    let value = m.map_or("max".to_string(), |b| b.to_string());
                    fsio::write(&dir.join("memory.max"), &value)?;
                }
                if fresh {
                    // No swap (the file is absent without swap accounting: nothing to limit).
                    match fsio::write(&dir.join("memory.swap.max"), "0") {
                        Err(e) if !is_not_found(&e) => return Err(e),
                        _ => {}
                    }
                    // An OOM kill takes the whole cell down, not one random process of it.
                    fsio::write(&dir.join("memory.oom.group"), "1")?;
                }
            }
            if let (true, Some(p)) = (dirs.has("pids"), pids) {
                fsio::write(
                    &dir.join("pids.max"),
                    &p.map_or("max".into(), |n| n.to_string()),
                )?;
            }
            if let (true, Some(c)) = (dirs.has("cpu"), cpus) {
                let quota = c.map_or("max".into(), |c| cpu_quota_us(c).to_string());
                fsio::write(&dir.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
            }
        }
    }
    Ok(())
}

/// v1 memory: `memory.limit_in_bytes` and, with swap accounting, the same value in
/// `memory.memsw.limit_in_bytes` (memory+swap), so the cell cannot swap. The kernel wants
/// limit <= memsw at every moment, so raising a limit writes memsw first.
fn set_v1_memory(dir: &Path, value: &str, memsw: bool) -> Result<(), CgroupError> {
    let limit = dir.join("memory.limit_in_bytes");
    let swap = dir.join("memory.memsw.limit_in_bytes");
    match fsio::write(&limit, value) {
        Ok(()) => {}
        Err(CgroupError::Io { source, .. })
            if memsw && source.raw_os_error() == Some(libc::EINVAL) =>
        {
            fsio::write(&swap, value)?;
            fsio::write(&limit, value)?;
        }
        Err(e) => return Err(e),
    }
    if memsw {
        fsio::write(&swap, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_limits_are_refused() {
        let ok = CgroupLimits {
            memory: Some(64 << 20),
            pids: Some(32),
            cpus: Some(0.5),
        };
        assert!(validate(&ok).is_ok());
        for bad in [
            CgroupLimits {
                memory: Some(0),
                ..Default::default()
            },
            CgroupLimits {
                memory: Some(u64::MAX),
                ..Default::default()
            },
            CgroupLimits {
                pids: Some(0),
                ..Default::default()
            },
            CgroupLimits {
                cpus: Some(f64::NAN),
                ..Default::default()
            },
            CgroupLimits {
                cpus: Some(-1.0),
                ..Default::default()
            },
            CgroupLimits {
                cpus: Some(f64::INFINITY),
                ..Default::default()
            },
        ] {
            assert!(
                matches!(validate(&bad), Err(CgroupError::InvalidLimit(_))),
                "{bad:?}"
            );
        }
    }

    /// Empties the limit files of a fake v1 cell (memory, pids, cpu), applies `limits`, and
    /// returns the files written and their values.
    fn written_by(
        root: &Path,
        limits: &CgroupLimits,
        written: Written<'_>,
    ) -> Vec<(String, String)> {
        let dirs = CellDirs {
            mode: CgroupMode::V1,
            dirs: ["memory", "pids", "cpu"]
                .map(|c| (vec![c], root.join(c)))
                .to_vec(),
        };
        let files = [
            "memory/memory.limit_in_bytes",
            "memory/memory.swappiness",
            "pids/pids.max",
            "cpu/cpu.cfs_period_us",
            "cpu/cpu.cfs_quota_us",
        ];
        for f in files {
            std::fs::create_dir_all(root.join(f).parent().unwrap()).unwrap();
            std::fs::write(root.join(f), "").unwrap();
        }
        apply(&dirs, limits, written, &CgroupFeatures::default()).unwrap();
        files
            .iter()
            .filter_map(|f| {
                let text = std::fs::read_to_string(root.join(f)).unwrap();
                (!text.is_empty()).then(|| (f.rsplit('/').next().unwrap().to_string(), text))
            })
            .collect()
    }

    #[test]
    fn activation_writes_what_differs_unknown_writes_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let run = CgroupLimits {
            memory: Some(64 << 20),
            pids: Some(16),
            cpus: Some(0.5),
        };
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        // A fresh cell without limits (a pre-started cell): only the one-time setting.
        let none = CgroupLimits::default();
        assert_eq!(
            written_by(tmp.path(), &none, Written::Fresh),
            pairs(&[("memory.swappiness", "0")])
        );
        // Its activation: every limit, and the CFS period with the first quota.
        assert_eq!(
            written_by(tmp.path(), &run, Written::Known(&none)),
            pairs(&[
                ("memory.limit_in_bytes", "67108864"),
                ("pids.max", "16"),
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "50000"),
            ])
        );
        // The same limits again: nothing.
        assert!(written_by(tmp.path(), &run, Written::Known(&run)).is_empty());
        // Back to no limits.
        assert_eq!(
            written_by(tmp.path(), &none, Written::Known(&run)),
            pairs(&[
                ("memory.limit_in_bytes", "-1"),
                ("pids.max", "max"),
                ("cpu.cfs_quota_us", "-1"),
            ])
        );
        // After a failed write nothing is known: everything is written.
        assert_eq!(
            written_by(tmp.path(), &none, Written::Unknown),
            pairs(&[
                ("memory.limit_in_bytes", "-1"),
                ("pids.max", "max"),
                ("cpu.cfs_quota_us", "-1"),
            ])
        );
    }

    #[test]
    fn quotas() {
        assert_eq!(cpu_quota_us(1.0), 100_000);
        assert_eq!(cpu_quota_us(0.25), 25_000);
        assert_eq!(cpu_quota_us(0.001), MIN_QUOTA_US);
    }
}
