//! Running a testlib-style checker in its own cell: `RUN input.txt output.txt answer.txt`
//! in a fresh work dir holding the checker's files and the three data files. A command that
//! names `{input}`, `{output}` or `{answer}` gets the file names there instead of appended.

use crate::result::Verdict;
use crate::sandbox::Launcher;
use crate::spec::{FileSpec, LimitBounds};

use super::prepare::PreparedChecker;
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
    files: &[FileSpec],
    input: &[u8],
    output: &[u8],
    answer: &[u8],
) -> CheckerVerdict {
    let argv = checker_argv(&checker.run);
    let mut spec = checker
        .root
        .cell_spec(&checker.root.env, argv, &checker.limits, allow_degraded);
    spec.files = files.to_vec();
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
    let said = || -> String {
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
        (verdict, code) => {
            let said = said();
            CheckerVerdict::Failed(format!(
                "checker ended with {verdict}{}{}{}",
                code.map(|c| format!(" (exit code {c})"))
                    .unwrap_or_default(),
                result
                    .message
                    .as_deref()
                    .map(|m| format!(" — {m}"))
                    .unwrap_or_default(),
                if said.is_empty() {
                    String::new()
                } else {
                    format!(": {said}")
                }
            ))
        }
    }
}

/// The placeholders a checker command may use, and the files they stand for.
pub const PLACEHOLDERS: [(&str, &str); 3] = [
    ("{input}", INPUT_FILE),
    ("{output}", OUTPUT_FILE),
    ("{answer}", ANSWER_FILE),
];

/// The checker's argv for one test: placeholders replaced where the command names any,
/// otherwise the three files appended (`$1 $2 $3` of a shell-string command).
pub fn checker_argv(run: &[String]) -> Vec<String> {
    let named = run
        .iter()
        .any(|a| PLACEHOLDERS.iter().any(|(p, _)| a.contains(p)));
    let mut argv: Vec<String> = run
        .iter()
        .map(|a| {
            PLACEHOLDERS
                .iter()
                .fold(a.clone(), |acc, (p, file)| acc.replace(p, file))
        })
        .collect();
    if !named {
        argv.extend([INPUT_FILE, OUTPUT_FILE, ANSWER_FILE].map(String::from));
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::command::CommandSpec;

    fn argv(line: &str) -> Vec<String> {
        checker_argv(&CommandSpec::Line(line.into()).argv().unwrap())
    }

    #[test]
    fn files_are_appended_or_put_where_the_command_names_them() {
        assert_eq!(
            argv("python3 check.py"),
            [
                "python3",
                "check.py",
                "input.txt",
                "output.txt",
                "answer.txt"
            ]
        );
        assert_eq!(
            argv("python3 check.py {answer} {output} {input}"),
            [
                "python3",
                "check.py",
                "answer.txt",
                "output.txt",
                "input.txt"
            ]
        );
        // A shell string: the files are $1 $2 $3, not $0 $1 $2.
        assert_eq!(
            argv(r#"python3 checker.py "$1" "$3" "$2""#),
            [
                "/bin/sh",
                "-c",
                r#"python3 checker.py "$1" "$3" "$2""#,
                "sh",
                "input.txt",
                "output.txt",
                "answer.txt"
            ]
        );
    }
}
