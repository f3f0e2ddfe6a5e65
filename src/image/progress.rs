//! The import progress bar: only on a terminal, and only once an import has taken a second.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    enabled: bool,
    total: u64,
    start: Instant,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// `total` is the expected raw input size in bytes (0 when unknown).
    pub fn new(wanted: bool, total: u64) -> Progress {
        Progress {
            enabled: wanted && std::io::stderr().is_terminal(),
            total,
            start: Instant::now(),
            bar: None,
        }
    }

    pub fn set(&mut self, pos: u64) {
        if !self.enabled {
            return;
        }
        if self.bar.is_none() {
            if self.start.elapsed() < Duration::from_secs(1) {
                return;
            }
            let bar = if self.total > 0 {
                ProgressBar::new(self.total)
            } else {
                ProgressBar::new_spinner()
            };
            if let Ok(style) = ProgressStyle::with_template(
                "importing {bar:40} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            ) {
                bar.set_style(style);
            }
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
