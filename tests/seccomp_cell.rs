//! Seccomp and privileges in real cells: small C probes (tests/probes/*.c, built static with
//! cc) run through `sandcell run` in a copy of the busybox rootfs, and must be denied what
//! the issue lists, while ordinary work (static and dynamically linked) keeps working.
//! Each probe prints `DENIED <ERRNO>` or `ALLOWED`; see tests/probes/deny.c.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::{require, run_json, sandcell, setup};

/// The probes every cell must see refused with EPERM by the default policy.
const EPERM_PROBES: &[&str] = &[
    "unshare-user",
    "unshare-mount",
    "clone-newns",
    "mount-tmpfs",
    "umount",
    "pivot-root",
    "setns",
    "keyctl",
    "add-key",
    "request-key",
    "bpf",
    "perf-event-open",
    "userfaultfd",
    "ptrace",
    "process-vm-readv",
    "tiocsti",
    "name-to-handle-at",
];

/// A copy of the test rootfs with the probes in /probe, made once per test binary.
struct ProbeCell {
    _dir: tempfile::TempDir,
    rootfs: PathBuf,
}

fn probe_cell() -> Option<&'static Path> {
    static CELL: OnceLock<Option<ProbeCell>> = OnceLock::new();
    let source = setup()?;
    CELL.get_or_init(|| build_probe_cell(&source))
        .as_ref()
        .map(|cell| cell.rootfs.as_path())
}

