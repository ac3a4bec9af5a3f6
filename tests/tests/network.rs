//! End-to-end tests of the container network's isolation (issue 9 finding
//! 7, failure-modes.md S21), as root, through a real `warden server`.
//!
//! The attacker is container A's root: a privileged job runs the `wnet`
//! probe (tests/src/wnet.c, compiled static into a private copy of the
//! rootfs), which writes whole Ethernet frames to A's veth through an
//! AF_PACKET socket, so no check of A's own kernel is in the way (forged
//! source addresses, 127.0.0.1 as destination, IPv6). Listeners of ours,
//! with a bounded life, say what reached them:
//!
//! - on the host, bound to A's host-side veth address (the input path) and
//!   to 127.0.0.1 (a loopback-only service);
//! - in a network namespace of ours linked to the host by a veth pair (the
//!   forward path; its /30 is in the server's `allow_networks`);
//! - on the host, IPv6 all-nodes on A's host veth.
//!
//! A raw socket in each IPv4 listener sees every TCP segment delivered to
//! its namespace, so a forged SYN that got through shows even though no
//! handshake follows. The same frames with A's real source, and a normal
//! connection from A, must arrive: they prove that the probe and the
//! listeners work, so an empty listener means the rules dropped the rest.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;
use warden::client::Client;
use warden::proto::{self, Type};
use warden_tests::net::{
    build_wnet, free_port, host_addr, iface_with_addr, mac_of, sysctl, tcp_fetch, Listener, Peer,
};
use warden_tests::server::{
    b36, create_default, destroy_or_retry, info, run, run_privileged, spawn, Opts, Srv, Txt,
};
use warden_tests::{rootfs, scratch};

/// Where the probe is inside the containers.
const WNET: &str = "/usr/local/bin/wnet";

/// Listener life when nothing ends it earlier (it ends 300 ms after "END").
const LISTEN_MS: &str = "20000";

/// One container as the host sees it.
struct Ctr {
    handle: String,
    ip: String,
    host_ip: String,
    /// Host end of the veth (P-N-0) and its MAC.
    host_if: String,
    mac: String,
    /// Container end (P-N-1), inside the container.
    cont_if: String,
    /// The container's directory in the depot.
    path: std::path::PathBuf,
}

fn ctr(s: &Srv, c: &mut Client) -> Ctr {
    let handle = create_default(c);
    let i = info(c, &handle).expect("info");
    let host_ip = i.host_ip.expect("host_ip");
    let host_if = iface_with_addr(&host_ip);
    assert!(
        host_if.starts_with(&format!("{}-", s.prefix)) && host_if.ends_with("-0"),
        "{host_if}"
    );
    Ctr {
        handle,
        ip: i.container_ip.expect("container_ip"),
        mac: mac_of(&host_if),
        cont_if: format!("{}1", host_if.strip_suffix('0').unwrap()),
        host_ip,
        host_if,
        path: i.container_path.expect("container_path").into(),
    }
}

fn next_tag() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "wn{}{}",
        b36(std::process::id() % 46656, 3),
        b36(N.fetch_add(1, Ordering::Relaxed) % 36, 1)
    )
}

/// A copy of the test rootfs with the probe at [`WNET`]; the probe's host
/// copy is returned too.
fn rootfs_with_wnet(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let wnet = build_wnet(dir);
    let root = dir.join("rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success(), "copy rootfs");
    let dst = root.join(WNET.trim_start_matches('/'));
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(&wnet, &dst).unwrap();
    std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    (root, wnet)
}

/// One frame the attacker sends: `wnet send` SPEC and whether it must
/// arrive.
struct Frame {
    proto: &'static str,
    src: String,
    dst: String,
    sport: u16,
    dport: u16,
    arrive: bool,
    what: String,
}

impl Frame {
    fn spec(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.proto, self.src, self.dst, self.sport, self.dport
        )
    }

    /// The listener line that shows this frame arrived (the source may be
    /// masqueraded on the way, so only kind and source port are matched).
    fn seen_in(&self, line: &str) -> bool {
        let f: Vec<&str> = line.split(' ').collect();
        let kind = if self.proto == "tcp" { "syn" } else { "udp" };
        f.len() >= 3 && f[0] == kind && f[2] == self.sport.to_string()
    }
}

