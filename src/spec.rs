//! What the user asked for: [`RunSpec`] (plain data, serde) and its [`Limits`].
//!
//! Every interface (CLI, HTTP, grader) builds a `RunSpec`; [`RunSpec::validate`] turns it into a
//! [`ValidatedSpec`], the only thing the launcher accepts. Validation never clamps silently: a
//! limit outside its range is an error naming the limit (peers' users complain most about
//! silently downgraded limits).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Errors in a run request: bad limits, bad paths, bad command.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{field} {value} is out of range ({range})")]
    OutOfRange {
        field: &'static str,
        value: String,
        range: String,
    },
}

impl SpecError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        SpecError::Invalid {
            field,
            message: message.into(),
        }
    }
}

/// Where the program's standard input comes from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StdinSource {
    /// Empty input (/dev/null).
    #[default]
    Null,
    /// A host file, opened by the launcher before the cell starts.
    File(PathBuf),
    /// Bytes given in the request (passed to the cell through a sealed memfd).
    Bytes(Vec<u8>),
}

/// A file placed into the cell's work dir before the program starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// Path relative to the work dir; no `..`, not absolute.
    pub path: String,
    pub content: Vec<u8>,
    /// Permission bits; 0o644 when absent, 0o755 for executables.
    #[serde(default)]
    pub mode: Option<u32>,
}

/// A host directory or file bound into the cell. The cell can read the source's path (its
/// mountinfo line shows it, as for any bind mount): bind only what the program may know of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindMount {
    pub source: PathBuf,
    /// Absolute path inside the cell. If it lies inside the work dir it is created there;
    /// otherwise it must already exist in the image. If it equals the work dir, the bind
    /// replaces the work-dir tmpfs.
    pub target: String,
    #[serde(default)]
    pub writable: bool,
}

/// Which seccomp policy the cell runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeccompChoice {
    /// The built-in allow-list close to Docker's default.
    #[default]
    Default,
    /// No filter at all; must be asked for explicitly.
    None,
    /// A seccompiler JSON policy file.
    PolicyFile(PathBuf),
}

/// Resource limits of one run. `None` means "not limited" and is only allowed where the
/// field's documentation says so.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock time; the whole cell is killed when it passes.
    #[serde(with = "duration_ms")]
    pub wall_time: Duration,
    /// CPU time of all processes of the cell together (cgroup accounting).
    #[serde(with = "opt_duration_ms")]
    pub cpu_time: Option<Duration>,
    /// Memory in bytes (memory.max, swap 0).
    pub memory: Option<u64>,
    /// Number of processes/threads (pids.max), the cell's reaper included: at least
    /// [`MIN_PIDS`].
    pub pids: Option<u64>,
    /// CPU bandwidth in cores (cpu.max quota), e.g. 1.0.
    pub cpus: Option<f64>,
    /// Size of each writable tmpfs layer (/tmp, the work dir) in bytes.
    pub disk: u64,
    /// Inodes (files, directories, links) of each writable tmpfs layer: bytes alone do not
    /// stop a program creating hundreds of thousands of empty files.
    pub inodes: u64,
    /// Captured bytes per stream (stdout, stderr); more makes the run OLE.
    pub output: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_FSIZE in bytes; defaults to `disk`.
    pub file_size: Option<u64>,
    /// RLIMIT_STACK in bytes; system default when absent.
    pub stack: Option<u64>,
}

/// The fewest processes a cell can run a program with: the cell's reaper (its pid 1) and the
/// program.
pub const MIN_PIDS: u64 = 2;

pub const MIB: u64 = 1 << 20;
/// Inodes of each writable tmpfs unless asked otherwise.
pub const DEFAULT_INODES: u64 = 32 * 1024;
/// Fewer would not hold a work dir with a few files in it.
pub const MIN_INODES: u64 = 16;
pub const GIB: u64 = 1 << 30;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall_time: Duration::from_secs(10),
            cpu_time: Some(Duration::from_secs(5)),
            memory: Some(256 * MIB),
            pids: Some(64),
            cpus: None,
            disk: 64 * MIB,
            inodes: DEFAULT_INODES,
            output: MIB,
            open_files: 256,
            file_size: None,
            stack: None,
        }
    }
}

