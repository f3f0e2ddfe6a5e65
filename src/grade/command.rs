//! Commands as a suite writes them: `"g++ -O2 -o main main.cpp"` or `["./main"]`.
//!
//! A string is split like a shell would split words (quotes and backslashes); a string with
//! shell syntax (pipes, redirections, `&&`, `$`, globs) runs through `/bin/sh -c LINE sh`
//! instead, so that arguments appended after it (a test's `args`, a checker's files) are
//! `$1`, `$2`, ... as in a script, not `$0`.

use serde::{Deserialize, Serialize};

use crate::lang::split_words;

/// A command line: one string (split into words) or an argv array.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandSpec {
    Line(String),
    Argv(Vec<String>),
}

impl CommandSpec {
    /// The argv to execute; errors name what is wrong with the text.
    pub fn argv(&self) -> Result<Vec<String>, String> {
        let argv = match self {
            CommandSpec::Argv(v) => v.clone(),
            CommandSpec::Line(line) if needs_shell(line) => {
                vec!["/bin/sh".into(), "-c".into(), line.clone(), "sh".into()]
            }
            CommandSpec::Line(line) => split_words(line)?,
        };
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err("empty command".into());
        }
        Ok(argv)
    }
}

const SHELL_SYNTAX: &[char] = &[
    '|', '&', ';', '<', '>', '$', '`', '*', '?', '(', ')', '~', '\n',
];

fn needs_shell(line: &str) -> bool {
    line.contains(SHELL_SYNTAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_and_quotes() {
        let c = CommandSpec::Line("g++ -O2 -o main 'my file.cpp' \"a\\\"b\"".into());
        assert_eq!(
            c.argv().unwrap(),
            vec!["g++", "-O2", "-o", "main", "my file.cpp", "a\"b"]
        );
    }

    #[test]
    fn shell_syntax_goes_through_sh() {
        let c = CommandSpec::Line("gcc *.c && ./a.out".into());
        assert_eq!(
            c.argv().unwrap(),
            ["/bin/sh", "-c", "gcc *.c && ./a.out", "sh"]
        );
    }

    #[test]
    fn empty_and_unclosed_are_errors() {
        assert!(CommandSpec::Line("  ".into()).argv().is_err());
        assert!(CommandSpec::Argv(vec![]).argv().is_err());
        assert!(CommandSpec::Line("echo 'x".into()).argv().is_err());
    }
}
