//! Helpers for the `sandcell grade` tests: running the CLI, finding (or building) the
//! language images the example suites need, checking JUnit with python's junitparser.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use crate::common;

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `sandcell grade ARGS...` with the image store at `state_dir`.
pub fn grade(state_dir: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = common::sandcell();
    cmd.arg("grade").args(args).current_dir(repo());
    if let Some(dir) = state_dir {
        cmd.env("SANDCELL_STATE_DIR", dir);
    }
    cmd.output().expect("spawn sandcell grade")
}

/// `sandcell grade --format json ARGS...` and the parsed report.
pub fn grade_json(state_dir: Option<&Path>, args: &[&str]) -> (serde_json::Value, Output) {
    let mut all = vec!["--format", "json"];
    all.extend_from_slice(args);
    let out = grade(state_dir, &all);
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); status {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (json, out)
}

/// The test named `name` in a JSON report.
pub fn test<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["tests"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == name))
        .unwrap_or_else(|| panic!("no test {name} in {report:#}"))
}

/// Verdicts of all tests, in suite order.
pub fn verdicts(report: &serde_json::Value) -> Vec<String> {
    report["tests"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| t["verdict"].as_str().unwrap_or("?").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A state dir whose store has the `cpp` and `python` images: $SANDCELL_STATE_DIR or
/// /var/lib/sandcell if they hold them, else a store under the target dir, built once with
/// the workspace's rootfs-builder. None (a loud skip) when that is impossible.
pub fn images() -> Option<PathBuf> {
    static STATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if !common::require_root() {
        return None;
    }
    let names = ["cpp", "python"];
    let found = STATE.get_or_init(|| {
        let candidates = std::env::var_os("SANDCELL_STATE_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain([PathBuf::from("/var/lib/sandcell")]);
        for dir in candidates {
            if common::store_has_images(&dir, &names) {
                return Ok(dir);
            }
        }
        let own = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("grade-state");
        if common::store_has_images(&own, &names) {
            return Ok(own);
        }
        common::build_store_images(&own, &names).map(|()| own)
    });
    match found {
        Ok(dir) => Some(dir.clone()),
        Err(why) => {
            common::require(false, &format!("no cpp/python images: {why}"));
            None
        }
    }
}

/// Python with junitparser (installed with pip if missing), or None after a loud skip.
pub fn junitparser_python() -> Option<&'static str> {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let has = |py: &str| {
            Command::new(py)
                .args(["-c", "import junitparser"])
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if has("python3") {
            return Ok(());
        }
        let pip = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "junitparser"])
            .output()
            .map_err(|e| format!("pip: {e}"))?;
        if pip.status.success() && has("python3") {
            Ok(())
        } else {
            Err(format!(
                "pip install junitparser failed: {}",
                String::from_utf8_lossy(&pip.stderr)
            ))
        }
    });
    match ready {
        Ok(()) => Some("python3"),
        Err(why) => {
            common::require(false, why);
            None
        }
    }
}
