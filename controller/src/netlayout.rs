//! Names of the host network resources of one server (prefix `P`), in one
//! place: the nft table and its net_out sets, the per-container interfaces.
//! (rootfs-scripts/setup.sh and skeleton/net.sh use the same names; see
//! rootfs-scripts/README.md "Names".)

/// The server's nft table (family `ip`).
pub fn nft_table(prefix: &str) -> String {
    format!("warden-{prefix}")
}

/// Host end of container `index`'s veth pair.
pub fn host_iface(prefix: &str, index: u32) -> String {
    format!("{prefix}-{index}-0")
}

/// Container `index`'s ifb device (limit_bandwidth: what it sends).
pub fn ifb_iface(prefix: &str, index: u32) -> String {
    format!("{prefix}-{index}-2")
}

/// The ifb device that goes with a host veth name `P-N-0`.
pub fn ifb_of_host_iface(host_iface: &str) -> Option<String> {
    host_iface.strip_suffix("-0").map(|b| format!("{b}-2"))
}

/// Parses an interface name of this server: `P-N-E` gives (N, E) for the
/// ends E = 0 (host veth), 1 (container veth), 2 (ifb).
pub fn parse_iface(prefix: &str, name: &str) -> Option<(u32, u8)> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    let (n, end) = rest.rsplit_once('-')?;
    let n = n.parse::<u32>().ok()?;
    match end {
        "0" => Some((n, 0)),
        "1" => Some((n, 1)),
        "2" => Some((n, 2)),
        _ => None,
    }
}

/// The net_out sets (setup.sh makes them), each keyed by the host veth.
pub const OUT_ALL: &str = "out_all";
pub const OUT_L4: &str = "out_l4";
pub const OUT_ICMP: &str = "out_icmp";
pub const OUT_ALL_LOG: &str = "out_all_log";
pub const OUT_L4_LOG: &str = "out_l4_log";
pub const OUT_SETS: [&str; 5] = [OUT_ALL, OUT_L4, OUT_ICMP, OUT_ALL_LOG, OUT_L4_LOG];

/// The set of (host veth . container address) pairs (anti-spoofing).
pub const SOURCES: &str = "sources";
/// The map host port -> container address . port (net_in).
pub const NET_IN: &str = "net_in";
/// Per-container verdict map and chains `c-<id>` of earlier versions
/// (removed by the start-up sweep).
pub const OLD_CONTAINERS_MAP: &str = "containers";
pub const OLD_CHAIN_PREFIX: &str = "c-";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(host_iface("w", 7), "w-7-0");
        assert_eq!(ifb_iface("w", 7), "w-7-2");
        assert_eq!(ifb_of_host_iface("w-7-0").as_deref(), Some("w-7-2"));
        assert_eq!(parse_iface("w", "w-7-2"), Some((7, 2)));
        assert_eq!(parse_iface("w", "w-7-1"), Some((7, 1)));
        assert_eq!(parse_iface("w", "w-7-3"), None);
        assert_eq!(parse_iface("w", "wx-7-0"), None);
        assert_eq!(parse_iface("w", "w-x-0"), None);
    }
}
