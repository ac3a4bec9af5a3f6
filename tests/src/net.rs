//! Network fixtures for the end-to-end tests: the `wnet` probe (`wnet.c`:
//! raw frame sender, listener, client), network namespaces of our own, a
//! namespace linked to the host by a veth pair (an "outside" network), and
//! listeners with a bounded life.
//!
//! Every name carries the caller's unique tag; everything is removed on
//! drop, also when the test panics.

use crate::{cc_static, run, wait_for};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Source of the `wnet` probe (usage in its header comment).
pub const WNET_C: &str = include_str!("wnet.c");

/// Compiles [`WNET_C`] with `cc -static` into `dir/wnet`; with
/// `WARDEN_WNET` set (a static `wnet` built beforehand: the cgroup v2 VM has
/// no compiler), copies that instead.
pub fn build_wnet(dir: &Path) -> PathBuf {
    if let Some(pre) = std::env::var_os("WARDEN_WNET").filter(|v| !v.is_empty()) {
        let out = dir.join("wnet");
        std::fs::copy(&pre, &out)
            .unwrap_or_else(|e| panic!("WARDEN_WNET {}: {e}", Path::new(&pre).display()));
        return out;
    }
    cc_static(dir, "wnet", WNET_C, &["-O1"])
}

/// The host's own address on its default route (`ip route get 1.1.1.1`),
/// when it has one.
pub fn host_addr() -> Option<String> {
    let (_, out, _) = run(Command::new("ip").args(["-4", "-o", "route", "get", "1.1.1.1"]));
    let t = String::from_utf8_lossy(&out).into_owned();
    let mut it = t.split_whitespace();
    while let Some(w) = it.next() {
        if w == "src" {
            return it.next().map(str::to_string);
        }
    }
    None
}

/// MAC address of a host interface.
pub fn mac_of(iface: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/address"))
        .unwrap_or_else(|e| panic!("no interface {iface}: {e}"))
        .trim()
        .to_string()
}

/// The host interface holding address `ip` (`ip -o addr show to ip/32`).
pub fn iface_with_addr(ip: &str) -> String {
    let (_, out, _) =
        run(Command::new("ip").args(["-4", "-o", "addr", "show", "to", &format!("{ip}/32")]));
    let t = String::from_utf8_lossy(&out).into_owned();
    t.split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("no interface holds {ip}: {t:?}"))
        .to_string()
}

