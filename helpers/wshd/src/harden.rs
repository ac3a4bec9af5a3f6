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
//! is classified below; the kernel's table has no other. The program is a
//! hand-written prefix, then the part `seccompiler` compiles from
//! [`ALLOWED`], [`CONDITIONAL`] and (with `--allow-nested`) [`NESTED`]:
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
//! The programs are compiled once, when wshd starts (before the clone; no
//! threads). The main program (~1700 instructions) is installed once on
//! the container init itself, right before it starts serving (wshd needs
//! none of the refused calls after boot), so every session inherits it
//! through fork at no cost: attaching it costs the kernel ~0.3 ms (it
//! translates and JITs it, and runs it once per syscall number to find the
//! numbers it always allows, which then bypass the filter entirely: every
//! call of [`ALLOWED`]; split into buckets, see `compile_allowlist`, so
//! that run is short), which per session would add ~20% to `wsh true`.
//! An argument-checked call (clone, socket, ...) walks under 70
//! instructions. With the same step the init cuts its own bounding set to
//! the root sessions' set, so a session drops at most that set (each
//! PR_CAPBSET_DROP costs ~1 us). Measured against the denylist build
//! (2-core VM, 4000 alternating runs each): `wsh true` as root or vcap
//! 3% faster; boot ~0.2 ms slower (attach 0.30 ms instead of 0.14 ms).
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
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};
use std::collections::BTreeMap;
use thiserror::Error;
use wsys::seccomp::Insn;

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

/// x86_64 numbers the libc crate does not name (yet), named as it would.
#[allow(non_upper_case_globals)]
mod nr {
    pub const SYS_create_module: i64 = 174;
    pub const SYS_get_kernel_syms: i64 = 177;
    pub const SYS_query_module: i64 = 178;
    pub const SYS_io_pgetevents: i64 = 333;
    pub const SYS_uretprobe: i64 = 335;
    pub const SYS_uprobe: i64 = 336;
    pub const SYS_cachestat: i64 = 451;
    pub const SYS_map_shadow_stack: i64 = 453;
    pub const SYS_futex_wake: i64 = 454;
    pub const SYS_futex_wait: i64 = 455;
    pub const SYS_futex_requeue: i64 = 456;
    pub const SYS_statmount: i64 = 457;
    pub const SYS_listmount: i64 = 458;
    pub const SYS_lsm_get_self_attr: i64 = 459;
    pub const SYS_lsm_set_self_attr: i64 = 460;
    pub const SYS_lsm_list_modules: i64 = 461;
    pub const SYS_setxattrat: i64 = 463;
    pub const SYS_getxattrat: i64 = 464;
    pub const SYS_listxattrat: i64 = 465;
    pub const SYS_removexattrat: i64 = 466;
    pub const SYS_open_tree_attr: i64 = 467;
    pub const SYS_file_getattr: i64 = 468;
    pub const SYS_file_setattr: i64 = 469;
}

/// The highest syscall number classified here (file_setattr, Linux 6.17;
/// 6.18 added none); anything above gets ENOSYS.
pub const MAX_KNOWN: u32 = 469;
/// The unassigned numbers between uprobe and the unified table.
const GAP: std::ops::RangeInclusive<u32> = 337..=423;

/// `[("SYS_read", libc::SYS_read), ...]` from `sys!(libc: SYS_read, ...)`.
macro_rules! sys {
    ($m:ident: $($name:ident),* $(,)?) => {
        &[$((stringify!($name), $m::$name)),*]
    };
}

