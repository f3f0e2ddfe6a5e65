//! One build: recipe -> base and content trees -> two layers -> OCI layout.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use globset::{GlobSet, GlobSetBuilder};

use crate::command;
use crate::error::{output, BuildError, Result};
use crate::host::HostCopier;
use crate::layer::{write_layer, Compression, LayerBlob};
use crate::oci::{rfc3339, write_layout, ImageMeta};
use crate::recipe::{Recipe, RecipeFile};
use crate::skeleton;
use crate::tree::{Node, Tree};

pub const LABEL_LANGUAGE: &str = "org.sandcell.language";
pub const LABEL_VERSION: &str = "org.sandcell.version";
pub const LABEL_SOURCE_FILE: &str = "org.sandcell.source-file";
pub const LABEL_COMPILE: &str = "org.sandcell.compile";
pub const LABEL_RUN: &str = "org.sandcell.run";
pub const LABEL_RECIPE: &str = "org.sandcell.recipe";

/// PATH inside every image (matches sandcell's default).
pub const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
pub const IMAGE_USER: &str = "65534:65534";
pub const IMAGE_WORKDIR: &str = "/work";

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub out: PathBuf,
    pub compression: Compression,
    /// The one mtime of every entry and the config's `created` (SOURCE_DATE_EPOCH or 0).
    pub epoch: u64,
}

#[derive(Debug, Clone)]
pub struct BuildReport {
    pub recipe: String,
    pub manifest_digest: String,
    pub layers: Vec<LayerBlob>,
    pub labels: BTreeMap<String, String>,
    pub elapsed: Duration,
}

impl BuildReport {
    /// Bytes of all layer blobs as stored.
    pub fn stored_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
    /// Bytes of file content once unpacked.
    pub fn content_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.content_bytes).sum()
    }
}

/// The epoch from `SOURCE_DATE_EPOCH`, else 0.
pub fn epoch_from_env() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

pub fn build(recipe: &Recipe, opts: &BuildOptions) -> Result<BuildReport> {
    let started = Instant::now();
    prepare_out(&opts.out)?;
    let blobs = opts.out.join("blobs/sha256");

    let base = skeleton::base_tree()?;
    let content = content_tree(&recipe.inputs)?;
    let labels = labels(recipe)?;

    let layers = vec![
        write_layer(&base, &blobs, opts.compression, opts.epoch)?,
        write_layer(&content, &blobs, opts.compression, opts.epoch)?,
    ];
    let mut env = vec![format!("PATH={IMAGE_PATH}"), "LANG=C.UTF-8".to_owned()];
    env.extend(recipe.inputs.env.iter().map(|(k, v)| format!("{k}={v}")));
    let meta = ImageMeta {
        env,
        working_dir: IMAGE_WORKDIR.to_owned(),
        user: IMAGE_USER.to_owned(),
        labels: labels.clone(),
        cmd: None,
        created: rfc3339(opts.epoch),
        ref_name: "latest".to_owned(),
    };
    let written = write_layout(&opts.out, &layers, &meta)?;
    Ok(BuildReport {
        recipe: recipe.name.clone(),
        manifest_digest: written.manifest_digest,
        layers,
        labels,
        elapsed: started.elapsed(),
    })
}

/// Creates `out` (or clears a previous layout there); refuses to clear anything else.
fn prepare_out(out: &Path) -> Result<()> {
    if out.exists() {
        let empty = std::fs::read_dir(out)
            .map_err(output(out))?
            .next()
            .is_none();
        if !empty {
            if !out.join("oci-layout").exists() {
                return Err(BuildError::OutputNotEmpty(out.to_owned()));
            }
            std::fs::remove_dir_all(out).map_err(output(out))?;
        }
    }
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(output(&blobs))
}

fn exclude_set(patterns: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for p in patterns {
        let glob = globset::GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| BuildError::Pattern {
                pattern: p.clone(),
                message: e.to_string(),
            })?;
        set.add(glob);
    }
    set.build().map_err(|e| BuildError::Pattern {
        pattern: patterns.join(", "),
        message: e.to_string(),
    })
}

/// Everything the recipe asks for, copied from the host with its library closure.
pub fn content_tree(inputs: &RecipeFile) -> Result<Tree> {
    let exclude = exclude_set(&inputs.exclude)?;
    let mut tree = Tree::new();
    {
        let mut copier = HostCopier::new(&mut tree, &exclude);
        for path in inputs.binaries.iter().chain(&inputs.paths) {
            copier.add(Path::new(path))?;
        }
        for argv in &inputs.path_commands {
            copier.add(&command::path_from(argv)?)?;
        }
        for package in &inputs.packages {
            for path in command::package_files(package)? {
                copier.add_listed(&path)?;
            }
        }
        if let Some(applets) = &inputs.applets {
            copier.add(Path::new(&applets.binary))?;
        }
        copier.finish_closure()?;
    }
    for (link, target) in &inputs.symlinks {
        let at = tree.resolve_parents(Path::new(link));
        tree.insert(
            &at,
            Node::Symlink {
                target: PathBuf::from(target),
            },
        )?;
    }
    for (path, text) in &inputs.files {
        let at = tree.resolve_parents(Path::new(path));
        tree.insert(
            &at,
            Node::Bytes {
                data: text.clone().into_bytes(),
                mode: 0o644,
            },
        )?;
    }
    if let Some(applets) = &inputs.applets {
        add_applets(&mut tree, &applets.binary, &applets.list_command)?;
    }
    Ok(tree)
}

/// One symlink per applet path the list command prints; existing files are left alone.
fn add_applets(tree: &mut Tree, binary: &str, list_command: &[String]) -> Result<()> {
    let listing = command::output(list_command)?;
    let binary_at = tree.resolve_parents(Path::new(binary));
    for line in listing.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let at = tree.resolve_parents(&Path::new("/").join(line));
        if at == binary_at || tree.contains_key(&at) {
            continue;
        }
        tree.insert(
            &at,
            Node::Symlink {
                target: PathBuf::from(binary),
            },
        )?;
    }
    Ok(())
}

fn labels(recipe: &Recipe) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::from([(LABEL_RECIPE.to_owned(), recipe.name.clone())]);
    let Some(lang) = &recipe.language else {
        return Ok(labels);
    };
    let version = match (&lang.version, &lang.version_command) {
        (Some(v), _) => v.clone(),
        (None, Some(argv)) => command::version_from(argv)?,
        (None, None) => String::new(),
    };
    labels.insert(LABEL_LANGUAGE.to_owned(), lang.name.clone());
    labels.insert(LABEL_VERSION.to_owned(), version);
    labels.insert(LABEL_SOURCE_FILE.to_owned(), lang.source_file.clone());
    labels.insert(LABEL_RUN.to_owned(), lang.run.clone());
    if let Some(compile) = &lang.compile {
        labels.insert(LABEL_COMPILE.to_owned(), compile.clone());
    }
    Ok(labels)
}
