//! `/v1/runs`: submit (sync or async), look up, list, cancel.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::RngCore;

use crate::api::auth::Caller;
use crate::api::dto::{
    RunAccepted, RunFinished, RunList, RunListQuery, RunRequest, RunStatus, RunSummary, RunView,
    StoredResult,
};
use crate::api::error::{body_rejection, json_error, ApiError};
use crate::api::live::{LiveRun, Phase};
use crate::api::metrics::Rejection;
use crate::api::prepare::prepare;
use crate::api::state::{AppState, Job};
use crate::api::store::{now_ms, RunRow};
use crate::api::worker::{cancelled_before_start, finish};

/// A new run id: 16 random bytes in hex.
pub fn new_run_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Submit a run.
///
/// With `"wait": true` the answer is the finished result (200); otherwise 202 with the id and
/// a Location header to poll.
#[utoipa::path(
    post, path = "/v1/runs", tag = "runs",
    request_body = RunRequest,
    responses(
        (status = 200, description = "Finished (wait: true)", body = RunFinished),
        (status = 202, description = "Queued", body = RunAccepted,
            headers(("Location" = String, description = "URL of the run"))),
        (status = 400, description = "Malformed JSON, unknown field or bad base64", body = crate::api::error::ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = crate::api::error::ErrorBody),
        (status = 413, description = "Body too large", body = crate::api::error::ErrorBody),
        (status = 422, description = "Invalid limits, paths, unknown image or language", body = crate::api::error::ErrorBody),
        (status = 429, description = "The app's concurrency quota is used up", body = crate::api::error::ErrorBody,
            headers(("Retry-After" = u64))),
        (status = 503, description = "Queue full or shutting down", body = crate::api::error::ErrorBody,
            headers(("Retry-After" = u64))),
    ),
    security(("bearer" = []))
)]
pub async fn create_run(
    State(state): State<AppState>,
    Caller(app): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_rejection)?;
    let request: RunRequest = serde_json::from_slice(&body).map_err(|e| json_error(&e))?;
    let prepared = prepare(&request, &state.config, &state.catalog, &app)?;
    let retry = state.config.retry_after_secs;
    if state.is_shutting_down() {
        return Err(ApiError::unavailable(
            "shutting_down",
            "the daemon is shutting down",
            retry,
        ));
    }
    let Some(quota) = state.quotas.try_acquire(&app.name, app.max_concurrent) else {
        state.metrics.rejected(Rejection::Quota);
        return Err(ApiError::quota_exceeded(
            format!(
                "app {:?} already has {} runs queued or running",
                app.name, app.max_concurrent
            ),
            retry,
        ));
    };
    let Some(place) = state.queue.reserve() else {
        state.metrics.rejected(Rejection::QueueFull);
        return Err(ApiError::unavailable(
            "queue_full",
            "the run queue is full",
            retry,
        ));
    };
    let id = new_run_id();
    let live = Arc::new(
        LiveRun::new(id.clone(), app.name.clone(), quota)
            .map_err(|e| ApiError::internal(format!("cancel token: {e}")))?,
    );
    let stored = serde_json::to_string(&request)
        .map_err(|e| ApiError::internal(format!("encode request: {e}")))?;
    state.store.insert_run(&id, &app.name, &stored, now_ms())?;
    let mut phase = live.phase.subscribe();
    state.live.insert(live.clone());
    state.metrics.accepted();
    tracing::debug!(run = %id, app = %app.name, image = %prepared.image, "run accepted");
    place.push(Job {
        live,
        work: prepared.work,
        lease: prepared.lease,
        accepted: Instant::now(),
    });

    if !request.wait {
        let location = format!("/v1/runs/{id}");
        return Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            Json(RunAccepted {
                id,
                status: RunStatus::Queued,
            }),
        )
            .into_response());
    }
    let end = phase
        .wait_for(Phase::is_final)
        .await
        .map(|p| p.clone())
        .map_err(|_| ApiError::internal("run vanished"))?;
    match end {
        Phase::Done(finished) => Ok(Json(finished.as_ref().clone()).into_response()),
        _ => Err(ApiError::unavailable(
            "shutting_down",
            format!(
                "the daemon is shutting down; run {id} stays queued and runs after the restart"
            ),
            retry,
        )),
    }
}

/// The row of `id` if `app` may see it.
fn owned_run(state: &AppState, app: &str, id: &str) -> Result<RunRow, ApiError> {
    let row = state
        .store
        .get_run(id)?
        .ok_or_else(|| ApiError::not_found(format!("no run {id:?}")))?;
    if state.config.auth && row.app != app {
        return Err(ApiError::forbidden(format!(
            "run {id:?} belongs to another app"
        )));
    }
    Ok(row)
}

/// [`owned_run`] for another route module.
pub(super) fn owned_run_for(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<RunRow, ApiError> {
    owned_run(state, &caller.0.name, id)
}

fn view(row: RunRow) -> RunView {
    let (result, compile) = match row.result.as_deref().and_then(StoredResult::parse) {
        Some(stored) => (Some(stored.result), stored.compile),
        None => (None, None),
    };
    RunView {
        id: row.id,
        status: row.status,
        created_at: row.created_at,
        started_at: row.started_at,
        finished_at: row.finished_at,
        verdict: row.verdict,
        result,
        compile,
    }
}

/// A run's status, and its result once done.
#[utoipa::path(
    get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, body = RunView),
        (status = 401, body = crate::api::error::ErrorBody),
        (status = 403, description = "The run belongs to another app", body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_run(
    State(state): State<AppState>,
    Caller(app): Caller,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    Ok(Json(view(owned_run(&state, &app.name, &id)?)))
}

/// Cancel a run: a running cell is killed, a queued run ends at once; both get verdict
/// CANCELLED. A finished run is left as it is (200).
#[utoipa::path(
    delete, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run had already finished", body = RunView),
        (status = 202, description = "Cancellation under way", body = RunView),
        (status = 401, body = crate::api::error::ErrorBody),
        (status = 403, body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn delete_run(
    State(state): State<AppState>,
    Caller(app): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = owned_run(&state, &app.name, &id)?;
    let Some(live) = state.live.get(&id) else {
        return Ok(Json(view(row)).into_response());
    };
    live.cancel.cancel();
    if live.claim() {
        // Still queued: no worker will run it; end it here.
        finish(&state, &live, &cancelled_before_start(), 0);
    }
    let row = owned_run(&state, &app.name, &id)?;
    Ok((StatusCode::ACCEPTED, Json(view(row))).into_response())
}

/// The caller's runs, newest first.
#[utoipa::path(
    get, path = "/v1/runs", tag = "runs",
    params(RunListQuery),
    responses(
        (status = 200, body = RunList),
        (status = 400, description = "Bad query", body = crate::api::error::ErrorBody),
        (status = 401, body = crate::api::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn list_runs(
    State(state): State<AppState>,
    Caller(app): Caller,
    query: Result<Query<RunListQuery>, QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            "limit must be between 1 and 1000",
        ));
    }
    let runs = state
        .store
        .list_runs(&app.name, query.status, limit)?
        .into_iter()
        .map(|r| RunSummary {
            id: r.id,
            status: r.status,
            verdict: r.verdict,
            created_at: r.created_at,
            finished_at: r.finished_at,
        })
        .collect();
    Ok(Json(RunList { runs }))
}
