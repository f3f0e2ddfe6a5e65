//! `sandcell worker`: a worker node. Plain std threads (never tokio's: the launcher blocks)
//! take runs from the stream with one consumer group (`XREADGROUP`), run them with the same
//! launcher, images and limits as `serve`, write the result and `XACK`. Each thread has its own
//! blocking connection and reconnects with back-off when Redis goes away.
//!
//! Exactly once: a thread runs a run only after `HSETNX worker NODE` succeeded on its record;
//! an entry whose record names another taker (an API node that cancelled it, another worker)
//! is acknowledged and skipped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::Connection;

use super::super::auth::anonymous_app;
use super::super::config::ServeConfig;
use super::super::dto::{RunRequest, RunStatus};
use super::super::images::ImageCatalog;
use super::super::prepare::{prepare, Work};
use super::super::server::daemon_launcher;
use super::super::store::now_ms;
use super::super::worker::run_source_job;
use super::client::{ensure_group_cmd, is_busygroup, BLOCK, COMMAND_TIMEOUT};
use super::error::QueueError;
use super::events::{add, Ending};
use super::record::{self, RunRecord};
use super::{apps, keys, reclaim};
use crate::result::RunResult;
use crate::sandbox::{CancelToken, Launcher, RunEvent, SandboxError};

/// How long a heartbeat key lives; a node not heard of for this long is gone.
pub const HEARTBEAT_TTL: Duration = Duration::from_secs(10);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
const CANCEL_POLL: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Why a worker node could not start.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("launcher: {0}")]
    Launcher(#[from] SandboxError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("signals: {0}")]
    Signals(#[from] nix::Error),
}

/// Writes a run's result unless it is done already (ended XX "worker lost" by a node that
/// thought this one gone): WATCH, check, MULTI.
fn write_unless_done(conn: &mut Connection, ending: &Ending) -> redis::RedisResult<()> {
    let key = keys::run(&ending.id);
    redis::transaction(conn, &[&key], |con, pipe| {
        let status: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg(record::STATUS)
            .query(con)?;
        if status.as_deref() == Some("done") {
            tracing::warn!(run = %ending.id, "run was ended by another node meanwhile; result dropped");
            return Ok(Some(()));
        }
        ending.add_to(pipe);
        pipe.cmd("PING");
        let done: Option<(String,)> = pipe.query(con)?;
        Ok(done.map(|_| ()))
    })
}

/// Creates the stream and group unless they exist.
fn ensure_group(conn: &mut Connection) -> Result<(), QueueError> {
    match ensure_group_cmd().query::<()>(conn) {
        Err(e) if !is_busygroup(&e) => Err(e.into()),
        _ => Ok(()),
    }
}

/// A worker node's settings.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub url: String,
    pub name: String,
    /// Images, languages, limits, workers, warm cells: as for `serve`.
    pub serve: ServeConfig,
}

struct Node {
    config: NodeConfig,
    client: redis::Client,
    launcher: Arc<Launcher>,
    catalog: ImageCatalog,
    stop: AtomicBool,
    busy: AtomicUsize,
    /// Runs in a cell now, for DELETE (their record's `cancel` field).
    running: Mutex<HashMap<String, CancelToken>>,
}

