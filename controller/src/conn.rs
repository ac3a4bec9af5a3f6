//! The server side of a client connection: bounded reading of request
//! frames, the shared budget for large ones, and connection slots.
//!
//! What one client can make the server hold (finding 8):
//!
//! - A frame's declared length is checked against the largest any request
//!   may have ([`Limits::largest`]) as soon as its length line is read, and
//!   against the cap of its request type ([`Limits::cap`]) as soon as the
//!   first two payload bytes (the envelope's `type` field, which warden's
//!   and our encoders put first) have arrived: Spawn and Run (the script)
//!   `server.max_request_bytes`, Create and Echo [`MID_FRAME`], every other
//!   type, or a type that does not come first, [`SMALL_FRAME`]. A frame over
//!   its cap gets an error and the connection is closed.
//! - The payload buffer grows only as bytes arrive (never to the declared
//!   length up front), and never beyond it.
//! - A frame larger than [`FREE_FRAME`] first reserves its length from one
//!   budget shared by all connections (`server.max_buffered_bytes`); when
//!   the budget is spent, the request is refused with "server busy" and the
//!   connection closed. Smaller frames (every request but a big script or
//!   many bind mounts) need no reservation, so a full budget never stops
//!   them.
//! - Once a frame's first byte has arrived, the whole frame must arrive
//!   within `server.request_timeout`; otherwise the connection is closed.
//!   An idle connection between frames is never timed out (warden clients
//!   keep connections open to hold their containers).
//! - At most `server.max_connections` connections are served at once
//!   ([`Slots`]); one more is answered with an error and closed at once.
//!
//! So the memory a server holds for requests being received is at most
//! `max_connections` x (8 KiB read buffer + [`FREE_FRAME`]) +
//! `max_buffered_bytes`, plus a thread stack per connection.

use crate::proto::{FrameError, Type, MAX_LEN_DIGITS};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cap of every request type not listed below (handles, paths, ports).
pub const SMALL_FRAME: usize = 16 << 10;
/// Cap of Create (bind mounts) and Echo requests.
pub const MID_FRAME: usize = 64 << 10;
/// Frames up to this many bytes (payload and trailer) need no reservation
/// from the shared budget.
pub const FREE_FRAME: usize = 4 << 10;

/// Bytes of large frames being received, shared by all connections.
#[derive(Debug)]
pub struct Budget {
    limit: usize,
    used: AtomicUsize,
}

/// Bytes taken from a [`Budget`]; given back on drop.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<Budget>,
    n: usize,
}

impl Budget {
    pub fn new(limit: usize) -> Arc<Budget> {
        Arc::new(Budget {
            limit,
            used: AtomicUsize::new(0),
        })
    }

    /// Takes `n` bytes if that keeps the total within the limit.
    pub fn take(self: &Arc<Self>, n: usize) -> Option<Reservation> {
        self.used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                u.checked_add(n).filter(|t| *t <= self.limit)
            })
            .ok()?;
        Some(Reservation {
            budget: self.clone(),
            n,
        })
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::SeqCst)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.n, Ordering::SeqCst);
    }
}

/// Bounds for reading requests, from the config.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Cap of Spawn and Run frames (`server.max_request_bytes`).
    pub max_request: usize,
    /// `server.request_timeout`.
    pub timeout: Duration,
    /// `server.max_buffered_bytes`.
    pub budget: Arc<Budget>,
}

impl Limits {
    /// Largest payload a request of type `ty` may have (`None`: the type
    /// is unknown or not the envelope's first field).
    pub fn cap(&self, ty: Option<Type>) -> usize {
        match ty {
            Some(Type::Spawn | Type::Run) => self.max_request,
            Some(Type::Create | Type::Echo) => MID_FRAME,
            _ => SMALL_FRAME,
        }
    }

    /// Largest payload any request may have.
    pub fn largest(&self) -> usize {
        self.max_request.max(MID_FRAME)
    }
}

/// A byte source whose reads can be given a time limit.
pub trait Source: Read {
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()>;
    /// Blocks until a read would not block, consuming nothing (the bytes
    /// stay visible to a MSG_PEEK of another thread meanwhile).
    fn wait_readable(&self) -> io::Result<()> {
        Ok(())
    }
}

