//! The browser playground (`playground = true`): one page at `/` built on API v1 — a
//! CodeMirror editor, a language picker (`GET /v1/languages`), stdin, limits bounded by the
//! server's (or the playground app's) maxima, runs submitted with `POST /v1/runs` and
//! followed over SSE (`GET /v1/runs/{id}/events`), cancel with `DELETE /v1/runs/{id}`.
//!
//! - [`assets`]: every file of the page, embedded in the binary (no CDN; the editor bundle is
//!   built by `scripts/build-playground` and committed).
//! - [`headers`]: the page's security headers (a CSP without inline scripts or styles).
//! - [`anonymous`]: which requests may run as the `playground_app` without a key.
//! - [`settings`]: `GET /playground/settings.json`, what the page needs to know about this
//!   server (is a key needed, the limits it may ask for).
//!
//! Off by default: without `playground = true` none of these routes exist (`/` is the JSON
//! 404 of every unknown route) and [`anonymous`] never admits a request.

pub mod anonymous;
pub mod assets;
pub mod headers;
pub mod settings;

use axum::routing::get;
use axum::Router;

use super::config::ServeConfig;
use super::state::AppState;

/// The playground's routes (empty unless `config.playground`), to merge into the API router.
pub fn routes(config: &ServeConfig) -> Router<AppState> {
    if !config.playground {
        return Router::new();
    }
    Router::new()
        .route("/", get(assets::index))
        .route("/playground/settings.json", get(settings::settings))
        .route("/playground/{file}", get(assets::asset))
        .layer(axum::middleware::map_response(headers::secure))
}