/// Runs `wnet send IFACE MAC SPECS` as root inside `c` (the test's server
/// grants root CAP_NET_RAW, which the default set lacks). Should root
/// lack it there, the same frames are sent from the container's network
/// namespace by the host's root instead: the rules must hold for any
/// sender on that veth.
fn send_frames(cl: &mut Client, c: &Ctr, host_wnet: &std::path::Path, frames: &[Frame]) {
    let specs: Vec<String> = frames.iter().map(Frame::spec).collect();
    let cmd = format!("{WNET} send {} {} {}", c.cont_if, c.mac, specs.join(" "));
    let r = run_privileged(cl, &c.handle, &cmd);
    let out = r.stdout.txt().unwrap_or_default().to_string();
    if r.exit_status == Some(0) {
        assert_eq!(out, format!("sent {}\n", frames.len()));
        return;
    }
    assert!(
        out.contains("socket(AF_PACKET): EPERM"),
        "wnet send in the container: {out:?} {:?}",
        r.stderr.txt()
    );
    eprintln!(
        "container root has no CAP_NET_RAW; sending from its network namespace as the host's root"
    );
    let pid = std::fs::read_to_string(c.path.join("run/wshd.pid")).unwrap();
    let (code, o, e) = warden_tests::run(
        Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", pid.trim()))
            .arg(host_wnet)
            .args(["send", &c.cont_if, &c.mac])
            .args(&specs),
    );
    assert_eq!(
        code,
        0,
        "{}{}",
        String::from_utf8_lossy(&o),
        String::from_utf8_lossy(&e)
    );
}

/// What is wrong with `lines` (of the listener on `name`): a frame that
/// arrived but must not, or did not but must, or a line neither a frame
/// meant to arrive there nor `extra` explains.
fn check(
    name: &str,
    lines: &[String],
    frames: &[&Frame],
    extra: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for f in frames {
        let seen = lines.iter().any(|l| f.seen_in(l));
        if seen != f.arrive {
            problems.push(format!(
                "{name}: {} {}: {}",
                f.what,
                f.spec(),
                if seen { "ARRIVED" } else { "did not arrive" }
            ));
        }
    }
    for l in lines {
        if !frames.iter().any(|f| f.arrive && f.seen_in(l)) && !extra(l) {
            problems.push(format!("{name}: unexpected arrival: {l}"));
        }
    }
    if !problems.is_empty() {
        problems.push(format!("{name}: all lines: {lines:?}"));
    }
    problems
}

