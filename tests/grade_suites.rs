//! `sandcell grade` on small suites in the busybox test rootfs: malformed suites (exit 2
//! naming the field), every comparator and verdict, test_dir, weights, --fail-fast, reports.

mod common;
mod grade_support;

use std::path::Path;

use grade_support::{grade, grade_json, test, verdicts};

/// Writes `files` into a temp dir; `suite.toml` gets `rootfs = <busybox>` prepended.
fn suite_dir(rootfs: &Path, suite: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("rootfs = {:?}\n{suite}", rootfs.display().to_string());
    std::fs::write(dir.path().join("suite.toml"), text).unwrap();
    for (name, content) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    dir
}

fn suite_path(dir: &tempfile::TempDir) -> String {
    dir.path().join("suite.toml").display().to_string()
}

/// Runs a malformed suite and returns stderr; asserts exit 2 and nothing on stdout.
fn bad_suite(suite: &str, files: &[(&str, &str)]) -> String {
    // Suite errors surface before any cell starts: no root or rootfs needed.
    let dir = suite_dir(Path::new("/"), suite, files);
    let out = grade(None, &[&suite_path(&dir)]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

const SOLUTION: &[(&str, &str)] = &[("sol.sh", "read a b; echo $((a + b))\n")];

#[test]
fn suite_without_tests_is_rejected() {
    let e = bad_suite("submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\n", SOLUTION);
    assert!(e.contains("tests"), "{e}");
    assert!(e.contains("no tests"), "{e}");
}

#[test]
fn unknown_comparator_names_line_and_field() {
    let e = bad_suite(
        "submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\n\n[[tests]]\nstdin = \"1 2\"\nexpected_stdout = \"3\"\ncomparator = \"fuzzy\"\n",
        SOLUTION,
    );
    // Line 8: the suite file has the rootfs line prepended.
    assert!(e.contains("suite.toml:8:"), "{e}");
    assert!(e.contains("comparator"), "{e}");
    assert!(e.contains("unknown comparator \"fuzzy\""), "{e}");
}

#[test]
fn missing_expected_file_names_line_and_field() {
    let e = bad_suite(
        "submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\n[[tests]]\nstdin = \"1 2\"\nexpected_stdout = \"3\"\n\n[[tests]]\nstdin = \"1 2\"\nexpected_file = \"tests/missing.out\"\n",
        SOLUTION,
    );
    assert!(e.contains("tests[1].expected_file"), "{e}");
    assert!(e.contains("suite.toml:10:"), "{e}");
    assert!(e.contains("tests/missing.out"), "{e}");
}

#[test]
fn test_without_expected_output_is_rejected() {
    let e = bad_suite(
        "submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\n[[tests]]\nstdin = \"1 2\"\n",
        SOLUTION,
    );
    assert!(e.contains("tests[0].expected_stdout"), "{e}");
}

#[test]
fn checker_comparator_without_checker_is_rejected() {
    let e = bad_suite(
        "submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\ncomparator = \"checker\"\n[[tests]]\nstdin = \"1 2\"\n",
        SOLUTION,
    );
    assert!(e.contains("comparator"), "{e}");
    assert!(e.contains("[checker]"), "{e}");
    assert!(e.contains("suite.toml:4:"), "{e}");
}

#[test]
fn missing_checker_file_is_rejected() {
    let e = bad_suite(
        "submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\ncomparator = \"checker\"\n[checker]\nfiles = [\"check.sh\"]\nrun = \"sh check.sh\"\n[[tests]]\nstdin = \"1 2\"\n",
        SOLUTION,
    );
    assert!(e.contains("checker.files"), "{e}");
    assert!(e.contains("check.sh: no such file"), "{e}");
    assert!(e.contains("suite.toml:6:"), "{e}");
}

#[test]
fn unknown_keys_bad_limits_and_missing_submissions_are_rejected() {
    let e = bad_suite("[[tests]]\nexpect = \"3\"\n", SOLUTION);
    assert!(e.contains("suite.toml:3:") && e.contains("expect"), "{e}");
    let e = bad_suite("[limits]\ntime = \"soon\"\n", SOLUTION);
    assert!(e.contains("time") && e.contains("suite.toml:3:"), "{e}");
    let e = bad_suite(
        "submission = [\"nope.sh\"]\nrun = \"sh x\"\n[[tests]]\nexpected_stdout = \"\"\n",
        SOLUTION,
    );
    assert!(
        e.contains("submission") && e.contains("nope.sh: no such file"),
        "{e}"
    );
    let e = bad_suite("this is not toml", SOLUTION);
    assert!(e.contains("suite.toml:2:"), "{e}");
}

#[test]
fn every_comparator_and_verdict() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let suite = r#"
submission = ["sol.sh"]
run = "sh sol.sh"
[limits]
time = "1s"
output = "64K"

[[tests]]
name = "exact-ok"
stdin = "1 2"
expected_stdout = "3\n"
comparator = "exact"

[[tests]]
name = "exact-space"
stdin = "space"
expected_stdout = "3\n"
comparator = "exact"

[[tests]]
name = "trim"
stdin = "space"
expected_stdout = "3"

[[tests]]
name = "tokens"
stdin = "split"
expected_stdout = "1 2 3"
comparator = "tokens"

[[tests]]
name = "float"
stdin = "float"
expected_stdout = "0.333333"
comparator = "float:1e-5"

[[tests]]
name = "regex"
stdin = "hello"
expected_stdout = "hello, [a-z]+!"
comparator = "regex"

[[tests]]
name = "re"
stdin = "exit"
expected_stdout = ""

[[tests]]
name = "sg"
stdin = "segv"
expected_stdout = ""

[[tests]]
name = "ole"
stdin = "spam"
expected_stdout = ""

[[tests]]
name = "tle"
stdin = "spin"
expected_stdout = ""
weight = 3

[[tests]]
name = "args"
args = ["x", "y"]
expected_stdout = "x-y"
"#;
    let sol = r#"
if [ $# -gt 0 ]; then echo "$1-$2"; exit 0; fi
read a b
case "$a" in
  space) printf '3  \n\n' ;;
  split) printf '1\n2   3\n' ;;
  float) echo 0.3333331 ;;
  hello) echo "hello, world!" ;;
  exit) echo "bye" >&2; exit 3 ;;
  segv) kill -SEGV $$ ;;
  spam) yes spam ;;
  spin) while :; do :; done ;;
  *) echo $((a + b)) ;;
