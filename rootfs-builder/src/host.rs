//! Copies host paths into a [`Tree`] the way they appear on the host: every symlink met on
//! the way (e.g. Debian's merged-usr `/lib -> usr/lib`) is recreated, files land at their
//! real locations, and every ELF file brings its shared-library closure along.

use std::collections::{BTreeSet, VecDeque};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use globset::GlobSet;

use crate::closure;
use crate::error::{host, BuildError, Result};
use crate::tree::{clean_mode, Node, Tree};

const MAX_SYMLINK_HOPS: usize = 40;

/// Host paths no recipe may copy: secrets, users' homes, kernel and runtime filesystems.
const FORBIDDEN_PREFIXES: &[&str] = &["/root", "/home", "/proc", "/sys", "/dev", "/run", "/tmp"];
const FORBIDDEN_FILES: &[&str] = &[
    "/etc/shadow",
    "/etc/shadow-",
    "/etc/gshadow",
    "/etc/gshadow-",
    "/etc/ssh",
    "/etc/machine-id",
];
/// Files the builder writes itself; host copies are skipped.
const GENERATED: &[&str] = &["/etc/passwd", "/etc/group", "/etc/hostname", "/etc/hosts"];

/// The host paths an image must never receive. Builds use [`Forbidden::host`]; the rule is a
/// value rather than a constant so tests can copy from a scratch dir wherever the checkout
/// (and so the scratch dir) lives, `/tmp` included.
#[derive(Debug, Clone)]
pub struct Forbidden {
    prefixes: Vec<PathBuf>,
}

impl Forbidden {
    /// Secrets, users' homes, kernel and runtime filesystems of this host.
    pub fn host() -> Self {
        Forbidden {
            prefixes: FORBIDDEN_PREFIXES
                .iter()
                .chain(FORBIDDEN_FILES)
                .map(PathBuf::from)
                .collect(),
        }
    }

    /// Only the given prefixes (tests).
    pub fn only(prefixes: &[&Path]) -> Self {
        Forbidden {
            prefixes: prefixes.iter().map(|p| p.to_path_buf()).collect(),
        }
    }

    /// True when `path` is something an image must never receive from the host.
    pub fn matches(&self, path: &Path) -> bool {
        self.prefixes.iter().any(|p| path.starts_with(p))
    }
}

pub struct HostCopier<'a> {
    tree: &'a mut Tree,
    exclude: &'a GlobSet,
    forbidden: Forbidden,
    /// Real host paths already copied (files) or walked (directories).
    done: BTreeSet<PathBuf>,
    /// ELF files whose closure still has to be added.
    pending_elf: Vec<PathBuf>,
    /// Files whose closure is already in (ldd output is transitive).
    closed: BTreeSet<PathBuf>,
}

impl<'a> HostCopier<'a> {
    /// A copier that refuses the host's [`Forbidden::host`] paths.
    pub fn new(tree: &'a mut Tree, exclude: &'a GlobSet) -> Self {
        Self::with_forbidden(tree, exclude, Forbidden::host())
    }

    pub fn with_forbidden(tree: &'a mut Tree, exclude: &'a GlobSet, forbidden: Forbidden) -> Self {
        HostCopier {
            tree,
            exclude,
            forbidden,
            done: BTreeSet::new(),
            pending_elf: Vec::new(),
            closed: BTreeSet::new(),
        }
    }

    /// Adds `path` (file, directory tree or symlink chain) as the recipe named it.
    pub fn add(&mut self, path: &Path) -> Result<()> {
        if self.forbidden.matches(path) {
            return Err(BuildError::Forbidden(path.to_owned()));
        }
        let real = self.resolve(path)?;
        self.add_real(&real, true)
    }

