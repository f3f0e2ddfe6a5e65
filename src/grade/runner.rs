//! Compile once, then run every test in its own fresh cell, `jobs` at a time.
//!
//! The submission builds through [`compile_once`] (the one compile step, shared with `run
//! --lang` and the daemon): the compiler works in its cell's own size-capped work dir, and
//! what it leaves there (sources and the built program) is the artifact. Every test cell
//! gets the artifact as its files in a fresh work dir, so a test cannot change what the next
//! one runs, no host directory is written, and test cells of one suite share one shape (they
//! come from the warm pool).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use crate::lang::{compile_once, CompileVerdict, Compiled};
use crate::result::{RunResult, Verdict};
use crate::sandbox::{CancelToken, Launcher};
use crate::spec::{FileSpec, LimitBounds, Limits, StdinSource};

use super::checker::{run_checker, CheckerVerdict};
use super::comparator::{compare, compare_regex, Comparator};
use super::prepare::{BoxFile, PreparedSuite, PreparedTest};
use super::report::{CompileOutcome, GradeReport, TestOutcome, TestVerdict};
use super::root::ResolvedRoot;

/// How to grade.
#[derive(Debug, Clone)]
pub struct GradeOptions {
    /// Tests run at the same time (at least 1).
    pub jobs: usize,
    /// Stop starting tests after the first failure (the rest are SKIPPED).
    pub fail_fast: bool,
    /// Cancels the grading (running cells end, the rest are SKIPPED).
    pub cancel: Option<CancelToken>,
    /// Run even where the host cannot enforce a limit (see `RunSpec::allow_degraded`).
    pub allow_degraded: bool,
}

impl Default for GradeOptions {
    fn default() -> Self {
        GradeOptions {
            jobs: default_jobs(),
            fail_fast: false,
            cancel: None,
            allow_degraded: false,
        }
    }
}