impl Source for UnixStream {
    fn set_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)
    }

    fn wait_readable(&self) -> io::Result<()> {
        use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
        use std::os::fd::AsFd;
        loop {
            let mut fds = [PollFd::new(self.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Reads request frames from one connection within [`Limits`].
pub struct RequestReader<S: Source> {
    r: BufReader<S>,
    limits: Limits,
    deadline: Option<Instant>,
    timeout_set: bool,
    /// Set once a frame's first byte has arrived, before it is taken out of
    /// the socket (crate::dispatch clears it once the frame is sequenced
    /// and nothing more is buffered): at every moment a frame's bytes are
    /// either in the socket, where a peek sees them, or flagged here.
    receiving: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Test hook (crate::dispatch, `WARDEN_TEST_READ_DELAY_MS`): a pause
    /// once a frame's first bytes have been taken out of the socket.
    read_delay: Option<Duration>,
    /// Frames read so far.
    frames: u64,
}

/// The request type an envelope's first payload bytes announce: field 1
/// (varint) first, as every encoder of warden's protocol writes it.
fn peek_type(p: &[u8]) -> Option<Type> {
    match p {
        [0x08, t, ..] if *t < 0x80 => Type::try_from(*t as i32).ok(),
        _ => None,
    }
}

impl<S: Source> RequestReader<S> {
    pub fn new(s: S, limits: Limits) -> Self {
        RequestReader {
            r: BufReader::with_capacity(8 << 10, s),
            limits,
            deadline: None,
            timeout_set: false,
            receiving: None,
            read_delay: None,
            frames: 0,
        }
    }

    /// Pauses `d` after the first bytes of each frame but a connection's
    /// first left the socket (a test hook: the window in which only the
    /// `watch` flag shows the frame; a connection's first frame is spared
    /// so that a test can race a fresh connection against it).
    pub fn delay_after_first_bytes(&mut self, d: Option<Duration>) {
        self.read_delay = d;
    }

    /// `flag` is set whenever a frame has started to arrive.
    pub fn watch(&mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) {
        self.receiving = Some(flag);
    }

    /// Whether bytes read from the socket wait in the buffer (the start of
    /// a next frame the client wrote without waiting).
    pub fn buffered(&self) -> bool {
        !self.r.buffer().is_empty()
    }

    /// Makes bytes of the current frame available in the read buffer
    /// (none at EOF) and returns how many; within the frame's deadline
    /// once it has one.
    fn fill(&mut self) -> Result<usize, FrameError> {
        if self.r.buffer().is_empty() {
            if let Some(d) = self.deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(FrameError::Timeout(self.limits.timeout.as_secs()));
                }
                self.r.get_ref().set_timeout(Some(left))?;
                self.timeout_set = true;
            }
        }
        loop {
            match self.r.fill_buf() {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(FrameError::Timeout(self.limits.timeout.as_secs()))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(self.r.buffer().len())
    }

    /// Reads one frame's payload (see the module doc for the bounds).
    /// `Eof` only when the connection ends cleanly between frames.
    pub fn read(&mut self) -> Result<Vec<u8>, FrameError> {
        self.deadline = None;
        if self.timeout_set {
            self.r.get_ref().set_timeout(None)?;
            self.timeout_set = false;
        }
        // A new frame: flagged before its first bytes leave the socket
        // (issue 16: a destroy on another connection must never see them
        // in neither place).
        if let Some(f) = &self.receiving {
            if self.r.buffer().is_empty() {
                self.r.get_ref().wait_readable()?;
            }
            f.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        // Length line.
        let mut line: Vec<u8> = Vec::with_capacity(MAX_LEN_DIGITS + 2);
        loop {
            if self.fill()? == 0 {
                if line.is_empty() {
                    return Err(FrameError::Eof);
                }
                return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            if self.deadline.is_none() {
                self.deadline = Some(Instant::now() + self.limits.timeout);
                if let (Some(d), 1..) = (self.read_delay, self.frames) {
                    std::thread::sleep(d);
                }
            }
            let b = self.r.buffer();
            let (n, done) = match b.iter().position(|c| *c == b'\n') {
                Some(i) => (i + 1, true),
                None => (b.len(), false),
            };
            if line.len() + n > MAX_LEN_DIGITS + 2 {
                return Err(FrameError::BadLength);
            }
            line.extend_from_slice(&b[..n]);
            self.r.consume(n);
            if done {
                break;
            }
        }
        line.pop(); // \n
        if line.pop() != Some(b'\r') || line.is_empty() || !line.iter().all(u8::is_ascii_digit) {
            return Err(FrameError::BadLength);
        }
        let len: usize = std::str::from_utf8(&line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(FrameError::BadLength)?;
        let largest = self.limits.largest();
        if len > largest {
            return Err(FrameError::TooLarge(len, largest));
        }
        let total = len + 2;
        let mut buf: Vec<u8> = Vec::new();
        // The type, then its cap, then the budget, before the payload can
        // grow past its first bytes.
        self.read_into(&mut buf, total.min(2))?;
        if len > SMALL_FRAME {
            let ty = peek_type(&buf);
            let cap = self.limits.cap(ty);
            if len > cap {
                let name = ty.map(|t| t.name()).unwrap_or("unknown");
                return Err(FrameError::TooLargeFor(len, cap, name));
            }
        }
        let _reserved = if total > FREE_FRAME {
            let b = &self.limits.budget;
            Some(b.take(total).ok_or(FrameError::Busy(len, b.limit()))?)
        } else {
            None
        };
        self.read_into(&mut buf, total)?;
        if &buf[len..] != b"\r\n" {
            return Err(FrameError::BadTrailer);
        }
        buf.truncate(len);
        self.frames += 1;
        Ok(buf)
    }

    /// Reads until `buf` holds `upto` bytes, growing it only as they come.
    fn read_into(&mut self, buf: &mut Vec<u8>, upto: usize) -> Result<(), FrameError> {
        while buf.len() < upto {
            let avail = self.fill()?;
            if avail == 0 {
                return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            let n = avail.min(upto - buf.len());
            if buf.capacity() < buf.len() + n {
                // Doubling, but never beyond the frame.
                let want = (buf.capacity() * 2)
                    .max(4096)
                    .max(buf.len() + n)
                    .min(upto.max(buf.len() + n));
                buf.reserve_exact(want - buf.len());
            }
            buf.extend_from_slice(&self.r.buffer()[..n]);
            self.r.consume(n);
        }
        Ok(())
    }

    pub fn get_ref(&self) -> &S {
        self.r.get_ref()
    }
}

/// Counts open connections against `server.max_connections`.
#[derive(Debug)]
pub struct Slots {
    max: usize,
    open: AtomicUsize,
}

/// One open connection; its slot is freed on drop.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            max,
            open: AtomicUsize::new(0),
        })
    }

    /// A slot, or None when `max` connections are open.
    pub fn take(self: &Arc<Self>) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |o| {
                (o < self.max).then_some(o + 1)
            })
            .ok()?;
        Some(Slot(self.clone()))
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn limits(max_request: usize, budget: usize, timeout_ms: u64) -> Limits {
        Limits {
            max_request,
            timeout: Duration::from_millis(timeout_ms),
            budget: Budget::new(budget),
        }
    }

    fn frame(ty: Type, payload_len: usize) -> Vec<u8> {
        // Envelope: 08 <type> 12 <varint len> <bytes>, sized to payload_len.
        let mut body = vec![0x08, ty as u8, 0x12];
        let inner = payload_len - 3 - 3;
        body.extend_from_slice(&[
            (inner & 0x7f) as u8 | 0x80,
            ((inner >> 7) & 0x7f) as u8 | 0x80,
        ]);
        body.push((inner >> 14) as u8);
        body.resize(payload_len, b'x');
        let mut f = format!("{}\r\n", body.len()).into_bytes();
        f.extend_from_slice(&body);
        f.extend_from_slice(b"\r\n");
        f
    }

    fn pair(l: Limits) -> (RequestReader<UnixStream>, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (RequestReader::new(a, l), b)
    }

    #[test]
    fn frames_within_their_type_caps_are_read() {
        let (mut r, mut w) = pair(limits(1 << 20, 4 << 20, 5000));
        for (ty, n) in [
            (Type::Ping, 2),
            (Type::Info, SMALL_FRAME),
            (Type::Create, MID_FRAME),
            (Type::Spawn, 1 << 20),
        ] {
            let f = if n == 2 {
                b"2\r\n\x08\x5b\r\n".to_vec()
            } else {
                frame(ty, n)
            };
            let t = std::thread::spawn(move || {
                w.write_all(&f).unwrap();
                w
            });
            let p = r.read().unwrap();
            assert_eq!((p.len(), peek_type(&p)), (n, Some(ty)));
            assert!(p.capacity() <= n + 2, "{} for {n}", p.capacity());
            w = t.join().unwrap();
        }
        drop(w);
        assert!(matches!(r.read(), Err(FrameError::Eof)));
    }

    #[test]
    fn oversize_frames_are_refused_before_their_payload() {
        let (mut r, mut w) = pair(limits(1 << 20, 4 << 20, 5000));
        w.write_all(b"16777216\r\n").unwrap();
        let e = r.read().unwrap_err().to_string();
        assert_eq!(
            e,
            "frame of 16777216 bytes exceeds the maximum of 1048576 bytes"
        );
        for (ty, n, cap) in [
            (Type::Info, SMALL_FRAME + 1, SMALL_FRAME),
            (Type::Create, MID_FRAME + 1, MID_FRAME),
            (Type::Ping, 100_000, SMALL_FRAME),
        ] {
            let (mut r, mut w) = pair(limits(1 << 20, 4 << 20, 5000));
            // Only the length line and the type: refused at once.
            w.write_all(&frame(ty, n)[..n.to_string().len() + 4])
                .unwrap();
            let e = r.read().unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "{}Request frame of {n} bytes exceeds the maximum of {cap} bytes",
                    ty.name()
                )
            );
        }
        // A type that does not come first gets the small cap.
        let (mut r, mut w) = pair(limits(1 << 20, 4 << 20, 5000));
        w.write_all(b"20000\r\n\x12\x00").unwrap();
        assert!(matches!(
            r.read(),
            Err(FrameError::TooLargeFor(20000, SMALL_FRAME, "unknown"))
        ));
        for bad in [&b"12x\r\n"[..], b"\r\n", b"123456789012\r\n", b"5\n"] {
            let (mut r, mut w) = pair(limits(1 << 20, 4 << 20, 5000));
            w.write_all(bad).unwrap();
            assert!(matches!(r.read(), Err(FrameError::BadLength)), "{bad:?}");
        }
    }

    #[test]
    fn large_frames_share_a_budget_small_ones_do_not() {
        let l = limits(1 << 20, 100_000, 5000);
        let budget = l.budget.clone();
        // Two clients each start a 60000-byte Spawn frame: the second does
        // not fit the budget while the first is being received.
        let (mut r1, mut w1) = pair(l.clone());
        let f = frame(Type::Spawn, 60_000);
        w1.write_all(&f[..1000]).unwrap();
        let t = std::thread::spawn(move || r1.read().map(|p| p.len()));
        assert!(crate_wait(|| budget.used() == 60_002));
        let (mut r2, mut w2) = pair(l.clone());
        w2.write_all(&f[..1000]).unwrap();
        assert!(matches!(r2.read(), Err(FrameError::Busy(60_000, 100_000))));
        // Small requests are still read.
        let (mut r3, mut w3) = pair(l.clone());
        w3.write_all(b"2\r\n\x08\x5b\r\n").unwrap();
        assert_eq!(r3.read().unwrap(), b"\x08\x5b");
        // The first completes and gives its bytes back.
        w1.write_all(&f[1000..]).unwrap();
        assert_eq!(t.join().unwrap().unwrap(), 60_000);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_started_frame_must_arrive_in_time_an_idle_connection_need_not() {
        let l = limits(1 << 20, 1 << 20, 300);
        let budget = l.budget.clone();
        let (mut r, mut w) = pair(l);
        // Idle for longer than the timeout, then a whole frame: fine.
        std::thread::sleep(Duration::from_millis(400));
        w.write_all(b"2\r\n\x08\x5b\r\n").unwrap();
        assert_eq!(r.read().unwrap(), b"\x08\x5b");
        // Started and stalled: timed out, its reservation given back.
        let f = frame(Type::Spawn, 50_000);
        w.write_all(&f[..10_000]).unwrap();
        let t0 = Instant::now();
        assert!(matches!(r.read(), Err(FrameError::Timeout(_))));
        assert!(t0.elapsed() < Duration::from_secs(3));
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn slots_count_open_connections() {
        let s = Slots::new(2);
        let a = s.take().unwrap();
        let _b = s.take().unwrap();
        assert!(s.take().is_none());
        drop(a);
        assert_eq!(s.open(), 1);
        assert!(s.take().is_some());
    }

    fn crate_wait(mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}
