//! Real cgroup cells as root: on this hybrid host (v1) and in the vm-run guest (pure v2).
//! Processes are put into a cell either by the parent (`attach`) or by writing "0" to the
//! cell's cgroup.procs themselves, as the launcher's child does.

mod common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use sandcell::sandbox::cgroup::{CellCgroup, CgroupHost, CgroupLimits, CgroupMode};

/// Tests that create cells hold it shared; the leftover test holds it exclusively so it can
/// check that no cell of this process remains.
static CELLS: RwLock<()> = RwLock::new(());

fn host() -> Option<CgroupHost> {
    if !common::require_root() {
        return None;
    }
    // The first detection may move this process into `<own>/sandcell-supervisor` (v2, own
    // cgroup not the root): let it finish before any test spawns children, as a daemon does.
    static FIRST: OnceLock<()> = OnceLock::new();
    FIRST.get_or_init(|| drop(CgroupHost::detect().expect("detect cgroups")));
    let host = CgroupHost::detect().expect("detect cgroups");
    assert!(host.problems().is_empty(), "{:?}", host.problems());
    Some(host)
}

/// Starts `cmd` stopped on its stdin, attaches it to `cell`, then lets it run.
fn spawn_in(cell: &CellCgroup, cmd: &[&str]) -> Child {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("read _ && exec \"$@\"")
        .arg("sh")
        .args(cmd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    cell.attach(child.id()).expect("attach to cell");
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    child
}

fn run_in(cell: &CellCgroup, cmd: &[&str]) -> Output {
    spawn_in(cell, cmd).wait_with_output().expect("wait")
}

fn procs(cell: &CellCgroup) -> Vec<i32> {
    let mut pids: Vec<i32> = cell
        .dirs()
        .iter()
        .flat_map(|d| {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .map(|l| l.parse().unwrap())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Polls `cond` for up to 60 s (TCG in the guest is slow); no timing is asserted.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// A pid is gone or a zombie (the vm-run guest's PID 1 does not reap orphans).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn limits(memory: Option<u64>, pids: Option<u64>, cpus: Option<f64>) -> CgroupLimits {
    CgroupLimits { memory, pids, cpus }
}

#[test]
fn detects_the_expected_mode_and_never_uses_process_api_itself() {
    let Some(host) = host() else { return };
    if std::env::var("VM_RUN").is_ok_and(|v| v == "1") {
        assert_eq!(host.mode(), CgroupMode::V2);
        assert!(host.features().clone_into_cgroup);
    }
    let self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let json = host.describe();
    eprintln!("{}", serde_json::to_string_pretty(&json).unwrap());
    for dir in host.cells_dirs() {
        assert!(dir.ends_with("sandcell"), "{dir:?}");
        assert!(dir.is_dir());
    }
    // Our own memory cgroup (process_api/<id> on this host) is an ancestor, never a cell dir.
    if let Some(line) = self_cgroup.lines().find(|l| l.contains(":memory:")) {
        let own = line.splitn(3, ':').nth(2).unwrap().trim_start_matches('/');
        let mem_cells: Vec<PathBuf> = host
            .cells_dirs()
            .into_iter()
            .filter(|d| d.starts_with("/sys/fs/cgroup/memory"))
            .collect();
        assert_eq!(mem_cells.len(), 1);
        let own_dir = Path::new("/sys/fs/cgroup/memory").join(own);
        assert_eq!(mem_cells[0], own_dir.join("sandcell"));
    }
    for c in ["memory", "pids", "cpu", "cpuacct", "kill"] {
        assert!(host.controllers().contains(&c), "{c} missing: {json}");
    }
    assert!(host
        .unenforceable(&limits(Some(1 << 26), Some(8), Some(1.0)), true)
        .is_empty());
}

#[test]
fn memory_limit_ends_in_an_oom_kill() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let cell = host
        .create_cell(&limits(Some(64 << 20), Some(64), None))
        .unwrap();
    assert_eq!(cell.oom_kills(), 0);
    // dd reads 200 MiB of zeros into one buffer: every page is touched.
    let out = run_in(
        &cell,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"],
    );
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
    assert!(cell.oom_kills() >= 1, "oom_kills {}", cell.oom_kills());
    if host.features().memory_peak {
        let peak = cell.memory_peak().expect("memory peak");
        assert!((32 << 20..=65 << 20).contains(&peak), "peak {peak}");
    }
    cell.remove().unwrap();
}

#[test]
fn a_run_within_the_limit_has_no_oom_kill() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let cell = host
        .create_cell(&limits(Some(64 << 20), Some(64), None))
        .unwrap();
    let out = run_in(
        &cell,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=8M", "count=1"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(cell.oom_kills(), 0);
    if let Some(peak) = cell.memory_peak() {
        assert!(peak >= 8 << 20, "peak {peak}");
    }
    cell.remove().unwrap();
}

#[test]
fn pids_limit_makes_forks_fail() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let cell = host.create_cell(&limits(None, Some(8), None)).unwrap();
    // dash exits with "Cannot fork" at the first failed fork; the sleeps stay behind.
    let script = "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
                  sleep 600 >/dev/null 2>&1 & done; echo all forks worked";
    let out = run_in(&cell, &["sh", "-c", script]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains("fork"), "stderr: {stderr}");
    let left = procs(&cell).len();
    assert!((1..=7).contains(&left), "{left} sleepers with pids.max 8");
    cell.kill_all().unwrap();
    assert!(procs(&cell).is_empty());
    cell.remove().unwrap();
}

#[test]
fn cpu_usage_grows_and_kill_all_takes_double_forked_sleepers() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let cell = host
        .create_cell(&limits(None, Some(64), Some(1.0)))
        .unwrap();
    assert!(cell.cpu_usage().unwrap() < Duration::from_millis(50));
    // A double-forked sleeper (orphaned, reparented away from us) plus a busy loop.
    let mut child = spawn_in(&cell, &["sh", "-c", "(sleep 1000 &); while :; do :; done"]);
    assert!(eventually(
        || cell.cpu_usage().unwrap() >= Duration::from_millis(100)
    ));
    assert!(eventually(|| procs(&cell).len() >= 2));
    let before = procs(&cell);
    cell.kill_all().unwrap();
    assert!(procs(&cell).is_empty());
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    for pid in before {
        assert!(eventually(|| dead(pid)), "pid {pid} survived kill_all");
    }
    let dirs: Vec<PathBuf> = cell.dirs().iter().map(|d| d.to_path_buf()).collect();
    cell.remove().unwrap();
    for d in dirs {
        assert!(!d.exists(), "{d:?} left behind");
    }
}

