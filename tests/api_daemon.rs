//! End-to-end tests of `sandcell serve`: the real daemon binary on a loopback port with a
//! temporary state dir, running real cells from the busybox test rootfs.

mod api_support;
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use api_support::{cell_cgroups_of, create_app, read_events, Daemon};
use serde_json::{json, Value};

fn sh(script: &str) -> serde_json::Value {
    json!({"image": "busybox", "cmd": ["sh", "-c", script]})
}

fn sh_wait(script: &str) -> serde_json::Value {
    let mut v = sh(script);
    v["wait"] = json!(true);
    v
}

struct Env {
    rootfs: PathBuf,
    dir: tempfile::TempDir,
}

fn env() -> Option<Env> {
    let rootfs = common::setup()?;
    Some(Env {
        rootfs,
        dir: tempfile::tempdir().unwrap(),
    })
}

#[test]
fn hello_world_sync_and_async() {
    let Some(e) = env() else { return };
    let key = create_app(e.dir.path(), "judge", 16);
    let d = Daemon::start(e.dir.path(), &e.rootfs, &[]);

    let r = d.post_run(&key, &sh_wait("echo hello, world; echo oops >&2; exit 3"));
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "done");
    assert_eq!(v["verdict"], "RE", "{v}");
    assert_eq!(v["exit_code"], 3);
    assert_eq!(v["stdout"], "hello, world\n");
    assert_eq!(v["stderr"], "oops\n");
    assert!(v["id"].as_str().unwrap().len() >= 16);

    // Files, stdin (base64) and env reach the program.
    let body = json!({
        "image": "busybox",
        "cmd": ["sh", "-c", "cat sub/in.txt; cat; echo \"$GREETING\"; ./run.sh"],
        "files": [
            {"path": "sub/in.txt", "content": "from a file\n"},
            {"path": "run.sh", "content": "IyEvYmluL3NoCmVjaG8gZXhlY3V0YWJsZQo=", "encoding": "base64", "executable": true}
        ],
        "stdin": "ZnJvbSBzdGRpbgo=",
        "stdin_encoding": "base64",
        "env": {"GREETING": "hi there"},
        "limits": {"wall_time": 5000, "memory": 67108864, "pids": 16, "output": 4096},
        "wait": true
    });
    let r = d.post_run(&key, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["verdict"], "OK", "{v}");
    assert_eq!(
        v["stdout"],
        "from a file\nfrom stdin\nhi there\nexecutable\n"
    );

    // Async: 202 + Location, then poll until done.
    let r = d.post_run(&key, &sh("echo later"));
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/runs/{id}").as_str())
    );
    let v = d.wait_done(&key, &id, Duration::from_secs(60));
    assert_eq!(v["verdict"], "OK");
    assert_eq!(v["result"]["stdout"], "later\n");
    assert!(v["finished_at"].as_i64().unwrap() >= v["created_at"].as_i64().unwrap());

    // A time limit ends the run as TO.
    let mut body = sh_wait("sleep 10");
    body["limits"] = json!({"wall_time": 300});
    let v = d.post_run(&key, &body).json();
    assert_eq!(v["verdict"], "TO", "{v}");

    let metrics = d.request("GET", "/metrics", None, None).text();
    assert!(
        metrics.contains("sandcell_runs_total{verdict=\"OK\"} 2"),
        "{metrics}"
    );
    // Every run's cell was prepared, ahead (warm) or when it started (cold).
    let count = |source: &str| -> u64 {
        let prefix = format!("sandcell_cells_total{{source=\"{source}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix}in {metrics}"))
    };
    assert!(count("warm") + count("cold") >= 3, "{metrics}");
    let status = d.stop();
    assert!(status.success(), "daemon exit {status:?}");
}

