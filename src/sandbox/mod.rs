//! The only place that forks, clones, mounts or touches namespaces.
//!
//! [`Launcher::run`] prepares everything in the parent (cgroup, BPF, CStrings, fds), clones
//! the cell, and supervises it until it ends in a [`RunResult`](crate::RunResult).

pub mod cgroup;
mod error;
mod launcher;
pub mod seccomp;

pub use error::SandboxError;
pub use launcher::{CancelToken, Launcher, LauncherConfig, RunEvent};
