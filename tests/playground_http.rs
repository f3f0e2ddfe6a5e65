//! The playground over plain HTTP, through `router(state).oneshot(...)` (no cells, no root):
//! `/` exists only with `playground = true`, the embedded files with their content types and
//! security headers, `settings.json`, and which requests may run anonymously as
//! `playground_app` (and which may not). No worker threads run here, so accepted runs stay
//! queued, which makes the quota answer deterministic.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use sandcell::api::auth::{generate_key, hash_key};
use sandcell::api::config::{ImageEntry, ServeConfig};
use sandcell::api::playground::{anonymous, assets, headers};
use sandcell::api::store::{App, Store};
use sandcell::api::{router, AppState, Shared};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Setup {
    state: AppState,
    key: String,
    _dir: tempfile::TempDir,
}

/// A state whose store has the apps `judge` (a key, 100 concurrent runs) and `playground`
/// (1 concurrent run, at most 5 s and 128 MiB).
fn setup(edit: impl FnOnce(&mut ServeConfig)) -> Setup {
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
    config.check().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let key = generate_key();
    store
        .create_app(&App {
            name: "judge".into(),
            key_hash: hash_key(&key),
            max_concurrent: 100,
            max_wall_time_ms: None,
            max_memory: None,
        })
        .unwrap();
    store
        .create_app(&App {
            name: "playground".into(),
            key_hash: hash_key(&generate_key()),
            max_concurrent: 1,
            max_wall_time_ms: Some(5000),
            max_memory: Some(128 << 20),
        })
        .unwrap();
    Setup {
        state: AppState(Arc::new(Shared::new(config, store))),
        key,
        _dir: dir,
    }
}

fn enabled() -> Setup {
    setup(|c| c.playground = true)
}

fn anonymous_enabled() -> Setup {
    setup(|c| {
        c.playground = true;
        c.playground_app = Some("playground".into());
    })
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or("").into()
    }
}

async fn call(s: &Setup, method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "play.example:8080");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if !body.is_empty() {
        req = req.header("content-type", "application/json");
    }
    let req = req.body(Body::from(body.to_string())).unwrap();
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

async fn get(s: &Setup, uri: &str) -> Answer {
    call(s, "GET", uri, &[], "").await
}

const PAGE: (&str, &str) = ("x-sandcell-playground", "1");

/// A run within the playground app's maxima (the server's default wall time, 10 s, is not:
/// the page always sends its limits).
fn run_body() -> String {
    json!({"image": "busybox", "cmd": ["true"], "limits": {"wall_time": 1000, "memory": 64 << 20}})
        .to_string()
}

#[tokio::test]
async fn without_playground_true_there_is_no_page() {
    let s = setup(|_| {});
    for uri in [
        "/",
        "/playground/app.js",
        "/playground/editor.js",
        "/playground/settings.json",
    ] {
        let a = get(&s, uri).await;
        assert_eq!(a.status, 404, "{uri}: {}", a.text());
        assert_eq!(a.code(), "not_found", "{uri}");
    }
    // Nor do runs without a key, marker or not.
    let a = call(&s, "POST", "/v1/runs", &[PAGE], &run_body()).await;
    assert_eq!(a.status, 401, "{}", a.text());
    // playground_app alone is a configuration error.
    let bad = ServeConfig {
        playground_app: Some("playground".into()),
        ..ServeConfig::default()
    };
    let e = bad.check().unwrap_err().to_string();
    assert!(e.contains("playground_app needs playground = true"), "{e}");
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_csp_and_no_inline_script() {
    let s = enabled();
    let a = get(&s, "/").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("content-type"), "text/html; charset=utf-8");
    let csp = a.header("content-security-policy");
    assert_eq!(csp, headers::CSP);
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} not in {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(a.header("x-content-type-options"), "nosniff");
    assert_eq!(a.header("x-frame-options"), "DENY");
    assert_eq!(a.header("referrer-policy"), "no-referrer");
    assert_eq!(a.header("cross-origin-opener-policy"), "same-origin");
    let html = a.text();
    // Every script is a file of ours (the CSP would block an inline one anyway), every style
    // is a stylesheet, and nothing comes from another origin.
    let scripts: Vec<&str> = html.split("<script").skip(1).collect();
    assert!(!scripts.is_empty());
    for s in &scripts {
        let tag = &s[..s.find('>').unwrap()];
        assert!(
            tag.contains("src=\"/playground/"),
            "inline script: <script{tag}>"
        );
    }
    assert!(!html.contains("<style"), "inline style element");
    assert!(!html.contains(" style=\""), "inline style attribute");
    assert!(!html.contains("http://") && !html.contains("https://"));
}