#[test]
fn sse_streams_output_before_the_run_ends() {
    let Some(e) = env() else { return };
    let key = create_app(e.dir.path(), "judge", 16);
    let d = Daemon::start(e.dir.path(), &e.rootfs, &[]);
    let r = d.post_run(
        &key,
        &sh("echo one; sleep 1; echo two; sleep 1; echo three"),
    );
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().unwrap().to_string();
    let events = read_events(d.addr, &format!("/v1/runs/{id}/events"), &key);
    let names: Vec<&str> = events.iter().map(|(_, n, _)| n.as_str()).collect();
    let stdout: Vec<String> = events
        .iter()
        .filter(|(_, n, _)| n == "stdout")
        .map(|(_, _, d)| d["text"].as_str().unwrap().to_string())
        .collect();
    // Each line came as its own event, in order, before the final result.
    assert_eq!(stdout, ["one\n", "two\n", "three\n"], "{names:?}");
    assert_eq!(names.last(), Some(&"result"), "{names:?}");
    let result = &events.last().unwrap().2;
    assert_eq!(result["stdout"], "one\ntwo\nthree\n");
    assert_eq!(result["verdict"], "OK");
    let last_stdout = names.iter().rposition(|n| *n == "stdout").unwrap();
    let done = names.iter().position(|n| *n == "result").unwrap();
    assert!(last_stdout < done);
    // The events of a finished run: its status, its whole output replayed (one event per
    // stream), its result, and the stream ends.
    let again = read_events(d.addr, &format!("/v1/runs/{id}/events"), &key);
    let names: Vec<&str> = again.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"status"));
    assert_eq!(names.last(), Some(&"result"));
    let replayed: Vec<&Value> = again
        .iter()
        .filter(|(_, n, _)| n == "stdout")
        .map(|(_, _, d)| d)
        .collect();
    assert_eq!(replayed.len(), 1, "{names:?}");
    assert_eq!(replayed[0]["text"], "one\ntwo\nthree\n");
    assert!(!names.contains(&"stderr"), "{names:?}");
}

#[test]
fn fifty_concurrent_requests_all_get_their_own_result() {
    let Some(e) = env() else { return };
    let key = create_app(e.dir.path(), "judge", 100);
    let d = Daemon::start(e.dir.path(), &e.rootfs, &[]);
    let addr = d.addr;
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let key = key.clone();
            std::thread::spawn(move || {
                let mut body = sh_wait("echo \"n=$N\"; cat");
                body["env"] = json!({"N": i.to_string()});
                body["stdin"] = json!(format!("input {i}"));
                let r = api_support::request(
                    addr,
                    "POST",
                    "/v1/runs",
                    Some(&key),
                    Some(body.to_string().as_bytes()),
                );
                (i, r)
            })
        })
        .collect();
    for t in threads {
        let (i, r) = t.join().unwrap();
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        let v = r.json();
        assert_eq!(v["verdict"], "OK", "request {i}: {v}");
        assert_eq!(v["stdout"], format!("n={i}\ninput {i}"), "request {i}");
    }
    let list = d
        .request("GET", "/v1/runs?limit=1000&status=done", Some(&key), None)
        .json();
    assert_eq!(list["runs"].as_array().unwrap().len(), 50);
}

#[test]
fn a_small_queue_turns_requests_away_and_none_hangs() {
    let Some(e) = env() else { return };
    let key = create_app(e.dir.path(), "judge", 1000);
    let d = Daemon::start(
        e.dir.path(),
        &e.rootfs,
        &["--max-queue", "5", "--workers", "1"],
    );
    let addr = d.addr;
    let threads: Vec<_> = (0..30)
        .map(|i| {
            let key = key.clone();
            std::thread::spawn(move || {
                let body = sh_wait(&format!("sleep 0.2; echo {i}"));
                let r = api_support::request(
                    addr,
                    "POST",
                    "/v1/runs",
                    Some(&key),
                    Some(body.to_string().as_bytes()),
                );
                (i, r)
            })
        })
        .collect();
    let (mut ok, mut busy) = (0, 0);
    for t in threads {
        let (i, r) = t.join().unwrap();
        match r.status {
            200 => {
                assert_eq!(r.json()["stdout"], format!("{i}\n"));
                ok += 1;
            }
            503 => {
                assert_eq!(r.error_code(), "queue_full");
                assert!(r.header("retry-after").is_some());
                busy += 1;
            }
            s => panic!("request {i}: unexpected {s}: {}", r.text()),
        }
    }
    assert!(ok >= 1, "no request got through");
    assert!(busy >= 1, "the queue of 5 never filled with 30 requests");
    assert_eq!(ok + busy, 30);
}

