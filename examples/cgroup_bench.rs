//! What recycling a cell cgroup costs on this host (root):
//!
//!   cargo run --release --example cgroup_bench [-- ROUNDS [BLOCK]]
//!
//! 1. **What a finished cell keeps charged**: the memory counters of a cell after `/bin/true`
//!    ran in it: a process attached by the parent, and (with the test rootfs) a real
//!    `Launcher::run` whose cell is then parked in the launcher's pool.
//! 2. **Per-cell cost of the cgroup layer**, each cell running one attached `/bin/true`:
//!    (a) pool: park + `memory.force_empty` + reissue (what the pool did before),
//!    (b) pool: park + reissue, (c) no pool: mkdir + rmdir of every hierarchy.
//!    The variants alternate in blocks of BLOCK cells for ROUNDS rounds, so the noise of this
//!    shared machine hits all alike. Per variant: the median wall and thread-CPU time of
//!    create_cell + remove (+ force_empty), and the CPU time of the whole machine per cell
//!    (from cpuidle: includes kworkers and RCU callbacks the calls leave behind, and the
//!    `/bin/true` run, which is the same for all three).
//! 3. **End to end** (with the test rootfs): `Launcher::run` of `/bin/true` with the default
//!    limits, (a) pooled + force_empty of the parked cell, (b) pooled, (c) no pool.
//! 4. **One cgroupfs file op**: open+write+close vs pwrite on a kept fd, and the same for a
//!    read (why the counter files stay open, see `src/sandbox/cgroup/counters.rs`).
//!
//! (a) and (b) need v1 (the pool is a no-op on v2).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use sandcell::sandbox::cgroup::{CellCgroup, CgroupHost, CgroupLimits, CgroupMode};
use sandcell::spec::{LimitBounds, Limits, RunSpec, SeccompChoice, ValidatedSpec};
use sandcell::{Launcher, LauncherConfig, Verdict};

const LIMITS: CgroupLimits = CgroupLimits {
    memory: Some(256 << 20),
    pids: Some(64),
    cpus: Some(1.0),
};

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Idle time of all CPUs, in µs (cpuidle; /proc/stat ticks where cpuidle is missing).
fn idle_us() -> u64 {
    let mut total = 0;
    let mut found = false;
    for cpu in std::fs::read_dir("/sys/devices/system/cpu")
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(states) = std::fs::read_dir(cpu.path().join("cpuidle")) else {
            continue;
        };
        for state in states.flatten() {
            if let Ok(t) = std::fs::read_to_string(state.path().join("time")) {
                total += t.trim().parse::<u64>().unwrap_or(0);
                found = true;
            }
        }
    }
    if found {
        return total;
    }
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    (fields.get(3).unwrap_or(&0) + fields.get(4).unwrap_or(&0)) * 10_000
}

fn cpus() -> u64 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u64)
}

/// Machine-wide busy CPU time while `f` runs.
fn machine_cpu(f: impl FnOnce()) -> Duration {
    let (idle0, t0) = (idle_us(), Instant::now());
    f();
    let (idle1, wall) = (idle_us(), t0.elapsed());
    let busy = (wall.as_micros() as u64 * cpus()).saturating_sub(idle1.saturating_sub(idle0));
    Duration::from_micros(busy)
}

