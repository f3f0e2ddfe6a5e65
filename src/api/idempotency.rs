//! `Idempotency-Key` on `POST /v1/runs` and `POST /v1/gradings`: a client that retries a POST
//! whose answer it never got (connection reset) names the attempt, and the same key from the
//! same app within [`TTL`] answers the first attempt's id instead of starting another run.
//!
//! Keys live in their own SQLite table of the run store, so they survive a restart. A key is
//! claimed only once the request passed validation and got its quota and queue place: a
//! rejected request (4xx, 429, 503) does not use the key up. Reusing a key with a different
//! body is a 422.

use std::time::Duration;

use axum::http::HeaderMap;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::store::{now_ms, Store, StoreError};

/// The request header.
pub const HEADER: &str = "idempotency-key";

/// How long a key is remembered.
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// Longest key accepted.
pub const MAX_KEY_BYTES: usize = 255;

/// The table (created with the store's schema).
pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS idempotency_keys (
    app TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    id TEXT NOT NULL,
    body_hash TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app, kind, key)
);
CREATE INDEX IF NOT EXISTS idempotency_keys_by_age ON idempotency_keys(created_at);
";

/// What a key is for: the same key may name a run and a grading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Run,
    Grading,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Run => "run",
            Kind::Grading => "grading",
        }
    }
}

/// A request's key and the hash of its body.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub key: String,
    pub body_hash: String,
}

/// The `Idempotency-Key` of a request, if any: 1 to 255 visible ASCII characters.
pub fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "bad_idempotency_key",
            format!("Idempotency-Key must be 1 to {MAX_KEY_BYTES} visible ASCII characters"),
        )
    };
    let text = value.to_str().map_err(|_| bad())?;
    if text.is_empty() || text.len() > MAX_KEY_BYTES || !text.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(bad());
    }
    Ok(Some(text.to_string()))
}

/// The hash a body is compared by.
pub fn body_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// The outcome of [`claim`].
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// The key is new: `id` is now bound to it.
    New,
    /// The key was used before (within [`TTL`]) by the same body: answer this id.
    Replay(String),
}

/// Binds `attempt` of `app` to `id`, or finds the id it was bound to before.
pub fn claim(
    store: &Store,
    app: &str,
    kind: Kind,
    attempt: &Attempt,
    id: &str,
) -> Result<Claim, ApiError> {
    let now = now_ms();
    let cutoff = now - TTL.as_millis() as i64;
    let found = store.with_conn(|conn| -> Result<Option<(String, String)>, StoreError> {
        let tx = conn.unchecked_transaction()?;
        tx.execute(
            "DELETE FROM idempotency_keys WHERE created_at < ?1",
            [cutoff],
        )?;
        let found: Option<(String, String)> = tx
            .query_row(
                "SELECT id, body_hash FROM idempotency_keys WHERE app = ?1 AND kind = ?2 AND key = ?3",
                params![app, kind.as_str(), attempt.key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if found.is_none() {
            tx.execute(
                "INSERT INTO idempotency_keys (app, kind, key, id, body_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![app, kind.as_str(), attempt.key, id, attempt.body_hash, now],
            )?;
        }
        tx.commit()?;
        Ok(found)
    })?;
    match found {
        None => Ok(Claim::New),
        Some((id, hash)) if hash == attempt.body_hash => Ok(Claim::Replay(id)),
        Some((id, _)) => Err(key_reused(attempt, &id)),
    }
}

/// 422 for a key already bound to `id` through a request with another body.
pub fn key_reused(attempt: &Attempt, id: &str) -> ApiError {
    ApiError::unprocessable(
        "idempotency_key_reused",
        format!(
            "Idempotency-Key {:?} was used for {id} with a different body",
            attempt.key
        ),
    )
}

/// Unbinds a key whose request failed after [`claim`] (so a retry may use it).
pub fn release(store: &Store, app: &str, kind: Kind, attempt: &Attempt) {
    let result = store.with_conn(|conn| {
        conn.execute(
            "DELETE FROM idempotency_keys WHERE app = ?1 AND kind = ?2 AND key = ?3",
            params![app, kind.as_str(), attempt.key],
        )
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot release an idempotency key");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_binds_one_id_per_app_and_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = Attempt {
            key: "k1".into(),
            body_hash: body_hash(b"{}"),
        };
        assert_eq!(
            claim(&store, "app", Kind::Run, &a, "r1").unwrap(),
            Claim::New
        );
        assert_eq!(
            claim(&store, "app", Kind::Run, &a, "r2").unwrap(),
            Claim::Replay("r1".into())
        );
        assert_eq!(
            claim(&store, "other", Kind::Run, &a, "r3").unwrap(),
            Claim::New
        );
        assert_eq!(
            claim(&store, "app", Kind::Grading, &a, "g1").unwrap(),
            Claim::New
        );
        let changed = Attempt {
            body_hash: body_hash(b"{\"x\":1}"),
            ..a.clone()
        };
        let e = claim(&store, "app", Kind::Run, &changed, "r4").unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        release(&store, "app", Kind::Run, &a);
        assert_eq!(
            claim(&store, "app", Kind::Run, &a, "r5").unwrap(),
            Claim::New
        );
        // Keys survive a reopen (a restart of the daemon).
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(
            claim(&store, "app", Kind::Run, &a, "r6").unwrap(),
            Claim::Replay("r5".into())
        );
    }

    #[test]
    fn keys_are_checked() {
        let mut h = HeaderMap::new();
        assert_eq!(key_of(&h).unwrap(), None);
        h.insert(HEADER, "abc-123".parse().unwrap());
        assert_eq!(key_of(&h).unwrap().as_deref(), Some("abc-123"));
        h.insert(HEADER, "x".repeat(300).parse().unwrap());
        assert_eq!(key_of(&h).unwrap_err().status.as_u16(), 400);
        h.insert(HEADER, "a b".parse().unwrap());
        assert!(key_of(&h).is_err());
    }
}
