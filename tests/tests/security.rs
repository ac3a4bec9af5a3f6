//! End-to-end tests of session hardening (design.md section 4,
//! failure-modes.md S5-S7, S16, S17; issue 9 findings 1 and 8), as root:
//! real wshd on a private copy of the busybox rootfs per test, torn down by
//! `Cleanup` guards on drop.
//!
//! The busybox rootfs cannot call arbitrary syscalls, so each test compiles
//! [`PROBE_C`] with `cc -static` into its scratch dir and copies it into the
//! container's root as /bin/wprobe: `wprobe NAME...` calls each named
//! syscall with harmless arguments and prints `NAME=ok`, `NAME=<errno name>`
//! or `NAME=signal<N>` (a step run in a forked child that a signal ended).
//! The same probe run on the host (unfiltered) shows what the kernel itself
//! answers, so an EPERM inside is the filter's, not a missing capability's.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use warden_tests::server::{create_default, run_privileged, Opts, Srv, Txt};
use warden_tests::wshd::{ContainerDir, RECORD_PID};
use warden_tests::{bin, cc_static, require_root, rootfs_debian, run, scratch, Cleanup};

const PROBE_C: &str = r#"/* warden-rs security probe: calls each named syscall with harmless
 * arguments and prints NAME=ok or NAME=<errno name>, one per line. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/ioprio.h>
#include <poll.h>
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *name, long r) {
  if (r == -1) {
    const char *e = strerrorname_np(errno);
    if (e) printf("%s=%s\n", name, e); else printf("%s=errno%d\n", name, errno);
  } else {
    printf("%s=ok\n", name);
  }
}

static void *thread_fn(void *arg) { return arg; }

static int killed_by;

/* Runs a step in a forked child; -2 with killed_by set if a signal ended it. */
static long in_child(int how) {
  pid_t p = fork();
  if (p < 0) return -1;
  if (p == 0) {
    if (how == 0) {
      long r;
      __asm__ volatile("int $0x80" : "=a"(r) : "a"(20) : "memory");
    }
    _exit(0);
  }
  int st;
  if (waitpid(p, &st, 0) < 0) return -1;
  if (WIFSIGNALED(st)) { killed_by = WTERMSIG(st); return -2; }
  return WEXITSTATUS(st) == 0 ? 0 : -1;
}

static long basic(void) {
  int p[2], s[2];
  if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, s)) return -1;
  int t = socket(AF_INET, SOCK_STREAM, 0);
  if (t < 0) return -1;
  pid_t c = fork();
  if (c < 0) return -1;
  if (c == 0) { execl("/bin/true", "true", (char *)0); _exit(127); }
  int st;
  if (waitpid(c, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) { errno = ECHILD; return -1; }
  pthread_t th;
  if ((errno = pthread_create(&th, 0, thread_fn, 0)) != 0) return -1;
  pthread_join(th, 0);
  return 0;
}

/* Runs `f(arg)` in a forked child (namespace changes stay there): 0 if it
   succeeded, else -1 with errno from the child. */
static long forked(long (*f)(long), long arg) {
  pid_t p = fork();
  if (p < 0) return -1;
  if (p == 0) {
    long r = f(arg);
    _exit(r == -1 ? (errno & 0xff ? errno & 0xff : 255) : 0);
  }
  int st;
  if (waitpid(p, &st, 0) < 0) return -1;
  if (WIFSIGNALED(st)) { killed_by = WTERMSIG(st); return -2; }
  if (WEXITSTATUS(st) == 0) return 0;
  errno = WEXITSTATUS(st);
  return -1;
}

static long do_unshare(long flags) { return unshare((int)flags); }

static long do_setns(long type) {
  const char *path = type == CLONE_NEWNET ? "/proc/self/ns/net" : "/proc/self/ns/mnt";
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  return setns(fd, (int)type);
}

static long do_clone(long flags) {
  long p = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
  if (p == 0) _exit(0);
  if (p > 0) waitpid(p, 0, 0);
  return p < 0 ? -1 : 0;
}

/* personality(p); on success the old persona is put back. */
static long persona(unsigned long p) {
  long old = syscall(SYS_personality, p);
  if (old == -1) return -1;
  if (p != 0xffffffffUL) syscall(SYS_personality, old);
  return 0;
}

static long self_pidfd(void) { return syscall(SYS_pidfd_open, getpid(), 0); }

/* Prints "<name>=<type>:<hex>" (the file handle of path); the caller
   prints nothing more for it. */
static long get_handle(const char *path) {
  struct { struct file_handle fh; unsigned char buf[128]; } h;
  int mount_id;
  h.fh.handle_bytes = 128;
  if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) < 0) return -1;
  printf("handle=%d:", h.fh.handle_type);
  for (unsigned i = 0; i < h.fh.handle_bytes; i++) printf("%02x", h.fh.f_handle[i]);
  printf("\n");
  return 0;
}

static const char PWNED[] = "PWNED by a container\n";

/* Finding 1, shocker-style: open the file whose handle is "type:hex"
   through a mount fd of dir, and overwrite its start. */
static long handle_attack(char *spec) {
  char *dir = strtok(spec, ":"), *type = strtok(0, ":"), *hex = strtok(0, ":");
  if (!dir || !type || !hex) { errno = EINVAL; return -1; }
  struct { struct file_handle fh; unsigned char buf[128]; } h;
  h.fh.handle_type = atoi(type);
  h.fh.handle_bytes = strlen(hex) / 2;
  for (unsigned i = 0; i < h.fh.handle_bytes && i < 128; i++) sscanf(hex + 2 * i, "%2hhx", &h.fh.f_handle[i]);
  int mfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (mfd < 0) return -1;
  int fd = syscall(SYS_open_by_handle_at, mfd, &h.fh, O_RDWR | O_CLOEXEC);
  if (fd < 0) return -1;
  return pwrite(fd, PWNED, sizeof PWNED - 1, 0) < 0 ? -1 : 0;
}

/* Finding 1: a fanotify mark on the whole filesystem of dir hands out fds
   of files opened anywhere on it, bind mount or not; reopen the one with
   this dev:ino for writing and overwrite its start. Spec
   "dir:dev:ino:ms": gives up after ms milliseconds (ETIMEDOUT). Event fds
   are opened read-only and only the target is ever reopened. */
