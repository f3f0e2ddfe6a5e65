//! `sandcell grade SUITE`: compile a submission once, run every test in a fresh cell, print
//! verdicts as a table, JSON or JUnit XML.
//!
//! Exit codes: 0 every test AC; 1 some test failed (or CE); 2 bad suite or flags; 125 sandbox
//! errors. With `--format json` a failure before any report (exit 2 or 125) still prints one
//! JSON object on stdout: `{"schema":"sandcell.grade/v1","error":{...}}`.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::grade::{
    self, junit, read_suite_file, table, GradeEvent, GradeOptions, GradeReport, SourceFile,
    StoreResolver, SubmittedFile, SuiteError, SCHEMA,
};
use crate::sandbox::{Launcher, LauncherConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Junit,
}

#[derive(Debug, clap::Args)]
pub struct GradeArgs {
    /// The suite file (TOML; `.json` for JSON).
    pub suite: PathBuf,
    /// Submission file, replacing the suite's `submission` (repeatable): PATH or PATH:NAME.
    /// A single file gets the language's source file name (e.g. main.cpp).
    #[arg(long = "submission", short = 's')]
    pub submission: Vec<String>,
    /// Tests run at the same time (default: the number of cores).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// Write the report here (the table still goes to stdout for json/junit).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Stop starting tests after the first failure.
    #[arg(long)]
    pub fail_fast: bool,
    /// Run in this rootfs directory instead of the suite's image.
    #[arg(long, conflicts_with = "image")]
    pub rootfs: Option<PathBuf>,
    /// Run in this image of the store instead of the suite's.
    #[arg(long)]
    pub image: Option<String>,
    /// State directory of the image store (default: $SANDCELL_STATE_DIR or /var/lib/sandcell).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Never draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Why no report could be made: the exit code, and what the user is told.
struct Failure {
    code: i32,
    message: String,
    suite: Option<SuiteError>,
}

impl Failure {
    fn usage(message: impl std::fmt::Display) -> Self {
        Failure {
            code: super::EXIT_USAGE,
            message: message.to_string(),
            suite: None,
        }
    }

    fn suite(e: SuiteError) -> Self {
        Failure {
            code: super::EXIT_USAGE,
            message: e.to_string(),
            suite: Some(e),
        }
    }

    fn sandbox(message: impl std::fmt::Display) -> Self {
        Failure {
            code: super::EXIT_SANDBOX,
            message: message.to_string(),
            suite: None,
        }
    }

    /// The JSON object `--format json` prints instead of a report.
    fn to_json(&self) -> serde_json::Value {
        let mut error = serde_json::json!({
            "kind": if self.code == super::EXIT_USAGE { "usage" } else { "sandbox" },
            "message": self.message,
            "exit_code": self.code,
        });
        if let Some(e) = &self.suite {
            error["field"] = e.field.clone().into();
            error["detail"] = e.message.clone().into();
            if let Some(file) = &e.file {
                error["file"] = file.clone().into();
            }
            if let Some(line) = e.line {
                error["line"] = line.into();
            }
        }
        serde_json::json!({ "schema": SCHEMA, "error": error })
    }
}

pub fn main(args: GradeArgs) -> i32 {
    match run(&args) {
        Ok(code) => code,
        Err(failure) => {
            super::error_line(&failure.message);
            if args.format == Format::Json {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{}", failure.to_json());
            }
            failure.code
        }
    }
}

fn run(args: &GradeArgs) -> Result<i32, Failure> {
    let mut file = read_suite_file(&args.suite).map_err(Failure::suite)?;
    if let Some(rootfs) = &args.rootfs {
        let abs = std::fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.clone());
        file.suite.rootfs = Some(abs.display().to_string());
        file.suite.image = None;
    }
    if let Some(image) = &args.image {
        file.suite.image = Some(image.clone());
        file.suite.rootfs = None;
    }
    let submission = read_submission(&args.submission).map_err(Failure::usage)?;
    let resolver = StoreResolver {
        state_dir: args
            .state_dir
            .clone()
            .unwrap_or_else(crate::image::default_state_dir),
        allow_rootfs_dirs: true,
    };
    let prepared = file
        .prepare(&resolver, submission)
        .map_err(Failure::suite)?;
    if args.jobs == Some(0) {
        return Err(Failure::usage("--jobs must be at least 1"));
    }
    // Pooled cell cgroups: a suite runs many cells (v1: saves mkdir/rmdir per test). Cells
    // come from a spawner process (the grader is multithreaded), and the test cells of a
    // suite share one shape (the build reaches them as files), so they are prepared ahead.
    let jobs = args.jobs.unwrap_or_else(grade::default_jobs).max(1);
    let launcher = Launcher::new(LauncherConfig {
        cgroup_pool: 3 * jobs,
        spawner: Some(std::path::PathBuf::from("/proc/self/exe")),
        warm_cells: jobs,
        ..LauncherConfig::default()
    })
    .map_err(Failure::sandbox)?;
    let opts = GradeOptions {
        jobs: args.jobs.unwrap_or_else(grade::default_jobs),
        fail_fast: args.fail_fast,
        ..GradeOptions::default()
    };

    let bar = progress_bar(prepared.tests.len() as u64, args.no_progress);
    let mut report = grade::grade(&launcher, &prepared, &opts, &mut |event| match event {
        GradeEvent::Compiled(c) => bar.set_message(format!("compiled: {}", c.verdict)),
        GradeEvent::Test(t) => {
            bar.inc(1);
            bar.set_message(format!("{} {}", t.name, t.verdict));
        }
    });
    bar.finish_and_clear();
    report.cells.warm = Some(launcher.cell_counts().warm);

    emit(&report, args).map_err(Failure::sandbox)?;
    Ok(report.exit_code())
}

/// `PATH` or `PATH:NAME` (a path that exists is taken whole, colons and all).
fn read_submission(specs: &[String]) -> Result<Option<Vec<SubmittedFile>>, String> {
    if specs.is_empty() {
        return Ok(None);
    }
    let mut files = Vec::new();
    for spec in specs {
        let (path, name) = match spec.rsplit_once(':') {
            Some((p, n)) if !std::path::Path::new(spec).exists() && !n.is_empty() => {
                (p.to_string(), Some(n.to_string()))
            }
            _ => (spec.clone(), None),
        };
        let source = grade::DirSource::new(".");
        let file: SourceFile = grade::FileSource::read(&source, &path)
            .map_err(|e| format!("--submission {path}: {e}"))?;
        let renamed = name.is_some();
        let name = name.unwrap_or_else(|| {
            std::path::Path::new(&path)
                .file_name()
                .map_or(path.clone(), |n| n.to_string_lossy().into_owned())
        });
        files.push(SubmittedFile {
            name,
            file,
            renamed,
        });
    }
    Ok(Some(files))
}

fn progress_bar(total: u64, disabled: bool) -> ProgressBar {
    if disabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} tests {elapsed} {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message("compiling");
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn colour_on_stdout() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Writes the report in the asked format to --output or stdout.
fn emit(report: &GradeReport, args: &GradeArgs) -> Result<(), String> {
    let rendered = match args.format {
        Format::Table => table::to_table(report, args.output.is_none() && colour_on_stdout()),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(report)
                .map_err(|e| format!("cannot encode the report: {e}"))?;
            text.push('\n');
            text
        }
        Format::Junit => junit::to_junit(report),
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, rendered)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            let _ = std::io::stdout()
                .lock()
                .write_all(table::to_table(report, colour_on_stdout()).as_bytes());
        }
        None => {
            let _ = std::io::stdout().lock().write_all(rendered.as_bytes());
        }
    }
    Ok(())
}
