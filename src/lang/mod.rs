//! Languages: what the `org.sandcell.*` labels of an imported image say about compiling and
//! running a source file, and the compile-then-run flow the CLI, daemon and grader share.
//!
//! An image built by rootfs-builder carries:
//! `org.sandcell.language` (e.g. `cpp`), `org.sandcell.version`, `org.sandcell.source-file`
//! (`main.cpp`), `org.sandcell.compile` (absent for interpreted languages) and
//! `org.sandcell.run` (`./main`). Commands are split into words (quotes allowed); no shell
//! is involved.

mod catalog;
mod compile;
mod error;
mod source;
mod words;

use std::collections::BTreeMap;

pub use catalog::{find_language, list_languages};
pub use compile::{compile_once, CompileVerdict, Compiled};
pub use error::LangError;
pub use source::{run_source, SourceRequest, SourceRunResult, Stage};
pub use words::split_words;

pub const LABEL_LANGUAGE: &str = "org.sandcell.language";
pub const LABEL_VERSION: &str = "org.sandcell.version";
pub const LABEL_SOURCE_FILE: &str = "org.sandcell.source-file";
pub const LABEL_COMPILE: &str = "org.sandcell.compile";
pub const LABEL_RUN: &str = "org.sandcell.run";

/// One language an imported image provides.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Language {
    pub name: String,
    pub version: String,
    /// The image reference (`name:tag`) that provides it.
    pub image: String,
    /// The file name the source is stored under in the work dir, e.g. `main.py`.
    pub source_file: String,
    /// The compile command, run in the work dir; `None` for interpreted languages.
    pub compile: Option<String>,
    /// The run command, run in the work dir.
    pub run: String,
    /// The image's environment (from its config), passed to both steps.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<(String, String)>,
    /// The image's `User` (uid, gid), if it names one that is not root.
    #[serde(skip)]
    pub user: Option<(u32, u32)>,
}

impl Language {
    /// The language described by an image's labels; `None` when the image has no
    /// `org.sandcell.language` label. Missing `run`/`source-file` labels are errors.
    pub fn from_labels(
        image: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Option<Language>, LangError> {
        let Some(name) = labels.get(LABEL_LANGUAGE).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let required = |label: &'static str| {
            labels
                .get(label)
                .filter(|v| !v.trim().is_empty())
                .cloned()
                .ok_or_else(|| LangError::BadLabels {
                    image: image.to_owned(),
                    message: format!("label {label} is missing"),
                })
        };
        let source_file = required(LABEL_SOURCE_FILE)?;
        crate::spec::check_relative_path("source-file", &source_file).map_err(|e| {
            LangError::BadLabels {
                image: image.to_owned(),
                message: e.to_string(),
            }
        })?;
        let run = required(LABEL_RUN)?;
        let compile = labels
            .get(LABEL_COMPILE)
            .filter(|c| !c.trim().is_empty())
            .cloned();
        for command in std::iter::once(&run).chain(&compile) {
            split_words(command).map_err(|message| LangError::BadLabels {
                image: image.to_owned(),
                message,
            })?;
        }
        Ok(Some(Language {
            name: name.clone(),
            version: labels.get(LABEL_VERSION).cloned().unwrap_or_default(),
            image: image.to_owned(),
            source_file,
            compile,
            run,
            env: Vec::new(),
            user: None,
        }))
    }

    /// The run command as argv (validated at construction).
    pub fn run_argv(&self) -> Vec<String> {
        split_words(&self.run).unwrap_or_default()
    }

    /// The compile command as argv, if the language compiles.
    pub fn compile_argv(&self) -> Option<Vec<String>> {
        self.compile
            .as_deref()
            .map(|c| split_words(c).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn compiled_and_interpreted_languages_from_labels() {
        let cpp = Language::from_labels(
            "cpp:latest",
            &labels(&[
                (LABEL_LANGUAGE, "cpp"),
                (LABEL_VERSION, "12.2.0"),
                (LABEL_SOURCE_FILE, "main.cpp"),
                (LABEL_COMPILE, "g++ -O2 -std=c++17 -o main main.cpp"),
                (LABEL_RUN, "./main"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(cpp.compile_argv().unwrap()[0], "g++");
        assert_eq!(cpp.run_argv(), vec!["./main"]);
        let py = Language::from_labels(
            "python:latest",
            &labels(&[
                (LABEL_LANGUAGE, "python"),
                (LABEL_SOURCE_FILE, "main.py"),
                (LABEL_RUN, "python3 main.py"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(py.compile, None);
        assert_eq!(py.version, "");
    }

    #[test]
    fn images_without_language_or_with_bad_labels() {
        assert_eq!(Language::from_labels("x", &labels(&[])).unwrap(), None);
        let missing_run = labels(&[(LABEL_LANGUAGE, "x"), (LABEL_SOURCE_FILE, "a")]);
        assert!(Language::from_labels("x", &missing_run).is_err());
        let escaping = labels(&[
            (LABEL_LANGUAGE, "x"),
            (LABEL_SOURCE_FILE, "../etc/passwd"),
            (LABEL_RUN, "cat"),
        ]);
        assert!(Language::from_labels("x", &escaping).is_err());
    }
}
