//! The only place that forks, clones, mounts or touches namespaces.
//!
//! [`Launcher::run`] prepares a cell (cgroup, BPF, step lists, fds), clones its PID 1, and
//! supervises it until it ends in a [`RunResult`](crate::RunResult).
//!
//! # Threading rules
//! These are the only rules about threads and clones; everything else follows from them.
//! 1. **A process cloned from a multithreaded process may not allocate, lock or call into
//!    glibc** until it execs: other threads may have held the allocator's (or any) lock at
//!    the clone, and the copy would wait for it forever. Cells cloned by the launcher's own
//!    process (no spawner, e.g. `sandcell run` or a library user with threads) therefore
//!    only walk step lists built before the clone, with raw syscalls (`child.rs`, `sys.rs`;
//!    identity changes are raw syscalls, not glibc's set*id wrappers, which broadcast to
//!    threads the child does not have).
//! 2. **A process cloned from a single-threaded process may allocate.** The spawner
//!    (`spawner.rs`) is exec'd fresh and never starts a thread, so PID 1 of a prepared cell
//!    decodes its run and builds its program's steps after the clone (`pid1.rs`). The
//!    spawner checks that it is single-threaded (`/proc/self/task`) before every clone
//!    ([`sys::single_threaded`]) and refuses to clone otherwise.
//! 3. **Cells are never cloned from async (tokio) worker threads**: the launcher blocks, so
//!    callers run it on threads of their own (the daemon's cell workers, the grader's jobs).
//!
//! Nothing else is needed: no barriers before the first clone, no threads started ahead.

mod cell;
pub mod cgroup;
mod child;
mod error;
mod exec_loop;
mod go;
pub mod host_probe;
mod identity;
mod ipc;
mod janitor;
mod launcher;
mod limit;
mod long_lived;
mod mounts;
mod permits;
mod pid1;
mod plan;
pub mod seccomp;
mod shape;
mod spawner;
mod supervisor;
pub(crate) mod sys;
pub mod timens;
mod warm;
mod work_disk;

pub use error::SandboxError;
pub use identity::UidRange;
pub use launcher::{CancelToken, CapturedRun, CellCounts, Launcher, LauncherConfig, RunEvent};
pub use limit::Limit;
pub use long_lived::{CellUsage, LongLivedCell, SET_UP as LONG_LIVED_SET_UP};
pub use spawner::{spawner_main, SPAWNER_ARG};
pub use work_disk::{CaptureBounds, CaptureError};
