//! Hostile archives: each one fails with a clear error or is sanitized, nothing appears outside
//! the store (checked with canary directories in /tmp), and a failed import leaves nothing
//! visible and no partial unpack behind.

mod common;
mod image_support;

use image_support::*;
use sandcell::image::{ImageError, ImageStore, ImportOptions, LimitExceeded};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Imports `path` through the CLI and expects a clear failure mentioning `expect`.
fn import_fails(state: &Path, path: &Path, expect: &str) {
    let o = cli(
        state,
        &["import", path.to_str().unwrap(), "--name", "hostile"],
    );
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "import should fail; stdout {} stderr {err}",
        stdout(&o)
    );
    assert!(err.starts_with("sandcell: "), "{err}");
    assert!(
        err.contains(expect),
        "error should mention {expect:?}: {err}"
    );
    assert_store_empty(state);
}

/// `c` without its leading `/`, as it appears inside an archive path.
fn rel(c: &Path) -> String {
    c.to_str().unwrap().trim_start_matches('/').to_string()
}

#[test]
fn dotdot_paths_are_refused() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let c = canary();
    let work = tempfile::tempdir().unwrap();
    for (i, p) in [
        format!("../../../../../../../../{}/evil", rel(c.path())),
        format!("ok/../../../../../../../../{}/evil", rel(c.path())),
        "a/b/../../..".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let t = RawTar::new()
            .file("fine", 0o644, b"x")
            .file(p, 0o644, b"pwned")
            .finish();
        let path = write(work.path(), &format!("dotdot{i}.tar"), &t);
        import_fails(st.path(), &path, "`..` component escapes the root");
    }
    assert_canary_untouched(c.path(), &[]);
}

#[test]
fn absolute_paths_land_inside_the_image() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let c = canary();
    let work = tempfile::tempdir().unwrap();
    let abs = format!("{}/abs", c.path().display());
    let t = RawTar::new().file(&abs, 0o644, b"inside").finish();
    let path = write(work.path(), "abs.tar", &t);
    import_ok(st.path(), &path, "abs");
    let store = ImageStore::open(st.path()).unwrap();
    let img = store.resolve("abs").unwrap();
    assert_eq!(
        std::fs::read(img.rootfs.join(rel(c.path())).join("abs")).unwrap(),
        b"inside"
    );
    assert_eq!(store.inspect("abs").unwrap()["stats"]["absolute_paths"], 1);
    assert_canary_untouched(c.path(), &[]);
}

#[test]
fn symlink_then_write_through_it_is_refused() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let c = canary();
    let work = tempfile::tempdir().unwrap();
    let target = c.path().to_str().unwrap();
    // A symlink to a host directory, then a file "inside" it.
    let t = RawTar::new()
        .symlink("etc", target)
        .file("etc/passwd", 0o644, b"root::0:0::/:/bin/sh\n")
        .finish();
    import_fails(st.path(), &write(work.path(), "s1.tar", &t), "symlink");
    // Same, via a nested directory and a relative link climbing out.
    let t = RawTar::new()
        .dir("a/", 0o755)
        .symlink("a/up", &format!("../../../../../../..{target}"))
        .file("a/up/evil", 0o644, b"x")
        .finish();
    import_fails(st.path(), &write(work.path(), "s2.tar", &t), "symlink");
    // A directory entry and a hard link through the symlink.
    let t = RawTar::new()
        .file("real", 0o644, b"x")
        .symlink("l", target)
        .hardlink("l/hl", "real")
        .finish();
    import_fails(st.path(), &write(work.path(), "s3.tar", &t), "symlink");
    let t = RawTar::new()
        .symlink("l", target)
        .dir("l/sub/", 0o755)
        .finish();
    import_fails(st.path(), &write(work.path(), "s4.tar", &t), "symlink");
    assert_canary_untouched(c.path(), &[]);

    // A file entry replacing a symlink to a host file replaces the link, never writes through.
    std::fs::write(c.path().join("victim"), b"original").unwrap();
    let t = RawTar::new()
        .symlink("f", c.path().join("victim").to_str().unwrap())
        .file("f", 0o644, b"overwritten?")
        .finish();
    import_ok(st.path(), &write(work.path(), "s5.tar", &t), "replaced");
    let img = ImageStore::open(st.path())
        .unwrap()
        .resolve("replaced")
        .unwrap();
    let md = std::fs::symlink_metadata(img.rootfs.join("f")).unwrap();
    assert!(md.is_file());
    assert_eq!(std::fs::read(c.path().join("victim")).unwrap(), b"original");
    assert_canary_untouched(c.path(), &["victim"]);
}

