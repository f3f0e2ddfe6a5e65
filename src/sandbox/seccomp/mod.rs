//! Seccomp policies: the default allow-list, JSON policy files, compiled to BPF once per
//! policy in the parent (never per run, never in the child).
//!
//! Used by the launcher:
//! - `compile(&SeccompChoice) -> Result<Option<Arc<CompiledPolicy>>, SeccompError>`
//!   (`None` for `SeccompChoice::None`), cached.
//! - `CompiledPolicy::programs()` — BPF programs in install order; the child installs each
//!   with seccomp(SECCOMP_SET_MODE_FILTER) as its very last step before execve.
//!
//! The default policy ([`default_policy`]) is one filter, compiled once per process by
//! `tree` into a binary search over syscall-number ranges (cheap for the kernel to install
//! and to run); policy files ([`json`]) are seccompiler's linear filters, compiled once per
//! file version. Every program of a policy allows `seccomp` (so the next one can be
//! installed), `execve` and `exit_group`.

pub mod default_policy;
mod eval;
pub mod json;
mod tree;

use std::sync::{Arc, OnceLock};

use seccompiler::{BpfProgram, TargetArch};

use crate::spec::SeccompChoice;

pub use eval::{
    native_audit_arch, SeccompOutcome, SyscallQuery, AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386,
    AUDIT_ARCH_X86_64,
};

/// Errors of the seccomp layer.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp policy {path}: {message}")]
    Policy { path: String, message: String },
    #[error("seccomp: {0}")]
    Compile(String),
}

/// BPF programs ready to install, with the names of their filters.
#[derive(Debug)]
pub struct CompiledPolicy {
    names: Vec<String>,
    programs: Vec<BpfProgram>,
}

impl CompiledPolicy {
    fn new(names: Vec<String>, programs: Vec<BpfProgram>) -> Self {
        CompiledPolicy { names, programs }
    }

    /// The programs in install order.
    pub fn programs(&self) -> &[BpfProgram] {
        &self.programs
    }

    /// The filter names, parallel to [`programs`](Self::programs).
    pub fn filter_names(&self) -> &[String] {
        &self.names
    }

    /// What the kernel would do with `query` under this policy (a dry run in the parent).
    pub fn evaluate(&self, query: &SyscallQuery) -> Result<SeccompOutcome, SeccompError> {
        eval::evaluate(self.programs.iter().map(Vec::as_slice), query)
    }
}

/// The architecture filters are compiled for: the one this binary runs on.
pub fn native_arch() -> Result<TargetArch, SeccompError> {
    TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| SeccompError::Compile(format!("unsupported architecture: {e}")))
}

/// The compiled policy for `choice` (`None` for [`SeccompChoice::None`]), from the cache
/// when it was compiled before.
pub fn compile(choice: &SeccompChoice) -> Result<Option<Arc<CompiledPolicy>>, SeccompError> {
    match choice {
        SeccompChoice::None => Ok(None),
        SeccompChoice::Default => default().map(Some),
        SeccompChoice::PolicyFile(path) => json::load(path, native_arch()?).map(Some),
    }
}

/// The built-in policy, compiled on first use.
pub fn default() -> Result<Arc<CompiledPolicy>, SeccompError> {
    static DEFAULT: OnceLock<Result<Arc<CompiledPolicy>, String>> = OnceLock::new();
    DEFAULT
        .get_or_init(|| compile_default().map(Arc::new).map_err(|e| e.to_string()))
        .clone()
        .map_err(SeccompError::Compile)
}

fn compile_default() -> Result<CompiledPolicy, SeccompError> {
    let (names, programs) = default_policy::default_filters(native_arch()?)?
        .into_iter()
        .map(|(name, program)| (name.to_string(), program))
        .unzip();
    Ok(CompiledPolicy::new(names, programs))
}
