//! End-to-end tests of session hardening (design.md section 4,
//! failure-modes.md S5-S7), as root: real wshd on a private copy of the
//! busybox rootfs per test, torn down by `Cleanup` guards on drop.
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
use warden_tests::wshd::{ContainerDir, RECORD_PID};
use warden_tests::{bin, cc_static, require_root, run, scratch, Cleanup};

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
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
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
  if (!strcmp(n, "unshare_uts")) return unshare(CLONE_NEWUTS);
  if (!strcmp(n, "clone_user")) {
    long p = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (p == 0) _exit(0);
    if (p > 0) waitpid(p, 0, 0);
    return p < 0 ? -1 : 0;
  }
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
    if (r == -2) { printf("%s=signal%d\n", argv[i], killed_by); continue; }
    report(argv[i], r);
  }
  return 0;
}
"#;

/// Runs inside once wshd mounted /proc and /dev itself.
const AFTER_PIVOT: &str = "#!/bin/sh\nset -e\nchmod 1777 /tmp\n";

/// Denied for every session (wshd::harden::DENIED, as probed here).
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
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "open_by_handle_at",
    "iopl",
    "ioperm",
    "io_uring_setup",
];

/// Denied unless root and `--allow-nested`.
const UNNESTED: &[&str] = &[
    "mount",
    "umount2",
    "pivot_root",
    "fsopen",
    "open_tree",
    "unshare_user",
    "clone_user",
];

/// Capabilities root sessions lose (wshd::harden::DROPPED_ROOT).
const DROPPED_ROOT: &[u32] = &[
    2, 16, 17, 19, 20, 22, 25, 26, 30, 32, 33, 34, 35, 36, 37, 38, 39, 40,
];

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
    let mut d = ContainerDir::new(tag);
    let path = d.path.clone();
    let probe = build_probe(&path);
    std::fs::copy(&probe, path.join("root/bin/wprobe")).unwrap();
    prep(&path.join("root"), &probe);
    d.hook("hook-parent-before-clone.sh", "#!/bin/sh\nexit 0\n");
    d.hook("hook-parent-after-clone.sh", RECORD_PID);
    d.hook("hook-child-before-pivot.sh", "#!/bin/sh\nexit 0\n");
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

/// SIGSYS: what killing the process for a foreign arch (i386 `int 0x80`)
/// looks like.
const SIGSYS: &str = "signal31";

#[test]
fn host_probe_sees_the_kernel_not_a_filter() {
    // Control: unfiltered, the same calls do not fail with EPERM, so the
    // EPERMs asserted below come from wshd's filter.
    require_root();
    let (dir, _c) = scratch("sec-host");
    let probe = build_probe(&dir);
    let names = [
        "keyctl",
        "add_key",
        "request_key",
        "perf_event_open",
        "bpf",
        "userfaultfd",
        "io_uring_setup",
        "clone3",
        "x32",
        "i386",
        "basic",
    ];
    let (code, out, _) = run(Command::new(&probe).args(names));
    assert_eq!(code, 0);
    let got = parse(&String::from_utf8_lossy(&out));
    for n in names {
        let v = got.get(n).unwrap_or_else(|| panic!("{n} missing: {got:?}"));
        assert!(v != "EPERM" && v != "ENOSYS" || n == "x32", "{n}={v}");
    }
    assert_eq!(got["basic"], "ok");
    assert_eq!(got["i386"], "ok");
    assert_ne!(got["clone3"], "ENOSYS");
    assert_ne!(got["x32"], "EPERM");
}

