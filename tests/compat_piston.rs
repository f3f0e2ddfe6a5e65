//! The Piston v2 routes of `sandcell serve` over HTTP: a real daemon with
//! `compat = ["judge0", "piston"]` and `compat_app` (Piston clients send no key), real
//! cells, Piston's names, aliases, versions, stage objects, status codes and its
//! `{"message"}` errors (400, never a 5xx).

mod api_support;
mod common;
mod compat_support;

use api_support::{request_with, Response};
use compat_support::{start, Env, BOTH};
use serde_json::{json, Value};

fn env() -> Option<Env> {
    start(&format!("{BOTH}compat_app = \"web\"\n"), &[])
}

fn post(e: &Env, path: &str, body: &[u8]) -> Response {
    request_with(e.daemon.addr, "POST", path, None, &[], Some(body))
}

fn execute(e: &Env, body: Value) -> Value {
    let r = post(e, "/api/v2/execute", body.to_string().as_bytes());
    assert_eq!(r.status, 200, "{body}: {}", r.text());
    r.json()
}

fn code(language: &str, version: &str, content: &str) -> Value {
    json!({"language": language, "version": version, "files": [{"content": content}]})
}

#[test]
fn runtimes_list_pistons_names_and_aliases_under_both_prefixes() {
    let Some(e) = env() else { return };
    for path in ["/api/v2/runtimes", "/api/v2/piston/runtimes"] {
        let r = request_with(e.daemon.addr, "GET", path, None, &[], None);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let list = r.json();
        let find = |name: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|r| r["language"] == name)
                .unwrap_or_else(|| panic!("no runtime {name}: {list}"))
                .clone()
        };
        assert_eq!(find("c++")["aliases"], json!(["cpp", "g++"]));
        assert_eq!(find("python")["aliases"], json!(["py", "py3", "python3"]));
        assert_eq!(find("c")["aliases"], json!(["gcc"]));
        assert_eq!(find("bash")["aliases"], json!(["sh"]));
        let v = find("python")["version"].as_str().unwrap().to_owned();
        assert!(v.starts_with("3."), "{v}");
    }
}

