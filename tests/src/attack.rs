//! Fixtures of the attack tests (tests/tests/attacks.rs): a wshd container
//! on a private rootfs copy with static attack programs in its `/bin`, a
//! launcher that starts a host program with extra inherited fds and a host
//! working directory, and snapshots of the host's mount table and of host
//! directories to show that an attack changed nothing.

use crate::wshd::{write_exec, ContainerDir, RECORD_PID};
use crate::{bin, cc_static, pid_by_title, run, unique, Cleanup};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `hostlaunch CWD MAXFD PATH... -- PROG ARGS...`: opens the PATHs in turn
/// (directories too, `O_RDONLY`, *not* close-on-exec) onto fds 3..=MAXFD,
/// cycling through them, makes CWD its working directory and execs PROG:
/// the host process whose fds and cwd must never reach a container
/// (CVE-2024-21626).
pub const HOSTLAUNCH_C: &str = r#"#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: hostlaunch CWD MAXFD PATH... -- PROG ARGS...\n"); return 2; }
  int maxfd = atoi(argv[2]);
  int i = 3, first = 3;
  while (i < argc && strcmp(argv[i], "--")) i++;
  int npaths = i - first;
  if (i + 1 >= argc || npaths == 0) { fprintf(stderr, "hostlaunch: no PATH or no PROG\n"); return 2; }
  for (int fd = 3, k = 0; fd <= maxfd; fd++, k++) {
    const char *p = argv[first + k % npaths];
    int f = open(p, O_RDONLY);
    if (f < 0) { perror(p); return 2; }
    if (f != fd) {
      if (dup2(f, fd) < 0) { perror("dup2"); return 2; }
      close(f);
    }
  }
  if (chdir(argv[1])) { perror(argv[1]); return 2; }
  execv(argv[i + 1], argv + i + 1);
  perror(argv[i + 1]);
  return 127;
}
"#;

/// Compiles [`HOSTLAUNCH_C`] into `dir/hostlaunch`.
pub fn build_hostlaunch(dir: &Path) -> PathBuf {
    cc_static(dir, "hostlaunch", HOSTLAUNCH_C, &["-O1"])
}

/// Host paths a launched process holds open: the host's root, /etc, /proc
/// (a way to every host process's root), and the caller's `extra`.
pub fn host_dirs(extra: &Path) -> Vec<PathBuf> {
    vec![
        PathBuf::from("/"),
        PathBuf::from("/etc"),
        PathBuf::from("/proc"),
        extra.to_path_buf(),
        PathBuf::from("/etc/hostname"),
    ]
}

/// `hostlaunch CWD 20 DIRS... -- PROG`: a command whose PROG starts with
/// fds 3..=20 open on host directories and files and with `cwd` as its
/// working directory.
pub fn launched(launcher: &Path, cwd: &Path, dirs: &[PathBuf], prog: &Path) -> Command {
    let mut c = Command::new(launcher);
    c.arg(cwd).arg("20").args(dirs).arg("--").arg(prog);
    c
}

/// Runs inside the container once wshd mounted /proc and /dev itself.
const AFTER_PIVOT: &str = "#!/bin/sh\nset -e\nchmod 1777 /tmp\n";

/// A container started by wshd (no scripts, no cgroups) on a private copy of
/// the test rootfs, with the caller's static programs in its `/bin`; killed
/// and removed on drop.
pub struct Ctr {
    pub path: PathBuf,
    /// Host pid of the container's init.
    pub pid: i32,
    /// wshd's `--title` (unique to this box).
    pub title: String,
    pub cleanup: Cleanup,
}

impl Ctr {
    /// Copies the rootfs, installs `progs` (name, host path) as
    /// `/bin/<name>`, lets `prep(root)` change the copy, and starts wshd
    /// with `launch`, a command that runs wshd and gets wshd's arguments
    /// appended (e.g. a [`launched`] one with `bin("wshd")` as PROG), or
    /// else directly.
    pub fn boot(
        tag: &str,
        progs: &[(&str, &Path)],
        prep: impl FnOnce(&Path),
        launch: Option<Command>,
    ) -> Ctr {
        let mut d = ContainerDir::new(tag);
        let path = d.path.clone();
        for (name, p) in progs {
            std::fs::copy(p, path.join("root/bin").join(name)).expect("install a program");
        }
        prep(&path.join("root"));
        d.hook("hook-parent-after-clone.sh", RECORD_PID);
        d.hook("hook-child-after-pivot.sh", AFTER_PIVOT);
        let title = unique("wshd-atk");
        let err = path.join("wshd.err");
        let mut cmd = launch.unwrap_or_else(|| Command::new(bin("wshd")));
        let st = cmd
            .args(d.wshd_args())
            .args(["--title", &title])
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
        let pid = pid.expect("hook recorded wshd's pid");
        assert_eq!(pid_by_title(&title), Some(pid));
        Ctr {
            path,
            pid,
            title,
            cleanup: d.cleanup,
        }
    }

