//! Acceptance tests of `sandcell grade` on the shipped example suites (examples/sum in C++,
//! examples/split in Python with a checker), in the real cpp and python images.

mod common;
mod grade_support;

use grade_support::{grade, grade_json, images, junitparser_python, test, verdicts};

const SUM: &str = "examples/sum/suite.toml";
const SPLIT: &str = "examples/split/suite.toml";

fn sum_with(solution: &str) -> Option<(serde_json::Value, std::process::Output)> {
    let state = images()?;
    let sub = format!("examples/sum/solutions/{solution}");
    Some(grade_json(
        Some(&state),
        &[SUM, "--jobs", "2", "--submission", &sub],
    ))
}

#[test]
fn correct_cpp_solution_is_accepted_and_compiled_once() {
    let Some((r, out)) = sum_with("correct.cpp") else {
        return;
    };
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["schema"], "sandcell.grade/v1");
    assert_eq!(r["verdict"], "AC");
    assert_eq!(
        (r["passed"].as_u64(), r["total"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(r["score"].as_f64(), r["max_score"].as_f64());
    assert_eq!(r["compile"]["verdict"], "OK");
    // One compile cell for ten tests, each test in its own cell.
    assert_eq!(r["cells"]["compile"], 1, "{r:#}");
    assert_eq!(r["cells"]["tests"], 10, "{r:#}");
    assert!(verdicts(&r).iter().all(|v| v == "AC"), "{r:#}");
    assert!(r["max_memory_bytes"].as_u64().is_some_and(|m| m > 0));
}

#[test]
fn wrong_cpp_solution_gets_wa_with_a_diff() {
    let Some((r, out)) = sum_with("wrong.cpp") else {
        return;
    };
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["verdict"], "WA");
    let t = test(&r, "int32-overflow");
    assert_eq!(t["verdict"], "WA");
    let diff = t["diff"].as_str().unwrap_or_default();
    assert!(diff.contains("expected 2147483648"), "{diff}");
    assert!(diff.contains("got -2147483648"), "{diff}");
    assert_eq!(test(&r, "small")["verdict"], "AC");
    assert_eq!(test(&r, "float")["verdict"], "WA");
}

#[test]
fn slow_cpp_solution_times_out_on_the_tle_prone_test_only() {
    let Some((r, out)) = sum_with("tle.cpp") else {
        return;
    };
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["verdict"], "TLE");
    for t in r["tests"].as_array().unwrap() {
        let expected = if t["name"] == "tle-prone" {
            "TLE"
        } else {
            "AC"
        };
        assert_eq!(t["verdict"], expected, "{t:#}");
    }
    assert_eq!(r["passed"], 9);
}

#[test]
fn memory_hog_gets_mle() {
    let Some((r, out)) = sum_with("mle.cpp") else {
        return;
    };
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["verdict"], "MLE");
    assert!(verdicts(&r).iter().all(|v| v == "MLE"), "{r:#}");
}

#[test]
fn compile_error_stops_the_suite_before_any_test() {
    let Some((r, out)) = sum_with("compile_error.cpp") else {
        return;
    };
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["verdict"], "CE");
    assert_eq!(r["compile"]["verdict"], "CE");
    let output = r["compile"]["output"].as_str().unwrap_or_default();
    assert!(output.contains("error"), "{output}");
    assert!(output.contains("main.cpp"), "{output}");
    assert_eq!(r["cells"]["compile"], 1);
    assert_eq!(r["cells"]["tests"], 0, "no test may run after CE");
    assert!(verdicts(&r).iter().all(|v| v == "SKIPPED"), "{r:#}");
}

#[test]
fn junit_report_parses_with_junitparser() {
    let Some(state) = images() else { return };
    let Some(python) = junitparser_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let xml = dir.path().join("junit.xml");
    let out = grade(
        Some(&state),
        &[
            SUM,
            "--submission",
            "examples/sum/solutions/wrong.cpp",
            "--format",
            "junit",
            "--output",
            xml.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    // The table still goes to stdout when the report goes to a file.
    assert!(String::from_utf8_lossy(&out.stdout).contains("int32-overflow"));
    let script = r#"
import sys
from junitparser import JUnitXml, Failure, Error, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
cases = [c for suite in xml for c in suite]
failed = {c.name: [r.message for r in c.result if isinstance(r, Failure)] for c in cases}
print(len(cases))
print(sum(1 for v in failed.values() if v))
print(failed["int32-overflow"][0])
print([r.text for r in cases[3].result][0])
"#;
    let check = std::process::Command::new(python)
        .args(["-c", script])
        .arg(&xml)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "10", "{text}");
    assert_eq!(lines[1], "5", "{text}");
    assert!(lines[2].starts_with("WA"), "{text}");
    assert!(text.contains("expected 2147483648"), "{text}");
}

#[test]
fn python_suite_with_checker_accepts_any_valid_split() {
    let Some(state) = images() else { return };
    let (r, out) = grade_json(Some(&state), &[SPLIT, "--jobs", "2"]);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["verdict"], "AC");
    assert_eq!(r["total"], 6);
    assert_eq!(r["cells"]["compile"], 0, "python has no compile step");
    assert_eq!(r["cells"]["checker"], 6, "{r:#}");
    assert!(test(&r, "03")["message"]
        .as_str()
        .is_some_and(|m| m.contains("1 + 9 = 10")));
}

#[test]
fn python_checker_rejects_a_wrong_split_with_its_message() {
    let Some(state) = images() else { return };
    let sub = "examples/split/solutions/wrong.py";
    let (r, out) = grade_json(Some(&state), &[SPLIT, "--submission", sub]);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert!(verdicts(&r).iter().all(|v| v == "WA"), "{r:#}");
    let diff = test(&r, "01")["diff"].as_str().unwrap_or_default();
    assert!(diff.contains("must both be positive"), "{diff}");
}

#[test]
fn python_slow_solution_times_out_on_the_huge_test_only() {
    let Some(state) = images() else { return };
    let sub = "examples/split/solutions/tle.py";
    let (r, _) = grade_json(Some(&state), &[SPLIT, "--submission", sub]);
    assert_eq!(verdicts(&r), ["AC", "AC", "AC", "AC", "AC", "TLE"], "{r:#}");
}