/// S21: forged sources, 127.0.0.1 through the veth and IPv6 from a
/// privileged job reach nothing; real traffic and net_in still work.
fn spoofing(allow_host_access: bool) {
    let (dir, _dir_guard) = scratch("net-spoof");
    let (root, host_wnet) = rootfs_with_wnet(&dir);
    let tag = next_tag();
    let peer = Peer::new(&tag, std::process::id() + u32::from(allow_host_access));
    let s = Srv::start(
        "netspoof",
        Opts {
            rootfs: Some(root),
            allow_host_access,
            allow_networks: vec![peer.net.clone()],
            // Container root sends the frames itself: the default set has
            // no NET_RAW, so grant it as an operator may.
            root_capabilities: Some(
                warden::config::DEFAULT_ROOT_CAPS
                    .iter()
                    .map(|c| c.to_string())
                    .chain(["CAP_NET_RAW".to_string()])
                    .collect(),
            ),
            ..Default::default()
        },
    );
    let mut cl = s.client();
    let a = ctr(&s, &mut cl);
    let b = ctr(&s, &mut cl);

    // The host end of A's veth: strict reverse-path filter, no IPv6;
    // route_localnet stays on (needed by host clients of 127.0.0.1:HOST_PORT,
    // checked at the end), made harmless by the table.
    assert_eq!(sysctl(&format!("ipv4/conf/{}/rp_filter", a.host_if)), "1");
    assert_eq!(
        sysctl(&format!("ipv4/conf/{}/route_localnet", a.host_if)),
        "1"
    );
    if std::path::Path::new("/proc/sys/net/ipv6").is_dir() {
        assert_eq!(
            sysctl(&format!("ipv6/conf/{}/disable_ipv6", a.host_if)),
            "1"
        );
    }

    let wnet = host_wnet.clone();
    let listen = |cmd: Command, addr: &str, port: u16| Listener::start(cmd, addr, port);
    let host_cmd = |addr: &str, port: u16, ms: &str| {
        let mut c = Command::new(&wnet);
        c.args(["listen", addr, &port.to_string(), ms]);
        c
    };
    // Input path: A's host-side address; loopback only; forward path.
    let p_in = free_port(&a.host_ip);
    let l_in = listen(host_cmd(&a.host_ip, p_in, LISTEN_MS), &a.host_ip, p_in);
    let p_lo = free_port("127.0.0.1");
    let l_lo = listen(host_cmd("127.0.0.1", p_lo, LISTEN_MS), "127.0.0.1", p_lo);
    let p_fw = 7000;
    let mut c = peer.ns.cmd(&wnet);
    c.args(["listen", &peer.ip, &p_fw.to_string(), LISTEN_MS]);
    let l_fw = listen(c, &peer.ip, p_fw);
    // IPv6 all-nodes on A's host veth (no "END" can reach it: stopped).
    let p_v6 = free_port("127.0.0.1");
    let v6_addr = format!("ff02::1%{}", a.host_if);
    let l_v6 = std::path::Path::new(&format!("/proc/sys/net/ipv6/conf/{}", a.host_if))
        .is_dir()
        .then(|| listen(host_cmd(&v6_addr, p_v6, LISTEN_MS), &v6_addr, p_v6));

    let mut frames: Vec<Frame> = Vec::new();
    let mut sport = 31000u16;
    let mut add =
        |proto: &'static str, src: &str, dst: &str, dport: u16, arrive: bool, what: &str| {
            sport += 1;
            frames.push(Frame {
                proto,
                src: src.to_string(),
                dst: dst.to_string(),
                sport,
                dport,
                arrive,
                what: what.to_string(),
            });
        };
    // (a) forged sources, to the host and through it.
    let mut forged = vec![
        (b.ip.clone(), "another container's address"),
        (
            b.host_ip.clone(),
            "the host's address on another container's veth",
        ),
        (a.host_ip.clone(), "the host's address on A's own veth"),
        (peer.host_ip.clone(), "a host address"),
        ("127.0.0.1".to_string(), "127.0.0.1"),
        (peer.ip.clone(), "the outside peer's own address"),
        ("192.0.2.7".to_string(), "an outside address"),
    ];
    if let Some(h) = host_addr() {
        forged.push((h, "the host's main address"));
    }
    for (src, what) in &forged {
        for proto in ["udp", "tcp"] {
            add(
                proto,
                src,
                &a.host_ip,
                p_in,
                false,
                &format!("host: forged {what}"),
            );
            add(
                proto,
                src,
                &peer.ip,
                p_fw,
                false,
                &format!("forward: forged {what}"),
            );
        }
    }
    // (b) 127.0.0.1 through the veth, with A's own and with forged sources.
    for (src, what) in [
        (a.ip.as_str(), "A's address"),
        ("127.0.0.1", "127.0.0.1"),
        (b.ip.as_str(), "another container's address"),
    ] {
        for proto in ["udp", "tcp"] {
            add(
                proto,
                src,
                "127.0.0.1",
                p_lo,
                false,
                &format!("127.0.0.1 from {what}"),
            );
        }
    }
    // IPv6 around the IPv4 table.
    if l_v6.is_some() {
        add(
            "udp6",
            "fe80::2",
            "ff02::1",
            p_v6,
            false,
            "IPv6 to the host veth",
        );
    }
    // Controls, last: the same frames with A's real source arrive where
    // A may send (the outside peer; the host only with allow_host_access).
    for proto in ["udp", "tcp"] {
        add(
            proto,
            &a.ip,
            &peer.ip,
            p_fw,
            true,
            "forward: A's real source",
        );
        add(
            proto,
            &a.ip,
            &a.host_ip,
            p_in,
            allow_host_access,
            "host: A's real source",
        );
    }
    send_frames(&mut cl, &a, &host_wnet, &frames);

    // Ordinary connections from A (vcap, its real source) still work: to
    // the allowed outside peer, and to the host when allowed. A fixed local
    // port tells them apart in the listeners' lines.
    let r = run(
        &mut cl,
        &a.handle,
        &format!("{WNET} connect {} {p_fw} 32001", peer.ip),
    );
    assert_eq!(
        (r.exit_status, r.stdout.txt()),
        (Some(0), Some("hello\n")),
        "A -> outside peer: {:?}",
        r.stderr.txt()
    );
    let r = run(
        &mut cl,
        &a.handle,
        &format!("{WNET} connect {} {p_in} 32002", a.host_ip),
    );
    assert_eq!(
        r.exit_status == Some(0),
        allow_host_access,
        "A -> host with allow_host_access={allow_host_access}: {:?} {:?}",
        r.stdout.txt(),
        r.stderr.txt()
    );

    for l in [&l_in, &l_lo, &l_fw] {
        l.send_end();
    }
    let end = |l: &str| l.starts_with("udp ") && l.ends_with(" END");
    let on = |addr: &str, port: u16| -> Vec<&Frame> {
        frames
            .iter()
            .filter(|f| f.dst == addr && f.dport == port)
            .collect()
    };
    // Each END-ended listener saw its END (it listened past the frames).
    let mut problems = Vec::new();
    let lines = l_fw.lines();
    if !lines.iter().any(|l| end(l)) {
        problems.push(format!("outside listener got no END (it stopped listening too early, or the host's own END was dropped): {lines:?}"));
    }
    problems.extend(check(
        "outside peer (forward)",
        &lines,
        &on(&peer.ip, p_fw),
        |l| end(l) || l.ends_with(" 32001"),
    ));
    let lines = l_in.lines();
    if !lines.iter().any(|l| end(l)) {
        problems.push(format!("host listener got no END (it stopped listening too early, or the host's own END was dropped): {lines:?}"));
    }
    problems.extend(check(
        "host, A's veth address (input)",
        &lines,
        &on(&a.host_ip, p_in),
        |l| end(l) || allow_host_access && l.ends_with(" 32002"),
    ));
    let lines = l_lo.lines();
    if !lines.iter().any(|l| end(l)) {
        problems.push(format!("127.0.0.1 listener got no END (it stopped listening too early, or the host's own END was dropped): {lines:?}"));
    }
    problems.extend(check("host 127.0.0.1", &lines, &on("127.0.0.1", p_lo), end));
    if let Some(l) = l_v6 {
        let lines = l.stop();
        problems.extend(check(
            "host IPv6 all-nodes",
            &lines,
            &on("ff02::1", p_v6),
            |_| false,
        ));
    }
    assert!(problems.is_empty(), "\n  {}", problems.join("\n  "));

    // net_in still works, from the host's 127.0.0.1 too.
    let ni: proto::NetInResponse = cl
        .call(
            Type::NetIn,
            &proto::NetInRequest {
                handle: Some(a.handle.clone()),
                host_port: None,
                container_port: Some(8080),
            },
        )
        .expect("net_in");
    let hp = ni.host_port.unwrap() as u16;
    spawn(
        &mut cl,
        &a.handle,
        &format!("{WNET} listen 0.0.0.0 8080 20000"),
    );
    tcp_fetch("127.0.0.1", hp, "hello\n", Duration::from_secs(10))
        .unwrap_or_else(|got| panic!("net_in 127.0.0.1:{hp} -> A:8080 gave {got:?}"));

    destroy_or_retry(&mut cl, &a.handle);
    destroy_or_retry(&mut cl, &b.handle);
    drop(peer);
}

