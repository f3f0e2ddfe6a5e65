//! Daemon configuration: a TOML file, overridden by environment variables and flags (flags
//! win; clap resolves flag-over-env, [`ServeConfig::apply`] puts both over the file).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::spec::{LimitBounds, Limits};

/// Errors reading or checking the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// What happens to a request asking for more than the server's (or its app's) maximum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LimitsPolicy {
    /// Answer 422 naming the limit.
    #[default]
    Reject,
    /// Lower the limit to the maximum and run.
    Clamp,
}

/// An image served by name from a directory (until the image store serves it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageEntry {
    pub rootfs: PathBuf,
}

/// A language: an image plus the file the source goes into and the command that runs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageEntry {
    pub image: String,
    /// Name the single source file gets in the work dir when `files` has one entry.
    pub source_file: String,
    /// Command run when the request gives no `cmd`.
    pub cmd: Vec<String>,
    #[serde(default)]
    pub version: Option<String>,
}

/// Pruning of finished runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PruneConfig {
    /// Finished runs older than this are deleted (seconds).
    pub max_age_secs: u64,
    /// At most this many finished runs are kept (the newest).
    pub max_count: u64,
    /// How often pruning runs (seconds).
    pub interval_secs: u64,
}

impl Default for PruneConfig {
    fn default() -> Self {
        PruneConfig {
            max_age_secs: 7 * 24 * 3600,
            max_count: 100_000,
            interval_secs: 60,
        }
    }
}

/// Long-lived cells (`/v1/cells`, `sandcell cell`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CellsConfig {
    /// Live cells an app may hold at once (429 above).
    pub max_per_app: u32,
    /// Live cells of every app together (503 above).
    pub max_total: u32,
    /// Idle timeout of a cell that names none, and the largest one allowed (seconds).
    pub idle_timeout_secs: u64,
    pub max_idle_timeout_secs: u64,
    /// Lifetime of a cell that names none, and the largest one allowed (seconds).
    pub max_lifetime_secs: u64,
    pub max_max_lifetime_secs: u64,
    /// Largest file a `PUT .../files/{path}` takes, and the most a directory read sends.
    pub max_transfer_bytes: u64,
}

impl Default for CellsConfig {
    fn default() -> Self {
        CellsConfig {
            max_per_app: 8,
            max_total: 256,
            idle_timeout_secs: 600,
            max_idle_timeout_secs: 24 * 3600,
            max_lifetime_secs: 3600,
            max_max_lifetime_secs: 7 * 24 * 3600,
            max_transfer_bytes: 256 << 20,
        }
    }
}

/// The whole daemon configuration after merging file, env and flags.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    /// Cells running at the same time.
    pub workers: usize,
    /// Accepted runs waiting for a worker; more get 503.
    pub max_queue: usize,
    /// Cells kept set up ahead for each recently used cell shape (image, mounts, identity);
    /// `None`: one per worker. 0: every run clones its cell when it starts.
    pub warm_cells: Option<usize>,
    /// Largest request body in bytes (413 above).
    pub body_limit: usize,
    pub limits_policy: LimitsPolicy,
    /// Server-wide maxima of every limit.
    pub max_limits: LimitBounds,
    /// Limits of a request that does not name them.
    pub default_limits: Limits,
    /// Run even where the host cannot enforce a limit (results list what was degraded).
    pub allow_degraded: bool,
    /// Require a key on every /v1 route (off only for local experiments).
    pub auth: bool,
    /// Serve /metrics without a key.
    pub metrics_public: bool,
    /// How long running cells may go on after SIGTERM before they are cancelled (seconds).
    pub shutdown_grace_secs: u64,
    /// After SIGTERM, how long the listener stays open answering 503 (`/readyz`, new runs) so
    /// a load balancer sees the daemon leave before connections are refused (seconds).
    pub shutdown_drain_secs: u64,
    /// Retry-After seconds sent with 429 and 503.
    pub retry_after_secs: u64,
    pub prune: PruneConfig,
    pub cells: CellsConfig,
    /// The local API socket (root only; no key needed: requests on it act as the app
    /// `local`); `None`: `STATE_DIR/api.sock`.
    pub socket: Option<PathBuf>,
    pub images: BTreeMap<String, ImageEntry>,
    pub languages: BTreeMap<String, LanguageEntry>,
    /// Foreign APIs served beside /v1 (`["judge0", "piston"]`; none by default).
    pub compat: Vec<super::compat::CompatApi>,
    /// The app that serves compat requests carrying no key (none: they get 401).
    pub compat_app: Option<String>,
    /// Judge0 settings: extra language ids, callback hosts.
    pub judge0: super::compat::Judge0Config,
    /// Serve the browser playground at `/` (docs/serve.md, "The playground").
    pub playground: bool,
    /// The app whose quota and maxima the playground's runs use without a key (None: the
    /// page asks for a key). See `api::playground::anonymous`.
    pub playground_app: Option<String>,
    /// `redis://HOST:PORT/DB`: this daemon is an API node; `/v1/runs` are recorded and queued
    /// in Redis and run by `sandcell worker` nodes (docs/scale-out.md). None: embedded.
    pub queue: Option<String>,
    /// Apps that may read `GET /v1/nodes` (API nodes); the local socket always may.
    pub admin_apps: Vec<String>,
}

