//! warden protocol v1: message structs (prost derive, proto2 field numbers)
//! and the framing used on the unix socket.
//!
//! # Framing
//!
//! Each frame, in both directions, is
//!
//! ```text
//! <decimal length of PAYLOAD>\r\n<PAYLOAD>\r\n
//! ```
//!
//! where PAYLOAD is an encoded [`Message`] envelope (`type` = 1, `payload` =
//! 2). The length line holds at most [`MAX_LEN_DIGITS`] ASCII digits and the
//! payload at most [`MAX_FRAME`] bytes (16 MiB); both bounds are enforced
//! before any buffer for the payload is allocated, which then grows only as
//! bytes arrive. A frame that breaks them is a [`FrameError`] for that
//! connection only. The server reads requests with tighter, per-type
//! bounds (`crate::conn`).
//!
//! The server decodes request payloads with [`decode_request`], which refuses
//! a message of more than [`MAX_FIELDS`] fields before decoding it, so the
//! memory a request costs stays proportional to its size.
//!
//! # Messages
//!
//! Field numbers and labels follow warden-protocol's `pb/*.proto` exactly.
//! proto2 `required` fields are declared `optional` here so that a missing
//! one can be detected: the server checks them with [`crate::error::required`] and answers
//! "<Message>.<field> is required" when one is absent. Encoding a `Some`
//! value is byte-identical to encoding a proto2 required field.

mod messages;
pub use messages::*;

use prost::Message as _;
use serde::Serialize;
use std::io::{self, BufRead, Read, Write};

/// Largest payload accepted in one frame (16 MiB).
pub const MAX_FRAME: usize = 16 << 20;
/// Most digits accepted in the length line.
pub const MAX_LEN_DIGITS: usize = 10;
/// The payload buffer of a frame starts at (at most) this size and then
/// doubles as bytes arrive.
pub const READ_CHUNK: usize = 8 << 10;
/// Most fields in one request message (counting each entry of a repeated
/// field; `CreateRequest.bind_mounts` is the only repeated field of any
/// request). Each decoded entry costs a struct several times larger than its
/// two-byte encoding, so an unbounded count would let one 16 MiB frame cost
/// the server about a gigabyte.
pub const MAX_FIELDS: usize = 1024;

/// Errors of framing and decoding.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Eof,
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("bad frame length line")]
    BadLength,
    #[error("frame of {0} bytes exceeds the maximum of {1} bytes")]
    TooLarge(usize, usize),
    #[error("{2}Request frame of {0} bytes exceeds the maximum of {1} bytes")]
    TooLargeFor(usize, usize, &'static str),
    #[error("server busy: a request of {0} bytes does not fit in what all connections may be sending at once ({1} bytes, server.max_buffered_bytes); try again")]
    Busy(usize, usize),
    #[error("request frame not received within {0} s (server.request_timeout)")]
    Timeout(u64),
    #[error("frame not terminated by CRLF")]
    BadTrailer,
    #[error("undecodable message: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Why [`decode_request`] refused a payload.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error(transparent)]
    Decode(#[from] prost::DecodeError),
    #[error("message has more than {MAX_FIELDS} fields")]
    TooManyFields,
}

/// Reads one frame's payload. `Eof` only when the stream ends cleanly
/// before a frame starts.
pub fn read_frame<R: BufRead>(r: &mut R) -> Result<Vec<u8>, FrameError> {
    let mut line = Vec::with_capacity(12);
    loop {
        let mut b = [0u8; 1];
        // EINTR is retried: with SO_RCVTIMEO set (clients with a timeout), a
        // stop and continue of the process interrupts the read without any
        // signal handler (signal(7)).
        let n = match r.read(&mut b) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            n => n?,
        };
        if n == 0 {
            if line.is_empty() {
                return Err(FrameError::Eof);
            }
            return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
        if line.len() > MAX_LEN_DIGITS + 1 {
            return Err(FrameError::BadLength);
        }
    }
    if line.last() != Some(&b'\r') {
        return Err(FrameError::BadLength);
    }
    line.pop();
    if line.is_empty() || !line.iter().all(u8::is_ascii_digit) {
        return Err(FrameError::BadLength);
    }
    let len: usize = std::str::from_utf8(&line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(FrameError::BadLength)?;
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len, MAX_FRAME));
    }
    // Grows as the bytes arrive, never to the declared length up front.
    let mut buf = Vec::new();
    r.by_ref().take(len as u64 + 2).read_to_end(&mut buf)?;
    if buf.len() < len + 2 {
        return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    if &buf[len..] != b"\r\n" {
        return Err(FrameError::BadTrailer);
    }
    buf.truncate(len);
    Ok(buf)
}

