//! JUnit XML: one `<testcase>` per test, failures with the diff and the stderr tail, so CI
//! systems (GitLab, Jenkins, GitHub test reporters) render the grading.

use std::fmt::Write;

use super::report::{GradeReport, TestVerdict};

/// The report as a JUnit XML document.
pub fn to_junit(report: &GradeReport) -> String {
    let suite = xml_escape(&report.suite);
    let failures = report
        .tests
        .iter()
        .filter(|t| t.verdict.is_failure() && t.verdict != TestVerdict::XX)
        .count()
        + usize::from(report.compile.as_ref().is_some_and(|c| c.verdict == "CE"));
    let errors = report
        .tests
        .iter()
        .filter(|t| t.verdict == TestVerdict::XX)
        .count()
        + usize::from(report.message.is_some());
    let skipped = report
        .tests
        .iter()
        .filter(|t| t.verdict == TestVerdict::SKIPPED)
        .count();
    let compile_case =
        report.compile.as_ref().is_some_and(|c| c.verdict != "OK") || report.message.is_some();
    let tests = report.tests.len() + usize::from(compile_case);
    let time = secs(report.elapsed_ms);

    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"sandcell grade\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time}\">"
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{time}\">"
    );
    let _ = writeln!(x, "    <properties>");
    for (name, value) in [
        ("verdict", report.verdict.clone()),
        ("score", format!("{}", report.score)),
        ("max_score", format!("{}", report.max_score)),
        ("max_time_ms", report.max_time_ms.to_string()),
    ] {
        let _ = writeln!(
            x,
            "      <property name=\"{name}\" value=\"{}\"/>",
            xml_escape(&value)
        );
    }
    let _ = writeln!(x, "    </properties>");

    if compile_case {
        let (kind, message, body) = match (&report.compile, &report.message) {
            (_, Some(m)) => ("error", "XX".to_string(), m.clone()),
            (Some(c), None) => (
                if c.verdict == "XX" {
                    "error"
                } else {
                    "failure"
                },
                format!(
                    "{}: {}",
                    c.verdict,
                    c.message.as_deref().unwrap_or("compilation failed")
                ),
                c.output.clone(),
            ),
            (None, None) => ("error", "XX".to_string(), String::new()),
        };
        let ms = report.compile.as_ref().map_or(0, |c| c.wall_time_ms);
        let _ = writeln!(
            x,
            "    <testcase name=\"compile\" classname=\"{suite}\" time=\"{}\">",
            secs(ms)
        );
        let _ = writeln!(
            x,
            "      <{kind} message=\"{}\" type=\"{}\">{}</{kind}>",
            xml_escape(&message),
            xml_escape(message.split(':').next().unwrap_or("")),
            xml_escape(&body)
        );
        let _ = writeln!(x, "    </testcase>");
    }

    for t in &report.tests {
        let _ = writeln!(
            x,
            "    <testcase name=\"{}\" classname=\"{suite}\" time=\"{}\">",
            xml_escape(&t.name),
            secs(t.wall_time_ms)
        );
        let summary = match (&t.message, &t.reason) {
            (Some(m), _) => format!("{}: {m}", t.verdict),
            (None, Some(r)) => format!("{} ({r})", t.verdict),
            (None, None) => t.verdict.to_string(),
        };
        match t.verdict {
            TestVerdict::AC => {}
            TestVerdict::SKIPPED => {
                let _ = writeln!(
                    x,
                    "      <skipped message=\"{}\"/>",
                    xml_escape(t.message.as_deref().unwrap_or("not run"))
                );
            }
            v => {
                let kind = if v == TestVerdict::XX {
                    "error"
                } else {
                    "failure"
                };
                let mut body = String::new();
                if let Some(diff) = &t.diff {
                    body.push_str(diff);
                    body.push('\n');
                }
                let _ = writeln!(
                    body,
                    "time {} ms (wall {} ms), memory {}",
                    t.time_ms,
                    t.wall_time_ms,
                    t.memory_bytes
                        .map_or("-".to_string(), crate::spec::format_size)
                );
                if !t.stderr_tail.is_empty() {
                    body.push_str("--- stderr (tail) ---\n");
                    body.push_str(&t.stderr_tail);
                    body.push('\n');
                }
                let _ = writeln!(
                    x,
                    "      <{kind} message=\"{}\" type=\"{v}\">{}</{kind}>",
                    xml_escape(&summary),
                    xml_escape(&body)
                );
            }
        }
        if !t.stderr_tail.is_empty() {
            let _ = writeln!(
                x,
                "      <system-err>{}</system-err>",
                xml_escape(&t.stderr_tail)
            );
        }
        let _ = writeln!(x, "    </testcase>");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

fn secs(ms: u64) -> String {
    format!("{:.3}", ms as f64 / 1000.0)
}

/// Escapes markup and drops characters XML 1.0 cannot carry (most control characters).
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(
            xml_escape("a<b>&\"c'\u{1}"),
            "a&lt;b&gt;&amp;&quot;c&apos;\u{FFFD}"
        );
    }
}