#[test]
fn the_child_joins_by_writing_zero_to_the_join_files() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let cell = host
        .create_cell(&limits(Some(64 << 20), Some(16), None))
        .unwrap();
    assert_eq!(cell.join_fds().len(), cell.dirs().len());
    assert_eq!(
        cell.clone_into_fd().is_some(),
        host.mode() == CgroupMode::V2
    );
    let script: String = cell
        .dirs()
        .iter()
        .map(|d| format!("echo 0 > {}/cgroup.procs && ", d.display()))
        .collect::<String>()
        + "cat /proc/self/cgroup";
    let out = Command::new("sh").arg("-c").arg(&script).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let joined = text
        .lines()
        .filter(|l| l.ends_with(&format!("/sandcell/{}", cell.name())))
        .count();
    assert_eq!(joined, cell.dirs().len(), "{text}");
    cell.remove().unwrap();
}

/// The cells directory of the hierarchy that holds `controller` and none of the controllers
/// a cell always needs (v1 `cpu` when mounted alone), if the host has one.
fn lone_hierarchy_cells_dir(host: &CgroupHost, controller: &str) -> Option<PathBuf> {
    let json = host.describe();
    json["hierarchies"].as_array()?.iter().find_map(|h| {
        let controllers: Vec<&str> = h["controllers"]
            .as_array()?
            .iter()
            .filter_map(|c| c.as_str())
            .collect();
        let dir = h["cells_dir"].as_str()?;
        (controllers == [controller]).then(|| PathBuf::from(dir))
    })
}