#[test]
fn hardlink_to_host_file_is_refused() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let c = canary();
    let work = tempfile::tempdir().unwrap();
    let secret = c.path().join("secret");
    std::fs::write(&secret, b"host secret").unwrap();
    let t = RawTar::new()
        .hardlink("stolen", secret.to_str().unwrap())
        .finish();
    import_fails(
        st.path(),
        &write(work.path(), "h1.tar", &t),
        "not a file already extracted",
    );
    let t = RawTar::new()
        .hardlink(
            "stolen",
            &format!("../../../../../../../..{}", secret.display()),
        )
        .finish();
    import_fails(st.path(), &write(work.path(), "h2.tar", &t), "..");
    let t = RawTar::new().hardlink("etcpw", "/etc/passwd").finish();
    import_fails(
        st.path(),
        &write(work.path(), "h3.tar", &t),
        "not a file already extracted",
    );
    // Links to directories or symlinks inside the image are refused too.
    let t = RawTar::new().dir("d/", 0o755).hardlink("hd", "d").finish();
    import_fails(
        st.path(),
        &write(work.path(), "h4.tar", &t),
        "not a regular file",
    );
    assert_eq!(
        std::fs::metadata(&secret).unwrap().nlink(),
        1,
        "no new link to the host file"
    );
    assert_eq!(std::fs::metadata("/etc/passwd").unwrap().nlink(), 1);
    assert_canary_untouched(c.path(), &["secret"]);

    // A hard link to a file of the image works.
    let t = RawTar::new()
        .file("bin/a", 0o755, b"x")
        .hardlink("bin/b", "bin/a")
        .finish();
    import_ok(st.path(), &write(work.path(), "h5.tar", &t), "links");
    let img = ImageStore::open(st.path())
        .unwrap()
        .resolve("links")
        .unwrap();
    assert_eq!(
        std::fs::metadata(img.rootfs.join("bin/b")).unwrap().nlink(),
        2
    );
}

#[test]
fn device_nodes_fifos_are_skipped() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let work = tempfile::tempdir().unwrap();
    let t = RawTar::new()
        .dir("dev/", 0o755)
        .special("dev/mem", tar::EntryType::Char)
        .special("dev/sda", tar::EntryType::Block)
        .special("fifo", tar::EntryType::Fifo)
        .file("ok", 0o644, b"x")
        .finish();
    import_ok(st.path(), &write(work.path(), "dev.tar", &t), "devs");
    let store = ImageStore::open(st.path()).unwrap();
    let img = store.resolve("devs").unwrap();
    for p in ["dev/mem", "dev/sda", "fifo"] {
        assert!(
            std::fs::symlink_metadata(img.rootfs.join(p)).is_err(),
            "{p} must not exist"
        );
    }
    assert!(img.rootfs.join("ok").is_file());
    assert_eq!(
        store.inspect("devs").unwrap()["stats"]["skipped_special"],
        3
    );
}

#[test]
fn setuid_root_file_is_stripped() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let work = tempfile::tempdir().unwrap();
    let t = RawTar::new()
        .file("bin/rootshell", 0o6755, b"\x7fELF")
        .finish();
    import_ok(st.path(), &write(work.path(), "suid.tar", &t), "suid");
    let img = ImageStore::open(st.path())
        .unwrap()
        .resolve("suid")
        .unwrap();
    let md = std::fs::metadata(img.rootfs.join("bin/rootshell")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o755);
    assert_eq!(md.uid(), 0);
}

