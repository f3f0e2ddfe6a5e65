//! Launcher: prepares a run in the parent, clones the cell, supervises it, and turns what
//! happened into one verdict.
//!
//! All allocation happens here, before the clone: the step lists (CStrings, pointer arrays,
//! file contents), the BPF programs, the cgroup and its descriptors, the pipes. The child only
//! walks the prepared lists (see `child.rs`).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;

use super::cgroup::{CellCgroup, CgroupHost, CgroupLimits};
use super::child::{self, ChildPlan, ExecPlan, Phase, Step};
use super::supervisor::{self, KillReason, Observed, Watch};
use super::sys::{self, CloneArgs, CLONE_INTO_CGROUP};
use super::{mounts, seccomp, SandboxError};
use crate::result::{RunResult, Verdict};
use crate::spec::{RunSpec, StdinSource, ValidatedSpec, DEFAULT_PATH};

/// Host-wide launcher settings.
#[derive(Debug, Clone, Default)]
pub struct LauncherConfig {
    /// Run without cgroups even when the host has them (limits then count as degraded).
    pub disable_cgroups: bool,
    /// Keep this many v1 cell cgroups pre-created and reuse them (for daemons; saves the
    /// mkdir/rmdir per run). 0 = a fresh cgroup per run.
    pub cgroup_pool: usize,
}

/// Something that happened during a run, delivered as it happens (for streaming).
#[derive(Debug)]
pub enum RunEvent<'a> {
    /// The cell was cloned and is setting up.
    Started,
    Stdout(&'a [u8]),
    Stderr(&'a [u8]),
}

/// Cancels a run from another thread (wakes the supervisor through an eventfd).
#[derive(Debug, Clone)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Debug)]
struct CancelInner {
    fd: nix::sys::eventfd::EventFd,
    cancelled: AtomicBool,
}

impl CancelToken {
    pub fn new() -> std::io::Result<Self> {
        let fd = nix::sys::eventfd::EventFd::from_flags(
            nix::sys::eventfd::EfdFlags::EFD_CLOEXEC | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK,
        )?;
        Ok(CancelToken {
            inner: Arc::new(CancelInner {
                fd,
                cancelled: AtomicBool::new(false),
            }),
        })
    }

    /// Kills the run this token was given to (or makes it end at once if not started).
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        let _ = self.inner.fd.write(1);
    }

    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

/// Launches and supervises cells. One per process; cheap to share between threads.
#[derive(Debug)]
pub struct Launcher {
    config: LauncherConfig,
    /// The host's cgroups, or why they are unusable; detected on first need so runs
    /// without cgroup limits never pay for it.
    cgroups: OnceLock<Result<CgroupHost, String>>,
    last_cap: u32,
}

fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

fn pipe() -> Result<(OwnedFd, OwnedFd), SandboxError> {
    nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| SandboxError::prepare("create pipe", e.into()))
}

impl Launcher {
    /// Detects the host's cgroups once.
    pub fn new(config: LauncherConfig) -> Result<Launcher, SandboxError> {
        sys::ensure_std_fds_open();
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(63);
        Ok(Launcher {
            config,
            cgroups: OnceLock::new(),
            last_cap,
        })
    }

    fn detect_cgroups(&self) -> &Result<CgroupHost, String> {
        self.cgroups.get_or_init(|| {
            if self.config.disable_cgroups {
                return Err("cgroups disabled by configuration".to_string());
            }
            let host = CgroupHost::detect().map_err(|e| e.to_string())?;
            // Cells of a sandcell process that died (SIGKILL mid-run) are removed here, by
            // the next process that needs cgroups.
            let removed = host.cleanup_stale();
            if removed > 0 {
                tracing::info!("removed {removed} stale cell cgroup(s)");
            }
            Ok(host.with_pool(self.config.cgroup_pool))
        })
    }

    /// The host's cgroups, if usable (detected on first call).
    pub fn cgroups(&self) -> Option<&CgroupHost> {
        self.detect_cgroups().as_ref().ok()
    }

