//! What a program can see or exhaust from inside a cell, beyond escape: the host's uptime
//! (each cell has its own time namespace), the inode cap of the writable layers and the parts
//! of /proc that are masked or read-only. Checked on both ways to get a cell: the CLI (cloned
//! in-process) and prepared cells (the daemon's path).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sandcell::spec::{LimitBounds, Limits, RunSpec};
use sandcell::{Launcher, LauncherConfig, RunResult, Verdict};

/// Creates up to 100,000 empty files in `dir`, then prints how many it made.
const FILL: &str = r#"i=0; while [ $i -lt 100000 ]; do echo -n 2>/dev/null > "$1/f$i" || break; i=$((i+1)); done; echo made=$i"#;

/// Prints one line per /proc path: what reading gives and whether writing fails.
const PROBE_PROC: &str = r#"
for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats /proc/timer_stats; do
  [ -e "$p" ] || continue
  echo "$p bytes=$(cat "$p" 2>/dev/null | wc -c)"
done
for d in /proc/acpi /proc/scsi; do
  [ -e "$d" ] || continue
  echo "$d entries=$(ls -A "$d" | wc -l)"
done
for p in /proc/sys/kernel/hostname /proc/sys/vm/drop_caches; do
  if (echo x > "$p") 2>/dev/null; then echo "$p writable"; else echo "$p refused"; fi
done
grep -E ' /proc/(sys|bus|fs|irq|sysrq-trigger) ' /proc/self/mountinfo | awk '{print $5, substr($6,1,2)}'
"#;

/// Prints the cell's uptime and CLOCK_BOOTTIME-based seconds, whole seconds.
const PROBE_CLOCKS: &str = "cut -d. -f1 /proc/uptime | cut -d' ' -f1";

/// The host's uptime in seconds.
fn host_uptime() -> u64 {
    let text = std::fs::read_to_string("/proc/uptime").unwrap();
    text.split('.').next().unwrap().parse().unwrap()
}

/// Generous budgets: the file loops take seconds of CPU in the emulated cgroup-v2 VM.
const BUDGET: [&str; 4] = ["--cpu-time", "60s", "--wall-time", "120s"];

fn cli(rootfs: &Path, extra: &[&str], script: &str, arg: &str) -> serde_json::Value {
    let mut cmd = vec!["/bin/sh", "-c", script, "sh", arg];
    if arg.is_empty() {
        cmd.truncate(3);
    }
    let args: Vec<&str> = BUDGET.iter().chain(extra).copied().collect();
    common::run_json(rootfs, &args, &cmd).0
}

fn files_under(dir: &Path) -> usize {
    walk(dir).len()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}

#[test]
fn a_cell_does_not_see_the_hosts_uptime() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    if !common::require(
        Path::new("/proc/self/ns/time").exists(),
        "this kernel has no time namespaces (< 5.6)",
    ) {
        return;
    }
    let json = cli(&rootfs, &[], PROBE_CLOCKS, "");
    assert_eq!(json["verdict"], "OK", "{json}");
    let inside: u64 = json["stdout"].as_str().unwrap().trim().parse().unwrap();
    assert!(inside < 60, "the cell's uptime is {inside} s");
    // Meaningful only on a host that has been up for a while (CI machines are).
    if host_uptime() > 120 {
        assert!(inside < host_uptime() - 60);
    }
}

#[test]
fn creating_files_stops_with_enospc_at_the_inode_cap() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let before = files_under(&rootfs);
    let json = cli(&rootfs, &[], FILL, "/tmp");
    assert_eq!(json["verdict"], "OK", "{json}");
    // The tmpfs root takes one inode of the default 32768.
    assert_eq!(json["stdout"], "made=32767\n", "{json}");

    let json = cli(&rootfs, &["--inodes", "1000"], FILL, "/work");
    assert_eq!(json["stdout"], "made=999\n", "{json}");
    assert_eq!(files_under(&rootfs), before, "the image gained files");
}

#[test]
fn an_inode_cap_out_of_range_is_a_usage_error() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let out = common::sandcell()
        .args(["run", "--inodes", "3", "--rootfs"])
        .arg(&rootfs)
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("inodes"), "{stderr}");
}

fn assert_proc_is_masked(stdout: &str) {
    for line in stdout.lines() {
        if line.contains(" bytes=") {
            assert!(line.ends_with(" bytes=0"), "readable: {line}\n{stdout}");
        }
        if line.contains(" entries=") {
            assert!(line.ends_with(" entries=0"), "listable: {line}\n{stdout}");
        }
        assert!(!line.ends_with(" writable"), "{line}\n{stdout}");
    }
    // Every read-only path this kernel has is its own read-only mount.
    for p in ["sys", "bus", "fs", "irq"] {
        if Path::new("/proc").join(p).exists() {
            assert!(
                stdout.contains(&format!("/proc/{p} ro")),
                "/proc/{p} is not a read-only mount:\n{stdout}"
            );
        }
    }
    assert!(
        stdout.contains("/proc/sys/kernel/hostname refused"),
        "{stdout}"
    );
}

#[test]
fn the_cli_cell_masks_proc_like_runc() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let json = cli(&rootfs, &[], PROBE_PROC, "");
    assert_eq!(json["verdict"], "OK", "{json}");
    assert_proc_is_masked(json["stdout"].as_str().unwrap());
}

#[test]
fn prepared_cells_mask_proc_and_cap_inodes_too() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let launcher = Launcher::new(LauncherConfig {
        spawner: Some(PathBuf::from(env!("CARGO_BIN_EXE_sandcell"))),
        warm_cells: 1,
        ..LauncherConfig::default()
    })
    .expect("launcher with a spawner");
    let run = |script: &str, inodes: u64| -> RunResult {
        let mut spec = RunSpec::new(
            &rootfs,
            vec![
                "/bin/sh".into(),
                "-c".into(),
                script.into(),
                "sh".into(),
                "/tmp".into(),
            ],
        );
        spec.limits = Limits {
            wall_time: Duration::from_secs(120),
            cpu_time: Some(Duration::from_secs(60)),
            inodes,
            ..Limits::default()
        };
        let spec = spec.validate(&LimitBounds::default()).expect("valid spec");
        launcher.run(&spec, &mut |_| {}, None)
    };
    let r = run(PROBE_PROC, sandcell::spec::DEFAULT_INODES);
    assert_eq!(r.verdict, Verdict::OK, "{r:?}");
    assert_proc_is_masked(&String::from_utf8_lossy(&r.stdout.bytes));
    if Path::new("/proc/self/ns/time").exists() {
        // A warm cell waits at most a minute for its run; its clocks started at clone time.
        let r = run(PROBE_CLOCKS, sandcell::spec::DEFAULT_INODES);
        let inside: u64 = String::from_utf8_lossy(&r.stdout.bytes)
            .trim()
            .parse()
            .unwrap();
        assert!(inside < 60, "a prepared cell's uptime is {inside} s");
    }
    let r = run(FILL, 500);
    assert_eq!(String::from_utf8_lossy(&r.stdout.bytes), "made=499\n");
}
