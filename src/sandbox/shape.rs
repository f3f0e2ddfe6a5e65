//! The shape of a cell: everything its PID 1 sets up before the program is known (image,
//! mounts, identity, hostname, seccomp policy, whether it has a cgroup). Runs of equal shape
//! can take each other's prepared cells; everything else of a run (program, environment,
//! files, stdin, limits) arrives with the run itself.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::plan;
use crate::spec::{BindMount, Limits, RunSpec, SeccompChoice};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct CellShape {
    pub rootfs: PathBuf,
    pub work_dir: String,
    pub uid: u32,
    pub gid: u32,
    pub hostname: String,
    /// Size of the writable tmpfs layers.
    pub disk: u64,
    /// Inodes of each writable tmpfs layer.
    pub inodes: u64,
    pub binds: Vec<BindMount>,
    pub seccomp: SeccompChoice,
    /// The run has cgroup limits (the cell is cloned into a cell cgroup).
    pub cgroup: bool,
}

impl CellShape {
    pub fn of(spec: &RunSpec) -> CellShape {
        CellShape {
            rootfs: spec.rootfs.clone(),
            work_dir: spec.work_dir.clone(),
            uid: spec.uid,
            gid: spec.gid,
            hostname: spec.hostname.clone(),
            disk: spec.limits.disk,
            inodes: spec.limits.inodes,
            binds: spec.binds.clone(),
            seccomp: spec.seccomp.clone(),
            cgroup: plan::wants_cgroup(spec),
        }
    }

    /// A spec with this shape, for the builders of the setup steps (which read only the
    /// fields of the shape).
    pub fn spec(&self) -> RunSpec {
        let mut spec = RunSpec::new(self.rootfs.clone(), vec!["-".into()]);
        spec.work_dir = self.work_dir.clone();
        spec.uid = self.uid;
        spec.gid = self.gid;
        spec.hostname = self.hostname.clone();
        spec.binds = self.binds.clone();
        spec.seccomp = self.seccomp.clone();
        spec.limits = Limits {
            disk: self.disk,
            inodes: self.inodes,
            ..Limits::default()
        };
        if !self.cgroup {
            let l = &mut spec.limits;
            (l.memory, l.pids, l.cpus, l.cpu_time) = (None, None, None, None);
        }
        spec
    }

    /// A stable text key: equal shapes give equal keys.
    pub fn key(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether prepared cells of this shape may wait in a pool: binds name host paths that
    /// are usually per run, so such cells are only ever prepared for one run.
    pub fn poolable(&self) -> bool {
        self.binds.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_ignores_what_arrives_with_the_run() {
        let mut a = RunSpec::new("/img", vec!["/bin/true".into()]);
        let mut b = a.clone();
        b.argv = vec!["/bin/sh".into(), "-c".into(), "echo".into()];
        b.env.push(("X".into(), "1".into()));
        b.limits.wall_time = std::time::Duration::from_secs(1);
        b.limits.memory = Some(1 << 20);
        b.files.push(crate::spec::FileSpec {
            path: "a".into(),
            content: b"x".to_vec(),
            mode: None,
        });
        assert_eq!(CellShape::of(&a).key(), CellShape::of(&b).key());
        a.limits.disk = 1 << 20;
        assert_ne!(CellShape::of(&a).key(), CellShape::of(&b).key());
    }

    #[test]
    fn spec_of_a_shape_has_the_same_shape() {
        let mut spec = RunSpec::new("/img", vec!["/bin/true".into()]);
        spec.hostname = "h".into();
        spec.limits.disk = 3 << 20;
        let shape = CellShape::of(&spec);
        assert!(shape.cgroup);
        assert_eq!(CellShape::of(&shape.spec()), shape);
        let l = &mut spec.limits;
        (l.memory, l.pids, l.cpus, l.cpu_time) = (None, None, None, None);
        let shape = CellShape::of(&spec);
        assert!(!shape.cgroup);
        assert_eq!(CellShape::of(&shape.spec()), shape);
    }
}