    /// Runs one cell to completion. Never panics on bad input; sandbox failures come back as
    /// verdict XX with a message.
    pub fn run(
        &self,
        spec: &ValidatedSpec,
        on_event: &mut dyn FnMut(RunEvent<'_>),
        cancel: Option<&CancelToken>,
    ) -> RunResult {
        if cancel.is_some_and(CancelToken::is_cancelled) {
            let mut r = RunResult::sandbox_error("cancelled before start");
            r.verdict = Verdict::CANCELLED;
            return r;
        }
        match self.try_run(spec.spec(), on_event, cancel) {
            Ok(result) => result,
            Err(e) => RunResult::sandbox_error(e.to_string()),
        }
    }

    /// Limits asked for that this host cannot enforce.
    fn unenforceable(&self, spec: &RunSpec) -> Vec<String> {
        let limits = cgroup_limits(spec);
        if !wants_cgroup(spec) {
            return Vec::new();
        }
        match self.cgroups() {
            Some(host) => host.unenforceable(&limits, spec.limits.cpu_time.is_some()),
            None => {
                let mut missing = Vec::new();
                if limits.memory.is_some() {
                    missing.push("memory".to_string());
                }
                if limits.pids.is_some() {
                    missing.push("pids".to_string());
                }
                if limits.cpus.is_some() {
                    missing.push("cpus".to_string());
                }
                if spec.limits.cpu_time.is_some() {
                    // RLIMIT_CPU still applies per process; the cell-wide limit does not.
                    missing.push("cpu_time".to_string());
                }
                missing
            }
        }
    }

    fn try_run(
        &self,
        spec: &RunSpec,
        on_event: &mut dyn FnMut(RunEvent<'_>),
        cancel: Option<&CancelToken>,
    ) -> Result<RunResult, SandboxError> {
        if sys::geteuid() != 0 {
            return Err(SandboxError::prepare(
                "create cell",
                std::io::Error::other("sandcell must run as root to create cells"),
            ));
        }
        mounts::check_rootfs(&spec.rootfs, &spec.work_dir)?;

        let degraded = self.unenforceable(spec);
        if !degraded.is_empty() && !spec.allow_degraded {
            let why = match self.detect_cgroups() {
                Err(problem) => format!(" ({problem})"),
                Ok(_) => String::new(),
            };
            return Err(SandboxError::Unenforceable(format!(
                "{}{why}",
                degraded.join(", ")
            )));
        }
        let policy = seccomp::compile(&spec.seccomp)?;
        let cgroup = match self.cgroups() {
            Some(host) if wants_cgroup(spec) => Some(host.create_cell(&cgroup_limits(spec))?),
            _ => None,
        };

        let stdin = open_stdin(&spec.stdin)?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (report_r, report_w) = pipe()?;
        let (status_r, status_w) = pipe()?;

        let clone_into = cgroup.as_ref().and_then(CellCgroup::clone_into_fd);
        let plan = ChildPlan {
            init_steps: self.init_steps(
                spec,
                &cgroup,
                clone_into.is_some(),
                &[
                    stdin.as_raw_fd(),
                    out_w.as_raw_fd(),
                    err_w.as_raw_fd(),
                    report_w.as_raw_fd(),
                    status_w.as_raw_fd(),
                ],
            )?,
            program_steps: self.program_steps(
                spec,
                policy,
                &cgroup,
                [stdin.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
            ),
            error_fd: report_w.as_raw_fd(),
            status_fd: status_w.as_raw_fd(),
            reaper_closes: vec![stdin.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
        };

        let mut pidfd: RawFd = -1;
        let mut args = CloneArgs {
            flags: (libc::CLONE_NEWPID
                | libc::CLONE_NEWNS
                | libc::CLONE_NEWNET
                | libc::CLONE_NEWIPC
                | libc::CLONE_NEWUTS
                | libc::CLONE_PIDFD) as u64,
            pidfd: &mut pidfd as *mut RawFd as u64,
            exit_signal: libc::SIGCHLD as u64,
            ..CloneArgs::default()
        };
        if let Some(fd) = clone_into {
            args.flags |= CLONE_INTO_CGROUP;
            args.cgroup = fd.as_raw_fd() as u64;
        }
        let started = Instant::now();
        // SAFETY: the child runs only `child::init_main`, which applies the prepared step
        // lists with async-signal-safe raw syscalls and ends in execve or _exit.
        let pid = match unsafe { sys::clone3(&mut args) } {
            Ok(0) => child::init_main(&plan),
            Ok(pid) => pid,
            Err(errno) => {
                return Err(SandboxError::prepare(
                    "clone the cell",
                    std::io::Error::from_raw_os_error(errno),
                ))
            }
        };
        let pidfd = sys::own_fd(pidfd);
        // The child has its copies; the parent keeps only the read ends.
        drop((stdin, out_w, err_w, report_w, status_w));
        on_event(RunEvent::Started);

        let observed = supervisor::supervise(
            Watch {
                pid,
                pidfd: pidfd.as_fd(),
                stdout: out_r,
                stderr: err_r,
                errors: report_r,
                status: status_r,
                cancel: cancel.map(CancelToken::as_fd),
                cgroup: cgroup.as_ref(),
                started,
                wall_time: spec.limits.wall_time,
                cpu_time: spec.limits.cpu_time,
                output_limit: spec.limits.output,
            },
            on_event,
        );
        let mut result = judge(&plan, &observed, cgroup.as_ref(), spec);
        result.degraded = degraded;
        if let Some(cg) = cgroup {
            if let Err(e) = cg.remove() {
                tracing::warn!("removing the cell's cgroup: {e}");
            }
        }
        Ok(result)
    }

    fn init_steps(
        &self,
        spec: &RunSpec,
        cgroup: &Option<CellCgroup>,
        cloned_into_cgroup: bool,
        pass: &[RawFd],
    ) -> Result<Vec<Step>, SandboxError> {
        let join: Vec<RawFd> = match cgroup {
            Some(cg) if !cloned_into_cgroup => {
                cg.join_fds().iter().map(|f| f.as_raw_fd()).collect()
            }
            _ => Vec::new(),
        };
        let mut keep: Vec<RawFd> = pass.iter().chain(&join).copied().collect();
        keep.sort_unstable();
        keep.dedup();
        let mut steps = vec![Step::CloseAllExcept(keep), Step::ParentDeathSignal];
        for &fd in &join {
            steps.push(Step::JoinCgroup(fd));
            steps.push(Step::Close(fd));
        }
        if cgroup.is_some() {
            steps.push(Step::UnshareCgroupNamespace);
        }
        steps.push(Step::Umask(0));
        steps.extend(mounts::filesystem_steps(spec)?);
        steps.push(Step::SetHostname(cstring(&spec.hostname)));
        steps.push(Step::LoopbackUp);
        Ok(steps)
    }

    fn program_steps(
        &self,
        spec: &RunSpec,
        policy: Option<Arc<seccomp::CompiledPolicy>>,
        cgroup: &Option<CellCgroup>,
        [stdin, stdout, stderr]: [RawFd; 3],
    ) -> Vec<Step> {
        let mut steps = vec![
            Step::NewSession,
            Step::DupOnto { from: stdin, to: 0 },
            Step::DupOnto {
                from: stdout,
                to: 1,
            },
            Step::DupOnto {
                from: stderr,
                to: 2,
            },
        ];
        steps.extend(rlimit_steps(spec, cgroup.is_some()));
        steps.extend([
            Step::ClearGroups,
            Step::SetGid(spec.gid),
            Step::LockSecurebits,
            Step::DropBoundingSet {
                last_cap: self.last_cap,
            },
            Step::ClearAmbient,
            Step::SetUid(spec.uid),
            Step::ClearCapabilities,
            Step::Umask(0o022),
            Step::Chdir(cstring(spec.cwd.as_deref().unwrap_or(&spec.work_dir))),
            Step::NoNewPrivs,
            Step::CloexecFrom(3),
        ]);
        if let Some(policy) = policy {
            steps.push(Step::Seccomp(policy));
        }
        steps.push(Step::Exec(exec_plan(spec)));
        steps
    }
}

/// A cell cgroup only when a limit needs one: on v1 hosts joining a cgroup costs an RCU
/// grace period (milliseconds), and without limits rusage covers the usage.
fn wants_cgroup(spec: &RunSpec) -> bool {
    cgroup_limits(spec) != CgroupLimits::default() || spec.limits.cpu_time.is_some()
}

fn cgroup_limits(spec: &RunSpec) -> CgroupLimits {
    CgroupLimits {
        memory: spec.limits.memory,
        pids: spec.limits.pids,
        cpus: spec.limits.cpus,
    }
}

/// RLIMIT_`name` with equal soft and hard values.
fn rlimit(resource: u32, value: u64, name: &'static str) -> Step {
    Step::SetRlimit {
        resource,
        soft: value,
        hard: value,
        name,
    }
}

fn rlimit_steps(spec: &RunSpec, have_cgroup: bool) -> Vec<Step> {
    let l = &spec.limits;
    let mut steps = vec![
        rlimit(libc::RLIMIT_NOFILE, l.open_files, "NOFILE"),
        rlimit(libc::RLIMIT_CORE, 0, "CORE"),
        rlimit(libc::RLIMIT_FSIZE, l.file_size.unwrap_or(l.disk), "FSIZE"),
    ];
    if let Some(stack) = l.stack {
        steps.push(rlimit(libc::RLIMIT_STACK, stack, "STACK"));
    }
    if let Some(cpu) = l.cpu_time {
        // Per-process backstop; the cell-wide CPU limit is enforced from the cgroup. The hard
        // limit is one second above the soft one, so SIGXCPU comes before SIGKILL.
        let secs = cpu.as_secs() + 1;
        steps.push(Step::SetRlimit {
            resource: libc::RLIMIT_CPU,
            soft: secs,
            hard: secs + 1,
            name: "CPU",
        });
    }
    if let (Some(pids), false) = (l.pids, have_cgroup) {
        // Backstop only without a pids cgroup: RLIMIT_NPROC counts every process of the uid
        // on the host, so with cgroups it would let concurrent cells of one uid interfere.
        steps.push(rlimit(libc::RLIMIT_NPROC, pids, "NPROC"));
    }
    steps
}

/// The environment of the program: PATH, HOME, LANG, then the spec's variables (which win).
fn environment(spec: &RunSpec) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), DEFAULT_PATH.into()),
        ("HOME".into(), spec.work_dir.clone()),
        ("LANG".into(), "C.UTF-8".into()),
    ];
    for (k, v) in &spec.env {
        match env.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    env
}

fn exec_plan(spec: &RunSpec) -> ExecPlan {
    let env = environment(spec);
    let program = spec.argv[0].as_str();
    let candidates = if program.contains('/') {
        vec![cstring(program)]
    } else {
        let path = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| cstring(&format!("{}/{program}", d.trim_end_matches('/'))))
            .collect()
    };
    ExecPlan::new(
        program.to_string(),
        candidates,
        spec.argv.iter().map(|a| cstring(a)).collect(),
        env.iter()
            .map(|(k, v)| cstring(&format!("{k}={v}")))
            .collect(),
    )
}

