use super::*;
use crate::proto::NetOutRequest;

fn req(network: Option<&str>, port: Option<u32>, range: Option<&str>, proto: i32) -> NetOutRequest {
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
    let inside = |b: &Vec<Span>, p: &[u32]| b.iter().zip(p).all(|(s, x)| s.0 <= *x && *x <= s.1);
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
