//! Foreign APIs over the same core: Judge0 CE (`/submissions`, `/languages`, ...) and
//! Piston v2 (`/api/v2/execute`, `/api/v2/runtimes`), switched on by `compat = ["judge0",
//! "piston"]`. They are thin shells: a request becomes the same [`RunRequest`] as
//! `POST /v1/runs` would carry, is checked by the same `prepare`, admitted by the same
//! quota and queue ([`enqueue`]), stored in the same SQLite `runs` table and run by the same
//! workers; only the wire shapes differ. docs/compat.md has the mapping tables.
//!
//! [`RunRequest`]: super::dto::RunRequest

pub mod adjust;
pub mod auth;
pub mod enqueue;
pub mod judge0;
pub mod languages;
pub mod piston;
pub mod timefmt;

use std::collections::BTreeMap;

use axum::Router;
use serde::Deserialize;

use super::config::ServeConfig;
use super::state::AppState;

/// A foreign API `sandcell serve` can speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompatApi {
    Judge0,
    Piston,
}

/// `[judge0]` in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Judge0Config {
    /// More language ids: `"92" = "python"` (a Judge0 id to a sandcell language name, as
    /// `POST /v1/runs` takes it). They add to (and may replace) the built-in table.
    pub languages: BTreeMap<String, String>,
    /// Hosts (`host` or `host:port`) `callback_url` may name; empty: callbacks are refused.
    pub callback_hosts: Vec<String>,
}

/// Checks the compat settings (part of [`ServeConfig::check`]).
pub fn check_config(config: &ServeConfig) -> Result<(), String> {
    for (id, name) in &config.judge0.languages {
        match id.parse::<u32>() {
            Ok(n) if n > 0 => {}
            _ => {
                return Err(format!(
                    "judge0.languages: {id:?} is not a language id (a positive integer)"
                ))
            }
        }
        if name.trim().is_empty() {
            return Err(format!("judge0.languages.{id}: empty language name"));
        }
    }
    for host in &config.judge0.callback_hosts {
        if host.is_empty() || host.contains('/') || host.contains('@') {
            return Err(format!(
                "judge0.callback_hosts: {host:?} is not a host or host:port"
            ));
        }
    }
    if matches!(&config.compat_app, Some(name) if name.trim().is_empty()) {
        return Err("compat_app: empty app name".into());
    }
    Ok(())
}

/// The routes of every API `config.compat` names (none: an empty router).
pub fn routes(config: &ServeConfig) -> Router<AppState> {
    let mut router = Router::new();
    if config.compat.contains(&CompatApi::Judge0) {
        router = router.merge(judge0::routes());
    }
    if config.compat.contains(&CompatApi::Piston) {
        router = router.merge(piston::routes());
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compat_settings_parse_and_are_checked() {
        let c = ServeConfig::from_toml(
            "compat = [\"judge0\", \"piston\"]\ncompat_app = \"web\"\n[judge0]\nlanguages = { \"92\" = \"python\" }\ncallback_hosts = [\"127.0.0.1:9000\"]\n",
        )
        .unwrap();
        assert_eq!(c.compat, vec![CompatApi::Judge0, CompatApi::Piston]);
        assert_eq!(c.compat_app.as_deref(), Some("web"));
        assert!(check_config(&c).is_ok());
        assert!(ServeConfig::from_toml("compat = [\"nope\"]").is_err());
        let mut bad = c.clone();
        bad.judge0.languages.insert("x".into(), "python".into());
        assert!(check_config(&bad).is_err());
        let mut bad = c;
        bad.judge0.callback_hosts.push("http://evil/".into());
        assert!(check_config(&bad).is_err());
        assert!(ServeConfig::default().compat.is_empty());
    }
}
