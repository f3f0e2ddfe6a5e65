//! The spawner: a small single-threaded helper process that clones prepared cells for a
//! long-lived, multithreaded launcher (the daemon, the grader).
//!
//! Why a separate process: cloning from the daemon copies its whole address space and, with
//! its threads running on other CPUs, every later write to a shared page costs a copy-on-write
//! fault plus a TLB shoot-down IPI. Measured under load, that was about a fifth of all CPU
//! time per cell. The spawner is `sandcell __spawner` exec'd fresh: a few hundred KiB of
//! touched memory and no other threads, so its clones are cheap and its children may
//! allocate (PID 1 of a prepared cell decodes its run; see `pid1.rs`).
//!
//! Cells are cloned with CLONE_PARENT, so they are children of the launcher process, which
//! waits for them (wait4, rusage) exactly like cells it cloned itself; the spawner never has
//! children of its own. The launcher's side ([`Spawner`]) keeps a dedicated thread as the
//! spawner's parent: parent-death signals follow the parent *thread*, and this one lives
//! as long as the launcher.
//!
//! Protocol (SOCK_SEQPACKET, one request and one reply at a time): a JSON
//! [`SpawnRequest`] with the cell's descriptors `[stdout, stderr, errors, status, control,
//! cgroup...]`, answered by a JSON [`SpawnReply`] carrying the cell's pidfd.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Mutex};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use super::pid1::{self, Awaited, CellPlan, Run};
use super::plan::{self, CgroupEntry};
use super::shape::CellShape;
use super::sys::{self, CloneArgs, CLONE_INTO_CGROUP};
use super::{ipc, seccomp, SandboxError};

/// The argument that makes `sandcell` run as the spawner.
pub const SPAWNER_ARG: &str = "__spawner";
const PARENT_ENV: &str = "SANDCELL_SPAWNER_PARENT";

/// Descriptors of a request before the cgroup ones.
const CELL_FDS: usize = 5;
/// Largest request (a shape with many binds) and reply.
const MAX_REQUEST: usize = 64 * 1024;
const MAX_REPLY: usize = 4096;

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct SpawnRequest {
    pub shape: CellShape,
    pub entry: CgroupEntry,
    pub last_cap: u32,
}

#[derive(Debug, Serialize, Deserialize)]
enum SpawnReply {
    /// The cell's pidfd comes with the reply.
    Cloned {
        pid: i32,
    },
    Failed {
        message: String,
    },
}

/// The descriptors of one cell request, in protocol order.
pub(super) struct CellFds<'a> {
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    pub errors: BorrowedFd<'a>,
    pub status: BorrowedFd<'a>,
    pub control: BorrowedFd<'a>,
    /// The cgroup directory (CLONE_INTO_CGROUP) or the cgroup.procs files to join.
    pub cgroup: Vec<BorrowedFd<'a>>,
}

/// One running spawner process and the thread that is its parent.
struct Process {
    sock: OwnedFd,
    /// Dropping it lets the parent thread reap the process and end.
    stop: mpsc::Sender<()>,
    keeper: JoinHandle<()>,
}

impl Process {
    /// Starts `exe __spawner` from a dedicated thread that stays its parent until stopped:
    /// parent-death signals follow the parent thread, for the spawner and for every cell
    /// cloned through it (CLONE_PARENT).
    fn start(exe: &Path) -> Result<Process, SandboxError> {
        let (ours, theirs) = ipc::seqpacket_pair()
            .map_err(|e| SandboxError::prepare("spawner: create socket", e))?;
        let (ready_tx, ready_rx) = mpsc::channel::<std::io::Result<()>>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let shown = exe.display().to_string();
        let exe = exe.to_path_buf();
        let keeper = std::thread::Builder::new()
            .name("cell-spawner".into())
            .spawn(move || {
                let child = std::process::Command::new(&exe)
                    .arg(SPAWNER_ARG)
                    .env(PARENT_ENV, std::process::id().to_string())
                    .stdin(std::process::Stdio::from(theirs))
                    .stdout(std::process::Stdio::null())
                    .spawn();
                match child {
                    Ok(mut child) => {
                        let _ = ready_tx.send(Ok(()));
                        let _ = stop_rx.recv();
                        let _ = child.wait();
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            })
            .map_err(|e| SandboxError::prepare("spawner: start thread", e))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Process {
                sock: ours,
                stop: stop_tx,
                keeper,
            }),
            Ok(Err(e)) => Err(SandboxError::prepare(format!("spawner: run {shown}"), e)),
            Err(e) => Err(spawn_error("start", e)),
        }
    }

