//! copy_in: a host source archived as a tar stream without following or
//! opening anything odd (see the documentation of crate::copy).

use super::fsat::*;
use crate::tarstream::{self, show, Meta, Writer};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, FileStat, Mode};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

enum Node {
    Dir(OwnedFd),
    File(File),
    Link(Vec<u8>),
}

/// A copy_in source, opened. See the module documentation.
pub struct Source {
    node: Node,
    st: FileStat,
    member: Vec<u8>,
}

fn meta(st: &FileStat) -> Meta {
    Meta {
        mode: st.st_mode & 0o7777,
        uid: u64::from(st.st_uid),
        gid: u64::from(st.st_gid),
        mtime: st.st_mtime,
    }
}

/// Opens the regular file `name` in `dir` without ever opening anything
/// else: `O_PATH` first, then a real open of that same inode.
fn open_regular(dir: &OwnedFd, name: &[u8]) -> nix::Result<(File, FileStat)> {
    let p = wsys::fs::openat(
        Some(dir),
        name,
        OFlag::O_PATH | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    let st = fstat(p.as_raw_fd())?;
    if fmt_of(&st) != libc::S_IFREG {
        return Err(Errno::EINVAL);
    }
    let f = wsys::fs::openat(
        None,
        format!("/proc/self/fd/{}", p.as_raw_fd()).as_str(),
        OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK,
        Mode::empty(),
    )?;
    let st2 = fstat(f.as_raw_fd())?;
    if id_of(&st2) != id_of(&st) || fmt_of(&st2) != libc::S_IFREG {
        return Err(Errno::EINVAL);
    }
    Ok((File::from(f), st2))
}

impl Source {
    /// Opens `src`: with a trailing `/`, the directory's contents (archive
    /// member `.`); otherwise the named entry itself, not following it if
    /// it is a symlink. The directories leading to it are the operator's
    /// path and are followed.
    pub fn open(src: &Path) -> Result<Source, String> {
        let bytes = src.as_os_str().as_bytes();
        if bytes.ends_with(b"/") {
            let fd = wsys::fs::openat(
                None,
                src,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                Mode::empty(),
            )
            .map_err(|e| e.desc().to_string())?;
            let st = fstat(fd.as_raw_fd()).map_err(|e| e.desc().to_string())?;
            return Ok(Source {
                node: Node::Dir(fd),
                st,
                member: b".".to_vec(),
            });
        }
        let name = src
            .file_name()
            .ok_or("bad source path")?
            .as_bytes()
            .to_vec();
        let parent = match src.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let pfd = wsys::fs::openat(
            None,
            parent,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .map_err(|e| e.desc().to_string())?;
        let st = lstat_at(&pfd, &name).map_err(|e| e.desc().to_string())?;
        let node = match fmt_of(&st) {
            libc::S_IFDIR => Node::Dir(open_dir(&pfd, &name).map_err(|e| e.desc().to_string())?),
            libc::S_IFREG => Node::File(
                open_regular(&pfd, &name)
                    .map_err(|e| e.desc().to_string())?
                    .0,
            ),
            libc::S_IFLNK => Node::Link(
                nix::fcntl::readlinkat(Some(pfd.as_raw_fd()), name.as_slice())
                    .map_err(|e| e.desc().to_string())?
                    .as_bytes()
                    .to_vec(),
            ),
            _ => return Err("not a regular file, directory or symbolic link; refused".into()),
        };
        // The stat of what was opened (a directory may have been swapped).
        let st = match &node {
            Node::Dir(fd) => fstat(fd.as_raw_fd()).map_err(|e| e.desc().to_string())?,
            Node::File(f) => fstat(f.as_raw_fd()).map_err(|e| e.desc().to_string())?,
            Node::Link(_) => st,
        };
        Ok(Source {
            node,
            st,
            member: name,
        })
    }

    /// Whether the source is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self.node, Node::Dir(_))
    }

    /// The top name in the archive (`.` for a directory's contents).
    pub fn member(&self) -> &[u8] {
        &self.member
    }

    /// Writes the archive to `out`.
    pub fn write_to(&mut self, out: impl Write) -> std::io::Result<()> {
        let mut w = Writer::new(out);
        let m = meta(&self.st);
        match &mut self.node {
            Node::Dir(fd) => write_dir(&mut w, fd, &self.member, &m, 0)?,
            Node::File(f) => w.file(&self.member, &m, self.st.st_size as u64, f)?,
            Node::Link(t) => w.symlink(&self.member, t, &m)?,
        }
        w.finish().map(|_| ())
    }
}

fn write_dir<W: Write>(
    w: &mut Writer<W>,
    dir: &OwnedFd,
    path: &[u8],
    m: &Meta,
    depth: usize,
) -> std::io::Result<()> {
    if depth > tarstream::DEPTH_MAX {
        return Err(std::io::Error::other(format!(
            "{}: directory tree deeper than {} levels",
            show(path),
            tarstream::DEPTH_MAX
        )));
    }
    w.dir(path, m)?;
    let mut list = names(dir).map_err(std::io::Error::from)?;
    list.sort();
    for n in list {
        let child = [path, b"/", &n].concat();
        let st = match lstat_at(dir, &n) {
            Ok(st) => st,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        match fmt_of(&st) {
            libc::S_IFDIR => {
                let d = match open_dir(dir, &n) {
                    Ok(d) => d,
                    Err(Errno::ENOENT) => continue,
                    Err(e) => return Err(e.into()),
                };
                let st = fstat(d.as_raw_fd())?;
                write_dir(w, &d, &child, &meta(&st), depth + 1)?;
            }
            libc::S_IFREG => match open_regular(dir, &n) {
                Ok((mut f, st)) => w.file(&child, &meta(&st), st.st_size as u64, &mut f)?,
                Err(Errno::ENOENT | Errno::EINVAL | Errno::ELOOP) => {
                    log::warn!(
                        "copy_in: {} changed while being copied; skipped",
                        show(&child)
                    )
                }
                Err(e) => return Err(e.into()),
            },
            libc::S_IFLNK => match nix::fcntl::readlinkat(Some(dir.as_raw_fd()), n.as_slice()) {
                Ok(t) => w.symlink(&child, t.as_bytes(), &meta(&st))?,
                Err(Errno::ENOENT | Errno::EINVAL) => continue,
                Err(e) => return Err(e.into()),
            },
            _ => log::warn!(
                "copy_in: {} is not a regular file, directory or symlink; skipped",
                show(&child)
            ),
        }
    }
    Ok(())
}
