//! Compile once, then run every test in its own fresh cell, `jobs` at a time.
//!
//! Layout of the cells: the submission's files are copied to a host directory owned by the
//! cell uid. The compile cell gets it bound **writable** at `/work` (its cwd); every test cell
//! gets the same directory bound **read-only** at `/work`, so tests see the built program
//! but cannot change it or leave anything for the next test. Programs can write to `/tmp`
//! (a fresh tmpfs per cell).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use crate::result::{RunResult, Verdict};
use crate::sandbox::{CancelToken, Launcher};
use crate::spec::{BindMount, LimitBounds, Limits, RunSpec, StdinSource, DEFAULT_UID};

use super::checker::{run_checker, CheckerVerdict};
use super::comparator::{compare, compare_regex, Comparator};
use super::prepare::{BoxFile, PreparedSuite, PreparedTest};
use super::report::{CompileOutcome, GradeReport, TestOutcome, TestVerdict};
use super::workspace::BoxDir;

/// How to grade.
#[derive(Debug, Clone)]
pub struct GradeOptions {
    /// Tests run at the same time (at least 1).
    pub jobs: usize,
    /// Stop starting tests after the first failure (the rest are SKIPPED).
    pub fail_fast: bool,
    /// Where the build directory is created on the host.
    pub temp_dir: PathBuf,
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
            temp_dir: std::env::temp_dir(),
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

/// Where the work directory is mounted in every cell.
pub const WORK_DIR: &str = "/work";
/// Most bytes of compiler output kept in the report.
const COMPILE_OUTPUT_BYTES: usize = 32 * 1024;
/// Largest compiled checker read back into memory.
const MAX_CHECKER_BYTES: u64 = 64 << 20;

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

    let workdir = match BoxDir::create(&opts.temp_dir, &suite.submission, DEFAULT_UID, DEFAULT_UID)
    {
        Ok(b) => b,
        Err(e) => {
            report.message = Some(format!(
                "cannot create the build directory in {}: {e}",
                opts.temp_dir.display()
            ));
            report.tests = skip_all("sandbox error");
            return finish(report);
        }
    };

    if let Some(compile) = &suite.compile {
        report.cells.compile += 1;
        let outcome = build(
            launcher,
            &suite.root.rootfs,
            &suite.env,
            compile,
            &suite.compile_limits,
            &workdir,
            opts,
        );
        on_event(GradeEvent::Compiled(&outcome));
        let failed = outcome.verdict != "OK";
        report.compile = Some(outcome);
        if failed {
            report.tests = skip_all("not run: the submission did not compile");
            return finish(report);
        }
    }

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
        work: workdir.path().to_path_buf(),
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
    drop(workdir);
    finish(report)
}

/// Builds the checker once if it has a compile command; returns the files its cells get.
fn prepare_checker_files(
    launcher: &Launcher,
    suite: &PreparedSuite,
    opts: &GradeOptions,
    report: &mut GradeReport,
) -> Result<Vec<BoxFile>, String> {
    let Some(checker) = &suite.checker else {
        return Ok(Vec::new());
    };
    let Some(compile) = &checker.compile else {
        return Ok(checker.files.clone());
    };
    let dir = BoxDir::create(&opts.temp_dir, &checker.files, DEFAULT_UID, DEFAULT_UID)
        .map_err(|e| format!("cannot create the checker's build directory: {e}"))?;
    report.cells.checker_compile += 1;
    let outcome = build(
        launcher,
        &checker.root.rootfs,
        &checker.root.env,
        compile,
        &checker.compile_limits,
        &dir,
        opts,
    );
    let ok = outcome.verdict == "OK";
    let why = format!("the checker did not build: {}", outcome.output);
    report.checker_compile = Some(outcome);
    if !ok {
        return Err(why);
    }
    dir.read_files(MAX_CHECKER_BYTES)
        .map_err(|e| format!("reading the built checker: {e}"))
}

/// Runs a compile command with the work dir bound writable.
fn build(
    launcher: &Launcher,
    rootfs: &std::path::Path,
    env: &[(String, String)],
    argv: &[String],
    limits: &Limits,
    dir: &BoxDir,
    opts: &GradeOptions,
) -> CompileOutcome {
    let cancel = opts.cancel.as_ref();
    let mut spec = RunSpec::new(rootfs, argv.to_vec());
    spec.allow_degraded = opts.allow_degraded;
    spec.env = env.to_vec();
    spec.limits = limits.clone();
    spec.binds = vec![BindMount {
        source: dir.path().to_path_buf(),
        target: WORK_DIR.into(),
        writable: true,
    }];
    let result = match spec.validate(&LimitBounds::default()) {
        Ok(s) => launcher.run(&s, &mut |_| {}, cancel),
        Err(e) => RunResult::sandbox_error(format!("compile spec: {e}")),
    };
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
    let (verdict, message) = match result.verdict {
        Verdict::OK => ("OK", None),
        Verdict::XX | Verdict::CANCELLED => ("XX", result.message.clone()),
        Verdict::RE => (
            "CE",
            Some(format!(
                "the compiler exited with code {}",
                result.exit_code.unwrap_or(-1)
            )),
        ),
        Verdict::TO => ("CE", Some("compilation exceeded its time limit".into())),
        Verdict::MLE => ("CE", Some("compilation exceeded its memory limit".into())),
        Verdict::OLE => ("CE", Some("the compiler printed too much".into())),
        Verdict::SG | Verdict::CE => (
            "CE",
            Some(format!(
                "the compiler was killed by signal {}",
                result.signal.unwrap_or(0)
            )),
        ),
    };
    CompileOutcome {
        verdict: verdict.into(),
        exit_code: result.exit_code,
        time_ms: result.cpu_time_ms,
        wall_time_ms: result.wall_time_ms,
        memory_bytes: result.memory_peak_bytes,
        output,
        message,
    }
}

/// State the test workers share.
struct Shared<'a> {
    launcher: &'a Launcher,
    suite: &'a PreparedSuite,
    work: PathBuf,
    checker_files: Vec<BoxFile>,
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
        let mut spec = RunSpec::new(&suite.root.rootfs, argv);
        spec.env = suite.env.clone();
        spec.limits = test.limits.clone();
        spec.stdin = StdinSource::Bytes(test.stdin.clone());
        spec.allow_degraded = self.allow_degraded;
        spec.binds = vec![BindMount {
            source: self.work.clone(),
            target: WORK_DIR.into(),
            writable: false,
        }];
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
