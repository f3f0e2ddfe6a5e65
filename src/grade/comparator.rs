//! How a test's output is judged against the expected output, and the short diff shown when
//! it is wrong.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The comparator names a suite may use; `float` takes a tolerance (`float:1e-6`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Comparator {
    /// Byte-for-byte equality.
    Exact,
    /// Equal after removing trailing whitespace on every line and trailing blank lines.
    #[default]
    Trim,
    /// Equal as sequences of whitespace-separated tokens.
    Tokens,
    /// Tokens; numeric tokens may differ by the absolute or relative tolerance.
    Float(f64),
    /// The expected text is a regular expression the whole output (trailing whitespace
    /// trimmed) must match.
    Regex,
    /// The suite's checker program decides.
    Checker,
}

pub const DEFAULT_FLOAT_TOLERANCE: f64 = 1e-6;

impl TryFrom<String> for Comparator {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        text.parse()
    }
}

impl std::str::FromStr for Comparator {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (text, None),
        };
        let comparator = match (name, arg) {
            ("exact", None) => Comparator::Exact,
            ("trim", None) => Comparator::Trim,
            ("tokens", None) => Comparator::Tokens,
            ("regex", None) => Comparator::Regex,
            ("checker", None) => Comparator::Checker,
            ("float", None) => Comparator::Float(DEFAULT_FLOAT_TOLERANCE),
            ("float", Some(eps)) => match eps.parse::<f64>() {
                Ok(e) if e.is_finite() && e >= 0.0 => Comparator::Float(e),
                _ => return Err(format!("float tolerance {eps:?} is not a number >= 0")),
            },
            _ => {
                return Err(format!(
                    "unknown comparator {text:?} (expected exact, trim, tokens, float:EPS, regex or checker)"
                ))
            }
        };
        Ok(comparator)
    }
}

impl fmt::Display for Comparator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Comparator::Exact => f.write_str("exact"),
            Comparator::Trim => f.write_str("trim"),
            Comparator::Tokens => f.write_str("tokens"),
            Comparator::Float(eps) => write!(f, "float:{eps:e}"),
            Comparator::Regex => f.write_str("regex"),
            Comparator::Checker => f.write_str("checker"),
        }
    }
}

impl From<Comparator> for String {
    fn from(c: Comparator) -> String {
        c.to_string()
    }
}

/// The result of a comparison: accepted, or a short human-readable diff.
pub type Comparison = Result<(), String>;

/// Compares `actual` with `expected` (for [`Comparator::Regex`] use [`compare_regex`]; the
/// checker is run elsewhere).
pub fn compare(comparator: Comparator, expected: &[u8], actual: &[u8]) -> Comparison {
    let expected = String::from_utf8_lossy(expected);
    let actual = String::from_utf8_lossy(actual);
    match comparator {
        Comparator::Exact => compare_lines(&expected, &actual, false),
        Comparator::Trim | Comparator::Regex | Comparator::Checker => {
            compare_lines(&expected, &actual, true)
        }
        Comparator::Tokens => compare_tokens(&expected, &actual, None),
        Comparator::Float(eps) => compare_tokens(&expected, &actual, Some(eps)),
    }
}

/// Compiles a regex comparator's pattern so it must match the whole output.
pub fn build_regex(pattern: &str) -> Result<regex::Regex, String> {
    let pattern = pattern.trim_end_matches(['\n', '\r']);
    regex::Regex::new(&format!(r"\A(?:{pattern})\z")).map_err(|e| e.to_string())
}

pub fn compare_regex(re: &regex::Regex, actual: &[u8]) -> Comparison {
    let actual = String::from_utf8_lossy(actual);
    let trimmed = actual.trim_end();
    if re.is_match(trimmed) {
        return Ok(());
    }
    Err(format!(
        "output does not match /{}/\n  got: {}",
        shorten(
            re.as_str()
                .trim_start_matches(r"\A(?:")
                .trim_end_matches(r")\z")
        ),
        shorten(&first_lines(trimmed, 3))
    ))
}

const SHOWN_CHARS: usize = 120;

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(SHOWN_CHARS).collect();
    if s.chars().count() > SHOWN_CHARS {
        out.push('…');
    }
    out
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join("⏎")
}

fn show_line(line: Option<&str>, raw: bool) -> String {
    match line {
        None => "(end of output)".into(),
        Some(l) if raw => format!("{:?}", shorten(l)),
        Some(l) => shorten(l),
    }
}

fn compare_lines(expected: &str, actual: &str, trim: bool) -> Comparison {
    let prepare = |text: &str| -> Vec<String> {
        if !trim {
            return text.split_inclusive('\n').map(str::to_owned).collect();
        }
        let mut lines: Vec<String> = text.lines().map(|l| l.trim_end().to_owned()).collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    };
    let (exp, act) = (prepare(expected), prepare(actual));
    if exp == act {
        return Ok(());
    }
    let index = exp
        .iter()
        .zip(&act)
        .position(|(e, a)| e != a)
        .unwrap_or(exp.len().min(act.len()));
    let raw = !trim;
    Err(format!(
        "line {}: expected {}\n{}   got {}\n(expected {} lines, got {})",
        index + 1,
        show_line(exp.get(index).map(String::as_str), raw),
        " ".repeat(digits(index + 1) + 3),
        show_line(act.get(index).map(String::as_str), raw),
        exp.len(),
        act.len()
    ))
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}

