//! Launch latency: `/bin/true` in a fresh cell, sandcell versus its peers, interleaved in one
//! invocation so the noise of this shared machine hits every contender alike.
//!
//!   cargo bench --bench launch [-- ROUNDS]      (as root; scripts/bench-peers wraps it)
//!
//! Contenders (each a whole process start, like a user would run it):
//! - `sandcell-plain`: `sandcell run` with no cgroup limits and no seccomp (the bare launcher).
//! - `sandcell-limits`: `sandcell run` with the default limits (cgroup memory/pids/CPU time)
//!   and the default seccomp policy.
//! - `sandcell-inproc`: `Launcher::run` called in this process, default limits and seccomp,
//!   a fresh cell cgroup per run.
//! - `inproc-plain`: the same without cgroups and seccomp; `inproc-pooled`: with them, from a
//!   pool of cell cgroups (what the grader does).
//! - `inproc-warm`: the daemon's path: default limits and seccomp, the cell prepared ahead by
//!   the spawner process (`warm_cells = 2`).
//! - `bwrap`: `bwrap --unshare-all --die-with-parent --ro-bind R / --proc /proc --dev /dev`.
//! - `unshare`: util-linux `unshare -fmpinu --mount-proc=R/proc chroot R /bin/true`.
//! - `runc`: `runc run` of a bundle over R (skipped when runc refuses this host).
//!
//! Prints the median and p90 of each, and each median as a ratio to bwrap's.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sandcell::spec::{LimitBounds, Limits, RunSpec, SeccompChoice};
use sandcell::{Launcher, LauncherConfig};

