//! `sandcell image`: import, ls, inspect, rm, prune over the local image store.

use crate::cli::{error_line, EXIT_USAGE};
use crate::image::{default_state_dir, ImageError, ImageInfo, ImageStore, ImportOptions};
use std::path::PathBuf;

/// Where the store lives.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// State directory (the store is its `images/` subdirectory) [default: $SANDCELL_STATE_DIR or /var/lib/sandcell]
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
}

impl StoreArgs {
    fn open(&self) -> Result<ImageStore, ImageError> {
        let dir = self.state_dir.clone().unwrap_or_else(default_state_dir);
        ImageStore::open(&dir)
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// Import a rootfs tarball (.tar, .tar.gz), an OCI layout directory or an OCI archive.
    Import {
        /// The tarball, layout directory or oci-archive.
        path: PathBuf,
        /// Name to give the image: NAME or NAME:TAG (tag defaults to "latest").
        #[arg(long)]
        name: String,
        /// Keep setuid/setgid bits (stripped by default).
        #[arg(long)]
        keep_setid: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List images.
    #[command(alias = "list")]
    Ls {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Print an image's config, layers and size as JSON.
    Inspect {
        /// NAME[:TAG] or an id prefix.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove an image name (the image goes with its last name); refused while a run uses it.
    #[command(alias = "remove")]
    Rm {
        /// NAME[:TAG] or an id prefix.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove unnamed images, leftovers of interrupted imports and unused blobs.
    Prune {
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn main(cmd: ImageCommand) -> i32 {
    match run(cmd) {
        Ok(()) => 0,
        Err(e) => {
            error_line(&e);
            if e.is_usage() {
                EXIT_USAGE
            } else {
                1
            }
        }
    }
}

fn run(cmd: ImageCommand) -> Result<(), ImageError> {
    match cmd {
        ImageCommand::Import {
            path,
            name,
            keep_setid,
            store,
        } => {
            let opts = ImportOptions {
                keep_setid,
                progress: true,
                ..ImportOptions::default()
            };
            let info = store.open()?.import(&path, &name, &opts)?;
            println!(
                "imported {}:{} {} ({})",
                info.name,
                info.tag,
                short_id(&info.id),
                human_size(info.size)
            );
        }
        ImageCommand::Ls { json, store } => {
            let images = store.open()?.list()?;
            if json {
                println!("{}", to_json(&images));
            } else {
                print!("{}", table(&images));
            }
        }
        ImageCommand::Inspect { name, store } => {
            let v = store.open()?.inspect(&name)?;
            println!("{}", to_json(&v));
        }
        ImageCommand::Rm { name, store } => {
            store.open()?.remove(&name)?;
            println!("removed {name}");
        }
        ImageCommand::Prune { store } => {
            let r = store.open()?.prune()?;
            println!(
                "removed {} unnamed images, {} temporary leftovers, {} unused blobs",
                r.images.len(),
                r.temp_dirs,
                r.blobs
            );
        }
    }
    Ok(())
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn table(images: &[ImageInfo]) -> String {
    let rows: Vec<[String; 5]> = images
        .iter()
        .map(|i| {
            [
                i.name.clone(),
                i.tag.clone(),
                short_id(&i.id).to_string(),
                human_size(i.size),
                utc(i.created),
            ]
        })
        .collect();
    let header = ["NAME", "TAG", "ID", "SIZE", "CREATED"].map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC.
fn utc(secs: u64) -> String {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(1_500_000), "1.5 MB");
    }
}
