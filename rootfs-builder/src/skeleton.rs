//! The base layer every image gets: mountpoints the launcher needs, and an /etc that names
//! only root and nobody (never the build host's users, hashes or hostname).

use std::path::Path;

use crate::error::Result;
use crate::tree::{Node, Tree};

pub const HOSTNAME: &str = "sandcell";

/// Empty directories the launcher mounts over (or that programs expect).
const MOUNTPOINTS: &[(&str, u32)] = &[
    ("/proc", 0o555),
    ("/sys", 0o555),
    ("/dev", 0o755),
    ("/tmp", 0o1777),
    ("/work", 0o755),
    ("/etc", 0o755),
];

const PASSWD: &str =
    "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";
const HOSTS: &str = "127.0.0.1\tlocalhost sandcell\n::1\tlocalhost\n";

pub fn base_tree() -> Result<Tree> {
    let mut tree = Tree::new();
    for (dir, mode) in MOUNTPOINTS {
        tree.insert(Path::new(dir), Node::Dir { mode: *mode })?;
    }
    let files = [
        ("/etc/passwd", PASSWD.to_owned()),
        ("/etc/group", GROUP.to_owned()),
        ("/etc/hostname", format!("{HOSTNAME}\n")),
        ("/etc/hosts", HOSTS.to_owned()),
    ];
    for (path, text) in files {
        tree.insert(
            Path::new(path),
            Node::Bytes {
                data: text.into_bytes(),
                mode: 0o644,
            },
        )?;
    }
    Ok(tree)
}
