//! Session hardening: what every session process gets between fork and
//! exec (design.md section 4; failure-modes.md S5-S7, S16, S17; issue 9
//! findings 1 and 8).
//!
//! Two layers, each enough on its own for the escapes the attack review
//! found: a capability set for root sessions close to Docker's default
//! (no CAP_SYS_ADMIN, so the kernel itself refuses fanotify, mount,
//! namespaces...), and a seccomp allowlist that refuses those calls even to
//! a root session an operator gave more capabilities.
//!
//! # Capabilities
//!
//! | session | bounding = permitted = effective | inheritable, ambient |
//! |---|---|---|
//! | non-root (vcap) | none (and no_new_privs) | none |
//! | root, default | [`DEFAULT_ROOT_CAPS`] | none |
//! | root, `--root-caps LIST` | LIST | none |
//! | root, `--allow-nested` without `--root-caps` | every capability but [`HOST_CAPS`] | none |
//!
//! [`DEFAULT_ROOT_CAPS`] is Docker's default set without CAP_NET_RAW and
//! CAP_MKNOD: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, SETGID, SETUID,
//! SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, AUDIT_WRITE, SETFCAP
//! (`CapEff: 00000000a00405fb`). Not in it: SYS_ADMIN (mount, fanotify,
//! namespaces, ...), NET_RAW (forged packets), MKNOD (device nodes),
//! SYS_PTRACE, SYS_MODULE, NET_ADMIN (the container's network
//! configuration is the host's job), SYS_RESOURCE (limits come from the
//! request), SYS_NICE, IPC_LOCK.
//!
//! `--root-caps` (the server's `container_root_capabilities`) replaces the
//! set: a comma-separated list of names (`CAP_` optional, any case), or
//! `none`. It may name any capability except [`HOST_CAPS`], which act on the
//! whole machine rather than the container's namespaces (modules, raw I/O,
//! reboot, clock, MAC policy, kernel log, audit control, wake alarms,
//! suspend blocking, ptrace, process accounting, tty config, perf/bpf,
//! checkpoint/restore, and DAC_READ_SEARCH, which enables
//! `open_by_handle_at`, the "shocker" escape): no option grants those.
//! What an added capability widens is only what the kernel checks it for in
//! the syscalls the filter allows (for example NET_RAW: raw and packet
//! sockets; NET_ADMIN: the container's interfaces, routes and firewall;
//! MKNOD: device nodes, within the device cgroup; SYS_ADMIN: sethostname
//! and the ioctls and limits it guards, but never mount, fanotify, bpf or
//! namespaces, which the filter refuses). The inheritable set stays empty
//! even for root (as Docker does since CVE-2022-24769): a program that
//! root's session starts as another user never picks capabilities up from
//! file capabilities through it.
//!
//! # Seccomp policy (x86_64 only)
//!
//! An allowlist: every syscall number up to [`MAX_KNOWN`] (Linux 6.17/6.18)
//! is classified below ([`crate::syscalls`]); the kernel's table has no
//! other. The program is a hand-written prefix, then the part `seccompiler`
//! compiles from [`ALLOWED`], [`CONDITIONAL`] and (with `--allow-nested`)
//! [`NESTED`]:
//!
//! | condition | action |
//! |---|---|
//! | arch is not AUDIT_ARCH_X86_64 (i386 `int 0x80`) | kill the process |
//! | number negative (as a signed int) | ENOSYS |
//! | number has bit 0x40000000 (the x32 ABI) | EPERM |
//! | clone3 | ENOSYS (libc falls back to clone, whose flags the filter can see) |
//! | number above [`MAX_KNOWN`], or in the unassigned 337..=423 | ENOSYS: newer than this table, so libc falls back as on an older kernel |
//! | [`ALLOWED`] | allow |
//! | [`CONDITIONAL`], argument check passes | allow |
//! | everything else ([`DENIED`], [`NESTED`], a failed argument check) | EPERM |
//!
//! [`ALLOWED`] is Docker's default allowlist (moby/profiles
//! `seccomp/default.json`) restricted to x86_64, minus what issue 9 found
//! usable against the host or other processes (fanotify_mark,
//! name_to_handle_at, the keyring calls, ptrace and process_vm_*), plus
//! what Docker grants with capabilities that stay harmless here: chroot
//! (CAP_SYS_CHROOT is in the default set), sethostname/setdomainname (the
//! container's own UTS namespace; the kernel still wants CAP_SYS_ADMIN), and
//! the newer file_getattr/file_setattr (what the FS_IOC_FSGETXATTR and
//! FS_IOC_FSSETXATTR ioctls already do) and uprobe/uretprobe (only ever
//! called from kernel-made trampolines).
//!
//! [`CONDITIONAL`]:
//!
//! | syscall | allowed when |
//! |---|---|
//! | personality | persona is 0 (PER_LINUX), 0x8 (PER_LINUX32), 0x20000 (UNAME26), 0x20008 or 0xffffffff (query), as Docker |
//! | ioprio_set | the class is NONE, BE or IDLE: never RT, whatever capabilities root holds |
//! | socket | the family is not AF_VSOCK (as Docker: host services on vsock) |
//! | clone | no namespace flag (NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET) |
//! | unshare | no namespace flag (the same and NEWTIME) |
//!
//! [`DENIED`] (EPERM for every session), by why:
//! - reach files, memory or fds of the host or of other processes:
//!   fanotify_init/fanotify_mark (finding 1: a filesystem mark hands out
//!   fds of host files outside a bind mount), name_to_handle_at,
//!   open_by_handle_at, ptrace, process_vm_readv/writev, kcmp, pidfd_getfd,
//!   process_madvise;
//! - the kernel as a whole: modules, kexec, reboot, swap, acct, clock and
//!   time setting, syslog, quotas, iopl/ioperm, vhangup, bpf,
//!   perf_event_open, userfaultfd, the keyring (add_key, request_key,
//!   keyctl), NUMA policy and page migration (as Docker), the LSM
//!   attribute calls (as Docker), io_uring (bypasses seccomp for its
//!   operations), lookup_dcookie;
//! - obsolete calls nothing uses: uselib, ustat, sysfs, _sysctl and the
//!   never-implemented slots (create_module, nfsservctl, tuxcall, ...).
//!
//! [`NESTED`]: the mount API (mount, umount2, pivot_root, open_tree,
//! open_tree_attr, move_mount, fsopen, fsconfig, fsmount, fspick,
//! mount_setattr) and setns, together with clone/unshare of new namespaces:
//! EPERM, except for root sessions when wshd runs with `--allow-nested`
//! (warden's `allow_nested_warden`; a nested warden needs mounts and
//! namespaces). Non-root sessions are refused them either way.
//!
//! # What each option widens
//!
//! - `--root-caps LIST`: root sessions hold LIST instead of
//!   [`DEFAULT_ROOT_CAPS`] (see above); the filter is the same.
//! - `--allow-nested`: root sessions may mount, pivot_root, setns and
//!   create namespaces of every kind (user namespaces included), and by
//!   default hold every capability but [`HOST_CAPS`], as before the
//!   allowlist; everything in [`DENIED`] stays refused.
//!
//! # Where and when
//!
//! The programs are compiled once, at build time: build.rs runs
//! `src/filter.rs` (seccompiler) over [`crate::syscalls`] and the binary
//! carries the result as static data, so a container start compiles
//! nothing (a run-time compile took ~0.1 ms and left ~50 kB of the
//! compiler's freed allocations in the init's heap for its whole life).
//! The main program (~1700 instructions) is installed once on the container
//! init itself, right before it starts serving (wshd needs none of the
//! refused calls after boot), so every session inherits it through fork at
//! no cost: attaching it costs the kernel ~0.3 ms (it translates and JITs
//! it, and runs it once per syscall number to find the numbers it always
//! allows, which then bypass the filter entirely: every call of
//! [`ALLOWED`]; split into buckets, see `compile_allowlist` in
//! `src/filter.rs`, so that run is short), which per session would add
//! ~20% to `wsh true`. An argument-checked call (clone, socket, ...) walks
//! under 70 instructions. With the same step the init cuts its own
//! bounding set to the root sessions' set, so a session drops at most that
//! set (each PR_CAPBSET_DROP costs ~1 us). Measured against the denylist
//! build (2-core VM, 4000 alternating runs each): `wsh true` as root or
//! vcap ~3% faster; the seccomp() call at boot 0.30 ms instead of 0.14 ms.
//! Only with `--allow-nested` do non-root sessions get a second, small
//! filter with the [`NESTED`] rules (~160 instructions), stacked right
//! before exec.
//!
//! Order in the session child:
//!
//! ```text
//! (inherited from the init, see Policy::seal_init: bounding set = the root
//!  set, inheritable and ambient sets empty, the main filter)
//! setgroups, setgid
//! drop_privileges   root: effective and permitted set to the root set;
//!                   non-root: bounding set emptied
//! setuid            (non-root: the kernel clears effective/permitted)
//! after_setuid      non-root: effective/permitted set to 0 again (whatever
//!                   securebits wshd inherited), no_new_privs
//! chdir, close-on-exec of fds >= 3
//! seal              --allow-nested, non-root only: the extra filter
//!                   (after no_new_privs)
//! execve            (the init's filter is inherited in every case)
//! ```

