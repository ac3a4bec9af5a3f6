//! Reading a tar stream from a container (copy_out): [`Reader`], which
//! accepts exactly the format documented in crate::tarstream.

use super::*;

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
            (None, None) => header_name(h, posix),
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
        let kind = kind_of(ty, link, size, &name)?;
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

/// The name in a header (without a pax or GNU long name): ustar's
/// prefix, when the header is POSIX, joined to the name field.
fn header_name(h: &[u8; BLOCK], posix: bool) -> Vec<u8> {
    let name = cstr(&h[0..100]);
    let prefix = if posix { cstr(&h[345..500]) } else { b"" };
    if prefix.is_empty() {
        name.to_vec()
    } else {
        [prefix, b"/", name].concat()
    }
}

/// The kind of an entry of type flag `ty`: the types refused are refused
/// here, naming the entry.
fn kind_of(ty: u8, link: Vec<u8>, size: u64, name: &str) -> Result<Kind, Error> {
    let e = |m: &str| err(Some(name), m.to_string());
    Ok(match ty {
        b'0' | 0 | b'7' => Kind::File { size },
        b'5' => Kind::Dir,
        b'2' => {
            if link.is_empty() || link.contains(&0) {
                return Err(e("symlink with an empty target"));
            }
            Kind::Symlink { target: link }
        }
        b'1' => Kind::Hardlink {
            target: normalize(&link, false).map_err(|m| e(&format!("hard link target: {m}")))?,
        },
        b'3' => Kind::Special {
            what: "character device",
        },
        b'4' => Kind::Special {
            what: "block device",
        },
        b'6' => Kind::Special { what: "FIFO" },
        b'S' => return Err(e("sparse file refused")),
        t if t.is_ascii_graphic() => return Err(e(&format!("entry type '{}' refused", t as char))),
        t => return Err(e(&format!("entry type {t:#04x} refused"))),
    })
}