fn open_stdin(source: &StdinSource) -> Result<OwnedFd, SandboxError> {
    match source {
        StdinSource::Null => std::fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| SandboxError::prepare("open /dev/null", e)),
        StdinSource::File(path) => std::fs::File::open(path)
            .map(OwnedFd::from)
            .map_err(|e| SandboxError::prepare(format!("open stdin file {}", path.display()), e)),
        StdinSource::Bytes(bytes) => memfd_with(bytes),
    }
}

/// A sealed memfd holding `bytes`, positioned at 0: stdin without a writer thread.
fn memfd_with(bytes: &[u8]) -> Result<OwnedFd, SandboxError> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MFdFlags};
    use std::io::{Seek, Write};
    let fd = memfd_create(
        c"sandcell-stdin",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(|e| SandboxError::prepare("create stdin memfd", e.into()))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)
        .and_then(|()| file.seek(std::io::SeekFrom::Start(0)).map(drop))
        .map_err(|e| SandboxError::prepare("write stdin memfd", e))?;
    let seals = SealFlag::F_SEAL_WRITE
        | SealFlag::F_SEAL_GROW
        | SealFlag::F_SEAL_SHRINK
        | SealFlag::F_SEAL_SEAL;
    fcntl(&file, FcntlArg::F_ADD_SEALS(seals))
        .map_err(|e| SandboxError::prepare("seal stdin memfd", e.into()))?;
    Ok(OwnedFd::from(file))
}

