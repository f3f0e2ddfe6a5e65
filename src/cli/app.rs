//! `sandcell app` (not yet implemented).

#[derive(Debug, clap::Subcommand)]
pub enum AppCommand {}

pub fn main(cmd: AppCommand) -> i32 {
    match cmd {}
}
