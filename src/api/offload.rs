//! Heavy request work (parsing a body of megabytes, validating it, decoding its files, writing
//! it to the store) runs on tokio's blocking threads, never on the threads that serve every
//! connection: one large request must not stall `/healthz`.
//!
//! The daemon starts all its blocking threads up front and keeps them (see
//! [`server::serve`](super::server::serve)): it creates no threads once cells are cloned.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use super::error::ApiError;

/// Blocking threads of the daemon's runtime.
pub fn threads() -> usize {
    super::config::available_cores().clamp(2, 8)
}

/// How long an idle blocking thread is kept: for the daemon's whole life.
pub const KEEP_ALIVE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Starts every blocking thread of the current runtime now (each waits until all exist).
pub async fn start_threads(n: usize) {
    let all = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let all = all.clone();
            tokio::task::spawn_blocking(move || {
                all.wait();
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

/// Runs `f` on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request worker: {e}")))?
}
