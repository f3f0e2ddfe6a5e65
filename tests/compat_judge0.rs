//! The Judge0 CE routes of `sandcell serve` over HTTP: a real daemon with
//! `compat = ["judge0", "piston"]`, real cells compiling and running C, C++, Python and sh,
//! every route, the status table from real runs, and malformed bodies in Judge0's own
//! error shapes (never a 5xx).

mod api_support;
mod common;
mod compat_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use api_support::{request_with, Response};
use base64::Engine;
use compat_support::{start, Env, BOTH};
use serde_json::{json, Value};

fn call(e: &Env, method: &str, path: &str, body: Option<&Value>) -> Response {
    let text = body.map(|b| b.to_string());
    request_with(
        e.daemon.addr,
        method,
        path,
        None,
        &[("X-Auth-Token", e.key.as_str())],
        text.as_deref().map(str::as_bytes),
    )
}

fn raw(e: &Env, method: &str, path: &str, body: &[u8]) -> Response {
    request_with(
        e.daemon.addr,
        method,
        path,
        None,
        &[("X-Auth-Token", e.key.as_str())],
        Some(body),
    )
}

/// POST with `wait=true` and every field.
fn run(e: &Env, body: Value) -> Value {
    let r = call(e, "POST", "/submissions?wait=true&fields=*", Some(&body));
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

fn status_id(v: &Value) -> u64 {
    v["status"]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no status in {v}"))
}

/// Polls a token until its status is past `Processing`.
fn wait_done(e: &Env, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = call(e, "GET", &format!("/submissions/{token}?fields=*"), None);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        if status_id(&v) > 2 {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "submission {token} not done: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn b64(s: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn descriptive_routes_answer_judge0s_shapes() {
    let Some(e) = start(BOTH, &[]) else { return };
    let langs = call(&e, "GET", "/languages", None);
    assert_eq!(langs.status, 200, "{}", langs.text());
    let langs = langs.json();
    let ids: Vec<u64> = langs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_u64().unwrap())
        .collect();
    for id in [46, 50, 52, 54, 71] {
        assert!(ids.contains(&id), "language {id} missing: {langs}");
    }
    let c = call(&e, "GET", "/languages/50", None).json();
    assert_eq!(c["source_file"], "main.c");
    assert_eq!(c["is_archived"], false);
    assert!(c["name"].as_str().unwrap().starts_with("C (GCC "), "{c}");
    assert!(c["compile_cmd"].as_str().unwrap().contains("gcc"), "{c}");
    let missing = call(&e, "GET", "/languages/9999", None);
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());

    let statuses = call(&e, "GET", "/statuses", None).json();
    let table: Vec<(u64, String)> = statuses
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_u64().unwrap(),
                s["description"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(table.len(), 14);
    assert_eq!(table[0], (1, "In Queue".into()));
    assert_eq!(table[2], (3, "Accepted".into()));
    assert_eq!(table[3], (4, "Wrong Answer".into()));
    assert_eq!(table[10], (11, "Runtime Error (NZEC)".into()));
    assert_eq!(table[13], (14, "Exec Format Error".into()));

    let about = call(&e, "GET", "/about", None).json();
    assert_eq!(about["version"], "1.13.1");
    let config = call(&e, "GET", "/config_info", None).json();
    for key in [
        "cpu_time_limit",
        "max_cpu_time_limit",
        "memory_limit",
        "max_memory_limit",
        "enable_wait_result",
        "max_submission_batch_size",
        "allow_enable_network",
    ] {
        assert!(
            config.get(key).is_some(),
            "config_info lacks {key}: {config}"
        );
    }
    assert_eq!(config["allow_enable_network"], false);
    assert_eq!(config["enable_callbacks"], false);
    let system = call(&e, "GET", "/system_info", None).json();
    assert_eq!(system["Architecture"], std::env::consts::ARCH);
    assert!(
        system.get("Mem").is_none(),
        "only what is safe to tell: {system}"
    );
    let workers = call(&e, "GET", "/workers", None).json();
    assert_eq!(workers[0]["queue"], "sandcell");
    assert!(workers[0]["available"].as_u64().unwrap() >= 1);
}

#[test]
fn submissions_in_every_language_with_fields_base64_and_delete() {
    let Some(e) = start(BOTH, &[]) else { return };
    // C, async: 201 with only a token, then polled.
    let r = call(
        &e,
        "POST",
        "/submissions",
        Some(
            &json!({"source_code": "#include <stdio.h>\nint main(void){puts(\"c ok\");}\n", "language_id": 50}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert_eq!(created.as_object().unwrap().len(), 1, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 36);
    let v = wait_done(&e, &token);
    assert_eq!(status_id(&v), 3, "{v}");
    assert_eq!(v["stdout"], "c ok\n");
    assert_eq!(v["language_id"], 50);
    assert_eq!(v["exit_code"], 0);
    assert!(v["time"].as_str().unwrap().parse::<f64>().is_ok(), "{v}");
    assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(v["finished_at"].as_str().unwrap().ends_with('Z'));

    // The same run is a /v1 run of the app: one store, one queue.
    let id = token.replace('-', "");
    let v1 = request_with(
        e.daemon.addr,
        "GET",
        &format!("/v1/runs/{id}"),
        Some(&e.key),
        &[],
        None,
    );
    assert_eq!(v1.status, 200, "{}", v1.text());
    assert_eq!(v1.json()["verdict"], "OK");

    // Default fields only; a chosen subset; an unknown one.
    let d = call(&e, "GET", &format!("/submissions/{token}"), None).json();
    let mut keys: Vec<&str> = d.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "compile_output",
            "memory",
            "message",
            "status",
            "stderr",
            "stdout",
            "time",
            "token"
        ]
    );
    let s = call(
        &e,
        "GET",
        &format!("/submissions/{token}?fields=stdout,status_id"),
        None,
    )
    .json();
    assert_eq!(s, json!({"stdout": "c ok\n", "status_id": 3}));
    let bad = call(
        &e,
        "GET",
        &format!("/submissions/{token}?fields=stdout,bogus"),
        None,
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "invalid fields: [bogus]");

    // C++ and sh (Bash's id), base64 both ways.
    let r = call(
        &e,
        "POST",
        "/submissions?wait=true&base64_encoded=true&fields=*",
        Some(
            &json!({"source_code": b64(b"#include <iostream>\nint main(){std::string s; std::cin >> s; std::cout << s << \"!\" << std::endl;}\n"),
               "language_id": 54, "stdin": b64(b"cpp\n")}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(status_id(&v), 3, "{v}");
    assert_eq!(v["stdout"], b64(b"cpp!\n"));
    let t = v["token"].as_str().unwrap();
    let v = call(
        &e,
        "GET",
        &format!("/submissions/{t}?fields=stdout,stdin"),
        None,
    )
    .json();
    assert_eq!(v["stdout"], "cpp!\n");
    assert_eq!(v["stdin"], "cpp\n");
    let r = call(
        &e,
        "POST",
        "/submissions?wait=true&base64_encoded=true&fields=stdout,source_code,status",
        Some(&json!({"source_code": b64(b"echo sh $((6*7))"), "language_id": 46})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(status_id(&v), 3, "{v}");
    assert_eq!(v["stdout"], b64(b"sh 42\n"));
    assert_eq!(v["source_code"], b64(b"echo sh $((6*7))"));

    // Output that is not UTF-8 needs base64_encoded=true, as in Judge0.
    let r = call(
        &e,
        "POST",
        "/submissions?wait=true",
        Some(
            &json!({"source_code": "import sys\nsys.stdout.buffer.write(b'\\xff\\xfe')\n", "language_id": 71}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert!(
        v["error"].as_str().unwrap().contains("base64_encoded=true"),
        "{v}"
    );
    let t = v["token"].as_str().unwrap();
    let r = call(&e, "GET", &format!("/submissions/{t}"), None);
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("base64_encoded=true"));
    let r = call(
        &e,
        "GET",
        &format!("/submissions/{t}?base64_encoded=true&fields=stdout"),
        None,
    );
    assert_eq!(r.json()["stdout"], b64(&[0xff, 0xfe]));

    // DELETE: answered with the submission (base64), then gone.
    let r = call(
        &e,
        "DELETE",
        &format!("/submissions/{token}?fields=stdout"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["stdout"], b64(b"c ok\n"));
    assert_eq!(
        call(&e, "GET", &format!("/submissions/{token}"), None).status,
        404
    );
    let missing = call(
        &e,
        "GET",
        "/submissions/00000000-0000-4000-8000-000000000000",
        None,
    );
    assert_eq!(missing.status, 404);
    assert!(missing.json()["error"].is_string());
}

#[test]
fn real_runs_map_onto_the_status_table() {
    let Some(e) = start(BOTH, &[]) else { return };
    let c = |src: &str| json!({"source_code": src, "language_id": 50});
    let py = |src: &str| json!({"source_code": src, "language_id": 71});
    let cases: Vec<(&str, Value, u64)> = vec![
        (
            "accepted",
            json!({"source_code": "print('42 ')", "language_id": 71, "expected_output": "42\n\n"}),
            3,
        ),
        (
            "wrong answer",
            json!({"source_code": "print(41)", "language_id": 71, "expected_output": "42"}),
            4,
        ),
        (
            "leading space counts",
            json!({"source_code": "print(' 42')", "language_id": 71, "expected_output": "42"}),
            4,
        ),
        (
            "time limit",
            json!({"source_code": "while True: pass", "language_id": 71, "cpu_time_limit": 0.5, "cpu_extra_time": 0.2, "wall_time_limit": 3}),
            5,
        ),
        ("compilation error", c("int main(void) { return nope; }"), 6),
        (
            "SIGSEGV",
            c("int main(void) { volatile int *p = 0; return *p; }"),
            7,
        ),
        (
            "output past the limit",
            py("import sys\nsys.stdout.write('x' * (4 << 20))"),
            8,
        ),
        (
            "SIGFPE",
            c("int main(void) { volatile int x = 7, z = 0; return x / z; }"),
            9,
        ),
        (
            "SIGABRT",
            c("#include <stdlib.h>\nint main(void) { abort(); }"),
            10,
        ),
        ("NZEC", py("import sys\nsys.exit(3)"), 11),
        (
            "other signal",
            c("#include <signal.h>\nint main(void) { raise(SIGTERM); return 0; }"),
            12,
        ),
        (
            "memory",
            json!({"source_code": "x = bytearray(200 << 20)\nprint(len(x))", "language_id": 71, "memory_limit": 32000}),
            12,
        ),
    ];
    for (name, body, want) in cases {
        let v = run(&e, body);
        assert_eq!(status_id(&v), want, "{name}: {v}");
        let description = v["status"]["description"].as_str().unwrap();
        assert!(!description.is_empty());
        match want {
            6 => assert!(
                v["compile_output"].as_str().unwrap().contains("nope"),
                "{v}"
            ),
            7 => assert_eq!(v["exit_signal"], 11, "{v}"),
            9 => assert_eq!(v["exit_signal"], 8, "{v}"),
            10 => assert_eq!(v["exit_signal"], 6, "{v}"),
            11 => assert_eq!(v["exit_code"], 3, "{v}"),
            5 => assert_eq!(v["message"], "Time limit exceeded", "{v}"),
            _ => {}
        }
    }
}

#[test]
fn queued_and_processing_then_cancelled_through_v1() {
    let Some(e) = start(BOTH, &["--workers", "1"]) else {
        return;
    };
    let slow = json!({"source_code": "import time\ntime.sleep(30)", "language_id": 71, "wall_time_limit": 40, "cpu_time_limit": 5});
    let first = call(&e, "POST", "/submissions", Some(&slow)).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = call(&e, "POST", "/submissions", Some(&slow)).json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = call(&e, "GET", &format!("/submissions/{first}"), None).json();
        if status_id(&v) == 2 {
            assert_eq!(v["status"]["description"], "Processing");
            break;
        }
        assert_eq!(status_id(&v), 1, "{v}");
        assert!(Instant::now() < deadline, "never processing: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // One worker, busy for 30 s: the second waits.
    let v = call(&e, "GET", &format!("/submissions/{second}"), None).json();
    assert_eq!(status_id(&v), 1, "{v}");
    assert_eq!(v["status"]["description"], "In Queue");
    let r = call(&e, "DELETE", &format!("/submissions/{second}"), None);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        "submission cannot be deleted because its status is 1 (In Queue)"
    );
    for t in [&second, &first] {
        let id = t.replace('-', "");
        let r = request_with(
            e.daemon.addr,
            "DELETE",
            &format!("/v1/runs/{id}"),
            Some(&e.key),
            &[],
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let v = wait_done(&e, t);
        assert_eq!(
            status_id(&v),
            13,
            "a cancelled run is an Internal Error: {v}"
        );
    }
}

#[test]
fn batches_create_and_show() {
    let Some(e) = start(BOTH, &[]) else { return };
    let r = call(
        &e,
        "POST",
        "/submissions/batch",
        Some(&json!({"submissions": [
            {"source_code": "print(input())", "language_id": 71, "stdin": "one"},
            {"source_code": "x", "language_id": 424242},
            {"source_code": "print(2)", "language_id": 71, "expected_output": "3"},
        ]})),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let items = r.json();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert_eq!(
        items[1],
        json!({"language_id": ["language with id 424242 doesn't exist"]})
    );
    let t0 = items[0]["token"].as_str().unwrap().to_owned();
    let t2 = items[2]["token"].as_str().unwrap().to_owned();
    wait_done(&e, &t0);
    wait_done(&e, &t2);
    let shown = call(
        &e,
        "GET",
        &format!("/submissions/batch?tokens={t0},00000000-0000-4000-8000-000000000000,{t2}&fields=stdout,status_id"),
        None,
    );
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(
        shown.json(),
        json!({"submissions": [{"stdout": "one\n", "status_id": 3}, null, {"stdout": "2\n", "status_id": 4}]})
    );
    let none = call(&e, "GET", "/submissions/batch?tokens=", None);
    assert_eq!(none.status, 400);
    assert_eq!(
        none.json()["error"],
        "there should be at least one submission in a batch"
    );
    let many: Vec<Value> = (0..21)
        .map(|_| json!({"source_code": "1", "language_id": 71}))
        .collect();
    let r = call(
        &e,
        "POST",
        "/submissions/batch",
        Some(&json!({"submissions": many})),
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("less than or equal to 20"));
    let r = call(
        &e,
        "POST",
        "/submissions/batch",
        Some(&json!({"submissions": [{"language_id": 71}]})),
    );
    assert_eq!(r.status, 422, "all invalid: {}", r.text());
    assert_eq!(r.json()[0]["source_code"], json!(["can't be blank"]));
}

#[test]
fn options_files_arguments_and_redirection() {
    let Some(e) = start(BOTH, &[]) else { return };
    let v = run(
        &e,
        json!({"source_code": "#include <stdio.h>\nint main(int argc, char **argv){printf(\"%d %s %s\\n\", VALUE, argv[1], argv[2]);}\n",
               "language_id": 50, "compiler_options": "-DVALUE=7 -Wall", "command_line_arguments": "first 'second word'"}),
    );
    assert_eq!(status_id(&v), 3, "{v}");
    assert_eq!(v["stdout"], "7 first second word\n");
    assert_eq!(v["compiler_options"], "-DVALUE=7 -Wall");

    let v = run(
        &e,
        json!({"source_code": "import sys\nprint('out')\nsys.stdout.flush()\nprint('err', file=sys.stderr)",
               "language_id": 71, "redirect_stderr_to_stdout": true}),
    );
    assert_eq!(status_id(&v), 3, "{v}");
    assert_eq!(v["stdout"], "out\nerr\n");
    assert_eq!(v["stderr"], Value::Null);

    // additional_files: a zip whose files sit beside the source.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    w.start_file("data/input.txt", opts).unwrap();
    w.write_all(b"from the zip\n").unwrap();
    w.start_file("helper.py", opts).unwrap();
    w.write_all(b"def shout(s):\n    return s.upper()\n")
        .unwrap();
    let zip_bytes = w.finish().unwrap().into_inner();
    let v = run(
        &e,
        json!({"source_code": "from helper import shout\nprint(shout(open('data/input.txt').read().strip()))",
               "language_id": 71, "additional_files": b64(&zip_bytes)}),
    );
    assert_eq!(status_id(&v), 3, "{v}");
    assert_eq!(v["stdout"], "FROM THE ZIP\n");

    // A zip escaping the work dir is refused before anything runs.
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    w.start_file("../../etc/evil", opts).unwrap();
    w.write_all(b"x").unwrap();
    let evil = w.finish().unwrap().into_inner();
    let r = call(
        &e,
        "POST",
        "/submissions",
        Some(
            &json!({"source_code": "print(1)", "language_id": 71, "additional_files": b64(&evil)}),
        ),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    assert!(r.json()["additional_files"][0]
        .as_str()
        .unwrap()
        .contains("unsafe path"));
}

#[test]
fn malformed_bodies_get_judge0_errors_never_5xx() {
    let Some(e) = start(BOTH, &[]) else { return };
    let bodies: Vec<(&[u8], u16)> = vec![
        (b"{not json", 400),
        (b"", 400),
        (b"[1,2,3]", 422),
        (b"\"text\"", 422),
        (b"{}", 422),
        (br#"{"source_code": 5, "language_id": "seventy-one"}"#, 422),
        (br#"{"source_code": "x", "language_id": 71, "enable_network": true}"#, 422),
        (br#"{"source_code": "x", "language_id": 71, "callback_url": "http://127.0.0.1:1/"}"#, 422),
        (br#"{"source_code": "x", "language_id": 71, "memory_limit": -5}"#, 422),
        (br#"{"source_code": "x", "language_id": 71, "cpu_time_limit": 1e300}"#, 422),
        (br#"{"source_code": "x", "language_id": 71, "number_of_runs": 3}"#, 422),
        (br#"{"source_code": "x", "language_id": 71, "additional_files": "%%%"}"#, 422),
        (br#"{"source_code": "x", "language_id": 71, "additional_files": "aGVsbG8="}"#, 422),
        (br#"{"source_code": "x", "language_id": 71, "command_line_arguments": "'open"}"#, 422),
        (br#"{"source_code": "x", "language_id": 71, "redirect_stderr_to_stdout": "maybe"}"#, 422),
        (br#"{"source_code": "x", "language_id": 71, "enable_per_process_and_thread_time_limit": true}"#, 422),
    ];
    for (body, want) in bodies {
        let r = raw(&e, "POST", "/submissions", body);
        assert_eq!(
            r.status,
            want,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        let v = r.json();
        if want == 400 {
            assert!(v["error"].is_string(), "{v}");
        } else {
            let fields = v.as_object().unwrap();
            assert!(!fields.is_empty());
            assert!(
                fields
                    .values()
                    .all(|m| m.as_array().is_some_and(|a| a.iter().all(Value::is_string))),
                "{v}"
            );
        }
    }
    let r = raw(
        &e,
        "POST",
        "/submissions",
        br#"{"language_id": 71, "source_code": "!"}"#,
    );
    assert_eq!(r.status, 201, "plain text is taken as it is: {}", r.text());
    let r = raw(
        &e,
        "POST",
        "/submissions?base64_encoded=true",
        br#"{"language_id": 71, "source_code": "!"}"#,
    );
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["source_code"], json!(["is not valid base64"]));
    for path in ["/submissions/batch", "/submissions/batch?tokens=a,b"] {
        let r = raw(&e, "POST", path, b"{\"submissions\": 7}");
        assert_eq!(r.status, 400, "{}", r.text());
    }
}

#[test]
fn keys_headers_and_the_compat_app() {
    // No compat_app: a request without a key is refused in each API's shape.
    let Some(e) = start(BOTH, &[]) else { return };
    let r = request_with(e.daemon.addr, "GET", "/languages", None, &[], None);
    assert_eq!(r.status, 401);
    assert!(r.json()["error"].is_string(), "{}", r.text());
    let r = request_with(e.daemon.addr, "GET", "/api/v2/runtimes", None, &[], None);
    assert_eq!(r.status, 401);
    assert!(r.json()["message"].is_string(), "{}", r.text());
    let r = request_with(
        e.daemon.addr,
        "GET",
        "/about",
        None,
        &[("X-Auth-Token", "sk_wrong")],
        None,
    );
    assert_eq!(r.status, 401);
    for headers in [
        vec![("X-Auth-Token", e.key.as_str())],
        vec![("X-Auth-User", e.key.as_str())],
    ] {
        let r = request_with(e.daemon.addr, "GET", "/about", None, &headers, None);
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = request_with(e.daemon.addr, "GET", "/about", Some(&e.key), &[], None);
    assert_eq!(r.status, 200, "Bearer works too");

    // Another app cannot see the first one's submission.
    let v = run(&e, json!({"source_code": "print(1)", "language_id": 71}));
    let token = v["token"].as_str().unwrap();
    let other = api_support::create_app(e.dir.path(), "other", 4);
    let r = request_with(
        e.daemon.addr,
        "GET",
        &format!("/submissions/{token}"),
        None,
        &[("X-Auth-Token", other.as_str())],
        None,
    );
    assert_eq!(r.status, 404);
    drop(e);

    // compat_app serves clients that send no header, with that app's maxima.
    let Some(e) = start(&format!("{BOTH}compat_app = \"web\"\n"), &[]) else {
        return;
    };
    let r = request_with(e.daemon.addr, "GET", "/languages", None, &[], None);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = request_with(
        e.daemon.addr,
        "GET",
        "/about",
        None,
        &[("X-Auth-Token", "sk_wrong")],
        None,
    );
    assert_eq!(r.status, 401, "a wrong key is not the compat app");
}

#[test]
fn compat_routes_are_off_unless_configured() {
    let Some(e) = start("", &[]) else { return };
    for path in ["/submissions", "/languages", "/api/v2/runtimes"] {
        let r = call(&e, "GET", path, None);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.error_code(), "not_found");
    }
}

#[test]
fn callbacks_reach_only_listed_hosts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = format!("{BOTH}[judge0]\ncallback_hosts = [\"127.0.0.1:{port}\"]\n");
    let Some(e) = start(&config, &[]) else { return };
    let r = call(
        &e,
        "POST",
        "/submissions",
        Some(
            &json!({"source_code": "print('called back')", "language_id": 71,
                     "callback_url": format!("http://127.0.0.1:{port}/judge0/done")}),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let other = call(
        &e,
        "POST",
        "/submissions",
        Some(
            &json!({"source_code": "print(1)", "language_id": 71, "callback_url": "http://127.0.0.1:9/"}),
        ),
    );
    assert_eq!(other.status, 422);
    assert!(other.json()["callback_url"][0]
        .as_str()
        .unwrap()
        .contains("not allowed"));

    listener.set_nonblocking(false).unwrap();
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).unwrap();
        request.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&request);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if body.len() >= len || n == 0 {
                break;
            }
        }
        if n == 0 {
            break;
        }
    }
    conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&request).into_owned();
    assert!(text.starts_with("PUT /judge0/done HTTP/1.1"), "{text}");
    let body: Value = serde_json::from_str(text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert_eq!(body["token"], token);
    assert_eq!(body["status"]["id"], 3);
    assert_eq!(body["stdout"], b64(b"called back\n"));
}

#[test]
fn configured_language_ids_and_exec_format_errors() {
    // `[judge0] languages` maps more ids onto any language /v1 takes, here configured ones
    // (the test rootfs is the image `busybox`); a command that cannot be executed is 14.
    let config = format!(
        "{BOTH}[judge0]\nlanguages = {{ \"1000\" = \"shell\", \"1001\" = \"broken\" }}\n\
         [languages.shell]\nimage = \"busybox\"\nsource_file = \"prog.sh\"\ncmd = [\"sh\", \"prog.sh\"]\nversion = \"1.0\"\n\
         [languages.broken]\nimage = \"busybox\"\nsource_file = \"prog\"\ncmd = [\"/no/such/interpreter\"]\n"
    );
    let Some(e) = start(&config, &[]) else { return };
    let l = call(&e, "GET", "/languages/1000", None).json();
    assert_eq!(l["name"], "shell (1.0)", "{l}");
    assert_eq!(l["source_file"], "prog.sh");
    let v = run(
        &e,
        json!({"source_code": "echo \"$# $1 $2\"; echo oops >&2", "language_id": 1000,
               "command_line_arguments": "a 'b c'", "redirect_stderr_to_stdout": true}),
    );
    assert_eq!(status_id(&v), 3, "{v}");
    assert_eq!(v["stdout"], "2 a b c\noops\n");
    let v = run(&e, json!({"source_code": "x", "language_id": 1001}));
    assert_eq!(status_id(&v), 14, "{v}");
    assert_eq!(v["status"]["description"], "Exec Format Error");
}
