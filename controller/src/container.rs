//! One container: its fixed resources, mutable state, jobs, the snapshot
//! file and the stats `info` reports.
//!
//! # snapshot.json (CP/snapshot.json)
//!
//! Written after every change (create, spawn, job end, stop, net_in) and on
//! drain: to `CP/snapshot.json.tmp`, then renamed over `CP/snapshot.json`,
//! so a reader sees the old or the new file, never a torn one. Only the
//! drain write fsyncs the temp file first (it must survive a host restart);
//! the routine writes need only survive the server's death (the page cache
//! keeps them), which keeps the hot path (spawn, job end) free of fsync.
//! A JSON object:
//!
//! ```text
//! { "version": 1, "id": "<11 chars>", "handle": "<handle>",
//!   "state": "born|active|stopped|destroyed", "events": ["..."],
//!   "grace_time": <seconds or null>,
//!   "resources": { "network_index": N, "uid": U, "ports": [..],
//!                  "net_in": [[host_port, container_port], ..] },
//!   "jobs": { "<id>": { "discard_output": bool, "log_tag": str|null,
//!                       "iomux_spawn_pid": pid|null, "iomux_link_pid": pid|null,
//!                       "status": <exit status, absent while running> } } }
//! ```
//!
//! A container directory without a readable snapshot is destroyed on start,
//! and so is one holding the file `destroying` (a destroy was under way:
//! `crate::orphans`).

use crate::error::RequestError;
use crate::job::Job;
use crate::proto;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Born,
    Active,
    Stopped,
    Destroyed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Born => "born",
            State::Active => "active",
            State::Stopped => "stopped",
            State::Destroyed => "destroyed",
        }
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Resources {
    pub network_index: u32,
    pub uid: u32,
    #[serde(default)]
    pub ports: Vec<u32>,
    #[serde(default)]
    pub net_in: Vec<(u32, u32)>,
    /// net_out rules in order (warden's snapshot format; crate::netout).
    #[serde(default)]
    pub net_out: Vec<crate::netout::Rule>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct JobSnap {
    #[serde(default)]
    pub discard_output: bool,
    #[serde(default)]
    pub log_tag: Option<String>,
    #[serde(default)]
    pub iomux_spawn_pid: Option<i32>,
    #[serde(default)]
    pub iomux_link_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub id: String,
    pub handle: String,
    pub state: State,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default)]
    pub grace_time: Option<u64>,
    pub resources: Resources,
    #[serde(default)]
    pub jobs: BTreeMap<u32, JobSnap>,
}

#[derive(Debug)]
pub struct Inner {
    pub state: State,
    pub events: Vec<String>,
    pub grace_time: Option<u64>,
    pub res: Resources,
    pub jobs: BTreeMap<u32, Arc<Job>>,
}

/// Grace timer bookkeeping: connections referencing the container and
/// since when none has.
#[derive(Debug)]
pub struct Grace {
    pub conns: usize,
    pub idle_since: Option<Instant>,
    /// Least idle time before the timer may fire, whatever the grace time:
    /// set for a re-adopted container until a connection references it
    /// (see `server::RECONNECT_WINDOW`), else zero.
    pub floor: Duration,
}

