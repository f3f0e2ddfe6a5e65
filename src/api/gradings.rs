//! Gradings of the daemon (`/v1/gradings`): the in-memory registry of running and recent
//! gradings (progress for SSE), the bound on concurrent gradings, and the std thread each
//! grading runs on. Every grading is also in the SQLite store ([`super::grading_records`]):
//! accepted before it is answered, each finished test recorded, the report kept after a
//! restart. Only the newest [`MAX_KEPT`] finished ones stay in memory. A grading's cells take
//! the launcher's cell permits like runs do, so gradings never add cells beyond `workers`.
//!
//! Each grading gets its own std thread (never a tokio thread: `grade()` blocks and starts
//! scoped threads of its own). Identity changes in cells are raw syscalls (see
//! `sandbox::sys`), so threads created while other workers clone cells are safe.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;

use super::grading_records as records;
use super::live::QuotaGuard;
use super::store::{now_ms, Store};
use crate::grade::{self, GradeEvent, GradeOptions, PreparedSuite};
use crate::sandbox::{CancelToken, Launcher};

/// Finished gradings kept for `GET /v1/gradings/{id}` (the oldest are forgotten first).
pub const MAX_KEPT: usize = 1000;

/// Where a grading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GradingStatus {
    Queued,
    Running,
    Done,
}

/// One SSE event of a grading: its name and JSON data.
#[derive(Debug, Clone)]
pub struct GradingEvent {
    pub name: &'static str,
    pub data: String,
}

#[derive(Debug)]
struct Progress {
    status: GradingStatus,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    /// `compiled` and `test` events so far (bounded by the suite's test count).
    events: Vec<GradingEvent>,
    /// The report as JSON (with `id` and `status`), once done.
    report: Option<Arc<serde_json::Value>>,
}

/// A snapshot of a grading for the routes.
#[derive(Debug, Clone)]
pub struct GradingSnapshot {
    pub status: GradingStatus,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub events: Vec<GradingEvent>,
    pub report: Option<Arc<serde_json::Value>>,
}

/// One grading, queued, running or done.
#[derive(Debug)]
pub struct Grading {
    pub id: String,
    pub app: String,
    pub created_at: i64,
    pub cancel: CancelToken,
    progress: Mutex<Progress>,
    /// Bumped on every change; readers wait on it.
    version: watch::Sender<u64>,
}

impl Grading {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    /// The grading now; events from `from` on.
    pub fn snapshot(&self, from: usize) -> GradingSnapshot {
        let p = self.lock();
        GradingSnapshot {
            status: p.status,
            created_at: self.created_at,
            started_at: p.started_at,
            finished_at: p.finished_at,
            events: p.events.get(from..).unwrap_or_default().to_vec(),
            report: p.report.clone(),
        }
    }

    /// A receiver that sees every later change (subscribe before [`Grading::snapshot`]).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    /// Waits until the grading is done and returns its report.
    pub async fn done(&self) -> Arc<serde_json::Value> {
        let mut rx = self.subscribe();
        loop {
            if let Some(report) = self.lock().report.clone() {
                return report;
            }
            if rx.changed().await.is_err() {
                // The sender lives in self: unreachable, but never hang.
                std::future::pending::<()>().await;
            }
        }
    }

    fn set_running(&self) {
        {
            let mut p = self.lock();
            p.status = GradingStatus::Running;
            p.started_at = Some(now_ms());
        }
        self.changed();
    }

    fn push(&self, name: &'static str, data: String) {
        self.lock().events.push(GradingEvent { name, data });
        self.changed();
    }

    fn finish(&self, report: serde_json::Value) {
        {
            let mut p = self.lock();
            p.status = GradingStatus::Done;
            p.finished_at = Some(now_ms());
            p.report = Some(Arc::new(report));
        }
        self.changed();
    }
}

/// Why a grading could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create a cancel token: {0}")]
    Cancel(std::io::Error),
}

/// What a grading runs with.
#[derive(Debug)]
pub struct GradingJob {
    pub suite: PreparedSuite,
    pub jobs: usize,
    pub allow_degraded: bool,
    /// The app's quota unit, held until the grading ends.
    pub quota: QuotaGuard,
    /// Where the grading's record is (inserted before it is started).
    pub store: Arc<Store>,
}

#[derive(Debug, Default)]
struct Registry {
    all: HashMap<String, Arc<Grading>>,
    /// Finished ids, oldest first.
    finished: VecDeque<String>,
}

/// Every grading of the daemon, and how many run now.
#[derive(Debug, Default)]
pub struct Gradings {
    registry: Mutex<Registry>,
    running: Arc<AtomicUsize>,
    launcher: OnceLock<Arc<Launcher>>,
}

