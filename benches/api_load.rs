//! Load client for scripts/bench-api: N keep-alive connections each POSTing /v1/runs with
//! `wait: true` in a loop. Not a criterion bench; run through scripts/bench-api.
//!
//! Env: SANDCELL_BENCH_ADDR (host:port), SANDCELL_BENCH_KEY, SANDCELL_BENCH_CONNS (2),
//! SANDCELL_BENCH_RUNS (total, 2000), SANDCELL_BENCH_CMD (JSON array, ["/bin/true"]),
//! SANDCELL_BENCH_IMAGE (busybox).
//! Prints `runs=N seconds=S rate=R/s errors=E`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn one(reader: &mut BufReader<TcpStream>, request: &[u8]) -> std::io::Result<bool> {
    reader.get_mut().write_all(request)?;
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok(status.contains(" 200 ") && body.windows(12).any(|w| w == b"\"verdict\":\"O"))
}

fn main() {
    if std::env::args().any(|a| a == "--bench" || a == "--list")
        && std::env::var("SANDCELL_BENCH_ADDR").is_err()
    {
        eprintln!("api_load: set SANDCELL_BENCH_ADDR (see scripts/bench-api); skipping");
        return;
    }
    let addr = env("SANDCELL_BENCH_ADDR", "127.0.0.1:8080");
    let key = env("SANDCELL_BENCH_KEY", "");
    let conns: usize = env("SANDCELL_BENCH_CONNS", "2").parse().unwrap_or(2);
    let runs: usize = env("SANDCELL_BENCH_RUNS", "2000").parse().unwrap_or(2000);
    let cmd = env("SANDCELL_BENCH_CMD", "[\"/bin/true\"]");
    let image = env("SANDCELL_BENCH_IMAGE", "busybox");
    let body = format!("{{\"image\":\"{image}\",\"cmd\":{cmd},\"wait\":true}}");
    let request = format!(
        "POST /v1/runs HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (addr, request, next, errors) =
                (addr.clone(), request.clone(), next.clone(), errors.clone());
            std::thread::spawn(move || {
                let stream = TcpStream::connect(&addr).expect("connect");
                stream.set_nodelay(true).ok();
                let mut reader = BufReader::new(stream);
                while next.fetch_add(1, Ordering::Relaxed) < runs {
                    if !matches!(one(&mut reader, request.as_bytes()), Ok(true)) {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "runs={runs} seconds={secs:.2} rate={:.1}/s errors={}",
        runs as f64 / secs,
        errors.load(Ordering::Relaxed)
    );
}
