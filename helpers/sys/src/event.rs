//! Event-loop syscalls for iomux and oom: `poll(2)` over a caller-owned
//! array, `FIONREAD` (bytes queued in a pipe or socket), pipe sizing, and
//! the zero-copy pipe moves `splice(2)` and `tee(2)`.
//!
//! `poll` takes plain `libc::pollfd` entries so an event loop can keep one
//! array across iterations instead of borrowing every fd anew (no allocation
//! per wake-up). The caller keeps the fds open for the duration of the call.

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

/// Sets a pipe's capacity (`F_SETPIPE_SZ`); returns the size the kernel chose.
pub fn set_pipe_size(fd: BorrowedFd<'_>, size: usize) -> io::Result<usize> {
    let size =
        libc::c_int::try_from(size).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: F_SETPIPE_SZ takes an int argument and touches no memory of ours.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, size) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// `splice(2)` of up to `len` bytes from `fd_in` to `fd_out` (one must be a
/// pipe), `SPLICE_F_MOVE | SPLICE_F_NONBLOCK`. Returns 0 at the end of the
/// input (a pipe whose writers are gone).
pub fn splice(fd_in: BorrowedFd<'_>, fd_out: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: null offsets mean "use the file positions"; both fds are
    // borrowed, hence open, for the duration of the call.
    let rc = unsafe {
        libc::splice(
            fd_in.as_raw_fd(),
            std::ptr::null_mut(),
            fd_out.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// `tee(2)`: duplicates up to `len` bytes at the front of pipe `fd_in` into
/// pipe `fd_out` without consuming them (`SPLICE_F_NONBLOCK`).
pub fn tee(fd_in: BorrowedFd<'_>, fd_out: BorrowedFd<'_>, len: usize) -> io::Result<usize> {
    // SAFETY: plain syscall on two borrowed (open) fds; no memory passed.
    let rc = unsafe {
        libc::tee(
            fd_in.as_raw_fd(),
            fd_out.as_raw_fd(),
            len,
            libc::SPLICE_F_NONBLOCK,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
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
        let got = set_pipe_size(r.as_fd(), 1 << 20).unwrap();
        assert!(got >= 1 << 16);
    }

    #[test]
    fn tee_then_splice() {
        let (r1, w1) = nix::unistd::pipe().unwrap();
        let (r2, w2) = nix::unistd::pipe().unwrap();
        let (r3, w3) = nix::unistd::pipe().unwrap();
        std::fs::File::from(w1).write_all(b"abcdef").unwrap();
        assert_eq!(tee(r1.as_fd(), w2.as_fd(), 4).unwrap(), 4);
        // tee left the bytes in r1.
        assert_eq!(bytes_readable(r1.as_fd()).unwrap(), 6);
        assert_eq!(splice(r2.as_fd(), w3.as_fd(), 100).unwrap(), 4);
        drop(w2);
        assert_eq!(splice(r2.as_fd(), w3.as_fd(), 100).unwrap(), 0, "EOF");
        drop(w3);
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(r3), &mut s).unwrap();
        assert_eq!(s, "abcd");
        // Empty input pipe with a writer: would block.
        let (r4, _w4) = nix::unistd::pipe().unwrap();
        let (_r5, w5) = nix::unistd::pipe().unwrap();
        let e = tee(r4.as_fd(), w5.as_fd(), 10).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }
}
