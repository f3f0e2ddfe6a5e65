//! `sandcell cell`: long-lived cells of a running daemon, through its local socket (root
//! only, no key). `exec` passes stdin through and exits like `sandcell run`.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::local_client::{Answer, LocalClient};
use super::run::report;
use crate::result::{RunResult, RunResultWire};
use crate::spec::{parse_duration, parse_size};

/// Where the daemon listens locally.
#[derive(Debug, Clone, clap::Args)]
pub struct SocketArgs {
    /// The daemon's local API socket; default: STATE_DIR/api.sock.
    #[arg(long, env = "SANDCELL_SOCKET")]
    pub socket: Option<PathBuf>,
    /// The daemon's state dir (as given to `sandcell serve --state-dir`).
    #[arg(long, env = "SANDCELL_STATE_DIR", default_value = "/var/lib/sandcell")]
    pub state_dir: PathBuf,
}

impl SocketArgs {
    fn path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(|| self.state_dir.join("api.sock"))
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum CellCommand {
    /// Create a cell and print its id.
    Create {
        /// Image to make the cell from.
        #[arg(
            long,
            conflicts_with = "language",
            required_unless_present = "language"
        )]
        image: Option<String>,
        /// Language whose image to use.
        #[arg(long)]
        language: Option<String>,
        /// Memory of the whole cell, e.g. 512M.
        #[arg(long, value_parser = parse_size)]
        memory: Option<u64>,
        /// Processes and threads of the whole cell.
        #[arg(long)]
        pids: Option<u64>,
        /// CPU bandwidth in cores.
        #[arg(long)]
        cpus: Option<f64>,
        /// Size of each writable tmpfs (/tmp, the work dir), e.g. 256M.
        #[arg(long, value_parser = parse_size)]
        disk: Option<u64>,
        /// Inodes of each writable tmpfs.
        #[arg(long)]
        inodes: Option<u64>,
        /// End the cell after this long without an exec or copy, e.g. 10m.
        #[arg(long, value_parser = parse_duration)]
        idle_timeout: Option<Duration>,
        /// End the cell after this long whatever it does, e.g. 1h.
        #[arg(long, value_parser = parse_duration)]
        max_lifetime: Option<Duration>,
        /// Environment of every exec: NAME=VALUE (repeatable).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// Run a command in a cell (stdin and output pass through; exit code as `sandcell run`).
    Exec {
        id: String,
        /// Wall-clock limit of this exec, e.g. 30s.
        #[arg(long, value_parser = parse_duration)]
        wall_time: Option<Duration>,
        /// CPU-time limit of this exec.
        #[arg(long, value_parser = parse_duration)]
        cpu_time: Option<Duration>,
        /// Working directory in the cell (absolute).
        #[arg(long)]
        cwd: Option<String>,
        /// NAME=VALUE (repeatable).
        #[arg(long = "env", value_name = "NAME=VALUE")]
        env: Vec<String>,
        /// Print the result as JSON instead of passing output through.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        socket: SocketArgs,
        /// The command and its arguments.
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Copy a file into a cell (`cp FILE ID:PATH`) or a file or directory out of it
    /// (`cp ID:PATH DEST`). Relative cell paths are relative to the cell's work dir.
    Cp {
        from: String,
        to: String,
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// List the cells made through the local socket.
    Ls {
        #[command(flatten)]
        socket: SocketArgs,
    },
    /// End cells.
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
        #[command(flatten)]
        socket: SocketArgs,
    },
}

/// A failure with its exit code.
struct Failure(String, i32);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(e.to_string(), super::EXIT_SANDBOX)
    }
}

fn usage(message: impl Into<String>) -> Failure {
    Failure(message.into(), super::EXIT_USAGE)
}

pub fn main(cmd: CellCommand) -> i32 {
    match run(cmd) {
        Ok(code) => code,
        Err(Failure(message, code)) => {
            super::error_line(message);
            code
        }
    }
}

fn env_map(pairs: &[String]) -> Result<serde_json::Map<String, Value>, Failure> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), json!(v))),
            _ => Err(usage(format!("--env {p:?}: expected NAME=VALUE"))),
        })
        .collect()
}

fn expect(answer: Answer, ok: StatusCode) -> Result<Answer, Failure> {
    if answer.status == ok {
        Ok(answer)
    } else {
        Err(Failure(answer.error_text(), super::EXIT_SANDBOX))
    }
}

fn client(socket: &SocketArgs) -> Result<LocalClient, Failure> {
    Ok(LocalClient::new(&socket.path())?)
}

