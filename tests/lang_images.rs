//! The shipped language images end to end: build each recipe with rootfs-builder, import it
//! into a store, and compile/run sources in real cells through `lang::run_source`.

mod common;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use sandcell::image::{ImageStore, ImportOptions};
use sandcell::lang::{find_language, run_source, SourceRequest, SourceRunResult, Stage};
use sandcell::spec::{FileSpec, LimitBounds, StdinSource};
use sandcell::{Launcher, LauncherConfig, Verdict};

const RECIPES: &[&str] = &["busybox", "python", "c", "cpp"];

fn state_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("lang-state")
}

fn host_has_tools() -> bool {
    let needed = [
        "/bin/busybox",
        "/usr/bin/python3",
        "/usr/bin/gcc",
        "/usr/bin/g++",
    ];
    common::require(
        needed.iter().all(|p| std::path::Path::new(p).exists()),
        &format!("the language recipes need {needed:?} on the host"),
    )
}

/// Builds and imports every recipe once per test binary; `None` (after a loud skip) when
/// this host cannot run cells or lacks the tools.
fn store() -> Option<ImageStore> {
    if !common::require_root() || !host_has_tools() {
        return None;
    }
    static READY: OnceLock<Mutex<bool>> = OnceLock::new();
    let ready = READY.get_or_init(|| Mutex::new(false));
    let mut ready = ready.lock().unwrap_or_else(|e| e.into_inner());
    let store = ImageStore::open(&state_dir()).expect("open store");
    if !*ready {
        let recipes_dir = rootfs_builder::recipe::default_recipes_dir();
        for name in RECIPES {
            let recipe = rootfs_builder::recipe::load(&recipes_dir, name).expect("recipe");
            let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join("lang-layouts")
                .join(name);
            let opts = rootfs_builder::BuildOptions {
                out: out.clone(),
                compression: rootfs_builder::Compression::Gzip,
                epoch: 0,
            };
            rootfs_builder::build(&recipe, &opts).unwrap_or_else(|e| panic!("build {name}: {e}"));
            store
                .import(&out, name, &ImportOptions::default())
                .unwrap_or_else(|e| panic!("import {name}: {e}"));
        }
        *ready = true;
    }
    Some(store)
}

fn launcher() -> Launcher {
    Launcher::new(LauncherConfig::default()).expect("launcher")
}

fn source(path: &str, text: &str) -> FileSpec {
    FileSpec {
        path: path.into(),
        content: text.as_bytes().to_vec(),
        mode: None,
    }
}

