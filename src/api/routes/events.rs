//! `GET /v1/runs/{id}/events`: Server-Sent Events of one run.
//!
//! Events: `status` (`{"status":"queued|running|done"}`), `stdout` / `stderr`
//! (`{"text": "...", "base64": "..."}` — base64 only when the chunk is not UTF-8), `result`
//! (the finished run, same shape as `wait: true`), `lagged` (`{"skipped": N}` when a slow
//! reader missed chunks), `deferred` (the daemon shut down first; the run stays queued).
//! The stream ends after `result` or `deferred`. A reader that connects late gets the output
//! so far first (for a finished run: its whole captured stdout and stderr, one event each).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use base64::Engine;
use futures_util::Stream;
use serde_json::json;
use tokio::sync::broadcast::{self, error::RecvError};

use crate::api::auth::Caller;
use crate::api::dto::{RunFinished, RunStatus, StoredResult};
use crate::api::error::ApiError;
use crate::api::live::{LiveEvent, LiveRun, Phase};
use crate::api::state::AppState;

pub(crate) fn status_event(status: RunStatus) -> Event {
    Event::default()
        .event("status")
        .data(json!({ "status": status }).to_string())
}

pub(crate) fn result_event(finished: &RunFinished) -> Event {
    Event::default()
        .event("result")
        .data(serde_json::to_string(finished).unwrap_or_default())
}

pub(crate) fn chunk_event(name: &'static str, bytes: &[u8]) -> Event {
    let data = match std::str::from_utf8(bytes) {
        Ok(text) => json!({ "text": text }),
        Err(_) => json!({
            "text": String::from_utf8_lossy(bytes),
            "base64": base64::engine::general_purpose::STANDARD.encode(bytes),
        }),
    };
    Event::default().event(name).data(data.to_string())
}

/// The output of a finished run, for a reader that connects after it ended (the docs promise
/// late readers the output so far).
fn output_events(finished: &RunFinished) -> Vec<Event> {
    let r = &finished.result;
    let mut events = Vec::new();
    for (name, text, base64) in [
        ("stdout", &r.stdout, &r.stdout_base64),
        ("stderr", &r.stderr, &r.stderr_base64),
    ] {
        if text.is_empty() && base64.is_none() {
            continue;
        }
        let mut data = json!({ "text": text });
        if let Some(b) = base64 {
            data["base64"] = json!(b);
        }
        events.push(Event::default().event(name).data(data.to_string()));
    }
    events
}

fn final_events(finished: &RunFinished) -> Vec<Event> {
    vec![status_event(RunStatus::Done), result_event(finished)]
}

/// The events a reader gets, in order.
pub struct Feed {
    pending: VecDeque<Event>,
    receiver: Option<broadcast::Receiver<LiveEvent>>,
}

impl Feed {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let receiver = self.receiver.as_mut()?;
            match receiver.recv().await {
                Ok(LiveEvent::Status(s)) => return Some(status_event(s)),
                Ok(LiveEvent::Stdout(b)) => return Some(chunk_event("stdout", &b)),
                Ok(LiveEvent::Stderr(b)) => return Some(chunk_event("stderr", &b)),
                Ok(LiveEvent::Done(finished)) => {
                    self.receiver = None;
                    self.pending.extend(final_events(&finished));
                }
                Ok(LiveEvent::Deferred) => {
                    self.receiver = None;
                    self.pending.push_back(
                        Event::default()
                            .event("deferred")
                            .data(json!({ "status": RunStatus::Queued }).to_string()),
                    );
                }
                Err(RecvError::Lagged(n)) => {
                    return Some(
                        Event::default()
                            .event("lagged")
                            .data(json!({ "skipped": n }).to_string()),
                    )
                }
                Err(RecvError::Closed) => self.receiver = None,
            }
        }
    }
}

/// Live events of a run (text/event-stream).
#[utoipa::path(
    get, path = "/v1/runs/{id}/events", tag = "runs",
    params(("id" = String, Path, description = "Run id")),
    responses(
        (status = 200, description = "text/event-stream: status, stdout, stderr, result events", content_type = "text/event-stream", body = crate::api::dto::SseEvent),
        (status = 401, body = crate::api::error::ErrorBody),
        (status = 403, body = crate::api::error::ErrorBody),
        (status = 404, body = crate::api::error::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub async fn run_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let row = super::runs::owned_run_for(&state, &caller, &id)?;
    let mut feed = Feed {
        pending: VecDeque::new(),
        receiver: None,
    };
    match state.live.get(&id) {
        Some(live) => feed = live_feed(&live),
        None => {
            // Finished (maybe just now): the store has the final word.
            let row = state.store.get_run(&id)?.unwrap_or(row);
            feed.pending.push_back(status_event(row.status));
            if let Some(result) = row.result.as_deref().and_then(StoredResult::parse) {
                let finished = Arc::new(RunFinished {
                    id: row.id,
                    status: RunStatus::Done,
                    result: result.result,
                    compile: result.compile,
                });
                feed.pending.extend(output_events(&finished));
                feed.pending.push_back(result_event(&finished));
            }
        }
    }
    Ok(sse(feed))
}

/// The events of a live run (or a cell's exec): what it printed so far, then what follows.
pub fn live_feed(live: &LiveRun) -> Feed {
    let mut feed = Feed {
        pending: VecDeque::new(),
        receiver: None,
    };
    // Subscribe before reading the phase so nothing falls in between.
    let (replay, receiver) = live.subscribe();
    let phase = live.phase.borrow().clone();
    feed.pending.push_back(status_event(phase.status()));
    if !matches!(phase, Phase::Done(_)) {
        feed.pending.extend(replay.iter().filter_map(|e| match e {
            LiveEvent::Stdout(b) => Some(chunk_event("stdout", b)),
            LiveEvent::Stderr(b) => Some(chunk_event("stderr", b)),
            _ => None,
        }));
    }
    match phase {
        Phase::Done(finished) => {
            feed.pending.extend(output_events(&finished));
            feed.pending.extend(final_events(&finished));
        }
        Phase::Deferred => {}
        Phase::Queued | Phase::Running => feed.receiver = Some(receiver),
    }
    feed
}

/// A feed as a text/event-stream response.
pub fn sse(feed: Feed) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        feed.next().await.map(|e| (Ok(e), feed))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
