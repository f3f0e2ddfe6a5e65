//! Which cgroup layout this host has and where our own cgroups are, from the text of
//! /proc/self/mountinfo and /proc/self/cgroup (pure parsing; `root_prefix` lets tests point
//! every mount at a fake tree in a temp dir).

use std::path::{Path, PathBuf};

use super::{CgroupError, CgroupMode};

/// The v1 controllers cells use. Others (cpuset, devices, blkio, ...) are left alone: the
/// cell stays in our own cgroup of those hierarchies.
pub(super) const V1_CONTROLLERS: [&str; 5] = ["memory", "pids", "cpu", "cpuacct", "freezer"];
/// The v2 controllers cells use (cpu accounting and freezing are core files on v2).
pub(super) const V2_CONTROLLERS: [&str; 3] = ["memory", "pids", "cpu"];

/// The directory (beneath our own cgroup) that holds every cell's cgroup.
pub(super) const CELLS_DIR: &str = "sandcell";
/// v2 only: the leaf our own process moves into when our cgroup must not hold processes.
pub(super) const SUPERVISOR_DIR: &str = "sandcell-supervisor";

/// One cgroupfs mount from /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Mount {
    /// The cgroup path of the mount's root (4th field).
    pub root: String,
    pub mount_point: PathBuf,
    /// "cgroup" or "cgroup2".
    pub fstype: String,
    pub super_options: Vec<String>,
}

/// One line of /proc/self/cgroup.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Membership {
    pub hierarchy_id: u32,
    /// Controllers of a v1 hierarchy; empty for v2 ("0::/path") and named hierarchies.
    pub controllers: Vec<String>,
    pub path: String,
}

/// One hierarchy cells are created in.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Hierarchy {
    /// The controllers of interest in this hierarchy (v1: as mounted; v2: filled in later
    /// with the ones that could be enabled).
    pub controllers: Vec<&'static str>,
    /// Our own cgroup in this hierarchy. On v1 we never write anything here.
    pub own: PathBuf,
    /// `<own>/sandcell`: the parent of every cell's cgroup.
    pub cells: PathBuf,
}

/// The detected layout, before anything is created.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Layout {
    pub mode: CgroupMode,
    /// v1: one entry per mounted hierarchy with controllers of interest (a combined
    /// `cpu,cpuacct` mount is one entry); v2: exactly one entry.
    pub hierarchies: Vec<Hierarchy>,
    /// v2: the controllers our own cgroup offers (its cgroup.controllers).
    pub v2_available: Vec<String>,
    /// v2: our own cgroup is the root of the cgroup2 mount (exempt from the
    /// no-internal-process rule).
    pub own_is_root: bool,
}

fn unescape_mountinfo(field: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo (octal).
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if let Some(oct) = bytes.get(i + 1..i + 4) {
                if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                    let value = oct
                        .iter()
                        .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                    if let Ok(v) = u8::try_from(value) {
                        out.push(v);
                        i += 4;
                        continue;
                    }
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup and cgroup2 mounts of a mountinfo text. Malformed lines are skipped.
pub(super) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fields: Vec<&str> = left.split_whitespace().collect();
            let mut right = right.split_whitespace();
            let fstype = right.next()?;
            if fstype != "cgroup" && fstype != "cgroup2" {
                return None;
            }
            let _source = right.next()?;
            let super_options = right
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::to_string)
                .collect();
            Some(Mount {
                root: unescape_mountinfo(fields.get(3)?),
                mount_point: PathBuf::from(unescape_mountinfo(fields.get(4)?)),
                fstype: fstype.to_string(),
                super_options,
            })
        })
        .collect()
}

