//! SIGKILL in the middle of an import leaves no visible half image, and importing the same
//! archive again succeeds (the leftover is swept).

mod common;
mod image_support;

use image_support::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A plain tar of `n` files of 256 KiB each with distinct content.
fn big_tar(n: usize) -> Vec<u8> {
    let mut t = RawTar::new().dir("data/", 0o755);
    for i in 0..n {
        let chunk: Vec<u8> = (0..256 * 1024)
            .map(|j| ((i * 31 + j * 7) % 251) as u8)
            .collect();
        t = t.file(&format!("data/f{i:04}"), 0o644, &chunk);
    }
    t.finish()
}

/// Files written so far by an import in progress (beneath tmp/*/image/rootfs).
fn files_in_progress(state: &Path) -> usize {
    let tmp = state.join("images/tmp");
    let Ok(rd) = std::fs::read_dir(&tmp) else {
        return 0;
    };
    rd.flatten()
        .map(|e| e.path().join("image/rootfs/data"))
        .filter_map(|d| std::fs::read_dir(d).ok())
        .map(|rd| rd.count())
        .sum()
}

#[test]
fn sigkill_mid_import_leaves_no_image_and_reimport_works() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let work = tempfile::tempdir().unwrap();
    let archive = big_tar(200); // ~50 MB
    let file = write(work.path(), "big.tar", &archive);

    // Feed the importer through a FIFO: half the archive, then hold, so it is certainly
    // killed in the middle of writing files.
    let fifo: PathBuf = work.path().join("big.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut child = common::sandcell()
        .args(["image", "import"])
        .arg(&fifo)
        .args(["--name", "big", "--state-dir"])
        .arg(st.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn sandcell");
    let half = archive[..archive.len() / 2].to_vec();
    let fifo_w = fifo.clone();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo_w)
            .unwrap();
        let _ = f.write_all(&half);
        // Hold the FIFO open (the importer waits for more) until the test is done.
        let _ = rx.recv();
    });

    let deadline = Instant::now() + Duration::from_secs(120);
    while files_in_progress(st.path()) < 10 {
        assert!(
            Instant::now() < deadline,
            "the import never started writing files"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the importer exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success());
    drop(tx);
    writer.join().unwrap();

    // Nothing visible: no image listed, nothing in by-id, resolve fails.
    assert!(ls(st.path()).is_empty());
    assert_eq!(
        std::fs::read_dir(st.path().join("images/by-id"))
            .unwrap()
            .count(),
        0
    );
    let o = cli(st.path(), &["inspect", "big"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        files_in_progress(st.path()) > 0,
        "the killed import left its temp dir"
    );

    // The same archive again: succeeds, and the stale temp dir is swept.
    import_ok(st.path(), &file, "big");
    let images = ls(st.path());
    assert_eq!(images.len(), 1);
    assert_eq!(
        std::fs::read_dir(st.path().join("images/tmp"))
            .unwrap()
            .count(),
        0
    );
    let store = sandcell::image::ImageStore::open(st.path()).unwrap();
    let img = store.resolve("big").unwrap();
    assert_eq!(
        std::fs::read_dir(img.rootfs.join("data")).unwrap().count(),
        200
    );
    let f = std::fs::read(img.rootfs.join("data/f0199")).unwrap();
    assert_eq!(f.len(), 256 * 1024);
    assert_eq!(f[1], ((199 * 31 + 7) % 251) as u8);
}
