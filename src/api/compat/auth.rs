//! Who a compat request is for: Judge0's `X-Auth-Token` (or `X-Auth-User`) or
//! `Authorization: Bearer KEY` name a sandcell app by its key; a request with no key is
//! served as the app the operator named in `compat_app`, else refused. Each API answers the
//! refusal in its own error shape, so this returns a plain [`Refused`] reason.

use std::sync::Arc;

use axum::http::HeaderMap;

use crate::api::state::AppState;
use crate::api::store::App;

/// Why a request was not authorized.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("no API key: send X-Auth-Token: KEY or Authorization: Bearer KEY")]
    NoKey,
    #[error("unknown API key")]
    UnknownKey,
    #[error("compat_app names the app {0:?}, which does not exist")]
    NoSuchApp(String),
    #[error("the key store failed: {0}")]
    Store(String),
}

/// The key a request carries, if any.
fn key_of(headers: &HeaderMap) -> Option<String> {
    for name in ["x-auth-token", "x-auth-user"] {
        if let Some(v) = headers.get(name).and_then(|v| v.to_str().ok()) {
            if !v.trim().is_empty() {
                return Some(v.trim().to_owned());
            }
        }
    }
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, key) = auth.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty()).then(|| key.trim().to_owned())
}

/// The app a compat request is made for.
pub fn caller(state: &AppState, headers: &HeaderMap) -> Result<Arc<App>, Refused> {
    if !state.config.auth {
        return Ok(state.anonymous.clone());
    }
    if let Some(key) = key_of(headers) {
        return match state.keys.lookup(&state.store, &key) {
            Ok(Some(app)) => Ok(app),
            Ok(None) => Err(Refused::UnknownKey),
            Err(e) => Err(Refused::Store(e.to_string())),
        };
    }
    let Some(name) = &state.config.compat_app else {
        return Err(Refused::NoKey);
    };
    match state.store.list_apps() {
        Ok(apps) => apps
            .into_iter()
            .find(|a| &a.name == name)
            .map(Arc::new)
            .ok_or_else(|| Refused::NoSuchApp(name.clone())),
        Err(e) => Err(Refused::Store(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn keys_come_from_judge0_or_bearer_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(key_of(&h), None);
        h.insert("authorization", HeaderValue::from_static("Bearer sk_1"));
        assert_eq!(key_of(&h).as_deref(), Some("sk_1"));
        h.insert("x-auth-token", HeaderValue::from_static("sk_2"));
        assert_eq!(key_of(&h).as_deref(), Some("sk_2"));
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(key_of(&h), None);
        h.insert("x-auth-user", HeaderValue::from_static("sk_3"));
        assert_eq!(key_of(&h).as_deref(), Some("sk_3"));
    }
}
