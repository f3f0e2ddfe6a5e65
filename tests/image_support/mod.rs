//! Helpers for the image tests: archives built here with the `tar` crate (nothing binary is
//! committed), OCI layouts, the CLI against a temp state dir, and canaries outside the store.
#![allow(dead_code)]

use flate2::write::GzEncoder;
use flate2::Compression;
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common;

/// A temp state dir for one test.
pub fn state() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sandcell-image-test-")
        .tempdir()
        .expect("tempdir")
}

/// `sandcell image ARGS... --state-dir STATE`.
pub fn cli(state: &Path, args: &[&str]) -> Output {
    common::sandcell()
        .arg("image")
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .env_remove("SANDCELL_STATE_DIR")
        .output()
        .expect("spawn sandcell")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `image import` and asserts success.
pub fn import_ok(state: &Path, path: &Path, name: &str) -> Output {
    let o = cli(state, &["import", path.to_str().unwrap(), "--name", name]);
    assert!(
        o.status.success(),
        "import of {} failed: {}{}",
        path.display(),
        stdout(&o),
        stderr(&o)
    );
    o
}

/// `image ls --json` parsed.
pub fn ls(state: &Path) -> Vec<serde_json::Value> {
    let o = cli(state, &["ls", "--json"]);
    assert!(o.status.success(), "ls failed: {}", stderr(&o));
    serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout).expect("ls json")
}

/// Asserts the store shows no image and holds no leftover of a failed import.
pub fn assert_store_empty(state: &Path) {
    assert!(ls(state).is_empty(), "an image is visible: {:?}", ls(state));
    let images = state.join("images");
    for sub in ["by-id", "tmp"] {
        let d = images.join(sub);
        if d.exists() {
            let left: Vec<_> = std::fs::read_dir(&d)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .collect();
            assert!(left.is_empty(), "leftovers in {}: {left:?}", d.display());
        }
    }
}

/// A tar of a directory tree (symlinks stored as symlinks).
pub fn tar_dir(dir: &Path) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).expect("tar dir");
    b.into_inner().expect("tar finish")
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Builds tars entry by entry, with raw (unvalidated) names so that hostile paths can be
/// written.
pub struct RawTar {
    b: tar::Builder<Vec<u8>>,
}

impl Default for RawTar {
    fn default() -> Self {
        RawTar::new()
    }
}

impl RawTar {
    pub fn new() -> RawTar {
        RawTar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(path: &[u8], kind: tar::EntryType, mode: u32, size: u64, link: &[u8]) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        {
            let g = h.as_gnu_mut().unwrap();
            assert!(
                path.len() < 100 && link.len() < 100,
                "raw names must fit the header"
            );
            g.name[..path.len()].copy_from_slice(path);
            g.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        h
    }

    pub fn file(mut self, path: &str, mode: u32, data: &[u8]) -> RawTar {
        let h = Self::header(
            path.as_bytes(),
            tar::EntryType::Regular,
            mode,
            data.len() as u64,
            b"",
        );
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(mut self, path: &str, mode: u32) -> RawTar {
        let h = Self::header(path.as_bytes(), tar::EntryType::Directory, mode, 0, b"");
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> RawTar {
        let h = Self::header(
            path.as_bytes(),
            tar::EntryType::Symlink,
            0o777,
            0,
            target.as_bytes(),
        );
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn hardlink(mut self, path: &str, target: &str) -> RawTar {
        let h = Self::header(
            path.as_bytes(),
            tar::EntryType::Link,
            0o644,
            0,
            target.as_bytes(),
        );
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn special(mut self, path: &str, kind: tar::EntryType) -> RawTar {
        let mut h = Self::header(path.as_bytes(), kind, 0o666, 0, b"");
        h.set_device_major(1).unwrap();
        h.set_device_minor(3).unwrap();
        h.set_cksum();
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.b.into_inner().unwrap()
    }
}

/// Writes a file into `dir` and returns its path.
pub fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// A layer for [`write_layout`]: the uncompressed tar and whether to gzip it.
pub struct Layer {
    pub tar: Vec<u8>,
    pub gzip: bool,
}

/// Writes a blob into an OCI layout and returns (digest, size).
pub fn put_blob(layout: &Path, data: &[u8]) -> (String, u64) {
    let hex = sha256_hex(data);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&hex), data).unwrap();
    (format!("sha256:{hex}"), data.len() as u64)
}

/// Writes a complete OCI image layout with the given layers and config defaults; returns the
/// manifest digest.
pub fn write_layout(layout: &Path, layers: &[Layer], config: serde_json::Value) -> String {
    std::fs::create_dir_all(layout).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        diff_ids.push(format!("sha256:{}", sha256_hex(&l.tar)));
        let (bytes, media) = if l.gzip {
            (gzip(&l.tar), "application/vnd.oci.image.layer.v1.tar+gzip")
        } else {
            (l.tar.clone(), "application/vnd.oci.image.layer.v1.tar")
        };
        let (digest, size) = put_blob(layout, &bytes);
        descs.push(serde_json::json!({"mediaType": media, "digest": digest, "size": size}));
    }
    let cfg = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let (cdigest, csize) = put_blob(layout, &serde_json::to_vec(&cfg).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
        "layers": descs,
    });
    let (mdigest, msize) = put_blob(layout, &serde_json::to_vec(&manifest).unwrap());
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest, "size": msize}],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    mdigest
}

