//! The writer for copy_in (GNU headers, `L`/`K` long names).

use super::*;
use std::io::{self, Read, Write};

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
pub(super) fn put_num(f: &mut [u8], v: u64) {
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
