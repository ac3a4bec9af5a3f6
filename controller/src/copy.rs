//! The host side of copy_in and copy_out.
//!
//! **copy_out** ([`Extraction`]): the container writes a tar stream, which
//! [`crate::tarstream::Reader`] checks (the accepted format is documented
//! there). No host `tar` runs on it. Each accepted entry is made here, as
//! root but only in these shapes:
//! - regular files, directories and symlinks only; modes lose setuid, setgid
//!   and sticky and get umask 022 (`mode & 0755`); owner root (the server),
//!   then `owner` as warden did (`chown -R`, by the caller);
//! - device nodes, FIFOs and symlinks leaving the destination are never
//!   made: a directory copy leaves them out (named in the [`Summary`], which
//!   the server logs), as warden's `rsync -r --links` without `-D` and with
//!   `--safe-links` would; a copy of such an entry alone (the source is not
//!   a directory) fails. Everything no honest `tar` writes (absolute or `..`
//!   paths, hard links to files the copy did not create, duplicates, a
//!   malformed or truncated stream, a stream over the limits) fails the
//!   copy;
//! - every path is walked from an fd on the destination with one
//!   `openat(O_NOFOLLOW | O_DIRECTORY)` per component, so neither a symlink
//!   from the stream nor one already on the host ever redirects an entry;
//!   files are created `O_CREAT | O_EXCL | O_NOFOLLOW`, symlinks with
//!   `symlinkat`, directories with `mkdirat`;
//! - a symlink is made only when [`tarstream::symlink_stays_inside`] holds
//!   for it: relative, and never climbing above the destination (for a copy
//!   onto a new name, the destination is that new file or directory, so a
//!   lone copied symlink always fails);
//! - a hard link is made a separate file holding a copy of the data of a
//!   file this same copy created earlier (warden's rsync materialised hard
//!   links too); a link to anything else is refused;
//! - a pre-existing file or symlink of the same name is replaced only at
//!   [`Extraction::commit`] (the new one waits under a temporary name), a
//!   pre-existing directory is merged into and keeps its mode, a directory
//!   never replaces a file nor the other way round;
//! - failure: dropping an uncommitted [`Extraction`] removes every entry it
//!   created, the temporary files, and the destination directories it made.
//!   Only a failure inside `commit` itself (a `rename` failing after others
//!   succeeded) can leave replaced files replaced.
//!
//! Memory: one record per directory this copy created and per entry it
//! created in a directory that existed before, all bounded by
//! [`Limits::max_entries`]; the stream itself is read in 64 KiB pieces.
//!
//! **copy_in** ([`Source`]): the host source is walked the same way
//! (`O_NOFOLLOW` below the named source; a named symlink is copied as a
//! symlink, as rsync `--links` does) and written as a tar stream with
//! [`crate::tarstream::Writer`]. Regular files are opened `O_PATH` first and
//! re-opened through `/proc/self/fd` only once `fstat` says they are regular
//! files, so a FIFO or device swapped in is never opened. A named source
//! that is not a regular file, directory or symlink is refused; such files
//! inside a directory are skipped (rsync without `-D` skips them too). The
//! container extracts the stream itself, as vcap, inside its own mount
//! namespace and root: a symlink in the container can redirect that only to
//! places vcap may write in the container anyway.

use crate::tarstream::{self, show, Entry, Kind, Limits, Meta, Reader, Writer};
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// (st_dev, st_ino).
type Id = (u64, u64);

fn id_of(st: &FileStat) -> Id {
    (st.st_dev, st.st_ino)
}

fn fmt_of(st: &FileStat) -> u32 {
    st.st_mode & libc::S_IFMT
}

fn open_dir(parent: &OwnedFd, name: &[u8]) -> nix::Result<OwnedFd> {
    wsys::fs::openat(
        Some(parent),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )
}