    /// Adds one entry of a package listing: directories are created, not walked.
    pub fn add_listed(&mut self, path: &Path) -> Result<()> {
        if self.exclude.is_match(path) || self.forbidden.matches(path) {
            return Ok(());
        }
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return Ok(()); // listed but removed on this host (e.g. dpkg path-exclude)
        };
        if meta.is_dir() {
            let real = self.resolve(path)?;
            return self.insert(
                &real,
                Node::Dir {
                    mode: clean_mode(meta.permissions().mode()),
                },
            );
        }
        let real = self.resolve(path)?;
        self.add_real(&real, false)
    }

    /// Adds the shared-library closure of every ELF file copied so far.
    pub fn finish_closure(&mut self) -> Result<()> {
        while let Some(elf) = self.pending_elf.pop() {
            if !self.closed.insert(elf.clone()) {
                continue;
            }
            for lib in closure::shared_libraries(&elf)? {
                let real = self.resolve(&lib)?;
                self.closed.insert(real.clone());
                self.add_real(&real, true)?;
            }
        }
        Ok(())
    }

    /// Follows `path` component by component, recording each symlink met; returns the real
    /// host path. Directories on the way keep their host modes.
    fn resolve(&mut self, path: &Path) -> Result<PathBuf> {
        let mut real = PathBuf::from("/");
        let mut pending: VecDeque<OsString> = components(path);
        let mut hops = 0;
        while let Some(c) = pending.pop_front() {
            if c == ".." {
                real.pop();
                continue;
            }
            let candidate = real.join(&c);
            let meta = std::fs::symlink_metadata(&candidate).map_err(host(&candidate))?;
            if meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_SYMLINK_HOPS {
                    return Err(BuildError::SymlinkLoop(path.to_owned()));
                }
                let target = std::fs::read_link(&candidate).map_err(host(&candidate))?;
                self.insert(
                    &candidate,
                    Node::Symlink {
                        target: target.clone(),
                    },
                )?;
                if target.is_absolute() {
                    real = PathBuf::from("/");
                }
                for (i, t) in components(&target).into_iter().enumerate() {
                    pending.insert(i, t);
                }
            } else {
                if meta.is_dir() {
                    self.insert(
                        &candidate,
                        Node::Dir {
                            mode: clean_mode(meta.permissions().mode()),
                        },
                    )?;
                }
                real = candidate;
            }
        }
        Ok(real)
    }

    /// Adds a real (symlink-free) host path; directories are walked recursively.
    fn add_real(&mut self, real: &Path, explicit: bool) -> Result<()> {
        if self.forbidden.matches(real) {
            return Err(BuildError::Forbidden(real.to_owned()));
        }
        if GENERATED.iter().any(|g| real == Path::new(g)) {
            return Ok(());
        }
        if !explicit && self.exclude.is_match(real) {
            return Ok(());
        }
        if !self.done.insert(real.to_owned()) {
            return Ok(());
        }
        let meta = std::fs::symlink_metadata(real).map_err(host(real))?;
        let mode = clean_mode(meta.permissions().mode());
        if meta.is_dir() {
            self.insert(real, Node::Dir { mode })?;
            self.walk(real)
        } else if meta.is_file() {
            self.insert(
                real,
                Node::File {
                    source: real.to_owned(),
                    mode,
                },
            )?;
            if closure::is_dynamic_candidate(real) {
                self.pending_elf.push(real.to_owned());
            }
            Ok(())
        } else {
            // sockets, fifos, devices: never part of an image
            Ok(())
        }
    }

    fn walk(&mut self, dir: &Path) -> Result<()> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(host(dir))?
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<_>>()
            .map_err(host(dir))?;
        entries.sort();
        for entry in entries {
            if self.exclude.is_match(&entry) || self.forbidden.matches(&entry) {
                continue;
            }
            let meta = std::fs::symlink_metadata(&entry).map_err(host(&entry))?;
            if meta.file_type().is_symlink() {
                self.add_symlink_entry(&entry)?;
            } else {
                self.add_real(&entry, false)?;
            }
        }
        Ok(())
    }

    /// A symlink inside a walked directory: recreate it and bring its target along, so
    /// links like gcc's `libstdc++.so -> ../../../x86_64-linux-gnu/libstdc++.so.6` work.
    fn add_symlink_entry(&mut self, link: &Path) -> Result<()> {
        let target = std::fs::read_link(link).map_err(host(link))?;
        self.insert(
            link,
            Node::Symlink {
                target: target.clone(),
            },
        )?;
        let absolute = if target.is_absolute() {
            target
        } else {
            link.parent().unwrap_or(Path::new("/")).join(target)
        };
        if std::fs::metadata(&absolute).is_err() {
            return Ok(()); // dangling on the host too
        }
        let normal = lexical_normal(&absolute);
        if self.forbidden.matches(&normal) || self.exclude.is_match(&normal) {
            return Ok(());
        }
        let real = self.resolve(&normal)?;
        self.add_real(&real, false)
    }

    fn insert(&mut self, path: &Path, node: Node) -> Result<()> {
        self.tree.insert(path, node)
    }
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_owned()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// `/a/b/../c` -> `/a/c` without touching the filesystem.
fn lexical_normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinked_parents_are_recreated_and_files_land_at_real_paths() {
        // Wherever the scratch dir is (/tmp, or a checkout under /tmp), only a prefix the
        // test names is forbidden, so the outcome does not depend on the location.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/data.txt"), "x").unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        let mut tree = Tree::new();
        let none = GlobSet::empty();
        let forbidden = Forbidden::only(&[&root.join("secret")]);
        let mut copier = HostCopier::with_forbidden(&mut tree, &none, forbidden);
        copier.add(&root.join("lib/data.txt")).unwrap();
        assert!(matches!(
            copier.add(&root.join("secret/key")),
            Err(BuildError::Forbidden(_))
        ));
        assert_eq!(
            tree.get(&root.join("lib")),
            Some(&Node::Symlink {
                target: "usr/lib".into()
            })
        );
        assert!(matches!(
            tree.get(&root.join("usr/lib/data.txt")),
            Some(Node::File { .. })
        ));
    }

    #[test]
    fn host_private_paths_are_refused() {
        let mut tree = Tree::new();
        let none = GlobSet::empty();
        let mut copier = HostCopier::new(&mut tree, &none);
        assert!(matches!(
            copier.add(Path::new("/etc/shadow")),
            Err(BuildError::Forbidden(_))
        ));
        assert!(matches!(
            copier.add(Path::new("/root/.bashrc")),
            Err(BuildError::Forbidden(_))
        ));
        assert!(tree.is_empty());
    }

    #[test]
    fn lexical_normal_drops_dot_dot() {
        assert_eq!(
            lexical_normal(Path::new(
                "/usr/lib/gcc/x/12/../../../x86_64/libstdc++.so.6"
            )),
            PathBuf::from("/usr/lib/x86_64/libstdc++.so.6")
        );
    }
}
