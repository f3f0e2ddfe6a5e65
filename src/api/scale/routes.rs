//! `/v1/runs` of an API node (`serve --queue`): the same shapes as the embedded routes
//! (routes/runs.rs, routes/events.rs), with runs recorded, queued, waited for and cancelled
//! through Redis, so any API node answers for any run.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::Stream;

use super::super::auth::Caller;
use super::super::dto::{RunFinished, RunList, RunListQuery, RunStatus, RunView};
use super::super::error::ApiError;
use super::super::idempotency::{key_reused, Attempt};
use super::super::metrics::Rejection;
use super::super::routes::events::{chunk_event, result_event, status_event};
use super::super::routes::runs::{
    accepted, list_query, new_run_id, parse_submission, run_list, view, Submission,
};
use super::super::state::AppState;
use super::super::store::{now_ms, App, RunRow};
use super::client::RedisQueue;
use super::events::{Ending, RunEventEntry};
use super::nodes::someone_has;
use super::record::RunRecord;
use super::RunBackend;
use crate::result::RunResult;

/// The routes, for an API node.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/runs", get(list_runs).post(create_run))
        .route("/v1/runs/{id}", get(get_run).delete(delete_run))
        .route("/v1/runs/{id}/events", get(run_events))
        .route("/v1/nodes", get(list_nodes))
}

/// Live worker nodes (admin: the local socket, or an app named in `admin_apps`).
async fn list_nodes(
    State(state): State<AppState>,
    Caller(app): Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    let admin = !state.config.auth
        || Arc::ptr_eq(&app, &state.local)
        || state.config.admin_apps.iter().any(|a| *a == app.name);
    if !admin {
        return Err(ApiError::forbidden("GET /v1/nodes is for admin apps"));
    }
    let q = queue(&state)?;
    let nodes = q.nodes().await.map_err(unavailable(&state))?;
    let (waiting, taken) = q.depth().await.map_err(unavailable(&state))?;
    Ok(Json(serde_json::json!({
        "nodes": nodes,
        "queue": { "waiting": waiting, "running": taken },
    })))
}

fn queue(state: &AppState) -> Result<Arc<RedisQueue>, ApiError> {
    match &state.backend {
        RunBackend::Redis(q) => Ok(q.clone()),
        RunBackend::Embedded => Err(ApiError::internal("no queue configured")),
    }
}

fn unavailable(state: &AppState) -> impl Fn(super::QueueError) -> ApiError {
    let retry = state.config.retry_after_secs;
    move |e| e.into_api(retry)
}

/// The app owning `key_hash`, through the node's key cache.
pub async fn app_for_key(state: &AppState, key_hash: &str) -> Result<Option<Arc<App>>, ApiError> {
    if let Some(hit) = state.keys.cached(key_hash) {
        return Ok(Some(hit));
    }
    let found = queue(state)?
        .app_by_key_hash(key_hash)
        .await
        .map_err(unavailable(state))?
        .map(Arc::new);
    state.keys.remember(key_hash, found.clone());
    Ok(found)
}

async fn create_run(
    State(state): State<AppState>,
    Caller(app): Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let q = queue(&state)?;
    // Checked here as a worker will (same configuration): mistakes are 4xx at once.
    let Submission {
        wait,
        prepared,
        stored,
        attempt,
    } = parse_submission(&state, &app, &headers, body).await?;
    let image = prepared.image;
    state.accepting()?;
    let nodes = q.nodes().await.map_err(unavailable(&state))?;
    if !someone_has(&nodes, &image) {
        return Err(ApiError::unprocessable(
            "no_worker_for_image",
            format!("no live worker node has the image {image:?}"),
        ));
    }
    let retry = state.config.retry_after_secs;
    if !q
        .acquire(&app.name, app.max_concurrent)
        .await
        .map_err(unavailable(&state))?
    {
        state.metrics.rejected(Rejection::Quota);
        return Err(state.quota_refusal(&app, "runs"));
    }
    let id = new_run_id();
    if let Some(a) = &attempt {
        match q.claim_key(&app.name, &a.key, &a.body_hash, &id).await {
            Ok(None) => {}
            Ok(Some(first)) => {
                let _ = q.release(&app.name).await;
                return replay(&state, &q, a, first, wait).await;
            }
            Err(e) => {
                let _ = q.release(&app.name).await;
                return Err(e.into_api(retry));
            }
        }
    }
    if let Err(e) = q.submit(&id, &app.name, &stored, now_ms()).await {
        // Not queued (MULTI is all or nothing): the unit and the key go back, if Redis lets us.
        let _ = q.release(&app.name).await;
        if let Some(a) = &attempt {
            let _ = q.release_key(&app.name, &a.key).await;
        }
        return Err(e.into_api(retry));
    }
    state.metrics.accepted();
    tracing::debug!(run = %id, app = %app.name, "run accepted (queued in redis)");
    if !wait {
        return Ok(accepted(id, RunStatus::Queued));
    }
    let finished = wait_result(&state, &q, &id).await?;
    Ok(Json(finished).into_response())
}

