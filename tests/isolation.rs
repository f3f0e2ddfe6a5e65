//! What a program can see or exhaust from inside a cell, beyond escape: the host's uptime
//! (each cell has its own time namespace), host paths (the image store, a `--rootfs` dir) in
//! its mount tables, the inode cap of the writable layers and the parts of /proc that are
//! masked or read-only. Checked on both ways to get a cell: the CLI (cloned in-process) and
//! prepared cells (the daemon's path).

mod common;
mod image_support;

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

/// Prints what a program can read about its mounts, its own mappings and descriptors, and
/// the processes it sees: every place where the kernel could name the host directory behind
/// the cell's `/` (or sandcell's command line, which names it).
const PROBE_PATHS: &str = r#"
for f in /proc/self/mountinfo /proc/self/mounts /proc/self/mountstats /proc/self/maps /proc/self/cgroup /proc/self/environ; do
  echo "== $f"; cat "$f" | tr '\0' '\n'
done
echo "== links"
for l in /proc/self/exe /proc/self/cwd /proc/self/root /proc/self/fd/*; do echo "$l -> $(readlink "$l")"; done
echo "== processes (PID 1, cloned from sandcell, must stay hidden)"
for p in /proc/[0-9]*; do echo "$p $(tr '\0' ' ' < "$p/cmdline") $(tr '\0' ' ' < "$p/environ")"; done
"#;

/// `path` as the kernel writes it in mountinfo and mounts (space, tab, newline, backslash as
/// octal escapes).
fn mount_escaped(path: &str) -> String {
    let mut out = String::new();
    for c in path.chars() {
        match c {
            ' ' | '\t' | '\n' | '\\' => out.push_str(&format!("\\{:03o}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Mount points of a mountinfo text (field 5), unescaped enough to compare with paths.
fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| p.replace("\\040", " "))
        .collect()
}

/// Asserts that none of `host_paths` (nor their canonical forms) appears in what the cell
/// printed. A host path that is also a path of the cell's own tree (a checkout at `/work`,
/// say) cannot be told apart from it and is skipped (its subdirectories are still looked
/// for: the rootfs dir lies below it).
fn assert_no_host_path(what: &str, cell_output: &str, host_paths: &[&Path]) {
    assert!(
        cell_output.contains("== /proc/self/mountinfo") && cell_output.contains(" / "),
        "{what}: the probe printed no mount table:\n{cell_output}"
    );
    let mountinfo = cell_output
        .split("== /proc/self/mounts")
        .next()
        .unwrap_or_default();
    let own = mount_points(mountinfo);
    let mut needles: Vec<String> = Vec::new();
    for path in host_paths {
        let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        for p in [path.to_path_buf(), canonical] {
            let p = p.to_string_lossy().trim_end_matches('/').to_string();
            let inside = own
                .iter()
                .any(|m| *m == p || m.starts_with(&format!("{p}/")));
            if p.is_empty() || inside {
                eprintln!("{what}: not looking for {p:?} (also a path in the cell)");
                continue;
            }
            needles.push(mount_escaped(&p));
            needles.push(p);
        }
    }
    for needle in &needles {
        assert!(
            !cell_output.contains(needle.as_str()),
            "{what}: the host path {needle:?} is visible inside the cell:\n{cell_output}"
        );
    }
}

#[test]
fn no_host_path_of_the_rootfs_or_the_store_is_visible_in_a_cell() {
    let Some(test_rootfs) = common::setup() else {
        return;
    };
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Paths with a space, as any checkout or temp dir may have (mountinfo escapes them).
    let temp = tempfile::Builder::new()
        .prefix("sandcell mountinfo ")
        .tempdir()
        .unwrap();
    let rootfs = temp.path().join("my rootfs");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(&test_rootfs)
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(copied.success(), "cp -a {}", test_rootfs.display());
    let state = temp.path().join("state dir");
    std::fs::create_dir(&state).unwrap();
    let tar = image_support::tar_dir(&test_rootfs);
    let archive = image_support::write(temp.path(), "bb.tar", &tar);
    image_support::import_ok(&state, &archive, "bb");
    let host_paths = [
        checkout,
        test_rootfs.as_path(),
        temp.path(),
        rootfs.as_path(),
        state.as_path(),
    ];

    // The CLI on a --rootfs dir, on the checkout's own test rootfs, and on a stored image.
    for root in [&rootfs, &test_rootfs] {
        let json = cli(root, &[], PROBE_PATHS, "");
        assert_eq!(json["verdict"], "OK", "{json}");
        let out = json["stdout"].as_str().unwrap();
        assert_no_host_path(&format!("--rootfs {}", root.display()), out, &host_paths);
    }
    let out = common::sandcell()
        .args(["run", "--json", "--image", "bb", "--state-dir"])
        .arg(&state)
        .args(BUDGET)
        .args(["--", "/bin/sh", "-c", PROBE_PATHS])
        .env_remove("SANDCELL_STATE_DIR")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(json["verdict"], "OK", "{json}");
    let out = json["stdout"].as_str().unwrap();
    assert_no_host_path("--image from the store", out, &host_paths);

    // A prepared cell (the daemon's path) on the --rootfs dir.
    let launcher = Launcher::new(LauncherConfig {
        spawner: Some(PathBuf::from(env!("CARGO_BIN_EXE_sandcell"))),
        ..LauncherConfig::default()
    })
    .expect("launcher with a spawner");
    let mut spec = RunSpec::new(
        &rootfs,
        vec!["/bin/sh".into(), "-c".into(), PROBE_PATHS.into()],
    );
    spec.limits.wall_time = Duration::from_secs(120);
    let spec = spec.validate(&LimitBounds::default()).expect("valid spec");
    let r = launcher.run(&spec, &mut |_| {}, None);
    assert_eq!(r.verdict, Verdict::OK, "{r:?}");
    let out = String::from_utf8_lossy(&r.stdout.bytes);
    assert_no_host_path("a prepared cell", &out, &host_paths);
    // What the cell sees instead: an overlay whose layers are the cell's own descriptors.
    assert!(
        out.lines()
            .any(|l| l.contains(" / / ") && l.contains("lowerdir=/proc/self/fd/")),
        "{out}"
    );
}

// ---- Per-cell identity (issue #14 item 5): every running cell's program has a host uid of
// its own, and still sees 65534 (or --uid) inside.

/// The default range (`sandbox::identity`): 2000000000..2000004096.
const UID_BASE: u32 = 2_000_000_000;
const UID_COUNT: u32 = 4096;

/// Per-cell uids need user namespaces the program can create; skip loudly where not.
fn require_per_cell_uid() -> bool {
    let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    common::require(
        Path::new("/proc/self/ns/user").exists() && max != Some(0),
        "this host has no usable user namespaces (per-cell uid is degraded)",
    )
}

/// The host uid in a `/proc/self/uid_map` line `VISIBLE HOST 1` for `visible`.
fn mapped_host_uid(uid_map: &str, visible: u32) -> u32 {
    let fields: Vec<u32> = uid_map
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    assert_eq!(fields.len(), 3, "one mapping expected: {uid_map:?}");
    assert_eq!((fields[0], fields[2]), (visible, 1), "{uid_map:?}");
    fields[1]
}

fn in_default_range(uid: u32) -> bool {
    (UID_BASE..UID_BASE + UID_COUNT).contains(&uid)
}

/// The real uid of a host process, from /proc/PID/status.
fn host_uid_of(pid: &str) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

const PROBE_IDENTITY: &str = r#"id -u; id -g; grep -E '^(Uid|Gid):' /proc/self/status | tr -s '\t ' ' '
cat /proc/self/uid_map
if unshare -U true 2>/dev/null; then echo userns=allowed; else echo userns=refused; fi
echo w > /work/mine && echo work=writable"#;

#[test]
fn the_program_sees_its_stable_uid_and_runs_as_its_own_host_uid() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    if !require_per_cell_uid() {
        return;
    }
    for (extra, visible) in [
        (&[][..], 65534u32),
        (&["--uid", "1234", "--gid", "4321"][..], 1234),
    ] {
        let json = cli(&rootfs, extra, PROBE_IDENTITY, "");
        assert_eq!(json["verdict"], "OK", "{json}");
        let out = json["stdout"].as_str().unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let gid = if visible == 65534 { 65534 } else { 4321 };
        assert_eq!(lines[0], visible.to_string(), "{out}");
        assert_eq!(lines[1], gid.to_string(), "{out}");
        assert_eq!(
            lines[2],
            format!("Uid: {visible} {visible} {visible} {visible}")
        );
        assert_eq!(lines[3], format!("Gid: {gid} {gid} {gid} {gid}"));
        let host = mapped_host_uid(lines[4], visible);
        assert!(in_default_range(host), "host uid {host}: {out}");
        // The default seccomp policy still refuses namespaces to the program.
        assert!(out.contains("userns=refused"), "{out}");
        assert!(out.contains("work=writable"), "{out}");
    }
}

/// Starts a CLI cell running `script` with `marker` on its command line (a thread).
fn cell_in_background(
    rootfs: &Path,
    extra: Vec<String>,
    script: &'static str,
    marker: String,
) -> std::thread::JoinHandle<serde_json::Value> {
    let rootfs = rootfs.to_path_buf();
    std::thread::spawn(move || {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let args: Vec<&str> = BUDGET.iter().copied().chain(extra).collect();
        common::run_json(&rootfs, &args, &["/bin/sh", "-c", script, &marker]).0
    })
}

#[test]
fn concurrent_cells_run_as_different_host_uids() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    if !require_per_cell_uid() {
        return;
    }
    let marker = format!("uid-marker-{}", std::process::id());
    // Each cell prints its map, then becomes a shell named `<marker>-running` (so the test
    // finds it only once the map is out) that waits until the test has seen both programs
    // from the host and kills them (`sleep` is not its last command, so the shell stays).
    let script = "cat /proc/self/uid_map; exec sh -c 'sleep 60; true' \"$0-running\"";
    let cells: Vec<_> = (0..2)
        .map(|_| cell_in_background(&rootfs, vec![], script, marker.clone()))
        .collect();
    // From the host: the programs (not the root-owned sandcell processes) and their uids.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut uids: Vec<u32>;
    loop {
        uids = common::host_processes_with(&format!("{marker}-running"))
            .iter()
            .filter_map(|pid| host_uid_of(pid))
            .filter(|&uid| uid != 0)
            .collect();
        uids.sort_unstable();
        // A forked shell child shows its parent's command line until it execs.
        uids.dedup();
        if uids.len() >= 2 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pids = common::host_processes_with(&format!("{marker}-running"));
    let results: Vec<serde_json::Value> = {
        // End the cells: kill their programs from the host (they are not our children).
        for pid in &pids {
            if host_uid_of(pid).is_some_and(|u| u != 0) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid.parse().unwrap()),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        cells.into_iter().map(|c| c.join().unwrap()).collect()
    };
    assert_eq!(uids.len(), 2, "programs seen from the host: {uids:?}");
    assert_ne!(
        uids[0], uids[1],
        "two running cells share host uid {}",
        uids[0]
    );
    assert!(uids.iter().all(|&u| in_default_range(u)), "{uids:?}");
    // Inside, each mapped 65534 to the uid the host saw.
    let mut inside: Vec<u32> = results
        .iter()
        .map(|j| mapped_host_uid(j["stdout"].as_str().unwrap().trim(), 65534))
        .collect();
    inside.sort_unstable();
    assert_eq!(inside, uids, "{results:?}");
}

#[test]
fn files_on_a_shared_writable_bind_belong_to_each_cell() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    if !require_per_cell_uid() {
        return;
    }
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let bind = vec![
        "--bind".to_string(),
        format!("{}:/work/shared:rw", shared.path().display()),
    ];
    // A writes its file and stays; B, running at the same time as the same visible uid,
    // may neither change nor remove it, and cannot signal A's program.
    let a = cell_in_background(
        &rootfs,
        bind.clone(),
        "echo a > /work/shared/a; i=0; while [ ! -e /work/shared/done ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done",
        "cell-a".into(),
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !shared.path().join("a").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let b = cell_in_background(
        &rootfs,
        bind,
        "id -u; (echo b >> /work/shared/a) 2>/dev/null && echo changed; rm -f /work/shared/a 2>/dev/null; [ -e /work/shared/a ] && echo kept; echo b > /work/shared/b; touch /work/shared/done",
        "cell-b".into(),
    )
    .join()
    .unwrap();
    let a = a.join().unwrap();
    assert_eq!(a["verdict"], "OK", "{a}");
    assert_eq!(b["verdict"], "OK", "{b}");
    assert_eq!(b["stdout"], "65534\nkept\n", "{b}");
    assert_eq!(
        std::fs::read_to_string(shared.path().join("a")).unwrap(),
        "a\n"
    );
    use std::os::unix::fs::MetadataExt;
    let owner = |f: &str| std::fs::metadata(shared.path().join(f)).unwrap().uid();
    assert!(in_default_range(owner("a")), "{}", owner("a"));
    assert!(in_default_range(owner("b")), "{}", owner("b"));
    assert_ne!(owner("a"), owner("b"));
}

#[test]
fn host_uids_are_given_back_after_every_run() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    if !require_per_cell_uid() {
        return;
    }
    // A range of one uid, private to this test: every run needs the previous one's back.
    let range = sandcell::sandbox::UidRange {
        base: 1_900_000_000 + (std::process::id() % 1000) * 2,
        count: 1,
    };
    let spawner = Some(PathBuf::from(env!("CARGO_BIN_EXE_sandcell")));
    for (name, spawner) in [("in-process", None), ("prepared", spawner)] {
        // A thread each: after an in-process cell this thread's children get a new time
        // namespace, and older kernels (6.1 in the VM, not 6.18) refuse it new threads (the
        // janitor's) with EINVAL.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let launcher = Launcher::new(LauncherConfig {
                        uid_range: range,
                        warm_cells: usize::from(spawner.is_some()),
                        spawner,
                        ..LauncherConfig::default()
                    })
                    .unwrap();
                    for i in 0..20 {
                        let mut spec = RunSpec::new(
                            &rootfs,
                            vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "cat /proc/self/uid_map; cat /work/in.txt >> /work/out.txt && id -u".into(),
                ],
                        );
                        spec.files.push(sandcell::spec::FileSpec {
                            path: "in.txt".into(),
                            content: b"x".to_vec(),
                            mode: None,
                        });
                        let spec = spec.validate(&LimitBounds::default()).unwrap();
                        let r = launcher.run(&spec, &mut |_| {}, None);
                        assert_eq!(r.verdict, Verdict::OK, "{name} run {i}: {r:?}");
                        let out = String::from_utf8_lossy(&r.stdout.bytes).into_owned();
                        let mut lines = out.lines();
                        assert_eq!(mapped_host_uid(lines.next().unwrap(), 65534), range.base);
                        assert_eq!(lines.next(), Some("65534"), "{out}");
                    }
                })
                .join()
                .unwrap()
        });
    }
    // No slot is held once the launchers are gone.
    let slot = Path::new("/run/sandcell/uid-slots").join(range.base.to_string());
    let file = std::fs::File::open(&slot).unwrap();
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .expect("the slot is free");
    let _ = std::fs::remove_file(&slot);
}