    pub fn sock(&self) -> PathBuf {
        self.path.join("run/wshd.sock")
    }

    /// `wsh --socket S --user USER ARGS` (stdin /dev/null).
    pub fn wsh(&self, user: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin("wsh"));
        c.arg("--socket")
            .arg(self.sock())
            .args(["--user", user])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Runs `wsh --user USER ARGS`: (status, stdout, stderr).
    pub fn sh(&self, user: &str, args: &[&str]) -> (i32, String, String) {
        let (c, o, e) = run(&mut self.wsh(user, args));
        (
            c,
            String::from_utf8_lossy(&o).into_owned(),
            String::from_utf8_lossy(&e).into_owned(),
        )
    }

    /// Like [`Ctr::sh`], asserting status 0; returns stdout.
    pub fn ok(&self, user: &str, args: &[&str]) -> String {
        let (c, o, e) = self.sh(user, args);
        assert_eq!(
            c, 0,
            "wsh --user {user} {args:?}: stdout {o:?} stderr {e:?}"
        );
        o
    }
}

/// Writes an executable hook `lib/<name>` of a container directory.
pub fn hook(dir: &Path, name: &str, body: &str) {
    write_exec(&dir.join("lib").join(name), body);
}

/// `KEY=VALUE` lines (the probes' output) as a map; a key seen twice keeps
/// its last value.
pub fn kv(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One line of /proc/PID/mountinfo, the fields the tests look at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mount {
    pub id: u64,
    /// Path of the mounted directory within its filesystem (a bind
    /// mount's source).
    pub root: String,
    pub point: String,
    pub opts: String,
    pub fstype: String,
    pub source: String,
}

/// Parses a mountinfo text.
pub fn mounts(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(Mount {
                id: f.first()?.parse().ok()?,
                root: unescape(f.get(3)?),
                point: unescape(f.get(4)?),
                opts: f.get(5)?.to_string(),
                fstype: f.get(sep + 1)?.to_string(),
                source: f.get(sep + 2).map(|s| s.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as \ooo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host's mount table (the test process's mount namespace).
pub fn host_mounts() -> Vec<Mount> {
    mounts(&std::fs::read_to_string("/proc/self/mountinfo").expect("read mountinfo"))
}

/// Mounts in `after` that `before` did not have (by mount id), and that
/// concern the attack: of a kernel filesystem a container mounts (proc,
/// sysfs, devpts, mqueue), on `/`, on or under one of `watched`, or with a
/// root (bind source) under one of `watched` (`/` in `watched` means `/`
/// itself). Other engineers' tests on
/// the same machine add and remove unrelated mounts (network namespaces'
/// nsfs files, their own scratch mounts), so a plain diff would be noise.
pub fn new_mounts(before: &[Mount], after: &[Mount], watched: &[&Path]) -> Vec<Mount> {
    let ids: std::collections::BTreeSet<u64> = before.iter().map(|m| m.id).collect();
    let under = |p: &str, w: &Path| {
        let w = w.to_string_lossy();
        p == w || w != "/" && p.starts_with(&format!("{w}/"))
    };
    after
        .iter()
        .filter(|m| !ids.contains(&m.id))
        .filter(|m| {
            ["proc", "sysfs", "devpts", "mqueue"].contains(&m.fstype.as_str())
                || m.point == "/"
                || watched
                    .iter()
                    .any(|w| under(&m.point, w) || (**w != *"/" && under(&m.root, w)))
        })
        .cloned()
        .collect()
}

pub use crate::snap::{snap, snap_tree, Snap};

/// Compiles `src` with `cc -static -O1` into `dir/name`.
pub fn static_prog(dir: &Path, name: &str, src: &str) -> PathBuf {
    cc_static(dir, name, src, &["-O1"])
}

/// The path of `p` within its filesystem, as mountinfo's root field shows
/// it for a bind mount of `p` (the host mount holding `p` is the one with
/// the longest mount point that is a prefix of `p`).
pub fn fs_root_of(p: &Path) -> String {
    let p = std::fs::canonicalize(p).unwrap();
    let ps = p.to_string_lossy().into_owned();
    let m = host_mounts()
        .into_iter()
        .filter(|m| m.point == "/" || ps == m.point || ps.starts_with(&format!("{}/", m.point)))
        .max_by_key(|m| m.point.len())
        .expect("a mount holds every path");
    let rest = ps.strip_prefix(&m.point).unwrap_or(&ps);
    let rest = rest.trim_start_matches('/');
    let base = m.root.trim_end_matches('/');
    format!("{base}/{rest}")
}

/// Processes whose command line holds `needle`.
pub fn pids_with_cmdline(needle: &str) -> Vec<i32> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&c).contains(needle) {
                v.push(pid);
            }
        }
    }
    v
}
