//! Errors of the grader: a bad suite (exit 2) and sandbox failures around the grading (exit 125).

/// A suite that cannot be graded: the message names the file, line and field when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{field}: {message}", location_prefix(.file, .line))]
pub struct SuiteError {
    /// The suite file, when the suite came from one.
    pub file: Option<String>,
    /// 1-based line in the suite file, when known.
    pub line: Option<usize>,
    /// The field at fault, e.g. `tests[3].expected_file` or `comparator`.
    pub field: String,
    pub message: String,
}

fn location_prefix(file: &Option<String>, line: &Option<usize>) -> String {
    match (file, line) {
        (Some(f), Some(l)) => format!("{f}:{l}: "),
        (Some(f), None) => format!("{f}: "),
        (None, Some(l)) => format!("line {l}: "),
        (None, None) => String::new(),
    }
}

impl SuiteError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        SuiteError {
            file: None,
            line: None,
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn at_line(mut self, line: Option<usize>) -> Self {
        self.line = self.line.or(line);
        self
    }

    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }
}

/// Something went wrong around the cells (temp dirs, chown): the grading could not happen.
#[derive(Debug, thiserror::Error)]
pub enum GradeError {
    #[error("bad suite: {0}")]
    Suite(#[from] SuiteError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("sandbox: {0}")]
    Sandbox(String),
}

impl GradeError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        GradeError::Io {
            what: what.into(),
            source,
        }
    }
}
