//! End-to-end tests of `/v1/gradings`: the real daemon on a loopback port grading the shipped
//! example suites in the real cpp and python images, compared with `sandcell grade`.

mod api_support;
mod common;
mod grade_support;

use std::path::Path;
use std::time::{Duration, Instant};

use api_support::{create_app, read_events, Daemon};
use grade_support::{grade_json, images, repo, test, verdicts};
use serde_json::{json, Value};

struct Env {
    daemon: Daemon,
    key: String,
    images: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A daemon whose state dir shares the image store holding cpp and python.
fn env() -> Option<Env> {
    env_with_workers("2")
}

fn env_with_workers(workers: &str) -> Option<Env> {
    let images = images()?;
    let rootfs = common::setup()?;
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(images.join("images"), dir.path().join("images")).unwrap();
    let key = create_app(dir.path(), "grader", 8);
    let daemon = Daemon::start(dir.path(), &rootfs, &["--workers", workers]);
    Some(Env {
        daemon,
        key,
        images,
        _dir: dir,
    })
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &Path, prefix: &str, out: &mut Vec<Value>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.path().is_dir() {
            files_under(&entry.path(), &format!("{name}/"), out);
        } else {
            let content = std::fs::read_to_string(entry.path()).unwrap();
            out.push(json!({"path": name, "content": content}));
        }
    }
}

/// The request for an example suite (`examples/NAME/suite.toml`) with `solution` as the
/// submission: the suite as JSON, every file of the example's directory uploaded.
fn request(example: &str, solution: &str, wait: bool) -> Value {
    let dir = repo().join("examples").join(example);
    let text = std::fs::read_to_string(dir.join("suite.toml")).unwrap();
    let suite = sandcell::grade::parse(&text, sandcell::grade::SuiteFormat::Toml).unwrap();
    let mut suite = serde_json::to_value(&suite).unwrap();
    suite["submission"] = json!([format!("solutions/{solution}")]);
    let mut files = Vec::new();
    files_under(&dir, "", &mut files);
    json!({"suite": suite, "files": files, "wait": wait, "jobs": 2})
}

fn post(e: &Env, body: &Value) -> api_support::Response {
    e.daemon.request(
        "POST",
        "/v1/gradings",
        Some(&e.key),
        Some(&body.to_string()),
    )
}

fn cli(e: &Env, example: &str, solution: &str) -> Value {
    let suite = format!("examples/{example}/suite.toml");
    let sub = format!("examples/{example}/solutions/{solution}");
    grade_json(
        Some(&e.images),
        &[&suite, "--jobs", "2", "--submission", &sub],
    )
    .0
}