#[test]
fn spoofed_and_loopback_packets_reach_nothing_with_host_access() {
    spoofing(true);
}

#[test]
fn spoofed_and_loopback_packets_reach_nothing_without_host_access() {
    spoofing(false);
}

/// The table as JSON: (number of rules, chains, elements of each set/map).
fn nft_shape(prefix: &str) -> (usize, usize, BTreeMap<String, Vec<serde_json::Value>>) {
    let (code, out, err) = warden_tests::run(Command::new("nft").args([
        "-j",
        "list",
        "table",
        "ip",
        &format!("warden-{prefix}"),
    ]));
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let mut rules = 0;
    let mut chains = 0;
    let mut elems = BTreeMap::new();
    for o in v["nftables"].as_array().unwrap() {
        if o.get("rule").is_some() {
            rules += 1;
        }
        if o.get("chain").is_some() {
            chains += 1;
        }
        for k in ["set", "map"] {
            if let Some(s) = o.get(k) {
                elems.insert(
                    s["name"].as_str().unwrap().to_string(),
                    s["elem"].as_array().cloned().unwrap_or_default(),
                );
            }
        }
    }
    (rules, chains, elems)
}

/// Per-container cost is set and map elements, never a rule or a chain:
/// the rule and chain counts with 1 and with N containers (each with
/// net_out rules) are the same, each container's veth is paired with its
/// own address in `sources`, and destroy takes every element away.
#[test]
fn nft_rules_stay_flat_with_the_number_of_containers() {
    const N: usize = 50;
    let s = Srv::start("netflat", Opts::default());
    let mut cl = s.client();
    let mut cs = vec![ctr(&s, &mut cl)];
    let (rules1, chains1, e1) = nft_shape(&s.prefix);
    assert_eq!(e1["sources"].len(), 1, "{e1:?}");
    assert!(!e1.contains_key("containers"), "per-container verdict map");
    while cs.len() < N {
        cs.push(ctr(&s, &mut cl));
    }
    for c in &cs {
        net_out(&mut cl, &c.handle, |r| {
            r.network = Some("192.0.2.0/24".into());
            r.port_range = Some("80:90".into());
        })
        .unwrap();
        net_out(&mut cl, &c.handle, |r| {
            r.network = Some("192.0.2.0/25".into());
            r.protocol = Some(3);
            r.log = Some(true);
        })
        .unwrap();
    }
    let (rules_n, chains_n, en) = nft_shape(&s.prefix);
    assert_eq!(rules_n, rules1, "rules grew with the containers");
    assert_eq!(chains_n, chains1, "chains grew with the containers");
    let sources = &en["sources"];
    assert_eq!(sources.len(), N, "{sources:?}");
    for c in &cs {
        let want = serde_json::json!({ "concat": [c.host_if, c.ip] });
        assert!(sources.contains(&want), "{want} not in {sources:?}");
    }
    for set in ["out_l4", "out_all", "out_all_log"] {
        assert_eq!(en[set].len(), N, "{set}: {:?}", en[set]);
    }
    eprintln!("{rules1} rules with 1 and with {N} containers");
    for c in cs {
        destroy_or_retry(&mut cl, &c.handle);
    }
    let (rules0, _, e0) = nft_shape(&s.prefix);
    assert_eq!(rules0, rules1);
    for (name, elems) in &e0 {
        assert!(elems.is_empty(), "{name}: {elems:?}");
    }
}

