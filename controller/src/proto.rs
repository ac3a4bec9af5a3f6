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

use prost::Message as _;
use serde::Serialize;
use std::io::{self, BufRead, Read, Write};

/// Serializes job output (raw bytes) as a JSON string, invalid UTF-8
/// replaced by U+FFFD.
fn text<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_some(&String::from_utf8_lossy(b)),
        None => s.serialize_none(),
    }
}

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
        let n = r.read(&mut b)?;
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

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct ErrorResponse {
    #[prost(string, optional, tag = "2")]
    pub message: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub data: Option<String>,
    #[prost(string, repeated, tag = "3")]
    pub backtrace: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum BindMountMode {
    Ro = 0,
    Rw = 1,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct BindMount {
    #[prost(string, optional, tag = "1")]
    pub src_path: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub dst_path: Option<String>,
    #[prost(enumeration = "BindMountMode", optional, tag = "3")]
    pub mode: Option<i32>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct CreateRequest {
    #[prost(message, repeated, tag = "1")]
    pub bind_mounts: Vec<BindMount>,
    #[prost(uint32, optional, tag = "2")]
    pub grace_time: Option<u32>,
    #[prost(string, optional, tag = "3")]
    pub handle: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub network: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub rootfs: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct CreateResponse {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct StopRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(bool, optional, tag = "10")]
    pub background: Option<bool>,
    #[prost(bool, optional, tag = "20")]
    pub kill: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct StopResponse {}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct DestroyRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct DestroyResponse {}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct InfoRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct MemoryStat {
    #[prost(uint64, optional, tag = "1")]
    pub cache: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub rss: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub mapped_file: Option<u64>,
    #[prost(uint64, optional, tag = "4")]
    pub pgpgin: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    pub pgpgout: Option<u64>,
    #[prost(uint64, optional, tag = "6")]
    pub swap: Option<u64>,
    #[prost(uint64, optional, tag = "7")]
    pub pgfault: Option<u64>,
    #[prost(uint64, optional, tag = "8")]
    pub pgmajfault: Option<u64>,
    #[prost(uint64, optional, tag = "9")]
    pub inactive_anon: Option<u64>,
    #[prost(uint64, optional, tag = "10")]
    pub active_anon: Option<u64>,
    #[prost(uint64, optional, tag = "11")]
    pub inactive_file: Option<u64>,
    #[prost(uint64, optional, tag = "12")]
    pub active_file: Option<u64>,
    #[prost(uint64, optional, tag = "13")]
    pub unevictable: Option<u64>,
    #[prost(uint64, optional, tag = "14")]
    pub hierarchical_memory_limit: Option<u64>,
    #[prost(uint64, optional, tag = "15")]
    pub hierarchical_memsw_limit: Option<u64>,
    #[prost(uint64, optional, tag = "16")]
    pub total_cache: Option<u64>,
    #[prost(uint64, optional, tag = "17")]
    pub total_rss: Option<u64>,
    #[prost(uint64, optional, tag = "18")]
    pub total_mapped_file: Option<u64>,
    #[prost(uint64, optional, tag = "19")]
    pub total_pgpgin: Option<u64>,
    #[prost(uint64, optional, tag = "20")]
    pub total_pgpgout: Option<u64>,
    #[prost(uint64, optional, tag = "21")]
    pub total_swap: Option<u64>,
    #[prost(uint64, optional, tag = "22")]
    pub total_pgfault: Option<u64>,
    #[prost(uint64, optional, tag = "23")]
    pub total_pgmajfault: Option<u64>,
    #[prost(uint64, optional, tag = "24")]
    pub total_inactive_anon: Option<u64>,
    #[prost(uint64, optional, tag = "25")]
    pub total_active_anon: Option<u64>,
    #[prost(uint64, optional, tag = "26")]
    pub total_inactive_file: Option<u64>,
    #[prost(uint64, optional, tag = "27")]
    pub total_active_file: Option<u64>,
    #[prost(uint64, optional, tag = "28")]
    pub total_unevictable: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct CpuStat {
    #[prost(uint64, optional, tag = "1")]
    pub usage: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub user: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub system: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct DiskStat {
    #[prost(uint64, optional, tag = "1")]
    pub bytes_used: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub inodes_used: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct BandwidthStat {
    #[prost(uint64, optional, tag = "1")]
    pub in_rate: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub in_burst: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub out_rate: Option<u64>,
    #[prost(uint64, optional, tag = "4")]
    pub out_burst: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct InfoResponse {
    #[prost(string, optional, tag = "10")]
    pub state: Option<String>,
    #[prost(string, repeated, tag = "20")]
    pub events: Vec<String>,
    #[prost(string, optional, tag = "30")]
    pub host_ip: Option<String>,
    #[prost(string, optional, tag = "31")]
    pub container_ip: Option<String>,
    #[prost(string, optional, tag = "32")]
    pub container_path: Option<String>,
    #[prost(message, optional, tag = "40")]
    pub memory_stat: Option<MemoryStat>,
    #[prost(message, optional, tag = "41")]
    pub cpu_stat: Option<CpuStat>,
    #[prost(message, optional, tag = "42")]
    pub disk_stat: Option<DiskStat>,
    #[prost(message, optional, tag = "43")]
    pub bandwidth_stat: Option<BandwidthStat>,
    #[prost(uint64, repeated, packed = "false", tag = "44")]
    pub job_ids: Vec<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct ResourceLimits {
    #[prost(uint64, optional, tag = "1")]
    pub r#as: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub core: Option<u64>,
    #[prost(uint64, optional, tag = "3")]
    pub cpu: Option<u64>,
    #[prost(uint64, optional, tag = "4")]
    pub data: Option<u64>,
    #[prost(uint64, optional, tag = "5")]
    pub fsize: Option<u64>,
    #[prost(uint64, optional, tag = "6")]
    pub locks: Option<u64>,
    #[prost(uint64, optional, tag = "7")]
    pub memlock: Option<u64>,
    #[prost(uint64, optional, tag = "8")]
    pub msgqueue: Option<u64>,
    #[prost(uint64, optional, tag = "9")]
    pub nice: Option<u64>,
    #[prost(uint64, optional, tag = "10")]
    pub nofile: Option<u64>,
    #[prost(uint64, optional, tag = "11")]
    pub nproc: Option<u64>,
    #[prost(uint64, optional, tag = "12")]
    pub rss: Option<u64>,
    #[prost(uint64, optional, tag = "13")]
    pub rtprio: Option<u64>,
    #[prost(uint64, optional, tag = "14")]
    pub sigpending: Option<u64>,
    #[prost(uint64, optional, tag = "15")]
    pub stack: Option<u64>,
}

impl ResourceLimits {
    /// (lower-case name, value) of every field that is set.
    pub fn entries(&self) -> Vec<(&'static str, u64)> {
        let all = [
            ("as", self.r#as),
            ("core", self.core),
            ("cpu", self.cpu),
            ("data", self.data),
            ("fsize", self.fsize),
            ("locks", self.locks),
            ("memlock", self.memlock),
            ("msgqueue", self.msgqueue),
            ("nice", self.nice),
            ("nofile", self.nofile),
            ("nproc", self.nproc),
            ("rss", self.rss),
            ("rtprio", self.rtprio),
            ("sigpending", self.sigpending),
            ("stack", self.stack),
        ];
        all.into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect()
    }
}

/// The 15 rlimit names, in field order.
pub const RLIMIT_NAMES: [&str; 15] = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "sigpending",
    "stack",
];

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct SpawnRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub script: Option<String>,
    #[prost(bool, optional, tag = "3")]
    pub privileged: Option<bool>,
    #[prost(message, optional, tag = "4")]
    pub rlimits: Option<ResourceLimits>,
    #[prost(bool, optional, tag = "5")]
    pub discard_output: Option<bool>,
    #[prost(string, optional, tag = "6")]
    pub log_tag: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct SpawnResponse {
    #[prost(uint32, optional, tag = "1")]
    pub job_id: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LinkRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(uint32, optional, tag = "2")]
    pub job_id: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LinkResponse {
    #[prost(uint32, optional, tag = "1")]
    pub exit_status: Option<u32>,
    /// Job output: `string` in warden's .proto, carried as raw bytes (the
    /// wire encoding is the same) so binary output arrives unchanged, as
    /// warden sent it. `--json` prints it as (lossy) UTF-8 text.
    #[prost(bytes = "vec", optional, tag = "2")]
    #[serde(serialize_with = "text")]
    pub stdout: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    #[serde(serialize_with = "text")]
    pub stderr: Option<Vec<u8>>,
    #[prost(message, optional, tag = "4")]
    pub info: Option<InfoResponse>,
}

/// RunRequest has the same fields and numbers as SpawnRequest.
pub type RunRequest = SpawnRequest;
/// RunResponse has the same fields and numbers as LinkResponse.
pub type RunResponse = LinkResponse;

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct StreamRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(uint32, optional, tag = "2")]
    pub job_id: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct StreamResponse {
    #[prost(string, optional, tag = "1")]
    pub name: Option<String>,
    /// Raw output bytes (`string` in warden's .proto), see [`LinkResponse`].
    #[prost(bytes = "vec", optional, tag = "2")]
    #[serde(serialize_with = "text")]
    pub data: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "3")]
    pub exit_status: Option<u32>,
    #[prost(message, optional, tag = "4")]
    pub info: Option<InfoResponse>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct NetInRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(uint32, optional, tag = "3")]
    pub host_port: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub container_port: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct NetInResponse {
    #[prost(uint32, optional, tag = "1")]
    pub host_port: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pub container_port: Option<u32>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct NetOutRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub network: Option<String>,
    #[prost(uint32, optional, tag = "3")]
    pub port: Option<u32>,
    #[prost(string, optional, tag = "4")]
    pub port_range: Option<String>,
    #[prost(int32, optional, tag = "5")]
    pub protocol: Option<i32>,
    #[prost(int32, optional, tag = "6")]
    pub icmp_type: Option<i32>,
    #[prost(int32, optional, tag = "7")]
    pub icmp_code: Option<i32>,
    #[prost(bool, optional, tag = "8")]
    pub log: Option<bool>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct CopyInRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub src_path: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub dst_path: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct CopyInResponse {}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct CopyOutRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(string, optional, tag = "2")]
    pub src_path: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub dst_path: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub owner: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct CopyOutResponse {}

/// The only field every Limit* request shares: the handle.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct HandleOnly {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct PingRequest {}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct PingResponse {}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct ListRequest {}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct ListResponse {
    #[prost(string, repeated, tag = "1")]
    pub handles: Vec<String>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct EchoRequest {
    #[prost(string, optional, tag = "1")]
    pub message: Option<String>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct EchoResponse {
    #[prost(string, optional, tag = "1")]
    pub message: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

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
