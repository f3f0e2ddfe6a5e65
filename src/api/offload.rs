//! Heavy request work (parsing a body of megabytes, validating it, decoding its files, writing
//! it to the store) runs on tokio's blocking threads, never on the threads that serve every
//! connection: one large request must not stall `/healthz`.

use super::error::ApiError;

/// Blocking threads of the daemon's runtime.
pub fn threads() -> usize {
    super::config::available_cores().clamp(2, 8)
}

/// Runs `f` on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request worker: {e}")))?
}