/// The lines of /proc/self/cgroup ("id:controllers:path").
pub(super) fn parse_proc_cgroup(text: &str) -> Result<Vec<Membership>, CgroupError> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.splitn(3, ':');
            let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(CgroupError::Unsupported(format!(
                    "unexpected /proc/self/cgroup line {line:?}"
                )));
            };
            let hierarchy_id = id.parse().map_err(|_| {
                CgroupError::Unsupported(format!("unexpected /proc/self/cgroup line {line:?}"))
            })?;
            let controllers = ctrls
                .split(',')
                .filter(|c| !c.is_empty() && !c.starts_with("name="))
                .map(str::to_string)
                .collect();
            Ok(Membership {
                hierarchy_id,
                controllers,
                path: path.to_string(),
            })
        })
        .collect()
}

/// `root_prefix` + `mount_point` + (our cgroup path relative to the mount's root).
fn own_dir(root_prefix: &Path, mount: &Mount, cgroup_path: &str) -> Result<PathBuf, CgroupError> {
    let root = mount.root.trim_end_matches('/');
    let relative = cgroup_path
        .strip_prefix(root)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        .unwrap_or(cgroup_path);
    let relative = relative.trim_start_matches('/');
    if relative.split('/').any(|c| c == "..") {
        return Err(CgroupError::Unsupported(format!(
            "our cgroup path {cgroup_path:?} is not usable"
        )));
    }
    let mount_point = mount
        .mount_point
        .strip_prefix("/")
        .unwrap_or(&mount.mount_point);
    let mut dir = root_prefix.join(mount_point);
    if !relative.is_empty() {
        dir = dir.join(relative);
    }
    Ok(dir)
}

/// Picks the mount of a hierarchy: one whose root contains our cgroup path if there are
/// several (bind mounts), else the first.
fn pick_mount<'a>(candidates: impl Iterator<Item = &'a Mount>, path: &str) -> Option<&'a Mount> {
    let all: Vec<&Mount> = candidates.collect();
    all.iter()
        .find(|m| {
            let root = m.root.trim_end_matches('/');
            path.strip_prefix(root)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .or(all.first())
        .copied()
}

fn v1_hierarchies(
    mounts: &[Mount],
    members: &[Membership],
    root_prefix: &Path,
) -> Result<Vec<Hierarchy>, CgroupError> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for member in members.iter().filter(|m| m.hierarchy_id != 0) {
        let wanted: Vec<&'static str> = V1_CONTROLLERS
            .iter()
            .copied()
            .filter(|c| member.controllers.iter().any(|m| m == c))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let candidates = mounts.iter().filter(|m| {
            m.fstype == "cgroup"
                && member
                    .controllers
                    .iter()
                    .all(|c| m.super_options.iter().any(|o| o == c))
        });
        let Some(mount) = pick_mount(candidates, &member.path) else {
            continue; // controller enabled in the kernel but not mounted: unusable
        };
        let own = own_dir(root_prefix, mount, &member.path)?;
        if out.iter().any(|h| h.own == own) {
            continue;
        }
        out.push(Hierarchy {
            controllers: wanted,
            cells: own.join(CELLS_DIR),
            own,
        });
    }
    Ok(out)
}

