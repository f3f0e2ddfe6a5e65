//! Starting and stopping the daemon: store, restart recovery, workers, the tokio runtime,
//! pruning, and graceful shutdown on SIGTERM/SIGINT.
//!
//! Restart recovery (a previous process died, e.g. kill -9): runs the store says were
//! `running` end as XX "daemon restarted" (their cells died with the old process: cells get
//! SIGKILL when their launching thread dies); runs still `queued` are run again. Unfinished
//! gradings (they start at once, there is no grading queue) end with the tests done so far
//! and the rest XX "daemon restarted".
//!
//! Shutdown: stop accepting connections; queued runs stay queued in the store (waiters get 503
//! `shutting_down`, the runs run after the next start); running cells get `shutdown_grace_secs`
//! to finish, then are cancelled (verdict CANCELLED); the store is checkpointed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use super::auth::anonymous_app;
use super::config::ServeConfig;
use super::dto::{RunRequest, RunStatus};
use super::live::{LiveRun, Phase};
use super::prepare::prepare;
use super::scale::{RedisQueue, RunBackend};
use super::state::{AppState, GradingQueued, Job, RunJob, Shared};
use super::store::{Store, StoreError};
use super::worker::{finish, spawn_workers};
use crate::result::RunResult;
use crate::sandbox::{Launcher, LauncherConfig, SandboxError};

/// Why the daemon could not start (or stopped with an error).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] super::config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("queue: {0}")]
    Queue(#[from] super::scale::QueueError),
    #[error("launcher: {0}")]
    Launcher(#[from] SandboxError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ServeError {
    let what = what.into();
    move |source| ServeError::Io { what, source }
}

/// Ends runs of a previous process and queues the ones that never started.
pub fn recover(shared: &Shared) -> Result<(usize, usize), StoreError> {
    let running = shared.store.runs_in_status(RunStatus::Running)?;
    for row in &running {
        let result = RunResult::sandbox_error("daemon restarted");
        let json =
            serde_json::to_string(&crate::result::RunResultWire::from(&result)).unwrap_or_default();
        shared
            .store
            .mark_done(&row.id, "XX", &json, super::store::now_ms())?;
        shared.metrics.finished(result.verdict, 0);
        tracing::info!(run = %row.id, app = %row.app, verdict = "XX", "run ended by restart");
    }
    let queued = shared.store.runs_in_status(RunStatus::Queued)?;
    let apps = shared.store.list_apps()?;
    for row in &queued {
        let quota = shared.quotas.force_acquire(&row.app);
        let live = match LiveRun::new(row.id.clone(), row.app.clone(), quota) {
            Ok(live) => Arc::new(live),
            Err(e) => {
                tracing::error!(run = %row.id, error = %e, "cannot recover run");
                continue;
            }
        };
        let app = apps
            .iter()
            .find(|a| a.name == row.app)
            .cloned()
            .unwrap_or_else(anonymous_app);
        let prepared = serde_json::from_str::<RunRequest>(&row.request)
            .map_err(|e| e.to_string())
            .and_then(|req| {
                prepare(&req, &shared.config, &shared.catalog, &app).map_err(|e| e.message)
            });
        shared.live.insert(live.clone());
        match prepared {
            Ok(p) => shared.queue.push_unbounded(Job::Run(RunJob {
                live,
                work: p.work,
                lease: p.lease,
                accepted: Instant::now(),
            })),
            Err(why) => {
                live.claim();
                let result = RunResult::sandbox_error(format!("cannot run after restart: {why}"));
                finish(shared, &live, &result, 0);
            }
        }
    }
    Ok((running.len(), queued.len()))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Stops taking runs: queued ones are deferred to the next start; running ones are
/// cancelled after the grace period.
fn begin_shutdown(shared: &Arc<Shared>) {
    shared.shutting_down.send_replace(true);
    for job in shared.queue.close() {
        match job {
            Job::Run(job) => {
                job.live.release_quota();
                job.live.set_phase(Phase::Deferred);
                shared.live.remove(&job.live.id);
            }
            // Not kept for the next start: ended now as cancelled (tests SKIPPED).
            Job::Grading(g) => {
                let GradingQueued { grading, job } = *g;
                shared.gradings.abandon(grading, job)
            }
        }
    }
    let grace = Duration::from_secs(shared.config.shutdown_grace_secs);
    let shared = shared.clone();
    tokio::spawn(async move {
        tokio::time::sleep(grace).await;
        for live in shared.live.all() {
            tracing::warn!(run = %live.id, "grace period over: cancelling");
            live.cancel_for_shutdown();
        }
        // Gradings run on the same workers: cancelled too, so the workers end.
        shared.gradings.cancel_unfinished();
    });
}

async fn prune_loop(shared: Arc<Shared>) {
    let prune = shared.config.prune.clone();
    let mut tick = tokio::time::interval(Duration::from_secs(prune.interval_secs.max(1)));
    loop {
        tick.tick().await;
        // Inline (a short DELETE), not spawn_blocking: see serve() on thread churn.
        match shared
            .store
            .prune(Duration::from_secs(prune.max_age_secs), prune.max_count)
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "pruned old runs"),
            Err(e) => tracing::warn!(error = %e, "pruning failed"),
        }
    }
}

