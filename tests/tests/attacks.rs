//! Attack tests (issue 9 item 10): every security row S1-S15 of
//! shared/failure-modes.md and the CVEs CVE-2024-21626, CVE-2016-9962,
//! CVE-2019-19921 and CVE-2021-30465, each made the way an attacker would
//! make it here (from inside a container, or as a client of a socket) and
//! each shown to fail. Run as root with real containers.
//!
//! Where another test file already makes a row's attack, this file does not
//! repeat it; the table says where every row's proof is.
//!
//! | row / CVE | what is attacked | test |
//! |---|---|---|
//! | S1 no host fd in a container process | fds inherited by wshd | wshd.rs::sessions_see_only_stdio_fds |
//! | | fds and cwd of wshd and of the wsh client, pipes and tty, root and vcap | attacks.rs::cve_2024_21626_sessions_get_no_host_fd_or_cwd |
//! | | jobs through the controller (run, spawn, the CLI) | attacks.rs::cve_2024_21626_controller_jobs_get_no_host_fd_or_cwd |
//! | | fds of iomux-spawn's job | iomux.rs::child_gets_exactly_fds_0_1_2 |
//! | S2 cwd and root inside | readlinks, `cd` through /proc/self/fd/N, `..` climb | attacks.rs::cve_2024_21626_sessions_get_no_host_fd_or_cwd, attacks.rs::cve_2024_21626_controller_jobs_get_no_host_fd_or_cwd, wshd.rs::namespaces_isolate_uts_net_pid_and_mounts |
//! | S3 no overwrite of a host binary via /proc/self/exe or a helper | wshd's file through `#!/proc/self/exe` sessions (wshd is the only helper with a process in a container: iomux-spawn, iomux-link and wsh run on the host, in no container's pid namespace) | security.rs::cve_2019_5736_wshd_program_cannot_be_overwritten |
//! | S4 copy_in/copy_out and bind mounts vs symlinks and `..` | forged tar, symlinks to host files | copy.rs::forged_tar_from_container_root_leaves_nothing_on_the_host, copy.rs::copy_out_of_a_symlink_to_a_host_file_is_refused, copy.rs::directory_copy_with_escaping_symlinks |
//! | | bind-mount destination through a planted symlink | rootfs.rs::planted_bind_mount_destination_symlink_leaves_host_dir_alone, scripts.rs::bind_mount_through_a_symlink_is_refused |
//! | | bind-mount destination swapped during start (ignored: no protection yet) | attacks.rs::cve_2021_30465_bind_mount_destination_exchange_race |
//! | S5 unprivileged jobs: container user, no capabilities | wsh sessions | security.rs::vcap_session_is_filtered_and_has_no_capabilities |
//! | | controller jobs (uid, CapEff, CapPrm) | attacks.rs::cve_2024_21626_controller_jobs_get_no_host_fd_or_cwd |
//! | S6 no_new_privs | setuid-root probe and busybox | security.rs::setuid_binary_does_not_gain_root, attacks.rs::cve_2024_21626_controller_jobs_get_no_host_fd_or_cwd (NoNewPrivs of jobs) |
//! | S7 seccomp | each denied call, x32, i386, clone3 | security.rs::vcap_session_is_filtered_and_has_no_capabilities, security.rs::root_session_is_filtered_with_a_reduced_bounding_set, security.rs::host_probe_sees_the_kernel_not_a_filter |
//! | S8 /proc and /sys masks, /proc/sys read-only | reads and writes | wshd.rs::namespaces_isolate_uts_net_pid_and_mounts, rootfs.rs::debian_rootfs_through_the_protocol, scripts.rs::start_gives_a_running_container |
//! | | /proc/keys, sysrq-trigger, core_pattern, and root undoing the masks (umount, new proc or sysfs, remount rw, bind over, new mount API, own mount namespace) | attacks.rs::s8_root_cannot_read_masked_proc_or_undo_the_masks |
//! | S9 device allowlist | mknod and open of other devices | scripts.rs::device_allowlist_holds_inside (v1), scripts.rs::v2_device_program_holds_inside (v2), devices.rs::device_program_enforced_in_a_cgroup |
//! | S10 network isolation, net_out default deny | interfaces seen, connects to the host and to a network not allowed | attacks.rs::s10_container_sees_its_veth_only_and_reaches_no_unallowed_network |
//! | S11 no container to container | two containers | scripts.rs::containers_cannot_reach_each_other_unless_allowed, network.rs::spoofed_and_loopback_packets_reach_nothing_without_host_access |
//! | S12 controller socket 0600 | non-root connects to the server's, wshd's and a job's sockets | attacks.rs::s12_other_users_cannot_connect_to_any_socket |
//! | S13 every length field bounded | controller: bad length lines, huge varints, mutations | attacks.rs::s13_controller_answers_every_bad_length, controller.rs::protocol_ping_echo_list_and_bad_frames |
//! | | controller memory per client (ignored: no protection on main) | attacks.rs::s13_controller_memory_follows_bytes_received |
//! | | wshd and iomux: each length at and past its bound, mutations | attacks.rs::s13_wshd_and_iomux_length_fields_are_bounded, wshd.rs::garbage_oversize_and_disconnects_do_not_hurt_others, iomux.rs::garbage_and_bogus_cursors_are_refused_without_harm |
//! | S14 no setuid bit, no capabilities needed | every helper, also the copies in a container directory and the init's program; each run by nobody | attacks.rs::s14_helpers_have_no_setuid_bit_or_file_capability_and_run_unprivileged |
//! | S15 no path outside the depot from a request | every request type with `..`, `/`, absolute and empty handles, a look-alike container beside the depot | attacks.rs::s15_handles_cannot_name_paths_outside_the_depot, controller.rs::protocol_ping_echo_list_and_bad_frames (create) |
//! | CVE-2019-5736 | wshd's program file | security.rs::cve_2019_5736_wshd_program_cannot_be_overwritten |
//! | CVE-2024-21626 | sessions, controller jobs, the init's own fds | attacks.rs::cve_2024_21626_sessions_get_no_host_fd_or_cwd, attacks.rs::cve_2024_21626_controller_jobs_get_no_host_fd_or_cwd, attacks.rs::cve_2024_21626_init_fds_are_out_of_reach_from_inside, attacks.rs::cve_2024_21626_init_holds_no_host_directory, attacks.rs::cve_2024_21626_init_holds_no_host_file_or_directory (ignored: fd 2 is a host log file on main) |
//! | CVE-2016-9962 | a root job grabbing joining sessions before exec | attacks.rs::cve_2016_9962_joining_sessions_cannot_be_grabbed_before_exec |
//! | CVE-2019-19921 | rootfs with a symlinked /proc | attacks.rs::cve_2019_19921_symlinked_proc_never_mounts_outside, rootfs.rs::planted_proc_and_dev_symlinks_leave_host_dirs_alone |
//! | CVE-2021-30465 | bind-mount destination exchanged with a symlink during start (ignored: no protection yet) | attacks.rs::cve_2021_30465_bind_mount_destination_exchange_race |
//!
//! Static attack programs are C, compiled with `cc -static` into each
//! test's scratch directory and copied into the container's rootfs copy.
//! Each test's comment says how it was checked to fail when the protection
//! it proves is taken away.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use warden_tests::attack::{
    build_hostlaunch, host_dirs, host_mounts, kv, launched, new_mounts, snap_tree, static_prog, Ctr,
};
use warden_tests::server::{self, Opts, Srv, Txt};
use warden_tests::{bin, rootfs, scratch};

// ---------------------------------------------------------------------------
// CVE-2024-21626: a host fd or cwd leaking into a container process.

/// Run inside: prints `fds=` (its open fds, comma-separated, the listing's
/// own excepted), `cwd=` and `root=` (readlinks of /proc/self/cwd and
/// root), `getcwd=`, `fdcd=` (every N in 3..1024 for which `cd
/// /proc/self/fd/N` worked, the CVE's move) and `climb=inside|OUTSIDE`
/// (64 times `..` from the cwd ends at the container's `/`, or elsewhere).
const FDPROBE_C: &str = r#"#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

static void link_of(const char *key, const char *path) {
  char b[4096];
  ssize_t n = readlink(path, b, sizeof b - 1);
  if (n < 0) { printf("%s=%s\n", key, strerrorname_np(errno)); return; }
  b[n] = 0;
  printf("%s=%s\n", key, b);
}

int main(void) {
  int v[4096], n = 0;
  DIR *d = opendir("/proc/self/fd");
  if (!d) { printf("fds=%s\n", strerrorname_np(errno)); return 1; }
  struct dirent *e;
  while ((e = readdir(d)) && n < 4096) {
    if (e->d_name[0] == '.') continue;
    int fd = atoi(e->d_name);
    if (fd != dirfd(d)) v[n++] = fd;
  }
  closedir(d);
  qsort(v, n, sizeof v[0], cmp);
  printf("fds=");
  for (int i = 0; i < n; i++) printf(i ? ",%d" : "%d", v[i]);
  printf("\n");
  link_of("cwd", "/proc/self/cwd");
  link_of("root", "/proc/self/root");
  char cwd[4096];
  printf("getcwd=%s\n", getcwd(cwd, sizeof cwd) ? cwd : strerrorname_np(errno));
  int here = open(".", O_PATH | O_CLOEXEC);
  printf("fdcd=");
  int first = 1;
  for (int fd = 3; fd < 1024; fd++) {
    if (fd == here) continue;
    char p[64];
    snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
    if (chdir(p) == 0) {
      printf(first ? "%d" : ",%d", fd);
      first = 0;
      if (fchdir(here)) return 1;
    }
  }
  printf("\n");
  struct stat r, s;
  if (stat("/", &r)) return 1;
  for (int i = 0; i < 64; i++) if (chdir("..")) break;
  if (stat(".", &s)) return 1;
  printf("climb=%s\n", r.st_dev == s.st_dev && r.st_ino == s.st_ino ? "inside" : "OUTSIDE");
  return 0;
}
"#;

/// Home of `user` in the test rootfs's /etc/passwd.
fn home_of(user: &str) -> String {
    let pw = std::fs::read_to_string(rootfs().join("etc/passwd")).unwrap();
    pw.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&user)).then(|| f[5].to_string())
        })
        .unwrap_or_else(|| panic!("no {user} in the rootfs's /etc/passwd"))
}

/// The probe's report must show nothing of the host: exactly fds 0-2, cwd
/// and root inside, no fd to `cd` through, no way up out of the root.
fn check_fdprobe(out: &str, home: &str, who: &str) {
    let out = out.replace('\r', "");
    let r = kv(&out);
    assert_eq!(
        r.get("fds").map(String::as_str),
        Some("0,1,2"),
        "{who}: {out}"
    );
    assert_eq!(r.get("fdcd").map(String::as_str), Some(""), "{who}: {out}");
    assert_eq!(r.get("root").map(String::as_str), Some("/"), "{who}: {out}");
    assert_eq!(r.get("cwd").map(String::as_str), Some(home), "{who}: {out}");
    assert_eq!(
        r.get("getcwd").map(String::as_str),
        Some(home),
        "{who}: {out}"
    );
    assert_eq!(
        r.get("climb").map(String::as_str),
        Some("inside"),
        "{who}: {out}"
    );
}

/// Runs `cmd` with a pty of ours as stdin, stdout and stderr (so wsh asks
/// for a tty session); returns (status, output).
fn with_tty(mut cmd: Command) -> (i32, String) {
    use std::io::Read;
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave: std::os::fd::OwnedFd = pty.slave;
    let mut child = cmd
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    // The command holds its copies of the slave until dropped: the master
    // would never read EIO.
    drop(cmd);
    let mut guard = warden_tests::Cleanup::new();
    guard.kill_pid(child.id() as i32);
    let st = child.wait().unwrap();
    // The output fits the pty's buffer; the master reads EIO after it.
    let mut m = std::fs::File::from(pty.master);
    let mut out = Vec::new();
    let _ = m.read_to_end(&mut out);
    (
        st.code().unwrap_or(-1),
        String::from_utf8_lossy(&out).into_owned(),
    )
}

