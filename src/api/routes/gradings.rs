//! `/v1/gradings`: grade a submission against a suite (the HTTP face of `sandcell grade`).
//!
//! `POST` takes the suite as JSON plus the files it refers to; `wait: true` answers the
//! finished report (the CLI's `--format json` report plus `id` and `status`), otherwise 202
//! and the grading is polled (`GET /v1/gradings/{id}`) or followed as SSE
//! (`GET /v1/gradings/{id}/events`: `status`, `compiled`, one `test` per finished test,
//! then `done` with the report). Gradings are kept in the store (see [`crate::api::gradings`]).

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine;
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use utoipa::ToSchema;

use crate::api::auth::Caller;
use crate::api::dto::Encoding;
use crate::api::error::{body_rejection, json_error, ApiError};
use crate::api::grading_records as records;
use crate::api::gradings::{Grading, GradingJob, GradingStatus};
use crate::api::idempotency::{self, Attempt, Claim, Kind};
use crate::api::offload;
use crate::api::state::{AppState, GradingQueued, Job};
use crate::api::store::now_ms;
use crate::grade::limits::default_wall_time;
use crate::grade::{self, StoreResolver, Suite};
use crate::spec::{check_relative_path, LimitBounds};

use super::runs::new_run_id;

/// A file the suite refers to (submission, `stdin_file`, `expected_file`, `test_dir`
/// entries, checker files), by its path relative to the suite.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GradingFile {
    #[schema(example = "solutions/correct.cpp")]
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub encoding: Encoding,
}

/// A grading request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GradingRequest {
    /// The suite, as `sandcell grade` reads it from a `.json` suite file (see docs/grade.md).
    /// `rootfs` directories are refused: name an image or a language.
    #[schema(value_type = Object)]
    pub suite: serde_json::Value,
    #[serde(default)]
    pub files: Vec<GradingFile>,
    /// Answer the finished report (200) instead of 202.
    #[serde(default)]
    pub wait: bool,
    /// Tests run at the same time (default and maximum: the daemon's `workers`).
    #[serde(default, deserialize_with = "crate::api::dto::opt_u32")]
    #[schema(minimum = 1, maximum = 4294967295_u64)]
    pub jobs: Option<u32>,
}

/// A grading was accepted.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GradingAccepted {
    pub id: String,
    pub status: GradingStatus,
}

/// A grading's status, and its report once done.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GradingView {
    pub id: String,
    pub status: GradingStatus,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The suite's verdict once done (`AC`, `WA`, `CE`, ...).
    pub verdict: Option<String>,
    /// The report once done (the same JSON as `wait: true`).
    #[schema(value_type = Option<Object>)]
    pub report: Option<serde_json::Value>,
}

/// The finished report (`sandcell.grade/v1`, as `sandcell grade --format json` prints it)
/// plus `id` and `status`. Only the main fields are listed; see docs/grade.md for the rest.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GradingReport {
    pub id: String,
    pub status: GradingStatus,
    #[schema(example = "sandcell.grade/v1")]
    pub schema: String,
    pub suite: String,
    /// `AC` when every test passed, else the first failing verdict (`CE`, `WA`, ...).
    pub verdict: String,
    pub passed: u64,
    pub total: u64,
    pub score: f64,
    pub max_score: f64,
    /// One entry per test, in suite order.
    #[schema(value_type = Vec<Object>)]
    pub tests: Vec<serde_json::Value>,
}

/// One Server-Sent Event of `GET /v1/gradings/{id}/events`; `data` is JSON text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GradingSseEvent {
    /// `status`, `compiled`, `test` or `done`.
    pub event: String,
    pub data: String,
}

fn decode(path: &str, content: &str, encoding: Encoding) -> Result<Vec<u8>, ApiError> {
    match encoding {
        Encoding::Utf8 => Ok(content.as_bytes().to_vec()),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(content)
            .map_err(|e| ApiError::unprocessable("bad_base64", format!("files[{path:?}]: {e}"))),
    }
}

/// The uploaded files by path; paths are checked like a run's file paths.
fn uploaded_files(files: &[GradingFile]) -> Result<BTreeMap<String, Vec<u8>>, ApiError> {
    let mut out = BTreeMap::new();
    for file in files {
        check_relative_path("files[].path", &file.path)?;
        let bytes = decode(&file.path, &file.content, file.encoding)?;
        if out.insert(file.path.clone(), bytes).is_some() {
            return Err(ApiError::unprocessable(
                "invalid_files",
                format!("files: {:?} is given twice", file.path),
            ));
        }
    }
    Ok(out)
}