/// The number of CPUs this process may use (the default number of workers).
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            state_dir: PathBuf::from("/var/lib/sandcell"),
            workers: available_cores(),
            max_queue: 256,
            warm_cells: None,
            body_limit: 8 << 20,
            limits_policy: LimitsPolicy::Reject,
            max_limits: LimitBounds {
                max_wall_time: Duration::from_secs(60),
                max_cpu_time: Duration::from_secs(60),
                max_memory: 4 << 30,
                max_pids: 4096,
                max_cpus: available_cores() as f64,
                max_disk: 1 << 30,
                max_inodes: 1 << 20,
                max_output: 64 << 20,
                max_open_files: 4096,
            },
            default_limits: Limits::default(),
            allow_degraded: false,
            auth: true,
            metrics_public: true,
            shutdown_grace_secs: 10,
            shutdown_drain_secs: 1,
            retry_after_secs: 1,
            prune: PruneConfig::default(),
            cells: CellsConfig::default(),
            socket: None,
            images: BTreeMap::new(),
            languages: BTreeMap::new(),
            compat: Vec::new(),
            compat_app: None,
            judge0: super::compat::Judge0Config::default(),
            playground: false,
            playground_app: None,
            queue: None,
            admin_apps: Vec::new(),
        }
    }
}

/// Values given on the command line or in the environment (None: not given).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub state_dir: Option<PathBuf>,
    pub workers: Option<usize>,
    pub max_queue: Option<usize>,
    pub warm_cells: Option<usize>,
    pub body_limit: Option<usize>,
    pub limits_policy: Option<LimitsPolicy>,
    pub allow_degraded: bool,
    pub no_auth: bool,
    pub shutdown_grace_secs: Option<u64>,
    pub images: Vec<(String, PathBuf)>,
    pub playground: bool,
    pub playground_app: Option<String>,
    pub queue: Option<String>,
}

impl ServeConfig {
    /// Where the local API socket is.
    pub fn socket_path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.state_dir.join("api.sock"))
    }

    /// The configuration of `file` (defaults without one) with `overrides` put over it,
    /// checked: what `serve` and `worker` start from.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<ServeConfig, ConfigError> {
        let mut config = match file {
            Some(path) => ServeConfig::from_file(path)?,
            None => ServeConfig::default(),
        };
        config.apply(overrides);
        config.check()?;
        Ok(config)
    }

    /// Reads a TOML file (all keys optional).
    pub fn from_file(path: &Path) -> Result<ServeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    pub fn from_toml(text: &str) -> Result<ServeConfig, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Puts flag/env values over the file's.
    pub fn apply(&mut self, o: Overrides) {
        if let Some(v) = o.listen {
            self.listen = v;
        }
        if let Some(v) = o.state_dir {
            self.state_dir = v;
        }
        if let Some(v) = o.workers {
            self.workers = v;
        }
        if let Some(v) = o.max_queue {
            self.max_queue = v;
        }
        if let Some(v) = o.warm_cells {
            self.warm_cells = Some(v);
        }
        if let Some(v) = o.body_limit {
            self.body_limit = v;
        }
        if let Some(v) = o.limits_policy {
            self.limits_policy = v;
        }
        if let Some(v) = o.shutdown_grace_secs {
            self.shutdown_grace_secs = v;
        }
        self.allow_degraded |= o.allow_degraded;
        if o.no_auth {
            self.auth = false;
        }
        self.playground |= o.playground;
        if let Some(v) = o.playground_app {
            self.playground_app = Some(v);
        }
        if let Some(v) = o.queue {
            self.queue = Some(v);
        }
        for (name, rootfs) in o.images {
            self.images.insert(name, ImageEntry { rootfs });
        }
    }

    /// Rejects settings the daemon cannot work with.
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.workers == 0 {
            return Err(ConfigError::Invalid("workers must be at least 1".into()));
        }
        if self.body_limit < 1024 {
            return Err(ConfigError::Invalid(
                "body_limit must be at least 1024".into(),
            ));
        }
        self.default_limits
            .check(&self.max_limits)
            .map_err(|e| ConfigError::Invalid(format!("default_limits: {e}")))?;
        if self.playground_app.is_some() && !self.playground {
            return Err(ConfigError::Invalid(
                "playground_app needs playground = true".into(),
            ));
        }
        for (name, lang) in &self.languages {
            if !self.images.contains_key(&lang.image) {
                return Err(ConfigError::Invalid(format!(
                    "language {name}: unknown image {:?}",
                    lang.image
                )));
            }
            if lang.cmd.is_empty() {
                return Err(ConfigError::Invalid(format!("language {name}: empty cmd")));
            }
            crate::spec::check_relative_path("source_file", &lang.source_file)
                .map_err(|e| ConfigError::Invalid(format!("language {name}: {e}")))?;
        }
        super::compat::check_config(self).map_err(ConfigError::Invalid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_are_overridden_by_flags() {
        let mut c = ServeConfig::from_toml(
            "workers = 3\nmax_queue = 7\nlimits_policy = \"clamp\"\n[images.busybox]\nrootfs = \"/r\"\n[max_limits]\nmax_memory = 1048576000\n",
        )
        .unwrap();
        assert_eq!(c.workers, 3);
        assert_eq!(c.limits_policy, LimitsPolicy::Clamp);
        assert_eq!(c.max_limits.max_memory, 1048576000);
        c.apply(Overrides {
            workers: Some(5),
            ..Overrides::default()
        });
        assert_eq!(c.workers, 5);
        assert_eq!(c.max_queue, 7);
        assert!(c.check().is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        assert!(ServeConfig::from_toml("wokers = 3").is_err());
        let c = ServeConfig {
            workers: 0,
            ..ServeConfig::default()
        };
        assert!(c.check().is_err());
    }
}