static long fanotify_attack(char *spec) {
  char *dir = strtok(spec, ":"), *dev = strtok(0, ":"), *ino = strtok(0, ":"), *ms = strtok(0, ":");
  if (!dir || !dev || !ino || !ms) { errno = EINVAL; return -1; }
  unsigned long long want_dev = strtoull(dev, 0, 10), want_ino = strtoull(ino, 0, 10);
  int fan = syscall(SYS_fanotify_init, FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
  if (fan < 0) return -1;
  if (syscall(SYS_fanotify_mark, fan, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, FAN_OPEN, AT_FDCWD, dir) < 0) return -1;
  printf("watching\n");
  fflush(stdout);
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long limit = atol(ms);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    long spent = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
    if (spent >= limit) { errno = ETIMEDOUT; return -1; }
    struct pollfd pfd = { fan, POLLIN, 0 };
    if (poll(&pfd, 1, 50) <= 0) continue;
    char buf[8192];
    ssize_t n = read(fan, buf, sizeof buf);
    if (n <= 0) continue;
    for (struct fanotify_event_metadata *m = (void *)buf; FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
      if (m->fd < 0) continue;
      struct stat st;
      int hit = fstat(m->fd, &st) == 0 && st.st_dev == want_dev && st.st_ino == want_ino;
      if (hit) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", m->fd);
        int w = open(path, O_WRONLY | O_CLOEXEC);
        if (w >= 0 && pwrite(w, PWNED, sizeof PWNED - 1, 0) == sizeof PWNED - 1) return 0;
      }
      close(m->fd);
    }
  }
}

static long one(const char *n) {
  if (!strcmp(n, "keyctl")) return syscall(SYS_keyctl, 0, -3, 0);
  if (!strcmp(n, "add_key")) return syscall(SYS_add_key, "", "warden-probe", "x", 1, -3);
  if (!strcmp(n, "request_key")) return syscall(SYS_request_key, "", "warden-probe", 0, 0);
  if (!strcmp(n, "init_module")) return syscall(SYS_init_module, 0, 0, "");
  if (!strcmp(n, "finit_module")) return syscall(SYS_finit_module, -1, "", 0);
  if (!strcmp(n, "delete_module")) return syscall(SYS_delete_module, "warden-probe-none", 04000);
  if (!strcmp(n, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, 0, 0xdead0000UL);
  if (!strcmp(n, "kexec_file_load")) return syscall(SYS_kexec_file_load, -1, -1, 0, 0, 0xdead0000UL);
  if (!strcmp(n, "perf_event_open")) return syscall(SYS_perf_event_open, 0, 0, -1, -1, 0);
  if (!strcmp(n, "bpf")) return syscall(SYS_bpf, -1, 0, 0);
  if (!strcmp(n, "userfaultfd")) return syscall(SYS_userfaultfd, 0x7ffffff0);
  if (!strcmp(n, "ptrace")) return syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, 0, 0);
  if (!strcmp(n, "process_vm_readv")) return syscall(SYS_process_vm_readv, 1, 0, 0, 0, 0, 0);
  if (!strcmp(n, "swapon")) return syscall(SYS_swapon, "/warden-probe-none", 0);
  if (!strcmp(n, "swapoff")) return syscall(SYS_swapoff, "/warden-probe-none");
  if (!strcmp(n, "reboot")) return syscall(SYS_reboot, 0, 0, 0, 0);
  if (!strcmp(n, "acct")) return syscall(SYS_acct, 0);
  if (!strcmp(n, "open_by_handle_at")) return syscall(SYS_open_by_handle_at, -1, 0, 0);
  if (!strcmp(n, "iopl")) return syscall(SYS_iopl, 0);
  if (!strcmp(n, "ioperm")) return syscall(SYS_ioperm, 0, 1, 0);
  if (!strcmp(n, "io_uring_setup")) return syscall(SYS_io_uring_setup, 0, 0);
  if (!strcmp(n, "clone3")) return syscall(SYS_clone3, 0, 0);
  if (!strcmp(n, "x32")) return syscall(0x40000000 | SYS_getpid);
  if (!strcmp(n, "i386")) return in_child(0);
  if (!strcmp(n, "mount")) {
    long r = mount("none", "/tmp", "tmpfs", 0, 0);
    if (r == 0) umount2("/tmp", MNT_DETACH);
    return r;
  }
  if (!strcmp(n, "umount2")) return umount2("/warden-probe-none", 0);
  if (!strcmp(n, "pivot_root")) return syscall(SYS_pivot_root, "/warden-probe-none", "/warden-probe-none");
  if (!strcmp(n, "fsopen")) return syscall(SYS_fsopen, "tmpfs", 0);
  if (!strcmp(n, "open_tree")) return syscall(SYS_open_tree, -100, "/", 1 /* OPEN_TREE_CLONE */);
  if (!strcmp(n, "unshare_user")) return unshare(CLONE_NEWUSER);
  if (!strcmp(n, "unshare_uts")) return forked(do_unshare, CLONE_NEWUTS);
  if (!strcmp(n, "unshare_ns")) return forked(do_unshare, CLONE_NEWNS);
  if (!strcmp(n, "unshare_net")) return forked(do_unshare, CLONE_NEWNET);
  if (!strcmp(n, "unshare_ipc")) return forked(do_unshare, CLONE_NEWIPC);
  if (!strcmp(n, "unshare_pid")) return forked(do_unshare, CLONE_NEWPID);
  if (!strcmp(n, "unshare_cgroup")) return forked(do_unshare, CLONE_NEWCGROUP);
  if (!strcmp(n, "unshare_time")) return forked(do_unshare, 0x80 /* CLONE_NEWTIME */);
  if (!strcmp(n, "unshare_user_f")) return forked(do_unshare, CLONE_NEWUSER);
  if (!strcmp(n, "unshare_ns_user_net")) return forked(do_unshare, CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWNET);
  if (!strcmp(n, "unshare_files")) return forked(do_unshare, CLONE_FILES | CLONE_FS);
  if (!strcmp(n, "setns_net")) return forked(do_setns, CLONE_NEWNET);
  if (!strcmp(n, "setns_mnt")) return forked(do_setns, CLONE_NEWNS);
  if (!strcmp(n, "clone_user")) return do_clone(CLONE_NEWUSER);
  if (!strcmp(n, "clone_net")) return forked(do_clone, CLONE_NEWNET);
  if (!strcmp(n, "fanotify_init")) {
    long fd = syscall(SYS_fanotify_init, FAN_CLASS_NOTIF, O_RDONLY);
    if (fd >= 0) close(fd);
    return fd < 0 ? -1 : 0;
  }
  if (!strcmp(n, "fanotify_init_fid")) {
    /* What an unprivileged process may ask for (Linux 5.13+). */
    long fd = syscall(SYS_fanotify_init, FAN_CLASS_NOTIF | FAN_REPORT_FID, O_RDONLY);
    if (fd >= 0) close(fd);
    return fd < 0 ? -1 : 0;
  }
  if (!strcmp(n, "fanotify_mark")) return syscall(SYS_fanotify_mark, -1, FAN_MARK_ADD, FAN_OPEN, AT_FDCWD, "/");
  if (!strcmp(n, "name_to_handle_at")) {
    struct { struct file_handle fh; unsigned char buf[128]; } h;
    int mount_id;
    h.fh.handle_bytes = 128;
    return name_to_handle_at(AT_FDCWD, "/", &h.fh, &mount_id, 0);
  }
  if (!strcmp(n, "kcmp")) return syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 1, 1);
  if (!strcmp(n, "pidfd_getfd")) {
    long pfd = self_pidfd();
    if (pfd < 0) return -1;
    long fd = syscall(SYS_pidfd_getfd, pfd, 1, 0);
    if (fd >= 0) close(fd);
    return fd < 0 ? -1 : 0;
  }
  if (!strcmp(n, "process_madvise")) {
    long pfd = self_pidfd();
    if (pfd < 0) return -1;
    static char page[4096] __attribute__((aligned(4096)));
    page[0] = 1;
    struct iovec iov = { page, sizeof page };
    return syscall(SYS_process_madvise, pfd, &iov, 1, 20 /* MADV_COLD */, 0) < 0 ? -1 : 0;
  }
  if (!strcmp(n, "process_vm_writev")) return syscall(SYS_process_vm_writev, 1, 0, 0, 0, 0, 0);
  if (!strcmp(n, "ioprio_rt")) return syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_RT, 4));
  if (!strcmp(n, "ioprio_be")) return syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_BE, 4));
  if (!strcmp(n, "ioprio_idle")) return syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0));
  if (!strcmp(n, "personality_linux")) return persona(PER_LINUX);
  if (!strcmp(n, "personality_query")) return persona(0xffffffffUL);
  if (!strcmp(n, "personality_uname26")) return persona(UNAME26);
  if (!strcmp(n, "personality_bsd")) return persona(PER_BSD);
  if (!strcmp(n, "personality_3")) return persona(0x0003);
  if (!strcmp(n, "personality_noaslr")) return persona(ADDR_NO_RANDOMIZE);
  if (!strcmp(n, "vsock")) {
    int fd = socket(40 /* AF_VSOCK */, SOCK_STREAM, 0);
    if (fd >= 0) close(fd);
    return fd < 0 ? -1 : 0;
  }
  if (!strcmp(n, "packet")) {
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd >= 0) close(fd);
    return fd < 0 ? -1 : 0;
  }
  if (!strcmp(n, "mknod")) {
    long r = mknod("/tmp/wprobe-null", S_IFCHR | 0600, makedev(1, 3));
    if (r == 0) unlink("/tmp/wprobe-null");
    return r;
  }
  if (!strcmp(n, "chown")) {
    char p[] = "/tmp/wprobe-XXXXXX";
    int fd = mkstemp(p);
    if (fd < 0) return -1;
    long r = fchown(fd, 1, 1);
    close(fd);
    unlink(p);
    return r;
  }
  if (!strcmp(n, "sethostname")) {
    char h[65] = {0};
    if (gethostname(h, 64) < 0) return -1;
    return sethostname(h, strlen(h));
  }
  if (!strncmp(n, "nr:", 3)) return syscall(atol(n + 3), 0, 0, 0, 0, 0, 0);
  if (!strncmp(n, "gethandle:", 10)) return get_handle(n + 10);
  if (!strncmp(n, "handle_attack:", 14)) { char b[512]; snprintf(b, sizeof b, "%s", n + 14); return handle_attack(b); }
  if (!strncmp(n, "fanotify_attack:", 16)) { char b[512]; snprintf(b, sizeof b, "%s", n + 16); return fanotify_attack(b); }
  if (!strcmp(n, "basic")) return basic();
  if (!strcmp(n, "ids")) {
    printf("uid=%d euid=%d ", (int)getuid(), (int)geteuid());
    return setuid(0);
  }
  errno = EINVAL;
  return -1;
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    fflush(stdout);
    long r = one(argv[i]);
    /* Report under the name before any ':' (the arguments). */
    char name[64];
    int keep = strncmp(argv[i], "nr:", 3) ? (int)strcspn(argv[i], ":") : (int)strlen(argv[i]);
    snprintf(name, sizeof name, "%.*s", keep, argv[i]);
    if (r == -2) { printf("%s=signal%d\n", name, killed_by); continue; }
    report(name, r);
  }
  return 0;
}
"#;

