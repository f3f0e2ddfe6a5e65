//! Long-lived cells at the launcher: one cell, many execs. What one exec leaves (files,
//! background processes) the next one finds; time limits end an exec, not the cell; the
//! memory limit is the cell's; ending the cell leaves no process behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sandcell::spec::{LimitBounds, Limits, RunSpec};
use sandcell::{Launcher, LauncherConfig, LongLivedCell, RunResult, Verdict};

fn launcher() -> Launcher {
    Launcher::new(LauncherConfig {
        spawner: Some(PathBuf::from(env!("CARGO_BIN_EXE_sandcell"))),
        cgroup_pool: 0,
        ..LauncherConfig::default()
    })
    .expect("launcher with a spawner")
}

fn base(rootfs: &Path) -> RunSpec {
    let mut spec = RunSpec::new(rootfs, vec!["/bin/true".into()]);
    spec.limits = Limits {
        wall_time: Duration::from_secs(10),
        memory: Some(64 << 20),
        pids: Some(64),
        ..Limits::default()
    };
    spec
}

fn exec(launcher: &Launcher, cell: &mut LongLivedCell, base: &RunSpec, script: &str) -> RunResult {
    let mut spec = base.clone();
    spec.argv = vec!["/bin/sh".into(), "-c".into(), script.into()];
    let spec = spec.validate(&LimitBounds::default()).expect("valid spec");
    launcher.exec_in(cell, &spec, &mut |_| {}, None)
}

fn stdout(r: &RunResult) -> String {
    String::from_utf8_lossy(&r.stdout.bytes).into_owned()
}

fn create(launcher: &Launcher, spec: &RunSpec) -> LongLivedCell {
    let valid = spec.clone().validate(&LimitBounds::default()).unwrap();
    launcher
        .create_long_lived(&valid)
        .expect("a long-lived cell")
}

#[test]
fn files_and_background_processes_outlive_their_exec() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let launcher = launcher();
    let spec = base(&rootfs);
    let mut cell = create(&launcher, &spec);
    let r = exec(
        &launcher,
        &mut cell,
        &spec,
        "echo one > /tmp/a; echo $$ > /work/pid; echo done",
    );
    assert_eq!(r.verdict, Verdict::OK, "{r:?}");
    assert_eq!(stdout(&r), "done\n");
    // A background process started by one exec, with its output away from the exec's pipes.
    let r = exec(
        &launcher,
        &mut cell,
        &spec,
        "(i=0; while :; do i=$((i+1)); echo $i > /tmp/beat; sleep 0.05; done) </dev/null >/dev/null 2>&1 & echo started",
    );
    assert_eq!(r.verdict, Verdict::OK, "{r:?}");
    let r = exec(
        &launcher,
        &mut cell,
        &spec,
        "cat /tmp/a; a=$(cat /tmp/beat); sleep 0.3; b=$(cat /tmp/beat); [ \"$a\" != \"$b\" ] && echo alive",
    );
    assert_eq!(r.verdict, Verdict::OK, "{r:?}");
    assert_eq!(stdout(&r), "one\nalive\n");
    assert_eq!(cell.execs(), 3);
    let pid = cell.pid().unwrap();
    cell.end("test done");
    // PID 1 and with it the background loop are gone (the janitor reaps it).
    let gone = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(25));
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert!(gone, "PID 1 {pid} of the ended cell is still there");
}

#[test]
fn a_timed_out_exec_ends_but_the_cell_lives_on() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let launcher = launcher();
    let mut spec = base(&rootfs);
    let mut cell = create(&launcher, &spec);
    spec.limits.wall_time = Duration::from_secs(1);
    let r = exec(
        &launcher,
        &mut cell,
        &spec,
        "echo before; touch /tmp/kept; sleep 30",
    );
    assert_eq!(r.verdict, Verdict::TO, "{r:?}");
    assert_eq!(r.reason.as_deref(), Some("wall"));
    assert_eq!(stdout(&r), "before\n");
    assert_eq!(cell.ended(), None);
    let r = exec(&launcher, &mut cell, &spec, "ls /tmp/kept; exit 3");
    assert_eq!(r.verdict, Verdict::RE, "{r:?}");
    assert_eq!(r.exit_code, Some(3));
    assert_eq!(stdout(&r), "/tmp/kept\n");
    // CPU time is each exec's own.
    spec.limits.cpu_time = Some(Duration::from_millis(300));
    spec.limits.wall_time = Duration::from_secs(20);
    let r = exec(&launcher, &mut cell, &spec, "while :; do :; done");
    assert_eq!(r.verdict, Verdict::TO, "{r:?}");
    assert_eq!(r.reason.as_deref(), Some("cpu"));
    let r = exec(&launcher, &mut cell, &spec, "echo still here");
    assert_eq!(r.verdict, Verdict::OK, "{r:?}");
    assert!(r.cpu_time_ms < 300, "{r:?}");
}

#[test]
fn running_out_of_memory_ends_the_cell() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let launcher = launcher();
    let mut spec = base(&rootfs);
    // No CPU limit: under emulation (the cgroup v2 VM) writing 64 MiB takes seconds.
    spec.limits.cpu_time = None;
    spec.limits.wall_time = Duration::from_secs(120);
    let mut cell = create(&launcher, &spec);
    let r = exec(&launcher, &mut cell, &spec, "echo ok");
    assert_eq!(r.verdict, Verdict::OK, "{r:?}");
    // A string doubled to 1 GiB: touched heap memory, far past the cell's 64 MiB, and cheap
    // in CPU even under emulation (filling tmpfs instead can thrash the page cache there
    // for minutes before the OOM killer acts).
    let r = exec(
        &launcher,
        &mut cell,
        &spec,
        "awk 'BEGIN { s = \"x\"; for (i = 0; i < 30; i++) s = s s; print length(s) }'",
    );
    assert_eq!(r.verdict, Verdict::MLE, "{r:?}");
    assert!(cell.ended().is_some());
    let r = exec(&launcher, &mut cell, &spec, "echo after");
    assert_eq!(r.verdict, Verdict::XX, "{r:?}");
    assert!(r.message.unwrap_or_default().contains("ended"));
}
