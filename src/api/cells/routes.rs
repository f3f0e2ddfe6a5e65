//! `/v1/cells`: long-lived cells over HTTP. Cell set-up, execs and copies block, so each
//! runs on a std thread of its own (never on the runtime's threads, whose blocking pool is
//! small and shared with request parsing), answered through a oneshot channel.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::Deserialize;

use super::dto::{CellList, CellRequest, CellView, ExecRequest, ExecStatus, ExecView};
use super::files::{self, FileError, Opened};
use super::records;
use super::registry::{exec_spec, gone, record_view, CellEntry};
use crate::api::auth::Caller;
use crate::api::dto::Object;
use crate::api::error::{body_rejection, json_error, ApiError};
use crate::api::live::Phase;
use crate::api::routes::events::{live_feed, sse};
use crate::api::state::AppState;

/// The routes of `/v1/cells`; file uploads take up to `max_transfer` bytes.
pub fn routes(max_transfer: usize) -> Router<AppState> {
    Router::new()
        .route("/v1/cells", get(list_cells).post(create_cell))
        .route("/v1/cells/{id}", get(get_cell).delete(delete_cell))
        .route("/v1/cells/{id}/exec", post(exec))
        .route("/v1/cells/{id}/exec/{n}", get(get_exec))
        .route("/v1/cells/{id}/exec/{n}/events", get(exec_events))
        .route(
            "/v1/cells/{id}/files/{*path}",
            get(get_file)
                .put(put_file)
                .layer(DefaultBodyLimit::max(max_transfer)),
        )
}

/// Runs `f` on a thread of its own and waits for its answer.
async fn on_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| ApiError::internal(format!("start a {name} thread: {e}")))?;
    rx.await
        .map_err(|_| ApiError::internal(format!("the {name} thread ended without an answer")))?
}

fn parse<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(body_rejection)?;
    let Object(value) = serde_json::from_slice::<Object<T>>(&body).map_err(|e| json_error(&e))?;
    Ok(value)
}

fn live_cell(state: &AppState, caller: &Caller, id: &str) -> Result<Arc<CellEntry>, ApiError> {
    if let Some(entry) = state.cells.get(&caller.0.name, id) {
        return Ok(entry);
    }
    match records::get(&state.store, id)? {
        Some(r) if r.app == caller.0.name => {
            Err(gone(id, r.end_reason.as_deref().unwrap_or("ended")))
        }
        _ => Err(ApiError::not_found(format!("no cell {id}"))),
    }
}

