//! Importing real images: the busybox rootfs as a tarball, as an OCI layout with two layers
//! and whiteouts, and as an oci-archive; `image ls/inspect/rm/prune`; leases.

mod common;
mod image_support;

use image_support::*;
use sandcell::image::{ImageError, ImageStore, ImportOptions};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Checks what the launcher relies on: /proc /dev /tmp /work are real directories, everything
/// is root-owned, nothing is group/other writable (except /tmp) and busybox is there.
fn assert_cell_ready(rootfs: &Path) {
    for d in ["proc", "dev", "tmp", "work"] {
        let md = std::fs::symlink_metadata(rootfs.join(d)).unwrap();
        assert!(md.is_dir(), "/{d} must be a real directory");
        assert_eq!(md.uid(), 0);
    }
    let tmp = std::fs::metadata(rootfs.join("tmp")).unwrap();
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
    let root = std::fs::metadata(rootfs).unwrap();
    assert_eq!(root.permissions().mode() & 0o7777, 0o755);
    let bb = std::fs::metadata(rootfs.join("bin/busybox")).unwrap();
    assert!(
        bb.is_file() && bb.permissions().mode() & 0o005 == 0o005,
        "busybox readable+executable by others"
    );
    let mut stack = vec![rootfs.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let md = e.metadata().unwrap();
            assert_eq!(md.uid(), 0, "{} not root-owned", e.path().display());
            assert_eq!(md.gid(), 0, "{} not root-group", e.path().display());
            if md.file_type().is_symlink() {
                continue;
            }
            if e.path() != rootfs.join("tmp") {
                assert_eq!(
                    md.mode() & 0o022,
                    0,
                    "{} is group/other writable",
                    e.path().display()
                );
            }
            assert_eq!(
                md.mode() & 0o004,
                0o004,
                "{} not world-readable",
                e.path().display()
            );
            if md.is_dir() {
                stack.push(e.path());
            }
        }
    }
}

