//! `GET /playground/settings.json`: what the page needs to know about this server before
//! its first request — whether it must ask for a key, and the time and memory limits it may
//! offer (the maxima of the anonymous app, else the server's; defaults within them).

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::anonymous;
use crate::api::error::ApiError;
use crate::api::prepare::bounds_for;
use crate::api::state::AppState;

/// One limit the page offers: its default and the most it may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bound {
    pub default: u64,
    pub max: u64,
}

/// The limits panel: times in ms, memory in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitsPanel {
    pub wall_time: Bound,
    pub cpu_time: Bound,
    pub memory: Bound,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Settings {
    /// The page must ask for an API key (no anonymous runs on this server).
    pub key_required: bool,
    /// The app anonymous runs use, when they are allowed.
    pub anonymous_app: Option<String>,
    /// Applies to anonymous runs; with a key, that app's own maxima may be lower (the server
    /// then answers 422 naming the limit, or clamps, as configured).
    pub limits: LimitsPanel,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

fn bound(default: Option<u64>, max: u64) -> Bound {
    Bound {
        default: default.unwrap_or(max).min(max),
        max,
    }
}

/// The settings of `state`'s server.
pub fn settings_of(state: &AppState) -> Result<Settings, ApiError> {
    let config = &state.config;
    let app = match anonymous::app_name(config) {
        Some(name) => anonymous::find_app(&state.store, name)?,
        None => None,
    };
    let bounds = match &app {
        Some(app) => bounds_for(config, app),
        None => config.max_limits.clone(),
    };
    let d = &config.default_limits;
    Ok(Settings {
        key_required: config.auth && app.is_none(),
        anonymous_app: app.map(|a| a.name),
        limits: LimitsPanel {
            wall_time: bound(Some(ms(d.wall_time)), ms(bounds.max_wall_time)),
            cpu_time: bound(d.cpu_time.map(ms), ms(bounds.max_cpu_time)),
            memory: bound(d.memory, bounds.max_memory),
        },
    })
}

/// `GET /playground/settings.json` (no key needed: nothing here is secret; the server's
/// maxima are in `/openapi.json` too).
pub async fn settings(State(state): State<AppState>) -> Result<Json<Settings>, ApiError> {
    Ok(Json(settings_of(&state)?))
}