#[test]
fn a_run_cell_has_only_the_hierarchies_its_limits_use() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let lone_cpu = lone_hierarchy_cells_dir(&host, "cpu");
    if host.mode() == CgroupMode::V1 {
        assert!(
            lone_cpu.is_some(),
            "this v1 host mounts cpu alone: {}",
            host.describe()
        );
    }
    let in_cpu = |cell: &CellCgroup| {
        lone_cpu.as_ref().is_some_and(|cpu| {
            cell.dirs()
                .iter()
                .any(|d| d.parent() == Some(cpu.as_path()))
        })
    };

    // Without a cpus limit: no `cpu` directory; the run's usage is still measured.
    let mut cell = host
        .create_run_cell(&limits(Some(64 << 20), Some(16), None))
        .unwrap();
    assert!(!in_cpu(&cell), "{:?}", cell.dirs());
    let out = run_in(
        &cell,
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
        ],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(cell.cpu_usage().is_some_and(|t| t > Duration::ZERO));
    assert!(cell.memory_peak().is_some_and(|b| b > 0));
    // It cannot be given a cpus limit later: it has nowhere to write it.
    let refused = cell.activate(&limits(None, None, Some(0.5)));
    if lone_cpu.is_some() {
        let e = refused.expect_err("a fixed cell without a cpu directory took a cpus limit");
        assert!(e.to_string().contains("fixed limits"), "{e}");
    } else {
        refused.unwrap();
    }
    let dirs: Vec<PathBuf> = cell.dirs().iter().map(|d| d.to_path_buf()).collect();
    cell.remove().unwrap();
    for d in dirs {
        assert!(!d.exists(), "{d:?} left behind");
    }

    // With one: the quota is written where the kernel enforces it.
    let cell = host
        .create_run_cell(&limits(None, None, Some(0.5)))
        .unwrap();
    if lone_cpu.is_some() {
        assert!(in_cpu(&cell), "{:?}", cell.dirs());
        assert_eq!(cell_file(&cell, "cpu.cfs_quota_us"), "50000");
    } else {
        assert_eq!(cell_file(&cell, "cpu.max"), "50000 100000");
    }
    cell.remove().unwrap();
}

#[test]
fn drop_after_a_panic_kills_and_removes_the_cell() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            let cell = host.create_cell(&limits(None, Some(16), None)).unwrap();
            let child = spawn_in(&cell, &["sleep", "1000"]);
            let dirs: Vec<PathBuf> = cell.dirs().iter().map(|d| d.to_path_buf()).collect();
            tx.send((dirs, child)).unwrap();
            panic!("supervisor path panics while holding the cell");
        })
        .join()
    });
    assert!(result.is_err());
    let (dirs, mut child) = rx.recv().unwrap();
    for d in dirs {
        assert!(!d.exists(), "{d:?} left behind");
    }
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn stale_cells_of_a_dead_creator_are_cleaned() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    // A pid that surely is dead: a child we started and reaped.
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let name = format!("{}-0-5ca1ab1e", gone.id());
    let mut sleeper = Command::new("sleep").arg("1000").spawn().unwrap();
    for cells in host.cells_dirs() {
        let dir = cells.join(&name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("cgroup.procs"), sleeper.id().to_string()).unwrap();
    }
    assert!(host.cleanup_stale() >= 1);
    for cells in host.cells_dirs() {
        assert!(!cells.join(&name).exists());
    }
    assert_eq!(sleeper.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[test]
fn pooled_cells_are_reset_between_runs() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let host = host.with_pool(1);
    let cell = host
        .create_cell(&limits(Some(32 << 20), Some(8), None))
        .unwrap();
    let name = cell.name().to_string();
    let out = run_in(
        &cell,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"],
    );
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    assert!(cell.oom_kills() >= 1, "oom_kills {}", cell.oom_kills());
    cell.remove().unwrap();

    let again = host
        .create_cell(&limits(Some(128 << 20), None, None))
        .unwrap();
    if host.mode() == CgroupMode::V1 {
        assert_eq!(again.name(), name, "v1 reuses the parked cell");
    }
    assert_eq!(again.oom_kills(), 0);
    assert!(again.cpu_usage().unwrap() < Duration::from_millis(50));
    // The new, larger limit is in force: 64 MiB fits now.
    let out = run_in(
        &again,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(again.oom_kills(), 0);
    if let Some(peak) = again.memory_peak() {
        assert!((64 << 20..128 << 20).contains(&peak), "peak {peak}");
    }
    let dirs: Vec<PathBuf> = again.dirs().iter().map(|d| d.to_path_buf()).collect();
    again.remove().unwrap();
    drop(host);
    for d in dirs {
        assert!(!d.exists(), "{d:?} left behind after the host was dropped");
    }
}

#[test]
fn fifty_cycles_leave_no_cell_behind() {
    let Some(host) = host() else { return };
    let _g = CELLS.write().unwrap();
    for i in 0..50 {
        let cell = host
            .create_cell(&limits(Some(64 << 20), Some(32), Some(0.5)))
            .unwrap();
        if i % 10 == 0 {
            let out = run_in(&cell, &["true"]);
            assert!(out.status.success());
        }
        cell.remove().unwrap();
    }
    let prefix = format!("{}-", std::process::id());
    for cells in host.cells_dirs() {
        let left: Vec<String> = std::fs::read_dir(&cells)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        assert!(left.is_empty(), "{cells:?} still has {left:?}");
    }
}

#[test]
fn a_cell_outliving_its_pooled_host_is_removed_not_parked() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let host = host.with_pool(2);
    let cell = host
        .create_cell(&limits(Some(64 << 20), None, None))
        .unwrap();
    let dirs: Vec<PathBuf> = cell.dirs().iter().map(|d| d.to_path_buf()).collect();
    drop(host);
    cell.remove().unwrap();
    for d in dirs {
        assert!(!d.exists(), "{d:?} left behind");
    }
}

