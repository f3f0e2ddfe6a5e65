//! Reading a suite from a file (the CLI) or from JSON plus uploaded files (the daemon).

use std::path::{Path, PathBuf};

use super::error::SuiteError;
use super::prepare::{prepare, PrepareOptions, PreparedSuite, SubmittedFile};
use super::root::RootResolver;
use super::source::{DirSource, MemorySource};
use super::suite::{parse, Suite, SuiteFormat};
use crate::spec::LimitBounds;

/// A suite file, parsed, with the directory its paths are relative to.
#[derive(Debug, Clone)]
pub struct SuiteFile {
    pub path: PathBuf,
    pub text: String,
    pub suite: Suite,
    pub source: DirSource,
}

/// Reads and parses `path` (TOML, or JSON for `.json`).
pub fn read_suite_file(path: &Path) -> Result<SuiteFile, SuiteError> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| SuiteError::new("suite", format!("cannot read it: {e}")).in_file(&label))?;
    let suite = parse(&text, SuiteFormat::of_path(path)).map_err(|e| e.in_file(&label))?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok(SuiteFile {
        path: path.to_path_buf(),
        text,
        suite,
        source: DirSource::new(base),
    })
}

impl SuiteFile {
    /// Reads every file the suite refers to and resolves its image.
    pub fn prepare(
        &self,
        resolver: &dyn RootResolver,
        submission: Option<Vec<SubmittedFile>>,
    ) -> Result<PreparedSuite, SuiteError> {
        let default_name = std::fs::canonicalize(&self.path)
            .ok()
            .and_then(|p| {
                p.parent()
                    .and_then(|d| d.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "suite".into());
        prepare(
            &self.suite,
            PrepareOptions {
                source: &self.source,
                resolver,
                submission,
                text: Some(&self.text),
                default_name,
                bounds: LimitBounds::default(),
            },
        )
        .map_err(|e| e.in_file(self.path.display().to_string()))
    }
}

/// The daemon's entry: a suite (already parsed from the request JSON) and the uploaded files
/// (relative path → bytes) its `submission`, `stdin_file`, `expected_file`, `test_dir` and
/// checker `files` refer to. `rootfs` directories are refused unless the resolver allows them.
pub fn prepare_uploaded(
    suite: &Suite,
    files: impl IntoIterator<Item = (String, Vec<u8>)>,
    resolver: &dyn RootResolver,
    bounds: &LimitBounds,
) -> Result<PreparedSuite, SuiteError> {
    let source = MemorySource::new(files);
    prepare(
        suite,
        PrepareOptions {
            source: &source,
            resolver,
            submission: None,
            text: None,
            default_name: "suite".into(),
            bounds: bounds.clone(),
        },
    )
}