#[test]
fn whiteouts_cannot_traverse() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let c = canary();
    std::fs::write(c.path().join("victim"), b"keep me").unwrap();
    let work = tempfile::tempdir().unwrap();
    let base = RawTar::new()
        .dir("a/", 0o755)
        .file("a/f", 0o644, b"x")
        .symlink("link", c.path().to_str().unwrap())
        .finish();
    let cases = [
        ("link/.wh.victim", "symlink"),
        ("link/.wh..wh..opq", "symlink"),
        ("a/.wh..", "invalid whiteout"),
        ("../.wh.victim", "`..`"),
    ];
    for (i, (wh, expect)) in cases.iter().enumerate() {
        let layout = work.path().join(format!("l{i}"));
        let top = RawTar::new().file(wh, 0o644, b"").finish();
        write_layout(
            &layout,
            &[
                Layer {
                    tar: base.clone(),
                    gzip: false,
                },
                Layer {
                    tar: top,
                    gzip: true,
                },
            ],
            serde_json::json!({}),
        );
        import_fails(st.path(), &layout, expect);
    }
    // A whiteout of the symlink itself removes the link, not its target.
    let layout = work.path().join("ok");
    let top = RawTar::new().file(".wh.link", 0o644, b"").finish();
    write_layout(
        &layout,
        &[
            Layer {
                tar: base,
                gzip: false,
            },
            Layer {
                tar: top,
                gzip: false,
            },
        ],
        serde_json::json!({}),
    );
    import_ok(st.path(), &layout, "wh");
    let img = ImageStore::open(st.path()).unwrap().resolve("wh").unwrap();
    assert!(std::fs::symlink_metadata(img.rootfs.join("link")).is_err());
    assert!(img.rootfs.join("a/f").is_file());
    assert_canary_untouched(c.path(), &["victim"]);
    assert_eq!(std::fs::read(c.path().join("victim")).unwrap(), b"keep me");
}

#[test]
fn gzip_bomb_is_refused() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let work = tempfile::tempdir().unwrap();
    // One 3 GiB file of zeros (under the 4 GiB total, so only the ratio can catch it): a tar
    // header, then 3072 concatenated gzip members of 1 MiB of zeros each (a valid multi-member
    // gzip of ~3 MB). The member is made by python3's zlib (fast at level 9).
    let size: u64 = 3 << 30;
    let mut h = tar::Header::new_gnu();
    h.set_path("zeros").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    let py = std::process::Command::new("python3")
        .args([
            "-c",
            "import gzip,sys; sys.stdout.buffer.write(gzip.compress(bytes(1<<20), 9))",
        ])
        .output();
    let Ok(py) = py else {
        common::require(false, "needs python3 to build the gzip bomb");
        return;
    };
    assert!(py.status.success());
    let member = py.stdout;
    let path = work.path().join("bomb.tar.gz");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    f.write_all(&gzip(h.as_bytes())).unwrap();
    for _ in 0..(size >> 20) {
        f.write_all(&member).unwrap();
    }
    f.write_all(&gzip(&[0u8; 1024])).unwrap();
    drop(f);
    assert!(
        std::fs::metadata(&path).unwrap().len() < 16 << 20,
        "the bomb is small"
    );
    import_fails(st.path(), &path, "compression ratio");

    // A header announcing more than the total limit fails before anything is written.
    let mut h = tar::Header::new_gnu();
    h.set_path("huge").unwrap();
    h.set_size(5 << 30);
    h.set_mode(0o644);
    h.set_cksum();
    let path = write(work.path(), "huge.tar", &gzip(h.as_bytes()));
    import_fails(st.path(), &path, "total size limit");
}

#[test]
fn two_million_entries_trip_the_default_limit() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let work = tempfile::tempdir().unwrap();
    // Streamed through a FIFO: 2,000,000 identical directory entries (1 GB of tar), generated
    // on the fly and never stored.
    let fifo = work.path().join("entries.tar");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("d/").unwrap();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Directory);
    h.set_cksum();
    let batch: Vec<u8> = h.as_bytes().repeat(2000);
    let writer_path = fifo.clone();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&writer_path)
            .unwrap();
        let mut written = 0u64;
        for _ in 0..1000 {
            if f.write_all(&batch).is_err() {
                break; // the importer stopped reading
            }
            written += 2000;
        }
        let _ = f.write_all(&[0u8; 1024]);
        written
    });
    let store = ImageStore::open(st.path()).unwrap();
    let r = store.import(&fifo, "many", &ImportOptions::default());
    let written = writer.join().unwrap();
    match r {
        Err(ImageError::Limit(LimitExceeded::Entries { limit })) => assert_eq!(limit, 1_000_000),
        other => panic!("expected the entry limit to trip, got {other:?}"),
    }
    assert!(written < 2_000_000, "the import stopped reading early");
    let msg = store.import(&work.path().join("missing"), "x", &ImportOptions::default());
    assert!(msg.is_err());
    assert_store_empty(st.path());
}

