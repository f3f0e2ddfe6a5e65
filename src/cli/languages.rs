//! `sandcell languages` (not yet implemented).

#[derive(Debug, clap::Args)]
pub struct LanguagesArgs {}

pub fn main(_args: LanguagesArgs) -> i32 {
    super::error_line("languages is not implemented yet");
    super::EXIT_SANDBOX
}
