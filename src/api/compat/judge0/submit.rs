//! From a Judge0 submission to an accepted sandcell run: read and check the body, pick the
//! language of its id, unpack `additional_files`, build the `/v1` run request with the
//! Judge0 limits in sandcell units, apply the extras (arguments, compiler options, stderr
//! redirection, stack and file size) and hand it to the shared [`enqueue`].

use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

use super::callback;
use super::error::Judge0Error;
use super::files;
use super::record::{self, Record};
use super::request;
use super::settings::Settings;
use super::view;
use crate::api::compat::adjust::{self, Extras};
use crate::api::compat::enqueue::{enqueue, new_uuid_run_id, wait_final, Accepted};
use crate::api::compat::languages::{judge0_languages, Judge0Language};
use crate::api::dto::{Encoding, FileInput, LimitsInput, RunRequest};
use crate::api::prepare::{bounds_for, prepare, Prepared};
use crate::api::state::AppState;
use crate::api::store::App;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn words(field: &str, text: Option<&str>) -> Result<Vec<String>, Judge0Error> {
    match text {
        None => Ok(Vec::new()),
        Some(t) => crate::lang::split_words(t).map_err(|e| Judge0Error::field(field, e)),
    }
}

/// The `/v1` request and the extras of a checked submission.
fn to_run(
    parsed: &request::Parsed,
    language: &Judge0Language,
    settings: &Settings,
    max_disk: u64,
) -> Result<(RunRequest, Extras), Judge0Error> {
    let r = &parsed.record;
    let mut files_in = vec![FileInput {
        path: language.language.source_file.clone(),
        content: b64(r.source_code.as_deref().unwrap_or_default()),
        encoding: Encoding::Base64,
        executable: false,
    }];
    if let Some(zip) = &parsed.additional_files {
        let unpacked = files::unpack(zip, crate::spec::bounds::MAX_FILES - 1, max_disk)
            .map_err(|e| Judge0Error::field("additional_files", e.to_string()))?;
        files_in.extend(unpacked.into_iter().map(|f| FileInput {
            path: f.path,
            content: b64(&f.content),
            encoding: Encoding::Base64,
            executable: f.executable,
        }));
    }
    let ms = |s: f64| (s * 1000.0).round() as i64;
    let max_cpu = ms(settings.maxima.cpu_time_limit);
    let run = RunRequest {
        language: Some(language.language.name.clone()),
        files: files_in,
        stdin: Some(b64(r.stdin.as_deref().unwrap_or_default())),
        stdin_encoding: Encoding::Base64,
        limits: LimitsInput {
            cpu_time: Some(ms(r.cpu_time_limit + r.cpu_extra_time).min(max_cpu)),
            wall_time: Some(ms(r.wall_time_limit)),
            memory: Some((r.memory_limit * 1024) as i64),
            pids: Some(r.max_processes_and_or_threads as i64 + 1),
            ..LimitsInput::default()
        },
        ..RunRequest::default()
    };
    let extras = Extras {
        args: words(
            "command_line_arguments",
            r.command_line_arguments.as_deref(),
        )?,
        compiler_options: words("compiler_options", r.compiler_options.as_deref())?,
        merge_stderr: r.redirect_stderr_to_stdout,
        stack: Some(r.stack_limit * 1024),
        file_size: Some(r.max_file_size * 1024),
        ..Extras::default()
    };
    Ok((run, extras))
}

/// Everything up to the queue, on a blocking thread (bodies and zips may be megabytes).
fn build(
    state: &AppState,
    app: &App,
    body: &Value,
    base64_encoded: bool,
) -> Result<(Prepared, RunRequest, Record), Judge0Error> {
    let bounds = bounds_for(&state.config, app);
    let settings = Settings::new(&state.config, &bounds);
    let languages = judge0_languages(state);
    let parsed = request::parse(body, base64_encoded, &settings, |id| {
        languages.iter().any(|l| l.id == id)
    })
    .map_err(Judge0Error::Fields)?;
    let language = languages
        .iter()
        .find(|l| l.id == parsed.record.language_id)
        .ok_or_else(|| Judge0Error::field("language_id", "language is not available"))?;
    let (run, extras) = to_run(
        &parsed,
        language,
        &settings,
        state.config.default_limits.disk,
    )?;
    let prepared = prepare(&run, &state.config, &state.catalog, app)?;
    let prepared = adjust::apply(prepared, extras, &bounds)?;
    Ok((prepared, run, parsed.record))
}

/// Checks, stores and queues one submission; starts its callback if it asked for one.
pub async fn submit(
    state: &AppState,
    app: &Arc<App>,
    body: Value,
    base64_encoded: bool,
) -> Result<Accepted, Judge0Error> {
    let (prepared, run, record) = {
        let state = state.clone();
        let app = app.clone();
        tokio::task::spawn_blocking(move || build(&state, &app, &body, base64_encoded))
            .await
            .map_err(|e| {
                Judge0Error::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    format!("request worker: {e}"),
                )
            })??
    };
    let id = new_uuid_run_id();
    let callback_url = record.callback_url.clone();
    let stored = record.clone();
    let record_id = id.clone();
    let accepted = enqueue(state, app, id, prepared, &run, move |store| {
        record::insert(store, &record_id, &stored)
    })
    .await?;
    if let Some(url) = callback_url {
        if let Ok(target) = callback::check_url(&url, &state.config.judge0.callback_hosts) {
            let state = state.clone();
            let id = accepted.id.clone();
            let phase = accepted.phase.clone();
            tokio::spawn(async move {
                if wait_final(phase).await.is_none() {
                    return;
                }
                let Ok(Some(row)) = state.store.get_run(&id) else {
                    return;
                };
                let body = view::render(&row, Some(&record), None, view::DEFAULT_FIELDS, true)
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                callback::put(target, body).await;
            });
        }
    }
    Ok(accepted)
}
