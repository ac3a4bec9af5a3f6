//! Splitting a container's rules into disjoint set elements (boxes of
//! ranges), so the kernel takes them.

use super::*;

/// `b \ a` as disjoint boxes.
pub(super) fn subtract(b: &[Span], a: &[Span]) -> Vec<Vec<Span>> {
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

pub(super) fn split(rules: &[Rule]) -> Vec<Elements> {
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