/// `a` then `b`, at compile time (the tables below).
const fn concat<const N: usize>(
    a: &[(&'static str, i64)],
    b: &[(&'static str, i64)],
) -> [(&'static str, i64); N] {
    let mut out = [("", 0i64); N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - a.len()];
        i += 1;
    }
    out
}

#[rustfmt::skip]
const ALLOWED_LIBC: &[(&str, i64)] = sys!(libc:
    SYS_read, SYS_write, SYS_open, SYS_close, SYS_stat, SYS_fstat, SYS_lstat, SYS_poll,
    SYS_lseek, SYS_mmap, SYS_mprotect, SYS_munmap, SYS_brk, SYS_rt_sigaction,
    SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_ioctl, SYS_pread64, SYS_pwrite64, SYS_readv,
    SYS_writev, SYS_access, SYS_pipe, SYS_select, SYS_sched_yield, SYS_mremap, SYS_msync,
    SYS_mincore, SYS_madvise, SYS_shmget, SYS_shmat, SYS_shmctl, SYS_dup, SYS_dup2,
    SYS_pause, SYS_nanosleep, SYS_getitimer, SYS_alarm, SYS_setitimer, SYS_getpid,
    SYS_sendfile, SYS_connect, SYS_accept, SYS_sendto, SYS_recvfrom, SYS_sendmsg,
    SYS_recvmsg, SYS_shutdown, SYS_bind, SYS_listen, SYS_getsockname, SYS_getpeername,
    SYS_socketpair, SYS_setsockopt, SYS_getsockopt, SYS_fork, SYS_vfork, SYS_execve,
    SYS_exit, SYS_wait4, SYS_kill, SYS_uname, SYS_semget, SYS_semop, SYS_semctl, SYS_shmdt,
    SYS_msgget, SYS_msgsnd, SYS_msgrcv, SYS_msgctl, SYS_fcntl, SYS_flock, SYS_fsync,
    SYS_fdatasync, SYS_truncate, SYS_ftruncate, SYS_getdents, SYS_getcwd, SYS_chdir,
    SYS_fchdir, SYS_rename, SYS_mkdir, SYS_rmdir, SYS_creat, SYS_link, SYS_unlink,
    SYS_symlink, SYS_readlink, SYS_chmod, SYS_fchmod, SYS_chown, SYS_fchown, SYS_lchown,
    SYS_umask, SYS_gettimeofday, SYS_getrlimit, SYS_getrusage, SYS_sysinfo, SYS_times,
    SYS_getuid, SYS_getgid, SYS_setuid, SYS_setgid, SYS_geteuid, SYS_getegid, SYS_setpgid,
    SYS_getppid, SYS_getpgrp, SYS_setsid, SYS_setreuid, SYS_setregid, SYS_getgroups,
    SYS_setgroups, SYS_setresuid, SYS_getresuid, SYS_setresgid, SYS_getresgid, SYS_getpgid,
    SYS_setfsuid, SYS_setfsgid, SYS_getsid, SYS_capget, SYS_capset, SYS_rt_sigpending,
    SYS_rt_sigtimedwait, SYS_rt_sigqueueinfo, SYS_rt_sigsuspend, SYS_sigaltstack, SYS_utime,
    SYS_mknod, SYS_statfs, SYS_fstatfs, SYS_getpriority, SYS_setpriority,
    SYS_sched_setparam, SYS_sched_getparam, SYS_sched_setscheduler,
    SYS_sched_getscheduler, SYS_sched_get_priority_max, SYS_sched_get_priority_min,
    SYS_sched_rr_get_interval, SYS_mlock, SYS_munlock, SYS_mlockall, SYS_munlockall,
    SYS_modify_ldt, SYS_prctl, SYS_arch_prctl, SYS_adjtimex, SYS_setrlimit, SYS_chroot,
    SYS_sync, SYS_sethostname, SYS_setdomainname, SYS_gettid, SYS_readahead, SYS_setxattr,
    SYS_lsetxattr, SYS_fsetxattr, SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr,
    SYS_listxattr, SYS_llistxattr, SYS_flistxattr, SYS_removexattr, SYS_lremovexattr,
    SYS_fremovexattr, SYS_tkill, SYS_time, SYS_futex, SYS_sched_setaffinity,
    SYS_sched_getaffinity, SYS_set_thread_area, SYS_io_setup, SYS_io_destroy,
    SYS_io_getevents, SYS_io_submit, SYS_io_cancel, SYS_get_thread_area,
    SYS_epoll_create, SYS_epoll_ctl_old, SYS_epoll_wait_old, SYS_remap_file_pages,
    SYS_getdents64, SYS_set_tid_address, SYS_restart_syscall, SYS_semtimedop,
    SYS_fadvise64, SYS_timer_create, SYS_timer_settime, SYS_timer_gettime,
    SYS_timer_getoverrun, SYS_timer_delete, SYS_clock_gettime, SYS_clock_getres,
    SYS_clock_nanosleep, SYS_exit_group, SYS_epoll_wait, SYS_epoll_ctl, SYS_tgkill,
    SYS_utimes, SYS_mq_open, SYS_mq_unlink, SYS_mq_timedsend, SYS_mq_timedreceive,
    SYS_mq_notify, SYS_mq_getsetattr, SYS_waitid, SYS_ioprio_get, SYS_inotify_init,
    SYS_inotify_add_watch, SYS_inotify_rm_watch, SYS_openat, SYS_mkdirat, SYS_mknodat,
    SYS_fchownat, SYS_futimesat, SYS_newfstatat, SYS_unlinkat, SYS_renameat, SYS_linkat,
    SYS_symlinkat, SYS_readlinkat, SYS_fchmodat, SYS_faccessat, SYS_pselect6, SYS_ppoll,
    SYS_set_robust_list, SYS_get_robust_list, SYS_splice, SYS_tee, SYS_sync_file_range,
    SYS_vmsplice, SYS_utimensat, SYS_epoll_pwait, SYS_signalfd, SYS_timerfd_create,
    SYS_eventfd, SYS_fallocate, SYS_timerfd_settime, SYS_timerfd_gettime, SYS_accept4,
    SYS_signalfd4, SYS_eventfd2, SYS_epoll_create1, SYS_dup3, SYS_pipe2, SYS_inotify_init1,
    SYS_preadv, SYS_pwritev, SYS_rt_tgsigqueueinfo, SYS_recvmmsg, SYS_prlimit64,
    SYS_clock_adjtime, SYS_syncfs, SYS_sendmmsg, SYS_getcpu, SYS_sched_setattr,
    SYS_sched_getattr, SYS_renameat2, SYS_seccomp, SYS_getrandom, SYS_memfd_create,
    SYS_execveat, SYS_membarrier, SYS_mlock2, SYS_copy_file_range, SYS_preadv2,
    SYS_pwritev2, SYS_pkey_mprotect, SYS_pkey_alloc, SYS_pkey_free, SYS_statx,
    SYS_rseq, SYS_pidfd_send_signal, SYS_pidfd_open, SYS_close_range,
    SYS_openat2, SYS_faccessat2, SYS_epoll_pwait2, SYS_landlock_create_ruleset,
    SYS_landlock_add_rule, SYS_landlock_restrict_self, SYS_memfd_secret,
    SYS_process_mrelease, SYS_futex_waitv, SYS_fchmodat2, SYS_mseal,
);
#[rustfmt::skip]
const ALLOWED_NEW: &[(&str, i64)] = sys!(nr:
    SYS_io_pgetevents, SYS_uretprobe, SYS_uprobe, SYS_cachestat, SYS_map_shadow_stack, SYS_futex_wake,
    SYS_futex_wait, SYS_futex_requeue, SYS_statmount, SYS_listmount, SYS_setxattrat,
    SYS_getxattrat, SYS_listxattrat, SYS_removexattrat, SYS_file_getattr, SYS_file_setattr,
);
const ALLOWED_ALL: [(&str, i64); ALLOWED_LIBC.len() + ALLOWED_NEW.len()] =
    concat(ALLOWED_LIBC, ALLOWED_NEW);
/// Allowed for every session, whatever the arguments.
pub const ALLOWED: &[(&str, i64)] = &ALLOWED_ALL;

/// Allowed when an argument check passes (see the module docs and
/// `conditional_rules`); EPERM otherwise.
#[rustfmt::skip]
pub const CONDITIONAL: &[(&str, i64)] = sys!(libc:
    SYS_personality, SYS_ioprio_set, SYS_socket, SYS_clone, SYS_unshare,
);

#[rustfmt::skip]
const DENIED_LIBC: &[(&str, i64)] = sys!(libc:
    // Host files, other processes' memory and fds.
    SYS_fanotify_init, SYS_fanotify_mark, SYS_name_to_handle_at, SYS_open_by_handle_at,
    SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_kcmp, SYS_pidfd_getfd,
    SYS_process_madvise,
    // The kernel as a whole.
    SYS_init_module, SYS_finit_module, SYS_delete_module, SYS_kexec_load,
    SYS_kexec_file_load, SYS_reboot, SYS_swapon, SYS_swapoff, SYS_acct, SYS_settimeofday,
    SYS_clock_settime, SYS_syslog, SYS_quotactl, SYS_quotactl_fd, SYS_iopl, SYS_ioperm,
    SYS_vhangup, SYS_bpf, SYS_perf_event_open, SYS_userfaultfd, SYS_add_key,
    SYS_request_key, SYS_keyctl, SYS_mbind, SYS_set_mempolicy, SYS_get_mempolicy,
    SYS_set_mempolicy_home_node, SYS_migrate_pages, SYS_move_pages, SYS_io_uring_setup,
    SYS_io_uring_enter, SYS_io_uring_register, SYS_lookup_dcookie,
    // Obsolete or never implemented.
    SYS_uselib, SYS_ustat, SYS_sysfs, SYS__sysctl, SYS_nfsservctl, SYS_getpmsg, SYS_putpmsg, SYS_afs_syscall,
    SYS_tuxcall, SYS_security, SYS_vserver,
);
#[rustfmt::skip]
const DENIED_NEW: &[(&str, i64)] = sys!(nr:
    SYS_create_module, SYS_get_kernel_syms, SYS_query_module, SYS_lsm_get_self_attr, SYS_lsm_set_self_attr, SYS_lsm_list_modules,
);
const DENIED_ALL: [(&str, i64); DENIED_LIBC.len() + DENIED_NEW.len()] =
    concat(DENIED_LIBC, DENIED_NEW);
/// Known and refused with EPERM for every session.
pub const DENIED: &[(&str, i64)] = &DENIED_ALL;

#[rustfmt::skip]
const NESTED_LIBC: &[(&str, i64)] = sys!(libc:
    SYS_mount, SYS_umount2, SYS_pivot_root, SYS_open_tree, SYS_move_mount, SYS_fsopen,
    SYS_fsconfig, SYS_fsmount, SYS_fspick, SYS_mount_setattr, SYS_setns,
);
const NESTED_ALL: [(&str, i64); NESTED_LIBC.len() + 1] =
    concat(NESTED_LIBC, sys!(nr: SYS_open_tree_attr));
/// Refused (EPERM) unless the session is root and wshd runs with
/// `--allow-nested`; clone and unshare with namespace flags go with them.
pub const NESTED: &[(&str, i64)] = &NESTED_ALL;

/// Namespace flags of clone (CLONE_NEWTIME is 0x80 only for unshare and
/// clone3: in clone's flags that bit is part of the exit signal). All in
/// the low 32 bits, and the checks look at those only: clone ignores the
/// upper half of its flags, unshare refuses any bit it does not know.
const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;
const UNSHARE_NS_FLAGS: u64 = CLONE_NS_FLAGS | libc::CLONE_NEWTIME as u64;
/// Personas `personality(2)` may set (Docker's list; 0xffffffff queries).
const PERSONAS: &[u64] = &[0, 0x0008, 0x2_0000, 0x2_0008, 0xffff_ffff];
/// The class field of an I/O priority (`IOPRIO_PRIO_CLASS`: 3 bits at 13)
/// and the classes a session may set: NONE (0), BE (2), IDLE (3).
const IOPRIO_CLASS_MASK: u64 = 0x7 << 13;
const IOPRIO_CLASSES: &[u64] = &[0, 2, 3];

/// x32 syscall numbers carry this bit (`__X32_SYSCALL_BIT`).
const X32_BIT: u32 = 0x4000_0000;
/// `AUDIT_ARCH_X86_64`.
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
// Classic BPF opcodes (linux/bpf_common.h).
const LD_W_ABS: u16 = 0x20;
const JEQ_K: u16 = 0x15;
const JGE_K: u16 = 0x35;
const JGT_K: u16 = 0x25;
const RET_K: u16 = 0x06;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;
// struct seccomp_data: int nr; __u32 arch; __u64 ip; __u64 args[6].
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

/// The compiled programs and the sessions' capabilities, built once.
#[derive(Clone)]
pub struct Policy {
    /// Installed on the container init before it serves (inherited by all).
    init: Vec<Insn>,
    /// `--allow-nested` only: [`NESTED`] for non-root sessions.
    unnested: Option<Vec<Insn>>,
    /// The capabilities this kernel knows (probed once, see `build`).
    supported: CapsHashSet,
    /// Root sessions' bounding, permitted and effective set.
    root_caps: CapsHashSet,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("init_insns", &self.init.len())
            .field("unnested_insns", &self.unnested.as_ref().map(Vec::len))
            .field("supported", &self.supported.len())
            .field("root_caps", &self.root_caps)
            .finish()
    }
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// The hand-written start of the main program: arch, negative numbers,
/// x32, clone3, numbers newer than this table. Falls through to the body
/// for a number this table classifies.
fn prefix() -> Vec<Insn> {
    // Indices: 10 is the EPERM return, 11 the ENOSYS return, 12 the body;
    // a jump from instruction i by n lands on i + 1 + n.
    const EPERM_AT: u8 = 10;
    const ENOSYS_AT: u8 = 11;
    const BODY_AT: u8 = 12;
    let to = |from: u8, target: u8| target - from - 1;
    vec![
        insn(LD_W_ABS, 0, 0, OFF_ARCH),
        insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        insn(RET_K, 0, 0, RET_KILL_PROCESS),
        insn(LD_W_ABS, 0, 0, OFF_NR),
        insn(JGE_K, to(4, ENOSYS_AT), 0, 0x8000_0000),
        insn(JGE_K, to(5, EPERM_AT), 0, X32_BIT),
        insn(JEQ_K, to(6, ENOSYS_AT), 0, libc::SYS_clone3 as u32),
        insn(JGT_K, to(7, ENOSYS_AT), 0, MAX_KNOWN),
        insn(JGE_K, to(8, BODY_AT), 0, GAP.end() + 1),
        insn(JGE_K, to(9, ENOSYS_AT), to(9, BODY_AT), *GAP.start()),
        insn(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32),
        insn(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32),
    ]
}

type Rules = Vec<SeccompRule>;

fn compile_err(e: seccompiler::BackendError) -> HardenError {
    HardenError::Compile(e.to_string())
}

/// One rule of one condition on argument `arg`.
fn one(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompRule, HardenError> {
    let c = SeccompCondition::new(arg, len, op, value).map_err(compile_err)?;
    SeccompRule::new(vec![c]).map_err(compile_err)
}

/// The argument checks of [`CONDITIONAL`] (any rule matching allows).
/// `nested_root`: clone and unshare without checks.
fn conditional_rules(nested_root: bool) -> Result<Vec<(i64, Rules)>, HardenError> {
    use SeccompCmpArgLen::Dword;
    // personality(unsigned int): the kernel looks at the low 32 bits only.
    let personality = PERSONAS
        .iter()
        .map(|p| one(0, Dword, SeccompCmpOp::Eq, *p))
        .collect::<Result<Rules, _>>()?;
    // ioprio_set(which, who, int ioprio).
    let ioprio = IOPRIO_CLASSES
        .iter()
        .map(|c| one(2, Dword, SeccompCmpOp::MaskedEq(IOPRIO_CLASS_MASK), c << 13))
        .collect::<Result<Rules, _>>()?;
    let socket = vec![one(0, Dword, SeccompCmpOp::Ne, libc::AF_VSOCK as u64)?];
    let (clone, unshare) = if nested_root {
        (Vec::new(), Vec::new())
    } else {
        (
            vec![one(0, Dword, SeccompCmpOp::MaskedEq(CLONE_NS_FLAGS), 0)?],
            vec![one(0, Dword, SeccompCmpOp::MaskedEq(UNSHARE_NS_FLAGS), 0)?],
        )
    };
    Ok(vec![
        (libc::SYS_personality, personality),
        (libc::SYS_ioprio_set, ioprio),
        (libc::SYS_socket, socket),
        (libc::SYS_clone, clone),
        (libc::SYS_unshare, unshare),
    ])
}

fn to_insns(filter: SeccompFilter) -> Result<Vec<Insn>, HardenError> {
    let prog: seccompiler::BpfProgram = filter.try_into().map_err(compile_err)?;
    Ok(prog.iter().map(|i| insn(i.code, i.jt, i.jf, i.k)).collect())
}

/// How many seccompiler programs the allowlist is split into, by syscall
/// number (see [`compile_allowlist`]).
const BUCKETS: usize = 16;
const JA: u16 = 0x05;

/// The main program: [`prefix`], then the allowlist (with `nested_root`,
/// [`NESTED`] and namespaces allowed too).
///
/// seccompiler emits one linear chain of syscall numbers. Attaching a
/// program makes the kernel run it once per syscall number (to find those
/// it always allows), so one ~1600-instruction chain cost ~1 ms at every
/// container start, and each argument-checked call walked hundreds of
/// instructions. So the numbers are split into [`BUCKETS`] ranges, each
/// compiled by seccompiler on its own (each ends in its own EPERM), behind
/// a dispatch on the number:
///
/// ```text
/// prefix                      (A = nr for a classified number)
/// JGE start[15] ? next : +1   \  one pair per bucket, highest first;
/// JA  body[15]                /  JA reaches any distance
/// ...
/// JA  body[0]
/// body[0] .. body[15]         seccompiler output for that range
/// ```
fn compile_allowlist(nested_root: bool) -> Result<Vec<Insn>, HardenError> {
    let mut rules: BTreeMap<i64, Rules> = ALLOWED.iter().map(|(_, n)| (*n, Vec::new())).collect();
    rules.extend(conditional_rules(nested_root)?);
    if nested_root {
        rules.extend(NESTED.iter().map(|(_, n)| (*n, Vec::new())));
    }
    let per = rules.len().div_ceil(BUCKETS);
    let mut starts: Vec<u32> = Vec::new();
    let mut bodies: Vec<Vec<Insn>> = Vec::new();
    let mut entries: Vec<(i64, Rules)> = rules.into_iter().collect();
    while !entries.is_empty() {
        let rest = entries.split_off(per.min(entries.len()));
        // The first bucket also takes the numbers below its first entry.
        starts.push(if starts.is_empty() {
            0
        } else {
            entries[0].0 as u32
        });
        let filter = SeccompFilter::new(
            entries.into_iter().collect(),
            SeccompAction::Errno(libc::EPERM as u32),
            SeccompAction::Allow,
            TargetArch::x86_64,
        )
        .map_err(compile_err)?;
        bodies.push(to_insns(filter)?);
        entries = rest;
    }
    let mut prog = prefix();
    // Dispatch: pairs for buckets n-1..1, then the JA to bucket 0.
    let dispatch_len = 2 * (bodies.len() - 1) + 1;
    let body_at = |k: usize| -> usize {
        prog_len_before_bodies(dispatch_len) + bodies[..k].iter().map(Vec::len).sum::<usize>()
    };
    for k in (1..bodies.len()).rev() {
        prog.push(insn(JGE_K, 0, 1, starts[k]));
        let here = prog.len();
        prog.push(insn(JA, 0, 0, (body_at(k) - here - 1) as u32));
    }
    let here = prog.len();
    prog.push(insn(JA, 0, 0, (body_at(0) - here - 1) as u32));
    debug_assert_eq!(prog.len(), prog_len_before_bodies(dispatch_len));
    for b in bodies {
        prog.extend(b);
    }
    Ok(prog)
}

/// Instructions before the first bucket body: the prefix and the dispatch.
fn prog_len_before_bodies(dispatch_len: usize) -> usize {
    prefix().len() + dispatch_len
}

/// `--allow-nested`, non-root sessions: a small denylist stacked on the
/// main program, refusing [`NESTED`] and namespace flags (EPERM).
fn compile_unnested() -> Result<Vec<Insn>, HardenError> {
    use SeccompCmpArgLen::Dword;
    let per_flag = |mask: u64| -> Result<Rules, HardenError> {
        (0..64)
            .map(|b| 1u64 << b)
            .filter(|bit| mask & bit != 0)
            .map(|bit| one(0, Dword, SeccompCmpOp::MaskedEq(bit), bit))
            .collect()
    };
    let mut rules: BTreeMap<i64, Rules> = NESTED.iter().map(|(_, n)| (*n, Vec::new())).collect();
    rules.insert(libc::SYS_clone, per_flag(CLONE_NS_FLAGS)?);
    rules.insert(libc::SYS_unshare, per_flag(UNSHARE_NS_FLAGS)?);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .map_err(compile_err)?;
    to_insns(filter)
}

impl Policy {
    /// Compiles the programs and settles root sessions' capabilities.
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
            init: compile_allowlist(allow_nested)?,
            unnested: if allow_nested {
                Some(compile_unnested()?)
            } else {
                None
            },
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
        wsys::seccomp::install(&self.init)
            .map_err(|e| HardenError::Sys("install seccomp filter", e))
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
        (self.init.len(), self.unnested.as_ref().map_or(0, Vec::len))
    }

    /// Root sessions' capabilities (bounding = permitted = effective).
    pub fn root_caps(&self) -> &CapsHashSet {
        &self.root_caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;
    const KILL: u32 = RET_KILL_PROCESS;

    /// Runs a classic BPF seccomp program as the kernel does, on
    /// (arch, nr, args); `None` for args: the program must not look at
    /// them (the kernel's check for "always allowed": such numbers bypass
    /// the filter).
    fn run(prog: &[Insn], arch: u32, nr: u32, args: Option<[u64; 6]>) -> Option<u32> {
        run_counted(prog, arch, nr, args).0
    }

    /// [`run`], and how many instructions it went through.
    fn run_counted(
        prog: &[Insn],
        arch: u32,
        nr: u32,
        args: Option<[u64; 6]>,
    ) -> (Option<u32>, usize) {
        let (mut a, mut pc, mut steps) = (0u32, 0usize, 0usize);
        let r = loop {
            let i = prog.get(pc).expect("ran off the end of the program");
            pc += 1;
            steps += 1;
            match i.code {
                LD_W_ABS => {
                    a = match i.k {
                        OFF_NR => nr,
                        OFF_ARCH => arch,
                        k if (16..64).contains(&k) => {
                            let Some(args) = args else { break None };
                            let v = args[(k as usize - 16) / 8];
                            if k % 8 == 0 {
                                v as u32
                            } else {
                                (v >> 32) as u32
                            }
                        }
                        k => panic!("load of offset {k}"),
                    }
                }
                0x54 => a &= i.k,           // ALU AND K
                0x05 => pc += i.k as usize, // JA
                JEQ_K | JGE_K | JGT_K | 0x45 => {
                    let t = match i.code {
                        JEQ_K => a == i.k,
                        JGE_K => a >= i.k,
                        JGT_K => a > i.k,
                        _ => a & i.k != 0,
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
                RET_K => break Some(i.k),
                c => panic!("unexpected opcode {c:#x}"),
            }
        };
        (r, steps)
    }

    #[test]
    fn cheap_for_the_kernel_to_attach_and_run() {
        // At attach time the kernel runs the program once per number with
        // unknown arguments (stopping at an argument load); at run time an
        // argument-checked call walks its path. Both stay short.
        let prog = compile_allowlist(false).unwrap();
        let (mut total, mut worst) = (0, 0);
        for nr in 0..=MAX_KNOWN + 1 {
            let (_, steps) = run_counted(&prog, AUDIT_ARCH_X86_64, nr, None);
            total += steps;
            worst = worst.max(steps);
        }
        assert!(total < 60_000 && worst < 200, "{total} {worst}");
        let (r, steps) = run_counted(
            &prog,
            AUDIT_ARCH_X86_64,
            libc::SYS_clone as u32,
            Some([0; 6]),
        );
        assert_eq!(r, Some(0x7fff_0000));
        assert!(steps < 200, "{steps}");
    }

    fn x86(prog: &[Insn], nr: i64, args: [u64; 6]) -> u32 {
        run(prog, AUDIT_ARCH_X86_64, nr as u32, Some(args)).unwrap()
    }

    fn all_tables() -> Vec<(&'static str, i64)> {
        let mut v: Vec<_> = ALLOWED
            .iter()
            .chain(CONDITIONAL)
            .chain(DENIED)
            .chain(NESTED)
            .copied()
            .collect();
        v.push(("clone3", libc::SYS_clone3));
        v
    }

    #[test]
    fn every_known_number_is_classified_once() {
        let all = all_tables();
        let mut nrs: Vec<i64> = all.iter().map(|(_, n)| *n).collect();
        nrs.sort();
        let n = nrs.len();
        nrs.dedup();
        assert_eq!(nrs.len(), n, "a syscall is in two tables");
        let want: Vec<i64> = (0..=MAX_KNOWN as i64)
            .filter(|n| !GAP.contains(&(*n as u32)))
            .collect();
        assert_eq!(nrs, want);
        // Names are unique, and the libc ones match their numbers (the
        // macro takes both from the same constant).
        let mut names: Vec<&str> = all.iter().map(|(s, _)| *s).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        for (name, want) in [
            ("SYS_mseal", 462),
            ("SYS_fchmodat2", 452),
            ("SYS_fanotify_init", 300),
            ("SYS_personality", 135),
        ] {
            assert_eq!(
                all.iter().find(|(s, _)| *s == name).map(|x| x.1),
                Some(want)
            );
        }
    }

    #[test]
    fn allowlist_answers_as_documented() {
        let prog = compile_allowlist(false).unwrap();
        assert!(prog.len() < 4096, "{}", prog.len());
        let zero = [0u64; 6];
        for (name, nr) in ALLOWED {
            // Decided on the number alone: the kernel lets these bypass the
            // filter.
            assert_eq!(
                run(&prog, AUDIT_ARCH_X86_64, *nr as u32, None),
                Some(ALLOW),
                "{name}"
            );
        }
        for (name, nr) in DENIED.iter().chain(NESTED) {
            assert_eq!(
                run(&prog, AUDIT_ARCH_X86_64, *nr as u32, None),
                Some(EPERM),
                "{name}"
            );
        }
        for nr in [libc::SYS_clone3, 337, 400, 423, 470, 471, 1000, 0x3fff_ffff] {
            assert_eq!(x86(&prog, nr, zero), ENOSYS, "{nr}");
        }
        assert_eq!(x86(&prog, -1, zero), ENOSYS);
        assert_eq!(x86(&prog, 0x4000_0000 | libc::SYS_getpid, zero), EPERM);
        assert_eq!(x86(&prog, 0x4000_0000 | 600, zero), EPERM);
        // i386 (and anything else): the process dies.
        assert_eq!(run(&prog, 0x4000_0003, 20, Some(zero)), Some(KILL));

        let a0 = |v: u64| [v, 0, 0, 0, 0, 0];
        let p = libc::SYS_personality;
        for ok in [0, 8, 0x20000, 0x20008, 0xffff_ffff, 0xffff_ffff_ffff_ffff] {
            assert_eq!(x86(&prog, p, a0(ok)), ALLOW, "personality {ok:#x}");
        }
        for bad in [3, 6, 0x0040_0000, 0x0100_0000, 0x0800_0000] {
            assert_eq!(x86(&prog, p, a0(bad)), EPERM, "personality {bad:#x}");
        }
        let io = libc::SYS_ioprio_set;
        let prio = |class: u64, data: u64| [1, 0, class << 13 | data, 0, 0, 0];
        for (class, want) in [(0, ALLOW), (1, EPERM), (2, ALLOW), (3, ALLOW), (5, EPERM)] {
            for data in [0, 4, 7] {
                assert_eq!(
                    x86(&prog, io, prio(class, data)),
                    want,
                    "ioprio class {class}"
                );
            }
        }
        let s = libc::SYS_socket;
        assert_eq!(x86(&prog, s, a0(libc::AF_INET as u64)), ALLOW);
        assert_eq!(x86(&prog, s, a0(libc::AF_PACKET as u64)), ALLOW);
        assert_eq!(x86(&prog, s, a0(libc::AF_VSOCK as u64)), EPERM);
        let fork_flags =
            (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM) as u64;
        for (nr, ns) in [
            (libc::SYS_clone, CLONE_NS_FLAGS),
            (libc::SYS_unshare, UNSHARE_NS_FLAGS),
        ] {
            assert_eq!(x86(&prog, nr, a0(0)), ALLOW);
            for b in (0..64).map(|b| 1u64 << b).filter(|b| ns & b != 0) {
                assert_eq!(x86(&prog, nr, a0(b)), EPERM, "{nr} {b:#x}");
                assert_eq!(x86(&prog, nr, a0(b | libc::CLONE_FILES as u64)), EPERM);
                // The upper half plays no part (see CLONE_NS_FLAGS).
                assert_eq!(x86(&prog, nr, a0(b | 0xffff_ffff_0000_0000)), EPERM);
            }
        }
        assert_eq!(x86(&prog, libc::SYS_clone, a0(fork_flags)), ALLOW);
        assert_eq!(x86(&prog, libc::SYS_clone, a0(thread)), ALLOW);
        assert_eq!(
            x86(&prog, libc::SYS_unshare, a0(libc::CLONE_FILES as u64)),
            ALLOW
        );
        assert_eq!(x86(&prog, libc::SYS_setns, zero), EPERM);
    }

    #[test]
    fn nested_root_may_mount_and_create_namespaces() {
        let prog = compile_allowlist(true).unwrap();
        let a0 = |v: u64| [v, 0, 0, 0, 0, 0];
        for (name, nr) in NESTED {
            assert_eq!(x86(&prog, *nr, [0; 6]), ALLOW, "{name}");
        }
        for nr in [libc::SYS_clone, libc::SYS_unshare] {
            assert_eq!(x86(&prog, nr, a0(UNSHARE_NS_FLAGS)), ALLOW);
        }
        for (name, nr) in DENIED {
            assert_eq!(x86(&prog, *nr, [0; 6]), EPERM, "{name}");
        }
        assert_eq!(x86(&prog, libc::SYS_clone3, [0; 6]), ENOSYS);
        // The extra filter non-root sessions stack: only NESTED and
        // namespace flags; everything else is the main program's call.
        let extra = compile_unnested().unwrap();
        for (name, nr) in NESTED {
            assert_eq!(x86(&extra, *nr, [0; 6]), EPERM, "{name}");
        }
        for nr in [libc::SYS_clone, libc::SYS_unshare] {
            assert_eq!(x86(&extra, nr, a0(libc::CLONE_NEWUSER as u64)), EPERM);
            assert_eq!(x86(&extra, nr, a0(libc::CLONE_NEWNET as u64 | 17)), EPERM);
            assert_eq!(x86(&extra, nr, a0(libc::CLONE_FILES as u64)), ALLOW);
        }
        for (name, nr) in ALLOWED {
            assert_eq!(
                run(&extra, AUDIT_ARCH_X86_64, *nr as u32, None),
                Some(ALLOW),
                "{name}"
            );
        }
        assert!(
            extra.len() < prog.len() / 4,
            "{} {}",
            extra.len(),
            prog.len()
        );
    }

    #[test]
    fn builds_and_settles_capabilities() {
        let p = Policy::build(false, None).unwrap();
        let (init, extra) = p.sizes();
        assert!(init > prefix().len() && init < 4096, "{init}");
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

    #[test]
    fn prefix_jumps_stay_inside() {
        let p = prefix();
        for (i, x) in p.iter().enumerate() {
            assert!(i + 1 + (x.jt.max(x.jf) as usize) <= p.len(), "{i}");
        }
        assert_eq!(p[0].k, OFF_ARCH);
        assert_eq!(p[p.len() - 2].k, RET_ERRNO | libc::EPERM as u32);
        assert_eq!(p.last().unwrap().k, RET_ERRNO | libc::ENOSYS as u32);
    }
}
