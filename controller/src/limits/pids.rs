//! The pids limit (`pids.max`, the same file on v1 and v2): the most tasks
//! (processes and threads) the container may hold, so that a fork bomb is
//! stopped at it. 0 means no limit (`max`).

use super::{Cgroup, LimitError};

pub fn set(cg: &Cgroup, n: u64) -> Result<(), LimitError> {
    if n == 0 {
        cg.write("pids.max", "max")
    } else {
        cg.write("pids.max", &n.to_string())
    }
}

/// The current limit; `None` when there is none (`max`).
pub fn get(cg: &Cgroup) -> Result<Option<u64>, LimitError> {
    let v = cg.read_u64("pids.max")?;
    Ok((v != u64::MAX).then_some(v))
}