fn lstat_at(dir: &OwnedFd, name: &[u8]) -> nix::Result<FileStat> {
    fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

/// Names in a directory (without `.` and `..`).
fn names(dir: &OwnedFd) -> nix::Result<Vec<Vec<u8>>> {
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
fn remove_tree(dir: &OwnedFd, name: &[u8], depth: usize) {
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
fn create_dirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
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

/// Permission bits a copied entry gets: no setuid/setgid/sticky, umask 022.
pub fn host_mode(mode: u32) -> u32 {
    mode & 0o755
}

/// How much a finished copy_out wrote, and what it left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub bytes: u64,
    /// Entries left out of a directory copy (special files, symlinks
    /// leaving the destination).
    pub left_out: u64,
    /// The first [`LEFT_OUT_NAMES`] of them, with the reason.
    pub left_out_names: Vec<String>,
}

/// How many left-out entries a [`Summary`] names.
pub const LEFT_OUT_NAMES: usize = 16;

struct Level {
    name: Vec<u8>,
    fd: OwnedFd,
    id: Id,
}

/// A copy_out in progress. See the module documentation.
pub struct Extraction {
    base: OwnedFd,
    base_id: Id,
    /// Copy onto a new name: every entry path starts with the archive's one
    /// top name, which is replaced by this one.
    top: Option<Vec<u8>>,
    arch_top: Option<Vec<u8>>,
    /// Symlinks must stay this many levels below `base` (1 onto a new name).
    contain: usize,
    /// The source is not a directory: an entry that would be left out of a
    /// directory copy fails this one (it is the copied object itself).
    strict: bool,
    /// Open directories of the last entry's parent path, below `base`.
    stack: Vec<Level>,
    /// Directories this copy created.
    ours: HashSet<Id>,
    /// Paths (below base) of pre-existing directories this copy created
    /// entries in, and an index on their ids.
    parents: Vec<Vec<Vec<u8>>>,
    parent_ix: HashMap<Id, usize>,
    /// Entries created in pre-existing directories: (parent index, name).
    created: Vec<(usize, Vec<u8>)>,
    created_set: HashSet<(Id, Vec<u8>)>,
    /// Replacements waiting for commit: (parent index, temporary, final).
    pending: Vec<(usize, Vec<u8>, Vec<u8>)>,
    pending_map: HashMap<(Id, Vec<u8>), Vec<u8>>,
    tag: String,
    seq: u64,
    /// Destination directories made by [`Extraction::begin`].
    made: Vec<PathBuf>,
    limits: Limits,
    /// Data written for hard links (counted against `max_bytes`).
    extra: u64,
    summary: Summary,
    buf: Vec<u8>,
    done: bool,
}

impl Extraction {
    /// Prepares a copy_out to `dst`. `dir_marker`: the container reported
    /// the source to be a directory. As before (and as rsync did): a
    /// directory source, a `dst` ending in `/` or an existing directory
    /// `dst` means "into `dst`" (made if missing); otherwise the source
    /// becomes `dst` itself.
    pub fn begin(dst: &Path, dir_marker: bool, limits: Limits) -> Result<Extraction, String> {
        let into = dir_marker || dst.as_os_str().as_bytes().ends_with(b"/") || dst.is_dir();
        let (dir, top) = if into {
            (dst.to_path_buf(), None)
        } else {
            let name = dst
                .file_name()
                .ok_or_else(|| format!("{}: bad destination", dst.display()))?;
            let parent = match dst.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            (parent, Some(name.as_bytes().to_vec()))
        };
        let made = create_dirs(&dir)?;
        let base = wsys::fs::openat(
            None,
            dir.as_path(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .and_then(|b| fstat(b.as_raw_fd()).map(|st| (b, id_of(&st))));
        let (base, base_id) = match base {
            Ok(b) => b,
            Err(e) => {
                for m in made.iter().rev() {
                    let _ = std::fs::remove_dir(m);
                }
                return Err(format!("{}: {e}", dir.display()));
            }
        };
        let contain = usize::from(top.is_some());
        Ok(Extraction {
            strict: !dir_marker,
            base,
            base_id,
            top,
            arch_top: None,
            contain,
            stack: Vec::new(),
            ours: HashSet::new(),
            parents: Vec::new(),
            parent_ix: HashMap::new(),
            created: Vec::new(),
            created_set: HashSet::new(),
            pending: Vec::new(),
            pending_map: HashMap::new(),
            tag: crate::container::generate_id(),
            seq: 0,
            made,
            limits,
            extra: 0,
            summary: Summary::default(),
            buf: Vec::new(),
            done: false,
        })
    }

    /// Reads the whole stream `r` and makes its entries. On an error the
    /// stream is refused and this extraction must be dropped (which
    /// removes what it made).
    pub fn extract(&mut self, r: impl Read) -> Result<(), String> {
        let mut rd = Reader::new(BufReader::with_capacity(64 * 1024, r), self.limits);
        self.buf = vec![0u8; 64 * 1024];
        let res = (|| {
            while let Some(e) = rd.next_entry().map_err(|e| e.to_string())? {
                self.entry(&e, &mut rd)?;
            }
            Ok(())
        })();
        self.buf = Vec::new();
        self.summary.entries = rd.entries();
        self.summary.bytes = rd.bytes_read() + self.extra;
        res
    }

    /// Puts replaced files in place; the copy is then final.
    pub fn commit(mut self) -> Result<Summary, String> {
        self.stack.clear();
        for i in 0..self.pending.len() {
            let (ix, tmp, name) = &self.pending[i];
            let r = self.walk(&self.parents[*ix]).and_then(|d| {
                nix::fcntl::renameat(
                    Some(d.as_raw_fd()),
                    tmp.as_slice(),
                    Some(d.as_raw_fd()),
                    name.as_slice(),
                )
            });
            if let Err(e) = r {
                let msg = format!("{}: {e}", show(name));
                // Those renamed are final; the rest is undone on drop.
                self.pending.drain(..i);
                return Err(msg);
            }
        }
        self.pending.clear();
        self.done = true;
        Ok(std::mem::take(&mut self.summary))
    }

    /// Opens the directory at `comps` below base, creating nothing.
    fn walk(&self, comps: &[Vec<u8>]) -> nix::Result<OwnedFd> {
        let mut fd = self.base.try_clone().map_err(|_| Errno::EMFILE)?;
        for c in comps {
            fd = open_dir(&fd, c)?;
        }
        Ok(fd)
    }

    fn cur(&self) -> (&OwnedFd, Id) {
        match self.stack.last() {
            Some(l) => (&l.fd, l.id),
            None => (&self.base, self.base_id),
        }
    }

    fn parent_index(&mut self, pid: Id) -> usize {
        if let Some(ix) = self.parent_ix.get(&pid) {
            return *ix;
        }
        self.parents
            .push(self.stack.iter().map(|l| l.name.clone()).collect());
        let ix = self.parents.len() - 1;
        self.parent_ix.insert(pid, ix);
        ix
    }

    /// Records `name`, just created in the current directory.
    fn record(&mut self, pid: Id, name: &[u8]) {
        if self.ours.contains(&pid) {
            return;
        }
        let ix = self.parent_index(pid);
        self.created.push((ix, name.to_vec()));
        self.created_set.insert((pid, name.to_vec()));
    }

    /// Makes the stack the open directories of `comps`. `create`: make
    /// missing ones (mode 0755, or `leaf_mode` for the last); otherwise a
    /// missing one is an error.
    fn enter(
        &mut self,
        comps: &[Vec<u8>],
        leaf_mode: Option<u32>,
        create: bool,
        who: &str,
    ) -> Result<(), String> {
        let mut k = 0;
        while k < self.stack.len() && k < comps.len() && self.stack[k].name == comps[k] {
            k += 1;
        }
        self.stack.truncate(k);
        if k == comps.len() {
            if let (Some(m), Some(l)) = (leaf_mode, self.stack.last()) {
                if self.ours.contains(&l.id) {
                    nix::sys::stat::fchmod(
                        l.fd.as_raw_fd(),
                        Mode::from_bits_truncate(host_mode(m)),
                    )
                    .map_err(|e| format!("{who}: {e}"))?;
                }
            }
        }
        for (i, c) in comps.iter().enumerate().skip(k) {
            let mode = match leaf_mode {
                Some(m) if i + 1 == comps.len() => host_mode(m),
                _ => 0o755,
            };
            let (pfd, pid) = self.cur();
            let bad = |e: Errno| match e {
                Errno::ELOOP | Errno::ENOTDIR => {
                    format!("{who}: {} exists and is not a directory", show(c))
                }
                Errno::ENOENT => format!("{who}: {} not found", show(c)),
                e => format!("{who}: {}: {e}", show(c)),
            };
            let (fd, made) = match open_dir(pfd, c) {
                Ok(fd) => (fd, false),
                Err(Errno::ENOENT) if create => {
                    nix::sys::stat::mkdirat(
                        Some(pfd.as_raw_fd()),
                        c.as_slice(),
                        Mode::from_bits_truncate(0o700),
                    )
                    .map_err(bad)?;
                    (open_dir(pfd, c).map_err(bad)?, true)
                }
                Err(e) => return Err(bad(e)),
            };
            let st = fstat(fd.as_raw_fd()).map_err(bad)?;
            let id = id_of(&st);
            if made {
                self.record(pid, c);
                self.ours.insert(id);
                nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))
                    .map_err(bad)?;
            } else if i + 1 == comps.len() && leaf_mode.is_some() && self.ours.contains(&id) {
                nix::sys::stat::fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(mode))
                    .map_err(bad)?;
            }
            self.stack.push(Level {
                name: c.clone(),
                fd,
                id,
            });
        }
        Ok(())
    }

    /// Creates the non-directory `name` in the current directory with
    /// `make` (which gets the directory and the name to use): under `name`
    /// when it is free, else under a temporary name that replaces it at
    /// commit. Records it before returning, so a failure later removes it.
    fn put<T>(
        &mut self,
        name: &[u8],
        who: &str,
        make: impl FnOnce(&OwnedFd, &[u8]) -> Result<T, String>,
    ) -> Result<T, String> {
        let (pfd, pid) = self.cur();
        match lstat_at(pfd, name) {
            Err(Errno::ENOENT) => {
                let t = make(pfd, name)?;
                self.record(pid, name);
                Ok(t)
            }
            Ok(st) => {
                if fmt_of(&st) == libc::S_IFDIR {
                    return Err(format!("{who}: a directory of that name exists"));
                }
                let key = (pid, name.to_vec());
                if self.ours.contains(&pid)
                    || self.created_set.contains(&key)
                    || self.pending_map.contains_key(&key)
                {
                    return Err(format!("{who}: duplicate entry"));
                }
                let tmp = format!(".warden-copy-{}-{}", self.tag, self.seq + 1).into_bytes();
                let t = make(pfd, &tmp)?;
                self.seq += 1;
                let ix = self.parent_index(pid);
                self.pending.push((ix, tmp.clone(), name.to_vec()));
                self.pending_map.insert(key, tmp);
                Ok(t)
            }
            Err(e) => Err(format!("{who}: {e}")),
        }
    }

    /// Entry path as it lands below base.
    fn map(&mut self, path: &[Vec<u8>], who: &str, set_top: bool) -> Result<Vec<Vec<u8>>, String> {
        let Some(top) = &self.top else {
            return Ok(path.to_vec());
        };
        let Some(first) = path.first() else {
            return Err(format!("{who}: entry outside the copied path"));
        };
        match &self.arch_top {
            None if set_top => self.arch_top = Some(first.clone()),
            Some(t) if t == first => {}
            _ => return Err(format!("{who}: entry outside the copied path")),
        }
        let mut v = Vec::with_capacity(path.len());
        v.push(top.clone());
        v.extend(path[1..].iter().cloned());
        Ok(v)
    }

    fn new_file(dir: &OwnedFd, name: &[u8], who: &str) -> Result<File, String> {
        wsys::fs::openat(
            Some(dir),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW,
            Mode::from_bits_truncate(0o600),
        )
        .map(File::from)
        .map_err(|e| format!("{who}: {e}"))
    }

    fn finish_file(f: &File, mode: u32, mtime: i64, who: &str) -> Result<(), String> {
        nix::sys::stat::fchmod(f.as_raw_fd(), Mode::from_bits_truncate(host_mode(mode)))
            .and_then(|_| {
                nix::sys::stat::futimens(
                    f.as_raw_fd(),
                    &TimeSpec::UTIME_OMIT,
                    &TimeSpec::new(mtime, 0),
                )
            })
            .map_err(|e| format!("{who}: {e}"))
    }

    /// Opens the regular file at `path`, which must be one this copy made.
    fn own_file(&mut self, path: &[Vec<u8>], who: &str) -> Result<File, String> {
        let (name, parent) = path.split_last().expect("normalize: never empty");
        self.enter(parent, None, false, who)?;
        let (pfd, pid) = self.cur();
        let key = (pid, name.clone());
        let open = if let Some(tmp) = self.pending_map.get(&key) {
            tmp.as_slice()
        } else if self.ours.contains(&pid) || self.created_set.contains(&key) {
            name.as_slice()
        } else {
            return Err(format!(
                "{who}: hard link to {}, which this copy did not create, refused",
                show(name)
            ));
        };
        let f = wsys::fs::openat(
            Some(pfd),
            open,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK,
            Mode::empty(),
        )
        .map(File::from)
        .map_err(|e| format!("{who}: hard link target {}: {e}", show(name)))?;
        match fstat(f.as_raw_fd()) {
            Ok(st) if fmt_of(&st) == libc::S_IFREG => Ok(f),
            _ => Err(format!(
                "{who}: hard link target {} is not a regular file",
                show(name)
            )),
        }
    }

    /// An entry a directory copy leaves out (as rsync without `-D`, with
    /// `--safe-links`) and a copy of that entry alone refuses.
    fn leave_out(&mut self, who: &str, why: String) -> Result<(), String> {
        if self.strict {
            return Err(format!("{who}: {why}; refused"));
        }
        let s = &mut self.summary;
        s.left_out += 1;
        if s.left_out_names.len() < LEFT_OUT_NAMES {
            s.left_out_names.push(format!("{who} ({why})"));
        }
        Ok(())
    }

    fn entry<R: Read>(&mut self, e: &Entry, rd: &mut Reader<R>) -> Result<(), String> {
        let who = e.name.as_str();
        let path = self.map(&e.path, who, true)?;
        let Some((name, parent)) = path.split_last() else {
            // The destination itself (`./`): left as it is.
            return Ok(());
        };
        match &e.kind {
            Kind::Dir => self.enter(&path, Some(e.mode), true, who),
            Kind::File { .. } => {
                self.enter(parent, None, true, who)?;
                let mut f = self.put(name, who, |d, n| Self::new_file(d, n, who))?;
                let mut buf = std::mem::take(&mut self.buf);
                let r = (|| {
                    loop {
                        let k = rd.read_data(&mut buf).map_err(|e| e.to_string())?;
                        if k == 0 {
                            break;
                        }
                        f.write_all(&buf[..k]).map_err(|e| format!("{who}: {e}"))?;
                    }
                    Self::finish_file(&f, e.mode, e.mtime, who)
                })();
                self.buf = buf;
                r
            }
            Kind::Symlink { target } => {
                let inside = parent
                    .len()
                    .checked_sub(self.contain)
                    .is_some_and(|d| tarstream::symlink_stays_inside(d, target));
                if !inside {
                    let why = format!("symlink to {} leaves the destination", show(target));
                    return self.leave_out(who, why);
                }
                self.enter(parent, None, true, who)?;
                self.put(name, who, |d, n| {
                    nix::unistd::symlinkat(target.as_slice(), Some(d.as_raw_fd()), n)
                        .map_err(|e| format!("{who}: {e}"))
                })
            }
            Kind::Special { what } => self.leave_out(who, what.to_string()),
            Kind::Hardlink { target } => {
                let t = self.map(target, who, false)?;
                let mut src = self.own_file(&t, who)?;
                self.enter(parent, None, true, who)?;
                let mut f = self.put(name, who, |d, n| Self::new_file(d, n, who))?;
                let max = self.limits.max_bytes;
                let used = rd.bytes_read();
                let mut buf = std::mem::take(&mut self.buf);
                let mut extra = self.extra;
                let r = (|| {
                    loop {
                        let k = src.read(&mut buf).map_err(|e| format!("{who}: {e}"))?;
                        if k == 0 {
                            break;
                        }
                        extra += k as u64;
                        if used.saturating_add(extra) > max {
                            return Err(format!("{who}: copy exceeds {max} bytes"));
                        }
                        f.write_all(&buf[..k]).map_err(|e| format!("{who}: {e}"))?;
                    }
                    Self::finish_file(&f, e.mode, e.mtime, who)
                })();
                self.extra = extra;
                self.buf = buf;
                r
            }
        }
    }

    fn undo(&mut self) {
        self.stack.clear();
        for (ix, tmp, _) in self.pending.iter().rev() {
            if let Ok(d) = self.walk(&self.parents[*ix]) {
                let _ = unlinkat(
                    Some(d.as_raw_fd()),
                    tmp.as_slice(),
                    UnlinkatFlags::NoRemoveDir,
                );
            }
        }
        for (ix, name) in self.created.iter().rev() {
            if let Ok(d) = self.walk(&self.parents[*ix]) {
                remove_tree(&d, name, 0);
            }
        }
        for m in self.made.iter().rev() {
            let _ = std::fs::remove_dir(m);
        }
    }
}

impl Drop for Extraction {
    fn drop(&mut self) {
        if !self.done {
            self.undo();
        }
    }
}

// ------------------------------------------------------------------ copy_in

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

#[cfg(test)]
mod tests;
