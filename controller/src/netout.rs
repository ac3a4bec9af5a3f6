//! net_out: a container's outbound allow rules as elements of the server's
//! nft sets (warden's `net_out`).
//!
//! Outbound traffic from a container is denied by default (setup.sh's
//! forward chain rejects it) unless it belongs to an established flow,
//! goes to the server's `allow_networks`, or matches one of the
//! container's rules. A rule allows a destination network (address, CIDR
//! or range `a.b.c.d-e.f.g.h`), optionally restricted to a protocol
//! (tcp, udp, icmp or all; warden's default is tcp), a port or port range
//! `N:M` (tcp/udp), an icmp type and code (-1 = any); `log` logs the new
//! tcp connections it allows (kernel log, prefix `warden-P-out `, with
//! `IN=<host veth>`; warden logged tcp only).
//!
//! The forward chain's rules are the same for every container: a rule
//! becomes elements of one of the sets below, keyed by the container's
//! host veth, so a container adds elements, never rules or chains:
//!
//! | set | element | rules |
//! |---|---|---|
//! | out_all | `iface . daddr range` | protocol all |
//! | out_l4 | `iface . daddr range . tcp\|udp . dport range` | tcp, udp |
//! | out_icmp | `iface . daddr range . type range . code range` | icmp |
//! | out_all_log, out_l4_log | as out_all, out_l4 | the same with log |
//!
//! The kernel refuses an element of such a set (concatenated ranges) whose
//! first or last key lies inside another element, so overlapping rules of
//! one container cannot go in as they are: each rule is split into the
//! boxes (one range per field) not yet covered by the container's earlier
//! rules of the same set, which are disjoint from everything there. The
//! split depends only on the rules and their order, which the snapshot
//! keeps (`resources.net_out`, warden's format: `[network, port_range,
//! protocol, icmp_type, icmp_code]`, plus `true` when the rule logs), so a
//! restarted server adds the same elements again (adding an existing
//! element is a no-op). net.sh teardown removes a container's elements
//! (all elements keyed by its host veth); [`sweep_stale`] removes those of
//! containers that are gone.

use crate::host::layout::{self as names, Layout};
use crate::proto::NetOutRequest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Stdio;

/// warden's NetOutRequest.Protocol values.
const TCP: i32 = 0;
const UDP: i32 = 1;
const ICMP: i32 = 2;
const ALL: i32 = 3;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NetOutError {
    /// The request's text is warden's.
    #[error("Please specify network, port, and/or port_range.")]
    NothingToAllow,
    #[error("Port range maximum must be greater than minimum")]
    PortRangeOrder,
    #[error("invalid network: {0:?} (want a.b.c.d, a.b.c.d/len or a.b.c.d-e.f.g.h)")]
    Network(String),
    #[error("invalid port_range: {0:?} (want N or N:M, 1..65535)")]
    Ports(String),
    #[error("invalid port: {0} (want 1..65535)")]
    Port(u32),
    #[error("port and port_range apply to tcp and udp only, not {0}")]
    PortsNeedL4(&'static str),
    #[error("invalid icmp_{0}: {1} (want -1..255)")]
    Icmp(&'static str, i32),
    #[error("nft: {0}")]
    Nft(String),
}

/// Protocol of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    All,
}

impl Proto {
    fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::All => "all",
        }
    }

    fn parse(s: &str) -> Option<Proto> {
        Some(match s {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            "icmp" => Proto::Icmp,
            "all" => Proto::All,
            _ => return None,
        })
    }
}

/// One net_out rule as the client gave it (validated).
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// As given (recorded as given, like warden); parsed by [`Rule::dst`].
    pub network: Option<String>,
    /// `N`, `N:M` or "" (warden records "" when no port was given).
    pub ports: String,
    pub protocol: Proto,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub log: bool,
}

/// Inclusive range of one field.
type Span = (u32, u32);

fn parse_ipv4(s: &str) -> Option<u32> {
    s.parse::<Ipv4Addr>().ok().map(u32::from)
}

