//! limit_cpu: the container's CPU share.
//!
//! * v1: `cpu.shares`; the kernel raises anything below 2 to 2 (warden's
//!   "should not set the cpu shares below 2").
//! * v2: `cpu.weight` (1..10000), converted from shares as runc and crun
//!   do: `weight = 1 + (shares - 2) * 9999 / 262142` with shares clamped to
//!   2..=262144 (v1's range), so 2 maps to 1 and 262144 to 10000. The
//!   conversion loses precision (100 shares give weight 4, which would read
//!   back as 80 shares), so the shares last set are kept in
//!   `CP/run/cpu_shares` and reported while `cpu.weight` still holds what
//!   they convert to; otherwise the weight is converted back
//!   (`shares = 2 + (weight - 1) * 262142 / 9999`).

use super::{Cgroup, LimitError};
use std::path::Path;

pub const MIN_SHARES: u64 = 2;
pub const MAX_SHARES: u64 = 262_144;

/// runc's shares -> cpu.weight.
pub fn weight_of(shares: u64) -> u64 {
    let s = shares.clamp(MIN_SHARES, MAX_SHARES);
    1 + (s - 2) * 9999 / 262_142
}

/// The inverse of [`weight_of`] (exact only for the weights it yields at
/// 2 and 262144).
pub fn shares_of(weight: u64) -> u64 {
    let w = weight.clamp(1, 10_000);
    2 + (w - 1) * 262_142 / 9999
}

/// Sets the share; `record` is the container's `run/cpu_shares` (v2).
pub fn set(cg: &Cgroup, shares: u64, record: &Path) -> Result<(), LimitError> {
    if cg.v2 {
        let s = shares.clamp(MIN_SHARES, MAX_SHARES);
        cg.write("cpu.weight", &weight_of(s).to_string())?;
        std::fs::write(record, format!("{s}\n")).map_err(|err| LimitError::Io {
            path: record.to_path_buf(),
            err,
        })
    } else {
        cg.write("cpu.shares", &shares.to_string())
    }
}

/// The current share.
pub fn get(cg: &Cgroup, record: &Path) -> Result<u64, LimitError> {
    if !cg.v2 {
        return cg.read_u64("cpu.shares");
    }
    let w = cg.read_u64("cpu.weight")?;
    let kept = std::fs::read_to_string(record)
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    Ok(match kept {
        Some(s) if weight_of(s) == w => s,
        _ => shares_of(w),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_conversion() {
        assert_eq!(weight_of(2), 1);
        assert_eq!(weight_of(1), 1);
        assert_eq!(weight_of(1024), 39);
        assert_eq!(weight_of(262_144), 10_000);
        assert_eq!(weight_of(u64::MAX), 10_000);
        assert_eq!(weight_of(100), 4);
        assert_eq!(shares_of(1), 2);
        assert_eq!(shares_of(10_000), 262_144);
        // The default v2 weight (100) is about v1's default 1024 shares.
        assert_eq!(shares_of(100), 2597);
        for s in [2, 262_144] {
            assert_eq!(shares_of(weight_of(s)), s);
        }
    }
}