/// The per-test facts that must match the CLI (times and memory vary between runs).
fn facts(report: &Value) -> Vec<(String, String, Option<String>)> {
    report["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or("?").to_string(),
                t["verdict"].as_str().unwrap_or("?").to_string(),
                t["diff"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn same_as_cli(e: &Env, example: &str, solution: &str) -> Value {
    let r = post(e, &request(example, solution, true));
    assert_eq!(r.status, 200, "{}", r.text());
    let http = r.json();
    assert_eq!(http["status"], "done");
    assert!(http["id"].as_str().is_some_and(|id| id.len() >= 16));
    let cli = cli(e, example, solution);
    assert_eq!(http["schema"], cli["schema"]);
    assert_eq!(http["suite"], cli["suite"]);
    assert_eq!(http["verdict"], cli["verdict"], "{http:#}\n{cli:#}");
    assert_eq!(http["passed"], cli["passed"]);
    assert_eq!(http["total"], cli["total"]);
    assert_eq!(http["score"], cli["score"]);
    // The CLI also counts its warm cells (the daemon's launcher is shared, so it does not).
    let mut cli_cells = cli["cells"].clone();
    cli_cells.as_object_mut().unwrap().remove("warm");
    assert_eq!(http["cells"], cli_cells);
    assert_eq!(facts(&http), facts(&cli), "{http:#}\n{cli:#}");
    // Same keys as the CLI's report, plus id and status.
    let mut keys: Vec<_> = http.as_object().unwrap().keys().cloned().collect();
    keys.retain(|k| k != "id" && k != "status");
    let cli_keys: Vec<_> = cli.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys, cli_keys);
    http
}

#[test]
fn cpp_sum_verdicts_match_the_cli() {
    let Some(e) = env() else { return };
    let ok = same_as_cli(&e, "sum", "correct.cpp");
    assert_eq!(ok["verdict"], "AC");
    assert!(verdicts(&ok).iter().all(|v| v == "AC"), "{ok:#}");
    let wrong = same_as_cli(&e, "sum", "wrong.cpp");
    assert_eq!(wrong["verdict"], "WA");
    assert_eq!(test(&wrong, "int32-overflow")["verdict"], "WA");
    assert!(test(&wrong, "int32-overflow")["diff"]
        .as_str()
        .unwrap_or_default()
        .contains("expected 2147483648"));
    let ce = same_as_cli(&e, "sum", "compile_error.cpp");
    assert_eq!(ce["verdict"], "CE");
    assert_eq!(ce["cells"]["tests"], 0);
}

#[test]
fn python_split_with_a_checker_matches_the_cli() {
    let Some(e) = env() else { return };
    let ok = same_as_cli(&e, "split", "correct.py");
    assert_eq!(ok["verdict"], "AC", "{ok:#}");
    let wrong = same_as_cli(&e, "split", "wrong.py");
    assert_ne!(wrong["verdict"], "AC", "{wrong:#}");
}

#[test]
fn async_grading_polls_to_done_and_streams_every_test_before_done() {
    let Some(e) = env() else { return };
    let r = post(&e, &request("sum", "wrong.cpp", false));
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(r.json()["status"], "queued");
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/gradings/{id}").as_str())
    );

    let events = read_events(e.daemon.addr, &format!("/v1/gradings/{id}/events"), &e.key);
    let names: Vec<&str> = events.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"status"), "{names:?}");
    assert_eq!(names.get(1), Some(&"compiled"), "{names:?}");
    assert_eq!(names.last(), Some(&"done"), "{names:?}");
    let tests: Vec<&Value> = events
        .iter()
        .filter(|(_, n, _)| n == "test")
        .map(|(_, _, d)| d)
        .collect();
    assert_eq!(tests.len(), 10, "{names:?}");
    assert_eq!(names.len(), 13, "{names:?}");
    let done = &events.last().unwrap().2;
    assert_eq!(done["id"], id.as_str());
    for t in &tests {
        assert_eq!(
            t["verdict"],
            test(done, t["name"].as_str().unwrap())["verdict"]
        );
    }

    // Polling reaches the same report.
    let deadline = Instant::now() + Duration::from_secs(120);
    let view = loop {
        let r = e
            .daemon
            .request("GET", &format!("/v1/gradings/{id}"), Some(&e.key), None);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        if v["status"] == "done" {
            break v;
        }
        assert!(Instant::now() < deadline, "grading never finished: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(view["verdict"], "WA");
    // Another app sees neither the grading nor its events.
    let other = create_app(&e.daemon.state_dir, "other", 1);
    for path in [
        format!("/v1/gradings/{id}"),
        format!("/v1/gradings/{id}/events"),
    ] {
        let r = e.daemon.request("GET", &path, Some(&other), None);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    assert_eq!(view["report"], *done);
    assert!(view["finished_at"].as_i64() >= view["created_at"].as_i64());
}

#[test]
fn bad_requests_are_answered_with_json_errors() {
    let Some(e) = env() else { return };
    // A bad suite names the field.
    let mut body = request("sum", "correct.cpp", true);
    body["suite"]["tests"][2]["comparator"] = json!("fuzzy");
    let r = post(&e, &body);
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_suite");
    assert!(r.text().contains("tests[2].comparator"), "{}", r.text());

    // A file the suite names is missing.
    let mut body = request("sum", "correct.cpp", true);
    body["files"]
        .as_array_mut()
        .unwrap()
        .retain(|f| f["path"] != "tests/int64.out");
    let r = post(&e, &body);
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.text().contains("expected_file"), "{}", r.text());

    // Host directories are refused.
    let mut body = request("sum", "correct.cpp", true);
    body["suite"]["language"] = Value::Null;
    body["suite"]["rootfs"] = json!("/");
    let r = post(&e, &body);
    assert_eq!(r.status, 422, "{}", r.text());

    // Paths escaping the suite.
    let mut body = request("sum", "correct.cpp", true);
    body["files"][0]["path"] = json!("../x");
    let r = post(&e, &body);
    assert_eq!(r.status, 422, "{}", r.text());

    // Unknown request field, malformed JSON.
    let mut body = request("sum", "correct.cpp", true);
    body["jbos"] = json!(2);
    assert_eq!(post(&e, &body).status, 400);
    let r = e
        .daemon
        .request("POST", "/v1/gradings", Some(&e.key), Some("{"));
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "invalid_json");

    // No key; a wrong key; an unknown grading.
    let body = request("sum", "correct.cpp", true).to_string();
    let r = e.daemon.request("POST", "/v1/gradings", None, Some(&body));
    assert_eq!(r.status, 401, "{}", r.text());
    let r = e
        .daemon
        .request("POST", "/v1/gradings", Some("sk_wrong"), Some(&body));
    assert_eq!(r.status, 401, "{}", r.text());
    let r = e.daemon.request("GET", "/v1/gradings/nope", None, None);
    assert_eq!(r.status, 401);
    let r = e
        .daemon
        .request("GET", "/v1/gradings/nope", Some(&e.key), None);
    assert_eq!(r.status, 404);

    // The OpenAPI document lists the routes.
    let doc = e.daemon.request("GET", "/openapi.json", None, None).json();
    for path in [
        "/v1/gradings",
        "/v1/gradings/{id}",
        "/v1/gradings/{id}/events",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} missing");
    }
}

