//! Every Redis key sandcell uses (prefix `sandcell:`), so nodes agree on them.

/// The stream of accepted runs; one entry per run (`id`).
pub const RUNS_STREAM: &str = "sandcell:runs";
/// The one consumer group of all worker nodes.
pub const GROUP: &str = "workers";

/// Acknowledges a done entry and deletes it (the stream holds only runs not yet done, so it
/// does not grow, and its length minus the pending entries is the queue depth).
pub fn ack(pipe: &mut redis::Pipeline, entry: &str) {
    pipe.cmd("XACK")
        .arg(RUNS_STREAM)
        .arg(GROUP)
        .arg(entry)
        .ignore()
        .cmd("XDEL")
        .arg(RUNS_STREAM)
        .arg(entry)
        .ignore();
}

/// Queues run `id`: a new entry on the runs stream (any worker node may take it).
pub fn enqueue(pipe: &mut redis::Pipeline, id: &str) {
    pipe.cmd("XADD")
        .arg(RUNS_STREAM)
        .arg("*")
        .arg("id")
        .arg(id)
        .ignore();
}

/// A run's record (hash).
pub fn run(id: &str) -> String {
    format!("sandcell:run:{id}")
}

/// A run's events (stream): status changes, output chunks, the result. Late readers replay it.
pub fn events(id: &str) -> String {
    format!("sandcell:events:{id}")
}

/// An app (hash: key_hash, max_concurrent, maxima).
pub fn app(name: &str) -> String {
    format!("sandcell:app:{name}")
}

/// Key hash → app name.
pub fn app_key(key_hash: &str) -> String {
    format!("sandcell:appkey:{key_hash}")
}

/// The set of app names.
pub const APPS: &str = "sandcell:apps";

/// A worker node's heartbeat (hash with a TTL).
pub fn node(name: &str) -> String {
    format!("sandcell:node:{name}")
}

/// An app's runs (sorted set by creation time), for `GET /v1/runs`.
pub fn app_runs(app: &str) -> String {
    format!("sandcell:appruns:{app}")
}

/// The set of worker node names that sent a heartbeat (dead ones are pruned by readers).
pub const NODES: &str = "sandcell:nodes";

/// An app's runs queued or running (its `max_concurrent` quota across API nodes).
pub fn active(app: &str) -> String {
    format!("sandcell:active:{app}")
}

/// An `Idempotency-Key` of an app (hashed: keys are client text): "BODY_HASH RUN_ID".
pub fn idempotency(app: &str, key: &str) -> String {
    use sha2::Digest;
    format!(
        "sandcell:idem:{app}:{}",
        hex::encode(sha2::Sha256::digest(key.as_bytes()))
    )
}
