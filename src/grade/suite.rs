//! The suite file as written (TOML on disk, JSON over HTTP): plain serde data. Values that can
//! be checked while parsing (comparators, sizes, durations, unknown keys) are, so the parser's
//! error names the line; everything that needs files is checked in [`super::prepare`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::command::CommandSpec;
use super::comparator::Comparator;
use super::error::SuiteError;
use super::limits::LimitsSpec;

/// A grading suite: where the program runs, how it is built and run, and its tests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    /// Shown in reports; defaults to the suite file's directory name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// An image of the local store by name (`cpp`, `python:3.11`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A language; its image and default compile/run commands come from the image labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// A root filesystem directory (relative to the suite file). Not accepted over HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    /// The submission's files: paths or globs (relative to the suite file), or
    /// `{ path = "...", name = "main.cpp" }` to rename.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub submission: Vec<FileRef>,
    /// The name a single-file submission gets in the work dir (default: the language's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file: Option<String>,
    /// Build command (default: the language's; none for interpreted languages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<CommandSpec>,
    #[serde(default)]
    pub compile_limits: LimitsSpec,
    /// Run command (default: the language's); a test's `args` are appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<CommandSpec>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Limits of every test (a test's own `limits` override single fields).
    #[serde(default)]
    pub limits: LimitsSpec,
    /// The comparator of tests that name none (default `trim`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<Comparator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checker: Option<CheckerSpec>,
    /// A directory of `NAME.in` / `NAME.out` pairs, one test each (sorted by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<TestSpec>,
}

/// One file reference: a path or glob, optionally renamed inside the work dir.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FileRef {
    Path(String),
    Renamed { path: String, name: String },
}

impl FileRef {
    pub fn path(&self) -> &str {
        match self {
            FileRef::Path(p) | FileRef::Renamed { path: p, .. } => p,
        }
    }
}

/// One test case.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestSpec {
    /// Default: the test's number (`01`, `02`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_file: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparator: Option<Comparator>,
    /// Points for passing this test (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    #[serde(default)]
    pub limits: LimitsSpec,
}

/// A testlib-style checker: run as `RUN input.txt output.txt answer.txt` in its own cell;
/// exit 0 accepts, 1 or 2 rejects (stdout, else stderr, is the message), anything else is a
/// checker failure (XX).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckerSpec {
    /// The checker's files (paths or globs relative to the suite file).
    pub files: Vec<FileRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<CommandSpec>,
    pub run: CommandSpec,
    /// Where the checker runs (default: the submission's image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<String>,
    #[serde(default)]
    pub limits: LimitsSpec,
}

/// The text format of a suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuiteFormat {
    Toml,
    Json,
}

impl SuiteFormat {
    /// By file extension: `.json` is JSON, anything else TOML.
    pub fn of_path(path: &std::path::Path) -> SuiteFormat {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => SuiteFormat::Json,
            _ => SuiteFormat::Toml,
        }
    }
}

/// Parses suite text; errors carry the line and the parser's message (which names the key).
pub fn parse(text: &str, format: SuiteFormat) -> Result<Suite, SuiteError> {
    match format {
        SuiteFormat::Toml => toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of_offset(text, s.start));
            SuiteError::new(
                field_of_toml_error(text, &e),
                e.message().trim().to_string(),
            )
            .at_line(line)
        }),
        SuiteFormat::Json => serde_json::from_str(text).map_err(|e| {
            let line = (e.line() > 0).then_some(e.line());
            SuiteError::new("suite", e.to_string()).at_line(line)
        }),
    }
}

/// The key at the error's position (`comparator = ...`), or `suite`.
fn field_of_toml_error(text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return "suite".into();
    };
    let line_start = text[..span.start.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() && !key.contains('[') => key.trim().to_string(),
        _ => line.trim().trim_matches(['[', ']']).to_string(),
    }
}

/// 1-based line number of a byte offset.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// Best-effort line of `key = "value"` (or the value alone) in the suite text, for errors
/// found after parsing. With `after_table`, searches only after the nth `[[tests]]` header.
pub fn find_line(text: &str, key: &str, value: &str, nth_test: Option<usize>) -> Option<usize> {
    let start = match nth_test {
        Some(n) => text
            .match_indices("[[tests]]")
            .nth(n)
            .map(|(i, _)| i)
            .unwrap_or(0),
        None => 0,
    };
    let rest = &text[start..];
    let offset = rest
        .lines()
        .scan(0usize, |pos, line| {
            let here = *pos;
            *pos += line.len() + 1;
            Some((here, line))
        })
        .find(|(_, line)| {
            let t = line.trim_start();
            (t.starts_with(key) || key.is_empty()) && (value.is_empty() || line.contains(value))
        })
        .map(|(i, _)| i)
        .or_else(|| (!value.is_empty()).then(|| rest.find(value)).flatten())?;
    Some(line_of_offset(text, start + offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = r#"
name = "sum"
language = "cpp"
submission = ["main.cpp", { path = "sol/x.cpp", name = "main.cpp" }]
comparator = "tokens"

[limits]
time = "1s"

[[tests]]
stdin = "1 2\n"
expected_stdout = "3\n"

[[tests]]
name = "big"
stdin_file = "tests/big.in"
expected_file = "tests/big.out"
comparator = "float:1e-6"
weight = 2
limits = { time = "3s" }
"#;

    #[test]
    fn parses_a_full_suite() {
        let s = parse(SUITE, SuiteFormat::Toml).unwrap();
        assert_eq!(s.name.as_deref(), Some("sum"));
        assert_eq!(s.submission.len(), 2);
        assert_eq!(s.comparator, Some(Comparator::Tokens));
        assert_eq!(s.tests.len(), 2);
        assert_eq!(s.tests[1].comparator, Some(Comparator::Float(1e-6)));
        assert_eq!(s.tests[1].weight, Some(2.0));
    }

    #[test]
    fn json_round_trip() {
        let s = parse(SUITE, SuiteFormat::Toml).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        let back = parse(&json, SuiteFormat::Json).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_comparator_names_line_and_field() {
        let text = "language = \"cpp\"\n\n[[tests]]\nstdin = \"1\"\ncomparator = \"fuzzy\"\n";
        let e = parse(text, SuiteFormat::Toml).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert_eq!(e.field, "comparator");
        assert!(e.to_string().contains("unknown comparator"), "{e}");
    }

    #[test]
    fn unknown_key_is_rejected() {
        let e = parse("[[tests]]\nexpected = \"3\"\n", SuiteFormat::Toml).unwrap_err();
        assert!(e.to_string().contains("expected"), "{e}");
        assert_eq!(e.line, Some(2), "{e}");
    }

    #[test]
    fn finds_lines_of_values() {
        assert_eq!(find_line(SUITE, "expected_file", "", Some(1)), Some(17));
        assert_eq!(find_line(SUITE, "language", "", None), Some(3));
    }
}
