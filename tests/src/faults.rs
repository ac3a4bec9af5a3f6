//! Helpers of the fault tests (tests/tests/faults.rs): a seeded random
//! source, counts taken from the environment, and a census of the host
//! resources one server owns (by its resource prefix and depot) and of the
//! server process itself, to prove that faults and long runs leak nothing.
//!
//! Every count is scoped to the server under test (its prefix, its depot,
//! its pid): other tests and other users of the machine never move them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// A small seeded generator (splitmix64): the same seed replays the same
/// choices, so a failing run can be repeated with its printed seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`lo` when the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }
}

/// The seed in `$var` (decimal), else one from the clock; printed either
/// way (straight to stderr, past the harness's capture) so a failing run
/// can be replayed with `var=SEED`.
pub fn seed(var: &str) -> u64 {
    let s = match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a decimal number")),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    };
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{var}={s} (set it to replay this run)");
    s
}

/// The count in `$var` (decimal), else `default`.
pub fn count(var: &str, default: u64) -> u64 {
    match std::env::var(var) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={v:?} is not a decimal number")),
        Err(_) => default,
    }
}

/// What one server holds on the host and in its own process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    /// Cgroup directories below `warden-P` in every hierarchy.
    pub cgroups: usize,
    /// Host mounts naming the depot.
    pub mounts: usize,
    /// Loop devices backed by a file in the depot.
    pub loops: usize,
    /// Network interfaces named `P-...`.
    pub links: usize,
    /// Elements of every set and map of the table `ip warden-P`, plus its
    /// per-container chains `c-...`.
    pub nft: usize,
    /// Open file descriptors of the server.
    pub fds: usize,
    /// Threads of the server.
    pub threads: usize,
    /// Resident set size of the server (kB).
    pub rss_kb: u64,
}

impl Census {
    /// Counts everything for the server `pid` with resource prefix
    /// `prefix` and container depot `depot`.
    pub fn take(prefix: &str, depot: &Path, pid: i32) -> Census {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        Census {
            cgroups: cgroup_dirs(prefix).len(),
            mounts: mounts_naming(depot),
            loops: loops_in(depot),
            links: links_named(prefix).len(),
            nft: nft_table(prefix).total(),
            fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
                .map(|d| d.count())
                .unwrap_or(0),
            threads: field("Threads:") as usize,
            rss_kb: field("VmRSS:"),
        }
    }

    /// The host part (everything but the server process's own counts).
    pub fn host(&self) -> (usize, usize, usize, usize, usize) {
        (self.cgroups, self.mounts, self.loops, self.links, self.nft)
    }
}

/// Paths of the cgroup directories below `warden-P` in every hierarchy
/// (the containers' cgroups; the `warden-P` parents are not counted).
pub fn cgroup_dirs(prefix: &str) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") else {
        return v;
    };
    for h in rd.flatten() {
        if h.path().is_symlink() {
            continue; // co-mounted hierarchies appear under two names
        }
        let parent = h.path().join(format!("warden-{prefix}"));
        if let Ok(rd) = std::fs::read_dir(&parent) {
            v.extend(
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    v
}

/// True when a `warden-P` parent cgroup exists in any hierarchy.
pub fn cgroup_parent_exists(prefix: &str) -> bool {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| {
            rd.flatten()
                .any(|h| h.path().join(format!("warden-{prefix}")).is_dir())
        })
        .unwrap_or(false)
}

/// Lines of the host's mountinfo naming `depot`.
pub fn mounts_naming(depot: &Path) -> usize {
    let d = depot.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&d))
        .count()
}

/// Loop devices whose backing file is in `depot`.
pub fn loops_in(depot: &Path) -> usize {
    let d = depot.display().to_string();
    std::fs::read_dir("/sys/block")
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("loop/backing_file"))
                        .is_ok_and(|b| b.contains(&d))
                })
                .count()
        })
        .unwrap_or(0)
}

/// Names of the network interfaces named `P-...` (host side only: the
/// container ends live in the containers' namespaces).
pub fn links_named(prefix: &str) -> Vec<String> {
    let p = format!("{prefix}-");
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&p))
                .collect()
        })
        .unwrap_or_default()
}

/// The table `ip warden-P` as `nft -j` lists it: element counts of each
/// set and map by name, and the names of the per-container chains.
#[derive(Clone, Debug, Default)]
pub struct NftTable {
    pub exists: bool,
    pub elements: BTreeMap<String, usize>,
    pub container_chains: Vec<String>,
}

impl NftTable {
    pub fn total(&self) -> usize {
        self.elements.values().sum::<usize>() + self.container_chains.len()
    }

    pub fn elements_of(&self, set: &str) -> usize {
        self.elements.get(set).copied().unwrap_or(0)
    }
}

/// Lists the table `ip warden-P` (`nft -j`; absent: `exists` false).
pub fn nft_table(prefix: &str) -> NftTable {
    let out = Command::new("nft")
        .args(["-j", "list", "table", "ip", &format!("warden-{prefix}")])
        .output()
        .expect("run nft");
    let mut t = NftTable::default();
    if !out.status.success() {
        return t;
    }
    t.exists = true;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft -j prints JSON");
    for o in v["nftables"].as_array().into_iter().flatten() {
        for kind in ["set", "map"] {
            if let Some(s) = o.get(kind) {
                let name = s["name"].as_str().unwrap_or_default().to_string();
                let n = s["elem"].as_array().map_or(0, |a| a.len());
                *t.elements.entry(name).or_default() += n;
            }
        }
        if let Some(name) = o.get("chain").and_then(|c| c["name"].as_str()) {
            if name.starts_with("c-") {
                t.container_chains.push(name.to_string());
            }
        }
    }
    t
}

/// Processes (pid, command line) whose command line names `needle`.
pub fn procs_naming(needle: &str) -> Vec<(i32, String)> {
    let mut v = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return v;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            v.push((pid, cmd.trim().to_string()));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_replays_and_stays_in_range() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..1000 {
            let x = a.range(10, 20);
            assert_eq!(x, b.range(10, 20));
            assert!((10..20).contains(&x));
        }
        assert_eq!(Rng::new(1).range(5, 5), 5);
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
