//! A run's events stream (`sandcell:events:ID`): what SSE readers and `wait: true` read, on
//! any API node. Entries have a kind `t` and data `d`: `status` (queued|running|done),
//! `stdout`/`stderr` (raw bytes), `result` (the RunFinished JSON). The stream ends with
//! `result`; late readers replay it from the start.

use redis::Value;

use super::keys;
use super::record;

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

/// The commands that end a run, atomically: its record says done with this result, its
/// events stream gets the result, both expire after `ttl_secs`.
pub fn finish_pipe(
    id: &str,
    verdict: &str,
    stored_json: &str,
    finished_json: &str,
    at: i64,
    ttl_secs: u64,
) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    pipe.atomic();
    finish_cmds(
        &mut pipe,
        id,
        verdict,
        stored_json,
        finished_json,
        at,
        ttl_secs,
    );
    pipe
}

/// The commands of [`finish_pipe`], added to `pipe` (e.g. inside a WATCH transaction).
pub fn finish_cmds(
    pipe: &mut redis::Pipeline,
    id: &str,
    verdict: &str,
    stored_json: &str,
    finished_json: &str,
    at: i64,
    ttl_secs: u64,
) {
    pipe.hset_multiple(
        keys::run(id),
        &[
            (record::STATUS, "done".to_string()),
            (record::VERDICT, verdict.to_string()),
            (record::RESULT, stored_json.to_string()),
            (record::FINISHED_AT, at.to_string()),
        ],
    )
    .ignore();
    add(pipe, id, "status", b"done");
    add(pipe, id, "result", finished_json.as_bytes());
    pipe.expire(keys::run(id), ttl_secs as i64).ignore();
    pipe.expire(keys::events(id), ttl_secs as i64).ignore();
}
