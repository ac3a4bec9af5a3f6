//! Namespaces and process creation: `clone` into new namespaces with fork
//! semantics, `fork`, `unshare`.
//!
//! Both [`clone_fork`] and [`fork`] must only be called while the process has
//! a single thread (warden-rs helpers never start threads before forking): the
//! child gets a copy of the address space but only the calling thread.

use nix::errno::Errno;
use nix::sched::CloneFlags;

pub use nix::sched::unshare;

/// Which side of a fork we are on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forked {
    /// In the parent; the child's pid as the parent sees it.
    Parent(i32),
    /// In the child.
    Child,
}

/// `clone(flags | SIGCHLD)` with a NULL stack, i.e. a `fork` that also
/// creates the namespaces named in `flags` (e.g. `CLONE_NEWPID` makes the
/// child pid 1 of a new pid namespace).
pub fn clone_fork(flags: CloneFlags) -> nix::Result<Forked> {
    let f = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: raw clone without CLONE_VM and with a NULL stack behaves like
    // fork(2): the child runs on a copy of the caller's stack. Callers are
    // single-threaded (documented above), so no lock can be held by another
    // thread in the child. The remaining arguments (ptid, ctid, tls) are
    // unused for these flags and passed as 0.
    let rv = unsafe {
        libc::syscall(
            libc::SYS_clone,
            f,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    match rv {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid as i32)),
    }
}

/// Plain `fork(2)`.
pub fn fork() -> nix::Result<Forked> {
    // SAFETY: callers are single-threaded (see module docs), so the child
    // cannot inherit a lock held by another thread.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_reports_child_exit() {
        match fork().unwrap() {
            Forked::Child => crate::proc_::exit_now(7),
            Forked::Parent(pid) => {
                let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
                assert_eq!(
                    st,
                    nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 7)
                );
            }
        }
    }
}