/// Tokens with the line they are on (1-based).
fn tokens(text: &str) -> Vec<(usize, &str)> {
    text.lines()
        .enumerate()
        .flat_map(|(i, line)| line.split_whitespace().map(move |t| (i + 1, t)))
        .collect()
}

fn numbers_close(expected: &str, actual: &str, eps: f64) -> Option<bool> {
    let e: f64 = expected.parse().ok()?;
    let a: f64 = actual.parse().ok()?;
    if e.is_nan() || a.is_nan() {
        return Some(e.is_nan() && a.is_nan());
    }
    if e.is_infinite() || a.is_infinite() {
        return Some(e == a);
    }
    let diff = (e - a).abs();
    Some(diff <= eps || diff <= eps * e.abs())
}

fn compare_tokens(expected: &str, actual: &str, eps: Option<f64>) -> Comparison {
    let (exp, act) = (tokens(expected), tokens(actual));
    for (i, (e, a)) in exp.iter().zip(&act).enumerate() {
        let same = match eps {
            Some(eps) => numbers_close(e.1, a.1, eps).unwrap_or(e.1 == a.1),
            None => e.1 == a.1,
        };
        if !same {
            let tolerance = match eps {
                Some(eps) if e.1.parse::<f64>().is_ok() && a.1.parse::<f64>().is_ok() => {
                    format!(" (tolerance {eps:e})")
                }
                _ => String::new(),
            };
            return Err(format!(
                "token {} (line {}): expected {}, got {}{tolerance}",
                i + 1,
                a.0,
                shorten(e.1),
                shorten(a.1)
            ));
        }
    }
    if exp.len() != act.len() {
        let which = if act.len() < exp.len() {
            format!(
                "output ended after {} tokens; next expected {}",
                act.len(),
                shorten(exp[act.len()].1)
            )
        } else {
            format!(
                "extra output after {} tokens: {}",
                exp.len(),
                shorten(act[exp.len()].1)
            )
        };
        return Err(which);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(c: &str, e: &str, a: &str) -> bool {
        compare(c.parse().unwrap(), e.as_bytes(), a.as_bytes()).is_ok()
    }

    #[test]
    fn parse_names() {
        assert_eq!(
            "float:1e-3".parse::<Comparator>(),
            Ok(Comparator::Float(1e-3))
        );
        assert_eq!("float".parse::<Comparator>(), Ok(Comparator::Float(1e-6)));
        let err = "fuzzy".parse::<Comparator>().unwrap_err();
        assert!(err.contains("unknown comparator \"fuzzy\""), "{err}");
        assert!("float:x".parse::<Comparator>().is_err());
        assert!("exact:1".parse::<Comparator>().is_err());
    }

    #[test]
    fn exact_trim_tokens() {
        assert!(ok("exact", "3\n", "3\n"));
        assert!(!ok("exact", "3\n", "3 \n"));
        assert!(ok("trim", "3\n", "3  \n\n"));
        assert!(!ok("trim", "1 2\n", "1  2\n"));
        assert!(ok("tokens", "1 2\n3", "1\n2 3\n"));
        assert!(!ok("tokens", "1 2 3", "1 2"));
    }

    #[test]
    fn floats_within_tolerance() {
        assert!(ok("float:1e-6", "0.3333333", "0.33333335"));
        assert!(!ok("float:1e-6", "0.3333333", "0.3334"));
        assert!(ok("float:1e-6", "1e12 x", "1.0000000001e12 x"));
        assert!(!ok("float:1e-6", "1 x", "1 y"));
    }

    #[test]
    fn diffs_are_short_and_point_at_the_difference() {
        let d = compare(Comparator::Trim, b"1\n2\n3\n", b"1\n2\n4\n").unwrap_err();
        assert!(d.starts_with("line 3: expected 3"), "{d}");
        assert!(d.contains("got 4"), "{d}");
        let d = compare(Comparator::Tokens, b"1 2", b"1").unwrap_err();
        assert!(d.contains("ended after 1 tokens"), "{d}");
        let long = "x".repeat(10_000);
        let d = compare(Comparator::Trim, long.as_bytes(), b"y").unwrap_err();
        assert!(d.len() < 400, "{}", d.len());
    }

    #[test]
    fn regex_matches_whole_output() {
        let re = build_regex("hello, .+\n").unwrap();
        assert!(compare_regex(&re, b"hello, world\n").is_ok());
        assert!(compare_regex(&re, b"oh hello, world\n").is_err());
        assert!(build_regex("(").is_err());
    }
}