#[test]
fn auth_and_quota_on_the_real_daemon() {
    let Some(e) = env() else { return };
    let key = create_app(e.dir.path(), "tiny", 1);
    let d = Daemon::start(e.dir.path(), &e.rootfs, &[]);
    let r = d.request("POST", "/v1/runs", None, Some(&sh("true").to_string()));
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "unauthorized");
    let r = d.post_run("sk_0000", &sh("true"));
    assert_eq!(r.status, 401);
    let first = d.post_run(&key, &sh("sleep 30"));
    assert_eq!(first.status, 202);
    let r = d.post_run(&key, &sh("true"));
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "quota_exceeded");
    assert!(r.header("retry-after").is_some());
    // Cancelling the running one frees the quota.
    let id = first.json()["id"].as_str().unwrap().to_string();
    let c = d.request("DELETE", &format!("/v1/runs/{id}"), Some(&key), None);
    assert!(c.status == 200 || c.status == 202, "{}", c.text());
    let v = d.wait_done(&key, &id, Duration::from_secs(30));
    assert_eq!(v["verdict"], "CANCELLED", "{v}");
    let r = d.post_run(&key, &sh_wait("echo again"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["stdout"], "again\n");
}

#[test]
fn bad_input_over_the_wire_writes_nothing_outside_the_cell() {
    let Some(e) = env() else { return };
    let key = create_app(e.dir.path(), "judge", 16);
    let d = Daemon::start(e.dir.path(), &e.rootfs, &[]);
    let victim = format!("sandcell-api-escape-{}", std::process::id());
    let bodies = [
        (
            json!({"image":"busybox","cmd":["true"],"files":[{"path": format!("../../../../../../tmp/{victim}"),"content":"x"}]}),
            422,
        ),
        (
            json!({"image":"busybox","cmd":["true"],"files":[{"path": format!("/tmp/{victim}"),"content":"x"}]}),
            422,
        ),
        (json!({"image":"../../etc","cmd":["true"]}), 422),
        (
            json!({"image":"busybox","cmd":["true"],"limits":{"pids":-3}}),
            422,
        ),
        (
            json!({"image":"busybox","cmd":["true"],"files":[{"path":"a","content":"***","encoding":"base64"}]}),
            422,
        ),
    ];
    for (body, status) in bodies {
        let r = d.post_run(&key, &body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(!r.error_code().is_empty());
    }
    let r = d.request("POST", "/v1/runs", Some(&key), Some("{not json"));
    assert_eq!(r.status, 400);
    let big = format!(
        "{{\"image\":\"busybox\",\"cmd\":[\"true\"],\"stdin\":\"{}\"}}",
        "a".repeat(10 << 20)
    );
    let r = d.request("POST", "/v1/runs", Some(&key), Some(&big));
    assert_eq!(r.status, 413);
    assert!(!Path::new(&format!("/tmp/{victim}")).exists());
    assert!(!Path::new("/etc/x").exists());
    // The daemon is fine afterwards.
    let r = d.post_run(&key, &sh_wait("echo still here"));
    assert_eq!(r.json()["stdout"], "still here\n");
}

#[test]
fn kill_9_with_runs_in_flight_loses_none() {
    let Some(e) = env() else { return };
    let key = create_app(e.dir.path(), "judge", 100);
    let mounts_before = common::mount_count();
    let marker = format!("sandcell-crash-marker-{}", std::process::id());
    let d = Daemon::start(e.dir.path(), &e.rootfs, &["--workers", "2"]);
    let first_pid = d.pid();
    let mut ids = Vec::new();
    for i in 0..20 {
        let r = d.post_run(&key, &sh(&format!("sleep 1; echo {marker} {i}")));
        assert_eq!(r.status, 202, "{}", r.text());
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    // Wait until cells are really running, then crash.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let running = d
            .request("GET", "/v1/runs?status=running", Some(&key), None)
            .json();
        if !running["runs"].as_array().unwrap().is_empty()
            && !common::host_processes_with(&marker).is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no run started");
        std::thread::sleep(Duration::from_millis(20));
    }
    d.kill9();
    // The cells die with their launcher.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !common::host_processes_with(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "cell processes outlived the daemon: {:?}",
            common::host_processes_with(&marker)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let d = Daemon::start(e.dir.path(), &e.rootfs, &["--workers", "2"]);
    let second_pid = d.pid();
    let (mut restarted, mut ok) = (0, 0);
    let results: Vec<_> = ids
        .iter()
        .map(|id| d.wait_done(&key, id, Duration::from_secs(120)))
        .collect();
    for (i, v) in results.into_iter().enumerate() {
        match v["verdict"].as_str().unwrap() {
            "XX" => {
                assert_eq!(v["result"]["message"], "daemon restarted", "{v}");
                restarted += 1;
            }
            "OK" => {
                assert_eq!(v["result"]["stdout"], format!("{marker} {i}\n"));
                ok += 1;
            }
            other => panic!("run {i} ended {other}: {v}\n{}", d.log()),
        }
    }
    assert!(restarted >= 1, "no run was running at the crash");
    assert!(restarted <= 2, "more runs were running than workers");
    assert_eq!(restarted + ok, 20);
    let list = d
        .request("GET", "/v1/runs?limit=100", Some(&key), None)
        .json();
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 20);
    assert!(runs.iter().all(|r| r["status"] == "done"));
    assert!(d.log().contains("recovered runs of the previous process"));
    drop(d);
    assert!(common::host_processes_with(&marker).is_empty());
    let left = cell_cgroups_of(&[first_pid, second_pid]);
    assert!(left.is_empty(), "leftover cell cgroups: {left:?}");
    assert_eq!(common::mount_count(), mounts_before, "leftover mounts");
}

