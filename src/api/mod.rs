//! The HTTP daemon (`sandcell serve`): axum router over a bounded queue of runs executed by
//! dedicated std worker threads (never tokio's), with an SQLite store so no accepted run is
//! lost.
//!
//! - [`routes::router`]: the whole API over an [`AppState`] (testable with `oneshot`).
//! - [`server::serve`]: builds everything, recovers runs of a previous process, serves until
//!   SIGTERM/SIGINT, shuts down gracefully.

pub mod auth;
pub mod cells;
pub mod compat;
pub mod config;
pub mod dto;
pub mod error;
pub mod grading_records;
pub mod gradings;
pub mod idempotency;
pub mod images;
pub mod live;
pub mod metrics;
pub mod offload;
pub mod openapi;
pub mod playground;
pub mod prepare;
pub mod queue;
pub mod routes;
pub mod scale;
pub mod server;
pub mod state;
pub mod state_dir;
pub mod store;
pub mod worker;

pub use config::ServeConfig;
pub use routes::router;
pub use server::{serve, ServeError};
pub use state::{AppState, Shared};