/// The answer to a retried POST (same `Idempotency-Key`, any API node): the first attempt's
/// run, as the first attempt would have answered.
async fn replay(
    state: &AppState,
    q: &RedisQueue,
    attempt: &Attempt,
    (hash, id): (String, String),
    wait: bool,
) -> Result<Response, ApiError> {
    if hash != attempt.body_hash {
        return Err(key_reused(attempt, &id));
    }
    if wait {
        return Ok(Json(wait_result(state, q, &id).await?).into_response());
    }
    // The first attempt queues its run right after claiming the key.
    for _ in 0..50 {
        if let Some(rec) = q.get(&id).await.map_err(unavailable(state))? {
            return Ok(accepted(id, rec.row.status));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    Err(ApiError::not_found(format!(
        "the run {id} of this Idempotency-Key is gone"
    )))
}

/// Reads the run's events until its result.
async fn wait_result(state: &AppState, q: &RedisQueue, id: &str) -> Result<RunFinished, ApiError> {
    let retry = state.config.retry_after_secs;
    let lost = |e: super::QueueError| {
        ApiError::unavailable(
            "queue_unavailable",
            format!(
                "run {id} was accepted; its result cannot be read now ({e}): poll /v1/runs/{id}"
            ),
            retry,
        )
    };
    let mut reader = q.reader().await.map_err(lost)?;
    let mut after = "0".to_string();
    loop {
        let (next, events) = reader.next(id, &after).await.map_err(lost)?;
        after = next;
        for e in events {
            if let RunEventEntry::Result(json) = e {
                return serde_json::from_str(&json)
                    .map_err(|e| ApiError::internal(format!("stored result: {e}")));
            }
        }
    }
}

async fn owned(state: &AppState, app: &str, id: &str) -> Result<RunRecord, ApiError> {
    let rec = queue(state)?
        .get(id)
        .await
        .map_err(unavailable(state))?
        .ok_or_else(|| ApiError::not_found(format!("no run {id:?}")))?;
    state.check_owner("run", id, &rec.row.app, app)?;
    Ok(rec)
}

async fn get_run(
    State(state): State<AppState>,
    Caller(app): Caller,
    Path(id): Path<String>,
) -> Result<Json<RunView>, ApiError> {
    Ok(Json(view(owned(&state, &app.name, &id).await?.row)))
}

async fn list_runs(
    State(state): State<AppState>,
    Caller(app): Caller,
    query: Result<Query<RunListQuery>, QueryRejection>,
) -> Result<Json<RunList>, ApiError> {
    let (status, limit) = list_query(query)?;
    let rows: Vec<RunRow> = queue(&state)?
        .list(&app.name, status, limit)
        .await
        .map_err(unavailable(&state))?;
    Ok(Json(run_list(rows)))
}

/// How long DELETE waits for the worker to end a cancelled run before answering 202.
const CANCEL_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

async fn delete_run(
    State(state): State<AppState>,
    Caller(app): Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let q = queue(&state)?;
    let rec = owned(&state, &app.name, &id).await?;
    if rec.row.status == RunStatus::Done {
        return Ok(Json(view(rec.row)).into_response());
    }
    if q.take_for_cancel(&id).await.map_err(unavailable(&state))? {
        // No worker took it: it ends here (a worker that reads its entry later skips it).
        let mut result = RunResult::sandbox_error("cancelled before start");
        result.verdict = crate::result::Verdict::CANCELLED;
        let ending = Ending::new(&id, &rec.row.app, &result, None, q.ttl_secs);
        q.exec(ending.pipe()).await.map_err(unavailable(&state))?;
        state.metrics.finished(result.verdict, 0);
    } else {
        q.request_cancel(&id).await.map_err(unavailable(&state))?;
        let _ = tokio::time::timeout(CANCEL_WAIT, wait_result(&state, &q, &id)).await;
    }
    let rec = owned(&state, &app.name, &id).await?;
    let status = if rec.row.status == RunStatus::Done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view(rec.row))).into_response())
}

/// What an SSE reader of a Redis run is doing.
struct Reading {
    state: AppState,
    id: String,
    after: String,
    reader: Option<super::client::EventReader>,
    pending: VecDeque<Event>,
    ended: bool,
}

impl Reading {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.ended {
                return None;
            }
            let q = queue(&self.state).ok()?;
            if self.reader.is_none() {
                self.reader = Some(q.reader().await.ok()?);
            }
            let reader = self.reader.as_mut()?;
            let (after, events) = match reader.next(&self.id, &self.after).await {
                Ok(r) => r,
                // Redis went away: end the stream; the client reconnects and replays.
                Err(_) => return None,
            };
            self.after = after;
            for e in events {
                self.pending.push_back(match e {
                    RunEventEntry::Status(s) => {
                        status_event(RunStatus::parse(&s).unwrap_or(RunStatus::Queued))
                    }
                    RunEventEntry::Stdout(b) => chunk_event("stdout", &b),
                    RunEventEntry::Stderr(b) => chunk_event("stderr", &b),
                    RunEventEntry::Result(json) => {
                        self.ended = true;
                        match serde_json::from_str::<RunFinished>(&json) {
                            Ok(f) => result_event(&f),
                            Err(_) => continue,
                        }
                    }
                });
            }
        }
    }
}

async fn run_events(
    State(state): State<AppState>,
    Caller(app): Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let rec = owned(&state, &app.name, &id).await?;
    let mut pending = VecDeque::new();
    // The events stream starts with the worker's first status; a queued run has none yet.
    pending.push_back(status_event(RunStatus::Queued));
    let reading = Reading {
        state,
        id: rec.row.id,
        after: "0".into(),
        reader: None,
        pending,
        ended: false,
    };
    let stream = futures_util::stream::unfold(reading, |mut r| async move {
        r.next().await.map(|e| (Ok(e), r))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