/// Runs a worker node until SIGTERM/SIGINT (running cells finish first).
pub fn run(config: NodeConfig) -> Result<(), NodeError> {
    use nix::sys::signal::{SigSet, Signal};
    // Before any thread exists, so every thread inherits the mask and only sigwait sees them.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGTERM);
    signals.add(Signal::SIGINT);
    signals.thread_block()?;
    let serve = &config.serve;
    let launcher = daemon_launcher(serve)?;
    let node = Arc::new(Node {
        catalog: ImageCatalog::from_config(serve).with_store(&serve.state_dir),
        client: redis::Client::open(config.url.as_str()).map_err(QueueError::from)?,
        launcher: launcher.clone(),
        stop: AtomicBool::new(false),
        busy: AtomicUsize::new(0),
        running: Mutex::default(),
        config,
    });
    node.recover_own();
    let mut handles = Vec::new();
    for i in 0..node.config.serve.workers {
        let node = node.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("node-worker-{i}"))
                .spawn(move || node.work_loop())?,
        );
    }
    {
        let node = node.clone();
        handles.push(
            std::thread::Builder::new()
                .name("node-heartbeat".into())
                .spawn(move || node.side_loop())?,
        );
    }
    eprintln!(
        "sandcell: worker {} taking runs from {} with {} workers",
        node.config.name, node.config.url, node.config.serve.workers
    );
    let signal = signals.wait()?;
    tracing::warn!(?signal, "worker node stopping after its running cells");
    node.stop.store(true, Ordering::Release);
    for h in handles {
        let _ = h.join();
    }
    if let Ok(mut conn) = node.connect() {
        let _: Result<(), _> = redis::cmd("DEL")
            .arg(keys::node(&node.config.name))
            .query(&mut conn);
    }
    launcher.shutdown();
    Ok(())
}

