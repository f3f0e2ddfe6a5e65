//! `sandcell run`: run one command in a fresh cell.
//!
//! Default mode passes the program's (capped) stdout/stderr through as it arrives and exits
//! with the program's code; `--json` prints one RunResult object instead.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::image::{Defaults, Given, ImageLease, ImageStore, ResolvedImage};
use crate::result::{RunResult, Verdict};
use crate::sandbox::{Launcher, LauncherConfig, RunEvent};
use crate::spec::{
    parse_duration, parse_size, BindMount, LimitBounds, Limits, RunSpec, SeccompChoice, StdinSource,
};

/// A limit value, or `unlimited` (None).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrUnlimited<T>(pub Option<T>);

fn optional<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<OrUnlimited<T>, String> {
    match text {
        "unlimited" | "none" => Ok(OrUnlimited(None)),
        _ => parse(text).map(|v| OrUnlimited(Some(v))),
    }
}

fn opt_size(s: &str) -> Result<OrUnlimited<u64>, String> {
    optional(s, parse_size)
}
fn opt_duration(s: &str) -> Result<OrUnlimited<Duration>, String> {
    optional(s, parse_duration)
}
fn opt_count(s: &str) -> Result<OrUnlimited<u64>, String> {
    optional(s, |t| {
        t.parse::<u64>()
            .map_err(|_| format!("{t:?} is not a count"))
    })
}
fn opt_cpus(s: &str) -> Result<OrUnlimited<f64>, String> {
    optional(s, |t| {
        t.parse::<f64>()
            .map_err(|_| format!("{t:?} is not a number of CPUs"))
    })
}
fn env_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}
fn bind_spec(s: &str) -> Result<BindMount, String> {
    let mut parts = s.splitn(3, ':');
    let (Some(src), Some(dst)) = (parts.next(), parts.next()) else {
        return Err(format!("{s:?} is not SRC:DST[:rw]"));
    };
    let writable = match parts.next() {
        None | Some("ro") => false,
        Some("rw") => true,
        Some(other) => return Err(format!("bind mode {other:?} is not ro or rw")),
    };
    let source = std::fs::canonicalize(src).map_err(|e| format!("bind source {src}: {e}"))?;
    Ok(BindMount {
        source,
        target: dst.to_string(),
        writable,
    })
}

/// Limits and isolation flags shared by `run` (and reusable by other subcommands).
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Wall-clock limit for the whole cell (e.g. 10s, 500ms).
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub wall_time: Duration,
    /// CPU time of all processes together (or `unlimited`).
    #[arg(long, value_parser = opt_duration, default_value = "5s")]
    pub cpu_time: OrUnlimited<Duration>,
    /// Memory limit, swap included (e.g. 256M, or `unlimited`).
    #[arg(long, value_parser = opt_size, default_value = "256M")]
    pub memory: OrUnlimited<u64>,
    /// Maximum number of processes and threads (or `unlimited`).
    #[arg(long, value_parser = opt_count, default_value = "64", allow_hyphen_values = true)]
    pub pids: OrUnlimited<u64>,
    /// CPU bandwidth in cores, e.g. 1.0 (default: not limited).
    #[arg(long, value_parser = opt_cpus)]
    pub cpus: Option<OrUnlimited<f64>>,
    /// Size of each writable tmpfs (/tmp, the work dir, /dev/shm).
    #[arg(long, value_parser = parse_size, default_value = "64M")]
    pub disk: u64,
    /// Inodes (files, directories) of each writable tmpfs; creating more fails with ENOSPC.
    #[arg(long, default_value_t = crate::spec::DEFAULT_INODES)]
    pub inodes: u64,
    /// Captured bytes per stream; more makes the run OLE.
    #[arg(long, value_parser = parse_size, default_value = "1M")]
    pub output_limit: u64,
    /// RLIMIT_NOFILE.
    #[arg(long, default_value_t = 256)]
    pub open_files: u64,
    /// RLIMIT_FSIZE (default: the --disk size).
    #[arg(long, value_parser = parse_size)]
    pub file_size: Option<u64>,
    /// RLIMIT_STACK (default: the system's).
    #[arg(long, value_parser = parse_size)]
    pub stack: Option<u64>,
}