#[test]
fn busybox_tarball_import_ls_inspect_rm() {
    let Some(tar) = busybox_tar() else { return };
    let st = state();
    let work = tempfile::tempdir().unwrap();
    let path = write(work.path(), "busybox.tar", &tar);
    let out = import_ok(st.path(), &path, "busybox");
    assert!(
        stdout(&out).contains("imported busybox:latest"),
        "{}",
        stdout(&out)
    );

    let images = ls(st.path());
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["name"], "busybox");
    assert_eq!(images[0]["tag"], "latest");
    assert!(images[0]["size"].as_u64().unwrap() > 500_000);
    let table = stdout(&cli(st.path(), &["ls"]));
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("busybox") && table.contains("latest"),
        "{table}"
    );

    let store = ImageStore::open(st.path()).unwrap();
    let img = store.resolve("busybox").unwrap();
    assert_cell_ready(&img.rootfs);
    assert!(std::fs::symlink_metadata(img.rootfs.join("bin/sh"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        store.resolve(&img.id[..12]).unwrap().id,
        img.id,
        "id prefix resolves"
    );

    let o = cli(st.path(), &["inspect", "busybox:latest"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["id"], img.id.as_str());
    assert_eq!(v["source"], "tarball");
    assert!(v["size"].as_u64().unwrap() > 500_000);
    assert!(v["config"].is_object() && v["layers"].is_array());

    // Same content again under another tag: the unpacked image is reused.
    let gz = write(work.path(), "busybox.tar.gz", &tar);
    import_ok(st.path(), &gz, "busybox:again");
    let images = ls(st.path());
    assert_eq!(images.len(), 2);
    assert_eq!(images[0]["id"], images[1]["id"]);
    assert_eq!(
        std::fs::read_dir(st.path().join("images/by-id"))
            .unwrap()
            .count(),
        1
    );

    // rm removes names; the image goes with its last one.
    assert!(cli(st.path(), &["rm", "busybox:again"]).status.success());
    assert!(img.rootfs.exists());
    let o = cli(st.path(), &["rm", "busybox"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!img.rootfs.exists());
    assert_store_empty(st.path());

    let o = cli(st.path(), &["inspect", "busybox"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("sandcell: no such image"),
        "{}",
        stderr(&o)
    );
    let o = cli(
        st.path(),
        &["import", path.to_str().unwrap(), "--name", "Bad Name"],
    );
    assert_eq!(o.status.code(), Some(2), "bad names are usage errors");
}

#[test]
fn gzip_tarball_imports() {
    let Some(tar) = busybox_tar() else { return };
    let st = state();
    let work = tempfile::tempdir().unwrap();
    let path = write(work.path(), "busybox.tgz", &gzip(&tar));
    import_ok(st.path(), &path, "bb:gz");
    let img = ImageStore::open(st.path())
        .unwrap()
        .resolve("bb:gz")
        .unwrap();
    assert_cell_ready(&img.rootfs);
}

fn assert_layers_applied(rootfs: &Path) {
    assert!(
        !rootfs.join("etc/motd").exists(),
        "whiteout removed etc/motd"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/keep")).unwrap(),
        "kept\n"
    );
    assert!(
        !rootfs.join("opt/old").exists(),
        "opaque dir hides lower content"
    );
    assert!(
        !rootfs.join("opt/y").exists(),
        "opaque dir hides lower content"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("opt/new")).unwrap(),
        "upper\n"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("etc/greeting")).unwrap(),
        "hello from layer 2\n"
    );
    for p in ["etc/.wh.motd", "opt/.wh..wh..opq"] {
        assert!(
            !rootfs.join(p).exists(),
            "whiteout file {p} must not be materialised"
        );
    }
    assert_cell_ready(rootfs);
}

#[test]
fn oci_layout_two_layers_with_whiteouts() {
    let Some(tar) = busybox_tar() else { return };
    let st = state();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let mdigest = two_layer_layout(&layout, &tar);
    import_ok(st.path(), &layout, "bb-oci:v1");

    let store = ImageStore::open(st.path()).unwrap();
    let img = store.resolve("bb-oci:v1").unwrap();
    assert_layers_applied(&img.rootfs);
    let c = &img.config;
    assert_eq!(
        c.env,
        vec![
            ("PATH".into(), "/bin:/usr/bin".into()),
            ("GREETING".into(), "hi=there".into())
        ]
    );
    assert_eq!(c.entrypoint, vec!["/bin/sh", "-c"]);
    assert_eq!(c.cmd, vec!["cat /etc/greeting"]);
    assert_eq!(c.working_dir.as_deref(), Some("/work"));
    assert_eq!(c.user.as_deref(), Some("65534"));
    assert_eq!(
        c.labels.get("org.sandcell.language").map(String::as_str),
        Some("busybox")
    );

    let v = store.inspect("bb-oci:v1").unwrap();
    assert_eq!(v["digest"], mdigest.as_str());
    assert_eq!(v["source"], "oci-layout");
    assert_eq!(v["layers"].as_array().unwrap().len(), 2);
    assert_eq!(v["stats"]["whiteouts"], 2);
    // The manifest and config are kept by digest.
    let hex = mdigest.strip_prefix("sha256:").unwrap();
    assert!(st.path().join("images/blobs/sha256").join(hex).is_file());
}

#[test]
fn oci_archive_imports() {
    let Some(tar) = busybox_tar() else { return };
    let st = state();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    two_layer_layout(&layout, &tar);
    let archive = write(work.path(), "image.oci.tar", &tar_dir(&layout));
    import_ok(st.path(), &archive, "bb-archive");
    let store = ImageStore::open(st.path()).unwrap();
    let img = store.resolve("bb-archive").unwrap();
    assert_layers_applied(&img.rootfs);
    assert_eq!(
        store.inspect("bb-archive").unwrap()["source"],
        "oci-archive"
    );
    assert_eq!(img.config.cmd, vec!["cat /etc/greeting"]);
    // No leftovers of the unpacked layout.
    assert_eq!(
        std::fs::read_dir(st.path().join("images/tmp"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn rm_refuses_while_leased_and_prune_cleans() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let work = tempfile::tempdir().unwrap();
    let a = write(
        work.path(),
        "a.tar",
        &RawTar::new().file("a", 0o644, b"one").finish(),
    );
    let b = write(
        work.path(),
        "b.tar",
        &RawTar::new().file("b", 0o644, b"two").finish(),
    );
    import_ok(st.path(), &a, "thing");

    let store = ImageStore::open(st.path()).unwrap();
    let lease = store.lease("thing").unwrap();
    assert!(lease.image.rootfs.join("a").is_file());
    let o = cli(st.path(), &["rm", "thing"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("in use"), "{}", stderr(&o));
    assert!(matches!(store.remove("thing"), Err(ImageError::InUse(_))));
    assert!(
        lease.image.rootfs.join("a").is_file(),
        "leased image untouched"
    );
    assert_eq!(ls(st.path()).len(), 1);

    // Re-pointing the name leaves the old image unnamed; prune keeps it while leased.
    import_ok(st.path(), &b, "thing");
    let names: Vec<_> = ls(st.path())
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["thing", "<none>"]);
    assert!(store.prune().unwrap().images.is_empty());
    drop(lease);
    let report = store.prune().unwrap();
    assert_eq!(report.images.len(), 1);
    assert_eq!(ls(st.path()).len(), 1);
    assert!(store.resolve("thing").unwrap().rootfs.join("b").is_file());

    // A stale temp dir (an importer that died) is swept by prune.
    let stale = st.path().join("images/tmp/import-dead");
    std::fs::create_dir_all(stale.join("image/rootfs")).unwrap();
    std::fs::write(st.path().join("images/tmp/import-dead.lock"), b"").unwrap();
    let o = cli(st.path(), &["prune"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists());
}

#[test]
fn setid_bits_stripped_unless_kept() {
    if !common::require_root() {
        return;
    }
    let st = state();
    let work = tempfile::tempdir().unwrap();
    let t = write(
        work.path(),
        "suid.tar",
        &RawTar::new()
            .file("bin/su", 0o4755, b"#!/bin/sh\n")
            .file("bin/g", 0o2711, b"x")
            .finish(),
    );
    import_ok(st.path(), &t, "suid");
    let store = ImageStore::open(st.path()).unwrap();
    let img = store.resolve("suid").unwrap();
    let mode = |p: &str| std::fs::metadata(img.rootfs.join(p)).unwrap().mode() & 0o7777;
    assert_eq!(mode("bin/su"), 0o755);
    assert_eq!(mode("bin/g"), 0o755, "setgid stripped, exec/read for all");
    assert_eq!(store.inspect("suid").unwrap()["stats"]["stripped_setid"], 2);

    let opts = ImportOptions {
        keep_setid: true,
        ..ImportOptions::default()
    };
    let kept = store.import(&t, "suid:kept", &opts).unwrap();
    assert_ne!(kept.id, img.id, "keep-setid imports get their own id");
    let img2 = store.resolve("suid:kept").unwrap();
    let m = std::fs::metadata(img2.rootfs.join("bin/su"))
        .unwrap()
        .mode()
        & 0o7777;
    assert_eq!(m, 0o4755);
}
