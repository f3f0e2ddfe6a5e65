//! The daemon's live long-lived cells: creation within quotas, one exec at a time per cell,
//! file transfers, and the end of each cell (DELETE, idle timeout, max lifetime, out of
//! memory, shutdown), recorded in the store.
//!
//! Everything here blocks (a cell's set-up, an exec, a copy) and runs on threads of its
//! own, never on the runtime's: see [`super::routes`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::dto::{CellRequest, CellState, CellUsageView, CellView, ExecRequest};
use super::records::{self, CellRecord};
use crate::api::dto::{LimitsInput, RunFinished, RunRequest, RunStatus};
use crate::api::error::ApiError;
use crate::api::images::ServedLanguage;
use crate::api::live::{LiveEvent, LiveRun, Phase};
use crate::api::prepare::{bounds_for, decode, prepare, Work};
use crate::api::state::Shared;
use crate::api::store::{now_ms, App};
use crate::image::{merge_env, ImageLease};
use crate::result::{RunResult, RunResultWire};
use crate::sandbox::{
    Launcher, LongLivedCell, RunEvent, SandboxError, LONG_LIVED_SET_UP as SET_UP,
};
use crate::spec::{LimitBounds, RunSpec, StdinSource, ValidatedSpec};

/// Execs kept per cell for `GET .../exec/{n}` and their events (older ones are forgotten).
const KEPT_EXECS: usize = 32;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One live cell.
pub struct CellEntry {
    pub id: String,
    pub app: String,
    pub image: String,
    pub created_at: i64,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub work_dir: String,
    created: Instant,
    base: RunSpec,
    bounds: LimitBounds,
    last_used: Mutex<Instant>,
    busy: AtomicBool,
    /// `None` once ended.
    cell: Mutex<Option<LongLivedCell>>,
    /// The exec running now (cancelled when the cell is ended meanwhile).
    running: Mutex<Option<Arc<LiveRun>>>,
    execs: Mutex<VecDeque<(u64, Arc<LiveRun>)>>,
    next_exec: AtomicU64,
    /// Usage as of the last exec (read without waiting for a running exec).
    usage: Mutex<CellUsageView>,
    /// Keeps a store image from being removed while the cell lives.
    _lease: Option<ImageLease>,
}

impl std::fmt::Debug for CellEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CellEntry")
            .field("id", &self.id)
            .field("app", &self.app)
            .finish()
    }
}

impl CellEntry {
    fn touch(&self) {
        *lock(&self.last_used) = Instant::now();
    }

    pub fn view(&self) -> CellView {
        CellView {
            id: self.id.clone(),
            image: self.image.clone(),
            state: if self.busy.load(Ordering::Acquire) {
                CellState::Busy
            } else {
                CellState::Idle
            },
            created_at: self.created_at,
            ended_at: None,
            end_reason: None,
            execs: self.next_exec.load(Ordering::Acquire),
            work_dir: Some(self.work_dir.clone()),
            idle_timeout: Some(self.idle_timeout.as_secs()),
            max_lifetime: Some(self.max_lifetime.as_secs()),
            usage: Some(lock(&self.usage).clone()),
        }
    }

    /// The exec numbered `n`, if still kept.
    pub fn exec(&self, n: u64) -> Option<Arc<LiveRun>> {
        lock(&self.execs)
            .iter()
            .find(|(m, _)| *m == n)
            .map(|(_, live)| live.clone())
    }

    /// Runs `f` on the live cell (waiting for a running exec to end); 410 once it ended.
    pub fn with_cell<T>(
        &self,
        f: impl FnOnce(&mut LongLivedCell) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut guard = lock(&self.cell);
        let cell = guard.as_mut().ok_or_else(|| gone(&self.id, "ended"))?;
        self.touch();
        let out = f(cell);
        self.touch();
        out
    }
}

/// 410 for a cell that has ended.
pub fn gone(id: &str, why: &str) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::GONE,
        "cell_ended",
        format!("cell {id} has ended: {why}"),
    )
}

