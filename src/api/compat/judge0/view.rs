//! A submission as Judge0 answers it: every attribute Judge0 has, computed from the run's
//! row (status, result, compile step) and the submission's record, then cut to the
//! requested `fields` and, with `base64_encoded=true`, the text attributes base64-encoded.

use base64::Engine;
use serde_json::{json, Map, Value};

use super::compare;
use super::record::Record;
use super::status;
use crate::api::compat::timefmt::iso8601_ms;
use crate::api::dto::{RunStatus, StoredResult};
use crate::api::store::RunRow;
use crate::result::{RunResult, Verdict};

/// What Judge0 answers when no `fields` are asked for.
pub const DEFAULT_FIELDS: &[&str] = &[
    "token",
    "stdout",
    "stderr",
    "compile_output",
    "message",
    "status",
    "time",
    "memory",
];

/// Every attribute `fields` may name.
pub const ALL_FIELDS: &[&str] = &[
    "source_code",
    "language_id",
    "stdin",
    "expected_output",
    "stdout",
    "status_id",
    "created_at",
    "finished_at",
    "time",
    "memory",
    "stderr",
    "token",
    "number_of_runs",
    "cpu_time_limit",
    "cpu_extra_time",
    "wall_time_limit",
    "memory_limit",
    "stack_limit",
    "max_processes_and_or_threads",
    "enable_per_process_and_thread_time_limit",
    "enable_per_process_and_thread_memory_limit",
    "max_file_size",
    "compile_output",
    "exit_code",
    "exit_signal",
    "message",
    "wall_time",
    "compiler_options",
    "command_line_arguments",
    "redirect_stderr_to_stdout",
    "callback_url",
    "additional_files",
    "enable_network",
    "status",
    "language",
];

/// Attributes that carry program text (base64 with `base64_encoded=true`).
const TEXT_FIELDS: &[&str] = &[
    "source_code",
    "stdin",
    "expected_output",
    "stdout",
    "stderr",
    "compile_output",
    "message",
];

/// The `fields` query: None/empty -> the defaults, `*` -> all; unknown names are an error
/// listing them.
pub fn requested_fields(query: Option<&str>) -> Result<Vec<&'static str>, Vec<String>> {
    let Some(q) = query.map(str::trim).filter(|q| !q.is_empty()) else {
        return Ok(DEFAULT_FIELDS.to_vec());
    };
    if q == "*" {
        return Ok(ALL_FIELDS.to_vec());
    }
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for name in q.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match ALL_FIELDS.iter().find(|f| **f == name) {
            Some(f) if !out.contains(f) => out.push(*f),
            Some(_) => {}
            None => bad.push(name.to_owned()),
        }
    }
    if bad.is_empty() {
        Ok(out)
    } else {
        Err(bad)
    }
}

/// A run id as Judge0's token (a UUID).
pub fn token_of(id: &str) -> String {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!(
            "{}-{}-{}-{}-{}",
            &id[..8],
            &id[8..12],
            &id[12..16],
            &id[16..20],
            &id[20..]
        )
    } else {
        id.to_owned()
    }
}

/// A token (a UUID, or a bare run id) as the run's id.
pub fn id_of(token: &str) -> String {
    token.trim().replace('-', "").to_ascii_lowercase()
}

/// Seconds with three decimals, as Judge0's decimal columns print.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

fn non_empty(bytes: Vec<u8>) -> Option<Vec<u8>> {
    (!bytes.is_empty()).then_some(bytes)
}

/// Some text attribute could not be sent as UTF-8 (Judge0's conversion error).
#[derive(Debug, thiserror::Error)]
#[error("some attributes for this submission cannot be converted to UTF-8, use base64_encoded=true query parameter")]
pub struct NotUtf8;