/// Runs inside once wshd mounted /proc and /dev itself.
const AFTER_PIVOT: &str = "#!/bin/sh\nset -e\nchmod 1777 /tmp\n";

/// Refused (EPERM) for every session (wshd::harden::DENIED and failed
/// argument checks, as probed here). The second half is issue 9's
/// findings 1 and 8.
const DENIED: &[&str] = &[
    "keyctl",
    "add_key",
    "request_key",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "perf_event_open",
    "bpf",
    "userfaultfd",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "iopl",
    "ioperm",
    "io_uring_setup",
    // Finding 1: host files through the kernel.
    "fanotify_init",
    "fanotify_init_fid",
    "fanotify_mark",
    "name_to_handle_at",
    "open_by_handle_at",
    // Finding 8.
    "kcmp",
    "pidfd_getfd",
    "process_madvise",
    "ioprio_rt",
    "personality_bsd",
    "personality_3",
    "personality_noaslr",
    "vsock",
];

/// Refused unless root and `--allow-nested`: the mount API and every kind
/// of new namespace (finding 8: root `unshare`), setns.
const UNNESTED: &[&str] = &[
    "mount",
    "umount2",
    "pivot_root",
    "fsopen",
    "open_tree",
    "unshare_user_f",
    "clone_user",
    "unshare_ns",
    "unshare_net",
    "unshare_uts",
    "unshare_ipc",
    "unshare_pid",
    "unshare_cgroup",
    "unshare_time",
    "unshare_ns_user_net",
    "setns_net",
    "setns_mnt",
    "clone_net",
];

/// Allowed for every session: the harmless side of each argument check.
const ALLOWED: &[&str] = &[
    "basic",
    "ioprio_be",
    "ioprio_idle",
    "personality_linux",
    "personality_query",
    "personality_uname26",
    "unshare_files",
];

/// Numbers newer than the filter's table (none of them exists in Linux
/// 6.18: 470 is one past file_setattr), in the unassigned gap, far out,
/// and clone3: ENOSYS, so libc falls back.
const UNKNOWN: &[&str] = &["clone3", "nr:470", "nr:400", "nr:1000", "nr:100000"];

