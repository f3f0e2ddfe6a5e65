//! A Judge0 submission body, read field by field the way Judge0 validates it: unknown fields
//! are ignored (Rails' permitted parameters), numbers may come as numeric strings, and every
//! problem is collected per field into Judge0's 422 body `{"field": ["message", ...]}`.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value};

use super::record::Record;
use super::settings::Settings;

/// Field name -> what is wrong with it (Judge0's `errors` object).
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// A checked submission: its record plus the zip of `additional_files`, if any.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub record: Record,
    pub additional_files: Option<Vec<u8>>,
}

struct Reader<'a> {
    body: &'a Map<String, Value>,
    errors: FieldErrors,
}

impl Reader<'_> {
    fn fail(&mut self, field: &str, message: impl Into<String>) {
        self.errors
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    fn present(&self, field: &str) -> Option<&Value> {
        self.body.get(field).filter(|v| !v.is_null())
    }

    fn string(&mut self, field: &str) -> Option<String> {
        match self.present(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => {
                self.fail(field, "is not a string");
                None
            }
        }
    }

    /// Text that may be base64 (when `decode`), as bytes.
    fn text(&mut self, field: &str, decode: bool) -> Option<Vec<u8>> {
        let s = self.string(field)?;
        if !decode {
            return Some(s.into_bytes());
        }
        match decode_base64(&s) {
            Some(b) => Some(b),
            None => {
                self.fail(field, "is not valid base64");
                None
            }
        }
    }

    fn number(&mut self, field: &str) -> Option<f64> {
        let n = match self.present(field)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n.is_finite() => Some(n),
            _ => {
                self.fail(field, "is not a number");
                None
            }
        }
    }

    /// A number in (0, max], or `default` when absent.
    fn limit(&mut self, field: &str, default: f64, max: f64) -> f64 {
        match self.number(field) {
            None => default,
            Some(n) if n <= 0.0 => {
                self.fail(field, "must be greater than 0");
                default
            }
            Some(n) if n > max => {
                self.fail(
                    field,
                    format!("must be less than or equal to {}", trim_float(max)),
                );
                default
            }
            Some(n) => n,
        }
    }

    fn boolean(&mut self, field: &str) -> Option<bool> {
        match self.present(field)? {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" || s == "1" => Some(true),
            Value::String(s) if s == "false" || s == "0" || s.is_empty() => Some(false),
            Value::Number(n) if n.as_u64() == Some(1) => Some(true),
            Value::Number(n) if n.as_u64() == Some(0) => Some(false),
            _ => {
                self.fail(field, "is not a boolean");
                None
            }
        }
    }

    /// A boolean option this server never enables.
    fn never_enabled(&mut self, field: &str) -> bool {
        let on = self.boolean(field).unwrap_or(false);
        if on {
            self.fail(field, "this option cannot be enabled");
        }
        on
    }

    fn short_text(&mut self, field: &str, max: usize) -> Option<String> {
        let s = self.string(field)?;
        if s.len() > max {
            self.fail(field, format!("is too long (maximum is {max} characters)"));
            return None;
        }
        Some(s)
    }
}

/// `2.0` -> `2`, `0.5` -> `0.5`.
pub fn trim_float(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Judge0 decodes leniently (Ruby's `Base64.decode64`); sandcell takes standard base64 with
/// or without padding and ignores line breaks and spaces.
pub fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(&clean)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&clean))
        .ok()
}

