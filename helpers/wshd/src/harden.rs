//! Session hardening: what every session process gets between fork and
//! exec (design.md section 4; failure-modes.md S5, S6, S7).
//!
//! The seccomp programs are compiled once, when wshd starts (before the
//! clone; no threads). The main program is installed once on the container
//! init itself, right before it starts serving (wshd needs none of the
//! denied calls after boot), so every session inherits it through fork at
//! no cost. Measured here: attaching the ~200-instruction program costs
//! about 0.3 ms per `seccomp(2)` call (the kernel translates and JITs it
//! and precomputes its per-syscall cache), which per session would have
//! added ~30% to `wsh true`. Only with `--allow-nested` (where root
//! sessions must be allowed to mount) do non-root sessions get a second,
//! smaller filter (~80 instructions) with the mount/user-namespace rules,
//! stacked right before exec (~0.25 ms per non-root session).
//!
//! Order in the session child:
//!
//! ```text
//! setgroups, setgid
//! drop_privileges   bounding set: every capability (non-root) or DROPPED_ROOT
//!                   (root); ambient set emptied; inheritable set emptied;
//!                   root: effective/permitted reduced to the new bounding set
//! setuid            (non-root: the kernel clears effective/permitted)
//! after_setuid      non-root: effective/permitted/inheritable set to 0 again
//!                   (whatever securebits wshd inherited), no_new_privs
//! chdir, close-on-exec of fds >= 3
//! seal              --allow-nested, non-root only: the extra filter
//!                   (after no_new_privs)
//! execve            (the init's filter is inherited in every case)
//! ```
//!
//! # Capabilities of root sessions (privileged jobs)
//!
//! Warden's privileged jobs expect to act as root inside their namespaces
//! (network setup with CAP_NET_ADMIN, chown, mknod within the device
//! cgroup, raising their own limits...), so root sessions keep every
//! capability except [`DROPPED_ROOT`]: those act on the whole machine
//! rather than on the container's namespaces (modules, raw I/O, reboot,
//! clock, MAC policy, kernel log, audit, wake alarms, suspend blocking,
//! ptrace, process accounting, tty config, perf/bpf, checkpoint/restore,
//! and DAC_READ_SEARCH, which enables `open_by_handle_at`, the "shocker"
//! escape). CAP_SYS_ADMIN stays (mount is blocked by seccomp instead, see
//! below); dropping it would break warden's privileged scripts.
//!
//! Non-root sessions end with empty effective, permitted, inheritable,
//! ambient and bounding sets and no_new_privs, so a setuid-root binary
//! inside the container runs without privilege (S5, S6).
//!
//! # Seccomp policy (x86_64 only)
//!
//! A denylist: anything not named here is allowed, so shells, busybox and
//! warden's jobs keep working. The program starts with a hand-written
//! prefix, then the part compiled by `seccompiler`:
//!
//! | condition                                     | action            |
//! |-----------------------------------------------|-------------------|
//! | arch is not AUDIT_ARCH_X86_64 (i386 `int 0x80`)| kill the process |
//! | syscall number has bit 0x40000000 (x32 ABI)   | EPERM             |
//! | clone3                                        | ENOSYS (libc falls back to clone) |
//! | [`DENIED`] (keyring, modules, kexec, perf, bpf, userfaultfd, ptrace, process_vm_*, swap, reboot, acct, open_by_handle_at, iopl/ioperm, io_uring) | EPERM |
//! | [`DENIED_UNNESTED`]: mount, umount2, pivot_root, the new mount API (open_tree, move_mount, fsopen, fsconfig, fsmount, fspick, mount_setattr), and unshare/clone with CLONE_NEWUSER | EPERM, for non-root sessions always; for root sessions unless wshd runs with `--allow-nested` |
//!
//! With `--allow-nested` (warden's `allow_nested_warden`), root sessions
//! may mount and create namespaces (a nested warden needs both); non-root
//! sessions are filtered the same either way.

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};
use std::collections::BTreeMap;
use thiserror::Error;
use wsys::seccomp::Insn;

/// Capabilities removed from root sessions' bounding set.
pub const DROPPED_ROOT: &[Capability] = &[
    Capability::CAP_DAC_READ_SEARCH,
    Capability::CAP_SYS_MODULE,
    Capability::CAP_SYS_RAWIO,
    Capability::CAP_SYS_PTRACE,
    Capability::CAP_SYS_PACCT,
    Capability::CAP_SYS_BOOT,
    Capability::CAP_SYS_TIME,
    Capability::CAP_SYS_TTY_CONFIG,
    Capability::CAP_AUDIT_CONTROL,
    Capability::CAP_MAC_OVERRIDE,
    Capability::CAP_MAC_ADMIN,
    Capability::CAP_SYSLOG,
    Capability::CAP_WAKE_ALARM,
    Capability::CAP_BLOCK_SUSPEND,
    Capability::CAP_AUDIT_READ,
    Capability::CAP_PERFMON,
    Capability::CAP_BPF,
    Capability::CAP_CHECKPOINT_RESTORE,
];