/// Hard bounds a limit must lie in. Servers may configure tighter maxima.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitBounds {
    #[serde(with = "duration_ms")]
    pub max_wall_time: Duration,
    #[serde(with = "duration_ms")]
    pub max_cpu_time: Duration,
    pub max_memory: u64,
    pub max_pids: u64,
    pub max_cpus: f64,
    pub max_disk: u64,
    pub max_inodes: u64,
    pub max_output: u64,
    pub max_open_files: u64,
}

impl Default for LimitBounds {
    fn default() -> Self {
        LimitBounds {
            max_wall_time: Duration::from_secs(24 * 3600),
            max_cpu_time: Duration::from_secs(24 * 3600),
            max_memory: host_memory_bytes().unwrap_or(1 << 40),
            max_pids: 1 << 22,
            max_cpus: 1024.0,
            max_disk: 64 * GIB,
            max_inodes: 1 << 24,
            max_output: GIB,
            max_open_files: 1 << 20,
        }
    }
}

/// MemTotal of the host, the natural ceiling for a memory limit.
pub fn host_memory_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn check_range<T: PartialOrd>(
    field: &'static str,
    value: T,
    min: T,
    max: T,
    show: impl Fn(&T) -> String,
) -> Result<(), SpecError> {
    if value < min || value > max {
        return Err(SpecError::OutOfRange {
            field,
            value: show(&value),
            range: format!("{} to {}", show(&min), show(&max)),
        });
    }
    Ok(())
}

impl Limits {
    /// Checks every limit against `bounds`; the first offending limit is named in the error.
    pub fn check(&self, bounds: &LimitBounds) -> Result<(), SpecError> {
        let dur = |d: &Duration| format_duration(*d);
        let size = |b: &u64| format_size(*b);
        let num = |n: &u64| n.to_string();
        check_range(
            "wall_time",
            self.wall_time,
            Duration::from_millis(1),
            bounds.max_wall_time,
            dur,
        )?;
        if let Some(cpu) = self.cpu_time {
            check_range(
                "cpu_time",
                cpu,
                Duration::from_millis(1),
                bounds.max_cpu_time,
                dur,
            )?;
        }
        if let Some(mem) = self.memory {
            check_range("memory", mem, MIB, bounds.max_memory, size)?;
        }
        if let Some(pids) = self.pids {
            check_range("pids", pids, MIN_PIDS, bounds.max_pids, num)?;
        }
        if let Some(cpus) = self.cpus {
            if !cpus.is_finite() {
                return Err(SpecError::invalid("cpus", "must be a finite number"));
            }
            check_range("cpus", cpus, 0.01, bounds.max_cpus, |c| format!("{c}"))?;
        }
        check_range("disk", self.disk, MIB, bounds.max_disk, size)?;
        check_range("inodes", self.inodes, MIN_INODES, bounds.max_inodes, num)?;
        check_range("output", self.output, 0, bounds.max_output, size)?;
        check_range("open_files", self.open_files, 4, bounds.max_open_files, num)?;
        if let Some(fsize) = self.file_size {
            check_range("file_size", fsize, 1, bounds.max_disk, size)?;
        }
        if let Some(stack) = self.stack {
            check_range("stack", stack, 64 * 1024, bounds.max_memory, size)?;
        }
        Ok(())
    }
}

/// Everything one run needs: the image, the command and its environment, and the limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The unpacked root filesystem (mounted read-only).
    pub rootfs: PathBuf,
    /// Program and arguments; a program without `/` is searched in PATH inside the cell.
    pub argv: Vec<String>,
    /// Extra environment on top of PATH, HOME and LANG.
    pub env: Vec<(String, String)>,
    /// The writable work dir inside the cell (a size-capped tmpfs).
    pub work_dir: String,
    /// The program's cwd; the work dir when absent.
    #[serde(default)]
    pub cwd: Option<String>,
    pub uid: u32,
    pub gid: u32,
    pub hostname: String,
    pub stdin: StdinSource,
    pub limits: Limits,
    pub files: Vec<FileSpec>,
    pub binds: Vec<BindMount>,
    pub seccomp: SeccompChoice,
    /// Run even when the host cannot enforce a limit that was asked for; the result lists
    /// what was degraded.
    pub allow_degraded: bool,
    /// Keep the output in the result (`stdout`/`stderr`). A caller that streams the output
    /// elsewhere as it arrives (the CLI's pass-through mode) turns this off: the output
    /// limit is still counted and enforced, but memory stays bounded whatever the size.
    #[serde(default = "yes")]
    pub keep_output: bool,
}

fn yes() -> bool {
    true
}

/// The default PATH inside a cell.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The default unprivileged identity (nobody/nogroup).
pub const DEFAULT_UID: u32 = 65534;