/// Root sessions' default capabilities: Docker's default set without
/// NET_RAW (13) and MKNOD (27): CHOWN 0, DAC_OVERRIDE 1, FOWNER 3,
/// FSETID 4, KILL 5, SETGID 6, SETUID 7, SETPCAP 8, NET_BIND_SERVICE 10,
/// SYS_CHROOT 18, AUDIT_WRITE 29, SETFCAP 31.
const DEFAULT_ROOT_CAPS: u64 = 0xa004_05fb;

/// Capabilities no option grants (wshd::harden::HOST_CAPS).
const HOST_CAPS: &[u32] = &[
    2, 16, 17, 19, 20, 22, 25, 26, 30, 32, 33, 34, 35, 36, 37, 38, 39, 40,
];

/// Every capability an operator may grant root sessions, by name.
const GRANTABLE: &str = "CHOWN,DAC_OVERRIDE,FOWNER,FSETID,KILL,SETGID,SETUID,SETPCAP,\
LINUX_IMMUTABLE,NET_BIND_SERVICE,NET_BROADCAST,NET_ADMIN,NET_RAW,IPC_LOCK,IPC_OWNER,SYS_CHROOT,\
SYS_ADMIN,SYS_NICE,SYS_RESOURCE,MKNOD,LEASE,AUDIT_WRITE,SETFCAP";

fn mask(bits: &[u32]) -> u64 {
    bits.iter().fold(0u64, |m, c| m | 1 << c)
}

/// The bits of every capability 0..=40 but [`HOST_CAPS`].
fn grantable_mask() -> u64 {
    ((1u64 << 41) - 1) & !mask(HOST_CAPS)
}

struct Container {
    path: PathBuf,
    /// Host pid of the container's init (wshd).
    pid: i32,
    _cleanup: Cleanup,
}

/// Compiles the probe into `dir/wprobe`.
fn build_probe(dir: &Path) -> PathBuf {
    cc_static(dir, "wprobe", PROBE_C, &["-O1", "-pthread"])
}

/// Boots wshd (extra flags `flags`) on a private rootfs copy holding the
/// probe at /bin/wprobe; `prep` may change the copy first.
fn boot(tag: &str, flags: &[&str], prep: impl FnOnce(&Path, &Path)) -> Container {
    boot_with(tag, flags, "#!/bin/sh\nexit 0\n", prep)
}

/// [`boot`] with `before_pivot` as hook-child-before-pivot.sh (runs in
/// the container's mount namespace before pivot_root, where the real
/// scripts make the bind mounts).
fn boot_with(
    tag: &str,
    flags: &[&str],
    before_pivot: &str,
    prep: impl FnOnce(&Path, &Path),
) -> Container {
    let mut d = ContainerDir::new(tag);
    let path = d.path.clone();
    let probe = build_probe(&path);
    std::fs::copy(&probe, path.join("root/bin/wprobe")).unwrap();
    prep(&path.join("root"), &probe);
    d.hook("hook-parent-before-clone.sh", "#!/bin/sh\nexit 0\n");
    d.hook("hook-parent-after-clone.sh", RECORD_PID);
    d.hook("hook-child-before-pivot.sh", before_pivot);
    d.hook("hook-child-after-pivot.sh", AFTER_PIVOT);
    let err = path.join("wshd.err");
    let st = d
        .wshd()
        .args(flags)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    let pid = d.wshd_pid();
    assert!(
        st.success(),
        "wshd failed: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    Container {
        path,
        pid: pid.expect("hook recorded wshd's pid"),
        _cleanup: d.cleanup,
    }
}

impl Container {
    /// `wsh --user USER ARGS`: (status, stdout, stderr).
    fn sh(&self, user: &str, args: &[&str]) -> (i32, String, String) {
        let (c, o, e) = run(Command::new(bin("wsh"))
            .arg("--socket")
            .arg(self.path.join("run/wshd.sock"))
            .args(["--user", user])
            .args(args)
            .stdin(Stdio::null()));
        (
            c,
            String::from_utf8_lossy(&o).into_owned(),
            String::from_utf8_lossy(&e).into_owned(),
        )
    }

    fn ok(&self, user: &str, args: &[&str]) -> String {
        let (c, o, e) = self.sh(user, args);
        assert_eq!(
            c, 0,
            "wsh --user {user} {args:?}: stdout {o:?} stderr {e:?}"
        );
        o
    }

    /// Runs the probe as `user` on `names`.
    fn probe(&self, user: &str, names: &[&str]) -> BTreeMap<String, String> {
        let mut args = vec!["/bin/wprobe"];
        args.extend_from_slice(names);
        parse(&self.ok(user, &args))
    }

    /// `/proc/self/status` of a session of `user`, as field -> value.
    fn status(&self, user: &str) -> BTreeMap<String, String> {
        self.ok(user, &["cat", "/proc/self/status"])
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect()
    }
}

fn parse(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn expect(got: &BTreeMap<String, String>, names: &[&str], want: &str, who: &str) {
    for n in names {
        assert_eq!(
            got.get(*n).map(String::as_str),
            Some(want),
            "{who}: {n} (all: {got:?})"
        );
    }
}

fn hex(s: &BTreeMap<String, String>, k: &str) -> u64 {
    u64::from_str_radix(s.get(k).unwrap_or_else(|| panic!("no {k}: {s:?}")), 16).unwrap()
}

/// CapBnd of this (host, unfiltered) test process.
fn host_bnd() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap()
}

/// Asserts the capability sets of a root session: `want` in bounding,
/// permitted and effective, nothing inheritable or ambient.
fn assert_root_caps(c: &Container, want: u64) {
    let s = c.status("root");
    for k in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(hex(&s, k), want, "{k}: {s:?}");
    }
    assert_eq!(hex(&s, "CapInh"), 0);
    assert_eq!(hex(&s, "CapAmb"), 0);
    assert_eq!(s["NoNewPrivs"], "0");
    assert_eq!(s["Seccomp"], "2");
}

/// Every session (root or not, whatever its capabilities): the refused
/// calls get EPERM, unknown ones ENOSYS, the allowed ones work.
fn assert_filtered(c: &Container, user: &str) {
    let mut names: Vec<&str> = DENIED.to_vec();
    names.extend_from_slice(UNNESTED);
    names.extend_from_slice(ALLOWED);
    names.extend_from_slice(UNKNOWN);
    names.extend_from_slice(&["x32", "i386"]);
    let got = c.probe(user, &names);
    expect(&got, DENIED, "EPERM", user);
    expect(&got, UNNESTED, "EPERM", user);
    expect(&got, ALLOWED, "ok", user);
    expect(&got, UNKNOWN, "ENOSYS", user);
    expect(&got, &["x32"], "EPERM", user);
    expect(&got, &["i386"], SIGSYS, user);
}