/// The first field of a schedstat file: ns on a CPU.
fn schedstat_ns(text: &str) -> u64 {
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// CPU time of this process (its only busy thread makes the calls). RUSAGE_SELF adds the
/// running thread's pending time; RUSAGE_THREAD and schedstat lag by up to a tick.
fn thread_cpu() -> Duration {
    let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    tv(u.user_time()) + tv(u.system_time())
}

fn tv(t: nix::sys::time::TimeVal) -> Duration {
    Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
}

/// CPU time of this process and its reaped children (the attached shells).
fn process_cpu() -> Duration {
    [UsageWho::RUSAGE_SELF, UsageWho::RUSAGE_CHILDREN]
        .into_iter()
        .map(|who| getrusage(who).expect("getrusage"))
        .map(|u| tv(u.user_time()) + tv(u.system_time()))
        .sum()
}

/// CPU time of all kernel threads (kworkers, RCU, ksoftirqd): where work that cgroup calls
/// defer (css release, LRU drains, RCU callbacks) runs. Other tenants' kernel work is in it
/// too, but far less of it than in the machine-wide figure.
fn kthreads_cpu() -> Duration {
    let mut ns = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let path = entry.path();
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: kthreadd is 2, kernel threads are its children.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .unwrap_or("");
        if ppid == "2" || entry.file_name() == "2" {
            ns +=
                schedstat_ns(&std::fs::read_to_string(path.join("schedstat")).unwrap_or_default());
        }
    }
    Duration::from_nanos(ns)
}

