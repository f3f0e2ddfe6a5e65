//! The HTTP layer through `router(state).oneshot(...)`: auth, the bad-input table, quotas, a
//! full queue, ownership, cancel of a queued run. No worker threads run here, so accepted runs
//! stay queued (which is what makes the quota and queue tests deterministic).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use sandcell::api::auth::{generate_key, hash_key};
use sandcell::api::config::{ImageEntry, ServeConfig};
use sandcell::api::store::{App, Store};
use sandcell::api::{router, AppState, Shared};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Setup {
    state: AppState,
    key: String,
    other_key: String,
    _dir: tempfile::TempDir,
}

fn setup_with(edit: impl FnOnce(&mut ServeConfig), max_concurrent: u32) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServeConfig {
        state_dir: dir.path().to_owned(),
        ..ServeConfig::default()
    };
    config.images.insert(
        "busybox".into(),
        ImageEntry {
            rootfs: dir.path().join("rootfs"),
        },
    );
    edit(&mut config);
    let store = Store::open(dir.path()).unwrap();
    let key = generate_key();
    let other_key = generate_key();
    for (name, k) in [("judge", &key), ("other", &other_key)] {
        store
            .create_app(&App {
                name: name.into(),
                key_hash: hash_key(k),
                max_concurrent,
                max_wall_time_ms: None,
                max_memory: None,
            })
            .unwrap();
    }
    Setup {
        state: AppState(Arc::new(Shared::new(config, store))),
        key,
        other_key,
        _dir: dir,
    }
}

fn setup() -> Setup {
    setup_with(|_| {}, 100)
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").into()
    }
}

async fn call(s: &Setup, method: &str, uri: &str, key: Option<&str>, body: Vec<u8>) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        req = req.header("authorization", format!("Bearer {key}"));
    }
    let req = req
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let res = router(s.state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

async fn post(s: &Setup, body: Value) -> Answer {
    call(
        s,
        "POST",
        "/v1/runs",
        Some(&s.key),
        body.to_string().into_bytes(),
    )
    .await
}

fn sh(script: &str) -> Value {
    json!({"image": "busybox", "cmd": ["sh", "-c", script]})
}

#[tokio::test]
async fn open_routes_answer_without_a_key() {
    let s = setup();
    let a = call(&s, "GET", "/healthz", None, vec![]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["status"], "ok");
    assert_eq!(call(&s, "GET", "/readyz", None, vec![]).await.status, 200);
    let m = call(&s, "GET", "/metrics", None, vec![]).await;
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    assert!(text.contains("sandcell_queue_depth 0"), "{text}");
    assert!(text.contains("sandcell_run_duration_seconds_bucket"));
    let doc = call(&s, "GET", "/openapi.json", None, vec![]).await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/events",
        "/v1/images",
        "/v1/languages",
    ] {
        assert!(doc["paths"][path].is_object(), "openapi lacks {path}");
    }
    assert!(doc["components"]["schemas"]["RunRequest"].is_object());
}

#[tokio::test]
async fn keys_are_required_and_checked() {
    let s = setup();
    let a = call(&s, "GET", "/v1/images", None, vec![]).await;
    assert_eq!(a.status, 401);
    assert_eq!(a.code(), "unauthorized");
    let a = call(&s, "GET", "/v1/images", Some("sk_wrong"), vec![]).await;
    assert_eq!(a.status, 401);
    let a = call(
        &s,
        "POST",
        "/v1/runs",
        None,
        sh("true").to_string().into_bytes(),
    )
    .await;
    assert_eq!(a.status, 401);
    let a = call(&s, "GET", "/v1/images", Some(&s.key), vec![]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["images"][0]["name"], "busybox");
}