use caps::{CapSet, Capability, CapsHashSet};
use nix::errno::Errno;
use thiserror::Error;
use wsys::seccomp::Insn;

pub use crate::syscalls::{ALLOWED, CONDITIONAL, DENIED, MAX_KNOWN, NESTED};

/// The programs, compiled by build.rs from `src/filter.rs` and
/// [`crate::syscalls`] with seccompiler: `MAIN` (the main program),
/// `MAIN_NESTED` (the same with `--allow-nested`) and `UNNESTED` (the
/// extra program of non-root sessions with `--allow-nested`).
mod compiled {
    use wsys::seccomp::Insn;
    include!(concat!(env!("OUT_DIR"), "/filters.rs"));
}

/// Root sessions' capabilities unless configured otherwise: Docker's
/// default set without CAP_NET_RAW and CAP_MKNOD.
pub const DEFAULT_ROOT_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_AUDIT_WRITE,
    Capability::CAP_SETFCAP,
];

/// Never granted to any session: they act on the whole machine.
pub const HOST_CAPS: &[Capability] = &[
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

#[derive(Debug, Error)]
pub enum HardenError {
    #[error("seccomp filter: only x86_64 is supported")]
    Arch,
    #[error("{0}: {1}")]
    Sys(&'static str, Errno),
    #[error("{0}: {1}")]
    Caps(&'static str, caps::errors::CapsError),
    #[error("{0} acts on the whole host and is never granted")]
    HostCap(Capability),
}

/// Parses `--root-caps`: `none`, or comma-separated capability names
/// (`CAP_` optional, any case), none of them in [`HOST_CAPS`].
pub fn parse_caps(list: &str) -> Result<Vec<Capability>, String> {
    if list.trim().eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    let mut out: Vec<Capability> = Vec::new();
    for name in list.split(',') {
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("empty capability name in {list:?}"));
        }
        let cap: Capability = caps::to_canonical(name)
            .parse()
            .map_err(|_| format!("unknown capability {name:?}"))?;
        if HOST_CAPS.contains(&cap) {
            return Err(HardenError::HostCap(cap).to_string());
        }
        if !out.contains(&cap) {
            out.push(cap);
        }
    }
    Ok(out)
}

/// The programs and the sessions' capabilities, settled once.
#[derive(Clone)]
pub struct Policy {
    /// Installed on the container init before it serves (inherited by all).
    init: &'static [Insn],
    /// `--allow-nested` only: [`NESTED`] for non-root sessions.
    unnested: Option<&'static [Insn]>,
    /// The capabilities this kernel knows (probed once, see `build`).
    supported: CapsHashSet,
    /// Root sessions' bounding, permitted and effective set.
    root_caps: CapsHashSet,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("init_insns", &self.init.len())
            .field("unnested_insns", &self.unnested.map(<[Insn]>::len))
            .field("supported", &self.supported.len())
            .field("root_caps", &self.root_caps)
            .finish()
    }
}

