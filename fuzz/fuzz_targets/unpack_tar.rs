//! Feeds arbitrary bytes (plain tar, gzip, garbage) through the safe extractor, whiteouts on,
//! and checks its invariants: it never panics, nothing appears next to the target, and no
//! device node, FIFO or setuid/setgid file is ever created.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandcell::image::{tarball, Meter, UnpackLimits, UnpackOptions};
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

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

fuzz_target!(|data: &[u8]| {
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
});
