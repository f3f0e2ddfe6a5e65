//! Gradings in the SQLite store, like runs: written before the POST is answered, updated
//! as each test ends, finished with the report. After a crash (kill -9, power loss) a
//! grading that had not finished ends with the tests done so far and the rest `XX`
//! "daemon restarted": tests may have had effects (time, output) a client saw, so nothing
//! is run twice. Finished reports outlive the daemon; `GET /v1/gradings/{id}` reads them.

use rusqlite::{params, OptionalExtension};

use super::gradings::GradingStatus;
use super::store::{now_ms, Store, StoreError};

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gradings (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    status TEXT NOT NULL,
    suite TEXT NOT NULL,
    test_names TEXT NOT NULL,
    tests TEXT NOT NULL DEFAULT '[]',
    report TEXT,
    verdict TEXT,
    created_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS gradings_by_status ON gradings(status, created_at);
";

/// What the store knows of one grading.
#[derive(Debug, Clone)]
pub struct GradingRecord {
    pub id: String,
    pub app: String,
    pub status: GradingStatus,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub report: Option<serde_json::Value>,
}

fn status_text(s: GradingStatus) -> &'static str {
    match s {
        GradingStatus::Queued => "queued",
        GradingStatus::Running => "running",
        GradingStatus::Done => "done",
    }
}

/// A new grading of `suite` (its name) with these tests, before it is answered.
pub fn insert(
    store: &Store,
    id: &str,
    app: &str,
    suite: &str,
    test_names: &[String],
    created_at: i64,
) -> Result<(), StoreError> {
    let names = serde_json::to_string(test_names).unwrap_or_else(|_| "[]".into());
    store.with_conn(|c| {
        c.execute(
            "INSERT INTO gradings (id, app, status, suite, test_names, created_at)
             VALUES (?1, ?2, 'queued', ?3, ?4, ?5)",
            params![id, app, suite, names, created_at],
        )
        .map(drop)
    })?;
    Ok(())
}

/// Forgets a grading that could not start (its POST is answered with an error).
pub fn delete(store: &Store, id: &str) -> Result<(), StoreError> {
    store.with_conn(|c| {
        c.execute("DELETE FROM gradings WHERE id = ?1", [id])
            .map(drop)
    })?;
    Ok(())
}

pub fn mark_running(store: &Store, id: &str, at: i64) -> Result<(), StoreError> {
    store.with_conn(|c| {
        c.execute(
            "UPDATE gradings SET status = 'running', started_at = ?2 WHERE id = ?1",
            params![id, at],
        )
        .map(drop)
    })?;
    Ok(())
}

/// The outcomes of the tests done so far (JSON objects of the report's `tests`).
pub fn record_tests(
    store: &Store,
    id: &str,
    tests: &[serde_json::Value],
) -> Result<(), StoreError> {
    let json = serde_json::Value::from(tests.to_vec()).to_string();
    store.with_conn(|c| {
        c.execute(
            "UPDATE gradings SET tests = ?2 WHERE id = ?1",
            params![id, json],
        )
        .map(drop)
    })?;
    Ok(())
}

pub fn mark_done(store: &Store, id: &str, report: &serde_json::Value) -> Result<(), StoreError> {
    let verdict = report["verdict"].as_str().map(str::to_string);
    store.with_conn(|c| {
        c.execute(
            "UPDATE gradings SET status = 'done', report = ?2, verdict = ?3, finished_at = ?4
             WHERE id = ?1",
            params![id, report.to_string(), verdict, now_ms()],
        )
        .map(drop)
    })?;
    Ok(())
}

pub fn get(store: &Store, id: &str) -> Result<Option<GradingRecord>, StoreError> {
    let row = store.with_conn(|c| {
        c.query_row(
            "SELECT id, app, status, created_at, started_at, finished_at, report
             FROM gradings WHERE id = ?1",
            [id],
            |r| {
                let status: String = r.get(2)?;
                let report: Option<String> = r.get(6)?;
                Ok(GradingRecord {
                    id: r.get(0)?,
                    app: r.get(1)?,
                    status: match status.as_str() {
                        "done" => GradingStatus::Done,
                        "running" => GradingStatus::Running,
                        _ => GradingStatus::Queued,
                    },
                    created_at: r.get(3)?,
                    started_at: r.get(4)?,
                    finished_at: r.get(5)?,
                    report: report.and_then(|t| serde_json::from_str(&t).ok()),
                })
            },
        )
        .optional()
    })?;
    Ok(row)
}

/// Ends every grading a previous daemon left unfinished (see the module doc); returns how
/// many. Called before the daemon accepts requests.
pub fn end_interrupted(store: &Store) -> Result<usize, StoreError> {
    let open = store.with_conn(|c| {
        let mut st =
            c.prepare("SELECT id, suite, test_names, tests FROM gradings WHERE status != 'done'")?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>();
        rows
    })?;
    for (id, suite, names, tests) in &open {
        let names: Vec<String> = serde_json::from_str(names).unwrap_or_default();
        let done: Vec<serde_json::Value> = serde_json::from_str(tests).unwrap_or_default();
        let report = interrupted_report(id, suite, &names, done);
        mark_done(store, id, &report)?;
    }
    Ok(open.len())
}

/// The report of a grading cut short by a restart: the tests that ended, then every other
/// test `XX` "daemon restarted".
fn interrupted_report(
    id: &str,
    suite: &str,
    names: &[String],
    done: Vec<serde_json::Value>,
) -> serde_json::Value {
    use crate::grade::{GradeReport, TestOutcome, TestVerdict};
    let mut report = GradeReport::empty(suite);
    let finished: Vec<TestOutcome> = done
        .into_iter()
        .filter_map(|t| serde_json::from_value(t).ok())
        .collect();
    for (index, name) in names.iter().enumerate() {
        let outcome = finished
            .iter()
            .find(|t| t.index == index)
            .cloned()
            .unwrap_or_else(|| {
                let mut t = TestOutcome::skipped(index, name, 1.0, "daemon restarted");
                t.verdict = TestVerdict::XX;
                t
            });
        report.tests.push(outcome);
    }
    report.message = Some("daemon restarted".into());
    report.summarise();
    let mut value = serde_json::to_value(&report).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("id".into(), id.into());
        map.insert("status".into(), status_text(GradingStatus::Done).into());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_grading_keeps_its_finished_tests_and_ends_the_rest_xx() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        insert(&store, "g1", "app", "sum", &names, now_ms()).unwrap();
        mark_running(&store, "g1", now_ms()).unwrap();
        let mut first = crate::grade::TestOutcome::skipped(0, "a", 1.0, "");
        first.verdict = crate::grade::TestVerdict::AC;
        first.score = 1.0;
        record_tests(&store, "g1", &[serde_json::to_value(&first).unwrap()]).unwrap();
        assert_eq!(end_interrupted(&store).unwrap(), 1);
        let rec = get(&store, "g1").unwrap().unwrap();
        assert_eq!(rec.status, GradingStatus::Done);
        let report = rec.report.unwrap();
        assert_eq!(report["verdict"], "XX");
        assert_eq!(report["message"], "daemon restarted");
        assert_eq!(report["tests"][0]["verdict"], "AC");
        assert_eq!(report["tests"][1]["verdict"], "XX");
        assert_eq!(report["tests"][2]["message"], "daemon restarted");
        assert_eq!(report["id"], "g1");
        assert_eq!(end_interrupted(&store).unwrap(), 0, "done once");
    }
}
