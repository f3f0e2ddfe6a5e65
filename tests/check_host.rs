//! `sandcell check-host` tells the truth: every row is compared with facts this test reads
//! itself from /proc and /sys. Runs on the hybrid CI host (cgroup v1 controllers) and in the
//! vm-run guest (pure cgroup v2): `../shared/vm-run/vm-run -- cargo test --test check_host`.

mod common;

use std::path::Path;

use common::{require_root, sandcell};
use serde_json::Value;

fn check_host_json() -> (Value, i32) {
    let out = sandcell()
        .args(["check-host", "--json"])
        .output()
        .expect("spawn sandcell");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check-host printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, out.status.code().expect("exit code"))
}

fn row<'a>(json: &'a Value, feature: &str) -> &'a Value {
    json["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["feature"] == feature)
        .unwrap_or_else(|| panic!("no row {feature} in {json:#}"))
}

fn status(json: &Value, feature: &str) -> String {
    row(json, feature)["status"].as_str().unwrap().to_string()
}

fn ok_if(cond: bool) -> &'static str {
    if cond {
        "ok"
    } else {
        "missing"
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn kernel() -> (u32, u32) {
    let release = read("/proc/sys/kernel/osrelease");
    let mut nums = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|n| n.parse().unwrap_or(0));
    (nums.next().unwrap_or(0), nums.next().unwrap_or(0))
}

/// The cgroup layout as this test sees it: ("v2", controllers) for a pure v2 host,
/// ("v1", controllers with a v1 hierarchy) for a hybrid/v1 host.
fn cgroup_truth() -> Option<(&'static str, Vec<String>)> {
    let v2_root = read("/sys/fs/cgroup/cgroup.controllers");
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return Some(("v2", v2_root.split_whitespace().map(String::from).collect()));
    }
    let v1: Vec<String> = ["memory", "pids", "cpu", "cpuacct", "freezer"]
        .into_iter()
        .filter(|c| Path::new("/sys/fs/cgroup").join(c).join("tasks").exists())
        .map(String::from)
        .collect();
    (!v1.is_empty()).then_some(("v1", v1))
}

#[test]
fn the_exit_code_matches_the_required_rows() {
    let (json, code) = check_host_json();
    let missing = json["missing_required"].as_array().unwrap();
    assert_eq!(code, if missing.is_empty() { 0 } else { 1 }, "{json:#}");
    assert_eq!(json["ok"], missing.is_empty());
    for c in json["checks"].as_array().unwrap() {
        if c["required"] == true && c["status"] != "ok" {
            assert!(missing.contains(&c["feature"]), "{c}");
        }
    }
}

#[test]
fn as_root_on_this_host_everything_required_is_there() {
    if !require_root() {
        return;
    }
    let (json, code) = check_host_json();
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(status(&json, "root"), "ok");
    for ns in ["mnt", "pid", "net", "ipc", "uts"] {
        assert_eq!(status(&json, &format!("namespace {ns}")), "ok", "{ns}");
        assert!(Path::new("/proc/self/ns").join(ns).exists());
    }
}

#[test]
fn kernel_seccomp_and_filesystems_are_reported_truthfully() {
    let (json, _) = check_host_json();
    let release = read("/proc/sys/kernel/osrelease");
    assert_eq!(json["kernel"], release.trim());
    let (major, minor) = kernel();
    assert_eq!(
        status(&json, "clone3+pidfd"),
        ok_if((major, minor) >= (5, 3))
    );

    let actions = read("/proc/sys/kernel/seccomp/actions_avail");
    let filter_mode = ["allow", "errno", "kill_process"]
        .iter()
        .all(|a| actions.split_whitespace().any(|x| x == *a));
    assert_eq!(status(&json, "seccomp"), ok_if(filter_mode));

    let filesystems = read("/proc/filesystems");
    let has_fs = |name: &str| {
        filesystems
            .lines()
            .any(|l| l.split_whitespace().last() == Some(name))
    };
    assert_eq!(status(&json, "filesystem proc"), ok_if(has_fs("proc")));
    assert_eq!(status(&json, "filesystem tmpfs"), ok_if(has_fs("tmpfs")));
    if has_fs("overlay") {
        assert_eq!(status(&json, "overlayfs"), "ok");
    }
}

#[test]
fn cgroup_mode_controllers_and_degraded_limits_are_the_truth() {
    if !require_root() {
        return;
    }
    let (json, _) = check_host_json();
    let Some((mode, controllers)) = cgroup_truth() else {
        assert_eq!(status(&json, "cgroups"), "missing", "{json:#}");
        assert_eq!(json["degraded"].as_array().unwrap().len(), 4);
        return;
    };
    assert_eq!(
        status(&json, "cgroups"),
        "ok",
        "this host has {mode} cgroups ({controllers:?}) but check-host says: {:#}",
        row(&json, "cgroups")
    );
    let detail = row(&json, "cgroups")["detail"].as_str().unwrap();
    assert!(detail.starts_with(mode), "expected {mode}: {detail}");
    if std::env::var_os("VM_RUN").is_some() {
        assert_eq!(mode, "v2", "the vm-run guest is pure cgroup v2");
    } else if Path::new("/sys/fs/cgroup/unified").exists() {
        assert_eq!(
            mode, "v1",
            "a hybrid host with an empty cgroup2 runs cells on v1"
        );
    }

    // memory and pids: reported present exactly when the hierarchy has them
    let mut expected_degraded = Vec::new();
    for (controller, flag) in [("memory", "--memory"), ("pids", "--pids")] {
        let present = controllers.iter().any(|c| c == controller);
        assert_eq!(
            status(&json, &format!("cgroup {controller}")),
            ok_if(present),
            "{controller}"
        );
        if !present {
            expected_degraded.push(flag);
        }
    }
    let degraded: Vec<&str> = json["degraded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["flag"].as_str().unwrap())
        .filter(|f| *f == "--memory" || *f == "--pids")
        .collect();
    assert_eq!(degraded, expected_degraded, "{json:#}");

    let (major, minor) = kernel();
    assert_eq!(
        status(&json, "CLONE_INTO_CGROUP"),
        ok_if(mode == "v2" && (major, minor) >= (5, 7))
    );
    let peak = if mode == "v2" {
        (major, minor) >= (5, 19)
    } else {
        controllers.iter().any(|c| c == "memory")
    };
    assert_eq!(status(&json, "memory peak"), ok_if(peak));
}

#[test]
fn the_table_shows_every_row_and_the_same_verdict() {
    let (json, json_code) = check_host_json();
    let out = sandcell().arg("check-host").output().unwrap();
    assert_eq!(out.status.code(), Some(json_code));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("sandcell check-host: kernel"), "{table}");
    for c in json["checks"].as_array().unwrap() {
        assert!(
            table.contains(c["feature"].as_str().unwrap()),
            "{c} not in\n{table}"
        );
    }
    let last = table.lines().last().unwrap_or_default();
    if json_code == 0 {
        assert_eq!(last, "All required features are present.");
    } else {
        assert!(last.starts_with("MISSING required features:"), "{table}");
    }
}