/// The live cells of this daemon.
#[derive(Debug, Default)]
pub struct CellRegistry {
    launcher: OnceLock<Arc<Launcher>>,
    cells: Mutex<HashMap<String, Arc<CellEntry>>>,
    /// Cells being made, per app: they count against the quotas already (locked after
    /// `cells`).
    making: Mutex<HashMap<String, usize>>,
}

/// A place taken in the quotas while a cell is made; given back on drop.
struct Making<'a> {
    registry: &'a CellRegistry,
    app: String,
}

impl Drop for Making<'_> {
    fn drop(&mut self) {
        let mut making = lock(&self.registry.making);
        if let Some(n) = making.get_mut(&self.app) {
            *n -= 1;
            if *n == 0 {
                making.remove(&self.app);
            }
        }
    }
}

impl CellRegistry {
    pub fn set_launcher(&self, launcher: Arc<Launcher>) {
        let _ = self.launcher.set(launcher);
    }

    fn launcher(&self) -> Result<&Arc<Launcher>, ApiError> {
        self.launcher
            .get()
            .ok_or_else(|| ApiError::internal("no launcher for cells"))
    }

    /// The live cell `id` of `app` (404 for another app's, like a missing one).
    pub fn get(&self, app: &str, id: &str) -> Option<Arc<CellEntry>> {
        lock(&self.cells).get(id).filter(|e| e.app == app).cloned()
    }