    /// One request and its reply; `None` when the process is gone.
    fn call(&self, body: &[u8], fds: &[BorrowedFd<'_>]) -> Option<ipc::Received> {
        ipc::send(self.sock.as_fd(), body, fds).ok()?;
        ipc::recv(self.sock.as_fd(), MAX_REPLY)
            .ok()
            .filter(|reply| !reply.bytes.is_empty())
    }

    /// Ends the process (it sees end of stream), then its parent thread.
    fn stop(self) {
        let _ = nix::sys::socket::shutdown(self.sock.as_raw_fd(), nix::sys::socket::Shutdown::Both);
        drop(self.stop);
        let _ = self.keeper.join();
    }
}

#[derive(Default)]
struct State {
    current: Option<Process>,
    /// Processes that died: their threads stay until [`Spawner::stop`], as the parent of
    /// cells they cloned that may still run.
    dead: Vec<Process>,
}

/// The launcher's handle on its spawner process; restarts it if it dies.
pub(super) struct Spawner {
    exe: PathBuf,
    state: Mutex<State>,
}

impl std::fmt::Debug for Spawner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Spawner")
    }
}

fn spawn_error(what: &str, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::prepare(
        format!("spawner: {what}"),
        std::io::Error::other(e.to_string()),
    )
}

impl Spawner {
    /// Starts the spawner process (`exe __spawner`).
    pub fn start(exe: &Path) -> Result<Spawner, SandboxError> {
        let process = Process::start(exe)?;
        Ok(Spawner {
            exe: exe.to_path_buf(),
            state: Mutex::new(State {
                current: Some(process),
                dead: Vec::new(),
            }),
        })
    }

    /// Asks the spawner to clone a prepared cell; returns its pid and pidfd. A spawner
    /// process that died is replaced once per call.
    pub fn spawn(
        &self,
        request: &SpawnRequest,
        fds: CellFds<'_>,
    ) -> Result<(libc::pid_t, OwnedFd), SandboxError> {
        let body = serde_json::to_vec(request).map_err(|e| spawn_error("encode request", e))?;
        let mut all = vec![fds.stdout, fds.stderr, fds.errors, fds.status, fds.control];
        all.extend(fds.cgroup);
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut restarted = false;
        let reply = loop {
            if state.current.is_none() {
                state.current = Some(Process::start(&self.exe)?);
                restarted = true;
            }
            match state.current.as_ref().and_then(|p| p.call(&body, &all)) {
                Some(reply) => break reply,
                None => {
                    tracing::warn!("the cell spawner process died; starting a new one");
                    let dead = state.current.take();
                    state.dead.extend(dead);
                    if restarted {
                        return Err(spawn_error("clone the cell", "the spawner process died"));
                    }
                }
            }
        };
        drop(state);
        match serde_json::from_slice(&reply.bytes) {
            Ok(SpawnReply::Cloned { pid }) => match reply.fds.into_iter().next() {
                Some(pidfd) => Ok((pid, pidfd)),
                None => Err(spawn_error("read reply", "no pidfd")),
            },
            Ok(SpawnReply::Failed { message }) => Err(spawn_error("clone the cell", message)),
            Err(e) => Err(spawn_error("decode reply", e)),
        }
    }