#[test]
fn sigterm_finishes_running_cells_and_keeps_queued_runs() {
    let Some(e) = env() else { return };
    let key = create_app(e.dir.path(), "judge", 100);
    let d = Daemon::start(e.dir.path(), &e.rootfs, &["--workers", "1"]);
    let addr = d.addr;
    let k = key.clone();
    let waiter = std::thread::spawn(move || {
        let body = sh_wait("sleep 1; echo finished");
        api_support::request(
            addr,
            "POST",
            "/v1/runs",
            Some(&k),
            Some(body.to_string().as_bytes()),
        )
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while d
        .request("GET", "/v1/runs?status=running", Some(&key), None)
        .json()["runs"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "run did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let queued = d.post_run(&key, &sh("echo after restart"));
    assert_eq!(queued.status, 202);
    let queued_id = queued.json()["id"].as_str().unwrap().to_string();
    let status = d.stop();
    assert!(status.success(), "exit {status:?}");
    let r = waiter.join().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["stdout"], "finished\n");

    let d = Daemon::start(e.dir.path(), &e.rootfs, &["--workers", "1"]);
    let v = d.wait_done(&key, &queued_id, Duration::from_secs(60));
    assert_eq!(v["verdict"], "OK");
    assert_eq!(v["result"]["stdout"], "after restart\n");
}
