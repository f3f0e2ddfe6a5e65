//! The seccomp policies without a cell: the default policy compiles and answers each syscall
//! the way the issue asks (dry runs of the real BPF, combined like the kernel does), JSON
//! policy files load, fail clearly, and are compiled once per file version.

use std::path::PathBuf;
use std::sync::Arc;

use sandcell::sandbox::seccomp::{
    self, default_policy, SeccompError, SeccompOutcome as Out, SyscallQuery, AUDIT_ARCH_I386,
};
use sandcell::spec::SeccompChoice;

const EPERM: Out = Out::Errno(libc::EPERM as u32);
const ENOSYS: Out = Out::Errno(libc::ENOSYS as u32);

fn outcome(nr: i64, args: &[u64]) -> Out {
    let policy = seccomp::default().expect("default policy compiles");
    policy
        .evaluate(&SyscallQuery::native(nr, args))
        .expect("dry run")
}

#[test]
fn default_policy_is_one_tree_filter_compiled_once() {
    let a = seccomp::compile(&SeccompChoice::Default).unwrap().unwrap();
    let b = seccomp::compile(&SeccompChoice::Default).unwrap().unwrap();
    assert!(Arc::ptr_eq(&a, &b), "compiled twice");
    assert_eq!(a.filter_names(), ["syscall-tree"]);
    assert_eq!(a.programs().len(), 1);
    // a binary search, not a chain of ~400 comparisons like the three linear filters
    let length = a.programs()[0].len();
    assert!(length > 10 && length < 400, "{length} instructions");
}

#[test]
fn seccomp_none_means_no_policy() {
    assert!(seccomp::compile(&SeccompChoice::None).unwrap().is_none());
}

