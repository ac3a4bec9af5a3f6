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

use std::io::{self, Read, Write};

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

/// Parses an octal or GNU base-256 number field.
fn num(f: &[u8]) -> Result<u64, &'static str> {
    if f.is_empty() {
        return Ok(0);
    }
    if f[0] & 0x80 != 0 {
        if f[0] & 0x40 != 0 {
            return Err("negative number");
        }
        let mut v = u64::from(f[0] & 0x3f);
        for &b in &f[1..] {
            if v >> 56 != 0 {
                return Err("number too large");
            }
            v = (v << 8) | u64::from(b);
        }
        return Ok(v);
    }
    let mut i = 0;
    while i < f.len() && f[i] == b' ' {
        i += 1;
    }
    let mut v: u64 = 0;
    while i < f.len() && (b'0'..=b'7').contains(&f[i]) {
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(f[i] - b'0')))
            .ok_or("number too large")?;
        i += 1;
    }
    if i < f.len() && f[i] != b' ' && f[i] != 0 {
        return Err("bad octal number");
    }
    Ok(v)
}

/// A NUL-terminated field.
fn cstr(f: &[u8]) -> &[u8] {
    match f.iter().position(|b| *b == 0) {
        Some(n) => &f[..n],
        None => f,
    }
}

fn checksum_ok(h: &[u8; BLOCK]) -> bool {
    let Ok(stored) = num(&h[148..156]) else {
        return false;
    };
    let mut unsigned: u64 = 0;
    let mut signed: i64 = 0;
    for (i, &b) in h.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    stored == unsigned || i64::try_from(stored).ok() == Some(signed)
}

/// Extended-header values waiting for their entry.
#[derive(Default)]
struct Pending {
    pax_path: Option<Vec<u8>>,
    pax_link: Option<Vec<u8>>,
    pax_size: Option<u64>,
    pax_mtime: Option<i64>,
    gnu_name: Option<Vec<u8>>,
    gnu_link: Option<Vec<u8>>,
}

fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// Parses pax records into `p` (`global`: a `g` header, only checked).
fn parse_pax(data: &[u8], p: &mut Pending, global: bool) -> Result<(), &'static str> {
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .take(21)
            .position(|b| *b == b' ')
            .ok_or("bad pax record length")?;
        let len = parse_decimal(&rest[..sp]).ok_or("bad pax record length")?;
        let len = usize::try_from(len).map_err(|_| "bad pax record length")?;
        if len <= sp + 2 || len > rest.len() {
            return Err("bad pax record length");
        }
        let rec = &rest[sp + 1..len];
        rest = &rest[len..];
        let Some((&b'\n', body)) = rec.split_last() else {
            return Err("pax record without newline");
        };
        let eq = body
            .iter()
            .position(|b| *b == b'=')
            .ok_or("pax record without `=`")?;
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        if key.starts_with(b"GNU.sparse") {
            return Err("sparse file refused");
        }
        let wanted = matches!(key, b"path" | b"linkpath" | b"size" | b"mtime");
        if global {
            if wanted && key != b"mtime" {
                return Err("global pax header with path, linkpath or size refused");
            }
            continue;
        }
        // An empty value deletes the keyword (POSIX pax).
        let value = (!value.is_empty()).then_some(value);
        match key {
            b"path" => p.pax_path = value.map(<[u8]>::to_vec),
            b"linkpath" => p.pax_link = value.map(<[u8]>::to_vec),
            b"size" => {
                p.pax_size = match value {
                    None => None,
                    Some(v) => Some(parse_decimal(v).ok_or("bad pax size")?),
                }
            }
            b"mtime" => {
                p.pax_mtime = value.map(|v| {
                    let int = v.split(|b| *b == b'.').next().unwrap_or_default();
                    let (neg, digits) = match int.split_first() {
                        Some((b'-', d)) => (true, d),
                        _ => (false, int),
                    };
                    let m = parse_decimal(digits)
                        .and_then(|m| i64::try_from(m).ok())
                        .unwrap_or(0);
                    if neg {
                        0
                    } else {
                        m
                    }
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads a tar stream entry by entry, refusing everything the module
/// documentation refuses.
pub struct Reader<R> {
    r: R,
    limits: Limits,
    read: u64,
    entries: u64,
    /// Data bytes of the current entry not read yet.
    left: u64,
    /// Padding after the current entry's data.
    pad: u64,
    /// The current entry's name, for errors while reading its data.
    current: Option<String>,
    end: bool,
    failed: bool,
}

impl<R: Read> Reader<R> {
    pub fn new(r: R, limits: Limits) -> Self {
        Reader {
            r,
            limits,
            read: 0,
            entries: 0,
            left: 0,
            pad: 0,
            current: None,
            end: false,
            failed: false,
        }
    }

    /// Bytes of the stream read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Entries returned so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The limits this reader enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Reads exactly `buf.len()` bytes; end of stream is `truncated`.
    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<(), Error> {
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(err(
                        self.current.as_deref(),
                        format!("stream truncated ({what})"),
                    ))
                }
                Ok(n) => {
                    got += n;
                    self.count(n as u64)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err(self.current.as_deref(), format!("read: {e}"))),
            }
        }
        Ok(())
    }

    fn count(&mut self, n: u64) -> Result<(), Error> {
        self.read += n;
        if self.read > self.limits.max_bytes {
            return Err(err(
                self.current.as_deref(),
                format!("stream exceeds {} bytes", self.limits.max_bytes),
            ));
        }
        Ok(())
    }

    fn skip(&mut self, mut n: u64, what: &str) -> Result<(), Error> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let k = n.min(buf.len() as u64) as usize;
            self.fill(&mut buf[..k], what)?;
            n -= k as u64;
        }
        Ok(())
    }

    /// Reads `size` bytes (already checked against a small cap) and their padding.
    fn read_small(&mut self, size: u64, what: &str) -> Result<Vec<u8>, Error> {
        let n = usize::try_from(size).map_err(|_| err(None, "extended header too large"))?;
        let mut v = vec![0u8; n];
        self.fill(&mut v, what)?;
        self.skip(pad_of(size), what)?;
        Ok(v)
    }

    /// After the end-of-archive block: read up to [`TRAILER_MAX`] more bytes.
    fn drain_trailer(&mut self) -> Result<(), Error> {
        let mut buf = [0u8; 8192];
        let mut n: u64 = 0;
        loop {
            match self.r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(k) => {
                    n += k as u64;
                    if n > TRAILER_MAX {
                        return Err(err(None, "too much data after the end of the archive"));
                    }
                    self.count(k as u64)?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(err(None, format!("read: {e}"))),
            }
        }
    }

    /// The next entry, or None at the end of the archive. Unread data of the
    /// previous entry is skipped. After an error the reader stays failed.
    pub fn next_entry(&mut self) -> Result<Option<Entry>, Error> {
        if self.failed {
            return Err(err(None, "stream already refused"));
        }
        let r = self.next_inner();
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn next_inner(&mut self) -> Result<Option<Entry>, Error> {
        if self.end {
            return Ok(None);
        }
        let rest = self.left + self.pad;
        self.skip(rest, "in entry data")?;
        self.left = 0;
        self.pad = 0;
        self.current = None;
        let mut p = Pending::default();
        let mut meta_run = 0u32;
        loop {
            let mut h = [0u8; BLOCK];
            self.fill(
                &mut h,
                if meta_run == 0 {
                    "no end-of-archive block"
                } else {
                    "after an extended header"
                },
            )?;
            if h.iter().all(|b| *b == 0) {
                if meta_run > 0 {
                    return Err(err(None, "end of archive after an extended header"));
                }
                self.end = true;
                self.drain_trailer()?;
                return Ok(None);
            }
            if !checksum_ok(&h) {
                return Err(err(None, "bad header checksum (not a tar stream?)"));
            }
            let posix = &h[257..263] == b"ustar\0";
            let gnu = &h[257..265] == b"ustar  \0";
            if !posix && !gnu {
                return Err(err(None, "not a ustar or GNU tar header"));
            }
            let ty = h[156];
            let hsize = num(&h[124..136]).map_err(|m| err(None, format!("size: {m}")))?;
            if matches!(ty, b'x' | b'g' | b'L' | b'K') {
                meta_run += 1;
                if meta_run > META_RUN_MAX {
                    return Err(err(None, "too many extended headers in a row"));
                }
                let cap = if matches!(ty, b'x' | b'g') {
                    PAX_MAX
                } else {
                    PATH_MAX as u64 + 1
                };
                if hsize > cap {
                    return Err(err(
                        None,
                        format!("extended header of {hsize} bytes (limit {cap})"),
                    ));
                }
                let data = self.read_small(hsize, "in an extended header")?;
                match ty {
                    b'x' | b'g' => {
                        parse_pax(&data, &mut p, ty == b'g').map_err(|m| err(None, m))?
                    }
                    b'L' => p.gnu_name = Some(cstr(&data).to_vec()),
                    _ => p.gnu_link = Some(cstr(&data).to_vec()),
                }
                continue;
            }
            return self.entry(&h, ty, hsize, posix, p).map(Some);
        }
    }

    fn entry(
        &mut self,
        h: &[u8; BLOCK],
        ty: u8,
        hsize: u64,
        posix: bool,
        p: Pending,
    ) -> Result<Entry, Error> {
        let raw = match (p.pax_path, p.gnu_name) {
            (Some(n), _) | (None, Some(n)) => n,
            (None, None) => {
                let name = cstr(&h[0..100]);
                let prefix = if posix { cstr(&h[345..500]) } else { b"" };
                if prefix.is_empty() {
                    name.to_vec()
                } else {
                    [prefix, b"/", name].concat()
                }
            }
        };
        let name = show(&raw);
        let e = |m: &str| err(Some(&name), m.to_string());
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(err(
                Some(&name),
                format!("more than {} entries", self.limits.max_entries),
            ));
        }
        let link = match (p.pax_link, p.gnu_link) {
            (Some(l), _) | (None, Some(l)) => l,
            (None, None) => cstr(&h[157..257]).to_vec(),
        };
        let size = p.pax_size.unwrap_or(hsize);
        let kind = match ty {
            b'0' | 0 | b'7' => Kind::File { size },
            b'5' => Kind::Dir,
            b'2' => {
                if link.is_empty() || link.contains(&0) {
                    return Err(e("symlink with an empty target"));
                }
                Kind::Symlink { target: link }
            }
            b'1' => Kind::Hardlink {
                target: normalize(&link, false)
                    .map_err(|m| e(&format!("hard link target: {m}")))?,
            },
            b'3' => Kind::Special {
                what: "character device",
            },
            b'4' => Kind::Special {
                what: "block device",
            },
            b'6' => Kind::Special { what: "FIFO" },
            b'S' => return Err(e("sparse file refused")),
            t if t.is_ascii_graphic() => {
                return Err(e(&format!("entry type '{}' refused", t as char)))
            }
            t => return Err(e(&format!("entry type {t:#04x} refused"))),
        };
        let is_dir = kind == Kind::Dir;
        if !is_dir && raw.ends_with(b"/") {
            return Err(e("non-directory named with a trailing `/`"));
        }
        if !matches!(kind, Kind::File { .. }) && size != 0 {
            return Err(e("non-file entry with data"));
        }
        let path = normalize(&raw, is_dir).map_err(e)?;
        let mode = (num(&h[100..108]).map_err(|m| e(&format!("mode: {m}")))? & 0o7777) as u32;
        let mtime = match p.pax_mtime {
            Some(m) => m,
            None => num(&h[136..148])
                .ok()
                .and_then(|m| i64::try_from(m).ok())
                .unwrap_or(0),
        };
        let budget = self.limits.max_bytes.saturating_sub(self.read);
        if size > budget {
            return Err(e(&format!(
                "entry of {size} bytes exceeds the copy limit of {} bytes",
                self.limits.max_bytes
            )));
        }
        self.left = size;
        self.pad = pad_of(size);
        self.current = Some(name.clone());
        Ok(Entry {
            name,
            path,
            kind,
            mode,
            mtime,
        })
    }

    /// Reads data of the current file entry; 0 once it is all read.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.failed {
            return Err(err(None, "stream already refused"));
        }
        let k = self.left.min(buf.len() as u64) as usize;
        if k == 0 {
            return Ok(0);
        }
        let r = loop {
            match self.r.read(&mut buf[..k]) {
                Ok(0) => {
                    break Err(err(
                        self.current.as_deref(),
                        "stream truncated (in file data)",
                    ))
                }
                Ok(n) => break self.count(n as u64).map(|_| n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(err(self.current.as_deref(), format!("read: {e}"))),
            }
        };
        match r {
            Ok(n) => {
                self.left -= n as u64;
                Ok(n)
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }
}

fn pad_of(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

// ------------------------------------------------------------------ writer

/// Writes a tar stream (GNU format) for copy_in.
pub struct Writer<W> {
    w: W,
}

/// Metadata of an entry to write.
#[derive(Clone, Copy, Debug, Default)]
pub struct Meta {
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: i64,
}

/// Writes `v` into a number field: octal when it fits, else base-256.
fn put_num(f: &mut [u8], v: u64) {
    let digits = f.len() - 1;
    if digits >= 22 || v < (1u64 << (3 * digits)) {
        let s = format!("{v:0digits$o}");
        f[..digits].copy_from_slice(s.as_bytes());
        f[digits] = 0;
    } else {
        // GNU base-256: 0x80, then the value big-endian in the other bytes
        // (every field has at least 8, so any u64 up to 2^56 fits; larger
        // values are never written: sizes are bounded by the filesystem).
        f.fill(0);
        let n = f.len();
        for i in 0..(n - 1).min(8) {
            f[n - 1 - i] = (v >> (8 * i)) as u8;
        }
        f[0] = 0x80;
    }
}

fn header(name: &[u8], ty: u8, m: &Meta, size: u64, link: &[u8]) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    put_num(&mut h[100..108], u64::from(m.mode & 0o7777));
    put_num(&mut h[108..116], m.uid);
    put_num(&mut h[116..124], m.gid);
    put_num(&mut h[124..136], size);
    put_num(&mut h[136..148], u64::try_from(m.mtime).unwrap_or(0));
    h[156] = ty;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|b| u64::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

impl<W: Write> Writer<W> {
    pub fn new(w: W) -> Self {
        Writer { w }
    }

    fn long(&mut self, ty: u8, value: &[u8]) -> io::Result<()> {
        let size = value.len() as u64 + 1;
        let h = header(b"././@LongLink", ty, &Meta::default(), size, b"");
        self.w.write_all(&h)?;
        self.w.write_all(value)?;
        self.w.write_all(&[0])?;
        self.w.write_all(&[0u8; BLOCK][..pad_of(size) as usize])
    }

    fn head(&mut self, name: &[u8], ty: u8, m: &Meta, size: u64, link: &[u8]) -> io::Result<()> {
        if name.len() > 100 {
            self.long(b'L', name)?;
        }
        if link.len() > 100 {
            self.long(b'K', link)?;
        }
        self.w.write_all(&header(name, ty, m, size, link))
    }

    /// A directory entry (`name` is written with a trailing `/`).
    pub fn dir(&mut self, name: &[u8], m: &Meta) -> io::Result<()> {
        let mut n = name.to_vec();
        if !n.ends_with(b"/") {
            n.push(b'/');
        }
        self.head(&n, b'5', m, 0, b"")
    }

    /// A symbolic link entry.
    pub fn symlink(&mut self, name: &[u8], target: &[u8], m: &Meta) -> io::Result<()> {
        self.head(name, b'2', m, 0, target)
    }

    /// A regular file of exactly `size` bytes read from `data`; fails with
    /// `UnexpectedEof` (the archive is then unusable) when `data` ends
    /// early. Bytes past `size` are not read.
    pub fn file(
        &mut self,
        name: &[u8],
        m: &Meta,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        self.head(name, b'0', m, size, b"")?;
        let n = io::copy(&mut data.take(size), &mut self.w)?;
        if n != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("file shrank while being read ({n} of {size} bytes)"),
            ));
        }
        self.w.write_all(&[0u8; BLOCK][..pad_of(size) as usize])
    }

    /// The end-of-archive blocks; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.w.write_all(&[0u8; 2 * BLOCK])?;
        self.w.flush()?;
        Ok(self.w)
    }

    /// Appends raw bytes (tests forge streams with it).
    pub fn raw(&mut self, b: &[u8]) -> io::Result<()> {
        self.w.write_all(b)
    }
}

/// A raw header block with an arbitrary type (tests forge refused entries).
pub fn raw_header(name: &[u8], ty: u8, mode: u32, size: u64, link: &[u8]) -> [u8; BLOCK] {
    header(
        name,
        ty,
        &Meta {
            mode,
            ..Meta::default()
        },
        size,
        link,
    )
}

#[cfg(test)]
mod tests;
