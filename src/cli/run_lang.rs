//! `sandcell run --lang NAME --file SRC`: compile (when the language has a compile step, as
//! its own limited run; CE on failure) and run, each in a fresh cell.

use crate::lang::{self, SourceRequest, Stage};
use crate::result::Verdict;
use crate::sandbox::{Launcher, LauncherConfig, RunEvent};
use crate::spec::{FileSpec, LimitBounds, SeccompChoice, StdinSource};

use super::run::{open_store, pass_through, report, RunArgs};

fn read_sources(args: &RunArgs) -> Result<Vec<FileSpec>, String> {
    args.files
        .iter()
        .map(|path| {
            let content = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| format!("{}: not a file name", path.display()))?;
            Ok(FileSpec {
                path: name,
                content,
                mode: None,
            })
        })
        .collect()
}

pub fn main(args: &RunArgs) -> i32 {
    let Some(wanted) = args.lang.as_deref() else {
        return super::EXIT_USAGE;
    };
    let files = match read_sources(args) {
        Ok(f) => f,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_USAGE;
        }
    };
    let store = match open_store(args.state_dir.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            super::error_line(e.message);
            return e.code;
        }
    };
    let (language, image) = match lang::find_language(&store, wanted) {
        Ok(found) => found,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_USAGE;
        }
    };
    let _lease = match store.lease(&image.id) {
        Ok(l) => l,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_SANDBOX;
        }
    };
    let mut request = SourceRequest::new(files);
    request.args = args.cmd.clone();
    request.env = args.env.clone();
    request.run_limits = args.limits.to_limits();
    request.allow_degraded = args.allow_degraded;
    request.stdin = match &args.stdin {
        Some(p) => StdinSource::File(p.clone()),
        None => StdinSource::Null,
    };
    request.seccomp = match (&args.seccomp_policy, args.seccomp.as_str()) {
        (Some(p), _) => SeccompChoice::PolicyFile(p.clone()),
        (None, "none") => SeccompChoice::None,
        _ => SeccompChoice::Default,
    };
    let launcher = match Launcher::new(LauncherConfig::default()) {
        Ok(l) => l,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_SANDBOX;
        }
    };
    let json = args.json;
    let mut on_event = |stage: Stage, event: RunEvent<'_>| {
        if !json && stage == Stage::Run {
            pass_through(event);
        }
    };
    let outcome = match lang::run_source(
        &launcher,
        &language,
        &image.rootfs,
        request,
        &LimitBounds::default(),
        &mut on_event,
        None,
    ) {
        Ok(o) => o,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_SANDBOX;
        }
    };
    if json {
        match serde_json::to_string(&outcome) {
            Ok(text) => println!("{text}"),
            Err(e) => super::error_line(format!("cannot encode the result: {e}")),
        }
        return outcome.cli_exit_code();
    }
    match (&outcome.compile, &outcome.run) {
        (Some(compile), _) if outcome.verdict == Verdict::CE => {
            eprint!("{}", String::from_utf8_lossy(&compile.stderr.bytes));
            super::error_line(format!("CE: compiling {} failed", language.name));
            outcome.cli_exit_code()
        }
        (_, Some(run)) => report(run, false),
        (Some(compile), None) => report(compile, false),
        (None, None) => outcome.cli_exit_code(),
    }
}
