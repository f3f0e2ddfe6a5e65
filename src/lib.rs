//! sandcell: run untrusted programs in throwaway Linux cells built from kernel primitives.
//!
//! One core, three thin shells: every interface (the `run` CLI, the HTTP daemon, the grader)
//! builds a [`RunSpec`], hands its validated form to a [`Launcher`], and reads a [`RunResult`].
//! Nothing outside [`sandbox`] forks, clones, mounts or touches namespaces.
//!
//! # Public surface
//! What a library user needs is re-exported here: a run ([`RunSpec`], [`ValidatedSpec`],
//! [`Limits`], [`Launcher`], [`RunResult`], [`Verdict`]), a build ([`compile_once`]), the image
//! store ([`ImageStore`]) and grading ([`grade()`], [`read_suite_file`], [`GradeReport`]).
//! The modules themselves are public only so that the `sandcell` binary and the integration
//! tests can reach their parts (the daemon's store, the cgroup layer, the CLI); they are
//! hidden from the docs and are not a stable API.

#[doc(hidden)]
pub mod api;
#[doc(hidden)]
pub mod cli;
#[doc(hidden)]
pub mod grade;
#[doc(hidden)]
pub mod image;
#[doc(hidden)]
pub mod lang;
#[doc(hidden)]
pub mod result;
#[doc(hidden)]
pub mod sandbox;
#[doc(hidden)]
pub mod spec;

pub use grade::{grade, read_suite_file, GradeOptions, GradeReport, PreparedSuite};
pub use image::{ImageStore, ResolvedImage};
pub use lang::{compile_once, CompileVerdict, Compiled};
pub use result::{Captured, RunResult, Verdict};
pub use sandbox::{
    CancelToken, CellUsage, Launcher, LauncherConfig, Limit, LongLivedCell, RunEvent, SandboxError,
};
pub use spec::{FileSpec, Limits, RunSpec, StdinSource, ValidatedSpec};
