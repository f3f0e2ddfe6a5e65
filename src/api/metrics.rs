//! Counters of the daemon, rendered as Prometheus text at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::result::Verdict;
use crate::sandbox::Launcher;

const VERDICTS: [Verdict; 9] = [
    Verdict::OK,
    Verdict::RE,
    Verdict::SG,
    Verdict::TO,
    Verdict::MLE,
    Verdict::OLE,
    Verdict::CE,
    Verdict::CANCELLED,
    Verdict::XX,
];

/// Upper bounds (seconds) of the run duration histogram.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Why a request was turned away.
#[derive(Debug, Clone, Copy)]
pub enum Rejection {
    QueueFull,
    Quota,
}

#[derive(Debug, Default)]
pub struct Metrics {
    runs: [AtomicU64; 9],
    buckets: [AtomicU64; 12],
    duration_count: AtomicU64,
    duration_sum_us: AtomicU64,
    active: AtomicU64,
    accepted: AtomicU64,
    rejected_queue: AtomicU64,
    rejected_quota: AtomicU64,
    /// Finished gradings by their verdict (AC, WA, ..., XX).
    gradings: Mutex<BTreeMap<String, u64>>,
    /// The daemon's launcher, for its cell counters (set once at start).
    pub launcher: OnceLock<Arc<Launcher>>,
}

fn verdict_index(v: Verdict) -> usize {
    VERDICTS.iter().position(|x| *x == v).unwrap_or(8)
}

impl Metrics {
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }
    pub fn rejected(&self, why: Rejection) {
        match why {
            Rejection::QueueFull => &self.rejected_queue,
            Rejection::Quota => &self.rejected_quota,
        }
        .fetch_add(1, Ordering::Relaxed);
    }
    pub fn cell_started(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }
    pub fn cell_ended(&self) {
        self.active.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn active_cells(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }
    /// A finished run: its verdict and how long its cell took (wall clock).
    pub fn finished(&self, verdict: Verdict, wall_ms: u64) {
        self.runs[verdict_index(verdict)].fetch_add(1, Ordering::Relaxed);
        let secs = wall_ms as f64 / 1000.0;
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_sum_us
            .fetch_add(wall_ms * 1000, Ordering::Relaxed);
    }

    /// A finished grading and its verdict.
    pub fn grading_finished(&self, verdict: &str) {
        let mut gradings = self.gradings.lock().unwrap_or_else(|p| p.into_inner());
        *gradings.entry(verdict.to_string()).or_default() += 1;
    }

    /// The job counters by kind: runs (also as `sandcell_runs_total`) and gradings by their
    /// verdict, both of the one job queue.
    fn render_jobs(&self, out: &mut String) {
        let gradings = self.gradings.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            out,
            "# HELP sandcell_jobs_total Finished jobs of the one queue by kind and verdict."
        );
        let _ = writeln!(out, "# TYPE sandcell_jobs_total counter");
        for (v, n) in VERDICTS.iter().zip(&self.runs) {
            let _ = writeln!(
                out,
                "sandcell_jobs_total{{kind=\"run\",verdict=\"{v}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        for (v, n) in gradings.iter() {
            let _ = writeln!(
                out,
                "sandcell_jobs_total{{kind=\"grading\",verdict=\"{v}\"}} {n}"
            );
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self, queue_depth: usize) -> String {
        let mut out = String::with_capacity(2048);
        let _ = writeln!(out, "# HELP sandcell_runs_total Finished runs by verdict.");
        let _ = writeln!(out, "# TYPE sandcell_runs_total counter");
        for (v, n) in VERDICTS.iter().zip(&self.runs) {
            let _ = writeln!(
                out,
                "sandcell_runs_total{{verdict=\"{v}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP sandcell_runs_accepted_total Runs accepted into the queue."
        );
        let _ = writeln!(out, "# TYPE sandcell_runs_accepted_total counter");
        let _ = writeln!(
            out,
            "sandcell_runs_accepted_total {}",
            self.accepted.load(Ordering::Relaxed)
        );
        let _ = writeln!(out, "# HELP sandcell_requests_rejected_total Runs turned away (queue full: 503, quota: 429).");
        let _ = writeln!(out, "# TYPE sandcell_requests_rejected_total counter");
        let _ = writeln!(
            out,
            "sandcell_requests_rejected_total{{reason=\"queue_full\"}} {}",
            self.rejected_queue.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "sandcell_requests_rejected_total{{reason=\"quota\"}} {}",
            self.rejected_quota.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP sandcell_queue_depth Runs waiting for a worker."
        );
        let _ = writeln!(out, "# TYPE sandcell_queue_depth gauge");
        let _ = writeln!(out, "sandcell_queue_depth {queue_depth}");
        let _ = writeln!(out, "# HELP sandcell_active_cells Cells running now.");
        let _ = writeln!(out, "# TYPE sandcell_active_cells gauge");
        let _ = writeln!(out, "sandcell_active_cells {}", self.active_cells());
        let _ = writeln!(
            out,
            "# HELP sandcell_run_duration_seconds Wall-clock time of cells."
        );
        let _ = writeln!(out, "# TYPE sandcell_run_duration_seconds histogram");
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "sandcell_run_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "sandcell_run_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "sandcell_run_duration_seconds_sum {}",
            self.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "sandcell_run_duration_seconds_count {count}");
        if let Some(launcher) = self.launcher.get() {
            let cells = launcher.cell_counts();
            let _ = writeln!(
                out,
                "# HELP sandcell_cells_total Cells by source: set up ahead (warm) or when the run started (cold)."
            );
            let _ = writeln!(out, "# TYPE sandcell_cells_total counter");
            let _ = writeln!(
                out,
                "sandcell_cells_total{{source=\"warm\"}} {}",
                cells.warm
            );
            let _ = writeln!(
                out,
                "sandcell_cells_total{{source=\"cold\"}} {}",
                cells.cold
            );
            let _ = writeln!(
                out,
                "# HELP sandcell_cells_running Cells running now (runs, grading tests, compile steps, checkers), at most `workers`."
            );
            let _ = writeln!(out, "# TYPE sandcell_cells_running gauge");
            let _ = writeln!(out, "sandcell_cells_running {}", cells.running);
            let _ = writeln!(
                out,
                "# HELP sandcell_cells_running_peak The most cells that ran at once since the daemon started."
            );
            let _ = writeln!(out, "# TYPE sandcell_cells_running_peak gauge");
            let _ = writeln!(out, "sandcell_cells_running_peak {}", cells.peak);
        }
        self.render_jobs(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::default();
        m.finished(Verdict::OK, 3);
        m.finished(Verdict::TO, 2000);
        let text = m.render(4);
        assert!(text.contains("sandcell_runs_total{verdict=\"OK\"} 1"));
        assert!(text.contains("sandcell_runs_total{verdict=\"TO\"} 1"));
        assert!(text.contains("sandcell_run_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("sandcell_run_duration_seconds_bucket{le=\"2.5\"} 2"));
        assert!(text.contains("sandcell_run_duration_seconds_count 2"));
        assert!(text.contains("sandcell_queue_depth 4"));
    }
}
