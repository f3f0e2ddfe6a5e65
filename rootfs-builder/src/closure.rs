//! The shared-library closure of an ELF file, as the host's dynamic loader resolves it
//! (`ldd`), plus a cheap check for which files are worth asking about.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::command;
use crate::error::{BuildError, Result};

/// True for ELF executables and shared objects (not relocatable `.o` files or archives).
pub fn is_dynamic_candidate(path: &Path) -> bool {
    let mut head = [0u8; 18];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    if f.read_exact(&mut head).is_err() || &head[..4] != b"\x7fELF" {
        return false;
    }
    // e_type: little-endian on every target we build for (ELFDATA2LSB checked below).
    let e_type = u16::from_le_bytes([head[16], head[17]]);
    head[5] == 1 && (e_type == 2 || e_type == 3)
}

/// Host paths of every shared library (and the loader) `path` needs, transitively.
/// Static binaries have none. A library the loader cannot find is an error.
pub fn shared_libraries(path: &Path) -> Result<Vec<PathBuf>> {
    let argv = vec!["ldd".to_owned(), path.to_string_lossy().into_owned()];
    let (ok, stdout, stderr) = command::run(&argv)?;
    if !ok {
        if stdout.contains("not a dynamic executable")
            || stderr.contains("not a dynamic executable")
            || stdout.contains("statically linked")
        {
            return Ok(Vec::new());
        }
        return Err(BuildError::Command {
            command: argv.join(" "),
            message: stderr.trim().to_owned(),
        });
    }
    parse_ldd(&stdout).map_err(|missing| BuildError::Command {
        command: argv.join(" "),
        message: format!("library {missing} not found on this host"),
    })
}

/// Parses ldd output; `Err(name)` for the first library marked "not found".
pub fn parse_ldd(text: &str) -> std::result::Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let resolved = match line.split_once("=>") {
            Some((name, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    return Err(name.trim().to_owned());
                }
                rest
            }
            None => line,
        };
        let path = resolved.split(" (").next().unwrap_or("").trim();
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resolved_loader_and_vdso_lines() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f35)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f35)\n";
        assert_eq!(
            parse_ldd(text).unwrap(),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libm.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
        assert_eq!(
            parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err(),
            "libfoo.so.1"
        );
    }

    #[test]
    fn the_host_shell_has_a_closure_with_libc() {
        let sh = Path::new("/bin/sh");
        if !is_dynamic_candidate(sh) {
            return; // a static /bin/sh has no closure to check
        }
        let libs = shared_libraries(sh).unwrap();
        assert!(libs.iter().any(|l| l.to_string_lossy().contains("libc.so")));
    }
}
