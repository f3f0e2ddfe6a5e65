//! `sandcell app`: API clients of the daemon. A key is printed once at creation; only its
//! SHA-256 is stored.

use std::path::PathBuf;
use std::time::Duration;

use crate::api::auth::{generate_key, hash_key};
use crate::api::scale::apps as scale_apps;
use crate::api::store::{App, Store};
use crate::spec::{parse_duration, parse_size};

/// Where the daemon keeps its store.
#[derive(Debug, Clone, clap::Args)]
pub struct StateDirArg {
    /// The daemon's state dir (as given to `sandcell serve --state-dir`).
    #[arg(long, env = "SANDCELL_STATE_DIR", default_value = "/var/lib/sandcell")]
    pub state_dir: PathBuf,
    /// The Redis of a scale-out deployment (`redis://HOST:PORT/DB`): apps live there, not in
    /// the state dir.
    #[arg(long, env = "SANDCELL_QUEUE")]
    pub queue: Option<String>,
}

/// Where apps are kept: the state dir's store, or Redis for API nodes.
enum Book {
    Embedded(Store),
    Redis(redis::Connection),
}

impl Book {
    fn open(state: &StateDirArg) -> Result<Book, String> {
        match &state.queue {
            Some(url) => redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
                .map(Book::Redis)
                .map_err(|e| format!("redis {url}: {e}")),
            None => Store::open(&state.state_dir)
                .map(Book::Embedded)
                .map_err(|e| e.to_string()),
        }
    }
    fn create(&mut self, app: &App) -> Result<(), String> {
        match self {
            Book::Embedded(s) => s.create_app(app).map_err(|e| e.to_string()),
            Book::Redis(c) => scale_apps::create(c, app).map_err(|e| e.to_string()),
        }
    }
    fn list(&mut self) -> Result<Vec<App>, String> {
        match self {
            Book::Embedded(s) => s.list_apps().map_err(|e| e.to_string()),
            Book::Redis(c) => scale_apps::list(c).map_err(|e| e.to_string()),
        }
    }
    fn delete(&mut self, name: &str) -> Result<(), String> {
        match self {
            Book::Embedded(s) => s.delete_app(name).map_err(|e| e.to_string()),
            Book::Redis(c) => scale_apps::delete(c, name).map_err(|e| e.to_string()),
        }
    }
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
            let mut book = Book::open(&state)?;
            let key = generate_key();
            book.create(&App {
                name,
                key_hash: hash_key(&key),
                max_concurrent,
                max_wall_time_ms: max_wall_time.map(|d| d.as_millis() as u64),
                max_memory,
            })?;
            println!("{key}");
            Ok(())
        }
        AppCommand::List { state } => {
            for app in Book::open(&state)?.list()? {
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
            Book::open(&state)?.delete(&name)?;
            println!("deleted app {name:?} (its key no longer works)");
            Ok(())
        }
    }
}
