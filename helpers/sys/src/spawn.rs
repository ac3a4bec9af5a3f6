//! Fork a child that is held before `execv` until released (iomux-spawn).
//!
//! The child gets exactly fds 0, 1, 2: 0 is inherited from the caller, 1 and
//! 2 are the given pipe ends; every other fd is marked close-on-exec with
//! `close_range(3, ~0, CLOSE_RANGE_CLOEXEC)` before exec. Its signal mask is
//! emptied and every signal disposition reset to default (Rust ignores
//! SIGPIPE, and an ignored disposition survives exec). With
//! `die_with_parent` it gets `PR_SET_PDEATHSIG(SIGKILL)`.
//!
//! Hold: the child blocks reading one byte from a close-on-exec pipe whose
//! write end only the parent holds. [`HeldChild::release`] writes that byte;
//! if the parent dies first the read sees EOF and the child exits 1 without
//! running the command. If `execv` fails the child writes one line to its
//! fd 2 and exits 127 (the shell's "command not found" status).
//!
//! Between fork and exec the child makes only async-signal-safe syscalls and
//! touches no heap: everything it needs is prepared before `fork`.

use crate::ns::Forked;
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Errors from [`spawn_held`].
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("pipe for the hold barrier: {0}")]
    Pipe(io::Error),
    #[error("fork: {0}")]
    Fork(io::Error),
    #[error("empty argv")]
    EmptyArgv,
}

/// What to run and where its output goes.
pub struct HeldSpec<'a> {
    /// Absolute or relative path given to `execv` (already resolved).
    pub path: &'a CStr,
    /// argv, including argv[0].
    pub argv: &'a [CString],
    /// Becomes the child's fd 1.
    pub stdout: BorrowedFd<'a>,
    /// Becomes the child's fd 2.
    pub stderr: BorrowedFd<'a>,
    /// Kill the child (SIGKILL) when the calling process dies.
    pub die_with_parent: bool,
}

/// A forked child waiting for [`HeldChild::release`].
pub struct HeldChild {
    pid: i32,
    release: Option<OwnedFd>,
}

impl HeldChild {
    /// The child's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Lets the child exec. Idempotent; later calls do nothing.
    pub fn release(&mut self) -> io::Result<()> {
        if let Some(fd) = self.release.take() {
            loop {
                match nix::unistd::write(&fd, b"X") {
                    Ok(1) => break,
                    Ok(_) | Err(Errno::EINTR) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// True until [`HeldChild::release`] succeeded.
    pub fn is_held(&self) -> bool {
        self.release.is_some()
    }
}

/// Forks a held child as described in the module documentation.
///
/// # Safety
/// The calling process must have exactly one thread (see
/// [`crate::ns::fork`]). The child itself allocates nothing and only makes
/// async-signal-safe calls, but the caller's other threads could still hold
/// locks that the forked copy of the program inherits.
#[allow(unsafe_code)]
pub unsafe fn spawn_held(spec: &HeldSpec<'_>) -> Result<HeldChild, SpawnError> {
    if spec.argv.is_empty() {
        return Err(SpawnError::EmptyArgv);
    }
    // Everything the child needs, prepared before fork.
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let (bar_r, bar_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SpawnError::Pipe(io::Error::from(e)))?;
    let child_spec = Child {
        out: spec.stdout.as_raw_fd(),
        err: spec.stderr.as_raw_fd(),
        bar_r: bar_r.as_raw_fd(),
        bar_w: bar_w.as_raw_fd(),
        parent: nix::unistd::getpid().as_raw(),
        die_with_parent: spec.die_with_parent,
        path: spec.path.as_ptr(),
        argv: argv.as_ptr(),
    };

    // SAFETY: the caller is single-threaded (this function's contract).
    match unsafe { crate::ns::fork() } {
        Err(e) => Err(SpawnError::Fork(io::Error::from(e))),
        // SAFETY: `child_spec` holds fds that are open in this forked copy
        // and pointers into `spec.path` and `argv`, which live on (copied)
        // until exec; the child never returns.
        Ok(Forked::Child) => unsafe { child_spec.run() },
        Ok(Forked::Parent(pid)) => {
            drop(bar_r);
            Ok(HeldChild {
                pid,
                release: Some(bar_w),
            })
        }
    }
}

/// What the child needs between fork and exec, prepared before fork so the
/// child allocates nothing.
struct Child {
    out: RawFd,
    err: RawFd,
    bar_r: RawFd,
    bar_w: RawFd,
    parent: libc::pid_t,
    die_with_parent: bool,
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
}

impl Child {
    /// The child side between fork and exec. Never returns. Only
    /// async-signal-safe syscalls, no allocation.
    ///
    /// # Safety
    /// Call only in a freshly forked child: the fds must be open, `path`
    /// must point to a NUL-terminated string and `argv` to a NULL-terminated
    /// array of them, all valid until exec.
    #[allow(unsafe_code)]
    unsafe fn run(&self) -> ! {
        let _ = nix::unistd::close(self.bar_w);
        if place(self.out, 1).is_err() || place(self.err, 2).is_err() {
            crate::proc_::exit_now(126);
        }
        crate::proc_::reset_signals();
        if self.die_with_parent {
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            if nix::unistd::getppid().as_raw() != self.parent {
                crate::proc_::exit_now(1);
            }
        }
        if crate::proc_::cloexec_from(3).is_err() {
            // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC.
            for fd in 3..65536 {
                let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
            }
        }
        let mut b = [0u8; 1];
        loop {
            match nix::unistd::read(self.bar_r, &mut b) {
                Ok(1) => break,
                Err(Errno::EINTR) => continue,
                _ => crate::proc_::exit_now(1),
            }
        }
        // SAFETY: `path` and `argv` are valid per this function's contract;
        // execv only returns on failure. (nix's execv would allocate.)
        unsafe { libc::execv(self.path, self.argv) };
        let mut msg = [0u8; 64];
        let n = exec_failed_message(&mut msg, Errno::last_raw());
        // SAFETY: writes `n` bytes of a live local buffer to fd 2.
        unsafe { libc::write(2, msg.as_ptr().cast(), n) };
        crate::proc_::exit_now(127)
    }
}

/// dup2 `fd` onto `target`; when they are equal, clears close-on-exec.
/// Plain fd syscalls, callable between fork and exec.
fn place(fd: RawFd, target: RawFd) -> nix::Result<()> {
    if fd == target {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty())).map(drop)
    } else {
        nix::unistd::dup2(fd, target).map(drop)
    }
}

/// Formats "iomux-spawn: exec failed: errno N\n" into `buf` without
/// allocating; returns its length.
fn exec_failed_message(buf: &mut [u8; 64], errno: i32) -> usize {
    let head = b"iomux-spawn: exec failed: errno ";
    buf[..head.len()].copy_from_slice(head);
    let mut n = head.len();
    let mut digits = [0u8; 12];
    let mut d = 0;
    let mut v = errno.unsigned_abs();
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    while d > 0 {
        d -= 1;
        buf[n] = digits[d];
        n += 1;
    }
    buf[n] = b'\n';
    n + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_formats_errno() {
        let mut b = [0u8; 64];
        let n = exec_failed_message(&mut b, 2);
        assert_eq!(&b[..n], b"iomux-spawn: exec failed: errno 2\n");
        let n = exec_failed_message(&mut b, 12345);
        assert_eq!(&b[..n], b"iomux-spawn: exec failed: errno 12345\n");
    }
}
