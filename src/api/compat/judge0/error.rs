//! Judge0's error shapes: a field map `{"field": ["message"]}` with 422 for a submission
//! that does not validate, `{"error": "message"}` with the status for everything else.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::request::FieldErrors;
use crate::api::compat::auth::Refused;
use crate::api::error::ApiError;

/// An error answered in Judge0's shape.
#[derive(Debug, thiserror::Error)]
pub enum Judge0Error {
    #[error("invalid submission: {0:?}")]
    Fields(FieldErrors),
    #[error("{status}: {message}")]
    Plain {
        status: StatusCode,
        message: String,
        retry_after: Option<u64>,
    },
}

impl Judge0Error {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Judge0Error::Plain {
            status,
            message: message.into(),
            retry_after: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found")
    }
    /// One field's problem as a 422.
    pub fn field(name: &str, message: impl Into<String>) -> Self {
        let mut e = FieldErrors::new();
        e.insert(name.to_owned(), vec![message.into()]);
        Judge0Error::Fields(e)
    }
    /// The body of this error (batch answers list them).
    pub fn body(&self) -> serde_json::Value {
        match self {
            Judge0Error::Fields(f) => json!(f),
            Judge0Error::Plain { message, .. } => json!({ "error": message }),
        }
    }
}

impl From<Refused> for Judge0Error {
    fn from(r: Refused) -> Self {
        let status = match r {
            Refused::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::UNAUTHORIZED,
        };
        Judge0Error::new(status, r.to_string())
    }
}

impl From<ApiError> for Judge0Error {
    fn from(e: ApiError) -> Self {
        if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            // A request past a bound or with a bad path: name what `prepare` named.
            return Judge0Error::field("submission", e.message);
        }
        Judge0Error::Plain {
            status: e.status,
            message: e.message,
            retry_after: e.retry_after,
        }
    }
}

impl IntoResponse for Judge0Error {
    fn into_response(self) -> Response {
        let body = self.body();
        match self {
            Judge0Error::Fields(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
            }
            Judge0Error::Plain {
                status,
                retry_after,
                message,
            } => {
                if status.is_server_error() {
                    tracing::warn!(%status, %message, "judge0 request failed");
                }
                let mut r = (status, Json(body)).into_response();
                if let Some(secs) = retry_after {
                    r.headers_mut()
                        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
                r
            }
        }
    }
}
