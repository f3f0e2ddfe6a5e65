//! The outcome of a grading: one [`TestOutcome`] per test and a summary. Its serde form is the
//! stable JSON schema (`"schema": "sandcell.grade/v1"`) the CLI prints and the daemon returns.

use serde::{Deserialize, Serialize};

use crate::result::{RunResult, Verdict};

pub const SCHEMA: &str = "sandcell.grade/v1";

/// The verdict of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum TestVerdict {
    /// Accepted.
    AC,
    /// Wrong answer.
    WA,
    /// Time limit exceeded (CPU or wall clock; `reason` says which).
    TLE,
    /// Memory limit exceeded.
    MLE,
    /// Runtime error: non-zero exit code.
    RE,
    /// Output limit exceeded.
    OLE,
    /// Killed by a signal.
    SG,
    /// Sandbox or checker failure.
    XX,
    /// Not run (compile error, --fail-fast after a failure, cancelled).
    SKIPPED,
}

impl TestVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            TestVerdict::AC => "AC",
            TestVerdict::WA => "WA",
            TestVerdict::TLE => "TLE",
            TestVerdict::MLE => "MLE",
            TestVerdict::RE => "RE",
            TestVerdict::OLE => "OLE",
            TestVerdict::SG => "SG",
            TestVerdict::XX => "XX",
            TestVerdict::SKIPPED => "SKIPPED",
        }
    }

    /// Counts as a failure of the suite.
    pub fn is_failure(self) -> bool {
        !matches!(self, TestVerdict::AC | TestVerdict::SKIPPED)
    }
}

impl std::fmt::Display for TestVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one test went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestOutcome {
    /// Position in the suite (0-based).
    pub index: usize,
    pub name: String,
    pub verdict: TestVerdict,
    /// For TLE: `cpu` or `wall`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub weight: f64,
    /// `weight` if AC, else 0.
    pub score: f64,
    /// CPU time (the judge's "time").
    pub time_ms: u64,
    pub wall_time_ms: u64,
    pub memory_bytes: Option<u64>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// A human explanation: the checker's message, "exit code 3", sandbox errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// For WA: where the output first differs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// The last lines of the program's stderr.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr_tail: String,
}

impl TestOutcome {
    /// A test that did not run.
    pub fn skipped(index: usize, name: &str, weight: f64, why: &str) -> Self {
        TestOutcome {
            index,
            name: name.to_string(),
            verdict: TestVerdict::SKIPPED,
            reason: None,
            weight,
            score: 0.0,
            time_ms: 0,
            wall_time_ms: 0,
            memory_bytes: None,
            exit_code: None,
            signal: None,
            message: Some(why.to_string()),
            diff: None,
            stderr_tail: String::new(),
        }
    }

    /// The outcome for a finished run before its output is judged (AC if it ended cleanly).
    pub fn from_run(index: usize, name: &str, weight: f64, run: &RunResult) -> Self {
        let (verdict, message) = match run.verdict {
            Verdict::OK => (TestVerdict::AC, None),
            Verdict::RE => (
                TestVerdict::RE,
                Some(format!("exit code {}", run.exit_code.unwrap_or(-1))),
            ),
            Verdict::SG => (
                TestVerdict::SG,
                Some(format!(
                    "killed by signal {}",
                    signal_name(run.signal.unwrap_or(0))
                )),
            ),
            Verdict::TO => (TestVerdict::TLE, run.message.clone()),
            Verdict::MLE => (TestVerdict::MLE, run.message.clone()),
            Verdict::OLE => (TestVerdict::OLE, run.message.clone()),
            Verdict::CANCELLED => (TestVerdict::SKIPPED, Some("cancelled".to_string())),
            Verdict::CE | Verdict::XX => (
                TestVerdict::XX,
                Some(
                    run.message
                        .clone()
                        .unwrap_or_else(|| "sandbox error".into()),
                ),
            ),
        };
        TestOutcome {
            index,
            name: name.to_string(),
            verdict,
            reason: run.reason.clone().filter(|_| verdict == TestVerdict::TLE),
            weight,
            score: 0.0,
            time_ms: run.cpu_time_ms,
            wall_time_ms: run.wall_time_ms,
            memory_bytes: run.memory_peak_bytes,
            exit_code: run.exit_code,
            signal: run.signal,
            message,
            diff: None,
            stderr_tail: tail(&run.stderr.bytes, STDERR_TAIL_LINES, STDERR_TAIL_BYTES),
        }
    }
}

