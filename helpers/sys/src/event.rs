//! Event-loop syscalls for iomux and oom: `poll(2)` over a caller-owned
//! array and `FIONREAD` (bytes queued in a pipe or socket); `SIOCOUTQ`
//! (bytes sent on a socket that its peer has not read yet: the tests wait
//! on it to know that a server has read a request). Pipe sizing,
//! `splice(2)` and `tee(2)` come from `nix::fcntl`.
//!
//! Hand-written because nix cannot do the same: `nix::poll::poll` takes
//! `PollFd`s that borrow their fds, so an event loop whose fds come and go
//! would rebuild the array on every wake-up; plain `libc::pollfd` entries
//! let it keep one array (no allocation per wake-up). nix has no FIONREAD
//! or SIOCOUTQ wrapper. The caller keeps the fds open for the duration of a
//! call.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// One entry for [`poll`]; same layout as `struct pollfd`.
pub type PollFd = libc::pollfd;

/// Builds a [`PollFd`] for `fd` waiting for `events`.
pub fn pollfd(fd: RawFd, events: i16) -> PollFd {
    libc::pollfd {
        fd,
        events,
        revents: 0,
    }
}

/// `poll(2)`: waits up to `timeout_ms` (-1 = forever) for an event on `fds`.
/// Returns the number of entries with a non-zero `revents`; `EINTR` is
/// returned as an error of kind `Interrupted` for the caller to retry.
#[allow(unsafe_code)]
pub fn poll(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    let n = fds.len() as libc::nfds_t;
    // SAFETY: `fds` is a valid, exclusively borrowed array of `n` pollfd
    // structs for the whole call; poll only writes their `revents` fields.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), n, timeout_ms) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// Bytes queued for reading on a pipe or socket (`ioctl(FIONREAD)`).
#[allow(unsafe_code)]
pub fn bytes_readable(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one c_int through the pointer, which points
    // at a live local; the fd is borrowed and therefore open.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &mut n as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n.max(0) as usize)
}

/// Bytes written to a socket that the peer has not read yet
/// (`ioctl(SIOCOUTQ)`; on a unix stream socket they are freed only as the
/// peer reads them).
#[allow(unsafe_code)]
pub fn bytes_unread_by_peer(fd: BorrowedFd<'_>) -> io::Result<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (= TIOCOUTQ) writes one c_int through the pointer,
    // which points at a live local; the fd is borrowed and therefore open.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n.max(0) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn poll_and_fionread_on_a_pipe() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut fds = [pollfd(r.as_raw_fd(), libc::POLLIN)];
        assert_eq!(poll(&mut fds, 0).unwrap(), 0);
        assert_eq!(bytes_readable(r.as_fd()).unwrap(), 0);
        let mut f = std::fs::File::from(w);
        f.write_all(b"hello").unwrap();
        assert_eq!(poll(&mut fds, 1000).unwrap(), 1);
        assert!(fds[0].revents & libc::POLLIN != 0);
        assert_eq!(bytes_readable(r.as_fd()).unwrap(), 5);
    }

    #[test]
    fn siocoutq_counts_what_the_peer_has_not_read() {
        use std::io::Read;
        let (mut a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(bytes_unread_by_peer(a.as_fd()).unwrap(), 0);
        a.write_all(b"hello").unwrap();
        assert!(bytes_unread_by_peer(a.as_fd()).unwrap() > 0);
        let mut buf = [0u8; 5];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(bytes_unread_by_peer(a.as_fd()).unwrap(), 0);
    }
}
