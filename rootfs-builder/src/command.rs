//! Host commands the builder runs (ldd, dpkg -L, version and path queries), always with a
//! clean environment so the host user's PATH (pyenv shims, ~/bin) cannot leak in.

use std::path::PathBuf;
use std::process::Command;

use crate::error::{BuildError, Result};

/// PATH for host commands: system directories only.
pub const HOST_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs `argv` and returns its stdout; a non-zero exit is an error carrying stderr.
pub fn output(argv: &[String]) -> Result<String> {
    let (status, stdout, stderr) = run(argv)?;
    if !status {
        return Err(BuildError::Command {
            command: argv.join(" "),
            message: stderr.trim().to_owned(),
        });
    }
    Ok(stdout)
}

/// Runs `argv`; returns (success, stdout, stderr).
pub fn run(argv: &[String]) -> Result<(bool, String, String)> {
    let Some((program, args)) = argv.split_first() else {
        return Err(BuildError::Command {
            command: String::new(),
            message: "empty command".into(),
        });
    };
    let out = Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", HOST_PATH)
        .env("LC_ALL", "C")
        .output()
        .map_err(|e| BuildError::Command {
            command: argv.join(" "),
            message: e.to_string(),
        })?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The first line of a command's output that looks like an absolute path.
pub fn path_from(argv: &[String]) -> Result<PathBuf> {
    let out = output(argv)?;
    let line = out.lines().next().unwrap_or("").trim();
    if !line.starts_with('/') {
        return Err(BuildError::Command {
            command: argv.join(" "),
            message: format!("printed {line:?}, not an absolute path"),
        });
    }
    Ok(PathBuf::from(line))
}

/// The files and directories `dpkg -L PACKAGE` lists.
pub fn package_files(package: &str) -> Result<Vec<PathBuf>> {
    let out = output(&["dpkg".into(), "-L".into(), package.into()])?;
    Ok(out
        .lines()
        .filter(|l| l.starts_with('/') && *l != "/.")
        .map(PathBuf::from)
        .collect())
}

/// The first line of a version command, trimmed.
pub fn version_from(argv: &[String]) -> Result<String> {
    let out = output(argv)?;
    let version = out.lines().next().unwrap_or("").trim().to_owned();
    if version.is_empty() {
        return Err(BuildError::Command {
            command: argv.join(" "),
            message: "printed no version".into(),
        });
    }
    Ok(version)
}
