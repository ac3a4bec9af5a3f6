//! Properties checked by the fuzz targets `warden_frame` and `warden_config`
//! (`fuzz/`) and by the tests that replay their saved regressions
//! (`fuzz/regressions/<target>/`), plus the targets' seed inputs.
//!
//! Each `check_*` panics when a property fails. Allocation bounds are
//! measured with [`wsys::alloc::measure`]; they are real only in binaries
//! whose global allocator is [`wsys::alloc::Measuring`] (the fuzz targets and
//! `tests/fuzz_regressions.rs`) and trivially hold elsewhere.

use crate::config::{Config, Ipv4Net, MAX_RELEASE_DELAY, MAX_UID_POOL};
use crate::proto::{self, *};
use prost::Message as _;
use std::io::Cursor;
use wsys::alloc::measure;

/// Peak bytes `read_frame` may hold for a frame whose bytes so far are
/// `received`: its payload buffer grows to at most twice what arrived (or
/// [`READ_CHUNK`]), and a moving realloc briefly holds the old buffer too.
fn frame_bound(received: usize) -> usize {
    3 * (2 * received).max(READ_CHUNK) + 256
}

/// Peak bytes the server may spend decoding one request payload of `len`
/// bytes: the decoded strings and bytes (at most the payload, twice while a
/// field is replaced) plus up to [`MAX_FIELDS`] bind mounts.
fn request_bound(len: usize) -> usize {
    4 * len + 3 * 2 * MAX_FIELDS * std::mem::size_of::<BindMount>() + 1024
}

/// Decodes `p` as `M` the way the server does (bounded) and checks it.
fn request<M>(p: &[u8])
where
    M: prost::Message + Default + PartialEq + std::fmt::Debug + serde::Serialize,
{
    let (r, u) = measure(|| proto::decode_request::<M>(p));
    assert!(
        u.peak <= request_bound(p.len()),
        "decoding a {}-byte request held {} bytes",
        p.len(),
        u.peak
    );
    if let Ok(m) = r {
        round_trip(&m);
    }
}

/// Decodes `p` as `M` the way the client does and checks it.
fn response<M>(p: &[u8])
where
    M: prost::Message + Default + PartialEq + std::fmt::Debug + serde::Serialize,
{
    if let Ok(m) = M::decode(p) {
        round_trip(&m);
    }
}

/// decode(encode(m)) == m, and `--json` output exists.
fn round_trip<M>(m: &M)
where
    M: prost::Message + Default + PartialEq + std::fmt::Debug + serde::Serialize,
{
    let e = m.encode_to_vec();
    assert_eq!(e.len(), m.encoded_len());
    let back = M::decode(e.as_slice()).expect("re-encoded message decodes");
    assert_eq!(&back, m, "decode(encode(m)) != m");
    serde_json::to_string(m).expect("message serializes to JSON");
}

/// Every message type of the protocol, decoded from one payload.
fn payload(p: &[u8]) {
    request::<EchoRequest>(p);
    request::<CreateRequest>(p);
    request::<StopRequest>(p);
    request::<DestroyRequest>(p);
    request::<InfoRequest>(p);
    request::<SpawnRequest>(p);
    request::<LinkRequest>(p);
    request::<StreamRequest>(p);
    request::<NetInRequest>(p);
    request::<NetOutRequest>(p);
    request::<CopyInRequest>(p);
    request::<CopyOutRequest>(p);
    request::<HandleOnly>(p);
    request::<PingRequest>(p);
    request::<ListRequest>(p);
    response::<ErrorResponse>(p);
    response::<CreateResponse>(p);
    response::<InfoResponse>(p);
    response::<SpawnResponse>(p);
    response::<LinkResponse>(p);
    response::<StreamResponse>(p);
    response::<NetInResponse>(p);
    response::<ListResponse>(p);
    response::<EchoResponse>(p);
    if let Ok(r) = CreateRequest::decode(p) {
        // What decode_request refused is exactly what is too long.
        let n = r.bind_mounts.len();
        assert!(
            n <= MAX_FIELDS || proto::decode_request::<CreateRequest>(p).is_err(),
            "{n} bind mounts accepted"
        );
    }
}