/// `a.b.c.d`, `a.b.c.d/len` (host bits ignored) or `a.b.c.d-e.f.g.h`.
fn parse_network(s: &str) -> Option<Span> {
    if let Some((a, b)) = s.split_once('-') {
        let (a, b) = (parse_ipv4(a.trim())?, parse_ipv4(b.trim())?);
        return (a <= b).then_some((a, b));
    }
    if let Some((a, len)) = s.split_once('/') {
        let a = parse_ipv4(a)?;
        let len: u32 = len.parse().ok()?;
        if len > 32 {
            return None;
        }
        let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
        return Some((a & mask, (a & mask) | !mask));
    }
    parse_ipv4(s).map(|a| (a, a))
}

fn parse_port(s: &str) -> Option<u32> {
    let p: u32 = s.trim().parse().ok()?;
    (1..=65535).contains(&p).then_some(p)
}

fn parse_ports(s: &str) -> Result<Option<Span>, NetOutError> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || NetOutError::Ports(s.to_string());
    match s.split_once(':') {
        Some((a, b)) => {
            let (a, b) = (
                parse_port(a).ok_or_else(bad)?,
                parse_port(b).ok_or_else(bad)?,
            );
            // warden: the maximum must be greater (not equal).
            if a >= b {
                return Err(NetOutError::PortRangeOrder);
            }
            Ok(Some((a, b)))
        }
        None => parse_port(s).map(|p| Some((p, p))).ok_or_else(bad),
    }
}

impl Rule {
    /// The rule of a request, with warden's defaults and checks.
    pub fn from_request(r: &NetOutRequest) -> Result<Rule, NetOutError> {
        let network = r.network.clone().filter(|n| !n.is_empty());
        if network.is_none() && r.port.is_none() && r.port_range.is_none() {
            return Err(NetOutError::NothingToAllow);
        }
        // port_range takes precedence over port.
        let ports = match (&r.port_range, r.port) {
            (Some(pr), _) => pr.trim().to_string(),
            (None, Some(p)) => {
                if !(1..=65535).contains(&p) {
                    return Err(NetOutError::Port(p));
                }
                p.to_string()
            }
            (None, None) => String::new(),
        };
        let protocol = match r.protocol.unwrap_or(TCP) {
            UDP => Proto::Udp,
            ICMP => Proto::Icmp,
            ALL => Proto::All,
            _ => Proto::Tcp,
        };
        let icmp = |what: &'static str, v: Option<i32>| -> Result<Option<u8>, NetOutError> {
            match v {
                None | Some(-1) => Ok(None),
                Some(x) => u8::try_from(x)
                    .map(Some)
                    .map_err(|_| NetOutError::Icmp(what, x)),
            }
        };
        let (icmp_type, icmp_code) = if protocol == Proto::Icmp {
            (icmp("type", r.icmp_type)?, icmp("code", r.icmp_code)?)
        } else {
            (None, None)
        };
        let rule = Rule {
            network,
            ports,
            protocol,
            icmp_type,
            icmp_code,
            log: r.log.unwrap_or(false),
        };
        rule.boxes()?;
        Ok(rule)
    }

    fn dst(&self) -> Result<Span, NetOutError> {
        match &self.network {
            None => Ok((0, u32::MAX)),
            Some(n) => parse_network(n).ok_or_else(|| NetOutError::Network(n.clone())),
        }
    }

    /// The (set, box) pairs the rule stands for, before the split.
    fn boxes(&self) -> Result<Vec<(&'static str, Vec<Span>)>, NetOutError> {
        let dst = self.dst()?;
        let ports = parse_ports(&self.ports)?;
        let mut v = Vec::new();
        match self.protocol {
            Proto::Tcp | Proto::Udp => {
                let p = if self.protocol == Proto::Tcp { 6 } else { 17 };
                let b = vec![dst, (p, p), ports.unwrap_or((0, 65535))];
                if self.log && self.protocol == Proto::Tcp {
                    v.push((names::NFT_OUT_L4_LOG, b.clone()));
                }
                v.push((names::NFT_OUT_L4, b));
            }
            Proto::Icmp | Proto::All => {
                if ports.is_some() {
                    return Err(NetOutError::PortsNeedL4(self.protocol.as_str()));
                }
                if self.protocol == Proto::All {
                    if self.log {
                        v.push((names::NFT_OUT_ALL_LOG, vec![dst]));
                    }
                    v.push((names::NFT_OUT_ALL, vec![dst]));
                } else {
                    // As warden: a code applies only with a type.
                    let (t, c) = match (self.icmp_type, self.icmp_code) {
                        (None, _) => ((0, 255), (0, 255)),
                        (Some(t), None) => ((t as u32, t as u32), (0, 255)),
                        (Some(t), Some(c)) => ((t as u32, t as u32), (c as u32, c as u32)),
                    };
                    v.push((names::NFT_OUT_ICMP, vec![dst, t, c]));
                }
            }
        }
        Ok(v)
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut q = s.serialize_seq(None)?;
        q.serialize_element(&self.network)?;
        q.serialize_element(&self.ports)?;
        q.serialize_element(self.protocol.as_str())?;
        q.serialize_element(&self.icmp_type)?;
        q.serialize_element(&self.icmp_code)?;
        if self.log {
            q.serialize_element(&true)?;
        }
        q.end()
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Rule, D::Error> {
        use serde::de::Error;
        let v: Vec<serde_json::Value> = Vec::deserialize(d)?;
        if v.len() < 3 {
            return Err(D::Error::custom("net_out rule: too few fields"));
        }
        let s = |i: usize| v.get(i).and_then(|x| x.as_str()).map(str::to_string);
        let n = |i: usize| v.get(i).and_then(|x| x.as_u64()).map(|x| x as u8);
        Ok(Rule {
            network: s(0),
            ports: s(1).unwrap_or_default(),
            protocol: s(2)
                .as_deref()
                .and_then(Proto::parse)
                .ok_or_else(|| D::Error::custom("net_out rule: bad protocol"))?,
            icmp_type: n(3),
            icmp_code: n(4),
            log: v.get(5).and_then(|x| x.as_bool()).unwrap_or(false),
        })
    }
}

