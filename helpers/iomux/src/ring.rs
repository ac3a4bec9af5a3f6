//! Fixed-size byte ring addressed by a monotonically increasing u64 offset.
//!
//! The ring holds the newest `len()` bytes of a stream, the offsets
//! `[start(), end())`. Byte at offset `o` lives at `buf[o % cap]`. Writing
//! past capacity overwrites the oldest bytes; [`Ring::commit`] reports how
//! many were overwritten, and `start()` is the total dropped so far from the
//! front. The buffer is allocated once; nothing allocates afterwards.

/// See the module documentation.
pub struct Ring {
    buf: Box<[u8]>,
    end: u64,
    len: usize,
}

impl Ring {
    /// A ring of `cap` bytes (`cap > 0`).
    pub fn new(cap: usize) -> Self {
        assert!(cap > 0, "ring capacity must be positive");
        Ring {
            buf: vec![0u8; cap].into_boxed_slice(),
            end: 0,
            len: 0,
        }
    }

    /// Capacity in bytes.
    pub fn cap(&self) -> usize {
        self.buf.len()
    }

    /// Offset one past the newest byte (total bytes ever written).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Offset of the oldest byte still held.
    pub fn start(&self) -> u64 {
        self.end - self.len as u64
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The contiguous region at `end()` to read new bytes into, at most
    /// `max` bytes. Filling it and calling [`Ring::commit`] may overwrite
    /// the oldest bytes; callers that must not lose bytes pass
    /// `max <= cap - (end - oldest_needed)`.
    pub fn spare(&mut self, max: usize) -> &mut [u8] {
        let cap = self.cap();
        let at = (self.end % cap as u64) as usize;
        let n = (cap - at).min(max);
        &mut self.buf[at..at + n]
    }

    /// Marks `n` bytes of the last [`Ring::spare`] region as written.
    /// Returns how many old bytes were overwritten.
    pub fn commit(&mut self, n: usize) -> u64 {
        self.end += n as u64;
        let total = self.len + n;
        let cap = self.cap();
        if total > cap {
            self.len = cap;
            (total - cap) as u64
        } else {
            self.len = total;
            0
        }
    }

    /// The held bytes from offset `from` to `end()`, as up to two slices
    /// (the second is empty unless the range wraps). `None` when `from` is
    /// outside `[start(), end()]`.
    pub fn read_from(&self, from: u64) -> Option<(&[u8], &[u8])> {
        if from < self.start() || from > self.end {
            return None;
        }
        let n = (self.end - from) as usize;
        let cap = self.cap();
        let at = (from % cap as u64) as usize;
        if at + n <= cap {
            Some((&self.buf[at..at + n], &[]))
        } else {
            Some((&self.buf[at..], &self.buf[..at + n - cap]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(r: &mut Ring, data: &[u8]) -> u64 {
        let mut dropped = 0;
        let mut rest = data;
        while !rest.is_empty() {
            let s = r.spare(rest.len());
            let n = s.len();
            s.copy_from_slice(&rest[..n]);
            dropped += r.commit(n);
            rest = &rest[n..];
        }
        dropped
    }

    fn get(r: &Ring, from: u64) -> Vec<u8> {
        let (a, b) = r.read_from(from).unwrap();
        [a, b].concat()
    }

    #[test]
    fn keeps_newest_and_counts_dropped() {
        let mut r = Ring::new(8);
        assert_eq!(put(&mut r, b"abcde"), 0);
        assert_eq!((r.start(), r.end(), r.len()), (0, 5, 5));
        assert_eq!(get(&r, 0), b"abcde");
        assert_eq!(get(&r, 3), b"de");
        assert_eq!(put(&mut r, b"fghij"), 2);
        assert_eq!((r.start(), r.end()), (2, 10));
        assert_eq!(get(&r, 2), b"cdefghij");
        assert_eq!(get(&r, 10), b"");
        assert!(r.read_from(1).is_none());
        assert!(r.read_from(11).is_none());
        assert_eq!(put(&mut r, &[b'z'; 30]), 30);
        assert_eq!(r.start(), 32);
        assert_eq!(get(&r, 32), vec![b'z'; 8]);
    }

    #[test]
    fn spare_is_bounded_by_max_and_wrap() {
        let mut r = Ring::new(8);
        put(&mut r, b"abcdef");
        assert_eq!(r.spare(100).len(), 2);
        assert_eq!(r.spare(1).len(), 1);
        put(&mut r, b"gh");
        assert_eq!(r.spare(100).len(), 8);
    }

    #[test]
    fn offsets_past_u32() {
        let mut r = Ring::new(4);
        r.end = (1u64 << 33) + 2;
        r.len = 0;
        put(&mut r, b"xyz");
        assert_eq!(get(&r, (1u64 << 33) + 2), b"xyz");
    }
}
