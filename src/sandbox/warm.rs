//! Prepared cells and the warm pool.
//!
//! A prepared cell is a cell whose PID 1 was cloned (by the spawner) and set itself up —
//! namespaces, cgroup, mounts, hostname, loopback — before its run is known; the run arrives
//! later as one message (`go.rs`). Each cell serves exactly one run: namespaces are never
//! reused.
//!
//! The warm pool keeps a few prepared cells per recently used [`CellShape`], refilled by a
//! background thread, so a run of a known shape only pays for its own program: the clone,
//! the namespaces, the mounts and the cgroup join happen ahead, and
//! the teardown happens after the answer (`janitor.rs`). Shapes unused for a while are
//! dropped with their cells.

use std::collections::{HashMap, VecDeque};
use std::os::fd::AsFd;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::cell::Cell;
use super::cgroup::{CgroupHost, CgroupLimits};
use super::janitor::{Finished, Janitor};
use super::plan::CgroupEntry;
use super::shape::CellShape;
use super::spawner::{CellFds, SpawnRequest, Spawner};
use super::{ipc, SandboxError};

/// Makes prepared cells and cleans them up: the spawner, the host's cgroups, the janitor.
pub(super) struct CellFactory {
    pub spawner: Spawner,
    pub cgroups: Option<Arc<CgroupHost>>,
    pub janitor: Janitor,
    pub last_cap: u32,
}

impl CellFactory {
    /// Clones a cell of `shape` through the spawner. Its cgroup (if the shape has one) has
    /// no limits yet: the run's limits are written when the run starts.
    pub fn prepare(&self, shape: &CellShape) -> Result<Cell, SandboxError> {
        let cgroup = match (&self.cgroups, shape.cgroup) {
            (Some(host), true) => Some(host.create_cell(&CgroupLimits::default())?),
            _ => None,
        };
        let (stdout, stdout_w) = ipc::output_pipe("stdout")?;
        let (stderr, stderr_w) = ipc::output_pipe("stderr")?;
        let (errors, errors_w) = ipc::pipe("error")?;
        let (status, status_w) = ipc::pipe("status")?;
        let (control, control_cell) =
            ipc::seqpacket_pair().map_err(|e| SandboxError::prepare("create control socket", e))?;
        let (entry, cgroup_fds) = match &cgroup {
            None => (CgroupEntry::None, Vec::new()),
            Some(cg) => match cg.clone_into_fd() {
                Some(dir) => (CgroupEntry::Cloned, vec![dir]),
                None => (
                    CgroupEntry::Join,
                    cg.join_fds().iter().map(AsFd::as_fd).collect(),
                ),
            },
        };
        let request = SpawnRequest {
            shape: shape.clone(),
            entry,
            last_cap: self.last_cap,
        };
        let (pid, pidfd) = self.spawner.spawn(
            &request,
            CellFds {
                stdout: stdout_w.as_fd(),
                stderr: stderr_w.as_fd(),
                errors: errors_w.as_fd(),
                status: status_w.as_fd(),
                control: control_cell.as_fd(),
                cgroup: cgroup_fds,
            },
        )?;
        Ok(Cell {
            pid,
            pidfd,
            stdout,
            stderr,
            errors,
            status,
            control: Some(control),
            cgroup,
            identity: None,
        })
    }

    /// Ends an unused cell: PID 1 is killed and the janitor reaps it.
    pub fn discard(&self, cell: Cell) {
        let _ = super::sys::pidfd_send_signal(cell.pidfd.as_fd(), libc::SIGKILL);
        self.janitor.adopt(Finished {
            pid: cell.pid,
            pidfd: cell.pidfd,
            cgroup: cell.cgroup,
            reaped: false,
            _identity: cell.identity,
        });
    }
}

/// Shapes without a run for this long lose their prepared cells.
const IDLE: Duration = Duration::from_secs(60);
/// At most this many shapes are kept warm (least recently used go first).
const MAX_SHAPES: usize = 8;
/// After a failed preparation, a shape is not prepared again for this long.
const BACKOFF: Duration = Duration::from_secs(5);

struct Shelf {
    shape: CellShape,
    ready: VecDeque<Cell>,
    preparing: usize,
    last_used: Instant,
    failed_at: Option<Instant>,
}

impl Shelf {
    fn wants_more(&self, per_shape: usize) -> bool {
        self.ready.len() + self.preparing < per_shape
            && self.last_used.elapsed() < IDLE
            && self.failed_at.is_none_or(|t| t.elapsed() >= BACKOFF)
    }
}

