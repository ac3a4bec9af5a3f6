//! Server configuration: warden's YAML config file (`server`, `network`,
//! `port`, `user`, `logging` sections) with warden's defaults, plus our
//! extensions `server.resource_prefix`, `server.scripts_path`,
//! `server.bin_path` and `server.container_root_capabilities`.
//!
//! Format: a YAML mapping of sections; each known key is checked for its
//! type and range, and a bad value is an error naming `section.key`.
//! Unknown sections and keys are logged as warnings and ignored (warden
//! configs carry many keys this server does not use). Integers written with
//! a leading zero (`unix_domain_permissions: 0755`) are octal, as YAML 1.1
//! and Ruby read them.
//!
//! Defaults that differ from warden's:
//! - `server.unix_domain_path`: [`DEFAULT_SOCKET`] (`/run/warden/warden.sock`;
//!   warden's was `/tmp/warden.sock`). Its parent directory is created
//!   (0755) if missing; the socket gets `unix_domain_permissions`
//!   atomically (see `server::listen`).
//!
//! Keys of ours that bound what clients can make the server hold (see
//! `crate::conn`; with the defaults, requests being received take at most
//! about 512 x 12 KiB + 16 MiB):
//! - `server.max_connections` (default 512, 1..65536): connections served
//!   at once; one more gets the error "too many connections" and is closed
//!   at once (one warning line a second at most is logged), the others are
//!   not affected. Each connection is a thread and may hold a link or
//!   stream open for as long as its job runs, so size it for the clients'
//!   concurrent links.
//! - `server.max_request_bytes` (default 1048576, 16384..16777216): the
//!   largest Spawn or Run request frame (it carries the script). Create and
//!   Echo frames may have 64 KiB, every other request 16 KiB.
//! - `server.max_buffered_bytes` (default 16777216, at least
//!   `max_request_bytes`): the bytes of request frames over 4 KiB that all
//!   connections together may be receiving at once; a request that does
//!   not fit is answered "server busy" and its connection closed.
//! - `server.request_timeout` (seconds, default 30, 1..3600): once a
//!   request frame has started to arrive, the whole of it must arrive
//!   within this time, or the connection is closed. Idle connections
//!   (between requests) are never timed out.
//! - `server.copy_idle_timeout` (seconds, default 120, 1..86400): a
//!   copy_in or copy_out whose stream moves no byte for this long is ended
//!   (its `wsh`, and with it the copy inside the container, killed) and
//!   fails.
//!
//! Health check and metrics (`crate::health`): `health_check_server.port`
//! (1..65535, or 0 for any free port, logged at start) serves warden's HTTP
//! health check (`GET /`: 200, empty body) and Prometheus metrics
//! (`GET /metrics`) on `health_check_server.address` (ours; default
//! 127.0.0.1, as warden bound it). Without the section nothing listens
//! (warden always listened on 127.0.0.1:2345).
//!
//! Logging: `logging.level` is one of warden's (steno's) level names
//! [`LOG_LEVELS`] (default info); `logging.format` (ours) is `text`
//! (default: one line per record) or `json` (one JSON object per line with
//! steno's fields: timestamp, message, log_level, source, data, ...; see
//! `crate::logging`); `logging.file` (default: stderr).
//!
//! Defaults of the extensions:
//! - `container_root_capabilities`: unset, so root sessions (privileged
//!   jobs) hold wshd's default, [`DEFAULT_ROOT_CAPS`] (Docker's default set
//!   without NET_RAW and MKNOD; with `allow_nested_warden` every capability
//!   in [`GRANTABLE_CAPS`]). A list replaces that set for every container:
//!   names from [`GRANTABLE_CAPS`], `CAP_` optional, any case; `[]` for
//!   none. Capabilities that act on the whole host (SYS_MODULE, SYS_PTRACE,
//!   DAC_READ_SEARCH, SYS_TIME, ...) are refused. What an added capability
//!   widens: only what the kernel checks it for in the syscalls wshd's
//!   seccomp filter allows (NET_RAW: raw and packet sockets; NET_ADMIN: the
//!   container's own interfaces and routes; MKNOD: device nodes within the
//!   device cgroup; SYS_ADMIN: sethostname and the like, never mount,
//!   fanotify, bpf or namespaces). See `helpers/wshd/src/harden.rs`. Flows
//!   to the scripts as `root_capabilities` (comma-separated, or `none`).
//! - `resource_prefix`: `w`; must match `[a-z0-9]{1,6}`.
//! - `scripts_path`: `<dir of warden exe>/../share/warden/rootfs-scripts` if
//!   that directory exists, else the `rootfs-scripts/` directory of the
//!   source tree this binary was built from.
//! - `bin_path`: the directory of the running `warden` executable.
//! - `copy_max_bytes` (16 GiB) and `copy_max_entries` (1000000): what one
//!   copy_out accepts from a container (the tar stream's bytes, its entries);
//!   beyond either the copy fails and its partial output is removed. Each
//!   must be at least 1.