#[derive(Debug)]
pub struct Container {
    pub id: String,
    pub handle: String,
    pub path: PathBuf,
    pub host_ip: Ipv4Addr,
    pub container_ip: Ipv4Addr,
    /// Held for the whole of a request that changes the container.
    pub op: Mutex<()>,
    pub inner: Mutex<Inner>,
    pub grace: Mutex<Grace>,
    /// Set by destroy before it kills the container's processes
    /// (crate::lifecycle); a copy in flight ends when it sees it.
    pub destroying: std::sync::atomic::AtomicBool,
    /// Requests on this container not yet started (crate::dispatch).
    pub order: crate::dispatch::Order,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Container {
    pub fn new(
        id: String,
        handle: String,
        path: PathBuf,
        net_base: u32,
        res: Resources,
        grace_time: Option<u64>,
    ) -> Container {
        let net = net_base + res.network_index * 4;
        Container {
            id,
            handle,
            path,
            host_ip: Ipv4Addr::from(net + 1),
            container_ip: Ipv4Addr::from(net + 2),
            op: Mutex::new(()),
            inner: Mutex::new(Inner {
                state: State::Born,
                events: vec![],
                grace_time,
                res,
                jobs: BTreeMap::new(),
            }),
            grace: Mutex::new(Grace {
                conns: 0,
                idle_since: Some(Instant::now()),
                floor: Duration::ZERO,
            }),
            destroying: Default::default(),
            order: Default::default(),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.inner)
    }

    pub fn op(&self) -> MutexGuard<'_, ()> {
        lock(&self.op)
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    /// warden's check_state_in.
    pub fn check_state(&self, allowed: &[State]) -> Result<(), RequestError> {
        let current = self.state();
        if allowed.contains(&current) {
            Ok(())
        } else {
            Err(RequestError::State {
                allowed: allowed.to_vec(),
                current,
            })
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        let g = self.lock();
        Snapshot {
            version: 1,
            id: self.id.clone(),
            handle: self.handle.clone(),
            state: g.state,
            events: g.events.clone(),
            grace_time: g.grace_time,
            resources: g.res.clone(),
            jobs: g
                .jobs
                .iter()
                .map(|(id, j)| {
                    let s = j.lock();
                    (
                        *id,
                        JobSnap {
                            discard_output: j.discard_output,
                            log_tag: j.log_tag.clone(),
                            iomux_spawn_pid: j.spawn_pid,
                            iomux_link_pid: s.link_pid,
                            // A job that ended while this server was up
                            // keeps its status over a restart, even if its
                            // linker had not delivered it yet (a drain ends
                            // the linkers).
                            status: s.status.or_else(|| j.status_file()),
                        },
                    )
                })
                .collect(),
        }
    }

    /// Writes snapshot.json atomically (temp, rename). With `durable`
    /// (drain), the temp file is fsynced before the rename; the routine
    /// writes after each change skip that: they only need to survive the
    /// server's death, not the host's.
    pub fn write_snapshot(&self) -> std::io::Result<()> {
        self.write_snapshot_with(false)
    }

    /// See [`Container::write_snapshot`].
    pub fn write_snapshot_with(&self, durable: bool) -> std::io::Result<()> {
        let snap = self.snapshot();
        let data = serde_json::to_vec(&snap).map_err(std::io::Error::other)?;
        // Serialise writers: the inner lock is not held here, so use the
        // grace mutex as a cheap per-container write lock.
        let _w = lock(&self.grace);
        let tmp = self.path.join("snapshot.json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, self.path.join("snapshot.json"))
    }

    pub fn read_snapshot(path: &Path) -> Result<Snapshot, String> {
        let data = std::fs::read(path.join("snapshot.json")).map_err(|e| e.to_string())?;
        let s: Snapshot = serde_json::from_slice(&data).map_err(|e| e.to_string())?;
        if s.version != 1 {
            return Err(format!("unknown snapshot version {}", s.version));
        }
        Ok(s)
    }

    /// The cgroup directories of the container (`CP/run/cgroups`).
    pub fn cgroups(&self) -> Vec<(String, PathBuf)> {
        std::fs::read_to_string(self.path.join("run/cgroups"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.trim().to_string(), PathBuf::from(v.trim())))
            })
            .collect()
    }

    pub fn wshd_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.path.join("run/wshd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Whether `rel` (e.g. `bin/bash`) exists in the container's root,
    /// resolved as the container would (symlinks stay inside its root:
    /// openat2 RESOLVE_IN_ROOT on `/proc/<wshd>/root`). None when that
    /// cannot be told (no wshd, or an old kernel).
    pub fn exists_in_root(&self, rel: &str) -> Option<bool> {
        use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
        let pid = self.wshd_pid()?;
        let root = std::fs::File::open(format!("/proc/{pid}/root")).ok()?;
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        match openat2(std::os::fd::AsRawFd::as_raw_fd(&root), rel, how) {
            Ok(fd) => {
                let _ = nix::unistd::close(fd);
                Some(true)
            }
            Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => Some(false),
            Err(_) => None,
        }
    }

    /// True when wshd's process is alive (its pid file names a live wshd).
    pub fn wshd_alive(&self) -> bool {
        let Some(pid) = self.wshd_pid() else {
            return false;
        };
        wsys::proc_::Stat::of(pid).is_some_and(|s| !s.exited())
    }

    /// The info response (state, addresses, jobs, stats).
    pub fn info(&self) -> proto::InfoResponse {
        let (state, events, job_ids) = {
            let g = self.lock();
            (
                g.state,
                g.events.clone(),
                g.jobs
                    .iter()
                    .filter(|(_, j)| j.finished().is_none())
                    .map(|(id, _)| *id as u64)
                    .collect(),
            )
        };
        let mut r = proto::InfoResponse {
            state: Some(state.as_str().into()),
            events,
            host_ip: Some(self.host_ip.to_string()),
            container_ip: Some(self.container_ip.to_string()),
            container_path: Some(self.path.display().to_string()),
            job_ids,
            ..Default::default()
        };
        // memory_stat, cpu_stat, disk_stat (v1 and v2).
        crate::limits::stats::fill(self, &mut r);
        r.bandwidth_stat = Some(crate::bandwidth::stat(&self.path));
        r
    }
}

/// Parses cgroup v1 memory.stat into the protocol's MemoryStat.
pub fn memory_stat(text: &str) -> proto::MemoryStat {
    let mut m = proto::MemoryStat::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        let Ok(v) = v.trim().parse::<u64>() else {
            continue;
        };
        let slot = match k {
            "cache" => &mut m.cache,
            "rss" => &mut m.rss,
            "mapped_file" => &mut m.mapped_file,
            "pgpgin" => &mut m.pgpgin,
            "pgpgout" => &mut m.pgpgout,
            "swap" => &mut m.swap,
            "pgfault" => &mut m.pgfault,
            "pgmajfault" => &mut m.pgmajfault,
            "inactive_anon" => &mut m.inactive_anon,
            "active_anon" => &mut m.active_anon,
            "inactive_file" => &mut m.inactive_file,
            "active_file" => &mut m.active_file,
            "unevictable" => &mut m.unevictable,
            "hierarchical_memory_limit" => &mut m.hierarchical_memory_limit,
            "hierarchical_memsw_limit" => &mut m.hierarchical_memsw_limit,
            "total_cache" => &mut m.total_cache,
            "total_rss" => &mut m.total_rss,
            "total_mapped_file" => &mut m.total_mapped_file,
            "total_pgpgin" => &mut m.total_pgpgin,
            "total_pgpgout" => &mut m.total_pgpgout,
            "total_swap" => &mut m.total_swap,
            "total_pgfault" => &mut m.total_pgfault,
            "total_pgmajfault" => &mut m.total_pgmajfault,
            "total_inactive_anon" => &mut m.total_inactive_anon,
            "total_active_anon" => &mut m.total_active_anon,
            "total_inactive_file" => &mut m.total_inactive_file,
            "total_active_file" => &mut m.total_active_file,
            "total_unevictable" => &mut m.total_unevictable,
            _ => continue,
        };
        *slot = Some(v);
    }
    m
}

/// Bytes and inodes used under `dir` (not following symlinks, one file
/// system), bounded to 100000 entries.
pub fn du(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut bytes = 0;
    let mut inodes = 0;
    let mut stack = vec![dir.to_path_buf()];
    let dev = match std::fs::symlink_metadata(dir) {
        Ok(m) => m.dev(),
        Err(_) => return (0, 0),
    };
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            inodes += 1;
            bytes += m.blocks() * 512;
            if m.is_dir() && m.dev() == dev && inodes < 100_000 {
                stack.push(e.path());
            }
        }
    }
    (bytes, inodes)
}