/// A shell living in a cell like a pre-started cell's PID 1: it runs each command line it is
/// sent and answers with the line's exit status.
struct Resident {
    child: Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Resident {
    /// Starts the shell and moves it into `cell` (it waits for its first line meanwhile).
    fn start(cell: &CellCgroup) -> Resident {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("while read -r line; do eval \"$line\"; echo \"rc=$?\"; done")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh");
        cell.attach(child.id()).expect("attach to cell");
        Resident {
            stdin: child.stdin.take().unwrap(),
            stdout: std::io::BufReader::new(child.stdout.take().unwrap()),
            child,
        }
    }

    /// Runs `line` in the shell: its exit status, or None if the shell died meanwhile.
    fn run(&mut self, line: &str) -> Option<i32> {
        use std::io::BufRead;
        writeln!(self.stdin, "{line}").ok()?;
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).ok()?;
        answer.trim().strip_prefix("rc=")?.parse().ok()
    }

    /// Burns CPU in the cell until `cell.cpu_usage()` reaches `at_least`.
    fn burn(&mut self, cell: &CellCgroup, at_least: Duration) {
        assert!(
            eventually(|| {
                let busy = "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done";
                assert_eq!(self.run(busy), Some(0));
                cell.cpu_usage().unwrap() >= at_least
            }),
            "cpu_usage stayed at {:?}",
            cell.cpu_usage()
        );
    }

    fn kill(mut self, cell: &CellCgroup) {
        cell.kill_all().unwrap();
        assert_eq!(self.child.wait().unwrap().signal(), Some(libc::SIGKILL));
    }
}

/// The text of `file` in whichever of the cell's directories has it.
fn cell_file(cell: &CellCgroup, file: &str) -> String {
    cell.dirs()
        .iter()
        .find_map(|d| std::fs::read_to_string(d.join(file)).ok())
        .unwrap_or_else(|| panic!("no {file} in {:?}", cell.dirs()))
        .trim()
        .to_string()
}

