//! `sandcell run` (in progress).

#[derive(Debug, clap::Args)]
pub struct RunArgs {}

pub fn main(_args: RunArgs) -> i32 {
    super::EXIT_SANDBOX
}
