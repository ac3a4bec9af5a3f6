//! Resource limits of a container (issue 11): memory, CPU share, pids and
//! disk, set through the container's own cgroups (`CP/run/cgroups`, written
//! by hook-parent-after-clone.sh) and its disk image (see [`disk`]).
//!
//! | request | cgroup v1 | cgroup v2 |
//! |---|---|---|
//! | limit_memory | memory.limit_in_bytes, memory.memsw.limit_in_bytes | memory.max, memory.swap.max |
//! | limit_cpu | cpu.shares | cpu.weight (converted, see [`cpu`]) |
//! | (default) pids | pids.max | pids.max |
//! | limit_disk | per-container ext4 image ([`disk`]) | the same |
//!
//! Default limits from the server config ([`crate::config::Config`]
//! `container_pids_limit`, `container_memory_limit`,
//! `container_disk_limit`) are applied by [`apply_defaults`] at create,
//! whatever the client asks. `info`'s memory_stat, cpu_stat and disk_stat
//! come from [`stats`].

pub mod cpu;
pub mod disk;
pub mod memory;
pub mod pids;
pub mod stats;

use crate::config::Config;
use crate::container::{Container, State};
use crate::dispatch::Reply;
use crate::error::RequestError;
use crate::proto::{self, Type};
use crate::server::Server;
use prost::Message as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a limit could not be read or set. The Display text is what the
/// client sees.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    #[error("the container has no {0} cgroup")]
    NoCgroup(&'static str),
    #[error("{path}: {err}")]
    Io {
        path: PathBuf,
        #[source]
        err: std::io::Error,
    },
    #[error("{path}: unexpected content {text:?}")]
    Parse { path: PathBuf, text: String },
    #[error("Failed setting memory limit: {0}")]
    Memory(Box<LimitError>),
    #[error("{0}")]
    Disk(String),
    #[error("Failed setting cpu shares: {0}")]
    Cpu(Box<LimitError>),
    #[error("setting the default {0} limit: {1}")]
    Default(&'static str, Box<LimitError>),
}

/// A cgroup directory of the container and whether it is cgroup v2.
#[derive(Debug, Clone)]
pub struct Cgroup {
    pub dir: PathBuf,
    pub v2: bool,
}

impl Cgroup {
    /// The container's cgroup holding `subsystem` (v1 name), or its
    /// unified cgroup on v2.
    pub fn of(c: &Container, subsystem: &'static str) -> Result<Cgroup, LimitError> {
        find(&c.cgroups(), subsystem).ok_or(LimitError::NoCgroup(subsystem))
    }

    pub fn read(&self, file: &str) -> Result<String, LimitError> {
        read(&self.dir.join(file))
    }

    pub fn write(&self, file: &str, value: &str) -> Result<(), LimitError> {
        let p = self.dir.join(file);
        std::fs::write(&p, value).map_err(|err| LimitError::Io { path: p, err })
    }

    /// A file's content parsed as a number; `max` (v2) is `u64::MAX`.
    pub fn read_u64(&self, file: &str) -> Result<u64, LimitError> {
        let p = self.dir.join(file);
        let t = read(&p)?;
        let t = t.trim();
        if t == "max" {
            return Ok(u64::MAX);
        }
        t.parse().map_err(|_| LimitError::Parse {
            path: p,
            text: t.into(),
        })
    }

    pub fn has(&self, file: &str) -> bool {
        self.dir.join(file).exists()
    }
}

/// The entry of run/cgroups for `subsystem` (a `cpu,cpuacct` line serves
/// both), or the unified one.
pub fn find(cgroups: &[(String, PathBuf)], subsystem: &str) -> Option<Cgroup> {
    cgroups.iter().find_map(|(k, p)| {
        if k == "unified" {
            Some(Cgroup {
                dir: p.clone(),
                v2: true,
            })
        } else if k.split(',').any(|x| x == subsystem) {
            Some(Cgroup {
                dir: p.clone(),
                v2: false,
            })
        } else {
            None
        }
    })
}

fn read(p: &Path) -> Result<String, LimitError> {
    std::fs::read_to_string(p).map_err(|err| LimitError::Io {
        path: p.to_path_buf(),
        err,
    })
}

/// The server's default limits, applied to a new container after start.sh
/// (only wshd runs in it then): pids, memory and the disk limit (the disk
/// image itself is made by create.sh, see [`disk`]).
pub fn apply_defaults(cfg: &Config, c: &Container) -> Result<(), LimitError> {
    let default = |what: &'static str| move |e| LimitError::Default(what, Box::new(e));
    if cfg.container_pids_limit > 0 {
        pids::set(&Cgroup::of(c, "pids")?, cfg.container_pids_limit).map_err(default("pids"))?;
    }
    if let Some(m) = cfg.container_memory_limit {
        memory::set(&Cgroup::of(c, "memory")?, m).map_err(default("memory"))?;
    }
    if cfg.disk_quota_enabled {
        if let Some(d) = cfg.container_disk_limit {
            disk::set_limit(&disk::mount_point(&c.path), d).map_err(default("disk"))?;
        }
    }
    Ok(())
}

/// limit_memory, limit_cpu and limit_disk for a container `c` (the
/// server has looked it up): checks its state as warden did (active or
/// stopped), sets what the request asks, answers the limit in force, and
/// writes the snapshot. Takes the container's request lock.
pub fn request(srv: &Arc<Server>, c: &Arc<Container>, ty: Type, p: &[u8]) -> Reply {
    let _op = c.op();
    c.check_state(&[State::Active, State::Stopped])?;
    let body = match ty {
        Type::LimitMemory => {
            let r: proto::LimitMemoryRequest = dec(p, "LimitMemoryRequest")?;
            let cg = Cgroup::of(c, "memory")?;
            if let Some(b) = r.limit_in_bytes {
                // Armed before the limit, so no OOM it causes is missed.
                if c.state() == State::Active {
                    crate::oom_watch::arm(srv, c);
                }
                memory::set(&cg, b)?;
            }
            let limit_in_bytes = Some(memory::get(&cg)?);
            proto::LimitMemoryResponse { limit_in_bytes }.encode_to_vec()
        }
        Type::LimitCpu => {
            let r: proto::LimitCpuRequest = dec(p, "LimitCpuRequest")?;
            let cg = Cgroup::of(c, "cpu")?;
            let record = c.path.join("run/cpu_shares");
            if let Some(s) = r.limit_in_shares {
                cpu::set(&cg, s, &record).map_err(|e| LimitError::Cpu(Box::new(e)))?;
            }
            let limit_in_shares = Some(cpu::get(&cg, &record)?);
            proto::LimitCpuResponse { limit_in_shares }.encode_to_vec()
        }
        Type::LimitDisk => {
            let r: proto::LimitDiskRequest = dec(p, "LimitDiskRequest")?;
            if srv.cfg.disk_quota_enabled {
                disk::limit(&disk::mount_point(&c.path), &r)?.encode_to_vec()
            } else {
                // warden answered nothing when quotas were off.
                proto::LimitDiskResponse::default().encode_to_vec()
            }
        }
        _ => return Err(RequestError::UnknownRequest(ty.name())),
    };
    if let Err(e) = c.write_snapshot() {
        log::warn!("{:?}: snapshot: {e}", c.handle);
    }
    Ok((ty, body))
}

fn dec<M: prost::Message + Default>(p: &[u8], what: &str) -> Result<M, RequestError> {
    proto::decode_request(p).map_err(|err| RequestError::Undecodable {
        what: what.into(),
        err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_cgroups() {
        let v1 = vec![
            ("cpu,cpuacct".to_string(), PathBuf::from("/a")),
            ("memory".to_string(), PathBuf::from("/m")),
        ];
        assert_eq!(find(&v1, "cpuacct").unwrap().dir, PathBuf::from("/a"));
        assert!(!find(&v1, "memory").unwrap().v2);
        assert!(find(&v1, "pids").is_none());
        let v2 = vec![("unified".to_string(), PathBuf::from("/u"))];
        let g = find(&v2, "pids").unwrap();
        assert!(g.v2);
        assert_eq!(g.dir, PathBuf::from("/u"));
    }
}
