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

/// `server.container_root_capabilities`: canonical, deduplicated names.
fn root_capabilities(key: &str, v: &Value) -> Result<Option<Vec<String>>, ConfigError> {
    let names = match v {
        Value::Null => return Ok(None),
        Value::Sequence(_) => strings(key, v)?,
        _ => return Err(bad(key, "expected a list of capability names")),
    };
    let mut out: Vec<String> = Vec::new();
    for n in names {
        let up = n.trim().to_ascii_uppercase();
        let canon = if up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        if HOST_CAPS.contains(&canon.as_str()) {
            return Err(bad(
                key,
                format!("{canon} acts on the whole host and is never granted"),
            ));
        }
        if !GRANTABLE_CAPS.contains(&canon.as_str()) {
            return Err(bad(key, format!("unknown capability {n:?}")));
        }
        if !out.contains(&canon) {
            out.push(canon);
        }
    }
    Ok(Some(out))
}

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

fn int(key: &str, v: &Value) -> Result<u64, ConfigError> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| bad(key, "expected a non-negative integer")),
        Value::String(s) if s.len() > 1 && s.starts_with('0') => {
            let t = s.trim_start_matches("0o");
            u64::from_str_radix(t, 8).map_err(|_| bad(key, format!("bad octal integer {s:?}")))
        }
        _ => Err(bad(key, "expected a non-negative integer")),
    }
}

fn ranged(key: &str, v: &Value, lo: u64, hi: u64) -> Result<u64, ConfigError> {
    let n = int(key, v)?;
    if !(lo..=hi).contains(&n) {
        return Err(bad(key, format!("must be within {lo}..{hi}")));
    }
    Ok(n)
}

fn int32(key: &str, v: &Value) -> Result<u32, ConfigError> {
    u32::try_from(int(key, v)?).map_err(|_| bad(key, "integer out of range"))
}

fn boolean(key: &str, v: &Value) -> Result<bool, ConfigError> {
    v.as_bool()
        .ok_or_else(|| bad(key, "expected true or false"))
}

fn string(key: &str, v: &Value) -> Result<String, ConfigError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => Err(bad(key, "expected a string")),
    }
}

fn opt_string(key: &str, v: &Value) -> Result<Option<String>, ConfigError> {
    match v {
        Value::Null => Ok(None),
        _ => string(key, v).map(Some),
    }
}

fn strings(key: &str, v: &Value) -> Result<Vec<String>, ConfigError> {
    match v {
        Value::Null => Ok(vec![]),
        Value::Sequence(s) => s
            .iter()
            .filter(|x| !x.is_null())
            .map(|x| string(key, x))
            .collect(),
        _ => Err(bad(key, "expected a list of strings")),
    }
}

fn section<'a>(root: &'a Mapping, name: &str) -> Result<Option<&'a Mapping>, ConfigError> {
    match root.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Mapping(m)) => Ok(Some(m)),
        Some(_) => Err(bad(name, "expected a mapping")),
    }
}

