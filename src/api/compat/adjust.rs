//! What the foreign APIs can ask beyond a `/v1` request, applied to the prepared run:
//! program arguments, compiler options, stderr merged into stdout, stack and file-size
//! limits, the compile step's limits. Every value is checked against the app's maxima
//! again, so nothing here can loosen a bound.

use crate::api::error::ApiError;
use crate::api::prepare::{Prepared, Work};
use crate::spec::{LimitBounds, Limits};

/// Extras of one request.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Appended to the run command.
    pub args: Vec<String>,
    /// Appended to the compile command (compiled languages only).
    pub compiler_options: Vec<String>,
    /// The program's stderr goes to its stdout (`2>&1` through the image's `sh`).
    pub merge_stderr: bool,
    /// RLIMIT_STACK of the run, bytes.
    pub stack: Option<u64>,
    /// RLIMIT_FSIZE of the run, bytes.
    pub file_size: Option<u64>,
    /// Limits of the compile step (Piston's `compile_*`).
    pub compile: CompileLimits,
}

/// The compile step's limits a request may set.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompileLimits {
    pub wall_time_ms: Option<u64>,
    pub cpu_time_ms: Option<u64>,
    pub memory: Option<u64>,
}

/// A word for [`crate::lang::split_words`]: double-quoted with `"` and `\` escaped.
fn quote(word: &str) -> String {
    format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `CMD...` run as `sh -c 'exec "$@" 2>&1' sh CMD...`.
fn merged(words: &[String]) -> Vec<String> {
    let mut argv = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        "exec \"$@\" 2>&1".to_owned(),
        "sh".to_owned(),
    ];
    argv.extend(words.iter().cloned());
    argv
}

fn set_run_limits(l: &mut Limits, extras: &Extras) {
    if let Some(v) = extras.stack {
        l.stack = Some(v);
    }
    if let Some(v) = extras.file_size {
        l.file_size = Some(v);
    }
}

/// Applies `extras` to `prepared`, checking the result against `bounds`.
pub fn apply(
    mut prepared: Prepared,
    extras: Extras,
    bounds: &LimitBounds,
) -> Result<Prepared, ApiError> {
    prepared.work = match prepared.work {
        Work::Source(mut work) => {
            let lang = &mut work.language;
            if !extras.compiler_options.is_empty() {
                if let Some(compile) = &mut lang.compile {
                    for w in &extras.compiler_options {
                        compile.push(' ');
                        compile.push_str(&quote(w));
                    }
                }
            }
            if extras.merge_stderr {
                let words = merged(&lang.run_argv());
                lang.run = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
            }
            set_run_limits(&mut work.request.run_limits, &extras);
            work.request.args = extras.args;
            let c = &mut work.request.compile_limits;
            if let Some(ms) = extras.compile.wall_time_ms {
                c.wall_time = std::time::Duration::from_millis(ms);
            }
            if let Some(ms) = extras.compile.cpu_time_ms {
                c.cpu_time = Some(std::time::Duration::from_millis(ms));
            }
            if let Some(m) = extras.compile.memory {
                c.memory = Some(m);
            }
            c.check(bounds)?;
            work.request.run_limits.check(bounds)?;
            Work::Source(work)
        }
        Work::Command(spec) => {
            let mut s = spec.into_inner();
            s.argv.extend(extras.args.iter().cloned());
            if extras.merge_stderr {
                s.argv = merged(&s.argv);
            }
            set_run_limits(&mut s.limits, &extras);
            Work::Command(Box::new(s.validate(bounds)?))
        }
    };
    Ok(prepared)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_words_split_back_unchanged() {
        let words = ["a b", "x\"y", "back\\slash", "$HOME", "'single'"];
        let line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        assert_eq!(crate::lang::split_words(&line).unwrap(), words);
        let m = merged(&["./main".into()]);
        let line = m.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        assert_eq!(crate::lang::split_words(&line).unwrap(), m);
    }
}
