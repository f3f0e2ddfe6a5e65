//! Resource limits end to end: MLE from the cgroup's OOM events, fork bombs, CPU time, and no
//! leftovers (cgroups, mounts, processes) after many runs including killed ones.
//! Runs on this hybrid (v1) host and, unchanged, in the cgroup v2 guest (vm-run).

mod common;

use common::{run_json, setup};

#[test]
fn memory_bomb_is_mle_and_the_host_is_fine() {
    let Some(r) = setup() else { return };
    let (json, out) = run_json(
        &r,
        &["--memory", "64M", "--cpu-time", "60s", "--wall-time", "60s"],
        // Doubles a string to 1 GiB: real, touched heap memory, cheap in CPU even under
        // emulation (the cgroup v2 test VM).
        &[
            "awk",
            "BEGIN { s = \"x\"; for (i = 0; i < 30; i++) s = s s; print length(s) }",
        ],
    );
    assert_eq!(json["verdict"], "MLE", "{json}");
    assert_eq!(out.status.code(), Some(137));
    let peak = json["memory_peak_bytes"].as_u64().unwrap_or(0);
    assert!(peak <= 64 << 20, "peak {peak} above the 64 MiB limit");
    let (json, _) = run_json(&r, &[], &["/bin/echo", "still here"]);
    assert_eq!(json["verdict"], "OK", "{json}");
}

#[test]
fn fork_bomb_is_contained_by_the_pids_limit() {
    let Some(r) = setup() else { return };
    let (json, _) = run_json(
        &r,
        &["--pids", "32", "--wall-time", "2s"],
        &["/bin/sh", "-c", "f() { f | f & }; f; sleep 5"],
    );
    let verdict = json["verdict"].as_str().unwrap();
    assert!(matches!(verdict, "TO" | "RE" | "OK"), "{json}");
    let (json, _) = run_json(&r, &[], &["/bin/echo", "host answers"]);
    assert_eq!(json["stdout"], "host answers\n", "{json}");
}

#[test]
fn busy_loop_hits_the_cpu_limit_long_before_the_wall_limit() {
    let Some(r) = setup() else { return };
    let (json, out) = run_json(
        &r,
        &["--cpu-time", "1s", "--wall-time", "10s"],
        &["/bin/sh", "-c", "while :; do :; done"],
    );
    assert_eq!(json["verdict"], "TO", "{json}");
    assert_eq!(json["reason"], "cpu", "{json}");
    let cpu = json["cpu_time_ms"].as_u64().unwrap();
    assert!(cpu >= 1000, "stopped after only {cpu} ms of CPU");
    // Reason "cpu" (not "wall") is what says the CPU limit came first; how much wall time
    // that took depends on the machine's load and is not asserted.
    assert_eq!(out.status.code(), Some(124));
}

#[test]
fn memory_peak_and_cpu_time_are_reported() {
    let Some(r) = setup() else { return };
    let (json, _) = run_json(
        &r,
        &["--cpu-time", "60s", "--wall-time", "60s"],
        &[
            "awk",
            "BEGIN { s = \"x\"; for (i = 0; i < 25; i++) s = s s; print length(s) }",
        ],
    );
    assert_eq!(json["verdict"], "OK", "{json}");
    let peak = json["memory_peak_bytes"].as_u64().unwrap();
    assert_eq!(json["stdout"], "33554432\n");
    assert!(
        peak >= 32 << 20,
        "peak {peak} below the 32 MiB string awk held"
    );
    assert!(json["cpu_time_ms"].as_u64().unwrap() > 0, "{json}");
}
