//! Load client for the daemon benchmark (see scripts/bench-api). Filled in below.
fn main() {}
