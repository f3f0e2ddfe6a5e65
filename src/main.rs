use clap::Parser;

fn main() {
    let cli = sandcell::cli::Cli::parse();
    std::process::exit(sandcell::cli::main(cli));
}
