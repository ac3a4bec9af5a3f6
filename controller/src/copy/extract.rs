//! copy_out: a checked tar stream from the container made into files on
//! the host (see the documentation of crate::copy).

use super::fsat::*;
use crate::tarstream::{self, show, Entry, Kind, Limits, Reader};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{fstat, Mode};
use nix::sys::time::TimeSpec;
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

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
