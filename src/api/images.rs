//! Images and languages the daemon serves, by name. Until the content-addressed image store
//! serves the daemon, images are configured directories (`[images.NAME] rootfs = ...`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::config::{LanguageEntry, ServeConfig};

/// A servable image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogImage {
    pub name: String,
    pub rootfs: PathBuf,
}

/// Names to rootfs directories and language definitions.
#[derive(Debug, Clone, Default)]
pub struct ImageCatalog {
    images: BTreeMap<String, CatalogImage>,
    languages: BTreeMap<String, LanguageEntry>,
}

impl ImageCatalog {
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
        }
    }

    pub fn image(&self, name: &str) -> Option<&CatalogImage> {
        self.images.get(name)
    }

    pub fn language(&self, name: &str) -> Option<&LanguageEntry> {
        self.languages.get(name)
    }

    pub fn images(&self) -> impl Iterator<Item = &CatalogImage> {
        self.images.values()
    }

    pub fn languages(&self) -> impl Iterator<Item = (&String, &LanguageEntry)> {
        self.languages.iter()
    }
}
