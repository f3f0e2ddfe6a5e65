//! The safe extractor, used for rootfs tarballs and OCI layers alike.
//!
//! Attacker-supplied archives are unpacked as root, so:
//! - every entry path is sanitized ([`paths`](super::paths)): `..` refused, leading `/` dropped;
//! - parent directories are opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//!   RESOLVE_NO_XDEV)` on a dirfd of the target root, so a symlink already in the tree (from
//!   this archive or a lower layer) is never followed while writing;
//! - files are created with `O_CREAT | O_EXCL | O_NOFOLLOW` (an existing entry is unlinked
//!   first, never opened), symlinks with `symlinkat`, directories with `mkdirat`;
//! - hard links only to regular files already inside the target (`linkat` between dirfds
//!   beneath the root, without following);
//! - device nodes, FIFOs and sockets are skipped and counted;
//! - everything is owned by the extracting user (root); modes lose setuid/setgid (unless
//!   `keep_setid`) and group/other write, and gain read (and search/exec where the owner
//!   has it) for everyone, so the unprivileged uid a cell runs as can read the tree;
//! - with `whiteouts`, `.wh.NAME` removes NAME from lower layers and `.wh..wh..opq` empties
//!   its directory of lower-layer content, both only beneath the target;
//! - every entry, byte read and byte written is counted against the [`Meter`].
//!
//! No per-file fsync: the store commits an import by renaming the finished tree into place,
//! which protects against crashes of the importer (SIGKILL); it does not promise durability
//! across power loss (see `ImageStore::import`).

use super::fsutil::{current_umask, empty_dir, remove_tree_at};
use super::paths::{sanitize, EntryPath};
use super::{ImageError, Meter};
use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, fstatat, futimens, mkdirat, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::{linkat, symlinkat};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// How to unpack.
#[derive(Debug, Clone, Default)]
pub struct UnpackOptions {
    /// Keep setuid/setgid bits (default: strip them).
    pub keep_setid: bool,
    /// Honour OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`); without it they are dropped.
    pub whiteouts: bool,
}

/// What an unpack did, for the image record and warnings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub bytes: u64,
    /// Device nodes, FIFOs, sockets and unknown entry types that were not created.
    pub skipped_special: u64,
    /// Entries whose setuid/setgid bits were removed.
    pub stripped_setid: u64,
    pub whiteouts: u64,
    /// Entries whose absolute path was made relative to the root.
    pub absolute_paths: u64,
}

impl UnpackStats {
    pub fn add(&mut self, o: &UnpackStats) {
        self.entries += o.entries;
        self.files += o.files;
        self.dirs += o.dirs;
        self.symlinks += o.symlinks;
        self.hardlinks += o.hardlinks;
        self.bytes += o.bytes;
        self.skipped_special += o.skipped_special;
        self.stripped_setid += o.stripped_setid;
        self.whiteouts += o.whiteouts;
        self.absolute_paths += o.absolute_paths;
    }
}

const WRITE_BUF: usize = 1 << 20;
const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Unpacks the tar stream `reader` into the existing directory `target`.
/// `tick` is called after every entry (progress reporting).
pub fn unpack<R: Read>(
    reader: R,
    target: &Path,
    opts: &UnpackOptions,
    meter: &Meter,
    tick: &mut dyn FnMut(),
) -> Result<UnpackStats, ImageError> {
    let root = openat(
        nix::fcntl::AT_FDCWD,
        target,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ImageError::sys(format!("opening {}", target.display()), e))?;
    let mut un = Unpacker {
        root,
        opts: opts.clone(),
        meter,
        stats: UnpackStats::default(),
        created: HashSet::new(),
        cache: None,
        buf: vec![0u8; WRITE_BUF],
        umask: current_umask(),
    };
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| archive_error(meter, "reading the archive", e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| archive_error(meter, "reading an entry header", e))?;
        un.apply(&mut entry)?;
        tick();
    }
    Ok(un.stats)
}

fn archive_error(meter: &Meter, what: &str, e: std::io::Error) -> ImageError {
    match meter.tripped() {
        Some(l) => l.into(),
        None => ImageError::Archive(format!("{what}: {e}")),
    }
}

struct Unpacker<'m> {
    root: OwnedFd,
    opts: UnpackOptions,
    meter: &'m Meter,
    stats: UnpackStats,
    /// Paths created by this layer (only tracked with whiteouts: they hide lower layers only).
    created: HashSet<Vec<u8>>,
    /// The last parent directory opened, by path relative to the root.
    cache: Option<(Vec<u8>, OwnedFd)>,
    buf: Vec<u8>,
    umask: u32,
}

