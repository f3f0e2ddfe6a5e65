//! Wire types of API v1 (request and response bodies). The OpenAPI document is generated
//! from these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::result::RunResultWire;
use crate::spec::bounds;

/// How a file's `content` is encoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Utf8,
    Base64,
}

/// A file written into the cell's work dir before the program starts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileInput {
    /// Relative path inside the work dir (no `..`, not absolute).
    #[schema(example = "main.sh", min_length = 1, max_length = 4096)]
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub encoding: Encoding,
    /// Make the file executable (mode 0755 instead of 0644).
    #[serde(default)]
    pub executable: bool,
}

/// Accepts an integer written as a float with no fraction (`4229.0` is an integer in JSON
/// Schema).
pub(crate) fn integer<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::Error;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    if n.as_u64().is_some() {
        return Ok(Some(i64::MAX));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.is_finite() => {
            Ok(Some(f.clamp(i64::MIN as f64, i64::MAX as f64) as i64))
        }
        _ => Err(D::Error::custom(format!("{n} is not an integer"))),
    }
}

/// `T` read only from a JSON object: serde's derived structs also accept an array of their
/// fields in order (`"limits": [null, 1]`), which the schema does not allow.
#[derive(Debug)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for V<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData)).map(Object)
    }
}

fn object<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Object::deserialize(d).map(|o| o.0)
}

/// The marker of a JSON error that is a request bound, not malformed JSON (answered 422).
pub const BOUND_ERROR: &str = "request bound exceeded";

/// Deserializing stops at the first element past `max` (a body of 100,000 variables is
/// never held in memory as 100,000 strings): the error names the bound.
struct Bounded<T> {
    field: &'static str,
    max: usize,
    marker: std::marker::PhantomData<T>,
}

impl<'de, T> serde::de::Visitor<'de> for Bounded<Vec<T>>
where
    Elem<T>: Deserialize<'de>,
{
    type Value = Vec<T>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an array of at most {} items", self.max)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while let Some(item) = seq.next_element::<Elem<T>>()? {
            if out.len() == self.max {
                return Err(too_many(self.field, self.max));
            }
            out.push(item.0);
        }
        Ok(out)
    }
}

impl<'de> serde::de::Visitor<'de> for Bounded<BTreeMap<String, String>> {
    type Value = BTreeMap<String, String>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "an object of at most {} string values", self.max)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> Result<BTreeMap<String, String>, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((k, v)) = map.next_entry::<String, String>()? {
            out.insert(k, v);
            if out.len() > self.max {
                return Err(too_many(self.field, self.max));
            }
        }
        Ok(out)
    }
}

/// An element of a bounded array: file entries must be objects, strings are strings.
pub struct Elem<T>(T);

impl<'de> Deserialize<'de> for Elem<FileInput> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        object(d).map(Elem)
    }
}

impl<'de> Deserialize<'de> for Elem<String> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Elem)
    }
}

fn too_many<E: serde::de::Error>(field: &str, max: usize) -> E {
    E::custom(format!(
        "{BOUND_ERROR}: {field} has more than {max} entries (the maximum)"
    ))
}

fn bounded<T>(field: &'static str, max: usize) -> Bounded<T> {
    Bounded {
        field,
        max,
        marker: std::marker::PhantomData,
    }
}

fn bounded_files<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<FileInput>, D::Error> {
    d.deserialize_seq(bounded::<Vec<FileInput>>("files", bounds::MAX_FILES))
}

fn bounded_cmd<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Cmd;
    impl<'de> serde::de::Visitor<'de> for Cmd {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("null or an array of strings")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(bounded::<Vec<String>>("cmd", bounds::MAX_ARGS))
                .map(Some)
        }
    }
    d.deserialize_option(Cmd)
}

fn bounded_env<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    d.deserialize_map(bounded::<BTreeMap<String, String>>("env", bounds::MAX_ENV))
}

/// An optional u32 that may be written as a float with no fraction (`4.0` is an integer in
/// JSON Schema); larger values saturate.
pub fn opt_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    Ok(integer(d)?.map(|i| i.clamp(0, u32::MAX as i64) as u32))
}

/// Limits of one run; absent fields take the server's defaults. Above the server's (or the
/// app's) maximum a request is rejected with 422 or clamped, as the server is configured.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    /// Memory in bytes (swap included).
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub memory: Option<i64>,
    /// Processes and threads.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub pids: Option<i64>,
    /// CPU time of the whole cell in milliseconds.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub cpu_time: Option<i64>,
    /// Wall-clock time in milliseconds.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub wall_time: Option<i64>,
    /// Captured bytes per stream (stdout, stderr); more makes the run OLE.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub output: Option<i64>,
    /// Inodes (files, directories) of each writable tmpfs (/tmp, the work dir, /dev/shm);
    /// creating more fails with ENOSPC inside the program.
    #[schema(minimum = 0)]
    #[serde(default, deserialize_with = "integer")]
    pub inodes: Option<i64>,
}