fn run(cmd: CellCommand) -> Result<i32, Failure> {
    match cmd {
        CellCommand::Create {
            image,
            language,
            memory,
            pids,
            cpus,
            disk,
            inodes,
            idle_timeout,
            max_lifetime,
            env,
            socket,
        } => {
            let body = json!({
                "image": image,
                "language": language,
                "limits": {"memory": memory, "pids": pids, "cpus": cpus, "disk": disk, "inodes": inodes},
                "idle_timeout": idle_timeout.map(|d| d.as_secs().max(1)),
                "max_lifetime": max_lifetime.map(|d| d.as_secs().max(1)),
                "env": env_map(&env)?,
            });
            let answer = expect(
                client(&socket)?.json(Method::POST, "/v1/cells", &body)?,
                StatusCode::CREATED,
            )?;
            println!("{}", answer.json()["id"].as_str().unwrap_or_default());
            Ok(0)
        }
        CellCommand::Exec {
            id,
            wall_time,
            cpu_time,
            cwd,
            env,
            json: as_json,
            socket,
            cmd,
        } => exec(&socket, &id, wall_time, cpu_time, cwd, &env, as_json, cmd),
        CellCommand::Cp { from, to, socket } => copy(&socket, &from, &to),
        CellCommand::Ls { socket } => {
            let answer = expect(
                client(&socket)?.request(
                    Method::GET,
                    "/v1/cells",
                    "application/json",
                    Vec::new(),
                )?,
                StatusCode::OK,
            )?;
            println!(
                "{:<32}  {:<16}  {:<6}  {:>5}  ENDED",
                "ID", "IMAGE", "STATE", "EXECS"
            );
            for c in answer.json()["cells"].as_array().into_iter().flatten() {
                println!(
                    "{:<32}  {:<16}  {:<6}  {:>5}  {}",
                    c["id"].as_str().unwrap_or_default(),
                    c["image"].as_str().unwrap_or_default(),
                    c["state"].as_str().unwrap_or_default(),
                    c["execs"],
                    c["end_reason"].as_str().unwrap_or_default()
                );
            }
            Ok(0)
        }
        CellCommand::Rm { ids, socket } => {
            let client = client(&socket)?;
            for id in ids {
                expect(
                    client.request(
                        Method::DELETE,
                        &format!("/v1/cells/{id}"),
                        "application/json",
                        Vec::new(),
                    )?,
                    StatusCode::OK,
                )?;
            }
            Ok(0)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn exec(
    socket: &SocketArgs,
    id: &str,
    wall_time: Option<Duration>,
    cpu_time: Option<Duration>,
    cwd: Option<String>,
    env: &[String],
    as_json: bool,
    cmd: Vec<String>,
) -> Result<i32, Failure> {
    let mut stdin = Vec::new();
    if !std::io::stdin().is_terminal() {
        std::io::stdin().read_to_end(&mut stdin)?;
    }
    let body = json!({
        "cmd": cmd,
        "stdin": base64::engine::general_purpose::STANDARD.encode(&stdin),
        "stdin_encoding": "base64",
        "env": env_map(env)?,
        "cwd": cwd,
        "limits": {
            "wall_time": wall_time.map(|d| d.as_millis() as u64),
            "cpu_time": cpu_time.map(|d| d.as_millis() as u64),
        },
        "wait": true,
    });
    let answer = expect(
        client(socket)?.json(Method::POST, &format!("/v1/cells/{id}/exec"), &body)?,
        StatusCode::OK,
    )?;
    let wire: RunResultWire = serde_json::from_value(answer.json()["result"].clone())
        .map_err(|e| Failure(format!("the daemon's answer: {e}"), super::EXIT_SANDBOX))?;
    let result = RunResult::from(wire);
    if !as_json {
        std::io::stdout().write_all(&result.stdout.bytes)?;
        std::io::stdout().flush()?;
        std::io::stderr().write_all(&result.stderr.bytes)?;
    }
    Ok(report(&result, as_json))
}

/// `ID:PATH` → the cell and its path from `/` (relative paths under the work dir).
fn cell_path(client: &LocalClient, spec: &str) -> Result<Option<(String, String)>, Failure> {
    let Some((id, path)) = spec.split_once(':') else {
        return Ok(None);
    };
    if id.is_empty() || id.contains('/') {
        return Ok(None);
    }
    let absolute = if path.starts_with('/') {
        path.to_string()
    } else {
        let cell = expect(
            client.request(
                Method::GET,
                &format!("/v1/cells/{id}"),
                "application/json",
                Vec::new(),
            )?,
            StatusCode::OK,
        )?;
        let work = cell.json()["work_dir"].as_str().unwrap_or("/").to_string();
        format!("{}/{}", work.trim_end_matches('/'), path)
    };
    Ok(Some((id.to_string(), absolute)))
}

fn url_path(path: &str) -> String {
    path.trim_start_matches('/')
        .split('/')
        .map(|part| {
            part.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn copy(socket: &SocketArgs, from: &str, to: &str) -> Result<i32, Failure> {
    let client = client(socket)?;
    match (cell_path(&client, from)?, cell_path(&client, to)?) {
        (None, Some((id, path))) => {
            let meta = std::fs::metadata(from)?;
            if !meta.is_file() {
                return Err(usage(format!("{from}: only files are copied into a cell")));
            }
            let content = std::fs::read(from)?;
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            let url = format!("/v1/cells/{id}/files/{}?mode={mode:o}", url_path(&path));
            expect(
                client.request(Method::PUT, &url, "application/octet-stream", content)?,
                StatusCode::NO_CONTENT,
            )?;
            Ok(0)
        }
        (Some((id, path)), None) => {
            let url = format!("/v1/cells/{id}/files/{}", url_path(&path));
            let answer = expect(
                client.request(Method::GET, &url, "application/json", Vec::new())?,
                StatusCode::OK,
            )?;
            let dest = Path::new(to);
            if answer.content_type.starts_with("application/x-tar") {
                std::fs::create_dir_all(dest)?;
                let mut archive = tar::Archive::new(std::io::Cursor::new(answer.body));
                archive.set_preserve_permissions(true);
                for entry in archive.entries()? {
                    // unpack_in refuses entries that would land outside `dest`.
                    entry?.unpack_in(dest)?;
                }
            } else {
                let dest = if dest.is_dir() {
                    dest.join(Path::new(&path).file_name().unwrap_or_default())
                } else {
                    dest.to_path_buf()
                };
                std::fs::write(dest, &answer.body)?;
            }
            Ok(0)
        }
        _ => Err(usage("cp: exactly one of SRC and DEST is ID:PATH")),
    }
}