#[test]
fn vcap_session_is_filtered_and_has_no_capabilities() {
    let c = boot("sec-vcap", &[], |_, _| {});
    let mut names: Vec<&str> = DENIED.to_vec();
    names.extend_from_slice(UNNESTED);
    names.extend_from_slice(&["clone3", "x32", "i386", "basic"]);
    let got = c.probe("vcap", &names);
    expect(&got, DENIED, "EPERM", "vcap");
    expect(&got, UNNESTED, "EPERM", "vcap");
    expect(&got, &["clone3"], "ENOSYS", "vcap");
    expect(&got, &["x32"], "EPERM", "vcap");
    expect(&got, &["i386"], SIGSYS, "vcap");
    expect(&got, &["basic"], "ok", "vcap");
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
fn root_session_is_filtered_with_a_reduced_bounding_set() {
    let c = boot("sec-root", &[], |_, _| {});
    let mut names: Vec<&str> = DENIED.to_vec();
    names.extend_from_slice(UNNESTED);
    names.extend_from_slice(&["clone3", "x32", "i386", "basic", "unshare_uts"]);
    let got = c.probe("root", &names);
    expect(&got, DENIED, "EPERM", "root");
    // Root holds CAP_SYS_ADMIN: without the filter these would succeed.
    expect(&got, UNNESTED, "EPERM", "root");
    expect(&got, &["clone3"], "ENOSYS", "root");
    expect(&got, &["x32"], "EPERM", "root");
    expect(&got, &["i386"], SIGSYS, "root");
    // Other namespaces stay available to privileged jobs.
    expect(&got, &["basic", "unshare_uts"], "ok", "root");

    let s = c.status("root");
    let dropped = DROPPED_ROOT.iter().fold(0u64, |m, c| m | 1 << c);
    let host = std::fs::read_to_string("/proc/self/status").unwrap();
    let host_bnd = host
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    assert_eq!(hex(&s, "CapBnd"), host_bnd & !dropped, "{s:?}");
    assert_eq!(hex(&s, "CapEff") & dropped, 0, "{s:?}");
    assert_eq!(hex(&s, "CapPrm") & dropped, 0, "{s:?}");
    assert_eq!(hex(&s, "CapInh"), 0);
    assert_eq!(hex(&s, "CapAmb"), 0);
    // Kept on purpose: CAP_NET_ADMIN (12) and CAP_SYS_ADMIN (21).
    assert_eq!(hex(&s, "CapEff") & (1 << 12 | 1 << 21), 1 << 12 | 1 << 21);
    assert_eq!(s["NoNewPrivs"], "0");
    assert_eq!(s["Seccomp"], "2");
    // Children inherit it all.
    let inner = c.ok(
        "root",
        &[
            "sh",
            "-c",
            "sh -c 'grep -E \"^(CapBnd|Seccomp):\" /proc/self/status'",
        ],
    );
    assert!(
        inner.contains(&format!("{:016x}", host_bnd & !dropped)),
        "{inner}"
    );
    assert!(inner.contains("Seccomp:\t2"), "{inner}");
}

#[test]
fn allow_nested_opens_mounts_for_root_only() {
    let c = boot("sec-nested", &["--allow-nested"], |_, _| {});
    // unshare_user last: it moves the probe into an unmapped user namespace.
    let got = c.probe(
        "root",
        &["mount", "clone_user", "keyctl", "clone3", "unshare_user"],
    );
    expect(
        &got,
        &["mount", "unshare_user", "clone_user"],
        "ok",
        "nested root",
    );
    expect(&got, &["keyctl"], "EPERM", "nested root");
    expect(&got, &["clone3"], "ENOSYS", "nested root");
    let got = c.probe("vcap", UNNESTED);
    expect(&got, UNNESTED, "EPERM", "nested vcap");
    // vcap stacks its own filter on the inherited one; root does not.
    assert_eq!(c.status("vcap")["Seccomp_filters"], "2");
    assert_eq!(c.status("root")["Seccomp_filters"], "1");
    let got = c.probe("vcap", &["keyctl", "clone3", "x32", "basic"]);
    expect(&got, &["keyctl", "x32"], "EPERM", "nested vcap");
    expect(&got, &["clone3"], "ENOSYS", "nested vcap");
    expect(&got, &["basic"], "ok", "nested vcap");
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
