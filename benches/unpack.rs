//! Import speed: `ImageStore::import` of a ~200 MB python rootfs tarball versus `tar -xf` of
//! the same file into a fresh directory, interleaved, median of several rounds.
//!
//!   cargo bench --bench unpack              (SANDCELL_BENCH_ROUNDS=N, default 5)
//!
//! The tarball is built by the bench from the host's python3 closure (/usr/bin/python3.11, its
//! libraries, /usr/lib/python3.11, dist-packages), padded with further copies of the standard
//! library up to ~200 MB. Nothing is fsynced by either side (the store does not fsync extracted
//! files; see src/image/store.rs); `sync` runs untimed between runs so that writeback of one
//! run does not slow the next. Target: import <= 1.2x tar.

use nix::sys::resource::{getrusage, UsageWho};
use sandcell::image::{ImageStore, ImportOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TARGET_BYTES: u64 = 200 << 20;

fn du(path: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else if md.is_file() {
                total += md.len();
            }
        }
    }
    total
}

/// Builds the python rootfs tarball; returns its path and the content size.
fn build_tarball(dir: &Path) -> (PathBuf, u64) {
    let out = dir.join("python-rootfs.tar");
    let file = std::fs::File::create(&out).expect("create tarball");
    let mut b = tar::Builder::new(std::io::BufWriter::with_capacity(1 << 20, file));
    b.follow_symlinks(false);
    let mut size = 0;
    let add_dir = |b: &mut tar::Builder<_>, name: &str, src: &Path| {
        if src.is_dir() {
            b.append_dir_all(name, src).expect("append dir");
            du(src)
        } else {
            0
        }
    };
    size += add_dir(
        &mut b,
        "usr/lib/python3.11",
        Path::new("/usr/lib/python3.11"),
    );
    size += add_dir(
        &mut b,
        "usr/lib/python3/dist-packages",
        Path::new("/usr/lib/python3/dist-packages"),
    );
    for f in [
        "/usr/bin/python3.11",
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/lib/x86_64-linux-gnu/libexpat.so.1",
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib64/ld-linux-x86-64.so.2",
    ] {
        let p = Path::new(f);
        if let Ok(real) = std::fs::canonicalize(p) {
            b.append_path_with_name(&real, f.trim_start_matches('/'))
                .expect("append file");
            size += std::fs::metadata(&real).map(|m| m.len()).unwrap_or(0);
        }
    }
    let mut copy = 0;
    while size < TARGET_BYTES && Path::new("/usr/lib/python3.11").is_dir() {
        copy += 1;
        size += add_dir(
            &mut b,
            &format!("opt/copy{copy}/python3.11"),
            Path::new("/usr/lib/python3.11"),
        );
    }
    b.into_inner().expect("finish tarball");
    (out, size)
}

/// User+system CPU seconds used so far by `who`.
fn cpu(who: UsageWho) -> f64 {
    getrusage(who)
        .map(|u| {
            let (a, b) = (u.user_time(), u.system_time());
            a.tv_sec() as f64
                + a.tv_usec() as f64 / 1e6
                + b.tv_sec() as f64
                + b.tv_usec() as f64 / 1e6
        })
        .unwrap_or(0.0)
}

/// Wall time and CPU seconds of one run.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: f64,
}

fn sync() {
    let _ = Command::new("sync").status();
}

fn time_tar(tarball: &Path, scratch: &Path, gz: bool) -> Sample {
    let dest = scratch.join("tar-out");
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::create_dir_all(&dest).unwrap();
    sync();
    let cpu0 = cpu(UsageWho::RUSAGE_CHILDREN);
    let start = Instant::now();
    let flags = if gz { "-xzf" } else { "-xf" };
    let st = Command::new("tar")
        .arg(flags)
        .arg(tarball)
        .arg("-C")
        .arg(&dest)
        .status()
        .expect("run tar");
    let t = Sample {
        wall: start.elapsed(),
        cpu: cpu(UsageWho::RUSAGE_CHILDREN) - cpu0,
    };
    assert!(st.success(), "tar failed");
    std::fs::remove_dir_all(&dest).unwrap();
    t
}