mod effective;
mod parse;
#[cfg(test)]
mod tests;

use serde_yaml_ng::{Mapping, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    /// The parser's message (not a `source`: printed once, not twice).
    #[error("config is not valid YAML: {0}")]
    Yaml(serde_yaml_ng::Error),
    #[error("config key {key}: {msg}")]
    Key { key: String, msg: String },
}

fn bad(key: &str, msg: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_string(),
        msg: msg.into(),
    }
}

/// An IPv4 network in CIDR form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    pub addr: u32,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn parse(s: &str) -> Option<Ipv4Net> {
        let (a, p) = s.split_once('/')?;
        let addr: Ipv4Addr = a.trim().parse().ok()?;
        let prefix: u8 = p.trim().parse().ok()?;
        if prefix > 32 {
            return None;
        }
        let mask = Self::mask_of(prefix);
        Some(Ipv4Net {
            addr: u32::from(addr) & mask,
            prefix,
        })
    }
    pub fn mask_of(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.addr), self.prefix)
    }
}

/// Default `server.unix_domain_path` (warden's was `/tmp/warden.sock`, in
/// a world-writable directory).
pub const DEFAULT_SOCKET: &str = "/run/warden/warden.sock";

/// The config `warden server`, `warden clear` and `warden check-config`
/// read when given no `--config` (`make install` puts etc/warden.yml there).
pub const DEFAULT_CONFIG: &str = "/etc/warden/warden.yml";

/// `logging.level` values: warden's (steno's) level names, least to most
/// verbose. `fatal` logs what `error` does (nothing here logs at fatal);
/// `debug1`, `debug2` and `all` log everything.
pub const LOG_LEVELS: &[&str] = &[
    "off", "fatal", "error", "warn", "info", "debug", "debug1", "debug2", "all",
];

/// `logging.format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `TIMESTAMP LEVEL MESSAGE [key=value...]`, one line per record.
    Text,
    /// One JSON object per line, steno's fields (see `crate::logging`).
    Json,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub unix_domain_path: PathBuf,
    pub unix_domain_permissions: u32,
    pub container_depot_path: PathBuf,
    pub container_rootfs_path: PathBuf,
    /// None: containers are never destroyed for idleness.
    pub container_grace_time: Option<u64>,
    pub container_rlimits: BTreeMap<String, u64>,
    pub job_output_limit: u64,
    /// `server.quota.disk_quota_enabled` (default true): each container
    /// gets its own ext4 image, whose size limit_disk sets
    /// (crate::limits::disk). false: no image, limit_disk answers nothing.
    pub disk_quota_enabled: bool,
    /// `server.quota.disk_image_size`: bytes of each container's disk image
    /// (sparse), the most limit_disk can grant. Default 4 GiB.
    pub disk_image_size: u64,
    /// `server.container_pids_limit`: pids.max of every container (tasks,
    /// threads included), set at create whatever the client asks. 0: no
    /// limit. Default 1024.
    pub container_pids_limit: u64,
    /// `server.container_memory_limit`: bytes; the memory limit every new
    /// container starts with (limit_memory may change it). Default none.
    pub container_memory_limit: Option<u64>,
    /// `server.container_disk_limit`: bytes; the disk limit every new
    /// container starts with when quotas are enabled (limit_disk may
    /// change it). Default none (the image's size).
    pub container_disk_limit: Option<u64>,
    pub allow_nested_warden: bool,
    /// Root sessions' capabilities, canonical names (`CAP_CHOWN`); None:
    /// wshd's default.
    pub container_root_capabilities: Option<Vec<String>>,
    pub pidfile: Option<PathBuf>,
    pub syslog_socket: Option<String>,
    pub resource_prefix: String,
    pub scripts_path: PathBuf,
    pub bin_path: PathBuf,
    /// Bounds on one copy_out stream (see [`crate::tarstream::Limits`]).
    pub copy_limits: crate::tarstream::Limits,
    pub max_connections: usize,
    pub max_request_bytes: usize,
    pub max_buffered_bytes: usize,
    pub request_timeout: Duration,
    /// A copy whose stream is idle this long is ended (server.copy_idle_timeout).
    pub copy_idle_timeout: Duration,
    /// One of [`LOG_LEVELS`].
    pub log_level: String,
    pub log_file: Option<PathBuf>,
    pub log_format: LogFormat,
    /// `health_check_server.port`: None (no section) serves nothing; 0
    /// takes any free port.
    pub health_check_port: Option<u16>,
    /// `health_check_server.address`: where the health check listens.
    pub health_check_address: std::net::IpAddr,
    pub pool_network: Ipv4Net,
    pub release_delay: Duration,
    pub mtu: u32,
    pub allow_networks: Vec<String>,
    /// `network.deny_networks`: CIDRs (or addresses) whose traffic from
    /// containers is dropped without a reply, unless a net_out rule of the
    /// container or `allow_networks` allows it (warden's order); the rest
    /// of what is not allowed is rejected (ICMP admin-prohibited).
    pub deny_networks: Vec<String>,
    pub allow_host_access: bool,
    pub dns_servers: Vec<String>,
    pub port_start: u32,
    pub port_size: u32,
    pub uid_start: u32,
    pub uid_size: u32,
    /// Unknown keys and ignored settings, to be logged once logging is up.
    pub warnings: Vec<String>,
}

