//! Recipes: TOML data describing what goes into an image. Adding a language is adding a file.
//!
//! ```toml
//! description = "CPython 3 with its standard library"
//! include = ["busybox"]                       # merge another recipe's inputs
//! binaries = ["/usr/bin/python3"]             # host files; ELF closure added via ldd
//! path_commands = [["gcc", "-print-prog-name=cc1"]]  # commands printing a host path
//! paths = ["/usr/lib/python3.11"]             # host files or whole directories
//! packages = ["libc6-dev"]                    # every file `dpkg -L` lists
//! exclude = ["/usr/lib/python3.11/test/**"]   # globs over host paths found by walking
//! symlinks = { "/usr/local/bin/python" = "/usr/bin/python3" }
//! files = { "/etc/motd" = "hello\n" }
//! env = { PYTHONDONTWRITEBYTECODE = "1" }
//! applets = { binary = "/bin/busybox", list_command = ["/bin/busybox", "--list-full"] }
//!
//! [language]
//! name = "python"
//! version_command = ["/usr/bin/python3", "-c", "import platform; print(platform.python_version())"]
//! source_file = "main.py"
//! run = "python3 main.py"
//! # compile = "..."  (absent for interpreted languages)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{BuildError, Result};

/// Links named by a multi-call binary: one symlink per line the list command prints.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applets {
    pub binary: String,
    pub list_command: Vec<String>,
}

/// The language labels of an image.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanguageSpec {
    pub name: String,
    pub version: Option<String>,
    pub version_command: Option<Vec<String>>,
    pub source_file: String,
    pub compile: Option<String>,
    pub run: String,
}

/// One recipe file as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipeFile {
    pub description: Option<String>,
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub binaries: Vec<String>,
    #[serde(default)]
    pub path_commands: Vec<Vec<String>>,
    #[serde(default)]
    pub paths: Vec<String>,
    #[serde(default)]
    pub packages: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub symlinks: BTreeMap<String, String>,
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub applets: Option<Applets>,
    pub language: Option<LanguageSpec>,
}

/// A recipe with its includes merged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipe {
    pub name: String,
    pub inputs: RecipeFile,
    pub language: Option<LanguageSpec>,
}

/// Where recipes live: `--recipes-dir`, else the crate's `recipes/`.
pub fn default_recipes_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("recipes")
}

/// Names of the recipes in `dir`, sorted.
pub fn list(dir: &Path) -> Result<Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|source| BuildError::RecipeRead {
        path: dir.to_owned(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".toml").map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Loads recipe `name_or_path` (a name in `dir` or a path to a .toml file) with its includes.
pub fn load(dir: &Path, name_or_path: &str) -> Result<Recipe> {
    let mut stack = Vec::new();
    let (name, file) = load_merged(dir, name_or_path, &mut stack)?;
    let language = file.language.clone();
    Ok(Recipe {
        name,
        inputs: file,
        language,
    })
}

fn recipe_path(dir: &Path, name_or_path: &str) -> (String, PathBuf) {
    if name_or_path.ends_with(".toml") {
        let path = PathBuf::from(name_or_path);
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        (name, path)
    } else {
        (
            name_or_path.to_owned(),
            dir.join(format!("{name_or_path}.toml")),
        )
    }
}

fn load_merged(
    dir: &Path,
    name_or_path: &str,
    stack: &mut Vec<String>,
) -> Result<(String, RecipeFile)> {
    let (name, path) = recipe_path(dir, name_or_path);
    if stack.contains(&name) {
        stack.push(name);
        return Err(BuildError::IncludeCycle(stack.join(" -> ")));
    }
    let file = parse_file(&name, &path)?;
    stack.push(name.clone());
    let mut merged = RecipeFile::default();
    let include_dir = path.parent().unwrap_or(dir).to_owned();
    for inc in &file.include {
        let (_, inner) = load_merged(&include_dir, inc, stack)?;
        merge_inputs(&mut merged, inner);
    }
    stack.pop();
    let language = file.language.clone();
    let description = file.description.clone();
    merge_inputs(&mut merged, file);
    merged.language = language;
    merged.description = description;
    Ok((name, merged))
}

fn parse_file(name: &str, path: &Path) -> Result<RecipeFile> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            BuildError::RecipeNotFound {
                name: name.to_owned(),
                path: path.to_owned(),
            }
        } else {
            BuildError::RecipeRead {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let file: RecipeFile = toml::from_str(&text).map_err(|e| BuildError::RecipeInvalid {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    validate(path, &file)?;
    Ok(file)
}

fn validate(path: &Path, file: &RecipeFile) -> Result<()> {
    let bad = |message: String| BuildError::RecipeInvalid {
        path: path.to_owned(),
        message,
    };
    let absolute = file
        .binaries
        .iter()
        .chain(&file.paths)
        .chain(file.symlinks.keys())
        .chain(file.files.keys());
    for p in absolute {
        if !p.starts_with('/') || p.split('/').any(|c| c == "..") {
            return Err(bad(format!("{p:?} must be an absolute path without '..'")));
        }
    }
    if file.path_commands.iter().any(Vec::is_empty) {
        return Err(bad("path_commands entries may not be empty".into()));
    }
    if let Some(lang) = &file.language {
        if lang.version.is_none() && lang.version_command.is_none() {
            return Err(bad("[language] needs `version` or `version_command`".into()));
        }
        if lang.source_file.is_empty() || lang.source_file.contains('/') {
            return Err(bad(
                "[language] source_file must be a plain file name".into()
            ));
        }
        if lang.run.trim().is_empty() {
            return Err(bad("[language] run may not be empty".into()));
        }
    }
    Ok(())
}

fn merge_inputs(into: &mut RecipeFile, from: RecipeFile) {
    into.binaries.extend(from.binaries);
    into.path_commands.extend(from.path_commands);
    into.paths.extend(from.paths);
    into.packages.extend(from.packages);
    into.exclude.extend(from.exclude);
    into.symlinks.extend(from.symlinks);
    into.files.extend(from.files);
    into.env.extend(from.env);
    if from.applets.is_some() {
        into.applets = from.applets;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    }

    #[test]
    fn includes_merge_inputs_but_not_the_language() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "base",
            "binaries = [\"/bin/a\"]\n[language]\nname = \"sh\"\nversion = \"1\"\nsource_file = \"main.sh\"\nrun = \"sh main.sh\"\n",
        );
        write(
            dir.path(),
            "top",
            "include = [\"base\"]\nbinaries = [\"/bin/b\"]\n",
        );
        let r = load(dir.path(), "top").unwrap();
        assert_eq!(r.inputs.binaries, vec!["/bin/a", "/bin/b"]);
        assert!(r.language.is_none());
        assert_eq!(
            load(dir.path(), "base").unwrap().language.unwrap().name,
            "sh"
        );
    }

    #[test]
    fn include_cycles_and_relative_paths_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a", "include = [\"b\"]\n");
        write(dir.path(), "b", "include = [\"a\"]\n");
        assert!(matches!(
            load(dir.path(), "a"),
            Err(BuildError::IncludeCycle(_))
        ));
        write(dir.path(), "rel", "paths = [\"usr/lib\"]\n");
        assert!(matches!(
            load(dir.path(), "rel"),
            Err(BuildError::RecipeInvalid { .. })
        ));
        write(dir.path(), "unknown", "colour = \"blue\"\n");
        assert!(load(dir.path(), "unknown").is_err());
        assert!(matches!(
            load(dir.path(), "missing"),
            Err(BuildError::RecipeNotFound { .. })
        ));
    }
}
