//! `sandcell check-host` (in progress).

#[derive(Debug, clap::Args)]
pub struct CheckHostArgs {}

pub fn main(_args: CheckHostArgs) -> i32 {
    super::EXIT_SANDBOX
}
