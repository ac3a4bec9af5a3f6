//! The message structs of warden protocol v1 (prost derive, proto2 field
//! numbers as in warden-protocol's `pb/*.proto`); see the module above
//! for the framing and the `Message` envelope.

use serde::Serialize;

/// Serializes job output (raw bytes) as a JSON string, invalid UTF-8
/// replaced by U+FFFD.
fn text<S: serde::Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(b) => s.serialize_some(&String::from_utf8_lossy(b)),
        None => s.serialize_none(),
    }
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

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitMemoryRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(uint64, optional, tag = "2")]
    pub limit_in_bytes: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitMemoryResponse {
    #[prost(uint64, optional, tag = "1")]
    pub limit_in_bytes: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitCpuRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(uint64, optional, tag = "2")]
    pub limit_in_shares: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitCpuResponse {
    #[prost(uint64, optional, tag = "1")]
    pub limit_in_shares: Option<u64>,
}

/// warden's LimitDiskRequest: `*_limit` and the bare name are aliases of
/// `*_hard`; blocks are 1 KiB (the quota block size warden used).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitDiskRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    #[prost(uint64, optional, tag = "10")]
    pub block_limit: Option<u64>,
    #[prost(uint64, optional, tag = "11")]
    pub block: Option<u64>,
    #[prost(uint64, optional, tag = "12")]
    pub block_soft: Option<u64>,
    #[prost(uint64, optional, tag = "13")]
    pub block_hard: Option<u64>,
    #[prost(uint64, optional, tag = "20")]
    pub inode_limit: Option<u64>,
    #[prost(uint64, optional, tag = "21")]
    pub inode: Option<u64>,
    #[prost(uint64, optional, tag = "22")]
    pub inode_soft: Option<u64>,
    #[prost(uint64, optional, tag = "23")]
    pub inode_hard: Option<u64>,
    #[prost(uint64, optional, tag = "30")]
    pub byte_limit: Option<u64>,
    #[prost(uint64, optional, tag = "31")]
    pub byte: Option<u64>,
    #[prost(uint64, optional, tag = "32")]
    pub byte_soft: Option<u64>,
    #[prost(uint64, optional, tag = "33")]
    pub byte_hard: Option<u64>,
}

/// warden's LimitDiskResponse (the request's fields without the handle).
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitDiskResponse {
    #[prost(uint64, optional, tag = "10")]
    pub block_limit: Option<u64>,
    #[prost(uint64, optional, tag = "11")]
    pub block: Option<u64>,
    #[prost(uint64, optional, tag = "12")]
    pub block_soft: Option<u64>,
    #[prost(uint64, optional, tag = "13")]
    pub block_hard: Option<u64>,
    #[prost(uint64, optional, tag = "20")]
    pub inode_limit: Option<u64>,
    #[prost(uint64, optional, tag = "21")]
    pub inode: Option<u64>,
    #[prost(uint64, optional, tag = "22")]
    pub inode_soft: Option<u64>,
    #[prost(uint64, optional, tag = "23")]
    pub inode_hard: Option<u64>,
    #[prost(uint64, optional, tag = "30")]
    pub byte_limit: Option<u64>,
    #[prost(uint64, optional, tag = "31")]
    pub byte: Option<u64>,
    #[prost(uint64, optional, tag = "32")]
    pub byte_soft: Option<u64>,
    #[prost(uint64, optional, tag = "33")]
    pub byte_hard: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct NetOutResponse {}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitBandwidthRequest {
    #[prost(string, optional, tag = "1")]
    pub handle: Option<String>,
    /// Bytes per second.
    #[prost(uint64, optional, tag = "2")]
    pub rate: Option<u64>,
    /// Bytes.
    #[prost(uint64, optional, tag = "3")]
    pub burst: Option<u64>,
}

#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct LimitBandwidthResponse {
    #[prost(uint64, optional, tag = "1")]
    pub rate: Option<u64>,
    #[prost(uint64, optional, tag = "2")]
    pub burst: Option<u64>,
}

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
