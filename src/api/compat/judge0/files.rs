//! Judge0's `additional_files`: a zip archive whose files go into the work dir beside the
//! source. The archive is hostile input: only regular files and directories are taken (no
//! symlinks), every path must be relative without `..` (checked again by the run's own
//! path checks), and the number of entries, each file's size and the total are capped while
//! reading, so a zip bomb stops at the cap instead of filling memory.

use std::io::Read;

use crate::spec::bounds;

/// Why an archive was refused (answered as a 422 on `additional_files`).
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("is not a zip archive: {0}")]
    Format(String),
    #[error("has more than {0} entries")]
    TooManyEntries(usize),
    #[error("holds more than {0} bytes when unpacked")]
    TooLarge(u64),
    #[error("entry {0:?} is not a regular file or directory")]
    NotAFile(String),
    #[error("entry {0:?} has an unsafe path")]
    UnsafePath(String),
    #[error("entry {name:?} cannot be read: {message}")]
    Read { name: String, message: String },
}

/// One unpacked file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    pub path: String,
    pub content: Vec<u8>,
    pub executable: bool,
}

/// Unpacks `zip`, at most `max_entries` entries and `max_total` bytes together.
pub fn unpack(zip: &[u8], max_entries: usize, max_total: u64) -> Result<Vec<Unpacked>, ZipError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip))
        .map_err(|e| ZipError::Format(e.to_string()))?;
    if archive.len() > max_entries.min(bounds::MAX_FILES) {
        return Err(ZipError::TooManyEntries(max_entries.min(bounds::MAX_FILES)));
    }
    let mut out = Vec::new();
    let mut total: u64 = 0;
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| ZipError::Format(e.to_string()))?;
        let name = entry.name().to_owned();
        if entry.is_dir() {
            continue;
        }
        if entry.is_symlink() || !entry.is_file() {
            return Err(ZipError::NotAFile(name));
        }
        if name.starts_with('/') || name.split(['/', '\\']).any(|c| c == "..") {
            return Err(ZipError::UnsafePath(name));
        }
        let path = entry
            .enclosed_name()
            .and_then(|p| p.to_str().map(str::to_owned))
            .filter(|p| {
                !p.is_empty() && crate::spec::check_relative_path("additional_files", p).is_ok()
            })
            .ok_or_else(|| ZipError::UnsafePath(name.clone()))?;
        let executable = entry.unix_mode().is_some_and(|m| m & 0o111 != 0);
        let room = max_total - total;
        let mut content = Vec::new();
        (&mut entry)
            .take(room + 1)
            .read_to_end(&mut content)
            .map_err(|e| ZipError::Read {
                name: name.clone(),
                message: e.to_string(),
            })?;
        if content.len() as u64 > room {
            return Err(ZipError::TooLarge(max_total));
        }
        total += content.len() as u64;
        out.push(Unpacked {
            path,
            content,
            executable,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn files_are_unpacked_with_their_paths() {
        let z = zip_of(&[("data/in.txt", b"42\n"), ("lib.h", b"int f();")]);
        let files = unpack(&z, 10, 1000).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].path, "data/in.txt");
        assert_eq!(files[0].content, b"42\n");
    }

    #[test]
    fn hostile_archives_are_refused() {
        assert!(matches!(
            unpack(b"not a zip", 10, 1000),
            Err(ZipError::Format(_))
        ));
        let z = zip_of(&[("../evil", b"x")]);
        assert!(matches!(unpack(&z, 10, 1000), Err(ZipError::UnsafePath(_))));
        let z = zip_of(&[("/etc/passwd", b"x")]);
        assert!(unpack(&z, 10, 1000).is_err());
        let z = zip_of(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
        assert!(matches!(
            unpack(&z, 2, 1000),
            Err(ZipError::TooManyEntries(2))
        ));
        let z = zip_of(&[("big", &[0u8; 2000])]);
        assert!(matches!(
            unpack(&z, 10, 1000),
            Err(ZipError::TooLarge(1000))
        ));
    }
}