/// `b \ a` as disjoint boxes.
fn subtract(b: &[Span], a: &[Span]) -> Vec<Vec<Span>> {
    if b.iter().zip(a).any(|(x, y)| x.1 < y.0 || y.1 < x.0) {
        return vec![b.to_vec()];
    }
    let mut out = Vec::new();
    let mut rem = b.to_vec();
    for i in 0..b.len() {
        if rem[i].0 < a[i].0 {
            let mut p = rem.clone();
            p[i] = (rem[i].0, a[i].0 - 1);
            out.push(p);
            rem[i].0 = a[i].0;
        }
        if rem[i].1 > a[i].1 {
            let mut p = rem.clone();
            p[i] = (a[i].1 + 1, rem[i].1);
            out.push(p);
            rem[i].1 = a[i].1;
        }
    }
    out
}

/// The disjoint elements of `rules` (in order), per set: each rule adds
/// the part of its boxes not covered yet.
pub type Elements = Vec<(&'static str, Vec<Span>)>;

fn split(rules: &[Rule]) -> Vec<Elements> {
    let mut have: Vec<(&'static str, Vec<Span>)> = Vec::new();
    let mut per_rule = Vec::new();
    for r in rules {
        let mut added = Vec::new();
        for (set, b) in r.boxes().unwrap_or_default() {
            let mut pieces = vec![b];
            for (s, a) in &have {
                if *s != set {
                    continue;
                }
                pieces = pieces.iter().flat_map(|p| subtract(p, a)).collect();
            }
            for p in pieces {
                have.push((set, p.clone()));
                added.push((set, p));
            }
        }
        per_rule.push(added);
    }
    per_rule
}

fn span_text(s: Span, ip: bool) -> String {
    let f = |x: u32| {
        if ip {
            Ipv4Addr::from(x).to_string()
        } else {
            x.to_string()
        }
    };
    if s.0 == s.1 {
        f(s.0)
    } else {
        format!("{}-{}", f(s.0), f(s.1))
    }
}

/// `add element` commands for `elems` of host veth `iface`.
fn commands(table: &str, iface: &str, elems: &Elements) -> String {
    let mut out = String::new();
    for set in names::NFT_OUT_SETS {
        let items: Vec<String> = elems
            .iter()
            .filter(|(s, _)| *s == set)
            .map(|(_, b)| {
                let mut t = format!("\"{iface}\"");
                for (i, s) in b.iter().enumerate() {
                    t.push_str(" . ");
                    t.push_str(&span_text(*s, i == 0));
                }
                t
            })
            .collect();
        if !items.is_empty() {
            out.push_str(&format!(
                "add element ip {table} {set} {{ {} }}\n",
                items.join(", ")
            ));
        }
    }
    out
}

/// Runs `nft -f -` with `script` (one transaction).
pub fn nft_script(script: &str) -> Result<(), NetOutError> {
    nft_stdin(&["-f", "-"], script)
}

fn nft_stdin(args: &[&str], input: &str) -> Result<(), NetOutError> {
    let mut ch = crate::sh::command("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetOutError::Nft(format!("cannot run nft: {e}")))?;
    if let Some(mut i) = ch.stdin.take() {
        i.write_all(input.as_bytes())
            .map_err(|e| NetOutError::Nft(e.to_string()))?;
    }
    let o = ch
        .wait_with_output()
        .map_err(|e| NetOutError::Nft(e.to_string()))?;
    if o.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&o.stderr);
        Err(NetOutError::Nft(
            err.lines()
                .find(|l| l.starts_with("Error"))
                .unwrap_or(err.trim())
                .to_string(),
        ))
    }
}

/// Adds `rule` for the container with host veth `iface` whose earlier
/// rules are `earlier`.
pub fn add(layout: &Layout, iface: &str, earlier: &[Rule], rule: &Rule) -> Result<(), NetOutError> {
    let mut all = earlier.to_vec();
    all.push(rule.clone());
    let elems = split(&all).pop().unwrap_or_default();
    let cmds = commands(&layout.nft_table(), iface, &elems);
    if cmds.is_empty() {
        return Ok(()); // covered by earlier rules
    }
    nft_script(&cmds)
}

/// Adds every element of `rules` again (server restart; existing elements
/// are kept as they are).
pub fn restore(layout: &Layout, iface: &str, rules: &[Rule]) -> Result<(), NetOutError> {
    let elems: Elements = split(rules).into_iter().flatten().collect();
    let cmds = commands(&layout.nft_table(), iface, &elems);
    if cmds.is_empty() {
        return Ok(());
    }
    nft_script(&cmds)
}

/// The net_out request on container `c` (warden: active containers only;
/// the rule is recorded in the snapshot).
pub fn request(
    layout: &Layout,
    c: &crate::container::Container,
    r: &NetOutRequest,
) -> Result<crate::proto::NetOutResponse, crate::error::RequestError> {
    let _op = c.op();
    c.check_state(&[crate::container::State::Active])?;
    let rule = Rule::from_request(r)?;
    let (index, earlier) = {
        let g = c.lock();
        (g.res.network_index, g.res.net_out.clone())
    };
    add(layout, &layout.host_iface(index), &earlier, &rule)?;
    c.lock().res.net_out.push(rule);
    let _ = c.write_snapshot();
    Ok(crate::proto::NetOutResponse {})
}

/// After a server restart: the elements of an adopted active container.
pub fn readopt(layout: &Layout, c: &crate::container::Container) {
    let (index, rules) = {
        let g = c.lock();
        (g.res.network_index, g.res.net_out.clone())
    };
    if let Err(e) = restore(layout, &layout.host_iface(index), &rules) {
        log::warn!("{:?}: restoring net_out rules: {e}", c.handle);
    }
}

/// Start-up sweep of the server's table, after the one of
/// `restore::sweep_stale` (which removes stale `sources` and `net_in`
/// entries and the chains of unknown containers): from `nft -j list
/// table`, removes the elements of the out_* sets keyed by a host veth not
/// in `live_ifaces`, and the verdict map `containers` and chains `c-ID` of
/// earlier versions (no rule refers to them any more). The elements are
/// deleted as nft printed them, in JSON (`nft -j -f -`): their text form
/// can be ambiguous (an icmp range such as `echo-reply-255`). Returns what
/// it removed (for the log).
pub fn sweep_stale(
    layout: &Layout,
    live_ifaces: &std::collections::HashSet<String>,
) -> Result<Vec<String>, NetOutError> {
    let table = layout.nft_table();
    let o = crate::sh::command("nft")
        .args(["-j", "list", "table", names::NFT_FAMILY, &table])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| NetOutError::Nft(format!("cannot run nft: {e}")))?;
    if !o.status.success() {
        return Ok(vec![]); // no table: nothing to sweep
    }
    let v: serde_json::Value =
        serde_json::from_slice(&o.stdout).map_err(|e| NetOutError::Nft(e.to_string()))?;
    let (cmds, what) = stale_commands(&table, &v, live_ifaces);
    if !cmds.is_empty() {
        let doc = serde_json::json!({ "nftables": cmds });
        nft_stdin(&["-j", "-f", "-"], &doc.to_string())?;
    }
    Ok(what)
}

