//! A run as a Redis hash: the same fields as the embedded store's row, plus the worker that
//! took it (`worker`, set once with HSETNX: whoever sets it runs or ends the run, exactly
//! once).

use std::collections::HashMap;

use super::super::dto::RunStatus;
use super::super::store::RunRow;
use super::error::QueueError;

/// Hash fields.
pub const APP: &str = "app";
pub const STATUS: &str = "status";
pub const REQUEST: &str = "request";
pub const RESULT: &str = "result";
pub const VERDICT: &str = "verdict";
pub const CREATED_AT: &str = "created_at";
pub const STARTED_AT: &str = "started_at";
pub const FINISHED_AT: &str = "finished_at";
/// Who took the run: a worker node's name, or [`CANCELLED_BY_API`].
pub const WORKER: &str = "worker";
/// Set by DELETE; the worker running the run cancels its cell.
pub const CANCEL: &str = "cancel";
/// The [`WORKER`] of a run an API node cancelled before any worker took it.
pub const CANCELLED_BY_API: &str = "-cancelled-";

/// A run's record as read from Redis.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub row: RunRow,
    pub worker: Option<String>,
    pub cancel: bool,
}

fn int(map: &HashMap<String, String>, key: &str, field: &str) -> Result<Option<i64>, QueueError> {
    map.get(field)
        .map(|v| {
            v.parse::<i64>().map_err(|_| QueueError::Malformed {
                key: key.to_string(),
                what: format!("{field} = {v:?}"),
            })
        })
        .transpose()
}

impl RunRecord {
    /// The fields of a newly accepted run.
    pub fn new_fields(app: &str, request: &str, created_at: i64) -> Vec<(&'static str, String)> {
        vec![
            (APP, app.to_string()),
            (STATUS, RunStatus::Queued.as_str().to_string()),
            (REQUEST, request.to_string()),
            (CREATED_AT, created_at.to_string()),
        ]
    }

    /// Parses HGETALL's answer (None: no such run, e.g. expired).
    pub fn parse(id: &str, map: HashMap<String, String>) -> Result<Option<RunRecord>, QueueError> {
        if map.is_empty() {
            return Ok(None);
        }
        let key = super::keys::run(id);
        let malformed = |what: &str| QueueError::Malformed {
            key: key.clone(),
            what: what.to_string(),
        };
        let status = map
            .get(STATUS)
            .and_then(|s| RunStatus::parse(s))
            .ok_or_else(|| malformed("status"))?;
        let row = RunRow {
            id: id.to_string(),
            app: map.get(APP).cloned().ok_or_else(|| malformed("app"))?,
            status,
            request: map.get(REQUEST).cloned().unwrap_or_default(),
            result: map.get(RESULT).cloned(),
            verdict: map.get(VERDICT).cloned(),
            created_at: int(&map, &key, CREATED_AT)?.ok_or_else(|| malformed("created_at"))?,
            started_at: int(&map, &key, STARTED_AT)?,
            finished_at: int(&map, &key, FINISHED_AT)?,
        };
        Ok(Some(RunRecord {
            row,
            worker: map.get(WORKER).cloned(),
            cancel: map.contains_key(CANCEL),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_record_parses_back() {
        let map: HashMap<String, String> = RunRecord::new_fields("judge", "{}", 42)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let r = RunRecord::parse("x", map).unwrap().unwrap();
        assert_eq!(r.row.app, "judge");
        assert_eq!(r.row.status, RunStatus::Queued);
        assert_eq!(r.row.created_at, 42);
        assert!(r.worker.is_none() && !r.cancel);
        assert!(RunRecord::parse("x", HashMap::new()).unwrap().is_none());
    }
}