/// Writes one frame holding `payload`.
pub fn write_frame<W: Write>(w: &mut W, payload: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(payload.len() + 16);
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    w.write_all(&out)?;
    w.flush()
}

/// Writes a typed message wrapped in the envelope.
pub fn write_message<W: Write, M: prost::Message>(w: &mut W, ty: Type, m: &M) -> io::Result<()> {
    let env = Message {
        r#type: Some(ty as i32),
        payload: Some(m.encode_to_vec()),
    };
    write_frame(w, &env.encode_to_vec())
}

/// Reads one envelope.
pub fn read_message<R: BufRead>(r: &mut R) -> Result<Message, FrameError> {
    let buf = read_frame(r)?;
    Ok(Message::decode(buf.as_slice())?)
}

/// Decodes a request payload as the server does: [`PayloadError::TooManyFields`]
/// when it holds more than [`MAX_FIELDS`] top-level fields (counted before
/// anything is decoded), else `M::decode`.
pub fn decode_request<M: prost::Message + Default>(p: &[u8]) -> Result<M, PayloadError> {
    if count_fields(p) > MAX_FIELDS {
        return Err(PayloadError::TooManyFields);
    }
    Ok(M::decode(p)?)
}

/// Number of top-level fields in an encoded message, counted up to
/// `MAX_FIELDS + 1`; a malformed tail ends the count (decoding then
/// reports it).
fn count_fields(mut b: &[u8]) -> usize {
    use prost::encoding::decode_varint;
    let mut n = 0;
    while !b.is_empty() && n <= MAX_FIELDS {
        n += 1;
        let Ok(key) = decode_varint(&mut b) else {
            break;
        };
        let skip = match key & 7 {
            0 => match decode_varint(&mut b) {
                Ok(_) => 0,
                Err(_) => break,
            },
            1 => 8,
            2 => match decode_varint(&mut b) {
                Ok(l) => usize::try_from(l).unwrap_or(usize::MAX),
                Err(_) => break,
            },
            5 => 4,
            _ => break,
        };
        if skip > b.len() {
            break;
        }
        b = &b[skip..];
    }
    n
}

/// `Message.Type` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Type {
    Error = 1,
    Create = 11,
    Stop = 12,
    Destroy = 13,
    Info = 14,
    Spawn = 21,
    Link = 22,
    Run = 23,
    Stream = 24,
    NetIn = 31,
    NetOut = 32,
    CopyIn = 41,
    CopyOut = 42,
    LimitMemory = 51,
    LimitDisk = 52,
    LimitBandwidth = 53,
    LimitCpu = 54,
    Ping = 91,
    List = 92,
    Echo = 93,
}

