//! The API node's client: one multiplexed connection (reconnecting by itself) for short
//! commands, and a connection of its own per reader that blocks on a run's events. Every call
//! is bounded in time: an unreachable Redis is an error (503), never a hang.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::AsyncConnectionConfig;

use super::super::dto::RunStatus;
use super::super::store::{App, RunRow};
use super::error::QueueError;
use super::events::{self, RunEventEntry};
use super::keys;
use super::nodes::{NodeCache, NodeInfo};
use super::record::{self, RunRecord};

/// How long one short command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an `Idempotency-Key` names its first run (as in the embedded mode).
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long one blocking read of a run's events waits before asking again.
pub const BLOCK: Duration = Duration::from_secs(1);

/// An API node's handle on Redis.
pub struct RedisQueue {
    client: redis::Client,
    conn: ConnectionManager,
    /// Seconds a finished run (and every run record) is kept: `[prune] max_age_secs`.
    pub ttl_secs: u64,
    nodes: NodeCache,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisQueue")
    }
}

async fn timed<T>(
    f: impl Future<Output = Result<T, redis::RedisError>>,
    limit: Duration,
) -> Result<T, QueueError> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => Ok(r?),
        Err(_) => Err(QueueError::Timeout(limit)),
    }
}

/// Creates the stream and its group if missing (from the stream's start, so entries added
/// before the group existed are not skipped).
pub fn ensure_group_cmd() -> redis::Cmd {
    let mut c = redis::cmd("XGROUP");
    c.arg("CREATE")
        .arg(keys::RUNS_STREAM)
        .arg(keys::GROUP)
        .arg("0")
        .arg("MKSTREAM");
    c
}

/// True if `e` is "the group exists already".
pub fn is_busygroup(e: &redis::RedisError) -> bool {
    e.code() == Some("BUSYGROUP")
}

