//! The tar stream of copy_in and copy_out: what the server accepts from a
//! container, and what it writes for one.
//!
//! copy_out runs `tar -cf -` inside the container, so the container controls
//! every byte of the stream. [`Reader`] is the only thing that parses it on
//! the host (no host `tar` ever sees it), and [`crate::copy`] is the only
//! thing that turns its entries into files. A stream is accepted only when it
//! is, block for block, the following; anything else fails the whole copy
//! with an error naming the entry (and [`crate::copy`] removes what the copy
//! had created). Two kinds of entry an honest `tar` of an ordinary tree can
//! hold are read but never made on the host: special files (below) and
//! symlinks leaving the destination; [`crate::copy`] leaves them out of a
//! directory copy, as warden's `rsync -r --links` without `-D` and with
//! `--safe-links` would, and refuses them as the copied object itself.
//!
//! **Blocks.** 512-byte blocks: a header, then the entry's data padded to a
//! block boundary. The archive ends with a zero block (a second zero block
//! and up to [`TRAILER_MAX`] bytes of record padding after it are read and
//! ignored). A stream that ends anywhere else, even between two entries, is
//! *truncated* and refused: a container that dies mid-copy never yields a
//! half archive that looks complete.
//!
//! **Headers.** POSIX ustar (magic `ustar\0`; `prefix` + `/` + `name`) or GNU
//! (magic `ustar  \0`; no prefix). Pre-POSIX v7 headers (no magic) are
//! refused. The checksum must match (unsigned or signed byte sum). Numbers
//! are octal (leading spaces, ended by a space or NUL), or GNU base-256 (first
//! byte 0x80-0xbf); negative base-256 numbers are refused (a negative mtime
//! reads as 0).
//!
//! **Extended headers**, applying to the next entry only:
//! - GNU `L` (long name) and `K` (long link target), at most [`PATH_MAX`] + 1
//!   bytes, cut at the first NUL;
//! - pax `x` records (`LEN key=value\n`, at most [`PAX_MAX`] bytes in all):
//!   `path`, `linkpath`, `size` and `mtime` are used; every other key (uid,
//!   gid, uname, gname, atime, ctime, comment, charset, `SCHILY.*` and
//!   `LIBARCHIVE.*` xattrs and ACLs, ...) is ignored, so no extended
//!   attribute or file capability ever reaches the host. `GNU.sparse.*` is
//!   refused;
//! - pax `g` (global) headers are read and ignored, unless they carry `path`,
//!   `linkpath`, `size` or `GNU.sparse.*`, which are refused.
//!
//! At most [`META_RUN_MAX`] extended headers may precede one entry; pax wins
//! over GNU, which wins over the ustar fields.
//!
//! **Entry types.** Only these, with size 0 unless said otherwise:
//! - `0`, NUL or `7`: a regular file; its data follows (`size` bytes);
//! - `5`: a directory;
//! - `2`: a symbolic link; the target must be non-empty;
//! - `1`: a hard link; its target is an entry path (the rules below) and is
//!   materialised by [`crate::copy`] as a copy of a file this same copy
//!   created earlier (a link to anything else fails the copy);
//! - `3`, `4`, `6`: character and block devices and FIFOs, returned as
//!   [`Kind::Special`] so the copy can name them; never made on the host.
//!
//! GNU sparse (`S`), dump-dir (`D`), multi-volume (`M`, `V`) and every other
//! type are refused.
//!
//! **Paths.** Byte strings relative to the destination: leading `./` and `.`
//! components and repeated `/` are dropped; an absolute path, a `..`
//! component, a NUL byte, a component over [`NAME_MAX`] bytes, a path over
//! [`PATH_MAX`] bytes or over [`DEPTH_MAX`] components is refused. The empty
//! path (`.` or `./`) names the destination itself and must be a directory;
//! a non-directory named with a trailing `/` is refused.
//!
//! **Modes.** The header's permission bits are passed on; [`crate::copy`]
//! drops setuid, setgid and sticky and applies umask 022. Ownership (uid,
//! gid, uname, gname) is ignored.
//!
//! **Symlink targets** are checked by [`symlink_stays_inside`]: relative,
//! with `..` only as a leading run that never climbs above the destination.
//!
//! **Bounds.** The whole stream (headers, data, padding) is limited to
//! [`Limits::max_bytes`] and the entry count to [`Limits::max_entries`]; an
//! entry whose size alone would pass the byte limit is refused at its
//! header, before any of its data is read. Nothing the reader allocates is
//! larger than [`PAX_MAX`] or [`PATH_MAX`], whatever the stream holds.
//!
//! [`Writer`] produces a subset of the same format for copy_in (GNU headers,
//! `L`/`K` for long names, base-256 for large numbers), which busybox and GNU
//! tar inside containers both read.