esac
"#;
    let dir = suite_dir(&rootfs, suite, &[("sol.sh", sol)]);
    let (r, out) = grade_json(None, &[&suite_path(&dir), "--jobs", "2"]);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    let expect = [
        ("exact-ok", "AC"),
        ("exact-space", "WA"),
        ("trim", "AC"),
        ("tokens", "AC"),
        ("float", "AC"),
        ("regex", "AC"),
        ("re", "RE"),
        ("sg", "SG"),
        ("ole", "OLE"),
        ("tle", "TLE"),
        ("args", "AC"),
    ];
    for (name, verdict) in expect {
        assert_eq!(
            test(&r, name)["verdict"],
            verdict,
            "{name}: {:#}",
            test(&r, name)
        );
    }
    assert_eq!(test(&r, "re")["exit_code"], 3);
    assert_eq!(test(&r, "re")["stderr_tail"], "bye");
    assert_eq!(test(&r, "sg")["signal"], 11);
    assert!(test(&r, "exact-space")["diff"]
        .as_str()
        .is_some_and(|d| d.contains("line 1")));
    assert_eq!(r["passed"], 6);
    assert_eq!(r["max_score"].as_f64(), Some(13.0));
    assert_eq!(r["score"].as_f64(), Some(6.0));
    // The first failure in suite order names the suite's verdict.
    assert_eq!(r["verdict"], "WA");
    assert_eq!(r["cells"]["tests"], 11);
}

