//! The Judge0 CE API (version 1.13) over sandcell runs: `/submissions` (single, batch,
//! `wait`, `base64_encoded`, `fields`, DELETE) and the descriptive routes in [`info`].
//! A token is the run's id written as a UUID; the run is an ordinary run of the caller's
//! app (it shows in `GET /v1/runs`), with the Judge0 fields beside it ([`record`]).

pub mod callback;
pub mod compare;
pub mod error;
pub mod files;
pub mod info;
pub mod record;
pub mod request;
pub mod settings;
pub mod status;
pub mod submit;
pub mod view;

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use self::error::Judge0Error;
use self::settings::MAX_BATCH;
use super::auth::caller;
use super::enqueue::wait_final;
use crate::api::dto::RunStatus;
use crate::api::state::AppState;
use crate::api::store::App;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/submissions", get(list_refused).post(create))
        .route("/submissions/", get(list_refused).post(create))
        .route("/submissions/batch", get(batch_show).post(batch_create))
        .route("/submissions/{token}", get(show).delete(destroy))
        .route("/languages", get(info::languages))
        .route("/languages/", get(info::languages))
        .route("/languages/{id}", get(info::language))
        .route("/statuses", get(info::statuses))
        .route("/about", get(info::about))
        .route("/config_info", get(info::config_info))
        .route("/system_info", get(info::system_info))
        .route("/workers", get(info::workers))
}

/// The query parameters Judge0 reads.
struct Params {
    base64_encoded: bool,
    wait: bool,
    fields: Vec<&'static str>,
    tokens: Option<String>,
}

fn params(
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Params, Judge0Error> {
    let Query(q) = query.map_err(|e| Judge0Error::bad_request(e.body_text()))?;
    let fields = view::requested_fields(q.get("fields").map(String::as_str))
        .map_err(|bad| Judge0Error::bad_request(format!("invalid fields: [{}]", bad.join(", "))))?;
    Ok(Params {
        base64_encoded: q.get("base64_encoded").is_some_and(|v| v == "true"),
        wait: q.get("wait").is_some_and(|v| v == "true"),
        fields,
        tokens: q.get("tokens").cloned(),
    })
}

fn json_body(body: Result<Bytes, BytesRejection>) -> Result<Value, Judge0Error> {
    let body = body.map_err(|r| {
        let status = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            StatusCode::PAYLOAD_TOO_LARGE
        } else {
            StatusCode::BAD_REQUEST
        };
        Judge0Error::new(status, r.body_text())
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| Judge0Error::bad_request(format!("malformed JSON body: {e}")))
}

/// The submission `token` names, if it is `app`'s.
fn load(
    state: &AppState,
    app: &App,
    token: &str,
    fields: &[&str],
    base64_encoded: bool,
) -> Result<Option<Value>, Judge0Error> {
    let id = view::id_of(token);
    let Some(row) = state
        .store
        .get_run(&id)
        .map_err(crate::api::error::ApiError::from)?
    else {
        return Ok(None);
    };
    if !state.may_see(&row.app, &app.name) {
        return Ok(None);
    }
    let record = record::get(&state.store, &id).map_err(crate::api::error::ApiError::from)?;
    // Naming the language reads the image store: only when asked for.
    let language = record
        .as_ref()
        .filter(|_| fields.contains(&"language"))
        .and_then(|r| {
            super::languages::judge0_languages(state)
                .into_iter()
                .find(|l| l.id == r.language_id)
                .map(|l| l.name)
        });
    view::render(
        &row,
        record.as_ref(),
        language.as_deref(),
        fields,
        base64_encoded,
    )
    .map(Some)
    .map_err(|e| Judge0Error::bad_request(e.to_string()))
}

async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Judge0Error> {
    let app = caller(&state, &headers)?;
    let p = params(query)?;
    let body = json_body(body)?;
    let accepted = submit::submit(&state, &app, body, p.base64_encoded).await?;
    let token = view::token_of(&accepted.id);
    if !p.wait {
        return Ok((StatusCode::CREATED, Json(json!({ "token": token }))).into_response());
    }
    if wait_final(accepted.phase).await.is_none() {
        return Err(Judge0Error::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the server is shutting down; submission {token} runs after the restart"),
        ));
    }
    match load(&state, &app, &token, &p.fields, p.base64_encoded) {
        Ok(Some(v)) => Ok((StatusCode::CREATED, Json(v)).into_response()),
        Ok(None) => Err(Judge0Error::not_found()),
        // Output that is not UTF-8 (and no base64): Judge0 still answers 201 with the token.
        Err(Judge0Error::Plain {
            status: StatusCode::BAD_REQUEST,
            message,
            ..
        }) => Ok((
            StatusCode::CREATED,
            Json(json!({ "error": message, "token": token })),
        )
            .into_response()),
        Err(e) => Err(e),
    }
}