mod header;
mod reader;
mod writer;

use header::*;
pub use reader::Reader;
pub use writer::{raw_header, Meta, Writer};

/// Tar block size.
pub const BLOCK: usize = 512;
/// Longest accepted path or link target, in bytes.
pub const PATH_MAX: usize = 4096;
/// Longest accepted path component, in bytes.
pub const NAME_MAX: usize = 255;
/// Most components in an accepted path.
pub const DEPTH_MAX: usize = 1024;
/// Largest accepted pax extended header.
pub const PAX_MAX: u64 = 64 * 1024;
/// Most extended headers before one entry.
pub const META_RUN_MAX: u32 = 8;
/// Most bytes read (and ignored) after the end-of-archive block.
pub const TRAILER_MAX: u64 = 1024 * 1024;

/// Bounds on one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of the stream: headers, data and padding.
    pub max_bytes: u64,
    /// Entries (extended headers not counted).
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// What one entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular file with `size` bytes of data (read them with
    /// [`Reader::read_data`]).
    File {
        size: u64,
    },
    Dir,
    /// A symbolic link to `target` (raw bytes, not yet checked).
    Symlink {
        target: Vec<u8>,
    },
    /// A hard link to the earlier entry at `target` (normalised path).
    Hardlink {
        target: Vec<Vec<u8>>,
    },
    /// A device node or FIFO (what it is, for messages); never made.
    Special {
        what: &'static str,
    },
}

/// One accepted entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path as the archive wrote it, quoted and escaped, for messages.
    pub name: String,
    /// The normalised path: components, none empty, `.` or `..`.
    pub path: Vec<Vec<u8>>,
    pub kind: Kind,
    /// Permission bits of the header (`mode & 07777`).
    pub mode: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

/// Why a stream was refused; `entry` names the entry (quoted) when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub entry: Option<String>,
    pub msg: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.entry {
            Some(e) => write!(f, "{e}: {}", self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

impl std::error::Error for Error {}

fn err(entry: Option<&str>, msg: impl Into<String>) -> Error {
    Error {
        entry: entry.map(str::to_string),
        msg: msg.into(),
    }
}

/// A path or name for messages: lossy UTF-8, quoted, control characters
/// escaped (a name cannot forge a log line), cut after 200 characters.
pub fn show(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let mut t: String = s.chars().take(200).collect();
    if s.chars().count() > 200 {
        t.push_str("...");
    }
    format!("{t:?}")
}

/// Splits a path from an archive into components, refusing what
/// [the module documentation](self) refuses. `allow_empty`: whether the
/// destination itself (`.`) may be named.
pub fn normalize(raw: &[u8], allow_empty: bool) -> Result<Vec<Vec<u8>>, &'static str> {
    if raw.is_empty() {
        return Err("empty path");
    }
    if raw.contains(&0) {
        return Err("NUL byte in path");
    }
    if raw.len() > PATH_MAX {
        return Err("path too long");
    }
    if raw[0] == b'/' {
        return Err("absolute path refused");
    }
    let mut v: Vec<Vec<u8>> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path with a `..` component refused"),
            _ if c.len() > NAME_MAX => return Err("path component too long"),
            _ => {
                if v.len() == DEPTH_MAX {
                    return Err("path too deep");
                }
                v.push(c.to_vec());
            }
        }
    }
    if v.is_empty() && !allow_empty {
        return Err("entry names the destination itself");
    }
    Ok(v)
}

/// Whether a symlink whose parent directory lies `parent_depth` directories
/// below the destination, pointing at `target`, resolves inside the
/// destination.
///
/// The rule is stricter than lexical containment so that it also holds
/// across chains of symlinks: the target is relative, and `..` may appear
/// only as a leading run (`../../lib/x`) that never climbs above the
/// destination. The directories such a run climbs through are real
/// directories (entries are never created through a symlink), so `..` means
/// what it says; everything after the run only descends, and any symlink met
/// while descending was itself checked by this rule when it was created. So
/// no resolution ever leaves the destination.
pub fn symlink_stays_inside(parent_depth: usize, target: &[u8]) -> bool {
    if target.is_empty() || target[0] == b'/' || target.contains(&0) || target.len() > PATH_MAX {
        return false;
    }
    let mut depth = parent_depth;
    let mut descended = false;
    for c in target.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if descended || depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            _ => descended = true,
        }
    }
    true
}

#[cfg(test)]
mod tests;
