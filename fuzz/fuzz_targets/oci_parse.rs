//! Feeds arbitrary bytes to the OCI index/manifest/config parsers and the descriptor -> blob
//! path mapping: never a panic, and every accepted blob path stays inside `blobs/sha256/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandcell::image::oci;

fn check_path(digest: &str) {
    if let Ok(p) = oci::blob_path(digest) {
        let hex = p.strip_prefix("blobs/sha256/").expect("blob path prefix");
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }
}

fuzz_target!(|data: &[u8]| {
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
});
