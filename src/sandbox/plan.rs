//! The step lists of a cell, built from a [`RunSpec`]: the pure part of preparing a run.
//!
//! The same builders serve the in-process launcher (which clones with the lists ready) and
//! the PID 1 of a prepared cell (which builds its program steps when the run arrives). A
//! failing step names itself in its failure report (`child::Label`).

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::RawFd;
use std::sync::Arc;

use super::cgroup::CgroupLimits;
use super::child::{ExecPlan, Step};
use super::identity::{self, HostIds};
use super::{mounts, seccomp, SandboxError};
use crate::spec::{RunSpec, DEFAULT_PATH};

pub(super) fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

/// clone3 flags of every cell's PID 1, whoever clones it: new pid, mount, network, IPC and
/// UTS namespaces (the cgroup namespace comes later, after joining the cell's cgroup), a
/// pidfd, and default signal handlers.
pub(super) const CELL_CLONE_FLAGS: u64 = (libc::CLONE_NEWPID
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_PIDFD) as u64
    | super::sys::CLONE_CLEAR_SIGHAND;

/// How the cell's PID 1 gets into its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(super) enum CgroupEntry {
    /// No cgroup for this cell.
    None,
    /// Already there: cloned with CLONE_INTO_CGROUP.
    Cloned,
    /// Writes "0" into each of these open join files as its first step: v1 `tasks` (a
    /// thread moving itself takes no global lock and waits for no RCU grace period, see
    /// `cgroup`), or v2 `cgroup.procs` on a kernel without CLONE_INTO_CGROUP.
    Join,
}

/// The steps of PID 1 before it forks the program: descriptors, cgroup, mounts, hostname,
/// loopback. Files of the spec are not written here (see [`mounts::file_steps`]).
pub(super) fn init_steps(
    spec: &RunSpec,
    cgroup: CgroupEntry,
    join: &[RawFd],
    pass: &[RawFd],
) -> Result<Vec<Step>, SandboxError> {
    let join_now: &[RawFd] = match cgroup {
        CgroupEntry::Join => join,
        CgroupEntry::None | CgroupEntry::Cloned => &[],
    };
    let mut keep: Vec<RawFd> = pass.iter().chain(join_now).copied().collect();
    keep.sort_unstable();
    keep.dedup();
    let mut steps = vec![Step::CloseAllExcept(keep), Step::ParentDeathSignal];
    for &fd in join_now {
        steps.push(Step::JoinCgroup(fd));
        steps.push(Step::Close(fd));
    }
    if matches!(cgroup, CgroupEntry::Join | CgroupEntry::Cloned) {
        steps.push(Step::UnshareCgroupNamespace);
    }
    steps.push(Step::Umask(0));
    steps.extend(mounts::filesystem_steps(spec)?);
    steps.push(Step::SetHostname(cstring(&spec.hostname)));
    steps.push(Step::LoopbackUp);
    Ok(steps)
}

/// The steps of the program process: stdio, rlimits, identity, capabilities, no_new_privs,
/// seccomp (last) and execve.
///
/// With `ids` (the cell's own host uid/gid, `identity.rs`) the program switches to them on
/// the host (losing every host capability), then enters a user namespace of its own whose
/// maps it may write itself because each maps exactly its own id: `spec.uid` → `ids.uid`,
/// `spec.gid` → `ids.gid` (setgroups denied first). It then switches to those visible ids
/// inside: the program sees `spec.uid`, the host sees `ids.uid`. Securebits and the
/// bounding set are set after the unshare (a new user namespace starts with default
/// securebits and a full set), and every capability it held in its namespace is dropped.
pub(super) fn program_steps(
    spec: &RunSpec,
    ids: Option<HostIds>,
    policy: Option<Arc<seccomp::CompiledPolicy>>,
    have_cgroup: bool,
    last_cap: u32,
    [stdin, stdout, stderr]: [RawFd; 3],
) -> Vec<Step> {
    let mut steps = vec![
        Step::NewSession,
        Step::DupOnto { from: stdin, to: 0 },
        Step::DupOnto {
            from: stdout,
            to: 1,
        },
        Step::DupOnto {
            from: stderr,
            to: 2,
        },
    ];
    steps.extend(rlimit_steps(spec, have_cgroup));
    steps.push(Step::ClearGroups);
    if let Some(ids) = ids {
        steps.extend([
            Step::SetGid(ids.gid),
            Step::SetUid(ids.uid),
            Step::Dumpable(true),
            Step::NewUserNamespace,
            Step::WriteProc {
                path: c"/proc/self/setgroups",
                content: b"deny".to_vec(),
            },
            Step::WriteProc {
                path: c"/proc/self/uid_map",
                content: identity::map_line(spec.uid, ids.uid),
            },
            Step::WriteProc {
                path: c"/proc/self/gid_map",
                content: identity::map_line(spec.gid, ids.gid),
            },
            Step::Dumpable(false),
        ]);
    }
    steps.extend([
        Step::SetGid(spec.gid),
        Step::LockSecurebits,
        Step::DropBoundingSet { last_cap },
        Step::ClearAmbient,
        Step::SetUid(spec.uid),
        Step::ClearCapabilities,
        Step::Umask(0o022),
        Step::Chdir(cstring(spec.cwd.as_deref().unwrap_or(&spec.work_dir))),
        Step::NoNewPrivs,
        Step::CloexecFrom(3),
    ]);
    if let Some(policy) = policy {
        steps.push(Step::Seccomp(policy));
    }
    steps.push(Step::Exec(exec_plan(spec)));
    steps
}

