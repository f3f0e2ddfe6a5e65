//! INTERIM (replaced by the cgroup layer's own activate): limits and counters of a cell
//! that already has its PID 1 inside.

use super::{fsio, limits, CellCgroup, CgroupError, CgroupLimits, CgroupMode};

impl CellCgroup {
    /// Writes the run's limits and resets (v1) or re-bases the usage counters, so readings
    /// afterwards describe only what happened after this call.
    pub fn activate(&mut self, limits: &CgroupLimits) -> Result<(), CgroupError> {
        limits::apply(
            &self.dirs,
            limits,
            limits::Written::Known(&self.limits),
            &self.shared.features,
        )?;
        self.limits = limits.clone();
        if self.dirs.mode == CgroupMode::V1 {
            if let Some(dir) = self.dirs.dir_of("memory") {
                fsio::write(&dir.join("memory.max_usage_in_bytes"), "0")?;
            }
        }
        self.baseline = self.read_baseline();
        Ok(())
    }
}
