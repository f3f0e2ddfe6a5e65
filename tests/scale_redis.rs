//! Scale-out over Redis with real components: a private redis-server, API nodes
//! (`sandcell serve --queue`) and worker nodes (`sandcell worker`), each its own process.
//! Skips loudly without root, the test rootfs or `redis-server` (fails instead under
//! SANDCELL_MUST_RUN=1).

mod api_support;
mod common;
mod redis_support;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use api_support::{cell_cgroups_of, read_events, Daemon};
use redis_support::{create_app, finished_counts, have_redis, Redis, Worker};
use serde_json::json;

struct Env {
    rootfs: PathBuf,
    dir: tempfile::TempDir,
    redis: Redis,
}

fn setup() -> Option<Env> {
    let rootfs = common::setup()?;
    if !common::require(
        have_redis(),
        "needs redis-server (apt-get install redis-server)",
    ) {
        return None;
    }
    Some(Env {
        rootfs,
        dir: tempfile::Builder::new()
            .prefix("sandcell scale ")
            .tempdir()
            .unwrap(),
        redis: Redis::start(),
    })
}

impl Env {
    fn sub(&self, name: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }
    fn worker(&self, name: &str, workers: usize) -> Worker {
        Worker::start(
            &self.redis.url(),
            name,
            workers,
            &self.sub(&format!("worker-{name}")),
            &self.rootfs,
        )
    }
    fn api(&self, name: &str, extra: &[&str]) -> Daemon {
        let url = self.redis.url();
        let mut args = vec!["--queue", url.as_str(), "--workers", "1"];
        args.extend_from_slice(extra);
        Daemon::start(&self.sub(&format!("api-{name}")), &self.rootfs, &args)
    }
    /// Waits until `n` worker nodes sent a heartbeat.
    fn wait_nodes(&self, n: usize) {
        let mut conn = self.redis.conn();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let names: Vec<String> = redis::cmd("SMEMBERS")
                .arg("sandcell:nodes")
                .query(&mut conn)
                .unwrap();
            if names.len() >= n {
                return;
            }
            assert!(Instant::now() < deadline, "only {names:?} of {n} nodes");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn id_of(r: &api_support::Response) -> String {
    r.json()["id"].as_str().unwrap().to_string()
}

#[test]
fn api_nodes_and_two_workers_run_mixed_runs_once_each() {
    let Some(e) = setup() else { return };
    let key = create_app(&e.redis.url(), "judge", 1000);
    let config = e.dir.path().join("api.toml");
    std::fs::write(&config, "admin_apps = [\"judge\"]\n").unwrap();
    let a = e.worker("wa", 2);
    let b = e.worker("wb", 2);
    e.wait_nodes(2);
    let config = config.to_str().unwrap().to_string();
    let api1 = Arc::new(e.api("one", &["--config", &config]));
    // A second API node that also names an image no worker has.
    let api2 = Arc::new(e.api(
        "two",
        &["--image", &format!("lonely={}", e.rootfs.display())],
    ));

    let r = api2.post_run(&key, &json!({"image": "lonely", "cmd": ["true"]}));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error_code(), "no_worker_for_image");
    let r = api1.post_run("sk_nope", &json!({"image": "busybox", "cmd": ["true"]}));
    assert_eq!(r.status, 401);

    const RUNS: usize = 500;
    let next = Arc::new(Mutex::new(0usize));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (api1, api2, key, next, seen) =
                (api1.clone(), api2.clone(), key.clone(), next.clone(), seen.clone());
            std::thread::spawn(move || loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    if *n == RUNS {
                        return;
                    }
                    *n += 1;
                    *n - 1
                };
                let (submit, read) = if i % 2 == 0 { (&api1, &api2) } else { (&api2, &api1) };
                let (id, v) = match i % 5 {
                    0 => {
                        let r = submit.post_run(
                            &key,
                            &json!({"image": "busybox", "cmd": ["echo", format!("run {i}")], "wait": true}),
                        );
                        assert_eq!(r.status, 200, "{}", r.text());
                        let v = r.json();
                        assert_eq!(v["stdout"], format!("run {i}\n"), "{v}");
                        (id_of(&r), v)
                    }
                    1 => {
                        let r = submit.post_run(
                            &key,
                            &json!({"image": "busybox", "cmd": ["sh", "-c", "exit 3"]}),
                        );
                        assert_eq!(r.status, 202, "{}", r.text());
                        let id = id_of(&r);
                        let v = read.wait_done(&key, &id, Duration::from_secs(120));
                        assert_eq!(v["verdict"], "RE", "{v}");
                        (id, v["result"].clone())
                    }
                    2 | 3 => {
                        let r = submit.post_run(
                            &key,
                            &json!({"image": "busybox", "cmd": ["sh", "-c", "echo out; echo err >&2"]}),
                        );
                        assert_eq!(r.status, 202, "{}", r.text());
                        let id = id_of(&r);
                        // Output and result through the other API node's SSE.
                        let events = read_events(read.addr, &format!("/v1/runs/{id}/events"), &key);
                        let names: Vec<&str> = events.iter().map(|(_, n, _)| n.as_str()).collect();
                        assert_eq!(names.last(), Some(&"result"), "{names:?}");
                        assert!(names.contains(&"stdout") && names.contains(&"stderr"), "{names:?}");
                        let v = events.last().unwrap().2.clone();
                        assert_eq!(v["stdout"], "out\n");
                        (id, v)
                    }
                    _ => {
                        let r = submit.post_run(
                            &key,
                            &json!({"image": "busybox", "cmd": ["sleep", "30"]}),
                        );
                        assert_eq!(r.status, 202, "{}", r.text());
                        let id = id_of(&r);
                        // Cancelled through the other API node, queued or running.
                        let d = read.request("DELETE", &format!("/v1/runs/{id}"), Some(&key), None);
                        assert_eq!(d.status, 200, "{}", d.text());
                        let v = d.json();
                        assert_eq!(v["verdict"], "CANCELLED", "{v}");
                        (id, v["result"].clone())
                    }
                };
                seen.lock().unwrap().push((i, id, v));
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), RUNS);

    // Every run is done for either API node and listed once.
    let mut by_id = HashMap::new();
    for (i, id, _) in &seen {
        assert!(by_id.insert(id.clone(), *i).is_none(), "id {id} twice");
    }
    let list = api2
        .request("GET", "/v1/runs?limit=1000", Some(&key), None)
        .json();
    let runs = list["runs"].as_array().unwrap();
    assert_eq!(runs.len(), RUNS, "{list}");
    assert!(runs.iter().all(|r| r["status"] == "done"));

    let nodes = api1.request("GET", "/v1/nodes", Some(&key), None);
    assert_eq!(nodes.status, 200, "{}", nodes.text());
    let names: Vec<String> = nodes.json()["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["wa", "wb"]);
    assert_eq!(
        api2.request("GET", "/v1/nodes", Some(&key), None).status,
        403
    );
    let metrics = api1.request("GET", "/metrics", None, None).text();
    assert!(metrics.contains("sandcell_queue_depth 0"), "{metrics}");
    // Done entries are deleted: the stream holds nothing once everything ended.
    let len: u64 = redis::cmd("XLEN")
        .arg("sandcell:runs")
        .query(&mut e.redis.conn())
        .unwrap();
    assert_eq!(len, 0);
    assert!(
        metrics.contains("sandcell_node_free_slots{node=\"wa\"}"),
        "{metrics}"
    );

    // Each run ran at most once (cancelled-while-queued ones never), on some worker.
    let logs = [a.stop(), b.stop()];
    let counts = finished_counts(&logs);
    for (i, id, _) in &seen {
        let n = counts.get(id).copied().unwrap_or(0);
        if i % 5 == 4 {
            assert!(n <= 1, "run {i} finished {n} times");
        } else {
            assert_eq!(n, 1, "run {i} finished {n} times");
        }
    }
    assert!(counts.len() > 10 && logs.iter().all(|l| l.contains("run finished")));
}