/// The steps that put the run's files into the work dir, owned by the program: by its host
/// ids when it has its own (then the work dir tmpfs, mounted for `spec.uid` when the cell
/// was set up, is given to them first). A work disk (its descriptor `work_disk`, closed by
/// its step) is attached over the work dir before anything else.
pub(super) fn run_file_steps(
    spec: &RunSpec,
    ids: Option<HostIds>,
    work_disk: Option<RawFd>,
) -> Vec<Step> {
    let mut steps: Vec<Step> = work_disk
        .map(|fd| mounts::attach_work_disk(spec, fd))
        .into_iter()
        .collect();
    if let Some(ids) = ids {
        if !spec.binds.iter().any(|b| b.target == spec.work_dir) {
            steps.push(Step::Chown {
                path: cstring(&spec.work_dir),
                owner: (ids.uid, ids.gid),
            });
        }
    }
    let mut files = mounts::file_steps(spec);
    if let Some(ids) = ids {
        give_to(&mut files, ids);
    }
    steps.extend(files);
    steps
}

/// Gives what `steps` create for the program (directories and files owned by `spec.uid`)
/// to its host ids instead.
pub(super) fn give_to(steps: &mut [Step], ids: HostIds) {
    for step in steps {
        match step {
            Step::Mkdir {
                owner: Some(owner), ..
            }
            | Step::WriteFile { owner, .. } => *owner = (ids.uid, ids.gid),
            _ => {}
        }
    }
}

/// A cell cgroup only when a limit needs one: on v1 hosts joining a cgroup costs an RCU
/// grace period (milliseconds), and without limits rusage covers the usage.
pub(super) fn wants_cgroup(spec: &RunSpec) -> bool {
    cgroup_limits(spec) != CgroupLimits::default() || spec.limits.cpu_time.is_some()
}

pub(super) fn cgroup_limits(spec: &RunSpec) -> CgroupLimits {
    CgroupLimits {
        memory: spec.limits.memory,
        pids: spec.limits.pids,
        cpus: spec.limits.cpus,
    }
}

/// RLIMIT_`name` with equal soft and hard values.
fn rlimit(resource: u32, value: u64, name: &'static str) -> Step {
    Step::SetRlimit {
        resource,
        soft: value,
        hard: value,
        name,
    }
}

fn rlimit_steps(spec: &RunSpec, have_cgroup: bool) -> Vec<Step> {
    let l = &spec.limits;
    let mut steps = vec![
        rlimit(libc::RLIMIT_NOFILE, l.open_files, "NOFILE"),
        rlimit(libc::RLIMIT_CORE, 0, "CORE"),
        rlimit(libc::RLIMIT_FSIZE, l.file_size.unwrap_or(l.disk), "FSIZE"),
    ];
    if let Some(stack) = l.stack {
        steps.push(rlimit(libc::RLIMIT_STACK, stack, "STACK"));
    }
    if let Some(cpu) = l.cpu_time {
        // Per-process backstop; the cell-wide CPU limit is enforced from the cgroup. The hard
        // limit is one second above the soft one, so SIGXCPU comes before SIGKILL.
        let secs = cpu.as_secs() + 1;
        steps.push(Step::SetRlimit {
            resource: libc::RLIMIT_CPU,
            soft: secs,
            hard: secs + 1,
            name: "CPU",
        });
    }
    if let (Some(pids), false) = (l.pids, have_cgroup) {
        // Backstop only without a pids cgroup: RLIMIT_NPROC counts every process of the uid
        // (per user namespace), so without per-cell uids it would let concurrent cells
        // interfere; the cgroup's count is exact.
        steps.push(rlimit(libc::RLIMIT_NPROC, pids, "NPROC"));
    }
    steps
}

/// The environment of the program: PATH, HOME, LANG, then the spec's variables (which win).
fn environment(spec: &RunSpec) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::with_capacity(spec.env.len() + 3);
    env.extend([
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), spec.work_dir.clone()),
        ("LANG".into(), "C.UTF-8".into()),
    ]);
    // Position of each name in `env`: linear in the number of variables (a scan per
    // variable made 4,096 of them cost milliseconds).
    let mut position: HashMap<&str, usize> = HashMap::with_capacity(spec.env.len() + 3);
    position.extend([("PATH", 0), ("HOME", 1), ("LANG", 2)]);
    for (k, v) in &spec.env {
        match position.get(k.as_str()) {
            Some(&i) => env[i].1 = v.clone(),
            None => {
                position.insert(k, env.len());
                env.push((k.clone(), v.clone()));
            }
        }
    }
    env
}

