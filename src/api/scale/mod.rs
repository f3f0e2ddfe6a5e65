//! Scale-out over Redis (`serve --queue redis://…`, `sandcell worker`): API nodes record
//! accepted runs in Redis (a hash per run, an entry on one stream) and worker nodes take them
//! with one consumer group. See docs/scale-out.md.
//!
//! - [`keys`]: every key name, in one place.
//! - [`record`]: a run as a Redis hash.
//! - [`client`]: the API node's async client (admission, lookups, waiting).
//! - [`routes`]: `/v1/runs` of an API node.
//! - [`node`]: the worker node (std threads, blocking connections; never tokio's threads).
//!
//! Gradings, long-lived cells and the compat/playground routes stay on the embedded mode of
//! the node that serves them.

pub mod apps;
pub mod client;
pub mod error;
pub mod events;
pub mod keys;
pub mod metrics;
pub mod node;
pub mod nodes;
pub mod reclaim;
pub mod record;
pub mod routes;

pub use client::RedisQueue;
pub use error::QueueError;

/// Where a daemon records and queues its `/v1/runs`.
#[derive(Debug, Clone, Default)]
pub enum RunBackend {
    /// The node's own SQLite store and queue (one machine).
    #[default]
    Embedded,
    /// Redis: this node is an API node; worker nodes run the cells.
    Redis(std::sync::Arc<RedisQueue>),
}