/// CVE-2024-21626 (runc's leaked host fd used as cwd through
/// /proc/self/fd/N), S1, S2. wshd and then wsh are each started from a
/// host working directory with fds 3-20 open on host directories (/, /etc,
/// /proc, a scratch dir) and a host file; the session, as root and as
/// vcap, over pipes and over a pty, sees only fds 0-2, has its cwd and root
/// inside, cannot `cd` through any /proc/self/fd/N and cannot climb out
/// with `..`.
///
/// Checked to fail without the protection: the probe itself, run on the
/// host through the same launcher (the control below), reports the leaked
/// fds, the `cd` through them and a cwd outside, so each assertion can
/// fail. wsh's fds cannot reach a session at all (wshd forks it); wshd's
/// are closed at its start (`close_from(3)`) and every fd of the init is
/// close-on-exec, which each session's `close_range(3, ~0, CLOEXEC)`
/// enforces again: builds without one or the other of the two (made to
/// check, not committed) still pass, as they should; a build without both
/// fails: the session sees fds 3-20 of the launcher (and `fdcd` lists
/// them).
#[test]
fn cve_2024_21626_sessions_get_no_host_fd_or_cwd() {
    let (dir, _g) = scratch("atk-21626");
    let probe = static_prog(&dir, "fdprobe", FDPROBE_C);
    let launcher = build_hostlaunch(&dir);
    let hostcwd = dir.join("hostcwd");
    std::fs::create_dir(&hostcwd).unwrap();
    std::fs::write(hostcwd.join("host-secret"), "host\n").unwrap();
    let dirs = host_dirs(&hostcwd);

    // Control: on the host, the launcher's fds and cwd are what the probe
    // reports.
    let (code, out, err) = warden_tests::run(&mut launched(&launcher, &hostcwd, &dirs, &probe));
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    let ctl = kv(&String::from_utf8_lossy(&out));
    assert!(ctl["fds"].starts_with("0,1,2,3,4,"), "{ctl:?}");
    assert!(ctl["fdcd"].starts_with("3,4"), "{ctl:?}");
    assert_eq!(ctl["cwd"], hostcwd.display().to_string());

    // wshd itself is launched the same way (host cwd, host fds 3-20).
    let c = launched_box("atk-21626", &[("fdprobe", &probe)], &dir);
    for user in ["root", "vcap"] {
        let home = home_of(user);
        let wsh = |c: &Ctr| {
            let mut cmd = launched(&launcher, &hostcwd, &dirs, &bin("wsh"));
            cmd.arg("--socket")
                .arg(c.sock())
                .args(["--user", user, "/bin/fdprobe"]);
            cmd
        };
        let (code, out, err) = warden_tests::run(wsh(&c).stdin(Stdio::null()));
        assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
        check_fdprobe(
            &String::from_utf8_lossy(&out),
            &home,
            &format!("{user}, pipes"),
        );
        let (code, out) = with_tty(wsh(&c));
        assert_eq!(code, 0, "{out}");
        check_fdprobe(&out, &home, &format!("{user}, tty"));
    }
}

/// A private copy of the test rootfs with `progs` in its /bin (for
/// containers made by the controller).
fn rootfs_with(dir: &Path, progs: &[(&str, &Path)]) -> PathBuf {
    let root = dir.join("rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(rootfs())
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success(), "copy rootfs");
    for (name, p) in progs {
        let dst = root.join("bin").join(name);
        std::fs::copy(p, &dst).unwrap();
        std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    root
}

/// CVE-2024-21626, S1, S2, S5 through the controller: jobs started by
/// `run` (vcap and privileged), by `spawn` + `link`, and by the `warden run`
/// CLI launched from a host cwd with host fds 3-20 open, see only fds 0-2
/// and the container's cwd and root; vcap jobs have no capability and
/// no_new_privs. (The server itself holds its depot, log, socket and client
/// connections; none may reach a job.)
///
/// Checked to fail without the protection: as for the wsh test above (the
/// same probe, whose host run shows the leak); the build without both
/// closes fails here too: jobs see fds 10 and 251, which the shell of
/// start.sh leaves open in wshd.
#[test]
fn cve_2024_21626_controller_jobs_get_no_host_fd_or_cwd() {
    let (dir, _g) = scratch("atk-21626c");
    let probe = static_prog(&dir, "fdprobe", FDPROBE_C);
    let launcher = build_hostlaunch(&dir);
    let root = rootfs_with(&dir, &[("fdprobe", &probe)]);
    let s = Srv::start(
        "atk21626",
        Opts {
            rootfs: Some(root),
            ..Default::default()
        },
    );
    let mut c = s.client();
    let h = server::create_default(&mut c);
    let script = "/bin/fdprobe; grep -E '^(Uid|CapEff|CapPrm|NoNewPrivs):' /proc/self/status";
    let status = |out: &str, k: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .map(|v| v.split_whitespace().next().unwrap_or("").to_string())
            .unwrap_or_default()
    };

    let r = server::run(&mut c, &h, script);
    assert_eq!(r.exit_status, Some(0), "{:?}", r.stderr.txt());
    let out = r.stdout.txt().unwrap().to_string();
    check_fdprobe(&out, &home_of("vcap"), "run as vcap");
    assert_ne!(status(&out, "Uid"), "0", "{out}");
    assert_eq!(status(&out, "CapEff"), "0000000000000000", "{out}");
    assert_eq!(status(&out, "CapPrm"), "0000000000000000", "{out}");
    assert_eq!(status(&out, "NoNewPrivs"), "1", "{out}");

    let r = server::run_privileged(&mut c, &h, script);
    assert_eq!(r.exit_status, Some(0), "{:?}", r.stderr.txt());
    check_fdprobe(r.stdout.txt().unwrap(), &home_of("root"), "run as root");

    let job = server::spawn(&mut c, &h, script);
    let r = server::link(&mut c, &h, job).expect("link");
    assert_eq!(r.exit_status, Some(0), "{:?}", r.stderr.txt());
    check_fdprobe(r.stdout.txt().unwrap(), &home_of("vcap"), "spawn + link");

    let hostcwd = dir.join("hostcwd");
    std::fs::create_dir(&hostcwd).unwrap();
    let mut cli = launched(&launcher, &hostcwd, &host_dirs(&hostcwd), &bin("warden"));
    cli.args(["run", "--handle", &h, "--script", script, "--socket"])
        .arg(&s.sock);
    let (code, out, err) = warden_tests::run(&mut cli);
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    check_fdprobe(
        &String::from_utf8_lossy(&out),
        &home_of("vcap"),
        "warden run CLI",
    );

    server::destroy_or_retry(&mut c, &h);
}

/// Run inside as root: tries to reach the container init's (pid 1's) fds,
/// cwd, root, program and memory. Prints `listed=N` (entries of
/// /proc/1/fd), one `fdN=<readlink errno>/<open errno>` per entry, and
/// `cwd=`, `root=`, `exe=` (readlink), `environ=`, `mem=` (open), each
/// `ok` or an errno name.
const INITPROBE_C: &str = r#"#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *rl(const char *p) {
  static char b[4096];
  ssize_t n = readlink(p, b, sizeof b - 1);
  if (n < 0) return strerrorname_np(errno);
  b[n] = 0;
  return "ok";
}

static const char *op(const char *p, int flags) {
  int fd = open(p, flags | O_CLOEXEC);
  if (fd < 0) return strerrorname_np(errno);
  close(fd);
  return "ok";
}

int main(void) {
  DIR *d = opendir("/proc/1/fd");
  int listed = 0;
  if (!d) printf("listdir=%s\n", strerrorname_np(errno));
  struct dirent *e;
  while (d && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    listed++;
    char p[64];
    snprintf(p, sizeof p, "/proc/1/fd/%s", e->d_name);
    const char *a = rl(p);
    printf("fd%s=%s/%s\n", e->d_name, a, op(p, O_RDONLY));
  }
  if (d) closedir(d);
  printf("listed=%d\n", listed);
  printf("cwd=%s\n", rl("/proc/1/cwd"));
  printf("root=%s\n", rl("/proc/1/root"));
  printf("exe=%s\n", rl("/proc/1/exe"));
  printf("environ=%s\n", op("/proc/1/environ", O_RDONLY));
  printf("mem=%s\n", op("/proc/1/mem", O_RDONLY));
  printf("cwdopen=%s\n", op("/proc/1/cwd", O_RDONLY | O_DIRECTORY));
  return 0;
}
"#;

/// Starts a box whose wshd was launched from a host cwd with host fds
/// 3-20 open (the launcher and wshd's main close them; this shows it).
fn launched_box(tag: &str, progs: &[(&str, &Path)], dir: &Path) -> Ctr {
    let launcher = build_hostlaunch(dir);
    let hostcwd = dir.join("hostcwd");
    std::fs::create_dir_all(&hostcwd).unwrap();
    let dirs = host_dirs(&hostcwd);
    Ctr::boot(
        tag,
        progs,
        |_| {},
        Some(launched(&launcher, &hostcwd, &dirs, &bin("wshd"))),
    )
}

/// CVE-2024-21626 for the container's init: wshd is launched from a host
/// cwd with host fds 3-20 open; container root cannot read or open any of
/// pid 1's fds, nor its cwd, root, program, environment or memory (wshd is
/// non-dumpable, and root sessions lack CAP_SYS_PTRACE).
///
/// Two protections hold here, each enough alone: the init is non-dumpable,
/// and it keeps capabilities root sessions lack (the kernel lets a process
/// reach another's fds only if its own capabilities cover the target's). A
/// build without `set_dumpable(false)` (made to check, not committed) still
/// passes this test for that second reason; the same build fails
/// `cve_2016_9962_joining_sessions_cannot_be_grabbed_before_exec`, where
/// the targets have the session's capabilities. This test is the one that
/// fails should root sessions ever be given the init's full set (a site's
/// capability configuration) without the non-dumpable init. `listed` > 0
/// proves the probe saw real entries to try.
#[test]
fn cve_2024_21626_init_fds_are_out_of_reach_from_inside() {
    let (dir, _g) = scratch("atk-21626i");
    let probe = static_prog(&dir, "initprobe", INITPROBE_C);
    let c = launched_box("atk-21626i", &[("initprobe", &probe)], &dir);
    let out = c.ok("root", &["/bin/initprobe"]);
    let r = kv(&out);
    let listed: usize = r["listed"].parse().unwrap();
    assert!(listed >= 3, "{out}");
    // An fd the init closed between the listing and the probe's open
    // (its own short-lived ones, e.g. for the probe's session) reads as
    // ENOENT: gone, not reached. Every other one must be refused, and at
    // least three of them (0-2 are always there).
    let mut refused = 0;
    for (k, v) in &r {
        if k.starts_with("fd") {
            assert!(v == "EACCES/EACCES" || v == "ENOENT/ENOENT", "{k}: {out}");
            refused += usize::from(v == "EACCES/EACCES");
        }
    }
    assert!(refused >= 3, "{out}");
    // (environ is left out: on this kernel root without CAP_SYS_PTRACE may
    // read a non-dumpable root process's environ; what it holds, the init's
    // environment, must be clean instead: S20.)
    for k in ["cwd", "root", "exe", "mem", "cwdopen"] {
        assert_eq!(r[k], "EACCES", "{k}: {out}");
    }
}

/// What each fd of `pid` points at (readlink of /proc/PID/fd/N).
fn fd_targets(pid: i32) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .map(|e| {
            let t = std::fs::read_link(e.path())
                .map(|p| p.display().to_string())
                .unwrap_or_else(|e| format!("<{e}>"));
            (e.file_name().to_string_lossy().into_owned(), t)
        })
        .collect();
    v.sort();
    v
}

/// CVE-2024-21626, the host's view of the init: none of wshd's fds is a
/// directory, and none is one of the host paths it was launched with; its
/// cwd and root are the container's root.
///
/// Checked to fail without the protection: without wshd's `close_from(3)`
/// at start (removed in a build not committed) the launcher's fds 3-20 stay
/// open in the init and show here as `/`, `/etc`, `/proc`...
#[test]
fn cve_2024_21626_init_holds_no_host_directory() {
    let (dir, _g) = scratch("atk-21626h");
    let c = launched_box("atk-21626h", &[], &dir);
    let root = std::fs::canonicalize(c.path.join("root")).unwrap();
    let launched_with: Vec<String> = host_dirs(&dir.join("hostcwd"))
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    for (fd, t) in fd_targets(c.pid) {
        let p = PathBuf::from(&t);
        assert!(
            !(t.starts_with('/') && p.is_dir()),
            "wshd's fd {fd} is the host directory {t}"
        );
        assert!(
            !launched_with.contains(&t),
            "wshd's fd {fd} is {t}, which its launcher held"
        );
    }
    // (A readlink from the host shows "/": the path is relative to the
    // container's own mount tree; the inode says which directory it is.)
    use std::os::unix::fs::MetadataExt;
    let id = |p: &Path| {
        let m = std::fs::metadata(p).unwrap();
        (m.dev(), m.ino())
    };
    for l in ["cwd", "root"] {
        let p = PathBuf::from(format!("/proc/{}/{l}", c.pid));
        assert_eq!(id(&p), id(&root), "wshd's {l} is not the container root");
    }
}

