//! `sandcell grade SUITE`: compile a submission once, run every test in a fresh cell, print
//! verdicts as a table, JSON or JUnit XML.
//!
//! Exit codes: 0 every test AC; 1 some test failed (or CE); 2 bad suite or flags; 125 sandbox
//! errors.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::grade::{
    self, junit, read_suite_file, table, GradeEvent, GradeOptions, GradeReport, SourceFile,
    StoreResolver, SubmittedFile,
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

pub fn main(args: GradeArgs) -> i32 {
    let mut file = match read_suite_file(&args.suite) {
        Ok(f) => f,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_USAGE;
        }
    };
    if let Some(rootfs) = &args.rootfs {
        let abs = std::fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.clone());
        file.suite.rootfs = Some(abs.display().to_string());
        file.suite.image = None;
    }
    if let Some(image) = &args.image {
        file.suite.image = Some(image.clone());
        file.suite.rootfs = None;
    }
    let submission = match read_submission(&args.submission) {
        Ok(s) => s,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_USAGE;
        }
    };
    let resolver = StoreResolver {
        state_dir: args
            .state_dir
            .clone()
            .unwrap_or_else(crate::image::default_state_dir),
        allow_rootfs_dirs: true,
    };
    let prepared = match file.prepare(&resolver, submission) {
        Ok(p) => p,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_USAGE;
        }
    };
    if args.jobs == Some(0) {
        super::error_line("--jobs must be at least 1");
        return super::EXIT_USAGE;
    }
    // Pooled cell cgroups: a suite runs many cells (v1: saves mkdir/rmdir per test). Cells
    // come from a spawner process: the grader is multithreaded, and its tests bind the build
    // dir, so they are prepared per test rather than kept warm.
    let pool = args.jobs.unwrap_or(2).max(1);
    let launcher = match Launcher::new(LauncherConfig {
        cgroup_pool: pool,
        spawner: Some(std::path::PathBuf::from("/proc/self/exe")),
        ..LauncherConfig::default()
    }) {
        Ok(l) => l,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_SANDBOX;
        }
    };
    let opts = GradeOptions {
        jobs: args.jobs.unwrap_or_else(grade::default_jobs),
        fail_fast: args.fail_fast,
        ..GradeOptions::default()
    };

    let bar = progress_bar(prepared.tests.len() as u64, args.no_progress);
    let report = grade::grade(&launcher, &prepared, &opts, &mut |event| match event {
        GradeEvent::Compiled(c) => bar.set_message(format!("compiled: {}", c.verdict)),
        GradeEvent::Test(t) => {
            bar.inc(1);
            bar.set_message(format!("{} {}", t.name, t.verdict));
        }
    });
    bar.finish_and_clear();

    if let Err(e) = emit(&report, &args) {
        super::error_line(e);
        return super::EXIT_SANDBOX;
    }
    report.exit_code()
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
