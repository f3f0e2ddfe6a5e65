//! Judge0's descriptive routes: `/languages`, `/languages/{id}`, `/statuses`, `/about`,
//! `/config_info`, `/system_info` and `/workers`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::error::Judge0Error;
use super::settings::{Settings, MAX_BATCH};
use super::status::STATUSES;
use crate::api::compat::auth::caller;
use crate::api::compat::languages::judge0_languages;
use crate::api::prepare::bounds_for;
use crate::api::state::AppState;

/// The Judge0 CE version whose API this is (clients pick language tables by it).
pub const JUDGE0_VERSION: &str = "1.13.1";

pub async fn languages(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Judge0Error> {
    caller(&state, &headers)?;
    let list: Vec<Value> = judge0_languages(&state)
        .into_iter()
        .map(|l| json!({"id": l.id, "name": l.name}))
        .collect();
    Ok(Json(Value::Array(list)))
}

pub async fn language(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, Judge0Error> {
    caller(&state, &headers)?;
    let id: u32 = id.parse().map_err(|_| Judge0Error::not_found())?;
    let l = judge0_languages(&state)
        .into_iter()
        .find(|l| l.id == id)
        .ok_or_else(Judge0Error::not_found)?;
    Ok(Json(json!({
        "id": l.id,
        "name": l.name,
        "is_archived": false,
        "source_file": l.language.source_file,
        "compile_cmd": l.language.compile,
        "run_cmd": l.language.run,
    })))
}

pub async fn statuses(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Judge0Error> {
    caller(&state, &headers)?;
    Ok(Json(Value::Array(
        STATUSES
            .iter()
            .map(|(id, d)| json!({"id": id, "description": d}))
            .collect(),
    )))
}

pub async fn about(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Judge0Error> {
    caller(&state, &headers)?;
    Ok(Json(json!({
        "version": JUDGE0_VERSION,
        "homepage": "sandcell: docs/compat.md",
        "source_code": "sandcell: src/api/compat",
        "maintainer": format!("sandcell {} (Judge0 CE API compatibility)", env!("CARGO_PKG_VERSION")),
    })))
}

/// The caller's limits in Judge0's terms (its app's maxima included).
pub async fn config_info(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Judge0Error> {
    let app = caller(&state, &headers)?;
    let s = Settings::new(&state.config, &bounds_for(&state.config, &app));
    let (d, m) = (&s.defaults, &s.maxima);
    Ok(Json(json!({
        "maintenance_mode": false,
        "enable_wait_result": true,
        "enable_compiler_options": true,
        "allowed_languages_for_compile_options": [],
        "enable_command_line_arguments": true,
        "enable_submission_delete": true,
        "enable_callbacks": !s.callback_hosts.is_empty(),
        "callbacks_max_tries": 1,
        "callbacks_timeout": 5.0,
        "enable_additional_files": true,
        "max_queue_size": state.config.max_queue,
        "cpu_time_limit": d.cpu_time_limit,
        "max_cpu_time_limit": m.cpu_time_limit,
        "cpu_extra_time": d.cpu_extra_time,
        "max_cpu_extra_time": m.cpu_extra_time,
        "wall_time_limit": d.wall_time_limit,
        "max_wall_time_limit": m.wall_time_limit,
        "memory_limit": d.memory_limit,
        "max_memory_limit": m.memory_limit,
        "stack_limit": d.stack_limit,
        "max_stack_limit": m.stack_limit,
        "max_processes_and_or_threads": d.max_processes_and_or_threads,
        "max_max_processes_and_or_threads": m.max_processes_and_or_threads,
        "enable_per_process_and_thread_time_limit": false,
        "allow_enable_per_process_and_thread_time_limit": false,
        "enable_per_process_and_thread_memory_limit": false,
        "allow_enable_per_process_and_thread_memory_limit": false,
        "max_file_size": d.max_file_size,
        "max_max_file_size": m.max_file_size,
        "number_of_runs": 1,
        "max_number_of_runs": m.number_of_runs,
        "redirect_stderr_to_stdout": false,
        "max_extract_size": state.config.default_limits.disk / 1024,
        "enable_batched_submissions": true,
        "max_submission_batch_size": MAX_BATCH,
        "submission_cache_duration": 0.0,
        "use_docs_as_homepage": false,
        "allow_enable_network": false,
        "enable_network": false,
    })))
}

/// Only what is safe to tell: the architecture and the number of CPUs.
pub async fn system_info(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Judge0Error> {
    caller(&state, &headers)?;
    Ok(Json(json!({
        "Architecture": std::env::consts::ARCH,
        "CPU(s)": crate::api::config::available_cores().to_string(),
    })))
}

/// The one queue: its length, the workers, how many cells run.
pub async fn workers(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, Judge0Error> {
    caller(&state, &headers)?;
    let available = state.config.workers as u64;
    let working = state.metrics.active_cells().min(available);
    Ok(Json(json!([{
        "queue": "sandcell",
        "size": state.queue.len(),
        "available": available,
        "idle": available - working,
        "working": working,
        "paused": 0,
        "failed": 0,
    }])))
}
