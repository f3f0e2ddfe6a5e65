//! The only place that forks, clones, mounts or touches namespaces.
//!
//! [`Launcher::run`] prepares everything in the parent (cgroup, BPF, CStrings, fds), clones
//! the cell, and supervises it until it ends in a [`RunResult`](crate::RunResult).

pub mod cgroup;
mod child;
mod error;
pub mod host_probe;
mod launcher;
mod mounts;
pub mod seccomp;
mod supervisor;
pub(crate) mod sys;

pub use error::SandboxError;
pub use launcher::{CancelToken, Launcher, LauncherConfig, RunEvent};
