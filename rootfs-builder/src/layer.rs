//! Writes a [`Tree`] as one deterministic tar layer blob: sorted entries, uid/gid 0, no user
//! or group names, one fixed mtime, fixed gzip settings (no name, mtime 0, level 6).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

use crate::error::{host, output, Result};
use crate::pyc;
use crate::tree::{Node, Tree};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    Gzip,
    None,
}

/// A written layer blob.
#[derive(Debug, Clone)]
pub struct LayerBlob {
    /// sha256 hex of the blob as stored.
    pub digest: String,
    pub size: u64,
    /// sha256 hex of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
    pub compression: Compression,
    /// Bytes of file content in the layer (uncompressed).
    pub content_bytes: u64,
    pub entries: usize,
}

/// Where the tar stream goes.
enum Sink {
    Gzip(GzEncoder<std::fs::File>),
    Plain(std::fs::File),
}

impl Sink {
    /// Ends the gzip stream and flushes everything to disk.
    fn finish(self) -> std::io::Result<()> {
        let file = match self {
            Sink::Gzip(gz) => gz.finish()?,
            Sink::Plain(f) => f,
        };
        file.sync_all()
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Gzip(gz) => gz.write(buf),
            Sink::Plain(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Gzip(gz) => gz.flush(),
            Sink::Plain(f) => f.flush(),
        }
    }
}

/// Counts and hashes what passes through it.
struct Hashing<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `tree` into `blobs_dir` (the layout's `blobs/sha256`) and returns its digests.
pub fn write_layer(
    tree: &Tree,
    blobs_dir: &Path,
    compression: Compression,
    mtime: u64,
) -> Result<LayerBlob> {
    let tmp = blobs_dir.join(".layer.partial");
    let file = std::fs::File::create(&tmp).map_err(output(&tmp))?;
    let sink = match compression {
        Compression::Gzip => Sink::Gzip(
            flate2::GzBuilder::new()
                .mtime(0)
                .operating_system(255)
                .write(file, flate2::Compression::new(6)),
        ),
        Compression::None => Sink::Plain(file),
    };
    let hashing = Hashing {
        inner: sink,
        hasher: Sha256::new(),
    };
    let mut builder = tar::Builder::new(hashing);
    builder.mode(tar::HeaderMode::Deterministic);
    let mut content_bytes = 0;
    for (path, node) in tree.nodes() {
        content_bytes += append(&mut builder, path, node, mtime).map_err(|e| match e {
            AppendError::Host(p, err) => host(p)(err),
            AppendError::Write(err) => output(&tmp)(err),
        })?;
    }
    let hashing = builder.into_inner().map_err(output(&tmp))?;
    let diff_id = hex::encode(hashing.hasher.finalize());
    hashing.inner.finish().map_err(output(&tmp))?;
    let (digest, size) = hash_file(&tmp)?;
    let final_path = blobs_dir.join(&digest);
    std::fs::rename(&tmp, &final_path).map_err(output(&final_path))?;
    Ok(LayerBlob {
        digest,
        size,
        diff_id,
        compression,
        content_bytes,
        entries: tree.len(),
    })
}

enum AppendError {
    Host(PathBuf, std::io::Error),
    Write(std::io::Error),
}

fn header(kind: tar::EntryType, mode: u32, size: u64, mtime: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    path: &Path,
    node: &Node,
    mtime: u64,
) -> std::result::Result<u64, AppendError> {
    match node {
        Node::Dir { mode } => {
            let mut h = header(tar::EntryType::Directory, *mode, 0, mtime);
            builder
                .append_data(&mut h, path, std::io::empty())
                .map_err(AppendError::Write)?;
            Ok(0)
        }
        Node::Symlink { target } => {
            let mut h = header(tar::EntryType::Symlink, 0o777, 0, mtime);
            builder
                .append_link(&mut h, path, target)
                .map_err(AppendError::Write)?;
            Ok(0)
        }
        Node::Bytes { data, mode } => {
            let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64, mtime);
            builder
                .append_data(&mut h, path, data.as_slice())
                .map_err(AppendError::Write)?;
            Ok(data.len() as u64)
        }
        Node::File { source, mode } => {
            let host_err = |e| AppendError::Host(source.clone(), e);
            if let Some(host_mtime) = pyc::host_source_mtime(source) {
                let mut data = std::fs::read(source).map_err(host_err)?;
                pyc::retime(&mut data, host_mtime, mtime);
                let mut h = header(tar::EntryType::Regular, *mode, data.len() as u64, mtime);
                builder
                    .append_data(&mut h, path, data.as_slice())
                    .map_err(AppendError::Write)?;
                return Ok(data.len() as u64);
            }
            let file = std::fs::File::open(source).map_err(host_err)?;
            let len = file.metadata().map_err(host_err)?.len();
            let mut h = header(tar::EntryType::Regular, *mode, len, mtime);
            // take(): a file that grows while we copy cannot corrupt the archive.
            builder
                .append_data(&mut h, path, file.take(len))
                .map_err(AppendError::Write)?;
            Ok(len)
        }
    }
}

/// sha256 hex and size of a file.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut file = std::fs::File::open(path).map_err(output(path))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher).map_err(output(path))?;
    Ok((hex::encode(hasher.finalize()), size))
}