impl Policy {
    /// Picks the programs and settles root sessions' capabilities.
    /// `allow_nested`: root sessions may mount and create namespaces.
    /// `root_caps`: `--root-caps` (None: the default, see the module docs).
    pub fn build(
        allow_nested: bool,
        root_caps: Option<&[Capability]>,
    ) -> Result<Policy, HardenError> {
        if !cfg!(target_arch = "x86_64") {
            return Err(HardenError::Arch);
        }
        let supported = caps::runtime::thread_all_supported();
        let wanted: CapsHashSet = match root_caps {
            Some(list) => {
                if let Some(c) = list.iter().find(|c| HOST_CAPS.contains(c)) {
                    return Err(HardenError::HostCap(*c));
                }
                list.iter().copied().collect()
            }
            None if allow_nested => caps::all()
                .into_iter()
                .filter(|c| !HOST_CAPS.contains(c))
                .collect(),
            None => DEFAULT_ROOT_CAPS.iter().copied().collect(),
        };
        // What this kernel knows and wshd itself holds (a wshd started with
        // fewer capabilities cannot hand out more).
        let held =
            caps::read(None, CapSet::Permitted).map_err(|e| HardenError::Caps("capget", e))?;
        let root_caps = wanted
            .into_iter()
            .filter(|c| supported.contains(c) && held.contains(c))
            .collect();
        Ok(Policy {
            init: if allow_nested {
                &compiled::MAIN_NESTED
            } else {
                &compiled::MAIN
            },
            unnested: allow_nested.then_some(&compiled::UNNESTED[..]),
            supported,
            root_caps,
        })
    }

