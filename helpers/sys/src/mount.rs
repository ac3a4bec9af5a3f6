//! Mount helpers for container init: propagation, bind, pivot_root,
//! detaching the old root, and parsing `/proc/self/mountinfo`.
//!
//! mountinfo format (proc(5)): one line per mount,
//! `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER`;
//! space, tab, newline and backslash in paths are octal-escaped (`\040`).

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::Path;

/// Makes every mount in this mount namespace a slave (`MS_REC|MS_SLAVE`), so
/// nothing mounted here propagates back to the host, while the host's later
/// mounts still propagate in.
pub fn make_rslave() -> nix::Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
}

/// Makes every mount in this mount namespace private (`MS_REC|MS_PRIVATE`):
/// nothing propagates in or out any more.
pub fn make_rprivate() -> nix::Result<()> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
}

/// `open_tree(path, OPEN_TREE_CLONE | AT_RECURSIVE)`: a detached copy of
/// the mount tree at `path` (a recursive bind not yet attached anywhere).
#[allow(unsafe_code)]
pub fn open_tree_clone(path: &Path) -> nix::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| nix::errno::Errno::EINVAL)?;
    let flags =
        libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: `c` is a NUL-terminated path that outlives the call; the
    // syscall takes no other pointers.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, c.as_ptr(), flags) };
    if fd < 0 {
        return Err(nix::errno::Errno::last());
    }
    // SAFETY: open_tree just returned this fd and nothing else owns it.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// `struct mount_attr` of mount_setattr(2).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes every mount of the (detached) tree `fd` read-only
/// (`mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_RDONLY)`).
#[allow(unsafe_code)]
pub fn set_tree_readonly(fd: &std::os::fd::OwnedFd) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    let attr = MountAttr {
        attr_set: 0x1, // MOUNT_ATTR_RDONLY
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = libc::AT_EMPTY_PATH | libc::AT_RECURSIVE;
    // SAFETY: `attr` is a live #[repr(C)] struct mount_attr passed with its
    // exact size, and the path is an empty NUL-terminated string.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

/// Attaches the detached tree `from` onto the object `to` refers to (an
/// `O_PATH` fd): `move_mount(from, "", to, "", F_EMPTY_PATH|T_EMPTY_PATH)`.
/// No path is walked, so nothing can be redirected between the caller's
/// walk and the mount.
#[allow(unsafe_code)]
pub fn move_mount_onto(from: &std::os::fd::OwnedFd, to: &std::os::fd::OwnedFd) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
    // SAFETY: two fds and two empty NUL-terminated strings; no other pointers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(nix::errno::Errno::last());
    }
    Ok(())
}

/// Recursive bind mount of `path` onto itself (makes it a mount point).
pub fn bind_self(path: &Path) -> nix::Result<()> {
    mount(
        Some(path),
        path,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
}

/// `pivot_root(new_root, put_old)`.
pub fn pivot_root(new_root: &Path, put_old: &Path) -> nix::Result<()> {
    nix::unistd::pivot_root(new_root, put_old)
}

/// Lazily detaches the mount at `path` and every mount below it (stacked
/// mounts included).
pub fn detach(path: &Path) -> nix::Result<()> {
    umount2(path, MntFlags::MNT_DETACH)
}

/// Undoes mountinfo's octal escapes (`\040` -> space).
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = (oct[0] - b'0') as u32 * 64
                    + (oct[1] - b'0') as u32 * 8
                    + (oct[2] - b'0') as u32;
                if v <= 255 {
                    out.push(v as u8);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Mount points listed in a mountinfo text, in file order.
pub fn mount_points(mountinfo: &str) -> Vec<String> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .collect()
}

/// Mount points equal to `prefix` or below it (`prefix/...`).
pub fn mounts_under(mountinfo: &str, prefix: &str) -> Vec<String> {
    let p = prefix.trim_end_matches('/');
    mount_points(mountinfo)
        .into_iter()
        .filter(|m| {
            p.is_empty() || m == p || (m.starts_with(p) && m.as_bytes().get(p.len()) == Some(&b'/'))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MI: &str = "22 1 0:21 / / rw - ext4 /dev/vda rw\n\
25 24 0:23 / /dev/shm rw - tmpfs tmpfs rw\n\
26 24 0:24 / /dev/pts rw - devpts devpts rw\n\
29 26 0:26 / /dev/pts rw - devpts devpts rw\n\
40 22 0:30 / /mnt/a\\040b rw - tmpfs tmpfs rw\n\
41 22 0:31 / /mntx rw - tmpfs tmpfs rw\n";

    #[test]
    fn parses_and_unescapes() {
        let m = mount_points(MI);
        assert_eq!(m.len(), 6);
        assert_eq!(m[4], "/mnt/a b");
    }

    #[test]
    fn filters_prefix_on_component_boundary() {
        assert_eq!(mounts_under(MI, "/mnt"), vec!["/mnt/a b".to_string()]);
        assert_eq!(mounts_under(MI, "/dev/pts").len(), 2);
        assert_eq!(mounts_under(MI, "/").len(), 6);
    }

    #[test]
    fn unescape_leaves_plain_backslash() {
        assert_eq!(unescape("a\\b"), "a\\b");
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("x\\04"), "x\\04");
    }
}
