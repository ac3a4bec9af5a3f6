//! `info`'s memory_stat, cpu_stat and disk_stat, in warden's field names.
//!
//! * memory_stat, v1: memory.stat as is (warden's fields are its names).
//!   v2 memory.stat names are mapped: cache <- file, rss <- anon,
//!   mapped_file <- file_mapped, pgfault, pgmajfault, the four LRU lists
//!   and unevictable under their own names, swap <- memory.swap.current,
//!   hierarchical_memory_limit <- memory.max (max: [`memory::UNLIMITED`]),
//!   hierarchical_memsw_limit <- memory.max + memory.swap.max (capped at
//!   the same). v2 statistics always include descendants, so each `total_*`
//!   field equals its plain one. v2 has no pgpgin/pgpgout: left unset.
//! * cpu_stat: usage in nanoseconds, user and system in USER_HZ ticks
//!   (1/100 s), as v1's cpuacct.usage and cpuacct.stat give them; on v2
//!   from cpu.stat's usage_usec, user_usec, system_usec.
//! * disk_stat: with a disk image ([`disk`]), its used bytes and inodes
//!   (the ballast excepted); without, the upper layer walked (`du`).

use super::{disk, find, memory};
use crate::container::Container;
use crate::proto::{CpuStat, DiskStat, InfoResponse, MemoryStat};
use std::path::Path;

/// Fills memory_stat, cpu_stat and disk_stat of `r` (each left unset when
/// its source cannot be read).
pub fn fill(c: &Container, r: &mut InfoResponse) {
    let cg = c.cgroups();
    if let Some(m) = find(&cg, "memory") {
        r.memory_stat = if m.v2 {
            memory_stat_v2(&m.dir)
        } else {
            std::fs::read_to_string(m.dir.join("memory.stat"))
                .ok()
                .map(|t| crate::container::memory_stat(&t))
        };
    }
    if let Some(cpu) = find(&cg, "cpuacct") {
        r.cpu_stat = if cpu.v2 {
            cpu_stat_v2(&cpu.dir)
        } else {
            cpu_stat_v1(&cpu.dir)
        };
    }
    r.disk_stat = Some(disk_stat(&c.path));
}

pub fn disk_stat(cp: &Path) -> DiskStat {
    let mnt = disk::mount_point(cp);
    if disk::is_mounted(&mnt) {
        if let Ok(u) = disk::usage(&mnt) {
            return DiskStat {
                bytes_used: Some(u.used),
                inodes_used: Some(u.inodes_used),
            };
        }
    }
    let (bytes, inodes) = crate::container::du(&cp.join("tmp/rootfs/upper"));
    DiskStat {
        bytes_used: Some(bytes),
        inodes_used: Some(inodes),
    }
}

fn num(dir: &Path, file: &str) -> Option<u64> {
    let t = std::fs::read_to_string(dir.join(file)).ok()?;
    let t = t.trim();
    if t == "max" {
        Some(u64::MAX)
    } else {
        t.parse().ok()
    }
}

/// "key value" lines.
fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

fn cpu_stat_v1(dir: &Path) -> Option<CpuStat> {
    let usage = num(dir, "cpuacct.usage")?;
    let stat = std::fs::read_to_string(dir.join("cpuacct.stat")).unwrap_or_default();
    Some(CpuStat {
        usage: Some(usage),
        user: field(&stat, "user"),
        system: field(&stat, "system"),
    })
}

fn cpu_stat_v2(dir: &Path) -> Option<CpuStat> {
    let t = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
    Some(cpu_stat_v2_text(&t))
}

/// v2 cpu.stat -> warden's CpuStat (usec -> ns and USER_HZ ticks).
pub fn cpu_stat_v2_text(t: &str) -> CpuStat {
    CpuStat {
        usage: field(t, "usage_usec").map(|u| u.saturating_mul(1000)),
        user: field(t, "user_usec").map(|u| u / 10_000),
        system: field(t, "system_usec").map(|u| u / 10_000),
    }
}

fn memory_stat_v2(dir: &Path) -> Option<MemoryStat> {
    let t = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
    let max = num(dir, "memory.max");
    let swap_max = num(dir, "memory.swap.max");
    let swap = num(dir, "memory.swap.current");
    Some(memory_stat_v2_text(&t, max, swap_max, swap))
}

/// v2 memory.stat (+ memory.max, memory.swap.max, memory.swap.current) ->
/// warden's MemoryStat.
pub fn memory_stat_v2_text(
    t: &str,
    max: Option<u64>,
    swap_max: Option<u64>,
    swap: Option<u64>,
) -> MemoryStat {
    let f = |k| field(t, k);
    let limit = max.map(|m| m.min(memory::UNLIMITED));
    let memsw = match (max, swap_max) {
        (Some(m), Some(s)) => Some(m.saturating_add(s).min(memory::UNLIMITED)),
        (Some(m), None) => Some(m.min(memory::UNLIMITED)),
        _ => None,
    };
    MemoryStat {
        cache: f("file"),
        rss: f("anon"),
        mapped_file: f("file_mapped"),
        pgpgin: None,
        pgpgout: None,
        swap,
        pgfault: f("pgfault"),
        pgmajfault: f("pgmajfault"),
        inactive_anon: f("inactive_anon"),
        active_anon: f("active_anon"),
        inactive_file: f("inactive_file"),
        active_file: f("active_file"),
        unevictable: f("unevictable"),
        hierarchical_memory_limit: limit,
        hierarchical_memsw_limit: memsw,
        total_cache: f("file"),
        total_rss: f("anon"),
        total_mapped_file: f("file_mapped"),
        total_pgpgin: None,
        total_pgpgout: None,
        total_swap: swap,
        total_pgfault: f("pgfault"),
        total_pgmajfault: f("pgmajfault"),
        total_inactive_anon: f("inactive_anon"),
        total_active_anon: f("active_anon"),
        total_inactive_file: f("inactive_file"),
        total_active_file: f("active_file"),
        total_unevictable: f("unevictable"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_memory_names() {
        let t = "anon 4096\nfile 8192\nfile_mapped 100\npgfault 7\npgmajfault 1\ninactive_anon 1\nactive_anon 2\ninactive_file 3\nactive_file 4\nunevictable 5\n";
        let m = memory_stat_v2_text(t, Some(u64::MAX), Some(0), Some(0));
        assert_eq!(m.rss, Some(4096));
        assert_eq!(m.cache, Some(8192));
        assert_eq!(m.total_rss, Some(4096));
        assert_eq!(m.mapped_file, Some(100));
        assert_eq!(m.hierarchical_memory_limit, Some(memory::UNLIMITED));
        assert_eq!(m.unevictable, Some(5));
        let m = memory_stat_v2_text(t, Some(1 << 20), Some(0), None);
        assert_eq!(m.hierarchical_memsw_limit, Some(1 << 20));
    }

    #[test]
    fn v2_cpu_units() {
        let c = cpu_stat_v2_text("usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n");
        assert_eq!(c.usage, Some(1_500_000_000));
        assert_eq!(c.user, Some(100));
        assert_eq!(c.system, Some(50));
    }
}
