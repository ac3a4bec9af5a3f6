//! The wsh <-> wshd protocol (version 1).
//!
//! Transport: a unix `SOCK_SEQPACKET` socket (`<run>/wshd.sock`). Every
//! message is exactly one packet, at most [`MAX_MSG`] bytes; a longer packet
//! is rejected (the receiver sees it truncated). Integers are little-endian.
//!
//! ```text
//! header   magic "WSH" (3 bytes) | version u8 (= 1) | kind u8
//! str8     len u8  | bytes        (UTF-8, no NUL bytes)
//! str16    len u16 | bytes        (UTF-8, no NUL bytes)
//!
//! kind 1 REQUEST  client -> wshd, first and only client message
//!   flags u8          bit 0: tty session; bit 1: kill the command's process
//!                     group (SIGKILL) when this connection closes before it
//!                     ended; bit 2: rlimit entries carry a hard value (set
//!                     by wsh only when some soft differs from its hard, so
//!                     a wshd that predates it still serves the rest); other
//!                     bits must be 0
//!   rows u16, cols u16  initial window size (tty), 0 = leave unset
//!   user  str8        <= 32 bytes; empty means root
//!   lang  str16       <= 1024 bytes; empty means unset (LANG of the session)
//!   term  str8        <= 64 bytes;  empty means unset (TERM of the session)
//!   nrlim u8          <= 16 entries, each: resource u8 (index in RLIMITS),
//!                     soft u64, and with flags bit 2 hard u64 (u64::MAX =
//!                     unlimited; without bit 2, hard = soft). A resource
//!                     may appear once.
//!   argc  u16         <= 1024 entries, each: len u32 | bytes (no NUL);
//!                     argc = 0 runs the user's login shell
//!   nothing may follow.
//! kind 2 READY    wshd -> client, session started
//!   pid u32           the command's pid inside the container
//!   SCM_RIGHTS fds    non-tty: [stdin write end, stdout read end, stderr read end]
//!                     tty:     [pty master]
//! kind 3 EXIT     wshd -> client, after READY, when the command ended
//!   signaled u8       0: exited, 1: killed by a signal (nothing else)
//!   code u8           exit status, or the signal number
//! kind 4 ERROR    wshd -> client, the session failed and nothing runs: sent
//!                   instead of READY (bad request, unknown user, no pty), or
//!                   before or after READY by the session's child when it
//!                   could not exec (no EXIT then matters); a client stops at
//!                   the first ERROR
//!   status u8         exit status wsh should use (127 command not found,
//!                     126 not executable, 255 otherwise)
//!   message str16     <= 4096 bytes, one line, e.g. "unknown user 'bob'";
//!                     both ends pass it through [`one_line`] (a decoder
//!                     also replaces invalid UTF-8)
//! ```
//!
//! A malformed, oversized or unexpected message gets an ERROR naming the
//! problem and only that connection is closed.

use thiserror::Error;

/// Protocol version carried in every header.
pub const VERSION: u8 = 1;
/// Largest message in bytes (a bigger one is refused).
pub const MAX_MSG: usize = 128 * 1024;
/// Bounds of the variable fields.
pub const MAX_USER: usize = 32;
pub const MAX_LANG: usize = 1024;
pub const MAX_TERM: usize = 64;
pub const MAX_RLIMITS: usize = 16;
pub const MAX_ARGS: usize = 1024;
pub const MAX_ERROR: usize = 4096;

const MAGIC: &[u8; 3] = b"WSH";
const KIND_REQUEST: u8 = 1;
const KIND_READY: u8 = 2;
const KIND_EXIT: u8 = 3;
const KIND_ERROR: u8 = 4;

/// Resource names accepted as `RLIMIT_<NAME>`; the wire id is the index.
pub const RLIMITS: [&str; 15] = [
    "AS",
    "CORE",
    "CPU",
    "DATA",
    "FSIZE",
    "LOCKS",
    "MEMLOCK",
    "MSGQUEUE",
    "NICE",
    "NOFILE",
    "NPROC",
    "RSS",
    "RTPRIO",
    "SIGPENDING",
    "STACK",
];

/// Value meaning "no limit".
pub const RLIM_UNLIMITED: u64 = u64::MAX;

