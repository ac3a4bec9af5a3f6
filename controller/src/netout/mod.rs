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

mod nft;
mod rule;
mod split;
#[cfg(test)]
mod tests;

pub use nft::*;
pub use rule::*;
pub use split::*;

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
