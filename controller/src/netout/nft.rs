//! The nft commands that add, restore and sweep net_out set elements.

use super::*;
use crate::host::layout::{self as names, Layout};
use crate::proto::NetOutRequest;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::Stdio;

pub(super) fn span_text(s: Span, ip: bool) -> String {
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
pub(super) fn commands(table: &str, iface: &str, elems: &Elements) -> String {
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

pub(super) fn nft_stdin(args: &[&str], input: &str) -> Result<(), NetOutError> {
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
pub(super) fn stale_commands(
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