fn rootfs() -> PathBuf {
    std::env::var_os("SANDCELL_TEST_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".test-rootfs/busybox"))
}

fn sandcell_bin() -> PathBuf {
    // `$SANDCELL_BENCH_BIN` (scripts/bench-peers passes the static release build), else the
    // release binary next to this bench's own executable (target/release/deps/..).
    if let Some(bin) = std::env::var_os("SANDCELL_BENCH_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    dir.join("sandcell")
}

fn time_command(cmd: &mut Command) -> Option<Duration> {
    let start = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?;
    let took = start.elapsed();
    status.success().then_some(took)
}

struct Contender {
    name: &'static str,
    run: Box<dyn FnMut() -> Option<Duration>>,
    samples: Vec<Duration>,
    failures: usize,
}

fn runc_bundle(root: &Path) -> Option<PathBuf> {
    let bundle = std::env::temp_dir().join(format!("sandcell-bench-runc-{}", std::process::id()));
    std::fs::create_dir_all(&bundle).ok()?;
    let ok = Command::new("runc")
        .args(["spec"])
        .current_dir(&bundle)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success();
    if !ok {
        return None;
    }
    let path = bundle.join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    config["root"] = serde_json::json!({"path": root, "readonly": true});
    config["process"]["args"] = serde_json::json!(["/bin/true"]);
    config["process"]["terminal"] = serde_json::json!(false);
    std::fs::write(&path, serde_json::to_vec(&config).ok()?).ok()?;
    Some(bundle)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn main() {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let root = rootfs();
    assert!(
        root.join("bin/true").exists(),
        "build the rootfs first: scripts/build-test-rootfs"
    );
    let bin = sandcell_bin();
    assert!(
        bin.exists(),
        "no release binary at {} (cargo build --release)",
        bin.display()
    );

    let mut contenders: Vec<Contender> = Vec::new();
    let mut add = |name: &'static str, run: Box<dyn FnMut() -> Option<Duration>>| {
        contenders.push(Contender {
            name,
            run,
            samples: Vec::new(),
            failures: 0,
        })
    };
    let (b, r) = (bin.clone(), root.clone());
    add(
        "sandcell-plain",
        Box::new(move || {
            time_command(Command::new(&b).arg("run").arg("--rootfs").arg(&r).args([
                "--memory",
                "unlimited",
                "--pids",
                "unlimited",
                "--cpu-time",
                "unlimited",
                "--seccomp",
                "none",
                "--",
                "/bin/true",
            ]))
        }),
    );
    let (b, r) = (bin.clone(), root.clone());
    add(
        "sandcell-limits",
        Box::new(move || {
            time_command(
                Command::new(&b)
                    .arg("run")
                    .arg("--rootfs")
                    .arg(&r)
                    .args(["--", "/bin/true"]),
            )
        }),
    );
    let launcher = Launcher::new(LauncherConfig::default()).expect("launcher");
    let spec = {
        let mut s = RunSpec::new(root.clone(), vec!["/bin/true".into()]);
        s.limits = Limits::default();
        s.seccomp = SeccompChoice::Default;
        s.validate(&LimitBounds::default()).expect("valid spec")
    };
    let inproc_spec = spec.clone();
    add(
        "sandcell-inproc",
        Box::new(move || {
            let start = Instant::now();
            let result = launcher.run(&inproc_spec, &mut |_| {}, None);
            (result.verdict == sandcell::Verdict::OK).then(|| start.elapsed())
        }),
    );
    let nocg = Launcher::new(LauncherConfig {
        disable_cgroups: true,
        ..LauncherConfig::default()
    })
    .expect("launcher");
    let pooled = Launcher::new(LauncherConfig {
        cgroup_pool: 4,
        ..LauncherConfig::default()
    })
    .expect("launcher");
    let pooled_spec = spec.clone();
    let plain_spec = {
        let mut s = RunSpec::new(root.clone(), vec!["/bin/true".into()]);
        s.limits = Limits {
            memory: None,
            pids: None,
            cpu_time: None,
            ..Limits::default()
        };
        s.seccomp = SeccompChoice::None;
        s.validate(&LimitBounds::default()).expect("valid spec")
    };
    add(
        "inproc-plain",
        Box::new(move || {
            let start = Instant::now();
            let result = nocg.run(&plain_spec, &mut |_| {}, None);
            (result.verdict == sandcell::Verdict::OK).then(|| start.elapsed())
        }),
    );
    add(
        "inproc-pooled",
        Box::new(move || {
            let start = Instant::now();
            let result = pooled.run(&pooled_spec, &mut |_| {}, None);
            (result.verdict == sandcell::Verdict::OK).then(|| start.elapsed())
        }),
    );
    // The daemon's path: cells prepared ahead by the spawner, default limits + seccomp.
    let warm = Launcher::new(LauncherConfig {
        cgroup_pool: 4,
        spawner: Some(bin.clone()),
        warm_cells: 2,
        ..LauncherConfig::default()
    })
    .expect("launcher with a spawner");
    let warm_spec = spec.clone();
    add(
        "inproc-warm",
        Box::new(move || {
            let start = Instant::now();
            let result = warm.run(&warm_spec, &mut |_| {}, None);
            (result.verdict == sandcell::Verdict::OK).then(|| start.elapsed())
        }),
    );
    let r = root.clone();
    add(
        "bwrap",
        Box::new(move || {
            time_command(
                Command::new("bwrap")
                    .args(["--unshare-all", "--die-with-parent", "--ro-bind"])
                    .arg(&r)
                    .args(["/", "--proc", "/proc", "--dev", "/dev", "/bin/true"]),
            )
        }),
    );
    let r = root.clone();
    add(
        "unshare",
        Box::new(move || {
            time_command(
                Command::new("unshare")
                    .arg("-fmpinu")
                    .arg(format!("--mount-proc={}/proc", r.display()))
                    .arg("chroot")
                    .arg(&r)
                    .arg("/bin/true"),
            )
        }),
    );
    if let Some(bundle) = runc_bundle(&root) {
        let mut n = 0u64;
        add(
            "runc",
            Box::new(move || {
                n += 1;
                time_command(
                    Command::new("runc")
                        .args(["run", "--bundle"])
                        .arg(&bundle)
                        .arg(format!("bench-{}-{n}", std::process::id())),
                )
            }),
        );
    }

    // Warm-up, then interleave: one run of each contender per round.
    for c in contenders.iter_mut() {
        for _ in 0..5 {
            let _ = (c.run)();
        }
    }
    for _ in 0..rounds {
        for c in contenders.iter_mut() {
            match (c.run)() {
                Some(d) => c.samples.push(d),
                None => c.failures += 1,
            }
        }
    }

    let bwrap_median = contenders
        .iter()
        .find(|c| c.name == "bwrap")
        .map(|c| {
            let mut s = c.samples.clone();
            s.sort();
            percentile(&s, 0.5)
        })
        .unwrap_or_default();
    println!("launch /bin/true, {rounds} interleaved rounds");
    println!(
        "{:<16} {:>10} {:>10} {:>9} {:>9}",
        "contender", "median", "p90", "/bwrap", "failed"
    );
    for c in &mut contenders {
        c.samples.sort();
        let median = percentile(&c.samples, 0.5);
        let ratio = if bwrap_median.is_zero() {
            f64::NAN
        } else {
            median.as_secs_f64() / bwrap_median.as_secs_f64()
        };
        println!(
            "{:<16} {:>8.2}ms {:>8.2}ms {:>8.2}x {:>9}",
            c.name,
            median.as_secs_f64() * 1e3,
            percentile(&c.samples, 0.9).as_secs_f64() * 1e3,
            ratio,
            c.failures
        );
    }
}
