//! The CLI's client of a running daemon's local API socket (root only; no key: requests on
//! it act as the app `local`). HTTP/1.1 over the unix socket with hyper, one connection per
//! request.

use std::path::{Path, PathBuf};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// Why a request to the daemon failed (its own error answers are not errors here).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon at {path} ({source}); is `sandcell serve` running with this state dir?")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("talking to the daemon: {0}")]
    Http(String),
}

/// One answer of the daemon.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The daemon's error message (its JSON error body), or the status.
    pub fn error_text(&self) -> String {
        let v = self.json();
        match v["error"]["message"].as_str() {
            Some(m) => format!("{} ({})", m, self.status),
            None => self.status.to_string(),
        }
    }
}

pub struct LocalClient {
    socket: PathBuf,
    runtime: tokio::runtime::Runtime,
}

impl LocalClient {
    pub fn new(socket: &Path) -> Result<LocalClient, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Http(format!("start a runtime: {e}")))?;
        Ok(LocalClient {
            socket: socket.to_owned(),
            runtime,
        })
    }

    /// Sends one request and reads the whole answer.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Answer, ClientError> {
        self.runtime
            .block_on(self.send(method, path, content_type, body))
    }

    pub fn json(
        &self,
        method: Method,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Answer, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Http(e.to_string()))?;
        self.request(method, path, "application/json", bytes)
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Answer, ClientError> {
        let http = |e: &dyn std::fmt::Display| ClientError::Http(e.to_string());
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|source| ClientError::Connect {
                path: self.socket.clone(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(&e))?;
        let driver = tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, HeaderValue::from_static("localhost"))
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| http(&e))?;
        let response = sender.send_request(request).await.map_err(|e| http(&e))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| http(&e))?
            .to_bytes();
        driver.abort();
        Ok(Answer {
            status,
            content_type,
            body,
        })
    }
}