/// Detects the layout from the texts of /proc/self/mountinfo and /proc/self/cgroup. Reads
/// only `cgroup.controllers` of our own v2 cgroup (to tell a pure v2 host from a hybrid one
/// whose cgroup2 has no controllers).
pub(super) fn detect_layout(
    mountinfo: &str,
    proc_self_cgroup: &str,
    root_prefix: &Path,
) -> Result<Layout, CgroupError> {
    let mounts = parse_mountinfo(mountinfo);
    let members = parse_proc_cgroup(proc_self_cgroup)?;
    let v1 = v1_hierarchies(&mounts, &members, root_prefix)?;

    let v2 = match members.iter().find(|m| m.hierarchy_id == 0) {
        Some(member) => {
            // After an earlier detection moved this process into `<own>/sandcell-supervisor`,
            // our own cgroup is still `<own>`.
            let path = member
                .path
                .strip_suffix(&format!("/{SUPERVISOR_DIR}"))
                .map(|p| if p.is_empty() { "/" } else { p })
                .unwrap_or(&member.path);
            match pick_mount(mounts.iter().filter(|m| m.fstype == "cgroup2"), path) {
                Some(mount) => {
                    let own = own_dir(root_prefix, mount, path)?;
                    let available: Vec<String> =
                        std::fs::read_to_string(own.join("cgroup.controllers"))
                            .unwrap_or_default()
                            .split_whitespace()
                            .map(str::to_string)
                            .collect();
                    let own_is_root =
                        path.trim_end_matches('/') == mount.root.trim_end_matches('/');
                    Some((own, available, own_is_root))
                }
                None => None,
            }
        }
        None => None,
    };

    // A hybrid host keeps the controllers in v1 and an empty cgroup2: use v1 there. Use v2
    // when it offers the memory controller, or when there is nothing of interest in v1.
    match v2 {
        Some((own, available, own_is_root))
            if available.iter().any(|c| c == "memory") || v1.is_empty() =>
        {
            Ok(Layout {
                mode: CgroupMode::V2,
                hierarchies: vec![Hierarchy {
                    controllers: Vec::new(),
                    cells: own.join(CELLS_DIR),
                    own,
                }],
                v2_available: available,
                own_is_root,
            })
        }
        _ if !v1.is_empty() => Ok(Layout {
            mode: CgroupMode::V1,
            hierarchies: v1,
            v2_available: Vec::new(),
            own_is_root: false,
        }),
        _ => Err(CgroupError::Unsupported(
            "no cgroup v2 mount and no v1 memory/pids/cpu/cpuacct/freezer mount".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    pub(crate) const HYBRID_CGROUP: &str = "\
9:name=systemd:/
8:pids:/
6:freezer:/
5:devices:/
4:memory:/process_api/b6afa49b
3:cpuset:/
2:cpuacct:/
1:cpu:/
0::/
";

    #[test]
    fn mountinfo_lines_are_parsed_and_unescaped() {
        let text =
            "41 31 0:38 /a\\040b /sys/fs/cgroup/x\\040y rw - cgroup2 cgroup2 rw,nsdelegate\n\
                    22 1 0:5 / /proc rw - proc proc rw\ngarbage line\n";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].root, "/a b");
        assert_eq!(mounts[0].mount_point, PathBuf::from("/sys/fs/cgroup/x y"));
        assert_eq!(mounts[0].super_options, vec!["rw", "nsdelegate"]);
    }

    #[test]
    fn bad_proc_cgroup_is_an_error_not_a_panic() {
        assert!(parse_proc_cgroup("nonsense").is_err());
        assert!(parse_proc_cgroup("x:memory:/").is_err());
    }

    #[test]
    fn hybrid_without_v2_controllers_is_v1_beneath_own_cgroups() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = detect_layout(HYBRID_MOUNTINFO, HYBRID_CGROUP, tmp.path()).unwrap();
        assert_eq!(layout.mode, CgroupMode::V1);
        let fs = tmp.path().join("sys/fs/cgroup");
        let cells: Vec<(Vec<&str>, PathBuf)> = layout
            .hierarchies
            .iter()
            .map(|h| (h.controllers.clone(), h.cells.clone()))
            .collect();
        assert_eq!(
            cells,
            vec![
                (vec!["pids"], fs.join("pids/sandcell")),
                (vec!["freezer"], fs.join("freezer/sandcell")),
                (
                    vec!["memory"],
                    fs.join("memory/process_api/b6afa49b/sandcell")
                ),
                (vec!["cpuacct"], fs.join("cpuacct/sandcell")),
                (vec!["cpu"], fs.join("cpu/sandcell")),
            ]
        );
        for h in &layout.hierarchies {
            assert!(h.cells.starts_with(&h.own) && h.cells != h.own);
        }
    }

    #[test]
    fn combined_cpu_cpuacct_mount_is_one_hierarchy() {
        let tmp = tempfile::tempdir().unwrap();
        let mountinfo = "\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
";
        let cgroup = "3:cpu,cpuacct:/user.slice\n2:memory:/user.slice/x\n1:name=systemd:/\n";
        let layout = detect_layout(mountinfo, cgroup, tmp.path()).unwrap();
        assert_eq!(layout.mode, CgroupMode::V1);
        assert_eq!(layout.hierarchies.len(), 2);
        assert_eq!(layout.hierarchies[0].controllers, vec!["cpu", "cpuacct"]);
        assert_eq!(
            layout.hierarchies[0].cells,
            tmp.path()
                .join("sys/fs/cgroup/cpu,cpuacct/user.slice/sandcell")
        );
    }

    #[test]
    fn pure_v2_uses_the_own_cgroup() {
        let tmp = tempfile::tempdir().unwrap();
        let own = tmp
            .path()
            .join("sys/fs/cgroup/system.slice/sandcell.service");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(
            own.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
        let layout =
            detect_layout(mountinfo, "0::/system.slice/sandcell.service\n", tmp.path()).unwrap();
        assert_eq!(layout.mode, CgroupMode::V2);
        assert!(!layout.own_is_root);
        assert_eq!(layout.hierarchies[0].cells, own.join("sandcell"));
    }

    #[test]
    fn v2_root_cgroup_and_cgroup_namespace_roots() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = tmp.path().join("sys/fs/cgroup");
        std::fs::create_dir_all(&fs).unwrap();
        std::fs::write(fs.join("cgroup.controllers"), "memory pids\n").unwrap();
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let layout = detect_layout(mountinfo, "0::/\n", tmp.path()).unwrap();
        assert!(layout.own_is_root);
        assert_eq!(layout.hierarchies[0].cells, fs.join("sandcell"));

        // A mount whose root is our cgroup (container with a cgroup namespace view).
        let mountinfo = "30 25 0:26 /kube/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let layout = detect_layout(mountinfo, "0::/kube/pod1\n", tmp.path()).unwrap();
        assert_eq!(layout.hierarchies[0].cells, fs.join("sandcell"));
        assert!(layout.own_is_root);
    }

    #[test]
    fn v2_after_moving_into_the_supervisor_leaf_own_is_the_parent() {
        let tmp = tempfile::tempdir().unwrap();
        let own = tmp.path().join("sys/fs/cgroup/svc");
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("cgroup.controllers"), "memory pids\n").unwrap();
        let mountinfo = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        let layout = detect_layout(mountinfo, "0::/svc/sandcell-supervisor\n", tmp.path()).unwrap();
        assert_eq!(layout.hierarchies[0].own, own);
        assert!(!layout.own_is_root);
        let layout = detect_layout(mountinfo, "0::/sandcell-supervisor\n", tmp.path()).unwrap();
        assert!(layout.own_is_root);
    }

    #[test]
    fn hybrid_with_v2_memory_prefers_v2() {
        let tmp = tempfile::tempdir().unwrap();
        let unified = tmp.path().join("sys/fs/cgroup/unified");
        std::fs::create_dir_all(&unified).unwrap();
        std::fs::write(unified.join("cgroup.controllers"), "memory pids\n").unwrap();
        let mountinfo = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
        let layout = detect_layout(mountinfo, "1:cpu:/\n0::/\n", tmp.path()).unwrap();
        assert_eq!(layout.mode, CgroupMode::V2);
    }

    #[test]
    fn nothing_usable_is_unsupported() {
        let tmp = tempfile::tempdir().unwrap();
        let err = detect_layout("22 1 0:5 / /proc rw - proc proc rw\n", "0::/\n", tmp.path());
        assert!(matches!(err, Err(CgroupError::Unsupported(_))));
    }

    #[test]
    fn dotdot_in_own_path_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let mountinfo = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        let err = detect_layout(mountinfo, "4:memory:/a/../..\n", tmp.path());
        assert!(err.is_err());
    }
}
