//! The input pipeline of one archive or layer: a reader thread reads the raw file, hashes it
//! (sha256), sniffs and decompresses gzip, and hands decompressed chunks to the extractor on
//! the calling thread. Hashing and decompression thus overlap with writing files (the way
//! `tar -xzf` overlaps gzip and tar), and the digest of the raw bytes comes for free.

use super::{ImageError, Meter};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

const CHUNK: usize = 1 << 20;
const QUEUE: usize = 4;

enum Msg {
    Data(Vec<u8>),
    Failed(io::Error),
    Done { digest: String, raw_bytes: u64 },
}

/// The decompressed stream of one raw input; implements [`Read`] and counts every byte it
/// yields against the [`Meter`].
pub struct ArchiveStream {
    rx: Option<Receiver<Msg>>,
    chunk: Vec<u8>,
    pos: usize,
    done: Option<(String, u64)>,
    meter: Arc<Meter>,
    thread: Option<JoinHandle<()>>,
}

/// What finished reading an input yielded: `sha256:<hex>` of the raw bytes and their count.
#[derive(Debug, Clone)]
pub struct RawDigest {
    pub digest: String,
    pub raw_bytes: u64,
}

impl ArchiveStream {
    /// Starts reading `file` on a helper thread.
    pub fn spawn(file: File, meter: Arc<Meter>) -> Result<ArchiveStream, ImageError> {
        let (tx, rx) = sync_channel(QUEUE);
        let m = meter.clone();
        let thread = std::thread::Builder::new()
            .name("image-read".into())
            .spawn(move || produce(file, m, tx))
            .map_err(|e| ImageError::io("starting the archive reader thread", e))?;
        Ok(ArchiveStream {
            rx: Some(rx),
            chunk: Vec::new(),
            pos: 0,
            done: None,
            meter,
            thread: Some(thread),
        })
    }

    /// Reads (and counts) whatever follows the end of the archive, then returns the digest of
    /// the whole raw input.
    pub fn finish(mut self) -> Result<RawDigest, ImageError> {
        let mut sink = vec![0u8; 64 << 10];
        loop {
            match self.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    if let Some(l) = self.meter.tripped() {
                        return Err(l.into());
                    }
                    return Err(ImageError::io("reading the archive", e));
                }
            }
        }
        let (digest, raw_bytes) = self
            .done
            .take()
            .ok_or_else(|| ImageError::Archive("archive reader ended early".into()))?;
        Ok(RawDigest { digest, raw_bytes })
    }

    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.done.is_some() {
            return Ok(false);
        }
        let Some(rx) = &self.rx else {
            return Ok(false);
        };
        match rx.recv() {
            Ok(Msg::Data(d)) => {
                self.chunk = d;
                self.pos = 0;
                Ok(true)
            }
            Ok(Msg::Failed(e)) => Err(e),
            Ok(Msg::Done { digest, raw_bytes }) => {
                self.done = Some((digest, raw_bytes));
                Ok(false)
            }
            Err(_) => Err(io::Error::other("archive reader thread stopped")),
        }
    }
}

impl Read for ArchiveStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pos >= self.chunk.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        self.meter
            .add_decompressed(n as u64)
            .map_err(io::Error::other)?;
        Ok(n)
    }
}

impl Drop for ArchiveStream {
    fn drop(&mut self) {
        // Dropping the receiver makes the producer's next send fail, so it stops.
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Hashes and counts raw bytes as they are read.
struct HashingReader {
    file: File,
    hasher: Sha256,
    bytes: u64,
    meter: Arc<Meter>,
}

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        self.meter.add_compressed(n as u64);
        Ok(n)
    }
}

/// Compression formats recognised by their magic bytes.
#[derive(Debug, PartialEq, Eq)]
enum Format {
    Tar,
    Gzip,
    Other(&'static str),
}

fn sniff(head: &[u8]) -> Format {
    if head.starts_with(&[0x1f, 0x8b]) {
        Format::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Format::Other("zstd-compressed archives")
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Format::Other("xz-compressed archives")
    } else if head.starts_with(b"BZh") {
        Format::Other("bzip2-compressed archives")
    } else {
        Format::Tar
    }
}

fn produce(file: File, meter: Arc<Meter>, tx: SyncSender<Msg>) {
    let raw = HashingReader {
        file,
        hasher: Sha256::new(),
        bytes: 0,
        meter,
    };
    let mut input = BufReader::with_capacity(CHUNK, raw);
    let format = match input.fill_buf() {
        Ok(head) => sniff(head),
        Err(e) => {
            let _ = tx.send(Msg::Failed(e));
            return;
        }
    };
    let result = match format {
        Format::Tar => pump(&mut input, &tx),
        Format::Gzip => {
            let mut gz = flate2::bufread::MultiGzDecoder::new(&mut input);
            pump(&mut gz, &tx)
        }
        Format::Other(what) => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{what} are not supported (use .tar or .tar.gz)"),
        )),
    };
    let result = result.and_then(|more| {
        if more {
            // Hash whatever trails the compressed stream too.
            io::copy(&mut input, &mut io::sink()).map(|_| true)
        } else {
            Ok(false)
        }
    });
    match result {
        Ok(true) => {
            let raw = input.into_inner();
            let digest = format!("sha256:{}", hex::encode(raw.hasher.finalize()));
            let _ = tx.send(Msg::Done {
                digest,
                raw_bytes: raw.bytes,
            });
        }
        Ok(false) => {}
        Err(e) => {
            let _ = tx.send(Msg::Failed(e));
        }
    }
}

/// Sends chunks until EOF; Ok(false) when the consumer went away.
fn pump(r: &mut dyn Read, tx: &SyncSender<Msg>) -> io::Result<bool> {
    loop {
        let mut buf = vec![0u8; CHUNK];
        let mut filled = 0;
        while filled < CHUNK {
            match r.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(true);
        }
        buf.truncate(filled);
        if tx.send(Msg::Data(buf)).is_err() {
            return Ok(false);
        }
    }
}
