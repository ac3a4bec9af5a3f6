//! Event-loop syscalls for iomux and oom: `poll(2)` over a caller-owned
//! array and `FIONREAD` (bytes queued in a pipe or socket). Pipe sizing,
//! `splice(2)` and `tee(2)` come from `nix::fcntl`.
//!
//! Hand-written because nix cannot do the same: `nix::poll::poll` takes
//! `PollFd`s that borrow their fds, so an event loop whose fds come and go
//! would rebuild the array on every wake-up; plain `libc::pollfd` entries
//! let it keep one array (no allocation per wake-up). nix has no FIONREAD
//! wrapper. The caller keeps the fds open for the duration of a call.

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
}
