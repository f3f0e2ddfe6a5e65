//! Running a testlib-style checker in its own cell: `RUN input.txt output.txt answer.txt`
//! in a fresh work dir holding the checker's files and the three data files.

use crate::result::Verdict;
use crate::sandbox::Launcher;
use crate::spec::{FileSpec, LimitBounds, RunSpec};

use super::prepare::{BoxFile, PreparedChecker};
use super::report::tail;

/// The names the data files get in the checker's work dir.
pub const INPUT_FILE: &str = "input.txt";
pub const OUTPUT_FILE: &str = "output.txt";
pub const ANSWER_FILE: &str = "answer.txt";

/// What the checker said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckerVerdict {
    /// Exit 0; the message is the checker's stdout (may be empty).
    Accepted(String),
    /// Exit 1 or 2 (testlib's WA / presentation error); the message explains.
    Rejected(String),
    /// Anything else: the checker crashed, timed out, or exited 3+ (testlib's "fail").
    Failed(String),
}

/// Runs the checker once for one test.
pub fn run_checker(
    launcher: &Launcher,
    checker: &PreparedChecker,
    allow_degraded: bool,
    files: &[BoxFile],
    input: &[u8],
    output: &[u8],
    answer: &[u8],
) -> CheckerVerdict {
    let mut argv = checker.run.clone();
    argv.extend([INPUT_FILE, OUTPUT_FILE, ANSWER_FILE].map(String::from));
    let mut spec = RunSpec::new(&checker.root.rootfs, argv);
    spec.env = checker.root.env.clone();
    spec.limits = checker.limits.clone();
    spec.allow_degraded = allow_degraded;
    spec.files = files
        .iter()
        .map(|f| FileSpec {
            path: f.name.clone(),
            content: f.content.clone(),
            mode: Some(f.mode),
        })
        .collect();
    for (name, content) in [
        (INPUT_FILE, input),
        (OUTPUT_FILE, output),
        (ANSWER_FILE, answer),
    ] {
        spec.files.push(FileSpec {
            path: name.to_string(),
            content: content.to_vec(),
            mode: Some(0o644),
        });
    }
    let spec = match spec.validate(&LimitBounds::default()) {
        Ok(s) => s,
        Err(e) => return CheckerVerdict::Failed(format!("checker spec: {e}")),
    };
    let result = launcher.run(&spec, &mut |_| {}, None);
    let said = || {
        let out = String::from_utf8_lossy(&result.stdout.bytes)
            .trim()
            .to_string();
        if out.is_empty() {
            tail(&result.stderr.bytes, 10, 1000)
        } else {
            tail(out.as_bytes(), 10, 1000)
        }
    };
    match (result.verdict, result.exit_code) {
        (Verdict::OK, _) => CheckerVerdict::Accepted(said()),
        (Verdict::RE, Some(1 | 2)) => CheckerVerdict::Rejected(said()),
        (verdict, code) => CheckerVerdict::Failed(format!(
            "checker ended with {verdict}{}{}: {}",
            code.map(|c| format!(" (exit code {c})"))
                .unwrap_or_default(),
            result
                .message
                .as_deref()
                .map(|m| format!(" — {m}"))
                .unwrap_or_default(),
            said()
        )),
    }
}
