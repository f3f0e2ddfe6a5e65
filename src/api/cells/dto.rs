//! The bodies of `/v1/cells`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::dto::{integer, Encoding};
use crate::result::RunResultWire;

/// Limits of a whole long-lived cell (its cgroup and its writable layers); absent fields
/// take the server's defaults, bounded by its (and the app's) maxima.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CellLimitsInput {
    /// Memory in bytes for all the cell's processes together (swap included).
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub memory: Option<i64>,
    /// Processes and threads of the cell together.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub pids: Option<i64>,
    /// CPU bandwidth in cores.
    #[schema(minimum = 0)]
    pub cpus: Option<f64>,
    /// Bytes of each writable tmpfs (/tmp, the work dir, /dev/shm).
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub disk: Option<i64>,
    /// Inodes of each writable tmpfs.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub inodes: Option<i64>,
}

/// `POST /v1/cells`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CellRequest {
    /// Image name (see `GET /v1/images`); one of `image` or `language` is required.
    pub image: Option<String>,
    /// Language name (see `GET /v1/languages`): its image.
    pub language: Option<String>,
    #[serde(default)]
    pub limits: CellLimitsInput,
    /// Seconds without an exec or file transfer after which the cell ends.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "integer")]
    pub idle_timeout: Option<i64>,
    /// Seconds after which the cell ends whatever it does.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "integer")]
    pub max_lifetime: Option<i64>,
    /// Environment of every exec (an exec's own env wins).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

/// Time and output limits of one exec.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecLimitsInput {
    /// Wall-clock time in milliseconds.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub wall_time: Option<i64>,
    /// CPU time in milliseconds (what the cell's processes use during the exec).
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub cpu_time: Option<i64>,
    /// Captured bytes per stream.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub output: Option<i64>,
}

fn default_wait() -> bool {
    true
}

/// `POST /v1/cells/{id}/exec`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// Program and arguments.
    #[schema(example = json!(["sh", "-c", "echo hello"]), max_items = 4096)]
    pub cmd: Vec<String>,
    pub stdin: Option<String>,
    #[serde(default)]
    pub stdin_encoding: Encoding,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (absolute, in the cell); the work dir by default.
    pub cwd: Option<String>,
    #[serde(default)]
    pub limits: ExecLimitsInput,
    /// Answer with the finished result (default); `false`: 202 with the exec's number, its
    /// events at `/v1/cells/{id}/exec/{n}/events`.
    #[serde(default = "default_wait")]
    pub wait: bool,
}

/// What a cell has used so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct CellUsageView {
    pub cpu_time_ms: u64,
    pub memory_peak_bytes: Option<u64>,
    /// Bytes in the cell's writable layers (work dir, /tmp, /dev/shm).
    pub disk_bytes: u64,
}

/// Where a cell is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CellState {
    /// Waiting for execs.
    Idle,
    /// An exec runs.
    Busy,
    Ended,
}

/// One cell.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CellView {
    pub id: String,
    pub image: String,
    pub state: CellState,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub ended_at: Option<i64>,
    /// Why the cell ended (`deleted`, `idle timeout`, `max lifetime`, out of memory, ...).
    pub end_reason: Option<String>,
    pub execs: u64,
    /// The cell's work dir (relative paths of the CLI's `cp` are relative to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<CellUsageView>,
}

/// `GET /v1/cells`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CellList {
    pub cells: Vec<CellView>,
}

/// The status of one exec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    Running,
    Done,
}

/// One exec: its number in the cell and, once done, its result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExecView {
    pub cell: String,
    pub n: u64,
    pub status: ExecStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RunResultWire>,
}
