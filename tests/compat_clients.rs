//! The published clients, unmodified, against a live `sandcell serve`: the official Judge0
//! Python SDK (PyPI `judge0`) and the `piston-client` npm package drive the compat routes
//! through the scripts in tests/compat_clients/, which print what the clients expose.
//!
//! scripts/install-deps installs both (pip; npm into /var/cache/sandcell-test/npm-compat,
//! a fixed directory any checkout finds). If they are missing the test installs them the
//! same way, and skips loudly (fails under SANDCELL_MUST_RUN=1) when it cannot.

mod api_support;
mod common;
mod compat_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use compat_support::{start, BOTH};
use serde_json::Value;

const JUDGE0_SDK: &str = "judge0==0.0.8";
const PISTON_CLIENT: &str = "piston-client@1.0.2";

fn scripts() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/compat_clients")
}

/// Where the npm client lives: $SANDCELL_TEST_NPM_COMPAT or the fixed cache directory.
fn npm_prefix() -> PathBuf {
    std::env::var_os("SANDCELL_TEST_NPM_COMPAT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/sandcell-test/npm-compat"))
}

fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn judge0_sdk() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let has = || succeeds(Command::new("python3").args(["-c", "import judge0"]));
        if has() {
            return Ok(());
        }
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", JUDGE0_SDK])
            .output()
            .map_err(|e| format!("pip: {e}"))?;
        if has() {
            Ok(())
        } else {
            Err(format!(
                "the Judge0 SDK is not installed and pip install {JUDGE0_SDK} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    match ready {
        Ok(()) => true,
        Err(why) => common::require(false, why),
    }
}

fn piston_client() -> Option<PathBuf> {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        if !succeeds(Command::new("node").arg("--version")) {
            return Err("node is not installed (apt-get install nodejs npm)".into());
        }
        let prefix = npm_prefix();
        let modules = prefix.join("node_modules");
        let has = |m: &Path| m.join("piston-client/package.json").exists();
        if has(&modules) {
            return Ok(modules);
        }
        std::fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent", "--prefix"])
            .arg(&prefix)
            .arg(PISTON_CLIENT)
            .output()
            .map_err(|e| format!("npm: {e}"))?;
        if has(&modules) {
            Ok(modules)
        } else {
            Err(format!(
                "piston-client is not installed and npm install {PISTON_CLIENT} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    match ready {
        Ok(m) => Some(m.clone()),
        Err(why) => {
            common::require(false, why);
            None
        }
    }
}

/// Runs a client script to its end (killed only if it hangs for minutes) and parses the
/// JSON it prints.
fn run_script(cmd: &mut Command) -> Value {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the client script");
    let deadline = Instant::now() + Duration::from_secs(600);
    while child.try_wait().expect("wait for the client").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("client output");
    assert!(
        out.status.success(),
        "client failed ({:?}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "client printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn the_official_judge0_python_sdk_runs_unmodified() {
    if !judge0_sdk() {
        return;
    }
    let Some(e) = start(BOTH, &[]) else { return };
    let url = format!("http://{}", e.daemon.addr);
    let v = run_script(
        Command::new("python3")
            .arg(scripts().join("judge0_sdk.py"))
            .arg(&url)
            .arg(&e.key),
    );
    assert_eq!(v["about_version"], "1.13.1");
    let langs: Vec<u64> = v["languages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_u64().unwrap())
        .collect();
    for id in [46, 50, 52, 54, 71] {
        assert!(langs.contains(&id), "{id} not offered: {langs:?}");
    }
    let case = |name: &str| v[name].clone();
    for (name, stdout) in [
        ("c", "hello from c\n"),
        ("cpp", "hello from c++\n"),
        ("python", "hello from python\n"),
        ("stdin", "hello, world\n"),
    ] {
        let c = case(name);
        assert_eq!(c["status"], 3, "{name}: {c}");
        assert_eq!(c["status_name"], "Accepted");
        assert_eq!(c["stdout"], stdout, "{name}");
        assert_eq!(c["exit_code"], 0);
        assert!(c["time"].is_f64() && c["memory"].is_number(), "{name}: {c}");
        assert_eq!(c["token"].as_str().map(str::len), Some(36));
    }
    let ce = case("compile_error");
    assert_eq!(ce["status"], 6, "{ce}");
    assert!(ce["compile_output"]
        .as_str()
        .unwrap()
        .contains("undefined_name"));
    assert_eq!(ce["stdout"], Value::Null);
    let to = case("timeout");
    assert_eq!(to["status"], 5, "{to}");
    let re = case("runtime_error");
    assert_eq!(re["status"], 11, "{re}");
    assert_eq!(re["exit_code"], 1);
    assert!(re["stderr"].as_str().unwrap().contains("ValueError: boom"));
    let wa = case("wrong_answer");
    assert_eq!(wa["status"], 4, "{wa}");
    assert_eq!(wa["stdout"], "41\n");
    assert_eq!(
        case("accepted")["status"],
        3,
        "trailing whitespace is ignored"
    );
    let batch = v["batch"].as_array().unwrap();
    assert_eq!(batch.len(), 3);
    assert_eq!(
        (batch[0]["status"].as_u64(), batch[0]["stdout"].as_str()),
        (Some(3), Some("one\n"))
    );
    assert_eq!(batch[1]["stdout"], "hello from c\n");
    assert_eq!(batch[2]["status"], 4, "{}", batch[2]);
    assert_eq!(
        v["statuses"],
        serde_json::json!([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14])
    );
}

#[test]
fn the_piston_client_npm_package_runs_unmodified() {
    let Some(modules) = piston_client() else {
        return;
    };
    // piston-client sends no key: the operator names the app that serves it.
    let Some(e) = start(&format!("{BOTH}compat_app = \"web\"\n"), &[]) else {
        return;
    };
    let url = format!("http://{}", e.daemon.addr);
    let v = run_script(
        Command::new("node")
            .arg(scripts().join("piston_client.mjs"))
            .arg(&modules)
            .arg(&url),
    );
    let names: Vec<&str> = v["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["language"].as_str().unwrap())
        .collect();
    for n in ["c", "c++", "python", "bash"] {
        assert!(names.contains(&n), "{n} missing: {names:?}");
    }
    for (name, language, stdout) in [
        ("c", "c", "hello from c\n"),
        ("cpp", "c++", "hello from c++\n"),
        ("python", "python", "hello from python\n"),
        ("stdin", "python", "hello, world\n"),
        ("args", "python", "['1', '2', '3']\n"),
    ] {
        let r = &v[name];
        assert_eq!(r["language"], language, "{name}: {r}");
        assert_eq!(r["run"]["stdout"], stdout, "{name}: {r}");
        assert_eq!(r["run"]["code"], 0);
        assert_eq!(r["run"]["status"], Value::Null);
    }
    assert_eq!(v["cpp"]["compile"]["code"], 0, "C++ compiles first");
    let ce = &v["compile_error"];
    assert_eq!(ce["compile"]["status"], "RE", "{ce}");
    assert!(ce["compile"]["output"]
        .as_str()
        .unwrap()
        .contains("undefined_name"));
    let to = &v["timeout"]["run"];
    assert_eq!(
        (to["status"].as_str(), to["signal"].as_str()),
        (Some("TO"), Some("SIGKILL")),
        "{to}"
    );
    let re = &v["runtime_error"]["run"];
    assert_eq!(
        (re["status"].as_str(), re["code"].as_i64()),
        (Some("RE"), Some(1))
    );
    assert!(re["stderr"].as_str().unwrap().contains("ValueError: boom"));
    assert_eq!(v["unknown"]["message"], "cobol-* runtime is unknown");
}
