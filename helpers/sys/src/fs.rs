//! File-descriptor-returning `open`/`openat` with ownership: nix 0.29 hands
//! back raw fds, which safe code cannot wrap without `unsafe`.

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::NixPath;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `openat(dir, path, flags | O_CLOEXEC, mode)`; `dir = None` is `AT_FDCWD`.
#[allow(unsafe_code)]
pub fn openat<P: ?Sized + NixPath>(
    dir: Option<&OwnedFd>,
    path: &P,
    flags: OFlag,
    mode: Mode,
) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        dir.map(|d| d.as_raw_fd()),
        path,
        flags | OFlag::O_CLOEXEC,
        mode,
    )?;
    // SAFETY: openat just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`.
pub fn memfd(name: &std::ffi::CStr) -> nix::Result<OwnedFd> {
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    memfd_create(
        name,
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_owned_and_cloexec() {
        let fd = openat(None, "/", OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let fl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(fl & libc::FD_CLOEXEC, 0);
        let etc = openat(Some(&fd), "etc", OFlag::O_PATH, Mode::empty()).unwrap();
        assert_ne!(etc.as_raw_fd(), fd.as_raw_fd());
        assert_eq!(
            openat(
                Some(&fd),
                "no-such-entry-here",
                OFlag::O_PATH,
                Mode::empty()
            )
            .unwrap_err(),
            nix::errno::Errno::ENOENT
        );
    }
}