/// Create a long-lived cell.
#[utoipa::path(
    post, path = "/v1/cells", tag = "cells",
    request_body = CellRequest,
    responses(
        (status = 201, description = "The cell, set up and waiting for execs", body = CellView),
        (status = 400, body = crate::api::error::ErrorBody),
        (status = 401, body = crate::api::error::ErrorBody),
        (status = 422, description = "Unknown image or language, bad limits", body = crate::api::error::ErrorBody),
        (status = 429, description = "The app holds as many cells as it may", body = crate::api::error::ErrorBody),
        (status = 503, description = "The daemon holds as many cells as it may, or shuts down", body = crate::api::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn create_cell(
    State(state): State<AppState>,
    Caller(app): Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: CellRequest = parse(body)?;
    let view = on_thread("cell-create", move || {
        state.cells.create(&state, &app, &request)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// At most this many cells (newest first; 1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

/// The app's cells, newest first: live ones and the records of ended ones.
#[utoipa::path(
    get, path = "/v1/cells", tag = "cells",
    params(ListQuery),
    responses((status = 200, body = CellList),
        (status = 400, description = "Bad query", body = crate::api::error::ErrorBody),
        (status = 401, body = crate::api::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn list_cells(
    State(state): State<AppState>,
    Caller(app): Caller,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<CellList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("bad_query", e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request(
            "bad_query",
            "limit must be between 1 and 1000",
        ));
    }
    let records = records::list(&state.store, &app.name, limit)?;
    let cells = records
        .into_iter()
        .map(|r| match state.cells.get(&app.name, &r.id) {
            Some(entry) => entry.view(),
            None => record_view(r),
        })
        .collect();
    Ok(Json(CellList { cells }))
}

/// One cell: its state and what it used so far (as of its last exec).
#[utoipa::path(
    get, path = "/v1/cells/{id}", tag = "cells",
    params(("id" = String, Path, description = "Cell id")),
    responses((status = 200, body = CellView), (status = 401, body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_cell(
    State(state): State<AppState>,
    Caller(app): Caller,
    Path(id): Path<String>,
) -> Result<Json<CellView>, ApiError> {
    if let Some(entry) = state.cells.get(&app.name, &id) {
        return Ok(Json(entry.view()));
    }
    match records::get(&state.store, &id)? {
        Some(r) if r.app == app.name => Ok(Json(record_view(r))),
        _ => Err(ApiError::not_found(format!("no cell {id}"))),
    }
}

/// End a cell: every process in it is killed, its files are gone.
#[utoipa::path(
    delete, path = "/v1/cells/{id}", tag = "cells",
    params(("id" = String, Path, description = "Cell id")),
    responses((status = 200, description = "The ended cell", body = CellView),
        (status = 401, body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn delete_cell(
    State(state): State<AppState>,
    Caller(app): Caller,
    Path(id): Path<String>,
) -> Result<Json<CellView>, ApiError> {
    if let Some(entry) = state.cells.get(&app.name, &id) {
        let s = state.clone();
        on_thread("cell-end", move || {
            s.cells.end(&s, &entry, "deleted");
            Ok(())
        })
        .await?;
    }
    match records::get(&state.store, &id)? {
        Some(r) if r.app == app.name => Ok(Json(record_view(r))),
        _ => Err(ApiError::not_found(format!("no cell {id}"))),
    }
}

/// Run a command in the cell. Time and output limits are the exec's; memory, processes and
/// CPUs are the cell's as a whole.
#[utoipa::path(
    post, path = "/v1/cells/{id}/exec", tag = "cells",
    params(("id" = String, Path, description = "Cell id")),
    request_body = ExecRequest,
    responses(
        (status = 200, description = "Finished (wait: true, the default)", body = ExecView),
        (status = 202, description = "Started (wait: false)", body = ExecView),
        (status = 400, body = crate::api::error::ErrorBody),
        (status = 401, body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody),
        (status = 410, description = "The cell has ended", body = crate::api::error::ErrorBody),
        (status = 422, body = crate::api::error::ErrorBody),
        (status = 429, body = crate::api::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn exec(
    State(state): State<AppState>,
    Caller(app): Caller,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: ExecRequest = parse(body)?;
    let entry = live_cell(&state, &Caller(app.clone()), &id)?;
    let spec = exec_spec(&state, &entry, &request)?;
    let (n, live) = state.cells.begin_exec(&state, &app, &entry)?;
    let wait = request.wait;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let s = state.clone();
    let cell = entry.id.clone();
    std::thread::Builder::new()
        .name("cell-exec".into())
        .spawn(move || {
            let finished = s.cells.run_exec(&s, &entry, &spec, &live);
            let _ = tx.send(finished);
        })
        .map_err(|e| ApiError::internal(format!("start an exec thread: {e}")))?;
    if !wait {
        let view = ExecView {
            cell,
            n,
            status: ExecStatus::Running,
            result: None,
        };
        return Ok((StatusCode::ACCEPTED, Json(view)).into_response());
    }
    let finished = rx
        .await
        .map_err(|_| ApiError::internal("the exec thread ended without an answer"))?;
    Ok(Json(ExecView {
        cell,
        n,
        status: ExecStatus::Done,
        result: Some(finished.result),
    })
    .into_response())
}

/// Exec `n` of a live cell; a number it never had (or not a number) is a 404.
fn exec_of(
    state: &AppState,
    caller: &Caller,
    id: &str,
    n: &str,
) -> Result<(Arc<crate::api::live::LiveRun>, u64), ApiError> {
    let missing = || ApiError::not_found(format!("cell {id} keeps no exec {n}"));
    let entry = match state.cells.get(&caller.0.name, id) {
        Some(e) => e,
        None => {
            live_cell(state, caller, id)?;
            return Err(ApiError::not_found(format!("no cell {id}")));
        }
    };
    let n: u64 = n.parse().map_err(|_| missing())?;
    entry.exec(n).map(|live| (live, n)).ok_or_else(missing)
}

/// One exec of a live cell (the last 32 are kept).
#[utoipa::path(
    get, path = "/v1/cells/{id}/exec/{n}", tag = "cells",
    params(("id" = String, Path, description = "Cell id"), ("n" = u64, Path, description = "Exec number (from 1)")),
    responses((status = 200, body = ExecView), (status = 401, body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody), (status = 410, body = crate::api::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_exec(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, n)): Path<(String, String)>,
) -> Result<Json<ExecView>, ApiError> {
    let (live, n) = exec_of(&state, &caller, &id, &n)?;
    let phase = live.phase.borrow().clone();
    let (status, result) = match phase {
        Phase::Done(f) => (ExecStatus::Done, Some(f.result.clone())),
        _ => (ExecStatus::Running, None),
    };
    Ok(Json(ExecView {
        cell: id,
        n,
        status,
        result,
    }))
}

/// Live events of one exec: the same events as a run's.
#[utoipa::path(
    get, path = "/v1/cells/{id}/exec/{n}/events", tag = "cells",
    params(("id" = String, Path, description = "Cell id"), ("n" = u64, Path, description = "Exec number")),
    responses((status = 200, description = "text/event-stream", content_type = "text/event-stream", body = crate::api::dto::SseEvent),
        (status = 401, body = crate::api::error::ErrorBody), (status = 404, body = crate::api::error::ErrorBody),
        (status = 410, body = crate::api::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn exec_events(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, n)): Path<(String, String)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let (live, _) = exec_of(&state, &caller, &id, &n)?;
    Ok(sse(live_feed(&live)))
}

fn file_error(e: FileError) -> ApiError {
    match e {
        FileError::NotFound(_) => ApiError::not_found(e.to_string()),
        FileError::Refused(_) => ApiError::forbidden(e.to_string()),
        FileError::ReadOnly(_) => ApiError::new(StatusCode::CONFLICT, "read_only", e.to_string()),
        FileError::NoSpace => {
            ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "no_space", e.to_string())
        }
        FileError::TooLarge(_) => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", e.to_string())
        }
        FileError::Io(io) => ApiError::internal(format!("file transfer: {io}")),
    }
}

#[derive(Debug, Deserialize)]
pub struct PutQuery {
    /// Octal permission bits of the file (default 644).
    pub mode: Option<String>,
}

/// Write a file into the cell (parents are made; the program's user owns them).
#[utoipa::path(
    put, path = "/v1/cells/{id}/files/{path}", tag = "cells",
    params(("id" = String, Path, description = "Cell id"),
        ("path" = String, Path, description = "Path in the cell, from its /"),
        ("mode" = Option<String>, Query, description = "Octal permissions (default 644)")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 204, description = "Written"),
        (status = 401, body = crate::api::error::ErrorBody),
        (status = 403, description = "Not a regular file, /proc or /sys", body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody),
        (status = 409, description = "Read-only there", body = crate::api::error::ErrorBody),
        (status = 410, body = crate::api::error::ErrorBody),
        (status = 413, body = crate::api::error::ErrorBody),
        (status = 507, description = "The cell's disk is full", body = crate::api::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn put_file(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, path)): Path<(String, String)>,
    query: Result<Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let mode = match query.mode.as_deref() {
        None => 0o644,
        Some(text) => u32::from_str_radix(text, 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                ApiError::unprocessable("invalid_mode", format!("mode {text:?} is not octal 0-777"))
            })?,
    };
    let body = body.map_err(body_rejection)?;
    let entry = live_cell(&state, &caller, &id)?;
    on_thread("cell-files", move || {
        entry.with_cell(|cell| {
            let root = cell
                .open_root()
                .map_err(|e| gone(&entry.id, &e.to_string()))?;
            let owner = cell.owner();
            files::write_file(&root, &path, &body, owner, mode).map_err(file_error)
        })
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Read a file from the cell, or a directory as a tar stream.
#[utoipa::path(
    get, path = "/v1/cells/{id}/files/{path}", tag = "cells",
    params(("id" = String, Path, description = "Cell id"),
        ("path" = String, Path, description = "Path in the cell, from its /")),
    responses((status = 200, description = "The file (application/octet-stream) or the directory (application/x-tar)", content_type = "application/octet-stream"),
        (status = 401, body = crate::api::error::ErrorBody),
        (status = 403, body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody),
        (status = 410, body = crate::api::error::ErrorBody),
        (status = 413, body = crate::api::error::ErrorBody)),
    security(("bearer" = []))
)]
pub async fn get_file(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, path)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let entry = live_cell(&state, &caller, &id)?;
    let max = state.config.cells.max_transfer_bytes;
    let opened = on_thread("cell-files", move || {
        entry.with_cell(|cell| {
            let root = cell
                .open_root()
                .map_err(|e| gone(&entry.id, &e.to_string()))?;
            files::open(&root, &path).map_err(file_error)
        })
    })
    .await?;
    // The descriptors keep what they name readable after the cell's lock (and even the
    // cell) is gone; the copy streams from a thread of its own.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let (content_type, length) = match &opened {
        Opened::File { size, .. } => ("application/octet-stream", Some(*size)),
        Opened::Dir(_) => ("application/x-tar", None),
    };
    if length.is_some_and(|n| n > max) {
        return Err(file_error(FileError::TooLarge(max)));
    }
    std::thread::Builder::new()
        .name("cell-files".into())
        .spawn(move || {
            let mut out = ChannelWriter {
                tx,
                buf: Vec::with_capacity(CHUNK),
            };
            let done = match opened {
                Opened::File { file, size } => {
                    let mut limited = std::io::Read::take(file, size);
                    std::io::copy(&mut limited, &mut out)
                        .map(drop)
                        .map_err(FileError::from)
                }
                Opened::Dir(dir) => files::write_tar(dir, &mut out, max),
            };
            match done.and_then(|()| out.flush().map_err(FileError::from)) {
                Ok(()) => {}
                Err(e) => {
                    let _ = out
                        .tx
                        .blocking_send(Err(std::io::Error::other(e.to_string())));
                }
            }
        })
        .map_err(|e| ApiError::internal(format!("start a copy thread: {e}")))?;
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    // No Content-Length: the cell's programs may change the file while it is copied.
    Ok(response)
}

const CHUNK: usize = 64 * 1024;

/// Sends what is written to a response body in chunks (blocking while the client is slow).
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}