#[test]
fn gradings_queue_like_runs_and_a_shutdown_ends_the_queued_ones() {
    // One worker: the second grading waits in the one job queue behind the first.
    let Some(e) = env_with_workers("1") else {
        return;
    };
    let slow = json!({
        "suite": {
            "language": "cpp",
            "submission": ["main.cpp"],
            "compile": ["sh", "-c", "sleep 30"],
            "tests": [{"name": "t", "stdin": "", "expected_stdout": ""}]
        },
        "files": [{"path": "main.cpp", "content": "int main() {}"}],
        "wait": false
    });
    let first = post(&e, &slow);
    assert_eq!(first.status, 202, "{}", first.text());
    let id = first.json()["id"].as_str().unwrap().to_string();
    let get = |id: &str| {
        let r = e
            .daemon
            .request("GET", &format!("/v1/gradings/{id}"), Some(&e.key), None);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    // The worker took it (its compile sleeps 30 s).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while get(&id)["status"] != "running" {
        assert!(std::time::Instant::now() < deadline, "{:#}", get(&id));
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = post(&e, &request("sum", "correct.cpp", false));
    assert_eq!(second.status, 202, "{}", second.text());
    assert_eq!(second.json()["status"], "queued");
    let queued = second.json()["id"].as_str().unwrap().to_string();
    assert_eq!(get(&id)["status"], "running");
    assert_eq!(get(&queued)["status"], "queued");
    // SIGTERM: the running grading is cancelled, the queued one ends at once (cancelled,
    // its tests SKIPPED), and the daemon exits cleanly.
    let Env {
        daemon, key, _dir, ..
    } = e;
    let state_dir = daemon.state_dir.clone();
    let status = daemon.stop();
    assert!(status.success(), "{status:?}");
    let rootfs = common::setup().unwrap();
    let d = Daemon::start(&state_dir, &rootfs, &["--workers", "1"]);
    let r = d.request("GET", &format!("/v1/gradings/{queued}"), Some(&key), None);
    assert_eq!(r.status, 200, "{}", r.text());
    let ended = r.json();
    assert_eq!(ended["status"], "done", "{ended:#}");
    assert_ne!(ended["report"]["verdict"], "AC", "{ended:#}");
    let v = verdicts(&ended["report"]);
    assert!(
        !v.is_empty() && v.iter().all(|v| v == "SKIPPED"),
        "{ended:#}"
    );
    d.stop();
}

#[test]
fn a_retried_grading_with_the_same_idempotency_key_is_the_same_grading() {
    let Some(e) = env() else { return };
    let body = request("sum", "correct.cpp", false).to_string();
    let post_keyed = |ikey: &str, body: &str| {
        api_support::request_with(
            e.daemon.addr,
            "POST",
            "/v1/gradings",
            Some(&e.key),
            &[("Idempotency-Key", ikey)],
            Some(body.as_bytes()),
        )
    };
    let first = post_keyed("grade-1", &body);
    assert_eq!(first.status, 202, "{}", first.text());
    let id = first.json()["id"].as_str().unwrap().to_string();
    let again = post_keyed("grade-1", &body);
    assert_eq!(again.status, 202, "{}", again.text());
    assert_eq!(again.json()["id"], id.as_str());
    // wait: true on the replay answers the first grading's report.
    let waited = request("sum", "correct.cpp", true).to_string();
    let r = post_keyed("grade-2", &waited);
    assert_eq!(r.status, 200, "{}", r.text());
    let replayed = post_keyed("grade-2", &waited);
    assert_eq!(replayed.status, 200, "{}", replayed.text());
    assert_eq!(replayed.json()["id"], r.json()["id"]);
    assert_eq!(replayed.json()["verdict"], "AC");
    let other = post_keyed("grade-3", &body);
    assert_ne!(other.json()["id"], id.as_str());
    let changed = post_keyed("grade-1", &waited);
    assert_eq!(changed.status, 422, "{}", changed.text());
}

/// A python suite whose tests sleep the seconds their stdin says, then print "ok".
fn sleepy_suite(sleeps: &[u32], jobs: u32) -> Value {
    let tests: Vec<Value> = sleeps
        .iter()
        .enumerate()
        .map(|(i, s)| json!({"name": format!("t{i}"), "stdin": format!("{s}\n"), "expected_stdout": "ok\n"}))
        .collect();
    json!({
        "suite": {
            "language": "python",
            "submission": ["main.py"],
            "limits": {"time": "10s", "wall_time": "50s"},
            "tests": tests,
        },
        "files": [{"path": "main.py", "content": "import time\ntime.sleep(float(input()))\nprint('ok')\n"}],
        "jobs": jobs,
    })
}

#[test]
fn a_grading_survives_kill_9_with_its_finished_tests() {
    let Some(e) = env() else { return };
    // Finished before the crash: readable after it.
    let done = post(&e, &{
        let mut b = sleepy_suite(&[0], 1);
        b["wait"] = true.into();
        b
    });
    assert_eq!(done.status, 200, "{}", done.text());
    let done_id = done.json()["id"].as_str().unwrap().to_string();
    // Running at the crash: t0 done, t1 sleeping, t2 not started.
    let r = post(&e, &sleepy_suite(&[0, 30, 30], 1));
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    api_support::wait_for_event(
        e.daemon.addr,
        &format!("/v1/gradings/{id}/events"),
        &e.key,
        "test",
        Duration::from_secs(60),
    );
    let Env {
        daemon, key, _dir, ..
    } = e;
    let state_dir = daemon.state_dir.clone();
    daemon.kill9();

    let rootfs = common::setup().unwrap();
    let d = Daemon::start(&state_dir, &rootfs, &["--workers", "2"]);
    let get = |id: &str| {
        let r = d.request("GET", &format!("/v1/gradings/{id}"), Some(&key), None);
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    let old = get(&done_id);
    assert_eq!(
        (&old["status"], &old["verdict"]),
        (&"done".into(), &"AC".into()),
        "{old:#}"
    );
    assert_eq!(old["report"]["tests"][0]["verdict"], "AC");

    let cut = get(&id);
    assert_eq!(cut["status"], "done", "{cut:#}");
    let report = &cut["report"];
    assert_eq!(report["verdict"], "XX", "{cut:#}");
    assert_eq!(report["message"], "daemon restarted");
    assert_eq!(verdicts(report), ["AC", "XX", "XX"], "{cut:#}");
    assert_eq!(test(report, "t2")["message"], "daemon restarted");
    assert!(
        d.log().contains("ended the unfinished gradings"),
        "{}",
        d.log()
    );
    d.stop();
}

#[test]
fn runs_and_gradings_share_the_daemons_cells() {
    let Some(e) = env_with_workers("2") else {
        return;
    };
    // A grading wanting 4 tests at once, and runs beside it: never more than 2 cells.
    let grading = post(&e, &sleepy_suite(&[0, 1, 1, 1, 1, 1], 4));
    assert_eq!(grading.status, 202, "{}", grading.text());
    let id = grading.json()["id"].as_str().unwrap().to_string();
    let runs: Vec<String> = (0..4)
        .map(|_| {
            let r = e
                .daemon
                .post_run(&e.key, &json!({"image": "busybox", "cmd": ["sleep", "1"]}));
            assert_eq!(r.status, 202, "{}", r.text());
            r.json()["id"].as_str().unwrap().to_string()
        })
        .collect();
    for run in &runs {
        let v = e.daemon.wait_done(&e.key, run, Duration::from_secs(120));
        assert_eq!(v["verdict"], "OK", "{v}");
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = e
            .daemon
            .request("GET", &format!("/v1/gradings/{id}"), Some(&e.key), None);
        if r.json()["status"] == "done" {
            assert_eq!(r.json()["verdict"], "AC", "{}", r.text());
            break;
        }
        assert!(Instant::now() < deadline, "grading not done");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = e.daemon.request("GET", "/metrics", None, None).text();
    let gauge = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
    };
    let peak = gauge("sandcell_cells_running_peak");
    assert!(
        (1..=2).contains(&peak),
        "{peak} cells at once with 2 workers"
    );
    assert_eq!(gauge("sandcell_cells_running"), 0);
    // Both kinds of job are counted by the one queue.
    let graded: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("sandcell_jobs_total{kind=\"grading\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(graded >= 1, "no finished grading counted in\n{metrics}");
}