fn cc_works() -> bool {
    Command::new("cc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn compile(source: &str, output: &Path, extra: &[&str]) -> Result<(), String> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/probes")
        .join(source);
    let out = Command::new("cc")
        .args(["-O2", "-Wall", "-pthread"])
        .args(extra)
        .arg("-o")
        .arg(output)
        .arg(&source)
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc {}: {}",
            source.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Copies the shared libraries `ldd` lists for `binary` into `rootfs` at the same paths.
fn copy_libraries(binary: &Path, rootfs: &Path) -> Result<(), String> {
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    let listing = String::from_utf8_lossy(&out.stdout);
    let libs = listing
        .split_whitespace()
        .filter(|word| word.starts_with('/'))
        .map(PathBuf::from);
    for lib in libs {
        let target = rootfs.join(lib.strip_prefix("/").unwrap_or(&lib));
        std::fs::create_dir_all(target.parent().unwrap()).map_err(|e| e.to_string())?;
        // dereference: /lib64/ld-linux-x86-64.so.2 is a symlink on the host
        std::fs::copy(&lib, &target).map_err(|e| format!("copy {}: {e}", lib.display()))?;
    }
    Ok(())
}

fn build_probe_cell(source: &Path) -> Option<ProbeCell> {
    if !require(
        cc_works(),
        "needs cc and static libc to build the probes (apt-get install gcc libc6-dev)",
    ) {
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rootfs = dir.path().join("rootfs");
    let status = Command::new("cp")
        .arg("-a")
        .arg(source)
        .arg(&rootfs)
        .status()
        .expect("cp");
    assert!(status.success(), "copying the test rootfs failed");
    let probes = rootfs.join("probe");
    std::fs::create_dir_all(&probes).unwrap();
    let built = compile("deny.c", &probes.join("deny"), &["-static"])
        .and_then(|()| compile("normal_work.c", &probes.join("normal_work"), &["-static"]))
        .and_then(|()| compile("whoami.c", &probes.join("whoami"), &["-static"]))
        .and_then(|()| compile("normal_work.c", &probes.join("normal_work_dynamic"), &[]))
        .and_then(|()| copy_libraries(&probes.join("normal_work_dynamic"), &rootfs));
    if let Err(e) = built {
        require(false, &format!("cannot build the probes: {e}"));
        return None;
    }
    // a setuid-root copy of whoami
    let setuid = probes.join("whoami-setuid");
    std::fs::copy(probes.join("whoami"), &setuid).unwrap();
    std::os::unix::fs::chown(&setuid, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(
        &setuid,
        std::os::unix::fs::PermissionsExt::from_mode(0o4755),
    )
    .unwrap();
    Some(ProbeCell { _dir: dir, rootfs })
}

/// Seccomp tests are not about limits: run even where cgroups are missing.
const BASE: &[&str] = &["--allow-degraded"];

fn run_probe(rootfs: &Path, extra: &[&str], probe: &str) -> serde_json::Value {
    let mut args = BASE.to_vec();
    args.extend_from_slice(extra);
    run_json(rootfs, &args, &["/probe/deny", probe]).0
}

#[test]
fn status_shows_no_capabilities_no_new_privs_and_a_filter() {
    let Some(r) = probe_cell() else { return };
    let (json, _) = run_json(r, BASE, &["/bin/cat", "/proc/self/status"]);
    assert_eq!(json["verdict"], "OK", "{json}");
    let status = json["stdout"].as_str().unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {status}"))
    };
    assert_eq!(field("CapEff"), "0000000000000000");
    assert_eq!(field("NoNewPrivs"), "1");
    assert_eq!(field("Seccomp"), "2");
    assert_eq!(
        field("Seccomp_filters"),
        "1",
        "the default policy is one filter"
    );
}

#[test]
fn the_must_deny_probes_are_refused_with_eperm() {
    let Some(r) = probe_cell() else { return };
    for probe in EPERM_PROBES {
        let json = run_probe(r, &[], probe);
        assert_eq!(json["verdict"], "OK", "{probe}: {json}");
        assert_eq!(json["stdout"], "DENIED EPERM\n", "{probe}: {json}");
    }
}

#[test]
fn clone3_returns_enosys_so_libc_falls_back() {
    let Some(r) = probe_cell() else { return };
    let json = run_probe(r, &[], "clone3-newuser");
    assert_eq!(json["stdout"], "DENIED ENOSYS\n", "{json}");
}

#[test]
fn the_kill_list_ends_the_run_with_sigsys() {
    let Some(r) = probe_cell() else { return };
    let mut probes = vec!["reboot"];
    if cfg!(target_arch = "x86_64") {
        probes.push("iopl");
    }
    for probe in probes {
        let json = run_probe(r, &[], probe);
        assert_eq!(json["verdict"], "SG", "{probe}: {json}");
        assert_eq!(json["signal"], libc::SIGSYS, "{probe}: {json}");
        assert_eq!(json["stdout"], "", "{probe} survived: {json}");
    }
}

/// What PTRACE_TRACEME gives when it reaches the kernel: the tracer would be the cell's PID 1,
/// outside the program's user namespace (its per-cell uid), so the kernel allows it only
/// while PID 1 still has CAP_SYS_PTRACE, i.e. if the probe runs before PID 1 drops its
/// capabilities right after the exec. Either answer means the filter let it through.
const PTRACE_UNFILTERED: &str = "ALLOWED\n|DENIED EPERM\n";

/// Without the filter the same probes reach the kernel (and some succeed, because they need
/// no privilege): so it is the filter, not the dropped capabilities, that refuses them.
#[test]
fn it_is_the_filter_that_refuses_them() {
    let Some(r) = probe_cell() else { return };
    let none = ["--seccomp", "none"];
    for (probe, unfiltered) in [
        ("keyctl", "ALLOWED\n"),
        ("ptrace", PTRACE_UNFILTERED),
        ("process-vm-readv", "ALLOWED\n"),
        ("setns", "DENIED EBADF\n"),
        ("tiocsti", "DENIED ENOTTY\n"),
    ] {
        let json = run_probe(r, &none, probe);
        assert!(
            unfiltered.split('|').any(|u| json["stdout"] == u),
            "{probe} without seccomp: {json}"
        );
    }
    let (json, _) = run_json(
        r,
        &["--allow-degraded", "--seccomp", "none"],
        &["/bin/cat", "/proc/self/status"],
    );
    assert!(
        json["stdout"].as_str().unwrap().contains("Seccomp:\t0"),
        "{json}"
    );
}

#[test]
fn ordinary_work_keeps_working_static_and_dynamic() {
    let Some(r) = probe_cell() else { return };
    for program in ["/probe/normal_work", "/probe/normal_work_dynamic"] {
        let (json, _) = run_json(r, BASE, &[program]);
        assert_eq!(json["verdict"], "OK", "{program}: {json}");
        assert!(
            json["stdout"].as_str().unwrap().ends_with("ALL OK\n"),
            "{program}: {json}"
        );
    }
}

#[test]
fn shell_unshare_and_mount_are_denied() {
    let Some(r) = probe_cell() else { return };
    let (json, _) = run_json(
        r,
        BASE,
        &[
            "/bin/sh",
            "-c",
            "unshare -U true; echo unshare=$?; mount -t tmpfs x /mnt; echo mount=$?; \
             linux32 true; echo linux32=$?",
        ],
    );
    assert_eq!(json["verdict"], "OK", "{json}");
    let stdout = json["stdout"].as_str().unwrap();
    assert!(stdout.contains("unshare=1"), "{json}");
    assert!(
        stdout.contains("mount=1") || stdout.contains("mount=255"),
        "{json}"
    );
    assert!(
        stdout.contains("linux32=0"),
        "personality(PER_LINUX32) is allowed: {json}"
    );
    assert!(
        json["stderr"]
            .as_str()
            .unwrap()
            .contains("Operation not permitted"),
        "{json}"
    );
}

#[test]
fn a_setuid_root_binary_does_not_give_uid_0() {
    let Some(r) = probe_cell() else { return };
    let (json, _) = run_json(r, BASE, &["/probe/whoami-setuid"]);
    assert_eq!(json["verdict"], "OK", "{json}");
    let line = json["stdout"].as_str().unwrap();
    assert!(line.starts_with("uid="), "{json}");
    assert!(!line.contains("euid=0 "), "setuid root worked: {json}");
    assert!(!line.contains("uid=0 "), "{json}");
}

#[test]
fn a_json_policy_file_is_what_gets_installed() {
    let Some(r) = probe_cell() else { return };
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.json");
    std::fs::write(
        &policy,
        r#"{"deny-keyctl": {"mismatch_action": "allow", "match_action": {"errno": 13},
                             "filter": [{"syscall": "keyctl"}]}}"#,
    )
    .unwrap();
    let file = ["--seccomp-policy", policy.to_str().unwrap()];
    assert_eq!(run_probe(r, &file, "keyctl")["stdout"], "DENIED EACCES\n");
    // this policy does not deny ptrace
    let json = run_probe(r, &file, "ptrace");
    assert!(
        PTRACE_UNFILTERED.split('|').any(|u| json["stdout"] == u),
        "{json}"
    );
    let (json, _) = run_json(
        r,
        &[
            "--allow-degraded",
            "--seccomp-policy",
            policy.to_str().unwrap(),
        ],
        &["/bin/cat", "/proc/self/status"],
    );
    assert!(
        json["stdout"]
            .as_str()
            .unwrap()
            .contains("Seccomp_filters:\t1"),
        "{json}"
    );
}