/// `POST /v1/runs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Image name (see `GET /v1/images`). One of `image` or `language` is required.
    #[schema(example = "busybox")]
    pub image: Option<String>,
    /// Language name (see `GET /v1/languages`); picks the image and the default command.
    pub language: Option<String>,
    /// At most 1024 files, together at most `limits.disk` bytes; no path twice, no file
    /// inside another.
    #[serde(default, deserialize_with = "bounded_files")]
    #[schema(max_items = 1024)]
    pub files: Vec<FileInput>,
    /// Program and arguments (optional when `language` is given): at most 4096 arguments of
    /// at most 131071 bytes each, and at most 1 MiB with `env`.
    #[schema(example = json!(["sh", "-c", "echo hello"]), max_items = 4096)]
    #[serde(default, deserialize_with = "bounded_cmd")]
    pub cmd: Option<Vec<String>>,
    /// Standard input of the program.
    pub stdin: Option<String>,
    #[serde(default)]
    pub stdin_encoding: Encoding,
    /// At most 4096 variables (the image's included); `NAME=value` at most 131071 bytes.
    #[serde(default, deserialize_with = "bounded_env")]
    pub env: BTreeMap<String, String>,
    #[serde(default, deserialize_with = "object")]
    pub limits: LimitsInput,
    /// Answer with the finished result (200) instead of 202 at once.
    #[serde(default)]
    pub wait: bool,
}

/// Where a run is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Done,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Done => "done",
        }
    }
    pub fn parse(text: &str) -> Option<RunStatus> {
        match text {
            "queued" => Some(RunStatus::Queued),
            "running" => Some(RunStatus::Running),
            "done" => Some(RunStatus::Done),
            _ => None,
        }
    }
}

/// `202 Accepted` answer of an asynchronous submit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunAccepted {
    pub id: String,
    pub status: RunStatus,
}

/// The finished run as answered to `wait: true`: the RunResult of `sandcell run --json` plus
/// the run's id and status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunFinished {
    pub id: String,
    pub status: RunStatus,
    #[serde(flatten)]
    pub result: RunResultWire,
    /// The compile step of a compiled language (its output is the compiler's); absent
    /// otherwise. With verdict CE the run step did not happen and the top-level fields are
    /// the compile step's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<RunResultWire>,
}

/// A finished run's result as the store keeps it: the RunResult plus the compile step's.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredResult {
    #[serde(flatten)]
    pub result: RunResultWire,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<RunResultWire>,
}

impl StoredResult {
    /// Parses a stored result (rows written before compile results existed included).
    pub fn parse(text: &str) -> Option<StoredResult> {
        serde_json::from_str(text).ok()
    }
}

/// One run as `GET /v1/runs/{id}` reports it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunView {
    pub id: String,
    pub status: RunStatus,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The verdict once done.
    pub verdict: Option<String>,
    /// The full result once done.
    pub result: Option<RunResultWire>,
    /// The compile step's result, for compiled languages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<RunResultWire>,
}

/// `GET /v1/runs` answer (newest first, without outputs).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunSummary {
    pub id: String,
    pub status: RunStatus,
    pub verdict: Option<String>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

/// Query of `GET /v1/runs`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    /// At most this many runs (1 to 1000, default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only runs in this status.
    pub status: Option<RunStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImageInfo {
    /// What `"image"` names: a configured name, or `name:tag` of the image store.
    pub name: String,
    /// `config` (a configured rootfs directory) or `store`.
    pub source: String,
    /// The store's image id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Bytes unpacked (store images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ImageList {
    pub images: Vec<ImageInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LanguageInfo {
    pub name: String,
    pub version: Option<String>,
    pub image: String,
    /// File name the single source file gets.
    pub source_file: String,
    /// The run command.
    pub cmd: Vec<String>,
    /// The compile command (compiled store languages); absent when the language is run as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compile: Option<Vec<String>>,
    /// `config` (`[languages.NAME]`) or `store` (an image's labels).
    pub source: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LanguageList {
    pub languages: Vec<LanguageInfo>,
}

/// One Server-Sent Event of `GET /v1/runs/{id}/events`; `data` is JSON text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SseEvent {
    /// `status`, `stdout`, `stderr`, `result`, `lagged` or `deferred`.
    pub event: String,
    pub data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Health {
    pub status: String,
}