impl RunSpec {
    /// A spec with safe defaults for `argv` over `rootfs`.
    pub fn new(rootfs: impl Into<PathBuf>, argv: Vec<String>) -> Self {
        RunSpec {
            rootfs: rootfs.into(),
            argv,
            env: Vec::new(),
            work_dir: "/work".into(),
            cwd: None,
            uid: DEFAULT_UID,
            gid: DEFAULT_UID,
            hostname: "sandcell".into(),
            stdin: StdinSource::Null,
            limits: Limits::default(),
            files: Vec::new(),
            binds: Vec::new(),
            seccomp: SeccompChoice::Default,
            allow_degraded: false,
            keep_output: true,
        }
    }

    /// Checks the spec; the launcher only takes a [`ValidatedSpec`].
    pub fn validate(self, bounds: &LimitBounds) -> Result<ValidatedSpec, SpecError> {
        if self.argv.is_empty() || self.argv[0].is_empty() {
            return Err(SpecError::invalid("cmd", "no command given"));
        }
        if self.argv.iter().any(|a| a.contains('\0')) {
            return Err(SpecError::invalid("cmd", "arguments may not contain NUL"));
        }
        if self.uid == 0 || self.gid == 0 {
            return Err(SpecError::invalid(
                "uid",
                "the program may not run as root (uid/gid 0)",
            ));
        }
        check_cell_path("work_dir", &self.work_dir)?;
        if self.work_dir == "/" {
            return Err(SpecError::invalid("work_dir", "may not be /"));
        }
        if let Some(cwd) = &self.cwd {
            check_cell_path("cwd", cwd)?;
        }
        if self.hostname.is_empty()
            || self.hostname.len() > 64
            || !self
                .hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(SpecError::invalid(
                "hostname",
                "must be 1-64 of [A-Za-z0-9.-]",
            ));
        }
        check_exec_size(&self.argv, &self.env, self.limits.stack)?;
        for (k, v) in &self.env {
            if k.is_empty() || k.contains('=') || k.contains('\0') {
                return Err(SpecError::invalid(
                    "env",
                    format!("bad variable name {k:?}"),
                ));
            }
            if v.contains('\0') {
                return Err(SpecError::invalid(
                    "env",
                    format!("the value of {k:?} contains a NUL byte"),
                ));
            }
        }
        check_files(&self.files, self.limits.disk, self.limits.inodes)?;
        for b in &self.binds {
            check_cell_path("binds[].target", &b.target)?;
            if !b.source.is_absolute() {
                return Err(SpecError::invalid("binds[].source", "must be absolute"));
            }
        }
        self.limits.check(bounds)?;
        Ok(ValidatedSpec(self))
    }
}

/// Bounds on what one run may carry, checked by [`RunSpec::validate`] before anything else
/// happens (the HTTP API answers 422 naming the bound, the CLI exits 2). They keep every step
/// of a request cheap and stay below what `execve` accepts.
pub mod bounds {
    /// Arguments of the command (`argv`, the program included).
    pub const MAX_ARGS: usize = 4096;
    /// Environment variables (the image's and the request's together).
    pub const MAX_ENV: usize = 4096;
    /// One argument or one `NAME=value` string, NUL included: the kernel's MAX_ARG_STRLEN.
    pub const MAX_STRING_BYTES: usize = 128 * 1024;
    /// Arguments and environment together (strings, NULs and pointers), half the usual
    /// ARG_MAX (a quarter of an 8 MiB stack); a cell with a smaller `stack` gets stack / 4.
    pub const MAX_EXEC_BYTES: usize = 1024 * 1024;
    /// Files placed in the work dir.
    pub const MAX_FILES: usize = 1024;
    /// Bytes of one path (a component: 255).
    pub const MAX_PATH_BYTES: usize = 4096;
}