/// Reads one submission object. `known_language`: whether a language id is served.
pub fn parse(
    body: &Value,
    base64_encoded: bool,
    settings: &Settings,
    known_language: impl Fn(u32) -> bool,
) -> Result<Parsed, FieldErrors> {
    let Some(obj) = body.as_object() else {
        let mut e = FieldErrors::new();
        e.insert("submission".into(), vec!["must be a JSON object".into()]);
        return Err(e);
    };
    let mut r = Reader {
        body: obj,
        errors: FieldErrors::new(),
    };
    let source_code = r.text("source_code", base64_encoded);
    let blank = match &source_code {
        None => true,
        Some(s) => s.iter().all(u8::is_ascii_whitespace),
    };
    if blank && !r.errors.contains_key("source_code") {
        r.fail("source_code", "can't be blank");
    }
    let language_id = match r.number("language_id") {
        None if !r.errors.contains_key("language_id") => {
            r.fail("language_id", "can't be blank");
            0
        }
        None => 0,
        Some(n) if n.fract() != 0.0 || n < 1.0 || n > u32::MAX as f64 => {
            r.fail("language_id", "must be an integer");
            0
        }
        Some(n) => {
            let id = n as u32;
            if !known_language(id) {
                r.fail(
                    "language_id",
                    format!("language with id {id} doesn't exist"),
                );
            }
            id
        }
    };
    let stdin = r.text("stdin", base64_encoded);
    let expected_output = r.text("expected_output", base64_encoded);
    let compiler_options = r.short_text("compiler_options", 512);
    let command_line_arguments = r.short_text("command_line_arguments", 512);
    let d = &settings.defaults;
    let m = &settings.maxima;
    let cpu_time_limit = r.limit("cpu_time_limit", d.cpu_time_limit, m.cpu_time_limit);
    let cpu_extra_time = match r.number("cpu_extra_time") {
        Some(n) if n < 0.0 => {
            r.fail("cpu_extra_time", "must be greater than or equal to 0");
            d.cpu_extra_time
        }
        Some(n) if n > m.cpu_extra_time => {
            r.fail(
                "cpu_extra_time",
                format!(
                    "must be less than or equal to {}",
                    trim_float(m.cpu_extra_time)
                ),
            );
            d.cpu_extra_time
        }
        Some(n) => n,
        None => d.cpu_extra_time,
    };
    let wall_time_limit = r.limit("wall_time_limit", d.wall_time_limit, m.wall_time_limit);
    let whole = |r: &mut Reader<'_>, field: &str, default: u64, max: u64| -> u64 {
        let v = r.limit(field, default as f64, max as f64);
        v.floor() as u64
    };
    let memory_limit = whole(&mut r, "memory_limit", d.memory_limit, m.memory_limit);
    let stack_limit = whole(&mut r, "stack_limit", d.stack_limit, m.stack_limit);
    let max_processes_and_or_threads = whole(
        &mut r,
        "max_processes_and_or_threads",
        d.max_processes_and_or_threads,
        m.max_processes_and_or_threads,
    );
    let max_file_size = whole(&mut r, "max_file_size", d.max_file_size, m.max_file_size);
    let number_of_runs = whole(&mut r, "number_of_runs", 1, m.number_of_runs);
    r.never_enabled("enable_per_process_and_thread_time_limit");
    r.never_enabled("enable_per_process_and_thread_memory_limit");
    let enable_network = r.never_enabled("enable_network");
    let redirect_stderr_to_stdout = r.boolean("redirect_stderr_to_stdout").unwrap_or(false);
    let callback_url = r.short_text("callback_url", 2048);
    if let Some(url) = &callback_url {
        if let Err(why) = super::callback::check_url(url, &settings.callback_hosts) {
            r.fail("callback_url", why);
        }
    }
    let additional_files = match r.string("additional_files") {
        Some(s) if s.is_empty() => None,
        Some(s) => match decode_base64(&s) {
            Some(b) => Some(b),
            None => {
                r.fail("additional_files", "is not valid base64");
                None
            }
        },
        None => None,
    };
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    Ok(Parsed {
        record: Record {
            language_id,
            source_code,
            stdin,
            expected_output,
            compiler_options,
            command_line_arguments,
            cpu_time_limit,
            cpu_extra_time,
            wall_time_limit,
            memory_limit,
            stack_limit,
            max_processes_and_or_threads,
            max_file_size,
            number_of_runs,
            redirect_stderr_to_stdout,
            enable_network,
            callback_url,
            has_additional_files: additional_files.is_some(),
        },
        additional_files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_ok(v: Value, b64: bool) -> Result<Parsed, FieldErrors> {
        parse(&v, b64, &Settings::for_tests(), |id| id == 71)
    }

    #[test]
    fn a_plain_submission_takes_the_defaults() {
        let p = parse_ok(
            json!({"source_code": "print(1)", "language_id": 71, "unknown": 1}),
            false,
        )
        .unwrap();
        assert_eq!(p.record.source_code.as_deref(), Some(&b"print(1)"[..]));
        assert_eq!(
            p.record.cpu_time_limit,
            Settings::for_tests().defaults.cpu_time_limit
        );
        assert_eq!(p.record.number_of_runs, 1);
    }

    #[test]
    fn base64_fields_are_decoded() {
        let p = parse_ok(
            json!({"source_code": "cHJpbnQoMSk=", "language_id": "71", "stdin": "eAo="}),
            true,
        )
        .unwrap();
        assert_eq!(p.record.source_code.as_deref(), Some(&b"print(1)"[..]));
        assert_eq!(p.record.stdin.as_deref(), Some(&b"x\n"[..]));
    }

    #[test]
    fn problems_are_collected_per_field() {
        let e = parse_ok(
            json!({"language_id": 9999, "cpu_time_limit": -1, "memory_limit": "lots",
                   "enable_network": true, "wall_time_limit": 1e9}),
            false,
        )
        .unwrap_err();
        assert_eq!(e["source_code"], vec!["can't be blank"]);
        assert_eq!(
            e["language_id"],
            vec!["language with id 9999 doesn't exist"]
        );
        assert_eq!(e["cpu_time_limit"], vec!["must be greater than 0"]);
        assert_eq!(e["memory_limit"], vec!["is not a number"]);
        assert_eq!(e["enable_network"], vec!["this option cannot be enabled"]);
        assert!(e["wall_time_limit"][0].starts_with("must be less than or equal to"));
        let e = parse_ok(json!({"source_code": "!!", "language_id": 71}), true).unwrap_err();
        assert_eq!(e["source_code"], vec!["is not valid base64"]);
        let e = parse_ok(json!([1, 2]), false).unwrap_err();
        assert!(e.contains_key("submission"));
    }
}