/// The suite from the request, with errors naming the field (`suite.tests[2].comparator`).
fn parse_suite(value: serde_json::Value) -> Result<Suite, ApiError> {
    serde_path_to_error::deserialize::<_, Suite>(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "suite".to_string()
        } else {
            format!("suite.{path}")
        };
        ApiError::unprocessable("invalid_suite", format!("{field}: {}", e.into_inner()))
    })
}

/// The daemon's maxima for grading cells. The grader's default wall time follows the CPU
/// time ([`default_wall_time`]), so the wall-time maximum is raised to what the CPU-time
/// maximum implies: a suite that only sets `time` is never refused for a wall time it did
/// not ask for.
fn grading_bounds(max: &LimitBounds) -> LimitBounds {
    let implied_wall = default_wall_time(max.max_cpu_time);
    LimitBounds {
        max_wall_time: max.max_wall_time.max(implied_wall),
        ..max.clone()
    }
}

fn jobs(requested: Option<u32>, workers: usize) -> Result<usize, ApiError> {
    let workers = workers.max(1);
    match requested {
        None => Ok(workers),
        Some(0) => Err(ApiError::unprocessable(
            "invalid_field",
            "jobs: must be at least 1",
        )),
        Some(n) => Ok((n as usize).min(workers)),
    }
}

/// Grade a submission against a suite.
///
/// With `"wait": true` the answer is the finished report (200); otherwise 202 with the id and
/// a Location header to poll.
#[utoipa::path(
    post, path = "/v1/gradings", tag = "gradings",
    request_body = GradingRequest,
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255,
        pattern = "^[!-~]{1,255}$",
        description = "Names this attempt (1-255 visible ASCII): the same key from the same app within 24 h answers the first attempt's grading instead of starting another; with a different body it is a 422")),
    responses(
        (status = 200, description = "Finished (wait: true)", body = GradingReport),
        (status = 202, description = "Accepted", body = GradingAccepted,
            headers(("Location" = String, description = "URL of the grading"))),
        (status = 400, description = "Malformed JSON, unknown field or bad base64", body = crate::api::error::ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = crate::api::error::ErrorBody),
        (status = 413, description = "Body too large", body = crate::api::error::ErrorBody),
        (status = 422, description = "Invalid suite (the message names the field), bad path, unknown image", body = crate::api::error::ErrorBody),
        (status = 429, description = "The app's concurrency quota is used up", body = crate::api::error::ErrorBody,
            headers(("Retry-After" = u64))),
        (status = 503, description = "The job queue is full, or shutting down", body = crate::api::error::ErrorBody,
            headers(("Retry-After" = u64))),
    ),
    security(("bearer" = []))
)]
pub async fn create_grading(
    State(state): State<AppState>,
    Caller(app): Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(body_rejection)?;
    let key = idempotency::key_of(&headers)?;
    // Parse and check off the connection threads: a body may be megabytes.
    let (wait, jobs, prepared, attempt) = {
        let state = state.clone();
        offload::blocking(move || {
            let attempt = key.map(|key| Attempt {
                key,
                body_hash: idempotency::body_hash(&body),
            });
            let crate::api::dto::Object(request) =
                serde_json::from_slice::<crate::api::dto::Object<GradingRequest>>(&body)
                    .map_err(|e| json_error(&e))?;
            drop(body);
            let files = uploaded_files(&request.files)?;
            let jobs = jobs(request.jobs, state.config.workers)?;
            let suite = parse_suite(request.suite)?;
            let resolver = StoreResolver {
                state_dir: state.config.state_dir.clone(),
                allow_rootfs_dirs: false,
            };
            let bounds = grading_bounds(&state.config.max_limits);
            let prepared = grade::prepare_uploaded(&suite, files, &resolver, &bounds)
                .map_err(|e| ApiError::unprocessable("invalid_suite", e.to_string()))?;
            Ok((request.wait, jobs, prepared, attempt))
        })
        .await?
    };
    let (quota, place) = state.admit(&app)?;
    let id = new_run_id();
    if let Some(attempt) = &attempt {
        if let Claim::Replay(first) =
            idempotency::claim(&state.store, &app.name, Kind::Grading, attempt, &id)?
        {
            drop((quota, place));
            return replay(&state, first, wait).await;
        }
    }
    let forget = |state: &AppState| {
        if let Some(attempt) = &attempt {
            idempotency::release(&state.store, &app.name, Kind::Grading, attempt);
        }
    };
    let grading = match state.gradings.register(id.clone(), app.name.clone()) {
        Ok(g) => g,
        Err(e) => {
            forget(&state);
            return Err(ApiError::internal(e.to_string()));
        }
    };
    // Committed before it is answered (and before a worker can record progress).
    let names: Vec<String> = prepared.tests.iter().map(|t| t.name.clone()).collect();
    let record = {
        let (store, id, app, suite) = (
            state.store.clone(),
            id.clone(),
            app.name.clone(),
            prepared.name.clone(),
        );
        offload::blocking(move || {
            records::insert(&store, &id, &app, &suite, &names, now_ms()).map_err(ApiError::from)
        })
        .await
    };
    if let Err(e) = record {
        state.gradings.unregister(&id);
        forget(&state);
        return Err(e);
    }
    let job = GradingJob {
        suite: prepared,
        jobs,
        allow_degraded: state.config.allow_degraded,
        quota,
        store: state.store.clone(),
    };
    place.push(Job::Grading(Box::new(GradingQueued {
        grading: grading.clone(),
        job,
    })));
    tracing::debug!(grading = %id, app = %app.name, "grading accepted");
    if !wait {
        return Ok(accepted(id, GradingStatus::Queued));
    }
    let report = grading.done().await;
    Ok(Json(report.as_ref().clone()).into_response())
}

