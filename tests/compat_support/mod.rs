//! Helpers for the Judge0/Piston compat tests: a state dir whose image store holds the four
//! shipped languages (busybox `sh`, `c`, `cpp`, `python`), built once with the workspace's
//! rootfs-builder, and a real `sandcell serve` with the compat routes switched on.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::api_support::{create_app, Daemon};
use crate::common;

pub const IMAGES: [&str; 4] = ["busybox", "c", "cpp", "python"];

/// A state dir holding the four images: $SANDCELL_STATE_DIR or /var/lib/sandcell if they
/// hold them, else one under the target dir built once. None after a loud skip.
pub fn images() -> Option<PathBuf> {
    static STATE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    if !common::require_root() {
        return None;
    }
    let found = STATE.get_or_init(|| {
        let candidates = std::env::var_os("SANDCELL_STATE_DIR")
            .map(PathBuf::from)
            .into_iter()
            .chain([PathBuf::from("/var/lib/sandcell")]);
        for dir in candidates {
            if common::store_has_images(&dir, &IMAGES) {
                return Ok(dir);
            }
        }
        let own = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compat-state");
        common::build_store_images(&own, &IMAGES).map(|()| own)
    });
    match found {
        Ok(dir) => Some(dir.clone()),
        Err(why) => {
            common::require(false, &format!("no busybox/c/cpp/python images: {why}"));
            None
        }
    }
}

/// A daemon with its own store (and the shared images) and one app.
pub struct Env {
    pub daemon: Daemon,
    pub key: String,
    pub dir: tempfile::TempDir,
}

/// Starts `sandcell serve` with `config` (TOML) plus `extra` flags, an app `web` (quota
/// 16) created before; None after a loud skip.
pub fn start(config: &str, extra: &[&str]) -> Option<Env> {
    let rootfs = common::setup()?;
    let images = images()?;
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(images.join("images"), dir.path().join("images")).unwrap();
    let key = create_app(dir.path(), "web", 16);
    let config_path = dir.path().join("serve.toml");
    std::fs::write(&config_path, config).unwrap();
    let mut args = vec!["--config", config_path.to_str().unwrap()];
    args.extend_from_slice(extra);
    let daemon = Daemon::start(dir.path(), &rootfs, &args);
    Some(Env { daemon, key, dir })
}

pub const BOTH: &str = "compat = [\"judge0\", \"piston\"]\n";
