//! limit_memory.
//!
//! * v1: `memory.limit_in_bytes` and `memory.memsw.limit_in_bytes` (memory
//!   plus swap) both get the limit, so a container cannot swap past it.
//!   The kernel keeps `limit <= memsw`, so when the limit grows memsw is
//!   written first and when it shrinks the memory limit is. A kernel
//!   without swap accounting has no memsw file: only the memory limit is
//!   set then.
//! * v2: `memory.max` gets the limit and `memory.swap.max` 0 (the v1
//!   "memsw = limit" means no swap beyond the limit; v2 counts swap apart,
//!   so the equivalent is no swap). No swap.max file (swap accounting off):
//!   only memory.max.
//!
//! The current limit is reported as v1 reports it; v2's `max` is reported
//! as v1's "unlimited", [`UNLIMITED`].

use super::{Cgroup, LimitError};

/// v1's memory.limit_in_bytes when no limit is set (i64::MAX rounded down
/// to a page), which warden reported for "no limit".
pub const UNLIMITED: u64 = 9_223_372_036_854_771_712;

/// The current limit in bytes ([`UNLIMITED`] when none).
pub fn get(cg: &Cgroup) -> Result<u64, LimitError> {
    let v = if cg.v2 {
        cg.read_u64("memory.max")?
    } else {
        cg.read_u64("memory.limit_in_bytes")?
    };
    Ok(v.min(UNLIMITED))
}

/// Sets the limit (see the module doc for the order of the writes).
pub fn set(cg: &Cgroup, bytes: u64) -> Result<(), LimitError> {
    let wrap = |e| LimitError::Memory(Box::new(e));
    let s = bytes.to_string();
    if cg.v2 {
        cg.write("memory.max", &s).map_err(wrap)?;
        if cg.has("memory.swap.max") {
            cg.write("memory.swap.max", "0").map_err(wrap)?;
        }
        return Ok(());
    }
    let mem = "memory.limit_in_bytes";
    let memsw = "memory.memsw.limit_in_bytes";
    if !cg.has(memsw) {
        return cg.write(mem, &s).map_err(wrap);
    }
    let current = cg.read_u64(mem).map_err(wrap)?;
    let order = if bytes > current {
        [memsw, mem]
    } else {
        [mem, memsw]
    };
    for f in order {
        cg.write(f, &s).map_err(wrap)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fake(files: &[(&str, &str)]) -> (Cgroup, PathBuf) {
        let d = std::env::temp_dir().join(format!(
            "warden-memtest-{}-{}",
            std::process::id(),
            files.len()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        for (f, v) in files {
            std::fs::write(d.join(f), v).unwrap();
        }
        (
            Cgroup {
                dir: d.clone(),
                v2: files.iter().any(|(f, _)| *f == "memory.max"),
            },
            d,
        )
    }

    #[test]
    fn v1_without_memsw_sets_the_memory_limit_only() {
        let (cg, d) = fake(&[("memory.limit_in_bytes", "9223372036854771712\n")]);
        set(&cg, 1 << 20).unwrap();
        assert_eq!(get(&cg).unwrap(), 1 << 20);
        assert!(!d.join("memory.memsw.limit_in_bytes").exists());
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn v2_sets_max_and_no_swap_and_reports_max_as_unlimited() {
        let (cg, d) = fake(&[("memory.max", "max\n"), ("memory.swap.max", "max\n")]);
        assert_eq!(get(&cg).unwrap(), UNLIMITED);
        set(&cg, 1 << 20).unwrap();
        assert_eq!(get(&cg).unwrap(), 1 << 20);
        assert_eq!(
            std::fs::read_to_string(d.join("memory.swap.max")).unwrap(),
            "0"
        );
        std::fs::remove_dir_all(d).unwrap();
    }
}