fn accepted(id: String, status: GradingStatus) -> Response {
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/v1/gradings/{id}"))],
        Json(GradingAccepted { id, status }),
    )
        .into_response()
}

/// The answer to a retried POST (same `Idempotency-Key`): the first attempt's grading,
/// running here or (after a restart) finished in the store.
async fn replay(state: &AppState, id: String, wait: bool) -> Result<Response, ApiError> {
    let Some(grading) = state.gradings.get(&id) else {
        let record = records::get(&state.store, &id)?
            .ok_or_else(|| ApiError::not_found(format!("grading {id} is gone (pruned)")))?;
        return Ok(match (wait, record.report) {
            (true, Some(report)) => Json(report).into_response(),
            _ => accepted(id, record.status),
        });
    };
    if wait {
        let report = grading.done().await;
        return Ok(Json(report.as_ref().clone()).into_response());
    }
    Ok(accepted(id, grading.snapshot(0).status))
}

/// The grading `id` if `caller` may see it.
fn owned_grading(state: &AppState, caller: &Caller, id: &str) -> Result<Arc<Grading>, ApiError> {
    let grading = state
        .gradings
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no grading {id:?}")))?;
    state.check_owner("grading", id, &grading.app, &caller.0.name)?;
    Ok(grading)
}

/// A grading's status, and its report once done.
#[utoipa::path(
    get, path = "/v1/gradings/{id}", tag = "gradings",
    params(("id" = String, Path, description = "Grading id")),
    responses(
        (status = 200, body = GradingView),
        (status = 401, body = crate::api::error::ErrorBody),
        (status = 403, description = "The grading belongs to another app", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such grading (or pruned)", body = crate::api::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn get_grading(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<GradingView>, ApiError> {
    if state.gradings.get(&id).is_none() {
        // Finished long ago or before a restart: the store has it.
        let store = state.store.clone();
        let lookup = id.clone();
        let record =
            offload::blocking(move || records::get(&store, &lookup).map_err(ApiError::from))
                .await?
                .ok_or_else(|| ApiError::not_found(format!("no grading {id:?}")))?;
        state.check_owner("grading", &id, &record.app, &caller.0.name)?;
        return Ok(Json(GradingView {
            id,
            status: record.status,
            created_at: record.created_at,
            started_at: record.started_at,
            finished_at: record.finished_at,
            verdict: record
                .report
                .as_ref()
                .and_then(|r| r["verdict"].as_str())
                .map(str::to_string),
            report: record.report,
        }));
    }
    let grading = owned_grading(&state, &caller, &id)?;
    let snap = grading.snapshot(usize::MAX);
    let report = snap.report.map(|r| r.as_ref().clone());
    Ok(Json(GradingView {
        id,
        status: snap.status,
        created_at: snap.created_at,
        started_at: snap.started_at,
        finished_at: snap.finished_at,
        verdict: report
            .as_ref()
            .and_then(|r| r["verdict"].as_str())
            .map(str::to_string),
        report,
    }))
}

struct Feed {
    grading: Arc<Grading>,
    changes: watch::Receiver<u64>,
    next: usize,
    pending: VecDeque<Event>,
    ended: bool,
}

impl Feed {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            // Mark the current version seen before reading, so no change falls in between.
            self.changes.borrow_and_update();
            let snap = self.grading.snapshot(self.next);
            self.next += snap.events.len();
            self.pending.extend(
                snap.events
                    .into_iter()
                    .map(|e| Event::default().event(e.name).data(e.data)),
            );
            if let Some(report) = snap.report {
                self.pending
                    .push_back(Event::default().event("done").data(report.to_string()));
                self.ended = true;
            } else if self.pending.is_empty() && self.changes.changed().await.is_err() {
                self.ended = true;
            }
        }
    }
}