/// The frame decoder on a byte stream, as the server's connection loop reads
/// it: frames back to back until the first error.
///
/// Properties: a frame consumes exactly `<digits>\r\n<payload>\r\n` whose
/// digits give the payload's length (<= [`MAX_FRAME`]); writing the payload
/// again reads back the same; the buffers held stay proportional to the
/// bytes received, whatever the length line announced; every envelope and
/// every message type round-trips; nothing panics.
pub fn check_frames(data: &[u8]) {
    let mut r = Cursor::new(data);
    loop {
        let at = r.position() as usize;
        let (res, u) = measure(|| proto::read_frame(&mut r));
        let end = r.position() as usize;
        assert!(
            u.peak <= frame_bound(end - at),
            "read_frame held {} bytes after receiving {}",
            u.peak,
            end - at
        );
        let Ok(p) = res else { break };
        assert!(p.len() <= MAX_FRAME);
        let raw = &data[at..end];
        let nl = raw.iter().position(|&b| b == b'\n').expect("length line");
        let digits = &raw[..nl - 1];
        assert!(raw[nl - 1] == b'\r' && !digits.is_empty() && digits.len() <= MAX_LEN_DIGITS);
        let n: usize = std::str::from_utf8(digits).unwrap().parse().unwrap();
        assert_eq!(n, p.len());
        assert_eq!(&raw[nl + 1..nl + 1 + n], &p[..]);
        assert_eq!(&raw[nl + 1 + n..], b"\r\n");
        let mut out = Vec::new();
        proto::write_frame(&mut out, &p).unwrap();
        assert_eq!(proto::read_frame(&mut Cursor::new(&out)).unwrap(), p);
        if digits[0] != b'0' || digits.len() == 1 {
            assert_eq!(out, raw, "canonical frame re-encodes byte for byte");
        }
        if let Ok(m) = proto::Message::decode(p.as_slice()) {
            round_trip(&m);
            if let Ok(t) = Type::try_from(m.r#type.unwrap_or(0)) {
                assert!(!t.name().is_empty());
            }
            payload(m.payload.as_deref().unwrap_or_default());
        }
        payload(&p);
    }
}

/// The config parser. Properties of every accepted config: each documented
/// bound holds (permissions, the /30 pool and its interface names, ports,
/// uids, MTU, release delay, resource prefix, rlimit names); the pools the
/// server builds from it are bounded; its network prints and parses back.
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(c) = Config::parse(text) else { return };
    assert!(c.unix_domain_permissions <= 0o7777);
    let net = c.pool_network;
    assert!(net.prefix <= 30);
    assert_eq!(net.addr & !Ipv4Net::mask_of(net.prefix), 0);
    assert_eq!(Ipv4Net::parse(&net.to_string()), Some(net));
    let max_index = net.size() / 4 - 1;
    assert!(c.resource_prefix.len() + max_index.to_string().len() + 3 <= 15);
    assert!((1..=6).contains(&c.resource_prefix.len()));
    assert!(c
        .resource_prefix
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    assert!(c.port_start >= 1 && u64::from(c.port_start) + u64::from(c.port_size) <= 65536);
    assert!(c.uid_start >= 1 && (1..=MAX_UID_POOL).contains(&c.uid_size));
    assert!(u64::from(c.uid_start) + u64::from(c.uid_size) <= u64::from(u32::MAX));
    assert!((68..=65535).contains(&c.mtu));
    assert!(c.release_delay.as_secs() <= MAX_RELEASE_DELAY);
    assert!(std::time::Instant::now()
        .checked_add(c.release_delay)
        .is_some());
    for k in c.container_rlimits.keys() {
        assert!(RLIMIT_NAMES.contains(&k.as_str()), "rlimit {k}");
    }
}

