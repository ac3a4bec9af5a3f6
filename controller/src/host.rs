//! What the Rust side of the server touches on the host directly: cgroup
//! directories ([`cgroup`]) and the nft table ([`nft`]). Every name of a
//! host resource (nft table, maps, sets and chains, veth names, cgroup
//! directories) is made by [`layout`]; the rootfs-scripts make the same
//! names (rootfs-scripts/README.md, `nft_table` and friends in
//! skeleton/lib/common.sh).

pub mod cgroup;
pub mod layout;
pub mod nft;