/// Why a message could not be encoded or decoded.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("message too short")]
    Short,
    #[error("bad magic (not a wsh message)")]
    Magic,
    #[error("unsupported protocol version {0} (this wshd speaks {VERSION})")]
    Version(u8),
    #[error("unexpected message kind {0}")]
    Kind(u8),
    #[error("{0} too long (at most {1} bytes)")]
    TooLong(&'static str, usize),
    #[error("too many {0} (at most {1})")]
    TooMany(&'static str, usize),
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    #[error("{0} is not UTF-8")]
    Utf8(&'static str),
    #[error("bad {0} value {1}")]
    Value(&'static str, u8),
    #[error("unknown flags {0:#x}")]
    Flags(u8),
    #[error("unknown rlimit id {0}")]
    Rlimit(u8),
    #[error("rlimit {0} given twice")]
    RlimitTwice(&'static str),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("message larger than {MAX_MSG} bytes")]
    Oversize,
}

/// A session request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub tty: bool,
    /// Kill the command's process group if the client goes away first.
    pub kill_on_disconnect: bool,
    pub rows: u16,
    pub cols: u16,
    pub user: String,
    pub lang: String,
    pub term: String,
    /// (index into [`RLIMITS`], soft, hard)
    pub rlimits: Vec<(u8, u64, u64)>,
    pub argv: Vec<Vec<u8>>,
}

/// Anything wshd sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ready { pid: u32 },
    Exit { signaled: bool, code: u8 },
    Error { status: u8, message: String },
}

fn header(kind: u8, out: &mut Vec<u8>) {
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(kind);
}

fn check(name: &'static str, b: &[u8], max: usize) -> Result<(), ProtoError> {
    if b.len() > max {
        return Err(ProtoError::TooLong(name, max));
    }
    if b.contains(&0) {
        return Err(ProtoError::Nul(name));
    }
    Ok(())
}

fn put_str8(name: &'static str, s: &[u8], max: usize, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    check(name, s, max)?;
    out.push(s.len() as u8);
    out.extend_from_slice(s);
    Ok(())
}

fn put_str16(
    name: &'static str,
    s: &[u8],
    max: usize,
    out: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    check(name, s, max)?;
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s);
    Ok(())
}

/// Encodes a REQUEST.
pub fn encode_request(r: &Request) -> Result<Vec<u8>, ProtoError> {
    let mut out = Vec::with_capacity(64 + r.argv.iter().map(|a| a.len() + 4).sum::<usize>());
    header(KIND_REQUEST, &mut out);
    let split = r.rlimits.iter().any(|&(_, soft, hard)| soft != hard);
    out.push(r.tty as u8 | (r.kill_on_disconnect as u8) << 1 | (split as u8) << 2);
    out.extend_from_slice(&r.rows.to_le_bytes());
    out.extend_from_slice(&r.cols.to_le_bytes());
    put_str8("user", r.user.as_bytes(), MAX_USER, &mut out)?;
    put_str16("LANG", r.lang.as_bytes(), MAX_LANG, &mut out)?;
    put_str8("TERM", r.term.as_bytes(), MAX_TERM, &mut out)?;
    if r.rlimits.len() > MAX_RLIMITS {
        return Err(ProtoError::TooMany("rlimits", MAX_RLIMITS));
    }
    out.push(r.rlimits.len() as u8);
    for (i, &(id, soft, hard)) in r.rlimits.iter().enumerate() {
        let name = *RLIMITS.get(id as usize).ok_or(ProtoError::Rlimit(id))?;
        if r.rlimits[..i].iter().any(|&(j, _, _)| j == id) {
            return Err(ProtoError::RlimitTwice(name));
        }
        out.push(id);
        out.extend_from_slice(&soft.to_le_bytes());
        if split {
            out.extend_from_slice(&hard.to_le_bytes());
        }
    }
    if r.argv.len() > MAX_ARGS {
        return Err(ProtoError::TooMany("arguments", MAX_ARGS));
    }
    out.extend_from_slice(&(r.argv.len() as u16).to_le_bytes());
    for a in &r.argv {
        check("argument", a, MAX_MSG)?;
        out.extend_from_slice(&(a.len() as u32).to_le_bytes());
        out.extend_from_slice(a);
    }
    if out.len() > MAX_MSG {
        return Err(ProtoError::Oversize);
    }
    Ok(out)
}

/// Encodes a reply.
pub fn encode_reply(r: &Reply) -> Vec<u8> {
    let mut out = Vec::with_capacity(16);
    match r {
        Reply::Ready { pid } => {
            header(KIND_READY, &mut out);
            out.extend_from_slice(&pid.to_le_bytes());
        }
        Reply::Exit { signaled, code } => {
            header(KIND_EXIT, &mut out);
            out.push(*signaled as u8);
            out.push(*code);
        }
        Reply::Error { status, message } => {
            header(KIND_ERROR, &mut out);
            out.push(*status);
            let m = one_line(message);
            out.extend_from_slice(&(m.len() as u16).to_le_bytes());
            out.extend_from_slice(m.as_bytes());
        }
    }
    out
}

/// An ERROR message as it goes on the wire: one line (newlines and NULs
/// become spaces) of at most [`MAX_ERROR`] bytes, cut at a character
/// boundary so it stays UTF-8.
pub fn one_line(message: &str) -> String {
    let mut end = message.len().min(MAX_ERROR);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message[..end].replace(['\n', '\0'], " ")
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        if self.b.len() < n {
            return Err(ProtoError::Short);
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, ProtoError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ProtoError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ProtoError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, ProtoError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn bytes(&mut self, name: &'static str, n: usize, max: usize) -> Result<&'a [u8], ProtoError> {
        if n > max {
            return Err(ProtoError::TooLong(name, max));
        }
        let b = self.take(n)?;
        if b.contains(&0) {
            return Err(ProtoError::Nul(name));
        }
        Ok(b)
    }
    fn string(&mut self, name: &'static str, n: usize, max: usize) -> Result<String, ProtoError> {
        let b = self.bytes(name, n, max)?;
        String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Utf8(name))
    }
    fn header(&mut self) -> Result<u8, ProtoError> {
        if self.take(3)? != MAGIC {
            return Err(ProtoError::Magic);
        }
        let v = self.u8()?;
        if v != VERSION {
            return Err(ProtoError::Version(v));
        }
        self.u8()
    }
    fn end(&self) -> Result<(), ProtoError> {
        if !self.b.is_empty() {
            return Err(ProtoError::Trailing(self.b.len()));
        }
        Ok(())
    }
}

/// Decodes a REQUEST, checking every bound.
pub fn decode_request(b: &[u8]) -> Result<Request, ProtoError> {
    if b.len() > MAX_MSG {
        return Err(ProtoError::Oversize);
    }
    let mut r = Reader { b };
    let kind = r.header()?;
    if kind != KIND_REQUEST {
        return Err(ProtoError::Kind(kind));
    }
    let flags = r.u8()?;
    if flags & !7 != 0 {
        return Err(ProtoError::Flags(flags));
    }
    let rows = r.u16()?;
    let cols = r.u16()?;
    let n = r.u8()? as usize;
    let user = r.string("user", n, MAX_USER)?;
    let n = r.u16()? as usize;
    let lang = r.string("LANG", n, MAX_LANG)?;
    let n = r.u8()? as usize;
    let term = r.string("TERM", n, MAX_TERM)?;
    let nrlim = r.u8()? as usize;
    if nrlim > MAX_RLIMITS {
        return Err(ProtoError::TooMany("rlimits", MAX_RLIMITS));
    }
    let mut rlimits = Vec::with_capacity(nrlim);
    for _ in 0..nrlim {
        let id = r.u8()?;
        let name = *RLIMITS.get(id as usize).ok_or(ProtoError::Rlimit(id))?;
        let soft = r.u64()?;
        let hard = if flags & 4 != 0 { r.u64()? } else { soft };
        if rlimits.iter().any(|&(i, _, _)| i == id) {
            return Err(ProtoError::RlimitTwice(name));
        }
        rlimits.push((id, soft, hard));
    }
    // Bit 2 only when some soft limit differs from its hard one (the
    // encoder's form; anything else has two encodings).
    if flags & 4 != 0 && rlimits.iter().all(|&(_, soft, hard)| soft == hard) {
        return Err(ProtoError::Flags(flags));
    }
    let argc = r.u16()? as usize;
    if argc > MAX_ARGS {
        return Err(ProtoError::TooMany("arguments", MAX_ARGS));
    }
    let mut argv = Vec::with_capacity(argc);
    for _ in 0..argc {
        let n = r.u32()? as usize;
        argv.push(r.bytes("argument", n, MAX_MSG)?.to_vec());
    }
    r.end()?;
    Ok(Request {
        tty: flags & 1 != 0,
        kill_on_disconnect: flags & 2 != 0,
        rows,
        cols,
        user,
        lang,
        term,
        rlimits,
        argv,
    })
}

/// Decodes a reply from wshd.
pub fn decode_reply(b: &[u8]) -> Result<Reply, ProtoError> {
    let mut r = Reader { b };
    let reply = match r.header()? {
        KIND_READY => Reply::Ready { pid: r.u32()? },
        KIND_EXIT => {
            let s = r.u8()?;
            if s > 1 {
                return Err(ProtoError::Value("signaled", s));
            }
            Reply::Exit {
                signaled: s == 1,
                code: r.u8()?,
            }
        }
        KIND_ERROR => {
            let status = r.u8()?;
            let n = r.u16()? as usize;
            if n > MAX_ERROR {
                return Err(ProtoError::TooLong("message", MAX_ERROR));
            }
            let m = r.take(n)?;
            Reply::Error {
                status,
                message: one_line(&String::from_utf8_lossy(m)),
            }
        }
        k => return Err(ProtoError::Kind(k)),
    };
    r.end()?;
    Ok(reply)
}

/// Parses an `RLIMIT_<NAME>` value into (soft, hard): `SOFT HARD` as the
/// C wsh read it (`sscanf("%ld %ld")`), or one value for both. A value is a
/// number or `unlimited`/`infinity`/`-1`. None: not that form, or a soft
/// limit above the hard one.
pub fn parse_rlimit_value(s: &str) -> Option<(u64, u64)> {
    let one = |v: &str| match v {
        "unlimited" | "infinity" | "-1" => Some(RLIM_UNLIMITED),
        n => n.parse().ok(),
    };
    let mut it = s.split_whitespace();
    let soft = one(it.next()?)?;
    let hard = match it.next() {
        Some(h) => one(h)?,
        None => soft,
    };
    (it.next().is_none() && soft <= hard).then_some((soft, hard))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Request {
        Request {
            tty: true,
            kill_on_disconnect: true,
            rows: 24,
            cols: 80,
            user: "vcap".into(),
            lang: "en_US.UTF-8".into(),
            term: "xterm".into(),
            rlimits: vec![(9, 4096, 8192), (1, RLIM_UNLIMITED, RLIM_UNLIMITED)],
            argv: vec![b"/bin/sh".to_vec(), b"-c".to_vec(), b"echo hi".to_vec()],
        }
    }

    #[test]
    fn request_round_trip() {
        let r = sample();
        assert_eq!(decode_request(&encode_request(&r).unwrap()).unwrap(), r);
        let empty = Request::default();
        assert_eq!(
            decode_request(&encode_request(&empty).unwrap()).unwrap(),
            empty
        );
    }

    #[test]
    fn reply_round_trip() {
        for r in [
            Reply::Ready { pid: 42 },
            Reply::Exit {
                signaled: true,
                code: 9,
            },
            Reply::Error {
                status: 255,
                message: "unknown user 'bob'".into(),
            },
        ] {
            assert_eq!(decode_reply(&encode_reply(&r)).unwrap(), r);
        }
        // An ERROR's message: one line, cut at a character boundary.
        let long = format!("{}\u{e9}", "a".repeat(MAX_ERROR - 1));
        let e = Reply::Error {
            status: 1,
            message: format!("x\ny\0{long}"),
        };
        let Ok(Reply::Error { message, .. }) = decode_reply(&encode_reply(&e)) else {
            panic!("no ERROR back")
        };
        assert_eq!(message, format!("x y {}", "a".repeat(MAX_ERROR - 4)));
        let mut exit = encode_reply(&Reply::Exit {
            signaled: true,
            code: 9,
        });
        exit[5] = 2;
        assert_eq!(decode_reply(&exit), Err(ProtoError::Value("signaled", 2)));
    }

    #[test]
    fn every_truncation_is_rejected() {
        let b = encode_request(&sample()).unwrap();
        for n in 0..b.len() {
            assert!(decode_request(&b[..n]).is_err(), "prefix {n} accepted");
        }
        let mut long = b.clone();
        long.push(0);
        assert_eq!(decode_request(&long), Err(ProtoError::Trailing(1)));
    }

    #[test]
    fn bad_headers_and_fields() {
        let b = encode_request(&sample()).unwrap();
        let mut x = b.clone();
        x[0] = b'X';
        assert_eq!(decode_request(&x), Err(ProtoError::Magic));
        let mut x = b.clone();
        x[3] = 9;
        assert_eq!(decode_request(&x), Err(ProtoError::Version(9)));
        let mut x = b.clone();
        x[4] = 3;
        assert_eq!(decode_request(&x), Err(ProtoError::Kind(3)));
        let mut x = b.clone();
        x[5] = 0x80;
        assert_eq!(decode_request(&x), Err(ProtoError::Flags(0x80)));
        let mut r = sample();
        r.user = "x".repeat(33);
        assert_eq!(
            encode_request(&r),
            Err(ProtoError::TooLong("user", MAX_USER))
        );
        let mut r = sample();
        r.argv.push(b"a\0b".to_vec());
        assert_eq!(encode_request(&r), Err(ProtoError::Nul("argument")));
        let mut r = sample();
        r.rlimits = vec![(9, 1, 1), (9, 2, 2)];
        assert_eq!(encode_request(&r), Err(ProtoError::RlimitTwice("NOFILE")));
        r.rlimits = vec![(9, 1, 1), (8, u64::MAX, u64::MAX)];
        let mut enc = encode_request(&r).unwrap();
        let at = enc.windows(8).position(|w| w == [0xff; 8]).unwrap() - 1;
        enc[at] = 9;
        assert_eq!(decode_request(&enc), Err(ProtoError::RlimitTwice("NOFILE")));
        let mut r = sample();
        r.user = "\u{e9}".into();
        let mut x = encode_request(&r).unwrap();
        let at = x.windows(2).position(|w| w == [0xc3, 0xa9]).unwrap();
        x[at] = 0xff;
        assert_eq!(decode_request(&x), Err(ProtoError::Utf8("user")));
        r.rlimits = vec![(99, 1, 1)];
        assert_eq!(encode_request(&r), Err(ProtoError::Rlimit(99)));
        enc.clear();
        assert_eq!(decode_request(&enc), Err(ProtoError::Short));
    }

    #[test]
    fn oversize_is_rejected() {
        let mut r = sample();
        r.argv = vec![vec![b'a'; MAX_MSG]];
        assert_eq!(encode_request(&r), Err(ProtoError::Oversize));
        assert_eq!(
            decode_request(&vec![0u8; MAX_MSG + 1]),
            Err(ProtoError::Oversize)
        );
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        // xorshift: deterministic, no dependency.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let valid = encode_request(&sample()).unwrap();
        for round in 0..20_000 {
            let mut b = if round % 2 == 0 {
                let n = (next() % 300) as usize;
                (0..n).map(|_| next() as u8).collect::<Vec<u8>>()
            } else {
                let mut v = valid.clone();
                for _ in 0..(1 + next() % 4) {
                    let i = (next() as usize) % v.len();
                    v[i] = next() as u8;
                }
                v
            };
            if round % 3 == 0 {
                b.truncate((next() as usize) % (b.len() + 1));
            }
            let _ = decode_request(&b);
            let _ = decode_reply(&b);
        }
    }

    #[test]
    fn rlimit_values() {
        let both = |v| Some((v, v));
        assert_eq!(parse_rlimit_value("4096"), both(4096));
        assert_eq!(parse_rlimit_value(" unlimited "), both(RLIM_UNLIMITED));
        assert_eq!(parse_rlimit_value("100 200"), Some((100, 200)));
        assert_eq!(
            parse_rlimit_value("100\tunlimited"),
            Some((100, RLIM_UNLIMITED))
        );
        assert_eq!(parse_rlimit_value("-1 -1"), both(RLIM_UNLIMITED));
        for bad in ["x", "", "200 100", "1 2 3", "1 x", "unlimited 5"] {
            assert_eq!(parse_rlimit_value(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn equal_limits_keep_the_old_wire_form() {
        // soft == hard everywhere: flags bit 2 clear, one value per entry,
        // byte for byte what a wshd before bit 2 reads.
        let mut r = Request {
            rlimits: vec![(9, 256, 256)],
            ..Request::default()
        };
        let old = encode_request(&r).unwrap();
        assert_eq!(old[5] & 4, 0);
        r.rlimits = vec![(9, 256, 512)];
        let new = encode_request(&r).unwrap();
        assert_eq!((new[5] & 4, new.len()), (4, old.len() + 8));
        assert_eq!(decode_request(&new).unwrap(), r);
    }
}
