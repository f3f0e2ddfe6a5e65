//! `sandcell grade`: compile a submission once, run every test of a suite in its own fresh
//! cell, judge the output, and report verdicts (table, JSON, JUnit).
//!
//! The pipeline: [`suite`] (the file as written, TOML or JSON) -> [`prepare`] (files read,
//! globs expanded, image resolved, limits checked: every suite error surfaces here, before a
//! cell starts) -> [`runner::grade`] (compile cell, test cells, checker cells) ->
//! [`report::GradeReport`] -> [`junit`], [`table`] or JSON.
//!
//! For the daemon: parse the request's suite JSON into a [`Suite`], call
//! [`prepare_uploaded`] with the uploaded files, then [`grade`] on a worker thread with an
//! `on_event` callback that forwards [`GradeEvent::Test`] as SSE; serialise the
//! [`GradeReport`] for the result (the same JSON the CLI prints).

pub mod checker;
mod checker_root;
pub mod command;
pub mod comparator;
pub mod error;
pub mod junit;
pub mod limits;
pub mod load;
pub mod prepare;
pub mod report;
pub mod root;
pub mod runner;
pub mod source;
pub mod suite;
pub mod table;

pub use comparator::Comparator;
pub use error::{GradeError, SuiteError};
pub use load::{prepare_uploaded, read_suite_file, SuiteFile};
pub use prepare::{BoxFile, PreparedSuite, PreparedTest, SubmittedFile};
pub use report::{CellCounts, CompileOutcome, GradeReport, TestOutcome, TestVerdict, SCHEMA};
pub use root::{DirResolver, ResolvedRoot, RootRef, RootResolver, StoreResolver};
pub use runner::{default_jobs, grade, GradeEvent, GradeOptions};
pub use source::{DirSource, FileSource, MemorySource, SourceFile};
pub use suite::{parse, Suite, SuiteFormat};