/// [`sweep_stale`] for the server's live containers `cs`, logged.
pub fn sweep_logged(layout: &Layout, cs: &[std::sync::Arc<crate::container::Container>]) {
    let ifaces = cs
        .iter()
        .map(|c| layout.host_iface(c.lock().res.network_index))
        .collect();
    match sweep_stale(layout, &ifaces) {
        Ok(what) if what.is_empty() => {}
        Ok(what) => log::info!("removed stale nft entries: {}", what.join(", ")),
        Err(e) => log::warn!("nft cleanup: {e}"),
    }
}

/// The JSON commands of [`sweep_stale`] for listing `v`.
fn stale_commands(
    table: &str,
    v: &serde_json::Value,
    live_ifaces: &std::collections::HashSet<String>,
) -> (Vec<serde_json::Value>, Vec<String>) {
    use serde_json::json;
    let fam = names::NFT_FAMILY;
    let mut cmds = Vec::new();
    let mut what = Vec::new();
    let mut old_chains = Vec::new();
    let empty = vec![];
    for o in v["nftables"].as_array().unwrap_or(&empty) {
        if let Some(c) = o.get("chain") {
            let name = c["name"].as_str().unwrap_or("");
            if Layout::chain_id(name).is_some() {
                old_chains.push(name.to_string());
            }
            continue;
        }
        let (kind, s) = match (o.get("set"), o.get("map")) {
            (Some(s), _) => ("set", s),
            (_, Some(m)) => ("map", m),
            _ => continue,
        };
        let name = s["name"].as_str().unwrap_or("");
        if kind == "map" && name == names::NFT_CONTAINERS {
            cmds.push(json!({"delete": {"map": {"family": fam, "table": table, "name": name}}}));
            what.push(format!("map {name}"));
            continue;
        }
        if kind != "set" || !names::NFT_OUT_SETS.contains(&name) {
            continue;
        }
        let stale: Vec<serde_json::Value> = s["elem"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| {
                e["concat"][0]
                    .as_str()
                    .is_some_and(|i| !live_ifaces.contains(i))
            })
            .collect();
        if !stale.is_empty() {
            what.push(format!("{} element(s) of {name}", stale.len()));
            cmds.push(json!({"delete": {"element": {
                "family": fam, "table": table, "name": name, "elem": stale
            }}}));
        }
    }
    for c in old_chains {
        cmds.push(json!({"flush": {"chain": {"family": fam, "table": table, "name": c}}}));
        cmds.push(json!({"delete": {"chain": {"family": fam, "table": table, "name": c}}}));
        what.push(format!("chain {c}"));
    }
    (cmds, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(
        network: Option<&str>,
        port: Option<u32>,
        range: Option<&str>,
        proto: i32,
    ) -> NetOutRequest {
        NetOutRequest {
            handle: Some("h".into()),
            network: network.map(str::to_string),
            port,
            port_range: range.map(str::to_string),
            protocol: Some(proto),
            ..Default::default()
        }
    }

    #[test]
    fn requests_are_checked_as_warden_does() {
        assert_eq!(
            Rule::from_request(&req(None, None, None, TCP)),
            Err(NetOutError::NothingToAllow)
        );
        assert_eq!(
            Rule::from_request(&req(Some("1.2.3.4"), None, Some("90:80"), TCP)),
            Err(NetOutError::PortRangeOrder)
        );
        assert_eq!(
            Rule::from_request(&req(Some("1.2.3.4"), None, Some("80:80"), TCP)),
            Err(NetOutError::PortRangeOrder)
        );
        assert!(matches!(
            Rule::from_request(&req(Some("1.2.3"), None, None, TCP)),
            Err(NetOutError::Network(_))
        ));
        assert!(matches!(
            Rule::from_request(&req(Some("1.2.3.9-1.2.3.1"), None, None, TCP)),
            Err(NetOutError::Network(_))
        ));
        assert!(matches!(
            Rule::from_request(&req(Some("1.2.3.4"), Some(80), None, ALL)),
            Err(NetOutError::PortsNeedL4("all"))
        ));
        let mut r = req(Some("1.2.3.4"), None, None, ICMP);
        r.icmp_type = Some(256);
        assert!(matches!(
            Rule::from_request(&r),
            Err(NetOutError::Icmp("type", 256))
        ));
        // Default protocol tcp; port_range wins over port.
        let mut r = req(Some("1.2.3.0/32"), Some(8765), None, TCP);
        r.protocol = None;
        let rule = Rule::from_request(&r).unwrap();
        assert_eq!(rule.protocol, Proto::Tcp);
        assert_eq!(
            serde_json::to_string(&rule).unwrap(),
            r#"["1.2.3.0/32","8765","tcp",null,null]"#
        );
        let rule = Rule::from_request(&req(Some("1.2.3.4"), Some(1), Some("10:20"), UDP)).unwrap();
        assert_eq!(rule.ports, "10:20");
    }

    #[test]
    fn rules_round_trip_through_the_snapshot_format() {
        let mut r = req(Some("10.0.0.0/8"), None, None, ICMP);
        r.icmp_type = Some(8);
        r.icmp_code = Some(-1);
        r.log = Some(true);
        let rule = Rule::from_request(&r).unwrap();
        let t = serde_json::to_string(&rule).unwrap();
        assert_eq!(t, r#"["10.0.0.0/8","","icmp",8,null,true]"#);
        let back: Rule = serde_json::from_str(&t).unwrap();
        assert_eq!(back, rule);
    }

    #[test]
    fn networks_parse_to_ranges() {
        assert_eq!(
            parse_network("10.0.0.5/24"),
            Some((0x0a00_0000, 0x0a00_00ff))
        );
        assert_eq!(parse_network("0.0.0.0/0"), Some((0, u32::MAX)));
        assert_eq!(parse_network("1.2.3.4"), Some((0x0102_0304, 0x0102_0304)));
        assert_eq!(
            parse_network("1.2.3.4-1.2.3.9"),
            Some((0x0102_0304, 0x0102_0309))
        );
        assert_eq!(parse_network("1.2.3.4/33"), None);
    }

    /// Every point of the rules' union is in exactly one element.
    #[test]
    fn overlapping_rules_split_into_disjoint_elements() {
        let rules: Vec<Rule> = [
            req(Some("10.0.0.0/8"), None, Some("80:90"), TCP),
            req(Some("10.1.0.0/16"), None, Some("85:100"), TCP),
            req(Some("10.0.0.1-10.0.0.9"), None, None, TCP),
            req(Some("10.1.2.3"), Some(88), None, TCP),
            req(Some("10.1.2.3"), Some(88), None, UDP),
        ]
        .iter()
        .map(|r| Rule::from_request(r).unwrap())
        .collect();
        let per_rule = split(&rules);
        assert!(per_rule[3].is_empty(), "a covered rule adds nothing");
        assert_eq!(per_rule[4].len(), 1, "udp is another protocol");
        let all: Elements = per_rule.into_iter().flatten().collect();
        let inside =
            |b: &Vec<Span>, p: &[u32]| b.iter().zip(p).all(|(s, x)| s.0 <= *x && *x <= s.1);
        let probes = [
            (0x0a00_0005u32, 6u32, 80u32, 1usize),
            (0x0a01_0000, 6, 95, 1),
            (0x0a01_0000, 6, 85, 1),
            (0x0a00_0003, 6, 1, 1),
            (0x0a00_0003, 6, 85, 1),
            (0x0a01_0203, 17, 88, 1),
            (0x0a01_0203, 17, 89, 0),
            (0x0b00_0000, 6, 80, 0),
            (0x0a00_0105, 6, 91, 0),
            (0x0a00_0005, 6, 91, 1),
        ];
        for (ip, p, port, want) in probes {
            let n = all
                .iter()
                .filter(|(_, b)| inside(b, &[ip, p, port]))
                .count();
            assert_eq!(n, want, "{ip:x} {p} {port}");
        }
        // The kernel's rule: no element's first or last key in another.
        for (i, (_, a)) in all.iter().enumerate() {
            for (j, (_, b)) in all.iter().enumerate() {
                if i != j {
                    let lo: Vec<u32> = a.iter().map(|s| s.0).collect();
                    let hi: Vec<u32> = a.iter().map(|s| s.1).collect();
                    assert!(!inside(b, &lo) && !inside(b, &hi), "{a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn commands_name_the_sets_and_ranges() {
        let mut r = req(Some("10.0.0.0/30"), None, Some("1000:2000"), TCP);
        r.log = Some(true);
        let rule = Rule::from_request(&r).unwrap();
        let icmp = Rule::from_request(&req(Some("10.9.9.9"), None, None, ICMP)).unwrap();
        let elems: Elements = split(&[rule, icmp]).into_iter().flatten().collect();
        let t = commands("warden-x", "x-0-0", &elems);
        assert_eq!(
            t,
            "add element ip warden-x out_l4 { \"x-0-0\" . 10.0.0.0-10.0.0.3 . 6 . 1000-2000 }\n\
             add element ip warden-x out_icmp { \"x-0-0\" . 10.9.9.9 . 0-255 . 0-255 }\n\
             add element ip warden-x out_l4_log { \"x-0-0\" . 10.0.0.0-10.0.0.3 . 6 . 1000-2000 }\n"
        );
    }

    #[test]
    fn the_sweep_deletes_only_what_is_not_live() {
        let v = serde_json::json!({"nftables": [
            {"metainfo": {}},
            {"chain": {"name": "forward"}},
            {"chain": {"name": "c-abc"}},
            {"map": {"name": "containers", "elem": [["x-0-0", {"jump": {"target": "c-abc"}}]]}},
            {"set": {"name": "sources", "elem": [{"concat": ["x-0-0", "10.0.0.2"]}]}},
            {"set": {"name": "out_l4", "elem": [
                {"concat": ["x-1-0", {"prefix": {"addr": "10.0.0.0", "len": 8}}, "tcp", {"range": [80, 90]}]},
                {"concat": ["x-5-0", "1.2.3.4", "tcp", 80]}]}},
            {"set": {"name": "out_icmp", "elem": [
                {"concat": ["x-5-0", "1.2.3.4", {"range": ["echo-reply", 255]}, {"range": ["net-unreachable", 255]}]}]}}
        ]});
        let live_if = ["x-1-0".to_string()].into_iter().collect();
        let (cmds, what) = stale_commands("warden-x", &v, &live_if);
        let t = serde_json::to_string(&cmds).unwrap();
        assert_eq!(
            what,
            vec![
                "map containers",
                "1 element(s) of out_l4",
                "1 element(s) of out_icmp",
                "chain c-abc"
            ]
        );
        assert!(
            t.contains(r#"{"concat":["x-5-0","1.2.3.4","tcp",80]}"#),
            "{t}"
        );
        assert!(!t.contains("x-1-0") && !t.contains("sources"), "{t}");
    }
}
