//! `sandcell app`: API clients of the daemon. A key is printed once at creation; only its
//! SHA-256 is stored.

use std::path::PathBuf;
use std::time::Duration;

use crate::api::auth::{generate_key, hash_key};
use crate::api::store::{App, Store};
use crate::spec::{parse_duration, parse_size};

/// Where the daemon keeps its store.
#[derive(Debug, Clone, clap::Args)]
pub struct StateDirArg {
    /// The daemon's state dir (as given to `sandcell serve --state-dir`).
    #[arg(long, env = "SANDCELL_STATE_DIR", default_value = "/var/lib/sandcell")]
    pub state_dir: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {
    /// Create an app and print its API key (shown only this once).
    Create {
        name: String,
        /// Runs queued or running at the same time; more get 429.
        #[arg(long, default_value_t = 8)]
        max_concurrent: u32,
        /// Highest wall (and CPU) time its runs may ask for, e.g. 10s.
        #[arg(long, value_parser = parse_duration)]
        max_wall_time: Option<Duration>,
        /// Highest memory its runs may ask for, e.g. 512M.
        #[arg(long, value_parser = parse_size)]
        max_memory: Option<u64>,
        #[command(flatten)]
        state: StateDirArg,
    },
    /// List apps (names and quotas, never keys).
    List {
        #[command(flatten)]
        state: StateDirArg,
    },
    /// Delete an app; its key stops working within seconds.
    Delete {
        name: String,
        #[command(flatten)]
        state: StateDirArg,
    },
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

pub fn main(cmd: AppCommand) -> i32 {
    match run(cmd) {
        Ok(()) => 0,
        Err(e) => {
            super::error_line(e);
            1
        }
    }
}

fn run(cmd: AppCommand) -> Result<(), String> {
    match cmd {
        AppCommand::Create {
            name,
            max_concurrent,
            max_wall_time,
            max_memory,
            state,
        } => {
            if !valid_name(&name) {
                return Err(format!("app name {name:?} must be 1-64 of [A-Za-z0-9._-]"));
            }
            if max_concurrent == 0 {
                return Err("--max-concurrent must be at least 1".into());
            }
            let store = Store::open(&state.state_dir).map_err(|e| e.to_string())?;
            let key = generate_key();
            store
                .create_app(&App {
                    name,
                    key_hash: hash_key(&key),
                    max_concurrent,
                    max_wall_time_ms: max_wall_time.map(|d| d.as_millis() as u64),
                    max_memory,
                })
                .map_err(|e| e.to_string())?;
            println!("{key}");
            Ok(())
        }
        AppCommand::List { state } => {
            let store = Store::open(&state.state_dir).map_err(|e| e.to_string())?;
            for app in store.list_apps().map_err(|e| e.to_string())? {
                println!(
                    "{}\tmax_concurrent={}\tmax_wall_time_ms={}\tmax_memory={}",
                    app.name,
                    app.max_concurrent,
                    app.max_wall_time_ms
                        .map_or("-".to_string(), |v| v.to_string()),
                    app.max_memory.map_or("-".to_string(), |v| v.to_string()),
                );
            }
            Ok(())
        }
        AppCommand::Delete { name, state } => {
            let store = Store::open(&state.state_dir).map_err(|e| e.to_string())?;
            store.delete_app(&name).map_err(|e| e.to_string())?;
            println!("deleted app {name:?} (its key no longer works)");
            Ok(())
        }
    }
}