/// Turns what the supervisor observed into one verdict with usage.
fn judge(
    plan: &ChildPlan,
    seen: &Observed,
    cgroup: Option<&CellCgroup>,
    spec: &RunSpec,
) -> RunResult {
    let mut result = RunResult::sandbox_error("");
    result.message = None;
    result.stdout = seen.stdout.clone();
    result.stderr = seen.stderr.clone();
    result.wall_time_ms = seen.wall.as_millis() as u64;
    let rusage_cpu = seen.reaped.map(|w| {
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(w.rusage.ru_utime) + tv(w.rusage.ru_stime)
    });
    let cpu = cgroup.and_then(CellCgroup::cpu_usage).or(rusage_cpu);
    result.cpu_time_ms = cpu.map_or(0, |d| d.as_millis() as u64);
    result.memory_peak_bytes = cgroup
        .and_then(CellCgroup::memory_peak)
        .or_else(|| seen.reaped.map(|w| w.rusage.ru_maxrss as u64 * 1024));
    let oom = cgroup.map_or(0, CellCgroup::oom_kills) > 0;

    if let Some((phase, index, errno)) = child::decode_report(&seen.error_report) {
        let step = match (phase, plan.step(phase, index)) {
            (_, Some(step)) => step.to_string(),
            (Phase::Fork, None) => "fork the program".to_string(),
            _ => "set up the cell".to_string(),
        };
        result.verdict = Verdict::XX;
        result.message = Some(format!("{step}: {}", errno_text(errno)));
        return result;
    }
    let status = seen
        .status_report
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes);
    if let Some(status) = status {
        if libc::WIFEXITED(status) {
            result.exit_code = Some(libc::WEXITSTATUS(status));
        } else if libc::WIFSIGNALED(status) {
            result.signal = Some(libc::WTERMSIG(status));
        }
    }
    let limit_text = |d: Option<Duration>| d.map(crate::spec::format_duration).unwrap_or_default();
    match seen.killed {
        Some(KillReason::Cancelled) => {
            result.verdict = Verdict::CANCELLED;
            result.message = Some("cancelled".into());
        }
        Some(KillReason::Output) => {
            result.verdict = Verdict::OLE;
            result.message = Some(format!(
                "output limit of {} per stream exceeded",
                crate::spec::format_size(spec.limits.output)
            ));
        }
        _ if oom => {
            result.verdict = Verdict::MLE;
            result.message = Some(format!(
                "memory limit of {} exceeded",
                spec.limits
                    .memory
                    .map(crate::spec::format_size)
                    .unwrap_or_default()
            ));
        }
        Some(KillReason::WallTime) => {
            result.verdict = Verdict::TO;
            result.reason = Some("wall".into());
            result.message = Some(format!(
                "wall time limit of {} exceeded",
                limit_text(Some(spec.limits.wall_time))
            ));
        }
        Some(KillReason::CpuTime) => {
            result.verdict = Verdict::TO;
            result.reason = Some("cpu".into());
            result.message = Some(format!(
                "CPU time limit of {} exceeded",
                limit_text(spec.limits.cpu_time)
            ));
        }
        None => match (result.exit_code, result.signal) {
            (Some(0), _) => result.verdict = Verdict::OK,
            (Some(_), _) => result.verdict = Verdict::RE,
            (_, Some(libc::SIGXCPU)) => {
                result.verdict = Verdict::TO;
                result.reason = Some("cpu".into());
                result.message = Some(format!(
                    "CPU time limit of {} exceeded",
                    limit_text(spec.limits.cpu_time)
                ));
            }
            (_, Some(_)) => result.verdict = Verdict::SG,
            (None, None) => {
                result.verdict = Verdict::XX;
                result.message =
                    Some("the cell ended without reporting the program's status".into());
            }
        },
    }
    result
}