    /// Ends the spawner process and its parent thread(s). Call only when no cell cloned
    /// through it is alive any more.
    pub fn stop(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let processes: Vec<Process> = state
            .current
            .take()
            .into_iter()
            .chain(state.dead.drain(..))
            .collect();
        drop(state);
        for process in processes {
            process.stop();
        }
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Entry point of `sandcell __spawner` (fd 0 is the socket to the launcher). Returns the
/// process's exit code.
pub fn spawner_main() -> i32 {
    // Die with the launcher; if it is already gone, stop now.
    let _ = sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0);
    let parent = std::env::var(PARENT_ENV)
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    if parent != Some(std::os::unix::process::parent_id()) {
        eprintln!("sandcell: the spawner runs only under a sandcell launcher");
        return 2;
    }
    let sock = match nix::unistd::dup(std::io::stdin()) {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("sandcell spawner: {e}");
            return 1;
        }
    };
    let _ = nix::fcntl::fcntl(
        &sock,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    // fd 0 back to /dev/null: received descriptors never take 0-2.
    if let Ok(null) = std::fs::File::open("/dev/null") {
        let _ = nix::unistd::dup2_stdin(null);
    }
    // The default policy is compiled once, before any clone.
    let _ = seccomp::default();
    loop {
        let msg = match ipc::recv(sock.as_fd(), MAX_REQUEST) {
            Ok(m) if m.bytes.is_empty() => return 0,
            Ok(m) => m,
            Err(e) => {
                eprintln!("sandcell spawner: {e}");
                return 1;
            }
        };
        let (reply, pidfd) = match clone_cell(&msg.bytes, msg.fds) {
            Ok((pid, pidfd)) => (SpawnReply::Cloned { pid }, Some(pidfd)),
            Err(message) => (SpawnReply::Failed { message }, None),
        };
        let body = serde_json::to_vec(&reply).unwrap_or_default();
        let fds: Vec<BorrowedFd<'_>> = pidfd.iter().map(|f| f.as_fd()).collect();
        if ipc::send(sock.as_fd(), &body, &fds).is_err() {
            return 1;
        }
    }
}

fn clone_cell(body: &[u8], fds: Vec<OwnedFd>) -> Result<(libc::pid_t, OwnedFd), String> {
    let request: SpawnRequest =
        serde_json::from_slice(body).map_err(|e| format!("bad request: {e}"))?;
    // Threading rule 2 (sandbox/mod.rs): the cell's PID 1 allocates after the clone.
    match sys::single_threaded() {
        Ok(true) => {}
        Ok(false) => return Err("the spawner has more than one thread; not cloning".into()),
        Err(e) => return Err(format!("count the spawner's threads: {e}")),
    }
    if fds.len() < CELL_FDS {
        return Err(format!(
            "{} descriptors, need at least {CELL_FDS}",
            fds.len()
        ));
    }
    let mut fds = fds.into_iter();
    let mut next = || fds.next().ok_or("descriptor missing".to_string());
    let (stdout, stderr, errors, status, control) = (next()?, next()?, next()?, next()?, next()?);
    let cgroup: Vec<OwnedFd> = fds.collect();
    let spec = request.shape.spec();
    let policy = seccomp::compile(&spec.seccomp).map_err(|e| e.to_string())?;
    let join: Vec<RawFd> = cgroup.iter().map(AsRawFd::as_raw_fd).collect();
    let clone_into = match request.entry {
        CgroupEntry::Cloned => Some(*join.first().ok_or("no cgroup descriptor")?),
        _ => None,
    };
    let pass = [&stdout, &stderr, &errors, &status, &control].map(|f| f.as_raw_fd());
    let init_steps =
        plan::init_steps(&spec, request.entry, &join, &pass).map_err(|e| e.to_string())?;
    let cell = CellPlan {
        init_steps,
        stdout: stdout.as_fd(),
        stderr: stderr.as_fd(),
        errors: errors.as_fd(),
        status: status.as_fd(),
        awaited: Some(Awaited {
            control: control.as_fd(),
            key: request.shape.key(),
            policy,
            have_cgroup: request.entry != CgroupEntry::None,
            last_cap: request.last_cap,
        }),
    };

    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: plan::CELL_CLONE_FLAGS | libc::CLONE_PARENT as u64,
        pidfd: &mut pidfd as *mut RawFd as u64,
        // CLONE_PARENT: the child's exit signal is ours (SIGCHLD); clone3 wants 0 here.
        exit_signal: 0,
        ..CloneArgs::default()
    };
    if let Some(fd) = clone_into {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd as u64;
    }
    if super::timens::supported() {
        super::timens::fresh_for_children().map_err(|e| format!("create a time namespace: {e}"))?;
    }
    // SAFETY: this process is single-threaded (checked above); the child runs `pid1::main`,
    // which never returns (it execs or exits).
    match unsafe { sys::clone3(&mut args) } {
        Ok(0) => pid1::main(&cell, Run::Awaited),
        // SAFETY: clone3 just returned this pidfd; nothing else owns it.
        Ok(pid) => Ok((pid, unsafe { sys::own_fd(pidfd) })),
        Err(errno) => Err(format!(
            "clone3: {}",
            std::io::Error::from_raw_os_error(errno)
        )),
    }
    // `cell` (our copies of the cell's descriptors and cgroup fds) is dropped here.
}
