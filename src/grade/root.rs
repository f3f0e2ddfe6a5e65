//! Where cells of a suite run: a rootfs directory, an image of the store, or a language's
//! image; and the language its labels describe (read by [`crate::lang::Language`], the one
//! parser of the `org.sandcell.*` labels).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::source::FileSource;
use crate::image::{Defaults, Given};
use crate::lang::Language;
use crate::spec::{Limits, RunSpec};

/// What the suite names as the place to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootRef {
    /// A host directory, relative to the suite.
    Rootfs(String),
    Image(String),
    Language(String),
}

/// A root filesystem ready for cells, with its image defaults.
#[derive(Clone)]
pub struct ResolvedRoot {
    pub rootfs: PathBuf,
    /// Environment from the image config (PATH first if the image sets one).
    pub env: Vec<(String, String)>,
    /// The image's `User` (uid, gid) if it names one that is not root.
    pub user: Option<(u32, u32)>,
    pub labels: BTreeMap<String, String>,
    /// Keeps the image from being removed while the suite runs (an image lease).
    pub lease: Option<Arc<dyn std::any::Any + Send + Sync>>,
}

impl std::fmt::Debug for ResolvedRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedRoot")
            .field("rootfs", &self.rootfs)
            .field("env", &self.env)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

impl ResolvedRoot {
    /// A plain directory without labels or environment.
    pub fn dir(rootfs: impl Into<PathBuf>) -> Self {
        ResolvedRoot {
            rootfs: rootfs.into(),
            env: Vec::new(),
            user: None,
            labels: BTreeMap::new(),
            lease: None,
        }
    }

    /// A cell's spec on this root: the image defaults ([`Defaults::apply`]: its user; `env`
    /// is the suite's or checker's environment, already over the image's), in the work dir.
    pub fn cell_spec(
        &self,
        env: &[(String, String)],
        argv: Vec<String>,
        limits: &Limits,
        allow_degraded: bool,
    ) -> RunSpec {
        let mut spec = RunSpec::new(&self.rootfs, argv);
        spec.env = env.to_vec();
        let defaults = Defaults {
            user: self.user,
            ..Defaults::default()
        };
        // Cannot fail: the command is given.
        let _ = defaults.apply(&mut spec, Given::COMMAND_AND_DIR);
        spec.limits = limits.clone();
        spec.allow_degraded = allow_degraded;
        spec
    }

    /// The language the image's labels describe (source file, compile and run commands),
    /// if any; malformed labels are an error naming the label.
    pub fn language(&self) -> Result<Option<Language>, String> {
        Language::from_labels(&self.rootfs.display().to_string(), &self.labels)
            .map_err(|e| e.to_string())
    }
}

/// Turns a [`RootRef`] into a rootfs. The CLI resolves directories and the local image
/// store; the daemon refuses host directories.
pub trait RootResolver {
    fn resolve(&self, root: &RootRef, source: &dyn FileSource) -> Result<ResolvedRoot, String>;
}

/// Resolves images (and languages) through the local image store, and `rootfs` directories
/// when `allow_rootfs_dirs` is set.
#[derive(Debug, Clone)]
pub struct StoreResolver {
    pub state_dir: PathBuf,
    pub allow_rootfs_dirs: bool,
}

impl StoreResolver {
    /// `ERROR (image store: STATE_DIR)`: which store was searched matters when the user
    /// imported the image into another one.
    fn in_store(&self, e: impl std::fmt::Display) -> String {
        format!("{e} (image store: {})", self.state_dir.display())
    }

    fn lease(&self, name: &str) -> Result<ResolvedRoot, String> {
        let store =
            crate::image::ImageStore::open(&self.state_dir).map_err(|e| self.in_store(e))?;
        let lease = store.lease(name).map_err(|e| self.in_store(e))?;
        let defaults = crate::image::Defaults::of(&lease.image.config, &lease.image.rootfs);
        Ok(ResolvedRoot {
            rootfs: lease.image.rootfs.clone(),
            env: defaults.env,
            user: defaults.user,
            labels: lease.image.config.labels.clone(),
            lease: Some(Arc::new(lease)),
        })
    }
}

impl RootResolver for StoreResolver {
    fn resolve(&self, root: &RootRef, source: &dyn FileSource) -> Result<ResolvedRoot, String> {
        match root {
            RootRef::Rootfs(dir) => {
                if !self.allow_rootfs_dirs {
                    return Err("rootfs directories are not allowed here; name an image".into());
                }
                let path = source
                    .host_path(dir)
                    .ok_or("rootfs directories need a suite file on this host")?;
                let path =
                    std::fs::canonicalize(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                if !path.is_dir() {
                    return Err(format!("{} is not a directory", path.display()));
                }
                Ok(ResolvedRoot::dir(path))
            }
            RootRef::Image(name) => self.lease(name),
            RootRef::Language(lang) => {
                let store = crate::image::ImageStore::open(&self.state_dir)
                    .map_err(|e| self.in_store(e))?;
                let (language, _) = crate::lang::find_language(&store, lang).map_err(|e| {
                    format!(
                        "{} — build the images with scripts/build-images (SANDCELL_STATE_DIR={} \
                         for this store), or name an image",
                        self.in_store(e),
                        self.state_dir.display()
                    )
                })?;
                self.lease(&language.image)
            }
        }
    }
}

/// Resolves only `rootfs` directories (tests, hosts without an image store).
#[derive(Debug, Clone, Default)]
pub struct DirResolver;

impl RootResolver for DirResolver {
    fn resolve(&self, root: &RootRef, source: &dyn FileSource) -> Result<ResolvedRoot, String> {
        match root {
            RootRef::Rootfs(dir) => {
                let path = source
                    .host_path(dir)
                    .ok_or("rootfs needs a host directory")?;
                if !path.is_dir() {
                    return Err(format!("{} is not a directory", path.display()));
                }
                Ok(ResolvedRoot::dir(path))
            }
            other => Err(format!("{other:?}: no image store configured")),
        }
    }
}
