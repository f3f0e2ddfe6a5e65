//! The command line: one file per subcommand; this file only dispatches.

use clap::{Parser, Subcommand};

pub mod app;
pub mod cell;
pub mod check_host;
pub mod grade;
pub mod image;
pub mod languages;
mod local_client;
mod malloc_tuning;
pub mod run;
mod run_lang;
pub mod serve;
pub mod worker;

/// Exit code for a usage error (bad flags, absurd limits): nothing was started.
pub const EXIT_USAGE: i32 = 2;
/// Exit code for a sandbox error (verdict XX).
pub const EXIT_SANDBOX: i32 = 125;

#[derive(Debug, Parser)]
#[command(
    name = "sandcell",
    version,
    about = "Run untrusted code in throwaway Linux cells"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a fresh cell.
    Run(Box<run::RunArgs>),
    /// Start the HTTP daemon.
    Serve(serve::ServeArgs),
    /// Be a worker node of a scale-out deployment: run what API nodes queue in Redis.
    Worker(worker::WorkerArgs),
    /// Grade a submission against a test suite.
    Grade(grade::GradeArgs),
    /// Manage the local image store.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// List languages of imported images.
    Languages(languages::LanguagesArgs),
    /// Manage API apps and keys of the daemon.
    #[command(subcommand)]
    App(app::AppCommand),
    /// Report what this host supports and what sandcell will refuse or degrade.
    CheckHost(check_host::CheckHostArgs),
    /// Long-lived cells of a running daemon: create, exec, cp, ls, rm.
    #[command(subcommand)]
    Cell(cell::CellCommand),
}

/// Runs the parsed command and returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    init_tracing();
    match cli.command {
        Command::Run(a) => run::main(*a),
        Command::Serve(a) => {
            malloc_tuning::reexec_tuned();
            serve::main(a)
        }
        Command::Worker(a) => worker::main(a),
        Command::Grade(a) => grade::main(a),
        Command::Image(a) => image::main(a),
        Command::Languages(a) => languages::main(a),
        Command::Cell(a) => cell::main(a),
        Command::App(a) => app::main(a),
        Command::CheckHost(a) => check_host::main(a),
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SANDCELL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Prints `sandcell: MESSAGE` on stderr.
pub fn error_line(message: impl std::fmt::Display) {
    eprintln!("sandcell: {message}");
}
