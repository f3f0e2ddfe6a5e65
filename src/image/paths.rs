//! Turning an archive entry's path into safe components beneath the target root.

use super::{ImageError, LimitExceeded, UnpackLimits};

/// A sanitized relative path: no empty, `.` or `..` components, no leading `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryPath {
    /// Components joined with `/` (empty for the root itself).
    pub joined: Vec<u8>,
    /// Byte offset in `joined` where the last component starts.
    name_start: usize,
}

impl EntryPath {
    /// The directory holding the entry, relative to the root (empty for the root).
    pub fn parent(&self) -> &[u8] {
        if self.name_start == 0 {
            b""
        } else {
            &self.joined[..self.name_start - 1]
        }
    }

    /// The last component (empty for the root).
    pub fn name(&self) -> &[u8] {
        &self.joined[self.name_start..]
    }

    pub fn is_root(&self) -> bool {
        self.joined.is_empty()
    }

    pub fn display(&self) -> String {
        String::from_utf8_lossy(&self.joined).into_owned()
    }
}

/// Sanitizes `raw`: leading `/` are stripped (absolute paths land beneath the root, as GNU
/// tar does), `.` and empty components dropped, and `..` anywhere is refused.
pub fn sanitize(raw: &[u8], limits: &UnpackLimits) -> Result<EntryPath, ImageError> {
    if raw.contains(&0) {
        return Err(ImageError::unsafe_path(raw, "NUL byte in path"));
    }
    if raw.len() > limits.max_path_len {
        return Err(LimitExceeded::PathLength {
            limit: limits.max_path_len,
            path: lossy_prefix(raw),
        }
        .into());
    }
    let mut joined = Vec::with_capacity(raw.len());
    let mut name_start = 0;
    let mut depth = 0;
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => continue,
            b".." => {
                return Err(ImageError::unsafe_path(
                    raw,
                    "`..` component escapes the root",
                ))
            }
            _ => {}
        }
        if comp.len() > limits.max_name_len {
            return Err(LimitExceeded::NameLength {
                limit: limits.max_name_len,
                path: lossy_prefix(raw),
            }
            .into());
        }
        depth += 1;
        if depth > limits.max_path_depth {
            return Err(LimitExceeded::PathDepth {
                limit: limits.max_path_depth,
                path: lossy_prefix(raw),
            }
            .into());
        }
        if !joined.is_empty() {
            joined.push(b'/');
        }
        name_start = joined.len();
        joined.extend_from_slice(comp);
    }
    Ok(EntryPath { joined, name_start })
}

fn lossy_prefix(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(&raw[..raw.len().min(120)]).into_owned();
    if raw.len() > 120 {
        format!("{s}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(p: &str) -> (String, String, String) {
        let e = sanitize(p.as_bytes(), &UnpackLimits::default()).unwrap();
        (
            e.display(),
            String::from_utf8(e.parent().to_vec()).unwrap(),
            String::from_utf8(e.name().to_vec()).unwrap(),
        )
    }

    #[test]
    fn normalizes() {
        assert_eq!(ok("./a/b/c"), ("a/b/c".into(), "a/b".into(), "c".into()));
        assert_eq!(
            ok("/etc//passwd"),
            ("etc/passwd".into(), "etc".into(), "passwd".into())
        );
        assert_eq!(ok("dir/"), ("dir".into(), "".into(), "dir".into()));
        assert_eq!(ok("./"), ("".into(), "".into(), "".into()));
    }

    #[test]
    fn refuses_traversal_and_limits() {
        let l = UnpackLimits::default();
        assert!(sanitize(b"../x", &l).is_err());
        assert!(sanitize(b"a/../../x", &l).is_err());
        assert!(sanitize(b"a/..", &l).is_err());
        assert!(sanitize(b"a\0b", &l).is_err());
        assert!(sanitize(&[b'a'; 256], &l).is_err());
        assert!(sanitize("a/".repeat(129).as_bytes(), &l).is_err());
    }
}
