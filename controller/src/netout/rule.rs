//! net_out rules: a request checked and parsed into a [`Rule`], and the
//! snapshot format of a rule.

use super::*;
use crate::host::layout as names;
use crate::proto::NetOutRequest;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::net::Ipv4Addr;

/// Protocol of a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
    Icmp,
    All,
}

impl Proto {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
            Proto::All => "all",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Proto> {
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
pub(super) type Span = (u32, u32);

pub(super) fn parse_ipv4(s: &str) -> Option<u32> {
    s.parse::<Ipv4Addr>().ok().map(u32::from)
}

/// `a.b.c.d`, `a.b.c.d/len` (host bits ignored) or `a.b.c.d-e.f.g.h`.
pub(super) fn parse_network(s: &str) -> Option<Span> {
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

pub(super) fn parse_port(s: &str) -> Option<u32> {
    let p: u32 = s.trim().parse().ok()?;
    (1..=65535).contains(&p).then_some(p)
}

pub(super) fn parse_ports(s: &str) -> Result<Option<Span>, NetOutError> {
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

    pub(super) fn dst(&self) -> Result<Span, NetOutError> {
        match &self.network {
            None => Ok((0, u32::MAX)),
            Some(n) => parse_network(n).ok_or_else(|| NetOutError::Network(n.clone())),
        }
    }

    /// The (set, box) pairs the rule stands for, before the split.
    pub(super) fn boxes(&self) -> Result<Vec<(&'static str, Vec<Span>)>, NetOutError> {
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