// ------------------------------------------------------------ net_out (issue 11)

/// NetOutRequest on `h`.
fn net_out(
    cl: &mut Client,
    h: &str,
    f: impl FnOnce(&mut proto::NetOutRequest),
) -> Result<(), String> {
    let mut r = proto::NetOutRequest {
        handle: Some(h.into()),
        ..Default::default()
    };
    f(&mut r);
    cl.call::<_, proto::NetOutResponse>(Type::NetOut, &r)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// `wnet connect ADDR PORT` in the container: true when the listener
/// answered.
fn connects(cl: &mut Client, h: &str, addr: &str, port: u16) -> bool {
    run(cl, h, &format!("{WNET} connect {addr} {port}")).exit_status == Some(0)
}

/// `wnet listen` in `peer`'s namespace on `port` (bounded life).
fn peer_listener(peer: &Peer, wnet: &std::path::Path, port: u16) -> Listener {
    let mut cmd = peer.ns.cmd(wnet);
    cmd.args(["listen", &peer.ip, &port.to_string(), "90000"]);
    Listener::start(cmd, &peer.ip, port)
}

/// Kernel log records written from now on (/dev/kmsg), when readable.
struct Kmsg(Option<std::fs::File>);

impl Kmsg {
    fn open() -> Kmsg {
        use std::io::Seek;
        use std::os::unix::fs::OpenOptionsExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .and_then(|mut f| f.seek(std::io::SeekFrom::End(0)).map(|_| f));
        Kmsg(f.ok())
    }

    /// Waits up to 5 s for a record containing every one of `words`;
    /// None when the kernel log cannot be read here.
    fn find(&mut self, words: &[&str]) -> Option<String> {
        use std::io::Read;
        let f = self.0.as_mut()?;
        let mut found = None;
        warden_tests::wait_for(Duration::from_secs(5), || {
            let mut buf = vec![0u8; 8192];
            loop {
                match f.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        let rec = String::from_utf8_lossy(&buf[..n]).into_owned();
                        if words.iter().all(|w| rec.contains(w)) {
                            found = Some(rec);
                            return true;
                        }
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                    _ => break,
                }
            }
            std::thread::sleep(Duration::from_millis(50));
            false
        });
        Some(found.unwrap_or_default())
    }
}

