//! `sandcell serve` (not yet implemented).

#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

pub fn main(_args: ServeArgs) -> i32 {
    super::error_line("serve is not implemented yet");
    super::EXIT_SANDBOX
}