/// The submission of `row` (with `record` when it came through Judge0).
pub fn render(
    row: &RunRow,
    record: Option<&Record>,
    language_name: Option<&str>,
    fields: &[&str],
    base64_encoded: bool,
) -> Result<Value, NotUtf8> {
    let stored = row.result.as_deref().and_then(StoredResult::parse);
    let mut texts: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("source_code", record.and_then(|r| r.source_code.clone())),
        ("stdin", record.and_then(|r| r.stdin.clone())),
        (
            "expected_output",
            record.and_then(|r| r.expected_output.clone()),
        ),
    ];
    let mut all = Map::new();
    let status_id = match (&row.status, &stored) {
        (RunStatus::Queued, _) => status::IN_QUEUE,
        (RunStatus::Running, _) => status::PROCESSING,
        (RunStatus::Done, None) => status::INTERNAL_ERROR,
        (RunStatus::Done, Some(s)) => {
            let result = RunResult::from(s.result.clone());
            let compile = s.compile.clone().map(RunResult::from);
            let compile_output = compile
                .as_ref()
                .map(|c| [c.stdout.bytes.as_slice(), c.stderr.bytes.as_slice()].concat())
                .and_then(non_empty);
            let ce = result.verdict == Verdict::CE;
            let (stdout, stderr) = if ce {
                (None, None)
            } else {
                (
                    non_empty(result.stdout.bytes.clone()),
                    non_empty(result.stderr.bytes.clone()),
                )
            };
            let matches = record
                .and_then(|r| r.expected_output.as_deref())
                .map(|e| compare::matches(e, stdout.as_deref().unwrap_or_default()));
            let cpu_limit_ms = record.map(|r| (r.cpu_time_limit * 1000.0).round() as u64);
            let id = status::of_result(&s.result, cpu_limit_ms, matches);
            let message = status::message(&s.result, id).map(String::into_bytes);
            texts.push(("stdout", stdout));
            texts.push(("stderr", stderr));
            texts.push(("compile_output", compile_output));
            texts.push(("message", message));
            if !ce {
                all.insert("time".into(), json!(seconds(s.result.cpu_time_ms)));
                all.insert("wall_time".into(), json!(seconds(s.result.wall_time_ms)));
                all.insert(
                    "memory".into(),
                    json!(s.result.memory_peak_bytes.map(|b| b / 1024)),
                );
                all.insert("exit_code".into(), json!(s.result.exit_code.unwrap_or(0)));
                all.insert("exit_signal".into(), json!(status::exit_signal(&s.result)));
            }
            id
        }
    };
    for (name, bytes) in texts {
        let value = match bytes {
            None => Value::Null,
            Some(b) if base64_encoded => {
                Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
            Some(b) => Value::String(String::from_utf8(b).map_err(|_| NotUtf8)?),
        };
        all.insert(name.into(), value);
    }
    all.insert("token".into(), json!(token_of(&row.id)));
    all.insert("status_id".into(), json!(status_id));
    all.insert(
        "status".into(),
        json!({"id": status_id, "description": status::description(status_id)}),
    );
    all.insert("created_at".into(), json!(iso8601_ms(row.created_at)));
    all.insert("finished_at".into(), json!(row.finished_at.map(iso8601_ms)));
    if let Some(r) = record {
        all.insert("language_id".into(), json!(r.language_id));
        all.insert(
            "language".into(),
            json!({"id": r.language_id, "name": language_name}),
        );
        all.insert("number_of_runs".into(), json!(r.number_of_runs));
        all.insert(
            "cpu_time_limit".into(),
            json!(format!("{:.3}", r.cpu_time_limit)),
        );
        all.insert(
            "cpu_extra_time".into(),
            json!(format!("{:.3}", r.cpu_extra_time)),
        );
        all.insert(
            "wall_time_limit".into(),
            json!(format!("{:.3}", r.wall_time_limit)),
        );
        all.insert("memory_limit".into(), json!(r.memory_limit));
        all.insert("stack_limit".into(), json!(r.stack_limit));
        all.insert(
            "max_processes_and_or_threads".into(),
            json!(r.max_processes_and_or_threads),
        );
        all.insert("max_file_size".into(), json!(r.max_file_size));
        all.insert("compiler_options".into(), json!(r.compiler_options));
        all.insert(
            "command_line_arguments".into(),
            json!(r.command_line_arguments),
        );
        all.insert(
            "redirect_stderr_to_stdout".into(),
            json!(r.redirect_stderr_to_stdout),
        );
        all.insert("callback_url".into(), json!(r.callback_url));
        all.insert("enable_network".into(), json!(r.enable_network));
    }
    all.insert(
        "enable_per_process_and_thread_time_limit".into(),
        json!(false),
    );
    all.insert(
        "enable_per_process_and_thread_memory_limit".into(),
        json!(false),
    );
    // The archive is unpacked into the run and not kept.
    all.insert("additional_files".into(), Value::Null);
    let mut out = Map::new();
    for f in fields {
        out.insert((*f).into(), all.remove(*f).unwrap_or(Value::Null));
    }
    Ok(Value::Object(out))
}

/// Whether any of `fields` carries program text (only those can fail to be UTF-8).
pub fn has_text(fields: &[&str]) -> bool {
    fields.iter().any(|f| TEXT_FIELDS.contains(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_tokens() {
        assert_eq!(requested_fields(None).unwrap(), DEFAULT_FIELDS);
        assert_eq!(requested_fields(Some("*")).unwrap().len(), ALL_FIELDS.len());
        assert_eq!(
            requested_fields(Some("stdout, status,stdout")).unwrap(),
            vec!["stdout", "status"]
        );
        assert_eq!(
            requested_fields(Some("stdout,nope")).unwrap_err(),
            vec!["nope"]
        );
        let id = "0123456789abcdef4123456789abcdef";
        let token = token_of(id);
        assert_eq!(token, "01234567-89ab-cdef-4123-456789abcdef");
        assert_eq!(id_of(&token), id);
        assert_eq!(seconds(1234), "1.234");
        assert_eq!(seconds(5), "0.005");
    }
}