/// Listing every submission is an administrator's route in Judge0; apps see their runs
/// through `GET /v1/runs`.
async fn list_refused(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Judge0Error> {
    caller(&state, &headers)?;
    Err(Judge0Error::new(
        StatusCode::FORBIDDEN,
        "listing submissions is not supported; use GET /v1/runs",
    ))
}

async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, Judge0Error> {
    let app = caller(&state, &headers)?;
    let p = params(query)?;
    load(&state, &app, &token, &p.fields, p.base64_encoded)?
        .map(Json)
        .ok_or_else(Judge0Error::not_found)
}

async fn destroy(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, Judge0Error> {
    let app = caller(&state, &headers)?;
    let p = params(query)?;
    let id = view::id_of(&token);
    let row = state
        .store
        .get_run(&id)
        .map_err(crate::api::error::ApiError::from)?
        .filter(|r| !state.config.auth || r.app == app.name)
        .ok_or_else(Judge0Error::not_found)?;
    if row.status != RunStatus::Done {
        let (sid, what) = if row.status == RunStatus::Queued {
            (status::IN_QUEUE, status::description(status::IN_QUEUE))
        } else {
            (status::PROCESSING, status::description(status::PROCESSING))
        };
        return Err(Judge0Error::bad_request(format!(
            "submission cannot be deleted because its status is {sid} ({what})"
        )));
    }
    // Base64 always: the data is gone after this answer.
    let answer = load(&state, &app, &token, &p.fields, true)?.ok_or_else(Judge0Error::not_found)?;
    record::delete(&state.store, &id).map_err(crate::api::error::ApiError::from)?;
    Ok(Json(answer))
}

async fn batch_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Judge0Error> {
    let app = caller(&state, &headers)?;
    let p = params(query)?;
    let body = json_body(body)?;
    let items = match body.get("submissions") {
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(Judge0Error::bad_request("submissions must be an array")),
        None => Vec::new(),
    };
    check_batch_size(items.len())?;
    let mut answer = Vec::with_capacity(items.len());
    let mut any = false;
    for item in items {
        match submit::submit(&state, &app, item, p.base64_encoded).await {
            Ok(a) => {
                any = true;
                answer.push(json!({ "token": view::token_of(&a.id) }));
            }
            Err(e) => answer.push(e.body()),
        }
    }
    let status = if any {
        StatusCode::CREATED
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    Ok((status, Json(Value::Array(answer))).into_response())
}

/// A batch holds 1 to [`MAX_BATCH`] submissions (Judge0's messages).
fn check_batch_size(n: usize) -> Result<(), Judge0Error> {
    if n > MAX_BATCH {
        return Err(Judge0Error::bad_request(format!(
            "number of submissions in a batch should be less than or equal to {MAX_BATCH}"
        )));
    }
    if n == 0 {
        return Err(Judge0Error::bad_request(
            "there should be at least one submission in a batch",
        ));
    }
    Ok(())
}

async fn batch_show(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, Judge0Error> {
    let app = caller(&state, &headers)?;
    let p = params(query)?;
    let tokens_text = p
        .tokens
        .clone()
        .or_else(|| {
            headers
                .get("tokens")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let tokens: Vec<&str> = tokens_text
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    check_batch_size(tokens.len())?;
    let mut out = Vec::with_capacity(tokens.len());
    for t in tokens {
        out.push(load(&state, &app, t, &p.fields, p.base64_encoded)?.unwrap_or(Value::Null));
    }
    Ok(Json(json!({ "submissions": out })))
}