/// Valid frames carrying one message of each type: the `warden_frame`
/// target's seeds.
pub fn seeds_frames() -> Vec<Vec<u8>> {
    fn frame<M: prost::Message>(t: Type, m: M) -> Vec<u8> {
        let mut out = Vec::new();
        proto::write_message(&mut out, t, &m).unwrap();
        out
    }
    let h = || Some("0123456789a".to_string());
    let info = InfoResponse {
        state: Some("active".into()),
        events: vec!["out of memory".into()],
        host_ip: Some("10.254.0.1".into()),
        container_ip: Some("10.254.0.2".into()),
        container_path: Some("/tmp/warden/containers/x".into()),
        memory_stat: Some(MemoryStat {
            rss: Some(1 << 20),
            total_rss: Some(1 << 20),
            ..Default::default()
        }),
        cpu_stat: Some(CpuStat {
            usage: Some(5),
            user: Some(3),
            system: Some(2),
        }),
        disk_stat: Some(DiskStat {
            bytes_used: Some(4096),
            inodes_used: Some(3),
        }),
        bandwidth_stat: Some(BandwidthStat::default()),
        job_ids: vec![1, 2, 300],
    };
    let spawn = SpawnRequest {
        handle: h(),
        script: Some("echo hi; exit 3".into()),
        privileged: Some(false),
        rlimits: Some(ResourceLimits {
            nofile: Some(1024),
            r#as: Some(u64::MAX),
            ..Default::default()
        }),
        discard_output: Some(false),
        log_tag: Some("tag".into()),
    };
    let mut v = vec![
        frame(Type::Ping, PingRequest {}),
        frame(Type::List, ListRequest {}),
        frame(
            Type::Echo,
            EchoRequest {
                message: Some("hello".into()),
            },
        ),
        frame(
            Type::Create,
            CreateRequest {
                bind_mounts: vec![
                    BindMount {
                        src_path: Some("/var/vcap".into()),
                        dst_path: Some("/data".into()),
                        mode: Some(BindMountMode::Rw as i32),
                    },
                    BindMount {
                        src_path: Some("/opt".into()),
                        dst_path: Some("/opt".into()),
                        mode: Some(BindMountMode::Ro as i32),
                    },
                ],
                grace_time: Some(30),
                handle: Some("my-handle".into()),
                network: Some("10.254.0.8".into()),
                rootfs: Some("/tmp/rootfs".into()),
            },
        ),
        frame(
            Type::Stop,
            StopRequest {
                handle: h(),
                background: Some(true),
                kill: Some(false),
            },
        ),
        frame(Type::Destroy, DestroyRequest { handle: h() }),
        frame(Type::Info, InfoRequest { handle: h() }),
        frame(Type::Spawn, spawn.clone()),
        frame(Type::Run, spawn),
        frame(
            Type::Link,
            LinkRequest {
                handle: h(),
                job_id: Some(7),
            },
        ),
        frame(
            Type::Stream,
            StreamRequest {
                handle: h(),
                job_id: Some(7),
            },
        ),
        frame(
            Type::NetIn,
            NetInRequest {
                handle: h(),
                host_port: Some(61001),
                container_port: Some(8080),
            },
        ),
        frame(
            Type::NetOut,
            NetOutRequest {
                handle: h(),
                network: Some("10.0.0.0/8".into()),
                port: Some(80),
                port_range: Some("80:90".into()),
                protocol: Some(1),
                icmp_type: Some(8),
                icmp_code: Some(0),
                log: Some(true),
            },
        ),
        frame(
            Type::CopyIn,
            CopyInRequest {
                handle: h(),
                src_path: Some("/tmp/in".into()),
                dst_path: Some("/home/vcap/in".into()),
            },
        ),
        frame(
            Type::CopyOut,
            CopyOutRequest {
                handle: h(),
                src_path: Some("/home/vcap/out".into()),
                dst_path: Some("/tmp/out".into()),
                owner: Some("vcap".into()),
            },
        ),
        frame(Type::LimitMemory, HandleOnly { handle: h() }),
        frame(
            Type::Error,
            ErrorResponse {
                message: Some("unknown handle".into()),
                data: Some("d".into()),
                backtrace: vec!["a.rb:1".into(), "b.rb:2".into()],
            },
        ),
        frame(Type::Info, info.clone()),
        frame(
            Type::Link,
            LinkResponse {
                exit_status: Some(3),
                stdout: Some(b"hi\n".to_vec()),
                stderr: Some(vec![0xff, 0xfe, b'\n']),
                info: Some(info.clone()),
            },
        ),
        frame(
            Type::Stream,
            StreamResponse {
                name: Some("stdout".into()),
                data: Some(b"chunk".to_vec()),
                exit_status: None,
                info: None,
            },
        ),
        frame(
            Type::Stream,
            StreamResponse {
                name: None,
                data: None,
                exit_status: Some(0),
                info: Some(info),
            },
        ),
        frame(
            Type::List,
            ListResponse {
                handles: vec!["a".into(), "b".into(), "c".into()],
            },
        ),
        frame(
            Type::NetIn,
            NetInResponse {
                host_port: Some(61001),
                container_port: Some(8080),
            },
        ),
    ];
    // Two frames back to back, and an empty one.
    let two = [v[0].clone(), v[2].clone()].concat();
    v.push(two);
    v.push(b"0\r\n\r\n".to_vec());
    v
}

/// Configs in warden's shape: the `warden_config` target's seeds.
pub fn seeds_config() -> Vec<Vec<u8>> {
    [
        "",
        "server:\n  unix_domain_path: /tmp/warden.sock\n  unix_domain_permissions: 0777\n  container_klass: Warden::Container::Linux\n  container_depot_path: /tmp/warden/containers\n  container_rootfs_path: /tmp/warden/rootfs\n  container_grace_time: 300\n  container_rlimits:\n    as: 4294967296\n    nofile: 8192\n    nproc: 512\n  job_output_limit: 10485760\n  quota:\n    disk_quota_enabled: false\n  allow_nested_warden: false\n  pidfile: /run/warden.pid\n  syslog_socket: /dev/log\n  resource_prefix: w\n  scripts_path: /usr/share/warden/rootfs-scripts\n  bin_path: /usr/local/bin\nlogging:\n  level: debug\n  file: /var/log/warden.log\nhealth_check_server:\n  port: 2345\nnetwork:\n  pool_start_address: 10.244.0.0\n  pool_size: 256\n  release_delay: 5\n  mtu: 1500\n  allow_networks: [10.0.0.0/8]\n  deny_networks: [0.0.0.0/0]\n  allow_host_access: false\n  dns_servers:\n    - 8.8.8.8\nport:\n  pool_start_port: 61001\n  pool_size: 4000\nuser:\n  pool_start_uid: 10000\n  pool_size: 64\n",
        "network:\n  pool_network: 10.254.0.0/22\n  release_delay: 0\nserver:\n  container_grace_time: ~\n  resource_prefix: abc123\n",
        "server: &s\n  container_rlimits: {core: 0, stack: 0o10000}\nlogging: *s\n",
        "{server: {unix_domain_permissions: '0700'}, user: {pool_size: 1}, port: {pool_size: 0}}\n",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_pass_their_checks() {
        for s in seeds_frames() {
            check_frames(&s);
        }
        for s in seeds_config() {
            check_config(&s);
        }
        assert!(Config::parse(std::str::from_utf8(&seeds_config()[1]).unwrap()).is_ok());
    }
}
