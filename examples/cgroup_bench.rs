//! Times create_cell + remove of cell cgroups on this host (root), with and without the
//! pool: `cargo run --release --example cgroup_bench [-- ITERATIONS]`.

use std::time::{Duration, Instant};

use sandcell::sandbox::cgroup::{CgroupHost, CgroupLimits};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort_unstable();
    v[v.len() / 2]
}

fn measure(host: &CgroupHost, n: usize, limits: &CgroupLimits) -> (Duration, Duration, Duration) {
    let mut create = Vec::with_capacity(n);
    let mut remove = Vec::with_capacity(n);
    let mut total = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = Instant::now();
        let cell = host.create_cell(limits).expect("create cell");
        let t1 = Instant::now();
        cell.remove().expect("remove cell");
        let t2 = Instant::now();
        create.push(t1 - t0);
        remove.push(t2 - t1);
        total.push(t2 - t0);
    }
    (median(create), median(remove), median(total))
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(500);
    let limits = CgroupLimits {
        memory: Some(256 << 20),
        pids: Some(64),
        cpus: Some(1.0),
    };
    let host = CgroupHost::detect().expect("detect cgroups");
    println!(
        "mode {:?}, {} hierarchies, {n} iterations (medians)",
        host.mode(),
        host.cells_dirs().len()
    );
    let (c, r, t) = measure(&host, n, &limits);
    println!("fresh: create {c:?}  remove {r:?}  create+remove {t:?}");
    let pooled = host.with_pool(4);
    let (c, r, t) = measure(&pooled, n, &limits);
    println!("pool:  create {c:?}  remove {r:?}  create+remove {t:?}");
}
