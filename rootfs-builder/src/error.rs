//! The one error type of the builder: every failure names the recipe, host path or command.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no recipe {name:?} (looked for {path})")]
    RecipeNotFound { name: String, path: PathBuf },
    #[error("cannot read recipe {path}: {source}")]
    RecipeRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad recipe {path}: {message}")]
    RecipeInvalid { path: PathBuf, message: String },
    #[error("recipe includes form a cycle: {0}")]
    IncludeCycle(String),
    #[error("host path {path}: {source}")]
    Host {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing to put host-private path {0} into an image")]
    Forbidden(PathBuf),
    #[error("too many symlinks resolving {0}")]
    SymlinkLoop(PathBuf),
    #[error("{path} is both a {existing} and a {new} in the image")]
    Conflict {
        path: PathBuf,
        existing: &'static str,
        new: &'static str,
    },
    #[error("command `{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("bad exclude pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
    #[error("cannot write {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("output directory {0} exists and is not an OCI layout; refusing to overwrite it")]
    OutputNotEmpty(PathBuf),
    #[error("OCI metadata: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub type Result<T> = std::result::Result<T, BuildError>;

pub(crate) fn host(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.into();
    move |source| BuildError::Host { path, source }
}

pub(crate) fn output(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.into();
    move |source| BuildError::Output { path, source }
}
