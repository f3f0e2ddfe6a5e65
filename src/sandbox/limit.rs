//! The limits (and cell features) a host may be unable to enforce, as one type shared by the
//! cgroup layer, the host probe and the launcher. Their names are what results (`degraded`),
//! `check-host` and error messages show.

use serde::Serialize;

/// Something a run may ask for that depends on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Limit {
    /// `limits.memory`: the memory controller.
    Memory,
    /// `limits.pids`: the pids controller.
    Pids,
    /// `limits.cpus`: the cpu controller (quota).
    Cpus,
    /// `limits.cpu_time` for the whole cell: cpuacct (v1) or cpu.stat (v2).
    CpuTime,
    /// A fresh time namespace per cell (kernel 5.6+).
    #[serde(rename = "time namespace")]
    TimeNamespace,
    /// A host uid of its own for each cell's program (user namespaces the program can
    /// create).
    #[serde(rename = "per-cell uid")]
    PerCellUid,
}

impl Limit {
    /// The cgroup limits, in the order they are reported.
    pub const CGROUP: [Limit; 4] = [Limit::Memory, Limit::Pids, Limit::Cpus, Limit::CpuTime];

    /// The name results and messages use.
    pub fn name(self) -> &'static str {
        match self {
            Limit::Memory => "memory",
            Limit::Pids => "pids",
            Limit::Cpus => "cpus",
            Limit::CpuTime => "cpu_time",
            Limit::TimeNamespace => "time namespace",
            Limit::PerCellUid => "per-cell uid",
        }
    }

    /// The cgroup controller that enforces it (as [`CgroupHost::controllers`] names them).
    ///
    /// [`CgroupHost::controllers`]: super::cgroup::CgroupHost::controllers
    pub fn controller(self) -> Option<&'static str> {
        match self {
            Limit::Memory => Some("memory"),
            Limit::Pids => Some("pids"),
            Limit::Cpus => Some("cpu"),
            Limit::CpuTime => Some("cpuacct"),
            Limit::TimeNamespace | Limit::PerCellUid => None,
        }
    }

    /// The `sandcell run` flag that asks for it.
    pub fn flag(self) -> &'static str {
        match self {
            Limit::Memory => "--memory",
            Limit::Pids => "--pids",
            Limit::Cpus => "--cpus",
            Limit::CpuTime => "--cpu-time",
            Limit::TimeNamespace | Limit::PerCellUid => "",
        }
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_their_serialised_form() {
        for l in Limit::CGROUP
            .into_iter()
            .chain([Limit::TimeNamespace, Limit::PerCellUid])
        {
            assert_eq!(serde_json::to_value(l).unwrap(), l.name());
        }
    }
}
