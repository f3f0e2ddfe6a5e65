//! Judge0's submission statuses (ids 1-14) and how a sandcell run maps onto them.
//!
//! | sandcell | Judge0 |
//! |---|---|
//! | queued / running | 1 In Queue / 2 Processing |
//! | OK, output matches (or no `expected_output`) | 3 Accepted |
//! | OK, output differs | 4 Wrong Answer |
//! | TO, or OK/RE with CPU time past `cpu_time_limit` (the extra time is grace) | 5 Time Limit Exceeded |
//! | CE | 6 Compilation Error |
//! | SG by SIGSEGV / SIGXFSZ / SIGFPE / SIGABRT | 7 / 8 / 9 / 10 |
//! | RE | 11 Runtime Error (NZEC) |
//! | SG by another signal; MLE (the OOM killer's SIGKILL, as Judge0's cgroup limit ends) | 12 Runtime Error (Other) |
//! | OLE (Judge0's output is a size-capped file: SIGXFSZ) | 8 Runtime Error (SIGXFSZ) |
//! | XX, CANCELLED | 13 Internal Error |
//! | XX because exec failed (format, missing, permission) | 14 Exec Format Error |

use crate::result::{RunResultWire, Verdict};

/// Every status as `GET /statuses` lists it.
pub const STATUSES: [(u32, &str); 14] = [
    (1, "In Queue"),
    (2, "Processing"),
    (3, "Accepted"),
    (4, "Wrong Answer"),
    (5, "Time Limit Exceeded"),
    (6, "Compilation Error"),
    (7, "Runtime Error (SIGSEGV)"),
    (8, "Runtime Error (SIGXFSZ)"),
    (9, "Runtime Error (SIGFPE)"),
    (10, "Runtime Error (SIGABRT)"),
    (11, "Runtime Error (NZEC)"),
    (12, "Runtime Error (Other)"),
    (13, "Internal Error"),
    (14, "Exec Format Error"),
];

pub const IN_QUEUE: u32 = 1;
pub const PROCESSING: u32 = 2;
pub const ACCEPTED: u32 = 3;
pub const WRONG_ANSWER: u32 = 4;
pub const TIME_LIMIT: u32 = 5;
pub const COMPILATION_ERROR: u32 = 6;
pub const SIGXFSZ_ERROR: u32 = 8;
pub const NZEC: u32 = 11;
pub const OTHER_ERROR: u32 = 12;
pub const INTERNAL_ERROR: u32 = 13;
pub const EXEC_FORMAT_ERROR: u32 = 14;

/// The description of status `id`.
pub fn description(id: u32) -> &'static str {
    STATUSES
        .iter()
        .find(|(i, _)| *i == id)
        .map_or("Internal Error", |(_, d)| d)
}

/// The Runtime Error status of a deadly signal, as Judge0 picks it.
pub fn by_signal(signal: Option<i32>) -> u32 {
    match signal {
        Some(11) => 7,
        Some(25) => 8,
        Some(8) => 9,
        Some(6) => 10,
        _ => OTHER_ERROR,
    }
}

/// True when an XX result is a failed exec (Judge0's Exec Format Error).
fn exec_failed(message: Option<&str>) -> bool {
    message.is_some_and(|m| {
        m.starts_with("exec ")
            && (m.contains("Exec format error")
                || m.contains("No such file or directory")
                || m.contains("Permission denied"))
    })
}

/// The status of a finished run. `cpu_limit_ms`: the limit without the extra time;
/// `matches`: whether stdout equals the expected output (None: nothing expected).
pub fn of_result(result: &RunResultWire, cpu_limit_ms: Option<u64>, matches: Option<bool>) -> u32 {
    let over_cpu = cpu_limit_ms.is_some_and(|l| result.cpu_time_ms > l);
    match result.verdict {
        Verdict::TO => TIME_LIMIT,
        Verdict::OK | Verdict::RE if over_cpu => TIME_LIMIT,
        Verdict::RE => NZEC,
        Verdict::SG => by_signal(result.signal),
        Verdict::MLE => OTHER_ERROR,
        Verdict::OLE => SIGXFSZ_ERROR,
        Verdict::CE => COMPILATION_ERROR,
        Verdict::XX if exec_failed(result.message.as_deref()) => EXEC_FORMAT_ERROR,
        Verdict::XX | Verdict::CANCELLED => INTERNAL_ERROR,
        Verdict::OK => match matches {
            Some(false) => WRONG_ANSWER,
            _ => ACCEPTED,
        },
    }
}

/// The exit signal Judge0 reports: the run's own, SIGKILL for an OOM kill, SIGXFSZ for
/// output past the limit.
pub fn exit_signal(result: &RunResultWire) -> Option<i32> {
    match result.verdict {
        Verdict::MLE => Some(result.signal.unwrap_or(9)),
        Verdict::OLE => Some(25),
        _ => result.signal,
    }
}

/// Isolate's wording of how the program ended (Judge0's `message`), or sandcell's own
/// message where isolate has none.
pub fn message(result: &RunResultWire, status: u32) -> Option<String> {
    match (result.verdict, status) {
        (_, TIME_LIMIT) => Some("Time limit exceeded".into()),
        (Verdict::RE, _) => Some(format!(
            "Exited with error status {}",
            result.exit_code.unwrap_or(1)
        )),
        (Verdict::SG, _) => Some(format!(
            "Caught fatal signal {}",
            result.signal.unwrap_or(0)
        )),
        (Verdict::OK, _) => None,
        _ => result.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(verdict: Verdict) -> RunResultWire {
        RunResultWire::from(&crate::result::RunResult {
            verdict,
            ..crate::result::RunResult::sandbox_error("x")
        })
    }

    #[test]
    fn every_verdict_has_a_status() {
        let cases = [
            (Verdict::OK, ACCEPTED),
            (Verdict::RE, NZEC),
            (Verdict::TO, TIME_LIMIT),
            (Verdict::CE, COMPILATION_ERROR),
            (Verdict::MLE, OTHER_ERROR),
            (Verdict::OLE, SIGXFSZ_ERROR),
            (Verdict::XX, INTERNAL_ERROR),
            (Verdict::CANCELLED, INTERNAL_ERROR),
        ];
        for (v, id) in cases {
            assert_eq!(of_result(&result(v), None, None), id, "{v}");
        }
        assert_eq!(
            of_result(&result(Verdict::OK), None, Some(false)),
            WRONG_ANSWER
        );
        assert_eq!(of_result(&result(Verdict::OK), None, Some(true)), ACCEPTED);
        let mut slow = result(Verdict::OK);
        slow.cpu_time_ms = 1500;
        assert_eq!(of_result(&slow, Some(1000), Some(true)), TIME_LIMIT);
        for (sig, id) in [(11, 7), (25, 8), (8, 9), (6, 10), (9, 12), (15, 12)] {
            let mut r = result(Verdict::SG);
            r.signal = Some(sig);
            assert_eq!(of_result(&r, None, None), id, "signal {sig}");
        }
        let mut r = result(Verdict::XX);
        r.message = Some("exec ./main: Exec format error".into());
        assert_eq!(of_result(&r, None, None), EXEC_FORMAT_ERROR);
    }

    #[test]
    fn the_table_is_complete() {
        for (i, (id, _)) in STATUSES.iter().enumerate() {
            assert_eq!(*id as usize, i + 1);
        }
        assert_eq!(description(4), "Wrong Answer");
    }
}
