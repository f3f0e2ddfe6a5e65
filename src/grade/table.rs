//! The human-readable report: one row per test, coloured on a terminal.

use std::fmt::Write;

use super::report::{GradeReport, TestVerdict};
use crate::spec::format_size;

const RESET: &str = "\x1b[0m";
const GREEN: &str = "\x1b[32m";
const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const MAGENTA: &str = "\x1b[35m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";

fn colour_of(verdict: &str) -> &'static str {
    match verdict {
        "AC" => GREEN,
        "TLE" | "MLE" | "OLE" => YELLOW,
        "XX" => MAGENTA,
        "SKIPPED" => DIM,
        _ => RED,
    }
}

/// The report as a table (with ANSI colours when `colour`).
pub fn to_table(report: &GradeReport, colour: bool) -> String {
    let paint = |c: &str, text: &str| {
        if colour {
            format!("{c}{text}{RESET}")
        } else {
            text.to_string()
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", paint(BOLD, &format!("suite {}", report.suite)));
    if let Some(c) = &report.compile {
        let _ = writeln!(
            out,
            "compile: {} in {} ms{}",
            paint(
                colour_of(if c.verdict == "OK" { "AC" } else { &c.verdict }),
                &c.verdict
            ),
            c.wall_time_ms,
            c.message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        );
        if c.verdict != "OK" && !c.output.is_empty() {
            for line in c.output.lines().take(30) {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    if let Some(m) = &report.message {
        let _ = writeln!(out, "{}", paint(MAGENTA, &format!("error: {m}")));
    }
    let width = report
        .tests
        .iter()
        .map(|t| t.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "{:>3}  {:<width$}  {:<7}  {:>8}  {:>10}  details",
        "#", "test", "verdict", "time", "memory"
    );
    for t in &report.tests {
        let verdict = t.verdict.as_str();
        let padded = format!("{verdict:<7}");
        let time = if t.verdict == TestVerdict::SKIPPED {
            "-".to_string()
        } else {
            format!("{} ms", t.time_ms)
        };
        let memory = t.memory_bytes.map_or("-".to_string(), format_size);
        let mut details = String::new();
        if let Some(r) = &t.reason {
            details.push_str(&format!("({r}) "));
        }
        if let Some(m) = &t.message {
            details.push_str(m);
        }
        let _ = writeln!(
            out,
            "{:>3}  {:<width$}  {}  {:>8}  {:>10}  {}",
            t.index + 1,
            t.name,
            paint(colour_of(verdict), &padded),
            time,
            memory,
            details.trim()
        );
        if let Some(diff) = &t.diff {
            for line in diff.lines() {
                let _ = writeln!(out, "       {}", paint(DIM, line));
            }
        }
        if t.verdict.is_failure() && !t.stderr_tail.is_empty() {
            for line in t
                .stderr_tail
                .lines()
                .rev()
                .take(3)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
            {
                let _ = writeln!(out, "       {}", paint(DIM, &format!("stderr: {line}")));
            }
        }
    }
    for w in &report.warnings {
        let _ = writeln!(out, "{}", paint(YELLOW, &format!("warning: {w}")));
    }
    let _ = writeln!(
        out,
        "{} {}/{} passed, score {}/{}, max time {} ms, max memory {}, {} ms total",
        paint(colour_of(&report.verdict), &paint(BOLD, &report.verdict)),
        report.passed,
        report.total,
        trim_float(report.score),
        trim_float(report.max_score),
        report.max_time_ms,
        report.max_memory_bytes.map_or("-".to_string(), format_size),
        report.elapsed_ms
    );
    out
}

fn trim_float(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}
