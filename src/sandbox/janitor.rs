//! The janitor: a thread that reaps cells after their run was answered and removes their
//! cgroups (or returns them to the pool).
//!
//! A cell's PID 1 reports the program's status before it exits; its exit then tears the
//! namespaces down (mount tree, network namespace), which waits for RCU grace periods in the
//! kernel. Prepared cells let the launcher answer as soon as the status and the output are
//! in, and hand the rest to this thread. Discarded prepared cells end here too.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use super::cgroup::CellCgroup;
use super::identity::Lease;
use super::sys;

/// A cell whose run is over (or that was never used).
pub(super) struct Finished {
    pub pid: libc::pid_t,
    pub pidfd: OwnedFd,
    pub cgroup: Option<CellCgroup>,
    /// PID 1 was already reaped by the supervisor.
    pub reaped: bool,
    /// The cell's host uid slot: freed when this is dropped, once PID 1 is reaped (its pid
    /// namespace, and with it every process of that uid, is gone by then).
    pub _identity: Option<Lease>,
}

/// After this long a cell that has not gone away is killed again.
const NUDGE_AFTER: Duration = Duration::from_secs(5);
/// How long [`Janitor::stop`] waits for the last cells.
const STOP_GRACE: Duration = Duration::from_secs(10);

pub(super) struct Janitor {
    tx: Mutex<Option<mpsc::Sender<Finished>>>,
    wake: Arc<EventFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Janitor {
    pub fn start() -> std::io::Result<Janitor> {
        let wake = Arc::new(EventFd::from_flags(
            EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK,
        )?);
        let (tx, rx) = mpsc::channel();
        let thread_wake = wake.clone();
        let thread = std::thread::Builder::new()
            .name("cell-janitor".into())
            .spawn(move || run(&rx, &thread_wake))?;
        Ok(Janitor {
            tx: Mutex::new(Some(tx)),
            wake,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Takes a finished cell; if the janitor already stopped, cleans it up right here.
    pub fn adopt(&self, cell: Finished) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let cell = match tx.as_ref() {
            Some(tx) => match tx.send(cell) {
                Ok(()) => {
                    let _ = self.wake.write(1);
                    return;
                }
                Err(mpsc::SendError(cell)) => cell,
            },
            None => cell,
        };
        drop(tx);
        clean_now(cell);
    }

    /// Cleans up every cell handed over so far, then ends the thread.
    pub fn stop(&self) {
        drop(self.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        let _ = self.wake.write(1);
        if let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Blocking cleanup of one cell (the janitor is gone).
fn clean_now(mut cell: Finished) {
    let _ = sys::pidfd_send_signal(cell.pidfd.as_fd(), libc::SIGKILL);
    if !cell.reaped {
        let _ = sys::wait4(cell.pid, libc::__WALL);
    }
    remove_cgroup(cell.cgroup.take());
}

fn remove_cgroup(cgroup: Option<CellCgroup>) {
    if let Some(cg) = cgroup {
        if let Err(e) = cg.remove() {
            tracing::warn!("removing a cell's cgroup: {e}");
        }
    }
}

/// Reaps `cell` if its PID 1 has exited; true when it is gone.
fn try_reap(cell: &mut Finished) -> bool {
    if !cell.reaped {
        match sys::wait4(cell.pid, libc::__WALL | libc::WNOHANG) {
            Ok(w) if w.pid == cell.pid => cell.reaped = true,
            Ok(_) => {}
            // Not our child any more (or never was): nothing left to wait for.
            Err(_) => cell.reaped = true,
        }
    }
    cell.reaped
}

fn run(rx: &mpsc::Receiver<Finished>, wake: &EventFd) {
    let mut pending: Vec<(Finished, Instant)> = Vec::new();
    let mut stopping: Option<Instant> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok(cell) => pending.push((cell, Instant::now())),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => {
                    if stopping.is_none() {
                        stopping = Some(Instant::now());
                        for (cell, _) in &pending {
                            let _ = sys::pidfd_send_signal(cell.pidfd.as_fd(), libc::SIGKILL);
                        }
                    }
                    break;
                }
            }
        }
        let mut i = 0;
        while i < pending.len() {
            let (cell, since) = &mut pending[i];
            if try_reap(cell) {
                let (mut cell, _) = pending.swap_remove(i);
                remove_cgroup(cell.cgroup.take());
                continue;
            }
            if since.elapsed() >= NUDGE_AFTER || stopping.is_some() {
                let _ = sys::pidfd_send_signal(cell.pidfd.as_fd(), libc::SIGKILL);
                if let Some(cg) = &cell.cgroup {
                    let _ = cg.kill_all();
                }
                *since = Instant::now();
            }
            i += 1;
        }
        match stopping {
            Some(_) if pending.is_empty() => return,
            Some(t) if t.elapsed() >= STOP_GRACE => {
                tracing::warn!(
                    cells = pending.len(),
                    "cells did not go away; their cgroups are left for the next start"
                );
                return;
            }
            _ => {}
        }
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(pending.len() + 1);
        fds.push(PollFd::new(wake.as_fd(), PollFlags::POLLIN));
        for (cell, _) in &pending {
            fds.push(PollFd::new(cell.pidfd.as_fd(), PollFlags::POLLIN));
        }
        let timeout = if stopping.is_some() { 50u16 } else { 1000 };
        let _ = poll(&mut fds, PollTimeout::from(timeout));
        drop(fds);
        let _ = wake.read();
    }
}