/// Syscalls every session gets EPERM for.
pub const DENIED: &[(&str, i64)] = &[
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("keyctl", libc::SYS_keyctl),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("bpf", libc::SYS_bpf),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("acct", libc::SYS_acct),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("iopl", libc::SYS_iopl),
    ("ioperm", libc::SYS_ioperm),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
];

/// Syscalls denied (EPERM) unless the session is root and wshd runs with
/// `--allow-nested`; unshare and clone only with CLONE_NEWUSER in flags.
pub const DENIED_UNNESTED: &[(&str, i64)] = &[
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("unshare", libc::SYS_unshare),
    ("clone", libc::SYS_clone),
];

/// x32 syscall numbers carry this bit (`__X32_SYSCALL_BIT`).
const X32_BIT: u32 = 0x4000_0000;
/// `AUDIT_ARCH_X86_64`.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
// Classic BPF opcodes (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const RET_K: u16 = 0x06;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
// struct seccomp_data: int nr; __u32 arch; ...
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

#[derive(Debug, Error)]
pub enum HardenError {
    #[error("seccomp filter: only x86_64 is supported")]
    Arch,
    #[error("seccomp filter: {0}")]
    Compile(String),
    #[error("{0}: {1}")]
    Sys(&'static str, Errno),
    #[error("{0}: {1}")]
    Caps(&'static str, caps::errors::CapsError),
}

/// The compiled programs and the kernel's highest capability, built once.
#[derive(Clone)]
pub struct Policy {
    /// Installed on the container init before it serves (inherited by all).
    init: Vec<Insn>,
    /// `--allow-nested` only: [`DENIED_UNNESTED`] for non-root sessions.
    unnested: Option<Vec<Insn>>,
    /// The capabilities this kernel knows (probed once, see `build`).
    supported: CapsHashSet,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("init_insns", &self.init.len())
            .field("unnested_insns", &self.unnested.as_ref().map(Vec::len))
            .field("supported", &self.supported.len())
            .finish()
    }
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// The hand-written start of every program: arch check, x32, clone3.
fn prefix() -> Vec<Insn> {
    vec![
        insn(LD_W_ABS, 0, 0, OFF_ARCH),
        insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        insn(RET_K, 0, 0, RET_KILL_PROCESS),
        insn(LD_W_ABS, 0, 0, OFF_NR),
        insn(JGE_K, 0, 1, X32_BIT),
        insn(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32),
        insn(JEQ_K, 0, 1, libc::SYS_clone3 as u32),
        insn(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32),
    ]
}

/// Compiles a program: with `base`, the prefix and [`DENIED`]; with
/// `unnested`, [`DENIED_UNNESTED`].
fn compile(base: bool, unnested: bool) -> Result<Vec<Insn>, HardenError> {
    let err = |e: seccompiler::BackendError| HardenError::Compile(e.to_string());
    let newuser = || -> Result<Vec<SeccompRule>, HardenError> {
        let c = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(libc::CLONE_NEWUSER as u64),
            libc::CLONE_NEWUSER as u64,
        )
        .map_err(err)?;
        Ok(vec![SeccompRule::new(vec![c]).map_err(err)?])
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    if base {
        rules.extend(DENIED.iter().map(|(_, nr)| (*nr, Vec::new())));
    }
    if unnested {
        for (_, nr) in DENIED_UNNESTED {
            let r = if *nr == libc::SYS_unshare || *nr == libc::SYS_clone {
                newuser()?
            } else {
                Vec::new()
            };
            rules.insert(*nr, r);
        }
    }
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .map_err(err)?;
    let body: seccompiler::BpfProgram = filter.try_into().map_err(err)?;
    let mut prog = if base { prefix() } else { Vec::new() };
    prog.extend(body.iter().map(|i| insn(i.code, i.jt, i.jf, i.k)));
    Ok(prog)
}

impl Policy {
    /// Compiles the programs and probes the capability range.
    /// `allow_nested`: root sessions may mount and create user namespaces.
    pub fn build(allow_nested: bool) -> Result<Policy, HardenError> {
        if !cfg!(target_arch = "x86_64") {
            return Err(HardenError::Arch);
        }
        Ok(Policy {
            init: compile(true, !allow_nested)?,
            unnested: if allow_nested {
                Some(compile(false, true)?)
            } else {
                None
            },
            supported: caps::runtime::thread_all_supported(),
        })
    }

    /// Installs the main filter on the calling process: the container
    /// init, once, right before it serves (it holds CAP_SYS_ADMIN, so no
    /// no_new_privs is needed; sessions set their own).
    pub fn seal_init(&self) -> Result<(), HardenError> {
        wsys::seccomp::install(&self.init)
            .map_err(|e| HardenError::Sys("install seccomp filter", e))
    }

    /// Before setuid (still privileged): bounding, ambient and inheritable
    /// sets; for root also effective/permitted.
    pub fn drop_privileges(&self, root: bool) -> Result<(), HardenError> {
        let err = |what| move |e| HardenError::Caps(what, e);
        let dropped: Vec<Capability> = if root {
            DROPPED_ROOT
                .iter()
                .copied()
                .filter(|c| self.supported.contains(c))
                .collect()
        } else {
            self.supported.iter().copied().collect()
        };
        for cap in dropped {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(err("drop capability from bounding set"))?;
        }
        caps::clear(None, CapSet::Ambient).map_err(err("clear ambient capabilities"))?;
        caps::clear(None, CapSet::Inheritable).map_err(err("capset"))?;
        if root {
            // Effective first: it must stay a subset of permitted.
            for set in [CapSet::Effective, CapSet::Permitted] {
                let mut now = caps::read(None, set).map_err(err("capget"))?;
                for c in DROPPED_ROOT {
                    now.remove(c);
                }
                caps::set(None, set, &now).map_err(err("capset"))?;
            }
        }
        Ok(())
    }

    /// After setuid: non-root sessions lose every capability for good and
    /// get no_new_privs.
    pub fn after_setuid(&self, root: bool) -> Result<(), HardenError> {
        if root {
            return Ok(());
        }
        // Clearing permitted clears effective too.
        caps::clear(None, CapSet::Permitted).map_err(|e| HardenError::Caps("capset", e))?;
        wsys::proc_::set_no_new_privs().map_err(|e| HardenError::Sys("no_new_privs", e))
    }

    /// The session's own filter, if any (the last step before exec): with
    /// `--allow-nested`, non-root sessions stack [`DENIED_UNNESTED`] on the
    /// inherited filter. Needs no_new_privs ([`Policy::after_setuid`]).
    pub fn seal(&self, root: bool) -> Result<(), HardenError> {
        match &self.unnested {
            Some(prog) if !root => wsys::seccomp::install(prog)
                .map_err(|e| HardenError::Sys("install seccomp filter", e)),
            _ => Ok(()),
        }
    }

    /// Instruction counts (init filter, extra non-root filter or 0).
    pub fn sizes(&self) -> (usize, usize) {
        (self.init.len(), self.unnested.as_ref().map_or(0, Vec::len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_small_programs() {
        let p = Policy::build(false).unwrap();
        let (init, extra) = p.sizes();
        assert!(init > prefix().len() && init < 256, "{init}");
        assert_eq!(extra, 0, "without --allow-nested one filter serves all");
        let n = Policy::build(true).unwrap();
        let (ninit, nextra) = n.sizes();
        assert!(
            ninit < init && nextra > 0 && nextra < init,
            "{:?}",
            n.sizes()
        );
        // The kernel knows at least CAP_BLOCK_SUSPEND (36) and the caps
        // crate every capability up to CAP_CHECKPOINT_RESTORE (40).
        assert!(p.supported.contains(&Capability::CAP_BLOCK_SUSPEND));
        assert!(DROPPED_ROOT.iter().all(|c| caps::all().contains(c)));
    }

    #[test]
    fn prefix_jumps_stay_inside() {
        let p = prefix();
        for (i, x) in p.iter().enumerate() {
            assert!(i + 1 + (x.jt.max(x.jf) as usize) < p.len() + 1);
        }
        assert_eq!(p[0].k, OFF_ARCH);
        assert_eq!(p.last().unwrap().k, RET_ERRNO | libc::ENOSYS as u32);
    }

    #[test]
    fn lists_have_no_duplicates() {
        let mut all: Vec<i64> = DENIED
            .iter()
            .chain(DENIED_UNNESTED)
            .map(|(_, n)| *n)
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
        assert!(!all.contains(&libc::SYS_clone3));
    }
}
