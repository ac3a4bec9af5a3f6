//! The x86_64 syscall table as wshd's seccomp policy sees it (see
//! [`crate::harden`] for the policy): every number up to [`MAX_KNOWN`] in
//! exactly one of [`ALLOWED`], [`CONDITIONAL`], [`DENIED`], [`NESTED`]
//! (clone3 apart), and the argument values the checks use. Plain data:
//! also compiled into build.rs, which turns it into the programs (see
//! `src/filter.rs`).

/// x86_64 numbers the libc crate does not name (yet), named as it would.
#[allow(non_upper_case_globals)]
pub mod nr {
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
pub const GAP: std::ops::RangeInclusive<u32> = 337..=423;

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
pub const CLONE_NS_FLAGS: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET) as u64;
pub const UNSHARE_NS_FLAGS: u64 = CLONE_NS_FLAGS | libc::CLONE_NEWTIME as u64;
/// Personas `personality(2)` may set (Docker's list; 0xffffffff queries).
pub const PERSONAS: &[u64] = &[0, 0x0008, 0x2_0000, 0x2_0008, 0xffff_ffff];
/// The class field of an I/O priority (`IOPRIO_PRIO_CLASS`: 3 bits at 13)
/// and the classes a session may set: NONE (0), BE (2), IDLE (3).
pub const IOPRIO_CLASS_MASK: u64 = 0x7 << 13;
pub const IOPRIO_CLASSES: &[u64] = &[0, 2, 3];
