//! Pseudo-terminals: open a pair from the `/dev/ptmx` of the current mount
//! namespace (inside a container: its own devpts instance), window size,
//! controlling terminal, raw mode.

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Terminal size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WinSize {
    pub rows: u16,
    pub cols: u16,
}

/// Opens a new pty pair: (master, slave), both close-on-exec, the slave
/// opened through `TIOCGPTPEER` (no path lookup) and not made a controlling
/// terminal. A non-zero `size` is set before anyone can read it.
#[allow(unsafe_code)]
pub fn open_pair(size: WinSize) -> nix::Result<(OwnedFd, OwnedFd)> {
    let raw = open(
        "/dev/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    // SAFETY: open just returned this descriptor and nothing else owns it.
    let master = unsafe { OwnedFd::from_raw_fd(raw) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int through the valid pointer.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } == -1 {
        return Err(nix::errno::Errno::last());
    }
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new fd.
    let s = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if s == -1 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: the ioctl just returned this descriptor and nothing else owns it.
    let slave = unsafe { OwnedFd::from_raw_fd(s) };
    if size != WinSize::default() {
        set_winsize(master.as_fd(), size)?;
    }
    Ok((master, slave))
}

/// `TIOCGWINSZ`; None when `fd` is not a terminal.
#[allow(unsafe_code)]
pub fn get_winsize(fd: BorrowedFd<'_>) -> Option<WinSize> {
    // SAFETY: winsize is plain data; all-zero is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the valid pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == -1 {
        return None;
    }
    Some(WinSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// `TIOCSWINSZ` (on a master: the foreground process group gets SIGWINCH).
#[allow(unsafe_code)]
pub fn set_winsize(fd: BorrowedFd<'_>, size: WinSize) -> nix::Result<()> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize through the valid pointer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } == -1 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

/// Makes `fd` the controlling terminal of the calling session leader.
#[allow(unsafe_code)]
pub fn set_controlling(fd: BorrowedFd<'_>) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value (0: do not steal).
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) } == -1 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

/// True when `fd` refers to a terminal.
pub fn is_tty(fd: BorrowedFd<'_>) -> bool {
    nix::unistd::isatty(fd.as_raw_fd()).unwrap_or(false)
}

/// Puts the terminal `fd` in raw mode; returns the settings to restore.
pub fn make_raw(fd: BorrowedFd<'_>) -> nix::Result<Termios> {
    let saved = tcgetattr(fd)?;
    let mut raw = saved.clone();
    cfmakeraw(&mut raw);
    tcsetattr(fd, SetArg::TCSANOW, &raw)?;
    Ok(saved)
}

/// Restores settings saved by [`make_raw`].
pub fn restore(fd: BorrowedFd<'_>, saved: &Termios) -> nix::Result<()> {
    tcsetattr(fd, SetArg::TCSANOW, saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_has_size_and_is_tty() {
        let (m, s) = open_pair(WinSize {
            rows: 33,
            cols: 101,
        })
        .unwrap();
        assert!(is_tty(s.as_fd()));
        assert_eq!(
            get_winsize(s.as_fd()),
            Some(WinSize {
                rows: 33,
                cols: 101
            })
        );
        set_winsize(m.as_fd(), WinSize { rows: 10, cols: 20 }).unwrap();
        assert_eq!(get_winsize(s.as_fd()), Some(WinSize { rows: 10, cols: 20 }));
        let (r, _w) = nix::unistd::pipe().unwrap();
        assert!(!is_tty(r.as_fd()));
        assert_eq!(get_winsize(r.as_fd()), None);
    }
}
