//! The names of everything a server with resource prefix `P` makes on the
//! host, in one place (the scripts make the same names: see
//! rootfs-scripts/README.md):
//!
//! | resource | name |
//! |---|---|
//! | nft table | `ip warden-P` |
//! | nft map: host port -> container ip . port | `net_in` |
//! | nft map: host veth -> jump to the container's chain | `containers` |
//! | nft set: host veth . container ip (anti-spoofing) | `sources` |
//! | nft chain of container ID | `c-ID` |
//! | veth pair of network index N | `P-N-0` (host side), `P-N-1` (container side) |
//! | cgroup directories | `/sys/fs/cgroup/<hierarchy>/warden-P/ID` |

use std::path::PathBuf;

/// nft address family of the table.
pub const NFT_FAMILY: &str = "ip";
/// nft map: host port -> container ip . container port.
pub const NFT_NET_IN: &str = "net_in";
/// nft map: host veth name -> `jump c-ID`.
pub const NFT_CONTAINERS: &str = "containers";
/// nft set: host veth name . container ip.
pub const NFT_SOURCES: &str = "sources";
/// Where the cgroup hierarchies are mounted.
pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Names of one server's host resources (its `resource_prefix`).
#[derive(Clone, Debug)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    pub fn new(prefix: &str) -> Layout {
        Layout {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `warden-P`: the nft table, and each hierarchy's cgroup directory.
    pub fn nft_table(&self) -> String {
        format!("warden-{}", self.prefix)
    }

    /// The cgroup directory under each hierarchy (same as the table name).
    pub fn cgroup_leaf(&self) -> String {
        format!("warden-{}", self.prefix)
    }

    /// The nft chain of container `id`.
    pub fn chain(id: &str) -> String {
        format!("c-{id}")
    }

    /// The container id of a per-container chain name.
    pub fn chain_id(name: &str) -> Option<&str> {
        name.strip_prefix("c-").filter(|id| !id.is_empty())
    }

    /// Host side of the veth pair of network index `n`.
    pub fn host_iface(&self, n: u32) -> String {
        format!("{}-{n}-0", self.prefix)
    }

    /// Container side of the veth pair of network index `n`.
    pub fn container_iface(&self, n: u32) -> String {
        format!("{}-{n}-1", self.prefix)
    }

    /// The network index of one of this server's veth names.
    pub fn iface_index(&self, name: &str) -> Option<u32> {
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix('-')?;
        let (n, end) = rest.rsplit_once('-')?;
        if end != "0" && end != "1" {
            return None;
        }
        n.parse().ok()
    }

    /// This server's cgroup directory in every hierarchy mounted under
    /// [`CGROUP_ROOT`] (symlinked hierarchies such as `cpu` -> `cpu,cpuacct`
    /// counted once), whether or not it exists.
    pub fn cgroup_parents(&self) -> Vec<PathBuf> {
        let leaf = self.cgroup_leaf();
        let Ok(rd) = std::fs::read_dir(CGROUP_ROOT) else {
            return vec![];
        };
        rd.flatten()
            .filter(|e| !e.path().is_symlink())
            .map(|e| e.path().join(&leaf))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let l = Layout::new("w1");
        assert_eq!(l.nft_table(), "warden-w1");
        assert_eq!(l.cgroup_leaf(), "warden-w1");
        assert_eq!(l.host_iface(7), "w1-7-0");
        assert_eq!(l.container_iface(7), "w1-7-1");
        assert_eq!(Layout::chain("abc"), "c-abc");
        assert_eq!(Layout::chain_id("c-abc"), Some("abc"));
        assert_eq!(Layout::chain_id("c-"), None);
        assert_eq!(Layout::chain_id("forward"), None);
    }

    #[test]
    fn iface_index_only_for_this_prefix() {
        let l = Layout::new("w1");
        assert_eq!(l.iface_index("w1-7-0"), Some(7));
        assert_eq!(l.iface_index("w1-12-1"), Some(12));
        assert_eq!(l.iface_index("w1-7-2"), None);
        assert_eq!(l.iface_index("w10-7-0"), None);
        assert_eq!(l.iface_index("w1-x-0"), None);
        assert_eq!(l.iface_index("eth0"), None);
        // A longer prefix sharing the start is not ours.
        assert_eq!(Layout::new("w").iface_index("w1-7-0"), None);
    }
}
