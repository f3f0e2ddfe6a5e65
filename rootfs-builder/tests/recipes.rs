//! Builds every shipped recipe on this host and checks the OCI layouts: labels and config,
//! determinism (same manifest digest twice), and that nothing of the host leaks in.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use rootfs_builder::{build, recipe, BuildOptions, Compression};

const RECIPES: &[&str] = &["busybox", "python", "c", "cpp"];

fn must_run() -> bool {
    std::env::var("SANDCELL_MUST_RUN").is_ok_and(|v| v == "1")
}

/// Skips loudly (or fails under SANDCELL_MUST_RUN=1) when the host lacks a recipe's tools.
fn require(condition: bool, why: &str) -> bool {
    if !condition {
        assert!(!must_run(), "SANDCELL_MUST_RUN=1 but: {why}");
        eprintln!("\n*** SKIPPED: {why} ***\n");
    }
    condition
}

fn host_has(recipe: &str) -> bool {
    let needs: &[&str] = match recipe {
        "busybox" => &["/bin/busybox"],
        "python" => &["/usr/bin/python3", "/bin/busybox"],
        "c" => &["/usr/bin/gcc", "/bin/busybox"],
        "cpp" => &["/usr/bin/g++", "/bin/busybox"],
        _ => &[],
    };
    require(
        needs.iter().all(|p| Path::new(p).exists()),
        &format!("recipe {recipe} needs {needs:?} on the host"),
    )
}

fn out_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("recipes")
        .join(name)
}

fn build_into(recipe_name: &str, out: &Path) -> rootfs_builder::BuildReport {
    let r = recipe::load(&recipe::default_recipes_dir(), recipe_name).expect("load recipe");
    let opts = BuildOptions {
        out: out.to_owned(),
        compression: Compression::Gzip,
        epoch: 0,
    };
    build(&r, &opts).unwrap_or_else(|e| panic!("building {recipe_name}: {e}"))
}

/// Each recipe is built once per test binary; tests share the layouts.
fn built(recipe_name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<BTreeMap<String, PathBuf>>> = OnceLock::new();
    let map = BUILT.get_or_init(Default::default);
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(recipe_name.to_owned())
        .or_insert_with(|| {
            let out = out_dir(recipe_name);
            build_into(recipe_name, &out);
            out
        })
        .clone()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").unwrap())
}

fn manifest(layout: &Path) -> serde_json::Value {
    let index = read_json(&layout.join("index.json"));
    let digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();
    read_json(&blob(layout, &digest))
}

fn config(layout: &Path) -> serde_json::Value {
    let m = manifest(layout);
    read_json(&blob(layout, m["config"]["digest"].as_str().unwrap()))
}

struct Entry {
    path: String,
    kind: tar::EntryType,
    uid: u64,
    gid: u64,
    mtime: u64,
    mode: u32,
    data: Vec<u8>,
}

/// Every entry of every layer, in order.
fn entries(layout: &Path) -> Vec<Entry> {
    let m = manifest(layout);
    let mut out = Vec::new();
    for layer in m["layers"].as_array().unwrap() {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        let file = std::fs::File::open(blob(layout, layer["digest"].as_str().unwrap())).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut data = Vec::new();
            if h.entry_type().is_file() && h.size().unwrap() < 1 << 16 {
                e.read_to_end(&mut data).unwrap();
            }
            out.push(Entry {
                path: e.path().unwrap().to_string_lossy().into_owned(),
                kind: h.entry_type(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                mode: h.mode().unwrap(),
                data,
            });
        }
    }
    out
}

#[test]
fn every_recipe_builds_with_config_and_language_labels() {
    for name in RECIPES {
        if !host_has(name) {
            continue;
        }
        let layout = built(name);
        assert_eq!(
            std::fs::read_to_string(layout.join("oci-layout")).unwrap(),
            r#"{"imageLayoutVersion":"1.0.0"}"#
        );
        let m = manifest(&layout);
        assert_eq!(m["schemaVersion"], 2);
        assert_eq!(m["layers"].as_array().unwrap().len(), 2);
        let c = config(&layout);
        assert_eq!(c["created"], "1970-01-01T00:00:00Z");
        assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        let cfg = &c["config"];
        assert_eq!(cfg["WorkingDir"], "/work");
        assert_eq!(cfg["User"], "65534:65534");
        let env: Vec<&str> = cfg["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(env.iter().any(|e| e.starts_with("PATH=/")), "{env:?}");
        assert!(env.contains(&"LANG=C.UTF-8"), "{env:?}");
        let labels = &cfg["Labels"];
        assert!(!labels["org.sandcell.version"].as_str().unwrap().is_empty());
        assert!(labels["org.sandcell.run"].is_string());
        let expected = match *name {
            "busybox" => ("sh", "main.sh", false),
            "python" => ("python", "main.py", false),
            "c" => ("c", "main.c", true),
            _ => ("cpp", "main.cpp", true),
        };
        assert_eq!(labels["org.sandcell.language"], expected.0, "{name}");
        assert_eq!(labels["org.sandcell.source-file"], expected.1, "{name}");
        assert_eq!(
            labels["org.sandcell.compile"].is_string(),
            expected.2,
            "{name}"
        );
    }
}

#[test]
fn building_twice_gives_identical_manifest_digests() {
    for name in ["busybox", "python"] {
        if !host_has(name) {
            continue;
        }
        let first = built(name);
        let again = out_dir(&format!("{name}-again"));
        let report = build_into(name, &again);
        let index = |p: &Path| std::fs::read(p.join("index.json")).unwrap();
        assert_eq!(index(&first), index(&again), "{name}: index.json differs");
        let digest = read_json(&first.join("index.json"))["manifests"][0]["digest"].clone();
        assert_eq!(digest, report.manifest_digest.as_str());
    }
}

#[test]
fn layers_are_owned_by_root_with_fixed_mtimes_and_sorted_entries() {
    if !host_has("python") {
        return;
    }
    let all = entries(&built("python"));
    assert!(
        all.len() > 1000,
        "python image has only {} entries",
        all.len()
    );
    for e in &all {
        assert_eq!((e.uid, e.gid), (0, 0), "{}", e.path);
        assert_eq!(e.mtime, 0, "{}", e.path);
        assert_eq!(e.mode & 0o6000, 0, "{} keeps a setuid/setgid bit", e.path);
    }
    // Within each layer, entries come in path order (parents first).
    let m = manifest(&built("python"));
    let first_layer_len = {
        let file = std::fs::File::open(blob(
            &built("python"),
            m["layers"][0]["digest"].as_str().unwrap(),
        ))
        .unwrap();
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .entries()
            .unwrap()
            .count()
    };
    for layer in [&all[..first_layer_len], &all[first_layer_len..]] {
        let paths: Vec<PathBuf> = layer
            .iter()
            .map(|e| PathBuf::from(e.path.trim_end_matches('/')))
            .collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted);
    }
}