/// Reads `/proc/sys/net/<path>` (trimmed), or "" when it is missing.
pub fn sysctl(path: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/{path}"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// A network namespace of ours (`ip netns add`), deleted on drop.
pub struct Netns(pub String);

impl Netns {
    pub fn new(name: &str) -> Netns {
        let (code, _, err) = run(Command::new("ip").args(["netns", "add", name]));
        assert_eq!(
            code,
            0,
            "ip netns add {name}: {}",
            String::from_utf8_lossy(&err)
        );
        Netns(name.to_string())
    }

    /// `ip netns exec NAME PROG`: a command run in this namespace (exec'd,
    /// so its pid is PROG's).
    pub fn cmd(&self, prog: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.0]).arg(prog);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// A namespace of ours linked to the host by a veth pair: the host end
/// `host_if` holds `host_ip`/30, the namespace end holds `ip`/30 (the
/// stand-in for a network outside the host). The host end goes on drop.
pub struct Peer {
    pub ns: Netns,
    pub host_if: String,
    pub host_ip: String,
    pub ip: String,
    /// The /30, a.b.c.d/30.
    pub net: String,
}

impl Peer {
    /// `tag` (at most 12 chars, [a-z0-9]) names the namespace and the veth
    /// ends `<tag>h` / `<tag>n`; the /30 is the first free one of
    /// 10.253.0.0/16 from a start derived from `seed`.
    pub fn new(tag: &str, seed: u32) -> Peer {
        assert!(tag.len() <= 12, "tag too long for an interface name: {tag}");
        let ns = Netns::new(&format!("{tag}ns"));
        let host_if = format!("{tag}h");
        let ns_if = format!("{tag}n");
        for k in 0..64u32 {
            let n = (seed.wrapping_mul(7919).wrapping_add(k * 4) % 65536) & !3;
            let base = format!("10.253.{}.{}", n >> 8, n & 255);
            let (_, out, _) = run(Command::new("ip").args([
                "-4",
                "-o",
                "addr",
                "show",
                "to",
                &format!("{base}/30"),
            ]));
            let (_, routes, _) = run(Command::new("ip").args([
                "-4",
                "route",
                "show",
                "to",
                "match",
                &format!("{base}/30"),
                "proto",
                "kernel",
            ]));
            if !out.is_empty() || !routes.is_empty() {
                continue;
            }
            let host_ip = format!("10.253.{}.{}", n >> 8, (n & 255) + 1);
            let ip = format!("10.253.{}.{}", n >> 8, (n & 255) + 2);
            let mut p = Peer {
                ns,
                host_if,
                host_ip,
                ip,
                net: format!("{base}/30"),
            };
            p.link(&ns_if);
            return p;
        }
        panic!("no free /30 in 10.253.0.0/16 near seed {seed}");
    }

    fn link(&mut self, ns_if: &str) {
        let batch = format!(
            "link add name {h} type veth peer name {n} netns {ns}\naddr add {hip}/30 dev {h}\nlink set {h} up\n",
            h = self.host_if,
            n = ns_if,
            ns = self.ns.0,
            hip = self.host_ip
        );
        let mut c = Command::new("ip")
            .args(["-batch", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(c.stdin.as_mut().unwrap(), batch.as_bytes()).unwrap();
        drop(c.stdin.take());
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{batch}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (code, _, err) = run(self.ns.cmd("sh").args([
            "-c",
            &format!(
                "ip link set lo up && ip addr add {ip}/30 dev {n} && ip link set {n} up && ip route add default via {hip}",
                ip = self.ip,
                n = ns_if,
                hip = self.host_ip
            ),
        ]));
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        // Deleting the host end deletes the pair; the namespace goes next
        // (Netns's drop).
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

/// A running `wnet listen ADDR PORT MAX_MS`: it exits by itself after
/// MAX_MS, or 300 ms after a udp "END".
pub struct Listener {
    pub addr: String,
    pub port: u16,
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Listener {
    /// Starts `cmd` (`wnet listen ADDR PORT MAX_MS`, maybe through `ip
    /// netns exec`) and waits for its "ready"; panics with its output
    /// otherwise (within MAX_MS: the listener exits by itself).
    pub fn start(mut cmd: Command, addr: &str, port: u16) -> Listener {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .expect("start wnet listen");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        let _ = out.read_line(&mut first);
        if first != "ready\n" {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wnet listen {addr} {port}: {first:?}");
        }
        Listener {
            addr: addr.to_string(),
            port,
            child,
            out,
        }
    }

    /// Sends the udp "END" from the host's network namespace.
    pub fn send_end(&self) {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let _ = s.send_to(b"END", (self.addr.as_str(), self.port));
    }

    /// For a listener no "END" can reach: waits 300 ms (as after an END),
    /// ends it and returns its lines after "ready".
    pub fn stop(mut self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.child.kill();
        self.lines()
    }

    /// Waits for the listener to exit (bounded by its MAX_MS) and returns
    /// its lines after "ready".
    pub fn lines(mut self) -> Vec<String> {
        let mut v = Vec::new();
        let mut l = String::new();
        while self.out.read_line(&mut l).unwrap_or(0) > 0 {
            v.push(l.trim_end().to_string());
            l.clear();
        }
        let _ = self.child.wait();
        v
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Normally reaped by lines(); after a panic, ours to end.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that is free for both tcp and udp on `addr` now (picked by the
/// kernel for tcp, checked for udp; bounded retries).
pub fn free_port(addr: &str) -> u16 {
    for _ in 0..50 {
        let t = std::net::TcpListener::bind((addr, 0)).expect("bind tcp :0");
        let p = t.local_addr().unwrap().port();
        if p >= 10000 && std::net::UdpSocket::bind((addr, p)).is_ok() {
            return p;
        }
    }
    panic!("no free port on {addr}");
}

/// Polls `connect` to `addr:port` until it reads `want` (bounded).
pub fn tcp_fetch(addr: &str, port: u16, want: &str, timeout: Duration) -> Result<(), String> {
    use std::io::Read;
    let mut last = String::new();
    let ok = wait_for(timeout, || {
        let Ok(mut s) = std::net::TcpStream::connect_timeout(
            &format!("{addr}:{port}").parse().unwrap(),
            Duration::from_secs(1),
        ) else {
            last = "connect failed".into();
            std::thread::sleep(Duration::from_millis(100));
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut got = String::new();
        let _ = s.read_to_string(&mut got);
        last = got.clone();
        got == want
    });
    if ok {
        Ok(())
    } else {
        Err(last)
    }
}