impl LimitArgs {
    pub fn to_limits(&self) -> Limits {
        Limits {
            wall_time: self.wall_time,
            cpu_time: self.cpu_time.0,
            memory: self.memory.0,
            pids: self.pids.0,
            cpus: self.cpus.and_then(|c| c.0),
            disk: self.disk,
            inodes: self.inodes,
            output: self.output_limit,
            open_files: self.open_files,
            file_size: self.file_size,
            stack: self.stack,
        }
    }
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("root").required(true).args(["rootfs", "image", "lang"])))]
pub struct RunArgs {
    /// Root filesystem directory of the cell (mounted read-only).
    #[arg(long)]
    pub rootfs: Option<PathBuf>,
    /// An image from the local store (`name[:tag]` or an id); its Env, Entrypoint/Cmd,
    /// WorkingDir and User are the defaults.
    #[arg(long)]
    pub image: Option<String>,
    /// A language of an imported image: compile (if it has a compile step) and run --file.
    #[arg(long, requires = "files")]
    pub lang: Option<String>,
    /// Source file for --lang (repeatable; stored in the work dir under its file name).
    #[arg(long = "file", requires = "lang")]
    pub files: Vec<PathBuf>,
    /// The image store (for --image and --lang) [default: $SANDCELL_STATE_DIR or /var/lib/sandcell].
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Print one JSON RunResult on stdout instead of passing output through.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub limits: LimitArgs,
    /// Unprivileged uid the program runs as.
    #[arg(long, default_value_t = crate::spec::DEFAULT_UID)]
    pub uid: u32,
    /// Gid the program runs as (default: same as --uid).
    #[arg(long)]
    pub gid: Option<u32>,
    /// Extra environment variable (repeatable).
    #[arg(long = "env", value_parser = env_pair)]
    pub env: Vec<(String, String)>,
    /// File to use as the program's stdin (default: empty).
    #[arg(long)]
    pub stdin: Option<PathBuf>,
    /// Writable work dir inside the cell (the program's cwd).
    #[arg(long)]
    pub work_dir: Option<String>,
    /// Bind a host path into the cell: SRC:DST[:ro|rw]. The cell can read SRC's path (in
    /// /proc/self/mountinfo), as for any bind mount.
    #[arg(long = "bind", value_parser = bind_spec)]
    pub binds: Vec<BindMount>,
    /// Seccomp policy: `default` or `none` (must be explicit).
    #[arg(long, default_value = "default", value_parser = ["default", "none"])]
    pub seccomp: String,
    /// A seccompiler JSON policy file (instead of the default policy).
    #[arg(long, conflicts_with = "seccomp")]
    pub seccomp_policy: Option<PathBuf>,
    /// Run even if the host cannot enforce a requested limit (listed in `degraded`).
    #[arg(long)]
    pub allow_degraded: bool,
    /// Host uids cells take one each of while they run, as BASE:COUNT, or `off` (every cell
    /// then runs as --uid on the host); default 2000000000:4096 or $SANDCELL_UID_RANGE.
    #[arg(long, value_parser = crate::sandbox::UidRange::parse)]
    pub uid_range: Option<crate::sandbox::UidRange>,
    /// Command and arguments (with --image: the image's default command when absent; with
    /// --lang: extra arguments of the program).
    #[arg(last = true)]
    pub cmd: Vec<String>,
}

/// Builds the spec from the flags (without validating it).
pub fn build_spec(args: &RunArgs, rootfs: PathBuf) -> Result<RunSpec, String> {
    let mut spec = RunSpec::new(rootfs, args.cmd.clone());
    spec.limits = args.limits.to_limits();
    spec.uid = args.uid;
    spec.gid = args.gid.unwrap_or(args.uid);
    spec.env = args.env.clone();
    if let Some(work_dir) = &args.work_dir {
        spec.work_dir = work_dir.clone();
    }
    spec.binds = args.binds.clone();
    spec.allow_degraded = args.allow_degraded;
    spec.stdin = match &args.stdin {
        Some(p) => StdinSource::File(p.clone()),
        None => StdinSource::Null,
    };
    spec.seccomp = match (&args.seccomp_policy, args.seccomp.as_str()) {
        (Some(p), _) => SeccompChoice::PolicyFile(p.clone()),
        (None, "none") => SeccompChoice::None,
        _ => SeccompChoice::Default,
    };
    Ok(spec)
}