/// Every element of the server's sets keyed by host veth `iface`.
fn elements_of(prefix: &str, iface: &str) -> Vec<(String, serde_json::Value)> {
    let (_, _, sets) = nft_shape(prefix);
    let mut v = Vec::new();
    for (name, elems) in sets {
        for e in elems {
            if e["concat"][0].as_str() == Some(iface) {
                v.push((name.clone(), e));
            }
        }
    }
    v
}

/// net_out: outbound traffic is denied until a rule allows it; rules for a
/// network, a port and a port range (tcp), icmp type and code, and log
/// allow exactly what they name; a network nobody allowed stays out of
/// reach; overlapping rules are accepted; net_in still works from the
/// host; destroy leaves no element behind. All peers are namespaces of
/// ours.
#[test]
fn net_out_rules_allow_exactly_what_they_name() {
    let (dir, _cleanup) = scratch("netout");
    let (root, host_wnet) = rootfs_with_wnet(&dir);
    let tag = next_tag();
    let peer = Peer::new(&tag, std::process::id());
    let other = Peer::new(&format!("{tag}x"), std::process::id() + 17);
    let s = Srv::start(
        "netout",
        Opts {
            rootfs: Some(root),
            // ping as container root needs NET_RAW.
            root_capabilities: Some(
                warden::config::DEFAULT_ROOT_CAPS
                    .iter()
                    .map(|c| c.to_string())
                    .chain(["CAP_NET_RAW".to_string()])
                    .collect(),
            ),
            server_keys: vec![],
            ..Default::default()
        },
    );
    let mut cl = s.client();
    let a = ctr(&s, &mut cl);
    let ls: Vec<Listener> = (2000..=2005)
        .map(|p| peer_listener(&peer, &host_wnet, p))
        .collect();
    let lo = peer_listener(&other, &host_wnet, 2000);

    // Default deny.
    assert!(
        !connects(&mut cl, &a.handle, &peer.ip, 2000),
        "reached the peer without a rule"
    );
    let ping = |cl: &mut Client, ip: &str| {
        run_privileged(cl, &a.handle, &format!("ping -c 1 -W 1 {ip}")).exit_status == Some(0)
    };
    assert!(!ping(&mut cl, &peer.ip), "ping without a rule");

    // Bad requests, with warden's messages.
    let e = net_out(&mut cl, &a.handle, |_| {}).unwrap_err();
    assert!(
        e.contains("Please specify network, port, and/or port_range."),
        "{e}"
    );
    let e = net_out(&mut cl, &a.handle, |r| {
        r.network = Some(peer.ip.clone());
        r.port_range = Some("2002:2000".into());
    })
    .unwrap_err();
    assert!(
        e.contains("Port range maximum must be greater than minimum"),
        "{e}"
    );

    // One tcp port (warden's default protocol).
    net_out(&mut cl, &a.handle, |r| {
        r.network = Some(peer.ip.clone());
        r.port = Some(2000);
    })
    .unwrap();
    assert!(
        connects(&mut cl, &a.handle, &peer.ip, 2000),
        "tcp port rule"
    );
    assert!(
        !connects(&mut cl, &a.handle, &peer.ip, 2001),
        "only that port"
    );
    assert!(!ping(&mut cl, &peer.ip), "a tcp rule lets no icmp through");

    // A port range over the peer's /30 (a CIDR), overlapping the first rule.
    net_out(&mut cl, &a.handle, |r| {
        r.network = Some(peer.net.clone());
        r.port_range = Some("2000:2002".into());
        r.protocol = Some(0);
    })
    .unwrap();
    assert!(
        connects(&mut cl, &a.handle, &peer.ip, 2001),
        "range start+1"
    );
    assert!(connects(&mut cl, &a.handle, &peer.ip, 2002), "range end");
    assert!(
        !connects(&mut cl, &a.handle, &peer.ip, 2003),
        "past the range"
    );

    // icmp: a type that does not match lets nothing through, the right
    // type and code do.
    net_out(&mut cl, &a.handle, |r| {
        r.network = Some(peer.ip.clone());
        r.protocol = Some(2);
        r.icmp_type = Some(8);
        r.icmp_code = Some(8);
    })
    .unwrap();
    assert!(!ping(&mut cl, &peer.ip), "echo request with a bogus code");
    net_out(&mut cl, &a.handle, |r| {
        r.network = Some(peer.ip.clone());
        r.protocol = Some(2);
        r.icmp_type = Some(8);
        r.icmp_code = Some(0);
    })
    .unwrap();
    assert!(ping(&mut cl, &peer.ip), "icmp echo rule");

    // log: the rule allows and its new connections are logged.
    let mut kmsg = Kmsg::open();
    net_out(&mut cl, &a.handle, |r| {
        r.network = Some(format!("{}-{}", peer.ip, peer.ip));
        r.port = Some(2005);
        r.log = Some(true);
    })
    .unwrap();
    let logged: Vec<_> = elements_of(&s.prefix, &a.host_if)
        .into_iter()
        .filter(|(n, _)| n == "out_l4_log")
        .collect();
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert!(
        connects(&mut cl, &a.handle, &peer.ip, 2005),
        "logged rule allows"
    );
    let prefix_word = format!("warden-{}-out ", s.prefix);
    let in_word = format!("IN={} ", a.host_if);
    match kmsg.find(&[&prefix_word, &in_word, "DPT=2005 "]) {
        Some(rec) => assert!(
            !rec.is_empty(),
            "no kernel log record with {prefix_word:?} {in_word:?} DPT=2005"
        ),
        None => eprintln!("/dev/kmsg not readable: checked the log set only"),
    }
    // The other network was allowed by nothing.
    assert!(
        !connects(&mut cl, &a.handle, &other.ip, 2000),
        "unallowed network reached"
    );

    // net_in from the host still works.
    let r: proto::NetInResponse = cl
        .call(
            Type::NetIn,
            &proto::NetInRequest {
                handle: Some(a.handle.clone()),
                container_port: Some(7000),
                ..Default::default()
            },
        )
        .expect("net_in");
    let job = spawn(
        &mut cl,
        &a.handle,
        &format!("{WNET} listen {} 7000 {LISTEN_MS}", a.ip),
    );
    tcp_fetch(
        "127.0.0.1",
        r.host_port.unwrap() as u16,
        "hello\n",
        Duration::from_secs(10),
    )
    .expect("net_in from the host");
    let _ = job;

    // The rules are in the snapshot, in warden's format.
    let snap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(a.path.join("snapshot.json")).unwrap()).unwrap();
    assert_eq!(
        snap["resources"]["net_out"][0],
        serde_json::json!([peer.ip, "2000", "tcp", null, null])
    );
    assert_eq!(snap["resources"]["net_out"].as_array().unwrap().len(), 5);

    assert!(!elements_of(&s.prefix, &a.host_if).is_empty());
    destroy_or_retry(&mut cl, &a.handle);
    let left = elements_of(&s.prefix, &a.host_if);
    assert!(left.is_empty(), "left after destroy: {left:?}");
    drop(ls);
    drop(lo);
}