/// CVE-2024-21626, strictly: every fd of the running init is a socket, a
/// pipe, an anonymous inode, a memfd or /dev/null; nothing names a host
/// file.
#[test]
fn cve_2024_21626_init_holds_no_host_file_or_directory() {
    let (dir, _g) = scratch("atk-21626s");
    let c = launched_box("atk-21626s", &[], &dir);
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for (fd, t) in fd_targets(c.pid) {
        // /dev/null (opened before pivot_root, so named relative to the
        // detached /dev: "/null") is recognised by its device number.
        let m = std::fs::metadata(format!("/proc/{}/fd/{fd}", c.pid)).unwrap();
        let null = m.file_type().is_char_device() && m.rdev() == nix::sys::stat::makedev(1, 3);
        assert!(
            ["socket:[", "pipe:[", "anon_inode:", "/memfd:"]
                .iter()
                .any(|p| t.starts_with(p))
                || null,
            "wshd's fd {fd} is {t}: {:?}",
            fd_targets(c.pid)
        );
    }
}

// ---------------------------------------------------------------------------
// CVE-2016-9962: a container process grabbing a process that joins the
// container before it dropped its privileges.

/// Run inside as root: `joinwatch SECS`. Watches /proc for children of the
/// init (pid 1) still running wshd's image (same comm as pid 1: a session
/// between fork and exec), stops each with SIGSTOP (so the attack is not a
/// race it could lose by being slow), checks it is still pre-exec, and
/// tries every way in: ptrace (PTRACE_SEIZE), /proc/PID/mem (read-write and
/// read-only), environ, the exe/cwd/root links, each /proc/PID/fd entry
/// (readlink and open), pidfd_getfd of fds 0-31 and process_vm_readv; then
/// SIGCONT. One line per caught process:
///   `pre pid=P uid=U ptrace=E mem=E memro=E environ=E exe=E cwd=E root=E fd=E getfd=E vmread=E still=1|0`
/// (E: ok or an errno name; still: it was still pre-exec after the tries).
/// As a control, each `sleep` child of the init (a session after its exec,
/// with its final credentials) gets one `post pid=P uid=U fd=E memro=E` line.
/// Last line: `pre=N late=N post=N` (late: exec'd before the stop landed).
const JOINWATCH_C: &str = r#"#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static const char *en(int e) { const char *n = strerrorname_np(e); return n ? n : "errno?"; }

static int readf(const char *p, char *b, int n) {
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  int r = read(fd, b, n - 1);
  close(fd);
  if (r < 0) return -1;
  b[r] = 0;
  return r;
}

static int stat_of(int pid, char *comm, char *state, int *ppid) {
  char p[64], b[1024];
  snprintf(p, sizeof p, "/proc/%d/stat", pid);
  if (readf(p, b, sizeof b) <= 0) return -1;
  char *l = strchr(b, '('), *r = strrchr(b, ')');
  if (!l || !r || r < l) return -1;
  int n = r - l - 1;
  if (n > 63) n = 63;
  memcpy(comm, l + 1, n);
  comm[n] = 0;
  return sscanf(r + 2, "%c %d", state, ppid) == 2 ? 0 : -1;
}

static int uid_of(int pid) {
  char p[64], b[4096];
  snprintf(p, sizeof p, "/proc/%d/status", pid);
  if (readf(p, b, sizeof b) <= 0) return -1;
  char *u = strstr(b, "\nUid:");
  return u ? atoi(u + 5) : -1;
}

static const char *try_open(int pid, const char *what, int flags) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/%s", pid, what);
  int fd = open(p, flags | O_CLOEXEC);
  if (fd < 0) return en(errno);
  close(fd);
  return "ok";
}

static const char *try_link(int pid, const char *what) {
  char p[64], b[4096];
  snprintf(p, sizeof p, "/proc/%d/%s", pid, what);
  return readlink(p, b, sizeof b) < 0 ? en(errno) : "ok";
}

static const char *try_fds(int pid) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/fd", pid);
  DIR *d = opendir(p);
  if (!d) return en(errno);
  const char *last = "none";
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char q[128], b[4096];
    snprintf(q, sizeof q, "%s/%s", p, e->d_name);
    if (readlink(q, b, sizeof b) >= 0) { closedir(d); return "ok"; }
    last = en(errno);
    int fd = open(q, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) { close(fd); closedir(d); return "ok"; }
  }
  closedir(d);
  return last;
}

/* The init's environment, as the attacker reads it (see try_environ). */
static char init_env[65536];
static int init_env_len = -1;

/* Reads /proc/PID/environ: an errno name, "same" when it is exactly the
   init's environment (readable anyway), or "DIFFERENT". */
static const char *try_environ(int pid) {
  char p[64];
  static char b[65536];
  snprintf(p, sizeof p, "/proc/%d/environ", pid);
  int fd = open(p, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return en(errno);
  int n = 0, r;
  while (n < (int)sizeof b && (r = read(fd, b + n, sizeof b - n)) > 0) n += r;
  int e = errno;
  close(fd);
  if (r < 0) return en(e);
  return n == init_env_len && !memcmp(b, init_env, n) ? "same" : "DIFFERENT";
}

static const char *try_ptrace(int pid) {
  if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0) return "ok";
  return en(errno);
}

static const char *try_getfd(int pid) {
  int pfd = syscall(SYS_pidfd_open, pid, 0);
  if (pfd < 0) return en(errno);
  const char *r = "none";
  for (int n = 0; n < 32; n++) {
    int fd = syscall(SYS_pidfd_getfd, pfd, n, 0);
    if (fd >= 0) { close(fd); r = "ok"; break; }
    if (errno != EBADF) r = en(errno);
  }
  close(pfd);
  return r;
}

static const char *try_vmread(int pid) {
  char b[8];
  struct iovec l = {b, sizeof b}, r = {(void *)0x400000, sizeof b};
  return syscall(SYS_process_vm_readv, pid, &l, 1, &r, 1, 0) < 0 ? en(errno) : "ok";
}

#define MAXSEEN 65536
static int seen_pre[MAXSEEN], npre, seen_post[MAXSEEN], npost;
static int seen(int *v, int *n, int pid) {
  for (int i = 0; i < *n; i++) if (v[i] == pid) return 1;
  if (*n < MAXSEEN) v[(*n)++] = pid;
  return 0;
}

int main(int argc, char **argv) {
  int secs = argc > 1 ? atoi(argv[1]) : 10;
  char init[64], comm[64], st;
  int pp, self = getpid();
  if (stat_of(1, init, &st, &pp)) { printf("error=stat of pid 1\n"); return 1; }
  printf("init=%s\n", init);
  {
    int fd = open("/proc/1/environ", O_RDONLY | O_CLOEXEC), r;
    init_env_len = 0;
    while (fd >= 0 && init_env_len < (int)sizeof init_env &&
           (r = read(fd, init_env + init_env_len, sizeof init_env - init_env_len)) > 0)
      init_env_len += r;
    if (fd >= 0) close(fd);
  }
  fflush(stdout);
  int pre = 0, late = 0, post = 0;
  time_t end = time(NULL) + secs;
  while (time(NULL) < end) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d))) {
      int pid = atoi(e->d_name);
      if (pid <= 1 || pid == self) continue;
      if (stat_of(pid, comm, &st, &pp) || pp != 1) continue;
      if (!strcmp(comm, init)) {
        if (seen(seen_pre, &npre, pid)) continue;
        if (kill(pid, SIGSTOP)) continue;
        for (int k = 0; k < 4000; k++) {
          if (stat_of(pid, comm, &st, &pp) || st == 'T' || st == 't') break;
          usleep(50);
        }
        if (stat_of(pid, comm, &st, &pp) || st != 'T' || strcmp(comm, init)) {
          late++;
          kill(pid, SIGCONT);
          continue;
        }
        int uid = uid_of(pid);
        const char *a = try_ptrace(pid), *b = try_open(pid, "mem", O_RDWR),
                   *c = try_open(pid, "mem", O_RDONLY), *f = try_environ(pid),
                   *g = try_link(pid, "exe"), *h = try_link(pid, "cwd"), *i = try_link(pid, "root"),
                   *j = try_fds(pid), *k = try_getfd(pid), *m = try_vmread(pid);
        int still = stat_of(pid, comm, &st, &pp) == 0 && !strcmp(comm, init);
        printf("pre pid=%d uid=%d ptrace=%s mem=%s memro=%s environ=%s exe=%s cwd=%s root=%s fd=%s getfd=%s vmread=%s still=%d\n",
               pid, uid, a, b, c, f, g, h, i, j, k, m, still);
        fflush(stdout);
        kill(pid, SIGCONT);
        pre++;
      } else if (!strcmp(comm, "sleep")) {
        if (seen(seen_post, &npost, pid)) continue;
        const char *a = try_fds(pid), *b = try_open(pid, "mem", O_RDONLY);
        printf("post pid=%d uid=%d fd=%s memro=%s\n", pid, uid_of(pid), a, b);
        fflush(stdout);
        post++;
      }
    }
    if (d) closedir(d);
  }
  printf("pre=%d late=%d post=%d\n", pre, late, post);
  return 0;
}
"#;

