//! Counting what an import consumes and produces, checked against [`UnpackLimits`].
//!
//! One meter spans a whole import (all layers), so totals are cumulative. The compressed
//! counter is advanced by the reader thread of [`stream`](super::stream); the rest by the
//! extractor on the calling thread.

use super::{LimitExceeded, UnpackLimits};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Shared counters of one import.
#[derive(Debug, Default)]
pub struct Meter {
    limits: UnpackLimits,
    compressed: AtomicU64,
    decompressed: AtomicU64,
    written: AtomicU64,
    entries: AtomicU64,
    tripped: Mutex<Option<LimitExceeded>>,
}

impl Meter {
    pub fn new(limits: UnpackLimits) -> Meter {
        Meter {
            limits,
            ..Meter::default()
        }
    }

    pub fn limits(&self) -> &UnpackLimits {
        &self.limits
    }

    /// Raw (possibly compressed) input bytes read so far.
    pub fn compressed(&self) -> u64 {
        self.compressed.load(Ordering::Relaxed)
    }

    pub(crate) fn add_compressed(&self, n: u64) {
        self.compressed.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts decompressed archive bytes; fails past the total size or the compression ratio.
    pub(crate) fn add_decompressed(&self, n: u64) -> Result<(), LimitExceeded> {
        let total = self.decompressed.fetch_add(n, Ordering::Relaxed) + n;
        let l = &self.limits;
        if total > l.max_total_bytes {
            return self.trip(LimitExceeded::TotalSize {
                limit: l.max_total_bytes,
            });
        }
        let compressed = self.compressed().max(1);
        if l.max_compression_ratio > 0
            && total > l.ratio_grace_bytes
            && total / compressed >= l.max_compression_ratio
        {
            return self.trip(LimitExceeded::Ratio {
                limit: l.max_compression_ratio,
                decompressed: total,
                compressed,
            });
        }
        Ok(())
    }

    /// Counts file content bytes about to be written.
    pub(crate) fn add_written(&self, n: u64) -> Result<(), LimitExceeded> {
        let total = self.written.fetch_add(n, Ordering::Relaxed) + n;
        if total > self.limits.max_total_bytes {
            return self.trip(LimitExceeded::TotalSize {
                limit: self.limits.max_total_bytes,
            });
        }
        Ok(())
    }

    /// Counts one archive entry.
    pub(crate) fn add_entry(&self) -> Result<(), LimitExceeded> {
        let total = self.entries.fetch_add(1, Ordering::Relaxed) + 1;
        if total > self.limits.max_entries {
            return self.trip(LimitExceeded::Entries {
                limit: self.limits.max_entries,
            });
        }
        Ok(())
    }

    /// The first limit that tripped, if any (reads through the tar parser lose the type).
    pub fn tripped(&self) -> Option<LimitExceeded> {
        self.tripped.lock().map(|g| g.clone()).unwrap_or(None)
    }

    fn trip(&self, e: LimitExceeded) -> Result<(), LimitExceeded> {
        if let Ok(mut g) = self.tripped.lock() {
            g.get_or_insert_with(|| e.clone());
        }
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_only_checked_past_grace() {
        let m = Meter::new(UnpackLimits {
            ratio_grace_bytes: 100,
            max_compression_ratio: 10,
            ..UnpackLimits::default()
        });
        m.add_compressed(1);
        assert!(m.add_decompressed(100).is_ok());
        assert!(matches!(
            m.add_decompressed(1),
            Err(LimitExceeded::Ratio { .. })
        ));
        assert!(m.tripped().is_some());
    }

    #[test]
    fn entries_and_total() {
        let m = Meter::new(UnpackLimits {
            max_entries: 2,
            max_total_bytes: 10,
            ..UnpackLimits::default()
        });
        assert!(m.add_entry().is_ok() && m.add_entry().is_ok());
        assert_eq!(m.add_entry(), Err(LimitExceeded::Entries { limit: 2 }));
        assert!(m.add_written(10).is_ok());
        assert!(m.add_written(1).is_err());
    }
}