fn run(lang_name: &str, request: SourceRequest) -> SourceRunResult {
    let store = store().expect("store");
    let (lang, image) = find_language(&store, lang_name).expect("language");
    let mut stages = Vec::new();
    let result = run_source(
        &launcher(),
        &lang,
        &image.rootfs,
        request,
        &LimitBounds::default(),
        &mut |stage, _event| stages.push(stage),
        None,
    )
    .expect("run_source");
    if lang.compile.is_none() {
        assert!(
            !stages.contains(&Stage::Compile),
            "{lang_name}: compile events without a compile step"
        );
    }
    result
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn explain(r: &SourceRunResult) -> String {
    serde_json::to_string_pretty(r).unwrap()
}

#[test]
fn every_image_runs_its_hello_world() {
    if store().is_none() {
        return;
    }
    let hello = [
        ("sh", "main.sh", "echo hello from $(cat /etc/hostname)\n"),
        ("python", "main.py", "import socket\nprint('hello from', socket.gethostname())\n"),
        (
            "c",
            "main.c",
            "#include <stdio.h>\n#include <math.h>\nint main(void){printf(\"hello from %.0f\\n\", sqrt(4.0));return 0;}\n",
        ),
        (
            "cpp",
            "main.cpp",
            "#include <bits/stdc++.h>\nint main(){std::vector<std::string> v{\"from\",\"hello\"};std::sort(v.begin(),v.end());std::cout<<v[1]<<' '<<v[0]<<\" c++\"<<std::endl;}\n",
        ),
    ];
    for (lang, file, code) in hello {
        let r = run(lang, SourceRequest::new(vec![source(file, code)]));
        assert_eq!(r.verdict, Verdict::OK, "{lang}: {}", explain(&r));
        let out = text(&r.run.as_ref().unwrap().stdout.bytes);
        assert!(out.starts_with("hello from"), "{lang}: {out:?}");
        assert_eq!(r.compile.is_some(), lang == "c" || lang == "cpp", "{lang}");
        if lang == "sh" {
            assert_eq!(out, "hello from sandcell\n");
        }
    }
}

#[test]
fn a_cpp_compile_error_is_ce_with_the_compilers_message() {
    if store().is_none() {
        return;
    }
    let r = run(
        "cpp",
        SourceRequest::new(vec![source(
            "main.cpp",
            "#include <bits/stdc++.h>\nint main(){ undeclared_thing(42); }\n",
        )]),
    );
    assert_eq!(r.verdict, Verdict::CE, "{}", explain(&r));
    assert!(r.run.is_none());
    let compile = r.compile.as_ref().unwrap();
    let stderr = text(&compile.stderr.bytes);
    assert!(
        stderr.contains("undeclared_thing") && stderr.contains("error"),
        "{stderr}"
    );
}

#[test]
fn a_python_exception_is_re_with_the_traceback() {
    if store().is_none() {
        return;
    }
    let r = run(
        "python",
        SourceRequest::new(vec![source(
            "solution.py",
            "def f():\n    raise ValueError('boom')\nf()\n",
        )]),
    );
    assert_eq!(r.verdict, Verdict::RE, "{}", explain(&r));
    let run = r.run.as_ref().unwrap();
    assert_eq!(run.exit_code, Some(1));
    let stderr = text(&run.stderr.bytes);
    assert!(
        stderr.contains("Traceback (most recent call last)"),
        "{stderr}"
    );
    assert!(stderr.contains("ValueError: boom"), "{stderr}");
    assert!(stderr.contains("main.py"), "{stderr}");
}

#[test]
fn compiled_programs_read_stdin_and_write_their_own_copy_of_the_build() {
    if store().is_none() {
        return;
    }
    let code = r#"#include <bits/stdc++.h>
int main(){ long long a,b; std::cin>>a>>b; std::cout<<a+b<<"\n";
  FILE* f = fopen("out.txt","w"); std::cout << (f ? "wrote" : "read-only") << "\n";
  FILE* t = fopen("/tmp/x","w"); std::cout << (t ? "tmp ok" : "tmp fail") << "\n"; }
"#;
    let mut req = SourceRequest::new(vec![source("main.cpp", code)]);
    req.stdin = StdinSource::Bytes(b"40 2\n".to_vec());
    let r = run("cpp", req);
    assert_eq!(r.verdict, Verdict::OK, "{}", explain(&r));
    assert_eq!(
        text(&r.run.as_ref().unwrap().stdout.bytes),
        "42\nwrote\ntmp ok\n"
    );
    // The build reached the run as files: the program and its source, nothing else.
    let compile = r.compile.as_ref().unwrap();
    assert_eq!(compile.verdict, Verdict::OK);
}

#[test]
fn the_c_compiler_runs_under_its_own_limits() {
    if store().is_none() {
        return;
    }
    // A program that runs forever is TO in the run step, not CE: compile limits are separate.
    let mut req = SourceRequest::new(vec![source("main.c", "int main(void){for(;;){}}\n")]);
    req.run_limits.wall_time = std::time::Duration::from_millis(500);
    req.run_limits.cpu_time = Some(std::time::Duration::from_millis(300));
    let r = run("c", req);
    assert_eq!(
        r.compile.as_ref().unwrap().verdict,
        Verdict::OK,
        "{}",
        explain(&r)
    );
    assert_eq!(r.verdict, Verdict::TO, "{}", explain(&r));
}

#[test]
fn languages_lists_the_imported_images() {
    if store().is_none() {
        return;
    }
    let out = common::sandcell()
        .args(["languages", "--json", "--state-dir"])
        .arg(state_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let langs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = langs
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    for want in ["c", "cpp", "python", "sh"] {
        assert!(names.contains(&want), "{names:?}");
    }
    let cpp = langs
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "cpp")
        .unwrap();
    assert_eq!(cpp["compile"], "g++ -O2 -std=c++17 -o main main.cpp");
    assert_eq!(cpp["image"], "cpp:latest");
    let table = common::sandcell()
        .args(["languages", "--state-dir"])
        .arg(state_dir())
        .output()
        .unwrap();
    assert!(text(&table.stdout).starts_with("LANGUAGE"));
}