/// Ends cells past their idle timeout or lifetime, once a second.
async fn cell_reaper(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let s = shared.clone();
        // Ending a cell may wait for its exec to notice the cancel.
        let _ = tokio::task::spawn_blocking(move || s.cells.reap(&s)).await;
    }
}

/// Binds the local API socket, root only (a stale socket of a dead daemon is replaced).
fn bind_local(path: &std::path::Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(std::io::Error::other("exists and is not a socket"));
        }
        std::fs::remove_file(path)?;
    }
    // Connecting needs write permission on the socket, which even the default umask denies
    // to others; the default path is also inside the root-only state dir.
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// The launcher of a daemon or a worker node. Cells are cloned by a spawner process (this
/// executable), prepared ahead per shape; pooled cell cgroups (v1) cover the running and the
/// prepared cells. Runs, gradings' tests, compile steps and checkers share `workers` cell
/// permits: never more cells than workers. Cgroups are detected at once, before any worker
/// exists (v2 may have to move this process into a leaf cgroup), which also removes the cells
/// of a previous process killed with -9.
pub(crate) fn daemon_launcher(config: &ServeConfig) -> Result<Arc<Launcher>, SandboxError> {
    let warm_cells = config.warm_cells.unwrap_or(config.workers);
    let launcher = Arc::new(Launcher::new(LauncherConfig {
        cgroup_pool: config.workers + 2 * warm_cells,
        spawner: Some(PathBuf::from("/proc/self/exe")),
        warm_cells,
        max_cells: Some(config.workers.max(1)),
        ..LauncherConfig::default()
    })?);
    let _ = launcher.cgroups();
    Ok(launcher)
}

