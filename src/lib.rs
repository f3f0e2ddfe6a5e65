//! sandcell: run untrusted programs in throwaway Linux cells built from kernel primitives.
//!
//! One core, three thin shells: every interface (the `run` CLI, the HTTP daemon, the grader)
//! builds a [`RunSpec`], hands its validated form to a [`Launcher`], and reads a [`RunResult`].
//! Nothing outside [`sandbox`] forks, clones, mounts or touches namespaces.

pub mod api;
pub mod cli;
pub mod grade;
pub mod image;
pub mod lang;
pub mod result;
pub mod sandbox;
pub mod spec;

pub use result::{Captured, RunResult, Verdict};
pub use sandbox::{CancelToken, Launcher, LauncherConfig, RunEvent, SandboxError};
pub use spec::{Limits, RunSpec, ValidatedSpec};
