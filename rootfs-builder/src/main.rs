//! `rootfs-builder build <recipe> --out DIR` and `rootfs-builder list`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rootfs_builder::{build, recipe, BuildOptions, Compression};

#[derive(Debug, Parser)]
#[command(
    name = "rootfs-builder",
    about = "Build sandcell's language images as OCI layouts"
)]
struct Cli {
    /// Directory holding the recipes (NAME.toml).
    #[arg(long, global = true, env = "SANDCELL_RECIPES_DIR")]
    recipes_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build one recipe (a name in the recipes dir or a path to a .toml file).
    Build {
        recipe: String,
        /// Output directory for the OCI image layout (created; a previous layout is replaced).
        #[arg(long)]
        out: PathBuf,
        #[arg(long, value_enum, default_value = "gzip")]
        compression: Compression,
        /// Print the build report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the recipes.
    List,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let dir = cli.recipes_dir.unwrap_or_else(recipe::default_recipes_dir);
    let result = match cli.command {
        Command::List => recipe::list(&dir).map(|names| {
            for n in names {
                println!("{n}");
            }
        }),
        Command::Build {
            recipe: name,
            out,
            compression,
            json,
        } => recipe::load(&dir, &name).and_then(|r| {
            let opts = BuildOptions {
                out: out.clone(),
                compression,
                epoch: rootfs_builder::build::epoch_from_env(),
            };
            let report = build(&r, &opts)?;
            print_report(&report, &out, json);
            Ok(())
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rootfs-builder: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_report(report: &rootfs_builder::BuildReport, out: &std::path::Path, json: bool) {
    if json {
        let value = serde_json::json!({
            "recipe": report.recipe,
            "out": out,
            "manifest_digest": report.manifest_digest,
            "stored_bytes": report.stored_bytes(),
            "content_bytes": report.content_bytes(),
            "build_ms": report.elapsed.as_millis() as u64,
            "layers": report.layers.iter().map(|l| serde_json::json!({
                "digest": format!("sha256:{}", l.digest),
                "size": l.size,
                "diff_id": format!("sha256:{}", l.diff_id),
                "entries": l.entries,
            })).collect::<Vec<_>>(),
            "labels": report.labels,
        });
        println!("{value}");
        return;
    }
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "{}: {} in {:.1}s, {:.1} MiB stored, {:.1} MiB unpacked, {} entries -> {}",
        report.recipe,
        report.manifest_digest,
        report.elapsed.as_secs_f64(),
        mib(report.stored_bytes()),
        mib(report.content_bytes()),
        report.layers.iter().map(|l| l.entries).sum::<usize>(),
        out.display()
    );
}
