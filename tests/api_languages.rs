//! `sandcell serve` with the image store and its languages: the real daemon on a loopback
//! port whose state dir holds the python and cpp images (built with the workspace's
//! rootfs-builder, as the grader's tests do), compiling and running real sources in cells.

mod api_support;
mod common;
mod grade_support;

use std::path::PathBuf;
use std::time::Duration;

use api_support::{create_app, Daemon};
use serde_json::json;

struct Env {
    rootfs: PathBuf,
    dir: tempfile::TempDir,
}

/// A fresh state dir (its own SQLite store) whose `images/` is the shared store holding the
/// `python` and `cpp` images; None after a loud skip.
fn env() -> Option<Env> {
    let rootfs = common::setup()?;
    let images = grade_support::images()?;
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(images.join("images"), dir.path().join("images")).unwrap();
    Some(Env { rootfs, dir })
}

fn start(e: &Env) -> (Daemon, String) {
    let key = create_app(e.dir.path(), "judge", 16);
    let d = Daemon::start(e.dir.path(), &e.rootfs, &[]);
    (d, key)
}

fn source_run(language: &str, path: &str, source: &str) -> serde_json::Value {
    json!({
        "language": language,
        "files": [{"path": path, "content": source}],
        "wait": true,
    })
}

const CPP_HELLO: &str = "#include <iostream>\nint main() { std::string s; std::getline(std::cin, s); std::cout << \"hello, \" << s << std::endl; }\n";