/// Live events of a grading (text/event-stream).
#[utoipa::path(
    get, path = "/v1/gradings/{id}/events", tag = "gradings",
    params(("id" = String, Path, description = "Grading id")),
    responses(
        (status = 200, description = "text/event-stream: status, compiled, test (one per finished test), done (the report)", content_type = "text/event-stream", body = GradingSseEvent),
        (status = 401, body = crate::api::error::ErrorBody),
        (status = 403, body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn grading_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let grading = owned_grading(&state, &caller, &id)?;
    let changes = grading.subscribe();
    let status = grading.snapshot(usize::MAX).status;
    let feed = Feed {
        grading,
        changes,
        next: 0,
        pending: VecDeque::from([Event::default()
            .event("status")
            .data(json!({ "status": status }).to_string())]),
        ended: false,
    };
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        feed.next().await.map(|e| (Ok(e), feed))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The routes of this module.
pub fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route("/v1/gradings", axum::routing::post(create_grading))
        .route("/v1/gradings/{id}", axum::routing::get(get_grading))
        .route(
            "/v1/gradings/{id}/events",
            axum::routing::get(grading_events),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_errors_name_the_field() {
        let e = parse_suite(json!({"tests": [{"name": "a", "comparator": 5}]})).unwrap_err();
        assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            e.message.starts_with("suite.tests[0].comparator:"),
            "{}",
            e.message
        );
        let e = parse_suite(json!({"languag": "cpp"})).unwrap_err();
        assert!(e.message.contains("languag"), "{}", e.message);
    }

    #[test]
    fn file_paths_are_checked_and_unique() {
        let file = |path: &str| GradingFile {
            path: path.into(),
            content: "x".into(),
            encoding: Encoding::Utf8,
        };
        assert!(uploaded_files(&[file("../etc/passwd")]).is_err());
        assert!(uploaded_files(&[file("/abs")]).is_err());
        assert!(uploaded_files(&[file("a.cpp"), file("a.cpp")]).is_err());
        let ok = uploaded_files(&[file("tests/1.in"), file("main.cpp")]).unwrap();
        assert_eq!(ok.len(), 2);
        let bad = GradingFile {
            encoding: Encoding::Base64,
            content: "!!".into(),
            ..file("b.bin")
        };
        assert_eq!(
            uploaded_files(&[bad]).unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn wall_time_maximum_covers_the_default_wall_of_the_cpu_maximum() {
        let max = crate::api::ServeConfig::default().max_limits;
        let b = grading_bounds(&max);
        assert_eq!(b.max_wall_time, default_wall_time(max.max_cpu_time));
        assert_eq!(b.max_memory, max.max_memory);
    }

    #[test]
    fn jobs_are_at_least_one_and_at_most_the_workers() {
        assert_eq!(jobs(None, 4).unwrap(), 4);
        assert_eq!(jobs(Some(2), 4).unwrap(), 2);
        assert_eq!(jobs(Some(9), 4).unwrap(), 4);
        assert!(jobs(Some(0), 4).is_err());
    }
}
