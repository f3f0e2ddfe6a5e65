//! Entries of lost worker nodes (docs/scale-out.md, "Failures"). A worker node, besides its
//! heartbeat, looks for pending entries (taken, never acknowledged):
//!
//! - at its start, its own (a previous process of the same name died);
//! - every few seconds, those idle longer than a heartbeat's TTL whose owner has no live
//!   heartbeat (claimed with `XCLAIM … min-idle`, so two reclaimers never both get one);
//! - with `XAUTOCLAIM`, any entry idle longer than a run may take at all (the server's
//!   maximum wall time plus a compile step plus a heartbeat TTL): an owner that is alive but
//!   stuck.
//!
//! A reclaimed run that had started ends XX "worker lost" (never run twice: it may have had
//! effects); one that had not started is queued again (a new entry; any node runs it).

use std::collections::HashMap;
use std::time::Duration;

use redis::Connection;

use super::super::dto::RunStatus;
use super::events::Ending;
use super::keys;
use super::record::{self, RunRecord};
use crate::result::RunResult;

/// The compile step's wall time (docs/serve.md: compiled languages compile with 30 s wall).
const COMPILE_WALL: Duration = Duration::from_secs(30);

/// Idle time after which any entry is claimed, whatever its owner.
pub fn stuck_after(max_wall: Duration, heartbeat_ttl: Duration) -> Duration {
    max_wall + COMPILE_WALL + heartbeat_ttl
}

/// What became of a reclaimed entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Finished, expired or cancelled already: only acknowledged.
    Gone,
    /// Had not started: queued again.
    Requeued,
    /// Had started: ended XX "worker lost".
    Lost,
}

/// Ends (or requeues) the run of one pending entry, then acknowledges the entry.
pub fn recover(
    conn: &mut Connection,
    entry: &str,
    run_id: &str,
    ttl_secs: u64,
) -> redis::RedisResult<Outcome> {
    let key = keys::run(run_id);
    let outcome = redis::transaction(conn, &[&key], |con, pipe| {
        let map: HashMap<String, String> = redis::cmd("HGETALL").arg(&key).query(con)?;
        let rec = RunRecord::parse(run_id, map).ok().flatten();
        let outcome = match &rec {
            None => Outcome::Gone,
            Some(r) if r.row.status == RunStatus::Done => Outcome::Gone,
            Some(r) if r.worker.as_deref() == Some(record::CANCELLED_BY_API) => Outcome::Gone,
            Some(r) if r.row.status == RunStatus::Queued => Outcome::Requeued,
            Some(_) => Outcome::Lost,
        };
        match outcome {
            Outcome::Gone => {}
            Outcome::Requeued => {
                pipe.hdel(&key, record::WORKER).ignore();
                keys::enqueue(pipe, run_id);
            }
            Outcome::Lost => {
                let app = rec.as_ref().map_or("", |r| r.row.app.as_str());
                let result = RunResult::sandbox_error("worker lost");
                Ending::new(run_id, app, &result, None, ttl_secs).add_to(pipe);
            }
        }
        keys::ack(pipe, entry);
        pipe.cmd("PING");
        // None: the record changed meanwhile (WATCH); look again.
        let done: Option<(String,)> = pipe.query(con)?;
        Ok(done.map(|_| outcome))
    })?;
    if outcome != Outcome::Gone {
        tracing::warn!(run = %run_id, ?outcome, "reclaimed the run of a lost worker");
    }
    Ok(outcome)
}

/// One pending entry: (entry id, owner, idle ms).
type Pending = (String, String, u64);

fn pending(
    conn: &mut Connection,
    idle: Duration,
    consumer: Option<&str>,
) -> redis::RedisResult<Vec<Pending>> {
    let mut cmd = redis::cmd("XPENDING");
    cmd.arg(keys::RUNS_STREAM)
        .arg(keys::GROUP)
        .arg("IDLE")
        .arg(idle.as_millis() as u64)
        .arg("-")
        .arg("+")
        .arg(1000);
    if let Some(c) = consumer {
        cmd.arg(c);
    }
    let rows: Vec<(String, String, u64, u64)> = cmd.query(conn)?;
    Ok(rows
        .into_iter()
        .map(|(id, owner, idle, _)| (id, owner, idle))
        .collect())
}

/// Claims entries for `me` (only those still idle for `min_idle`) and returns (entry, run id).
fn claim(
    conn: &mut Connection,
    me: &str,
    min_idle: Duration,
    ids: &[String],
) -> redis::RedisResult<Vec<(String, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let reply: redis::streams::StreamClaimReply = redis::cmd("XCLAIM")
        .arg(keys::RUNS_STREAM)
        .arg(keys::GROUP)
        .arg(me)
        .arg(min_idle.as_millis() as u64)
        .arg(ids)
        .query(conn)?;
    Ok(reply
        .ids
        .into_iter()
        .filter_map(|e| e.get::<String>("id").map(|run| (e.id, run)))
        .collect())
}

/// Recovers the entries `me` had taken in a previous life (call before taking new ones).
pub fn own_entries(conn: &mut Connection, me: &str, ttl_secs: u64) -> redis::RedisResult<usize> {
    let mine = pending(conn, Duration::ZERO, Some(me))?;
    let ids: Vec<String> = mine.into_iter().map(|(id, _, _)| id).collect();
    let claimed = claim(conn, me, Duration::ZERO, &ids)?;
    for (entry, run) in &claimed {
        recover(conn, entry, run, ttl_secs)?;
    }
    // Entries whose stream entry was trimmed away cannot be claimed: just acknowledged.
    for id in ids
        .iter()
        .filter(|id| !claimed.iter().any(|(e, _)| e == *id))
    {
        let mut pipe = redis::pipe();
        keys::ack(pipe.atomic(), id);
        pipe.query::<()>(conn)?;
    }
    Ok(claimed.len())
}

/// Recovers entries of nodes without a live heartbeat, and entries stuck past any run's end.
pub fn lost_entries(
    conn: &mut Connection,
    me: &str,
    heartbeat_ttl: Duration,
    stuck: Duration,
    ttl_secs: u64,
) -> redis::RedisResult<usize> {
    let idle = pending(conn, heartbeat_ttl, None)?;
    let mut orphans = Vec::new();
    for (id, owner, _) in idle {
        if owner == me {
            continue;
        }
        let alive: bool = redis::cmd("EXISTS").arg(keys::node(&owner)).query(conn)?;
        if !alive {
            orphans.push(id);
        }
    }
    let mut n = 0;
    for (entry, run) in claim(conn, me, heartbeat_ttl, &orphans)? {
        recover(conn, &entry, &run, ttl_secs)?;
        n += 1;
    }
    let reply: redis::streams::StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
        .arg(keys::RUNS_STREAM)
        .arg(keys::GROUP)
        .arg(me)
        .arg(stuck.as_millis() as u64)
        .arg("0-0")
        .arg("COUNT")
        .arg(100)
        .query(conn)?;
    for e in reply.claimed {
        if let Some(run) = e.get::<String>("id") {
            recover(conn, &e.id, &run, ttl_secs)?;
            n += 1;
        }
    }
    Ok(n)
}