#[test]
fn a_killed_worker_loses_its_started_runs_once_and_leaks_nothing() {
    let Some(e) = setup() else { return };
    let key = create_app(&e.redis.url(), "judge", 1000);
    let a = e.worker("wa", 2);
    let b = e.worker("wb", 2);
    e.wait_nodes(2);
    let api = e.api("one", &[]);
    let marker = format!("scale-kill-{}", std::process::id());
    let ids: Vec<String> = (0..100)
        .map(|i| {
            let r = api.post_run(
                &key,
                &json!({"image": "busybox",
                        "cmd": ["sh", "-c", format!("sleep 0.3; echo {marker} {i}")]}),
            );
            assert_eq!(r.status, 202, "{}", r.text());
            id_of(&r)
        })
        .collect();
    // Until worker wa runs something.
    let mut conn = e.redis.conn();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut running_on_a = 0;
        for id in &ids {
            let (w, s): (Option<String>, Option<String>) = redis::cmd("HMGET")
                .arg(format!("sandcell:run:{id}"))
                .arg("worker")
                .arg("status")
                .query(&mut conn)
                .unwrap();
            if w.as_deref() == Some("wa") && s.as_deref() == Some("running") {
                running_on_a += 1;
            }
        }
        if running_on_a > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "wa never ran anything");
        std::thread::sleep(Duration::from_millis(20));
    }
    let a_pid = a.pid();
    let a_log = a.kill9();

    // wb alone ends everything: wa's started runs XX once its heartbeat is gone.
    let results: Vec<_> = ids
        .iter()
        .map(|id| api.wait_done(&key, id, Duration::from_secs(180)))
        .collect();
    let (mut lost, mut ok) = (0, 0);
    for (i, v) in results.iter().enumerate() {
        match v["verdict"].as_str().unwrap() {
            "XX" => {
                assert_eq!(v["result"]["message"], "worker lost", "{v}");
                lost += 1;
            }
            "OK" => {
                assert_eq!(v["result"]["stdout"], format!("{marker} {i}\n"), "{v}");
                ok += 1;
            }
            other => panic!("run {i} ended {other}: {v}"),
        }
    }
    assert!(lost >= 1, "no run was running on the killed worker");
    assert!(lost <= 2, "more runs lost than wa had workers");
    assert_eq!(lost + ok, ids.len());

    // It comes back under the same name: the cells of its dead process are gone.
    let a2 = e.worker("wa", 2);
    assert!(
        cell_cgroups_of(&[a_pid]).is_empty(),
        "cgroups of the dead worker left"
    );
    let logs = [a_log, a2.stop(), b.stop()];
    let counts = finished_counts(&logs);
    for (i, (id, v)) in ids.iter().zip(&results).enumerate() {
        let n = counts.get(id).copied().unwrap_or(0);
        let want = usize::from(v["verdict"] == "OK");
        assert_eq!(n, want, "run {i} ({}) finished {n} times", v["verdict"]);
    }
    drop(api);
    assert!(common::host_processes_with(&marker).is_empty());
}