impl RedisQueue {
    /// Connects (Redis must answer at start) and makes sure the stream and group exist.
    pub async fn connect(url: &str, ttl_secs: u64) -> Result<RedisQueue, QueueError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = timed(
            ConnectionManager::new_with_config(client.clone(), config),
            COMMAND_TIMEOUT * 2,
        )
        .await?;
        let queue = RedisQueue {
            client,
            conn,
            ttl_secs,
            nodes: NodeCache::default(),
        };
        queue.ensure_group().await?;
        Ok(queue)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    async fn ensure_group(&self) -> Result<(), QueueError> {
        let mut conn = self.conn();
        match timed(
            ensure_group_cmd().query_async::<()>(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await
        {
            Err(QueueError::Redis(e)) if is_busygroup(&e) => Ok(()),
            r => r,
        }
    }

    /// Records an accepted run and queues it, atomically (MULTI): its hash (with the TTL),
    /// its place in the app's list, its entry on the stream.
    pub async fn submit(
        &self,
        id: &str,
        app: &str,
        request: &str,
        created_at: i64,
    ) -> Result<(), QueueError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .hset_multiple(
                keys::run(id),
                &RunRecord::new_fields(app, request, created_at),
            )
            .ignore()
            .expire(keys::run(id), self.ttl_secs as i64)
            .ignore()
            .zadd(keys::app_runs(app), id, created_at)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(keys::app_runs(app))
            .arg("-inf")
            .arg(created_at - (self.ttl_secs as i64) * 1000)
            .ignore()
            .expire(keys::app_runs(app), self.ttl_secs as i64)
            .ignore();
        keys::enqueue(&mut pipe, id);
        let mut conn = self.conn();
        timed(pipe.query_async::<()>(&mut conn), COMMAND_TIMEOUT).await
    }

    /// A unit of `app`'s quota (runs queued or running on all nodes), or false when it has
    /// `max` already. Given back by the run's end ([`super::events::Ending`]) or [`Self::release`].
    pub async fn acquire(&self, app: &str, max: u32) -> Result<bool, QueueError> {
        let mut conn = self.conn();
        let n: i64 = timed(
            redis::cmd("INCR")
                .arg(keys::active(app))
                .query_async(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await?;
        if n > i64::from(max) {
            self.release(app).await?;
            return Ok(false);
        }
        Ok(true)
    }

    /// Gives a unit of `app`'s quota back (a run that was not queued after all).
    pub async fn release(&self, app: &str) -> Result<(), QueueError> {
        let mut conn = self.conn();
        timed(
            redis::cmd("DECR")
                .arg(keys::active(app))
                .query_async::<()>(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await
    }

    /// Binds an `Idempotency-Key` of `app` to run `id` for 24 h, or returns what it was bound
    /// to before: (body hash, run id).
    pub async fn claim_key(
        &self,
        app: &str,
        key: &str,
        body_hash: &str,
        id: &str,
    ) -> Result<Option<(String, String)>, QueueError> {
        let mut conn = self.conn();
        let name = keys::idempotency(app, key);
        let set: Option<String> = timed(
            redis::cmd("SET")
                .arg(&name)
                .arg(format!("{body_hash} {id}"))
                .arg("NX")
                .arg("EX")
                .arg(IDEMPOTENCY_TTL.as_secs())
                .query_async(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await?;
        if set.is_some() {
            return Ok(None);
        }
        let found: Option<String> = timed(
            redis::cmd("GET").arg(&name).query_async(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await?;
        Ok(found.and_then(|v| {
            v.split_once(' ')
                .map(|(h, id)| (h.to_string(), id.to_string()))
        }))
    }

    /// Unbinds a key whose request failed after [`Self::claim_key`].
    pub async fn release_key(&self, app: &str, key: &str) -> Result<(), QueueError> {
        let mut conn = self.conn();
        timed(
            redis::cmd("DEL")
                .arg(keys::idempotency(app, key))
                .query_async::<()>(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await
    }

    /// A run's record.
    pub async fn get(&self, id: &str) -> Result<Option<RunRecord>, QueueError> {
        let mut conn = self.conn();
        let map: HashMap<String, String> = timed(
            redis::cmd("HGETALL")
                .arg(keys::run(id))
                .query_async(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await?;
        RunRecord::parse(id, map)
    }

    /// An app's runs, newest first (without requests and results).
    pub async fn list(
        &self,
        app: &str,
        status: Option<RunStatus>,
        limit: u32,
    ) -> Result<Vec<RunRow>, QueueError> {
        let mut conn = self.conn();
        let ids: Vec<String> = timed(
            redis::cmd("ZREVRANGE")
                .arg(keys::app_runs(app))
                .arg(0)
                .arg(-1)
                .query_async(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await?;
        let mut rows = Vec::new();
        for chunk in ids.chunks(100) {
            let mut pipe = redis::pipe();
            for id in chunk {
                pipe.cmd("HMGET")
                    .arg(keys::run(id))
                    .arg(record::STATUS)
                    .arg(record::VERDICT)
                    .arg(record::CREATED_AT)
                    .arg(record::STARTED_AT)
                    .arg(record::FINISHED_AT);
            }
            type Fields = (
                Option<String>,
                Option<String>,
                Option<i64>,
                Option<i64>,
                Option<i64>,
            );
            let got: Vec<Fields> = timed(pipe.query_async(&mut conn), COMMAND_TIMEOUT).await?;
            for (id, (st, verdict, created, started, finished)) in chunk.iter().zip(got) {
                let (Some(st), Some(created_at)) = (st.and_then(|s| RunStatus::parse(&s)), created)
                else {
                    continue; // expired
                };
                if status.is_some_and(|want| want != st) {
                    continue;
                }
                rows.push(RunRow {
                    id: id.clone(),
                    app: app.to_string(),
                    status: st,
                    request: String::new(),
                    result: None,
                    verdict,
                    created_at,
                    started_at: started,
                    finished_at: finished,
                });
                if rows.len() >= limit as usize {
                    return Ok(rows);
                }
            }
        }
        Ok(rows)
    }

    /// The app owning a key hash.
    pub async fn app_by_key_hash(&self, key_hash: &str) -> Result<Option<App>, QueueError> {
        let mut conn = self.conn();
        let name: Option<String> = timed(
            redis::cmd("GET")
                .arg(keys::app_key(key_hash))
                .query_async(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await?;
        let Some(name) = name else { return Ok(None) };
        let map: HashMap<String, String> = timed(
            redis::cmd("HGETALL")
                .arg(keys::app(&name))
                .query_async(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await?;
        Ok(super::apps::parse(&name, &map)?.filter(|a| a.key_hash == key_hash))
    }

    /// Takes a run for the API (cancel before any worker did): true if this call took it.
    pub async fn take_for_cancel(&self, id: &str) -> Result<bool, QueueError> {
        let mut conn = self.conn();
        let took: i64 = timed(
            redis::cmd("HSETNX")
                .arg(keys::run(id))
                .arg(record::WORKER)
                .arg(record::CANCELLED_BY_API)
                .query_async(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await?;
        Ok(took == 1)
    }

    /// Asks the worker running `id` to cancel it.
    pub async fn request_cancel(&self, id: &str) -> Result<(), QueueError> {
        let mut conn = self.conn();
        timed(
            redis::cmd("HSET")
                .arg(keys::run(id))
                .arg(record::CANCEL)
                .arg("1")
                .query_async::<()>(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await
    }

    /// Runs an atomic pipeline (e.g. [`events::finish_pipe`]).
    pub async fn exec(&self, pipe: redis::Pipeline) -> Result<(), QueueError> {
        let mut conn = self.conn();
        timed(pipe.query_async::<()>(&mut conn), COMMAND_TIMEOUT).await
    }

    /// A connection of its own for blocking reads.
    pub async fn reader(&self) -> Result<EventReader, QueueError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(BLOCK + COMMAND_TIMEOUT));
        let conn = timed(
            self.client
                .get_multiplexed_async_connection_with_config(&config),
            COMMAND_TIMEOUT,
        )
        .await?;
        Ok(EventReader { conn })
    }

    /// Runs on the stream no worker took yet, and taken but not yet acknowledged (done
    /// entries are deleted, so the stream's length minus the pending entries is what waits;
    /// works on Redis 6.2, which has no group lag).
    pub async fn depth(&self) -> Result<(u64, u64), QueueError> {
        let mut conn = self.conn();
        let (len, info): (u64, redis::streams::StreamInfoGroupsReply) = timed(
            redis::pipe()
                .cmd("XLEN")
                .arg(keys::RUNS_STREAM)
                .cmd("XINFO")
                .arg("GROUPS")
                .arg(keys::RUNS_STREAM)
                .query_async(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await?;
        let pending = info
            .groups
            .iter()
            .find(|g| g.name == keys::GROUP)
            .map_or(0, |g| g.pending as u64);
        Ok((len.saturating_sub(pending), pending))
    }

    /// Live worker nodes (heartbeats), read at most once a second.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, QueueError> {
        self.nodes.get(|| self.read_nodes()).await
    }

    async fn read_nodes(&self) -> Result<Vec<NodeInfo>, QueueError> {
        let mut conn = self.conn();
        let mut names: Vec<String> = timed(
            redis::cmd("SMEMBERS")
                .arg(keys::NODES)
                .query_async(&mut conn),
            COMMAND_TIMEOUT,
        )
        .await?;
        names.sort();
        let mut pipe = redis::pipe();
        for name in &names {
            pipe.cmd("HGETALL").arg(keys::node(name));
        }
        let maps: Vec<HashMap<String, String>> =
            timed(pipe.query_async(&mut conn), COMMAND_TIMEOUT).await?;
        let mut live = Vec::new();
        for (name, map) in names.iter().zip(maps) {
            match NodeInfo::parse(name, &map) {
                Some(n) => live.push(n),
                None => {
                    // Its heartbeat expired: gone (it adds itself again if it comes back).
                    let _: Result<(), _> = timed(
                        redis::cmd("SREM")
                            .arg(keys::NODES)
                            .arg(name)
                            .query_async::<()>(&mut conn),
                        COMMAND_TIMEOUT,
                    )
                    .await;
                }
            }
        }
        Ok(live)
    }
}

/// Reads a run's events, blocking up to [`BLOCK`] per call.
pub struct EventReader {
    conn: MultiplexedConnection,
}

impl EventReader {
    /// Events after `after` ("0": from the start); (the new position, events).
    pub async fn next(
        &mut self,
        id: &str,
        after: &str,
    ) -> Result<(String, Vec<RunEventEntry>), QueueError> {
        let reply: Option<redis::streams::StreamReadReply> = timed(
            redis::cmd("XREAD")
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(keys::events(id))
                .arg(after)
                .query_async(&mut self.conn),
            BLOCK + COMMAND_TIMEOUT,
        )
        .await?;
        let Some(reply) = reply else {
            return Ok((after.to_string(), Vec::new()));
        };
        let (last, events) = events::parse_read(reply);
        Ok((last.unwrap_or_else(|| after.to_string()), events))
    }
}
