//! A run's result as Piston's `run` / `compile` stage objects.
//!
//! | sandcell | Piston `status` | `signal` |
//! |---|---|---|
//! | OK | null | null |
//! | RE | `RE` | null |
//! | SG | `SG` | the signal's name |
//! | MLE (the OOM killer) | `SG` | `SIGKILL` |
//! | TO | `TO` | `SIGKILL` |
//! | OLE on stdout / on stderr | `OL` / `EL` | `SIGKILL` |
//! | XX, CANCELLED, CE's compile step ended by the sandbox | `XX` | null |

use serde_json::{json, Value};

use crate::result::{RunResult, Verdict};

/// `SIGSEGV` for 11; None for numbers without a name.
pub fn signal_name(signal: i32) -> Option<&'static str> {
    Some(match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        24 => "SIGXCPU",
        25 => "SIGXFSZ",
        31 => "SIGSYS",
        _ => return None,
    })
}

/// Piston's `status` and `signal` of a result.
fn status_and_signal(r: &RunResult) -> (Option<&'static str>, Option<String>) {
    let named = |s: Option<i32>| s.and_then(signal_name).map(str::to_owned);
    match r.verdict {
        Verdict::OK => (None, None),
        Verdict::RE => (Some("RE"), None),
        Verdict::CE if r.signal.is_some() => (Some("SG"), named(r.signal)),
        Verdict::CE => (Some("RE"), None),
        Verdict::SG => (Some("SG"), named(r.signal)),
        Verdict::MLE => (Some("SG"), Some("SIGKILL".into())),
        Verdict::TO => (Some("TO"), Some("SIGKILL".into())),
        Verdict::OLE if r.stdout.truncated => (Some("OL"), Some("SIGKILL".into())),
        Verdict::OLE => (Some("EL"), Some("SIGKILL".into())),
        Verdict::XX | Verdict::CANCELLED => (Some("XX"), None),
    }
}

fn message(r: &RunResult) -> Option<String> {
    match r.verdict {
        Verdict::OK => None,
        Verdict::RE | Verdict::CE if r.signal.is_none() => Some(format!(
            "Exited with error status {}",
            r.exit_code.unwrap_or(1)
        )),
        Verdict::SG => Some(format!("Caught fatal signal {}", r.signal.unwrap_or(0))),
        Verdict::TO => Some("Time limit exceeded".into()),
        Verdict::OLE if r.stdout.truncated => Some("stdout length exceeded".into()),
        Verdict::OLE => Some("stderr length exceeded".into()),
        _ => r.message.clone(),
    }
}

/// One stage object: `stdout`, `stderr`, `output` (stdout then stderr: the two streams are
/// captured apart), `code`, `signal`, `message`, `status`, `cpu_time`, `wall_time` (ms) and
/// `memory` (bytes).
pub fn stage(r: &RunResult) -> Value {
    let stdout = String::from_utf8_lossy(&r.stdout.bytes).into_owned();
    let stderr = String::from_utf8_lossy(&r.stderr.bytes).into_owned();
    let (status, signal) = status_and_signal(r);
    let code = match r.verdict {
        Verdict::OK => Some(r.exit_code.unwrap_or(0)),
        _ => r.exit_code,
    };
    json!({
        "stdout": stdout,
        "stderr": stderr,
        "output": format!("{stdout}{stderr}"),
        "code": code,
        "signal": signal,
        "message": message(r),
        "status": status,
        "cpu_time": r.cpu_time_ms,
        "wall_time": r.wall_time_ms,
        "memory": r.memory_peak_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(verdict: Verdict) -> RunResult {
        RunResult {
            verdict,
            exit_code: Some(0),
            ..RunResult::sandbox_error("m")
        }
    }

    #[test]
    fn statuses_follow_pistons_codes() {
        let s = |r: &RunResult| stage(r)["status"].clone();
        assert_eq!(s(&result(Verdict::OK)), Value::Null);
        assert_eq!(s(&result(Verdict::RE)), "RE");
        assert_eq!(s(&result(Verdict::TO)), "TO");
        assert_eq!(s(&result(Verdict::XX)), "XX");
        let mut sg = result(Verdict::SG);
        sg.signal = Some(11);
        sg.exit_code = None;
        assert_eq!(stage(&sg)["signal"], "SIGSEGV");
        assert_eq!(stage(&sg)["code"], Value::Null);
        let mut ol = result(Verdict::OLE);
        ol.stdout.truncated = true;
        assert_eq!(s(&ol), "OL");
        ol.stdout.truncated = false;
        ol.stderr.truncated = true;
        assert_eq!(s(&ol), "EL");
        assert_eq!(stage(&result(Verdict::MLE))["signal"], "SIGKILL");
    }
}