impl Type {
    /// The message name without the Request/Response suffix, as warden's
    /// error strings use it.
    pub fn name(self) -> &'static str {
        match self {
            Type::Error => "Error",
            Type::Create => "Create",
            Type::Stop => "Stop",
            Type::Destroy => "Destroy",
            Type::Info => "Info",
            Type::Spawn => "Spawn",
            Type::Link => "Link",
            Type::Run => "Run",
            Type::Stream => "Stream",
            Type::NetIn => "NetIn",
            Type::NetOut => "NetOut",
            Type::CopyIn => "CopyIn",
            Type::CopyOut => "CopyOut",
            Type::LimitMemory => "LimitMemory",
            Type::LimitDisk => "LimitDisk",
            Type::LimitBandwidth => "LimitBandwidth",
            Type::LimitCpu => "LimitCpu",
            Type::Ping => "Ping",
            Type::List => "List",
            Type::Echo => "Echo",
        }
    }
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Message {
    #[prost(enumeration = "Type", optional, tag = "1")]
    pub r#type: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub payload: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// A reader whose every other read fails with EINTR.
    struct Interrupting {
        inner: Cursor<Vec<u8>>,
        flip: bool,
    }

    impl io::Read for Interrupting {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            self.flip = !self.flip;
            if self.flip {
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.inner.read(b)
        }
    }

    #[test]
    fn interrupted_reads_are_retried() {
        let mut out = Vec::new();
        let m = EchoRequest {
            message: Some("hi".into()),
        };
        write_message(&mut out, Type::Echo, &m).unwrap();
        let inner = Interrupting {
            inner: Cursor::new(out),
            flip: false,
        };
        let mut r = io::BufReader::with_capacity(1, inner);
        let got = read_message(&mut r).unwrap();
        assert_eq!(got.r#type, Some(Type::Echo as i32));
    }

    #[test]
    fn frame_roundtrip() {
        let mut out = Vec::new();
        write_message(
            &mut out,
            Type::Echo,
            &EchoRequest {
                message: Some("hi".into()),
            },
        )
        .unwrap();
        assert!(out.ends_with(b"\r\n"));
        let mut r = Cursor::new(out);
        let m = read_message(&mut r).unwrap();
        assert_eq!(m.r#type, Some(Type::Echo as i32));
        let e = EchoRequest::decode(m.payload.unwrap().as_slice()).unwrap();
        assert_eq!(e.message.as_deref(), Some("hi"));
        assert!(matches!(read_frame(&mut r), Err(FrameError::Eof)));
    }

    #[test]
    fn frame_rejects_bad_input() {
        let mut r = Cursor::new(b"abc\r\nxyz\r\n".to_vec());
        assert!(matches!(read_frame(&mut r), Err(FrameError::BadLength)));
        let mut r = Cursor::new(b"99999999999999\r\n".to_vec());
        assert!(matches!(read_frame(&mut r), Err(FrameError::BadLength)));
        let mut r = Cursor::new(format!("{}\r\n", MAX_FRAME + 1).into_bytes());
        assert!(matches!(
            read_frame(&mut r),
            Err(FrameError::TooLarge(_, MAX_FRAME))
        ));
        let mut r = Cursor::new(b"3\r\nabcXY".to_vec());
        assert!(matches!(read_frame(&mut r), Err(FrameError::BadTrailer)));
        let mut r = Cursor::new(b"3\nabc\r\n".to_vec());
        assert!(matches!(read_frame(&mut r), Err(FrameError::BadLength)));
        let mut r = Cursor::new(b"10\r\nabc".to_vec());
        assert!(matches!(read_frame(&mut r), Err(FrameError::Io(_))));
    }

    #[test]
    fn field_numbers_match_warden() {
        // NetInRequest: host_port is 3, container_port is 2.
        let m = NetInRequest {
            handle: Some("h".into()),
            host_port: Some(1),
            container_port: Some(2),
        };
        assert_eq!(m.encode_to_vec(), vec![0x0a, 1, b'h', 0x10, 2, 0x18, 1]);
        // StopRequest: background 10, kill 20.
        let s = StopRequest {
            handle: None,
            background: Some(true),
            kill: Some(true),
        };
        assert_eq!(s.encode_to_vec(), vec![0x50, 1, 0xa0, 0x01, 1]);
        // InfoResponse.job_ids is an unpacked repeated uint64 at 44.
        let i = InfoResponse {
            job_ids: vec![7],
            ..Default::default()
        };
        assert_eq!(i.encode_to_vec(), vec![0xe0, 0x02, 7]);
    }
}
