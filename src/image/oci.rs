//! OCI image layouts: `oci-layout`, `index.json`, `blobs/sha256/<hex>`.
//!
//! Every blob is addressed only through a validated digest (`sha256:` + 64 lowercase hex, so a
//! descriptor can never name a path like `../x`), opened beneath the layout directory with
//! `openat2(RESOLVE_BENEATH)`, and checked against its descriptor's size and sha256: small
//! JSON blobs before they are parsed, layers while they stream through the extractor (a
//! mismatch aborts the import before anything becomes visible).

use super::stream::ArchiveStream;
use super::unpack::{unpack, UnpackOptions, UnpackStats};
use super::{ImageConfig, ImageError, Meter};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;

/// Manifests, configs and index.json larger than this are refused.
const MAX_JSON: u64 = 4 << 20;
/// Nested indexes followed at most this deep.
const MAX_INDEX_DEPTH: usize = 4;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// One applied layer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LayerRecord {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

/// What importing a layout produced.
#[derive(Debug, Clone)]
pub struct OciImport {
    pub manifest_digest: String,
    pub config_digest: String,
    pub manifest: Vec<u8>,
    pub config_json: Vec<u8>,
    pub config: ImageConfig,
    pub layers: Vec<LayerRecord>,
    pub stats: UnpackStats,
}

/// True when `dir` looks like an OCI image layout (an `oci-layout` file, `index.json`, `blobs/`).
pub fn is_layout(dir: &Path) -> bool {
    let file = |p: &str| {
        std::fs::symlink_metadata(dir.join(p))
            .map(|m| m.is_file())
            .unwrap_or(false)
    };
    let is_dir = std::fs::symlink_metadata(dir.join("blobs"))
        .map(|m| m.is_dir())
        .unwrap_or(false);
    file("oci-layout") && file("index.json") && is_dir
}

/// The path of a blob inside a layout, from a digest string; refuses anything but
/// `sha256:<64 lowercase hex>`.
pub fn blob_path(digest: &str) -> Result<String, ImageError> {
    let hex = digest.strip_prefix("sha256:").ok_or_else(|| {
        ImageError::Unsupported(format!("digest {digest:?}: only sha256 is supported"))
    })?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(ImageError::Oci(format!(
            "descriptor digest {digest:?} is not sha256:<64 hex> (refusing it as a blob path)"
        )));
    }
    Ok(format!("blobs/sha256/{hex}"))
}

/// Parses `index.json` (or a nested index blob).
pub fn parse_index(bytes: &[u8]) -> Result<ImageIndex, ImageError> {
    ImageIndex::from_reader(bytes).map_err(|e| ImageError::Oci(format!("index: {e}")))
}

/// Parses an image manifest.
pub fn parse_manifest(bytes: &[u8]) -> Result<ImageManifest, ImageError> {
    ImageManifest::from_reader(bytes).map_err(|e| ImageError::Oci(format!("manifest: {e}")))
}

/// Parses an image config.
pub fn parse_config(bytes: &[u8]) -> Result<ImageConfiguration, ImageError> {
    ImageConfiguration::from_reader(bytes).map_err(|e| ImageError::Oci(format!("config: {e}")))
}

/// A layout directory opened once; every blob is opened beneath it.
pub struct Layout {
    dir: OwnedFd,
}

impl Layout {
    pub fn open(path: &Path) -> Result<Layout, ImageError> {
        let dir = File::open(path)
            .map_err(|e| ImageError::io(format!("opening {}", path.display()), e))?;
        Ok(Layout { dir: dir.into() })
    }

    fn open_file(&self, rel: &str) -> Result<File, ImageError> {
        let how = OpenHow::new()
            .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let fd = openat2(&self.dir, rel, how).map_err(|e| match e {
            nix::Error::ENOENT => ImageError::Oci(format!("{rel} is missing")),
            nix::Error::EXDEV | nix::Error::ELOOP => {
                ImageError::Oci(format!("{rel} points outside the layout"))
            }
            e => ImageError::sys(format!("opening {rel} in the layout"), e),
        })?;
        let file = File::from(fd);
        let md = file
            .metadata()
            .map_err(|e| ImageError::io(format!("stat {rel}"), e))?;
        if !md.is_file() {
            return Err(ImageError::Oci(format!("{rel} is not a regular file")));
        }
        Ok(file)
    }

