//! Namespaces and process creation: `clone` into new namespaces with fork
//! semantics, `fork`, `unshare`.
//!
//! Both [`clone_fork`] and [`fork`] are `unsafe`: they must only be called
//! while the process has a single thread (warden-rs helpers never start
//! threads before forking). The child gets a copy of the address space but
//! only the calling thread, so a lock (the allocator's, stdio's) held by any
//! other thread at that moment would stay locked in the child forever.

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
///
/// A hand-written `syscall(SYS_clone)` because neither nix nor libc offers
/// clone with fork semantics (a NULL stack): `nix::sched::clone` always runs
/// a callback on a caller-provided stack.
///
/// # Safety
/// The calling process must have exactly one thread, as for [`fork`].
#[allow(unsafe_code)]
pub unsafe fn clone_fork(flags: CloneFlags) -> nix::Result<Forked> {
    let f = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: raw clone without CLONE_VM and with a NULL stack behaves like
    // fork(2): the child runs on a copy of the caller's stack. The caller is
    // single-threaded (this function's contract), so no lock can be held by
    // another thread in the child. The remaining arguments (ptid, ctid, tls)
    // are unused for these flags and passed as 0.
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
///
/// # Safety
/// The calling process must have exactly one thread (see the module
/// documentation): in a multi-threaded process the child may only make
/// async-signal-safe calls, which the callers of this function do not
/// restrict themselves to.
#[allow(unsafe_code)]
pub unsafe fn fork() -> nix::Result<Forked> {
    // SAFETY: the caller is single-threaded (this function's contract), so
    // the child cannot inherit a lock held by another thread.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        nix::unistd::ForkResult::Child => Ok(Forked::Child),
    }
}
