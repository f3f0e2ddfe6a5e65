//! Anonymous playground runs: with `playground_app = "NAME"`, the page may run code without
//! an API key, as the app NAME (its quota of concurrent runs, its maxima).
//!
//! Decision: a request is that app's only when all of these hold —
//! - the playground is on, `playground_app` is set and keys are required at all;
//! - it carries no `Authorization` header (a key always wins, a wrong key is still a 401);
//! - it carries `X-Sandcell-Playground: 1`, which the page sends. A custom header makes a
//!   browser preflight any cross-origin request, and this server answers no CORS preflight:
//!   another web site cannot use the playground's quota from its visitors' browsers. API
//!   clients that forget their key still get the 401 they always got;
//! - `Sec-Fetch-Site` (when sent) is `same-origin` and `Origin` (when sent) is this server's
//!   `Host` (behind a proxy: pass `Host` through), else 403;
//! - it is one of the routes the page uses ([`ROUTES`]): the languages, submitting a run,
//!   reading one run, its events, cancelling it. Listing runs, images and gradings (and any
//!   route added later) still need a key.
//!
//! What this does not do: keep out a program that sends the header itself. Turning
//! anonymous runs on is publishing a key of that app; its `--max-concurrent`,
//! `--max-wall-time` and `--max-memory` are what bound the cost, so give it small ones. Run
//! ids (128 random bits, told only to the submitter) are what keep one visitor from reading
//! or cancelling another's runs, since they all run as the same app.

use std::sync::Arc;

use axum::extract::MatchedPath;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use crate::api::auth::Caller;
use crate::api::config::{ConfigError, ServeConfig};
use crate::api::error::ApiError;
use crate::api::state::AppState;
use crate::api::store::{App, Store, StoreError};

/// The header the page sends on its API requests when it has no key.
pub const MARKER: &str = "x-sandcell-playground";

/// (method, route) the page uses: the only ones anonymous requests may call.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/v1/languages"),
    ("POST", "/v1/runs"),
    ("GET", "/v1/runs/{id}"),
    ("DELETE", "/v1/runs/{id}"),
    ("GET", "/v1/runs/{id}/events"),
];

/// The app anonymous playground requests run as, if the configuration names one.
pub fn app_name(config: &ServeConfig) -> Option<&str> {
    if config.playground && config.auth {
        config.playground_app.as_deref()
    } else {
        None
    }
}

/// The app called `name` in the store.
pub fn find_app(store: &Store, name: &str) -> Result<Option<App>, StoreError> {
    Ok(store.list_apps()?.into_iter().find(|a| a.name == name))
}

/// Refuses to start a daemon whose `playground_app` does not exist (the page would answer
/// every visitor 401).
pub fn check_app(config: &ServeConfig, store: &Store) -> Result<(), ConfigError> {
    let Some(name) = app_name(config) else {
        return Ok(());
    };
    match find_app(store, name) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ConfigError::Invalid(format!(
            "playground_app {name:?} is not an app of this state dir (create it first: \
             sandcell app create {name} --max-concurrent 2 --max-wall-time 10s --max-memory 256M)"
        ))),
        Err(e) => Err(ConfigError::Invalid(format!(
            "playground_app {name:?}: {e}"
        ))),
    }
}

fn same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
        if site != "same-origin" {
            return Err(ApiError::forbidden(format!(
                "anonymous playground requests must come from the playground page (Sec-Fetch-Site: {site})"
            )));
        }
    }
    if let Some(origin) = text(header::ORIGIN) {
        let host = text(header::HOST).unwrap_or("");
        let ok = ["http://", "https://"]
            .iter()
            .any(|scheme| origin.strip_prefix(scheme) == Some(host));
        if !ok {
            return Err(ApiError::forbidden(format!(
                "anonymous playground requests must come from the playground page (Origin {origin} is not {host})"
            )));
        }
    }
    Ok(())
}

/// The playground app, when `parts` is an anonymous request of the page (see the module
/// docs); None when the request is not one (the caller then asks for a key as usual).
pub fn caller(state: &AppState, parts: &Parts) -> Result<Option<Caller>, ApiError> {
    let Some(name) = app_name(&state.config) else {
        return Ok(None);
    };
    let marked = matches!(parts.headers.get(MARKER), Some(v) if v == "1");
    if parts.headers.contains_key(header::AUTHORIZATION) || !marked {
        return Ok(None);
    }
    same_origin(&parts.headers)?;
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map_or("", |p| p.as_str());
    let method = parts.method.as_str();
    if !ROUTES.iter().any(|&(m, r)| m == method && r == route) {
        return Err(ApiError::unauthorized(format!(
            "{method} {route} needs an API key (the playground runs code without one, nothing else)"
        )));
    }
    match find_app(&state.store, name)? {
        Some(app) => Ok(Some(Caller(Arc::new(app)))),
        None => Err(ApiError::unauthorized(format!(
            "anonymous playground runs are off: the app {name:?} no longer exists; use an API key"
        ))),
    }
}
