//! How a run ended: one [`Verdict`] plus usage and captured output ([`RunResult`]).

use base64::Engine;
use serde::{Deserialize, Serialize};

/// The single verdict every run ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Verdict {
    /// Exit status 0.
    OK,
    /// Non-zero exit status.
    RE,
    /// Killed by a signal (not by us).
    SG,
    /// Wall-clock or CPU time limit hit (see `reason`).
    TO,
    /// The cgroup's OOM killer fired.
    MLE,
    /// stdout or stderr passed the output limit.
    OLE,
    /// Compile error (compile step of a compiled language).
    CE,
    /// Cancelled by the user (HTTP DELETE).
    CANCELLED,
    /// The sandbox failed; `message` says why.
    XX,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::OK => "OK",
            Verdict::RE => "RE",
            Verdict::SG => "SG",
            Verdict::TO => "TO",
            Verdict::MLE => "MLE",
            Verdict::OLE => "OLE",
            Verdict::CE => "CE",
            Verdict::CANCELLED => "CANCELLED",
            Verdict::XX => "XX",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Captured bytes of one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    pub bytes: Vec<u8>,
    /// The stream passed the output limit; `bytes` holds the first `limit` bytes.
    pub truncated: bool,
}

/// The outcome of one run, as the CLI's `--json`, the HTTP API and the grader report it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub verdict: Verdict,
    /// For TO: `"wall"` or `"cpu"`; for others, a short machine-readable cause if any.
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: Captured,
    pub stderr: Captured,
    pub wall_time_ms: u64,
    pub cpu_time_ms: u64,
    pub memory_peak_bytes: Option<u64>,
    /// Human-readable explanation (sandbox errors, limits hit).
    pub message: Option<String>,
    /// Limits that were asked for but not enforced on this host (only with allow_degraded).
    pub degraded: Vec<String>,
}

impl RunResult {
    /// A sandbox failure before or around the program.
    pub fn sandbox_error(message: impl Into<String>) -> Self {
        RunResult {
            verdict: Verdict::XX,
            reason: None,
            exit_code: None,
            signal: None,
            stdout: Captured::default(),
            stderr: Captured::default(),
            wall_time_ms: 0,
            cpu_time_ms: 0,
            memory_peak_bytes: None,
            message: Some(message.into()),
            degraded: Vec::new(),
        }
    }

    /// The exit code the CLI uses: the program's own code, 128+signal for SG, 124 for TO
    /// (like timeout(1)), 137 for MLE (an OOM kill), 141 for OLE, 130 for CANCELLED, 125 for
    /// sandbox errors (XX, CE is 1).
    pub fn cli_exit_code(&self) -> i32 {
        match (self.verdict, self.exit_code, self.signal) {
            (Verdict::XX, _, _) => 125,
            (Verdict::TO, _, _) => 124,
            (Verdict::MLE, _, _) => 137,
            (Verdict::OLE, _, _) => 141,
            (Verdict::CANCELLED, _, _) => 130,
            (_, _, Some(sig)) => 128 + sig,
            (_, Some(code), _) => code,
            (Verdict::OK, _, _) => 0,
            _ => 1,
        }
    }
}

/// The wire shape of [`RunResult`] (documented in README): streams as UTF-8 text with lossy
/// replacement, plus `*_base64` with the exact bytes when they are not valid UTF-8.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = RunResult)]
pub struct RunResultWire {
    #[schema(value_type = String, example = "OK")]
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_base64: Option<String>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    pub wall_time_ms: u64,
    pub cpu_time_ms: u64,
    pub memory_peak_bytes: Option<u64>,
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub degraded: Vec<String>,
}

fn text_and_base64(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_owned(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
        ),
    }
}

fn bytes_from(text: String, b64: Option<String>) -> Vec<u8> {
    b64.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .unwrap_or_else(|| text.into_bytes())
}

impl From<&RunResult> for RunResultWire {
    fn from(r: &RunResult) -> Self {
        let (stdout, stdout_base64) = text_and_base64(&r.stdout.bytes);
        let (stderr, stderr_base64) = text_and_base64(&r.stderr.bytes);
        RunResultWire {
            verdict: r.verdict,
            reason: r.reason.clone(),
            exit_code: r.exit_code,
            signal: r.signal,
            stdout,
            stderr,
            stdout_base64,
            stderr_base64,
            stdout_truncated: r.stdout.truncated,
            stderr_truncated: r.stderr.truncated,
            wall_time_ms: r.wall_time_ms,
            cpu_time_ms: r.cpu_time_ms,
            memory_peak_bytes: r.memory_peak_bytes,
            message: r.message.clone(),
            degraded: r.degraded.clone(),
        }
    }
}

impl From<RunResultWire> for RunResult {
    fn from(w: RunResultWire) -> Self {
        RunResult {
            verdict: w.verdict,
            reason: w.reason,
            exit_code: w.exit_code,
            signal: w.signal,
            stdout: Captured {
                bytes: bytes_from(w.stdout, w.stdout_base64),
                truncated: w.stdout_truncated,
            },
            stderr: Captured {
                bytes: bytes_from(w.stderr, w.stderr_base64),
                truncated: w.stderr_truncated,
            },
            wall_time_ms: w.wall_time_ms,
            cpu_time_ms: w.cpu_time_ms,
            memory_peak_bytes: w.memory_peak_bytes,
            message: w.message,
            degraded: w.degraded,
        }
    }
}

impl Serialize for RunResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        RunResultWire::from(self).serialize(s)
    }
}

impl<'de> Deserialize<'de> for RunResult {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RunResultWire::deserialize(d).map(RunResult::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_round_trips_through_base64() {
        let mut r = RunResult::sandbox_error("x");
        r.stdout.bytes = vec![b'h', 0xff, b'i'];
        r.stderr.bytes = b"plain".to_vec();
        let json = serde_json::to_value(&r).unwrap();
        assert!(json.get("stdout_base64").is_some());
        assert!(json.get("stderr_base64").is_none());
        let back: RunResult = serde_json::from_value(json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn cli_exit_codes_follow_runc_conventions() {
        let mut r = RunResult::sandbox_error("x");
        assert_eq!(r.cli_exit_code(), 125);
        r.verdict = Verdict::SG;
        r.signal = Some(9);
        assert_eq!(r.cli_exit_code(), 137);
        r.verdict = Verdict::RE;
        r.signal = None;
        r.exit_code = Some(3);
        assert_eq!(r.cli_exit_code(), 3);
    }
}
