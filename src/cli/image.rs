//! `sandcell image` (not yet implemented).

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {}

pub fn main(cmd: ImageCommand) -> i32 {
    match cmd {}
}
