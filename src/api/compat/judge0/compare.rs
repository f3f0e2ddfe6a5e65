//! `expected_output` against `stdout`, as Judge0 compares them: both split into lines at
//! `\n`, trailing whitespace stripped from every line, joined again, trailing whitespace of
//! the whole stripped (Ruby's `split("\n").collect(&:rstrip).join("\n").rstrip`; Ruby's
//! `split` drops trailing empty lines, `rstrip` takes spaces, `\t\n\v\f\r` and NULs).
//! Leading whitespace counts. An empty stdout is Judge0's `nil`, which equals nothing, not
//! even an empty expected output.

fn is_ruby_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0)
}

fn rstrip(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !is_ruby_space(*b))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// The normalized text Judge0 compares.
pub fn normalize(text: &[u8]) -> Vec<u8> {
    let lines: Vec<&[u8]> = text.split(|b| *b == b'\n').map(rstrip).collect();
    rstrip(&lines.join(&b'\n')).to_vec()
}

/// Whether `stdout` passes for `expected`.
pub fn matches(expected: &[u8], stdout: &[u8]) -> bool {
    !stdout.is_empty() && normalize(expected) == normalize(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_whitespace_is_ignored_leading_is_not() {
        assert!(matches(b"hello\n", b"hello"));
        assert!(matches(b"a \nb\t\n\n\n", b"a\nb"));
        assert!(matches(b"1 2\r\n3\r\n", b"1 2\n3\n"));
        assert!(!matches(b" a", b"a"));
        assert!(!matches(b"a\n\nb", b"a\nb"));
        assert!(!matches(b"a", b"b"));
        assert!(!matches(b"", b""));
        assert!(matches(b"x", b"x\0"));
    }
}