#[test]
fn tests_from_a_directory_and_a_checker() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let suite = r#"
submission = ["sol.sh"]
run = "sh sol.sh"
comparator = "checker"
test_dir = "cases"
[checker]
files = ["check.sh"]
run = "sh check.sh"
"#;
    // Accepts any output whose number is at least the answer's.
    let check = r#"
out=$(cat "$2"); ans=$(cat "$3")
if [ "$out" -ge "$ans" ]; then echo "ok $out >= $ans"; exit 0; fi
echo "$out < $ans"; exit 1
"#;
    let dir = suite_dir(
        &rootfs,
        suite,
        &[
            ("sol.sh", "read n; echo $((n * 2))\n"),
            ("check.sh", check),
            ("cases/a.in", "1\n"),
            ("cases/a.out", "2\n"),
            ("cases/b.in", "5\n"),
            ("cases/b.out", "11\n"),
        ],
    );
    let (r, _) = grade_json(None, &[&suite_path(&dir)]);
    assert_eq!(verdicts(&r), ["AC", "WA"], "{r:#}");
    assert_eq!(test(&r, "a")["message"], "ok 2 >= 2");
    assert_eq!(test(&r, "b")["diff"], "10 < 11");
    assert_eq!(r["cells"]["checker"], 2);
}

#[test]
fn fail_fast_skips_the_rest() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let mut suite = String::from("submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\n");
    suite.push_str("[[tests]]\nstdin = \"1\"\nexpected_stdout = \"2\"\n");
    for _ in 0..6 {
        suite.push_str("[[tests]]\nstdin = \"1\"\nexpected_stdout = \"1\"\n");
    }
    let dir = suite_dir(&rootfs, &suite, &[("sol.sh", "read n; echo $n\n")]);
    let (r, out) = grade_json(None, &[&suite_path(&dir), "--jobs", "1", "--fail-fast"]);
    assert_eq!(out.status.code(), Some(1));
    let v = verdicts(&r);
    assert_eq!(v[0], "WA", "{r:#}");
    assert!(v[1..].iter().all(|v| v == "SKIPPED"), "{v:?}");
    assert_eq!(r["cells"]["tests"], 1);
}

#[test]
fn compile_output_reaches_every_test_fresh() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    // The "compiler" writes an artifact into /work; every test gets its own copy, so what
    // one test changes there is not what the next one runs.
    let suite = r#"
submission = ["src.txt"]
compile = "sh -c 'tr a-z A-Z < src.txt > built.txt'"
run = ["sh", "-c", "cat built.txt; echo changed > built.txt && echo wrote"]
[[tests]]
expected_stdout = "HELLO\nwrote"
[[tests]]
expected_stdout = "HELLO\nwrote"
"#;
    let dir = suite_dir(&rootfs, suite, &[("src.txt", "hello\n")]);
    let (r, out) = grade_json(None, &[&suite_path(&dir), "--jobs", "1"]);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["cells"]["compile"], 1);
    assert_eq!(r["compile"]["verdict"], "OK");
}

#[test]
fn table_is_plain_when_piped_and_output_file_gets_the_format() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let suite = "submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\n[[tests]]\nstdin = \"1 2\"\nexpected_stdout = \"3\"\n";
    let dir = suite_dir(&rootfs, suite, SOLUTION);
    let out = grade(None, &[&suite_path(&dir)]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    assert!(
        !table.contains('\x1b'),
        "colour codes in piped output: {table:?}"
    );
    assert!(table.contains("AC 1/1 passed"), "{table}");

    let json_path = dir.path().join("report.json");
    let out = grade(
        None,
        &[
            &suite_path(&dir),
            "--format",
            "json",
            "--output",
            json_path.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(report["verdict"], "AC");
    for key in [
        "schema",
        "suite",
        "verdict",
        "passed",
        "total",
        "score",
        "max_score",
        "max_time_ms",
        "max_wall_time_ms",
        "max_memory_bytes",
        "elapsed_ms",
        "cells",
        "compile",
        "tests",
    ] {
        assert!(report.get(key).is_some(), "report lacks {key}: {report:#}");
    }
}
