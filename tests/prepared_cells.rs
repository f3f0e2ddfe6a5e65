//! Prepared cells (the daemon's and the grader's path): cloned by the spawner process, set up
//! ahead in a warm pool, sent their run, torn down by the janitor. Every run must still get
//! fresh namespaces and an empty writable layer, its own limits and usage, a named step when
//! setup fails, and nothing may be left behind when the launcher goes away.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sandcell::spec::{FileSpec, LimitBounds, Limits, RunSpec, StdinSource};
use sandcell::{CancelToken, Launcher, LauncherConfig, RunEvent, RunResult, Verdict};

fn launcher(warm_cells: usize) -> Launcher {
    Launcher::new(LauncherConfig {
        spawner: Some(PathBuf::from(env!("CARGO_BIN_EXE_sandcell"))),
        warm_cells,
        cgroup_pool: 2,
        ..LauncherConfig::default()
    })
    .expect("launcher with a spawner")
}

fn spec(rootfs: &Path, script: &str) -> RunSpec {
    let mut spec = RunSpec::new(rootfs, vec!["/bin/sh".into(), "-c".into(), script.into()]);
    spec.limits = Limits {
        wall_time: Duration::from_secs(10),
        ..Limits::default()
    };
    spec
}

/// One test at a time: the leak check must not see another test's cells.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(launcher: &Launcher, spec: RunSpec) -> RunResult {
    let spec = spec.validate(&LimitBounds::default()).expect("valid spec");
    launcher.run(&spec, &mut |_| {}, None)
}

fn stdout(r: &RunResult) -> String {
    String::from_utf8_lossy(&r.stdout.bytes).into_owned()
}

