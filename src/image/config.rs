//! The image defaults a run uses: environment, entrypoint/cmd, working dir, user, labels.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Defaults taken from an OCI image config (empty for plain rootfs tarballs).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub env: Vec<(String, String)>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
}

impl ImageConfig {
    /// Builds the defaults from an OCI image configuration.
    pub fn from_oci(config: &oci_spec::image::ImageConfiguration) -> ImageConfig {
        let Some(c) = config.config() else {
            return ImageConfig::default();
        };
        let env = c
            .env()
            .iter()
            .flatten()
            .map(|kv| match kv.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (kv.clone(), String::new()),
            })
            .collect();
        ImageConfig {
            env,
            entrypoint: c.entrypoint().clone().unwrap_or_default(),
            cmd: c.cmd().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
            user: c.user().clone().filter(|u| !u.is_empty()),
            labels: c
                .labels()
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// The command a run uses when the user gives none: entrypoint followed by cmd.
    pub fn default_command(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}
