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
            let b = [b'X'];
            loop {
                // SAFETY: writes one byte from a live local buffer to an fd we own.
                let rc = unsafe { libc::write(fd.as_raw_fd(), b.as_ptr().cast(), 1) };
                if rc == 1 {
                    break;
                }
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
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
pub fn spawn_held(spec: &HeldSpec<'_>) -> Result<HeldChild, SpawnError> {
    if spec.argv.is_empty() {
        return Err(SpawnError::EmptyArgv);
    }
    // Everything the child needs, prepared before fork.
    let mut argv: Vec<*const libc::c_char> = spec.argv.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let (bar_r, bar_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| SpawnError::Pipe(io::Error::from(e)))?;
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    let out = spec.stdout.as_raw_fd();
    let err = spec.stderr.as_raw_fd();
    let path = spec.path.as_ptr();

    // SAFETY: the caller is single-threaded where it matters (iomux-spawn
    // starts no threads); the child branch below only makes async-signal-safe
    // syscalls on data prepared above and never returns.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SpawnError::Fork(io::Error::last_os_error()));
    }
    if pid == 0 {
        child(
            out,
            err,
            bar_r.as_raw_fd(),
            bar_w.as_raw_fd(),
            parent,
            spec.die_with_parent,
            path,
            argv.as_ptr(),
        );
    }
    drop(bar_r);
    Ok(HeldChild {
        pid,
        release: Some(bar_w),
    })
}

/// The child side between fork and exec. Never returns.
#[allow(clippy::too_many_arguments)]
fn child(
    out: RawFd,
    err: RawFd,
    bar_r: RawFd,
    bar_w: RawFd,
    parent: libc::pid_t,
    die_with_parent: bool,
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
) -> ! {
    // SAFETY: only async-signal-safe syscalls on fds and pointers that were
    // valid in the parent at fork time and so are valid copies here; the
    // function ends in execv or _exit.
    unsafe {
        libc::close(bar_w);
        if place(out, 1) < 0 || place(err, 2) < 0 {
            libc::_exit(126);
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        if die_with_parent {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != parent {
                libc::_exit(1);
            }
        }
        if libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) < 0
        {
            for fd in 3..65536 {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        let mut b = 0u8;
        loop {
            let rc = libc::read(bar_r, (&mut b as *mut u8).cast(), 1);
            if rc == 1 {
                break;
            }
            if rc < 0 && *libc::__errno_location() == libc::EINTR {
                continue;
            }
            libc::_exit(1);
        }
        libc::execv(path, argv);
        let errno = *libc::__errno_location();
        let mut msg = [0u8; 64];
        let n = exec_failed_message(&mut msg, errno);
        libc::write(2, msg.as_ptr().cast(), n);
        libc::_exit(127);
    }
}

/// dup2 `fd` onto `target`; when they are equal, clears close-on-exec.
///
/// # Safety
/// Plain fd syscalls; callable between fork and exec.
unsafe fn place(fd: RawFd, target: RawFd) -> libc::c_int {
    if fd == target {
        libc::fcntl(fd, libc::F_SETFD, 0)
    } else {
        libc::dup2(fd, target)
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
    use std::io::Read;
    use std::os::fd::AsFd;

    #[test]
    fn message_formats_errno() {
        let mut b = [0u8; 64];
        let n = exec_failed_message(&mut b, 2);
        assert_eq!(&b[..n], b"iomux-spawn: exec failed: errno 2\n");
        let n = exec_failed_message(&mut b, 12345);
        assert_eq!(&b[..n], b"iomux-spawn: exec failed: errno 12345\n");
    }

    #[test]
    fn held_child_runs_only_after_release() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let path = CString::new("/bin/sh").unwrap();
        let argv = [
            CString::new("sh").unwrap(),
            CString::new("-c").unwrap(),
            CString::new("echo ran; ls /proc/self/fd | wc -l >&2").unwrap(),
        ];
        let mut c = spawn_held(&HeldSpec {
            path: &path,
            argv: &argv,
            stdout: w.as_fd(),
            stderr: w.as_fd(),
            die_with_parent: true,
        })
        .unwrap();
        drop(w);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(crate::event::bytes_readable(r.as_fd()).unwrap(), 0);
        c.release().unwrap();
        assert!(!c.is_held());
        let mut s = String::new();
        std::fs::File::from(r).read_to_string(&mut s).unwrap();
        let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(c.pid()), None).unwrap();
        assert_eq!(
            st,
            nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(c.pid()), 0)
        );
        // "ran", then the fd count of `ls`: 0, 1, 2 and its own dir fd.
        assert_eq!(s, "ran\n4\n");
    }
}
