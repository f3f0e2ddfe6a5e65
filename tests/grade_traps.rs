//! The traps a new suite author fell into (issue 17), each now a clear outcome: checker
//! commands written as shell strings or with named files, limits without units, wall-clock
//! TLEs on a busy machine, JSON on usage errors, a missing image's store, and a checker in
//! an image that cannot run it. Real cells in the busybox rootfs, and (for the checker's
//! image) the real cpp and python images.

mod common;
mod grade_support;

use std::path::Path;

use grade_support::{grade, grade_json, images, test};

/// Writes `suite` (with `rootfs = <busybox>` prepended) and `files` into a temp dir.
fn suite_dir(rootfs: &Path, suite: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("rootfs = {:?}\n{suite}", rootfs.display().to_string());
    std::fs::write(dir.path().join("suite.toml"), text).unwrap();
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

fn path(dir: &tempfile::TempDir) -> String {
    dir.path().join("suite.toml").display().to_string()
}

const ADD: (&str, &str) = ("sol.sh", "read a b; echo $((a + b))\n");

/// One test whose answer is 3, judged by `checker_run`.
fn checker_suite(checker_run: &str) -> String {
    format!(
        "submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\ncomparator = \"checker\"\n\
         [checker]\nfiles = [\"noop.txt\"]\nrun = '{checker_run}'\n\
         [[tests]]\nstdin = \"1 2\\n\"\nexpected_stdout = \"3\\n\"\n"
    )
}

#[test]
fn a_shell_string_checker_gets_the_files_as_1_2_3() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    // input.txt holds "1 2", output.txt the program's "3", answer.txt the expected "3":
    // the check passes only if "$2" is the output and "$3" the answer.
    let dir = suite_dir(
        &rootfs,
        &checker_suite(r#"grep -q "1 2" "$1" && cmp -s "$2" "$3" && echo same"#),
        &[ADD, ("noop.txt", "")],
    );
    let (r, out) = grade_json(None, &[&path(&dir)]);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(test(&r, "01")["message"], "same", "{r:#}");
}

#[test]
fn named_placeholders_put_the_files_where_the_command_says() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let dir = suite_dir(
        &rootfs,
        &checker_suite("cmp {answer} {output}"),
        &[ADD, ("noop.txt", "")],
    );
    let (r, out) = grade_json(None, &[&path(&dir)]);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["verdict"], "AC");
}

