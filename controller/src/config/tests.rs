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
    let shipped = include_str!("../../../etc/warden.yml");
    let c = Config::parse(shipped).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        format!("{c:?}"),
        format!("{:?}", Config::parse("").unwrap())
    );
    // The keys of `parse`: the string arms of every `match k...` block in
    // parse.rs (one per section), at that match's own arm indent, so
    // arms of a match on a value inside an arm are not taken for keys.
    let src = include_str!("parse.rs");
    let mut keys = vec!["disk_quota_enabled".to_string()];
    let mut arm_indent: Option<(String, String)> = None;
    for line in src.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some((ref open, ref arm)) = arm_indent {
            if line == format!("{open}}}") {
                arm_indent = None;
                continue;
            }
            let Some(a) = line.strip_prefix(arm.as_str()) else {
                continue;
            };
            if a.starts_with('"') && a.contains("=>") {
                let pat = a.split("=>").next().unwrap();
                keys.extend(
                    pat.split('|')
                        .map(|k| k.trim().trim_matches('"').to_string()),
                );
            }
        } else if trimmed.starts_with("match k") && trimmed.ends_with('{') {
            arm_indent = Some((indent.to_string(), format!("{indent}    ")));
        }
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
