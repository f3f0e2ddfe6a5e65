//! The only place that forks, clones, mounts or touches namespaces.
//!
//! [`Launcher::run`] prepares everything in the parent (cgroup, BPF, CStrings, fds), clones
//! the cell, and supervises it until it ends in a [`RunResult`](crate::RunResult).

pub mod cgroup;
mod child;
mod error;
mod go;
pub mod host_probe;
mod ipc;
mod janitor;
mod launcher;
mod mounts;
mod permits;
mod plan;
mod prepared;
pub mod seccomp;
mod shape;
mod spawner;
mod supervisor;
pub(crate) mod sys;
pub mod timens;
mod warm;

pub use error::SandboxError;
pub use launcher::{CancelToken, CellCounts, Launcher, LauncherConfig, RunEvent};
pub use spawner::{spawner_main, SPAWNER_ARG};
