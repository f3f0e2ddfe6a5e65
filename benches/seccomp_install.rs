//! What installing the default seccomp policy costs a cell: the tree filter sandcell installs
//! versus the three linear seccompiler filters it replaced, interleaved in one invocation so
//! the noise of this shared machine hits both alike.
//!
//!   cargo bench --bench seccomp_install [-- SAMPLES]      (as root, or any user: the child
//!                                                          sets no_new_privs)
//!
//! Every sample is a fresh process (this executable again, with `SANDCELL_BENCH_INSTALL` set
//! to the policy's name) with no filter yet, like a cell's init. It compiles the policy
//! first, then installs each of its programs with `seccomp(SECCOMP_SET_MODE_FILTER)` (via
//! seccompiler's `apply_filter`, which also sets no_new_privs, a negligible prctl) and
//! writes through its stdout pipe how long the installs took: wall-clock time and the
//! thread's CPU time (the installs are all kernel work; CPU time leaves out the time other
//! tasks held the CPU). Freeing the filters when the process exits is not measured.
//!
//! Prints the instruction counts, the load average, and the median and p90 of each policy.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::time::{clock_gettime, ClockId};
use sandcell::sandbox::seccomp::{self, default_policy};
use seccompiler::BpfProgram;

/// Set in the child: which policy to install.
const CHILD_ENV: &str = "SANDCELL_BENCH_INSTALL";

/// The contenders: the policy sandcell installs, and the one it replaced.
const POLICIES: [&str; 2] = ["tree", "linear"];

fn programs(policy: &str) -> Vec<BpfProgram> {
    let arch = seccomp::native_arch().expect("supported architecture");
    match policy {
        "tree" => default_policy::default_filters(arch),
        "linear" => default_policy::linear_filters(arch),
        other => panic!("unknown policy {other}"),
    }
    .expect("the policy compiles")
    .into_iter()
    .map(|(_, program)| program)
    .collect()
}

fn thread_cpu_time() -> Duration {
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID).expect("thread CPU clock");
    Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32)
}

/// The child: install `policy`, print "WALL_NS CPU_NS".
fn install_and_report(policy: &str) {
    let programs = programs(policy);
    let (wall, cpu) = (Instant::now(), thread_cpu_time());
    for program in &programs {
        seccompiler::apply_filter(program).expect("install the filter");
    }
    let (wall, cpu) = (wall.elapsed(), thread_cpu_time() - cpu);
    println!("{} {}", wall.as_nanos(), cpu.as_nanos());
}

/// One sample of `policy` in a fresh process: (wall, cpu) of its installs.
fn sample(policy: &str) -> Option<(Duration, Duration)> {
    let exe = std::env::current_exe().expect("own executable");
    let out = Command::new(exe)
        .env(CHILD_ENV, policy)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let wall = Duration::from_nanos(fields.next()?.ok()?);
    let cpu = Duration::from_nanos(fields.next()?.ok()?);
    Some((wall, cpu))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_string())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

#[derive(Default)]
struct Samples {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
    failures: usize,
}

fn main() {
    if let Ok(policy) = std::env::var(CHILD_ENV) {
        install_and_report(&policy);
        return;
    }
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(300);

    for policy in POLICIES {
        let lengths: Vec<usize> = programs(policy).iter().map(Vec::len).collect();
        println!(
            "{policy:<7} {} instructions in {} filter(s) {lengths:?}",
            lengths.iter().sum::<usize>(),
            lengths.len()
        );
    }
    let load_before = load_average();

    // Warm-up, then interleave, alternating which policy goes first in a round.
    for policy in POLICIES {
        for _ in 0..5 {
            sample(policy);
        }
    }
    let mut samples: Vec<Samples> = POLICIES.iter().map(|_| Samples::default()).collect();
    for round in 0..rounds {
        for k in 0..POLICIES.len() {
            let i = (k + round) % POLICIES.len();
            match sample(POLICIES[i]) {
                Some((wall, cpu)) => {
                    samples[i].wall.push(wall);
                    samples[i].cpu.push(cpu);
                }
                None => samples[i].failures += 1,
            }
        }
    }

    println!(
        "install cost, {rounds} interleaved rounds (one fresh process per sample); \
         load average {load_before} before, {} after",
        load_average()
    );
    println!(
        "{:<7} {:>11} {:>11} {:>11} {:>11} {:>7}",
        "policy", "wall med", "wall p90", "cpu med", "cpu p90", "failed"
    );
    for (policy, s) in POLICIES.iter().zip(&mut samples) {
        s.wall.sort();
        s.cpu.sort();
        println!(
            "{policy:<7} {:>9.1}us {:>9.1}us {:>9.1}us {:>9.1}us {:>7}",
            micros(percentile(&s.wall, 0.5)),
            micros(percentile(&s.wall, 0.9)),
            micros(percentile(&s.cpu, 0.5)),
            micros(percentile(&s.cpu, 0.9)),
            s.failures
        );
    }
}