/// Largest `network.release_delay`, in seconds (one day).
pub const MAX_RELEASE_DELAY: u64 = 86_400;
/// Largest `user.pool_size` (the network pool's largest size too).
pub const MAX_UID_POOL: u32 = 1 << 20;
/// Capabilities `server.container_root_capabilities` may name: every one
/// but those acting on the whole host (wshd's `harden::HOST_CAPS`).
pub const GRANTABLE_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_CHROOT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
];

/// Capabilities that act on the whole host: never granted.
pub const HOST_CAPS: &[&str] = &[
    "CAP_DAC_READ_SEARCH",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_BOOT",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_AUDIT_CONTROL",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Root sessions' capabilities when `container_root_capabilities` is unset
/// (wshd's `harden::DEFAULT_ROOT_CAPS`).
pub const DEFAULT_ROOT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_AUDIT_WRITE",
    "CAP_SETFCAP",
];
fn ephemeral_end() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        .unwrap_or(61000)
}

fn default_scripts_path() -> PathBuf {
    if let Some(d) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let p = d.join("../share/warden/rootfs-scripts");
        if p.is_dir() {
            return p;
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rootfs-scripts")
}

fn default_bin_path() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin"))
}

impl Default for Config {
    fn default() -> Self {
        let start = ephemeral_end() + 1;
        Config {
            unix_domain_path: PathBuf::from(DEFAULT_SOCKET),
            unix_domain_permissions: 0o755,
            container_depot_path: PathBuf::from("/tmp/warden/containers"),
            container_rootfs_path: PathBuf::from("/tmp/warden/rootfs"),
            container_grace_time: Some(300),
            container_rlimits: BTreeMap::new(),
            job_output_limit: 10 * 1024 * 1024,
            disk_quota_enabled: true,
            disk_image_size: 4 << 30,
            container_pids_limit: 1024,
            container_memory_limit: None,
            container_disk_limit: None,
            allow_nested_warden: false,
            container_root_capabilities: None,
            pidfile: None,
            syslog_socket: None,
            resource_prefix: "w".into(),
            scripts_path: default_scripts_path(),
            bin_path: default_bin_path(),
            copy_limits: crate::tarstream::Limits::default(),
            max_connections: 512,
            max_request_bytes: 1 << 20,
            max_buffered_bytes: 16 << 20,
            request_timeout: Duration::from_secs(30),
            copy_idle_timeout: Duration::from_secs(120),
            log_level: "info".into(),
            log_file: None,
            log_format: LogFormat::Text,
            health_check_port: None,
            health_check_address: std::net::IpAddr::V4(Ipv4Addr::LOCALHOST),
            pool_network: Ipv4Net::parse("10.254.0.0/24").expect("valid default"),
            release_delay: Duration::from_secs(5),
            mtu: 1500,
            allow_networks: vec![],
            deny_networks: vec![],
            allow_host_access: false,
            dns_servers: vec![],
            port_start: start,
            port_size: 65001u32.saturating_sub(start),
            uid_start: 10000,
            uid_size: 64,
            warnings: vec![],
        }
    }
}

impl Config {
    /// Checks the paths a server needs (not needed by `clear`).
    pub fn check_paths(&self) -> Result<(), ConfigError> {
        if !self.container_rootfs_path.is_dir() {
            return Err(bad(
                "server.container_rootfs_path",
                format!(
                    "{} is not a directory",
                    self.container_rootfs_path.display()
                ),
            ));
        }
        if !self.scripts_path.join("create.sh").is_file() {
            return Err(bad(
                "server.scripts_path",
                format!("{} has no create.sh", self.scripts_path.display()),
            ));
        }
        if !self.bin_path.join("wshd").is_file() {
            return Err(bad(
                "server.bin_path",
                format!("{} has no wshd", self.bin_path.display()),
            ));
        }
        Ok(())
    }
}