#[derive(Default)]
struct State {
    shelves: HashMap<String, Shelf>,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    factory: Arc<CellFactory>,
    per_shape: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Keeps `per_shape` prepared cells for each recently used shape.
pub(super) struct WarmPool {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl WarmPool {
    pub fn start(factory: Arc<CellFactory>, per_shape: usize) -> std::io::Result<WarmPool> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            factory,
            per_shape,
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("cell-warmer".into())
            .spawn(move || refill(&thread_shared))?;
        Ok(WarmPool {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// A prepared cell of `shape`, if one is ready; either way the shape is (re)filled in
    /// the background from now on.
    pub fn take(&self, shape: &CellShape) -> Option<Cell> {
        let key = shape.key();
        let mut discarded = Vec::new();
        let mut state = self.shared.lock();
        if state.closed {
            return None;
        }
        if !state.shelves.contains_key(&key) && state.shelves.len() >= MAX_SHAPES {
            evict_least_recent(&mut state, &mut discarded);
        }
        let shelf = state.shelves.entry(key).or_insert_with(|| Shelf {
            shape: shape.clone(),
            ready: VecDeque::new(),
            preparing: 0,
            last_used: Instant::now(),
            failed_at: None,
        });
        shelf.last_used = Instant::now();
        let mut taken = None;
        while let Some(cell) = shelf.ready.pop_front() {
            if cell.usable() {
                taken = Some(cell);
                break;
            }
            // Its setup failed (a run of this shape will report why) or it was killed.
            shelf.failed_at = Some(Instant::now());
            discarded.push(cell);
        }
        drop(state);
        self.shared.changed.notify_all();
        for cell in discarded {
            self.shared.factory.discard(cell);
        }
        taken
    }

    /// Discards every prepared cell and stops the refill thread.
    pub fn stop(&self) {
        let mut discarded = Vec::new();
        {
            let mut state = self.shared.lock();
            state.closed = true;
            for (_, shelf) in state.shelves.drain() {
                discarded.extend(shelf.ready);
            }
        }
        self.shared.changed.notify_all();
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
        for cell in discarded {
            self.shared.factory.discard(cell);
        }
    }
}

impl Drop for WarmPool {
    fn drop(&mut self) {
        self.stop();
    }
}

fn evict_least_recent(state: &mut State, discarded: &mut Vec<Cell>) {
    let oldest = state
        .shelves
        .iter()
        .min_by_key(|(_, s)| s.last_used)
        .map(|(k, _)| k.clone());
    if let Some(key) = oldest {
        if let Some(shelf) = state.shelves.remove(&key) {
            discarded.extend(shelf.ready);
        }
    }
}

/// The refill thread: prepares cells for shelves below their target, one at a time, and
/// empties shelves that went idle.
fn refill(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.closed {
            return;
        }
        let mut idle = Vec::new();
        state.shelves.retain(|_, shelf| {
            let keep = shelf.last_used.elapsed() < IDLE || shelf.preparing > 0;
            if !keep {
                idle.extend(shelf.ready.drain(..));
            }
            keep
        });
        let next = state
            .shelves
            .iter_mut()
            .find(|(_, s)| s.wants_more(shared.per_shape))
            .map(|(key, shelf)| {
                shelf.preparing += 1;
                (key.clone(), shelf.shape.clone())
            });
        drop(state);
        for cell in idle {
            shared.factory.discard(cell);
        }
        let Some((key, shape)) = next else {
            state = shared.lock();
            if state.closed {
                return;
            }
            state = shared
                .changed
                .wait_timeout(state, Duration::from_secs(1))
                .map(|(s, _)| s)
                .unwrap_or_else(|p| p.into_inner().0);
            continue;
        };
        let prepared = shared.factory.prepare(&shape);
        state = shared.lock();
        let closed = state.closed;
        let mut leftover = None;
        match (prepared, state.shelves.get_mut(&key)) {
            (Ok(cell), Some(shelf)) => {
                shelf.preparing -= 1;
                if closed {
                    leftover = Some(cell);
                } else {
                    shelf.ready.push_back(cell);
                }
            }
            (Ok(cell), None) => leftover = Some(cell),
            (Err(e), shelf) => {
                tracing::warn!("preparing a warm cell: {e}");
                if let Some(shelf) = shelf {
                    shelf.preparing -= 1;
                    shelf.failed_at = Some(Instant::now());
                }
            }
        }
        if let Some(cell) = leftover {
            drop(state);
            shared.factory.discard(cell);
            state = shared.lock();
        }
    }
}