#[test]
fn python_and_cpp_hello_world_over_http() {
    let Some(e) = env() else { return };
    let (d, key) = start(&e);

    let r = d.post_run(
        &key,
        &source_run("python", "main.py", "print('hello from python')\n"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["verdict"], "OK", "{v}");
    assert_eq!(v["stdout"], "hello from python\n");
    assert!(v.get("compile").is_none(), "python does not compile: {v}");

    let mut body = source_run("cpp", "solution.cpp", CPP_HELLO);
    body["stdin"] = json!("world\n");
    let r = d.post_run(&key, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["verdict"], "OK", "{v}");
    assert_eq!(v["stdout"], "hello, world\n");
    assert_eq!(v["compile"]["verdict"], "OK", "{v}");
    assert_eq!(v["compile"]["exit_code"], 0);

    // The stored result keeps the compile step too.
    let id = v["id"].as_str().unwrap();
    let stored = d.wait_done(&key, id, Duration::from_secs(10));
    assert_eq!(stored["result"]["stdout"], "hello, world\n");
    assert_eq!(stored["compile"]["verdict"], "OK", "{stored}");

    // By name:version and by image reference too.
    let langs = d.request("GET", "/v1/languages", Some(&key), None).json();
    let cpp = langs["languages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "cpp")
        .cloned()
        .unwrap_or_else(|| panic!("no cpp in {langs}"));
    assert_eq!(cpp["source"], "store");
    assert!(cpp["compile"].as_array().is_some_and(|c| !c.is_empty()));
    let by_image = cpp["image"].as_str().unwrap();
    let r = d.post_run(&key, &source_run(by_image, "a.cpp", CPP_HELLO));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["stdout"], "hello, \n");
}

#[test]
fn a_cpp_compile_error_is_ce_with_the_compilers_message() {
    let Some(e) = env() else { return };
    let (d, key) = start(&e);
    let r = d.post_run(
        &key,
        &source_run(
            "cpp",
            "main.cpp",
            "int main() { return undeclared_thing; }\n",
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["verdict"], "CE", "{v}");
    let compiler_says = format!("{}{}", v["compile"]["stdout"], v["compile"]["stderr"]);
    assert!(
        compiler_says.contains("undeclared_thing"),
        "compiler output: {compiler_says}"
    );
    assert_ne!(v["compile"]["exit_code"], 0);
    assert!(v["message"].as_str().unwrap_or("").contains("compiling"));

    // Async: the run reaches done with CE; SSE ends with the result.
    let mut body = source_run("cpp", "main.cpp", "this is not C++\n");
    body["wait"] = json!(false);
    let r = d.post_run(&key, &body);
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let done = d.wait_done(&key, &id, Duration::from_secs(60));
    assert_eq!(done["verdict"], "CE", "{done}");
    assert_ne!(done["compile"]["verdict"], "OK", "{done}");
}

#[test]
fn store_images_serve_runs_with_their_defaults() {
    let Some(e) = env() else { return };
    let (d, key) = start(&e);

    let images = d.request("GET", "/v1/images", Some(&key), None);
    assert_eq!(images.status, 200, "{}", images.text());
    let images = images.json();
    let names: Vec<&str> = images["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["name"].as_str())
        .collect();
    assert!(names.contains(&"busybox"), "{images}"); // configured
    assert!(names.iter().any(|n| n.starts_with("python:")), "{images}");
    assert!(names.iter().any(|n| n.starts_with("cpp:")), "{images}");

    let r = d.post_run(
        &key,
        &json!({
            "image": "python",
            "cmd": ["python3", "-c", "import os,sys; print(sys.version_info[0], os.environ.get('PYTHONDONTWRITEBYTECODE'), os.environ['X'])"],
            "env": {"X": "from request"},
            "wait": true,
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["verdict"], "OK", "{v}");
    assert_eq!(v["stdout"], "3 1 from request\n");

    // Configured names still win; unknown images stay a 422.
    let r = d.post_run(
        &key,
        &json!({"image": "busybox", "cmd": ["sh", "-c", "echo dir"], "wait": true}),
    );
    assert_eq!(r.json()["stdout"], "dir\n");
    for body in [
        json!({"image": "no-such-image", "cmd": ["true"]}),
        json!({"language": "no-such-language", "files": [{"path": "a", "content": "x"}]}),
        json!({"language": "cpp", "files": []}),
        json!({"language": "cpp", "files": [{"path": "../x.cpp", "content": "x"}]}),
    ] {
        let r = d.post_run(&key, &body);
        assert_eq!(r.status, 422, "{body}: {}", r.text());
    }
}

fn image_cmd(state_dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    common::sandcell()
        .arg("image")
        .args(args)
        .arg("--state-dir")
        .arg(state_dir)
        .output()
        .expect("run sandcell image")
}

#[test]
fn a_store_image_is_leased_until_its_run_ends() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // A private store with the busybox rootfs imported as "bb".
    let tarball = dir.path().join("bb.tar");
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tarball)
        .arg(".")
        .status();
    if !common::require(tar.is_ok_and(|s| s.success()), "needs tar") {
        return;
    }
    let state = dir.path().join("state");
    let out = image_cmd(
        &state,
        &["import", "--name", "bb", tarball.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let key = create_app(&state, "judge", 4);
    let d = Daemon::start(&state, &rootfs, &[]);
    let r = d.post_run(
        &key,
        &json!({"image": "bb:latest", "cmd": ["sh", "-c", "sleep 1; echo leased"]}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    // Accepted, so leased: removal is refused while the run is queued or running.
    let rm = image_cmd(&state, &["rm", "bb"]);
    assert!(!rm.status.success(), "image rm succeeded during the run");
    assert!(
        String::from_utf8_lossy(&rm.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&rm.stderr)
    );
    let done = d.wait_done(&key, &id, Duration::from_secs(30));
    assert_eq!(done["result"]["stdout"], "leased\n", "{done}");
    let rm = image_cmd(&state, &["rm", "bb"]);
    assert!(
        rm.status.success(),
        "image rm after the run: {}",
        String::from_utf8_lossy(&rm.stderr)
    );
    let r = d.post_run(&key, &json!({"image": "bb", "cmd": ["true"]}));
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.error_code(), "unknown_image");
}