    pub fn live_of(&self, app: &str) -> Vec<Arc<CellEntry>> {
        let mut v: Vec<_> = lock(&self.cells)
            .values()
            .filter(|e| e.app == app)
            .cloned()
            .collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.created_at));
        v
    }

    pub fn count(&self) -> usize {
        lock(&self.cells).len()
    }

    /// Makes a cell for `app` (blocking: the cell sets itself up).
    pub fn create(
        &self,
        shared: &Shared,
        app: &App,
        request: &CellRequest,
    ) -> Result<CellView, ApiError> {
        let launcher = self.launcher()?;
        let c = &shared.config.cells;
        let retry = shared.config.retry_after_secs;
        shared.accepting()?;
        let idle_timeout = seconds(
            "idle_timeout",
            request.idle_timeout,
            c.idle_timeout_secs,
            c.max_idle_timeout_secs,
        )?;
        let max_lifetime = seconds(
            "max_lifetime",
            request.max_lifetime,
            c.max_lifetime_secs,
            c.max_max_lifetime_secs,
        )?;
        let (spec, image, lease, bounds) = cell_spec(shared, app, request)?;
        let making = {
            let cells = lock(&self.cells);
            let mut making = lock(&self.making);
            let mine = cells.values().filter(|e| e.app == app.name).count()
                + making.get(&app.name).copied().unwrap_or(0);
            if mine >= c.max_per_app as usize {
                return Err(ApiError::quota_exceeded(
                    format!(
                        "app {:?} already has {mine} live cells (the most it may hold)",
                        app.name
                    ),
                    retry,
                ));
            }
            if cells.len() + making.values().sum::<usize>() >= c.max_total as usize {
                return Err(ApiError::unavailable(
                    "cells_full",
                    "the daemon holds as many cells as it may",
                    retry,
                ));
            }
            *making.entry(app.name.clone()).or_default() += 1;
            Making {
                registry: self,
                app: app.name.clone(),
            }
        };
        let validated = spec.clone().validate(&bounds).map_err(ApiError::from)?;
        let cell = launcher.create_long_lived(&validated).map_err(cell_error)?;
        let id = crate::api::routes::runs::new_run_id();
        let created_at = now_ms();
        records::insert(&shared.store, &id, &app.name, &image, created_at)?;
        let entry = Arc::new(CellEntry {
            id: id.clone(),
            app: app.name.clone(),
            image,
            created_at,
            idle_timeout,
            max_lifetime,
            work_dir: spec.work_dir.clone(),
            created: Instant::now(),
            base: spec,
            bounds,
            last_used: Mutex::new(Instant::now()),
            busy: AtomicBool::new(false),
            cell: Mutex::new(Some(cell)),
            running: Mutex::new(None),
            execs: Mutex::new(VecDeque::new()),
            next_exec: AtomicU64::new(0),
            usage: Mutex::new(CellUsageView::default()),
            _lease: lease,
        });
        lock(&self.cells).insert(id, entry.clone());
        drop(making);
        tracing::info!(cell = %entry.id, app = %entry.app, image = %entry.image, "cell created");
        Ok(entry.view())
    }

    /// Registers a new exec of `entry` and returns its number and live run (429 over the
    /// app's quota of jobs; 410 for an ended cell).
    pub fn begin_exec(
        &self,
        shared: &Shared,
        app: &App,
        entry: &CellEntry,
    ) -> Result<(u64, Arc<LiveRun>), ApiError> {
        if lock(&entry.cell).is_none() {
            return Err(gone(&entry.id, "ended"));
        }
        let Some(quota) = shared.quotas.try_acquire(&app.name, app.max_concurrent) else {
            return Err(shared.quota_refusal(app, "jobs"));
        };
        let n = entry.next_exec.fetch_add(1, Ordering::AcqRel) + 1;
        let live = LiveRun::new(format!("{}.{n}", entry.id), app.name.clone(), quota)
            .map(Arc::new)
            .map_err(|e| ApiError::internal(format!("cancel token: {e}")))?;
        let mut execs = lock(&entry.execs);
        execs.push_back((n, live.clone()));
        while execs.len() > KEPT_EXECS {
            execs.pop_front();
        }
        Ok((n, live))
    }

    /// Runs one exec (blocking); its output goes to `live`'s readers and the result is
    /// returned and published. An exec that ends the cell (out of memory) ends its entry.
    pub fn run_exec(
        &self,
        shared: &Shared,
        entry: &Arc<CellEntry>,
        spec: &ValidatedSpec,
        live: &Arc<LiveRun>,
    ) -> RunFinished {
        let result = match self.exec_in(shared, entry, spec, live) {
            Ok(r) => r,
            Err(e) => {
                let mut r = RunResult::sandbox_error(e.message);
                if e.status == axum::http::StatusCode::GONE {
                    r.message = Some(format!("cell {} has ended", entry.id));
                }
                r
            }
        };
        let finished = RunFinished {
            id: live.id.clone(),
            status: RunStatus::Done,
            result: RunResultWire::from(&result),
            compile: None,
        };
        live.set_phase(Phase::Done(Arc::new(finished.clone())));
        live.release_quota();
        finished
    }

    fn exec_in(
        &self,
        shared: &Shared,
        entry: &Arc<CellEntry>,
        spec: &ValidatedSpec,
        live: &Arc<LiveRun>,
    ) -> Result<RunResult, ApiError> {
        let launcher = self.launcher()?;
        let mut guard = lock(&entry.cell);
        let Some(cell) = guard.as_mut() else {
            return Err(gone(&entry.id, "ended"));
        };
        entry.busy.store(true, Ordering::Release);
        *lock(&entry.running) = Some(live.clone());
        entry.touch();
        live.set_phase(Phase::Running);
        shared.metrics.cell_started();
        let mut on_event = |event: RunEvent<'_>| match event {
            RunEvent::Started => {}
            RunEvent::Stdout(b) => live.publish_output(LiveEvent::Stdout(b.into())),
            RunEvent::Stderr(b) => live.publish_output(LiveEvent::Stderr(b.into())),
        };
        let result = launcher.exec_in(cell, spec, &mut on_event, Some(&live.cancel));
        shared.metrics.cell_ended();
        let usage = cell.usage();
        *lock(&entry.usage) = CellUsageView {
            cpu_time_ms: usage.cpu_time_ms,
            memory_peak_bytes: usage.memory_peak_bytes,
            disk_bytes: usage.disk_bytes,
        };
        let ended = cell.ended().map(str::to_string);
        *lock(&entry.running) = None;
        entry.busy.store(false, Ordering::Release);
        entry.touch();
        let execs = entry.next_exec.load(Ordering::Acquire);
        if let Err(e) = records::set_execs(&shared.store, &entry.id, execs) {
            tracing::warn!(cell = %entry.id, error = %e, "cannot record execs");
        }
        if let Some(why) = ended {
            guard.take();
            drop(guard);
            self.forget(shared, entry, &why);
        }
        Ok(result)
    }

    /// Ends `entry`'s cell (a running exec is cancelled first) and records why.
    pub fn end(&self, shared: &Shared, entry: &Arc<CellEntry>, why: &str) {
        if let Some(running) = lock(&entry.running).clone() {
            running.cancel.cancel();
        }
        let cell = lock(&entry.cell).take();
        if let Some(cell) = cell {
            cell.end(why);
        }
        self.forget(shared, entry, why);
    }

    fn forget(&self, shared: &Shared, entry: &Arc<CellEntry>, why: &str) {
        let removed = lock(&self.cells).remove(&entry.id).is_some();
        if removed {
            if let Err(e) = records::end(&shared.store, &entry.id, why, now_ms()) {
                tracing::warn!(cell = %entry.id, error = %e, "cannot record the cell's end");
            }
            tracing::info!(cell = %entry.id, app = %entry.app, reason = why, "cell ended");
        }
    }

    /// Ends cells past their idle timeout or lifetime; returns how many.
    pub fn reap(&self, shared: &Shared) -> usize {
        let due: Vec<(Arc<CellEntry>, &'static str)> = lock(&self.cells)
            .values()
            .filter_map(|e| {
                if e.created.elapsed() >= e.max_lifetime {
                    Some((e.clone(), "max lifetime"))
                } else if !e.busy.load(Ordering::Acquire)
                    && lock(&e.last_used).elapsed() >= e.idle_timeout
                {
                    Some((e.clone(), "idle timeout"))
                } else {
                    None
                }
            })
            .collect();
        for (entry, why) in &due {
            self.end(shared, entry, why);
        }
        due.len()
    }

    /// Ends every cell (daemon shutdown).
    pub fn end_all(&self, shared: &Shared, why: &str) {
        let all: Vec<_> = lock(&self.cells).values().cloned().collect();
        for entry in &all {
            self.end(shared, entry, why);
        }
    }
}

