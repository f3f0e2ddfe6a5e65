//! Helpers shared by the integration tests: root checks that skip loudly, the test rootfs,
//! and running the `sandcell` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// True when skips must fail (CI sets SANDCELL_MUST_RUN=1).
pub fn must_run() -> bool {
    std::env::var("SANDCELL_MUST_RUN").is_ok_and(|v| v == "1")
}

/// Skips the calling test loudly (or fails it under SANDCELL_MUST_RUN=1).
/// Use as `if !common::require(cond, "why") { return; }`.
pub fn require(condition: bool, why: &str) -> bool {
    if condition {
        return true;
    }
    if must_run() {
        panic!("SANDCELL_MUST_RUN=1 but this test cannot run: {why}");
    }
    eprintln!("\n*** SKIPPED: {why} (set SANDCELL_MUST_RUN=1 to make this a failure) ***\n");
    false
}

/// The test needs root (real cells).
pub fn require_root() -> bool {
    require(
        nix::unistd::geteuid().is_root(),
        "needs root to create cells",
    )
}

/// The busybox rootfs built by scripts/build-test-rootfs (or SANDCELL_TEST_ROOTFS).
pub fn test_rootfs() -> Option<PathBuf> {
    let path = std::env::var_os("SANDCELL_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".test-rootfs/busybox"));
    let ok = path.join("bin/busybox").exists();
    require(
        ok,
        &format!(
            "no test rootfs at {} (run scripts/build-test-rootfs)",
            path.display()
        ),
    )
    .then_some(path)
}

/// Root and the test rootfs, or a loud skip.
pub fn setup() -> Option<PathBuf> {
    if !require_root() {
        return None;
    }
    test_rootfs()
}

/// The `sandcell` binary under test: this workspace's build, or `$SANDCELL_TEST_BIN` (CI
/// runs the CLI and daemon suites once more against the static release build).
pub fn sandcell_bin() -> PathBuf {
    std::env::var_os("SANDCELL_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_sandcell")))
}

/// A command of the `sandcell` binary under test ([`sandcell_bin`]).
pub fn sandcell() -> Command {
    Command::new(sandcell_bin())
}

/// `sandcell run --rootfs R --json EXTRA... -- CMD...` and its parsed JSON result.
pub fn run_json(
    rootfs: &std::path::Path,
    extra: &[&str],
    cmd: &[&str],
) -> (serde_json::Value, Output) {
    let out = sandcell()
        .arg("run")
        .arg("--rootfs")
        .arg(rootfs)
        .arg("--json")
        .args(extra)
        .arg("--")
        .args(cmd)
        .output()
        .expect("spawn sandcell");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "sandcell printed no JSON ({e}); status {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, out)
}

/// Cell cgroup directories of sandcell that exist now: every `<own cgroup>/sandcell/*`
/// directory in every cgroup hierarchy mounted on this host (v1 and v2).
pub fn cell_cgroups() -> Vec<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut found = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split_whitespace().next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let mount_point = left.split_whitespace().nth(4).unwrap_or("");
        let options = right.split_whitespace().nth(2).unwrap_or("");
        // Our own path in this hierarchy: the /proc/self/cgroup line whose controllers match.
        let path = own.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            let matches = if fstype == "cgroup2" {
                ctrls.is_empty()
            } else {
                !ctrls.is_empty()
                    && ctrls.split(',').all(|c| {
                        options.split(',').any(|o| {
                            o == c || o == format!("name={}", c.trim_start_matches("name="))
                        })
                    })
            };
            matches.then(|| path.to_string())
        });
        let Some(path) = path else { continue };
        let parent = PathBuf::from(mount_point)
            .join(path.trim_start_matches('/'))
            .join("sandcell");
        if let Ok(entries) = std::fs::read_dir(&parent) {
            found.extend(
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path()),
            );
        }
    }
    found
}

/// PIDs of host processes whose command line contains `marker`.
pub fn host_processes_with(marker: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The processes whose parent is this test process: (pid, command line with spaces for
/// NULs). Zombies count (their command line is empty).
pub fn children_of_this_process() -> Vec<(i32, String)> {
    let ours = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat.rsplit_once(") ")?.1.split_whitespace().nth(1)?;
            if ppid != ours {
                return None;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            Some((pid, String::from_utf8_lossy(&cmdline).replace('\0', " ")))
        })
        .collect()
}

/// Whether `pid` lives in this process's pid namespace: the spawner does, the PID 1 of a
/// cell (cloned from the spawner, so with the spawner's cmdline) does not.
pub fn in_our_pid_namespace(pid: i32) -> bool {
    let ns = |p: &str| std::fs::read_link(format!("/proc/{p}/ns/pid")).ok();
    ns(&pid.to_string()).is_some_and(|theirs| Some(theirs) == ns("self"))
}

/// Number of mounts in this process's mount namespace.
pub fn mount_count() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .count()
}

/// The images `names` are all in the store of `state_dir`.
pub fn store_has_images(state_dir: &Path, names: &[&str]) -> bool {
    names.iter().all(|name| {
        sandcell()
            .args(["image", "inspect", name])
            .env("SANDCELL_STATE_DIR", state_dir)
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Builds the images `names` missing from the store of `state_dir` with the workspace's
/// rootfs-builder (next to the sandcell binary) and imports them.
pub fn build_store_images(state_dir: &Path, names: &[&str]) -> Result<(), String> {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_sandcell"))
        .parent()
        .ok_or("no binary dir")?;
    let builder = bin_dir.join("rootfs-builder");
    if !builder.exists() {
        return Err(format!(
            "{} is missing (cargo build --workspace builds it)",
            builder.display()
        ));
    }
    let stem = state_dir
        .file_name()
        .map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    for name in names {
        if store_has_images(state_dir, &[name]) {
            continue;
        }
        let layout = state_dir.with_file_name(format!("{stem}-layout-{name}"));
        let out = Command::new(&builder)
            .args(["build", name, "--out"])
            .arg(&layout)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "rootfs-builder build {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let out = sandcell()
            .args(["image", "import", "--name", name])
            .arg(&layout)
            .env("SANDCELL_STATE_DIR", state_dir)
            .output()
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&layout);
        if !out.status.success() {
            return Err(format!(
                "sandcell image import {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}