#[test]
fn activate_on_a_populated_cell_discounts_the_cpu_used_before() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let mut cell = host.create_cell(&CgroupLimits::default()).unwrap();
    let mut pid1 = Resident::start(&cell);
    pid1.burn(&cell, Duration::from_millis(150));
    cell.activate(&limits(Some(64 << 20), Some(16), Some(1.0)))
        .unwrap();
    let after = cell.cpu_usage().unwrap();
    assert!(
        after < Duration::from_millis(50),
        "cpu_usage {after:?} after activate"
    );
    assert_eq!(cell.oom_kills(), 0);
    // Accounting goes on from the activation.
    pid1.burn(&cell, Duration::from_millis(100));
    pid1.kill(&cell);
    cell.remove().unwrap();
}

#[test]
fn activate_restarts_the_peak_where_the_kernel_can() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    if !host.features().memory_peak {
        common::require(false, "the kernel reports no memory peak");
        return;
    }
    let resettable = host.mode() == CgroupMode::V1
        || host.describe()["memory_peak_resettable"] == serde_json::json!(true);
    let mut cell = host.create_cell(&CgroupLimits::default()).unwrap();
    let mut pid1 = Resident::start(&cell);
    // The warm setup touches 64 MiB before the request comes.
    let dd = "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null";
    assert_eq!(pid1.run(dd), Some(0));
    assert!(cell.memory_peak().unwrap() >= 64 << 20);
    cell.activate(&limits(Some(256 << 20), None, None)).unwrap();
    let peak = cell.memory_peak().unwrap();
    if resettable {
        assert!(peak < 16 << 20, "peak {peak} right after activate");
    } else {
        // v2 before 6.12: memory.peak cannot be reset; documented in `activate`.
        assert!(peak >= 64 << 20, "peak {peak}");
    }
    pid1.kill(&cell);
    cell.remove().unwrap();
}

#[test]
fn a_memory_limit_set_by_activate_on_a_populated_cell_is_enforced() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let mut cell = host
        .create_cell(&limits(Some(32 << 20), None, None))
        .unwrap();
    // An OOM kill before the activation (under the cell's first, smaller limit)...
    let out = run_in(
        &cell,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=100M", "count=1"],
    );
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
    assert!(cell.oom_kills() >= 1);
    let mut pid1 = Resident::start(&cell);
    cell.activate(&limits(Some(64 << 20), Some(64), None))
        .unwrap();
    // ...is not counted after it.
    assert_eq!(cell.oom_kills(), 0);
    // 48 MiB would not have fit the old limit; it fits the new one.
    let dd = |mib: u32| format!("dd if=/dev/zero of=/dev/null bs={mib}M count=1 2>/dev/null");
    assert_eq!(pid1.run(&dd(48)), Some(0));
    assert_eq!(cell.oom_kills(), 0);
    if let Some(peak) = cell.memory_peak() {
        assert!((48 << 20..=65 << 20).contains(&peak), "peak {peak}");
    }
    // 200 MiB does not: the OOM killer takes dd (v1) or the whole cell (v2, oom.group).
    let rc = pid1.run(&dd(200));
    assert!(matches!(rc, None | Some(137)), "dd 200M: {rc:?}");
    assert!(cell.oom_kills() >= 1, "oom_kills {}", cell.oom_kills());
    pid1.kill(&cell);
    cell.remove().unwrap();
}

#[test]
fn activate_after_a_limitless_create_writes_and_clears_every_limit() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let mut cell = host.create_cell(&CgroupLimits::default()).unwrap();
    let pid1 = Resident::start(&cell);
    cell.activate(&limits(Some(64 << 20), Some(16), Some(0.5)))
        .unwrap();
    let v1 = host.mode() == CgroupMode::V1;
    let expect = |file: &str, want: &str| assert_eq!(cell_file(&cell, file), want, "{file}");
    expect("pids.max", "16");
    if v1 {
        expect("memory.limit_in_bytes", &(64u64 << 20).to_string());
        expect("cpu.cfs_period_us", "100000");
        expect("cpu.cfs_quota_us", "50000");
    } else {
        expect("memory.max", &(64u64 << 20).to_string());
        expect("cpu.max", "50000 100000");
        expect("memory.oom.group", "1");
    }
    cell.activate(&CgroupLimits::default()).unwrap();
    let expect = |file: &str, want: &str| assert_eq!(cell_file(&cell, file), want, "{file}");
    expect("pids.max", "max");
    if v1 {
        let unlimited: u64 = cell_file(&cell, "memory.limit_in_bytes").parse().unwrap();
        assert!(unlimited > 1 << 60, "memory.limit_in_bytes {unlimited}");
        expect("cpu.cfs_quota_us", "-1");
    } else {
        expect("memory.max", "max");
        expect("cpu.max", "max 100000");
    }
    pid1.kill(&cell);
    cell.remove().unwrap();
}

