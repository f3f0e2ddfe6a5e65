//! Rootfs tarballs (`.tar`, `.tar.gz`): one stream through the safe extractor.

use super::stream::{ArchiveStream, RawDigest};
use super::unpack::{unpack, UnpackOptions, UnpackStats};
use super::{ImageError, Meter};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// Unpacks the tarball `file` (plain or gzip, sniffed) into `target`; returns the stats and
/// the sha256 of the raw file.
pub fn unpack_tarball(
    file: File,
    target: &Path,
    opts: &UnpackOptions,
    meter: Arc<Meter>,
    tick: &mut dyn FnMut(),
) -> Result<(UnpackStats, RawDigest), ImageError> {
    let mut stream = ArchiveStream::spawn(file, meter.clone())?;
    let stats = unpack(&mut stream, target, opts, &meter, tick)?;
    let digest = stream.finish()?;
    Ok((stats, digest))
}
