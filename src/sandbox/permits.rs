//! Cell permits: at most N cells of one launcher run at once, whoever asks — a daemon's run
//! workers, a grading's tests, compile steps and checkers all take from the same pool, so
//! a busy grading cannot add cells beyond what the host was sized for. Also counts how many
//! run now and the most that ever ran at once (for metrics and tests).

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::launcher::CancelToken;

/// How often a waiter looks at its cancel token.
const CANCEL_CHECK: Duration = Duration::from_millis(50);

#[derive(Debug, Default)]
struct Counts {
    running: usize,
    peak: usize,
}

#[derive(Debug)]
pub(super) struct CellPermits {
    /// `None`: no bound, only counting.
    max: Option<usize>,
    counts: Mutex<Counts>,
    freed: Condvar,
}

/// One running cell; gives its permit back on drop.
pub(super) struct Permit<'a>(&'a CellPermits);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.lock().running -= 1;
        self.0.freed.notify_one();
    }
}

impl CellPermits {
    pub(super) fn new(max: Option<usize>) -> Self {
        CellPermits {
            max: max.map(|m| m.max(1)),
            counts: Mutex::new(Counts::default()),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a permit; `None` when `cancel` fires first.
    pub(super) fn acquire(&self, cancel: Option<&CancelToken>) -> Option<Permit<'_>> {
        let mut counts = self.lock();
        while self.max.is_some_and(|max| counts.running >= max) {
            if cancel.is_some_and(CancelToken::is_cancelled) {
                return None;
            }
            counts = self
                .freed
                .wait_timeout(counts, CANCEL_CHECK)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        counts.running += 1;
        counts.peak = counts.peak.max(counts.running);
        Some(Permit(self))
    }

    /// Cells running now, and the most that ever ran at once.
    pub(super) fn counts(&self) -> (usize, usize) {
        let c = self.lock();
        (c.running, c.peak)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn never_more_than_max_at_once() {
        let permits = Arc::new(CellPermits::new(Some(2)));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let p = permits.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        let _permit = p.acquire(None).unwrap();
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (running, peak) = permits.counts();
        assert_eq!(running, 0);
        assert!((1..=2).contains(&peak), "peak {peak}");
    }

    #[test]
    fn a_cancelled_waiter_gives_up() {
        let permits = CellPermits::new(Some(1));
        let _held = permits.acquire(None).unwrap();
        let cancel = CancelToken::new().unwrap();
        cancel.cancel();
        assert!(permits.acquire(Some(&cancel)).is_none());
    }
}