    fn read_small(&self, rel: &str) -> Result<Vec<u8>, ImageError> {
        let file = self.open_file(rel)?;
        let mut buf = Vec::new();
        file.take(MAX_JSON + 1)
            .read_to_end(&mut buf)
            .map_err(|e| ImageError::io(format!("reading {rel}"), e))?;
        if buf.len() as u64 > MAX_JSON {
            return Err(ImageError::Oci(format!(
                "{rel} is larger than {MAX_JSON} bytes"
            )));
        }
        Ok(buf)
    }

    /// Reads a small JSON blob and verifies its size and digest.
    fn read_blob(&self, what: &str, desc: &Descriptor) -> Result<Vec<u8>, ImageError> {
        let digest = desc.digest().to_string();
        let rel = blob_path(&digest)?;
        if desc.size() > MAX_JSON {
            return Err(ImageError::Oci(format!(
                "{what} {digest} is larger than {MAX_JSON} bytes"
            )));
        }
        let bytes = self.read_small(&rel)?;
        verify(what, desc, &sha256(&bytes), bytes.len() as u64)?;
        Ok(bytes)
    }
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn verify(what: &str, desc: &Descriptor, actual: &str, size: u64) -> Result<(), ImageError> {
    let expected = desc.digest().to_string();
    if actual != expected {
        return Err(ImageError::DigestMismatch {
            what: what.to_string(),
            expected,
            actual: actual.to_string(),
        });
    }
    if size != desc.size() {
        return Err(ImageError::SizeMismatch {
            what: what.to_string(),
            expected: desc.size(),
            actual: size,
        });
    }
    Ok(())
}

fn media(m: &MediaType) -> String {
    m.to_string()
}

fn is_manifest(d: &Descriptor) -> bool {
    matches!(d.media_type(), MediaType::ImageManifest) || media(d.media_type()) == DOCKER_MANIFEST
}

fn is_index(d: &Descriptor) -> bool {
    matches!(d.media_type(), MediaType::ImageIndex) || media(d.media_type()) == DOCKER_LIST
}

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// Picks the manifest descriptor for this host from an index: the only manifest, or the one
/// for linux/<host arch>; nested indexes are followed.
fn choose_manifest(
    layout: &Layout,
    index: &ImageIndex,
    depth: usize,
) -> Result<Descriptor, ImageError> {
    if depth > MAX_INDEX_DEPTH {
        return Err(ImageError::Oci("indexes nested too deeply".into()));
    }
    let candidates: Vec<&Descriptor> = index
        .manifests()
        .iter()
        .filter(|d| is_manifest(d) || is_index(d))
        .collect();
    let pick = match candidates.as_slice() {
        [] => return Err(ImageError::Oci("the index lists no image manifest".into())),
        [one] => *one,
        many => many
            .iter()
            .find(|d| {
                d.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == "linux" && p.architecture().to_string() == host_arch()
                })
            })
            .copied()
            .ok_or_else(|| {
                ImageError::Oci(format!(
                    "the index lists {} manifests and none is for linux/{}",
                    many.len(),
                    host_arch()
                ))
            })?,
    };
    if is_index(pick) {
        let nested = parse_index(&layout.read_blob("nested index", pick)?)?;
        return choose_manifest(layout, &nested, depth + 1);
    }
    Ok(pick.clone())
}

enum LayerCompression {
    Tar,
    Gzip,
}

fn layer_kind(m: &MediaType) -> Result<LayerCompression, ImageError> {
    use MediaType as M;
    match m {
        M::ImageLayer | M::ImageLayerNonDistributable => Ok(LayerCompression::Tar),
        M::ImageLayerGzip | M::ImageLayerNonDistributableGzip => Ok(LayerCompression::Gzip),
        M::ImageLayerZstd | M::ImageLayerNonDistributableZstd => Err(ImageError::Unsupported(
            "zstd-compressed layers (re-export the image with gzip layers)".into(),
        )),
        other => match media(other).as_str() {
            "application/vnd.docker.image.rootfs.diff.tar.gzip" => Ok(LayerCompression::Gzip),
            "application/vnd.docker.image.rootfs.diff.tar" => Ok(LayerCompression::Tar),
            s => Err(ImageError::Unsupported(format!("layer media type {s:?}"))),
        },
    }
}

