//! Unix socket messages with file descriptors attached (SCM_RIGHTS).
//!
//! Used on SOCK_SEQPACKET sockets, where one `sendmsg` is one message and a
//! receive reports truncation. Received descriptors are always close-on-exec
//! (`MSG_CMSG_CLOEXEC`) and come back as `OwnedFd`, so none can leak.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Most descriptors one message may carry.
pub const MAX_FDS: usize = 4;

/// Sends `data` with `fds` attached in one message (`MSG_NOSIGNAL`; with
/// `nonblock`, also `MSG_DONTWAIT`).
pub fn send(
    sock: BorrowedFd<'_>,
    data: &[u8],
    fds: &[BorrowedFd<'_>],
    nonblock: bool,
) -> nix::Result<usize> {
    assert!(
        fds.len() <= MAX_FDS,
        "at most MAX_FDS descriptors per message"
    );
    let raw: [RawFd; MAX_FDS] = {
        let mut r = [-1; MAX_FDS];
        for (d, f) in r.iter_mut().zip(fds) {
            *d = f.as_raw_fd();
        }
        r
    };
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(&raw[..fds.len()])];
    let cm: &[ControlMessage<'_>] = if fds.is_empty() { &[] } else { &cmsg };
    let mut flags = MsgFlags::MSG_NOSIGNAL;
    if nonblock {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cm, flags, None) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// `accept4` with `SOCK_CLOEXEC | SOCK_NONBLOCK`.
#[allow(unsafe_code)]
pub fn accept(listener: BorrowedFd<'_>) -> nix::Result<OwnedFd> {
    let fd = nix::sys::socket::accept4(
        listener.as_raw_fd(),
        nix::sys::socket::SockFlag::SOCK_CLOEXEC | nix::sys::socket::SockFlag::SOCK_NONBLOCK,
    )?;
    // SAFETY: accept4 just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// One received message.
#[derive(Debug)]
pub struct Received {
    /// Bytes written to the caller's buffer.
    pub len: usize,
    /// The message was longer than the buffer (the rest is lost).
    pub truncated: bool,
    /// Descriptors that came with it (more than [`MAX_FDS`] sets `truncated`).
    pub fds: Vec<OwnedFd>,
}

/// Receives one message into `buf` (with `nonblock`, `MSG_DONTWAIT`).
/// `len == 0` with no descriptors means the peer closed the connection.
#[allow(unsafe_code)]
pub fn recv(sock: BorrowedFd<'_>, buf: &mut [u8], nonblock: bool) -> nix::Result<Received> {
    let mut cspace = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut flags = MsgFlags::MSG_CMSG_CLOEXEC;
    if nonblock {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    let mut iov = [IoSliceMut::new(buf)];
    let msg = loop {
        match recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cspace), flags) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r?,
        }
    };
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(list) = c {
            for fd in list {
                // SAFETY: the kernel just installed `fd` in our table for this
                // message; nothing else owns it, so OwnedFd may close it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    let truncated =
        msg.flags.contains(MsgFlags::MSG_TRUNC) || msg.flags.contains(MsgFlags::MSG_CTRUNC);
    Ok(Received {
        len: msg.bytes,
        truncated,
        fds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsFd;

    #[test]
    fn passes_fds_and_detects_truncation() {
        let (a, b) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        send(a.as_fd(), b"hello", &[r.as_fd(), w.as_fd()], false).unwrap();
        let mut buf = [0u8; 16];
        let m = recv(b.as_fd(), &mut buf, false).unwrap();
        assert_eq!(&buf[..m.len], b"hello");
        assert!(!m.truncated);
        assert_eq!(m.fds.len(), 2);
        let fl = nix::fcntl::fcntl(m.fds[0].as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(fl & libc::FD_CLOEXEC, 0);

        send(a.as_fd(), &[7u8; 32], &[], false).unwrap();
        let m = recv(b.as_fd(), &mut buf, false).unwrap();
        assert!(m.truncated);
        drop(a);
        let m = recv(b.as_fd(), &mut buf, false).unwrap();
        assert_eq!(m.len, 0);
    }
}