#[tokio::test]
async fn every_file_the_page_names_is_served_with_its_type() {
    let s = enabled();
    let html = get(&s, "/").await.text();
    let mut named: Vec<String> = html
        .split("\"/playground/")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_string())
        .collect();
    named.sort();
    named.dedup();
    assert!(named.len() >= 4, "the page names too few files: {named:?}");
    for name in &named {
        let a = get(&s, &format!("/playground/{name}")).await;
        assert_eq!(a.status, 200, "{name}");
        assert!(!a.body.is_empty(), "{name} is empty");
        let (_, asset) = assets::find(name).unwrap();
        assert_eq!(a.header("content-type"), asset.content_type, "{name}");
    }
    let types = [
        ("app.js", "text/javascript; charset=utf-8"),
        ("editor.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
        ("editor-licenses.txt", "text/plain; charset=utf-8"),
    ];
    for (name, ty) in types {
        let a = get(&s, &format!("/playground/{name}")).await;
        assert_eq!(a.status, 200, "{name}");
        assert_eq!(a.header("content-type"), ty, "{name}");
        assert_eq!(a.header("x-content-type-options"), "nosniff", "{name}");
        assert_eq!(a.header("cache-control"), "no-cache", "{name}");
        // Asked again with its ETag: 304, no body.
        let tag = a.header("etag").to_string();
        let again = call(
            &s,
            "GET",
            &format!("/playground/{name}"),
            &[("if-none-match", &tag)],
            "",
        )
        .await;
        assert_eq!(again.status, 304, "{name}");
        assert!(again.body.is_empty());
    }
    // The editor bundle is CodeMirror, imported by the page's module.
    let app = get(&s, "/playground/app.js").await.text();
    assert!(app.contains("from \"./editor.js\""));
    let editor = get(&s, "/playground/editor.js").await.text();
    assert!(editor.contains("cm-editor"), "not a CodeMirror bundle");
    let licenses = get(&s, "/playground/editor-licenses.txt").await.text();
    assert!(licenses.contains("@codemirror/view") && licenses.contains("MIT"));
    // Anything else under /playground/ is a JSON 404, with the headers too.
    let a = get(&s, "/playground/../../etc/passwd").await;
    assert_eq!(a.status, 404);
    let a = get(&s, "/playground/nope.js").await;
    assert_eq!(a.status, 404);
    assert_eq!(a.code(), "not_found");
    assert_eq!(a.header("x-content-type-options"), "nosniff");
}

#[tokio::test]
async fn settings_say_whether_a_key_is_needed_and_the_limits() {
    let s = enabled();
    let v = get(&s, "/playground/settings.json").await.json();
    assert_eq!(v["key_required"], true, "{v}");
    assert_eq!(v["anonymous_app"], Value::Null);
    // The server's maxima and defaults (ServeConfig::default, Limits::default).
    assert_eq!(
        v["limits"]["wall_time"],
        json!({"default": 10000, "max": 60000})
    );
    assert_eq!(
        v["limits"]["cpu_time"],
        json!({"default": 5000, "max": 60000})
    );
    assert_eq!(
        v["limits"]["memory"],
        json!({"default": 256u64 << 20, "max": 4u64 << 30})
    );

    // With anonymous runs: the playground app's maxima, defaults lowered to them.
    let s = anonymous_enabled();
    let v = get(&s, "/playground/settings.json").await.json();
    assert_eq!(v["key_required"], false, "{v}");
    assert_eq!(v["anonymous_app"], "playground");
    assert_eq!(
        v["limits"]["wall_time"],
        json!({"default": 5000, "max": 5000})
    );
    assert_eq!(
        v["limits"]["cpu_time"],
        json!({"default": 5000, "max": 5000})
    );
    assert_eq!(
        v["limits"]["memory"],
        json!({"default": 128u64 << 20, "max": 128u64 << 20})
    );

    // auth = false: no key, the server's maxima.
    let s = setup(|c| {
        c.playground = true;
        c.auth = false;
    });
    let v = get(&s, "/playground/settings.json").await.json();
    assert_eq!(v["key_required"], false, "{v}");
}