fn time_import(tarball: &Path, scratch: &Path) -> Sample {
    let state = scratch.join("state");
    let _ = std::fs::remove_dir_all(&state);
    let store = ImageStore::open(&state).expect("open store");
    sync();
    let cpu0 = cpu(UsageWho::RUSAGE_SELF);
    let start = Instant::now();
    store
        .import(tarball, "bench", &ImportOptions::default())
        .expect("import");
    let t = Sample {
        wall: start.elapsed(),
        cpu: cpu(UsageWho::RUSAGE_SELF) - cpu0,
    };
    drop(store);
    std::fs::remove_dir_all(&state).unwrap();
    t
}

fn median(v: &[Sample], f: impl Fn(&Sample) -> f64) -> f64 {
    let mut x: Vec<f64> = v.iter().map(f).collect();
    x.sort_by(f64::total_cmp);
    x[x.len() / 2]
}

fn compare(label: &str, tarball: &Path, scratch: &Path, rounds: usize, gz: bool) {
    let (mut tar_t, mut imp_t) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        // Alternate which goes first.
        if round % 2 == 0 {
            tar_t.push(time_tar(tarball, scratch, gz));
            imp_t.push(time_import(tarball, scratch));
        } else {
            imp_t.push(time_import(tarball, scratch));
            tar_t.push(time_tar(tarball, scratch, gz));
        }
        println!(
            "  round {round}: tar {:>7.3} s wall {:>6.3} s cpu   import {:>7.3} s wall {:>6.3} s cpu",
            tar_t[round].wall.as_secs_f64(),
            tar_t[round].cpu,
            imp_t[round].wall.as_secs_f64(),
            imp_t[round].cpu
        );
    }
    let wall = |s: &Sample| s.wall.as_secs_f64();
    let cpu = |s: &Sample| s.cpu;
    let (tw, iw) = (median(&tar_t, wall), median(&imp_t, wall));
    let (tc, ic) = (median(&tar_t, cpu), median(&imp_t, cpu));
    println!(
        "{label}: median wall: tar -x {tw:.3} s, sandcell import {iw:.3} s, ratio {:.2}x (target <= 1.20x); \
         median cpu: tar {tc:.3} s, import {ic:.3} s",
        iw / tw
    );
}

fn main() {
    // `cargo test --benches` runs bench binaries with no arguments too; only `cargo bench`
    // passes --bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("unpack bench: run with `cargo bench --bench unpack`");
        return;
    }
    let rounds: usize = std::env::var("SANDCELL_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    let scratch = tempfile::Builder::new()
        .prefix("sandcell-bench-unpack-")
        .tempdir()
        .expect("scratch dir");
    let (tarball, content) = build_tarball(scratch.path());
    let tar_size = std::fs::metadata(&tarball).unwrap().len();
    let files = {
        let mut a = tar::Archive::new(std::fs::File::open(&tarball).unwrap());
        a.entries().unwrap().count()
    };
    println!(
        "python rootfs tarball: {:.1} MB ({:.1} MB of files, {files} entries), {rounds} rounds",
        tar_size as f64 / 1e6,
        content as f64 / 1e6
    );
    compare("plain .tar", &tarball, scratch.path(), rounds, false);

    if std::env::var_os("SANDCELL_BENCH_GZ").is_some() {
        let gz = scratch.path().join("python-rootfs.tar.gz");
        let st = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "gzip -1 -c {} > {}",
                tarball.display(),
                gz.display()
            ))
            .status()
            .expect("gzip");
        assert!(st.success());
        println!(
            "gzip -1: {:.1} MB",
            std::fs::metadata(&gz).unwrap().len() as f64 / 1e6
        );
        compare(".tar.gz", &gz, scratch.path(), rounds, true);
    }
}