const STDERR_TAIL_LINES: usize = 20;
const STDERR_TAIL_BYTES: usize = 2000;

/// The last `lines` lines (at most `bytes` bytes) of a stream, as text.
pub fn tail(bytes: &[u8], lines: usize, max_bytes: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    let start = text
        .char_indices()
        .rev()
        .filter(|&(_, c)| c == '\n')
        .nth(lines.saturating_sub(1))
        .map_or(0, |(i, _)| i + 1);
    let mut tail = &text[start..];
    if tail.len() > max_bytes {
        let mut cut = tail.len() - max_bytes;
        while !tail.is_char_boundary(cut) {
            cut += 1;
        }
        tail = &tail[cut..];
    }
    tail.to_string()
}

fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => format!("{} ({sig})", s.as_str()),
        Err(_) => sig.to_string(),
    }
}

/// The build step's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompileOutcome {
    /// `OK`, `CE` (the compiler failed or hit a limit) or `XX` (sandbox error).
    pub verdict: String,
    pub exit_code: Option<i32>,
    pub time_ms: u64,
    pub wall_time_ms: u64,
    pub memory_bytes: Option<u64>,
    /// The compiler's stdout and stderr, capped.
    pub output: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Cells started, by purpose (compile runs exactly once per suite).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellCounts {
    pub compile: usize,
    pub tests: usize,
    pub checker_compile: usize,
    pub checker: usize,
    /// Of all these, the cells that were prepared ahead (warm) rather than when their run
    /// started (`sandcell grade`; absent where the launcher is shared, as in the daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<u64>,
}

/// The whole grading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GradeReport {
    /// Always `sandcell.grade/v1` for this shape.
    pub schema: String,
    pub suite: String,
    /// `AC` when every test passed; `CE`; `XX` for sandbox errors; otherwise the verdict of
    /// the first failed test in suite order.
    pub verdict: String,
    pub passed: usize,
    pub total: usize,
    pub score: f64,
    pub max_score: f64,
    /// Largest CPU time, wall time and peak memory over the tests that ran.
    pub max_time_ms: u64,
    pub max_wall_time_ms: u64,
    pub max_memory_bytes: Option<u64>,
    /// Wall time of the whole grading, compile included.
    pub elapsed_ms: u64,
    pub cells: CellCounts,
    pub compile: Option<CompileOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checker_compile: Option<CompileOutcome>,
    /// Why the grading failed as a whole (sandbox errors).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Things a suite author should look at, e.g. a TLE from the wall clock alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub tests: Vec<TestOutcome>,
}

impl GradeReport {
    /// A report of suite `suite` with no tests and nothing summarised yet.
    pub fn empty(suite: &str) -> GradeReport {
        GradeReport {
            schema: SCHEMA.into(),
            suite: suite.into(),
            verdict: String::new(),
            passed: 0,
            total: 0,
            score: 0.0,
            max_score: 0.0,
            max_time_ms: 0,
            max_wall_time_ms: 0,
            max_memory_bytes: None,
            elapsed_ms: 0,
            cells: CellCounts::default(),
            compile: None,
            checker_compile: None,
            message: None,
            warnings: Vec::new(),
            tests: Vec::new(),
        }
    }

