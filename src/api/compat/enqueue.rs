//! Accepting a compat run: the same path as `POST /v1/runs` (admission by the app's quota
//! and the queue's capacity, the run written to the store before anything is answered, the
//! same job queue and workers), for a request the foreign API turned into a
//! [`RunRequest`] and a [`Prepared`] run.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::watch;

use crate::api::dto::RunRequest;
use crate::api::error::ApiError;
use crate::api::live::{LiveRun, Phase};
use crate::api::offload;
use crate::api::prepare::{prepare, Prepared};
use crate::api::state::{AppState, Job, RunJob};
use crate::api::store::{now_ms, App, Store, StoreError};

/// A run id that is also a version-4 UUID when hyphenated (Judge0 tokens are UUIDs, and
/// clients check them): 16 random bytes with the version and variant bits set.
pub fn new_uuid_run_id() -> String {
    let mut bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    hex::encode(bytes)
}

/// Parses and checks `request` as `/v1/runs` does, on a blocking thread, then lets the
/// caller adjust the prepared run (arguments, compile options, extra limits).
pub async fn prepare_with(
    state: &AppState,
    app: &Arc<App>,
    request: RunRequest,
    adjust: impl FnOnce(Prepared) -> Result<Prepared, ApiError> + Send + 'static,
) -> Result<(Prepared, RunRequest), ApiError> {
    let state = state.clone();
    let app = app.clone();
    offload::blocking(move || {
        let prepared = adjust(prepare(&request, &state.config, &state.catalog, &app)?)?;
        Ok((prepared, request))
    })
    .await
}

/// An accepted run: its id and its phase to wait on.
#[derive(Debug)]
pub struct Accepted {
    pub id: String,
    pub phase: watch::Receiver<Phase>,
}

/// Admits, stores and queues a prepared run; `also_store` writes the foreign API's own
/// record in the same blocking step, before the answer.
pub async fn enqueue(
    state: &AppState,
    app: &App,
    id: String,
    prepared: Prepared,
    request: &RunRequest,
    also_store: impl FnOnce(&Store) -> Result<(), StoreError> + Send + 'static,
) -> Result<Accepted, ApiError> {
    let stored = serde_json::to_string(request)
        .map_err(|e| ApiError::internal(format!("encode request: {e}")))?;
    let (quota, place) = state.admit(app)?;
    let live = Arc::new(
        LiveRun::new(id.clone(), app.name.clone(), quota)
            .map_err(|e| ApiError::internal(format!("cancel token: {e}")))?,
    );
    {
        let state = state.clone();
        let (id, app) = (id.clone(), app.name.clone());
        offload::blocking(move || {
            state.store.insert_run(&id, &app, &stored, now_ms())?;
            also_store(&state.store)?;
            Ok(())
        })
        .await?;
    }
    let phase = live.phase.subscribe();
    state.live.insert(live.clone());
    state.metrics.accepted();
    tracing::debug!(run = %id, app = %app.name, image = %prepared.image, "compat run accepted");
    place.push(Job::Run(RunJob {
        live,
        work: prepared.work,
        lease: prepared.lease,
        accepted: Instant::now(),
    }));
    Ok(Accepted { id, phase })
}

/// Waits for the run's end; `None` when the daemon shuts down before it started (it stays
/// queued and runs after the restart).
pub async fn wait_final(mut phase: watch::Receiver<Phase>) -> Option<()> {
    let end = phase.wait_for(Phase::is_final).await.ok()?.clone();
    matches!(end, Phase::Done(_)).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_are_uuid4_shaped() {
        let id = new_uuid_run_id();
        assert_eq!(id.len(), 32);
        assert_eq!(&id[12..13], "4");
        assert!(matches!(&id[16..17], "8" | "9" | "a" | "b"));
    }
}
