//! Compile-then-run of one source file, shared by `sandcell run --lang`, the daemon and the
//! grader.
//!
//! Interpreted languages run once with the files on the usual work-dir tmpfs. Compiled
//! languages build first through [`compile_once`] (its own limits; any failure but a sandbox
//! error is verdict CE with the compiler's output in `compile`), then run in a second cell
//! that gets the build's artifact (the compile cell's work dir) as its files.

use serde::Serialize;

use crate::image::{Defaults, Given};
use crate::result::{RunResult, Verdict};
use crate::sandbox::{CancelToken, Launcher, RunEvent};
use crate::spec::{FileSpec, LimitBounds, Limits, RunSpec, SeccompChoice, StdinSource, GIB, MIB};

use super::compile::compile_once;
use super::{LangError, Language};

/// Which step an event or result belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Compile,
    Run,
}

/// One source run: files, input and the limits of each step.
#[derive(Debug, Clone)]
pub struct SourceRequest {
    /// The source files. When none is named like the language's source file and exactly one
    /// is given, that one is stored under the source file name.
    pub files: Vec<FileSpec>,
    pub stdin: StdinSource,
    /// Extra arguments appended to the run command.
    pub args: Vec<String>,
    /// Extra environment for both steps (on top of the image's).
    pub env: Vec<(String, String)>,
    pub compile_limits: Limits,
    pub run_limits: Limits,
    pub seccomp: SeccompChoice,
    pub allow_degraded: bool,
}

impl SourceRequest {
    /// Default limits for both steps; compile gets more time and memory than a run.
    pub fn new(files: Vec<FileSpec>) -> SourceRequest {
        SourceRequest {
            files,
            stdin: StdinSource::Null,
            args: Vec::new(),
            env: Vec::new(),
            compile_limits: default_compile_limits(),
            run_limits: Limits::default(),
            seccomp: SeccompChoice::Default,
            allow_degraded: false,
        }
    }
}

/// Compilers need more than a submission: 30 s wall, 20 s CPU, 1 GiB, 256 MiB of disk.
pub fn default_compile_limits() -> Limits {
    Limits {
        wall_time: std::time::Duration::from_secs(30),
        cpu_time: Some(std::time::Duration::from_secs(20)),
        memory: Some(GIB),
        pids: Some(64),
        disk: 256 * MIB,
        ..Limits::default()
    }
}

/// The outcome: the overall verdict plus each step's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceRunResult {
    /// CE when compiling failed, else the run's verdict (XX/CANCELLED from either step).
    pub verdict: Verdict,
    pub compile: Option<RunResult>,
    pub run: Option<RunResult>,
}

impl SourceRunResult {
    /// The CLI exit code: the run's, 1 for CE, 125 for sandbox errors.
    pub fn cli_exit_code(&self) -> i32 {
        match (self.verdict, &self.run, &self.compile) {
            (Verdict::XX, _, _) => 125,
            (Verdict::CE, _, _) => 1,
            (_, Some(run), _) => run.cli_exit_code(),
            (_, None, Some(compile)) => compile.cli_exit_code(),
            _ => 1,
        }
    }
}

