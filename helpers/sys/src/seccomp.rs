//! Installing a seccomp-BPF program on the calling thread.
//!
//! Hand-written because `seccompiler::apply_filter` (and libseccomp) always
//! set no_new_privs first, which this must not: a
//! caller that keeps CAP_SYS_ADMIN (wshd's root sessions) may install a
//! filter without it; an unprivileged caller must set no_new_privs first
//! (see [`crate::proc_::set_no_new_privs`]) or gets `EACCES`. The program
//! is checked by the kernel; an empty one is refused here with `EINVAL`.

use nix::errno::Errno;

/// One classic BPF instruction (`struct sock_filter`).
pub use libc::sock_filter as Insn;

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)`: the filter applies to this
/// thread and everything it execs or forks from now on; it cannot be
/// removed.
#[allow(unsafe_code)]
pub fn install(prog: &[Insn]) -> nix::Result<()> {
    if prog.is_empty() || prog.len() > u16::MAX as usize {
        return Err(Errno::EINVAL);
    }
    let fprog = libc::sock_fprog {
        len: prog.len() as libc::c_ushort,
        filter: prog.as_ptr() as *mut Insn,
    };
    // SAFETY: the kernel copies `len` instructions from `filter`, which
    // points into `prog` (alive for the call); it does not write to it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER as libc::c_ulong,
            0 as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r == -1 {
        return Err(Errno::last());
    }
    Ok(())
}

/// The calling thread's seccomp mode from /proc/thread-self/status (0 none,
/// 1 strict, 2 filter), if /proc can be read.
pub fn mode() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/thread-self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_refused() {
        assert_eq!(install(&[]), Err(Errno::EINVAL));
    }
}
