//! Helpers for the Judge0/Piston compat tests: a state dir whose image store holds the four
//! shipped languages (busybox `sh`, `c`, `cpp`, `python`), built once with the workspace's
//! rootfs-builder, and a real `sandcell serve` with the compat routes switched on.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::api_support::{create_app, Daemon};
use crate::common;

pub const IMAGES: [&str; 4] = ["busybox", "c", "cpp", "python"];

fn has_images(state_dir: &Path) -> bool {
    IMAGES.iter().all(|name| {
        common::sandcell()
            .args(["image", "inspect", name])
            .env("SANDCELL_STATE_DIR", state_dir)
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn build_images(state_dir: &Path) -> Result<(), String> {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_sandcell"))
        .parent()
        .ok_or("no binary dir")?;
    let builder = bin_dir.join("rootfs-builder");
    if !builder.exists() {
        return Err(format!(
            "{} is missing (cargo build --workspace builds it)",
            builder.display()
        ));
    }
    for name in IMAGES {
        if common::sandcell()
            .args(["image", "inspect", name])
            .env("SANDCELL_STATE_DIR", state_dir)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            continue;
        }
        let layout = state_dir.with_file_name(format!("compat-layout-{name}"));
        let out = Command::new(&builder)
            .args(["build", name, "--out"])
            .arg(&layout)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "rootfs-builder build {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let out = common::sandcell()
            .args(["image", "import", "--name", name])
            .arg(&layout)
            .env("SANDCELL_STATE_DIR", state_dir)
            .output()
            .map_err(|e| e.to_string())?;
        let _ = std::fs::remove_dir_all(&layout);
        if !out.status.success() {
            return Err(format!(
                "sandcell image import {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(())
}

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
            if has_images(&dir) {
                return Ok(dir);
            }
        }
        let own = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compat-state");
        build_images(&own).map(|()| own)
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
