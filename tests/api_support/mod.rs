//! Helpers for the daemon tests: start the real `sandcell serve` on a loopback port with a
//! temporary state dir, and a tiny HTTP/1.1 client over std TcpStream.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

pub use crate::common::sandcell;

/// Creates an app in `state_dir` and returns its key.
pub fn create_app(state_dir: &Path, name: &str, max_concurrent: u32) -> String {
    create_app_in(
        name,
        max_concurrent,
        [OsStr::new("--state-dir"), state_dir.as_os_str()],
    )
}

/// `sandcell app create NAME --max-concurrent N WHERE...`: the key. WHERE says where apps
/// live (`--state-dir DIR`, or `--queue URL`) and may add the app's maxima.
pub fn create_app_in<S: AsRef<OsStr>>(
    name: &str,
    max_concurrent: u32,
    r#where: impl IntoIterator<Item = S>,
) -> String {
    let out = sandcell()
        .args(["app", "create", name, "--max-concurrent"])
        .arg(max_concurrent.to_string())
        .args(r#where)
        .output()
        .expect("run sandcell app create");
    assert!(
        out.status.success(),
        "app create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("sk_"), "unexpected key {key:?}");
    key
}

/// Collects `child`'s stderr into a log from a thread of its own and waits (30 s at most)
/// for the first line `ready` accepts: what it made of that line, or None.
pub fn follow_log(
    child: &mut Child,
    ready: impl Fn(&str) -> Option<String> + Send + 'static,
) -> (Arc<Mutex<String>>, Option<String>) {
    let stderr = child.stderr.take().expect("stderr piped");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(found) = ready(&line) {
                let _ = tx.send(found);
            }
            let mut log = log2.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
    let found = rx.recv_timeout(Duration::from_secs(30)).ok();
    (log, found)
}

/// SIGTERM, then waits for the exit status; SIGKILL after `within`.
pub fn terminate(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + within;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running daemon; SIGTERM and wait on drop.
pub struct Daemon {
    pub child: Child,
    pub addr: SocketAddr,
    pub state_dir: PathBuf,
    pub log: Arc<Mutex<String>>,
}

impl Daemon {
    /// `sandcell serve --listen 127.0.0.1:0 --state-dir DIR --image busybox=ROOTFS EXTRA...`.
    pub fn start(state_dir: &Path, rootfs: &Path, extra: &[&str]) -> Daemon {
        let mut child = sandcell()
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--allow-degraded"])
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--image")
            .arg(format!("busybox={}", rootfs.display()))
            .args(extra)
            .env("SANDCELL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sandcell serve");
        let (log, ready) = follow_log(&mut child, |line| {
            line.strip_prefix("sandcell: listening on http://")
                .map(|addr| addr.trim().to_string())
        });
        let addr = match ready {
            Some(a) => a.parse().unwrap(),
            None => {
                let _ = child.kill();
                panic!("daemon did not start:\n{}", log.lock().unwrap());
            }
        };
        Daemon {
            child,
            addr,
            state_dir: state_dir.to_owned(),
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::forget(self);
    }

    /// SIGTERM and wait for the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let status = self.terminate();
        std::mem::forget(self);
        status
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        terminate(&mut self.child, Duration::from_secs(30))
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&str>,
    ) -> Response {
        request(self.addr, method, path, key, body.map(str::as_bytes))
    }

    pub fn post_run(&self, key: &str, body: &serde_json::Value) -> Response {
        self.request("POST", "/v1/runs", Some(key), Some(&body.to_string()))
    }

    /// Polls `GET /v1/runs/{id}` until done (or panics after `within`).
    pub fn wait_done(&self, key: &str, id: &str, within: Duration) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let r = self.request("GET", &format!("/v1/runs/{id}"), Some(key), None);
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json();
            if v["status"] == "done" {
                return v;
            }
            assert!(Instant::now() < deadline, "run {id} not done: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
    /// The `error.code` of a JSON error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

fn write_request(
    stream: &mut TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<()> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(key) = key {
        head.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    if let Some(body) = body {
        // The server may answer (413) and close before reading everything.
        let _ = stream.write_all(body);
    }
    Ok(())
}

fn parse_head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read header");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    (status, headers)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(pos) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&raw[..pos]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        raw = &raw[pos + 2..];
        out.extend_from_slice(&raw[..size.min(raw.len())]);
        raw = &raw[(size + 2).min(raw.len())..];
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&[u8]>,
) -> Response {
    request_with(addr, method, path, key, &[], body)
}

/// [`request`] with extra headers.
pub fn request_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    extra: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect to daemon");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write_request(&mut stream, addr, method, path, key, extra, body).expect("send request");
    let mut reader = BufReader::new(stream);
    let (status, headers) = parse_head(&mut reader);
    let mut raw = Vec::new();
    let _ = reader.read_to_end(&mut raw);
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked { dechunk(&raw) } else { raw };
    Response {
        status,
        headers,
        body,
    }
}

/// An SSE stream after its 200 head, reads timing out after `timeout`.
fn open_events(addr: SocketAddr, path: &str, key: &str, timeout: Duration) -> BufReader<TcpStream> {
    let mut stream = TcpStream::connect(addr).expect("connect to daemon");
    stream.set_read_timeout(Some(timeout)).unwrap();
    write_request(&mut stream, addr, "GET", path, Some(key), &[], None).unwrap();
    let mut reader = BufReader::new(stream);
    let (status, _) = parse_head(&mut reader);
    assert_eq!(status, 200);
    reader
}

/// Reads an SSE stream to its end: (arrival time, event name, data) per event.
pub fn read_events(
    addr: SocketAddr,
    path: &str,
    key: &str,
) -> Vec<(Instant, String, serde_json::Value)> {
    let mut reader = open_events(addr, path, key, Duration::from_secs(60));
    let mut events = Vec::new();
    let mut name = String::new();
    let mut line = String::new();
    // Chunk-size lines and blank lines are skipped; `event:`/`data:` lines are what counts.
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        let l = line.trim_end();
        if let Some(n) = l.strip_prefix("event: ") {
            name = n.to_string();
        } else if let Some(d) = l.strip_prefix("data: ") {
            let data = serde_json::from_str(d).unwrap_or(serde_json::Value::Null);
            events.push((Instant::now(), std::mem::take(&mut name), data));
        }
        line.clear();
    }
    events
}

/// Follows an SSE stream until an event named `wanted` arrives (or panics after `within`).
pub fn wait_for_event(addr: SocketAddr, path: &str, key: &str, wanted: &str, within: Duration) {
    let mut reader = open_events(addr, path, key, within);
    let deadline = Instant::now() + within;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap_or(0);
        assert!(
            n > 0 && Instant::now() < deadline,
            "no {wanted} event on {path}"
        );
        if line.trim_end() == format!("event: {wanted}") {
            return;
        }
    }
}

/// Cell cgroups (named `<creator pid>-<counter>-<hex>`) beneath this process's cgroups
/// whose creator is one of `pids`.
pub fn cell_cgroups_of(pids: &[i32]) -> Vec<PathBuf> {
    fn walk(dir: &Path, depth: usize, pids: &[i32], out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if !path.is_dir() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let creator = name.split('-').next().and_then(|p| p.parse::<i32>().ok());
            if name.split('-').count() == 3 && creator.is_some_and(|p| pids.contains(&p)) {
                out.push(path.clone());
            }
            if depth > 0 {
                walk(&path, depth - 1, pids, out);
            }
        }
    }
    let mut found = Vec::new();
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
        return found;
    };
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let base = if controllers.is_empty() {
            PathBuf::from("/sys/fs/cgroup/unified")
        } else {
            PathBuf::from("/sys/fs/cgroup").join(controllers.split(',').next().unwrap_or(""))
        };
        walk(
            &base.join(path.trim_start_matches('/')),
            3,
            pids,
            &mut found,
        );
    }
    found
}