#[test]
fn limits_without_units_are_refused_at_their_line() {
    for (table, key, value, hint) in [
        ("[limits]", "time", "1000", "write \"1000ms\" or \"1000s\""),
        ("[limits]", "memory", "256", "write \"256M\""),
        (
            "[[tests]]\nstdin = \"\"\nexpected_stdout = \"\"\n[tests.limits]",
            "wall_time",
            "2",
            "write \"2ms\" or \"2s\"",
        ),
    ] {
        let suite =
            format!("submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\n{table}\n{key} = {value}\n");
        // Suite errors come before any cell: no rootfs needed.
        let dir = suite_dir(Path::new("/"), &suite, &[ADD]);
        let out = grade(None, &[&path(&dir)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(hint), "{key}: {stderr}");
        let line = 4 + table.lines().count();
        assert!(
            stderr.contains(&format!("suite.toml:{line}: ")),
            "{key}: {stderr}"
        );
    }
}

#[test]
fn a_wall_clock_tle_says_so_and_warns() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    let dir = suite_dir(
        &rootfs,
        "submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\n[limits]\ntime = \"2s\"\nwall_time = \"300ms\"\n\
         [[tests]]\nname = \"sleepy\"\nstdin = \"\"\nexpected_stdout = \"\"\n",
        &[("sol.sh", "sleep 5\n")],
    );
    let (r, out) = grade_json(None, &[&path(&dir)]);
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    let t = test(&r, "sleepy");
    assert_eq!(
        (&t["verdict"], &t["reason"]),
        (&"TLE".into(), &"wall".into())
    );
    let warnings = r["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{r:#}");
    assert!(
        warnings[0].as_str().unwrap().contains("wall-clock"),
        "{r:#}"
    );
    // The table says it too.
    let table = grade(None, &[&path(&dir), "--no-progress"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("warning: test 1 (sleepy): TLE from the wall-clock limit"),
        "{text}"
    );
}

#[test]
fn json_format_prints_a_json_error_on_usage_errors() {
    let dir = suite_dir(
        Path::new("/"),
        "submission = [\"sol.sh\"]\nrun = \"sh sol.sh\"\n[limits]\ntime = 5\n",
        &[ADD],
    );
    let out = grade(None, &["--format", "json", &path(&dir)]);
    assert_eq!(out.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(json["schema"], "sandcell.grade/v1");
    assert_eq!(json["error"]["kind"], "usage");
    assert_eq!(json["error"]["exit_code"], 2);
    assert_eq!(json["error"]["line"], 5, "{json:#}");
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("has no unit"));
    // A missing suite file too.
    let out = grade(None, &["--format", "json", "/nonexistent/suite.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["error"]["field"], "suite");
}

#[test]
fn a_missing_image_names_the_store_it_looked_in() {
    let state = tempfile::tempdir().unwrap();
    let dir = suite_dir(Path::new("/"), "language = \"cobol\"\n", &[]);
    // The prepended rootfs line would win over the language: write the suite plain.
    std::fs::write(
        dir.path().join("suite.toml"),
        "language = \"cobol\"\nsubmission = [\"sol.sh\"]\n[[tests]]\nstdin = \"\"\nexpected_stdout = \"\"\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("sol.sh"), "").unwrap();
    let out = grade(Some(state.path()), &[&path(&dir)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cobol"), "{stderr}");
    assert!(
        stderr.contains(&format!("image store: {}", state.path().display())),
        "{stderr}"
    );
}

#[test]
fn a_python_checker_for_cpp_runs_in_the_python_image() {
    let Some(state) = images() else { return };
    let suite = "examples/split-cpp/suite.toml";
    let (r, out) = grade_json(Some(&state), &[suite]);
    assert_eq!(out.status.code(), Some(0), "{r:#}");
    assert_eq!(r["verdict"], "AC");
    assert_eq!(r["cells"]["checker"], 6, "{r:#}");
    let (r, out) = grade_json(
        Some(&state),
        &[
            suite,
            "--submission",
            "examples/split-cpp/solutions/wrong.cpp",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["verdict"], "WA");
    // The checker's message is the test's diff.
    assert!(test(&r, "01")["diff"]
        .as_str()
        .unwrap_or_default()
        .contains("must both be positive"));

    // Told to run in the cpp image, the checker is refused before any cell starts.
    let dir = tempfile::tempdir().unwrap();
    let repo = grade_support::repo();
    std::fs::write(
        dir.path().join("suite.toml"),
        format!(
            "language = \"cpp\"\nsubmission = [{sol:?}]\ncomparator = \"checker\"\ntest_dir = {tests:?}\n\
             [checker]\nfiles = [{checker:?}]\nlanguage = \"cpp\"\nrun = \"python3 checker.py\"\n",
            sol = repo.join("examples/split-cpp/solutions/correct.cpp").display().to_string(),
            tests = repo.join("examples/split/tests").display().to_string(),
            checker = repo.join("examples/split/checker.py").display().to_string(),
        ),
    )
    .unwrap();
    let out = grade(Some(&state), &[&path(&dir)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("suite.toml:8: checker.run"), "{stderr}");
    assert!(
        stderr.contains("\"python3\" is not in the checker's image (language cpp)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[checker] language = \"python\""),
        "{stderr}"
    );
}

/// Bytes used on the filesystem holding `path`.
fn used_bytes(path: &Path) -> u64 {
    let s = nix::sys::statvfs::statvfs(path).unwrap();
    (s.blocks() - s.blocks_free()) * s.fragment_size()
}

#[test]
fn a_compile_writing_2_gib_is_stopped_by_its_disk_cap_and_leaves_nothing() {
    let Some(rootfs) = common::setup() else {
        return;
    };
    // 32 files of 64 MiB: 2 GiB against the compile step's 256 MiB work dir.
    let suite = "submission = [\"sol.sh\"]\n\
         compile = \"sh -c 'for i in $(seq 32); do head -c 67108864 /dev/zero > f$i || exit 7; done'\"\n\
         run = \"sh sol.sh\"\n\
         [[tests]]\nstdin = \"1 2\"\nexpected_stdout = \"3\"\n";
    let dir = suite_dir(&rootfs, suite, &[ADD]);
    // The grader's own temp dir: nothing may appear there (the build used to live there).
    let tmp = tempfile::tempdir().unwrap();
    let before = used_bytes(tmp.path());
    let mut cmd = common::sandcell();
    cmd.args(["grade", "--format", "json", &path(&dir)])
        .env("TMPDIR", tmp.path());
    let out = cmd.output().unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no report ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["compile"]["verdict"], "CE", "{r:#}");
    assert_eq!(r["compile"]["exit_code"], 7, "{r:#}");
    let output = r["compile"]["output"].as_str().unwrap_or_default();
    assert!(output.contains("No space left"), "{output}");
    assert_eq!(grade_support::verdicts(&r), vec!["SKIPPED"]);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind in TMPDIR: {left:?}");
    // Not on the temp dir's disk either (other tests may write a little meanwhile).
    let grown = used_bytes(tmp.path()).saturating_sub(before);
    assert!(grown < 128 << 20, "the disk grew by {grown} bytes");
}