fn exec_plan(spec: &RunSpec) -> ExecPlan {
    let env = environment(spec);
    let program = spec.argv[0].as_str();
    let candidates = if program.contains('/') {
        vec![cstring(program)]
    } else {
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| cstring(&format!("{}/{program}", d.trim_end_matches('/'))))
            .collect()
    };
    ExecPlan::new(
        program.to_string(),
        candidates,
        spec.argv.iter().map(|a| cstring(a)).collect(),
        env.iter()
            .map(|(k, v)| cstring(&format!("{k}={v}")))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::super::child::labels;
    use super::*;

    #[test]
    fn a_cell_joins_its_cgroup_first_and_then_makes_its_cgroup_namespace() {
        let spec = RunSpec::new("/images/x", vec!["/bin/true".into()]);
        let joined = labels(&init_steps(&spec, CgroupEntry::Join, &[9], &[3, 4]).unwrap());
        assert_eq!(joined[2], "join the cell's cgroup", "{joined:?}");
        assert_eq!(joined[4], "create cgroup namespace", "{joined:?}");
        let cloned = labels(&init_steps(&spec, CgroupEntry::Cloned, &[], &[3, 4]).unwrap());
        assert!(
            !cloned.iter().any(|s| s == "join the cell's cgroup"),
            "{cloned:?}"
        );
    }

    #[test]
    fn a_program_with_host_ids_maps_them_in_its_own_user_namespace() {
        let spec = RunSpec::new("/img", vec!["/bin/true".into()]);
        let ids = HostIds {
            uid: 2_000_000_005,
            gid: 2_000_000_005,
        };
        let steps = program_steps(&spec, Some(ids), None, false, 40, [0, 1, 2]);
        let names = labels(&steps);
        let pos = |n: &str| {
            names
                .iter()
                .position(|s| s == n)
                .unwrap_or_else(|| panic!("{n} in {names:?}"))
        };
        assert!(pos("setgroups") < pos("setuid 2000000005"));
        assert!(pos("setuid 2000000005") < pos("create user namespace"));
        assert!(pos("create user namespace") < pos("write /proc/self/setgroups"));
        assert!(pos("write /proc/self/setgroups") < pos("write /proc/self/gid_map"));
        assert!(pos("write /proc/self/uid_map") < pos("lock securebits"));
        // Dumpable only while it writes its maps: until exec the flag is that of the memory
        // it shares with PID 1.
        assert!(pos("set dumpable") < pos("create user namespace"));
        assert!(pos("write /proc/self/gid_map") < pos("clear dumpable"));
        assert!(pos("write /proc/self/uid_map") < pos("clear dumpable"));
        assert!(pos("drop capability bounding set") < pos("setuid 65534"));
        assert!(pos("setuid 65534") < pos("drop capabilities"));
        let uid_map = steps.iter().find_map(|s| match s {
            Step::WriteProc { path, content } if path.to_bytes().ends_with(b"uid_map") => {
                Some(content.clone())
            }
            _ => None,
        });
        assert_eq!(uid_map.as_deref(), Some(&b"65534 2000000005 1\n"[..]));
        // Without host ids: no namespace, the program is spec.uid on the host.
        let names = labels(&program_steps(&spec, None, None, false, 40, [0, 1, 2]));
        assert!(!names.iter().any(|n| n == "create user namespace"));
    }

    #[test]
    fn run_files_and_the_work_dir_go_to_the_host_ids() {
        let mut spec = RunSpec::new("/img", vec!["/bin/true".into()]);
        spec.files.push(crate::spec::FileSpec {
            path: "src/main.c".into(),
            content: b"x".to_vec(),
            mode: None,
        });
        let ids = HostIds { uid: 7, gid: 8 };
        let steps = run_file_steps(&spec, Some(ids), None);
        assert!(
            matches!(&steps[0], Step::Chown { path, owner: (7, 8) } if path.as_bytes() == b"/work")
        );
        for step in &steps {
            match step {
                Step::Mkdir { owner, .. } => assert_eq!(*owner, Some((7, 8))),
                Step::WriteFile { owner, .. } => assert_eq!(*owner, (7, 8)),
                _ => {}
            }
        }
        let plain = run_file_steps(&spec, None, None);
        assert!(!plain.iter().any(|s| matches!(s, Step::Chown { .. })));
    }

    #[test]
    fn spec_variables_override_defaults_and_keep_first_position() {
        let mut spec = RunSpec::new("/img", vec!["/bin/true".into()]);
        spec.env = vec![
            ("A".into(), "1".into()),
            ("PATH".into(), "/x".into()),
            ("B".into(), "2".into()),
            ("A".into(), "3".into()),
        ];
        let env = environment(&spec);
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["PATH", "HOME", "LANG", "A", "B"]);
        assert_eq!(env[0].1, "/x");
        assert_eq!(env[3].1, "3");
    }
}
