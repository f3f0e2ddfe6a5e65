//! The store's record of every long-lived cell: who made it, from what, when it ended and
//! why. Cells themselves do not survive the daemon; their records do (a cell alive when the
//! daemon died ends "daemon restarted" at the next start).

use rusqlite::OptionalExtension;

use crate::api::store::{Store, StoreError};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cells (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    image TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    ended_at INTEGER,
    end_reason TEXT,
    execs INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS cells_by_app ON cells(app, created_at);
";

/// One cell as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CellRecord {
    pub id: String,
    pub app: String,
    pub image: String,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub execs: u64,
}

pub fn insert(
    store: &Store,
    id: &str,
    app: &str,
    image: &str,
    created_at: i64,
) -> Result<(), StoreError> {
    store.with_conn(|c| {
        c.execute(
            "INSERT INTO cells (id, app, image, created_at) VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![id, app, image, created_at],
        )
        .map(drop)
        .map_err(StoreError::from)
    })
}

pub fn set_execs(store: &Store, id: &str, execs: u64) -> Result<(), StoreError> {
    store.with_conn(|c| {
        c.execute(
            "UPDATE cells SET execs = ?2 WHERE id = ?1",
            rusqlite::params![id, execs as i64],
        )
        .map(drop)
        .map_err(StoreError::from)
    })
}

/// Records the end of a cell (the first reason wins).
pub fn end(store: &Store, id: &str, reason: &str, at: i64) -> Result<(), StoreError> {
    store.with_conn(|c| {
        c.execute(
            "UPDATE cells SET ended_at = ?2, end_reason = ?3 WHERE id = ?1 AND ended_at IS NULL",
            rusqlite::params![id, at, reason],
        )
        .map(drop)
        .map_err(StoreError::from)
    })
}

/// Ends the records of cells a previous daemon left alive; returns how many.
pub fn end_interrupted(store: &Store, at: i64) -> Result<usize, StoreError> {
    store.with_conn(|c| {
        c.execute(
            "UPDATE cells SET ended_at = ?1, end_reason = 'daemon restarted' WHERE ended_at IS NULL",
            [at],
        )
        .map_err(StoreError::from)
    })
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CellRecord> {
    Ok(CellRecord {
        id: r.get(0)?,
        app: r.get(1)?,
        image: r.get(2)?,
        created_at: r.get(3)?,
        ended_at: r.get(4)?,
        end_reason: r.get(5)?,
        execs: r.get::<_, i64>(6)?.max(0) as u64,
    })
}

const COLUMNS: &str = "id, app, image, created_at, ended_at, end_reason, execs";

pub fn get(store: &Store, id: &str) -> Result<Option<CellRecord>, StoreError> {
    store.with_conn(|c| {
        c.query_row(
            &format!("SELECT {COLUMNS} FROM cells WHERE id = ?1"),
            [id],
            row,
        )
        .optional()
        .map_err(StoreError::from)
    })
}

/// The app's cells, newest first (at most `limit`).
pub fn list(store: &Store, app: &str, limit: u32) -> Result<Vec<CellRecord>, StoreError> {
    store.with_conn(|c| -> Result<_, StoreError> {
        let mut stmt = c.prepare(&format!(
            "SELECT {COLUMNS} FROM cells WHERE app = ?1 ORDER BY created_at DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(rusqlite::params![app, limit], row)?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::from)
    })
}