pub fn main(args: RunArgs) -> i32 {
    if args.lang.is_some() {
        return super::run_lang::main(&args);
    }
    let (mut spec, _lease) = match spec_for(&args) {
        Ok(found) => found,
        Err(e) => {
            super::error_line(e.message);
            return e.code;
        }
    };
    // Passed through as it arrives: the result need not hold it too (memory stays bounded
    // whatever the output limit); --json prints it, so keeps it.
    spec.keep_output = args.json;
    let validated = match spec.validate(&LimitBounds::default()) {
        Ok(v) => v,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_USAGE;
        }
    };
    let config = LauncherConfig {
        uid_range: args.uid_range.unwrap_or_default(),
        ..LauncherConfig::default()
    };
    let launcher = match Launcher::new(config) {
        Ok(l) => l,
        Err(e) => {
            super::error_line(e);
            return super::EXIT_SANDBOX;
        }
    };
    let result = if args.json {
        launcher.run(&validated, &mut |_| {}, None)
    } else {
        launcher.run(&validated, &mut pass_through, None)
    };
    report(&result, args.json)
}

/// A failure before the run, with the exit code it maps to.
pub struct CliFailure {
    pub message: String,
    pub code: i32,
}

impl CliFailure {
    pub fn usage(message: impl Into<String>) -> Self {
        CliFailure {
            message: message.into(),
            code: super::EXIT_USAGE,
        }
    }
    pub fn sandbox(message: impl Into<String>) -> Self {
        CliFailure {
            message: message.into(),
            code: super::EXIT_SANDBOX,
        }
    }
}

/// Opens the image store named by --state-dir / SANDCELL_STATE_DIR / the default.
pub fn open_store(state_dir: Option<&PathBuf>) -> Result<ImageStore, CliFailure> {
    let dir = state_dir
        .cloned()
        .unwrap_or_else(crate::image::default_state_dir);
    ImageStore::open(&dir).map_err(|e| CliFailure::sandbox(e.to_string()))
}

/// The spec for --rootfs or --image; the lease keeps the image from being removed while the
/// run uses it.
fn spec_for(args: &RunArgs) -> Result<(RunSpec, Option<ImageLease>), CliFailure> {
    let Some(name) = &args.image else {
        let rootfs = args.rootfs.clone().unwrap_or_default();
        if args.cmd.is_empty() {
            return Err(CliFailure::usage(
                "no command given (sandcell run --rootfs DIR -- CMD)",
            ));
        }
        return build_spec(args, rootfs)
            .map(|s| (s, None))
            .map_err(CliFailure::usage);
    };
    let store = open_store(args.state_dir.as_ref())?;
    let lease = store
        .lease(name)
        .map_err(|e| CliFailure::sandbox(e.to_string()))?;
    let image = &lease.image;
    let mut spec = build_spec(args, image.rootfs.clone()).map_err(CliFailure::usage)?;
    apply_image_defaults(&mut spec, image, args)?;
    Ok((spec, Some(lease)))
}

/// Image config as defaults ([`Defaults::apply`]): flags win; `--uid` keeps the image's
/// user from applying, `--gid` overrides its group.
fn apply_image_defaults(
    spec: &mut RunSpec,
    image: &ResolvedImage,
    args: &RunArgs,
) -> Result<(), CliFailure> {
    let given = Given {
        command: !spec.argv.is_empty(),
        cwd: args.work_dir.is_some(),
        user: args.uid != crate::spec::DEFAULT_UID,
    };
    let defaults = Defaults::of(&image.config, &image.rootfs);
    defaults.apply(spec, given).map_err(|_| {
        CliFailure::usage(format!(
            "image {} has no default command; give one after --",
            image.name
        ))
    })?;
    if let (Some(gid), false) = (args.gid, given.user) {
        spec.gid = gid;
    }
    Ok(())
}

/// Writes the program's output to ours as it arrives.
pub fn pass_through(event: RunEvent<'_>) {
    // A closed stdout/stderr of ours must not disturb the run.
    match event {
        RunEvent::Stdout(bytes) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(bytes).and_then(|()| out.flush());
        }
        RunEvent::Stderr(bytes) => {
            let _ = std::io::stderr().lock().write_all(bytes);
        }
        RunEvent::Started => {}
    }
}

/// Prints the result (JSON, or a one-line note for anything but a plain exit) and returns
/// the exit code.
pub fn report(result: &RunResult, json: bool) -> i32 {
    if json {
        match serde_json::to_string(result) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                super::error_line(format!("cannot encode the result: {e}"));
                return super::EXIT_SANDBOX;
            }
        }
    } else {
        match result.verdict {
            Verdict::OK | Verdict::RE | Verdict::SG => {}
            Verdict::XX => super::error_line(result.message.as_deref().unwrap_or("sandbox error")),
            v => super::error_line(format!(
                "{v}: {}",
                result.message.as_deref().unwrap_or("limit exceeded")
            )),
        }
    }
    result.cli_exit_code()
}
