//! Judge0's limit defaults and maxima on this server: Judge0 CE's defaults, lowered to the
//! server's and the app's maxima, which are also the maxima Judge0 clients see
//! (`GET /config_info`) and are checked against.

use crate::api::config::ServeConfig;
use crate::spec::LimitBounds;

/// Judge0's limit fields, in its units (seconds, kilobytes).
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    pub cpu_time_limit: f64,
    pub cpu_extra_time: f64,
    pub wall_time_limit: f64,
    pub memory_limit: u64,
    pub stack_limit: u64,
    pub max_processes_and_or_threads: u64,
    pub max_file_size: u64,
    pub number_of_runs: u64,
}

/// Judge0 CE's own defaults.
const JUDGE0_DEFAULTS: Values = Values {
    cpu_time_limit: 5.0,
    cpu_extra_time: 1.0,
    wall_time_limit: 10.0,
    memory_limit: 128_000,
    stack_limit: 64_000,
    max_processes_and_or_threads: 60,
    max_file_size: 1024,
    number_of_runs: 1,
};

/// How many submissions one batch may hold (Judge0's default).
pub const MAX_BATCH: usize = 20;

/// The settings a submission is read with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub defaults: Values,
    pub maxima: Values,
    pub callback_hosts: Vec<String>,
}

impl Settings {
    /// For a caller whose maxima are `bounds` (the server's, tightened by the app's).
    pub fn new(config: &ServeConfig, bounds: &LimitBounds) -> Settings {
        let secs = |d: std::time::Duration| d.as_secs_f64();
        let maxima = Values {
            cpu_time_limit: secs(bounds.max_cpu_time),
            cpu_extra_time: 5.0_f64.min(secs(bounds.max_cpu_time)),
            wall_time_limit: secs(bounds.max_wall_time),
            memory_limit: bounds.max_memory / 1024,
            stack_limit: bounds.max_memory / 1024,
            max_processes_and_or_threads: bounds.max_pids.saturating_sub(1).max(1),
            max_file_size: bounds.max_disk / 1024,
            number_of_runs: 1,
        };
        let d = JUDGE0_DEFAULTS;
        let defaults = Values {
            cpu_time_limit: d.cpu_time_limit.min(maxima.cpu_time_limit),
            cpu_extra_time: d.cpu_extra_time.min(maxima.cpu_extra_time),
            wall_time_limit: d.wall_time_limit.min(maxima.wall_time_limit),
            memory_limit: d.memory_limit.min(maxima.memory_limit),
            stack_limit: d.stack_limit.min(maxima.stack_limit),
            max_processes_and_or_threads: d
                .max_processes_and_or_threads
                .min(maxima.max_processes_and_or_threads),
            max_file_size: d.max_file_size.min(maxima.max_file_size),
            number_of_runs: 1,
        };
        Settings {
            defaults,
            maxima,
            callback_hosts: config.judge0.callback_hosts.clone(),
        }
    }

    #[cfg(test)]
    pub fn for_tests() -> Settings {
        let c = ServeConfig::default();
        Settings::new(&c, &c.max_limits)
    }
}
