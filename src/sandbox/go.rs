//! The run message a prepared cell waits for: the run's spec, sent as a memfd (header JSON
//! with the file contents taken out, then the contents as raw bytes) next to the program's
//! stdin descriptor. The cell's host ids (`identity.rs`) travel with it: they are chosen when
//! the run starts, not when the cell was prepared.

use std::io::{Read, Seek, Write};
use std::os::fd::OwnedFd;

use serde::{Deserialize, Serialize};

use super::identity::HostIds;
use crate::spec::{FileSpec, RunSpec, StdinSource};

#[derive(Serialize, Deserialize)]
struct Header {
    spec: RunSpec,
    /// Byte length of each file's content, in the order of `spec.files`.
    file_sizes: Vec<u64>,
    /// The program's own host uid/gid; `None`: it runs as `spec.uid` on the host.
    ids: Option<HostIds>,
}

fn invalid(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Writes the run's spec into a new memfd (stdin travels as its own descriptor).
pub(super) fn encode(spec: &RunSpec, ids: Option<HostIds>) -> std::io::Result<OwnedFd> {
    // Field by field, so neither stdin bytes nor file contents are copied.
    let header = Header {
        spec: RunSpec {
            rootfs: spec.rootfs.clone(),
            argv: spec.argv.clone(),
            env: spec.env.clone(),
            work_dir: spec.work_dir.clone(),
            cwd: spec.cwd.clone(),
            uid: spec.uid,
            gid: spec.gid,
            hostname: spec.hostname.clone(),
            stdin: StdinSource::Null,
            limits: spec.limits.clone(),
            files: spec
                .files
                .iter()
                .map(|f| FileSpec {
                    path: f.path.clone(),
                    content: Vec::new(),
                    mode: f.mode,
                })
                .collect(),
            binds: spec.binds.clone(),
            seccomp: spec.seccomp.clone(),
            allow_degraded: spec.allow_degraded,
            keep_output: spec.keep_output,
        },
        file_sizes: spec.files.iter().map(|f| f.content.len() as u64).collect(),
        ids,
    };
    let json = serde_json::to_vec(&header).map_err(invalid)?;
    let fd =
        nix::sys::memfd::memfd_create(c"sandcell-run", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
    let mut out = std::io::BufWriter::new(std::fs::File::from(fd));
    out.write_all(&(json.len() as u64).to_le_bytes())?;
    out.write_all(&json)?;
    for file in &spec.files {
        out.write_all(&file.content)?;
    }
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.rewind()?;
    Ok(OwnedFd::from(file))
}

/// Reads a run's spec and host ids back (in the cell's PID 1).
pub(super) fn decode(fd: OwnedFd) -> std::io::Result<(RunSpec, Option<HostIds>)> {
    let mut input = std::fs::File::from(fd);
    input.rewind()?;
    let mut len = [0u8; 8];
    input.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len);
    if len > 64 << 20 {
        return Err(invalid("run header too large"));
    }
    let mut json = vec![0u8; len as usize];
    input.read_exact(&mut json)?;
    let mut header: Header = serde_json::from_slice(&json).map_err(invalid)?;
    if header.file_sizes.len() != header.spec.files.len() {
        return Err(invalid("file sizes do not match the files"));
    }
    for (file, &size) in header.spec.files.iter_mut().zip(&header.file_sizes) {
        let mut content = Vec::new();
        (&mut input).take(size).read_to_end(&mut content)?;
        if content.len() as u64 != size {
            return Err(invalid("run message ends early"));
        }
        file.content = content;
    }
    Ok((header.spec, header.ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_messages_round_trip_with_binary_files() {
        let mut spec = RunSpec::new("/img", vec!["/bin/cat".into(), "a b".into()]);
        spec.env.push(("K".into(), "v".into()));
        spec.stdin = StdinSource::Bytes(b"not sent".to_vec());
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for (path, content) in [("main.py", b"print(1)\n".to_vec()), ("dir/blob", big)] {
            spec.files.push(FileSpec {
                path: path.into(),
                content,
                mode: Some(0o755),
            });
        }
        let ids = HostIds {
            uid: 2_000_000_001,
            gid: 2_000_000_001,
        };
        let (back, back_ids) = decode(encode(&spec, Some(ids)).unwrap()).unwrap();
        let mut expected = spec.clone();
        expected.stdin = StdinSource::Null;
        assert_eq!(back, expected);
        assert_eq!(back_ids, Some(ids));
    }
}
