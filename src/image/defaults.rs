//! Image defaults applied to a run, the same way for `sandcell run`, the daemon, languages
//! and the grader: what the caller set explicitly wins, the image fills the rest, and the
//! image never makes a run root.

use std::collections::HashSet;
use std::path::Path;

use super::config::{image_user, ImageConfig};
use crate::spec::RunSpec;

/// An image's defaults, resolved against its rootfs (the `User` looked up in its passwd).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    /// Entrypoint followed by Cmd.
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The image's `WorkingDir`, unless it is `/`.
    pub working_dir: Option<String>,
    /// The image's `User` as uid:gid; `None` for root or an unknown name.
    pub user: Option<(u32, u32)>,
}

/// What the caller set itself, so the image's value does not apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Given {
    /// A command (argv) was given.
    pub command: bool,
    /// A working directory was given (or the caller's own rule fixes it, as languages run
    /// in their work dir).
    pub cwd: bool,
    /// A uid was given.
    pub user: bool,
}

impl Given {
    /// A language step or a grader cell: the command is the caller's, the cell runs in its
    /// work dir; only the image's environment and user apply.
    pub const COMMAND_AND_DIR: Given = Given {
        command: true,
        cwd: true,
        user: false,
    };
}

/// The image has no default command and none was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the image has no default command; give one")]
pub struct NoCommand;

impl Defaults {
    /// Resolves `config` for an image unpacked at `rootfs`.
    pub fn of(config: &ImageConfig, rootfs: &Path) -> Defaults {
        Defaults {
            command: config.default_command(),
            env: config.env.clone(),
            working_dir: config.working_dir.clone().filter(|d| d != "/"),
            user: config.user.as_deref().and_then(|u| image_user(rootfs, u)),
        }
    }

    /// Applies the defaults to `spec`: the command if none was given, the environment
    /// under the spec's own (a variable the spec sets wins), the working dir and the user
    /// unless given.
    pub fn apply(&self, spec: &mut RunSpec, given: Given) -> Result<(), NoCommand> {
        if !given.command && spec.argv.is_empty() {
            if self.command.is_empty() {
                return Err(NoCommand);
            }
            spec.argv = self.command.clone();
        }
        spec.env = merge_env(&self.env, std::mem::take(&mut spec.env));
        if !given.cwd {
            if let Some(dir) = &self.working_dir {
                spec.cwd = Some(dir.clone());
            }
        }
        if !given.user {
            if let Some((uid, gid)) = self.user {
                spec.uid = uid;
                spec.gid = gid;
            }
        }
        Ok(())
    }
}

/// `base` with `over` on top: a variable of `over` replaces the same name in `base`; order
/// is `base`'s survivors, then `over`. Linear in the number of variables (a request may
/// carry thousands).
pub fn merge_env(base: &[(String, String)], over: Vec<(String, String)>) -> Vec<(String, String)> {
    let replaced: HashSet<&str> = over.iter().map(|(k, _)| k.as_str()).collect();
    let mut env: Vec<(String, String)> = base
        .iter()
        .filter(|(k, _)| !replaced.contains(k.as_str()))
        .cloned()
        .collect();
    drop(replaced);
    env.extend(over);
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn defaults() -> Defaults {
        Defaults {
            command: vec!["python3".into()],
            env: pairs(&[("PATH", "/usr/bin"), ("LANG", "C")]),
            working_dir: Some("/app".into()),
            user: Some((1000, 1000)),
        }
    }

    #[test]
    fn the_image_fills_what_was_not_given() {
        let mut spec = RunSpec::new("/r", vec![]);
        spec.env = pairs(&[("LANG", "C.UTF-8"), ("X", "1")]);
        defaults().apply(&mut spec, Given::default()).unwrap();
        assert_eq!(spec.argv, vec!["python3"]);
        assert_eq!(
            spec.env,
            pairs(&[("PATH", "/usr/bin"), ("LANG", "C.UTF-8"), ("X", "1")])
        );
        assert_eq!(spec.cwd.as_deref(), Some("/app"));
        assert_eq!((spec.uid, spec.gid), (1000, 1000));
    }

    #[test]
    fn what_was_given_wins() {
        let mut spec = RunSpec::new("/r", vec!["/bin/true".into()]);
        spec.uid = 2000;
        spec.cwd = Some("/work".into());
        let given = Given {
            command: true,
            cwd: true,
            user: true,
        };
        defaults().apply(&mut spec, given).unwrap();
        assert_eq!(spec.argv, vec!["/bin/true"]);
        assert_eq!(spec.cwd.as_deref(), Some("/work"));
        assert_eq!(spec.uid, 2000);
        let mut bare = RunSpec::new("/r", vec![]);
        assert_eq!(
            Defaults::default().apply(&mut bare, Given::default()),
            Err(NoCommand)
        );
    }

    #[test]
    fn root_is_never_taken_from_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let config = ImageConfig {
            user: Some("root".into()),
            working_dir: Some("/".into()),
            ..ImageConfig::default()
        };
        let d = Defaults::of(&config, dir.path());
        assert_eq!(d.user, None);
        assert_eq!(d.working_dir, None);
    }
}
