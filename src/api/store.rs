//! The daemon's SQLite store (WAL): apps with hashed keys, and every accepted run. A run is
//! written before the client hears 200/202, so a crash loses no accepted run.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use super::dto::RunStatus;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Insecure(#[from] super::state_dir::StateDirError),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("an app named {0:?} already exists")]
    AppExists(String),
    #[error("no app named {0:?}")]
    NoSuchApp(String),
}

/// An API client: name, hashed key, quota and its own maxima.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    pub name: String,
    pub key_hash: String,
    /// Queued plus running runs at the same time.
    pub max_concurrent: u32,
    /// Tighter maxima than the server's, if set.
    pub max_wall_time_ms: Option<u64>,
    pub max_memory: Option<u64>,
}

/// One stored run.
#[derive(Debug, Clone)]
pub struct RunRow {
    pub id: String,
    pub app: String,
    pub status: RunStatus,
    pub request: String,
    pub result: Option<String>,
    pub verdict: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The SQLite file of a state dir.
pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join("sandcell.db")
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS apps (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    max_concurrent INTEGER NOT NULL,
    max_wall_time_ms INTEGER,
    max_memory INTEGER,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    status TEXT NOT NULL,
    request TEXT NOT NULL,
    result TEXT,
    verdict TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS runs_by_status ON runs(status, created_at);
CREATE INDEX IF NOT EXISTS runs_by_app ON runs(app, created_at);
";

/// The store; one connection behind a mutex (every statement is short).
pub struct Store {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

const RUN_COLUMNS: &str =
    "id, app, status, request, result, verdict, created_at, started_at, finished_at";

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    let status: String = r.get(2)?;
    Ok(RunRow {
        id: r.get(0)?,
        app: r.get(1)?,
        status: RunStatus::parse(&status).unwrap_or(RunStatus::Done),
        request: r.get(3)?,
        result: r.get(4)?,
        verdict: r.get(5)?,
        created_at: r.get(6)?,
        started_at: r.get(7)?,
        finished_at: r.get(8)?,
    })
}

fn app_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<App> {
    Ok(App {
        name: r.get(0)?,
        key_hash: r.get(1)?,
        max_concurrent: r.get(2)?,
        max_wall_time_ms: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
        max_memory: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
    })
}

impl Store {
    /// Opens (creating) the store of `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        super::state_dir::secure(state_dir, &db_path(state_dir))?;
        let conn = Connection::open(db_path(state_dir))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // WAL + NORMAL: a committed transaction survives a crash of the daemon (kill -9);
        // only a power loss may lose the last commits.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(super::idempotency::SCHEMA)?;
        conn.execute_batch(super::grading_records::SCHEMA)?;
        conn.execute_batch(super::cells::records::SCHEMA)?;
        conn.execute_batch(super::compat::judge0::record::SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves the connection usable.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `f` on the connection, for modules with tables of their own (idempotency keys).
    pub fn with_conn<T, E: From<rusqlite::Error>>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        f(&self.conn())
    }

    pub fn create_app(&self, app: &App) -> Result<(), StoreError> {
        let conn = self.conn();
        let exists: Option<String> = conn
            .query_row("SELECT name FROM apps WHERE name = ?1", [&app.name], |r| {
                r.get(0)
            })
            .optional()?;
        if exists.is_some() {
            return Err(StoreError::AppExists(app.name.clone()));
        }
        conn.execute(
            "INSERT INTO apps (name, key_hash, max_concurrent, max_wall_time_ms, max_memory, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                app.name,
                app.key_hash,
                app.max_concurrent,
                app.max_wall_time_ms.map(|v| v as i64),
                app.max_memory.map(|v| v as i64),
                now_ms()
            ],
        )?;
        Ok(())
    }

    pub fn delete_app(&self, name: &str) -> Result<(), StoreError> {
        let n = self
            .conn()
            .execute("DELETE FROM apps WHERE name = ?1", [name])?;
        if n == 0 {
            return Err(StoreError::NoSuchApp(name.to_string()));
        }
        Ok(())
    }

    pub fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT name, key_hash, max_concurrent, max_wall_time_ms, max_memory FROM apps ORDER BY name",
        )?;
        let apps = st.query_map([], app_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(apps)
    }

