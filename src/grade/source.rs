//! Where a suite's files come from: a directory (the CLI: paths relative to the suite file)
//! or a map of uploaded files (the daemon). Globs work the same over both.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// A file of the suite or submission, with the permission bits it should get in the cell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub content: Vec<u8>,
    pub mode: u32,
}

/// Read access to the files a suite refers to.
pub trait FileSource: Sync {
    fn read(&self, path: &str) -> io::Result<SourceFile>;
    /// Files matching a glob (`*`, `?`, `**`), sorted; a pattern without wildcards matches
    /// itself if it exists.
    fn glob(&self, pattern: &str) -> io::Result<Vec<String>>;
    /// Names of the regular files directly in `dir`, sorted.
    fn list_dir(&self, dir: &str) -> io::Result<Vec<String>>;
    /// A host path for `path`, if this source is a host directory (for `rootfs = "DIR"`).
    fn host_path(&self, path: &str) -> Option<PathBuf>;
}

/// Most files one glob may match, and the largest file read.
pub const MAX_GLOB_MATCHES: usize = 10_000;
pub const MAX_FILE_BYTES: u64 = 256 << 20;

/// Files relative to a host directory (absolute paths are taken as they are).
#[derive(Debug, Clone)]
pub struct DirSource {
    pub base: PathBuf,
}

impl DirSource {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        DirSource { base: base.into() }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        self.base.join(path)
    }
}

fn read_host_file(path: &Path) -> io::Result<SourceFile> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(io::Error::other(format!(
            "larger than {} MiB",
            MAX_FILE_BYTES >> 20
        )));
    }
    let exec = meta.permissions().mode() & 0o111 != 0;
    Ok(SourceFile {
        content: std::fs::read(path)?,
        mode: if exec { 0o755 } else { 0o644 },
    })
}

impl FileSource for DirSource {
    fn read(&self, path: &str) -> io::Result<SourceFile> {
        read_host_file(&self.resolve(path))
    }

    fn glob(&self, pattern: &str) -> io::Result<Vec<String>> {
        if !has_wildcards(pattern) {
            return Ok(if self.resolve(pattern).is_file() {
                vec![pattern.to_string()]
            } else {
                Vec::new()
            });
        }
        let matcher = glob_regex(pattern);
        let prefix = static_prefix(pattern);
        let mut found = Vec::new();
        walk(&self.resolve(&prefix), &prefix, &mut found)?;
        let mut matched: Vec<String> = found.into_iter().filter(|p| matcher.is_match(p)).collect();
        matched.sort();
        Ok(matched)
    }

    fn list_dir(&self, dir: &str) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(self.resolve(dir))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Ok(name) = entry.file_name().into_string() {
                    names.push(name);
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn host_path(&self, path: &str) -> Option<PathBuf> {
        Some(self.resolve(path))
    }
}

/// Collects regular files beneath `dir` as `prefix/relative` paths.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
    let entries = match std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{}/{name}", prefix.trim_end_matches('/'))
        };
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(&entry.path(), &rel, out)?;
        } else if kind.is_file() {
            out.push(rel);
        }
        if out.len() > MAX_GLOB_MATCHES {
            return Err(io::Error::other(format!(
                "more than {MAX_GLOB_MATCHES} files beneath the pattern's directory"
            )));
        }
    }
    Ok(())
}

/// Uploaded files by relative path (the daemon's `files`).
#[derive(Debug, Clone, Default)]
pub struct MemorySource {
    pub files: BTreeMap<String, SourceFile>,
}

impl MemorySource {
    pub fn new(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        MemorySource {
            files: files
                .into_iter()
                .map(|(name, content)| {
                    let name = name.trim_start_matches("./").to_string();
                    (
                        name,
                        SourceFile {
                            content,
                            mode: 0o644,
                        },
                    )
                })
                .collect(),
        }
    }
}

fn not_found(path: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{path}: no such file"))
}

impl FileSource for MemorySource {
    fn read(&self, path: &str) -> io::Result<SourceFile> {
        self.files
            .get(path.trim_start_matches("./"))
            .cloned()
            .ok_or_else(|| not_found(path))
    }

    fn glob(&self, pattern: &str) -> io::Result<Vec<String>> {
        let pattern = pattern.trim_start_matches("./");
        let matcher = glob_regex(pattern);
        Ok(self
            .files
            .keys()
            .filter(|k| matcher.is_match(k))
            .cloned()
            .collect())
    }

    fn list_dir(&self, dir: &str) -> io::Result<Vec<String>> {
        let dir = dir.trim_start_matches("./").trim_end_matches('/');
        let prefix = if dir.is_empty() || dir == "." {
            String::new()
        } else {
            format!("{dir}/")
        };
        let names: Vec<String> = self
            .files
            .keys()
            .filter_map(|k| k.strip_prefix(&prefix))
            .filter(|rest| !rest.contains('/'))
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            return Err(not_found(dir));
        }
        Ok(names)
    }

    fn host_path(&self, _path: &str) -> Option<PathBuf> {
        None
    }
}

pub fn has_wildcards(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

/// The directory part of a pattern before its first wildcard component.
fn static_prefix(pattern: &str) -> String {
    let parts: Vec<&str> = pattern.split('/').collect();
    let fixed: Vec<&str> = parts
        .iter()
        .take_while(|p| !has_wildcards(p))
        .copied()
        .collect();
    let n = fixed.len().min(parts.len().saturating_sub(1));
    parts[..n].join("/")
}

/// `*` matches within a path component, `**` across components, `?` one character.
fn glob_regex(pattern: &str) -> regex::Regex {
    let mut re = String::from(r"\A");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                    re.push_str("(?:.*/)?");
                } else {
                    re.push_str(".*");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push_str(r"\z");
    // Every metacharacter is escaped, so the pattern always compiles.
    regex::Regex::new(&re).unwrap_or_else(|_| regex::Regex::new(r"\A\z").expect("trivial regex"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_globs() {
        let src = MemorySource::new([
            ("main.cpp".to_string(), b"a".to_vec()),
            ("lib/util.h".to_string(), b"b".to_vec()),
            ("tests/1.in".to_string(), b"c".to_vec()),
            ("tests/1.out".to_string(), b"d".to_vec()),
        ]);
        assert_eq!(src.glob("*.cpp").unwrap(), vec!["main.cpp"]);
        assert_eq!(src.glob("**/*.h").unwrap(), vec!["lib/util.h"]);
        assert_eq!(src.list_dir("tests").unwrap(), vec!["1.in", "1.out"]);
        assert!(src.read("nope").is_err());
    }

    #[test]
    fn dir_globs() {
        let dir = std::env::temp_dir().join(format!("sandcell-grade-src-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sol")).unwrap();
        std::fs::write(dir.join("sol/a.cpp"), "x").unwrap();
        std::fs::write(dir.join("sol/b.cpp"), "y").unwrap();
        std::fs::write(dir.join("sol/c.txt"), "z").unwrap();
        let src = DirSource::new(&dir);
        assert_eq!(
            src.glob("sol/*.cpp").unwrap(),
            vec!["sol/a.cpp", "sol/b.cpp"]
        );
        assert_eq!(src.glob("sol/c.txt").unwrap(), vec!["sol/c.txt"]);
        assert!(src.glob("nope/*.cpp").unwrap().is_empty());
        assert_eq!(src.read("sol/a.cpp").unwrap().content, b"x");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
