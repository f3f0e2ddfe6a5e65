//! What this host supports, and what sandcell will therefore refuse or degrade
//! (`sandcell check-host`).
//!
//! [`gather`] collects plain facts ([`HostFacts`]) — from uname, /proc and /sys, the cgroup
//! layer's own detection, and (as root) one `unshare(1)` run per namespace type to prove
//! that namespaces can really be created here. [`HostReport::evaluate`] turns facts into
//! rows (feature, status, detail, impact) without touching the host, so the rules are unit
//! tested with made-up hosts.
//!
//! Required (a run cannot start without them): root, mount/pid/net/ipc/uts namespaces,
//! seccomp filter mode, clone3 with pidfds (kernel >= 5.3), the proc and tmpfs
//! filesystems. Everything cgroup-related is optional: a limit the host cannot enforce is
//! refused unless `--allow-degraded`, and then listed in the result's `degraded`.

use std::path::Path;
use std::process::{Command, Stdio};

use serde::Serialize;

use super::cgroup::{CgroupFeatures, CgroupHost, CgroupLimits, CgroupMode};
use super::limit::Limit;
use super::seccomp;

/// A kernel version as (major, minor, patch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct KernelVersion(pub u32, pub u32, pub u32);

impl KernelVersion {
    /// Parses the leading numbers of a release like `6.1.0-18-amd64`.
    pub fn parse(release: &str) -> KernelVersion {
        let mut nums = release
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|n| n.parse::<u32>().unwrap_or(0));
        let mut next = || nums.next().unwrap_or(0);
        KernelVersion(next(), next(), next())
    }

    fn at_least(self, major: u32, minor: u32) -> bool {
        self >= KernelVersion(major, minor, 0)
    }
}

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// Whether creating a namespace of one type worked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "detail", rename_all = "snake_case")]
pub enum Creation {
    Works,
    Fails(String),
    /// Not tried (not root, or no unshare(1)); the reason.
    NotTried(String),
}

/// What the cgroup layer detected.
#[derive(Debug, Clone, Serialize)]
pub struct CgroupFacts {
    pub mode: CgroupMode,
    /// Usable controllers: "memory", "pids", "cpu", "cpuacct", "freezer", "kill".
    pub controllers: Vec<String>,
    /// Limits this host cannot enforce.
    pub unenforceable: Vec<Limit>,
    /// Optional files and calls the cgroup layer found (cgroup.kill, memory.peak, ...).
    pub features: CgroupFeatures,
    /// The cgroup layer's own description (hierarchies, our own cgroup, cells dir).
    pub describe: serde_json::Value,
}

/// Plain facts about the host; see [`gather`].
#[derive(Debug, Clone, Serialize)]
pub struct HostFacts {
    pub kernel_release: String,
    pub kernel: KernelVersion,
    pub arch: String,
    pub euid: u32,
    /// Entries of /proc/self/ns.
    pub namespaces: Vec<String>,
    /// (namespace, creation result) for mnt, pid, net, ipc, uts, cgroup, user.
    pub creation: Vec<(String, Creation)>,
    /// /proc/sys/user/max_user_namespaces.
    pub max_user_namespaces: Option<u64>,
    /// Whether a cell's program can create its own user namespace for its per-cell uid, or
    /// why not (`identity.rs`).
    pub per_cell_uid: Result<(), String>,
    /// The `Seccomp:` mode of this process (None: the kernel has no CONFIG_SECCOMP).
    pub seccomp_mode: Option<u32>,
    /// /proc/sys/kernel/seccomp/actions_avail.
    pub seccomp_actions: Vec<String>,
    /// The default policy compiled: number of filters and BPF instructions, or the error.
    pub default_policy: Result<(usize, usize), String>,
    /// Whether /proc/self/status has a `NoNewPrivs:` line.
    pub no_new_privs: bool,
    /// Filesystem types of /proc/filesystems.
    pub filesystems: Vec<String>,
    /// overlay is not in /proc/filesystems but can be loaded as a module.
    pub overlay_module: bool,
    pub cgroup: Result<CgroupFacts, String>,
}

