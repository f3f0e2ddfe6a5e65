//! Launcher: the public entry point of the sandbox layer.

use crate::result::RunResult;
use crate::spec::ValidatedSpec;

use super::SandboxError;

/// Host-wide launcher settings.
#[derive(Debug, Clone, Default)]
pub struct LauncherConfig {}

/// Something that happened during a run, delivered as it happens (for streaming).
#[derive(Debug)]
pub enum RunEvent<'a> {
    Started,
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
}

/// Cancels a run from another thread.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {}

/// Launches and supervises cells.
#[derive(Debug)]
pub struct Launcher {}

impl Launcher {
    pub fn new(_config: LauncherConfig) -> Result<Launcher, SandboxError> {
        Ok(Launcher {})
    }

    /// Runs one cell to completion. Never panics on bad input; sandbox failures come back as
    /// verdict XX with a message.
    pub fn run(
        &self,
        _spec: &ValidatedSpec,
        _on_event: &mut dyn FnMut(RunEvent<'_>),
        _cancel: Option<&CancelToken>,
    ) -> RunResult {
        RunResult::sandbox_error("launcher not implemented yet")
    }
}