/// The busybox rootfs as a tar, or a loud skip.
pub fn busybox_tar() -> Option<Vec<u8>> {
    let root = common::setup()?;
    Some(tar_dir(&root))
}

/// A canary directory outside the store that hostile archives aim at.
pub fn canary() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sandcell-canary-")
        .tempdir_in("/tmp")
        .expect("canary dir")
}

/// Asserts a canary directory is still empty (or only holds `keep`).
pub fn assert_canary_untouched(dir: &Path, keep: &[&str]) {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = keep.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(
        names,
        want,
        "something appeared in (or vanished from) the canary dir {}",
        dir.display()
    );
}

/// Two layers: the busybox rootfs plus files, then a layer that whites out one file, makes a
/// directory opaque, and adds new content.
pub fn two_layer_layout(dir: &Path, busybox: &[u8]) -> String {
    let base = {
        // busybox + extra files appended to its tar (strip the end-of-archive blocks).
        let mut b = tar::Builder::new(Vec::new());
        let mut a = tar::Archive::new(busybox);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let mut h2 = e.header().clone();
            let path = e.path().unwrap().into_owned();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            b.append_data(&mut h2, path, &data[..]).unwrap();
        }
        let mut add = |p: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, p, data).unwrap();
        };
        add("etc/motd", b"old motd\n");
        add("etc/keep", b"kept\n");
        add("opt/old/x", b"lower\n");
        add("opt/y", b"lower\n");
        b.into_inner().unwrap()
    };
    let top = RawTar::new()
        .file("etc/.wh.motd", 0o644, b"")
        .dir("opt/", 0o755)
        .file("opt/.wh..wh..opq", 0o644, b"")
        .file("opt/new", 0o644, b"upper\n")
        .file("etc/greeting", 0o644, b"hello from layer 2\n")
        .finish();
    write_layout(
        dir,
        &[
            Layer {
                tar: base,
                gzip: true,
            },
            Layer {
                tar: top,
                gzip: false,
            },
        ],
        serde_json::json!({
            "Env": ["PATH=/bin:/usr/bin", "GREETING=hi=there"],
            "Entrypoint": ["/bin/sh", "-c"],
            "Cmd": ["cat /etc/greeting"],
            "WorkingDir": "/work",
            "User": "65534",
            "Labels": {"org.sandcell.language": "busybox"}
        }),
    )
}