/// Counts a running grading down on drop (also when it panics).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gradings {
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The daemon's launcher, shared with the run workers (set once at start).
    pub fn set_launcher(&self, launcher: Arc<Launcher>) {
        let _ = self.launcher.set(launcher);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Grading>> {
        self.registry().all.get(id).cloned()
    }

    /// Gradings running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// Registers a queued grading; the caller puts it in the daemon's job queue, where a
    /// cell worker takes it like a run ([`Gradings::run_queued`]).
    pub fn register(&self, id: String, app: String) -> Result<Arc<Grading>, StartError> {
        let grading = Arc::new(Grading {
            id: id.clone(),
            app,
            created_at: now_ms(),
            cancel: CancelToken::new().map_err(StartError::Cancel)?,
            progress: Mutex::new(Progress {
                status: GradingStatus::Queued,
                started_at: None,
                finished_at: None,
                events: Vec::new(),
                report: None,
            }),
            version: watch::Sender::new(0),
        });
        self.registry().all.insert(id, grading.clone());
        Ok(grading)
    }

    /// Forgets a registered grading that never reached the queue.
    pub fn unregister(&self, id: &str) {
        self.registry().all.remove(id);
    }

    /// Runs a queued grading on the calling thread (a cell worker): its tests take cell
    /// permits from the launcher's one pool, like every run. A grading cancelled while
    /// queued ends at once with its tests SKIPPED. Returns the report's verdict.
    pub fn run_queued(&self, launcher: &Launcher, grading: &Grading, job: GradingJob) -> String {
        self.running.fetch_add(1, Ordering::AcqRel);
        let _slot = Slot(self.running.clone());
        let verdict = run(launcher, grading, job);
        self.forget_old(&grading.id);
        verdict
    }

    /// Ends a queued grading the daemon will not run (shutting down): cancelled, on a thread
    /// of its own, so its record and any waiting client get a report.
    pub fn abandon(self: &Arc<Self>, grading: Arc<Grading>, job: GradingJob) {
        grading.cancel.cancel();
        let Some(launcher) = self.launcher.get().cloned() else {
            return;
        };
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("grading-abandon".into())
            .spawn(move || drop(this.run_queued(&launcher, &grading, job)));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot end a queued grading; the next start will");
        }
    }

    fn forget_old(&self, finished_id: &str) {
        let mut r = self.registry();
        r.finished.push_back(finished_id.to_string());
        while r.finished.len() > MAX_KEPT {
            if let Some(old) = r.finished.pop_front() {
                r.all.remove(&old);
            }
        }
    }

    /// Cancels every unfinished grading (their tests end, the rest are SKIPPED).
    pub fn cancel_unfinished(&self) {
        for g in self.registry().all.values() {
            if g.lock().status != GradingStatus::Done {
                g.cancel.cancel();
            }
        }
    }

    /// Cancels every unfinished grading and waits up to `within` for them to end.
    pub fn shutdown(&self, within: Duration) {
        self.cancel_unfinished();
        let deadline = Instant::now() + within;
        while self.running() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The report JSON the routes answer: the CLI's `--format json` report plus `id`, `status`.
fn report_json(id: &str, report: &grade::GradeReport) -> serde_json::Value {
    let mut value = serde_json::to_value(report).unwrap_or_else(|e| {
        serde_json::json!({ "verdict": "XX", "message": format!("cannot encode the report: {e}") })
    });
    if let Some(map) = value.as_object_mut() {
        map.insert("id".into(), id.into());
        map.insert("status".into(), "done".into());
    }
    value
}

/// Logs a store error: the grading goes on (its report still reaches the waiting client),
/// and a restart would end it as interrupted.
fn note(grading: &Grading, what: &str, r: Result<(), super::store::StoreError>) {
    if let Err(e) = r {
        tracing::warn!(grading = %grading.id, error = %e, "cannot record {what}");
    }
}

/// Runs the grading to its report; returns the report's verdict.
fn run(launcher: &Launcher, grading: &Grading, job: GradingJob) -> String {
    let _quota = job.quota;
    let store = job.store;
    grading.set_running();
    note(
        grading,
        "start",
        records::mark_running(&store, &grading.id, now_ms()),
    );
    let mut tests_done: Vec<serde_json::Value> = Vec::new();
    let started = Instant::now();
    let opts = GradeOptions {
        jobs: job.jobs,
        fail_fast: false,
        cancel: Some(grading.cancel.clone()),
        allow_degraded: job.allow_degraded,
    };
    let report = grade::grade(launcher, &job.suite, &opts, &mut |event| match event {
        GradeEvent::Compiled(c) => {
            grading.push("compiled", serde_json::to_string(c).unwrap_or_default())
        }
        GradeEvent::Test(t) => {
            let json = serde_json::to_value(t).unwrap_or_default();
            tests_done.push(json.clone());
            note(
                grading,
                "a test",
                records::record_tests(&store, &grading.id, &tests_done),
            );
            grading.push("test", json.to_string())
        }
    });
    tracing::info!(
        grading = %grading.id,
        app = %grading.app,
        verdict = %report.verdict,
        passed = report.passed,
        total = report.total,
        wall_ms = started.elapsed().as_millis() as u64,
        "grading finished"
    );
    let verdict = report.verdict.clone();
    let report = report_json(&grading.id, &report);
    note(
        grading,
        "the report",
        records::mark_done(&store, &grading.id, &report),
    );
    grading.finish(report);
    verdict
}