/// A record as a view (an ended cell, or one of another daemon's life).
pub fn record_view(r: CellRecord) -> CellView {
    CellView {
        id: r.id,
        image: r.image,
        state: CellState::Ended,
        created_at: r.created_at,
        ended_at: r.ended_at,
        end_reason: r.end_reason,
        execs: r.execs,
        work_dir: None,
        idle_timeout: None,
        max_lifetime: None,
        usage: None,
    }
}

fn cell_error(e: SandboxError) -> ApiError {
    match e {
        SandboxError::Unenforceable(_) | SandboxError::Rootfs { .. } => {
            ApiError::unprocessable("invalid_spec", e.to_string())
        }
        // The cell itself failed to set up (e.g. a memory limit too small for it): the
        // step and errno say why.
        SandboxError::Prepare { ref what, .. } if what == SET_UP => {
            ApiError::unprocessable("cell_failed", e.to_string())
        }
        other => ApiError::internal(format!("creating the cell failed: {other}")),
    }
}

fn seconds(field: &str, asked: Option<i64>, default: u64, max: u64) -> Result<Duration, ApiError> {
    let secs = match asked {
        None => default.min(max),
        Some(s) if s >= 1 && (s as u64) <= max => s as u64,
        Some(s) => {
            return Err(ApiError::unprocessable(
                "invalid_spec",
                format!("{field} {s} is not between 1 and {max} seconds"),
            ))
        }
    };
    Ok(Duration::from_secs(secs))
}

