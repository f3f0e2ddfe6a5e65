//! The router: every route of API v1 plus the JSON fallbacks and the panic guard.

pub mod events;
pub mod gradings;
pub mod meta;
pub mod runs;

use std::any::Any;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use super::error::error_response;
use super::scale::RunBackend;
use super::state::AppState;

async fn not_found() -> Response {
    error_response(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> Response {
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    tracing::error!(panic = %what, "handler panicked");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error (the handler panicked; see the daemon's log)",
    )
}

/// The routes that need state (extend here, e.g. `.merge(grade::routes())` for /v1/gradings).
fn v1_routes(backend: &RunBackend) -> Router<AppState> {
    let runs = match backend {
        RunBackend::Embedded => Router::new()
            .route("/v1/runs", get(runs::list_runs).post(runs::create_run))
            .route("/v1/runs/{id}", get(runs::get_run).delete(runs::delete_run))
            .route("/v1/runs/{id}/events", get(events::run_events)),
        RunBackend::Redis(_) => crate::api::scale::routes::routes(),
    };
    runs.route("/v1/images", get(meta::images))
        .route("/v1/languages", get(meta::languages))
        .merge(gradings::routes())
}

/// The whole HTTP API over `state`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let max_transfer = usize::try_from(state.config.cells.max_transfer_bytes).unwrap_or(usize::MAX);
    Router::new()
        .merge(v1_routes(&state.backend))
        .merge(crate::api::cells::routes::routes(max_transfer))
        .merge(super::compat::routes(&state.config))
        .merge(super::playground::routes(&state.config))
        .route("/healthz", get(meta::healthz))
        .route("/readyz", get(meta::readyz))
        .route("/metrics", get(meta::metrics))
        .route("/openapi.json", get(meta::openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .with_state(state)
}