#[tokio::test]
async fn bad_input_gets_the_right_4xx() {
    let s = setup();
    let huge = "x".repeat(10 << 20);
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("invalid JSON", b"{\"image\": ".to_vec(), 400, "invalid_json"),
        ("not an object", b"[1,2]".to_vec(), 400, "invalid_field"),
        ("fields as an array", b"[\"busybox\", null, [], [\"true\"]]".to_vec(), 400, "invalid_field"),
        ("limits as an array", json!({"image":"busybox","cmd":["true"],"limits":[null, null]}).to_string().into_bytes(), 400, "invalid_field"),
        ("a file as an array", json!({"image":"busybox","cmd":["true"],"files":[["a", "x"]]}).to_string().into_bytes(), 400, "invalid_field"),
        ("too many args", json!({"image":"busybox","cmd":vec!["x"; 5000]}).to_string().into_bytes(), 422, "too_large"),
        ("duplicate files", json!({"image":"busybox","cmd":["true"],"files":[{"path":"a","content":"x"},{"path":"a","content":"y"}]}).to_string().into_bytes(), 422, "invalid_spec"),
        ("float limit", json!({"image":"busybox","cmd":["true"],"limits":{"pids":1.0}}).to_string().into_bytes(), 422, "invalid_spec"),
        ("unknown field", json!({"image":"busybox","cmd":["true"],"nope":1}).to_string().into_bytes(), 400, "unknown_field"),
        ("wrong type", json!({"image":"busybox","cmd":5}).to_string().into_bytes(), 400, "invalid_field"),
        ("unknown image", json!({"image":"nope","cmd":["true"]}).to_string().into_bytes(), 422, "unknown_image"),
        ("unknown language", json!({"language":"cobol"}).to_string().into_bytes(), 422, "unknown_language"),
        ("no image", json!({"cmd":["true"]}).to_string().into_bytes(), 422, "invalid_spec"),
        ("empty cmd", json!({"image":"busybox","cmd":[]}).to_string().into_bytes(), 422, "invalid_spec"),
        ("negative memory", json!({"image":"busybox","cmd":["true"],"limits":{"memory":-1}}).to_string().into_bytes(), 422, "invalid_spec"),
        ("negative wall time", json!({"image":"busybox","cmd":["true"],"limits":{"wall_time":-5}}).to_string().into_bytes(), 422, "invalid_spec"),
        ("zero wall time", json!({"image":"busybox","cmd":["true"],"limits":{"wall_time":0}}).to_string().into_bytes(), 422, "invalid_spec"),
        ("above the maximum", json!({"image":"busybox","cmd":["true"],"limits":{"wall_time":99999999}}).to_string().into_bytes(), 422, "invalid_spec"),
        ("unknown limit", json!({"image":"busybox","cmd":["true"],"limits":{"disk_io":1}}).to_string().into_bytes(), 400, "unknown_field"),
        ("base64 garbage", json!({"image":"busybox","cmd":["true"],"files":[{"path":"a","content":"%%%not base64","encoding":"base64"}]}).to_string().into_bytes(), 422, "bad_base64"),
        ("base64 garbage in stdin", json!({"image":"busybox","cmd":["true"],"stdin":"@@","stdin_encoding":"base64"}).to_string().into_bytes(), 422, "bad_base64"),
        ("unknown encoding", json!({"image":"busybox","cmd":["true"],"files":[{"path":"a","content":"x","encoding":"rot13"}]}).to_string().into_bytes(), 400, "invalid_field"),
        ("path traversal", json!({"image":"busybox","cmd":["true"],"files":[{"path":"../../etc/x","content":"x"}]}).to_string().into_bytes(), 422, "invalid_spec"),
        ("absolute path", json!({"image":"busybox","cmd":["true"],"files":[{"path":"/etc/x","content":"x"}]}).to_string().into_bytes(), 422, "invalid_spec"),
        ("dot path", json!({"image":"busybox","cmd":["true"],"files":[{"path":"a/./b","content":"x"}]}).to_string().into_bytes(), 422, "invalid_spec"),
        ("bad env name", json!({"image":"busybox","cmd":["true"],"env":{"A=B":"x"}}).to_string().into_bytes(), 422, "invalid_spec"),
        ("10 MiB body", json!({"image":"busybox","cmd":["true"],"stdin": huge}).to_string().into_bytes(), 413, "payload_too_large"),
    ];
    for (what, body, status, code) in cases {
        let a = call(&s, "POST", "/v1/runs", Some(&s.key), body).await;
        assert_eq!(
            a.status.as_u16(),
            status,
            "{what}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.code(), code, "{what}");
        assert!(!a.json()["error"]["message"].as_str().unwrap().is_empty());
    }
    // None of them was accepted.
    let list = call(&s, "GET", "/v1/runs", Some(&s.key), vec![])
        .await
        .json();
    assert_eq!(list["runs"].as_array().unwrap().len(), 0);
    let a = call(&s, "GET", "/no/such/route", None, vec![]).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.code(), "not_found");
    let a = call(&s, "PUT", "/v1/runs", Some(&s.key), vec![]).await;
    assert_eq!(a.status, 405);
    assert_eq!(a.code(), "method_not_allowed");
    for q in ["limit=0", "limit=abc", "status=bogus", "extra=1"] {
        let a = call(&s, "GET", &format!("/v1/runs?{q}"), Some(&s.key), vec![]).await;
        assert_eq!(a.status, 400, "{q}");
    }
}

