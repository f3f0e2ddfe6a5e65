//! `sandcell grade` (not yet implemented).

#[derive(Debug, clap::Args)]
pub struct GradeArgs {}

pub fn main(_args: GradeArgs) -> i32 {
    super::error_line("grade is not implemented yet");
    super::EXIT_SANDBOX
}