/// Namespace types sandcell creates for every cell.
pub const REQUIRED_NAMESPACES: [&str; 5] = ["mnt", "pid", "net", "ipc", "uts"];

/// unshare(1) flags creating one namespace of each type we check.
const UNSHARE_FLAGS: [(&str, &[&str]); 7] = [
    ("mnt", &["--mount"]),
    ("pid", &["--fork", "--pid"]),
    ("net", &["--net"]),
    ("ipc", &["--ipc"]),
    ("uts", &["--uts"]),
    ("cgroup", &["--cgroup"]),
    ("user", &["--user"]),
];

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn status_field(status: &str, name: &str) -> Option<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
}

/// Gathers the facts of the running host. Spawns `unshare` a few times when root.
pub fn gather() -> HostFacts {
    let uts = nix::sys::utsname::uname().ok();
    let kernel_release = uts
        .as_ref()
        .map(|u| u.release().to_string_lossy().into_owned())
        .or_else(|| read("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()))
        .unwrap_or_default();
    let euid = nix::unistd::geteuid().as_raw();
    let status = read("/proc/self/status").unwrap_or_default();
    let mut namespaces: Vec<String> = std::fs::read_dir("/proc/self/ns")
        .map(|dir| {
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    namespaces.sort();
    let filesystems: Vec<String> = read("/proc/filesystems")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    let overlay_module = !filesystems.iter().any(|f| f == "overlay")
        && Path::new(&format!(
            "/lib/modules/{kernel_release}/kernel/fs/overlayfs"
        ))
        .exists();
    HostFacts {
        kernel: KernelVersion::parse(&kernel_release),
        kernel_release,
        arch: std::env::consts::ARCH.to_string(),
        euid,
        creation: creation_probes(euid, &namespaces),
        namespaces,
        max_user_namespaces: read("/proc/sys/user/max_user_namespaces")
            .and_then(|s| s.trim().parse().ok()),
        per_cell_uid: super::identity::support(),
        seccomp_mode: status_field(&status, "Seccomp").and_then(|v| v.parse().ok()),
        seccomp_actions: read("/proc/sys/kernel/seccomp/actions_avail")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        default_policy: seccomp::default()
            .map(|p| (p.programs().len(), p.programs().iter().map(Vec::len).sum()))
            .map_err(|e| e.to_string()),
        no_new_privs: status_field(&status, "NoNewPrivs").is_some(),
        filesystems,
        overlay_module,
        cgroup: gather_cgroup(),
    }
}

fn gather_cgroup() -> Result<CgroupFacts, String> {
    let host = CgroupHost::detect().map_err(|e| e.to_string())?;
    let all_limits = CgroupLimits {
        memory: Some(1 << 30),
        pids: Some(64),
        cpus: Some(1.0),
    };
    Ok(CgroupFacts {
        mode: host.mode(),
        controllers: host.controllers().into_iter().map(str::to_string).collect(),
        unenforceable: host.unenforceable(&all_limits, true),
        features: host.features(),
        describe: host.describe(),
    })
}

fn creation_probes(euid: u32, present: &[String]) -> Vec<(String, Creation)> {
    let unshare = ["/usr/bin/unshare", "/bin/unshare"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    UNSHARE_FLAGS
        .iter()
        .map(|(ns, flags)| {
            let result = if !present.iter().any(|p| p == ns) {
                Creation::Fails(format!("no /proc/self/ns/{ns}: the kernel lacks it"))
            } else if euid != 0 {
                Creation::NotTried("not root".into())
            } else if let Some(unshare) = unshare {
                try_unshare(unshare, flags)
            } else {
                Creation::NotTried("no unshare(1) to try it with".into())
            };
            (ns.to_string(), result)
        })
        .collect()
}

fn try_unshare(unshare: &str, flags: &[&str]) -> Creation {
    let out = Command::new(unshare)
        .args(flags)
        .arg("true")
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) if o.status.success() => Creation::Works,
        Ok(o) => Creation::Fails(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        Err(e) => Creation::NotTried(format!("cannot run {unshare}: {e}")),
    }
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub feature: String,
    pub status: Status,
    /// A run cannot start without it.
    pub required: bool,
    /// What was found.
    pub detail: String,
    /// What sandcell refuses or degrades because of it (empty when nothing).
    pub impact: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Missing,
    /// Present, but not verified (e.g. namespace creation not tried when not root).
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Missing => "missing",
            Status::Unknown => "unknown",
        }
    }
}

/// A limit this host cannot enforce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Degraded {
    /// The RunSpec limit: "memory", "pids", "cpus", "cpu_time".
    pub limit: String,
    /// The CLI flag asking for it.
    pub flag: String,
    pub reason: String,
}

/// The evaluated report.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// All required features are present.
    pub ok: bool,
    pub kernel: String,
    pub arch: String,
    pub checks: Vec<Check>,
    /// Features without which no run starts.
    pub missing_required: Vec<String>,
    /// Limits refused unless `--allow-degraded` (then listed in a result's `degraded`).
    pub degraded: Vec<Degraded>,
    pub facts: HostFacts,
}

