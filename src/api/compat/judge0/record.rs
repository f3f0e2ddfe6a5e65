//! What a Judge0 submission has beyond its run: the fields a client sent (to answer
//! `fields=*` and to judge `expected_output`), kept in table `judge0_submissions` of the same
//! SQLite store, keyed by the run's id and written before the POST is answered.

use base64::Engine;
use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::api::store::{Store, StoreError};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS judge0_submissions (
    id TEXT PRIMARY KEY,
    record TEXT NOT NULL
);
";

/// Bytes as base64 in the stored JSON.
mod b64 {
    use super::*;
    pub fn serialize<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        v.as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
            .serialize(s)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        Ok(text.and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok()))
    }
}

/// Removes the records whose run was pruned (run with the store's pruning).
pub const PRUNE: &str = "DELETE FROM judge0_submissions WHERE id NOT IN (SELECT id FROM runs)";

/// The request fields of one submission, as Judge0 echoes them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub language_id: u32,
    #[serde(with = "b64")]
    pub source_code: Option<Vec<u8>>,
    #[serde(with = "b64")]
    pub stdin: Option<Vec<u8>>,
    #[serde(with = "b64")]
    pub expected_output: Option<Vec<u8>>,
    pub compiler_options: Option<String>,
    pub command_line_arguments: Option<String>,
    pub cpu_time_limit: f64,
    pub cpu_extra_time: f64,
    pub wall_time_limit: f64,
    pub memory_limit: u64,
    pub stack_limit: u64,
    pub max_processes_and_or_threads: u64,
    pub max_file_size: u64,
    pub number_of_runs: u64,
    pub redirect_stderr_to_stdout: bool,
    pub enable_network: bool,
    pub callback_url: Option<String>,
    /// Whether `additional_files` came with the submission (the zip itself is not kept).
    pub has_additional_files: bool,
}

pub fn insert(store: &Store, id: &str, record: &Record) -> Result<(), StoreError> {
    let json = serde_json::to_string(record).unwrap_or_else(|_| "{}".into());
    store.with_conn(|c| {
        c.execute(
            "INSERT INTO judge0_submissions (id, record) VALUES (?1, ?2)",
            params![id, json],
        )?;
        Ok(())
    })
}

/// The record of run `id`; None for a run submitted through another API.
pub fn get(store: &Store, id: &str) -> Result<Option<Record>, StoreError> {
    let json: Option<String> = store.with_conn(|c| {
        c.query_row(
            "SELECT record FROM judge0_submissions WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()
    })?;
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

/// Deletes run `id` and its record (Judge0's `DELETE /submissions/{token}`).
pub fn delete(store: &Store, id: &str) -> Result<(), StoreError> {
    store.with_conn(|c| {
        c.execute("DELETE FROM runs WHERE id = ?1", [id])?;
        c.execute("DELETE FROM judge0_submissions WHERE id = ?1", [id])?;
        Ok(())
    })
}
