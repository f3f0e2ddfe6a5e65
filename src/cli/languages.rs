//! `sandcell languages [--state-dir DIR] [--json]`: the languages of the imported images,
//! read from their `org.sandcell.*` labels.

use std::path::PathBuf;

use crate::image::ImageStore;
use crate::lang::{list_languages, Language};

#[derive(Debug, clap::Args)]
pub struct LanguagesArgs {
    /// State directory holding the image store [default: $SANDCELL_STATE_DIR or /var/lib/sandcell].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn main(args: LanguagesArgs) -> i32 {
    let state_dir = args
        .state_dir
        .unwrap_or_else(crate::image::default_state_dir);
    let langs = match ImageStore::open(&state_dir)
        .map_err(crate::lang::LangError::from)
        .and_then(|store| list_languages(&store))
    {
        Ok(l) => l,
        Err(e) => {
            super::error_line(e);
            return 1;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&langs) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                super::error_line(e);
                return 1;
            }
        }
    } else {
        print!("{}", table(&langs));
    }
    0
}

fn table(langs: &[Language]) -> String {
    let header = ["LANGUAGE", "VERSION", "IMAGE", "SOURCE", "COMPILE", "RUN"];
    let rows: Vec<[String; 6]> = langs
        .iter()
        .map(|l| {
            [
                l.name.clone(),
                l.version.clone(),
                l.image.clone(),
                l.source_file.clone(),
                l.compile.clone().unwrap_or_else(|| "-".into()),
                l.run.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_marks_interpreted_languages() {
        let py = Language {
            user: None,
            name: "python".into(),
            version: "3.11.2".into(),
            image: "python:latest".into(),
            source_file: "main.py".into(),
            compile: None,
            run: "python3 main.py".into(),
            env: vec![],
        };
        let text = table(&[py]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("LANGUAGE  VERSION"));
        assert!(lines[1].starts_with("python    3.11.2"));
        assert!(lines[1].contains("  -  "));
    }
}
