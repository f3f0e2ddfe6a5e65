//! The Piston v2 API over sandcell runs: `GET /api/v2/runtimes` and `POST /api/v2/execute`,
//! also under `/api/v2/piston/` (the prefix of the hosted service that clients default to).
//! An execute is a run of the caller's app like any other (queued, stored, quota-counted);
//! the answer waits for its end, as Piston's does. Errors are `{"message": ...}`.

pub mod request;
pub mod response;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

use self::request::{Execute, Maxima};
use super::adjust::{self, CompileLimits, Extras};
use super::auth::{caller, Refused};
use super::enqueue::{enqueue, new_uuid_run_id, wait_final};
use super::languages::{find_runtime, piston_runtimes, PistonRuntime};
use crate::api::dto::{Encoding, FileInput, LimitsInput, RunRequest, StoredResult};
use crate::api::error::ApiError;
use crate::api::prepare::{bounds_for, prepare, Prepared};
use crate::api::state::AppState;
use crate::api::store::App;
use crate::result::{RunResult, Verdict};

/// Piston's default run limits (ms) when a request names none.
const RUN_TIMEOUT_MS: u64 = 3000;
const COMPILE_TIMEOUT_MS: u64 = 10_000;

pub fn routes() -> Router<AppState> {
    let mut r = Router::new();
    for prefix in ["/api/v2", "/api/v2/piston"] {
        r = r
            .route(&format!("{prefix}/runtimes"), get(runtimes))
            .route(&format!("{prefix}/execute"), post(execute));
    }
    r
}

/// An error in Piston's shape.
#[derive(Debug, thiserror::Error)]
#[error("{status}: {message}")]
pub struct PistonError {
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
}

impl PistonError {
    fn bad_request(message: impl Into<String>) -> Self {
        PistonError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<Refused> for PistonError {
    fn from(r: Refused) -> Self {
        PistonError {
            status: match r {
                Refused::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNAUTHORIZED,
            },
            message: r.to_string(),
            retry_after: None,
        }
    }
}

impl From<ApiError> for PistonError {
    fn from(e: ApiError) -> Self {
        // Piston answers every bad request 400; limits and queue keep their status.
        let status = if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            e.status
        };
        PistonError {
            status,
            message: e.message,
            retry_after: e.retry_after,
        }
    }
}

impl IntoResponse for PistonError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, message = %self.message, "piston request failed");
        }
        let mut r = (self.status, Json(json!({ "message": self.message }))).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