impl Node {
    /// Entries a previous process of this node took and never acknowledged (it died):
    /// started runs end XX "worker lost", the others are queued again. Retried until Redis
    /// answers (or the node is stopped).
    fn recover_own(&self) {
        let mut backoff = Duration::from_millis(100);
        while !self.stopping() {
            let ttl = self.config.serve.prune.max_age_secs;
            let done = self.connect().and_then(|mut c| {
                ensure_group(&mut c)?;
                Ok(reclaim::own_entries(&mut c, &self.config.name, ttl)?)
            });
            match done {
                Ok(0) => return,
                Ok(n) => {
                    tracing::warn!(
                        entries = n,
                        "recovered the runs of this node's previous process"
                    );
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot recover this node's earlier entries yet");
                    self.back_off(&mut backoff);
                }
            }
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    fn connect(&self) -> Result<Connection, QueueError> {
        let conn = self.client.get_connection_with_timeout(COMMAND_TIMEOUT)?;
        conn.set_read_timeout(Some(BLOCK + COMMAND_TIMEOUT))?;
        conn.set_write_timeout(Some(COMMAND_TIMEOUT))?;
        Ok(conn)
    }

    /// Sleeps `backoff` (in short steps, to notice a stop) and doubles it.
    fn back_off(&self, backoff: &mut Duration) {
        let until = std::time::Instant::now() + *backoff;
        while !self.stopping() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    }

    /// Takes entries until stopped.
    fn work_loop(&self) {
        let mut conn: Option<Connection> = None;
        let mut backoff = Duration::from_millis(100);
        while !self.stopping() {
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match self.connect() {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "redis unreachable; retrying");
                        self.back_off(&mut backoff);
                        continue;
                    }
                },
            };
            match self.take_one(c) {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "redis error; reconnecting");
                    conn = None;
                    self.back_off(&mut backoff);
                }
            }
        }
    }

    /// One XREADGROUP (blocking up to [`BLOCK`]) and whatever it delivered.
    fn take_one(&self, conn: &mut Connection) -> Result<(), QueueError> {
        let read = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(keys::GROUP)
            .arg(&self.config.name)
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(keys::RUNS_STREAM)
            .arg(">")
            .query::<Option<redis::streams::StreamReadReply>>(conn);
        let reply = match read {
            Ok(r) => r,
            // Redis came back empty (no persistence): the stream and group are made again.
            Err(e) if e.code() == Some("NOGROUP") => return ensure_group(conn),
            Err(e) => return Err(e.into()),
        };
        let Some(reply) = reply else { return Ok(()) };
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            if let Some(id) = entry.get::<String>("id") {
                self.handle(conn, &id)?;
            }
            let mut pipe = redis::pipe();
            keys::ack(pipe.atomic(), &entry.id);
            pipe.query::<()>(conn)?;
        }
        Ok(())
    }

    /// Runs one run if this node gets to take it.
    fn handle(&self, conn: &mut Connection, id: &str) -> Result<(), QueueError> {
        let map: HashMap<String, String> = redis::cmd("HGETALL").arg(keys::run(id)).query(conn)?;
        let Some(rec) = RunRecord::parse(id, map)? else {
            return Ok(()); // expired
        };
        if rec.row.status == RunStatus::Done || rec.worker.is_some() {
            return Ok(());
        }
        let took: i64 = redis::cmd("HSETNX")
            .arg(keys::run(id))
            .arg(record::WORKER)
            .arg(&self.config.name)
            .query(conn)?;
        if took != 1 {
            return Ok(()); // cancelled by an API node or taken by another worker meanwhile
        }
        let prepared = self.prepare(conn, &rec);
        let work = match prepared {
            Ok(work) => work,
            Err(why) => {
                let result = RunResult::sandbox_error(why);
                return self.finish(conn, id, &rec.row.app, &result, None);
            }
        };
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                keys::run(id),
                &[
                    (record::STATUS, "running".to_string()),
                    (record::STARTED_AT, now_ms().to_string()),
                ],
            )
            .ignore();
        add(&mut pipe, id, "status", b"running");
        pipe.query::<()>(conn)?;
        let cancel = CancelToken::new().map_err(|e| QueueError::Malformed {
            key: keys::run(id),
            what: format!("cancel token: {e}"),
        })?;
        self.lock_running().insert(id.to_string(), cancel.clone());
        self.busy.fetch_add(1, Ordering::AcqRel);
        let mut on_event = |event: RunEvent<'_>| {
            let (kind, bytes) = match event {
                RunEvent::Started => return,
                RunEvent::Stdout(b) => ("stdout", b),
                RunEvent::Stderr(b) => ("stderr", b),
            };
            // Output is best effort (the result carries it all): a failed append is dropped.
            let mut pipe = redis::pipe();
            add(&mut pipe, id, kind, bytes);
            let _: Result<(), _> = pipe.query(conn);
        };
        let (result, compile) = match &work {
            Work::Command(spec) => (self.launcher.run(spec, &mut on_event, Some(&cancel)), None),
            Work::Source(work) => run_source_job(&self.launcher, work, &mut on_event, &cancel),
        };
        self.busy.fetch_sub(1, Ordering::AcqRel);
        self.lock_running().remove(id);
        drop(work);
        self.finish(conn, id, &rec.row.app, &result, compile.as_ref())
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancelToken>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The run's work, or why it cannot run (it then ends XX with that message).
    fn prepare(&self, conn: &mut Connection, rec: &RunRecord) -> Result<Work, String> {
        let request: RunRequest =
            serde_json::from_str(&rec.row.request).map_err(|e| format!("stored request: {e}"))?;
        let app = if rec.row.app == "anonymous" {
            anonymous_app()
        } else {
            apps::by_name(conn, &rec.row.app)
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("app {:?} was deleted", rec.row.app))?
        };
        prepare(&request, &self.config.serve, &self.catalog, &app)
            .map(|p| p.work)
            .map_err(|e| format!("cannot run on worker {}: {}", self.config.name, e.message))
    }

    /// Writes the result; retried (reconnecting) while Redis is away, so a finished run's
    /// result is not lost to a Redis restart of a few seconds.
    fn finish(
        &self,
        conn: &mut Connection,
        id: &str,
        app: &str,
        result: &RunResult,
        compile: Option<&RunResult>,
    ) -> Result<(), QueueError> {
        let ending = Ending::new(
            id,
            app,
            result,
            compile,
            self.config.serve.prune.max_age_secs,
        );
        let write = |con: &mut Connection| write_unless_done(con, &ending);
        tracing::info!(run = %id, verdict = %result.verdict, wall_ms = result.wall_time_ms, "run finished");
        let mut backoff = Duration::from_millis(100);
        let mut last = match write(conn) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        for _ in 0..20 {
            tracing::warn!(run = %id, error = %last, "cannot write the result; retrying");
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
            match self.connect() {
                Ok(mut fresh) => match write(&mut fresh) {
                    Ok(()) => {
                        *conn = fresh;
                        return Ok(());
                    }
                    Err(e) => last = e,
                },
                Err(QueueError::Redis(e)) => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last.into())
    }

    /// Heartbeats and cancellations, until stopped.
    fn side_loop(&self) {
        let mut conn: Option<Connection> = None;
        let mut last_beat = std::time::Instant::now() - HEARTBEAT_EVERY;
        let mut last_reclaim = std::time::Instant::now();
        while !self.stopping() {
            std::thread::sleep(CANCEL_POLL);
            if conn.is_none() {
                conn = self.connect().ok();
            }
            let Some(c) = conn.as_mut() else { continue };
            let beat = if last_beat.elapsed() >= HEARTBEAT_EVERY {
                last_beat = std::time::Instant::now();
                self.heartbeat(c)
            } else {
                Ok(())
            };
            let mut ok = beat.and_then(|()| self.poll_cancels(c)).is_ok();
            if ok && last_reclaim.elapsed() >= HEARTBEAT_EVERY {
                last_reclaim = std::time::Instant::now();
                let stuck =
                    reclaim::stuck_after(self.config.serve.max_limits.max_wall_time, HEARTBEAT_TTL);
                let ttl = self.config.serve.prune.max_age_secs;
                if let Err(e) =
                    reclaim::lost_entries(c, &self.config.name, HEARTBEAT_TTL, stuck, ttl)
                {
                    tracing::warn!(error = %e, "reclaiming lost entries failed");
                    ok = false;
                }
            }
            if !ok {
                conn = None;
            }
        }
    }

    fn heartbeat(&self, conn: &mut Connection) -> Result<(), redis::RedisError> {
        let serve = &self.config.serve;
        let images = self.images().join(",");
        let busy = self.busy.load(Ordering::Acquire);
        redis::pipe()
            .atomic()
            .hset_multiple(
                keys::node(&self.config.name),
                &[
                    ("name", self.config.name.clone()),
                    ("workers", serve.workers.to_string()),
                    ("free", serve.workers.saturating_sub(busy).to_string()),
                    ("images", images),
                    ("seen_at", now_ms().to_string()),
                ],
            )
            .ignore()
            .expire(
                keys::node(&self.config.name),
                HEARTBEAT_TTL.as_secs() as i64,
            )
            .ignore()
            .sadd(keys::NODES, &self.config.name)
            .ignore()
            .query(conn)
    }

    /// The image names this node can run: configured ones, and the store's as `name:tag`
    /// (what the API node's check of a request yields) and ids.
    fn images(&self) -> Vec<String> {
        let mut names: Vec<String> = self.catalog.images().map(|i| i.name.clone()).collect();
        if let Some(store) = self.catalog.store() {
            for info in store.list().unwrap_or_default() {
                names.push(format!("{}:{}", info.name, info.tag));
                names.push(info.id);
            }
        }
        names.sort();
        names.dedup();
        names
    }

    fn poll_cancels(&self, conn: &mut Connection) -> Result<(), redis::RedisError> {
        let running: Vec<(String, CancelToken)> = self
            .lock_running()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (id, _) in &running {
            pipe.hexists(keys::run(id), record::CANCEL);
        }
        let flags: Vec<bool> = pipe.query(conn)?;
        for ((id, token), cancel) in running.iter().zip(flags) {
            if cancel {
                tracing::info!(run = %id, "cancelled through the API");
                token.cancel();
            }
        }
        Ok(())
    }
}