/// SIGSYS: what killing the process for a foreign arch (i386 `int 0x80`)
/// looks like.
const SIGSYS: &str = "signal31";

#[test]
fn host_probe_sees_the_kernel_not_a_filter() {
    // Control: unfiltered (host root), the same calls succeed or fail with
    // something else than EPERM/ENOSYS, so the EPERMs and ENOSYSes asserted
    // below come from wshd's filter. (The mount API is left out: on the
    // host it would really mount.)
    require_root();
    let (dir, _c) = scratch("sec-host");
    let probe = build_probe(&dir);
    let mut names = vec![
        "keyctl",
        "add_key",
        "request_key",
        "perf_event_open",
        "bpf",
        "userfaultfd",
        "io_uring_setup",
        "fanotify_init",
        "fanotify_init_fid",
        "fanotify_mark",
        "name_to_handle_at",
        "kcmp",
        "pidfd_getfd",
        "process_madvise",
        "ioprio_rt",
        "personality_bsd",
        "personality_3",
        "personality_noaslr",
        "vsock",
        "unshare_ns",
        "unshare_net",
        "unshare_uts",
        "unshare_user_f",
        "unshare_ns_user_net",
        "setns_net",
        "clone_net",
        "clone3",
        "x32",
        "i386",
    ];
    names.extend_from_slice(ALLOWED);
    let (code, out, _) = run(Command::new(&probe).args(&names));
    assert_eq!(code, 0);
    let got = parse(&String::from_utf8_lossy(&out));
    for n in &names {
        let v = got
            .get(*n)
            .unwrap_or_else(|| panic!("{n} missing: {got:?}"));
        assert!(v != "EPERM" && v != "ENOSYS" || *n == "x32", "{n}={v}");
    }
    for n in [
        "kcmp",
        "pidfd_getfd",
        "ioprio_rt",
        "personality_bsd",
        "unshare_ns_user_net",
    ] {
        assert_eq!(got[n], "ok", "{n}");
    }
    expect(&got, ALLOWED, "ok", "host");
    assert_eq!(got["i386"], "ok");
    assert_ne!(got["x32"], "EPERM");
    // Unknown numbers are unknown to the kernel too.
    let (_, out, _) = run(Command::new(&probe).args(&UNKNOWN[1..]));
    let got = parse(&String::from_utf8_lossy(&out));
    expect(&got, &UNKNOWN[1..], "ENOSYS", "host");
}

#[test]
fn vcap_session_is_filtered_and_has_no_capabilities() {
    let c = boot("sec-vcap", &[], |_, _| {});
    assert_filtered(&c, "vcap");
    // S5: every capability set empty; S6: no_new_privs; S7: filter mode.
    let s = c.status("vcap");
    for k in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(hex(&s, k), 0, "{k}: {s:?}");
    }
    assert_eq!(s["NoNewPrivs"], "1");
    assert_eq!(s["Seccomp"], "2");
    // Inherited from the init, which runs under the same filter.
    assert_eq!(s["Seccomp_filters"], "1");
    let init = std::fs::read_to_string(format!("/proc/{}/status", c.pid)).unwrap();
    assert!(init.contains("Seccomp:\t2"), "{init}");
}

#[test]
fn root_session_is_filtered_with_the_default_capabilities() {
    // S7, S16 and S17: a privileged job holds exactly the documented set
    // and is refused every call above.
    let c = boot("sec-root", &[], |_, _| {});
    assert_filtered(&c, "root");
    assert_root_caps(&c, DEFAULT_ROOT_CAPS);
    // The init itself can never pass on more: its bounding set is the root
    // set, nothing inheritable or ambient.
    let init: BTreeMap<String, String> = std::fs::read_to_string(format!("/proc/{}/status", c.pid))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    assert_eq!(hex(&init, "CapBnd"), DEFAULT_ROOT_CAPS, "{init:?}");
    assert_eq!(hex(&init, "CapInh") | hex(&init, "CapAmb"), 0, "{init:?}");
    // What the set means: chown works (CAP_CHOWN); device nodes, packet
    // sockets and the host name need capabilities root does not hold.
    let got = c.probe("root", &["chown", "mknod", "packet", "sethostname"]);
    expect(&got, &["chown"], "ok", "root");
    expect(&got, &["mknod", "packet", "sethostname"], "EPERM", "root");
    // Children inherit it all.
    let inner = c.ok(
        "root",
        &[
            "sh",
            "-c",
            "sh -c 'grep -E \"^(CapBnd|CapEff|Seccomp):\" /proc/self/status'",
        ],
    );
    assert_eq!(
        inner,
        format!(
            "CapEff:\t{DEFAULT_ROOT_CAPS:016x}\nCapBnd:\t{DEFAULT_ROOT_CAPS:016x}\nSeccomp:\t2\n"
        )
    );
}

#[test]
fn root_with_every_grantable_capability_is_still_filtered() {
    // With CAP_SYS_ADMIN, CAP_SYS_NICE, CAP_NET_ADMIN, ... the kernel
    // would allow fanotify, RT I/O priority, namespaces, setns: here only
    // the filter stands in the way, and it holds.
    let c = boot("sec-allcaps", &["--root-caps", GRANTABLE], |_, _| {});
    assert_root_caps(&c, grantable_mask() & host_bnd());
    assert_filtered(&c, "root");
    // The capabilities themselves are there.
    let got = c.probe("root", &["chown", "mknod", "packet", "sethostname"]);
    expect(
        &got,
        &["chown", "mknod", "packet", "sethostname"],
        "ok",
        "root",
    );
    // The non-root side is untouched by --root-caps.
    let s = c.status("vcap");
    assert_eq!(hex(&s, "CapBnd") | hex(&s, "CapEff"), 0, "{s:?}");
}

#[test]
fn root_caps_option_sets_exactly_what_it_names() {
    let c = boot(
        "sec-netraw",
        &["--root-caps", "net_raw,CAP_CHOWN"],
        |_, _| {},
    );
    assert_root_caps(&c, 1 << 13 | 1);
    let got = c.probe("root", &["packet", "chown", "mknod"]);
    expect(&got, &["packet", "chown"], "ok", "root");
    expect(&got, &["mknod"], "EPERM", "root");
    let none = boot("sec-nocaps", &["--root-caps", "none"], |_, _| {});
    assert_root_caps(&none, 0);
    expect(&none.probe("root", &["chown"]), &["chown"], "EPERM", "root");
    // Host-wide capabilities are never granted; wshd refuses to start.
    let (dir, _g) = scratch("sec-hostcap");
    for bad in [
        "sys_module",
        "CAP_DAC_READ_SEARCH",
        "sys_ptrace,chown",
        "bogus",
        "",
    ] {
        let (code, _, err) = run(Command::new(bin("wshd"))
            .args(warden_tests::wshd::wshd_args(&dir))
            .args(["--root-caps", bad]));
        let err = String::from_utf8_lossy(&err);
        assert_eq!(code, 2, "--root-caps {bad:?}: {err}");
        assert!(err.contains("--root-caps"), "{err}");
    }
}