#[test]
fn what_programs_need_is_allowed() {
    let clone_thread = (libc::CLONE_VM
        | libc::CLONE_FS
        | libc::CLONE_FILES
        | libc::CLONE_SIGHAND
        | libc::CLONE_THREAD
        | libc::CLONE_SYSVSEM
        | libc::CLONE_SETTLS
        | libc::CLONE_PARENT_SETTID
        | libc::CLONE_CHILD_CLEARTID) as u64;
    let fork_flags = (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
    let cases: &[(&str, i64, &[u64])] = &[
        ("execve", libc::SYS_execve, &[]),
        ("exit_group", libc::SYS_exit_group, &[]),
        ("seccomp", libc::SYS_seccomp, &[]),
        ("read", libc::SYS_read, &[]),
        ("openat", libc::SYS_openat, &[]),
        ("mmap", libc::SYS_mmap, &[]),
        ("mprotect", libc::SYS_mprotect, &[]),
        ("brk", libc::SYS_brk, &[]),
        ("arch_prctl/set_tid_address", libc::SYS_set_tid_address, &[]),
        ("rseq", libc::SYS_rseq, &[]),
        ("futex", libc::SYS_futex, &[]),
        ("getrandom", libc::SYS_getrandom, &[]),
        ("faccessat2", libc::SYS_faccessat2, &[]),
        ("statx", libc::SYS_statx, &[]),
        ("wait4", libc::SYS_wait4, &[]),
        ("pipe2", libc::SYS_pipe2, &[]),
        ("mknodat (mkfifo)", libc::SYS_mknodat, &[]),
        ("clone (thread)", libc::SYS_clone, &[clone_thread]),
        ("clone (fork)", libc::SYS_clone, &[fork_flags]),
        (
            "unshare(CLONE_FILES)",
            libc::SYS_unshare,
            &[libc::CLONE_FILES as u64],
        ),
        ("ioctl TCGETS", libc::SYS_ioctl, &[1, libc::TCGETS]),
        ("ioctl FIONREAD", libc::SYS_ioctl, &[0, libc::FIONREAD]),
        (
            "socket AF_INET",
            libc::SYS_socket,
            &[libc::AF_INET as u64, 1],
        ),
        (
            "socket AF_INET6",
            libc::SYS_socket,
            &[libc::AF_INET6 as u64, 1],
        ),
        (
            "socket AF_UNIX",
            libc::SYS_socket,
            &[libc::AF_UNIX as u64, 1],
        ),
        (
            "socket AF_NETLINK",
            libc::SYS_socket,
            &[libc::AF_NETLINK as u64, 3],
        ),
        ("personality query", libc::SYS_personality, &[0xffff_ffff]),
        ("personality PER_LINUX", libc::SYS_personality, &[0]),
    ];
    for (what, nr, args) in cases {
        assert_eq!(outcome(*nr, args), Out::Allow, "{what}");
    }
    #[cfg(target_arch = "x86_64")]
    for (what, nr) in [
        ("arch_prctl", libc::SYS_arch_prctl),
        ("open", libc::SYS_open),
        ("stat", libc::SYS_stat),
        ("fork", libc::SYS_fork),
        ("vfork", libc::SYS_vfork),
        ("access", libc::SYS_access),
    ] {
        assert_eq!(outcome(nr, &[]), Out::Allow, "{what}");
    }
}

#[test]
fn the_issue_must_deny_list_is_denied() {
    let ns = |flag: i32| flag as u64;
    let cases: &[(&str, i64, &[u64])] = &[
        ("mount", libc::SYS_mount, &[]),
        ("umount2", libc::SYS_umount2, &[]),
        ("pivot_root", libc::SYS_pivot_root, &[]),
        (
            "unshare(NEWUSER)",
            libc::SYS_unshare,
            &[ns(libc::CLONE_NEWUSER)],
        ),
        (
            "unshare(NEWNS)",
            libc::SYS_unshare,
            &[ns(libc::CLONE_NEWNS)],
        ),
        ("unshare(NEWTIME)", libc::SYS_unshare, &[0x80]),
        (
            "unshare(FILES|NEWNET)",
            libc::SYS_unshare,
            &[ns(libc::CLONE_FILES | libc::CLONE_NEWNET)],
        ),
        ("setns", libc::SYS_setns, &[]),
        (
            "clone(NEWNS)",
            libc::SYS_clone,
            &[ns(libc::CLONE_NEWNS | libc::SIGCHLD)],
        ),
        (
            "clone(NEWUSER)",
            libc::SYS_clone,
            &[ns(libc::CLONE_NEWUSER | libc::SIGCHLD)],
        ),
        ("clone(NEWPID)", libc::SYS_clone, &[ns(libc::CLONE_NEWPID)]),
        (
            "clone(NEWCGROUP)",
            libc::SYS_clone,
            &[ns(libc::CLONE_NEWCGROUP)],
        ),
        ("keyctl", libc::SYS_keyctl, &[]),
        ("add_key", libc::SYS_add_key, &[]),
        ("request_key", libc::SYS_request_key, &[]),
        ("bpf", libc::SYS_bpf, &[]),
        ("perf_event_open", libc::SYS_perf_event_open, &[]),
        ("userfaultfd", libc::SYS_userfaultfd, &[]),
        ("name_to_handle_at", libc::SYS_name_to_handle_at, &[]),
        ("ptrace", libc::SYS_ptrace, &[]),
        ("process_vm_readv", libc::SYS_process_vm_readv, &[]),
        ("process_vm_writev", libc::SYS_process_vm_writev, &[]),
        ("ioctl TIOCSTI", libc::SYS_ioctl, &[0, libc::TIOCSTI]),
        ("ioctl TIOCLINUX", libc::SYS_ioctl, &[0, libc::TIOCLINUX]),
        // the kernel ignores the high half of ioctl's cmd: junk there must not bypass the check
        (
            "ioctl TIOCSTI, high bits set",
            libc::SYS_ioctl,
            &[0, 0xdead_beef_0000_0000 | libc::TIOCSTI],
        ),
        (
            "socket AF_PACKET",
            libc::SYS_socket,
            &[libc::AF_PACKET as u64, 3],
        ),
        (
            "socket AF_VSOCK",
            libc::SYS_socket,
            &[libc::AF_VSOCK as u64, 1],
        ),
        (
            "personality ADDR_NO_RANDOMIZE",
            libc::SYS_personality,
            &[0x0040000],
        ),
        ("open_tree", libc::SYS_open_tree, &[]),
        ("fsopen", libc::SYS_fsopen, &[]),
        ("move_mount", libc::SYS_move_mount, &[]),
        ("chroot", libc::SYS_chroot, &[]),
        ("sethostname", libc::SYS_sethostname, &[]),
        ("settimeofday", libc::SYS_settimeofday, &[]),
        ("clock_settime", libc::SYS_clock_settime, &[]),
        ("syslog", libc::SYS_syslog, &[]),
        ("kcmp", libc::SYS_kcmp, &[]),
        ("pidfd_getfd", libc::SYS_pidfd_getfd, &[]),
        ("memfd_secret", libc::SYS_memfd_secret, &[]),
        ("fanotify_init", libc::SYS_fanotify_init, &[]),
        ("quotactl", libc::SYS_quotactl, &[]),
    ];
    for (what, nr, args) in cases {
        assert_eq!(outcome(*nr, args), EPERM, "{what}");
    }
}

#[test]
fn the_kill_list_kills_the_process() {
    let mut kills = vec![
        ("kexec_load", libc::SYS_kexec_load),
        ("kexec_file_load", libc::SYS_kexec_file_load),
        ("init_module", libc::SYS_init_module),
        ("finit_module", libc::SYS_finit_module),
        ("delete_module", libc::SYS_delete_module),
        ("reboot", libc::SYS_reboot),
        ("swapon", libc::SYS_swapon),
        ("swapoff", libc::SYS_swapoff),
        ("acct", libc::SYS_acct),
        ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ];
    #[cfg(target_arch = "x86_64")]
    kills.extend([("iopl", libc::SYS_iopl), ("ioperm", libc::SYS_ioperm)]);
    for (what, nr) in kills {
        assert_eq!(outcome(nr, &[]), Out::KillProcess, "{what}");
    }
    assert_eq!(
        default_policy::kill_list().count(),
        if cfg!(target_arch = "x86_64") { 12 } else { 10 }
    );
}

#[test]
fn new_style_calls_return_enosys_so_libc_falls_back() {
    for (what, nr) in [
        ("clone3", libc::SYS_clone3),
        ("io_uring_setup", libc::SYS_io_uring_setup),
        ("io_uring_enter", libc::SYS_io_uring_enter),
        ("io_uring_register", libc::SYS_io_uring_register),
    ] {
        assert_eq!(outcome(nr, &[]), ENOSYS, "{what}");
    }
}

#[test]
fn other_abis_are_refused() {
    let policy = seccomp::default().unwrap();
    // i386 through int 0x80: fails the architecture check
    let mut query = SyscallQuery::native(libc::SYS_getpid, &[]);
    query.arch = AUDIT_ARCH_I386;
    assert_eq!(policy.evaluate(&query).unwrap(), Out::KillProcess);
    // x32: bit 30 set in the number
    #[cfg(target_arch = "x86_64")]
    {
        let query = SyscallQuery::native(libc::SYS_getpid | 0x4000_0000, &[]);
        assert_eq!(policy.evaluate(&query).unwrap(), EPERM);
    }
    // a number past every table
    assert_eq!(outcome(4000, &[]), EPERM);
}

fn write_policy(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const DENY_GETPID_POLICY: &str = r#"{
  "20-deny-getpid": {
    "mismatch_action": "allow",
    "match_action": {"errno": 13},
    "filter": [{"syscall": "getpid"}]
  },
  "10-deny-uname-with-arg": {
    "mismatch_action": "allow",
    "match_action": "kill_process",
    "filter": [{"syscall": "uname", "args": [{"index": 0, "type": "qword", "op": "eq", "val": 7}]}]
  }
}"#;

#[test]
fn json_policy_loads_every_filter_sorted_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_policy(&dir, "p.json", DENY_GETPID_POLICY);
    let policy = seccomp::compile(&SeccompChoice::PolicyFile(path.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(
        policy.filter_names(),
        ["10-deny-uname-with-arg", "20-deny-getpid"]
    );
    let eval = |nr, args: &[u64]| policy.evaluate(&SyscallQuery::native(nr, args)).unwrap();
    assert_eq!(eval(libc::SYS_getpid, &[]), Out::Errno(13));
    assert_eq!(eval(libc::SYS_uname, &[7]), Out::KillProcess);
    assert_eq!(eval(libc::SYS_uname, &[8]), Out::Allow);
    assert_eq!(eval(libc::SYS_read, &[]), Out::Allow);
}

#[test]
fn json_policy_is_cached_until_the_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_policy(&dir, "p.json", DENY_GETPID_POLICY);
    let choice = SeccompChoice::PolicyFile(path.clone());
    let first = seccomp::compile(&choice).unwrap().unwrap();
    let again = seccomp::compile(&choice).unwrap().unwrap();
    assert!(
        Arc::ptr_eq(&first, &again),
        "same file version compiled twice"
    );

    // a different length is a new version even within the same mtime tick
    let changed = DENY_GETPID_POLICY.replace("\"errno\": 13", "\"errno\": 1");
    std::fs::write(&path, changed).unwrap();
    let second = seccomp::compile(&choice).unwrap().unwrap();
    assert!(
        !Arc::ptr_eq(&first, &second),
        "changed file served from the cache"
    );
    let q = SyscallQuery::native(libc::SYS_getpid, &[]);
    assert_eq!(second.evaluate(&q).unwrap(), Out::Errno(1));
}

fn policy_error(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write_policy(&dir, "bad.json", text);
    match seccomp::compile(&SeccompChoice::PolicyFile(path.clone())) {
        Err(e @ SeccompError::Policy { .. }) => {
            let message = e.to_string();
            assert!(
                message.contains(&path.display().to_string()),
                "error does not name the file: {message}"
            );
            message
        }
        other => panic!("expected a policy error for {text:?}, got {other:?}"),
    }
}

#[test]
fn malformed_json_fails_naming_file_and_problem() {
    let m = policy_error("{ \"a\": ");
    assert!(m.contains("Json"), "{m}");
    let m = policy_error("[1, 2]");
    assert!(m.contains("Json"), "{m}");
}

#[test]
fn unknown_syscall_name_fails_naming_it() {
    let m = policy_error(
        r#"{"f": {"mismatch_action": "allow", "match_action": "kill_process",
                  "filter": [{"syscall": "no_such_call"}]}}"#,
    );
    assert!(m.contains("no_such_call"), "{m}");
}

#[test]
fn unknown_fields_and_identical_actions_fail() {
    let m = policy_error(
        r#"{"f": {"mismatch_action": "allow", "match_action": "allow", "filter": []}}"#,
    );
    assert!(m.to_lowercase().contains("action"), "{m}");
    let m = policy_error(
        r#"{"f": {"mismatch_action": "allow", "match_action": "trap", "filter": [], "x": 1}}"#,
    );
    assert!(m.contains("unknown field"), "{m}");
}

#[test]
fn an_empty_policy_is_refused_not_silently_unfiltered() {
    let m = policy_error("{}");
    assert!(m.contains("no filters"), "{m}");
}

#[test]
fn a_missing_policy_file_is_a_clear_error() {
    let path = PathBuf::from("/nonexistent/sandcell-policy.json");
    let e = seccomp::compile(&SeccompChoice::PolicyFile(path)).unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("/nonexistent/sandcell-policy.json") && m.contains("cannot open"),
        "{m}"
    );
}

#[test]
fn a_directory_is_not_a_policy() {
    let dir = tempfile::tempdir().unwrap();
    let e = seccomp::compile(&SeccompChoice::PolicyFile(dir.path().to_path_buf())).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
}
