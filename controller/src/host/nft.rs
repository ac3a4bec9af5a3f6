//! The server's nft table, read as JSON (`nft -j list table ip warden-P`,
//! parsed with serde_json; never nft's text output) and changed with
//! `nft -f -` transactions. The table's layout is [`super::layout`]'s;
//! setup.sh creates it and the skeleton's net.sh fills it.
//!
//! JSON read (libnftables-json(5)): `{"nftables": [OBJECT, ...]}` where the
//! objects used are
//! - `{"chain": {"name": "c-ID", ...}}`;
//! - `{"map": {"name": "containers", "elem": [["P-N-0", {"jump": {"target": "c-ID"}}], ...]}}`;
//! - `{"map": {"name": "net_in", "elem": [[PORT, {"concat": ["IP", PORT]}], ...]}}`;
//! - `{"set": {"name": "sources", "elem": [{"concat": ["P-N-0", "IP"]}, ...]}}`.
//!
//! Anything else in the list is ignored.

use super::layout::{Layout, NFT_CONTAINERS, NFT_FAMILY, NFT_NET_IN, NFT_SOURCES};
use crate::sh;
use serde_json::Value;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("{0}")]
    Step(#[from] sh::StepError),
    #[error("nft -j output: {0}")]
    Json(#[from] serde_json::Error),
    #[error("nft -f: {0}")]
    Io(#[from] std::io::Error),
    #[error("nft -f failed: {0}")]
    Failed(String),
}

/// What of the table the sweep cares about.
#[derive(Debug, Default, PartialEq)]
pub struct Table {
    /// Per-container chains: the container ids.
    pub chains: Vec<String>,
    /// `containers` map: (host veth, container id of the jump target).
    pub containers: Vec<(String, String)>,
    /// `net_in` map: (host port, container ip, container port).
    pub net_in: Vec<(u16, String, u16)>,
    /// `sources` set: (host veth, container ip).
    pub sources: Vec<(String, String)>,
}

impl Table {
    /// Parses `nft -j list table` output.
    pub fn parse(json: &[u8]) -> Result<Table, serde_json::Error> {
        let v: Value = serde_json::from_slice(json)?;
        let mut t = Table::default();
        let items = v["nftables"].as_array().cloned().unwrap_or_default();
        for item in &items {
            if let Some(name) = item["chain"]["name"].as_str() {
                if let Some(id) = Layout::chain_id(name) {
                    t.chains.push(id.to_string());
                }
            }
            let (name, elems) = match (&item["map"], &item["set"]) {
                (m, _) if m.is_object() => (m["name"].as_str(), &m["elem"]),
                (_, s) if s.is_object() => (s["name"].as_str(), &s["elem"]),
                _ => continue,
            };
            let elems = elems.as_array().map(Vec::as_slice).unwrap_or_default();
            match name {
                Some(NFT_CONTAINERS) => t.containers.extend(elems.iter().filter_map(jump_elem)),
                Some(NFT_NET_IN) => t.net_in.extend(elems.iter().filter_map(port_elem)),
                Some(NFT_SOURCES) => t.sources.extend(elems.iter().filter_map(source_elem)),
                _ => {}
            }
        }
        Ok(t)
    }

    /// The `nft -f` commands removing what belongs to no container kept:
    /// chains and `containers` entries of unknown ids, `net_in` and
    /// `sources` entries of unknown container ips. Entries pointing at a
    /// chain go before the chain (a chain still jumped to cannot be
    /// deleted).
    pub fn stale_commands(
        &self,
        table: &str,
        keep_id: &dyn Fn(&str) -> bool,
        keep_ip: &dyn Fn(&str) -> bool,
    ) -> String {
        let t = format!("{NFT_FAMILY} {table}");
        let mut cmds = String::new();
        let stale: Vec<&String> = self.chains.iter().filter(|id| !keep_id(id)).collect();
        for id in &stale {
            cmds.push_str(&format!("flush chain {t} {}\n", Layout::chain(id)));
        }
        for (iface, id) in &self.containers {
            if !keep_id(id) {
                cmds.push_str(&format!(
                    "delete element {t} {NFT_CONTAINERS} {{ \"{iface}\" }}\n"
                ));
            }
        }
        for id in &stale {
            cmds.push_str(&format!("delete chain {t} {}\n", Layout::chain(id)));
        }
        for (port, ip, _) in &self.net_in {
            if !keep_ip(ip) {
                cmds.push_str(&format!("delete element {t} {NFT_NET_IN} {{ {port} }}\n"));
            }
        }
        for (iface, ip) in &self.sources {
            if !keep_ip(ip) {
                cmds.push_str(&format!(
                    "delete element {t} {NFT_SOURCES} {{ \"{iface}\" . {ip} }}\n"
                ));
            }
        }
        cmds
    }
}

/// `["P-N-0", {"jump": {"target": "c-ID"}}]`
fn jump_elem(e: &Value) -> Option<(String, String)> {
    let iface = e[0].as_str()?;
    let target = e[1]["jump"]["target"].as_str()?;
    Some((iface.into(), Layout::chain_id(target)?.into()))
}

/// `[PORT, {"concat": ["IP", PORT]}]`
fn port_elem(e: &Value) -> Option<(u16, String, u16)> {
    let port = u16::try_from(e[0].as_u64()?).ok()?;
    let c = &e[1]["concat"];
    let ip = c[0].as_str()?;
    let cport = u16::try_from(c[1].as_u64()?).ok()?;
    Some((port, ip.into(), cport))
}

/// `{"concat": ["P-N-0", "IP"]}`
fn source_elem(e: &Value) -> Option<(String, String)> {
    let c = &e["concat"];
    Some((c[0].as_str()?.into(), c[1].as_str()?.into()))
}

/// The table, or None when it does not exist (or nft cannot be run).
pub fn list(table: &str) -> Option<Result<Table, NftError>> {
    let out = sh::run(
        "nft list table",
        Path::new("nft"),
        &["-j", "list", "table", NFT_FAMILY, table],
        sh::NO_ENV,
    )
    .ok()?;
    Some(Table::parse(&out).map_err(NftError::from))
}

/// Runs `cmds` as one `nft -f -` transaction.
pub fn apply(cmds: &str) -> Result<(), NftError> {
    let mut ch = sh::command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut i) = ch.stdin.take() {
        i.write_all(cmds.as_bytes())?;
    }
    let o = ch.wait_with_output()?;
    if o.status.success() {
        Ok(())
    } else {
        Err(NftError::Failed(
            String::from_utf8_lossy(&o.stderr).trim().to_string(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output of nft 1.0.6 for a table as setup.sh and net.sh make it.
    const JSON: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "warden-t", "handle": 1781}}, {"map": {"family": "ip", "name": "net_in", "table": "warden-t", "type": "inet_service", "handle": 1, "map": "ipv4_addr . inet_service", "elem": [[45000, {"concat": ["10.254.200.2", 45000]}], [45099, {"concat": ["10.254.200.6", 80]}]]}}, {"map": {"family": "ip", "name": "containers", "table": "warden-t", "type": "ifname", "handle": 2, "map": "verdict", "elem": [["t-0-0", {"jump": {"target": "c-abc"}}], ["t-1-0", {"jump": {"target": "c-def"}}]]}}, {"set": {"family": "ip", "name": "sources", "table": "warden-t", "type": ["ifname", "ipv4_addr"], "handle": 3, "elem": [{"concat": ["t-0-0", "10.254.200.2"]}]}}, {"chain": {"family": "ip", "table": "warden-t", "name": "forward", "handle": 9}}, {"chain": {"family": "ip", "table": "warden-t", "name": "c-abc", "handle": 4}}, {"chain": {"family": "ip", "table": "warden-t", "name": "c-def", "handle": 5}}]}"#;

    #[test]
    fn parses_the_table() {
        let t = Table::parse(JSON.as_bytes()).unwrap();
        assert_eq!(t.chains, ["abc", "def"]);
        assert_eq!(
            t.containers,
            [
                ("t-0-0".into(), "abc".into()),
                ("t-1-0".into(), "def".into())
            ]
        );
        assert_eq!(
            t.net_in,
            [
                (45000, "10.254.200.2".into(), 45000),
                (45099, "10.254.200.6".into(), 80)
            ]
        );
        assert_eq!(t.sources, [("t-0-0".into(), "10.254.200.2".into())]);
    }

    #[test]
    fn an_empty_table_and_garbage() {
        let t = Table::parse(br#"{"nftables": [{"table": {"name": "x"}}]}"#).unwrap();
        assert_eq!(t, Table::default());
        assert!(Table::parse(b"table ip x {").is_err());
    }

    #[test]
    fn stale_commands_keep_what_is_used() {
        let t = Table::parse(JSON.as_bytes()).unwrap();
        let c = t.stale_commands("warden-t", &|id| id == "abc", &|ip| ip == "10.254.200.2");
        assert_eq!(
            c,
            "flush chain ip warden-t c-def\n\
             delete element ip warden-t containers { \"t-1-0\" }\n\
             delete chain ip warden-t c-def\n\
             delete element ip warden-t net_in { 45099 }\n"
        );
        let none = t.stale_commands("warden-t", &|_| true, &|_| true);
        assert_eq!(none, "");
        let all = t.stale_commands("warden-t", &|_| false, &|_| false);
        assert!(all.contains("delete element ip warden-t sources { \"t-0-0\" . 10.254.200.2 }"));
    }
}
