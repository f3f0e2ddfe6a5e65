//! The worker threads: plain std threads (never tokio's) that take jobs from the queue and run
//! them with the launcher, streaming output to the run's live channels.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::dto::{RunFinished, RunStatus, StoredResult};
use super::live::{LiveEvent, LiveRun, Phase};
use super::prepare::{SourceWork, Work};
use super::state::{GradingQueued, Job, RunJob, Shared};
use super::store::now_ms;
use crate::lang::{self, SourceRunResult, Stage};
use crate::result::{RunResult, RunResultWire, Verdict};
use crate::sandbox::{CancelToken, Launcher, RunEvent};

/// Starts `count` workers; they end when the queue is closed.
pub fn spawn_workers(
    shared: &Arc<Shared>,
    launcher: &Arc<Launcher>,
    count: usize,
) -> std::io::Result<Vec<JoinHandle<()>>> {
    (0..count)
        .map(|i| {
            let shared = shared.clone();
            let launcher = launcher.clone();
            std::thread::Builder::new()
                .name(format!("cell-worker-{i}"))
                .spawn(move || {
                    while let Some(job) = shared.queue.pop() {
                        match job {
                            Job::Run(run) => run_job(&shared, &launcher, run),
                            Job::Grading(g) => {
                                let GradingQueued { grading, job } = *g;
                                let verdict = shared.gradings.run_queued(&launcher, &grading, job);
                                shared.metrics.grading_finished(&verdict);
                            }
                        }
                    }
                })
        })
        .collect()
}

fn run_job(shared: &Shared, launcher: &Launcher, job: RunJob) {
    let live = &job.live;
    if !live.claim() {
        return; // cancelled while queued; already finished
    }
    let queued_ms = job.accepted.elapsed().as_millis() as u64;
    if let Err(e) = shared.store.mark_running(&live.id, now_ms()) {
        tracing::error!(run = %live.id, error = %e, "cannot mark run as running");
    }
    live.set_phase(Phase::Running);
    shared.metrics.cell_started();
    let mut on_event = |event: RunEvent<'_>| match event {
        RunEvent::Started => {}
        RunEvent::Stdout(bytes) => live.publish_output(LiveEvent::Stdout(bytes.into())),
        RunEvent::Stderr(bytes) => live.publish_output(LiveEvent::Stderr(bytes.into())),
    };
    let (mut result, compile) = match &job.work {
        Work::Command(spec) => (launcher.run(spec, &mut on_event, Some(&live.cancel)), None),
        Work::Source(work) => run_source_job(launcher, work, &mut on_event, &live.cancel),
    };
    shared.metrics.cell_ended();
    if live.cancelled_by_shutdown() && result.verdict == Verdict::CANCELLED {
        result.message = Some("daemon shutting down".into());
    }
    finish_with_compile(shared, live, &result, compile.as_ref(), queued_ms);
    // The image lease (job.lease) is released only now.
    drop(job);
}

/// Compile (its output is not streamed: SSE carries the run step's output) and run. The
/// top-level result is the run step's, or the compile step's with verdict CE when compiling
/// failed.
pub(crate) fn run_source_job(
    launcher: &Launcher,
    work: &SourceWork,
    on_event: &mut dyn FnMut(RunEvent<'_>),
    cancel: &CancelToken,
) -> (RunResult, Option<RunResult>) {
    let mut staged = |stage: Stage, event: RunEvent<'_>| {
        if stage == Stage::Run {
            on_event(event);
        }
    };
    let outcome = lang::run_source(
        launcher,
        &work.language,
        &work.rootfs,
        work.request.clone(),
        &work.bounds,
        &mut staged,
        Some(cancel),
    );
    match outcome {
        Ok(SourceRunResult {
            run: Some(run),
            compile,
            ..
        }) => (run, compile),
        Ok(SourceRunResult {
            verdict,
            compile: Some(compile),
            run: None,
        }) => {
            let mut top = compile.clone();
            if verdict == Verdict::CE {
                top.message = Some(format!(
                    "compiling {} failed ({}); the program did not run",
                    work.language.name, compile.verdict
                ));
            }
            top.verdict = verdict;
            (top, Some(compile))
        }
        Ok(SourceRunResult { verdict, .. }) => {
            let mut r = RunResult::sandbox_error("the language run produced no result");
            r.verdict = verdict;
            (r, None)
        }
        Err(e) => (RunResult::sandbox_error(e.to_string()), None),
    }
}

/// Records a run's end: store, metrics, the log line, waiters and SSE readers.
pub fn finish(shared: &Shared, live: &LiveRun, result: &RunResult, queued_ms: u64) {
    finish_with_compile(shared, live, result, None, queued_ms);
}

/// [`finish`] with the compile step's result of a compiled language.
pub fn finish_with_compile(
    shared: &Shared,
    live: &LiveRun,
    result: &RunResult,
    compile: Option<&RunResult>,
    queued_ms: u64,
) {
    let stored = StoredResult {
        result: RunResultWire::from(result),
        compile: compile.map(RunResultWire::from),
    };
    let verdict = result.verdict;
    match serde_json::to_string(&stored) {
        Ok(json) => {
            if let Err(e) = shared
                .store
                .mark_done(&live.id, verdict.as_str(), &json, now_ms())
            {
                tracing::error!(run = %live.id, error = %e, "cannot store run result");
            }
        }
        Err(e) => tracing::error!(run = %live.id, error = %e, "cannot encode run result"),
    }
    let compile_ms = compile.map_or(0, |c| c.wall_time_ms);
    shared
        .metrics
        .finished(verdict, result.wall_time_ms + compile_ms);
    tracing::info!(
        run = %live.id,
        app = %live.app,
        verdict = %verdict,
        queued_ms,
        compile_ms,
        wall_ms = result.wall_time_ms,
        cpu_ms = result.cpu_time_ms,
        message = result.message.as_deref().unwrap_or(""),
        "run finished"
    );
    live.release_quota();
    live.set_phase(Phase::Done(Arc::new(RunFinished {
        id: live.id.clone(),
        status: RunStatus::Done,
        result: stored.result,
        compile: stored.compile,
    })));
    shared.live.remove(&live.id);
}

/// The result of a run cancelled before a worker took it.
pub fn cancelled_before_start() -> RunResult {
    let mut r = RunResult::sandbox_error("cancelled before start");
    r.verdict = Verdict::CANCELLED;
    r
}
