//! `sandcell check-host`: what this host supports and what sandcell will refuse or degrade.
//! Exit 0 when every required feature is present, 1 otherwise.

use std::io::Write;

use crate::sandbox::host_probe::HostReport;

#[derive(Debug, clap::Args)]
pub struct CheckHostArgs {
    /// Print the report as JSON (rows, missing requirements, degraded limits, raw facts).
    #[arg(long)]
    pub json: bool,
}

pub fn main(args: CheckHostArgs) -> i32 {
    let report = HostReport::probe();
    let text = if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => text + "\n",
            Err(e) => {
                super::error_line(format!("cannot encode the report: {e}"));
                return super::EXIT_SANDBOX;
            }
        }
    } else {
        report.table()
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // A reader that stopped early (`| head`) changes nothing about the verdict.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            super::error_line(format!("cannot write the report: {e}"));
        }
        _ => {}
    }
    if report.ok {
        0
    } else {
        1
    }
}
