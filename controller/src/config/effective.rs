//! The effective configuration printed by `warden check-config`.

use super::{Config, LogFormat};
use std::path::{Path, PathBuf};

impl Config {
    /// The effective configuration as YAML in the file's layout: every key
    /// with the value in force (defaults included), for `warden
    /// check-config`. Parsing it gives back the same configuration.
    pub fn effective(&self) -> String {
        let c = self;
        let mut o = self.effective_server();
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
        o.push_str(&format!("  deny_networks: {}\n", list(&c.deny_networks)));
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

    /// The `server` section of [`Config::effective`].
    fn effective_server(&self) -> String {
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
            format!(
                "{{disk_quota_enabled: {}, disk_image_size: {}}}",
                c.disk_quota_enabled, c.disk_image_size
            ),
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
        kv(
            "copy_idle_timeout",
            c.copy_idle_timeout.as_secs().to_string(),
        );
        let bytes = |v: Option<u64>| v.map(|b| b.to_string()).unwrap_or_else(|| "~".into());
        kv("container_pids_limit", c.container_pids_limit.to_string());
        kv("container_memory_limit", bytes(c.container_memory_limit));
        kv("container_disk_limit", bytes(c.container_disk_limit));
        o
    }
}

fn yv<T: serde::Serialize>(v: &T) -> String {
    serde_yaml_ng::to_string(v)
        .map(|t| t.trim_end().to_string())
        .unwrap_or_default()
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
