//! Directory walking shared by copy_in and copy_out: every path is opened
//! from a directory fd, one `openat(O_NOFOLLOW)` component at a time.

use crate::tarstream;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// (st_dev, st_ino).
pub(super) type Id = (u64, u64);

pub(super) fn id_of(st: &FileStat) -> Id {
    (st.st_dev, st.st_ino)
}

pub(super) fn fmt_of(st: &FileStat) -> u32 {
    st.st_mode & libc::S_IFMT
}

pub(super) fn open_dir(parent: &OwnedFd, name: &[u8]) -> nix::Result<OwnedFd> {
    wsys::fs::openat(
        Some(parent),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
}

pub(super) fn lstat_at(dir: &OwnedFd, name: &[u8]) -> nix::Result<FileStat> {
    fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

/// Names in a directory (without `.` and `..`).
pub(super) fn names(dir: &OwnedFd) -> nix::Result<Vec<Vec<u8>>> {
    let mut d = nix::dir::Dir::from(dir.try_clone().map_err(|_| Errno::EMFILE)?)?;
    let mut v = Vec::new();
    for e in d.iter() {
        let n = e?.file_name().to_bytes().to_vec();
        if n != b"." && n != b".." {
            v.push(n);
        }
    }
    Ok(v)
}

/// Removes `name` in `dir` and, if it is a directory, everything below it,
/// never following a symlink. Best effort.
pub(super) fn remove_tree(dir: &OwnedFd, name: &[u8], depth: usize) {
    let Ok(st) = lstat_at(dir, name) else { return };
    if fmt_of(&st) == libc::S_IFDIR {
        if depth <= tarstream::DEPTH_MAX + 1 {
            if let Ok(d) = open_dir(dir, name) {
                for n in names(&d).unwrap_or_default() {
                    remove_tree(&d, &n, depth + 1);
                }
            }
        }
        let _ = unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::RemoveDir);
    } else {
        let _ = unlinkat(Some(dir.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir);
    }
}

/// Makes the missing directories of `dir` (following symlinks: the path is
/// the operator's); returns those it made, outermost first.
pub(super) fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut missing = Vec::new();
    let mut p = dir;
    loop {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => break,
            Ok(_) => return Err(format!("{}: not a directory", p.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                missing.push(p.to_path_buf());
                match p.parent() {
                    Some(q) if !q.as_os_str().is_empty() => p = q,
                    _ => break,
                }
            }
            Err(e) => return Err(format!("{}: {e}", p.display())),
        }
    }
    let mut made = Vec::new();
    for d in missing.into_iter().rev() {
        use std::os::unix::fs::DirBuilderExt;
        match std::fs::DirBuilder::new().mode(0o755).create(&d) {
            Ok(()) => made.push(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                for m in made.iter().rev() {
                    let _ = std::fs::remove_dir(m);
                }
                return Err(format!("{}: {e}", d.display()));
            }
        }
    }
    Ok(made)
}