/// Checks argv and env against [`bounds`] (counts first, so the check is cheap however
/// large the input).
fn check_exec_size(
    argv: &[String],
    env: &[(String, String)],
    stack: Option<u64>,
) -> Result<(), SpecError> {
    use bounds::*;
    if argv.len() > MAX_ARGS {
        return Err(SpecError::invalid(
            "cmd",
            format!(
                "{} arguments, more than the maximum of {MAX_ARGS}",
                argv.len()
            ),
        ));
    }
    if env.len() > MAX_ENV {
        return Err(SpecError::invalid(
            "env",
            format!(
                "{} variables, more than the maximum of {MAX_ENV}",
                env.len()
            ),
        ));
    }
    let ptr = std::mem::size_of::<usize>();
    let mut total = 0usize;
    for (i, a) in argv.iter().enumerate() {
        if a.len() + 1 > MAX_STRING_BYTES {
            return Err(SpecError::invalid(
                "cmd",
                format!(
                    "argument {i} has {} bytes, more than the maximum of {}",
                    a.len(),
                    MAX_STRING_BYTES - 1
                ),
            ));
        }
        total += a.len() + 1 + ptr;
    }
    for (k, v) in env {
        let len = k.len() + 1 + v.len();
        if len + 1 > MAX_STRING_BYTES {
            return Err(SpecError::invalid(
                "env",
                format!(
                    "{k:?}: NAME=value has {len} bytes, more than the maximum of {}",
                    MAX_STRING_BYTES - 1
                ),
            ));
        }
        total += len + 1 + ptr;
    }
    let budget = match stack {
        Some(s) => MAX_EXEC_BYTES.min(usize::try_from(s / 4).unwrap_or(usize::MAX)),
        None => MAX_EXEC_BYTES,
    };
    if total > budget {
        return Err(SpecError::invalid(
            "cmd",
            format!(
                "arguments and environment take {total} bytes, more than the maximum of {budget}"
            ),
        ));
    }
    Ok(())
}

/// Checks the files against [`bounds`]: each path, no path twice, no file that is also the
/// directory of another (`a` and `a/b`), and all of them fit in the work dir (`disk` bytes,
/// `inodes` for the files, their directories and the work dir itself). O(n log n) in the
/// number of files.
fn check_files(files: &[FileSpec], disk: u64, inodes: u64) -> Result<(), SpecError> {
    if files.len() > bounds::MAX_FILES {
        return Err(SpecError::invalid(
            "files",
            format!(
                "{} files, more than the maximum of {}",
                files.len(),
                bounds::MAX_FILES
            ),
        ));
    }
    let mut bytes = 0u64;
    for f in files {
        check_relative_path("files[].path", &f.path)?;
        bytes = bytes.saturating_add(f.content.len() as u64);
    }
    if bytes > disk {
        return Err(SpecError::invalid(
            "files",
            format!(
                "{} of files do not fit in the work dir (limits.disk {})",
                format_size(bytes),
                format_size(disk)
            ),
        ));
    }
    // Ordered component by component, a path's descendants follow it directly.
    let mut paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable_by(|a, b| a.split('/').cmp(b.split('/')));
    // Sorted so, each directory is new exactly where a path's parent leaves the previous's.
    let mut dirs = 0usize;
    let mut previous: Vec<&str> = Vec::new();
    for path in &paths {
        let parent: Vec<&str> = path.split('/').collect::<Vec<_>>();
        let parent = &parent[..parent.len() - 1];
        let shared = parent
            .iter()
            .zip(&previous)
            .take_while(|(a, b)| a == b)
            .count();
        dirs += parent.len() - shared;
        previous = parent.to_vec();
    }
    let needed = (files.len() + dirs + 1) as u64;
    if needed > inodes {
        return Err(SpecError::invalid(
            "files",
            format!(
                "{} files and {dirs} directories need {needed} inodes, more than limits.inodes {inodes}",
                files.len()
            ),
        ));
    }
    for pair in paths.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a == b {
            return Err(SpecError::invalid(
                "files",
                format!("{a:?} is given more than once"),
            ));
        }
        if b.len() > a.len() && b.starts_with(a) && b.as_bytes()[a.len()] == b'/' {
            return Err(SpecError::invalid(
                "files",
                format!("{a:?} is a file, so {b:?} cannot be inside it"),
            ));
        }
    }
    Ok(())
}

/// An absolute, normalised path inside the cell: no `..`, `.`, empty parts or NUL.
pub fn check_cell_path(field: &'static str, path: &str) -> Result<(), SpecError> {
    let Some(rest) = path.strip_prefix('/') else {
        return Err(SpecError::invalid(
            field,
            format!("{path:?} is not absolute"),
        ));
    };
    if rest.is_empty() {
        return Ok(());
    }
    check_relative_path(field, rest)
}