fn bytes(field: &str, v: Option<i64>) -> Result<Option<u64>, ApiError> {
    match v {
        None => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as u64)),
        Some(n) => Err(ApiError::unprocessable(
            "invalid_spec",
            format!("limits.{field} {n} is negative"),
        )),
    }
}

/// The spec every exec of a new cell starts from: the image's defaults, the request's env
/// and the cell's limits (memory is always limited: a cell's cgroup holds every exec).
fn cell_spec(
    shared: &Shared,
    app: &App,
    request: &CellRequest,
) -> Result<(RunSpec, String, Option<ImageLease>, LimitBounds), ApiError> {
    let image = match (&request.image, &request.language) {
        (Some(_), Some(_)) => {
            return Err(ApiError::unprocessable(
                "invalid_spec",
                "give an image or a language, not both",
            ))
        }
        (Some(image), None) => image.clone(),
        (None, Some(language)) => match shared.catalog.serve_language(language)? {
            ServedLanguage::Configured(entry) => entry.image.clone(),
            ServedLanguage::Store { lease, .. } => lease.image.name.clone(),
        },
        (None, None) => {
            return Err(ApiError::unprocessable(
                "invalid_spec",
                "give an image or a language",
            ))
        }
    };
    let l = &request.limits;
    let run = RunRequest {
        image: Some(image),
        cmd: Some(vec!["/bin/true".into()]),
        env: request.env.clone(),
        limits: LimitsInput {
            memory: l.memory,
            pids: l.pids,
            inodes: l.inodes,
            ..LimitsInput::default()
        },
        ..RunRequest::default()
    };
    let prepared = prepare(&run, &shared.config, &shared.catalog, app)?;
    let Work::Command(spec) = prepared.work else {
        return Err(ApiError::internal("an image cell prepared as a source run"));
    };
    let mut spec = spec.into_inner();
    if let Some(disk) = bytes("disk", l.disk)? {
        spec.limits.disk = disk;
    }
    if let Some(cpus) = l.cpus {
        spec.limits.cpus = Some(cpus);
    }
    if spec.limits.memory.is_none() {
        spec.limits.memory = crate::spec::Limits::default().memory;
    }
    let bounds = bounds_for(&shared.config, app);
    // Checked now: a bad cpus or disk is a 422 before anything is made.
    let spec = spec.validate(&bounds).map_err(ApiError::from)?.into_inner();
    Ok((spec, prepared.image, prepared.lease, bounds))
}

/// One exec's spec: the cell's, with the exec's command, env, cwd, stdin and time limits
/// (422 when they are out of bounds).
pub fn exec_spec(
    shared: &Shared,
    entry: &CellEntry,
    r: &ExecRequest,
) -> Result<ValidatedSpec, ApiError> {
    let mut spec = entry.base.clone();
    spec.argv = r.cmd.clone();
    spec.env = merge_env(
        &entry.base.env,
        r.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    );
    spec.cwd = r.cwd.clone();
    spec.stdin = match &r.stdin {
        Some(text) => StdinSource::Bytes(decode("stdin", text, r.stdin_encoding)?),
        None => StdinSource::Null,
    };
    let defaults = &shared.config.default_limits;
    let ms = |field: &str, v: Option<i64>| -> Result<Option<Duration>, ApiError> {
        match v {
            None => Ok(None),
            Some(n) if n >= 0 => Ok(Some(Duration::from_millis(n as u64))),
            Some(n) => Err(ApiError::unprocessable(
                "invalid_spec",
                format!("limits.{field} {n} is negative"),
            )),
        }
    };
    spec.limits.wall_time = ms("wall_time", r.limits.wall_time)?.unwrap_or(defaults.wall_time);
    spec.limits.cpu_time = ms("cpu_time", r.limits.cpu_time)?.or(defaults.cpu_time);
    spec.limits.output = bytes("output", r.limits.output)?.unwrap_or(defaults.output);
    Ok(spec.validate(&entry.bounds)?)
}