#[test]
fn execute_compiles_runs_and_reports_stages() {
    let Some(e) = env() else { return };
    // Names and aliases, exact, `*` and partial versions.
    let py_version = {
        let rts = request_with(e.daemon.addr, "GET", "/api/v2/runtimes", None, &[], None).json();
        rts.as_array()
            .unwrap()
            .iter()
            .find(|r| r["language"] == "python")
            .unwrap()["version"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (lang, version) in [
        ("python", py_version.as_str()),
        ("py", "*"),
        ("python3", "3"),
    ] {
        let v = execute(&e, code(lang, version, "print('hi')"));
        assert_eq!(v["language"], "python");
        assert_eq!(v["version"], py_version.as_str());
        assert_eq!(v["run"]["stdout"], "hi\n");
        assert_eq!(v["run"]["code"], 0);
        assert_eq!(v["run"]["status"], Value::Null);
        assert!(v.get("compile").is_none(), "python does not compile: {v}");
    }
    for lang in ["c++", "cpp", "g++"] {
        let v = execute(
            &e,
            code(
                lang,
                "*",
                "#include <cstdio>\nint main(int c, char**){std::printf(\"%d\\n\", c);}",
            ),
        );
        assert_eq!(v["language"], "c++");
        assert_eq!(v["compile"]["code"], 0, "{v}");
        assert_eq!(v["run"]["stdout"], "1\n", "{v}");
    }
    let v = execute(
        &e,
        code(
            "gcc",
            "*",
            "#include <stdio.h>\nint main(void){puts(\"c\");}",
        ),
    );
    assert_eq!(
        (v["language"].as_str(), v["run"]["output"].as_str()),
        (Some("c"), Some("c\n"))
    );
    let v = execute(&e, code("sh", "*", "echo \"$1-$2\""));
    assert_eq!(v["language"], "bash");
    assert_eq!(v["run"]["stdout"], "-\n");

    // stdin (Piston adds the final newline), args, several files, base64 and hex files.
    let mut body = code(
        "python",
        "*",
        "import sys, helper\nprint(helper.X, sys.argv[1:], input(), open('data.bin','rb').read())",
    );
    body["files"] = json!([
        {"name": "main.py", "content": "import sys, helper\nprint(helper.X, sys.argv[1:], input(), open('data.bin','rb').read(), open('more.bin','rb').read())"},
        {"name": "helper.py", "content": "X = 42"},
        {"name": "data.bin", "content": "AAE=", "encoding": "base64"},
        {"name": "more.bin", "content": "ff", "encoding": "hex"},
    ]);
    body["stdin"] = json!("line");
    body["args"] = json!(["a", "b c"]);
    let v = execute(&e, body);
    assert_eq!(
        v["run"]["stdout"], "42 ['a', 'b c'] line b'\\x00\\x01' b'\\xff'\n",
        "{v}"
    );

    // Compile error: `run` is the compile stage, as Piston answers.
    let v = execute(&e, code("c++", "*", "int main() { return nope; }"));
    assert_eq!(v["compile"]["status"], "RE", "{v}");
    assert_ne!(v["compile"]["code"], 0);
    assert!(v["compile"]["stderr"].as_str().unwrap().contains("nope"));
    assert_eq!(v["run"], v["compile"]);

    // Status codes: RE, SG, TO, OL, EL.
    let v = execute(
        &e,
        code(
            "python",
            "*",
            "import sys\nprint('x', file=sys.stderr)\nsys.exit(4)",
        ),
    );
    assert_eq!(
        (v["run"]["status"].as_str(), v["run"]["code"].as_i64()),
        (Some("RE"), Some(4))
    );
    assert_eq!(v["run"]["stderr"], "x\n");
    assert_eq!(v["run"]["output"], "x\n");
    let v = execute(
        &e,
        code("c", "*", "int main(void){volatile int *p = 0; return *p;}"),
    );
    assert_eq!(v["run"]["status"], "SG", "{v}");
    assert_eq!(v["run"]["signal"], "SIGSEGV");
    let mut body = code("python", "*", "while True: pass");
    body["run_timeout"] = json!(1000);
    let v = execute(&e, body);
    assert_eq!(v["run"]["status"], "TO", "{v}");
    assert_eq!(v["run"]["signal"], "SIGKILL");
    let v = execute(
        &e,
        code(
            "python",
            "*",
            "import sys\nsys.stdout.write('x' * (4 << 20))",
        ),
    );
    assert_eq!(v["run"]["status"], "OL", "{v}");
    let v = execute(
        &e,
        code(
            "python",
            "*",
            "import sys\nsys.stderr.write('x' * (4 << 20))",
        ),
    );
    assert_eq!(v["run"]["status"], "EL", "{v}");
    assert!(v["run"]["wall_time"].is_u64() && v["run"]["cpu_time"].is_u64());

    // The hosted prefix works the same.
    let r = post(
        &e,
        "/api/v2/piston/execute",
        code("py", "*", "print(1)").to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["run"]["stdout"], "1\n");
}

#[test]
fn malformed_requests_get_pistons_400_message() {
    let Some(e) = env() else { return };
    let cases: Vec<(&[u8], &str)> = vec![
        (b"{oops", "malformed JSON body"),
        (b"[]", "request body must be a JSON object"),
        (b"{}", "language is required as a string"),
        (br#"{"language": 5}"#, "language is required as a string"),
        (br#"{"language": "python"}"#, "version is required as a string"),
        (br#"{"language": "python", "version": "*", "files": {}}"#, "files is required as an array"),
        (br#"{"language": "python", "version": "*", "files": [{}]}"#, "files[0].content is required as a string"),
        (br#"{"language": "python", "version": "*", "files": [{"content": "AA==", "encoding": "base64"}]}"#, "files must include at least one utf8 encoded file"),
        (br#"{"language": "python", "version": "9", "files": [{"content": "1"}]}"#, "python-9 runtime is unknown"),
        (br#"{"language": "brainfuck", "version": "*", "files": [{"content": "1"}]}"#, "brainfuck-* runtime is unknown"),
        (br#"{"language": "python", "version": "*", "files": [{"content": "1"}], "run_timeout": "fast"}"#, "If specified, run_timeout must be a number"),
        (br#"{"language": "python", "version": "*", "files": [{"content": "1"}], "run_memory_limit": 1e18}"#, "run_memory_limit cannot exceed the configured limit of"),
        (br#"{"language": "python", "version": "*", "files": [{"name": "../x.py", "content": "1"}, {"name": "/etc/y", "content": "2"}]}"#, "path"),
        (br#"{"language": "python", "version": "*", "files": [{"content": "1"}], "args": [{}]}"#, "args must be an array of strings"),
        (br#"{"language": "python", "version": "*", "files": [{"content": "1"}], "stdin": 5}"#, "stdin must be a string"),
    ];
    for (body, want) in cases {
        let r = post(&e, "/api/v2/execute", body);
        assert_eq!(
            r.status,
            400,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        let m = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            m.contains(want),
            "{}: {m:?} lacks {want:?}",
            String::from_utf8_lossy(body)
        );
    }
    // Clients send `-1` for "the configured default".
    let r = request_with(
        e.daemon.addr,
        "POST",
        "/api/v2/execute",
        None,
        &[],
        Some(br#"{"language":"python","version":"*","files":[{"content":"print(7)"}],"run_memory_limit":-1,"compile_memory_limit":-1}"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["run"]["stdout"], "7\n");
}