/// CVE-2016-9962 (runc init ptraced/opened by a container process before
/// it dropped privileges and closed host fds). A root job watches for
/// every process joining the container (the sessions the host starts
/// meanwhile, root and vcap, some of which never exec because their program
/// does not exist), freezes each one still running wshd's image, and tries
/// every way in. It must catch some, and fail on each: ptrace and
/// process_vm_readv are denied by seccomp (EPERM); /proc/PID/{mem,exe,cwd,
/// root,fd/*} (EACCES) and pidfd_getfd (EPERM) fail because a session is
/// non-dumpable until its exec (inherited from the non-dumpable init; a
/// vcap session also loses dumpability at setuid). Its environ may be
/// readable to root on this kernel, but before exec it is the init's own
/// (`same`), which root reads anyway. Control: the same job reads the fds
/// and memory of root sessions after their exec (`sleep`, final
/// credentials, dumpable again), which shows each probe succeeds where the
/// kernel allows it.
///
/// Checked to fail without the protection: with `set_dumpable(false)`
/// removed from wshd's boot (a build not committed), frozen root sessions
/// past their capability drop (same uid and capabilities as the attacker)
/// report `fd=ok`, `getfd=ok`, `memro=ok` and the test fails.
#[test]
fn cve_2016_9962_joining_sessions_cannot_be_grabbed_before_exec() {
    let (dir, _g) = scratch("atk-9962");
    let watch = static_prog(&dir, "joinwatch", JOINWATCH_C);
    let c = Ctr::boot("atk-9962", &[("joinwatch", &watch)], |_| {}, None);
    let secs = 12;
    let attacker = c
        .wsh("root", &["/bin/joinwatch", &secs.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // Sessions joining meanwhile, a few at a time: root and vcap, ones that
    // exec (true, sleep) and ones that never do (no such program: the child
    // stays in wshd's image, with its final credentials, until it exits).
    let t0 = Instant::now();
    let mut n = 0;
    while t0.elapsed() < Duration::from_secs(secs - 5) {
        let batch: Vec<std::process::Child> = [
            ("root", vec!["/no/such/program"]),
            ("vcap", vec!["/no/such/program"]),
            ("root", vec!["true"]),
            ("vcap", vec!["true"]),
            ("root", vec!["sleep", "0.3"]),
            ("vcap", vec!["sleep", "0.1"]),
        ]
        .iter()
        .map(|(u, a)| {
            c.wsh(u, a)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
        for mut ch in batch {
            let _ = ch.wait();
            n += 1;
        }
    }
    let out = attacker.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = kv(text
        .lines()
        .last()
        .unwrap_or("")
        .replace(' ', "\n")
        .as_str());
    let pre: usize = last.get("pre").and_then(|v| v.parse().ok()).unwrap_or(0);
    eprintln!(
        "{n} sessions started; attacker: {}",
        text.lines().last().unwrap_or("")
    );
    assert!(
        pre > 0,
        "the attacker never caught a session before its exec: {text}"
    );
    let mut post_root_ok = 0;
    for l in text.lines() {
        let f = kv(&l.replace(' ', "\n"));
        if l.starts_with("pre ") {
            assert_eq!(f["still"], "1", "{l}");
            assert_eq!(f["ptrace"], "EPERM", "{l}");
            for k in ["mem", "memro", "exe", "cwd", "root", "fd"] {
                assert_eq!(f[k], "EACCES", "{k}: {l}");
            }
            // Root may read a non-dumpable root process's environ on this
            // kernel; before its exec a session's is the init's own, which
            // the attacker can read anyway (and which must be clean: S20).
            assert!(["EACCES", "same"].contains(&f["environ"].as_str()), "{l}");
            assert_eq!(f["getfd"], "EPERM", "{l}");
            assert_eq!(f["vmread"], "EPERM", "{l}");
        } else if l.starts_with("post ") && f["uid"] == "0" && f["fd"] == "ok" && f["memro"] == "ok"
        {
            post_root_ok += 1;
        }
    }
    assert!(
        post_root_ok > 0,
        "control: the attacker never reached a root session's fds and memory after its exec: {text}"
    );
}

// ---------------------------------------------------------------------------
// CVE-2019-19921: /proc of the rootfs is a symlink, so mounting proc "on
// /proc" lands wherever it points.

/// CVE-2019-19921. The rootfs's /proc is a symlink to the host's `/`, to
/// `/etc`, to `/proc`, or relative (`../../..` climbing out, `../../etc`).
/// wshd mounts proc itself, before any program of the rootfs runs (so
/// nothing in the container can swap the path during the mount: the race
/// of the CVE has no second party here; the symlink is what is left of it).
/// The start must fail cleanly, naming /proc, with no process left; or, if
/// it started, proc must be mounted inside. In both cases: the container's
/// mount table just before pivot_root (a hook copies it) holds no proc
/// mount outside the container root, and the host's mount table gains no
/// proc mount and nothing on the symlinks' targets.
///
/// Checked to fail without the protection: with `O_NOFOLLOW` and the
/// symlink refusal taken out of wshd::setup::open_in (a build made to
/// check, not committed), the first variant already fails: proc is mounted
/// on `/` of the container's mount namespace (the host's root there), which
/// the pre-pivot table shows.
#[test]
fn cve_2019_19921_symlinked_proc_never_mounts_outside() {
    for (i, target) in [
        "/",
        "/etc",
        "/proc",
        "../../../../../../../../../..",
        "../../../../../../../../../../etc",
    ]
    .into_iter()
    .enumerate()
    {
        let mut d = warden_tests::wshd::ContainerDir::new(&format!("atk-19921-{i}"));
        let root = d.path.join("root");
        std::fs::remove_dir_all(root.join("proc")).unwrap();
        std::os::unix::fs::symlink(target, root.join("proc")).unwrap();
        d.hook("hook-parent-after-clone.sh", warden_tests::wshd::RECORD_PID);
        // Host side, in the container's mount namespace, after wshd's own
        // mounts and before pivot_root.
        d.hook(
            "hook-child-before-pivot.sh",
            "#!/bin/sh\ncd \"$(dirname \"$0\")/..\"\ncat /proc/self/mountinfo > run/pre-pivot.mountinfo\n",
        );
        let before = host_mounts();
        let title = warden_tests::unique("wshd-19921");
        let err = d.path.join("wshd.err");
        let st = d
            .wshd()
            .args(["--title", &title])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        let pid = d.wshd_pid();
        let stderr = std::fs::read_to_string(&err).unwrap_or_default();
        let after = host_mounts();
        let watched = [Path::new("/etc"), Path::new("/proc"), d.path.as_path()];
        let new = new_mounts(&before, &after, &watched);
        assert!(new.is_empty(), "{target}: new host mounts: {new:#?}");

        let root_s = std::fs::canonicalize(&root).unwrap().display().to_string();
        if let Ok(pre) = std::fs::read_to_string(d.path.join("run/pre-pivot.mountinfo")) {
            let outside: Vec<_> = warden_tests::attack::mounts(&pre)
                .into_iter()
                .filter(|m| m.fstype == "proc")
                .filter(|m| m.point != root_s && !m.point.starts_with(&format!("{root_s}/")))
                .filter(|m| {
                    !before
                        .iter()
                        .any(|h| h.point == m.point && h.fstype == "proc")
                })
                .collect();
            assert!(
                outside.is_empty(),
                "{target}: proc mounted outside the root: {outside:#?}"
            );
            let dup = warden_tests::attack::mounts(&pre)
                .iter()
                .filter(|m| m.fstype == "proc" && m.point == "/proc")
                .count();
            assert_eq!(
                dup, 1,
                "{target}: a second proc on the host's /proc:\n{pre}"
            );
        }
        if st.success() {
            // Started: proc must be the container's own, at /proc.
            let c = Ctr {
                path: d.path.clone(),
                pid: pid.expect("hook recorded the pid"),
                title,
                cleanup: warden_tests::Cleanup::new(),
            };
            let out = c.ok("root", &["sh", "-c", "grep ' /proc ' /proc/self/mountinfo"]);
            assert!(out.contains(" - proc "), "{target}: {out}");
            drop(c);
        } else {
            assert!(
                stderr.contains("rootfs /proc"),
                "{target}: start failed without naming /proc: {stderr}"
            );
            assert!(
                warden_tests::pid_by_title(&title).is_none(),
                "{target}: a container init is left"
            );
            if let Some(p) = pid {
                assert!(!warden_tests::alive(p), "{target}: the cloned init is left");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// CVE-2021-30465: a bind mount's destination exchanged with a symlink while
// the mount is made.

/// Run inside: `swapper DIR A1 B1 [A2 B2 ...]`: exchanges each pair
/// (renameat2 RENAME_EXCHANGE) in a tight loop. While `DIR/pause` exists it
/// puts every pair back (each A a directory again), creates `DIR/paused`
/// and waits; it removes `DIR/paused` and goes on once `pause` is gone.
/// Once `DIR/stop` exists it prints `swaps=N errors=N last=ERRNO` and exits.
const SWAPPER_C: &str = r#"#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int xchg(const char *a, const char *b) {
  return syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

int main(int argc, char **argv) {
  char stop[4096], pause[4096], paused[4096];
  snprintf(stop, sizeof stop, "%s/stop", argv[1]);
  snprintf(pause, sizeof pause, "%s/pause", argv[1]);
  snprintf(paused, sizeof paused, "%s/paused", argv[1]);
  long n = 0, err = 0;
  int last = 0;
  for (unsigned long k = 0;; k++) {
    if ((k & 1023) == 0) {
      if (access(stop, F_OK) == 0) break;
      if (access(pause, F_OK) == 0) {
        for (int i = 2; i + 1 < argc; i += 2) {
          struct stat st;
          if (lstat(argv[i], &st) == 0 && S_ISLNK(st.st_mode)) xchg(argv[i], argv[i + 1]);
        }
        close(open(paused, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
        while (access(pause, F_OK) == 0 && access(stop, F_OK) != 0) usleep(1000);
        unlink(paused);
      }
    }
    for (int i = 2; i + 1 < argc; i += 2) {
      if (xchg(argv[i], argv[i + 1])) {
        err++;
        last = errno;
      } else {
        n++;
      }
    }
  }
  printf("swaps=%ld errors=%ld last=%s\n", n, err, last ? strerrorname_np(last) : "none");
  return 0;
}
"#;

/// CVE-2021-30465 (runc: mount destinations swapped with a symlink through a
/// shared volume, making a mount land outside the container root). Here
/// bind mounts are applied when a container starts (wshd's
/// hook-child-before-pivot.sh, in the container's mount namespace, while
/// the host's root is still reachable). A container's own processes die
/// with its init, so the attacker is another container sharing a volume:
/// container A (root job) has host directory H bind-mounted at /shared and
/// exchanges H/d with a symlink to `/`, and H/d2 with a symlink to a host
/// directory T, in a tight loop. Container B is created over and over with
/// the bind mounts H -> /vol (rw), S -> /vol/d (ro), S -> /vol/d2 (ro), so
/// its destinations /vol/d and /vol/d2 are the entries A swaps.
///
/// Each time: a watcher reads the mount table of every process of B's
/// start (the hook and its `mount`s) and finds no mount of S anywhere but
/// under the depot; B either fails to start with an error, or starts with
/// S mounted read-only at /vol/d and /vol/d2; the host's mount table gains
/// nothing on S, T, H or `/`, and T and S are unchanged.
///
/// While B starts, the swapper is running; before B is inspected it is
/// paused with the pairs put back (A may move B's mount points around in
/// the volume they share at any time after the start; that is not an
/// escape).
///
/// Protection: bind mounts are applied by wshd (`--bind`, from start.sh)
/// with an `O_PATH|O_NOFOLLOW` walk and fd-based mounts (`open_tree`,
/// `mount_setattr`, `move_mount`), so no path is resolved between the check
/// and the mount. (Before, the before-pivot hook checked each component with
/// `[ -L ]` and mounted by path; the swapper won within a few starts: B got
/// S read-write at /vol/d, or S mounted on `/` or on T in B's namespace.)
#[test]

fn cve_2021_30465_bind_mount_destination_exchange_race() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use warden::proto::{self, Type};
    let (dir, _g) = scratch("atk-30465");
    let swapper = static_prog(&dir, "swapper", SWAPPER_C);
    let root = rootfs_with(&dir, &[("swapper", &swapper)]);
    let shared = dir.join("shared");
    let src = dir.join("src");
    let victim = dir.join("victim");
    for d in [
        &shared,
        &shared.join("d"),
        &shared.join("d2"),
        &src,
        &victim,
    ] {
        std::fs::create_dir(d).unwrap();
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(src.join("marker"), "from-src\n").unwrap();
    std::fs::write(victim.join("keep"), "host victim\n").unwrap();
    std::os::unix::fs::symlink("/", shared.join("l1")).unwrap();
    std::os::unix::fs::symlink(&victim, shared.join("l2")).unwrap();
    let src_before = snap_tree(&src);
    let victim_before = snap_tree(&victim);
    let s_root = warden_tests::attack::fs_root_of(&src);

    let s = Srv::start(
        "atk30465",
        Opts {
            rootfs: Some(root),
            ..Default::default()
        },
    );
    let depot = s.depot.display().to_string();
    let mut c = s.client();
    let bind = |src: &Path, dst: &str, rw: bool| proto::BindMount {
        src_path: Some(src.display().to_string()),
        dst_path: Some(dst.into()),
        mode: Some(i32::from(rw)),
    };
    let a = server::create(
        &mut c,
        proto::CreateRequest {
            bind_mounts: vec![bind(&shared, "/shared", true)],
            ..Default::default()
        },
    )
    .expect("create the attacker");
    let r: proto::SpawnResponse = c
        .call(
            Type::Spawn,
            &proto::SpawnRequest {
                handle: Some(a.clone()),
                script: Some(
                    "exec /bin/swapper /shared /shared/d /shared/l1 /shared/d2 /shared/l2".into(),
                ),
                privileged: Some(true),
                ..Default::default()
            },
        )
        .expect("spawn the swapper");
    let job = r.job_id.unwrap();

    // The watcher: mount tables of the processes of B's start.
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let watcher = {
        let (stop, seen, depot, s_root) =
            (stop.clone(), seen.clone(), depot.clone(), s_root.clone());
        std::thread::spawn(move || {
            let mut looks = 0u64;
            while !stop.load(Ordering::SeqCst) {
                for pid in warden_tests::attack::pids_with_cmdline(&depot) {
                    let Ok(mi) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
                        continue;
                    };
                    looks += 1;
                    for m in warden_tests::attack::mounts(&mi) {
                        if m.root == s_root && !m.point.starts_with(&depot) {
                            seen.lock()
                                .unwrap()
                                .push(format!("pid {pid}: S mounted on {}", m.point));
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            looks
        })
    };

    let host_before = host_mounts();
    let (mut started, mut refused) = (0, Vec::new());
    let t0 = Instant::now();
    // While paused, the swapper has put the pairs back (d and d2 are the
    // directories again) and leaves them alone, so B can be inspected: A
    // can move B's mount points around inside the volume they share at any
    // time, which is not an escape.
    let pause = |on: bool| {
        if on {
            std::fs::write(shared.join("pause"), "").unwrap();
            assert!(
                warden_tests::wait_for(Duration::from_secs(20), || shared.join("paused").exists()),
                "the swapper did not pause"
            );
        } else {
            std::fs::remove_file(shared.join("pause")).unwrap();
            assert!(
                warden_tests::wait_for(Duration::from_secs(20), || !shared.join("paused").exists()),
                "the swapper did not resume"
            );
        }
    };
    pause(true);
    for i in 0..12 {
        pause(false);
        let r = server::create(
            &mut c,
            proto::CreateRequest {
                bind_mounts: vec![
                    bind(&shared, "/vol", true),
                    bind(&src, "/vol/d", false),
                    bind(&src, "/vol/d2", false),
                ],
                ..Default::default()
            },
        );
        pause(true);
        let when = format!("start {i}");
        let mut problems = Vec::new();
        match r {
            Ok(h) => {
                started += 1;
                let out = server::run_privileged(
                    &mut c,
                    &h,
                    "for d in /vol/d /vol/d2; do \
                       grep \" $d \" /proc/self/mountinfo | cut -d' ' -f5,6; \
                       cat $d/marker; \
                       (echo x > $d/written) 2>/dev/null && echo WRITABLE $d; \
                     done; true",
                );
                let o = out.stdout.txt().unwrap_or("").to_string();
                if !(o.contains("/vol/d ro,") && o.contains("/vol/d2 ro,"))
                    || o.matches("from-src").count() != 2
                    || o.contains("WRITABLE")
                {
                    problems.push(format!(
                        "B started without both read-only bind mounts of S:\n{o}"
                    ));
                }
                server::destroy_or_retry(&mut c, &h);
            }
            Err(e) => refused.push(e.to_string()),
        }
        let found = seen.lock().unwrap().clone();
        if !found.is_empty() {
            problems.push(format!(
                "a bind mount landed outside the container root: {found:#?}"
            ));
        }
        if snap_tree(&victim) != victim_before {
            problems.push(format!(
                "the host directory T changed: {:?}",
                snap_tree(&victim).keys()
            ));
        }
        if snap_tree(&src) != src_before {
            problems.push(format!(
                "the read-only bind source S changed: {:?}",
                snap_tree(&src).keys()
            ));
        }
        let new = new_mounts(&host_before, &host_mounts(), &[&src, &victim, &shared]);
        if !new.is_empty() {
            problems.push(format!("new host mounts: {new:#?}"));
        }
        assert!(problems.is_empty(), "{when}:\n{}", problems.join("\n"));
    }
    stop.store(true, Ordering::SeqCst);
    let looks = watcher.join().unwrap();
    std::fs::write(shared.join("stop"), "").unwrap();
    std::fs::remove_file(shared.join("pause")).unwrap();
    let r = server::link(&mut c, &a, job).expect("link the swapper");
    let out = r.stdout.txt().unwrap_or("").to_string();
    eprintln!(
        "{started} started, {} refused in {:?}; watcher read {looks} mount tables; swapper: {out}; refusals: {refused:?}",
        refused.len(),
        t0.elapsed()
    );
    let swaps: u64 = kv(&out.replace(' ', "\n"))
        .get("swaps")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!(swaps > 1000, "the swapper did not run: {out}");
    assert!(looks > 0, "the watcher never saw a start");
    server::destroy_or_retry(&mut c, &a);
}

// ---------------------------------------------------------------------------
// S8: /proc and /sys masks, read-only /proc/sys.

/// `maskprobe STEP...`, one `STEP=RESULT` line each. Steps:
/// `read:PATH` (bytes read of at most 4096, or an errno name),
/// `kind:PATH` (`chr:MAJOR:MINOR`, `reg`, `dir`, `other` or an errno name),
/// `wopen:PATH` (open O_WRONLY, nothing written: `ok` or an errno name),
/// `stat:PATH`, `umount:PATH`, `mountfs:TYPE:PATH` (a new filesystem),
/// `remount-rw:PATH`, `bindover:SRC:PATH`, `unshare-ns` (a new mount
/// namespace, kept for the following steps), `fsopen:TYPE`,
/// `open_tree:PATH`, `move_mount:PATH` (detach-clone /tmp and attach it
/// over PATH).
const MASKPROBE_C: &str = r#"#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static void say(const char *step, long r) {
  if (r < 0) printf("%s=%s\n", step, strerrorname_np(errno));
  else printf("%s=ok\n", step);
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    char *s = strdup(argv[i]), *a = strchr(s, ':'), *b = NULL;
    if (a) { *a++ = 0; b = strchr(a, ':'); if (b) *b++ = 0; }
    fflush(stdout);
    if (!strcmp(s, "read")) {
      int fd = open(a, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
      if (fd < 0) { say(argv[i], -1); continue; }
      static char buf[4096];
      ssize_t n = read(fd, buf, sizeof buf);
      if (n < 0) say(argv[i], -1); else printf("%s=%zd\n", argv[i], n);
      close(fd);
    } else if (!strcmp(s, "wopen")) {
      int fd = open(a, O_WRONLY | O_CLOEXEC | O_NONBLOCK);
      if (fd >= 0) close(fd);
      say(argv[i], fd);
    } else if (!strcmp(s, "stat")) {
      struct stat st;
      say(argv[i], stat(a, &st));
    } else if (!strcmp(s, "kind")) {
      struct stat st;
      if (stat(a, &st)) { say(argv[i], -1); continue; }
      if (S_ISCHR(st.st_mode)) printf("%s=chr:%u:%u\n", argv[i], major(st.st_rdev), minor(st.st_rdev));
      else printf("%s=%s\n", argv[i], S_ISREG(st.st_mode) ? "reg" : S_ISDIR(st.st_mode) ? "dir" : "other");
    } else if (!strcmp(s, "umount")) {
      say(argv[i], umount2(a, MNT_DETACH));
    } else if (!strcmp(s, "mountfs")) {
      mkdir(b, 0700);
      say(argv[i], mount(a, b, a, 0, NULL));
    } else if (!strcmp(s, "remount-rw")) {
      say(argv[i], mount(NULL, a, NULL, MS_REMOUNT | MS_BIND, NULL));
    } else if (!strcmp(s, "bindover")) {
      say(argv[i], mount(a, b, NULL, MS_BIND, NULL));
    } else if (!strcmp(s, "unshare-ns")) {
      say(argv[i], unshare(CLONE_NEWNS));
    } else if (!strcmp(s, "fsopen")) {
      long fd = syscall(SYS_fsopen, a, 0);
      if (fd >= 0) close(fd);
      say(argv[i], fd);
    } else if (!strcmp(s, "open_tree")) {
      long fd = syscall(SYS_open_tree, AT_FDCWD, a, 1 /* OPEN_TREE_CLONE */);
      if (fd >= 0) close(fd);
      say(argv[i], fd);
    } else if (!strcmp(s, "move_mount")) {
      long fd = syscall(SYS_open_tree, AT_FDCWD, "/tmp", 1 | 0x80000 /* CLONE|CLOEXEC */);
      if (fd < 0) { say(argv[i], -1); continue; }
      say(argv[i], syscall(SYS_move_mount, fd, "", AT_FDCWD, a, 4 /* F_EMPTY_PATH */));
      close(fd);
    } else {
      printf("%s=unknown\n", argv[i]);
    }
  }
  return 0;
}
"#;

/// S8 as container root, and root trying to undo the masks. Masked files
/// (/proc/kcore, /proc/keys, /proc/timer_list, /proc/sched_debug,
/// /proc/iomem) read as empty and are /dev/null; /proc/sysrq-trigger and /proc/sys (the
/// core_pattern escape) cannot be opened for writing; /sys is absent
/// (/sys/firmware with it); unmounting a mask, mounting a fresh proc or a
/// sysfs, remounting /proc/sys read-write, binding over a mask, the new
/// mount API (fsopen, open_tree, move_mount), also from a new mount
/// namespace of its own, all fail. (Reads of /proc/kcore and writes to
/// /proc/sys are made by rootfs.rs and scripts.rs too.)
///
/// Checked to fail without the protection: the same reads and opens on the
/// host (run first, below, as a control) get data and `ok`, so a missing
/// mask or a writable /proc/sys shows; the mount attempts succeed for the
/// host's root and fail inside only because of the seccomp filter
/// (security.rs's `host_probe_sees_the_kernel_not_a_filter` shows the
/// kernel's own answers for mount, umount2, fsopen, open_tree). A wshd
/// built without the /proc/keys mask and the read-only /proc/sys (made to
/// check, not committed) fails here on `read:/proc/keys`.
#[test]
fn s8_root_cannot_read_masked_proc_or_undo_the_masks() {
    let (dir, _g) = scratch("atk-s8");
    let probe = static_prog(&dir, "maskprobe", MASKPROBE_C);
    let reads = [
        "read:/proc/kcore",
        "read:/proc/keys",
        "read:/proc/timer_list",
        "read:/proc/sched_debug",
        "read:/proc/iomem",
    ];
    let kinds = [
        "kind:/proc/kcore",
        "kind:/proc/keys",
        "kind:/proc/timer_list",
        "kind:/proc/sched_debug",
        "kind:/proc/iomem",
    ];
    let wopens = [
        "wopen:/proc/sysrq-trigger",
        "wopen:/proc/sys/kernel/core_pattern",
        "wopen:/proc/sys/kernel/hostname",
        "wopen:/proc/sys/vm/drop_caches",
    ];
    // Control on the host: what is masked inside has data here (where the
    // kernel has the file) and the writable files open for writing.
    let (code, out, _) =
        warden_tests::run(Command::new(&probe).args(reads).args(kinds).args(wopens));
    assert_eq!(code, 0);
    let host = kv(&String::from_utf8_lossy(&out));
    let present: Vec<&str> = reads
        .iter()
        .copied()
        .filter(|r| host[*r] != "ENOENT")
        .collect();
    for r in &present {
        if *r != "read:/proc/keys" {
            // /proc/keys lists only the keys the reader may see (often none).
            assert_ne!(host[*r], "0", "host control: {r} is empty on the host");
        }
    }
    // (This project's kernel has no /proc/kcore, /proc/sysrq-trigger or
    // /proc/sched_debug: where the host lacks a file, inside it must be
    // absent too, and the mask is not exercised.)
    let present_w: Vec<&str> = wopens
        .iter()
        .copied()
        .filter(|w| host[*w] != "ENOENT")
        .collect();
    for w in &present_w {
        assert_eq!(host[*w], "ok", "host control: {w}");
    }

    let c = Ctr::boot("atk-s8", &[("maskprobe", &probe)], |_| {}, None);
    let undo = [
        "umount:/proc/kcore",
        "umount:/proc/sys",
        "umount:/proc",
        "mountfs:proc:/tmp/p",
        "mountfs:sysfs:/tmp/s",
        "remount-rw:/proc/sys",
        "bindover:/tmp:/proc/keys",
        "bindover:/proc/self/fd/0:/proc/sysrq-trigger",
        "fsopen:proc",
        "fsopen:sysfs",
        "open_tree:/proc",
        "move_mount:/proc/sys",
        "stat:/sys/firmware",
        "stat:/sys/kernel",
    ];
    let mut args: Vec<&str> = reads.to_vec();
    args.extend(kinds);
    args.extend(wopens);
    args.extend(undo);
    // The same again from a mount namespace of its own (where root may
    // unshare one, the filter still refuses every mount call there).
    args.push("unshare-ns");
    args.extend(
        undo.iter()
            .filter(|s| s.starts_with("umount") || s.starts_with("mountfs")),
    );
    args.extend(reads);
    let out = c.ok("root", &[&["/bin/maskprobe"][..], &args].concat());
    let mut got: Vec<(String, String)> = Vec::new();
    for l in out.lines() {
        if let Some((k, v)) = l.split_once('=') {
            got.push((k.to_string(), v.to_string()));
        }
    }
    assert_eq!(got.len(), args.len(), "{out}");
    for (k, v) in &got {
        let want: &[&str] = if k.starts_with("read:") {
            if present.contains(&k.as_str()) {
                &["0"]
            } else {
                &["0", "ENOENT"]
            }
        } else if k.starts_with("kind:") {
            // A mask is /dev/null bound over the file.
            if host[k.as_str()] == "reg" {
                &["chr:1:3"]
            } else {
                &["chr:1:3", "ENOENT"]
            }
        } else if k.starts_with("wopen:") {
            if present_w.contains(&k.as_str()) {
                &["EROFS", "EACCES"]
            } else {
                &["EROFS", "EACCES", "ENOENT"]
            }
        } else if k.starts_with("stat:") {
            &["ENOENT"]
        } else if k == "unshare-ns" {
            // Either: root keeps CAP_SYS_ADMIN today; a Docker-like
            // capability set (issue 9 item 2) refuses the namespace.
            &["ok", "EPERM"]
        } else {
            // Refused by the filter; an allowlist may answer ENOSYS for the
            // new mount API.
            &["EPERM", "ENOSYS"]
        };
        assert!(want.contains(&v.as_str()), "{k}={v}, want {want:?}:\n{out}");
    }
}

// ---------------------------------------------------------------------------
// S12: who may connect.

/// Uids an attacker on the host may have: nobody, and the first uid of the
/// server's user pool (the host uid a container's vcap maps to).
const OTHER_UIDS: [u32; 2] = [65534, 20000];

/// S12: the controller's socket, a container's wshd.sock and a job's
/// iomux sockets refuse every user but root. As nobody and as the pool's
/// first uid: `warden ping` gets EACCES, `wsh` cannot reach wshd (255,
/// EACCES), `iomux-link` cannot attach to a running job. The sockets' modes
/// leave group and others nothing.
///
/// Checked to fail without the protection: at the end the server is
/// restarted with `unix_domain_permissions: 0777`, and the same non-root
/// `warden ping` then succeeds, so the refusal is the mode's.
#[test]
fn s12_other_users_cannot_connect_to_any_socket() {
    use std::os::unix::process::CommandExt;
    let mut s = Srv::start("atks12", Opts::default());
    let mut c = s.client();
    let h = server::create_default(&mut c);
    let job = server::spawn(&mut c, &h, "sleep 60");
    let ctr_dir = s.depot.join(&h);
    let job_dir = ctr_dir.join(format!("jobs/{job}"));
    let wshd_sock = ctr_dir.join("run/wshd.sock");
    assert!(warden_tests::wait_for(Duration::from_secs(10), || job_dir
        .join("status.sock")
        .exists()));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.sock) & 0o077, 0, "{}", s.sock.display());
    assert_eq!(mode(&wshd_sock) & 0o077, 0, "{}", wshd_sock.display());
    // A job's sockets: the socket or a directory on its way is root's only.
    for sock in ["stdout.sock", "stderr.sock", "status.sock"] {
        let p = job_dir.join(sock);
        let closed = p
            .ancestors()
            .take_while(|a| a.starts_with(&s.depot))
            .any(|a| mode(a) & 0o077 == 0);
        assert!(closed, "{} is reachable by others", p.display());
    }
    let as_uid = |uid: u32, prog: PathBuf| {
        let mut cmd = Command::new(prog);
        cmd.uid(uid).gid(uid).current_dir("/");
        cmd
    };
    for uid in OTHER_UIDS {
        let (code, _, err) = warden_tests::run(
            as_uid(uid, bin("warden"))
                .args(["ping", "--socket"])
                .arg(&s.sock),
        );
        let err = String::from_utf8_lossy(&err);
        assert!(
            code != 0 && err.contains("ermission denied"),
            "uid {uid}: warden ping: {code} {err}"
        );
        let (code, out, err) = warden_tests::run(
            as_uid(uid, bin("wsh"))
                .arg("--socket")
                .arg(&wshd_sock)
                .args(["--user", "root", "id"])
                .stdin(Stdio::null()),
        );
        let err = String::from_utf8_lossy(&err);
        assert!(
            code == 255 && out.is_empty() && err.contains("ermission denied"),
            "uid {uid}: wsh: {code} {err}"
        );
        let (code, out, err) = warden_tests::run(
            as_uid(uid, bin("iomux-link"))
                .arg(&job_dir)
                .stdin(Stdio::null()),
        );
        assert!(
            code != 0 && out.is_empty(),
            "uid {uid}: iomux-link attached: {code} {}",
            String::from_utf8_lossy(&err)
        );
    }
    // Root gets through (the probes work).
    let (code, _, err) = warden_tests::run(
        Command::new(bin("wsh"))
            .arg("--socket")
            .arg(&wshd_sock)
            .arg("true")
            .stdin(Stdio::null()),
    );
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    server::destroy_or_retry(&mut c, &h);
    drop(c);

    // Control: a socket the config opens to everyone lets nobody in.
    s.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
    let cfg = std::fs::read_to_string(&s.cfg).unwrap();
    std::fs::write(
        &s.cfg,
        cfg.replace(
            "unix_domain_permissions: 0700",
            "unix_domain_permissions: 0777",
        ),
    )
    .unwrap();
    s.run();
    let (code, _, err) = warden_tests::run(
        as_uid(65534, bin("warden"))
            .args(["ping", "--socket"])
            .arg(&s.sock),
    );
    assert_eq!(
        code,
        0,
        "control: nobody could not ping a 0777 socket: {}",
        String::from_utf8_lossy(&err)
    );
}

// ---------------------------------------------------------------------------
// S14: no setuid bit, no file capability; privilege only from the caller.

const HELPERS: [&str; 6] = ["wshd", "wsh", "iomux-spawn", "iomux-link", "oom", "warden"];

/// S14. Every helper (in the build, and the copies create.sh puts in a
/// container's directory, and the program the container's init runs) has
/// no setuid or setgid bit and no file capability (`getcap` prints
/// nothing). Run by an unprivileged user (nobody) they give that user
/// nothing: wshd cannot make a container (and leaves nothing), `wsh` cannot
/// reach a container, and the unprivileged work they do (an iomux job and
/// its link, usage texts) still works without privileges.
///
/// Checked to fail without the protection: a copy of wshd given
/// `cap_sys_admin+ep` by `setcap` (made here, in the scratch directory)
/// is reported by the same `getcap` check, as the control below shows; and
/// run against a bin directory whose iomux-link had `chmod u+s` (made to
/// check, not committed) the test fails on it.
#[test]
fn s14_helpers_have_no_setuid_bit_or_file_capability_and_run_unprivileged() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    let (dir, _g) = scratch("atk-s14");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let getcap = |p: &Path| -> String {
        let (code, out, err) = warden_tests::run(Command::new("getcap").arg(p));
        assert_eq!(
            code,
            0,
            "getcap {}: {}",
            p.display(),
            String::from_utf8_lossy(&err)
        );
        String::from_utf8_lossy(&out).trim().to_string()
    };
    // Control: getcap shows a capability where there is one.
    let marked = dir.join("wshd-with-caps");
    std::fs::copy(bin("wshd"), &marked).unwrap();
    let (code, _, err) =
        warden_tests::run(Command::new("setcap").arg("cap_sys_admin+ep").arg(&marked));
    assert_eq!(code, 0, "setcap: {}", String::from_utf8_lossy(&err));
    assert!(getcap(&marked).contains("cap_sys_admin"), "control");

    let s = Srv::start("atks14", Opts::default());
    let mut c = s.client();
    let h = server::create_default(&mut c);
    let init = std::fs::read_to_string(s.depot.join(&h).join("run/wshd.pid"))
        .unwrap()
        .trim()
        .to_string();
    let mut files: Vec<PathBuf> = HELPERS.iter().map(|h| bin(h)).collect();
    for h2 in &HELPERS[..5] {
        files.push(s.depot.join(&h).join("bin").join(h2));
    }
    files.push(PathBuf::from(format!("/proc/{init}/exe")));
    for f in &files {
        let m = std::fs::metadata(f).unwrap();
        assert_eq!(
            m.mode() & 0o6000,
            0,
            "{} has a setuid/setgid bit",
            f.display()
        );
        assert_eq!(getcap(f), "", "{} has a file capability", f.display());
    }
    server::destroy_or_retry(&mut c, &h);

    let nobody = |prog: PathBuf| {
        let mut cmd = Command::new(prog);
        cmd.uid(65534).gid(65534).current_dir("/");
        cmd.stdin(Stdio::null());
        cmd
    };
    // wshd as nobody: no container, one message, nothing left.
    let box_dir = dir.join("box");
    for d in ["run", "lib", "root"] {
        std::fs::create_dir_all(box_dir.join(d)).unwrap();
    }
    let (c2, _, err) = std::process::Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(&box_dir)
        .output()
        .map(|o| (o.status.code().unwrap_or(-1), o.stdout, o.stderr))
        .unwrap();
    assert_eq!(c2, 0, "{}", String::from_utf8_lossy(&err));
    let title = warden_tests::unique("wshd-s14");
    let (code, _, err) = warden_tests::run(
        nobody(bin("wshd"))
            .args(warden_tests::wshd::wshd_args(&box_dir))
            .args(["--title", &title]),
    );
    let err = String::from_utf8_lossy(&err);
    assert!(
        code != 0 && err.starts_with("wshd: "),
        "wshd as nobody: {code} {err}"
    );
    assert!(
        warden_tests::pid_by_title(&title).is_none(),
        "wshd as nobody left an init"
    );
    // The unprivileged work: an iomux job and its output, as nobody.
    let job = box_dir.join("job");
    let mut sp = nobody(bin("iomux-spawn"));
    sp.args(["--linger", "0"])
        .arg(&job)
        .args(["/bin/sh", "-c", "id -u; echo out"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut g = warden_tests::Cleanup::new();
    let mut spawned = sp.spawn().unwrap();
    g.kill_pid(spawned.id() as i32);
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(spawned.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.starts_with("child_pid="), "{first}");
    let (code, out, err) = warden_tests::run(nobody(bin("iomux-link")).arg(&job));
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert_eq!(String::from_utf8_lossy(&out), "65534\nout\n");
    // The spawner ends once its linker had the status (no linger asked).
    let st = spawned.wait().unwrap();
    assert!(st.success(), "iomux-spawn as nobody: {st:?}");
    for h2 in HELPERS {
        let (code, out, _) = warden_tests::run(nobody(bin(h2)).arg("--help"));
        assert_eq!(code, 0, "{h2} --help as nobody");
        assert!(!out.is_empty());
    }
}

// ---------------------------------------------------------------------------
// S15: handles naming paths outside the depot.

/// S15. Beside the depot lies a directory that looks like a container
/// (`victim`: run/, jobs/1/, bin/wsh and every lifecycle script, each of
/// which would leave a mark if run). Every request type that names a
/// container is sent with handles that would reach it, or the depot itself,
/// or the host's root, if they were joined to the depot path (`../victim`,
/// the absolute path, `x/../../victim`, `..`, `.`, `/`, empty, with a NUL);
/// each gets an error. Create with such handles is refused and makes
/// nothing outside the depot. Nothing ran in the look-alike and nothing
/// changed in it or beside the depot.
///
/// Checked to fail without the protection: by reasoning: the server finds
/// containers by handle in its table, and validates create's handle; were
/// it to join a handle to the depot path, `destroy ../victim` would run the
/// look-alike's destroy.sh (a mark) and `copy_out` would write to the
/// requested host path, both checked here.
#[test]
fn s15_handles_cannot_name_paths_outside_the_depot() {
    use warden::proto::{self, Type};
    let s = Srv::start("atks15", Opts::default());
    let victim = s.dir.join("victim");
    let mark = s.dir.join("PWNED");
    for d in ["run", "jobs/1", "bin", "lib", "etc", "mnt", "tmp"] {
        std::fs::create_dir_all(victim.join(d)).unwrap();
    }
    let script = format!("#!/bin/sh\necho \"$0 $*\" >> {}\n", mark.display());
    for f in [
        "bin/wsh",
        "bin/iomux-spawn",
        "bin/iomux-link",
        "destroy.sh",
        "stop.sh",
        "start.sh",
        "net.sh",
        "setup.sh",
        "create.sh",
    ] {
        warden_tests::wshd::write_exec(&victim.join(f), &script);
    }
    std::fs::write(victim.join("etc/config"), "id=victim\n").unwrap();
    let before = snap_tree(&s.dir);
    let victim_before = snap_tree(&victim);
    let copy_dst = s.dir.join("copied-out");

    let mut c = s.client();
    // A real container, so that a handle resolved by path could also land
    // in it rather than in an empty table.
    let h = server::create_default(&mut c);
    let vabs = victim.display().to_string();
    let dabs = s.depot.display().to_string();
    let bad: Vec<String> = vec![
        "../victim".into(),
        vabs.clone(),
        format!("{h}/../../victim"),
        format!("{h}/.."),
        format!("../{}/{h}", s.depot.file_name().unwrap().to_string_lossy()),
        format!("{dabs}/{h}"),
        "..".into(),
        ".".into(),
        "/".into(),
        "".into(),
        format!("{h}\0"),
        format!("./{h}"),
    ];
    for b in &bad {
        let hb = Some(b.clone());
        let calls: Vec<(Type, Vec<u8>)> = {
            use prost::Message as _;
            vec![
                (
                    Type::Info,
                    proto::InfoRequest { handle: hb.clone() }.encode_to_vec(),
                ),
                (
                    Type::Stop,
                    proto::StopRequest {
                        handle: hb.clone(),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                ),
                (
                    Type::Spawn,
                    proto::SpawnRequest {
                        handle: hb.clone(),
                        script: Some(format!("echo x >> {}", mark.display())),
                        privileged: Some(true),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                ),
                (
                    Type::Run,
                    proto::RunRequest {
                        handle: hb.clone(),
                        script: Some(format!("echo x >> {}", mark.display())),
                        privileged: Some(true),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                ),
                (
                    Type::Link,
                    proto::LinkRequest {
                        handle: hb.clone(),
                        job_id: Some(1),
                    }
                    .encode_to_vec(),
                ),
                (
                    Type::Stream,
                    proto::StreamRequest {
                        handle: hb.clone(),
                        job_id: Some(1),
                    }
                    .encode_to_vec(),
                ),
                (
                    Type::NetIn,
                    proto::NetInRequest {
                        handle: hb.clone(),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                ),
                (
                    Type::NetOut,
                    proto::NetOutRequest {
                        handle: hb.clone(),
                        network: Some("10.0.0.0/8".into()),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                ),
                (
                    Type::CopyIn,
                    proto::CopyInRequest {
                        handle: hb.clone(),
                        src_path: Some("/etc/hostname".into()),
                        dst_path: Some("/tmp/in".into()),
                    }
                    .encode_to_vec(),
                ),
                (
                    Type::CopyOut,
                    proto::CopyOutRequest {
                        handle: hb.clone(),
                        src_path: Some("/etc".into()),
                        dst_path: Some(copy_dst.display().to_string()),
                        ..Default::default()
                    }
                    .encode_to_vec(),
                ),
                (
                    Type::LimitMemory,
                    proto::HandleOnly { handle: hb.clone() }.encode_to_vec(),
                ),
                (
                    Type::LimitDisk,
                    proto::HandleOnly { handle: hb.clone() }.encode_to_vec(),
                ),
                (
                    Type::LimitBandwidth,
                    proto::HandleOnly { handle: hb.clone() }.encode_to_vec(),
                ),
                (
                    Type::LimitCpu,
                    proto::HandleOnly { handle: hb.clone() }.encode_to_vec(),
                ),
                (
                    Type::Destroy,
                    proto::DestroyRequest { handle: hb.clone() }.encode_to_vec(),
                ),
            ]
        };
        for (ty, payload) in calls {
            let (r, w) = c.raw();
            let env = proto::Message {
                r#type: Some(ty as i32),
                payload: Some(payload),
            };
            use prost::Message as _;
            proto::write_frame(w, &env.encode_to_vec()).unwrap();
            let m = proto::read_message(r).expect("a reply");
            assert_eq!(
                m.r#type,
                Some(Type::Error as i32),
                "{ty:?} with handle {b:?} did not fail"
            );
        }
        let r: Result<proto::CreateResponse, _> = c.call(
            Type::Create,
            &proto::CreateRequest {
                handle: hb.clone(),
                ..Default::default()
            },
        );
        assert!(r.is_err(), "create with handle {b:?}: {r:?}");
    }
    assert_eq!(server::list(&mut c), vec![h.clone()]);
    // The real container is untouched by all this.
    let r = server::run(&mut c, &h, "echo alive");
    assert_eq!(r.stdout.txt(), Some("alive\n"));
    server::destroy_or_retry(&mut c, &h);
    assert!(
        !mark.exists(),
        "something ran in the look-alike: {:?}",
        std::fs::read_to_string(&mark)
    );
    assert!(!copy_dst.exists(), "copy_out wrote to the host");
    assert_eq!(snap_tree(&victim), victim_before, "the look-alike changed");
    let now = snap_tree(&s.dir);
    let new: Vec<_> = now.keys().filter(|k| !before.contains_key(*k)).collect();
    // The server's own files come and go (log, pid); nothing else may.
    assert!(
        new.iter()
            .all(|p| p.starts_with(&s.depot)
                || p.extension().is_some_and(|e| e == "log" || e == "pid")),
        "new entries beside the depot: {new:?}"
    );
}

// ---------------------------------------------------------------------------
// S10: what a container's network sees and reaches.

/// S10 through the controller. A container sees only `lo` and its own end
/// of its veth (not the host's interfaces, not another container's), with
/// only its own addresses. Outbound, default deny: its connections to a
/// network outside the host that is not in `allow_networks`, to the host's
/// main address and to the host's side of its own veth (no
/// `allow_host_access`) reach nothing: listeners there, with a raw socket
/// that sees every SYN that arrives, see none.
///
/// Checked to fail without the protection: the same job reaches a listener
/// in a second outside network that is in `allow_networks` (a control in
/// the same run), so routing and the probe work and only the rules stop
/// the rest.
#[test]
fn s10_container_sees_its_veth_only_and_reaches_no_unallowed_network() {
    use warden_tests::net::{build_wnet, host_addr, iface_with_addr, Listener, Peer};
    let (dir, _g) = scratch("atk-s10");
    let wnet = build_wnet(&dir);
    let root = rootfs_with(&dir, &[("wnet", &wnet)]);
    let pid = std::process::id();
    let tag = |i: u32| format!("ka{}{i}", warden_tests::server::b36(pid % 46656, 3));
    let allowed = Peer::new(&tag(0), pid);
    let denied = Peer::new(&tag(1), pid.wrapping_add(977));
    let s = Srv::start(
        "atks10",
        Opts {
            rootfs: Some(root),
            allow_networks: vec![allowed.net.clone()],
            ..Default::default()
        },
    );
    let mut c = s.client();
    let a = server::create_default(&mut c);
    let b = server::create_default(&mut c);
    let ia = server::info(&mut c, &a).unwrap();
    let ib = server::info(&mut c, &b).unwrap();
    let (a_ip, a_host_ip) = (ia.container_ip.unwrap(), ia.host_ip.unwrap());
    let a_host_if = iface_with_addr(&a_host_ip);
    let a_if = format!("{}1", a_host_if.strip_suffix('0').unwrap());

    // Interfaces and addresses seen from inside.
    let r = server::run_privileged(&mut c, &a, "ip -o link; echo ==; ip -o -4 addr");
    let out = r.stdout.txt().unwrap().to_string();
    let (links, addrs) = out.split_once("==\n").unwrap();
    let mut names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap())
        .collect();
    names.sort();
    let mut want = vec!["lo", a_if.as_str()];
    want.sort();
    assert_eq!(names, want, "{out}");
    let mut ips: Vec<&str> = addrs
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .map(|a| a.split('/').next().unwrap())
        .collect();
    ips.sort();
    let mut want_ips = vec!["127.0.0.1", a_ip.as_str()];
    want_ips.sort();
    assert_eq!(ips, want_ips, "{out}");
    assert!(!out.contains(&ib.container_ip.unwrap()), "{out}");

    // Connections out, one listener per target.
    let port = 7000u16;
    let ms = "30000";
    let in_ns = |p: &Peer| {
        let mut cmd = p.ns.cmd(&wnet);
        cmd.args(["listen", &p.ip, &port.to_string(), ms]);
        Listener::start(cmd, &p.ip, port)
    };
    let on_host = |addr: &str| {
        let p = warden_tests::net::free_port(addr);
        let mut cmd = Command::new(&wnet);
        cmd.args(["listen", addr, &p.to_string(), ms]);
        Listener::start(cmd, addr, p)
    };
    let mut targets: Vec<(&str, Listener)> = vec![
        ("allowed outside network", in_ns(&allowed)),
        ("outside network not allowed", in_ns(&denied)),
        ("host side of the container's veth", on_host(&a_host_ip)),
    ];
    if let Some(h) = host_addr() {
        targets.push(("host's main address", on_host(&h)));
    }
    let script: String = targets
        .iter()
        .enumerate()
        .map(|(i, (_, l))| {
            format!(
                "(/bin/wnet connect {} {} >/dev/null 2>&1; echo \"t{i}=$?\") & ",
                l.addr, l.port
            )
        })
        .collect::<String>()
        + "wait";
    let r = server::run(&mut c, &a, &script);
    let res = kv(r.stdout.txt().unwrap());
    for (i, (what, l)) in targets.into_iter().enumerate() {
        let code = res.get(&format!("t{i}")).cloned().unwrap_or_default();
        let seen = l.stop();
        if i == 0 {
            assert_eq!(
                code, "0",
                "control: {what} was not reached: {res:?} {seen:?}"
            );
            assert!(!seen.is_empty(), "control: {what}: listener saw nothing");
        } else {
            assert_ne!(code, "0", "{what} was reached: {res:?}");
            assert!(seen.is_empty(), "{what}: the listener saw {seen:?}");
        }
    }
    server::destroy_or_retry(&mut c, &a);
    server::destroy_or_retry(&mut c, &b);
}

// ---------------------------------------------------------------------------
// S13: length fields on every socket.

/// Peak resident memory (VmHWM, KiB) of `pid`.
fn hwm_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// A small deterministic generator for the mutations (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// One to four mutations of `b`: a byte set, a bit flipped, a huge
    /// varint or u32/u16 length written in, a cut, a duplicated slice.
    fn mutate(&mut self, mut b: Vec<u8>) -> Vec<u8> {
        for _ in 0..1 + self.below(4) {
            let at = self.below(b.len() + 1);
            match self.below(6) {
                0 if !b.is_empty() => {
                    let i = at.min(b.len() - 1);
                    b[i] = self.next() as u8;
                }
                1 if !b.is_empty() => {
                    let i = at.min(b.len() - 1);
                    b[i] ^= 1 << self.below(8);
                }
                2 => {
                    let huge: &[&[u8]] = &[
                        &[0xff, 0xff, 0xff, 0xff, 0x0f],
                        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                        &[0x80, 0x80, 0x80, 0x80, 0x08],
                        &[0xff, 0xff, 0xff, 0xff],
                        &[0xff, 0xff],
                    ];
                    let h = huge[self.below(huge.len())];
                    b.splice(at..at, h.iter().copied());
                }
                3 => b.truncate(at),
                4 if at < b.len() => {
                    let end = (at + 1 + self.below(16)).min(b.len());
                    let dup = b[at..end].to_vec();
                    b.splice(at..at, dup);
                }
                _ => b.insert(at, self.next() as u8),
            }
        }
        b
    }
}

/// Sends `bytes` on a new connection to the controller, closes the write
/// side and reads until the server closes; panics if it does not within
/// 30 s (a connection the server keeps hanging on a bad length).
fn controller_shot(sock: &Path, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(bytes);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => out,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => out,
        Err(e) => panic!(
            "no end of reply to {:?}: {e}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(64)])
        ),
    }
}

/// One request on a new SEQPACKET connection to wshd; reads replies until
/// wshd closes (bounded by 30 s). Returns the replies' kinds.
fn wshd_shot(sock: &Path, msg: &[u8]) -> Vec<u8> {
    use nix::sys::socket::{
        connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, UnixAddr,
    };
    use std::os::fd::AsFd;
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &UnixAddr::new(sock).unwrap(),
    )
    .unwrap();
    setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(30, 0),
    )
    .unwrap();
    let mut kinds = Vec::new();
    if wsys::fdpass::send(fd.as_fd(), msg, &[], false).is_err() {
        kinds.push(b'S'); // refused by our own kernel (too big)
        return kinds;
    }
    let mut buf = vec![0u8; 8192];
    loop {
        match wsys::fdpass::recv(fd.as_fd(), &mut buf, false) {
            Ok(m) if m.len == 0 && m.fds.is_empty() => return kinds,
            Ok(m) => kinds.push(if m.len >= 5 { buf[4] } else { b'?' }),
            Err(nix::errno::Errno::ECONNRESET) => return kinds,
            Err(e) => panic!("wshd reply: {e} (after {kinds:?})"),
        }
    }
}

/// A mutation generator seeded from the pid (printed, to replay a run).
fn seeded() -> Rng {
    let seed = 0x5eed_0000_0000_0000 | u64::from(std::process::id());
    eprintln!("mutation seed {seed:#x}");
    Rng(seed)
}

/// S13, the controller, as a client (`LEN\r\nPROTOBUF\r\n`): length lines
/// one past MAX_FRAME, 11 and 20 digits, signs, spaces, hex, no CR;
/// protobuf envelopes and payloads whose length varints claim 4 GiB or
/// 2^63, overlong varints, 10000 nested groups, a 4 GiB unknown field;
/// 1500 mutations of valid requests of every type but create (no container
/// exists, so none is touched). Each shot is answered with an error or a
/// closed connection, within 30 s; the server does not crash, makes no
/// container, serves a ping after, and its peak resident memory (VmHWM)
/// grows by less than 16 MiB (nothing sent is big).
///
/// Checked to fail without the protection: by reasoning: a decoder that
/// allocated what a length field claims would need 4 GiB (or abort) on the
/// first varint shot; one that waited for the claimed bytes would leave a
/// shot without an end (the 30 s bound).
#[test]
fn s13_controller_answers_every_bad_length() {
    use prost::Message as _;
    use warden::proto::{self, Type};
    let mut rng = seeded();
    let s = Srv::start("atks13", Opts::default());
    let spid = s.pid();
    let h0 = hwm_kib(spid);
    let frame = |payload: &[u8]| {
        let mut f = format!("{}\r\n", payload.len()).into_bytes();
        f.extend_from_slice(payload);
        f.extend_from_slice(b"\r\n");
        f
    };
    let env = |ty: i32, payload: Vec<u8>| {
        proto::Message {
            r#type: Some(ty),
            payload: Some(payload),
        }
        .encode_to_vec()
    };
    let mut shots: Vec<Vec<u8>> = vec![
        format!("{}\r\n", proto::MAX_FRAME + 1).into_bytes(),
        b"99999999999\r\n".to_vec(),
        b"18446744073709551616\r\n".to_vec(),
        b"-1\r\n".to_vec(),
        b"+5\r\nhello\r\n".to_vec(),
        b" 5\r\nhello\r\n".to_vec(),
        b"0x10\r\n".to_vec(),
        b"5\nhello\r\n".to_vec(),
        b"5\r\nhelloXX".to_vec(),
        b"\r\n".to_vec(),
        vec![b'1'; 100_000],
        // Envelope: type varint of 10 bytes; payload length 4 GiB; 2^63.
        frame(&[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]),
        frame(&[0x08, 0x5b, 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]),
        frame(&[
            0x08, 0x5b, 0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ]),
        // Overlong varint (11 bytes).
        frame(&[
            0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01,
        ]),
        // Echo whose message claims 4 GiB; Info whose handle claims 2^63.
        frame(&env(
            Type::Echo as i32,
            vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, b'x'],
        )),
        frame(&env(
            Type::Info as i32,
            vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
        )),
        // 10000 nested groups (start-group tags, field 15).
        frame(&env(Type::List as i32, vec![0x7b; 10_000])),
        // An unknown field of 4 GiB in a Ping.
        frame(&env(
            Type::Ping as i32,
            vec![0x7a, 0xff, 0xff, 0xff, 0xff, 0x0f],
        )),
    ];
    let nope = Some("s13-no-such-handle".to_string());
    let valid: Vec<(Type, Vec<u8>)> = vec![
        (Type::Ping, proto::PingRequest {}.encode_to_vec()),
        (Type::List, proto::ListRequest {}.encode_to_vec()),
        (
            Type::Echo,
            proto::EchoRequest {
                message: Some("hello".into()),
            }
            .encode_to_vec(),
        ),
        (
            Type::Info,
            proto::InfoRequest {
                handle: nope.clone(),
            }
            .encode_to_vec(),
        ),
        (
            Type::Stop,
            proto::StopRequest {
                handle: nope.clone(),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            Type::Destroy,
            proto::DestroyRequest {
                handle: nope.clone(),
            }
            .encode_to_vec(),
        ),
        (
            Type::Spawn,
            proto::SpawnRequest {
                handle: nope.clone(),
                script: Some("true".into()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            Type::Run,
            proto::RunRequest {
                handle: nope.clone(),
                script: Some("true".into()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            Type::Link,
            proto::LinkRequest {
                handle: nope.clone(),
                job_id: Some(1),
            }
            .encode_to_vec(),
        ),
        (
            Type::Stream,
            proto::StreamRequest {
                handle: nope.clone(),
                job_id: Some(1),
            }
            .encode_to_vec(),
        ),
        (
            Type::NetIn,
            proto::NetInRequest {
                handle: nope.clone(),
                host_port: Some(1),
                container_port: Some(2),
            }
            .encode_to_vec(),
        ),
        (
            Type::NetOut,
            proto::NetOutRequest {
                handle: nope.clone(),
                network: Some("10.0.0.0/8".into()),
                port_range: Some("1:2".into()),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        (
            Type::CopyIn,
            proto::CopyInRequest {
                handle: nope.clone(),
                src_path: Some("/x".into()),
                dst_path: Some("/y".into()),
            }
            .encode_to_vec(),
        ),
        (
            Type::CopyOut,
            proto::CopyOutRequest {
                handle: nope.clone(),
                src_path: Some("/x".into()),
                dst_path: Some("/nonexistent/s13".into()),
                owner: Some("root".into()),
            }
            .encode_to_vec(),
        ),
        (
            Type::LimitMemory,
            proto::HandleOnly {
                handle: nope.clone(),
            }
            .encode_to_vec(),
        ),
        (
            Type::LimitDisk,
            proto::HandleOnly {
                handle: nope.clone(),
            }
            .encode_to_vec(),
        ),
        (
            Type::LimitBandwidth,
            proto::HandleOnly {
                handle: nope.clone(),
            }
            .encode_to_vec(),
        ),
        (
            Type::LimitCpu,
            proto::HandleOnly {
                handle: nope.clone(),
            }
            .encode_to_vec(),
        ),
    ];
    let mut mutated = 0;
    while mutated < 1500 {
        let (ty, p) = &valid[rng.below(valid.len())];
        let (payload, whole) = match rng.below(3) {
            0 => (env(*ty as i32, rng.mutate(p.clone())), false),
            1 => (rng.mutate(env(*ty as i32, p.clone())), false),
            _ => (Vec::new(), true),
        };
        let bytes = if whole {
            rng.mutate(frame(&env(*ty as i32, p.clone())))
        } else {
            // Never a create: it would make a container.
            if let Ok(m) = proto::Message::decode(payload.as_slice()) {
                if m.r#type == Some(Type::Create as i32) {
                    continue;
                }
            }
            frame(&payload)
        };
        if whole && bytes.windows(3).any(|w| w == [0x08, 0x0b, 0x12]) {
            continue;
        }
        shots.push(bytes);
        mutated += 1;
    }
    let t0 = Instant::now();
    let mut last = h0;
    for (i, b) in shots.iter().enumerate() {
        controller_shot(&s.sock, b);
        let h = hwm_kib(spid);
        if h > last + 1024 {
            eprintln!(
                "shot {i}: VmHWM {last} -> {h} KiB: {:?}",
                String::from_utf8_lossy(&b[..b.len().min(80)])
            );
        }
        last = h;
    }
    let mut c = s.client();
    let _: proto::PingResponse = c
        .call(Type::Ping, &proto::PingRequest {})
        .expect("ping after");
    assert!(server::list(&mut c).is_empty(), "a shot made a container");
    let h1 = hwm_kib(spid);
    eprintln!(
        "controller: {} shots in {:?}, VmHWM {h0} -> {h1} KiB",
        shots.len(),
        t0.elapsed()
    );
    // Nothing sent here is big: a short claim costs little.
    assert!(
        h1 < h0 + 16 * 1024,
        "controller peak memory {h0} -> {h1} KiB"
    );
}

/// S13, the controller's memory per client: twenty clients in turn each
/// announce a MAX_FRAME (16 MiB) frame, send 64 KiB of it and go away. What
/// the server holds must follow the bytes received, not the length claimed.
///
/// No protection on main, so the test is ignored: `proto::read_frame`
/// allocates the claimed length up front, so each such client makes the
/// server touch 16 MiB (VmHWM 3 MB -> 36-52 MB here: freed buffers stay
/// in per-thread arenas). Issue 9 finding 8; branch i9-server grows
/// payloads only as bytes arrive.
#[test]
fn s13_controller_memory_follows_bytes_received() {
    let s = Srv::start("atks13m", Opts::default());
    let spid = s.pid();
    let h0 = hwm_kib(spid);
    for _ in 0..20 {
        let mut f = format!("{}\r\n", warden::proto::MAX_FRAME).into_bytes();
        f.extend(std::iter::repeat_n(b'A', 64 << 10));
        controller_shot(&s.sock, &f);
    }
    let mut c = s.client();
    let _: warden::proto::PingResponse = c
        .call(warden::proto::Type::Ping, &warden::proto::PingRequest {})
        .expect("ping after");
    let h1 = hwm_kib(spid);
    assert!(
        h1 < h0 + 8 * 1024,
        "20 clients that sent 64 KiB each took the server's peak memory from {h0} to {h1} KiB"
    );
}

/// S13, wshd and iomux-spawn, as a client.
///
/// - wshd.sock (one SEQPACKET message per request): each str8/str16/u32
///   length and count at its maximum with nothing behind it, a message one
///   byte past MAX_MSG, a valid request with bytes after it, an empty one,
///   1500 mutations of a valid request. Every one gets a reply (ERROR, or
///   READY then ERROR for a request that decoded to a missing program).
/// - iomux-spawn's link sockets (fixed-size messages): a HELLO with the
///   largest offsets, wrong magic, cut messages, ACKs past the end and going
///   back, 1 MiB of trailing garbage, 300 random messages; each connection
///   is dropped or served, and a real linker still gets the job's output.
///
/// Each server's peak resident memory grows by less than 4 MiB and it
/// serves a real client after.
///
/// Checked to fail without the protection: as for the controller.
#[test]
fn s13_wshd_and_iomux_length_fields_are_bounded() {
    let mut rng = seeded();
    // --- wshd
    let b = Ctr::boot("atk-s13", &[], |_| {}, None);
    let wpid = b.pid;
    let w0 = hwm_kib(wpid);
    let req = wshd::proto::Request {
        user: "vcap".into(),
        lang: "C".into(),
        term: "xterm".into(),
        rlimits: vec![(9, 512, 1024)],
        argv: vec![b"/no/such/program-s13".to_vec(), b"arg".to_vec()],
        ..Default::default()
    };
    let good = wshd::proto::encode_request(&req).unwrap();
    let head = &good[..5]; // "WSH" 1 REQUEST
    let mut msgs: Vec<Vec<u8>> = vec![
        head.to_vec(),
        [head, &[0, 0, 0, 0, 0, 255, b'a']].concat(), // user str8: 255 claimed
        [head, &[0, 0, 0, 0, 0, 0, 0xff, 0xff]].concat(), // lang str16: 65535 claimed
        [head, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 255]].concat(), // term, nrlim 255
        [head, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]].concat(), // argc 65535
        [
            head,
            &[
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0xff, 0xff, 0xff, 0xff,
            ],
        ]
        .concat(), // arg len 4 GiB
        vec![0u8; wshd::proto::MAX_MSG + 1],
        [&good[..], &[0u8; 64]].concat(),
        Vec::new(),
    ];
    for _ in 0..1500 {
        msgs.push(rng.mutate(good.clone()));
    }
    let t0 = Instant::now();
    for m in &msgs {
        let kinds = wshd_shot(&b.sock(), m);
        assert!(!kinds.is_empty() || m.is_empty(), "no reply to {m:?}");
    }
    assert_eq!(b.ok("vcap", &["echo", "served"]), "served\n");
    let w1 = hwm_kib(wpid);
    eprintln!(
        "wshd: {} messages in {:?}, VmHWM {w0} -> {w1} KiB",
        msgs.len(),
        t0.elapsed()
    );
    assert!(w1 < w0 + 4 * 1024, "wshd peak memory {w0} -> {w1} KiB");

    // --- iomux-spawn
    let (dir, _g) = scratch("atk-s13io");
    let mut g = warden_tests::Cleanup::new();
    let job = dir.join("job");
    let sp = warden_tests::iomux::spawn(
        &mut g,
        &[],
        &job,
        &["/bin/sh", "-c", "echo hello; exec sleep 4"],
        Stdio::null(),
    );
    let ipid = sp.pid();
    let i0 = hwm_kib(ipid);
    let hello = |off: u64| [&b"IOMXLNK1"[..], &off.to_le_bytes()].concat();
    let mut io_msgs: Vec<(&str, Vec<u8>)> = vec![
        ("stdout.sock", hello(u64::MAX)),
        ("stderr.sock", hello(u64::MAX / 2)),
        (
            "stdout.sock",
            [&b"IOMXLNK2"[..], &0u64.to_le_bytes()].concat(),
        ),
        ("stdout.sock", b"IOMX".to_vec()),
        ("status.sock", hello(u64::MAX)),
        (
            "stdout.sock",
            [hello(0), u64::MAX.to_le_bytes().to_vec()].concat(),
        ),
        (
            "stdout.sock",
            [
                hello(0),
                3u64.to_le_bytes().to_vec(),
                1u64.to_le_bytes().to_vec(),
            ]
            .concat(),
        ),
        ("stderr.sock", [hello(0), vec![0xff; 1 << 20]].concat()),
    ];
    for _ in 0..300 {
        let sock = ["stdout.sock", "stderr.sock", "status.sock"][rng.below(3)];
        let len = rng.below(40);
        let m: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        io_msgs.push((sock, rng.mutate([hello(0), m].concat())));
    }
    for (sock, m) in &io_msgs {
        use std::io::{Read, Write};
        let mut s =
            std::os::unix::net::UnixStream::connect(job.join(sock)).expect("connect to iomux");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = s.write_all(m);
        let _ = s.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        // Ends when the spawner drops the connection (or, for a valid
        // HELLO, once the job's stream ended).
        if let Err(e) = s.read_to_end(&mut sink) {
            assert!(
                e.kind() == std::io::ErrorKind::ConnectionReset,
                "{sock} {m:?}: {e}"
            );
        }
    }
    // Measured before the real link: once that one has the status and the
    // output, iomux-spawn may exit (a zombie has no VmHWM).
    let i1 = hwm_kib(ipid);
    let (code, out, err) = warden_tests::run(&mut warden_tests::iomux::link_cmd(&job, None));
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&err));
    assert_eq!(String::from_utf8_lossy(&out), "hello\n");
    eprintln!(
        "iomux-spawn: {} messages, VmHWM {i0} -> {i1} KiB",
        io_msgs.len()
    );
    assert!(
        i1 < i0 + 4 * 1024,
        "iomux-spawn peak memory {i0} -> {i1} KiB"
    );
}
