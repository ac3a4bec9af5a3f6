//! Capability sets of the calling thread: the bounding set
//! (`PR_CAPBSET_READ`/`PR_CAPBSET_DROP`), the ambient set
//! (`PR_CAP_AMBIENT_CLEAR_ALL`) and effective/permitted/inheritable
//! (`capget`/`capset`, `_LINUX_CAPABILITY_VERSION_3`, two 32-bit words).
//!
//! Sets are `u64` bit masks, bit N = capability N (`CAP_CHOWN` = 0, ...).

use nix::errno::Errno;

/// Capability numbers (linux/capability.h) used by warden-rs.
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_SETPCAP: u32 = 8;
pub const CAP_SYS_MODULE: u32 = 16;
pub const CAP_SYS_RAWIO: u32 = 17;
pub const CAP_SYS_PTRACE: u32 = 19;
pub const CAP_SYS_PACCT: u32 = 20;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_SYS_BOOT: u32 = 22;
pub const CAP_SYS_TIME: u32 = 25;
pub const CAP_SYS_TTY_CONFIG: u32 = 26;
pub const CAP_AUDIT_CONTROL: u32 = 30;
pub const CAP_MAC_OVERRIDE: u32 = 32;
pub const CAP_MAC_ADMIN: u32 = 33;
pub const CAP_SYSLOG: u32 = 34;
pub const CAP_WAKE_ALARM: u32 = 35;
pub const CAP_BLOCK_SUSPEND: u32 = 36;
pub const CAP_AUDIT_READ: u32 = 37;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;
pub const CAP_CHECKPOINT_RESTORE: u32 = 40;

/// `_LINUX_CAPABILITY_VERSION_3`.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Effective, permitted and inheritable sets of the calling thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sets {
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
}

fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> nix::Result<libc::c_int> {
    // SAFETY: the prctl options used here (CAPBSET_READ/DROP, CAP_AMBIENT)
    // take integer arguments only.
    let r = unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) };
    if r == -1 {
        return Err(Errno::last());
    }
    Ok(r)
}

/// Whether capability `cap` is in the bounding set (`EINVAL`: the kernel
/// knows no such capability).
pub fn bounding_has(cap: u32) -> nix::Result<bool> {
    prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0).map(|r| r == 1)
}

/// The highest capability number this kernel knows (what
/// /proc/sys/kernel/cap_last_cap says, found without /proc).
pub fn last_cap() -> u32 {
    let mut last = 0;
    for cap in 0..64 {
        match bounding_has(cap) {
            Ok(_) => last = cap,
            Err(_) => break,
        }
    }
    last
}

/// Removes `cap` from the bounding set (needs CAP_SETPCAP).
pub fn bounding_drop(cap: u32) -> nix::Result<()> {
    prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0).map(|_| ())
}

/// The bounding set as a mask (capabilities 0..=`last`).
pub fn bounding(last: u32) -> u64 {
    (0..=last.min(63))
        .filter(|c| bounding_has(*c).unwrap_or(false))
        .fold(0, |m, c| m | (1u64 << c))
}

/// Empties the ambient set.
pub fn ambient_clear() -> nix::Result<()> {
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
    )
    .map(|_| ())
}

/// `capget` of the calling thread.
pub fn get() -> nix::Result<Sets> {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut d = [Data::default(); 2];
    // SAFETY: version 3 makes the kernel write exactly two `Data` records,
    // which `d` holds; `h` is a valid header for the calling thread.
    if unsafe { libc::syscall(libc::SYS_capget, &mut h as *mut Header, d.as_mut_ptr()) } == -1 {
        return Err(Errno::last());
    }
    let join = |lo: u32, hi: u32| lo as u64 | (hi as u64) << 32;
    Ok(Sets {
        effective: join(d[0].effective, d[1].effective),
        permitted: join(d[0].permitted, d[1].permitted),
        inheritable: join(d[0].inheritable, d[1].inheritable),
    })
}

/// `capset` of the calling thread (only lowering is always allowed).
pub fn set(s: &Sets) -> nix::Result<()> {
    let mut h = Header {
        version: VERSION_3,
        pid: 0,
    };
    let split = |v: u64| (v as u32, (v >> 32) as u32);
    let (e0, e1) = split(s.effective);
    let (p0, p1) = split(s.permitted);
    let (i0, i1) = split(s.inheritable);
    let d = [
        Data {
            effective: e0,
            permitted: p0,
            inheritable: i0,
        },
        Data {
            effective: e1,
            permitted: p1,
            inheritable: i1,
        },
    ];
    // SAFETY: version 3 makes the kernel read exactly two `Data` records
    // from `d`; `h` is a valid header naming the calling thread.
    if unsafe { libc::syscall(libc::SYS_capset, &mut h as *mut Header, d.as_ptr()) } == -1 {
        return Err(Errno::last());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_sets() {
        let last = last_cap();
        assert!(
            last >= 36,
            "kernel knows at least CAP_BLOCK_SUSPEND: {last}"
        );
        let s = get().unwrap();
        // Setting what we have is always allowed.
        set(&s).unwrap();
        assert_eq!(get().unwrap(), s);
        assert_eq!(s.effective & !s.permitted, 0);
        let b = bounding(last);
        assert_eq!(b & !((1u128 << (last + 1)) - 1) as u64, 0);
    }

    #[test]
    fn drops_in_a_child() {
        // Run in a forked child so the test process keeps its sets.
        match crate::ns::fork().unwrap() {
            crate::ns::Forked::Child => {
                let ok = (|| -> nix::Result<bool> {
                    let s = get()?;
                    set(&Sets {
                        inheritable: 0,
                        ..s
                    })?;
                    ambient_clear()?;
                    if s.effective & (1 << CAP_SETPCAP) != 0 {
                        bounding_drop(CAP_SYS_MODULE)?;
                        if bounding_has(CAP_SYS_MODULE)? {
                            return Ok(false);
                        }
                    }
                    Ok(get()?.inheritable == 0)
                })()
                .unwrap_or(false);
                crate::proc_::exit_now(if ok { 0 } else { 1 });
            }
            crate::ns::Forked::Parent(pid) => {
                let st = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None).unwrap();
                assert_eq!(
                    st,
                    nix::sys::wait::WaitStatus::Exited(nix::unistd::Pid::from_raw(pid), 0)
                );
            }
        }
    }
}