fn check(feature: impl Into<String>, ok: bool, required: bool, detail: String) -> Check {
    Check {
        feature: feature.into(),
        status: if ok { Status::Ok } else { Status::Missing },
        required,
        detail,
        impact: String::new(),
    }
}

impl Check {
    fn impact_if_missing(mut self, impact: &str) -> Check {
        if self.status != Status::Ok {
            self.impact = impact.to_string();
        }
        self
    }
}

impl HostReport {
    /// Runs [`gather`] and evaluates the facts.
    pub fn probe() -> HostReport {
        HostReport::evaluate(gather())
    }

    /// Turns facts into rows; pure.
    pub fn evaluate(facts: HostFacts) -> HostReport {
        let mut checks = Vec::new();
        let k = facts.kernel;

        checks.push(
            check(
                "root",
                facts.euid == 0,
                true,
                format!("euid {}", facts.euid),
            )
            .impact_if_missing("sandcell run refuses to start: cells need root"),
        );
        checks.push(check(
            "kernel",
            true,
            false,
            format!("{} ({})", facts.kernel_release, facts.arch),
        ));

        let cgroups_usable = facts.cgroup.is_ok();
        for (ns, creation) in &facts.creation {
            let required = REQUIRED_NAMESPACES.contains(&ns.as_str());
            let (status, detail) = match creation {
                Creation::Works => (Status::Ok, "created one".to_string()),
                Creation::Fails(why) => (Status::Missing, format!("cannot create: {why}")),
                Creation::NotTried(why) => (
                    Status::Unknown,
                    format!("present, creation not tried: {why}"),
                ),
            };
            let impact = match (ns.as_str(), status) {
                (_, Status::Ok) => "",
                ("cgroup", _) if cgroups_usable => {
                    "runs with cgroup limits fail (cells get their own cgroup namespace)"
                }
                ("cgroup", _) => "",
                ("user", _) => "cells share one host uid (see per-cell uid)",
                _ if required => "sandcell run refuses to start",
                _ => "",
            };
            checks.push(Check {
                feature: format!("namespace {ns}"),
                status,
                required,
                detail,
                impact: impact.to_string(),
            });
        }
        if let Some(max) = facts.max_user_namespaces {
            if let Some(user) = checks.iter_mut().find(|c| c.feature == "namespace user") {
                user.detail = format!("{}; max_user_namespaces {max}", user.detail);
            }
        }

        let has_action = |a: &str| facts.seccomp_actions.iter().any(|x| x == a);
        let filter_mode = facts.seccomp_mode.is_some()
            && ["allow", "errno", "kill_process"]
                .iter()
                .all(|a| has_action(a));
        let seccomp_detail = match (&facts.seccomp_mode, &facts.default_policy) {
            (None, _) => {
                "no Seccomp: line in /proc/self/status (kernel without CONFIG_SECCOMP)".to_string()
            }
            (Some(mode), policy) => {
                let policy = match policy {
                    Ok((filters, insns)) => {
                        let plural = if *filters == 1 { "" } else { "s" };
                        format!("default policy {filters} filter{plural}, {insns} BPF instructions")
                    }
                    Err(e) => format!("default policy does not compile: {e}"),
                };
                let own = if *mode == 0 {
                    String::new()
                } else {
                    format!("; this process already runs under seccomp mode {mode}")
                };
                format!(
                    "actions: {}; {policy}{own}",
                    facts.seccomp_actions.join(" ")
                )
            }
        };
        checks.push(
            check(
                "seccomp",
                filter_mode && facts.default_policy.is_ok(),
                true,
                seccomp_detail,
            )
            .impact_if_missing("sandcell run refuses to start (`--seccomp none` runs unfiltered)"),
        );
        checks.push(
            check(
                "no_new_privs",
                facts.no_new_privs,
                false,
                if facts.no_new_privs {
                    "reported in /proc/self/status".into()
                } else {
                    "not reported (kernel < 4.10?)".into()
                },
            )
            .impact_if_missing("cannot be verified from inside a cell"),
        );
        let timens = facts.namespaces.iter().any(|n| n == "time");
        checks.push(
            check(
                "time namespace",
                timens,
                false,
                if timens {
                    "each cell gets one: its uptime and monotonic clock start near 0".into()
                } else {
                    format!("not in /proc/self/ns (kernel {k}, needs >= 5.6)")
                },
            )
            .impact_if_missing(
                "runs are refused unless --allow-degraded (cells would see the host's uptime)",
            ),
        );
        checks.push(
            check(
                "per-cell uid",
                facts.per_cell_uid.is_ok(),
                false,
                match &facts.per_cell_uid {
                    Ok(()) => "each running cell's program has its own host uid/gid, mapped to \
                               the uid it sees by a user namespace"
                        .into(),
                    Err(why) => why.clone(),
                },
            )
            .impact_if_missing(
                "runs are refused unless --allow-degraded (concurrent cells would share one \
                 host uid: per-user limits, files on shared binds)",
            ),
        );
        checks.push(
            check(
                "clone3+pidfd",
                k.at_least(5, 3),
                true,
                format!("kernel {k}, needs >= 5.3"),
            )
            .impact_if_missing("sandcell run refuses to start (cells are cloned with clone3)"),
        );
        for fs in ["proc", "tmpfs"] {
            let present = facts.filesystems.iter().any(|f| f == fs);
            checks.push(
                check(
                    format!("filesystem {fs}"),
                    present,
                    true,
                    if present {
                        "in /proc/filesystems"
                    } else {
                        "not in /proc/filesystems"
                    }
                    .into(),
                )
                .impact_if_missing("sandcell run refuses to start"),
            );
        }
        let overlay = facts.filesystems.iter().any(|f| f == "overlay");
        checks.push(
            check(
                "overlayfs",
                overlay || facts.overlay_module,
                true,
                match (overlay, facts.overlay_module) {
                    (true, _) => "in /proc/filesystems".into(),
                    (false, true) => "loadable module (not loaded yet)".into(),
                    (false, false) => "not available".into(),
                },
            )
            .impact_if_missing(
                "every cell fails at \"mount the rootfs overlay\" (a cell's / is an overlay, \
                 so that no host path shows in its mountinfo)",
            ),
        );

        let degraded = Self::cgroup_checks(&facts, &mut checks);

        let missing_required: Vec<String> = checks
            .iter()
            .filter(|c| c.required && c.status != Status::Ok)
            .map(|c| c.feature.clone())
            .collect();
        HostReport {
            ok: missing_required.is_empty(),
            kernel: facts.kernel_release.clone(),
            arch: facts.arch.clone(),
            checks,
            missing_required,
            degraded,
            facts,
        }
    }