#[tokio::test]
async fn accepted_runs_are_stored_before_the_answer() {
    let s = setup();
    let a = post(&s, sh("echo hi")).await;
    assert_eq!(a.status, 202);
    let id = a.json()["id"].as_str().unwrap().to_string();
    assert_eq!(a.json()["status"], "queued");
    assert_eq!(
        a.headers["location"].to_str().unwrap(),
        format!("/v1/runs/{id}")
    );
    let row = s.state.store.get_run(&id).unwrap().expect("stored");
    assert_eq!(row.app, "judge");
    let g = call(&s, "GET", &format!("/v1/runs/{id}"), Some(&s.key), vec![]).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.json()["status"], "queued");
    assert!(g.json()["result"].is_null());
    let l = call(
        &s,
        "GET",
        "/v1/runs?status=queued&limit=5",
        Some(&s.key),
        vec![],
    )
    .await;
    assert_eq!(l.json()["runs"][0]["id"], id.as_str());
    let l = call(&s, "GET", "/v1/runs?status=done", Some(&s.key), vec![]).await;
    assert_eq!(l.json()["runs"].as_array().unwrap().len(), 0);
    // Another app may not look at it; an unknown id is 404.
    let o = call(
        &s,
        "GET",
        &format!("/v1/runs/{id}"),
        Some(&s.other_key),
        vec![],
    )
    .await;
    assert_eq!(o.status, 403);
    let o = call(
        &s,
        "DELETE",
        &format!("/v1/runs/{id}"),
        Some(&s.other_key),
        vec![],
    )
    .await;
    assert_eq!(o.status, 403);
    let n = call(&s, "GET", "/v1/runs/0123", Some(&s.key), vec![]).await;
    assert_eq!(n.status, 404);
    assert_eq!(n.code(), "not_found");
}

#[tokio::test]
async fn cancelling_a_queued_run_ends_it_at_once() {
    let s = setup();
    let id = post(&s, sh("sleep 100")).await.json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = call(
        &s,
        "DELETE",
        &format!("/v1/runs/{id}"),
        Some(&s.key),
        vec![],
    )
    .await;
    // The answer is the new state.
    assert_eq!(d.status, 200);
    let v = d.json();
    assert_eq!(v["status"], "done");
    assert_eq!(v["verdict"], "CANCELLED");
    assert_eq!(v["result"]["verdict"], "CANCELLED");
    // Again: already finished, 200 and unchanged.
    let d = call(
        &s,
        "DELETE",
        &format!("/v1/runs/{id}"),
        Some(&s.key),
        vec![],
    )
    .await;
    assert_eq!(d.status, 200);
    assert_eq!(d.json()["verdict"], "CANCELLED");
}

#[tokio::test]
async fn the_apps_quota_gives_429_with_retry_after() {
    let s = setup_with(|_| {}, 2);
    assert_eq!(post(&s, sh("true")).await.status, 202);
    assert_eq!(post(&s, sh("true")).await.status, 202);
    let a = post(&s, sh("true")).await;
    assert_eq!(a.status, 429);
    assert_eq!(a.code(), "quota_exceeded");
    assert_eq!(a.headers["retry-after"], "1");
    // Another app has its own quota.
    let b = call(
        &s,
        "POST",
        "/v1/runs",
        Some(&s.other_key),
        sh("true").to_string().into_bytes(),
    )
    .await;
    assert_eq!(b.status, 202);
}

#[tokio::test]
async fn a_full_queue_gives_503_with_retry_after() {
    let s = setup_with(|c| c.max_queue = 3, 100);
    for _ in 0..3 {
        assert_eq!(post(&s, sh("true")).await.status, 202);
    }
    let a = post(&s, sh("true")).await;
    assert_eq!(a.status, 503);
    assert_eq!(a.code(), "queue_full");
    assert!(a.headers.contains_key("retry-after"));
    let m = call(&s, "GET", "/metrics", None, vec![]).await;
    let text = String::from_utf8(m.body).unwrap();
    assert!(text.contains("sandcell_queue_depth 3"), "{text}");
    assert!(text.contains("sandcell_requests_rejected_total{reason=\"queue_full\"} 1"));
}

#[tokio::test]
async fn clamping_runs_requests_above_the_maximum() {
    let s = setup_with(
        |c| c.limits_policy = sandcell::api::config::LimitsPolicy::Clamp,
        100,
    );
    let mut body = sh("true");
    body["limits"] = json!({"wall_time": 99999999, "memory": 1u64 << 50});
    assert_eq!(post(&s, body).await.status, 202);
}

#[tokio::test]
async fn private_metrics_need_a_key() {
    let s = setup_with(|c| c.metrics_public = false, 100);
    assert_eq!(call(&s, "GET", "/metrics", None, vec![]).await.status, 401);
    assert_eq!(
        call(&s, "GET", "/metrics", Some(&s.key), vec![])
            .await
            .status,
        200
    );
}