/// A one-layer layout whose blobs can then be tampered with.
fn small_layout(dir: &Path) -> String {
    let layer = RawTar::new()
        .file("hello", 0o644, b"hello world\n")
        .finish();
    write_layout(
        dir,
        &[Layer {
            tar: layer,
            gzip: false,
        }],
        serde_json::json!({"Cmd": ["/hello"]}),
    )
}

fn blob_file(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn manifest(layout: &Path) -> serde_json::Value {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let d = index["manifests"][0]["digest"].as_str().unwrap();
    serde_json::from_slice(&std::fs::read(blob_file(layout, d)).unwrap()).unwrap()
}

#[test]
fn digest_mismatch_is_refused() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let work = tempfile::tempdir().unwrap();

    // A layer whose content changed (same size).
    let l1 = work.path().join("layer");
    small_layout(&l1);
    let m = manifest(&l1);
    let layer = blob_file(&l1, m["layers"][0]["digest"].as_str().unwrap());
    let mut bytes = std::fs::read(&layer).unwrap();
    let pos = bytes.windows(5).position(|w| w == b"hello").unwrap() + 512;
    bytes[pos] ^= 0x20;
    std::fs::write(&layer, &bytes).unwrap();
    import_fails(st.path(), &l1, "digest mismatch");

    // A config whose content changed.
    let l2 = work.path().join("config");
    small_layout(&l2);
    let m = manifest(&l2);
    let cfg = blob_file(&l2, m["config"]["digest"].as_str().unwrap());
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("/hello", "/hellx");
    std::fs::write(&cfg, text).unwrap();
    import_fails(st.path(), &l2, "digest mismatch");

    // A layer descriptor with the wrong size.
    let l3 = work.path().join("size");
    small_layout(&l3);
    let mut m = manifest(&l3);
    m["layers"][0]["size"] = serde_json::json!(12);
    let (d, s) = put_blob(&l3, &serde_json::to_vec(&m).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": s}]});
    std::fs::write(l3.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    import_fails(st.path(), &l3, "size mismatch");

    // The same archive as an oci-archive: also refused, nothing left behind.
    let archive = write(work.path(), "bad.oci.tar", &tar_dir(&l1));
    import_fails(st.path(), &archive, "digest mismatch");
}

#[test]
fn descriptor_paths_cannot_traverse() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let c = canary();
    let work = tempfile::tempdir().unwrap();
    // A valid manifest placed outside the layout, and an index pointing at it via `..`.
    let good = work.path().join("good");
    small_layout(&good);
    let m = manifest(&good);
    let outside = c.path().join("manifest.json");
    std::fs::write(&outside, serde_json::to_vec(&m).unwrap()).unwrap();

    let evil_digests = [
        format!("sha256:../../../../../../..{}", outside.display()),
        "sha256:../../index.json".to_string(),
        format!("sha256:{}/../../x", "a".repeat(64)),
    ];
    for (i, digest) in evil_digests.iter().enumerate() {
        let l = work.path().join(format!("idx{i}"));
        small_layout(&l);
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 10}]});
        std::fs::write(l.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        import_fails(st.path(), &l, "invalid OCI layout");
    }
    // A manifest whose layer descriptor climbs out.
    let l = work.path().join("layer");
    small_layout(&l);
    let mut m = manifest(&l);
    m["layers"][0]["digest"] = serde_json::json!("sha256:../../../../../../../etc/passwd");
    let (d, s) = put_blob(&l, &serde_json::to_vec(&m).unwrap());
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": s}]});
    std::fs::write(l.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    import_fails(st.path(), &l, "invalid OCI layout");
    assert_canary_untouched(c.path(), &["manifest.json"]);
}