    fn cgroup_checks(facts: &HostFacts, checks: &mut Vec<Check>) -> Vec<Degraded> {
        let k = facts.kernel;
        let cg = match &facts.cgroup {
            Ok(cg) => cg,
            Err(why) => {
                checks.push(Check {
                    feature: "cgroups".into(),
                    status: Status::Missing,
                    required: false,
                    detail: why.clone(),
                    impact: "--memory, --pids, --cpus and --cpu-time are refused unless \
                             --allow-degraded; no MLE verdict, no memory_peak_bytes"
                        .into(),
                });
                return Limit::CGROUP
                    .into_iter()
                    .map(|limit| Degraded {
                        limit: limit.name().into(),
                        flag: limit.flag().into(),
                        reason: format!("no usable cgroups: {why}"),
                    })
                    .collect();
            }
        };
        let mode = match cg.mode {
            CgroupMode::V1 => "v1",
            CgroupMode::V2 => "v2",
        };
        let v2 = cg.mode == CgroupMode::V2;
        checks.push(check(
            "cgroups",
            true,
            false,
            format!("{mode}; controllers {}", cg.controllers.join(" ")),
        ));
        let has = |c: &str| cg.controllers.iter().any(|x| x == c);
        for (controller, impact) in [
            (
                "memory",
                "--memory is refused unless --allow-degraded; no MLE verdict",
            ),
            ("pids", "--pids is refused unless --allow-degraded"),
            ("cpu", "--cpus is refused unless --allow-degraded"),
            ("cpuacct", "--cpu-time is refused unless --allow-degraded"),
            (
                "kill",
                "stray processes die with the cell's pid namespace, not by cgroup",
            ),
        ] {
            let detail = match (controller, v2) {
                ("kill", true) if cg.features.cgroup_kill => "cgroup.kill".to_string(),
                ("kill", true) => "cgroup.freeze + SIGKILL (no cgroup.kill before 5.14)".into(),
                ("kill", false) => "freezer: freeze + SIGKILL + thaw".into(),
                ("cpuacct", true) => "cpu.stat usage_usec".into(),
                _ => format!("{mode} controller"),
            };
            let present = has(controller);
            checks.push(
                check(
                    format!("cgroup {controller}"),
                    present,
                    false,
                    if present { detail } else { "not usable".into() },
                )
                .impact_if_missing(impact),
            );
        }
        checks.push(
            check(
                "CLONE_INTO_CGROUP",
                v2 && cg.features.clone_into_cgroup,
                false,
                format!("needs cgroup v2 and kernel >= 5.7; {mode}, kernel {k}"),
            )
            .impact_if_missing("cells join their cgroup by a cgroup.procs write before exec"),
        );
        let peak = has("memory") && cg.features.memory_peak;
        checks.push(
            check(
                "memory peak",
                peak,
                false,
                match (v2, peak) {
                    (true, true) => "memory.peak".into(),
                    (true, false) => format!("no memory.peak (needs kernel >= 5.19); kernel {k}"),
                    (false, true) => "memory.max_usage_in_bytes (v1)".into(),
                    (false, false) => "no memory controller".into(),
                },
            )
            .impact_if_missing("memory_peak_bytes is null in results"),
        );
        cg.unenforceable
            .iter()
            .map(|&limit| Degraded {
                limit: limit.name().into(),
                flag: limit.flag().into(),
                reason: format!(
                    "no usable {} controller ({mode})",
                    limit.controller().unwrap_or_default()
                ),
            })
            .collect()
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "sandcell check-host: kernel {} ({})\n\n",
            self.kernel, self.arch
        );
        let width = self
            .checks
            .iter()
            .map(|c| c.feature.len())
            .max()
            .unwrap_or(7)
            .max(7);
        out.push_str(&format!(
            "{:width$}  {:8} {:9} DETAIL\n",
            "FEATURE", "STATUS", "REQUIRED"
        ));
        for c in &self.checks {
            out.push_str(&format!(
                "{:width$}  {:8} {:9} {}\n",
                c.feature,
                c.status.as_str(),
                if c.required { "yes" } else { "no" },
                c.detail
            ));
            if !c.impact.is_empty() {
                out.push_str(&format!("{:width$}  {:18} -> {}\n", "", "", c.impact));
            }
        }
        out.push('\n');
        if self.degraded.is_empty() {
            out.push_str("Every limit can be enforced on this host.\n");
        } else {
            out.push_str(
                "Refused on this host unless --allow-degraded (then listed in \"degraded\"):\n",
            );
            for d in &self.degraded {
                out.push_str(&format!("  {:12} {}\n", d.flag, d.reason));
            }
        }
        if self.ok {
            out.push_str("All required features are present.\n");
        } else {
            out.push_str(&format!(
                "MISSING required features: {}\n",
                self.missing_required.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy_v2() -> HostFacts {
        HostFacts {
            kernel_release: "6.1.0-18-amd64".into(),
            kernel: KernelVersion(6, 1, 0),
            arch: "x86_64".into(),
            euid: 0,
            namespaces: ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"]
                .map(String::from)
                .to_vec(),
            creation: UNSHARE_FLAGS
                .iter()
                .map(|(ns, _)| (ns.to_string(), Creation::Works))
                .collect(),
            max_user_namespaces: Some(1000),
            per_cell_uid: Ok(()),
            seccomp_mode: Some(0),
            seccomp_actions: ["kill_process", "errno", "allow"]
                .map(String::from)
                .to_vec(),
            default_policy: Ok((1, 200)),
            no_new_privs: true,
            filesystems: ["proc", "tmpfs", "overlay"].map(String::from).to_vec(),
            overlay_module: false,
            cgroup: Ok(CgroupFacts {
                mode: CgroupMode::V2,
                controllers: ["memory", "pids", "cpu", "cpuacct", "freezer", "kill"]
                    .map(String::from)
                    .to_vec(),
                unenforceable: vec![],
                features: CgroupFeatures {
                    cgroup_kill: true,
                    freeze: true,
                    memory_peak: true,
                    swap_limit: true,
                    oom_kill_counter: true,
                    clone_into_cgroup: true,
                },
                describe: serde_json::Value::Null,
            }),
        }
    }

    /// What the cgroup layer finds on an older v2 kernel.
    fn features_of(kernel: KernelVersion) -> CgroupFeatures {
        CgroupFeatures {
            cgroup_kill: kernel >= KernelVersion(5, 14, 0),
            freeze: true,
            memory_peak: kernel >= KernelVersion(5, 19, 0),
            swap_limit: true,
            oom_kill_counter: true,
            clone_into_cgroup: kernel >= KernelVersion(5, 7, 0),
        }
    }

    fn row<'a>(report: &'a HostReport, feature: &str) -> &'a Check {
        report
            .checks
            .iter()
            .find(|c| c.feature == feature)
            .unwrap_or_else(|| panic!("no row {feature}"))
    }

    #[test]
    fn kernel_versions_parse() {
        assert_eq!(
            KernelVersion::parse("6.1.0-18-amd64"),
            KernelVersion(6, 1, 0)
        );
        assert_eq!(KernelVersion::parse("5.19"), KernelVersion(5, 19, 0));
        assert_eq!(KernelVersion::parse("4.19.0+"), KernelVersion(4, 19, 0));
        assert_eq!(KernelVersion::parse(""), KernelVersion(0, 0, 0));
    }

    #[test]
    fn a_healthy_v2_host_is_ok_with_nothing_degraded() {
        let r = HostReport::evaluate(healthy_v2());
        assert!(r.ok, "{}", r.table());
        assert!(r.degraded.is_empty());
        assert_eq!(row(&r, "CLONE_INTO_CGROUP").status, Status::Ok);
        assert_eq!(row(&r, "memory peak").status, Status::Ok);
    }

    #[test]
    fn not_root_is_a_missing_requirement() {
        let mut f = healthy_v2();
        f.euid = 1000;
        let r = HostReport::evaluate(f);
        assert!(!r.ok);
        assert_eq!(r.missing_required, ["root"]);
    }

    #[test]
    fn an_old_kernel_lacks_clone3_and_new_cgroup_files() {
        let mut f = healthy_v2();
        f.kernel = KernelVersion(5, 4, 0);
        if let Ok(cg) = &mut f.cgroup {
            cg.features = features_of(f.kernel);
        }
        let r = HostReport::evaluate(f);
        assert!(r.ok, "5.4 has clone3");
        assert_eq!(row(&r, "CLONE_INTO_CGROUP").status, Status::Missing);
        assert!(row(&r, "cgroup kill").detail.contains("5.14"));
        assert_eq!(row(&r, "memory peak").status, Status::Missing);
        let mut f = healthy_v2();
        f.kernel = KernelVersion(4, 19, 0);
        let r = HostReport::evaluate(f);
        assert_eq!(r.missing_required, ["clone3+pidfd"]);
    }

    #[test]
    fn a_missing_namespace_or_seccomp_fails_the_host() {
        let mut f = healthy_v2();
        f.creation[1].1 = Creation::Fails("unshare: Operation not permitted".into());
        f.seccomp_actions.clear();
        let r = HostReport::evaluate(f);
        assert_eq!(r.missing_required, ["namespace pid", "seccomp"]);
        assert!(row(&r, "namespace pid").impact.contains("refuses"));
    }

    #[test]
    fn overlayfs_is_required_loaded_or_loadable() {
        let mut f = healthy_v2();
        f.filesystems.retain(|fs| fs != "overlay");
        f.overlay_module = true;
        assert!(HostReport::evaluate(f.clone()).ok);
        f.overlay_module = false;
        let r = HostReport::evaluate(f);
        assert_eq!(r.missing_required, ["overlayfs"]);
        assert!(row(&r, "overlayfs")
            .impact
            .contains("mount the rootfs overlay"));
    }

    #[test]
    fn user_namespaces_are_not_required() {
        let mut f = healthy_v2();
        f.creation[6].1 = Creation::Fails("disabled".into());
        let r = HostReport::evaluate(f);
        assert!(r.ok);
        assert_eq!(row(&r, "namespace user").status, Status::Missing);
    }

    #[test]
    fn a_v1_host_without_pids_degrades_only_pids() {
        let mut f = healthy_v2();
        f.cgroup = Ok(CgroupFacts {
            mode: CgroupMode::V1,
            controllers: ["memory", "cpu", "cpuacct", "freezer", "kill"]
                .map(String::from)
                .to_vec(),
            unenforceable: vec![Limit::Pids],
            features: CgroupFeatures {
                freeze: true,
                memory_peak: true,
                oom_kill_counter: true,
                ..CgroupFeatures::default()
            },
            describe: serde_json::Value::Null,
        });
        let r = HostReport::evaluate(f);
        assert!(r.ok);
        assert_eq!(r.degraded.len(), 1);
        assert_eq!(r.degraded[0].flag, "--pids");
        assert_eq!(row(&r, "cgroup pids").status, Status::Missing);
        assert_eq!(row(&r, "CLONE_INTO_CGROUP").status, Status::Missing);
        assert_eq!(row(&r, "memory peak").status, Status::Ok);
        assert!(r.table().contains("--pids"));
    }

    #[test]
    fn no_cgroups_degrades_every_cgroup_limit_but_runs() {
        let mut f = healthy_v2();
        f.cgroup = Err("no usable cgroup hierarchy".into());
        let r = HostReport::evaluate(f);
        assert!(r.ok);
        let flags: Vec<&str> = r.degraded.iter().map(|d| d.flag.as_str()).collect();
        assert_eq!(flags, ["--memory", "--pids", "--cpus", "--cpu-time"]);
    }
}