    /// Fills in the summary fields from the tests, compile outcome and message.
    pub fn summarise(&mut self) {
        self.total = self.tests.len();
        self.passed = self
            .tests
            .iter()
            .filter(|t| t.verdict == TestVerdict::AC)
            .count();
        self.score = self.tests.iter().map(|t| t.score).sum();
        self.max_score = self.tests.iter().map(|t| t.weight).sum();
        let ran = self
            .tests
            .iter()
            .filter(|t| t.verdict != TestVerdict::SKIPPED);
        self.max_time_ms = ran.clone().map(|t| t.time_ms).max().unwrap_or(0);
        self.max_wall_time_ms = ran.clone().map(|t| t.wall_time_ms).max().unwrap_or(0);
        self.max_memory_bytes = ran.filter_map(|t| t.memory_bytes).max();
        self.warnings = self
            .tests
            .iter()
            .filter(|t| t.verdict == TestVerdict::TLE && t.reason.as_deref() == Some("wall"))
            .map(|t| {
                format!(
                    "test {} ({}): TLE from the wall-clock limit after {} ms of CPU, under the \
                     CPU limit: a busy machine or a program that waits; raise `wall_time` in \
                     [limits] if the host is loaded",
                    t.index + 1,
                    t.name,
                    t.time_ms
                )
            })
            .collect();
        let compile_verdict = [&self.compile, &self.checker_compile]
            .into_iter()
            .flatten()
            .map(|c| c.verdict.as_str())
            .find(|v| *v != "OK");
        self.verdict = if self.message.is_some() || compile_verdict == Some("XX") {
            "XX".into()
        } else if let Some(v) = compile_verdict {
            v.into()
        } else if self.tests.iter().any(|t| t.verdict == TestVerdict::XX) {
            "XX".into()
        } else if let Some(t) = self.tests.iter().find(|t| t.verdict.is_failure()) {
            t.verdict.as_str().into()
        } else if self.passed == self.total {
            "AC".into()
        } else {
            "SKIPPED".into()
        };
    }

    /// 0 iff every test is AC; 125 for sandbox errors; 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self.verdict.as_str() {
            "AC" => 0,
            "XX" => 125,
            _ => 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail(b"a\nb\nc\nd\n", 2, 100), "c\nd");
        assert_eq!(tail(b"abc", 5, 100), "abc");
        assert_eq!(tail("ééé".as_bytes(), 1, 3), "é");
    }

    fn outcome(v: TestVerdict) -> TestOutcome {
        let mut t = TestOutcome::skipped(0, "t", 1.0, "");
        t.verdict = v;
        t.score = if v == TestVerdict::AC { 1.0 } else { 0.0 };
        t
    }

    fn report(tests: Vec<TestOutcome>) -> GradeReport {
        let mut r = GradeReport {
            tests,
            ..GradeReport::empty("s")
        };
        r.summarise();
        r
    }

    #[test]
    fn summary_and_exit_codes() {
        let r = report(vec![outcome(TestVerdict::AC), outcome(TestVerdict::AC)]);
        assert_eq!((r.verdict.as_str(), r.exit_code(), r.passed), ("AC", 0, 2));
        let r = report(vec![
            outcome(TestVerdict::AC),
            outcome(TestVerdict::TLE),
            outcome(TestVerdict::WA),
        ]);
        assert_eq!(
            (r.verdict.as_str(), r.exit_code(), r.score),
            ("TLE", 1, 1.0)
        );
        let r = report(vec![outcome(TestVerdict::WA), outcome(TestVerdict::XX)]);
        assert_eq!((r.verdict.as_str(), r.exit_code()), ("XX", 125));
    }

    #[test]
    fn a_wall_clock_tle_is_a_warning_a_cpu_tle_is_not() {
        let timed_out = |reason: &str| {
            let mut t = outcome(TestVerdict::TLE);
            t.reason = Some(reason.into());
            t.time_ms = 40;
            t
        };
        let r = report(vec![timed_out("cpu"), timed_out("wall")]);
        assert_eq!(r.warnings.len(), 1, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("wall-clock limit after 40 ms of CPU"));
        assert!(r.warnings[0].contains("wall_time"));
    }
}