#[test]
fn a_worker_restarted_under_its_name_ends_what_it_had_taken() {
    let Some(e) = setup() else { return };
    let key = create_app(&e.redis.url(), "judge", 1000);
    let a = e.worker("wa", 2);
    e.wait_nodes(1);
    let api = e.api("one", &[]);
    let ids: Vec<String> = (0..6)
        .map(|_| {
            let r = api.post_run(&key, &json!({"image": "busybox", "cmd": ["sleep", "2"]}));
            assert_eq!(r.status, 202, "{}", r.text());
            id_of(&r)
        })
        .collect();
    let mut conn = e.redis.conn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ids.iter().any(|id| {
        let s: Option<String> = redis::cmd("HGET")
            .arg(format!("sandcell:run:{id}"))
            .arg("status")
            .query(&mut conn)
            .unwrap();
        s.as_deref() == Some("running")
    }) {
        assert!(Instant::now() < deadline, "nothing started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let a_log = a.kill9();
    // At once, with its heartbeat still alive: it recovers its own entries at start.
    let a2 = e.worker("wa", 2);
    let verdicts: Vec<String> = ids
        .iter()
        .map(|id| {
            api.wait_done(&key, id, Duration::from_secs(120))["verdict"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let lost = verdicts.iter().filter(|v| *v == "XX").count();
    assert!((1..=2).contains(&lost), "{verdicts:?}");
    assert_eq!(
        verdicts.iter().filter(|v| *v == "OK").count() + lost,
        ids.len()
    );
    let log = a2.stop();
    assert!(
        log.contains("recovered the runs of this node's previous process"),
        "{log}"
    );
    let counts = finished_counts(&[a_log, log]);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

#[test]
fn redis_restarted_mid_load_gives_503_then_recovers_without_restarting_sandcell() {
    let Some(mut e) = setup() else { return };
    // Without keys: apps do not survive a restart of a Redis without persistence, and a
    // key lookup in the moment after it would be a 401 that says nothing about the queue.
    let key = "unused".to_string();
    let w = e.worker("wa", 2);
    e.wait_nodes(1);
    let api = Arc::new(e.api("one", &["--no-auth"]));
    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(Vec::<(u16, Option<String>)>::new()));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (api, key, stop, statuses) =
                (api.clone(), key.clone(), stop.clone(), statuses.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    let r = api.post_run(
                        &key,
                        &json!({"image": "busybox", "cmd": ["echo", "hi"], "wait": true}),
                    );
                    if r.status == 200 {
                        assert_eq!(r.json()["stdout"], "hi\n", "{}", r.text());
                    }
                    statuses
                        .lock()
                        .unwrap()
                        .push((r.status, r.header("retry-after").map(str::to_string)));
                }
            })
        })
        .collect();
    let count = |status: u16| {
        statuses
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| *s == status)
            .count()
    };
    let wait_until = |what: &str, cond: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while !cond() {
            assert!(Instant::now() < deadline, "never: {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_until("20 runs before the restart", &|| count(200) >= 20);
    e.redis.kill();
    wait_until("a 503 while redis is away", &|| count(503) >= 1);
    let before = count(200);
    e.redis.restart();
    wait_until("runs again after the restart", &|| {
        count(200) >= before + 20
    });
    stop.store(true, Ordering::Release);
    for l in load {
        l.join().unwrap();
    }
    let statuses = statuses.lock().unwrap();
    for (status, retry) in statuses.iter() {
        assert!(
            *status == 200 || *status == 503,
            "status {status} (only 200 and 503 allowed)\n{}",
            api.log()
        );
        if *status == 503 {
            assert!(retry.is_some(), "503 without Retry-After");
        }
    }
    drop(w);
}

#[test]
fn quota_and_idempotency_keys_span_api_nodes() {
    let Some(e) = setup() else { return };
    let key = create_app(&e.redis.url(), "small", 2);
    let w = e.worker("wa", 2);
    e.wait_nodes(1);
    let api1 = e.api("one", &[]);
    let api2 = e.api("two", &[]);
    let sleep = json!({"image": "busybox", "cmd": ["sleep", "30"]}).to_string();
    let post = |api: &Daemon, idem: &str, body: &str| {
        api_support::request_with(
            api.addr,
            "POST",
            "/v1/runs",
            Some(&key),
            &[("Idempotency-Key", idem)],
            Some(body.as_bytes()),
        )
    };
    let first = post(&api1, "k1", &sleep);
    assert_eq!(first.status, 202, "{}", first.text());
    // The same key on the other node: the same run, no quota used.
    let again = post(&api2, "k1", &sleep);
    assert_eq!(again.status, 202, "{}", again.text());
    assert_eq!(id_of(&again), id_of(&first));
    let other = post(
        &api2,
        "k1",
        &json!({"image": "busybox", "cmd": ["true"]}).to_string(),
    );
    assert_eq!(other.status, 422, "{}", other.text());
    assert_eq!(other.error_code(), "idempotency_key_reused");
    let second = post(&api2, "k2", &sleep);
    assert_eq!(second.status, 202, "{}", second.text());
    // Two active runs over both nodes: the quota is used up on either.
    let third = post(&api1, "k3", &sleep);
    assert_eq!(third.status, 429, "{}", third.text());
    assert!(third.header("retry-after").is_some());
    // Cancelling one (on the other node) gives its unit back.
    let d = api2.request(
        "DELETE",
        &format!("/v1/runs/{}", id_of(&first)),
        Some(&key),
        None,
    );
    assert_eq!(d.status, 200, "{}", d.text());
    assert_eq!(d.json()["verdict"], "CANCELLED");
    let fourth = post(
        &api1,
        "k4",
        &json!({"image": "busybox", "cmd": ["true"], "wait": true}).to_string(),
    );
    assert_eq!(fourth.status, 200, "{}", fourth.text());
    assert_eq!(fourth.json()["verdict"], "OK");
    let d = api1.request(
        "DELETE",
        &format!("/v1/runs/{}", id_of(&second)),
        Some(&key),
        None,
    );
    assert_eq!(d.json()["verdict"], "CANCELLED");
    // Another app's runs are not this one's.
    let other_key = create_app(&e.redis.url(), "other", 2);
    let r = api1.request(
        "GET",
        &format!("/v1/runs/{}", id_of(&second)),
        Some(&other_key),
        None,
    );
    assert_eq!(r.status, 403);
    drop(w);
}
