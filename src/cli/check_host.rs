//! `sandcell check-host`: what this host supports and what sandcell will refuse or degrade.
//! Exit 0 when every required feature is present, 1 otherwise.

use crate::sandbox::host_probe::HostReport;

#[derive(Debug, clap::Args)]
pub struct CheckHostArgs {
    /// Print the report as JSON (rows, missing requirements, degraded limits, raw facts).
    #[arg(long)]
    pub json: bool,
}

pub fn main(args: CheckHostArgs) -> i32 {
    let report = HostReport::probe();
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                super::error_line(format!("cannot encode the report: {e}"));
                return super::EXIT_SANDBOX;
            }
        }
    } else {
        print!("{}", report.table());
    }
    if report.ok {
        0
    } else {
        1
    }
}