/// Runs `request` as `lang` over the unpacked image `rootfs`: compile (if the language has
/// a compile command) and run, each in its own cell. Events carry their [`Stage`].
pub fn run_source(
    launcher: &Launcher,
    lang: &Language,
    rootfs: &std::path::Path,
    request: SourceRequest,
    bounds: &LimitBounds,
    on_event: &mut dyn FnMut(Stage, RunEvent<'_>),
    cancel: Option<&CancelToken>,
) -> Result<SourceRunResult, LangError> {
    let files = place_source(lang, request.files.clone())?;
    let mut run_argv = lang.run_argv();
    run_argv.extend(request.args.iter().cloned());

    let Some(compile_argv) = lang.compile_argv() else {
        let mut spec = base_spec(lang, rootfs, run_argv, &request, request.run_limits.clone());
        spec.stdin = request.stdin.clone();
        spec.files = files;
        let valid = spec.validate(bounds)?;
        let run = launcher.run(&valid, &mut |e| on_event(Stage::Run, e), cancel);
        return Ok(SourceRunResult {
            verdict: run.verdict,
            compile: None,
            run: Some(run),
        });
    };

    let mut compile_spec = base_spec(
        lang,
        rootfs,
        compile_argv,
        &request,
        request.compile_limits.clone(),
    );
    compile_spec.files = files;
    // Validate both steps before starting either (the run's files are added after the build).
    let mut run_spec = base_spec(lang, rootfs, run_argv, &request, request.run_limits.clone());
    run_spec.stdin = request.stdin.clone();
    let compile_spec = compile_spec.validate(bounds)?;
    run_spec.clone().validate(bounds)?;

    let compiled = compile_once(
        launcher,
        &compile_spec,
        &mut |e| on_event(Stage::Compile, e),
        cancel,
    );
    if let Some(verdict) = compiled.verdict.run_verdict() {
        let mut compile = compiled.result;
        if compile.message.is_none() {
            compile.message = compiled.verdict.message().map(str::to_owned);
        }
        return Ok(SourceRunResult {
            verdict,
            compile: Some(compile),
            run: None,
        });
    }
    run_spec.files = compiled.artifact;
    let run = match run_spec.validate(bounds) {
        Ok(spec) => launcher.run(&spec, &mut |e| on_event(Stage::Run, e), cancel),
        Err(e) => RunResult::sandbox_error(format!("the built program cannot be run: {e}")),
    };
    Ok(SourceRunResult {
        verdict: run.verdict,
        compile: Some(compiled.result),
        run: Some(run),
    })
}

/// A step's spec: the language image's defaults ([`Defaults::apply`]: its environment
/// under the request's, its user) without `HOME` (it names the image's home, not one the
/// program can use); a language always runs in its work dir.
fn base_spec(
    lang: &Language,
    rootfs: &std::path::Path,
    argv: Vec<String>,
    request: &SourceRequest,
    limits: Limits,
) -> RunSpec {
    let mut spec = RunSpec::new(rootfs, argv);
    spec.env = request.env.clone();
    let defaults = Defaults {
        env: lang.env.clone(),
        user: lang.user,
        ..Defaults::default()
    };
    // Cannot fail: the command is given.
    let _ = defaults.apply(&mut spec, Given::COMMAND_AND_DIR);
    spec.env.retain(|(k, _)| k != "HOME");
    spec.limits = limits;
    spec.seccomp = request.seccomp.clone();
    spec.allow_degraded = request.allow_degraded;
    spec
}

/// Makes sure the language's source file is among `files`.
fn place_source(lang: &Language, mut files: Vec<FileSpec>) -> Result<Vec<FileSpec>, LangError> {
    if files.iter().any(|f| f.path == lang.source_file) {
        return Ok(files);
    }
    match files.len() {
        0 => Err(LangError::NoSource),
        1 => {
            files[0].path = lang.source_file.clone();
            Ok(files)
        }
        _ => Err(LangError::MissingSourceFile(lang.source_file.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang() -> Language {
        Language {
            name: "python".into(),
            version: "3".into(),
            image: "python:latest".into(),
            source_file: "main.py".into(),
            compile: None,
            run: "python3 main.py".into(),
            env: vec![("HOME".into(), "/root".into()), ("A".into(), "1".into())],
            user: Some((1000, 1000)),
        }
    }

    fn file(path: &str) -> FileSpec {
        FileSpec {
            path: path.into(),
            content: b"print(1)".to_vec(),
            mode: None,
        }
    }

    #[test]
    fn a_single_file_becomes_the_source_file() {
        let placed = place_source(&lang(), vec![file("solution.py")]).unwrap();
        assert_eq!(placed[0].path, "main.py");
        let kept = place_source(&lang(), vec![file("util.py"), file("main.py")]).unwrap();
        assert_eq!(kept[0].path, "util.py");
        assert!(matches!(
            place_source(&lang(), vec![]),
            Err(LangError::NoSource)
        ));
        assert!(matches!(
            place_source(&lang(), vec![file("a.py"), file("b.py")]),
            Err(LangError::MissingSourceFile(_))
        ));
    }

    #[test]
    fn image_env_applies_but_never_home_and_the_request_wins() {
        let mut req = SourceRequest::new(vec![]);
        req.env.push(("A".into(), "2".into()));
        let spec = base_spec(
            &lang(),
            "/r".as_ref(),
            vec!["x".into()],
            &req,
            Limits::default(),
        );
        assert!(!spec.env.iter().any(|(k, _)| k == "HOME"));
        assert_eq!((spec.uid, spec.gid), (1000, 1000));
        // Later entries win in the launcher's environment.
        assert_eq!(
            spec.env.last().unwrap(),
            &("A".to_string(), "2".to_string())
        );
    }

    #[test]
    fn exit_codes() {
        let r = SourceRunResult {
            verdict: Verdict::CE,
            compile: Some(RunResult::sandbox_error("x")),
            run: None,
        };
        assert_eq!(r.cli_exit_code(), 1);
    }
}
