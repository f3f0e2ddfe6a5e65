//! [`ImageStore`]: import, resolve, lease, list, inspect, remove and prune images.
//!
//! Crash safety: an import unpacks into `tmp/<x>/image` (with `tmp/<x>.lock` flocked by the
//! importer), then renames it to `by-id/<id>` and rewrites `index.json` atomically. A killed
//! importer leaves only `tmp/<x>` whose lock nobody holds; later imports and `prune` sweep it.
//! An image becomes visible only through the index, which never names a half-written tree.
//!
//! Durability: extracted files are not fsynced (per-file fsync would make imports several times
//! slower than `tar -xf`); the index is fsynced and renamed. A crash of the importer (SIGKILL,
//! panic) is fully safe; after a power loss an image committed in the last seconds may have lost
//! file contents — remove and re-import it.

use super::fsutil::{ensure_cell_dirs, remove_dir_all, tree_size};
use super::index::{sync_dir, ImageRecord, Index};
use super::lock::{self, Locked, Mode};
use super::names::{key, parse_reference, split_key};
use super::progress::Progress;
use super::unpack::UnpackOptions;
use super::{oci, tarball, ImageConfig, ImageError, Meter, UnpackLimits};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Options of [`ImageStore::import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Keep setuid/setgid bits (default: strip them).
    pub keep_setid: bool,
    pub limits: UnpackLimits,
    /// Show a progress bar on stderr (only when it is a terminal and the import is slow).
    pub progress: bool,
}

/// One line of `image ls`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// `<none>` for an image that lost its last name (prune removes those).
    pub name: String,
    pub tag: String,
    pub id: String,
    /// Bytes of regular files in the rootfs.
    pub size: u64,
    /// Unix seconds.
    pub created: u64,
    pub source: String,
    pub layers: usize,
}

/// An image ready for a run.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    pub id: String,
    /// The reference it was resolved from, normalised (`name:tag`, or the id).
    pub name: String,
    /// The unpacked root filesystem (bind-mount it read-only).
    pub rootfs: PathBuf,
    pub config: ImageConfig,
}

/// A shared lock on an image: while it lives, `remove` and `prune` leave the image alone.
#[derive(Debug)]
pub struct ImageLease {
    pub image: ResolvedImage,
    _lock: Locked,
}

/// What `prune` removed.
#[derive(Serialize, Clone, Debug, Default)]
pub struct PruneReport {
    /// Ids of images that had no name left.
    pub images: Vec<String>,
    /// Leftovers of interrupted imports and removals.
    pub temp_dirs: u64,
    /// Blobs no image refers to.
    pub blobs: u64,
}

/// The content-addressed image store under `<state_dir>/images`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
}

/// A directory in `tmp/` owned (flocked) by this process; removed on drop.
struct TempDir {
    dir: PathBuf,
    lock_path: PathBuf,
    _lock: Locked,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(&self.lock_path);
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn mkdir(path: &Path, mode: u32) -> Result<(), ImageError> {
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(ImageError::io(format!("creating {}", path.display()), e)),
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| ImageError::io(format!("chmod {}", path.display()), e))
}

/// The image id: a digest of what was imported and how (so `--keep-setid` gets its own id).
fn image_id(source_digest: &str, keep_setid: bool) -> String {
    let mut h = Sha256::new();
    h.update(b"sandcell-image-v1\0");
    h.update(source_digest.as_bytes());
    h.update(if keep_setid {
        b"\0keep-setid" as &[u8]
    } else {
        b"\0strip-setid"
    });
    hex::encode(h.finalize())
}

impl ImageStore {
    /// Opens (creating as needed) the store under `<state_dir>/images`.
    pub fn open(state_dir: &Path) -> Result<ImageStore, ImageError> {
        let root = state_dir.join("images");
        std::fs::create_dir_all(state_dir)
            .map_err(|e| ImageError::io(format!("creating {}", state_dir.display()), e))?;
        mkdir(&root, 0o755)?;
        mkdir(&root.join("blobs"), 0o755)?;
        mkdir(&root.join("blobs/sha256"), 0o755)?;
        mkdir(&root.join("by-id"), 0o755)?;
        mkdir(&root.join("tmp"), 0o700)?;
        Ok(ImageStore { root })
    }

    /// The store directory (`<state_dir>/images`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("index.json")
    }

    fn image_dir(&self, id: &str) -> PathBuf {
        self.root.join("by-id").join(id)
    }

    fn lease_path(&self, id: &str) -> PathBuf {
        self.image_dir(id).join("lease.lock")
    }

    fn store_lock(&self) -> Result<Locked, ImageError> {
        lock::lock(&self.root.join(".lock"), Mode::Exclusive)?.ok_or_else(|| ImageError::Index {
            path: self.root.display().to_string(),
            reason: "could not lock the store".into(),
        })
    }

    fn load(&self) -> Result<Index, ImageError> {
        Index::load(&self.index_path())
    }

    /// Creates `tmp/<random>` with its lock held (the lock file appears already locked).
    fn temp_dir(&self, prefix: &str) -> Result<TempDir, ImageError> {
        let tmp = self.root.join("tmp");
        let name = format!("{prefix}-{:016x}", rand::random::<u64>());
        let staging = tmp.join(format!(".new-{name}"));
        let lock_path = tmp.join(format!("{name}.lock"));
        let locked = lock::lock(&staging, Mode::Exclusive)?.ok_or_else(|| ImageError::Index {
            path: staging.display().to_string(),
            reason: "could not lock".into(),
        })?;
        std::fs::rename(&staging, &lock_path)
            .map_err(|e| ImageError::io(format!("renaming {}", staging.display()), e))?;
        let dir = tmp.join(&name);
        mkdir(&dir, 0o700)?;
        Ok(TempDir {
            dir,
            lock_path,
            _lock: locked,
        })
    }

    /// Removes leftovers of importers and removers that died: `tmp/<x>` whose `<x>.lock`
    /// nobody holds (or that has none). Returns how many were removed.
    fn sweep_tmp(&self) -> u64 {
        let tmp = self.root.join("tmp");
        let Ok(rd) = std::fs::read_dir(&tmp) else {
            return 0;
        };
        let mut removed = 0;
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if let Some(base) = name.strip_suffix(".lock") {
                if let Ok(Some(_held)) = lock::lock(&path, Mode::TryExclusive) {
                    if remove_dir_all(&tmp.join(base)).is_ok() {
                        let _ = std::fs::remove_file(&path);
                        removed += 1;
                    }
                }
            } else if name.starts_with(".new-") {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(600));
                if old {
                    let _ = std::fs::remove_file(&path);
                }
            } else if !tmp.join(format!("{name}.lock")).exists() && remove_dir_all(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Imports the tarball (`.tar`, `.tar.gz`), OCI layout directory or OCI archive at `path`
    /// under `name` (`name[:tag]`). Importing the same content again reuses the unpacked image.
    pub fn import(
        &self,
        path: &Path,
        name: &str,
        opts: &ImportOptions,
    ) -> Result<ImageInfo, ImageError> {
        let (image_name, tag) = parse_reference(name)?;
        self.sweep_tmp();
        let md = std::fs::metadata(path)
            .map_err(|e| ImageError::io(format!("opening {}", path.display()), e))?;
        let work = self.temp_dir("import")?;
        let image_dir = work.dir.join("image");
        let rootfs = image_dir.join("rootfs");
        mkdir(&image_dir, 0o755)?;
        mkdir(&rootfs, 0o755)?;

        let meter = Arc::new(Meter::new(opts.limits.clone()));
        let total = if md.is_dir() {
            oci::layers_size(path).unwrap_or(0)
        } else {
            md.len()
        };
        let mut progress = Progress::new(opts.progress, total);
        let imported = {
            let m = meter.clone();
            let mut tick = || progress.set(m.compressed());
            if md.is_dir() {
                if !oci::is_layout(path) {
                    return Err(ImageError::Oci(format!(
                        "{} is a directory but not an OCI image layout (no oci-layout, index.json, blobs/)",
                        path.display()
                    )));
                }
                let o =
                    oci::import_layout(path, &rootfs, opts.keep_setid, meter.clone(), &mut tick)?;
                Imported::Oci("oci-layout", Box::new(o))
            } else {
                let file = File::open(path)
                    .map_err(|e| ImageError::io(format!("opening {}", path.display()), e))?;
                let unpack_opts = UnpackOptions {
                    keep_setid: opts.keep_setid,
                    whiteouts: false,
                };
                let (stats, raw) =
                    tarball::unpack_tarball(file, &rootfs, &unpack_opts, meter.clone(), &mut tick)?;
                if oci::is_layout(&rootfs) {
                    // An oci-archive: what we unpacked is a layout; import the image from it.
                    let layout = work.dir.join("layout");
                    std::fs::rename(&rootfs, &layout)
                        .map_err(|e| ImageError::io("moving the unpacked OCI archive", e))?;
                    mkdir(&rootfs, 0o755)?;
                    let layer_meter = Arc::new(Meter::new(opts.limits.clone()));
                    let o = oci::import_layout(
                        &layout,
                        &rootfs,
                        opts.keep_setid,
                        layer_meter,
                        &mut tick,
                    )?;
                    remove_dir_all(&layout)?;
                    Imported::Oci("oci-archive", Box::new(o))
                } else {
                    Imported::Tarball(stats, raw.digest)
                }
            }
        };
        progress.finish();

        let root_fd: std::os::fd::OwnedFd = File::open(&rootfs)
            .map_err(|e| ImageError::io(format!("opening {}", rootfs.display()), e))?
            .into();
        ensure_cell_dirs(&root_fd)?;
        drop(root_fd);
        File::create(image_dir.join("lease.lock"))
            .map_err(|e| ImageError::io("creating the lease lock", e))?;

        let size = tree_size(&rootfs);
        let mut record = match imported {
            Imported::Tarball(stats, digest) => ImageRecord {
                id: image_id(&digest, opts.keep_setid),
                source: "tarball".into(),
                digest,
                created: now(),
                size,
                keep_setid: opts.keep_setid,
                config: ImageConfig::default(),
                layers: Vec::new(),
                manifest_digest: None,
                config_digest: None,
                stats,
            },
            Imported::Oci(source, o) => {
                self.put_blob(&o.manifest_digest, &o.manifest)?;
                self.put_blob(&o.config_digest, &o.config_json)?;
                ImageRecord {
                    id: image_id(&o.manifest_digest, opts.keep_setid),
                    source: source.into(),
                    digest: o.manifest_digest.clone(),
                    created: now(),
                    size,
                    keep_setid: opts.keep_setid,
                    config: o.config,
                    layers: o.layers,
                    manifest_digest: Some(o.manifest_digest),
                    config_digest: Some(o.config_digest),
                    stats: o.stats,
                }
            }
        };
        if record.stats.skipped_special > 0 {
            tracing::warn!(
                "skipped {} device nodes, FIFOs or sockets in the archive",
                record.stats.skipped_special
            );
        }

        // Commit: rename into place and name it, under the store lock.
        let _guard = self.store_lock()?;
        let mut index = self.load()?;
        let id = record.id.clone();
        let dest = self.image_dir(&id);
        match index.images.get(&id) {
            Some(existing) if dest.join("rootfs").is_dir() => {
                // Same content imported before: reuse it (work is discarded on drop).
                record = existing.clone();
            }
            _ => {
                if dest.exists() {
                    // An orphan (a crash between rename and index write): replace it.
                    self.trash(&dest)?;
                }
                std::fs::rename(&image_dir, &dest).map_err(|e| {
                    ImageError::io(format!("moving the image to {}", dest.display()), e)
                })?;
                sync_dir(&self.root.join("by-id"))?;
                index.images.insert(id.clone(), record.clone());
            }
        }
        index.names.insert(key(&image_name, &tag), id.clone());
        index.save(&self.index_path())?;
        Ok(info(&image_name, &tag, &record))
    }

    /// Stores a small blob (manifest, config) by digest.
    fn put_blob(&self, digest: &str, bytes: &[u8]) -> Result<(), ImageError> {
        let rel = oci::blob_path(digest)?;
        let dest = self.root.join(&rel);
        if dest.exists() {
            return Ok(());
        }
        let tmp = self
            .root
            .join("tmp")
            .join(format!(".blob-{:016x}", rand::random::<u64>()));
        std::fs::write(&tmp, bytes)
            .and_then(|_| std::fs::rename(&tmp, &dest))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                ImageError::io(format!("writing {}", dest.display()), e)
            })
    }

    /// Moves a tree into `tmp/` and deletes it there (a crash leaves a sweepable leftover).
    fn trash(&self, path: &Path) -> Result<(), ImageError> {
        let t = self.temp_dir("trash")?;
        let dest = t.dir.join("x");
        std::fs::rename(path, &dest)
            .map_err(|e| ImageError::io(format!("moving {} away", path.display()), e))?;
        drop(t);
        Ok(())
    }

    /// Finds the image id a reference names: `name:tag`, `name` (tag latest) or an id prefix
    /// (at least 4 hex digits, optionally `sha256:`-prefixed). Returns the id and whether the
    /// reference was a name (and its index key).
    fn find(&self, index: &Index, reference: &str) -> Result<(String, Option<String>), ImageError> {
        if let Ok((n, t)) = parse_reference(reference) {
            let k = key(&n, &t);
            if let Some(id) = index.names.get(&k) {
                return Ok((id.clone(), Some(k)));
            }
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let matches: Vec<&String> = index
                .images
                .keys()
                .filter(|id| id.starts_with(&hex))
                .collect();
            match matches.as_slice() {
                [one] => return Ok(((*one).clone(), None)),
                [] => {}
                _ => return Err(ImageError::Ambiguous(reference.to_string())),
            }
        }
        Err(ImageError::NotFound(reference.to_string()))
    }

    /// Resolves `name`, `name:tag` or an id prefix to an unpacked image.
    pub fn resolve(&self, name: &str) -> Result<ResolvedImage, ImageError> {
        let index = self.load()?;
        let (id, k) = self.find(&index, name)?;
        let record = index
            .images
            .get(&id)
            .ok_or_else(|| ImageError::NotFound(name.to_string()))?;
        let rootfs = self.image_dir(&id).join("rootfs");
        if !rootfs.is_dir() {
            return Err(ImageError::NotFound(format!(
                "{name} (its rootfs {} is missing; re-import it)",
                rootfs.display()
            )));
        }
        Ok(ResolvedImage {
            name: k.unwrap_or_else(|| id.clone()),
            id,
            rootfs,
            config: record.config.clone(),
        })
    }

    /// Resolves `name` and holds a shared lock on it until the lease is dropped.
    pub fn lease(&self, name: &str) -> Result<ImageLease, ImageError> {
        for _ in 0..5 {
            let image = self.resolve(name)?;
            let path = self.lease_path(&image.id);
            let file = match File::open(&path) {
                Ok(f) => f,
                // Removed between resolve and open: resolve again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ImageError::io(format!("opening {}", path.display()), e)),
            };
            if let Some(l) = lock::lock_file(file, Mode::Shared, &path)? {
                if lock::still_at(&l, &path) {
                    return Ok(ImageLease { image, _lock: l });
                }
            }
        }
        Err(ImageError::NotFound(name.to_string()))
    }

    /// Every named image (one entry per name:tag), and unnamed ones as `<none>`.
    pub fn list(&self) -> Result<Vec<ImageInfo>, ImageError> {
        let index = self.load()?;
        let mut out = Vec::new();
        for (k, id) in &index.names {
            if let Some(r) = index.images.get(id) {
                let (n, t) = split_key(k);
                out.push(info(n, t, r));
            }
        }
        for (id, r) in &index.images {
            if !index.names.values().any(|v| v == id) {
                out.push(info("<none>", "<none>", r));
            }
        }
        Ok(out)
    }

    /// Everything known about an image, as JSON: id, names, config, layers, size, ...
    pub fn inspect(&self, name: &str) -> Result<serde_json::Value, ImageError> {
        let index = self.load()?;
        let (id, _) = self.find(&index, name)?;
        let r = index
            .images
            .get(&id)
            .ok_or_else(|| ImageError::NotFound(name.to_string()))?;
        let mut v = serde_json::to_value(r).map_err(|e| ImageError::Index {
            path: self.index_path().display().to_string(),
            reason: e.to_string(),
        })?;
        if let Some(obj) = v.as_object_mut() {
            obj.insert("names".into(), serde_json::json!(index.names_of(&id)));
            obj.insert(
                "rootfs".into(),
                serde_json::json!(self.image_dir(&id).join("rootfs")),
            );
        }
        Ok(v)
    }

    /// Removes a name; the image itself goes with its last name (or at once when `name` is an
    /// id). Refuses while a run holds a lease on the image.
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        let _guard = self.store_lock()?;
        let mut index = self.load()?;
        let (id, k) = self.find(&index, name)?;
        let other_names = index
            .names
            .iter()
            .filter(|(kk, v)| *v == &id && Some(*kk) != k.as_ref())
            .count();
        if k.is_some() && other_names > 0 {
            if let Some(k) = k {
                index.names.remove(&k);
            }
            return index.save(&self.index_path());
        }
        let lease = self.lease_path(&id);
        let _exclusive = match lock::lock(&lease, Mode::TryExclusive) {
            Ok(Some(l)) => Some(l),
            Ok(None) => return Err(ImageError::InUse(name.to_string())),
            // No lease file (a damaged image): nothing can be holding it.
            Err(_) => None,
        };
        index.names.retain(|_, v| *v != id);
        index.images.remove(&id);
        index.save(&self.index_path())?;
        let dir = self.image_dir(&id);
        if dir.exists() {
            self.trash(&dir)?;
        }
        self.gc_blobs(&index);
        Ok(())
    }

    /// Removes images without a name (unless leased), leftovers of interrupted imports, orphan
    /// image directories and unreferenced blobs.
    pub fn prune(&self) -> Result<PruneReport, ImageError> {
        let _guard = self.store_lock()?;
        let mut report = PruneReport {
            temp_dirs: self.sweep_tmp(),
            ..PruneReport::default()
        };
        let mut index = self.load()?;
        let dangling: Vec<String> = index
            .images
            .keys()
            .filter(|id| !index.names.values().any(|v| v == *id))
            .cloned()
            .collect();
        let mut held = Vec::new();
        for id in dangling {
            if let Ok(Some(l)) = lock::lock(&self.lease_path(&id), Mode::TryExclusive) {
                index.images.remove(&id);
                held.push(l);
                report.images.push(id);
            }
        }
        index.save(&self.index_path())?;
        // Orphans: directories in by-id that the index does not know.
        if let Ok(rd) = std::fs::read_dir(self.root.join("by-id")) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !index.images.contains_key(&id) {
                    let free = !e.path().join("lease.lock").exists()
                        || matches!(
                            lock::lock(&self.lease_path(&id), Mode::TryExclusive),
                            Ok(Some(_))
                        );
                    if free {
                        self.trash(&e.path())?;
                        if !report.images.contains(&id) {
                            report.temp_dirs += 1;
                        }
                    }
                }
            }
        }
        drop(held);
        report.blobs = self.gc_blobs(&index);
        Ok(report)
    }

    /// Deletes blobs no image record refers to; returns how many.
    fn gc_blobs(&self, index: &Index) -> u64 {
        let used: std::collections::HashSet<String> = index
            .images
            .values()
            .flat_map(|r| [r.manifest_digest.clone(), r.config_digest.clone()])
            .flatten()
            .filter_map(|d| d.strip_prefix("sha256:").map(str::to_string))
            .collect();
        let mut removed = 0;
        if let Ok(rd) = std::fs::read_dir(self.root.join("blobs/sha256")) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !used.contains(&n) && std::fs::remove_file(e.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

enum Imported {
    Tarball(super::UnpackStats, String),
    Oci(&'static str, Box<oci::OciImport>),
}

fn info(name: &str, tag: &str, r: &ImageRecord) -> ImageInfo {
    ImageInfo {
        name: name.to_string(),
        tag: tag.to_string(),
        id: r.id.clone(),
        size: r.size,
        created: r.created,
        source: r.source.clone(),
        layers: r.layers.len().max(1),
    }
}