/// A file written by a run stays in the page cache, charged to the run's cell, as long as
/// it exists. Removed on drop, also when the test fails.
struct PageCacheFile(PathBuf);

impl PageCacheFile {
    fn new(name: &str) -> PageCacheFile {
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("cgroup-cells-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        PageCacheFile(path)
    }
}

impl Drop for PageCacheFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_recycled_cell_reports_nothing_of_its_previous_run() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let host = host.with_pool(1);
    let cell = host
        .create_cell(&limits(Some(128 << 20), Some(64), None))
        .unwrap();
    let name = cell.name().to_string();
    // CPU, a 64 MiB peak, an OOM kill, and 256 KiB of page cache left behind.
    let cache = PageCacheFile::new("recycled");
    // The path goes in as "$1": the target dir may have spaces in its name.
    let script = "i=0; while [ $i -lt 50000 ]; do i=$((i+1)); done; \
         dd if=/dev/zero of=\"$1\" bs=256K count=1 2>/dev/null && \
         dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null";
    let path = cache.0.to_str().unwrap();
    assert!(run_in(&cell, &["sh", "-c", script, "sh", path])
        .status
        .success());
    let out = run_in(
        &cell,
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=200M", "count=1"],
    );
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{out:?}");
    assert!(cell.oom_kills() >= 1);
    assert!(cell.cpu_usage().unwrap() >= Duration::from_millis(10));
    if let Some(peak) = cell.memory_peak() {
        assert!(peak >= 64 << 20, "peak {peak}");
    }
    cell.remove().unwrap();

    let again = host
        .create_cell(&limits(Some(128 << 20), Some(64), None))
        .unwrap();
    if host.mode() == CgroupMode::V1 {
        assert_eq!(again.name(), name, "v1 reuses the parked cell");
    }
    assert_eq!(again.oom_kills(), 0);
    assert!(again.cpu_usage().unwrap() < Duration::from_millis(5));
    if let Some(peak) = again.memory_peak() {
        // Not the 64 MiB of before, nor the page cache: at most the kernel's per-CPU
        // precharge (64 pages a CPU on v1).
        assert!(peak < 4 << 20, "peak {peak} of a cell that ran nothing yet");
    }
    assert!(run_in(&again, &["true"]).status.success());
    if let Some(peak) = again.memory_peak() {
        assert!(peak < 8 << 20, "peak {peak} after /bin/true");
    }
    again.remove().unwrap();
    drop(cache);
}

#[test]
fn a_cell_left_holding_megabytes_is_replaced_not_reused() {
    let Some(host) = host() else { return };
    let _g = CELLS.read().unwrap();
    let host = host.with_pool(1);
    let cell = host
        .create_cell(&limits(Some(128 << 20), None, None))
        .unwrap();
    let name = cell.name().to_string();
    let cache = PageCacheFile::new("replaced");
    let write = "dd if=/dev/zero of=\"$1\" bs=1M count=8 2>/dev/null";
    let path = cache.0.to_str().unwrap();
    assert!(run_in(&cell, &["sh", "-c", write, "sh", path])
        .status
        .success());
    let dirs: Vec<PathBuf> = cell.dirs().iter().map(|d| d.to_path_buf()).collect();
    cell.remove().unwrap();
    if host.mode() == CgroupMode::V1 {
        for d in &dirs {
            assert!(!d.exists(), "{d:?} was parked with 8 MiB charged to it");
        }
    }
    let again = host
        .create_cell(&limits(Some(128 << 20), None, None))
        .unwrap();
    assert_ne!(again.name(), name);
    if let Some(peak) = again.memory_peak() {
        assert!(peak < 4 << 20, "peak {peak}");
    }
    again.remove().unwrap();
    drop(cache);
}