/// Runs the daemon until SIGTERM/SIGINT.
pub fn serve(config: ServeConfig) -> Result<(), ServeError> {
    config.check()?;
    // The launcher and the workers exist before (and outside) the tokio runtime.
    let launcher = daemon_launcher(&config)?;
    let store = Store::open(&config.state_dir)?;
    super::playground::anonymous::check_app(&config, &store)?;
    let workers = config.workers;
    let listen = config.listen;
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let drain = Duration::from_secs(config.shutdown_drain_secs);
    let blocking_threads = super::offload::threads();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sandcell-http")
        .max_blocking_threads(blocking_threads)
        .build()
        .map_err(io("start tokio"))?;
    let backend = match &config.queue {
        Some(url) => {
            let queue = runtime
                .block_on(RedisQueue::connect(url, config.prune.max_age_secs))
                .map_err(|e| {
                    launcher.shutdown();
                    ServeError::Queue(e)
                })?;
            tracing::info!(queue = %url, "API node: runs are queued in redis");
            RunBackend::Redis(Arc::new(queue))
        }
        None => RunBackend::Embedded,
    };
    let mut shared = Shared::new(config, store);
    shared.backend = backend;
    let shared = Arc::new(shared);
    shared.gradings.set_launcher(launcher.clone());
    shared.cells.set_launcher(launcher.clone());
    let cells_ended =
        super::cells::records::end_interrupted(&shared.store, super::store::now_ms())?;
    if cells_ended > 0 {
        tracing::warn!(
            cells_ended,
            "recorded the end of the previous process's cells (daemon restarted)"
        );
    }
    let _ = shared.metrics.launcher.set(launcher.clone());
    let (ended, requeued) = recover(&shared)?;
    if ended + requeued > 0 {
        tracing::warn!(ended, requeued, "recovered runs of the previous process");
    }
    let gradings_ended = super::grading_records::end_interrupted(&shared.store)?;
    if gradings_ended > 0 {
        tracing::warn!(
            gradings_ended,
            "ended the unfinished gradings of the previous process (daemon restarted)"
        );
    }
    // Bind before anything runs, so a taken port is the first and only thing reported.
    let listener = match runtime.block_on(TcpListener::bind(listen)) {
        Ok(l) => l,
        Err(e) => {
            launcher.shutdown();
            return Err(io(format!("listen on {listen}"))(e));
        }
    };
    let handles = spawn_workers(&shared, &launcher, workers).map_err(io("start workers"))?;
    let served: Result<(), ServeError> = runtime.block_on(async {
        let local = listener.local_addr().map_err(io("local address"))?;
        tracing::info!(address = %local, workers, "sandcell serve listening");
        // For scripts and tests that pass port 0.
        eprintln!("sandcell: listening on http://{local}");
        if shared.config.playground {
            eprintln!("sandcell: playground at http://{local}/");
        }
        tokio::spawn(prune_loop(shared.clone()));
        tokio::spawn(cell_reaper(shared.clone()));
        let local_socket = shared.config.socket_path();
        match bind_local(&local_socket) {
            Ok(unix) => {
                let local = super::routes::router(AppState(shared.clone()))
                    .layer(axum::Extension(super::auth::LocalPeer));
                tokio::spawn(async move { axum::serve(unix, local).await });
                tracing::info!(socket = %local_socket.display(), "local API socket (root only)");
            }
            Err(e) => {
                tracing::warn!(socket = %local_socket.display(), error = %e, "no local API socket")
            }
        }
        let app = super::routes::router(AppState(shared.clone()));
        let shutdown_shared = shared.clone();
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::warn!("shutting down");
            begin_shutdown(&shutdown_shared);
            let _ = stopped_tx.send(());
            // Drain: /readyz and new runs answer 503 before the listener closes.
            tokio::time::sleep(drain).await;
        });
        // Connections still open long after the grace period (e.g. idle SSE clients of runs
        // that never end) do not keep the daemon alive.
        let deadline = async {
            if stopped_rx.await.is_ok() {
                tokio::time::sleep(drain + grace + Duration::from_secs(5)).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = server => r.map_err(io("serve")),
            _ = deadline => {
                tracing::warn!("connections still open after the grace period; closing them");
                Ok(())
            }
        }
    });
    // Workers end once the queue is closed and their cell is done: within the grace period,
    // or cancelled by the task begin_shutdown started (still driven by the runtime's threads).
    if !shared.is_shutting_down() {
        shared.queue.close();
        for live in shared.live.all() {
            live.cancel_for_shutdown();
        }
        shared.gradings.cancel_unfinished();
    }
    for handle in handles {
        let _ = handle.join();
    }
    shared.gradings.shutdown(grace);
    shared.cells.end_all(&shared, "daemon shutting down");
    // Prepared cells and cells still being torn down go before the process does.
    launcher.shutdown();
    runtime.shutdown_timeout(Duration::from_secs(1));
    shared.store.checkpoint()?;
    tracing::warn!("stopped");
    served
}
