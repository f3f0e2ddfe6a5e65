//! `sandcell worker`: a worker node of a scale-out deployment (docs/scale-out.md). Runs the
//! runs API nodes (`serve --queue`) put on Redis, with the same images, languages and limits
//! as `serve` (the same `--config` file).

use std::path::PathBuf;

use crate::api::config::{Overrides, ServeConfig};
use crate::api::scale::node::{self, NodeConfig};

#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The Redis the API nodes queue runs in: `redis://HOST:PORT/DB`.
    #[arg(long, env = "SANDCELL_QUEUE")]
    pub queue: String,
    /// TOML configuration file (as for `serve`: images, languages, limits, workers).
    #[arg(long, env = "SANDCELL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Cells running at the same time (default: number of cores).
    #[arg(long, env = "SANDCELL_WORKERS")]
    pub workers: Option<usize>,
    /// This node's name in the consumer group and in `GET /v1/nodes` (default: host name).
    #[arg(long, env = "SANDCELL_NODE")]
    pub name: Option<String>,
    /// Directory of the image store (`<state-dir>/images`).
    #[arg(long, env = "SANDCELL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Cells kept set up ahead per recently used shape (default: one per worker; 0: none).
    #[arg(long, env = "SANDCELL_WARM_CELLS")]
    pub warm_cells: Option<usize>,
    /// Serve an image directory under a name: NAME=ROOTFS_DIR (repeatable).
    #[arg(long = "image", value_parser = super::serve::image_pair)]
    pub images: Vec<(String, PathBuf)>,
    /// Run even where the host cannot enforce a limit.
    #[arg(long, env = "SANDCELL_ALLOW_DEGRADED")]
    pub allow_degraded: bool,
}

fn host_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "worker".into())
}

pub fn main(args: WorkerArgs) -> i32 {
    let loaded = ServeConfig::load(
        args.config.as_deref(),
        Overrides {
            state_dir: args.state_dir,
            workers: args.workers,
            warm_cells: args.warm_cells,
            allow_degraded: args.allow_degraded,
            images: args.images,
            ..Overrides::default()
        },
    );
    let serve = match loaded {
        Ok(c) => c,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_USAGE;
        }
    };
    let config = NodeConfig {
        url: args.queue,
        name: args.name.unwrap_or_else(host_name),
        serve,
    };
    match node::run(config) {
        Ok(()) => 0,
        Err(e) => {
            super::error_line(e);
            super::EXIT_SANDBOX
        }
    }
}
