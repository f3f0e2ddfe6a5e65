//! The playground end to end in a real browser: Debian's `chromium`, headless, driven by
//! `playwright-core` (tests/playground/e2e.cjs) against two live daemons serving the bundled
//! python and cpp images — one with anonymous playground runs (`playground_app`), one that
//! needs a key. The script types and runs a Python program reading stdin (streamed output,
//! OK badge), sees output while a program runs, "busy, retrying" on a second page, Cancel,
//! TO, a C++ compile error (CE with the compiler's message), a share link restoring code,
//! language and stdin, the key prompt and a refused key, and the server going away; it checks
//! labels, focus order, contrast, phone width and that the CSP is never violated.
//! Screenshots of each state: `<target dir>/playground-screens/`.
//!
//! Needs root, the test rootfs, the images, node, /usr/bin/chromium and playwright-core
//! (scripts/install-deps puts it in /var/cache/sandcell-test/npm); skips loudly without
//! them (a failure under SANDCELL_MUST_RUN=1).

mod api_support;
mod common;
mod grade_support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use api_support::{create_app, Daemon};

const CHROMIUM: &str = "/usr/bin/chromium";
/// Where scripts/install-deps installs tests/playground's package-lock.json.
const NODE_MODULES: &str = "/var/cache/sandcell-test/npm/node_modules";

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/playground")
}

fn has_node() -> bool {
    Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// node_modules holding playwright-core: $SANDCELL_NODE_MODULES, the install-deps one, or
/// one `npm ci` makes under the target dir from tests/playground/package-lock.json.
fn node_modules() -> Result<PathBuf, String> {
    let has = |dir: &Path| dir.join("playwright-core/package.json").exists();
    if let Some(dir) = std::env::var_os("SANDCELL_NODE_MODULES").map(PathBuf::from) {
        return if has(&dir) {
            Ok(dir)
        } else {
            Err(format!(
                "SANDCELL_NODE_MODULES={} has no playwright-core",
                dir.display()
            ))
        };
    }
    let fixed = PathBuf::from(NODE_MODULES);
    if has(&fixed) {
        return Ok(fixed);
    }
    let own = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("playground-npm");
    if has(&own.join("node_modules")) {
        return Ok(own.join("node_modules"));
    }
    std::fs::create_dir_all(&own).map_err(|e| e.to_string())?;
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(here().join(f), own.join(f)).map_err(|e| format!("copy {f}: {e}"))?;
    }
    let out = Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ])
        .current_dir(&own)
        .output()
        .map_err(|e| format!("npm: {e}"))?;
    if !out.status.success() || !has(&own.join("node_modules")) {
        return Err(format!(
            "no playwright-core in {NODE_MODULES} (scripts/install-deps) and npm ci failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(own.join("node_modules"))
}

/// A state dir of its own whose image store is the shared one with python and cpp.
fn state_dir(images: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(images.join("images"), dir.path().join("images")).unwrap();
    dir
}

/// `<target dir>/playground-screens` (CARGO_TARGET_TMPDIR is `<target dir>/tmp`).
fn screens_dir() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(&tmp).join("playground-screens")
}

const SCREENS: &[&str] = &[
    "01-loaded",
    "02-python-ok",
    "03-phone",
    "04-streaming",
    "05-busy-retrying",
    "06-cancelled",
    "07-timeout",
    "08-compile-error",
    "09-share-restored",
    "10-key-needed",
    "11-key-refused",
    "12-server-gone",
];

#[test]
fn the_playground_in_chromium() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    if !common::require(
        Path::new(CHROMIUM).exists(),
        "no /usr/bin/chromium (apt-get install chromium; scripts/install-deps does)",
    ) || !common::require(has_node(), "no node (apt-get install nodejs npm)")
    {
        return;
    }
    let modules = match node_modules() {
        Ok(m) => m,
        Err(why) => {
            common::require(false, &why);
            return;
        }
    };
    let Some(images) = grade_support::images() else {
        return;
    };

    // Anonymous runs as the app "playground": one run at a time, 10 s, 256 MiB.
    let anon_dir = state_dir(&images);
    api_support::create_app_in(
        "playground",
        1,
        [
            OsStr::new("--max-wall-time"),
            OsStr::new("10s"),
            OsStr::new("--max-memory"),
            OsStr::new("256M"),
            OsStr::new("--state-dir"),
            anon_dir.path().as_os_str(),
        ],
    );
    let anon = Daemon::start(
        anon_dir.path(),
        &rootfs,
        &["--playground", "--playground-app", "playground"],
    );
    // Keys only.
    let keyed_dir = state_dir(&images);
    let key = create_app(keyed_dir.path(), "judge", 4);
    let keyed = Daemon::start(keyed_dir.path(), &rootfs, &["--playground"]);
    assert!(
        anon.log().contains("playground at http://"),
        "{}",
        anon.log()
    );

    let screens = screens_dir();
    let _ = std::fs::remove_dir_all(&screens);
    std::fs::create_dir_all(&screens).unwrap();
    let out = Command::new("node")
        .arg(here().join("e2e.cjs"))
        .env("NODE_PATH", &modules)
        .env("ANON_URL", format!("http://{}/", anon.addr))
        .env("KEYED_URL", format!("http://{}/", keyed.addr))
        .env("KEY", &key)
        .env("KEYED_PID", keyed.pid().to_string())
        .env("SCREENS", &screens)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}\n--- anonymous daemon:\n{}\n--- keyed daemon:\n{}",
        anon.log(),
        keyed.log()
    );
    assert!(stdout.contains("e2e: all steps passed"), "{stdout}");
    for name in SCREENS {
        let png = screens.join(format!("{name}.png"));
        let bytes = std::fs::read(&png).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG"),
            "no screenshot {}",
            png.display()
        );
    }
    eprintln!("playground screenshots: {}", screens.display());
    // The keyed daemon was stopped by the script ("server gone"); the drop reaps it.
    drop(keyed);
    anon.stop();
}