fn beneath() -> ResolveFlag {
    ResolveFlag::RESOLVE_BENEATH
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
        | ResolveFlag::RESOLVE_NO_XDEV
}

fn is_kind(st_mode: u32, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st_mode) & SFlag::S_IFMT == kind
}

impl Unpacker<'_> {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ImageError> {
        self.meter.add_entry()?;
        self.stats.entries += 1;
        let raw = entry.path_bytes().into_owned();
        let path = sanitize(&raw, self.meter.limits())?;
        if raw.starts_with(b"/") {
            self.stats.absolute_paths += 1;
        }
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header
            .mode()
            .map_err(|e| ImageError::Archive(format!("{}: bad mode: {e}", path.display())))?;
        let mtime = header.mtime().unwrap_or(0);

        if path.name().starts_with(WHITEOUT_PREFIX) {
            self.stats.whiteouts += 1;
            if self.opts.whiteouts {
                return self.whiteout(&path);
            }
            return Ok(());
        }
        if path.is_root() {
            // The root's own mode is fixed by the store (0755); nothing else to do.
            return Ok(());
        }
        use tar::EntryType as E;
        match kind {
            E::Directory => self.directory(&path, mode),
            E::Regular | E::Continuous | E::GNUSparse => {
                self.regular_file(&path, mode, mtime, entry)
            }
            E::Symlink => {
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                self.symlink(&path, target.as_deref().unwrap_or_default())
            }
            E::Link => {
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                self.hardlink(&path, target.as_deref().unwrap_or_default())
            }
            _ => {
                // Char/Block devices, FIFOs and anything unknown are never created.
                self.stats.skipped_special += 1;
                tracing::debug!(path = %path.display(), ?kind, "skipping special entry");
                Ok(())
            }
        }
    }

    fn record(&mut self, path: &EntryPath) {
        if self.opts.whiteouts {
            self.created.insert(path.joined.clone());
        }
    }

    fn sanitize_mode(&mut self, mode: u32, dir: bool) -> u32 {
        let mut m = mode & 0o7777 & !0o022;
        if !self.opts.keep_setid && m & 0o6000 != 0 {
            m &= !0o6000;
            self.stats.stripped_setid += 1;
        }
        if dir || m & 0o111 != 0 {
            m | 0o555
        } else {
            m | 0o444
        }
    }

    /// A dirfd of the entry's parent, creating missing directories (0755) beneath the root.
    fn parent(&mut self, path: &EntryPath) -> Result<BorrowedFd<'_>, ImageError> {
        let parent = path.parent();
        if parent.is_empty() {
            return Ok(self.root.as_fd());
        }
        let hit = matches!(&self.cache, Some((p, _)) if p == parent);
        if !hit {
            let fd = self.open_dir(parent, true, path)?;
            self.cache = Some((parent.to_vec(), fd));
        }
        match &self.cache {
            Some((_, fd)) => Ok(fd.as_fd()),
            None => Ok(self.root.as_fd()),
        }
    }

    /// Opens the directory `rel` beneath the root without following any symlink; with
    /// `create`, missing components are made.
    fn open_dir(&self, rel: &[u8], create: bool, entry: &EntryPath) -> Result<OwnedFd, ImageError> {
        let how = || {
            OpenHow::new()
                .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
                .resolve(beneath())
        };
        let err = |e: Errno| -> ImageError {
            match e {
                Errno::ELOOP | Errno::EXDEV => ImageError::unsafe_path(
                    &entry.joined,
                    "a parent directory is a symlink (refusing to write through it)",
                ),
                Errno::ENOTDIR => {
                    ImageError::unsafe_path(&entry.joined, "a parent path is not a directory")
                }
                e => ImageError::sys(format!("opening the parent of {}", entry.display()), e),
            }
        };
        match openat2(&self.root, OsStr::from_bytes(rel), how()) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) if create => {}
            Err(e) => return Err(err(e)),
        }
        // Walk component by component, creating what is missing.
        let mut cur: Option<OwnedFd> = None;
        for comp in rel.split(|&b| b == b'/') {
            let dir = cur.as_ref().map(|f| f.as_fd()).unwrap_or(self.root.as_fd());
            let name = OsStr::from_bytes(comp);
            let next = match openat2(dir, name, how()) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    match mkdirat(dir, name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) | Err(Errno::EEXIST) => {}
                        Err(e) => return Err(err(e)),
                    }
                    openat2(dir, name, how()).map_err(err)?
                }
                Err(e) => return Err(err(e)),
            };
            cur = Some(next);
        }
        cur.ok_or_else(|| ImageError::unsafe_path(&entry.joined, "empty parent path"))
    }

    /// Removes whatever is at `name` in `dir` so that a new entry can take its place.
    fn clear(&mut self, path: &EntryPath) -> Result<(), ImageError> {
        let name = path.name().to_vec();
        let dir = self.parent(path)?;
        remove_tree_at(dir, &name)
            .map_err(|e| ImageError::sys(format!("replacing {}", path.display()), e))?;
        // A removed directory may be the cached parent (or beneath it).
        self.cache = None;
        Ok(())
    }

    fn directory(&mut self, path: &EntryPath, mode: u32) -> Result<(), ImageError> {
        let mode = self.sanitize_mode(mode, true);
        let name = OsStr::from_bytes(path.name()).to_owned();
        let umask = self.umask;
        let ctx = || format!("creating directory {}", path.display());
        let dir = self.parent(path)?;
        match mkdirat(dir, name.as_os_str(), Mode::from_bits_truncate(mode)) {
            Ok(()) => {
                if mode & (umask | 0o7000) != 0 {
                    set_dir_mode(dir, &name, mode).map_err(|e| ImageError::sys(ctx(), e))?;
                }
            }
            Err(Errno::EEXIST) => {
                let st = fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| ImageError::sys(ctx(), e))?;
                if is_kind(st.st_mode, SFlag::S_IFDIR) {
                    if st.st_mode & 0o7777 != mode {
                        set_dir_mode(dir, &name, mode).map_err(|e| ImageError::sys(ctx(), e))?;
                    }
                } else {
                    self.clear(path)?;
                    let dir = self.parent(path)?;
                    mkdirat(dir, name.as_os_str(), Mode::from_bits_truncate(mode))
                        .map_err(|e| ImageError::sys(ctx(), e))?;
                    set_dir_mode(dir, &name, mode).map_err(|e| ImageError::sys(ctx(), e))?;
                }
            }
            Err(e) => return Err(ImageError::sys(ctx(), e)),
        }
        self.stats.dirs += 1;
        self.record(path);
        Ok(())
    }

    fn create_file(&mut self, path: &EntryPath, mode: u32) -> Result<File, ImageError> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let name = OsStr::from_bytes(path.name()).to_owned();
        let m = Mode::from_bits_truncate(mode);
        let ctx = || format!("creating {}", path.display());
        let dir = self.parent(path)?;
        let fd = match openat(dir, name.as_os_str(), flags, m) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => {
                self.clear(path)?;
                let dir = self.parent(path)?;
                openat(dir, name.as_os_str(), flags, m).map_err(|e| ImageError::sys(ctx(), e))?
            }
            Err(e) => return Err(ImageError::sys(ctx(), e)),
        };
        Ok(File::from(fd))
    }

    fn regular_file<R: Read>(
        &mut self,
        path: &EntryPath,
        mode: u32,
        mtime: u64,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), ImageError> {
        let size = entry.size();
        if size > self.meter.limits().max_total_bytes {
            return Err(super::LimitExceeded::TotalSize {
                limit: self.meter.limits().max_total_bytes,
            }
            .into());
        }
        let mode = self.sanitize_mode(mode, false);
        let mut file = self.create_file(path, mode)?;
        let ctx = || format!("writing {}", path.display());
        loop {
            let n = read_full(entry, &mut self.buf)
                .map_err(|e| archive_error(self.meter, &ctx(), e))?;
            if n == 0 {
                break;
            }
            self.meter.add_written(n as u64)?;
            file.write_all(&self.buf[..n])
                .map_err(|e| ImageError::io(ctx(), e))?;
            self.stats.bytes += n as u64;
        }
        if mode & self.umask != 0 || mode & 0o6000 != 0 {
            fchmod(&file, Mode::from_bits_truncate(mode)).map_err(|e| ImageError::sys(ctx(), e))?;
        }
        let t = TimeSpec::new(mtime.min(i64::MAX as u64) as i64, 0);
        futimens(&file, &t, &t).map_err(|e| ImageError::sys(ctx(), e))?;
        self.stats.files += 1;
        self.record(path);
        Ok(())
    }

    fn symlink(&mut self, path: &EntryPath, target: &[u8]) -> Result<(), ImageError> {
        if target.is_empty() || target.contains(&0) || target.len() >= 4096 {
            return Err(ImageError::unsafe_path(
                &path.joined,
                "invalid symlink target",
            ));
        }
        let name = OsStr::from_bytes(path.name()).to_owned();
        let ctx = || format!("creating symlink {}", path.display());
        let dir = self.parent(path)?;
        match symlinkat(OsStr::from_bytes(target), dir, name.as_os_str()) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                self.clear(path)?;
                let dir = self.parent(path)?;
                symlinkat(OsStr::from_bytes(target), dir, name.as_os_str())
                    .map_err(|e| ImageError::sys(ctx(), e))?;
            }
            Err(e) => return Err(ImageError::sys(ctx(), e)),
        }
        self.stats.symlinks += 1;
        self.record(path);
        Ok(())
    }

    fn hardlink(&mut self, path: &EntryPath, target_raw: &[u8]) -> Result<(), ImageError> {
        let fail = |reason: &str| ImageError::HardLink {
            path: path.display(),
            target: String::from_utf8_lossy(target_raw).into_owned(),
            reason: reason.to_string(),
        };
        let target =
            sanitize(target_raw, self.meter.limits()).map_err(|e| fail(&format!("target: {e}")))?;
        if target.is_root() {
            return Err(fail("target is the root directory"));
        }
        if target == *path {
            return Ok(());
        }
        let tdir = if target.parent().is_empty() {
            self.root
                .try_clone()
                .map_err(|e| ImageError::io("dup", e))?
        } else {
            self.open_dir(target.parent(), false, &target)
                .map_err(|e| match e {
                    ImageError::Sys {
                        source: Errno::ENOENT,
                        ..
                    } => fail("target is not a file already extracted in the image"),
                    other => fail(&other.to_string()),
                })?
        };
        let tname = OsStr::from_bytes(target.name());
        match fstatat(&tdir, tname, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if is_kind(st.st_mode, SFlag::S_IFREG) => {}
            Ok(_) => return Err(fail("target is not a regular file")),
            Err(Errno::ENOENT) => {
                return Err(fail("target is not a file already extracted in the image"))
            }
            Err(e) => return Err(ImageError::sys(format!("hard link {}", path.display()), e)),
        }
        let name = OsStr::from_bytes(path.name()).to_owned();
        let ctx = || format!("creating hard link {}", path.display());
        let dir = self.parent(path)?;
        match linkat(&tdir, tname, dir, name.as_os_str(), AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::EEXIST) => {
                self.clear(path)?;
                let dir = self.parent(path)?;
                linkat(&tdir, tname, dir, name.as_os_str(), AtFlags::empty())
                    .map_err(|e| ImageError::sys(ctx(), e))?;
            }
            Err(e) => return Err(ImageError::sys(ctx(), e)),
        }
        self.stats.hardlinks += 1;
        self.record(path);
        Ok(())
    }

    /// `.wh.NAME` removes NAME of lower layers; `.wh..wh..opq` hides all lower-layer children
    /// of its directory. Both act only beneath the root and never through symlinks.
    fn whiteout(&mut self, path: &EntryPath) -> Result<(), ImageError> {
        let parent = path.parent().to_vec();
        let dir = if parent.is_empty() {
            self.root
                .try_clone()
                .map_err(|e| ImageError::io("dup", e))?
        } else {
            match self.open_dir(&parent, false, path) {
                Ok(fd) => reopen_readable(&fd)
                    .map_err(|e| ImageError::sys(format!("whiteout {}", path.display()), e))?,
                // Nothing below to hide.
                Err(ImageError::Sys {
                    source: Errno::ENOENT,
                    ..
                }) => return Ok(()),
                Err(e) => return Err(e),
            }
        };
        let ctx = || format!("applying whiteout {}", path.display());
        if path.name() == OPAQUE {
            let created = &self.created;
            let prefix = if parent.is_empty() {
                Vec::new()
            } else {
                [&parent[..], b"/"].concat()
            };
            empty_dir(dir.as_fd(), |child| {
                !created.contains(&[&prefix[..], child].concat())
            })
            .map_err(|e| ImageError::sys(ctx(), e))?;
        } else {
            let victim = &path.name()[WHITEOUT_PREFIX.len()..];
            if victim.is_empty() || victim == b"." || victim == b".." {
                return Err(ImageError::unsafe_path(
                    &path.joined,
                    "invalid whiteout name",
                ));
            }
            let full = if parent.is_empty() {
                victim.to_vec()
            } else {
                [&parent[..], b"/", victim].concat()
            };
            if !self.created.contains(&full) {
                remove_tree_at(dir.as_fd(), victim).map_err(|e| ImageError::sys(ctx(), e))?;
            }
        }
        self.cache = None;
        Ok(())
    }
}

/// Turns an O_PATH directory fd into one that can be listed.
fn reopen_readable(fd: &OwnedFd) -> nix::Result<OwnedFd> {
    openat(
        fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

fn set_dir_mode(dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> nix::Result<()> {
    let fd = openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    fchmod(&fd, Mode::from_bits_truncate(mode))
}

/// Reads until `buf` is full or EOF.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