#[tokio::test]
async fn anonymous_runs_are_the_playground_apps_and_only_on_the_pages_routes() {
    let s = anonymous_enabled();
    let body = run_body();

    // No key and no marker: the API's usual 401.
    let a = call(&s, "POST", "/v1/runs", &[], &body).await;
    assert_eq!(a.status, 401, "{}", a.text());

    // The page's request: accepted as the playground app.
    let a = call(&s, "POST", "/v1/runs", &[PAGE], &body).await;
    assert_eq!(a.status, 202, "{}", a.text());
    let id = a.json()["id"].as_str().unwrap().to_string();
    let a = call(&s, "GET", &format!("/v1/runs/{id}"), &[PAGE], "").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let judge = format!("Bearer {}", s.key);
    let a = call(
        &s,
        "GET",
        &format!("/v1/runs/{id}"),
        &[("authorization", &judge)],
        "",
    )
    .await;
    assert_eq!(a.status, 403, "another app's run: {}", a.text());

    // The app's quota (1): the second run is 429 with Retry-After, as for a keyed client.
    let a = call(&s, "POST", "/v1/runs", &[PAGE], &body).await;
    assert_eq!(a.status, 429, "{}", a.text());
    assert_eq!(a.code(), "quota_exceeded");
    assert_eq!(a.header("retry-after"), "1");

    // The app's maxima apply (5 s wall time).
    let big = json!({"image": "busybox", "cmd": ["true"], "limits": {"wall_time": 6000}});
    let a = call(&s, "POST", "/v1/runs", &[PAGE], &big.to_string()).await;
    assert_eq!(a.status, 422, "{}", a.text());

    // Cancel (the queued run ends at once), which gives the quota unit back.
    let a = call(&s, "DELETE", &format!("/v1/runs/{id}"), &[PAGE], "").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["verdict"], "CANCELLED");
    let a = call(&s, "POST", "/v1/runs", &[PAGE], &body).await;
    assert_eq!(a.status, 202, "{}", a.text());

    let a = call(&s, "GET", "/v1/languages", &[PAGE], "").await;
    assert_eq!(a.status, 200, "{}", a.text());

    // Routes the page does not use still need a key.
    for (method, uri) in [
        ("GET", "/v1/runs"),
        ("GET", "/v1/images"),
        ("POST", "/v1/gradings"),
        ("POST", "/v1/cells"),
    ] {
        let a = call(&s, method, uri, &[PAGE], "{}").await;
        assert_eq!(a.status, 401, "{method} {uri}: {}", a.text());
        assert!(a.text().contains("needs an API key"), "{}", a.text());
    }

    // Other sites' pages: refused (a browser would not even send the preflighted request).
    let a = call(
        &s,
        "POST",
        "/v1/runs",
        &[PAGE, ("sec-fetch-site", "cross-site")],
        &body,
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.text());
    let a = call(
        &s,
        "POST",
        "/v1/runs",
        &[PAGE, ("origin", "https://evil.example")],
        &body,
    )
    .await;
    assert_eq!(a.status, 403, "{}", a.text());
    // The page's own origin is fine (quota used up now: 429 means it got past the checks).
    let a = call(
        &s,
        "POST",
        "/v1/runs",
        &[
            PAGE,
            ("origin", "http://play.example:8080"),
            ("sec-fetch-site", "same-origin"),
        ],
        &body,
    )
    .await;
    assert_eq!(a.status, 429, "{}", a.text());

    // A key always wins: a wrong one is 401 even with the marker.
    let a = call(
        &s,
        "POST",
        "/v1/runs",
        &[PAGE, ("authorization", "Bearer sk_wrong")],
        &body,
    )
    .await;
    assert_eq!(a.status, 401, "{}", a.text());
}

#[tokio::test]
async fn without_playground_app_the_page_needs_a_key() {
    let s = enabled();
    let a = call(&s, "POST", "/v1/runs", &[PAGE], &run_body()).await;
    assert_eq!(a.status, 401, "{}", a.text());
    let a = call(&s, "GET", "/v1/languages", &[PAGE], "").await;
    assert_eq!(a.status, 401, "{}", a.text());
}

#[test]
fn a_missing_playground_app_stops_the_daemon_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let config = ServeConfig {
        playground: true,
        playground_app: Some("playground".into()),
        ..ServeConfig::default()
    };
    let e = anonymous::check_app(&config, &store)
        .unwrap_err()
        .to_string();
    assert!(e.contains("sandcell app create playground"), "{e}");
    let off = ServeConfig {
        playground: true,
        ..ServeConfig::default()
    };
    anonymous::check_app(&off, &store).unwrap();
}
