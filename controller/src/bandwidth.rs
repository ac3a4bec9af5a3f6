//! limit_bandwidth and info's bandwidth_stat (warden's semantics).
//!
//! `rate` is bytes per second, `burst` bytes. `net.sh rate` puts a token
//! bucket (tc tbf) on the container's host veth (what the container
//! receives: warden's `in_rate`/`in_burst`) and on its ifb device `P-N-2`,
//! which gets the host veth's ingress redirected to it (what the container
//! sends: `out_rate`/`out_burst`). The ifb device goes with `net.sh
//! teardown` (destroy) and the start-up sweep.
//!
//! bandwidth_stat is read back from the kernel (`tc -j qdisc show`): a
//! root tbf gives rate (bytes/s) and burst (bytes); without one, warden's
//! "unlimited" 0xffffffff. A container that never had a limit (no ifb
//! device) is answered without running tc.

use crate::error::RequestError;
use crate::host::layout::Layout;
use crate::proto::BandwidthStat;
use std::path::Path;

/// warden's value for "no limit".
pub const UNLIMITED: u64 = 0xffff_ffff;

/// Rate and burst of the root tbf qdisc in `tc -j qdisc show` output.
pub fn parse_tbf(json: &[u8]) -> Option<(u64, u64)> {
    let v: serde_json::Value = serde_json::from_slice(json).ok()?;
    v.as_array()?
        .iter()
        .find(|q| q["kind"] == "tbf" && q["root"] == true)
        .and_then(|q| {
            Some((
                q["options"]["rate"].as_u64()?,
                q["options"]["burst"].as_u64()?,
            ))
        })
}

fn tbf_of(dev: &str) -> Option<(u64, u64)> {
    let o = crate::sh::command("tc")
        .args(["-j", "qdisc", "show", "dev", dev])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    o.status.success().then(|| parse_tbf(&o.stdout)).flatten()
}

/// `network_host_iface` from the container's `etc/config`.
pub fn host_iface(container_path: &Path) -> Option<String> {
    let t = std::fs::read_to_string(container_path.join("etc/config")).ok()?;
    t.lines()
        .find_map(|l| l.strip_prefix("network_host_iface="))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
}

/// The container's bandwidth_stat.
pub fn stat(container_path: &Path) -> BandwidthStat {
    let mut s = BandwidthStat {
        in_rate: Some(UNLIMITED),
        in_burst: Some(UNLIMITED),
        out_rate: Some(UNLIMITED),
        out_burst: Some(UNLIMITED),
    };
    let Some(host) = host_iface(container_path) else {
        return s;
    };
    let Some(ifb) = Layout::ifb_of_host_iface(&host) else {
        return s;
    };
    if !Path::new("/sys/class/net").join(&ifb).exists() {
        return s;
    }
    if let Some((r, b)) = tbf_of(&host) {
        s.in_rate = Some(r);
        s.in_burst = Some(b);
    }
    if let Some((r, b)) = tbf_of(&ifb) {
        s.out_rate = Some(r);
        s.out_burst = Some(b);
    }
    s
}

/// The limit_bandwidth request on container `c` (warden: active or
/// stopped containers).
pub fn request(
    c: &crate::container::Container,
    r: &crate::proto::LimitBandwidthRequest,
) -> Result<crate::proto::LimitBandwidthResponse, RequestError> {
    use crate::container::State;
    let rate = *crate::error::required(&r.rate, "LimitBandwidthRequest", "rate")?;
    let burst = *crate::error::required(&r.burst, "LimitBandwidthRequest", "burst")?;
    let _op = c.op();
    c.check_state(&[State::Active, State::Stopped])?;
    // tc takes the rate in bit/s (64 bits).
    if rate == 0 || rate > u64::MAX / 8 {
        return Err(RequestError::Bandwidth("rate", rate, "bytes/s, at least 1"));
    }
    if burst == 0 || burst > u32::MAX as u64 {
        return Err(RequestError::Bandwidth(
            "burst",
            burst,
            "bytes, 1..4294967295",
        ));
    }
    crate::sh::run(
        "net.sh rate",
        &c.path.join("net.sh"),
        &["rate"],
        [("RATE", rate.to_string()), ("BURST", burst.to_string())],
    )?;
    Ok(crate::proto::LimitBandwidthResponse {
        rate: Some(rate),
        burst: Some(burst),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tbf_is_read_from_tc_json() {
        let j = br#"[{"kind":"tbf","handle":"8002:","root":true,"refcnt":3,"options":{"rate":100000,"burst":1000,"lat":25000}},{"kind":"ingress","handle":"ffff:","parent":"ffff:fff1","options":{}}]"#;
        assert_eq!(parse_tbf(j), Some((100000, 1000)));
        let j = br#"[{"kind":"noqueue","handle":"0:","root":true,"refcnt":2,"options":{}}]"#;
        assert_eq!(parse_tbf(j), None);
        assert_eq!(parse_tbf(b"garbage"), None);
    }
}