#[test]
fn a_broken_policy_file_fails_before_anything_starts() {
    let Some(r) = probe_cell() else { return };
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("broken.json");
    std::fs::write(&policy, "{ not json").unwrap();
    let out = sandcell()
        .args(["run", "--allow-degraded", "--seccomp-policy"])
        .arg(&policy)
        .arg("--rootfs")
        .arg(r)
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(policy.to_str().unwrap()) && stderr.contains("Json"),
        "{stderr}"
    );
}

/// A rootfs whose /usr is the host's (merged-usr Debian: /bin, /lib, /lib64 link into it),
/// so the host's CPython and gcc/g++ run in a cell under the default policy.
fn host_usr_rootfs(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    for d in ["usr", "proc", "dev", "tmp", "work", "etc"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    for link in ["bin", "lib", "lib64", "sbin"] {
        std::os::unix::fs::symlink(format!("usr/{link}"), rootfs.join(link)).unwrap();
    }
    for f in ["passwd", "group"] {
        std::fs::copy(Path::new("/etc").join(f), rootfs.join("etc").join(f)).unwrap();
    }
    rootfs
}

#[test]
fn cpython_and_gcc_work_under_the_default_policy() {
    if setup().is_none() {
        return;
    }
    let merged_usr = std::fs::read_link("/lib").is_ok_and(|t| t.ends_with("usr/lib"));
    let tools = ["/usr/bin/python3", "/usr/bin/g++", "/usr/bin/gcc"];
    if !require(
        merged_usr && tools.iter().all(|t| Path::new(t).exists()),
        "needs a merged-usr host with python3, gcc and g++",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let rootfs = host_usr_rootfs(dir.path());
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::set_permissions(&work, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    std::fs::write(
        work.join("hello.cpp"),
        "#include <iostream>\n#include <thread>\nint main(){std::thread t([]{std::cout<<\"thread\\n\";});\
         t.join();std::cout<<\"hello c++\\n\";}\n",
    )
    .unwrap();
    let bind_usr = "--bind=/usr:/usr";
    let bind_work = format!("--bind={}:/work:rw", work.display());
    // generous budgets: compiling C++ is slow under emulation (vm-run without KVM)
    let extra = [
        "--allow-degraded",
        "--cpu-time=300s",
        "--wall-time=600s",
        "--memory=1G",
        bind_usr,
        &bind_work,
    ];

    let python = "import subprocess, threading, multiprocessing, asyncio, socket\n\
        print(subprocess.run(['/bin/echo', 'child'], capture_output=True, text=True).stdout.strip())\n\
        t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n\
        with multiprocessing.Pool(2) as p: print(p.map(abs, [-1, -2]))\n\
        print(asyncio.run(asyncio.sleep(0, 'async')))\n\
        s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); print('socket')\n";
    let (json, _) = run_json(&rootfs, &extra, &["/usr/bin/python3", "-c", python]);
    assert_eq!(json["verdict"], "OK", "{json}");
    assert_eq!(
        json["stdout"], "child\nthread\n[1, 2]\nasync\nsocket\n",
        "{json}"
    );

    let script = "cd /work && g++ -O2 -pthread -o hello hello.cpp && ./hello && \
                  printf 'int main(void){return 0;}' > t.c && gcc -static -o t t.c && ./t && echo done";
    let (json, _) = run_json(&rootfs, &extra, &["/bin/sh", "-c", script]);
    assert_eq!(json["verdict"], "OK", "{json}");
    assert_eq!(json["stdout"], "thread\nhello c++\ndone\n", "{json}");
}