fn keys(m: &Mapping) -> impl Iterator<Item = (String, &Value)> {
    m.iter().map(|(k, v)| {
        (
            k.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{k:?}")),
            v,
        )
    })
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.to_path_buf(),
            err,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let root: Value = serde_yaml_ng::from_str(text).map_err(ConfigError::Yaml)?;
        let root = match root {
            Value::Mapping(m) => m,
            Value::Null => Mapping::new(),
            _ => return Err(bad("(top level)", "expected a mapping of sections")),
        };
        let mut c = Config::default();
        for (k, _) in keys(&root) {
            if ![
                "server",
                "network",
                "port",
                "user",
                "logging",
                "health_check_server",
            ]
            .contains(&k.as_str())
            {
                c.warnings.push(format!("ignoring unknown section {k}"));
            }
        }
        if let Some(s) = section(&root, "health_check_server")? {
            for (k, v) in keys(s) {
                let key = format!("health_check_server.{k}");
                match k.as_str() {
                    "port" => c.health_check_port = Some(ranged(&key, v, 0, 65535)? as u16),
                    "address" => {
                        let t = string(&key, v)?;
                        c.health_check_address = t
                            .parse()
                            .map_err(|_| bad(&key, format!("bad address {t:?}")))?;
                    }
                    _ => c.warnings.push(format!("ignoring unknown key {key}")),
                }
            }
        }
        if let Some(s) = section(&root, "server")? {
            for (k, v) in keys(s) {
                let key = format!("server.{k}");
                match k.as_str() {
                    "unix_domain_path" => c.unix_domain_path = string(&key, v)?.into(),
                    "unix_domain_permissions" => {
                        let p = int32(&key, v)?;
                        if p > 0o7777 {
                            return Err(bad(&key, "permissions above 07777"));
                        }
                        c.unix_domain_permissions = p;
                    }
                    "container_depot_path" => c.container_depot_path = string(&key, v)?.into(),
                    "container_rootfs_path" => c.container_rootfs_path = string(&key, v)?.into(),
                    "container_grace_time" => {
                        c.container_grace_time = match v {
                            Value::Null => None,
                            _ => Some(int(&key, v)?),
                        }
                    }
                    "container_rlimits" => {
                        let m = match v {
                            Value::Null => Mapping::new(),
                            Value::Mapping(m) => m.clone(),
                            _ => return Err(bad(&key, "expected a mapping")),
                        };
                        for (rk, rv) in keys(&m) {
                            let rkey = format!("{key}.{rk}");
                            if !crate::proto::RLIMIT_NAMES.contains(&rk.as_str()) {
                                return Err(bad(&rkey, "unknown resource limit"));
                            }
                            c.container_rlimits.insert(rk, int(&rkey, rv)?);
                        }
                    }
                    "job_output_limit" => c.job_output_limit = int(&key, v)?,
                    "container_pids_limit" => c.container_pids_limit = int(&key, v)?,
                    "container_memory_limit" => {
                        c.container_memory_limit = if v.is_null() {
                            None
                        } else {
                            Some(int(&key, v)?)
                        }
                    }
                    "container_disk_limit" => {
                        c.container_disk_limit = if v.is_null() {
                            None
                        } else {
                            Some(int(&key, v)?)
                        }
                    }
                    "quota" => {
                        if let Value::Mapping(q) = v {
                            if let Some(d) = q.get("disk_quota_enabled") {
                                c.disk_quota_enabled =
                                    boolean("server.quota.disk_quota_enabled", d)?;
                            }
                            if let Some(d) = q.get("disk_image_size") {
                                let k = "server.quota.disk_image_size";
                                c.disk_image_size = int(k, d)?;
                                if c.disk_image_size < 1 << 20 {
                                    return Err(bad(k, "must be at least 1048576 (1 MiB)"));
                                }
                            }
                        } else if !v.is_null() {
                            return Err(bad(&key, "expected a mapping"));
                        }
                    }
                    "allow_nested_warden" => c.allow_nested_warden = boolean(&key, v)?,
                    "container_root_capabilities" => {
                        c.container_root_capabilities = root_capabilities(&key, v)?
                    }
                    "pidfile" => c.pidfile = opt_string(&key, v)?.map(PathBuf::from),
                    "syslog_socket" => c.syslog_socket = opt_string(&key, v)?,
                    "resource_prefix" => {
                        let p = string(&key, v)?;
                        if p.is_empty()
                            || p.len() > 6
                            || !p
                                .bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                        {
                            return Err(bad(&key, "must match [a-z0-9]{1,6}"));
                        }
                        c.resource_prefix = p;
                    }
                    "max_connections" => {
                        c.max_connections = ranged(&key, v, 1, 65536)? as usize;
                    }
                    "max_request_bytes" => {
                        c.max_request_bytes = ranged(&key, v, 16 << 10, 16 << 20)? as usize;
                    }
                    "max_buffered_bytes" => {
                        c.max_buffered_bytes = ranged(&key, v, 16 << 10, 1 << 32)? as usize;
                    }
                    "request_timeout" => {
                        c.request_timeout = Duration::from_secs(ranged(&key, v, 1, 3600)?);
                    }
                    "copy_idle_timeout" => {
                        c.copy_idle_timeout = Duration::from_secs(ranged(&key, v, 1, 86400)?);
                    }
                    "scripts_path" => c.scripts_path = string(&key, v)?.into(),
                    "bin_path" => c.bin_path = string(&key, v)?.into(),
                    "copy_max_bytes" | "copy_max_entries" => {
                        let n = int(&key, v)?;
                        if n == 0 {
                            return Err(bad(&key, "must be at least 1"));
                        }
                        if k == "copy_max_bytes" {
                            c.copy_limits.max_bytes = n;
                        } else {
                            c.copy_limits.max_entries = n;
                        }
                    }
                    _ => c.warnings.push(format!("ignoring unknown key {key}")),
                }
            }
        }
        if c.max_buffered_bytes < c.max_request_bytes {
            return Err(bad(
                "server.max_buffered_bytes",
                format!(
                    "{} is less than server.max_request_bytes ({})",
                    c.max_buffered_bytes, c.max_request_bytes
                ),
            ));
        }
        if let Some(s) = section(&root, "logging")? {
            for (k, v) in keys(s) {
                let key = format!("logging.{k}");
                match k.as_str() {
                    "level" => {
                        let l = string(&key, v)?;
                        if !LOG_LEVELS.contains(&l.as_str()) {
                            return Err(bad(
                                &key,
                                format!("unknown level {l:?} (one of {})", LOG_LEVELS.join(", ")),
                            ));
                        }
                        c.log_level = l;
                    }
                    "format" => {
                        c.log_format = match string(&key, v)?.as_str() {
                            "text" => LogFormat::Text,
                            "json" => LogFormat::Json,
                            f => return Err(bad(&key, format!("{f:?} is not text or json"))),
                        }
                    }
                    "file" => c.log_file = opt_string(&key, v)?.map(PathBuf::from),
                    _ => c.warnings.push(format!("ignoring unknown key {key}")),
                }
            }
        }
        if let Some(s) = section(&root, "network")? {
            let mut start_addr: Option<(String, Ipv4Addr)> = None;
            let mut pool_size: Option<u64> = None;
            for (k, v) in keys(s) {
                let key = format!("network.{k}");
                match k.as_str() {
                    "pool_network" => {
                        let t = string(&key, v)?;
                        c.pool_network = Ipv4Net::parse(&t).ok_or_else(|| {
                            bad(&key, format!("bad network {t:?} (want a.b.c.d/n)"))
                        })?;
                    }
                    "pool_start_address" => {
                        let t = string(&key, v)?;
                        let a = t
                            .parse()
                            .map_err(|_| bad(&key, format!("bad address {t:?}")))?;
                        start_addr = Some((key.clone(), a));
                    }
                    "pool_size" => pool_size = Some(int(&key, v)?),
                    "release_delay" => {
                        // The server adds it to an Instant: bounded so that
                        // cannot overflow (which panics).
                        let d = int(&key, v)?;
                        if d > MAX_RELEASE_DELAY {
                            return Err(bad(&key, format!("must be at most {MAX_RELEASE_DELAY}")));
                        }
                        c.release_delay = Duration::from_secs(d);
                    }
                    "mtu" => {
                        let m = int32(&key, v)?;
                        if !(68..=65535).contains(&m) {
                            return Err(bad(&key, "must be within 68..65535"));
                        }
                        c.mtu = m;
                    }
                    "allow_networks" => c.allow_networks = strings(&key, v)?,
                    "deny_networks" => c.deny_networks = strings(&key, v)?,
                    "allow_host_access" => c.allow_host_access = boolean(&key, v)?,
                    "dns_servers" => c.dns_servers = strings(&key, v)?,
                    _ => c.warnings.push(format!("ignoring unknown key {key}")),
                }
            }
            if let (Some((_, a)), Some(n)) = (start_addr, pool_size) {
                if n == 0 || n > (1 << 20) {
                    return Err(bad("network.pool_size", "must be within 1..1048576"));
                }
                // warden: fixed_bits = ceil(log2(pool_size)) + 2
                let bits = 64 - (n - 1).leading_zeros() as u8 + 2;
                let bits = if n == 1 { 2 } else { bits };
                c.pool_network = Ipv4Net {
                    addr: u32::from(a) & Ipv4Net::mask_of(32 - bits),
                    prefix: 32 - bits,
                };
            }
        }
        if c.pool_network.prefix > 30 {
            return Err(bad("network.pool_network", "must hold at least one /30"));
        }
        if let Some(s) = section(&root, "port")? {
            for (k, v) in keys(s) {
                let key = format!("port.{k}");
                match k.as_str() {
                    "pool_start_port" => c.port_start = int32(&key, v)?,
                    "pool_size" => c.port_size = int32(&key, v)?,
                    _ => c.warnings.push(format!("ignoring unknown key {key}")),
                }
            }
        }
        if c.port_start == 0 || c.port_start as u64 + c.port_size as u64 > 65536 {
            return Err(bad("port.pool_size", "port pool goes beyond port 65535"));
        }
        if let Some(s) = section(&root, "user")? {
            for (k, v) in keys(s) {
                let key = format!("user.{k}");
                match k.as_str() {
                    "pool_start_uid" => c.uid_start = int32(&key, v)?,
                    "pool_size" => c.uid_size = int32(&key, v)?,
                    _ => c.warnings.push(format!("ignoring unknown key {key}")),
                }
            }
        }
        // The server builds the whole uid pool at start (4 bytes a uid), uid 0
        // is root, and (uid_t)-1 means "unchanged" to setresuid and chown.
        if c.uid_start == 0 {
            return Err(bad(
                "user.pool_start_uid",
                "must be at least 1 (uid 0 is root)",
            ));
        }
        if c.uid_size == 0 || c.uid_size > MAX_UID_POOL {
            return Err(bad(
                "user.pool_size",
                format!("must be within 1..{MAX_UID_POOL}"),
            ));
        }
        if u64::from(c.uid_start) + u64::from(c.uid_size) > u64::from(u32::MAX) {
            return Err(bad("user.pool_size", "uid pool goes beyond uid 4294967294"));
        }
        // Interface names P-N-0 must fit IFNAMSIZ (15 bytes).
        let max_index = c.pool_network.size() / 4 - 1;
        let name_len = c.resource_prefix.len() + max_index.to_string().len() + 3;
        if name_len > 15 {
            return Err(bad(
                "network.pool_network",
                format!(
                    "{} /30s make interface names of {name_len} bytes with prefix {:?} (at most 15)",
                    max_index + 1,
                    c.resource_prefix
                ),
            ));
        }
        Ok(c)
    }

    /// The effective configuration as YAML in the file's layout: every key
    /// with the value in force (defaults included), for `warden
    /// check-config`. Parsing it gives back the same configuration.
    pub fn effective(&self) -> String {
        use serde_yaml_ng::to_string as y;
        fn yv<T: serde::Serialize>(v: &T) -> String {
            y(v).map(|t| t.trim_end().to_string()).unwrap_or_default()
        }
        fn p(v: &Path) -> String {
            yv(&v.display().to_string())
        }
        fn list(v: &[String]) -> String {
            let items: Vec<String> = v.iter().map(yv).collect();
            format!("[{}]", items.join(", "))
        }
        fn opt(v: &Option<PathBuf>) -> String {
            v.as_deref().map(p).unwrap_or_else(|| "~".into())
        }
        let c = self;
        let mut o = String::from("server:\n");
        let mut kv = |k: &str, v: String| o.push_str(&format!("  {k}: {v}\n"));
        kv("unix_domain_path", p(&c.unix_domain_path));
        kv(
            "unix_domain_permissions",
            format!("0{:o}", c.unix_domain_permissions),
        );
        kv("container_depot_path", p(&c.container_depot_path));
        kv("container_rootfs_path", p(&c.container_rootfs_path));
        kv(
            "container_grace_time",
            c.container_grace_time
                .map(|g| g.to_string())
                .unwrap_or_else(|| "~".into()),
        );
        kv(
            "container_rlimits",
            if c.container_rlimits.is_empty() {
                "{}".into()
            } else {
                let m: Vec<String> = c
                    .container_rlimits
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect();
                format!("{{{}}}", m.join(", "))
            },
        );
        kv("job_output_limit", c.job_output_limit.to_string());
        kv(
            "quota",
            format!("{{disk_quota_enabled: {}}}", c.disk_quota_enabled),
        );
        kv("allow_nested_warden", c.allow_nested_warden.to_string());
        kv(
            "container_root_capabilities",
            match &c.container_root_capabilities {
                None => "~".into(),
                Some(v) => format!("[{}]", v.join(", ")),
            },
        );
        kv("pidfile", opt(&c.pidfile));
        kv(
            "syslog_socket",
            c.syslog_socket
                .as_ref()
                .map(yv)
                .unwrap_or_else(|| "~".into()),
        );
        kv("resource_prefix", yv(&c.resource_prefix));
        kv("scripts_path", p(&c.scripts_path));
        kv("bin_path", p(&c.bin_path));
        kv("copy_max_bytes", c.copy_limits.max_bytes.to_string());
        kv("copy_max_entries", c.copy_limits.max_entries.to_string());
        kv("max_connections", c.max_connections.to_string());
        kv("max_request_bytes", c.max_request_bytes.to_string());
        kv("max_buffered_bytes", c.max_buffered_bytes.to_string());
        kv("request_timeout", c.request_timeout.as_secs().to_string());
        o.push_str("logging:\n");
        o.push_str(&format!("  level: {}\n", c.log_level));
        o.push_str(&format!("  file: {}\n", opt(&c.log_file)));
        o.push_str(&format!(
            "  format: {}\n",
            match c.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }
        ));
        o.push_str("network:\n");
        o.push_str(&format!("  pool_network: {}\n", c.pool_network));
        o.push_str(&format!("  release_delay: {}\n", c.release_delay.as_secs()));
        o.push_str(&format!("  mtu: {}\n", c.mtu));
        o.push_str(&format!("  allow_networks: {}\n", list(&c.allow_networks)));
        o.push_str(&format!("  allow_host_access: {}\n", c.allow_host_access));
        o.push_str(&format!("  dns_servers: {}\n", list(&c.dns_servers)));
        o.push_str(&format!(
            "port:\n  pool_start_port: {}\n  pool_size: {}\n",
            c.port_start, c.port_size
        ));
        o.push_str(&format!(
            "user:\n  pool_start_uid: {}\n  pool_size: {}\n",
            c.uid_start, c.uid_size
        ));
        match c.health_check_port {
            Some(port) => o.push_str(&format!(
                "health_check_server:\n  port: {port}\n  address: {}\n",
                yv(&c.health_check_address.to_string())
            )),
            None => o.push_str("health_check_server: ~\n"),
        }
        o
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = Config::parse("").unwrap();
        assert_eq!(c.unix_domain_permissions, 0o755);
        assert_eq!(c.unix_domain_path, Path::new("/run/warden/warden.sock"));
        assert_eq!(c.container_grace_time, Some(300));
        assert_eq!(c.pool_network.to_string(), "10.254.0.0/24");
        assert_eq!(c.uid_start, 10000);
        assert_eq!(c.job_output_limit, 10 << 20);
        assert_eq!(c.resource_prefix, "w");
        assert_eq!(c.copy_limits.max_bytes, 16 << 30);
        assert_eq!(c.copy_limits.max_entries, 1_000_000);
    }

    #[test]
    fn copy_limits() {
        let c = Config::parse("server:\n  copy_max_bytes: 4096\n  copy_max_entries: 3\n").unwrap();
        assert_eq!(c.copy_limits.max_bytes, 4096);
        assert_eq!(c.copy_limits.max_entries, 3);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        let e = Config::parse("server:\n  copy_max_entries: 0\n").unwrap_err();
        assert!(e.to_string().contains("server.copy_max_entries"), "{e}");
        assert_eq!(c.max_connections, 512);
        assert_eq!(c.max_request_bytes, 1 << 20);
        assert_eq!(c.max_buffered_bytes, 16 << 20);
        assert_eq!(c.request_timeout, Duration::from_secs(30));
        let c = Config::parse(
            "server:\n  max_connections: 8\n  max_request_bytes: 65536\n  max_buffered_bytes: 65536\n  request_timeout: 2\n",
        )
        .unwrap();
        assert_eq!(
            (c.max_connections, c.max_request_bytes, c.max_buffered_bytes),
            (8, 65536, 65536)
        );
        assert_eq!(c.request_timeout, Duration::from_secs(2));
        assert_eq!(c.container_root_capabilities, None);
    }

    #[test]
    fn root_capabilities() {
        let c = Config::parse(
            "server:\n  container_root_capabilities: [chown, CAP_NET_RAW, Net_Raw, sys_admin]\n",
        )
        .unwrap();
        assert_eq!(
            c.container_root_capabilities.unwrap(),
            vec!["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"]
        );
        let c = Config::parse("server:\n  container_root_capabilities: []\n").unwrap();
        assert_eq!(c.container_root_capabilities, Some(vec![]));
        let c = Config::parse("server:\n  container_root_capabilities: ~\n").unwrap();
        assert_eq!(c.container_root_capabilities, None);
        for bad in [
            "[sys_module]",
            "[CAP_DAC_READ_SEARCH]",
            "[bogus]",
            "chown",
            "[\"chown,kill\"]",
        ] {
            let e = Config::parse(&format!("server:\n  container_root_capabilities: {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("server.container_root_capabilities"),
                "{bad}: {e}"
            );
        }
        assert!(DEFAULT_ROOT_CAPS.iter().all(|c| GRANTABLE_CAPS.contains(c)));
        assert!(HOST_CAPS.iter().all(|c| !GRANTABLE_CAPS.contains(c)));
        // Linux knows 41 capabilities (0..=40).
        assert_eq!(HOST_CAPS.len() + GRANTABLE_CAPS.len(), 41);
    }

    #[test]
    fn warden_style_config() {
        let c = Config::parse(
            "server:\n  container_klass: Warden::Container::Linux\n  unix_domain_permissions: 0777\n  container_grace_time: ~\n  container_rlimits:\n    as: 4294967296\n    nofile: 8192\n  job_output_limit: 102400\nnetwork:\n  pool_start_address: 10.244.0.0\n  pool_size: 256\n  dns_servers: [8.8.8.8]\nuser:\n  pool_start_uid: 20000\n  pool_size: 5\nport:\n  pool_start_port: 40000\n  pool_size: 100\n",
        )
        .unwrap();
        assert_eq!(c.unix_domain_permissions, 0o777);
        assert_eq!(c.container_grace_time, None);
        assert_eq!(c.container_rlimits["nofile"], 8192);
        assert_eq!(c.pool_network.to_string(), "10.244.0.0/22");
        assert_eq!(c.dns_servers, vec!["8.8.8.8"]);
        assert_eq!((c.uid_start, c.uid_size), (20000, 5));
        assert_eq!((c.port_start, c.port_size), (40000, 100));
        assert_eq!(
            c.warnings,
            vec!["ignoring unknown key server.container_klass"]
        );
    }

    /// etc/warden.yml, the shipped example: every key at its default (so
    /// it reads as the defaults do, with no warning), and every key this
    /// parser knows is documented in it (a key added to `parse` without
    /// an entry there fails here).
    #[test]
    fn shipped_config_documents_every_key_at_its_default() {
        let shipped = include_str!("../../etc/warden.yml");
        let c = Config::parse(shipped).unwrap();
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        assert_eq!(
            format!("{c:?}"),
            format!("{:?}", Config::parse("").unwrap())
        );
        // The keys of `parse`: the match arms of each section's loop.
        let src = include_str!("config.rs");
        let body = &src[src.find("pub fn parse(").unwrap()..src.find("pub fn effective(").unwrap()];
        let mut keys = vec!["disk_quota_enabled".to_string()];
        for line in body.lines() {
            let Some(arm) = line.strip_prefix(&" ".repeat(20)) else {
                continue;
            };
            if !arm.starts_with('"') || !arm.contains("=>") {
                continue;
            }
            let pat = arm.split("=>").next().unwrap();
            keys.extend(
                pat.split('|')
                    .map(|k| k.trim().trim_matches('"').to_string()),
            );
        }
        assert!(keys.len() > 30, "{keys:?}");
        for k in &keys {
            let documented = shipped.lines().any(|l| {
                let l = l.trim_start().trim_start_matches('#').trim_start();
                l.starts_with(&format!("{k}:"))
            });
            assert!(documented, "etc/warden.yml does not document {k}");
        }
    }

    #[test]
    fn effective_config_reads_back_the_same() {
        for text in [
            "",
            "server:\n  container_rlimits: {nofile: 8192, as: 1}\n  container_root_capabilities: [chown]\n  pidfile: /x/y.pid\n  container_grace_time: ~\nlogging:\n  level: debug2\n  format: json\n  file: /tmp/l\nnetwork:\n  allow_networks: [10.0.0.0/8]\n  dns_servers: [1.1.1.1]\nhealth_check_server:\n  port: 0\n  address: \"::1\"\n",
        ] {
            let a = Config::parse(text).unwrap();
            let e = a.effective();
            let b = Config::parse(&e).unwrap_or_else(|err| panic!("{err}:\n{e}"));
            assert!(b.warnings.is_empty(), "{:?}\n{e}", b.warnings);
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "{e}");
        }
    }

    #[test]
    fn logging_and_health_check_keys() {
        let c = Config::parse("logging:\n  level: debug1\n  format: json\n").unwrap();
        assert_eq!(
            (c.log_level.as_str(), c.log_format),
            ("debug1", LogFormat::Json)
        );
        assert_eq!(c.health_check_port, None);
        let c = Config::parse("health_check_server:\n  port: 2345\n").unwrap();
        assert_eq!(c.health_check_port, Some(2345));
        assert_eq!(c.health_check_address.to_string(), "127.0.0.1");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        // Bad YAML: the parser's message once.
        let e = Config::parse("server: [").unwrap_err();
        assert!(std::error::Error::source(&e).is_none());
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            (
                "server:\n  unix_domain_permissions: abc\n",
                "server.unix_domain_permissions",
            ),
            (
                "server:\n  resource_prefix: ABC\n",
                "server.resource_prefix",
            ),
            (
                "network:\n  pool_network: 10.0.0.0\n",
                "network.pool_network",
            ),
            (
                "server:\n  container_rlimits:\n    bogus: 1\n",
                "server.container_rlimits.bogus",
            ),
            ("user:\n  pool_size: -1\n", "user.pool_size"),
            (
                "server:\n  resource_prefix: abcdef\nnetwork:\n  pool_network: 10.0.0.0/8\n",
                "network.pool_network",
            ),
            (
                "network:\n  allow_host_access: maybe\n",
                "network.allow_host_access",
            ),
            ("server:\n  max_connections: 0\n", "server.max_connections"),
            (
                "server:\n  max_request_bytes: 100\n",
                "server.max_request_bytes",
            ),
            (
                "server:\n  max_request_bytes: 2097152\n  max_buffered_bytes: 1048576\n",
                "server.max_buffered_bytes",
            ),
            ("server:\n  request_timeout: 0\n", "server.request_timeout"),
            (
                "network:\n  release_delay: 18446744073709551615\n",
                "network.release_delay",
            ),
            ("user:\n  pool_start_uid: 0\n", "user.pool_start_uid"),
            ("user:\n  pool_size: 0\n", "user.pool_size"),
            ("logging:\n  level: verbose\n", "logging.level"),
            ("logging:\n  format: xml\n", "logging.format"),
            (
                "health_check_server:\n  port: 70000\n",
                "health_check_server.port",
            ),
            (
                "health_check_server:\n  port: 1\n  address: localhost\n",
                "health_check_server.address",
            ),
            ("user:\n  pool_size: 4294967295\n", "user.pool_size"),
            (
                "user:\n  pool_start_uid: 4294967290\n  pool_size: 64\n",
                "user.pool_size",
            ),
        ] {
            let e = Config::parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{e} should name {key}");
        }
    }
}