    /// Seals the calling process, the container init, once, right before
    /// it serves: its bounding set becomes the root sessions' set and its
    /// inheritable and ambient sets are emptied (it execs nothing any more,
    /// and every session inherits them, so a session has less to drop),
    /// then the main filter is installed (the init holds CAP_SYS_ADMIN, so
    /// no no_new_privs is needed; sessions set their own).
    pub fn seal_init(&self) -> Result<(), HardenError> {
        let err = |what| move |e| HardenError::Caps(what, e);
        for cap in self
            .supported
            .iter()
            .filter(|c| !self.root_caps.contains(c))
        {
            caps::drop(None, CapSet::Bounding, *cap)
                .map_err(err("drop capability from bounding set"))?;
        }
        caps::clear(None, CapSet::Ambient).map_err(err("clear ambient capabilities"))?;
        caps::clear(None, CapSet::Inheritable).map_err(err("capset"))?;
        wsys::seccomp::install(self.init).map_err(|e| HardenError::Sys("install seccomp filter", e))
    }

    /// In a session of the sealed init ([`Policy::seal_init`]), before
    /// setuid (still privileged): a root session sets its effective and
    /// permitted sets to the root set (its bounding set already is); a
    /// non-root session empties its bounding set.
    pub fn drop_privileges(&self, root: bool) -> Result<(), HardenError> {
        let err = |what| move |e| HardenError::Caps(what, e);
        if root {
            // Effective first: it must stay a subset of permitted.
            caps::set(None, CapSet::Effective, &self.root_caps).map_err(err("capset"))?;
            caps::set(None, CapSet::Permitted, &self.root_caps).map_err(err("capset"))?;
        } else {
            // Dropping needs CAP_SETPCAP, still effective here.
            for cap in &self.root_caps {
                caps::drop(None, CapSet::Bounding, *cap)
                    .map_err(err("drop capability from bounding set"))?;
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
    /// `--allow-nested`, non-root sessions stack [`NESTED`] on the
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
        (self.init.len(), self.unnested.map_or(0, <[Insn]>::len))
    }

    /// Root sessions' capabilities (bounding = permitted = effective).
    pub fn root_caps(&self) -> &CapsHashSet {
        &self.root_caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_programs_are_what_the_compiler_makes() {
        // build.rs compiled them from the same source; a fresh compile here
        // gives the same instructions (the interpreter tests in
        // crate::filter cover what they answer).
        let same = |a: &[Insn], b: &[Insn]| {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
        };
        use crate::filter::{compile_allowlist, compile_unnested};
        assert!(same(&compiled::MAIN, &compile_allowlist(false).unwrap()));
        assert!(same(
            &compiled::MAIN_NESTED,
            &compile_allowlist(true).unwrap()
        ));
        assert!(same(&compiled::UNNESTED, &compile_unnested().unwrap()));
        let p = Policy::build(false, None).unwrap();
        assert!(same(p.init, &compiled::MAIN) && p.unnested.is_none());
        let n = Policy::build(true, None).unwrap();
        assert!(same(n.init, &compiled::MAIN_NESTED));
        assert!(same(n.unnested.unwrap(), &compiled::UNNESTED));
    }

    #[test]
    fn builds_and_settles_capabilities() {
        let p = Policy::build(false, None).unwrap();
        let (init, extra) = p.sizes();
        assert!(init > 1000 && init < 4096, "{init}");
        assert_eq!(extra, 0, "without --allow-nested one filter serves all");
        let n = Policy::build(true, None).unwrap();
        assert!(n.sizes().1 > 0);
        // The kernel knows at least CAP_BLOCK_SUSPEND (36) and the caps
        // crate every capability up to CAP_CHECKPOINT_RESTORE (40).
        assert!(p.supported.contains(&Capability::CAP_BLOCK_SUSPEND));
        let mask = |s: &CapsHashSet| s.iter().fold(0u64, |m, c| m | c.bitmask());
        if caps::read(None, CapSet::Permitted).unwrap().len() == caps::all().len() {
            // Docker's 0xa80425fb without NET_RAW (13) and MKNOD (27).
            assert_eq!(mask(p.root_caps()), 0xa004_05fb);
            assert!(n.root_caps().contains(&Capability::CAP_SYS_ADMIN));
            let c = Policy::build(false, Some(&[Capability::CAP_NET_RAW])).unwrap();
            assert_eq!(mask(c.root_caps()), 1 << 13);
        }
        assert!(n.root_caps().iter().all(|c| !HOST_CAPS.contains(c)));
        assert!(matches!(
            Policy::build(false, Some(&[Capability::CAP_SYS_MODULE])),
            Err(HardenError::HostCap(Capability::CAP_SYS_MODULE))
        ));
        assert_eq!(HOST_CAPS.len() + 23, caps::all().len());
    }

    #[test]
    fn parses_capability_lists() {
        use Capability::*;
        assert_eq!(parse_caps("none").unwrap(), vec![]);
        assert_eq!(
            parse_caps("CAP_CHOWN,net_raw, Kill,CAP_CHOWN").unwrap(),
            vec![CAP_CHOWN, CAP_NET_RAW, CAP_KILL]
        );
        for bad in [
            "",
            "chown,",
            ",kill",
            "CAP_NOPE",
            "sys_module",
            "CAP_DAC_READ_SEARCH",
            "chown kill",
        ] {
            assert!(parse_caps(bad).is_err(), "{bad:?}");
        }
        assert!(parse_caps("sys_admin").unwrap() == vec![CAP_SYS_ADMIN]);
    }
}
