//! Long-lived cells through the real daemon (`/v1/cells`) and its local socket
//! (`sandcell cell`): what one exec leaves the next one finds, limits hold for the cell as a
//! whole, cells end on their own (idle timeout, out of memory, quota), nothing survives a
//! kill -9 of the daemon, copies are exact and cannot leave the cell, and cells are as
//! isolated from each other as runs are.

mod api_support;
mod common;
mod grade_support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use api_support::{cell_cgroups_of, create_app, read_events, request, sandcell, Daemon};
use serde_json::{json, Value};

struct Env {
    rootfs: PathBuf,
    dir: tempfile::TempDir,
}

fn env() -> Option<Env> {
    let rootfs = common::setup()?;
    Some(Env {
        rootfs,
        dir: tempfile::tempdir().unwrap(),
    })
}

/// An env whose state dir also holds the python and cpp images.
fn env_with_images() -> Option<Env> {
    let e = env()?;
    let images = grade_support::images()?;
    std::os::unix::fs::symlink(images.join("images"), e.dir.path().join("images")).unwrap();
    Some(e)
}

fn start(e: &Env, config: Option<&str>) -> (Daemon, String) {
    let key = create_app(e.dir.path(), "agent", 16);
    let mut extra = Vec::new();
    let path = e.dir.path().join("sandcell.toml");
    if let Some(text) = config {
        std::fs::write(&path, text).unwrap();
        extra = vec!["--config", path.to_str().unwrap()];
    }
    (Daemon::start(e.dir.path(), &e.rootfs, &extra), key)
}

fn create(d: &Daemon, key: &str, body: Value) -> String {
    let r = d.request("POST", "/v1/cells", Some(key), Some(&body.to_string()));
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_string()
}

