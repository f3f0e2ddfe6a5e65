//! A Piston v2 `execute` body, checked in Piston's order and with Piston's messages
//! (`language is required as a string`, `files[0].content is required as a string`,
//! `<lang>-<version> runtime is unknown`, `run_timeout cannot exceed the configured limit
//! of N`, ...). Every failure is a 400 `{"message": ...}`.

use base64::Engine;
use serde_json::Value;

/// One file of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PistonFile {
    pub name: String,
    pub content: Vec<u8>,
    /// utf8 (a source file) rather than base64/hex (data).
    pub is_text: bool,
}

/// A checked request (the runtime is looked up by the caller).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Execute {
    pub language: String,
    pub version: String,
    pub files: Vec<PistonFile>,
    pub stdin: String,
    pub args: Vec<String>,
    pub run_timeout: Option<u64>,
    pub compile_timeout: Option<u64>,
    pub run_cpu_time: Option<u64>,
    pub compile_cpu_time: Option<u64>,
    pub run_memory_limit: Option<u64>,
    pub compile_memory_limit: Option<u64>,
}

/// The configured limit of each constraint (Piston's `<type>_<constraint>`): ms and bytes.
#[derive(Debug, Clone, Copy)]
pub struct Maxima {
    pub timeout_ms: u64,
    pub cpu_time_ms: u64,
    pub memory: u64,
}

fn decode(content: &str, encoding: &str) -> Option<Vec<u8>> {
    match encoding {
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(content.trim())
            .ok(),
        "hex" => hex::decode(content.trim()).ok(),
        _ => Some(content.as_bytes().to_vec()),
    }
}

/// Reads `body`; `Err` is Piston's message.
pub fn parse(body: &Value, maxima: &Maxima) -> Result<Execute, String> {
    let Some(obj) = body.as_object() else {
        return Err("request body must be a JSON object".into());
    };
    let language = match obj.get("language") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("language is required as a string".into()),
    };
    let version = match obj.get("version") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err("version is required as a string".into()),
    };
    let Some(Value::Array(files_in)) = obj.get("files") else {
        return Err("files is required as an array".into());
    };
    let mut files = Vec::with_capacity(files_in.len());
    for (i, f) in files_in.iter().enumerate() {
        let Some(Value::String(content)) = f.get("content") else {
            return Err(format!("files[{i}].content is required as a string"));
        };
        let encoding = match f.get("encoding") {
            Some(Value::String(e)) if e == "base64" || e == "hex" || e == "utf8" => e.as_str(),
            _ => "utf8",
        };
        let content = decode(content, encoding)
            .ok_or_else(|| format!("files[{i}].content is not valid {encoding}"))?;
        let name = match f.get("name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => format!("file{i}.code"),
        };
        files.push(PistonFile {
            name,
            content,
            is_text: encoding == "utf8",
        });
    }
    if !files.iter().any(|f| f.is_text) {
        return Err("files must include at least one utf8 encoded file".into());
    }
    let stdin = match obj.get("stdin") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err("stdin must be a string".into()),
    };
    let args = match obj.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(n) => Ok(n.to_string()),
                _ => Err("args must be an array of strings".to_string()),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("args must be an array of strings".into()),
    };
    let mut ex = Execute {
        language,
        version,
        files,
        stdin,
        args,
        ..Execute::default()
    };
    for (constraint, max) in [
        ("timeout", maxima.timeout_ms),
        ("cpu_time", maxima.cpu_time_ms),
        ("memory_limit", maxima.memory),
    ] {
        for kind in ["compile", "run"] {
            let name = format!("{kind}_{constraint}");
            let value = match obj.get(&name) {
                // Piston skips falsy values: absent, null, 0.
                None | Some(Value::Null) => continue,
                Some(Value::Number(n)) if n.as_f64() == Some(0.0) => continue,
                Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
                Some(_) => return Err(format!("If specified, {name} must be a number")),
            };
            if value > max as f64 {
                return Err(format!(
                    "{name} cannot exceed the configured limit of {max}"
                ));
            }
            // Piston's clients send -1 for "the configured default".
            if value < 0.0 {
                continue;
            }
            let v = Some(value.floor() as u64);
            match name.as_str() {
                "compile_timeout" => ex.compile_timeout = v,
                "run_timeout" => ex.run_timeout = v,
                "compile_cpu_time" => ex.compile_cpu_time = v,
                "run_cpu_time" => ex.run_cpu_time = v,
                "compile_memory_limit" => ex.compile_memory_limit = v,
                _ => ex.run_memory_limit = v,
            }
        }
    }
    Ok(ex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const MAX: Maxima = Maxima {
        timeout_ms: 10_000,
        cpu_time_ms: 10_000,
        memory: 1 << 30,
    };

    #[test]
    fn a_client_request_parses() {
        let e = parse(
            &json!({"language": "python", "version": "*", "files": [{"content": "print(1)"}],
                    "stdin": "", "args": ["1", "2", "3"], "compile_timeout": 10000,
                    "run_timeout": 3000, "compile_memory_limit": -1, "run_memory_limit": -1}),
            &MAX,
        )
        .unwrap();
        assert_eq!(e.files[0].name, "file0.code");
        assert_eq!(e.args, vec!["1", "2", "3"]);
        assert_eq!(e.run_timeout, Some(3000));
        assert_eq!(e.run_memory_limit, None);
    }

    #[test]
    fn pistons_messages() {
        let msg = |v: Value| parse(&v, &MAX).unwrap_err();
        assert_eq!(msg(json!({})), "language is required as a string");
        assert_eq!(
            msg(json!({"language": "c"})),
            "version is required as a string"
        );
        assert_eq!(
            msg(json!({"language": "c", "version": "*"})),
            "files is required as an array"
        );
        assert_eq!(
            msg(json!({"language": "c", "version": "*", "files": [{"name": "a"}]})),
            "files[0].content is required as a string"
        );
        assert_eq!(
            msg(
                json!({"language": "c", "version": "*", "files": [{"content": "eA==", "encoding": "base64"}]})
            ),
            "files must include at least one utf8 encoded file"
        );
        assert_eq!(
            msg(
                json!({"language": "c", "version": "*", "files": [{"content": "x"}], "run_timeout": "5"})
            ),
            "If specified, run_timeout must be a number"
        );
        assert_eq!(
            msg(
                json!({"language": "c", "version": "*", "files": [{"content": "x"}], "run_timeout": 99999})
            ),
            "run_timeout cannot exceed the configured limit of 10000"
        );
        assert!(msg(json!([1])).contains("object"));
    }
}
