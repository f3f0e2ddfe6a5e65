//! Runs that are queued or running in this process: their phase (watch), their output
//! stream (broadcast, for SSE) and their cancel token. Finished runs leave the registry and
//! are read from the store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use super::dto::{RunFinished, RunStatus};
use crate::sandbox::CancelToken;

/// Events buffered per run for slow SSE readers (older ones are dropped: `lagged`).
pub const EVENT_BUFFER: usize = 1024;

/// Where a live run is.
#[derive(Debug, Clone)]
pub enum Phase {
    Queued,
    Running,
    Done(Arc<RunFinished>),
    /// The daemon is shutting down before the run started; it stays queued in the store and
    /// runs after the restart.
    Deferred,
}

impl Phase {
    pub fn status(&self) -> RunStatus {
        match self {
            Phase::Queued | Phase::Deferred => RunStatus::Queued,
            Phase::Running => RunStatus::Running,
            Phase::Done(_) => RunStatus::Done,
        }
    }
    pub fn is_final(&self) -> bool {
        matches!(self, Phase::Done(_) | Phase::Deferred)
    }
}

/// Something an SSE client sees.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    Status(RunStatus),
    Stdout(Arc<[u8]>),
    Stderr(Arc<[u8]>),
    Done(Arc<RunFinished>),
    /// The daemon shuts down before the run started; it runs after the restart.
    Deferred,
}

/// One queued or running run.
#[derive(Debug)]
pub struct LiveRun {
    pub id: String,
    pub app: String,
    pub phase: watch::Sender<Phase>,
    pub events: broadcast::Sender<LiveEvent>,
    pub cancel: CancelToken,
    /// Set by whoever ends the run (a worker starting it, or a DELETE while it is queued).
    claimed: AtomicBool,
    /// Cancelled because the daemon shuts down (not by the API).
    by_shutdown: AtomicBool,
    /// The app's quota unit, given back when the run ends.
    quota: Mutex<Option<QuotaGuard>>,
    /// Output so far, replayed to SSE readers that connect late (the launcher caps it).
    output: Mutex<Vec<LiveEvent>>,
}

impl LiveRun {
    pub fn new(id: String, app: String, quota: QuotaGuard) -> std::io::Result<LiveRun> {
        Ok(LiveRun {
            id,
            app,
            phase: watch::Sender::new(Phase::Queued),
            events: broadcast::Sender::new(EVENT_BUFFER),
            cancel: CancelToken::new()?,
            claimed: AtomicBool::new(false),
            by_shutdown: AtomicBool::new(false),
            quota: Mutex::new(Some(quota)),
            output: Mutex::new(Vec::new()),
        })
    }

    /// Sends an output chunk to SSE readers and keeps it for late ones.
    pub fn publish_output(&self, event: LiveEvent) {
        let mut output = self.output.lock().unwrap_or_else(|p| p.into_inner());
        // No receiver is fine: nobody is watching the stream.
        let _ = self.events.send(event.clone());
        output.push(event);
    }

    /// The output so far and a receiver of everything after it (no gap, no duplicate).
    pub fn subscribe(&self) -> (Vec<LiveEvent>, broadcast::Receiver<LiveEvent>) {
        let output = self.output.lock().unwrap_or_else(|p| p.into_inner());
        (output.clone(), self.events.subscribe())
    }

    /// Cancels the run because the daemon shuts down (its result says so).
    pub fn cancel_for_shutdown(&self) {
        self.by_shutdown.store(true, Ordering::Release);
        self.cancel.cancel();
    }

    /// True if [`LiveRun::cancel_for_shutdown`] ended it.
    pub fn cancelled_by_shutdown(&self) -> bool {
        self.by_shutdown.load(Ordering::Acquire)
    }

    /// True for exactly one caller: the one that gets to run or end this run.
    pub fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    /// Gives the app's quota unit back.
    pub fn release_quota(&self) {
        self.quota.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Moves to `phase` and tells SSE readers.
    pub fn set_phase(&self, phase: Phase) {
        let event = match &phase {
            Phase::Done(r) => Some(LiveEvent::Done(r.clone())),
            Phase::Running => Some(LiveEvent::Status(RunStatus::Running)),
            Phase::Deferred => Some(LiveEvent::Deferred),
            Phase::Queued => None,
        };
        self.phase.send_replace(phase);
        if let Some(event) = event {
            let _ = self.events.send(event);
        }
    }
}

/// The registry of live runs by id.
#[derive(Debug, Default)]
pub struct LiveRuns {
    runs: Mutex<HashMap<String, Arc<LiveRun>>>,
}

impl LiveRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveRun>>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn insert(&self, run: Arc<LiveRun>) {
        self.lock().insert(run.id.clone(), run);
    }
    pub fn get(&self, id: &str) -> Option<Arc<LiveRun>> {
        self.lock().get(id).cloned()
    }
    pub fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
    pub fn all(&self) -> Vec<Arc<LiveRun>> {
        self.lock().values().cloned().collect()
    }
}

/// Queued-plus-running runs per app, for the concurrency quota.
#[derive(Debug, Default)]
pub struct Quotas {
    active: Mutex<HashMap<String, u32>>,
}

/// One unit of an app's quota, given back on drop.
#[derive(Debug)]
pub struct QuotaGuard {
    quotas: Arc<Quotas>,
    app: String,
}

impl Quotas {
    /// A unit of `app`'s quota, or None when it already has `max` active runs.
    pub fn try_acquire(self: &Arc<Self>, app: &str, max: u32) -> Option<QuotaGuard> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let n = active.entry(app.to_string()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(QuotaGuard {
            quotas: self.clone(),
            app: app.to_string(),
        })
    }

    /// A unit taken past the quota (runs recovered at restart were accepted already).
    pub fn force_acquire(self: &Arc<Self>, app: &str) -> QuotaGuard {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        *active.entry(app.to_string()).or_insert(0) += 1;
        QuotaGuard {
            quotas: self.clone(),
            app: app.to_string(),
        }
    }
}

impl Drop for QuotaGuard {
    fn drop(&mut self) {
        let mut active = self.quotas.active.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = active.get_mut(&self.app) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                active.remove(&self.app);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_units_come_back_on_drop() {
        let q = Arc::new(Quotas::default());
        let a = q.try_acquire("x", 2).unwrap();
        let _b = q.try_acquire("x", 2).unwrap();
        assert!(q.try_acquire("x", 2).is_none());
        assert!(q.try_acquire("y", 1).is_some());
        drop(a);
        assert!(q.try_acquire("x", 2).is_some());
    }
}
