//! The one compile step of sandcell: `run --lang`, the daemon's languages, the grader's
//! submission and its checker all build through [`compile_once`].
//!
//! The compiler runs in a cell whose work dir is a detached, size-capped tmpfs (the cell's
//! own `limits.disk` and `limits.inodes`; see `sandbox::Launcher::run_capturing`). When it
//! ends OK, the files it left there — sources and what it built — are read back as the
//! **artifact**, and every run cell gets them as its files. No host directory is involved:
//! a build that writes gigabytes hits the cap inside its cell and leaves nothing behind, and
//! run cells have the same shape as any other, so they can come from the warm pool.

use crate::result::{RunResult, Verdict};
use crate::sandbox::{CancelToken, CaptureBounds, CaptureError, Launcher, RunEvent};
use crate::spec::{FileSpec, ValidatedSpec};

/// Directory nesting followed when reading an artifact back.
const MAX_ARTIFACT_DEPTH: usize = 32;

/// How a compile step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompileVerdict {
    /// Built; the artifact is in [`Compiled::artifact`].
    Built,
    /// The submission did not build (verdict CE), and why, in a sentence.
    Failed(String),
    /// The sandbox failed (verdict XX), with its message.
    SandboxError(String),
    Cancelled,
}

impl CompileVerdict {
    /// The run verdict a compile step that did not build stands for (CE, XX, CANCELLED).
    pub fn run_verdict(&self) -> Option<Verdict> {
        match self {
            CompileVerdict::Built => None,
            CompileVerdict::Failed(_) => Some(Verdict::CE),
            CompileVerdict::SandboxError(_) => Some(Verdict::XX),
            CompileVerdict::Cancelled => Some(Verdict::CANCELLED),
        }
    }

    /// The sentence that explains a verdict other than Built.
    pub fn message(&self) -> Option<&str> {
        match self {
            CompileVerdict::Built => None,
            CompileVerdict::Failed(m) | CompileVerdict::SandboxError(m) => Some(m),
            CompileVerdict::Cancelled => Some("cancelled"),
        }
    }
}

/// A compile step's outcome: the cell's result, what it means, and the artifact.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub result: RunResult,
    pub verdict: CompileVerdict,
    /// The work dir's files after a successful build (empty otherwise), sorted by path.
    pub artifact: Vec<FileSpec>,
}

/// Runs the compile `spec` (its files are the sources, its argv the compiler) and returns
/// the artifact. Never panics; sandbox failures are [`CompileVerdict::SandboxError`].
pub fn compile_once(
    launcher: &Launcher,
    spec: &ValidatedSpec,
    on_event: &mut dyn FnMut(RunEvent<'_>),
    cancel: Option<&CancelToken>,
) -> Compiled {
    let limits = &spec.spec().limits;
    let bounds = CaptureBounds {
        max_bytes: limits.disk,
        max_files: crate::spec::bounds::MAX_FILES,
        max_depth: MAX_ARTIFACT_DEPTH,
    };
    let captured = launcher.run_capturing(spec, bounds, on_event, cancel);
    let result = captured.result;
    let (verdict, artifact) = match (meaning(&result), captured.files) {
        (CompileVerdict::Built, Some(Ok(files))) => (CompileVerdict::Built, files),
        (CompileVerdict::Built, Some(Err(e))) => (artifact_problem(e), Vec::new()),
        (CompileVerdict::Built, None) => (
            CompileVerdict::SandboxError("the build's work dir was not read back".into()),
            Vec::new(),
        ),
        (other, _) => (other, Vec::new()),
    };
    Compiled {
        result,
        verdict,
        artifact,
    }
}

/// What the compiler cell's result means for the build.
fn meaning(result: &RunResult) -> CompileVerdict {
    let failed = |m: String| CompileVerdict::Failed(m);
    match result.verdict {
        Verdict::OK => CompileVerdict::Built,
        Verdict::XX => CompileVerdict::SandboxError(
            result
                .message
                .clone()
                .unwrap_or_else(|| "sandbox error".into()),
        ),
        Verdict::CANCELLED => CompileVerdict::Cancelled,
        Verdict::RE => failed(format!(
            "the compiler exited with code {}",
            result.exit_code.unwrap_or(-1)
        )),
        Verdict::TO => failed("compilation exceeded its time limit".into()),
        Verdict::MLE => failed("compilation exceeded its memory limit".into()),
        Verdict::OLE => failed("the compiler printed too much".into()),
        Verdict::SG | Verdict::CE => failed(format!(
            "the compiler was killed by signal {}",
            result.signal.unwrap_or(0)
        )),
    }
}

/// A build whose output cannot be carried to the run cells failed to build; an I/O error
/// reading it back is the sandbox's.
fn artifact_problem(e: CaptureError) -> CompileVerdict {
    match e {
        CaptureError::Read { .. } => CompileVerdict::SandboxError(e.to_string()),
        _ => CompileVerdict::Failed(format!("the build's output cannot be run: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiler_results_map_to_one_meaning() {
        let mut r = RunResult::sandbox_error("boom");
        assert_eq!(meaning(&r), CompileVerdict::SandboxError("boom".into()));
        r.verdict = Verdict::RE;
        r.exit_code = Some(1);
        let m = meaning(&r);
        assert_eq!(m.run_verdict(), Some(Verdict::CE));
        assert_eq!(m.message(), Some("the compiler exited with code 1"));
        r.verdict = Verdict::OK;
        assert_eq!(meaning(&r), CompileVerdict::Built);
        assert_eq!(
            artifact_problem(CaptureError::TooManyFiles(3)).run_verdict(),
            Some(Verdict::CE)
        );
    }
}
