//! Parsing warden's YAML config into a [`Config`]: each known key checked
//! for its type and range (see the module above for the keys).

use super::*;

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

fn opt_int(key: &str, v: &Value) -> Result<Option<u64>, ConfigError> {
    match v {
        Value::Null => Ok(None),
        _ => int(key, v).map(Some),
    }
}

/// `server.copy_max_bytes` and `server.copy_max_entries`: zero is refused.
fn at_least_one(key: &str, v: &Value) -> Result<u64, ConfigError> {
    let n = int(key, v)?;
    if n == 0 {
        return Err(bad(key, "must be at least 1"));
    }
    Ok(n)
}

/// `server.resource_prefix`: it starts every host name warden makes.
fn resource_prefix(key: &str, v: &Value) -> Result<String, ConfigError> {
    let p = string(key, v)?;
    if p.is_empty()
        || p.len() > 6
        || !p
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(bad(key, "must match [a-z0-9]{1,6}"));
    }
    Ok(p)
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
            c.parse_health_check_server(s)?;
        }
        if let Some(s) = section(&root, "server")? {
            c.parse_server(s)?;
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
            c.parse_logging(s)?;
        }
        if let Some(s) = section(&root, "network")? {
            c.parse_network(s)?;
        }
        if c.pool_network.prefix > 30 {
            return Err(bad("network.pool_network", "must hold at least one /30"));
        }
        if let Some(s) = section(&root, "port")? {
            c.parse_port(s)?;
        }
        if c.port_start == 0 || c.port_start as u64 + c.port_size as u64 > 65536 {
            return Err(bad("port.pool_size", "port pool goes beyond port 65535"));
        }
        if let Some(s) = section(&root, "user")? {
            c.parse_user(s)?;
        }
        c.check_pools()?;
        Ok(c)
    }

    /// The `health_check_server` section.
    fn parse_health_check_server(&mut self, s: &Mapping) -> Result<(), ConfigError> {
        for (k, v) in keys(s) {
            let key = format!("health_check_server.{k}");
            match k.as_str() {
                "port" => self.health_check_port = Some(ranged(&key, v, 0, 65535)? as u16),
                "address" => {
                    let t = string(&key, v)?;
                    self.health_check_address = t
                        .parse()
                        .map_err(|_| bad(&key, format!("bad address {t:?}")))?;
                }
                _ => self.warnings.push(format!("ignoring unknown key {key}")),
            }
        }
        Ok(())
    }

    /// The `server` section.
    fn parse_server(&mut self, s: &Mapping) -> Result<(), ConfigError> {
        for (k, v) in keys(s) {
            let key = format!("server.{k}");
            match k.as_str() {
                "unix_domain_path" => self.unix_domain_path = string(&key, v)?.into(),
                "unix_domain_permissions" => {
                    let p = int32(&key, v)?;
                    if p > 0o7777 {
                        return Err(bad(&key, "permissions above 07777"));
                    }
                    self.unix_domain_permissions = p;
                }
                "container_depot_path" => self.container_depot_path = string(&key, v)?.into(),
                "container_rootfs_path" => self.container_rootfs_path = string(&key, v)?.into(),
                "container_grace_time" => self.container_grace_time = opt_int(&key, v)?,
                "container_rlimits" => self.parse_container_rlimits(&key, v)?,
                "job_output_limit" => self.job_output_limit = int(&key, v)?,
                "container_pids_limit" => self.container_pids_limit = int(&key, v)?,
                "container_memory_limit" => self.container_memory_limit = opt_int(&key, v)?,
                "container_disk_limit" => self.container_disk_limit = opt_int(&key, v)?,
                "quota" => self.parse_quota(&key, v)?,
                "allow_nested_warden" => self.allow_nested_warden = boolean(&key, v)?,
                "container_root_capabilities" => {
                    self.container_root_capabilities = root_capabilities(&key, v)?
                }
                "pidfile" => self.pidfile = opt_string(&key, v)?.map(PathBuf::from),
                "syslog_socket" => self.syslog_socket = opt_string(&key, v)?,
                "resource_prefix" => self.resource_prefix = resource_prefix(&key, v)?,
                "max_connections" => {
                    self.max_connections = ranged(&key, v, 1, 65536)? as usize;
                }
                "max_request_bytes" => {
                    self.max_request_bytes = ranged(&key, v, 16 << 10, 16 << 20)? as usize;
                }
                "max_buffered_bytes" => {
                    self.max_buffered_bytes = ranged(&key, v, 16 << 10, 1 << 32)? as usize;
                }
                "request_timeout" => {
                    self.request_timeout = Duration::from_secs(ranged(&key, v, 1, 3600)?);
                }
                "copy_idle_timeout" => {
                    self.copy_idle_timeout = Duration::from_secs(ranged(&key, v, 1, 86400)?);
                }
                "scripts_path" => self.scripts_path = string(&key, v)?.into(),
                "bin_path" => self.bin_path = string(&key, v)?.into(),
                "copy_max_bytes" => self.copy_limits.max_bytes = at_least_one(&key, v)?,
                "copy_max_entries" => self.copy_limits.max_entries = at_least_one(&key, v)?,
                _ => self.warnings.push(format!("ignoring unknown key {key}")),
            }
        }
        Ok(())
    }

    /// `server.container_rlimits`: a mapping of resource limit names.
    fn parse_container_rlimits(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        let m = match v {
            Value::Null => Mapping::new(),
            Value::Mapping(m) => m.clone(),
            _ => return Err(bad(key, "expected a mapping")),
        };
        for (rk, rv) in keys(&m) {
            let rkey = format!("{key}.{rk}");
            if !crate::proto::RLIMIT_NAMES.contains(&rk.as_str()) {
                return Err(bad(&rkey, "unknown resource limit"));
            }
            self.container_rlimits.insert(rk, int(&rkey, rv)?);
        }
        Ok(())
    }

    /// `server.quota`: disk_quota_enabled and disk_image_size.
    fn parse_quota(&mut self, key: &str, v: &Value) -> Result<(), ConfigError> {
        if let Value::Mapping(q) = v {
            if let Some(d) = q.get("disk_quota_enabled") {
                self.disk_quota_enabled = boolean("server.quota.disk_quota_enabled", d)?;
            }
            if let Some(d) = q.get("disk_image_size") {
                let k = "server.quota.disk_image_size";
                self.disk_image_size = int(k, d)?;
                if self.disk_image_size < 1 << 20 {
                    return Err(bad(k, "must be at least 1048576 (1 MiB)"));
                }
            }
        } else if !v.is_null() {
            return Err(bad(key, "expected a mapping"));
        }
        Ok(())
    }

    /// The `logging` section.
    fn parse_logging(&mut self, s: &Mapping) -> Result<(), ConfigError> {
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
                    self.log_level = l;
                }
                "format" => {
                    self.log_format = match string(&key, v)?.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        f => return Err(bad(&key, format!("{f:?} is not text or json"))),
                    }
                }
                "file" => self.log_file = opt_string(&key, v)?.map(PathBuf::from),
                _ => self.warnings.push(format!("ignoring unknown key {key}")),
            }
        }
        Ok(())
    }

    /// The `network` section.
    fn parse_network(&mut self, s: &Mapping) -> Result<(), ConfigError> {
        let mut start_addr: Option<(String, Ipv4Addr)> = None;
        let mut pool_size: Option<u64> = None;
        for (k, v) in keys(s) {
            let key = format!("network.{k}");
            match k.as_str() {
                "pool_network" => {
                    let t = string(&key, v)?;
                    self.pool_network = Ipv4Net::parse(&t)
                        .ok_or_else(|| bad(&key, format!("bad network {t:?} (want a.b.c.d/n)")))?;
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
                    self.release_delay = Duration::from_secs(d);
                }
                "mtu" => {
                    let m = int32(&key, v)?;
                    if !(68..=65535).contains(&m) {
                        return Err(bad(&key, "must be within 68..65535"));
                    }
                    self.mtu = m;
                }
                "allow_networks" => self.allow_networks = strings(&key, v)?,
                "deny_networks" => self.deny_networks = strings(&key, v)?,
                "allow_host_access" => self.allow_host_access = boolean(&key, v)?,
                "dns_servers" => self.dns_servers = strings(&key, v)?,
                _ => self.warnings.push(format!("ignoring unknown key {key}")),
            }
        }
        if let (Some((_, a)), Some(n)) = (start_addr, pool_size) {
            if n == 0 || n > (1 << 20) {
                return Err(bad("network.pool_size", "must be within 1..1048576"));
            }
            // warden: fixed_bits = ceil(log2(pool_size)) + 2
            let bits = 64 - (n - 1).leading_zeros() as u8 + 2;
            let bits = if n == 1 { 2 } else { bits };
            self.pool_network = Ipv4Net {
                addr: u32::from(a) & Ipv4Net::mask_of(32 - bits),
                prefix: 32 - bits,
            };
        }
        Ok(())
    }

    /// The `port` section.
    fn parse_port(&mut self, s: &Mapping) -> Result<(), ConfigError> {
        for (k, v) in keys(s) {
            let key = format!("port.{k}");
            match k.as_str() {
                "pool_start_port" => self.port_start = int32(&key, v)?,
                "pool_size" => self.port_size = int32(&key, v)?,
                _ => self.warnings.push(format!("ignoring unknown key {key}")),
            }
        }
        Ok(())
    }

    /// The `user` section.
    fn parse_user(&mut self, s: &Mapping) -> Result<(), ConfigError> {
        for (k, v) in keys(s) {
            let key = format!("user.{k}");
            match k.as_str() {
                "pool_start_uid" => self.uid_start = int32(&key, v)?,
                "pool_size" => self.uid_size = int32(&key, v)?,
                _ => self.warnings.push(format!("ignoring unknown key {key}")),
            }
        }
        Ok(())
    }

    /// Checks across sections, once all are read: the uid pool and the
    /// interface names the network pool makes.
    fn check_pools(&self) -> Result<(), ConfigError> {
        // The server builds the whole uid pool at start (4 bytes a uid), uid 0
        // is root, and (uid_t)-1 means "unchanged" to setresuid and chown.
        if self.uid_start == 0 {
            return Err(bad(
                "user.pool_start_uid",
                "must be at least 1 (uid 0 is root)",
            ));
        }
        if self.uid_size == 0 || self.uid_size > MAX_UID_POOL {
            return Err(bad(
                "user.pool_size",
                format!("must be within 1..{MAX_UID_POOL}"),
            ));
        }
        if u64::from(self.uid_start) + u64::from(self.uid_size) > u64::from(u32::MAX) {
            return Err(bad("user.pool_size", "uid pool goes beyond uid 4294967294"));
        }
        // Interface names P-N-0 must fit IFNAMSIZ (15 bytes).
        let max_index = self.pool_network.size() / 4 - 1;
        let name_len = self.resource_prefix.len() + max_index.to_string().len() + 3;
        if name_len > 15 {
            return Err(bad(
                "network.pool_network",
                format!(
                    "{} /30s make interface names of {name_len} bytes with prefix {:?} (at most 15)",
                    max_index + 1,
                    self.resource_prefix
                ),
            ));
        }
        Ok(())
    }
}
