use clap::Parser;

fn main() {
    // The cell spawner of a daemon or grader (see sandbox/spawner.rs): before clap, so it
    // starts fast and never parses user arguments.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == sandcell::sandbox::SPAWNER_ARG)
    {
        std::process::exit(sandcell::sandbox::spawner_main());
    }
    let cli = sandcell::cli::Cli::parse();
    std::process::exit(sandcell::cli::main(cli));
}