#[test]
fn allow_nested_opens_mounts_for_root_only() {
    let c = boot("sec-nested", &["--allow-nested"], |_, _| {});
    // unshare_user last: it moves the probe into an unmapped user namespace.
    let got = c.probe(
        "root",
        &[
            "mount",
            "clone_user",
            "clone_net",
            "unshare_ns",
            "unshare_net",
            "unshare_ns_user_net",
            "setns_net",
            "keyctl",
            "fanotify_init",
            "kcmp",
            "ioprio_rt",
            "personality_bsd",
            "clone3",
            "unshare_user",
        ],
    );
    expect(
        &got,
        &[
            "mount",
            "unshare_user",
            "clone_user",
            "clone_net",
            "unshare_ns",
            "unshare_net",
            "unshare_ns_user_net",
            "setns_net",
        ],
        "ok",
        "nested root",
    );
    expect(
        &got,
        &[
            "keyctl",
            "fanotify_init",
            "kcmp",
            "ioprio_rt",
            "personality_bsd",
        ],
        "EPERM",
        "nested root",
    );
    expect(&got, &["clone3"], "ENOSYS", "nested root");
    // Root keeps every capability but the host-wide ones (as before the
    // allowlist), unless --root-caps says otherwise.
    assert_root_caps(&c, host_bnd() & !mask(HOST_CAPS));
    let got = c.probe("vcap", UNNESTED);
    expect(&got, UNNESTED, "EPERM", "nested vcap");
    // vcap stacks its own filter on the inherited one; root does not.
    assert_eq!(c.status("vcap")["Seccomp_filters"], "2");
    assert_eq!(c.status("root")["Seccomp_filters"], "1");
    assert_filtered(&c, "vcap");
}

/// Issue 9 finding 1: a privileged job in a container with a bind mount
/// marks the mount's whole filesystem with fanotify (or opens a file by
/// handle, "shocker") to reach a host file outside the bind mount, and
/// overwrites it. The same probe on the host proves both attacks work on
/// this kernel and filesystem; in containers (the default capability set,
/// and every grantable capability) they fail and the file is unchanged.
#[test]
fn finding1_root_cannot_reach_host_files_beside_a_bind_mount() {
    require_root();
    let (dir, _g) = scratch("sec-f1");
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("inside"), "bind-mounted\n").unwrap();
    let secret = dir.join("secret");
    let secret_text = "host secret: root only\n";
    std::fs::write(&secret, secret_text).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let decoy = dir.join("decoy");
    let probe = build_probe(&dir);
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.dev(), m.ino())
    };
    let handle = |p: &Path| {
        let (code, out, _) = run(Command::new(&probe).arg(format!("gethandle:{}", p.display())));
        assert_eq!(code, 0);
        parse(&String::from_utf8_lossy(&out))
            .get("handle")
            .cloned()
            .unwrap_or_else(|| panic!("no file handle for {}", p.display()))
    };
    // Opens `file` every 20 ms for `ms` (what some host process does).
    let toucher = |file: PathBuf, ms: u64| {
        std::thread::spawn(move || {
            let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
            while std::time::Instant::now() < end {
                let _ = std::fs::read(&file);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        })
    };

    // Control: both attacks, by host root, on a decoy beside `shared`.
    for attack in ["handle", "fanotify"] {
        std::fs::write(&decoy, "decoy\n").unwrap();
        std::fs::set_permissions(&decoy, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (dev, ino) = id(&decoy);
        let arg = match attack {
            "handle" => format!("handle_attack:{}:{}", shared.display(), handle(&decoy)),
            _ => format!("fanotify_attack:{}:{dev}:{ino}:5000", shared.display()),
        };
        let t = toucher(decoy.clone(), 3000);
        let (_, out, _) = run(Command::new(&probe).arg(&arg));
        t.join().unwrap();
        let got = parse(&String::from_utf8_lossy(&out));
        expect(&got, &[&format!("{attack}_attack")], "ok", "host control");
        assert!(
            std::fs::read_to_string(&decoy)
                .unwrap()
                .starts_with("PWNED"),
            "the {attack} attack did not work on the host: the test proves nothing"
        );
    }

    let before = std::fs::metadata(&secret).unwrap();
    let (dev, ino) = id(&secret);
    let secret_handle = handle(&secret);
    let hook = format!(
        "#!/bin/sh\nset -e\ncd \"$(dirname \"$0\")/..\"\nmkdir root/shared\nmount --bind '{}' root/shared\n",
        shared.display()
    );
    for (tag, flags) in [
        ("sec-f1-default", vec![]),
        ("sec-f1-allcaps", vec!["--root-caps", GRANTABLE]),
    ] {
        let c = boot_with(tag, &flags, &hook, |_, _| {});
        assert_eq!(
            c.ok("root", &["cat", "/shared/inside"]),
            "bind-mounted\n",
            "{tag}"
        );
        let t = toucher(secret.clone(), 2000);
        let got = c.probe(
            "root",
            &[
                "name_to_handle_at",
                "gethandle:/shared/inside",
                &format!("handle_attack:/shared:{secret_handle}"),
                &format!("fanotify_attack:/shared:{dev}:{ino}:1500"),
            ],
        );
        t.join().unwrap();
        expect(
            &got,
            &[
                "name_to_handle_at",
                "gethandle",
                "handle_attack",
                "fanotify_attack",
            ],
            "EPERM",
            tag,
        );
        assert!(!got.contains_key("handle"), "{tag}: {got:?}");
    }
    let after = std::fs::metadata(&secret).unwrap();
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), secret_text);
    assert_eq!(
        (after.mtime(), after.mtime_nsec(), after.len()),
        (before.mtime(), before.mtime_nsec(), before.len())
    );
}

/// Capability names by number (linux/capability.h, 0..=40).
const CAP_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// The bits of capability names (`CAP_` optional).
fn names_mask<S: AsRef<str>>(names: &[S]) -> u64 {
    names.iter().fold(0, |m, n| {
        let n = n.as_ref().trim_start_matches("CAP_");
        let i = CAP_NAMES
            .iter()
            .position(|c| *c == n)
            .unwrap_or_else(|| panic!("unknown capability {n}"));
        m | 1 << i
    })
}

