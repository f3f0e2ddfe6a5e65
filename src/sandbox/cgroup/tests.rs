//! Unit tests of the public cgroup types against fake cgroupfs trees in a temp dir.

use super::*;

const HYBRID_MOUNTINFO: &str = "\
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
const HYBRID_CGROUP: &str =
    "8:pids:/\n6:freezer:/\n4:memory:/process_api/abc\n2:cpuacct:/\n1:cpu:/\n0::/\n";

/// Every file in `root`, recursively.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn v1_host_only_creates_beneath_own_memory_cgroup() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = tmp.path().join("sys/fs/cgroup");
    let own_mem = fs.join("memory/process_api/abc");
    for d in ["cpu", "cpuacct", "freezer", "pids", "unified"] {
        std::fs::create_dir_all(fs.join(d)).unwrap();
    }
    std::fs::create_dir_all(&own_mem).unwrap();
    std::fs::write(
        own_mem.join("memory.limit_in_bytes"),
        "9223372036854771712\n",
    )
    .unwrap();
    let before = files(tmp.path());

    let host = CgroupHost::detect_with(HYBRID_MOUNTINFO, HYBRID_CGROUP, tmp.path()).unwrap();
    assert_eq!(host.mode(), CgroupMode::V1);
    // Only directories were created; no file was written anywhere.
    assert_eq!(files(tmp.path()), before);
    let mut dirs = host.cells_dirs();
    dirs.sort();
    assert_eq!(
        dirs,
        vec![
            fs.join("cpu/sandcell"),
            fs.join("cpuacct/sandcell"),
            fs.join("freezer/sandcell"),
            own_mem.join("sandcell"),
            fs.join("pids/sandcell"),
        ]
    );
    for d in &dirs {
        assert!(d.is_dir());
        // Never at or above process_api/<id>.
        if d.starts_with(fs.join("memory")) {
            assert!(d.starts_with(&own_mem) && d != &own_mem);
        }
    }
    // The fake tree has no freezer.state and no memory files: features say so.
    assert!(!host.features().freeze);
    let json = host.describe();
    assert_eq!(json["mode"], "v1");
    assert_eq!(json["hierarchies"].as_array().unwrap().len(), 5);
}

#[test]
fn stale_cells_of_dead_creators_are_removed_live_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = tmp.path().join("sys/fs/cgroup");
    for d in [
        "cpu",
        "cpuacct",
        "freezer",
        "pids",
        "memory/process_api/abc",
    ] {
        std::fs::create_dir_all(fs.join(d)).unwrap();
    }
    let host = CgroupHost::detect_with(HYBRID_MOUNTINFO, HYBRID_CGROUP, tmp.path()).unwrap();
    let dead = "2147483000-0-deadbeef";
    let live = format!("{}-99-cafe", std::process::id());
    for cells in host.cells_dirs() {
        for name in [dead, live.as_str(), "not-a-cell"] {
            std::fs::create_dir(cells.join(name)).unwrap();
        }
    }
    assert_eq!(host.cleanup_stale(), 1);
    for cells in host.cells_dirs() {
        assert!(!cells.join(dead).exists());
        assert!(cells.join(&live).exists());
        assert!(cells.join("not-a-cell").exists());
    }
}

#[test]
fn v2_enables_controllers_for_the_cells_parent() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = tmp.path().join("sys/fs/cgroup");
    std::fs::create_dir_all(fs.join("sandcell")).unwrap();
    std::fs::write(fs.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
    std::fs::write(fs.join("cgroup.subtree_control"), "").unwrap();
    std::fs::write(fs.join("sandcell/cgroup.subtree_control"), "").unwrap();
    let mountinfo = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n";
    let host = CgroupHost::detect_with(mountinfo, "0::/\n", tmp.path()).unwrap();
    assert_eq!(host.mode(), CgroupMode::V2);
    assert_eq!(host.cells_dirs(), vec![fs.join("sandcell")]);
    // The fake file is overwritten in place by each write: cpu was enabled last.
    let written = std::fs::read_to_string(fs.join("cgroup.subtree_control")).unwrap();
    assert!(written.starts_with("+cpu"), "{written}");
    let c = host.controllers();
    for want in ["memory", "pids", "cpu", "cpuacct"] {
        assert!(c.contains(&want), "{c:?}");
    }
    assert!(host
        .unenforceable(
            &CgroupLimits {
                memory: Some(1 << 20),
                pids: Some(3),
                cpus: Some(1.0)
            },
            true
        )
        .is_empty());
}

#[test]
fn v2_without_pids_reports_it_unenforceable() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = tmp.path().join("sys/fs/cgroup");
    std::fs::create_dir_all(fs.join("sandcell")).unwrap();
    std::fs::write(fs.join("cgroup.controllers"), "memory\n").unwrap();
    std::fs::write(fs.join("cgroup.subtree_control"), "").unwrap();
    std::fs::write(fs.join("sandcell/cgroup.subtree_control"), "").unwrap();
    let mountinfo = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    let host = CgroupHost::detect_with(mountinfo, "0::/\n", tmp.path()).unwrap();
    let limits = CgroupLimits {
        memory: Some(1 << 20),
        pids: Some(3),
        cpus: Some(0.5),
    };
    assert_eq!(
        host.unenforceable(&limits, true),
        vec![Limit::Pids, Limit::Cpus]
    );
    let problems = host.problems().join("\n");
    assert!(problems.contains("pids: not offered"), "{problems}");
    assert_eq!(
        host.unenforceable(&CgroupLimits::default(), false),
        Vec::<Limit>::new()
    );
}

#[test]
fn a_fixed_cell_skips_only_a_lone_v1_cpu_hierarchy_without_a_cpus_limit() {
    let none = CgroupLimits::default();
    let cpus = CgroupLimits {
        cpus: Some(0.5),
        ..CgroupLimits::default()
    };
    let fixed = Coverage::Fixed;
    assert!(!fixed.includes(CgroupMode::V1, &["cpu"], &none));
    assert!(fixed.includes(CgroupMode::V1, &["cpu"], &cpus));
    // cpu co-mounted with cpuacct holds the CPU time.
    assert!(fixed.includes(CgroupMode::V1, &["cpu", "cpuacct"], &none));
    for needed in ["memory", "pids", "cpuacct", "freezer"] {
        assert!(fixed.includes(CgroupMode::V1, &[needed], &none), "{needed}");
    }
    // v2's one hierarchy counts CPU time and kills with no controller enabled at all.
    assert!(fixed.includes(CgroupMode::V2, &["cpu"], &none));
    assert!(fixed.includes(CgroupMode::V2, &[], &none));
    assert!(Coverage::All.includes(CgroupMode::V1, &["cpu"], &none));
}
