//! `sandcell serve`: the HTTP daemon. Settings come from `--config FILE` (TOML), overridden by
//! `SANDCELL_*` environment variables, overridden by flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::api::config::{LimitsPolicy, Overrides, ServeConfig};
use crate::spec::parse_size;

pub(crate) fn image_pair(s: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=ROOTFS_DIR"))?;
    if name.is_empty() {
        return Err(format!("{s:?} has no image name"));
    }
    Ok((name.to_string(), PathBuf::from(path)))
}

fn body_size(s: &str) -> Result<usize, String> {
    parse_size(s).and_then(|n| usize::try_from(n).map_err(|_| format!("{s:?} is too large")))
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file (see docs/serve.md).
    #[arg(long, env = "SANDCELL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (port 0: any free port, printed on stderr).
    #[arg(long, env = "SANDCELL_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory of the run store and apps (sandcell.db).
    #[arg(long, env = "SANDCELL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Cells running at the same time (default: number of cores).
    #[arg(long, env = "SANDCELL_WORKERS")]
    pub workers: Option<usize>,
    /// Runs waiting for a worker; more are answered 503.
    #[arg(long, env = "SANDCELL_MAX_QUEUE")]
    pub max_queue: Option<usize>,
    /// Cells kept set up ahead per recently used image/shape (default: one per worker;
    /// 0: none).
    #[arg(long, env = "SANDCELL_WARM_CELLS")]
    pub warm_cells: Option<usize>,
    /// Largest request body (e.g. 8M); larger ones are answered 413.
    #[arg(long, env = "SANDCELL_BODY_LIMIT", value_parser = body_size)]
    pub body_limit: Option<usize>,
    /// Requests above the maximum limits: reject (422) or clamp.
    #[arg(long, env = "SANDCELL_LIMITS_POLICY", value_enum)]
    pub limits_policy: Option<LimitsPolicy>,
    /// Serve an image directory under a name: NAME=ROOTFS_DIR (repeatable).
    #[arg(long = "image", value_parser = image_pair)]
    pub images: Vec<(String, PathBuf)>,
    /// Run even where the host cannot enforce a limit (results list what was degraded).
    #[arg(long, env = "SANDCELL_ALLOW_DEGRADED")]
    pub allow_degraded: bool,
    /// No API keys (every request is the app "anonymous"); for local experiments only.
    #[arg(long)]
    pub no_auth: bool,
    /// Seconds running cells may go on after SIGTERM.
    #[arg(long, env = "SANDCELL_SHUTDOWN_GRACE")]
    pub shutdown_grace: Option<u64>,
    /// Serve the browser playground at `/`.
    #[arg(long, env = "SANDCELL_PLAYGROUND")]
    pub playground: bool,
    /// Let the playground run code without a key, as this app (its quota and maxima).
    #[arg(long, env = "SANDCELL_PLAYGROUND_APP")]
    pub playground_app: Option<String>,
    /// Be an API node of a scale-out deployment: runs go to this Redis
    /// (`redis://HOST:PORT/DB`) and `sandcell worker` nodes run them.
    #[arg(long, env = "SANDCELL_QUEUE")]
    pub queue: Option<String>,
}

/// The configuration these arguments describe.
pub fn config_from(args: ServeArgs) -> Result<ServeConfig, crate::api::config::ConfigError> {
    ServeConfig::load(
        args.config.as_deref(),
        Overrides {
            listen: args.listen,
            state_dir: args.state_dir,
            workers: args.workers,
            max_queue: args.max_queue,
            warm_cells: args.warm_cells,
            body_limit: args.body_limit,
            limits_policy: args.limits_policy,
            allow_degraded: args.allow_degraded,
            no_auth: args.no_auth,
            shutdown_grace_secs: args.shutdown_grace,
            images: args.images,
            playground: args.playground,
            playground_app: args.playground_app,
            queue: args.queue,
        },
    )
}

pub fn main(args: ServeArgs) -> i32 {
    let config = match config_from(args) {
        Ok(c) => c,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_USAGE;
        }
    };
    match crate::api::serve(config) {
        Ok(()) => 0,
        Err(e) => {
            super::error_line(e);
            super::EXIT_SANDBOX
        }
    }
}