    pub fn app_by_key_hash(&self, key_hash: &str) -> Result<Option<App>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT name, key_hash, max_concurrent, max_wall_time_ms, max_memory FROM apps WHERE key_hash = ?1",
                [key_hash],
                app_row,
            )
            .optional()?)
    }

    pub fn insert_run(
        &self,
        id: &str,
        app: &str,
        request: &str,
        created_at: i64,
    ) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "INSERT INTO runs (id, app, status, request, created_at) VALUES (?1, ?2, 'queued', ?3, ?4)",
            )?
            .execute(params![id, app, request, created_at])?;
        Ok(())
    }

    pub fn mark_running(&self, id: &str, at: i64) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached("UPDATE runs SET status = 'running', started_at = ?2 WHERE id = ?1")?
            .execute(params![id, at])?;
        Ok(())
    }

    pub fn mark_done(
        &self,
        id: &str,
        verdict: &str,
        result: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        self.conn()
            .prepare_cached(
                "UPDATE runs SET status = 'done', verdict = ?2, result = ?3, finished_at = ?4 WHERE id = ?1",
            )?
            .execute(params![id, verdict, result, at])?;
        Ok(())
    }

    pub fn get_run(&self, id: &str) -> Result<Option<RunRow>, StoreError> {
        Ok(self
            .conn()
            .prepare_cached(&format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"))?
            .query_row([id], run_row)
            .optional()?)
    }

    /// Newest first, without loading results.
    pub fn list_runs(
        &self,
        app: &str,
        status: Option<RunStatus>,
        limit: u32,
    ) -> Result<Vec<RunRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(
            "SELECT id, app, status, '', NULL, verdict, created_at, started_at, finished_at
             FROM runs WHERE app = ?1 AND (?2 IS NULL OR status = ?2)
             ORDER BY created_at DESC, id LIMIT ?3",
        )?;
        let rows = st
            .query_map(params![app, status.map(RunStatus::as_str), limit], run_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Every run in `status`, oldest first (restart recovery).
    pub fn runs_in_status(&self, status: RunStatus) -> Result<Vec<RunRow>, StoreError> {
        let conn = self.conn();
        let mut st = conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE status = ?1 ORDER BY created_at, id"
        ))?;
        let rows = st
            .query_map([status.as_str()], run_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Deletes finished runs and gradings older than `max_age` and beyond the newest
    /// `max_count` of each.
    pub fn prune(&self, max_age: Duration, max_count: u64) -> Result<usize, StoreError> {
        let conn = self.conn();
        let cutoff = now_ms() - max_age.as_millis() as i64;
        let mut pruned = 0;
        for table in ["runs", "gradings"] {
            pruned += conn.execute(
                &format!("DELETE FROM {table} WHERE status = 'done' AND finished_at < ?1"),
                [cutoff],
            )?;
            pruned += conn.execute(
                &format!(
                    "DELETE FROM {table} WHERE status = 'done' AND id IN (
                        SELECT id FROM {table} WHERE status = 'done'
                        ORDER BY finished_at DESC, id LIMIT -1 OFFSET ?1)"
                ),
                [max_count as i64],
            )?;
        }
        // Judge0 fields of pruned runs (compat/judge0/record.rs) go with them.
        conn.execute(super::compat::judge0::record::PRUNE, [])?;
        Ok(pruned)
    }

    /// Writes the WAL back into the main file (at shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_move_through_their_states_and_get_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        for i in 0..5 {
            store.insert_run(&format!("r{i}"), "a", "{}", i).unwrap();
        }
        store.mark_running("r0", 10).unwrap();
        store.mark_done("r1", "OK", "{}", now_ms()).unwrap();
        store.mark_done("r2", "RE", "{}", now_ms()).unwrap();
        assert_eq!(store.runs_in_status(RunStatus::Queued).unwrap().len(), 2);
        assert_eq!(store.runs_in_status(RunStatus::Running).unwrap().len(), 1);
        let done = store.list_runs("a", Some(RunStatus::Done), 10).unwrap();
        assert_eq!(done.len(), 2);
        assert_eq!(store.list_runs("b", None, 10).unwrap().len(), 0);
        assert_eq!(store.prune(Duration::from_secs(3600), 1).unwrap(), 1);
        assert_eq!(store.list_runs("a", None, 10).unwrap().len(), 4);
        assert_eq!(
            store.get_run("r0").unwrap().unwrap().status,
            RunStatus::Running
        );
    }

    #[test]
    fn app_names_are_unique() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let app = App {
            name: "judge".into(),
            key_hash: "h".into(),
            max_concurrent: 4,
            max_wall_time_ms: None,
            max_memory: Some(1 << 20),
        };
        store.create_app(&app).unwrap();
        assert!(matches!(
            store.create_app(&app),
            Err(StoreError::AppExists(_))
        ));
        assert_eq!(store.app_by_key_hash("h").unwrap(), Some(app));
        store.delete_app("judge").unwrap();
        assert!(store.delete_app("judge").is_err());
    }
}