#[test]
fn warm_cells_give_every_run_fresh_namespaces_and_an_empty_layer() {
    let _serial = serial();
    let Some(rootfs) = common::setup() else {
        return;
    };
    let launcher = launcher(2);
    let script = "for n in net mnt pid; do readlink /proc/self/ns/$n; done; echo pid=$$; \
                  ls -A /tmp /work; touch /tmp/mark /work/mark; hostname";
    let host: Vec<String> = ["net", "mnt", "pid"]
        .iter()
        .map(|n| {
            std::fs::read_link(format!("/proc/self/ns/{n}"))
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    for i in 0..12 {
        let r = run(&launcher, spec(&rootfs, script));
        assert_eq!(r.verdict, Verdict::OK, "run {i}: {r:?}");
        let out = stdout(&r);
        let lines: Vec<&str> = out.lines().collect();
        // pid 2: a new pid namespace (a reused one would count on); empty /tmp and /work:
        // a new mount tree (inode numbers of namespaces are recycled, so they prove nothing
        // across runs; they must differ from the host's).
        assert_eq!(
            &lines[3..],
            ["pid=2", "/tmp:", "", "/work:", "sandcell"],
            "{out}"
        );
        for (ns, host) in lines[..3].iter().zip(&host) {
            assert_ne!(ns, host, "run {i} shares a namespace with the host");
        }
        assert!(
            r.cpu_time_ms < 2000,
            "CPU time of the setup leaked in: {r:?}"
        );
    }
}

#[test]
fn the_run_message_carries_files_stdin_env_cwd_and_identity() {
    let _serial = serial();
    let Some(rootfs) = common::setup() else {
        return;
    };
    let launcher = launcher(1);
    // Twice: the first run prepares the shape cold, the second takes a warm cell.
    for _ in 0..2 {
        let mut s = spec(
            &rootfs,
            "cat src/a.txt; wc -c < bin.dat; cat; echo \"$GREETING\"; pwd; id -u; \
             ls -l run.sh | cut -c1-10; ./run.sh",
        );
        s.cwd = Some("/work".into());
        s.env.push(("GREETING".into(), "hello there".into()));
        s.stdin = StdinSource::Bytes(b"from stdin\n".to_vec());
        let blob: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        for (path, content, mode) in [
            ("src/a.txt", b"file a\n".to_vec(), None),
            ("bin.dat", blob, None),
            (
                "run.sh",
                b"#!/bin/sh\necho script ran\n".to_vec(),
                Some(0o755),
            ),
        ] {
            s.files.push(FileSpec {
                path: path.into(),
                content,
                mode,
            });
        }
        let r = run(&launcher, s);
        assert_eq!(r.verdict, Verdict::OK, "{r:?}");
        assert_eq!(
            stdout(&r),
            "file a\n300000\nfrom stdin\nhello there\n/work\n65534\n-rwxr-xr-x\nscript ran\n"
        );
    }
}

#[test]
fn limits_and_verdicts_hold_in_warm_cells() {
    let _serial = serial();
    let Some(rootfs) = common::setup() else {
        return;
    };
    let launcher = launcher(2);
    let mut cases: Vec<(RunSpec, Verdict)> = Vec::new();
    // Doubles a string towards 1 GiB: touched heap, cheap in CPU even under emulation.
    let mut mem = spec(
        &rootfs,
        "awk 'BEGIN { s = \"x\"; for (i = 0; i < 30; i++) s = s s; print length(s) }'",
    );
    mem.limits.memory = Some(32 << 20);
    mem.limits.cpu_time = Some(Duration::from_secs(60));
    mem.limits.wall_time = Duration::from_secs(60);
    cases.push((mem, Verdict::MLE));
    let mut wall = spec(&rootfs, "sleep 5");
    wall.limits.wall_time = Duration::from_millis(300);
    cases.push((wall, Verdict::TO));
    let mut cpu = spec(&rootfs, "while :; do :; done");
    cpu.limits.cpu_time = Some(Duration::from_millis(300));
    cases.push((cpu, Verdict::TO));
    let mut out = spec(&rootfs, "yes");
    out.limits.output = 4096;
    cases.push((out, Verdict::OLE));
    let mut pids = spec(&rootfs, "for i in $(seq 20); do sleep 1 & done; wait");
    pids.limits.pids = Some(8);
    cases.push((pids, Verdict::RE));
    cases.push((spec(&rootfs, "exit 3"), Verdict::RE));
    cases.push((spec(&rootfs, "kill -SEGV $$"), Verdict::SG));
    // Each twice: cold, then from the warm pool of that shape.
    for (s, expected) in cases {
        for round in 0..2 {
            let r = run(&launcher, s.clone());
            assert_eq!(r.verdict, expected, "round {round} of {:?}: {r:?}", s.argv);
        }
    }
    // Limits are the run's own: the same shape without a pids limit may fork freely.
    let r = run(
        &launcher,
        spec(&rootfs, "for i in $(seq 20); do sleep 0.1 & done; wait"),
    );
    assert_eq!(r.verdict, Verdict::OK, "{r:?}");
}

#[test]
fn failing_steps_are_named_and_bad_images_refused() {
    let _serial = serial();
    let Some(rootfs) = common::setup() else {
        return;
    };
    let launcher = launcher(1);
    for _ in 0..2 {
        let r = run(
            &launcher,
            RunSpec::new(&rootfs, vec!["/bin/no-such-program".into()]),
        );
        assert_eq!(r.verdict, Verdict::XX);
        assert_eq!(
            r.message.as_deref(),
            Some("exec /bin/no-such-program: No such file or directory")
        );
        let mut s = RunSpec::new(&rootfs, vec!["/bin/true".into()]);
        s.cwd = Some("/nonexistent".into());
        let r = run(&launcher, s);
        assert_eq!(r.verdict, Verdict::XX);
        assert_eq!(
            r.message.as_deref(),
            Some("chdir /nonexistent: No such file or directory")
        );
    }
    let empty = tempfile::tempdir().unwrap();
    let r = run(
        &launcher,
        RunSpec::new(empty.path(), vec!["/bin/true".into()]),
    );
    assert_eq!(r.verdict, Verdict::XX);
    assert!(
        r.message
            .as_deref()
            .unwrap_or("")
            .contains("missing mount point /proc"),
        "{r:?}"
    );
}

#[test]
fn cancelling_a_warm_run_ends_it_at_once() {
    let _serial = serial();
    let Some(rootfs) = common::setup() else {
        return;
    };
    let launcher = Arc::new(launcher(1));
    assert_eq!(run(&launcher, spec(&rootfs, "true")).verdict, Verdict::OK);
    let token = CancelToken::new().unwrap();
    let s = spec(&rootfs, "echo started; sleep 8")
        .validate(&LimitBounds::default())
        .unwrap();
    // Cancelled once its first output arrived (no sleep: the v2 VM is slow and uneven).
    let canceller = token.clone();
    let mut on_event = |event: RunEvent<'_>| {
        if let RunEvent::Stdout(bytes) = event {
            if bytes.windows(7).any(|w| w == b"started") {
                canceller.cancel();
            }
        }
    };
    let r = launcher.run(&s, &mut on_event, Some(&token));
    assert_eq!(r.verdict, Verdict::CANCELLED, "{r:?}");
    assert_eq!(stdout(&r), "started\n");
    assert!(r.wall_time_ms < 5000, "{r:?}");
}

#[test]
fn concurrent_runs_then_shutdown_leave_nothing_behind() {
    let _serial = serial();
    let Some(rootfs) = common::setup() else {
        return;
    };
    let mounts_before = common::mount_count();
    let cells_before = common::cell_cgroups();
    let marker = format!("88.{}", std::process::id());
    {
        let launcher = Arc::new(launcher(2));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (launcher, rootfs, marker) = (launcher.clone(), rootfs.clone(), marker.clone());
                std::thread::spawn(move || {
                    for i in 0..10 {
                        let script = match (t + i) % 3 {
                            0 => format!("(sleep {marker} &); echo bg"),
                            1 => "echo plain".to_string(),
                            _ => "exit 1".to_string(),
                        };
                        let r = run(&launcher, spec(&rootfs, &script));
                        assert!(
                            matches!(r.verdict, Verdict::OK | Verdict::RE),
                            "thread {t} run {i}: {r:?}"
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Prepared cells of two shapes wait now; dropping the launcher must end them.
        let mut other = spec(&rootfs, "true");
        other.hostname = "other".into();
        assert_eq!(run(&launcher, other).verdict, Verdict::OK);
        std::thread::sleep(Duration::from_millis(300));
    }
    let leaked: Vec<_> = common::cell_cgroups()
        .into_iter()
        .filter(|p| !cells_before.contains(p))
        .collect();
    assert_eq!(leaked, Vec::<PathBuf>::new(), "cell cgroups left behind");
    assert_eq!(common::mount_count(), mounts_before, "mounts left behind");
    assert_eq!(
        common::host_processes_with(&format!("sleep\0{marker}")),
        Vec::<String>::new(),
        "background processes of cells left behind"
    );
    let children = common::children_of_this_process();
    assert_eq!(
        children,
        Vec::<(i32, String)>::new(),
        "spawner or cells still alive"
    );
}

#[test]
fn a_dead_spawner_is_replaced() {
    let _serial = serial();
    let Some(rootfs) = common::setup() else {
        return;
    };
    let launcher = launcher(0);
    assert_eq!(run(&launcher, spec(&rootfs, "true")).verdict, Verdict::OK);
    let spawners: Vec<(i32, String)> = common::children_of_this_process()
        .into_iter()
        .filter(|(pid, cmdline)| {
            cmdline.contains("__spawner") && common::in_our_pid_namespace(*pid)
        })
        .collect();
    // (The run's PID 1 may still be in teardown: the janitor reaps it after the answer.)
    assert_eq!(spawners.len(), 1, "one spawner process: {spawners:?}");
    let pid = spawners[0].0;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let r = run(&launcher, spec(&rootfs, "echo again"));
    assert_eq!(r.verdict, Verdict::OK, "{r:?}");
    assert_eq!(stdout(&r), "again\n");
}
