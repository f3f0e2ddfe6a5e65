//! The channels between the launcher, the spawner process and cells: close-on-exec pipes,
//! and messages with descriptors — one datagram of bytes plus descriptors (SCM_RIGHTS) over
//! a SOCK_SEQPACKET socket.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};

use super::{sys, SandboxError};

/// A close-on-exec pipe (read end, write end); `what` names it in the error.
pub(super) fn pipe(what: &str) -> Result<(OwnedFd, OwnedFd), SandboxError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SandboxError::prepare(format!("create {what} pipe"), e.into()))
}

/// Capacity of a cell's stdout and stderr pipes: a program streaming output then wakes the
/// supervisor once per MiB rather than once per 64 KiB (root may set it past
/// /proc/sys/fs/pipe-max-size; where the kernel refuses, the default stays).
const OUTPUT_PIPE_BYTES: i32 = 1 << 20;

/// A pipe for a program's stdout or stderr, with [`OUTPUT_PIPE_BYTES`] of capacity.
pub(super) fn output_pipe(what: &str) -> Result<(OwnedFd, OwnedFd), SandboxError> {
    let (r, w) = pipe(what)?;
    let _ = nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETPIPE_SZ(OUTPUT_PIPE_BYTES));
    Ok((r, w))
}

/// The most descriptors one message carries.
pub(super) const MAX_FDS: usize = 16;

/// A connected pair of close-on-exec SOCK_SEQPACKET sockets.
pub(super) fn seqpacket_pair() -> std::io::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(std::io::Error::from)
}

/// Sends `bytes` with `fds` as one message.
pub(super) fn send(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs };
    loop {
        match sendmsg::<()>(
            sock.as_raw_fd(),
            &[IoSlice::new(bytes)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One received message: its body (empty at end of stream) and its descriptors, owned and
/// close-on-exec.
pub(super) struct Received {
    pub bytes: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// Receives one message of at most `max` bytes (blocking). An orderly shutdown of the peer
/// gives an empty body.
pub(super) fn recv(sock: BorrowedFd<'_>, max: usize) -> std::io::Result<Received> {
    let mut buf = vec![0u8; max];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds = Vec::new();
        for cmsg in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(raw) = cmsg {
                // SAFETY: SCM_RIGHTS just installed these descriptors in this process; no
                // one else owns them, so they are wrapped at once.
                fds.extend(raw.into_iter().map(|fd| unsafe { sys::own_fd(fd) }));
            }
        }
        let n = msg.bytes;
        if msg
            .flags
            .intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC)
        {
            return Err(std::io::Error::other("message or descriptors truncated"));
        }
        buf.truncate(n);
        return Ok(Received { bytes: buf, fds });
    }
}
