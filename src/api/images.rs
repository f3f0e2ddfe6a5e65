//! Images and languages the daemon serves, by name: configured rootfs directories
//! (`[images.NAME] rootfs = ...`, `--image NAME=DIR`) and `[languages.NAME]` entries first,
//! then the content-addressed image store in the daemon's state dir and the languages its
//! images' labels describe.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::config::{LanguageEntry, ServeConfig};
use super::error::ApiError;
use crate::image::{ImageConfig, ImageError, ImageLease, ImageStore};
use crate::lang::{self, LangError, Language};

/// A configured (directory) image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogImage {
    pub name: String,
    pub rootfs: PathBuf,
}

/// An image a run uses: its rootfs, the store's defaults (none for configured directories)
/// and, for store images, the lease that keeps `image rm` away while the run needs it.
#[derive(Debug)]
pub struct ServedImage {
    pub name: String,
    pub rootfs: PathBuf,
    pub config: Option<ImageConfig>,
    pub lease: Option<ImageLease>,
}

/// A language a run names.
#[derive(Debug)]
pub enum ServedLanguage<'a> {
    /// `[languages.NAME]`: an image plus a command, no compile step.
    Configured(&'a LanguageEntry),
    /// From a store image's labels (maybe compiled), with the image leased.
    Store {
        language: Box<Language>,
        lease: Box<ImageLease>,
    },
}

/// Names to rootfs directories and language definitions, plus the image store.
#[derive(Debug, Clone, Default)]
pub struct ImageCatalog {
    images: BTreeMap<String, CatalogImage>,
    languages: BTreeMap<String, LanguageEntry>,
    store: Option<ImageStore>,
}

fn unknown_image(name: &str, why: impl std::fmt::Display) -> ApiError {
    ApiError::unprocessable("unknown_image", format!("no image named {name:?} ({why})"))
}

fn store_failure(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("image store: {e}"))
}

impl ImageCatalog {
    /// The configured images and languages only (no store).
    pub fn from_config(config: &ServeConfig) -> ImageCatalog {
        let images = config
            .images
            .iter()
            .map(|(name, entry)| {
                if !entry.rootfs.join("bin").exists() && !entry.rootfs.join("usr").exists() {
                    tracing::warn!(image = %name, rootfs = %entry.rootfs.display(), "image rootfs looks empty");
                }
                (
                    name.clone(),
                    CatalogImage {
                        name: name.clone(),
                        rootfs: entry.rootfs.clone(),
                    },
                )
            })
            .collect();
        ImageCatalog {
            images,
            languages: config.languages.clone(),
            store: None,
        }
    }

    /// Adds the image store under `state_dir` (logged and left out when it cannot be opened).
    pub fn with_store(mut self, state_dir: &Path) -> ImageCatalog {
        match ImageStore::open(state_dir) {
            Ok(store) => self.store = Some(store),
            Err(e) => {
                tracing::warn!(error = %e, "image store unavailable; serving configured images only")
            }
        }
        self
    }

    pub fn store(&self) -> Option<&ImageStore> {
        self.store.as_ref()
    }

    /// A configured image.
    pub fn image(&self, name: &str) -> Option<&CatalogImage> {
        self.images.get(name)
    }

    /// A configured language.
    pub fn language(&self, name: &str) -> Option<&LanguageEntry> {
        self.languages.get(name)
    }

    /// Configured images.
    pub fn images(&self) -> impl Iterator<Item = &CatalogImage> {
        self.images.values()
    }

    /// Configured languages.
    pub fn languages(&self) -> impl Iterator<Item = (&String, &LanguageEntry)> {
        self.languages.iter()
    }

    /// `name` as a configured directory, else from the store (leased); unknown → 422.
    pub fn serve_image(&self, name: &str) -> Result<ServedImage, ApiError> {
        if let Some(image) = self.images.get(name) {
            return Ok(ServedImage {
                name: image.name.clone(),
                rootfs: image.rootfs.clone(),
                config: None,
                lease: None,
            });
        }
        let Some(store) = &self.store else {
            return Err(unknown_image(name, "no image store"));
        };
        match store.lease(name) {
            Ok(lease) => Ok(ServedImage {
                name: lease.image.name.clone(),
                rootfs: lease.image.rootfs.clone(),
                config: Some(lease.image.config.clone()),
                lease: Some(lease),
            }),
            Err(e @ (ImageError::NotFound(_) | ImageError::Ambiguous(_))) => {
                Err(unknown_image(name, e))
            }
            Err(e) => Err(store_failure(e)),
        }
    }

    /// `name` as a configured language, else a language of the store (name, name:version or
    /// image reference); unknown → 422.
    pub fn serve_language(&self, name: &str) -> Result<ServedLanguage<'_>, ApiError> {
        if let Some(entry) = self.languages.get(name) {
            return Ok(ServedLanguage::Configured(entry));
        }
        let unknown =
            || ApiError::unprocessable("unknown_language", format!("no language named {name:?}"));
        let Some(store) = &self.store else {
            return Err(unknown());
        };
        let (language, image) = match lang::find_language(store, name) {
            Ok(found) => found,
            Err(LangError::UnknownLanguage(_)) => return Err(unknown()),
            Err(e @ LangError::BadLabels { .. }) => {
                return Err(ApiError::unprocessable("unknown_language", e.to_string()))
            }
            Err(e) => return Err(store_failure(e)),
        };
        // By id: the name could be re-tagged between lookup and lease.
        let lease = store.lease(&image.id).map_err(|e| match e {
            ImageError::NotFound(_) => unknown(),
            e => store_failure(e),
        })?;
        Ok(ServedLanguage::Store {
            language: Box::new(language),
            lease: Box::new(lease),
        })
    }
}
