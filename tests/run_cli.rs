//! `sandcell run` end to end: verdicts, exit codes, output capture, isolation, cleanup.
//! Real cells as root over the busybox rootfs (scripts/build-test-rootfs).

mod common;

use std::io::Write;

use common::{run_json, sandcell, setup};

#[test]
fn echo_is_ok_with_its_output() {
    let Some(r) = setup() else { return };
    let (json, out) = run_json(&r, &[], &["/bin/echo", "hi"]);
    assert_eq!(json["verdict"], "OK", "{json}");
    assert_eq!(json["stdout"], "hi\n");
    assert_eq!(json["exit_code"], 0);
    assert_eq!(json["stdout_truncated"], false);
    assert!(json["wall_time_ms"].is_u64() && json["cpu_time_ms"].is_u64());
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn non_zero_exit_is_re_and_the_cli_passes_the_code_through() {
    let Some(r) = setup() else { return };
    let (json, _) = run_json(&r, &[], &["/bin/sh", "-c", "exit 3"]);
    assert_eq!(json["verdict"], "RE", "{json}");
    assert_eq!(json["exit_code"], 3);

    let out = sandcell()
        .args(["run", "--rootfs"])
        .arg(&r)
        .args(["--", "/bin/sh", "-c", "echo out; echo err >&2; exit 3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
}

#[test]
fn killed_by_a_signal_is_sg_and_exits_128_plus_signal() {
    let Some(r) = setup() else { return };
    let (json, out) = run_json(&r, &[], &["/bin/sh", "-c", "kill -9 $$"]);
    assert_eq!(json["verdict"], "SG", "{json}");
    assert_eq!(json["signal"], 9);
    assert_eq!(out.status.code(), Some(137));
}

#[test]
fn missing_command_is_a_sandbox_error_naming_the_step() {
    let Some(r) = setup() else { return };
    let (json, out) = run_json(&r, &[], &["/bin/nope"]);
    assert_eq!(json["verdict"], "XX", "{json}");
    assert_eq!(json["message"], "exec /bin/nope: No such file or directory");
    assert_eq!(out.status.code(), Some(125));

    let out = sandcell()
        .args(["run", "--rootfs"])
        .arg(&r)
        .args(["--", "/bin/nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "sandcell: exec /bin/nope: No such file or directory"
    );
}

#[test]
fn bad_rootfs_is_a_clear_sandbox_error() {
    if !common::require_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (json, out) = run_json(dir.path(), &[], &["/bin/true"]);
    assert_eq!(json["verdict"], "XX");
    let message = json["message"].as_str().unwrap();
    assert!(message.contains("missing mount point /proc"), "{message}");
    assert_eq!(out.status.code(), Some(125));
}

#[test]
fn wall_timeout_kills_the_cell_and_keeps_earlier_output() {
    let Some(r) = setup() else { return };
    let (json, out) = run_json(&r, &["--wall-time", "1s"], &["/bin/sleep", "30"]);
    assert_eq!(json["verdict"], "TO", "{json}");
    assert_eq!(json["reason"], "wall");
    // The reason "wall" already says the limit, not `sleep 30`, ended it; the bounds only
    // say the figure is the cell's wall clock (no timing assertion: a loaded CI machine
    // may take long to start or reap the cell).
    let wall = json["wall_time_ms"].as_u64().unwrap();
    assert!(
        (1000..30_000).contains(&wall),
        "wall time {wall} ms is not between the limit and the sleep"
    );
    assert_eq!(out.status.code(), Some(124));

    // The shell must have printed before the limit: allow it far more time to start than
    // it needs, so a loaded machine cannot make this a race.
    let (json, _) = run_json(
        &r,
        &["--wall-time", "5s"],
        &["/bin/sh", "-c", "echo early; exec sleep 30"],
    );
    assert_eq!(json["verdict"], "TO", "{json}");
    assert_eq!(json["reason"], "wall", "{json}");
    assert_eq!(json["stdout"], "early\n", "{json}");
}

#[test]
fn double_forked_daemons_die_with_the_cell() {
    let Some(r) = setup() else { return };
    let marker = format!("{}.{}", 900 + std::process::id() % 97, std::process::id());
    let (json, _) = run_json(
        &r,
        &[],
        &[
            "/bin/sh",
            "-c",
            &format!("(sleep {marker} &) ; (setsid sleep {marker} &) ; exit 0"),
        ],
    );
    assert_eq!(json["verdict"], "OK", "{json}");
    let left = common::host_processes_with(&format!("sleep\0{marker}"));
    assert!(left.is_empty(), "cell processes survived the run: {left:?}");
}

#[test]
fn the_cell_sees_only_itself() {
    let Some(r) = setup() else { return };
    std::env::set_var("SANDCELL_TEST_SECRET", "hunter2");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        "echo init=$(cat /proc/1/cmdline 2>/dev/null | tr '\\0' ' ');\
         echo pids=$(ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' ');\
         echo host=$(hostname);\
         echo ifaces=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ');\
         echo uid=$(id -u);\
         echo secret=$SANDCELL_TEST_SECRET;\
         if nc -w 1 127.0.0.1 {port} </dev/null; then echo connect=ok; else echo connect=failed; fi"
    );
    let (json, _) = run_json(&r, &[], &["/bin/sh", "-c", &script]);
    assert_eq!(json["verdict"], "OK", "{json}");
    let stdout = json["stdout"].as_str().unwrap();
    let field = |name: &str| -> String {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("no {name}= in {stdout}"))
            .trim()
            .to_string()
    };
    let host_init =
        String::from_utf8_lossy(&std::fs::read("/proc/1/cmdline").unwrap()).replace('\0', " ");
    assert_ne!(
        field("init"),
        host_init.trim(),
        "the cell sees the host's init"
    );
    let pids: Vec<u32> = field("pids")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        !pids.is_empty() && pids.iter().all(|&p| p < 20),
        "foreign pids visible: {pids:?}"
    );
    assert_eq!(field("host"), "sandcell");
    assert_eq!(field("ifaces"), "lo");
    assert_ne!(field("uid"), "0");
    assert_eq!(field("secret"), "", "host environment leaked into the cell");
    assert_eq!(
        field("connect"),
        "failed",
        "the cell reached the host's loopback"
    );
    assert!(
        listener.accept().is_err(),
        "the host listener got a connection from the cell"
    );
}

#[test]
fn root_is_read_only_and_writes_do_not_persist() {
    let Some(r) = setup() else { return };
    let (json, _) = run_json(
        &r,
        &[],
        &[
            "/bin/sh",
            "-c",
            "touch /etc/x 2>/dev/null && echo etc=writable; echo a > /tmp/t && echo a > /work/w && echo tmp_work=ok; \
             ls /tmp /work",
        ],
    );
    assert_eq!(json["verdict"], "OK", "{json}");
    let stdout = json["stdout"].as_str().unwrap();
    assert!(!stdout.contains("etc=writable"), "{stdout}");
    assert!(stdout.contains("tmp_work=ok"), "{stdout}");
    assert!(!r.join("etc/x").exists() && !r.join("tmp/t").exists() && !r.join("work/w").exists());

    let (json, _) = run_json(
        &r,
        &[],
        &["/bin/sh", "-c", "echo $(ls -A /tmp) $(ls -A /work) | wc -w"],
    );
    assert_eq!(json["stdout"].as_str().unwrap().trim(), "0", "{json}");
}

#[test]
fn stdin_env_and_work_dir() {
    let Some(r) = setup() else { return };
    let mut input = tempfile::NamedTempFile::new().unwrap();
    input.write_all(b"3 4\n").unwrap();
    let stdin = input.path().to_str().unwrap();
    let (json, _) = run_json(
        &r,
        &["--stdin", stdin, "--env", "GREETING=hey"],
        &[
            "/bin/sh",
            "-c",
            "read a b; echo $((a+b)) $GREETING $(pwd) $HOME",
        ],
    );
    assert_eq!(json["stdout"], "7 hey /work /work\n", "{json}");
    let (json, _) = run_json(&r, &[], &["/bin/cat"]);
    assert_eq!(json["verdict"], "OK");
    assert_eq!(json["stdout"], "", "stdin must be empty by default");
}

#[test]
fn only_standard_descriptors_are_open() {
    let Some(r) = setup() else { return };
    let (json, _) = run_json(&r, &[], &["/bin/ls", "/proc/self/fd"]);
    let fds: Vec<&str> = json["stdout"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .collect();
    // 0, 1, 2 and the descriptor ls itself opened to read the directory.
    assert!(fds.len() <= 4 && fds[..3] == ["0", "1", "2"], "{fds:?}");
}

#[test]
fn output_flood_is_ole_with_exactly_the_cap_captured() {
    let Some(r) = setup() else { return };
    // Only the output limit: on a loaded machine (or the emulated v2 guest) `yes` may burn
    // the default 5 s of CPU before the supervisor gets to read the first MiB.
    let (json, out) = run_json(
        &r,
        &[
            "--output-limit",
            "1M",
            "--cpu-time",
            "unlimited",
            "--wall-time",
            "120s",
        ],
        &["/bin/sh", "-c", "yes | head -c 104857600; echo done >&2"],
    );
    assert_eq!(json["verdict"], "OLE", "{}", json["message"]);
    assert_eq!(json["stdout"].as_str().unwrap().len(), 1 << 20);
    assert_eq!(json["stdout_truncated"], true);
    assert_eq!(out.status.code(), Some(141));
    // The supervisor never buffers past the cap: the largest process this test binary ever
    // waited for (the CLI above among them) stayed far below the 100 MiB that was written.
    let usage =
        nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).unwrap();
    let max_rss_kib = usage.max_rss();
    assert!(
        max_rss_kib < 48 * 1024,
        "a child of the tests reached {max_rss_kib} KiB RSS"
    );
}

#[test]
fn binary_output_is_base64_encoded_too() {
    let Some(r) = setup() else { return };
    let (json, _) = run_json(&r, &[], &["/bin/sh", "-c", "printf 'a\\377b'"]);
    assert_eq!(json["verdict"], "OK");
    assert_eq!(json["stdout_base64"], "Yf9i");
}

#[test]
fn a_hundred_runs_leave_no_mounts_behind() {
    let Some(r) = setup() else { return };
    let before = common::mount_count();
    for i in 0..100 {
        let cmd = if i % 10 == 0 { "sleep 5" } else { "true" };
        let out = sandcell()
            .args(["run", "--wall-time", "50ms", "--rootfs"])
            .arg(&r)
            .args(["--", "/bin/sh", "-c", cmd])
            .output()
            .unwrap();
        assert!(matches!(out.status.code(), Some(0) | Some(124)), "{out:?}");
    }
    assert_eq!(
        common::mount_count(),
        before,
        "mounts leaked into the host namespace"
    );
}

#[test]
fn absurd_limits_are_usage_errors_and_start_nothing() {
    let Some(r) = setup() else { return };
    for args in [
        ["--memory", "0"],
        ["--pids", "-1"],
        ["--pids", "1"],
        ["--wall-time", "10y"],
        ["--memory", "1P"],
        ["--cpu-time", "soon"],
        ["--output-limit", "2G"],
    ] {
        let out = sandcell()
            .arg("run")
            .arg("--rootfs")
            .arg(&r)
            .args(args)
            .args(["--", "/bin/echo", "started"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?} started something");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = args[0].trim_start_matches("--").split('-').next().unwrap();
        assert!(
            stderr.contains(name),
            "{args:?}: message does not name the limit: {stderr}"
        );
    }
}

#[test]
fn requests_past_a_bound_are_usage_errors_naming_it() {
    let Some(r) = setup() else { return };
    let many: Vec<String> = vec!["x".into(); 5000];
    // 1.2 MB: execve takes it (for sandcell itself), the cell's bound does not.
    let long = vec!["x".repeat(100_000); 12];
    for (args, name) in [(many, "4096"), (long, "1048576")] {
        let out = sandcell()
            .arg("run")
            .arg("--rootfs")
            .arg(&r)
            .args(["--", "/bin/echo"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{stderr}");
    }
}

/// The largest VmRSS seen while `child` runs (sampled: it can only underestimate the peak).
fn peak_rss_kib(child: &mut std::process::Child) -> u64 {
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
        let rss = status.ok().and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_owned();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        });
        peak = peak.max(rss.unwrap_or(0));
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    peak
}

#[test]
fn pass_through_streams_large_output_in_bounded_memory() {
    let Some(r) = setup() else { return };
    let mut child = sandcell()
        // Generous time: 64 MiB through a pipe is slow in the emulated cgroup-v2 VM.
        .args([
            "run",
            "--output-limit",
            "128M",
            "--wall-time",
            "300s",
            "--cpu-time",
            "120s",
        ])
        .arg("--rootfs")
        .arg(&r)
        .args(["--", "head", "-c", "67108864", "/dev/zero"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let counter = std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let peak = peak_rss_kib(&mut child);
    assert_eq!(
        counter.join().unwrap().unwrap(),
        64 << 20,
        "all output passed through"
    );
    assert!(child.wait().unwrap().success());
    // Before streaming, the CLI held the whole output as well: 137 MiB here.
    assert!(
        peak < 32 * 1024,
        "sandcell run peaked at {peak} KiB for 64 MiB of output"
    );
}
