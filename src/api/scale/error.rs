//! Errors of the Redis queue, and how the HTTP layer answers them.

use super::super::error::ApiError;

/// What can go wrong talking to Redis.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("malformed record {key}: {what}")]
    Malformed { key: String, what: String },
    #[error("an app named {0:?} already exists")]
    AppExists(String),
    #[error("no app named {0:?}")]
    NoSuchApp(String),
}

impl QueueError {
    /// The HTTP answer: Redis being away is a 503 with Retry-After (never another 5xx).
    pub fn into_api(self, retry_after: u64) -> ApiError {
        match self {
            QueueError::NoSuchApp(name) => ApiError::not_found(format!("no app named {name:?}")),
            QueueError::AppExists(name) => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "app_exists",
                format!("an app named {name:?} already exists"),
            ),
            e => {
                tracing::warn!(error = %e, "queue unavailable");
                ApiError::unavailable("queue_unavailable", e.to_string(), retry_after)
            }
        }
    }
}