/// warden's container id: 11 chars of 5 bits each from a counter seeded by
/// the clock in microseconds.
pub fn generate_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let _ = COUNTER.compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
    let id = COUNTER.fetch_add(1, Ordering::SeqCst) + 1;
    const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    (0..11)
        .map(|i| DIGITS[((id >> (55 - (i + 1) * 5)) & 31) as usize] as char)
        .collect()
}

/// A handle a client may use (S15). warden accepted any string; handles
/// never become paths here (the depot directory is named by the id), but
/// one that could name a path component outside its own is refused:
/// empty, longer than 255 bytes, containing `/`, or `.`/`..`. So is one
/// holding an ASCII control character (0x00-0x1f, 0x7f): a newline or an
/// escape in a handle would forge lines in `warden list`, the log and
/// `info` output. Anything else is accepted, all of Unicode included (C1
/// controls too: warden's spec round-trips the handle `"\xC2\x82"`).
pub fn handle_is_safe(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h != "."
        && h != ".."
        && !h.bytes().any(|b| b == b'/' || b.is_ascii_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_11_chars_and_unique() {
        let a = generate_id();
        let b = generate_id();
        assert_eq!(a.len(), 11);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'v').contains(&c)));
    }

    #[test]
    fn unsafe_handles() {
        let long = "x".repeat(256);
        for h in [
            "",
            "a/b",
            "..",
            ".",
            "/",
            "a\0b",
            "a/../b",
            long.as_str(),
            "a\nb",
            "x\n17c2bk3nd4u",
            "a\rb",
            "a\tb",
            "\x1b[2Jx",
            "a\x7fb",
            "\x01",
        ] {
            assert!(!handle_is_safe(h), "{h:?}");
        }
        for h in [
            "17c2bk3nd4u",
            "my-app_1",
            "\u{82}",
            "h\u{e9}",
            "a..b",
            ".hidden",
            " x",
        ] {
            assert!(handle_is_safe(h), "{h:?}");
        }
        assert!(handle_is_safe(&"x".repeat(255)));
    }

    #[test]
    fn memory_stat_parses() {
        let m = memory_stat("cache 10\nrss 20\ntotal_rss 30\nbogus 1\n");
        assert_eq!(
            (m.cache, m.rss, m.total_rss, m.swap),
            (Some(10), Some(20), Some(30), None)
        );
    }

    #[test]
    fn state_errors_match_warden() {
        let c = Container::new(
            "x".into(),
            "x".into(),
            "/nonexistent".into(),
            0x0afe0000,
            Resources::default(),
            None,
        );
        assert_eq!(
            c.check_state(&[State::Active, State::Stopped])
                .unwrap_err()
                .to_string(),
            "Container state must be one of 'active, stopped', current state is 'born'"
        );
        assert_eq!(c.host_ip.to_string(), "10.254.0.1");
    }

    #[test]
    fn snapshot_roundtrip() {
        let dir = std::env::temp_dir().join(format!("warden-snap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = Container::new(
            "abc".into(),
            "h".into(),
            dir.clone(),
            0,
            Resources {
                network_index: 3,
                uid: 10001,
                ports: vec![61001],
                net_in: vec![(61001, 8080)],
                ..Default::default()
            },
            Some(5),
        );
        c.lock().state = State::Active;
        c.write_snapshot().unwrap();
        let s = Container::read_snapshot(&dir).unwrap();
        assert_eq!(s.state, State::Active);
        assert_eq!(s.resources.net_in, vec![(61001, 8080)]);
        assert_eq!(s.grace_time, Some(5));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
