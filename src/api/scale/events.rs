//! A run's events stream (`sandcell:events:ID`): what SSE readers and `wait: true` read, on
//! any API node. Entries have a kind `t` and data `d`: `status` (queued|running|done),
//! `stdout`/`stderr` (raw bytes), `result` (the RunFinished JSON). The stream ends with
//! `result`; late readers replay it from the start.

use redis::Value;

use super::keys;
use super::record;
use crate::api::dto::{RunFinished, RunStatus, StoredResult};
use crate::api::store::now_ms;
use crate::result::{RunResult, RunResultWire};

pub const KIND: &str = "t";
pub const DATA: &str = "d";

/// One event as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEventEntry {
    Status(String),
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The RunFinished JSON.
    Result(String),
}

impl RunEventEntry {
    fn from_fields(map: &std::collections::HashMap<String, Value>) -> Option<RunEventEntry> {
        let kind: String = redis::from_redis_value_ref(map.get(KIND)?).ok()?;
        let data: Vec<u8> = redis::from_redis_value_ref(map.get(DATA)?).ok()?;
        Some(match kind.as_str() {
            "status" => RunEventEntry::Status(String::from_utf8(data).ok()?),
            "stdout" => RunEventEntry::Stdout(data),
            "stderr" => RunEventEntry::Stderr(data),
            "result" => RunEventEntry::Result(String::from_utf8(data).ok()?),
            _ => return None,
        })
    }
}

/// Parses XREAD's answer for one stream: (last id, events).
pub fn parse_read(reply: redis::streams::StreamReadReply) -> (Option<String>, Vec<RunEventEntry>) {
    let mut last = None;
    let mut events = Vec::new();
    for key in reply.keys {
        for entry in key.ids {
            if let Some(e) = RunEventEntry::from_fields(&entry.map) {
                events.push(e);
            }
            last = Some(entry.id);
        }
    }
    (last, events)
}

/// Appends one event.
pub fn add(pipe: &mut redis::Pipeline, id: &str, kind: &str, data: &[u8]) {
    pipe.cmd("XADD")
        .arg(keys::events(id))
        .arg("*")
        .arg(KIND)
        .arg(kind)
        .arg(DATA)
        .arg(data)
        .ignore();
}

/// How a run ends: the commands that record it, atomically — its record says done with this
/// result, its events stream gets the result, both expire after the TTL, and its app's count
/// of active runs (the quota) goes down.
#[derive(Debug, Clone)]
pub struct Ending {
    pub id: String,
    pub app: String,
    pub verdict: &'static str,
    stored: String,
    finished: String,
    at: i64,
    ttl_secs: u64,
}

impl Ending {
    pub fn new(
        id: &str,
        app: &str,
        result: &RunResult,
        compile: Option<&RunResult>,
        ttl_secs: u64,
    ) -> Ending {
        let stored = StoredResult {
            result: RunResultWire::from(result),
            compile: compile.map(RunResultWire::from),
        };
        let finished = RunFinished {
            id: id.to_string(),
            status: RunStatus::Done,
            result: stored.result.clone(),
            compile: stored.compile.clone(),
        };
        Ending {
            id: id.to_string(),
            app: app.to_string(),
            verdict: result.verdict.as_str(),
            stored: serde_json::to_string(&stored).unwrap_or_default(),
            finished: serde_json::to_string(&finished).unwrap_or_default(),
            at: now_ms(),
            ttl_secs,
        }
    }

    /// The commands, added to `pipe` (e.g. inside a WATCH transaction).
    pub fn add_to(&self, pipe: &mut redis::Pipeline) {
        let id = &self.id;
        pipe.hset_multiple(
            keys::run(id),
            &[
                (record::STATUS, "done".to_string()),
                (record::VERDICT, self.verdict.to_string()),
                (record::RESULT, self.stored.clone()),
                (record::FINISHED_AT, self.at.to_string()),
            ],
        )
        .ignore();
        add(pipe, id, "status", b"done");
        add(pipe, id, "result", self.finished.as_bytes());
        pipe.expire(keys::run(id), self.ttl_secs as i64).ignore();
        pipe.expire(keys::events(id), self.ttl_secs as i64).ignore();
        pipe.decr(keys::active(&self.app), 1).ignore();
    }

    /// The commands as one MULTI.
    pub fn pipe(&self) -> redis::Pipeline {
        let mut pipe = redis::pipe();
        pipe.atomic();
        self.add_to(&mut pipe);
        pipe
    }
}