/// CPU time used while `f` runs: (this process + children, kernel threads, whole machine).
fn block_cpu(f: impl FnOnce()) -> (Duration, Duration, Duration) {
    let (p0, k0) = (process_cpu(), kthreads_cpu());
    let machine = machine_cpu(f);
    (
        process_cpu() - p0,
        kthreads_cpu().saturating_sub(k0),
        machine,
    )
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn us(d: Duration) -> String {
    format!("{:.0} µs", d.as_secs_f64() * 1e6)
}

/// The cell's memory directory (v1: the memory hierarchy's, v2: the only one).
fn memory_dir(dirs: &[&Path]) -> Option<PathBuf> {
    dirs.iter()
        .find(|d| d.join("memory.stat").exists())
        .map(|d| d.to_path_buf())
}

/// Runs `/bin/true` in the cell: a shell waits for the parent to attach it, then execs.
fn run_true_in(cell: &CellCgroup) {
    let mut child = Command::new("/bin/sh")
        .args(["-c", "read _ && exec /bin/true"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    cell.attach(child.id()).expect("attach");
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.wait().unwrap().success());
}

/// usage, kmem and the non-zero local counters of memory.stat of a cell's memory dir.
fn charged(dir: &Path) -> String {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    let usage = ["memory.usage_in_bytes", "memory.current"]
        .iter()
        .map(|f| read(f))
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    let kmem = read("memory.kmem.usage_in_bytes");
    let lru_pages = read("memory.numa_stat").lines().find_map(|l| {
        l.strip_prefix("total=")?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
    });
    let stat: Vec<String> = read("memory.stat")
        .lines()
        .filter(|l| !l.starts_with("total_") && !l.ends_with(" 0"))
        .filter(|l| {
            let k = l.split_whitespace().next().unwrap_or("");
            !k.starts_with("hierarchical_") && !k.starts_with("pg") && !k.starts_with("work")
        })
        .map(str::to_string)
        .collect();
    format!(
        "usage {} B{}; memory.stat: {}",
        usage.trim(),
        match lru_pages {
            Some(p) => format!(" (LRU {} B, kmem {} B)", p * 4096, kmem.trim()),
            None => String::new(),
        },
        if stat.is_empty() {
            "all 0".to_string()
        } else {
            stat.join(", ")
        }
    )
}

/// What of a finished cell's charge goes away by itself (deferred frees) and what
/// force_empty reclaims.
fn settle(dir: &Path) {
    std::thread::sleep(Duration::from_secs(2));
    println!("   2 s later:                        {}", charged(dir));
    if dir.join("memory.force_empty").exists() {
        force_empty(dir);
        println!("   after memory.force_empty:         {}", charged(dir));
    }
}

fn test_rootfs() -> Option<PathBuf> {
    let path = std::env::var_os("SANDCELL_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".test-rootfs/busybox"));
    path.join("bin/busybox").exists().then_some(path)
}

fn true_spec(rootfs: &Path) -> ValidatedSpec {
    let mut s = RunSpec::new(rootfs.to_path_buf(), vec!["/bin/true".into()]);
    s.limits = Limits::default();
    s.seccomp = SeccompChoice::Default;
    s.validate(&LimitBounds::default()).expect("valid spec")
}

/// The one parked cell of `launcher` (pool size 1) in the memory hierarchy, if any.
fn parked_memory_dir(launcher: &Launcher) -> Option<PathBuf> {
    let prefix = format!("{}-", std::process::id());
    let host = launcher.cgroups()?;
    host.cells_dirs().into_iter().find_map(|cells| {
        std::fs::read_dir(&cells)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
                    && p.join("memory.force_empty").exists()
            })
    })
}

fn what_is_charged(host: &CgroupHost, rootfs: Option<&Path>) {
    println!("\n1. what a finished cell keeps charged");
    let cell = host.create_cell(&LIMITS).expect("create cell");
    let dir = memory_dir(&cell.dirs()).expect("memory dir");
    println!("   new cell:                         {}", charged(&dir));
    for i in 1..=3 {
        run_true_in(&cell);
        println!("   after attached /bin/true #{i}:      {}", charged(&dir));
    }
    settle(&dir);
    cell.remove().expect("remove");

    let Some(rootfs) = rootfs else {
        println!("   (no test rootfs: no Launcher::run)");
        return;
    };
    let launcher = Launcher::new(LauncherConfig {
        cgroup_pool: 1,
        ..LauncherConfig::default()
    })
    .expect("launcher");
    let spec = true_spec(rootfs);
    let mut last = None;
    let mut replaced = 0;
    for i in 1..=200 {
        let result = launcher.run(&spec, &mut |_| {}, None);
        assert_eq!(result.verdict, Verdict::OK, "{result:?}");
        let parked = parked_memory_dir(&launcher);
        if last.is_some() && parked != last {
            replaced += 1;
        }
        if [1, 2, 3, 10, 50, 200].contains(&i) {
            match &parked {
                Some(dir) => println!(
                    "   parked after Launcher::run #{i:<3}:   {}; reported peak {:?}",
                    charged(dir),
                    result.memory_peak_bytes
                ),
                None => println!(
                    "   after Launcher::run #{i}: no parked cell (v2, or not reusable); \
                     reported peak {:?}",
                    result.memory_peak_bytes
                ),
            }
        }
        last = parked;
    }
    println!("   the parked cell was replaced {replaced} times in 200 runs");
    if let Some(dir) = &last {
        settle(dir);
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    /// (a) pool: park + force_empty + reissue
    ForceEmpty,
    /// (b) pool: park + reissue
    Park,
    /// (c) no pool: mkdir + rmdir
    Fresh,
}

const VARIANTS: [(Variant, &str); 3] = [
    (Variant::ForceEmpty, "(a) park + force_empty + reissue"),
    (Variant::Park, "(b) park + reissue               "),
    (Variant::Fresh, "(c) mkdir + rmdir, no pool       "),
];

#[derive(Default)]
struct Samples {
    create: Vec<Duration>,
    remove: Vec<Duration>,
    wall: Vec<Duration>,
    thread: Vec<Duration>,
    /// Per cell, one per block: this process + children, kernel threads, the machine.
    process: Vec<Duration>,
    kthreads: Vec<Duration>,
    machine: Vec<Duration>,
}

impl Samples {
    fn add_block(
        &mut self,
        (process, kthreads, machine): (Duration, Duration, Duration),
        n: usize,
    ) {
        self.process.push(process / n as u32);
        self.kthreads.push(kthreads / n as u32);
        self.machine.push(machine / n as u32);
    }

    fn per_cell(self) -> String {
        format!(
            "{:>8} {:>8} {:>8}",
            us(median(self.process)),
            us(median(self.kthreads)),
            us(median(self.machine))
        )
    }
}

fn force_empty(dir: &Path) {
    // Exactly what Pool::park wrote before: "0", errors ignored.
    let _ = std::fs::write(dir.join("memory.force_empty"), "0");
}

fn cgroup_layer(rounds: usize, block: usize) {
    println!(
        "\n2. per-cell cost of the cgroup layer (each cell runs one attached /bin/true; \
         {rounds} rounds x {block} cells per variant)"
    );
    let fresh = CgroupHost::detect().expect("detect");
    if fresh.mode() != CgroupMode::V1 {
        println!("   v2: no pool, only (c)");
    }
    let pooled = CgroupHost::detect().expect("detect").with_pool(1);
    let variants: Vec<_> = VARIANTS
        .iter()
        .filter(|(v, _)| fresh.mode() == CgroupMode::V1 || *v == Variant::Fresh)
        .collect();
    let mut samples: Vec<Samples> = variants.iter().map(|_| Samples::default()).collect();
    for round in 0..=rounds {
        for ((variant, _), s) in variants.iter().zip(samples.iter_mut()) {
            let host = if *variant == Variant::Fresh {
                &fresh
            } else {
                &pooled
            };
            let mut wall = Vec::with_capacity(block);
            let mut thread = Vec::with_capacity(block);
            let mut create = Vec::with_capacity(block);
            let mut remove = Vec::with_capacity(block);
            let busy = block_cpu(|| {
                for _ in 0..block {
                    let (t0, c0) = (Instant::now(), thread_cpu());
                    let cell = host.create_cell(&LIMITS).expect("create cell");
                    let (t1, c1) = (Instant::now(), thread_cpu());
                    run_true_in(&cell);
                    let dir = memory_dir(&cell.dirs());
                    let (t2, c2) = (Instant::now(), thread_cpu());
                    cell.remove().expect("remove");
                    if *variant == Variant::ForceEmpty {
                        force_empty(dir.as_deref().expect("memory dir"));
                    }
                    let (t3, c3) = (Instant::now(), thread_cpu());
                    create.push(t1 - t0);
                    remove.push(t3 - t2);
                    wall.push((t1 - t0) + (t3 - t2));
                    thread.push((c1 - c0) + (c3 - c2));
                }
            });
            // Round 0 warms up (first mkdir of the pooled cell, page cache of sh and true).
            if round > 0 {
                s.wall.extend(wall);
                s.thread.extend(thread);
                s.create.extend(create);
                s.remove.extend(remove);
                s.add_block(busy, block);
            }
        }
    }
    println!("   the cgroup calls: create_cell + remove (+ force_empty), medians of n cells;");
    println!("   CPU per cell incl. the /bin/true run: medians of the blocks' means");
    println!(
        "   variant                             n   calls: create  remove    wall  CPU \
         | CPU/cell: process kthreads  machine"
    );
    for ((_, name), mut s) in variants.iter().zip(samples) {
        let n = s.wall.len();
        let med = |v: &mut Vec<Duration>| us(median(std::mem::take(v)));
        let (create, remove) = (med(&mut s.create), med(&mut s.remove));
        let (wall, thread) = (med(&mut s.wall), med(&mut s.thread));
        println!(
            "   {name} {n:>4}   {create:>13} {remove:>7} {wall:>7} {thread:>7} |         {}",
            s.per_cell()
        );
    }
}

fn end_to_end(rootfs: &Path, rounds: usize, block: usize) {
    println!(
        "\n3. end to end: Launcher::run of /bin/true, default limits + seccomp \
         ({rounds} rounds x {block} runs per variant)"
    );
    let spec = true_spec(rootfs);
    let pooled = Launcher::new(LauncherConfig {
        cgroup_pool: 1,
        ..LauncherConfig::default()
    })
    .expect("launcher");
    let fresh = Launcher::new(LauncherConfig::default()).expect("launcher");
    let v1 = pooled.cgroups().is_some_and(|h| h.mode() == CgroupMode::V1);
    let variants: Vec<_> = VARIANTS
        .iter()
        .filter(|(v, _)| v1 || *v == Variant::Fresh)
        .collect();
    let mut samples: Vec<Samples> = variants.iter().map(|_| Samples::default()).collect();
    for round in 0..=rounds {
        for ((variant, _), s) in variants.iter().zip(samples.iter_mut()) {
            let launcher = if *variant == Variant::Fresh {
                &fresh
            } else {
                &pooled
            };
            let mut wall = Vec::with_capacity(block);
            let busy = block_cpu(|| {
                for _ in 0..block {
                    let t0 = Instant::now();
                    let result = launcher.run(&spec, &mut |_| {}, None);
                    if *variant == Variant::ForceEmpty {
                        if let Some(dir) = parked_memory_dir(launcher) {
                            force_empty(&dir);
                        }
                    }
                    wall.push(t0.elapsed());
                    assert_eq!(result.verdict, Verdict::OK, "{result:?}");
                }
            });
            if round > 0 {
                s.wall.extend(wall);
                s.add_block(busy, block);
            }
        }
    }
    println!(
        "   variant                             n    wall/run | CPU/run: process kthreads  machine"
    );
    for ((_, name), mut s) in variants.iter().zip(samples) {
        let n = s.wall.len();
        let wall = median(std::mem::take(&mut s.wall));
        println!(
            "   {name} {n:>4}  {:>10} |        {}",
            us(wall),
            s.per_cell()
        );
    }
    if v1 {
        println!("   ((a) includes finding the parked cell: one readdir of the memory cells dir)");
    }
}

fn file_ops(host: &CgroupHost) {
    println!("\n4. one cgroupfs file op (10000 each, median)");
    let cell = host.create_cell(&LIMITS).expect("create cell");
    let dir = memory_dir(&cell.dirs()).expect("memory dir");
    let (file, value) = if dir.join("memory.failcnt").exists() {
        (dir.join("memory.failcnt"), "0")
    } else {
        (dir.join("memory.high"), "max")
    };
    let time = |f: &mut dyn FnMut()| {
        median(
            (0..10_000)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed()
                })
                .collect(),
        )
    };
    let open_write_close = time(&mut || std::fs::write(&file, value).unwrap());
    let kept = OpenOptions::new().write(true).open(&file).unwrap();
    let pwrite = time(&mut || {
        kept.write_at(value.as_bytes(), 0).unwrap();
    });
    // Not cgroup.procs: v1 serves a re-read of a kept fd from a pid list cached for 1 s.
    let stat = ["memory.max_usage_in_bytes", "memory.current"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .unwrap();
    let open_read_close = time(&mut || {
        std::fs::read(&stat).unwrap();
    });
    let kept_r = OpenOptions::new().read(true).open(&stat).unwrap();
    let mut buf = [0u8; 256];
    let pread = time(&mut || {
        kept_r.read_at(&mut buf, 0).unwrap();
    });
    println!(
        "   {}: open+write+close {}, pwrite on a kept fd {}",
        file.file_name().unwrap().to_string_lossy(),
        us(open_write_close),
        us(pwrite)
    );
    println!(
        "   {}: open+read+close {}, pread on a kept fd {}",
        stat.file_name().unwrap().to_string_lossy(),
        us(open_read_close),
        us(pread)
    );
    drop((kept, kept_r));
    cell.remove().expect("remove");
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().ok());
    let rounds = args.next().flatten().unwrap_or(10);
    let block = args.next().flatten().unwrap_or(50);
    let host = CgroupHost::detect().expect("detect cgroups");
    println!(
        "mode {:?}, {} hierarchies, {} CPUs, load average at start {}",
        host.mode(),
        host.cells_dirs().len(),
        cpus(),
        loadavg()
    );
    let rootfs = test_rootfs();
    what_is_charged(&host, rootfs.as_deref());
    cgroup_layer(rounds, block);
    match &rootfs {
        Some(r) => end_to_end(r, rounds, block),
        None => println!("\n3. skipped: no test rootfs (scripts/build-test-rootfs)"),
    }
    file_ops(&host);
    println!("\nload average at end {}", loadavg());
}