/// Imports the layout at `path`: picks the manifest, verifies and parses it and the config,
/// then applies every layer in order into `target` (which must exist and be empty).
pub fn import_layout(
    path: &Path,
    target: &Path,
    keep_setid: bool,
    meter: Arc<Meter>,
    tick: &mut dyn FnMut(),
) -> Result<OciImport, ImageError> {
    let layout = Layout::open(path)?;
    let marker = layout.read_small("oci-layout")?;
    let marker: serde_json::Value =
        serde_json::from_slice(&marker).map_err(|e| ImageError::Oci(format!("oci-layout: {e}")))?;
    if marker
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .is_none()
    {
        return Err(ImageError::Oci(
            "oci-layout has no imageLayoutVersion".into(),
        ));
    }
    let index = parse_index(&layout.read_small("index.json")?)?;
    let mdesc = choose_manifest(&layout, &index, 0)?;
    let manifest_bytes = layout.read_blob("manifest", &mdesc)?;
    let manifest = parse_manifest(&manifest_bytes)?;
    let cdesc = manifest.config();
    let config_json = layout.read_blob("config", cdesc)?;
    let config = parse_config(&config_json)?;

    let opts = UnpackOptions {
        keep_setid,
        whiteouts: true,
    };
    let mut stats = UnpackStats::default();
    let mut layers = Vec::new();
    for (i, desc) in manifest.layers().iter().enumerate() {
        let what = format!("layer {} ({})", i + 1, desc.digest());
        layer_kind(desc.media_type())?;
        let rel = blob_path(desc.digest().as_ref())?;
        let file = layout.open_file(&rel)?;
        let size = file
            .metadata()
            .map_err(|e| ImageError::io(format!("stat {rel}"), e))?
            .len();
        if size != desc.size() {
            return Err(ImageError::SizeMismatch {
                what,
                expected: desc.size(),
                actual: size,
            });
        }
        // Compression is sniffed from the bytes (some tools mislabel layers); the digest is
        // checked once the whole blob has streamed through, before anything is committed.
        let mut stream = ArchiveStream::spawn(file, meter.clone())?;
        let s = unpack(&mut stream, target, &opts, &meter, tick)?;
        let raw = stream.finish()?;
        verify(&what, desc, &raw.digest, raw.raw_bytes)?;
        stats.add(&s);
        layers.push(LayerRecord {
            digest: desc.digest().to_string(),
            media_type: media(desc.media_type()),
            size: desc.size(),
        });
    }
    Ok(OciImport {
        manifest_digest: mdesc.digest().to_string(),
        config_digest: cdesc.digest().to_string(),
        manifest: manifest_bytes,
        config_json,
        config: ImageConfig::from_oci(&config),
        layers,
        stats,
    })
}

/// Total size of the layers a layout's chosen manifest lists (for progress), best effort.
pub fn layers_size(path: &Path) -> Option<u64> {
    let layout = Layout::open(path).ok()?;
    let index = parse_index(&layout.read_small("index.json").ok()?).ok()?;
    let mdesc = choose_manifest(&layout, &index, 0).ok()?;
    let manifest = parse_manifest(&layout.read_blob("manifest", &mdesc).ok()?).ok()?;
    Some(manifest.layers().iter().map(|l| l.size()).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_paths_are_strict() {
        let ok = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            blob_path(&ok).unwrap(),
            format!("blobs/sha256/{}", "a".repeat(64))
        );
        assert!(blob_path("sha256:../../etc/passwd").is_err());
        assert!(blob_path(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(blob_path(&format!("sha512:{}", "a".repeat(128))).is_err());
        assert!(blob_path(&format!("sha256:{}/", "a".repeat(63))).is_err());
    }
}
