//! `/v1/runs`: submit (sync or async), look up, list, cancel.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::RngCore;

use crate::api::auth::Caller;
use crate::api::dto::{
    Object, RunAccepted, RunFinished, RunList, RunListQuery, RunRequest, RunStatus, RunSummary,
    RunView, StoredResult,
};
use crate::api::error::{body_rejection, json_error, ApiError};
use crate::api::idempotency::{self, Attempt, Claim, Kind};
use crate::api::live::{LiveRun, Phase};
use crate::api::offload;
use crate::api::prepare::{prepare, Prepared};
use crate::api::state::{AppState, Job, RunJob};
use crate::api::store::{now_ms, App, RunRow};
use crate::api::worker::{cancelled_before_start, finish};

/// A `POST /v1/runs` body parsed, checked against the configuration and the app's bounds,
/// and encoded for the store, with its idempotency attempt.
pub(crate) struct Submission {
    pub wait: bool,
    pub prepared: Prepared,
    pub stored: String,
    pub attempt: Option<Attempt>,
}

/// Parses and checks a run submission off the connection threads (a body may be megabytes):
/// every mistake is a 4xx here, before anything is recorded.
pub(crate) async fn parse_submission(
    state: &AppState,
    app: &Arc<App>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Submission, ApiError> {
    let body = body.map_err(body_rejection)?;
    let key = idempotency::key_of(headers)?;
    let state = state.clone();
    let app = app.clone();
    offload::blocking(move || {
        let attempt = key.map(|key| Attempt {
            key,
            body_hash: idempotency::body_hash(&body),
        });
        let Object(request) =
            serde_json::from_slice::<Object<RunRequest>>(&body).map_err(|e| json_error(&e))?;
        drop(body);
        let prepared = prepare(&request, &state.config, &state.catalog, &app)?;
        let stored = serde_json::to_string(&request)
            .map_err(|e| ApiError::internal(format!("encode request: {e}")))?;
        Ok(Submission {
            wait: request.wait,
            prepared,
            stored,
            attempt,
        })
    })
    .await
}

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
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
        pattern = "^[!-~]{1,255}$",
        description = "Names this attempt (1-255 visible ASCII): the same key from the same app within 24 h answers the first attempt's run instead of starting another; with a different body it is a 422")),
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
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Submission {
        wait,
        prepared,
        stored,
        attempt,
    } = parse_submission(&state, &app, &headers, body).await?;
    let retry = state.config.retry_after_secs;
    let (quota, place) = state.admit(&app)?;
    let id = new_run_id();
    if let Some(attempt) = &attempt {
        if let Claim::Replay(first) =
            idempotency::claim(&state.store, &app.name, Kind::Run, attempt, &id)?
        {
            drop((place, quota));
            return replay(&state, &app.name, first, wait).await;
        }
    }
    let live = match LiveRun::new(id.clone(), app.name.clone(), quota) {
        Ok(live) => Arc::new(live),
        Err(e) => {
            release_key(&state, &app.name, attempt.as_ref());
            return Err(ApiError::internal(format!("cancel token: {e}")));
        }
    };
    let inserted = {
        let state = state.clone();
        let (id, app) = (id.clone(), app.name.clone());
        offload::blocking(move || Ok(state.store.insert_run(&id, &app, &stored, now_ms())?)).await
    };
    if let Err(e) = inserted {
        release_key(&state, &app.name, attempt.as_ref());
        return Err(e);
    }
    let mut phase = live.phase.subscribe();
    state.live.insert(live.clone());
    state.metrics.accepted();
    tracing::debug!(run = %id, app = %app.name, image = %prepared.image, "run accepted");
    place.push(Job::Run(RunJob {
        live,
        work: prepared.work,
        lease: prepared.lease,
        accepted: Instant::now(),
    }));

    if !wait {
        return Ok(accepted(id, RunStatus::Queued));
    }
    let end = phase
        .wait_for(Phase::is_final)
        .await
        .map(|p| p.clone())
        .map_err(|_| ApiError::internal("run vanished"))?;
    finished_answer(id, end, retry)
}

