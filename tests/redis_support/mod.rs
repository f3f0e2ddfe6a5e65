//! A private redis-server for one test (loopback, a free port, no persistence), stopped by
//! its PID; and worker nodes (`sandcell worker`) as child processes.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// True if `redis-server` is on PATH (else the test skips loudly, or fails under
/// SANDCELL_MUST_RUN=1).
pub fn have_redis() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A redis-server this test started.
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl Redis {
    pub fn start() -> Redis {
        let mut r = Redis {
            child: None,
            port: free_port(),
        };
        r.restart();
        r
    }

    /// `redis://127.0.0.1:PORT/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Starts it (again) on the same port, empty, and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "redis is running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ping(self.port) {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL (no persistence: everything in it is gone).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A blocking connection for looking at what sandcell wrote.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(5))
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `sandcell app create NAME --queue URL`: the key.
pub fn create_app(url: &str, name: &str, max_concurrent: u32) -> String {
    crate::api_support::create_app_in(name, max_concurrent, ["--queue", url])
}

/// A `sandcell worker` process.
pub struct Worker {
    pub child: Child,
    pub name: String,
    pub log: Arc<Mutex<String>>,
}

impl Worker {
    /// `sandcell worker --queue URL --name NAME --workers N --image busybox=ROOTFS`.
    pub fn start(url: &str, name: &str, workers: usize, state_dir: &Path, rootfs: &Path) -> Worker {
        let mut child = crate::common::sandcell()
            .arg("worker")
            .args(["--queue", url, "--name", name, "--allow-degraded"])
            .args(["--workers", &workers.to_string()])
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--image")
            .arg(format!("busybox={}", rootfs.display()))
            .env("SANDCELL_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sandcell worker");
        let (log, ready) = crate::api_support::follow_log(&mut child, |line| {
            line.contains("taking runs from").then(String::new)
        });
        if ready.is_none() {
            let _ = child.kill();
            panic!("worker did not start:\n{}", log.lock().unwrap());
        }
        Worker {
            child,
            name: name.to_string(),
            log,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL; returns its log.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let log = self.log();
        std::mem::forget(self);
        log
    }

    /// SIGTERM and wait (running cells finish first); returns its log.
    pub fn stop(mut self) -> String {
        self.terminate();
        let log = self.log();
        std::mem::forget(self);
        log
    }

    fn terminate(&mut self) {
        crate::api_support::terminate(&mut self.child, Duration::from_secs(60));
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// How many times each run id appears in "run finished" lines of worker logs.
pub fn finished_counts(logs: &[String]) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for log in logs {
        for line in log.lines().filter(|l| l.contains("run finished")) {
            let line = strip_ansi(line);
            if let Some(rest) = line.split("run=").nth(1) {
                let id: String = rest
                    .chars()
                    .skip_while(|c| !c.is_ascii_hexdigit())
                    .take_while(|c| c.is_ascii_hexdigit())
                    .collect();
                *counts.entry(id).or_insert(0) += 1;
            }
        }
    }
    counts
}

/// A log line without terminal colour sequences.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