fn exec_with(d: &Daemon, key: &str, id: &str, body: Value) -> Value {
    let r = d.request(
        "POST",
        &format!("/v1/cells/{id}/exec"),
        Some(key),
        Some(&body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["status"], "done", "{v}");
    v["result"].clone()
}

fn sh(d: &Daemon, key: &str, id: &str, script: &str) -> Value {
    exec_with(d, key, id, json!({"cmd": ["/bin/sh", "-c", script]}))
}

fn cell(d: &Daemon, key: &str, id: &str) -> Value {
    let r = d.request("GET", &format!("/v1/cells/{id}"), Some(key), None);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Polls the cell until it has ended (or panics after `within`).
fn wait_ended(d: &Daemon, key: &str, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = cell(d, key, id);
        if v["state"] == "ended" {
            return v;
        }
        assert!(Instant::now() < deadline, "cell {id} did not end: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

const SERVER: &str = r#"
import os, socket
s = socket.socket(socket.AF_UNIX)
s.bind('/tmp/answer.sock')
s.listen()
open('/tmp/ready', 'w').close()
while True:
    c, _ = s.accept()
    c.sendall(b'pong from pid %d\n' % os.getpid())
    c.close()
"#;

const CLIENT: &str = r#"
import socket, sys
sys.path.insert(0, '/work/site')
import mypkg
c = socket.socket(socket.AF_UNIX)
c.connect('/tmp/answer.sock')
print(c.recv(100).decode().split(' from')[0], mypkg.VALUE + 1, open('/tmp/note').read().strip())
"#;

#[test]
fn files_installs_and_a_background_server_outlive_their_exec() {
    let Some(e) = env_with_images() else { return };
    let (d, key) = start(&e, None);
    let id = create(
        &d,
        &key,
        json!({"language": "python", "limits": {"memory": 268435456}}),
    );

    // Step 1: files, a "package" installed into a writable dir, a server in the background.
    let r = exec_with(
        &d,
        &key,
        &id,
        json!({"cmd": ["sh", "-c",
            "echo remembered > /tmp/note; mkdir -p /work/site/mypkg && echo 'VALUE = 41' > /work/site/mypkg/__init__.py; \
             python3 -c \"$SERVER\" </dev/null >/dev/null 2>&1 & \
             while [ ! -e /tmp/ready ]; do sleep 0.05; done; echo started"],
            "env": {"SERVER": SERVER}}),
    );
    assert_eq!(r["verdict"], "OK", "{r}");
    assert_eq!(r["stdout"], "started\n");

    // Step 2: everything is still there, and the server answers.
    let r = exec_with(&d, &key, &id, json!({"cmd": ["python3", "-c", CLIENT]}));
    assert_eq!(r["verdict"], "OK", "{r}");
    assert_eq!(r["stdout"], "pong 42 remembered\n");
    let v = cell(&d, &key, &id);
    assert_eq!(v["state"], "idle");
    assert_eq!(v["execs"], 2);
    assert!(v["usage"]["cpu_time_ms"].as_u64().unwrap() > 0, "{v}");
    // The note and the package are in the cell's writable layers.
    assert!(v["usage"]["disk_bytes"].as_u64().unwrap() > 0, "{v}");

    let r = d.request("DELETE", &format!("/v1/cells/{id}"), Some(&key), None);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["end_reason"], "deleted");
    let r = d.request(
        "POST",
        &format!("/v1/cells/{id}/exec"),
        Some(&key),
        Some(&json!({"cmd": ["true"]}).to_string()),
    );
    assert_eq!(r.status, 410, "{}", r.text());
    assert_eq!(r.error_code(), "cell_ended");
}

#[test]
fn an_exec_past_its_time_limit_is_to_and_the_cell_lives_on() {
    let Some(e) = env() else { return };
    let (d, key) = start(&e, None);
    let id = create(&d, &key, json!({"image": "busybox"}));
    let r = exec_with(
        &d,
        &key,
        &id,
        json!({"cmd": ["sh", "-c", "echo before; touch /tmp/kept; sleep 60"], "limits": {"wall_time": 1000}}),
    );
    assert_eq!(r["verdict"], "TO", "{r}");
    assert_eq!(r["reason"], "wall");
    assert_eq!(r["stdout"], "before\n");
    let r = sh(&d, &key, &id, "ls /tmp/kept");
    assert_eq!(r["verdict"], "OK", "{r}");
    assert_eq!(r["stdout"], "/tmp/kept\n");

    // Asynchronously, with the output streamed as events.
    let r = d.request(
        "POST",
        &format!("/v1/cells/{id}/exec"),
        Some(&key),
        Some(&json!({"cmd": ["sh", "-c", "echo streamed"], "wait": false}).to_string()),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let n = r.json()["n"].as_u64().unwrap();
    assert_eq!(n, 3);
    let events = read_events(d.addr, &format!("/v1/cells/{id}/exec/{n}/events"), &key);
    let names: Vec<&str> = events.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names.last(), Some(&"result"), "{names:?}");
    let result = &events.last().unwrap().2;
    assert_eq!(result["verdict"], "OK", "{result}");
    assert_eq!(result["stdout"], "streamed\n");
    let r = d.request("GET", &format!("/v1/cells/{id}/exec/{n}"), Some(&key), None);
    assert_eq!(r.json()["result"]["stdout"], "streamed\n");
}

#[test]
fn the_memory_limit_is_the_cells_and_running_out_ends_it() {
    let Some(e) = env() else { return };
    let (d, key) = start(&e, None);
    let id = create(
        &d,
        &key,
        json!({"image": "busybox", "limits": {"memory": 48 << 20}}),
    );
    // Each exec alone stays under 48 MiB; what the first keeps (tmpfs pages are charged to
    // the cell) and the second's heap (a string doubled to 16 MiB, 24 MiB at its peak) do
    // not.
    let grow = "awk 'BEGIN { s = \"x\"; for (i = 0; i < 24; i++) s = s s; print length(s) }'";
    let r = sh(&d, &key, &id, grow);
    assert_eq!(r["verdict"], "OK", "alone it fits: {r}");
    let r = sh(
        &d,
        &key,
        &id,
        "head -c 31457280 /dev/zero > /dev/shm/kept && echo kept",
    );
    assert_eq!(r["verdict"], "OK", "{r}");
    let r = sh(&d, &key, &id, grow);
    assert_eq!(r["verdict"], "MLE", "{r}");
    let v = cell(&d, &key, &id);
    assert_eq!(v["state"], "ended", "{v}");
    assert!(v["end_reason"].as_str().unwrap().contains("memory"), "{v}");
    let r = d.request(
        "POST",
        &format!("/v1/cells/{id}/exec"),
        Some(&key),
        Some(&json!({"cmd": ["true"]}).to_string()),
    );
    assert_eq!(r.status, 410, "{}", r.text());
    assert!(r.text().contains("memory"), "{}", r.text());
}

#[test]
fn idle_cells_end_and_the_live_cell_quota_is_429() {
    let Some(e) = env() else { return };
    let (d, key) = start(&e, Some("[cells]\nmax_per_app = 2\n"));
    let idle = create(&d, &key, json!({"image": "busybox", "idle_timeout": 1}));
    let kept = create(&d, &key, json!({"image": "busybox"}));
    let r = d.request(
        "POST",
        "/v1/cells",
        Some(&key),
        Some(&json!({"image": "busybox"}).to_string()),
    );
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());

    let v = wait_ended(&d, &key, &idle, Duration::from_secs(30));
    assert_eq!(v["end_reason"], "idle timeout", "{v}");
    // Its place is free again; the other cell is untouched.
    create(&d, &key, json!({"image": "busybox"}));
    assert_eq!(cell(&d, &key, &kept)["state"], "idle");
    let list = d.request("GET", "/v1/cells", Some(&key), None).json();
    assert_eq!(list["cells"].as_array().unwrap().len(), 3, "{list}");

    // Bad requests are 4xx, never a cell.
    for (body, status) in [
        (json!({"image": "busybox", "idle_timeout": 0}), 422),
        (json!({"image": "nope"}), 422),
        (json!({"image": "busybox", "limits": {"memory": -1}}), 422),
        (json!({"image": "busybox", "bogus": 1}), 400),
        (json!({}), 422),
    ] {
        let r = d.request("POST", "/v1/cells", Some(&key), Some(&body.to_string()));
        assert_eq!(r.status, status, "{body}: {}", r.text());
    }
    let other = create_app(e.dir.path(), "other", 4);
    let r = d.request("GET", &format!("/v1/cells/{kept}"), Some(&other), None);
    assert_eq!(r.status, 404, "another app's cell is not found");
}

#[test]
fn kill_9_of_the_daemon_leaves_no_cell_behind() {
    let Some(e) = env() else { return };
    let mounts_before = common::mount_count();
    let (d, key) = start(&e, None);
    let first_pid = d.pid();
    let marker = format!("{}.{}", 700 + std::process::id() % 97, std::process::id());
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let id = create(&d, &key, json!({"image": "busybox"}));
            let r = sh(
                &d,
                &key,
                &id,
                &format!("sleep {marker} </dev/null >/dev/null 2>&1 & echo up"),
            );
            assert_eq!(r["stdout"], "up\n", "{r}");
            id
        })
        .collect();
    assert_eq!(common::host_processes_with(&marker).len(), 2);
    d.kill9();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !common::host_processes_with(&marker).is_empty() {
        assert!(
            Instant::now() < deadline,
            "cell processes outlived the daemon"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let d = Daemon::start(e.dir.path(), &e.rootfs, &[]);
    for id in &ids {
        let v = cell(&d, &key, id);
        assert_eq!(v["state"], "ended", "{v}");
        assert_eq!(v["end_reason"], "daemon restarted", "{v}");
    }
    let second_pid = d.pid();
    drop(d);
    let left = cell_cgroups_of(&[first_pid, second_pid]);
    assert!(left.is_empty(), "leftover cell cgroups: {left:?}");
    assert_eq!(common::mount_count(), mounts_before, "leftover mounts");
}

fn cli(state_dir: &Path, args: &[&str]) -> std::process::Output {
    sandcell()
        .arg("cell")
        .args(args)
        .env("SANDCELL_STATE_DIR", state_dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run sandcell cell")
}

#[test]
fn the_cli_copies_10_mb_both_ways_byte_for_byte() {
    let Some(e) = env() else { return };
    let (d, _key) = start(&e, None);
    let state = e.dir.path();
    let out = cli(state, &["create", "--image", "busybox", "--disk", "64M"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let data: Vec<u8> = (0..10_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("blob");
    std::fs::write(&src, &data).unwrap();
    let to = format!("{id}:blob");
    let out = cli(state, &["cp", src.to_str().unwrap(), &to]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The cell sees it in its work dir, exactly.
    let out = cli(
        state,
        &[
            "exec",
            &id,
            "--",
            "sh",
            "-c",
            "wc -c < /work/blob; md5sum /work/blob",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("10000000\n"), "{text}");

    let back = work.path().join("back");
    let out = cli(
        state,
        &["cp", &format!("{id}:/work/blob"), back.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::read(&back).unwrap() == data,
        "the copy back differs"
    );

    // A directory comes out as a tree; exec's exit code is the program's.
    let out = cli(
        state,
        &[
            "exec",
            &id,
            "--",
            "sh",
            "-c",
            "mkdir -p d/e && echo x > d/e/f; exit 3",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    let tree = work.path().join("tree");
    let out = cli(state, &["cp", &format!("{id}:d"), tree.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(tree.join("e/f")).unwrap(), "x\n");

    let out = cli(state, &["ls"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(&id));
    let out = cli(state, &["rm", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(state, &["exec", &id, "--", "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ended"));
    drop(d);
}

#[test]
fn file_paths_cannot_leave_the_cell() {
    let Some(e) = env() else { return };
    let (d, key) = start(&e, None);
    let id = create(&d, &key, json!({"image": "busybox"}));
    let r = sh(
        &d,
        &key,
        &id,
        "ln -s / /tmp/root; ln -s /etc/hostname /work/host; mkfifo /tmp/fifo; echo cell > /tmp/mine",
    );
    assert_eq!(r["verdict"], "OK", "{r}");
    let host_name = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let get = |path: &str| {
        request(
            d.addr,
            "GET",
            &format!("/v1/cells/{id}/files/{path}"),
            Some(&key),
            None,
        )
    };
    // Symlinks and `..` resolve inside the cell: its /etc/hostname, not the host's.
    for path in [
        "work/host",
        "tmp/root/etc/hostname",
        "tmp/../../../../etc/hostname",
    ] {
        let r = get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.text(), "sandcell\n", "{path}");
        assert_ne!(r.text(), host_name);
    }
    assert_eq!(get("tmp/../../tmp/mine").text(), "cell\n");
    for path in [
        "tmp/fifo",
        "proc/1/environ",
        "tmp/root/proc/1/status",
        "dev/zero",
    ] {
        let r = get(path);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    assert_eq!(get("no/such").status, 404);
    // Writes land in the cell or nowhere.
    let victim = format!("sandcell-escape-{}", std::process::id());
    for path in [
        format!("tmp/root/tmp/{victim}"),
        format!("../../../../tmp/{victim}"),
        format!("tmp/../../tmp/{victim}"),
    ] {
        let r = request(
            d.addr,
            "PUT",
            &format!("/v1/cells/{id}/files/{path}"),
            Some(&key),
            Some(b"written"),
        );
        assert_eq!(r.status, 204, "{path}: {}", r.text());
    }
    assert!(!Path::new(&format!("/tmp/{victim}")).exists());
    let r = sh(&d, &key, &id, &format!("cat /tmp/{victim}"));
    assert_eq!(r["stdout"], "written", "{r}");
    let r = request(
        d.addr,
        "PUT",
        &format!("/v1/cells/{id}/files/tmp/root/etc/evil"),
        Some(&key),
        Some(b"x"),
    );
    assert_eq!(r.status, 409, "the image is read-only: {}", r.text());
    assert!(!Path::new("/etc/evil").exists());
}

#[test]
fn cells_see_nothing_of_each_other() {
    let Some(e) = env() else { return };
    let (d, key) = start(&e, None);
    let a = create(&d, &key, json!({"image": "busybox"}));
    let b = create(&d, &key, json!({"image": "busybox"}));
    let r = sh(
        &d,
        &key,
        &a,
        "echo secret > /tmp/secret; echo secret > /work/secret; sleep 1000 </dev/null >/dev/null 2>&1 & for n in pid mnt net; do readlink /proc/self/ns/$n; done",
    );
    assert_eq!(r["verdict"], "OK", "{r}");
    let ns_a = r["stdout"].as_str().unwrap().to_string();
    let r = sh(
        &d,
        &key,
        &b,
        "ls -A /tmp /work; for n in pid mnt net; do readlink /proc/self/ns/$n; done",
    );
    assert_eq!(r["verdict"], "OK", "{r}");
    let out = r["stdout"].as_str().unwrap();
    assert!(!out.contains("secret"), "{out}");
    let ns_b: Vec<&str> = out.lines().filter(|l| l.contains(":[")).collect();
    assert_eq!(ns_b.len(), 3, "{out}");
    for line in ns_a.lines() {
        assert!(!ns_b.contains(&line), "shared namespace {line}");
    }
    let ps = sh(&d, &key, &b, "ps -o pid,args");
    assert!(
        !ps["stdout"].as_str().unwrap().contains("sleep 1000"),
        "{ps}"
    );
}