fn release_key(state: &AppState, app: &str, attempt: Option<&Attempt>) {
    if let Some(attempt) = attempt {
        idempotency::release(&state.store, app, Kind::Run, attempt);
    }
}

pub(crate) fn accepted(id: String, status: RunStatus) -> Response {
    let location = format!("/v1/runs/{id}");
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(RunAccepted { id, status }),
    )
        .into_response()
}

/// The answer of a `wait: true` run once its phase is final.
fn finished_answer(id: String, end: Phase, retry: u64) -> Result<Response, ApiError> {
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

/// The answer to a retried POST (same `Idempotency-Key`): the first attempt's run, as the
/// first attempt would have answered it (202, or its result with `wait: true`).
async fn replay(state: &AppState, app: &str, id: String, wait: bool) -> Result<Response, ApiError> {
    tracing::debug!(run = %id, app, "idempotent replay");
    let retry = state.config.retry_after_secs;
    if wait {
        if let Some(live) = state.live.get(&id) {
            let end = live
                .phase
                .subscribe()
                .wait_for(Phase::is_final)
                .await
                .map(|p| p.clone())
                .map_err(|_| ApiError::internal("run vanished"))?;
            return finished_answer(id, end, retry);
        }
    }
    // The first attempt inserts its row right after claiming the key.
    let mut row = None;
    for _ in 0..50 {
        row = state.store.get_run(&id)?;
        if row.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let Some(row) = row else {
        return Err(ApiError::not_found(format!(
            "the run {id} of this Idempotency-Key was pruned"
        )));
    };
    match (wait, row.result.as_deref().and_then(StoredResult::parse)) {
        (true, Some(stored)) => Ok(Json(RunFinished {
            id,
            status: RunStatus::Done,
            result: stored.result,
            compile: stored.compile,
        })
        .into_response()),
        _ => Ok(accepted(id, row.status)),
    }
}

/// The row of `id` if `app` may see it.
fn owned_run(state: &AppState, app: &str, id: &str) -> Result<RunRow, ApiError> {
    let row = state
        .store
        .get_run(id)?
        .ok_or_else(|| ApiError::not_found(format!("no run {id:?}")))?;
    state.check_owner("run", id, &row.app, app)?;
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

pub(crate) fn view(row: RunRow) -> RunView {
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

/// How long DELETE waits for a cancelled cell to end before answering 202.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Cancel a run: a running cell is killed, a queued run ends at once; both get verdict
/// CANCELLED. The answer is the run's new state (200): done, with verdict CANCELLED (or the
/// run's own verdict if it ended first). A finished run is left as it is (200). Only when a
/// killed cell has not ended within 10 s is the answer 202 with the state so far: poll
/// `GET /v1/runs/{id}`.
#[utoipa::path(
    delete, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "The run is done (cancelled now, or finished before)", body = RunView),
        (status = 202, description = "Cancellation still under way after 10 s: poll the run", body = RunView),
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
    let mut phase = live.phase.subscribe();
    drop(live);
    let ended = tokio::time::timeout(CANCEL_WAIT, phase.wait_for(Phase::is_final))
        .await
        .is_ok_and(|r| r.is_ok());
    let row = owned_run(&state, &app.name, &id)?;
    let status = if ended && row.status == RunStatus::Done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view(row))).into_response())
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
    let (status, limit) = list_query(query)?;
    let runs = state.store.list_runs(&app.name, status, limit)?;
    Ok(Json(run_list(runs)))
}

/// A run listing's query, checked: the status filter and the limit (1 to 1000, 50 by
/// default). Both route sets (embedded and Redis) list through it.
pub(crate) fn list_query(
    query: Result<Query<RunListQuery>, QueryRejection>,
) -> Result<(Option<RunStatus>, u32), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            "limit must be between 1 and 1000",
        ));
    }
    Ok((query.status, limit))
}

/// The listing's body for these run records.
pub(crate) fn run_list(rows: Vec<RunRow>) -> RunList {
    let runs = rows
        .into_iter()
        .map(|r| RunSummary {
            id: r.id,
            status: r.status,
            verdict: r.verdict,
            created_at: r.created_at,
            finished_at: r.finished_at,
        })
        .collect();
    RunList { runs }
}
