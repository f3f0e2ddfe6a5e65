//! The in-process launcher is called from several threads at once while other threads come
//! and go. Threading rule 1 (`sandbox/mod.rs`): a cell cloned from a multithreaded process
//! touches no glibc state copied from the parent (allocator locks, glibc's set*id broadcast
//! to threads that exist only in the parent); any such call would hang the cell until its
//! wall limit.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sandcell::spec::{LimitBounds, Limits, RunSpec};
use sandcell::{Launcher, LauncherConfig, Verdict};

#[test]
fn concurrent_launches_from_a_busy_multithreaded_process() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let launcher = Arc::new(Launcher::new(LauncherConfig::default()).unwrap());
    let mut spec = RunSpec::new(rootfs, vec!["/bin/sh".into(), "-c".into(), "id -u".into()]);
    spec.limits = Limits {
        wall_time: Duration::from_secs(5),
        ..Limits::default()
    };
    let spec = spec.validate(&LimitBounds::default()).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::thread::spawn(|| std::thread::sleep(Duration::from_micros(50))).join();
            }
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (launcher, spec) = (launcher.clone(), spec.clone());
            std::thread::spawn(move || {
                (0..15)
                    .map(|_| launcher.run(&spec, &mut |_| {}, None))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();

    assert_eq!(results.len(), 60);
    for r in &results {
        assert_eq!(r.verdict, Verdict::OK, "{:?}", r.message);
        assert_eq!(String::from_utf8_lossy(&r.stdout.bytes), "65534\n");
    }
}
