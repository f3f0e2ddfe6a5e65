//! What every handler and worker shares.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use super::auth::{anonymous_app, local_app, KeyCache};
use super::cells::CellRegistry;
use super::config::ServeConfig;
use super::error::ApiError;
use super::gradings::{Grading, GradingJob, Gradings};
use super::images::ImageCatalog;
use super::live::{LiveRun, LiveRuns, QuotaGuard, Quotas};
use super::metrics::{Metrics, Rejection};
use super::prepare::Work;
use super::queue::{JobQueue, Reservation};
use super::store::{App, Store};
use crate::image::ImageLease;

/// What the daemon's one job queue holds: runs and gradings are admitted the same way
/// (app quota, queue capacity) and taken by the same cell workers; a grading's tests then
/// take cell permits from the launcher's one pool.
#[derive(Debug)]
// Runs are the common job and stay inline; a grading (its whole prepared suite) is boxed.
#[allow(clippy::large_enum_variant)]
pub enum Job {
    Run(RunJob),
    Grading(Box<GradingQueued>),
}

/// An accepted grading waiting for a worker.
#[derive(Debug)]
pub struct GradingQueued {
    pub grading: Arc<Grading>,
    pub job: GradingJob,
}

/// One accepted run waiting for a worker.
#[derive(Debug)]
pub struct RunJob {
    pub live: Arc<LiveRun>,
    pub work: Work,
    /// Held until the run ends so the store image cannot be removed meanwhile.
    pub lease: Option<ImageLease>,
    pub accepted: Instant,
}

/// The daemon's shared state.
#[derive(Debug)]
pub struct Shared {
    pub config: ServeConfig,
    pub store: Arc<Store>,
    pub keys: KeyCache,
    pub anonymous: Arc<App>,
    pub queue: JobQueue<Job>,
    pub live: LiveRuns,
    pub quotas: Arc<Quotas>,
    pub metrics: Metrics,
    pub catalog: ImageCatalog,
    /// Gradings (`/v1/gradings`) running or recently finished; the store has them all.
    pub gradings: Arc<Gradings>,
    /// Long-lived cells (`/v1/cells`).
    pub cells: CellRegistry,
    /// The app of requests on the local socket (no key).
    pub local: Arc<App>,
    /// True once SIGTERM arrived.
    pub shutting_down: watch::Sender<bool>,
    /// Where `/v1/runs` are recorded and queued (this node, or Redis for API nodes).
    pub backend: super::scale::RunBackend,
}

impl Shared {
    pub fn new(config: ServeConfig, store: Store) -> Shared {
        Shared {
            catalog: ImageCatalog::from_config(&config).with_store(&config.state_dir),
            queue: JobQueue::new(config.max_queue),
            config,
            store: Arc::new(store),
            keys: KeyCache::default(),
            anonymous: Arc::new(anonymous_app()),
            live: LiveRuns::default(),
            quotas: Arc::new(Quotas::default()),
            metrics: Metrics::default(),
            gradings: Arc::default(),
            cells: CellRegistry::default(),
            local: Arc::new(local_app()),
            shutting_down: watch::Sender::new(false),
            backend: super::scale::RunBackend::Embedded,
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.shutting_down.borrow()
    }

    /// 503 `shutting_down` once SIGTERM arrived: nothing new is taken then.
    pub fn accepting(&self) -> Result<(), ApiError> {
        if self.is_shutting_down() {
            return Err(ApiError::unavailable(
                "shutting_down",
                "the daemon is shutting down",
                self.config.retry_after_secs,
            ));
        }
        Ok(())
    }

    /// Whether the app `caller` may see what `owner` owns: its own, or anything without auth.
    pub fn may_see(&self, owner: &str, caller: &str) -> bool {
        !self.config.auth || owner == caller
    }

    /// 403 unless `caller` [may see](Self::may_see) the `what` `id`, which `owner` owns.
    pub fn check_owner(
        &self,
        what: &str,
        id: &str,
        owner: &str,
        caller: &str,
    ) -> Result<(), ApiError> {
        if !self.may_see(owner, caller) {
            return Err(ApiError::forbidden(format!(
                "{what} {id:?} belongs to another app"
            )));
        }
        Ok(())
    }

    /// 429 for an app that has its `max_concurrent` `jobs` queued or running already.
    pub fn quota_refusal(&self, app: &App, jobs: &str) -> ApiError {
        ApiError::quota_exceeded(
            format!(
                "app {:?} already has {} {jobs} queued or running",
                app.name, app.max_concurrent
            ),
            self.config.retry_after_secs,
        )
    }

    /// Admission of a job of either kind (a run or a grading) into the one queue: not while
    /// shutting down (503), within the app's quota of jobs queued or running (429), with a
    /// place in the queue (503). The quota unit and the place are held by the caller until
    /// the job is queued (and the unit until it ends).
    pub fn admit(&self, app: &App) -> Result<(QuotaGuard, Reservation<'_, Job>), ApiError> {
        self.accepting()?;
        let Some(quota) = self.quotas.try_acquire(&app.name, app.max_concurrent) else {
            self.metrics.rejected(Rejection::Quota);
            return Err(self.quota_refusal(app, "runs or gradings"));
        };
        let Some(place) = self.queue.reserve() else {
            self.metrics.rejected(Rejection::QueueFull);
            return Err(ApiError::unavailable(
                "queue_full",
                "the job queue is full",
                self.config.retry_after_secs,
            ));
        };
        Ok((quota, place))
    }
}

/// The router's state: a cheap handle on [`Shared`].
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}