/// limit_bandwidth: what the container sends through its veth is shaped
/// to the rate (within 20%), info reports rate and burst both ways, and
/// destroy removes the ifb device.
#[test]
fn limit_bandwidth_shapes_the_veth_and_goes_with_destroy() {
    use std::io::Read;
    const RATE: u64 = 256 * 1024;
    const BURST: u64 = 16 * 1024;
    const BYTES: usize = 1024 * 1024;
    let s = Srv::start(
        "netbw",
        Opts {
            allow_host_access: true,
            ..Default::default()
        },
    );
    let mut cl = s.client();
    let a = ctr(&s, &mut cl);
    let i = info(&mut cl, &a.handle).unwrap();
    assert_eq!(
        i.bandwidth_stat.unwrap().in_rate,
        Some(0xffff_ffff),
        "unlimited before"
    );
    let limit = |cl: &mut Client, rate: u64, burst: u64| -> proto::LimitBandwidthResponse {
        cl.call(
            Type::LimitBandwidth,
            &proto::LimitBandwidthRequest {
                handle: Some(a.handle.clone()),
                rate: Some(rate),
                burst: Some(burst),
            },
        )
        .expect("limit_bandwidth")
    };
    // warden's spec values come back exactly.
    for (rate, burst) in [(100 * 1000, 1000), (200 * 1000, 2000)] {
        let r = limit(&mut cl, rate, burst);
        assert_eq!((r.rate, r.burst), (Some(rate), Some(burst)));
        let b = info(&mut cl, &a.handle).unwrap().bandwidth_stat.unwrap();
        assert_eq!((b.in_rate, b.out_rate), (Some(rate), Some(rate)), "{b:?}");
        assert_eq!(
            (b.in_burst, b.out_burst),
            (Some(burst), Some(burst)),
            "{b:?}"
        );
    }
    limit(&mut cl, RATE, BURST);
    let ifb = format!("{}2", a.host_if.strip_suffix('0').unwrap());
    assert!(
        std::path::Path::new("/sys/class/net").join(&ifb).exists(),
        "no {ifb}"
    );

    // The container sends BYTES to a listener of ours on its host veth's
    // address; the receiver times the bytes after the first burst.
    let l = std::net::TcpListener::bind((a.host_ip.as_str(), 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    spawn(
        &mut cl,
        &a.handle,
        &format!(
            "dd if=/dev/zero bs=1024 count={} 2>/dev/null | busybox nc {} {port}",
            BYTES / 1024 + 64,
            a.host_ip
        ),
    );
    l.set_nonblocking(false).unwrap();
    let (mut conn, _) = l.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0usize;
    let mut t0 = None;
    let mut base = 0usize;
    while got < BYTES {
        let n = conn.read(&mut buf).expect("read from the container");
        assert!(n > 0, "the container's sender stopped after {got} bytes");
        got += n;
        if t0.is_none() && got as u64 >= 2 * BURST {
            t0 = Some(std::time::Instant::now());
            base = got;
        }
    }
    let secs = t0.unwrap().elapsed().as_secs_f64();
    drop(conn);
    let rate = (got - base) as f64 / secs;
    eprintln!("shaped to {rate:.0} B/s (limit {RATE})");
    assert!(
        (rate - RATE as f64).abs() <= 0.2 * RATE as f64,
        "measured {rate:.0} B/s for a limit of {RATE} B/s"
    );
    let b = info(&mut cl, &a.handle).unwrap().bandwidth_stat.unwrap();
    assert_eq!((b.in_rate, b.out_rate), (Some(RATE), Some(RATE)), "{b:?}");
    assert!(b.in_burst.unwrap().abs_diff(BURST) <= 1, "{b:?}");

    destroy_or_retry(&mut cl, &a.handle);
    assert!(
        !std::path::Path::new("/sys/class/net").join(&ifb).exists(),
        "{ifb} left after destroy"
    );
}

/// Create, net_out (overlapping rules, one logged), limit_bandwidth,
/// destroy, many times (WARDEN_NET_CYCLES, default 100; the figure
/// is 1,000): nothing of the containers is left on the host (veths, ifb
/// devices, set and map elements: [`prefix_leftovers`]), the table's rule
/// count is what it was, and the server holds no more descriptors than
/// after the first cycles.
#[test]
fn net_out_and_bandwidth_cycles_leave_nothing_behind() {
    let cycles: usize = std::env::var("WARDEN_NET_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100)
        .max(1);
    let s = Srv::start("netleak", Opts::default());
    let mut cl = s.client();
    let (rules0, _, _) = nft_shape(&s.prefix);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", s.pid()))
            .unwrap()
            .count()
    };
    let mut fds_early = 0;
    for i in 0..cycles {
        let h = create_default(&mut cl);
        net_out(&mut cl, &h, |r| {
            r.network = Some("192.0.2.0/24".into());
            r.port_range = Some("80:90".into());
        })
        .unwrap();
        net_out(&mut cl, &h, |r| {
            r.network = Some("192.0.2.64/26".into());
            r.port_range = Some("85:100".into());
            r.log = Some(true);
        })
        .unwrap();
        net_out(&mut cl, &h, |r| {
            r.network = Some("192.0.2.1".into());
            r.protocol = Some(2);
            r.icmp_type = Some(8);
        })
        .unwrap();
        let _: proto::LimitBandwidthResponse = cl
            .call(
                Type::LimitBandwidth,
                &proto::LimitBandwidthRequest {
                    handle: Some(h.clone()),
                    rate: Some(1 << 20),
                    burst: Some(1 << 16),
                },
            )
            .unwrap();
        destroy_or_retry(&mut cl, &h);
        if i == 2.min(cycles - 1) {
            fds_early = fds();
        }
    }
    let left = warden_tests::server::prefix_leftovers(&s.prefix, &s.depot);
    assert!(left.is_empty(), "after {cycles} cycles: {left:#?}");
    let (rules, _, sets) = nft_shape(&s.prefix);
    assert_eq!(rules, rules0);
    for (name, elems) in &sets {
        assert!(elems.is_empty(), "{name}: {elems:?}");
    }
    let fds_end = fds();
    assert!(
        fds_end <= fds_early,
        "server descriptors {fds_early} -> {fds_end}"
    );
}