/// The number of cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Progress of a grading, delivered on the calling thread as it happens.
#[derive(Debug)]
pub enum GradeEvent<'a> {
    /// The submission was built (or failed to build); tests start next if it built.
    Compiled(&'a CompileOutcome),
    /// One test finished (in completion order, not suite order).
    Test(&'a TestOutcome),
}

/// Most bytes of compiler output kept in the report.
const COMPILE_OUTPUT_BYTES: usize = 32 * 1024;

/// Grades the prepared suite. Never panics on bad programs; sandbox failures become verdict
/// XX (and exit code 125).
pub fn grade(
    launcher: &Launcher,
    suite: &PreparedSuite,
    opts: &GradeOptions,
    on_event: &mut dyn FnMut(GradeEvent<'_>),
) -> GradeReport {
    let started = Instant::now();
    let mut report = GradeReport::empty(&suite.name);
    let skip_all = |why: &str| -> Vec<TestOutcome> {
        suite
            .tests
            .iter()
            .enumerate()
            .map(|(i, t)| TestOutcome::skipped(i, &t.name, t.weight, why))
            .collect()
    };
    let finish = |mut report: GradeReport| {
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        report.summarise();
        report
    };

    let submission: Vec<FileSpec> = suite.submission.iter().map(BoxFile::to_file).collect();
    let artifact = match &suite.compile {
        None => submission,
        Some(compile) => {
            report.cells.compile += 1;
            let (outcome, artifact) = build(
                launcher,
                &suite.root,
                &suite.env,
                compile,
                &suite.compile_limits,
                submission,
                opts,
            );
            on_event(GradeEvent::Compiled(&outcome));
            let failed = outcome.verdict != "OK";
            report.compile = Some(outcome);
            if failed {
                report.tests = skip_all("not run: the submission did not compile");
                return finish(report);
            }
            artifact
        }
    };

    let checker_files = match prepare_checker_files(launcher, suite, opts, &mut report) {
        Ok(files) => files,
        Err(message) => {
            report.message = Some(message);
            report.tests = skip_all("not run: the checker could not be built");
            return finish(report);
        }
    };

    let shared = Shared {
        launcher,
        suite,
        artifact,
        checker_files,
        cancel: opts.cancel.clone(),
        fail_fast: opts.fail_fast,
        allow_degraded: opts.allow_degraded,
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        test_cells: AtomicUsize::new(0),
        checker_cells: AtomicUsize::new(0),
    };
    let n = suite.tests.len();
    let mut slots: Vec<Option<TestOutcome>> = vec![None; n];
    let (tx, rx) = mpsc::channel::<TestOutcome>();
    let jobs = opts.jobs.clamp(1, n.max(1));
    std::thread::scope(|scope| {
        for _ in 0..jobs {
            let tx = tx.clone();
            let shared = &shared;
            scope.spawn(move || shared.worker(&tx));
        }
        drop(tx);
        for outcome in rx {
            on_event(GradeEvent::Test(&outcome));
            let index = outcome.index;
            if let Some(slot) = slots.get_mut(index) {
                *slot = Some(outcome);
            }
        }
    });
    report.cells.tests = shared.test_cells.load(Ordering::SeqCst);
    report.cells.checker = shared.checker_cells.load(Ordering::SeqCst);
    report.tests = slots
        .into_iter()
        .enumerate()
        .map(|(i, slot)| {
            slot.unwrap_or_else(|| {
                let t = &suite.tests[i];
                TestOutcome::skipped(i, &t.name, t.weight, "not run")
            })
        })
        .collect();
    finish(report)
}

/// Builds the checker once if it has a compile command; returns the files its cells get.
fn prepare_checker_files(
    launcher: &Launcher,
    suite: &PreparedSuite,
    opts: &GradeOptions,
    report: &mut GradeReport,
) -> Result<Vec<FileSpec>, String> {
    let Some(checker) = &suite.checker else {
        return Ok(Vec::new());
    };
    let files = checker.files.iter().map(BoxFile::to_file).collect();
    let Some(compile) = &checker.compile else {
        return Ok(files);
    };
    report.cells.checker_compile += 1;
    let (outcome, artifact) = build(
        launcher,
        &checker.root,
        &checker.root.env,
        compile,
        &checker.compile_limits,
        files,
        opts,
    );
    let ok = outcome.verdict == "OK";
    let why = format!("the checker did not build: {}", outcome.output);
    report.checker_compile = Some(outcome);
    if !ok {
        return Err(why);
    }
    Ok(artifact)
}

/// Runs a compile command over `files` ([`compile_once`]): the report's outcome and the
/// artifact (empty unless it built).
fn build(
    launcher: &Launcher,
    root: &ResolvedRoot,
    env: &[(String, String)],
    argv: &[String],
    limits: &Limits,
    files: Vec<FileSpec>,
    opts: &GradeOptions,
) -> (CompileOutcome, Vec<FileSpec>) {
    let mut spec = root.cell_spec(env, argv.to_vec(), limits, opts.allow_degraded);
    spec.files = files;
    let compiled = match spec.validate(&LimitBounds::default()) {
        Ok(s) => compile_once(launcher, &s, &mut |_| {}, opts.cancel.as_ref()),
        Err(e) => {
            let message = format!("compile spec: {e}");
            Compiled {
                result: RunResult::sandbox_error(message.clone()),
                verdict: CompileVerdict::SandboxError(message),
                artifact: Vec::new(),
            }
        }
    };
    let result = &compiled.result;
    let mut output = String::from_utf8_lossy(&result.stdout.bytes).into_owned();
    output.push_str(&String::from_utf8_lossy(&result.stderr.bytes));
    if output.len() > COMPILE_OUTPUT_BYTES {
        let mut cut = COMPILE_OUTPUT_BYTES;
        while !output.is_char_boundary(cut) {
            cut -= 1;
        }
        output.truncate(cut);
        output.push_str("\n[compiler output truncated]\n");
    }
    let verdict = match compiled.verdict.run_verdict() {
        None => "OK",
        Some(Verdict::CE) => "CE",
        Some(_) => "XX",
    };
    let outcome = CompileOutcome {
        verdict: verdict.into(),
        exit_code: result.exit_code,
        time_ms: result.cpu_time_ms,
        wall_time_ms: result.wall_time_ms,
        memory_bytes: result.memory_peak_bytes,
        output,
        message: compiled.verdict.message().map(str::to_owned),
    };
    (outcome, compiled.artifact)
}

/// State the test workers share.
struct Shared<'a> {
    launcher: &'a Launcher,
    suite: &'a PreparedSuite,
    /// The files of every test cell: the built program (or the submission as given).
    artifact: Vec<FileSpec>,
    /// The checker's files (built, if it compiles) for every checker cell.
    checker_files: Vec<FileSpec>,
    cancel: Option<CancelToken>,
    fail_fast: bool,
    allow_degraded: bool,
    next: AtomicUsize,
    stop: AtomicBool,
    test_cells: AtomicUsize,
    checker_cells: AtomicUsize,
}

impl Shared<'_> {
    /// Takes tests off the shared counter until none are left.
    fn worker(&self, tx: &mpsc::Sender<TestOutcome>) {
        loop {
            let index = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(test) = self.suite.tests.get(index) else {
                return;
            };
            let outcome = if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
                TestOutcome::skipped(index, &test.name, test.weight, "cancelled")
            } else if self.stop.load(Ordering::SeqCst) {
                TestOutcome::skipped(index, &test.name, test.weight, "not run (--fail-fast)")
            } else {
                self.run_test(index, test)
            };
            if self.fail_fast && outcome.verdict.is_failure() {
                self.stop.store(true, Ordering::SeqCst);
            }
            if tx.send(outcome).is_err() {
                return;
            }
        }
    }

    fn run_test(&self, index: usize, test: &PreparedTest) -> TestOutcome {
        let suite = self.suite;
        let mut argv = suite.run.clone();
        argv.extend(test.args.iter().cloned());
        let mut spec = suite
            .root
            .cell_spec(&suite.env, argv, &test.limits, self.allow_degraded);
        spec.stdin = StdinSource::Bytes(test.stdin.clone());
        spec.files = self.artifact.clone();
        let result = match spec.validate(&LimitBounds::default()) {
            Ok(s) => {
                self.test_cells.fetch_add(1, Ordering::SeqCst);
                self.launcher.run(&s, &mut |_| {}, self.cancel.as_ref())
            }
            Err(e) => RunResult::sandbox_error(format!("test spec: {e}")),
        };
        let mut outcome = TestOutcome::from_run(index, &test.name, test.weight, &result);
        if outcome.verdict == TestVerdict::AC {
            self.judge(test, &result.stdout.bytes, &mut outcome);
        }
        if outcome.verdict == TestVerdict::AC {
            outcome.score = test.weight;
        }
        outcome
    }

    /// Compares the output (or asks the checker) and turns AC into WA/XX as needed.
    fn judge(&self, test: &PreparedTest, stdout: &[u8], outcome: &mut TestOutcome) {
        let verdict = match (test.comparator, &test.regex) {
            (Comparator::Regex, Some(re)) => compare_regex(re, stdout),
            (Comparator::Checker, _) => {
                let Some(checker) = &self.suite.checker else {
                    outcome.verdict = TestVerdict::XX;
                    outcome.message = Some("the suite has no checker".into());
                    return;
                };
                self.checker_cells.fetch_add(1, Ordering::SeqCst);
                match run_checker(
                    self.launcher,
                    checker,
                    self.allow_degraded,
                    &self.checker_files,
                    &test.stdin,
                    stdout,
                    &test.expected,
                ) {
                    CheckerVerdict::Accepted(msg) => {
                        outcome.message = Some(msg).filter(|m| !m.is_empty());
                        Ok(())
                    }
                    CheckerVerdict::Rejected(msg) => Err(msg),
                    CheckerVerdict::Failed(msg) => {
                        outcome.verdict = TestVerdict::XX;
                        outcome.message = Some(msg);
                        return;
                    }
                }
            }
            (c, _) => compare(c, &test.expected, stdout),
        };
        if let Err(diff) = verdict {
            outcome.verdict = TestVerdict::WA;
            outcome.diff = Some(diff);
        }
    }
}
