//! `sandcell run --image` over imported images: a busybox rootfs tarball and the same rootfs
//! as a two-layer OCI layout whose config supplies the default command, env and working dir.

mod common;
mod image_support;

use image_support::*;
use std::path::Path;

fn run_image(state: &Path, image: &str, cmd: &[&str]) -> serde_json::Value {
    let mut c = common::sandcell();
    c.args(["run", "--image", image, "--state-dir"])
        .arg(state)
        .arg("--json");
    if !cmd.is_empty() {
        c.arg("--").args(cmd);
    }
    let out = c.output().expect("spawn sandcell");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON ({e}); status {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn run_on_imported_tarball_image() {
    let Some(tar) = busybox_tar() else { return };
    let st = state();
    let work = tempfile::tempdir().unwrap();
    import_ok(st.path(), &write(work.path(), "bb.tar", &tar), "bb");
    let v = run_image(st.path(), "bb", &["/bin/echo", "hi"]);
    assert_eq!(v["verdict"], "OK", "{v}");
    assert_eq!(v["stdout"], "hi\n", "{v}");
}

#[test]
fn run_on_imported_oci_image_uses_its_defaults() {
    let Some(tar) = busybox_tar() else { return };
    let st = state();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    two_layer_layout(&layout, &tar);
    import_ok(st.path(), &layout, "bb-oci");

    let v = run_image(st.path(), "bb-oci", &["/bin/echo", "hi"]);
    assert_eq!(v["verdict"], "OK", "{v}");
    assert_eq!(v["stdout"], "hi\n", "{v}");

    // No command: the image's Entrypoint + Cmd run (cat a file from the second layer).
    let v = run_image(st.path(), "bb-oci", &[]);
    assert_eq!(v["verdict"], "OK", "{v}");
    assert_eq!(v["stdout"], "hello from layer 2\n", "{v}");

    // Env and WorkingDir come from the config; the whiteout hid etc/motd.
    let v = run_image(
        st.path(),
        "bb-oci",
        &[
            "/bin/sh",
            "-c",
            "echo $GREETING; pwd; test -e /etc/motd || echo gone",
        ],
    );
    assert_eq!(v["verdict"], "OK", "{v}");
    assert_eq!(v["stdout"], "hi=there\n/work\ngone\n", "{v}");

    // The same image as an oci-archive.
    let archive = write(work.path(), "bb.oci.tar", &tar_dir(&layout));
    import_ok(st.path(), &archive, "bb-archive");
    let v = run_image(st.path(), "bb-archive", &["/bin/echo", "hi"]);
    assert_eq!(v["stdout"], "hi\n", "{v}");
}
