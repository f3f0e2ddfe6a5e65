//! API keys: `sk_` + 32 random bytes in hex, stored as their SHA-256; `Authorization: Bearer`
//! on every /v1 route. Looked-up apps are cached for a short while so a deleted app stops
//! working within [`CACHE_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::state::AppState;
use super::store::{App, Store, StoreError};

/// How long a looked-up key stays valid without asking the store again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

/// A fresh random key (shown once, never stored).
pub fn generate_key() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("sk_{}", hex::encode(bytes))
}

/// What the store keeps of a key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Keys already checked, by hash.
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, (Arc<App>, Instant)>>,
}

impl KeyCache {
    /// The app of a key hash looked up less than [`CACHE_TTL`] ago.
    pub fn cached(&self, hash: &str) -> Option<Arc<App>> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(app, _)| app.clone())
    }

    /// Remembers what a lookup found (forgets the hash when nothing was).
    pub fn remember(&self, hash: &str, found: Option<Arc<App>>) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match found {
            Some(app) => {
                entries.insert(hash.to_string(), (app, Instant::now()));
            }
            None => {
                entries.remove(hash);
            }
        }
    }

    /// The app owning `key`, if any.
    pub fn lookup(&self, store: &Store, key: &str) -> Result<Option<Arc<App>>, StoreError> {
        let hash = hash_key(key);
        if let Some(hit) = self.cached(&hash) {
            return Ok(Some(hit));
        }
        let found = store.app_by_key_hash(&hash)?.map(Arc::new);
        self.remember(&hash, found.clone());
        Ok(found)
    }
}

/// The app a request is made for. With auth switched off, every request is the app `anonymous`.
#[derive(Debug, Clone)]
pub struct Caller(pub Arc<App>);

/// The app used when authentication is switched off.
pub fn anonymous_app() -> App {
    App {
        name: "anonymous".into(),
        key_hash: String::new(),
        max_concurrent: u32::MAX,
        max_wall_time_ms: None,
        max_memory: None,
    }
}

/// The app of requests on the local socket (`sandcell cell ...` as root): no key, the
/// server's maxima.
pub fn local_app() -> App {
    App {
        name: "local".into(),
        ..anonymous_app()
    }
}

/// Marks a request that came in on the local socket (root only).
#[derive(Debug, Clone, Copy)]
pub struct LocalPeer;

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let header = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer KEY"))?;
    let text = header
        .to_str()
        .map_err(|_| ApiError::unauthorized("malformed Authorization header"))?;
    let (scheme, key) = text
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("Authorization must be `Bearer KEY`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || key.trim().is_empty() {
        return Err(ApiError::unauthorized("Authorization must be `Bearer KEY`"));
    }
    Ok(key.trim())
}

/// The app whose key `headers` carry (401 without a valid key).
pub fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    if !state.config.auth {
        return Ok(Caller(state.anonymous.clone()));
    }
    let key = bearer(headers)?;
    match state.keys.lookup(&state.store, key)? {
        Some(app) => Ok(Caller(app)),
        None => Err(ApiError::unauthorized("unknown API key")),
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.extensions.get::<LocalPeer>().is_some() {
            return Ok(Caller(state.local.clone()));
        }
        // The playground page without a key, on the routes it uses (else None).
        if let Some(caller) = super::playground::anonymous::caller(state, parts)? {
            return Ok(caller);
        }
        if matches!(state.backend, super::scale::RunBackend::Redis(_)) && state.config.auth {
            // API node: apps live in Redis.
            let key = bearer(&parts.headers)?;
            return match super::scale::routes::app_for_key(state, &hash_key(key)).await? {
                Some(app) => Ok(Caller(app)),
                None => Err(ApiError::unauthorized("unknown API key")),
            };
        }
        authorize(state, &parts.headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let a = generate_key();
        let b = generate_key();
        assert_ne!(a, b);
        assert_eq!(a.len(), 3 + 64);
        assert_eq!(hash_key(&a).len(), 64);
        assert_ne!(hash_key(&a), a);
        assert_eq!(hash_key(&a), hash_key(&a));
    }
}