async fn runtimes(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, PistonError> {
    caller(&state, &headers)?;
    let list: Vec<Value> = piston_runtimes(&state)
        .into_iter()
        .map(|r| {
            json!({
                "language": r.language,
                "version": r.offered.plain_version(),
                "aliases": r.aliases,
                "runtime": r.offered.name,
            })
        })
        .collect();
    Ok(Json(Value::Array(list)))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The `/v1` request of an execute: the first utf8 file is the source (stored under the
/// language's source file name unless a file has that name), stdin ends with a newline as
/// Piston makes it, Piston's default timeouts.
fn to_run(ex: &Execute, rt: &PistonRuntime, maxima: &Maxima) -> (RunRequest, Extras) {
    let source_file = &rt.offered.source_file;
    let named = ex.files.iter().any(|f| &f.name == source_file);
    let mut source_done = named;
    let files = ex
        .files
        .iter()
        .map(|f| {
            let path = if !source_done && f.is_text {
                source_done = true;
                source_file.clone()
            } else {
                f.name.clone()
            };
            FileInput {
                path,
                content: b64(&f.content),
                encoding: Encoding::Base64,
                executable: false,
            }
        })
        .collect();
    let mut stdin = ex.stdin.clone();
    if !stdin.ends_with('\n') {
        stdin.push('\n');
    }
    let wall = ex
        .run_timeout
        .unwrap_or(RUN_TIMEOUT_MS.min(maxima.timeout_ms));
    let cpu = ex.run_cpu_time.unwrap_or(wall.min(maxima.cpu_time_ms));
    let run = RunRequest {
        language: Some(rt.offered.name.clone()),
        files,
        stdin: Some(stdin),
        limits: LimitsInput {
            wall_time: Some(wall as i64),
            cpu_time: Some(cpu as i64),
            memory: ex.run_memory_limit.map(|m| m as i64),
            ..LimitsInput::default()
        },
        ..RunRequest::default()
    };
    let compile_wall = ex
        .compile_timeout
        .unwrap_or(COMPILE_TIMEOUT_MS.min(maxima.timeout_ms));
    let extras = Extras {
        args: ex.args.clone(),
        compile: CompileLimits {
            wall_time_ms: Some(compile_wall),
            cpu_time_ms: Some(
                ex.compile_cpu_time
                    .unwrap_or(compile_wall.min(maxima.cpu_time_ms)),
            ),
            memory: ex.compile_memory_limit,
        },
        ..Extras::default()
    };
    (run, extras)
}

/// Everything up to the queue, on a blocking thread.
fn build(
    state: &AppState,
    app: &App,
    body: &Value,
) -> Result<(Prepared, RunRequest, PistonRuntime), PistonError> {
    let bounds = bounds_for(&state.config, app);
    let ms = |d: std::time::Duration| d.as_millis().min(u64::MAX as u128) as u64;
    let maxima = Maxima {
        timeout_ms: ms(bounds.max_wall_time),
        cpu_time_ms: ms(bounds.max_cpu_time),
        memory: bounds.max_memory,
    };
    let ex = request::parse(body, &maxima).map_err(PistonError::bad_request)?;
    let runtimes = piston_runtimes(state);
    let rt = find_runtime(&runtimes, &ex.language, &ex.version)
        .ok_or_else(|| {
            PistonError::bad_request(format!("{}-{} runtime is unknown", ex.language, ex.version))
        })?
        .clone();
    let (run, extras) = to_run(&ex, &rt, &maxima);
    let prepared = prepare(&run, &state.config, &state.catalog, app)?;
    let prepared = adjust::apply(prepared, extras, &bounds)?;
    Ok((prepared, run, rt))
}

async fn execute(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, PistonError> {
    let app: Arc<App> = caller(&state, &headers)?;
    let body = body.map_err(|r| PistonError {
        status: if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        },
        message: r.body_text(),
        retry_after: None,
    })?;
    // Piston's clients do not always say `Content-Type: application/json`; the body is JSON.
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| PistonError::bad_request(format!("malformed JSON body: {e}")))?;
    let (prepared, run, rt) = {
        let state = state.clone();
        let app = app.clone();
        tokio::task::spawn_blocking(move || build(&state, &app, &body))
            .await
            .map_err(|e| PistonError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("request worker: {e}"),
                retry_after: None,
            })??
    };
    let accepted = enqueue(&state, &app, new_uuid_run_id(), prepared, &run, |_| Ok(())).await?;
    if wait_final(accepted.phase).await.is_none() {
        return Err(PistonError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server is shutting down; the job runs after the restart".into(),
            retry_after: Some(state.config.retry_after_secs),
        });
    }
    let stored = state
        .store
        .get_run(&accepted.id)
        .map_err(ApiError::from)?
        .and_then(|row| row.result)
        .as_deref()
        .and_then(StoredResult::parse)
        .ok_or_else(|| PistonError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "the job's result is missing".into(),
            retry_after: None,
        })?;
    let result = RunResult::from(stored.result);
    let compile = stored.compile.map(RunResult::from);
    let mut answer = json!({
        "language": rt.language,
        "version": rt.offered.plain_version(),
    });
    // Piston answers `run` even when compiling failed: then it is the compile stage.
    answer["run"] = match (&compile, result.verdict) {
        (Some(c), Verdict::CE) => response::stage(c),
        _ => response::stage(&result),
    };
    if let Some(c) = &compile {
        answer["compile"] = response::stage(c);
    }
    Ok(Json(answer))
}