/// `Cap*` lines of a privileged (or not) job, as field -> bits.
fn job_caps(cl: &mut warden::client::Client, h: &str, privileged: bool) -> BTreeMap<String, u64> {
    let script = "grep ^Cap /proc/self/status";
    let r = if privileged {
        run_privileged(cl, h, script)
    } else {
        warden_tests::server::run(cl, h, script)
    };
    assert_eq!(r.exit_status, Some(0), "{r:?}");
    r.stdout
        .txt()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), u64::from_str_radix(v.trim(), 16).unwrap()))
        .collect()
}

#[test]
fn documented_capability_sets_agree() {
    // The controller's documented lists (config.rs), the scripts' and
    // wshd's (checked by the tests above through these constants) name the
    // same sets.
    use warden::config::{DEFAULT_ROOT_CAPS as DEF, GRANTABLE_CAPS, HOST_CAPS as HOST};
    assert_eq!(names_mask(DEF), DEFAULT_ROOT_CAPS);
    assert_eq!(names_mask(HOST), mask(HOST_CAPS));
    assert_eq!(names_mask(GRANTABLE_CAPS), grantable_mask());
    let grantable: Vec<&str> = GRANTABLE.split(',').collect();
    assert_eq!(names_mask(&grantable), grantable_mask());
    // create.sh accepts exactly the grantable ones (common.sh is_root_caps).
    let common = warden_tests::workspace().join("rootfs-scripts/skeleton/lib/common.sh");
    for (i, name) in CAP_NAMES.iter().enumerate() {
        let (code, _, _) = run(Command::new("sh").arg("-c").arg(format!(
            "script=t; . '{}'; is_root_caps CAP_{name}",
            common.display()
        )));
        assert_eq!(code == 0, grantable_mask() & 1 << i != 0, "CAP_{name}");
    }
}

#[test]
fn privileged_jobs_hold_the_configured_capabilities() {
    // S17 through the whole path: server config -> create.sh env ->
    // etc/config -> start.sh -> wshd --root-caps -> the job.
    let s = Srv::start("caps-default", Opts::default());
    let mut cl = s.client();
    let h = create_default(&mut cl);
    let caps = job_caps(&mut cl, &h, true);
    for k in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(caps[k], DEFAULT_ROOT_CAPS, "{k}: {caps:?}");
    }
    assert_eq!(caps["CapInh"] | caps["CapAmb"], 0, "{caps:?}");
    let caps = job_caps(&mut cl, &h, false);
    assert!(caps.values().all(|v| *v == 0), "{caps:?}");
    drop(s);

    // The default set plus NET_RAW, as an operator would write it.
    let mut names: Vec<String> = warden::config::DEFAULT_ROOT_CAPS
        .iter()
        .map(|c| c.to_lowercase())
        .collect();
    names.push("NET_RAW".into());
    let s = Srv::start(
        "caps-netraw",
        Opts {
            root_capabilities: Some(names),
            ..Default::default()
        },
    );
    let mut cl = s.client();
    let h = create_default(&mut cl);
    let caps = job_caps(&mut cl, &h, true);
    for k in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(caps[k], DEFAULT_ROOT_CAPS | 1 << 13, "{k}: {caps:?}");
    }
    let caps = job_caps(&mut cl, &h, false);
    assert!(caps.values().all(|v| *v == 0), "{caps:?}");
}

/// What an ordinary job does, run by bash as vcap and as root on the Debian
/// rootfs: package tools, shells, coreutils, archives, perl, background
/// jobs, timers. Each line's output is checked.
const DEBIAN_WORK: &str = r#"set -e
apt-get --version | head -n 1 | cut -d' ' -f1
dpkg-query -W -f='${Package}
' coreutils
sh -c 'echo sh-ok'
echo "$((6 * 7))"
cd "$(mktemp -d)"
mkdir -p d/e && echo hello > d/e/f && cp -a d d2 && mv d2 d3 && ln -s d3/e/f l && cat l
tar -cf t.tar d3 && tar -tf t.tar | sort | tail -n 1
gzip -c t.tar | gunzip | cmp - t.tar && echo gzip-ok
sha256sum d3/e/f | cut -c1-8
find . -type f | wc -l
printf 'b
a
b
' | sort -u | tr '
' ' '; echo
awk 'BEGIN { print "awk-ok" }'
sed -n 's/^root:.*/sed-ok/p' /etc/passwd
stat -c %s d3/e/f
timeout 5 sleep 0.1 && echo timeout-ok
sleep 0.05 & wait; echo bg-ok
perl -e 'print "perl-ok
"'
getent passwd vcap | cut -d: -f1
uname -s
cd / && rm -rf "$OLDPWD"
"#;

const DEBIAN_WORK_OUT: &str = "apt\ncoreutils\nsh-ok\n42\nhello\nd3/e/f\ngzip-ok\n5891b5b5\n3\n\
a b \nawk-ok\nsed-ok\n6\ntimeout-ok\nbg-ok\nperl-ok\nvcap\nLinux\n";

#[test]
fn ordinary_workloads_still_work_on_debian() {
    let s = Srv::start(
        "work-deb",
        Opts {
            rootfs: Some(rootfs_debian()),
            ..Default::default()
        },
    );
    let mut cl = s.client();
    let h = create_default(&mut cl);
    for privileged in [false, true] {
        let r = if privileged {
            run_privileged(&mut cl, &h, DEBIAN_WORK)
        } else {
            warden_tests::server::run(&mut cl, &h, DEBIAN_WORK)
        };
        assert_eq!(
            (r.exit_status, r.stdout.txt()),
            (Some(0), Some(DEBIAN_WORK_OUT)),
            "privileged={privileged}: stderr {:?}",
            r.stderr.txt()
        );
    }
    // What a privileged job does with the default set: chown, switch user
    // (setpriv: setgroups, setresgid, setresuid), apt's own checks.
    let r = run_privileged(
        &mut cl,
        &h,
        r#"set -e; f=$(mktemp); chown vcap:vcap "$f"; stat -c %U "$f"; rm "$f"
         setpriv --reuid=vcap --regid=vcap --init-groups id -un
         apt-get check >/dev/null && echo apt-check-ok"#,
    );
    assert_eq!(
        (r.exit_status, r.stdout.txt()),
        (Some(0), Some("vcap\nvcap\napt-check-ok\n")),
        "stderr {:?}",
        r.stderr.txt()
    );
}