/// A relative path with no `..`, `.`, empty parts, NUL, or leading `/`.
pub fn check_relative_path(field: &'static str, path: &str) -> Result<(), SpecError> {
    if path.len() > bounds::MAX_PATH_BYTES || path.split('/').any(|c| c.len() > 255) {
        return Err(SpecError::invalid(
            field,
            format!(
                "a path of {} bytes: at most {} bytes, 255 per component",
                path.len(),
                bounds::MAX_PATH_BYTES
            ),
        ));
    }
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(SpecError::invalid(
            field,
            format!("{path:?} must be a relative path without '..', '.' or empty parts"),
        ));
    }
    Ok(())
}

/// A spec that passed [`RunSpec::validate`].
#[derive(Debug, Clone)]
pub struct ValidatedSpec(RunSpec);

impl ValidatedSpec {
    pub fn spec(&self) -> &RunSpec {
        &self.0
    }
    pub fn into_inner(self) -> RunSpec {
        self.0
    }
}

/// Parses `256M`, `1G`, `512k`, `1048576`, `64MiB` into bytes (binary units).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!("{text:?} is not a size (e.g. 256M, 1G)"));
    }
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is too large"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        "p" | "pb" | "pib" => 1 << 50,
        _ => return Err(format!("{text:?} has an unknown unit (use K, M, G, T)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `1.5s` into a duration.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (e.g. 10s, 500ms)"))?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        "y" => n * 365.0 * 86400.0,
        _ => return Err(format!("{text:?} has an unknown unit (use ms, s, m, h)")),
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("{text:?} is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `1.5 GiB`-style rendering for messages.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 5] = [
        ("PiB", 1 << 50),
        ("TiB", 1 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in UNITS {
        if bytes >= size {
            if bytes.is_multiple_of(size) {
                return format!("{} {name}", bytes / size);
            }
            return format!("{:.1} {name}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes} B")
}

/// `1.5s` / `250ms` rendering for messages.
pub fn format_duration(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

/// Serde helper: a `Duration` as whole milliseconds.
pub mod duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Serde helper: an optional `Duration` as whole milliseconds.
pub mod opt_duration_ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_millis() as u64)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("256M").unwrap(), 256 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("-1").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("99999999999P").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.5").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn absurd_limits_are_rejected_by_name() {
        let bounds = LimitBounds::default();
        let mut l = Limits {
            memory: Some(0),
            ..Limits::default()
        };
        assert!(matches!(
            l.check(&bounds),
            Err(SpecError::OutOfRange {
                field: "memory",
                ..
            })
        ));
        l.memory = Some(1 << 50);
        assert!(matches!(
            l.check(&bounds),
            Err(SpecError::OutOfRange {
                field: "memory",
                ..
            })
        ));
        l.memory = Some(64 * MIB);
        l.wall_time = parse_duration("10y").unwrap();
        assert!(matches!(
            l.check(&bounds),
            Err(SpecError::OutOfRange {
                field: "wall_time",
                ..
            })
        ));
        l.wall_time = Duration::from_secs(1);
        l.pids = Some(0);
        assert!(l.check(&bounds).is_err());
        l.pids = Some(16);
        assert_eq!(l.check(&bounds), Ok(()));
    }

    #[test]
    fn paths_inside_the_cell_are_checked() {
        assert!(check_cell_path("x", "/work").is_ok());
        assert!(check_cell_path("x", "work").is_err());
        assert!(check_cell_path("x", "/work/../etc").is_err());
        assert!(check_relative_path("x", "a/b.txt").is_ok());
        assert!(check_relative_path("x", "../../etc/x").is_err());
        assert!(check_relative_path("x", "/etc/x").is_err());
        assert!(check_relative_path("x", "a//b").is_err());
    }

    #[test]
    fn validate_rejects_root_and_empty_commands() {
        let b = LimitBounds::default();
        assert!(RunSpec::new("/r", vec![]).validate(&b).is_err());
        let mut s = RunSpec::new("/r", vec!["/bin/true".into()]);
        s.uid = 0;
        assert!(s.validate(&b).is_err());
        assert!(RunSpec::new("/r", vec!["/bin/true".into()])
            .validate(&b)
            .is_ok());
    }

    fn file(path: &str) -> FileSpec {
        FileSpec {
            path: path.into(),
            content: b"x".to_vec(),
            mode: None,
        }
    }

    fn invalid_field(s: RunSpec) -> Option<&'static str> {
        match s.validate(&LimitBounds::default()) {
            Err(SpecError::Invalid { field, .. }) | Err(SpecError::OutOfRange { field, .. }) => {
                Some(field)
            }
            Ok(_) => None,
        }
    }

    #[test]
    fn files_may_not_collide() {
        let with = |paths: &[&str]| {
            let mut s = RunSpec::new("/r", vec!["true".into()]);
            s.files = paths.iter().map(|p| file(p)).collect();
            invalid_field(s)
        };
        assert_eq!(with(&["a", "b", "a-b", "a/b-c", "c/d"]), Some("files"));
        assert_eq!(with(&["a", "a"]), Some("files"));
        assert_eq!(with(&["a/b", "a"]), Some("files"));
        assert_eq!(with(&["a-x", "a", "a/b"]), Some("files"));
        assert_eq!(with(&["a", "a-b", "ab", "c/a", "c/b"]), None);
        assert_eq!(with(&["d/a", "d/b/c", "d/bc"]), None);
    }

    #[test]
    fn one_request_is_bounded() {
        let mut s = RunSpec::new("/r", vec!["true".into()]);
        s.env = (0..100_000)
            .map(|i| (format!("V{i}"), "x".into()))
            .collect();
        assert_eq!(invalid_field(s), Some("env"));
        let s = RunSpec::new("/r", vec!["x".into(); 500_000]);
        assert_eq!(invalid_field(s), Some("cmd"));
        let s = RunSpec::new("/r", vec!["echo".into(), "x".repeat(7 << 20)]);
        assert_eq!(invalid_field(s), Some("cmd"));
        let s = RunSpec::new("/r", vec!["echo".into(), "x".repeat(200_000)]);
        assert_eq!(invalid_field(s), Some("cmd"));
        // Within every single bound, but together more than execve takes.
        let s = RunSpec::new("/r", vec!["x".repeat(100_000); 20]);
        assert_eq!(invalid_field(s), Some("cmd"));
        let mut s = RunSpec::new("/r", vec!["true".into()]);
        s.limits.stack = Some(64 * 1024);
        s.env = vec![("BIG".into(), "x".repeat(20_000))];
        assert_eq!(invalid_field(s), Some("cmd"));
        let mut s = RunSpec::new("/r", vec!["true".into()]);
        s.files = (0..2000).map(|i| file(&format!("f{i}"))).collect();
        assert_eq!(invalid_field(s), Some("files"));
        let mut s = RunSpec::new("/r", vec!["true".into()]);
        s.files = vec![file(&"a/".repeat(3000))];
        assert_eq!(invalid_field(s), Some("files[].path"));
        let mut s = RunSpec::new("/r", vec!["true".into()]);
        s.files = vec![FileSpec {
            content: vec![0; 2 << 20],
            ..file("big")
        }];
        s.limits.disk = MIB;
        assert_eq!(invalid_field(s), Some("files"));
        let mut s = RunSpec::new("/r", vec!["true".into()]);
        s.env = (0..bounds::MAX_ENV)
            .map(|i| (format!("V{i}"), "x".into()))
            .collect();
        assert_eq!(invalid_field(s), None);
    }

    #[test]
    fn a_cell_needs_room_for_its_reaper_and_the_program() {
        let mut s = RunSpec::new("/r", vec!["true".into()]);
        s.limits.pids = Some(1);
        assert_eq!(invalid_field(s), Some("pids"));
        let mut s = RunSpec::new("/r", vec!["true".into()]);
        s.limits.pids = Some(MIN_PIDS);
        assert_eq!(invalid_field(s), None);
    }

    #[test]
    fn a_nul_in_a_value_is_not_a_bad_name() {
        let mut s = RunSpec::new("/r", vec!["true".into()]);
        s.env = vec![("A".into(), "x\0y".into())];
        let e = s.validate(&LimitBounds::default()).unwrap_err().to_string();
        assert!(e.contains("NUL") && !e.contains("name"), "{e}");
    }

    #[test]
    fn files_and_their_directories_must_fit_the_inodes() {
        let with = |paths: &[&str], inodes: u64| {
            let mut s = RunSpec::new("/r", vec!["true".into()]);
            s.files = paths.iter().map(|p| file(p)).collect();
            s.limits.inodes = inodes;
            invalid_field(s)
        };
        // 16 files, the directories a and a/b, and the work dir.
        let mut paths: Vec<String> = (0..14).map(|i| format!("a/b/f{i}")).collect();
        paths.extend(["a/c".to_string(), "d".to_string()]);
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        assert_eq!(with(&paths, 19), None);
        assert_eq!(with(&paths, 18), Some("files"));
        let many: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(with(&many, 64), Some("files"));
    }
}
