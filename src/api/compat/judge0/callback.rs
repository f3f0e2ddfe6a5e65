//! `callback_url`: once a submission ends, its result (base64-encoded, Judge0's default
//! fields) is sent with `PUT` to the URL, as Judge0 does. Off unless the operator lists the
//! hosts callbacks may reach (`[judge0] callback_hosts`): the daemon would otherwise make
//! requests into the operator's network on a client's behalf. Plain `http://` only, one
//! attempt of at most a few seconds, the answer is ignored.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one callback may take (connect, send, read the status line).
const TIMEOUT: Duration = Duration::from_secs(5);

/// A parsed `http://host[:port]/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub path: String,
}

fn parse(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("must be an http:// URL (https is not supported)")?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err("must name a host".into());
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            (h, p.parse::<u16>().map_err(|_| "has a bad port")?)
        }
        _ => (authority, 80),
    };
    if path.chars().any(|c| c.is_control() || c == ' ') {
        return Err("has spaces or control characters".into());
    }
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    Ok(Target {
        host: host.to_ascii_lowercase(),
        port,
        path,
    })
}

/// Whether `url` may be called back: well-formed and its host (or host:port) listed.
pub fn check_url(url: &str, allowed: &[String]) -> Result<Target, String> {
    if allowed.is_empty() {
        return Err("callbacks are not enabled on this server".into());
    }
    let t = parse(url)?;
    let with_port = format!("{}:{}", t.host, t.port);
    if allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&t.host) || a.eq_ignore_ascii_case(&with_port))
    {
        Ok(t)
    } else {
        Err(format!("host {with_port} is not allowed for callbacks"))
    }
}

/// Sends `body` (JSON) with PUT to `target`; failures are logged, never retried.
pub async fn put(target: Target, body: String) {
    let what = format!("{}:{}{}", target.host, target.port, target.path);
    let sent = tokio::time::timeout(TIMEOUT, async {
        let mut stream = TcpStream::connect((target.host.as_str(), target.port)).await?;
        let head = format!(
            "PUT {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            target.path,
            target.host,
            target.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        let mut status = [0u8; 12];
        let _ = stream.read(&mut status).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&status).into_owned())
    })
    .await;
    match sent {
        Ok(Ok(status)) => {
            tracing::debug!(callback = %what, status = %status.trim(), "callback sent")
        }
        Ok(Err(e)) => tracing::warn!(callback = %what, error = %e, "callback failed"),
        Err(_) => tracing::warn!(callback = %what, "callback timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_listed_http_hosts_are_called() {
        let allowed = vec!["127.0.0.1:9000".to_string(), "hooks.example".to_string()];
        let t = check_url("http://127.0.0.1:9000/done?x=1", &allowed).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("127.0.0.1", 9000, "/done?x=1")
        );
        assert!(check_url("http://hooks.example", &allowed).is_ok());
        assert!(check_url("http://127.0.0.1:9001/", &allowed).is_err());
        assert!(check_url("https://hooks.example/", &allowed).is_err());
        assert!(check_url("http://user@hooks.example/", &allowed).is_err());
        assert!(check_url("http://hooks.example/a b", &allowed).is_err());
        assert!(check_url("http://hooks.example/", &[]).is_err());
    }
}
