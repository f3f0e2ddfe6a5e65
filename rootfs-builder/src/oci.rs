//! Writes the OCI image layout: `oci-layout`, `index.json`, and config/manifest blobs.
//! JSON is written with sorted keys so the same inputs give the same digests.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, DescriptorBuilder, Digest, ImageConfigurationBuilder,
    ImageIndexBuilder, ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};

use crate::error::{output, Result};
use crate::layer::{Compression, LayerBlob};

/// What the image config says besides its layers.
#[derive(Debug, Clone)]
pub struct ImageMeta {
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    pub labels: BTreeMap<String, String>,
    pub cmd: Option<Vec<String>>,
    /// RFC 3339, from the fixed build epoch.
    pub created: String,
    /// `org.opencontainers.image.ref.name` of the manifest in index.json.
    pub ref_name: String,
}

/// The manifest's digest and the layout's files.
#[derive(Debug, Clone)]
pub struct WrittenLayout {
    pub manifest_digest: String,
    pub config_digest: String,
}

pub fn write_layout(out: &Path, layers: &[LayerBlob], meta: &ImageMeta) -> Result<WrittenLayout> {
    let blobs = out.join("blobs/sha256");
    let mut config = ConfigBuilder::default()
        .env(meta.env.clone())
        .working_dir(meta.working_dir.clone())
        .user(meta.user.clone())
        .labels(meta.labels.clone().into_iter().collect::<HashMap<_, _>>());
    if let Some(cmd) = &meta.cmd {
        config = config.cmd(cmd.clone());
    }
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(
            layers
                .iter()
                .map(|l| format!("sha256:{}", l.diff_id))
                .collect::<Vec<_>>(),
        )
        .build()?;
    let image_config = ImageConfigurationBuilder::default()
        .created(meta.created.clone())
        .architecture(host_arch())
        .os(Os::Linux)
        .config(config.build()?)
        .rootfs(rootfs)
        .build()?;
    let config_desc = write_json_blob(&blobs, &image_config, MediaType::ImageConfig)?;

    let layer_descs = layers
        .iter()
        .map(|l| {
            let media = match l.compression {
                Compression::Gzip => MediaType::ImageLayerGzip,
                Compression::None => MediaType::ImageLayer,
            };
            Ok(Descriptor::new(media, l.size, digest(&l.digest)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_desc.clone())
        .layers(layer_descs)
        .build()?;
    let manifest_desc = write_json_blob(&blobs, &manifest, MediaType::ImageManifest)?;

    let annotated = DescriptorBuilder::default()
        .media_type(MediaType::ImageManifest)
        .size(manifest_desc.size())
        .digest(manifest_desc.digest().clone())
        .annotations(HashMap::from([(
            "org.opencontainers.image.ref.name".to_owned(),
            meta.ref_name.clone(),
        )]))
        .build()?;
    let index = ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(vec![annotated])
        .build()?;
    let index_path = out.join("index.json");
    std::fs::write(&index_path, canonical_json(&index)?).map_err(output(&index_path))?;
    let layout_path = out.join("oci-layout");
    std::fs::write(&layout_path, b"{\"imageLayoutVersion\":\"1.0.0\"}")
        .map_err(output(&layout_path))?;
    Ok(WrittenLayout {
        manifest_digest: manifest_desc.digest().to_string(),
        config_digest: config_desc.digest().to_string(),
    })
}

fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        "riscv64" => Arch::RISCV64,
        other => Arch::Other(other.to_owned()),
    }
}

fn digest(hex: &str) -> Result<Digest> {
    Ok(Digest::from_str(&format!("sha256:{hex}"))?)
}

fn write_json_blob<T: serde::Serialize>(
    blobs: &Path,
    value: &T,
    media: MediaType,
) -> Result<Descriptor> {
    let bytes = canonical_json(value)?;
    let hex = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    let path = blobs.join(&hex);
    std::fs::write(&path, &bytes).map_err(output(&path))?;
    Ok(Descriptor::new(media, bytes.len() as u64, digest(&hex)?))
}

/// JSON with object keys sorted at every level (oci-spec keeps labels in a HashMap).
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    let v = serde_json::to_value(value)?;
    Ok(serde_json::to_vec(&sorted(v))?)
}

fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

/// `SOURCE_DATE_EPOCH` seconds as RFC 3339 UTC.
pub fn rfc3339(epoch: u64) -> String {
    let days = (epoch / 86400) as i64;
    let secs = epoch % 86400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_epochs() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let mut m = HashMap::new();
        for k in ["zeta", "alpha", "mid"] {
            m.insert(k.to_owned(), HashMap::from([("b", 1), ("a", 2)]));
        }
        let text = String::from_utf8(canonical_json(&m).unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"alpha":{"a":2,"b":1},"mid":{"a":2,"b":1},"zeta":{"a":2,"b":1}}"#
        );
    }
}
