//! Image references: `name`, `name:tag` (default tag `latest`).

use super::ImageError;

pub const DEFAULT_TAG: &str = "latest";

/// Splits and validates `name[:tag]`. Names: lowercase letters, digits, `.`, `_`, `-`, `/`
/// (starting with a letter or digit, at most 128 bytes); tags: letters, digits, `.`, `_`, `-`
/// (not starting with `.` or `-`, at most 128 bytes).
pub fn parse_reference(reference: &str) -> Result<(String, String), ImageError> {
    let bad = |reason: &str| ImageError::InvalidName {
        name: reference.to_string(),
        reason: reason.to_string(),
    };
    let last_slash = reference.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match reference[last_slash..].rfind(':') {
        Some(i) => (
            &reference[..last_slash + i],
            &reference[last_slash + i + 1..],
        ),
        None => (reference, DEFAULT_TAG),
    };
    if name.is_empty() || name.len() > 128 {
        return Err(bad("the name must be 1 to 128 characters"));
    }
    let name_ok = name.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'/')
    }) && name.as_bytes()[0].is_ascii_alphanumeric()
        && !name.contains("//")
        && !name.ends_with('/')
        && !name.split('/').any(|c| c == "." || c == "..");
    if !name_ok {
        return Err(bad(
            "use lowercase letters, digits, '.', '_', '-' and '/', starting with a letter or digit",
        ));
    }
    if tag.is_empty() || tag.len() > 128 {
        return Err(bad("the tag must be 1 to 128 characters"));
    }
    if !tag
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        || tag.starts_with(['.', '-'])
    {
        return Err(bad("tags use letters, digits, '.', '_' and '-'"));
    }
    Ok((name.to_string(), tag.to_string()))
}

/// `name:tag` as stored in the index.
pub fn key(name: &str, tag: &str) -> String {
    format!("{name}:{tag}")
}

/// Splits an index key back into name and tag.
pub fn split_key(key: &str) -> (&str, &str) {
    let last_slash = key.rfind('/').map(|i| i + 1).unwrap_or(0);
    match key[last_slash..].rfind(':') {
        Some(i) => (&key[..last_slash + i], &key[last_slash + i + 1..]),
        None => (key, DEFAULT_TAG),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(
            parse_reference("busybox").unwrap(),
            ("busybox".into(), "latest".into())
        );
        assert_eq!(
            parse_reference("py:3.11").unwrap(),
            ("py".into(), "3.11".into())
        );
        assert_eq!(
            parse_reference("reg.io/a/b:v1").unwrap(),
            ("reg.io/a/b".into(), "v1".into())
        );
        for bad in [
            "", "Bad", "a b", "../x", "a/../b", "x:", ":t", "a:-t", "/a", "a//b",
        ] {
            assert!(parse_reference(bad).is_err(), "{bad}");
        }
        assert_eq!(split_key("a/b:c"), ("a/b", "c"));
    }
}
