//! The fuzz harnesses, one function each, shared by the AFL++ targets (`fuzz_targets/`) and
//! by `replay`, which runs a corpus through them without a fuzzer (a smoke test, and how a
//! crash found by AFL++ is reproduced).

use sandcell::image::{oci, tarball, Meter, UnpackLimits, UnpackOptions};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

/// Arbitrary bytes (plain tar, gzip, garbage) through the safe extractor, whiteouts on: it
/// never panics, nothing appears next to the target, and no device node, FIFO, socket,
/// setuid/setgid or group/other-writable file is ever created. Run as root, like the importer.
pub fn unpack_tar(data: &[u8]) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&outside).unwrap();
    let input = tmp.path().join("input");
    std::fs::File::create(&input).unwrap().write_all(data).unwrap();

    let limits = UnpackLimits {
        max_total_bytes: 64 << 20,
        max_entries: 10_000,
        ratio_grace_bytes: 1 << 20,
        ..UnpackLimits::default()
    };
    let meter = Arc::new(Meter::new(limits));
    let opts = UnpackOptions { keep_setid: false, whiteouts: true };
    let file = std::fs::File::open(&input).unwrap();
    let _ = tarball::unpack_tarball(file, &root, &opts, meter, &mut || {});

    check_tree(&root);
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0, "wrote outside the root");
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names.len(), 3, "wrote next to the root: {names:?}");
}

/// Arbitrary bytes to the OCI index/manifest/config parsers and the descriptor -> blob path
/// mapping: never a panic, and every accepted blob path stays inside `blobs/sha256/`.
pub fn oci_parse(data: &[u8]) {
    if let Ok(index) = oci::parse_index(data) {
        for d in index.manifests() {
            check_path(&d.digest().to_string());
        }
    }
    if let Ok(m) = oci::parse_manifest(data) {
        check_path(&m.config().digest().to_string());
        for l in m.layers() {
            check_path(&l.digest().to_string());
        }
    }
    if let Ok(c) = oci::parse_config(data) {
        let _ = sandcell::image::ImageConfig::from_oci(&c);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        check_path(s);
    }
}

fn check_tree(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let md = e.metadata().unwrap(); // does not follow symlinks
        let ft = md.file_type();
        assert!(
            !(ft.is_block_device() || ft.is_char_device() || ft.is_fifo() || ft.is_socket()),
            "special file created: {}",
            e.path().display()
        );
        if !ft.is_symlink() {
            assert_eq!(md.mode() & 0o6000, 0, "setid bit kept: {}", e.path().display());
            assert_eq!(md.mode() & 0o022, 0, "group/other writable: {}", e.path().display());
        }
        if ft.is_dir() {
            check_tree(&e.path());
        }
    }
}

fn check_path(digest: &str) {
    if let Ok(p) = oci::blob_path(digest) {
        let hex = p.strip_prefix("blobs/sha256/").expect("blob path prefix");
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}