#[test]
fn setuid_binary_does_not_gain_root() {
    // S6. Setuid-root copies of the probe and of busybox inside the rootfs
    // (busybox picks its applet from argv[0], so its copy keeps its name).
    let c = boot("sec-suid", &[], |root, probe| {
        std::fs::create_dir_all(root.join("usr/suid")).unwrap();
        for (from, to) in [
            (probe.to_path_buf(), "bin/suprobe"),
            (root.join("bin/busybox"), "usr/suid/busybox"),
        ] {
            let dst = root.join(to);
            std::fs::copy(&from, &dst).unwrap();
            std::os::unix::fs::chown(&dst, Some(0), Some(0)).unwrap();
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o4755)).unwrap();
        }
    });
    // Control: on the host (no no_new_privs) the bit works on this file
    // system, so the test can fail.
    let host_copy = c.path.join("root/bin/suprobe");
    let (code, out, err) = run(std::os::unix::process::CommandExt::uid(
        &mut Command::new(&host_copy),
        10000,
    )
    .arg("ids"));
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert_eq!(
        String::from_utf8_lossy(&out).trim(),
        "uid=10000 euid=0 ids=ok"
    );
    // Inside, as vcap: no euid 0, and setuid(0) is refused.
    let out = c.ok("vcap", &["/bin/suprobe", "ids"]);
    assert_eq!(out.trim(), "uid=10000 euid=10000 ids=EPERM");
    assert_eq!(
        c.ok("vcap", &["/usr/suid/busybox", "id", "-u"]).trim(),
        "10000"
    );
    let s = c.ok("vcap", &["/usr/suid/busybox", "cat", "/proc/self/status"]);
    assert!(s.contains("CapEff:\t0000000000000000"), "{s}");
}

#[test]
fn ordinary_workloads_still_work() {
    let c = boot("sec-work", &[], |_, _| {});
    for user in ["vcap", "root"] {
        let out = c.ok(
            user,
            &[
                "sh",
                "-c",
                "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo $i; done | tail -n 1; \
                 sleep 0.05 & wait; echo bg-ok; \
                 echo abc | tr a-c x-z; \
                 (cd /tmp && echo f > f.$$ && cat f.$$ && rm f.$$); \
                 /bin/wprobe basic",
            ],
        );
        assert_eq!(out, "200\nbg-ok\nxyz\nf\nbasic=ok\n", "{user}");
        // Unknown commands still come back as 127 from the (filtered) child.
        assert_eq!(c.sh(user, &["no-such-command"]).0, 127);
    }
}

/// Watches /proc for a process running wshd's program (a session whose
/// program was a `#!/proc/self/exe` script), holds its exe open, waits for
/// it to end and then tries to open that file for writing, as the
/// CVE-2019-5736 exploit did. Prints `caught=N`, and per catch `ro=1|0`
/// (whether the held reference is on a read-only mount) and `write=<errno
/// name|ok>`. Argument: seconds to watch.
const EXE_WATCH_C: &str = r#"#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
  int secs = argc > 1 ? atoi(argv[1]) : 5;
  time_t end = time(NULL) + secs;
  int caught = 0;
  pid_t self = getpid();
  while (time(NULL) < end && caught < 5) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      pid_t p = atoi(e->d_name);
      if (p <= 1 || p == self) continue;
      char path[64], link[512];
      snprintf(path, sizeof path, "/proc/%d/exe", p);
      ssize_t n = readlink(path, link, sizeof link - 1);
      if (n <= 0) continue;
      link[n] = 0;
      /* Anything but the rootfs's own programs: wshd's file is outside
         the container's root (shown as a host path or as "/"). */
      if (!strcmp(link, "/bin/busybox") || !strcmp(link, "/bin/exewatch")) continue;
      int fd = open(path, O_PATH | O_CLOEXEC);
      if (fd < 0) continue;
      caught++;
      struct statvfs sv;
      if (fstatvfs(fd, &sv) == 0) printf("ro=%d\n", (sv.f_flag & ST_RDONLY) ? 1 : 0);
      else printf("ro=%s\n", strerrorname_np(errno));
      while (kill(p, 0) == 0) usleep(1000);
      char fdp[64];
      snprintf(fdp, sizeof fdp, "/proc/self/fd/%d", fd);
      int w = open(fdp, O_WRONLY | O_APPEND | O_CLOEXEC);
      if (w >= 0) { printf("write=ok\n"); close(w); }
      else printf("write=%s\n", strerrorname_np(errno));
      close(fd);
    }
    if (d) closedir(d);
  }
  printf("caught=%d\n", caught);
  return 0;
}
"#;

fn sha(p: &Path) -> String {
    let (code, out, _) = run(Command::new("sha256sum").arg(p));
    assert_eq!(code, 0);
    String::from_utf8_lossy(&out)
        .split(' ')
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn cve_2019_5736_wshd_program_cannot_be_overwritten() {
    let c = boot("cve5736", &[], |root, _| {
        std::fs::write(root.join("evil"), "#!/proc/self/exe\n").unwrap();
        std::fs::set_permissions(root.join("evil"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
    });
    let watch = cc_static(&c.path, "exewatch", EXE_WATCH_C, &["-O1"]);
    std::fs::copy(&watch, c.path.join("root/bin/exewatch")).unwrap();
    let before = sha(&bin("wshd"));
    // The init's program file is on a read-only mount: even host root
    // cannot write through /proc/<init>/exe.
    let st = nix::sys::statvfs::statvfs(format!("/proc/{}/exe", c.pid).as_str()).unwrap();
    assert!(st.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY));

    // Container root watches for a process running wshd's program while
    // the host starts sessions whose program is `#!/proc/self/exe`.
    let sock = c.path.join("run/wshd.sock");
    let watcher = Command::new(bin("wsh"))
        .arg("--socket")
        .arg(&sock)
        .args(["/bin/exewatch", "8"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    for _ in 0..300 {
        // Each runs wshd's program inside (which exits with a usage error).
        let _ = c.sh("root", &["/evil"]);
    }
    let out = watcher.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    let caught: usize = out
        .lines()
        .find_map(|l| l.strip_prefix("caught="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(caught > 0, "the attack never caught a wshd process: {out}");
    // The write fails: EROFS, or ETXTBSY first while another wshd runs
    // the same file (the kernel checks that before the mount); either way
    // the reference the container holds is on a read-only mount, so it
    // fails just the same once no wshd runs.
    for l in out.lines() {
        if let Some(w) = l.strip_prefix("write=") {
            assert!(w == "EROFS" || w == "ETXTBSY", "{out}");
        }
        if let Some(r) = l.strip_prefix("ro=") {
            assert_eq!(
                r, "1",
                "a container process holds wshd's file on a writable mount: {out}"
            );
        }
    }
    assert_eq!(sha(&bin("wshd")), before, "wshd's program file changed");
}