#[test]
fn images_hold_nothing_private_of_the_host() {
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_owned();
    for name in RECIPES {
        if !host_has(name) {
            continue;
        }
        let all = entries(&built(name));
        let find = |p: &str| all.iter().rev().find(|e| e.path.trim_end_matches('/') == p);
        for e in &all {
            let p = e.path.trim_end_matches('/');
            assert!(
                !(p.starts_with("root/") || p.starts_with("home/") || p == "root" || p == "home"),
                "{name}: host home entry {p}"
            );
            assert!(
                !p.starts_with("etc/shadow") && !p.starts_with("etc/gshadow"),
                "{name}: {p}"
            );
            assert!(
                !p.starts_with("etc/ssh") && p != "etc/machine-id",
                "{name}: {p}"
            );
        }
        for dir in ["proc", "dev", "tmp", "work", "sys"] {
            let e = find(dir).unwrap_or_else(|| panic!("{name}: no /{dir}"));
            assert_eq!(e.kind, tar::EntryType::Directory, "{name}: /{dir}");
        }
        assert_eq!(find("tmp").unwrap().mode & 0o1777, 0o1777);
        let hostname = String::from_utf8(find("etc/hostname").unwrap().data.clone()).unwrap();
        assert_eq!(hostname, "sandcell\n", "{name}");
        if !host_name.is_empty() && host_name != "sandcell" {
            for f in ["etc/hostname", "etc/hosts"] {
                let text = String::from_utf8_lossy(&find(f).unwrap().data).into_owned();
                assert!(!text.contains(&host_name), "{name}: {f} names the host");
            }
        }
        let passwd = String::from_utf8(find("etc/passwd").unwrap().data.clone()).unwrap();
        let users: Vec<&str> = passwd
            .lines()
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(users, vec!["root", "nobody"], "{name}");
        let group = String::from_utf8(find("etc/group").unwrap().data.clone()).unwrap();
        let groups: Vec<&str> = group
            .lines()
            .map(|l| l.split(':').next().unwrap())
            .collect();
        assert_eq!(groups, vec!["root", "nogroup"], "{name}");
    }
}

#[test]
fn compiler_images_carry_the_toolchain_pieces() {
    for (name, wanted) in [
        (
            "cpp",
            &[
                "usr/include/x86_64-linux-gnu/c++/12/bits/stdc++.h",
                "usr/lib/gcc/x86_64-linux-gnu/12/cc1plus",
                "usr/lib/x86_64-linux-gnu/libc.so",
                "usr/lib/x86_64-linux-gnu/libc_nonshared.a",
                "usr/lib/x86_64-linux-gnu/crt1.o",
                "usr/include/stdio.h",
            ][..],
        ),
        (
            "python",
            &["usr/lib/python3.11/os.py", "usr/lib/python3.11/lib-dynload"][..],
        ),
    ] {
        if !host_has(name) {
            continue;
        }
        let all = entries(&built(name));
        for w in wanted {
            assert!(
                all.iter().any(|e| e.path.trim_end_matches('/') == *w),
                "{name}: missing /{w}"
            );
        }
        assert!(
            !all.iter().any(|e| e.path.contains("python3.11/test/")),
            "{name}: exclude patterns not applied"
        );
    }
}

#[test]
fn the_cli_builds_and_reports_json() {
    if !host_has("busybox") {
        return;
    }
    let out = out_dir("busybox-cli");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rootfs-builder"))
        .args(["build", "busybox", "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["recipe"], "busybox");
    assert!(report["manifest_digest"]
        .as_str()
        .unwrap()
        .starts_with("sha256:"));
    // Refuses to overwrite a directory that is not a layout.
    let junk = out_dir("not-a-layout");
    std::fs::create_dir_all(&junk).unwrap();
    std::fs::write(junk.join("keep.txt"), "mine").unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_rootfs-builder"))
        .args(["build", "busybox", "--out"])
        .arg(&junk)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(junk.join("keep.txt").exists());
}
