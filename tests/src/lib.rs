//! Shared helpers for the end-to-end tests in `tests/tests/`.
//!
//! The tests start real containers and so must run as root. They find the
//! helper binaries next to the test executable (the same cargo profile), or
//! in `$WARDEN_BIN_DIR`, and the busybox root filesystem built by
//! `make rootfs` in `build/rootfs`, or in `$WARDEN_ROOTFS`.
//!
//! Everything a test creates carries a name made by [`unique`] and is
//! registered with a [`Cleanup`] guard, which undoes it on drop, also when
//! the test panics.

pub mod iomux;
pub mod wshd;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wsys::proc_::Stat;

/// Workspace root (the directory holding the top-level Cargo.toml).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Directory holding wshd, wsh, iomux-spawn, iomux-link, oom and warden.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WARDEN_BIN_DIR") {
        return PathBuf::from(d);
    }
    // target/<triple>/<profile>/deps/<test-binary>
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in <profile>/deps")
        .to_path_buf()
}

/// Path of one helper binary; panics with a hint when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} not found: build the workspace first (make build, or cargo build)",
        p.display()
    );
    p
}

/// The busybox root filesystem; panics with a hint when it is missing.
pub fn rootfs() -> PathBuf {
    let p = std::env::var_os("WARDEN_ROOTFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("build/rootfs"));
    assert!(
        p.join("bin/busybox").is_file(),
        "{} is not a busybox rootfs: run `make rootfs`",
        p.display()
    );
    p
}

/// Fails the test unless it runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "end-to-end tests start real containers and must run as root"
    );
}

/// A name unique to this test process and call: `<tag>-<pid>-<n>`.
pub fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh scratch directory under /tmp, removed by the returned guard.
pub fn scratch(tag: &str) -> (PathBuf, Cleanup) {
    let dir = std::env::temp_dir().join(unique(&format!("warden-test-{tag}")));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    let mut c = Cleanup::new();
    let d = dir.clone();
    c.push(move || {
        let _ = std::fs::remove_dir_all(&d);
    });
    (dir, c)
}

/// Runs registered undo actions in reverse order when dropped (also on panic).
#[derive(Default)]
pub struct Cleanup {
    undo: Vec<Box<dyn FnOnce() + Send>>,
}

impl Cleanup {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers an action to run on drop; later actions run first.
    pub fn push(&mut self, f: impl FnOnce() + Send + 'static) {
        self.undo.push(Box::new(f));
    }

    /// Kill (SIGKILL) a process we started, by pid, on drop, and wait until it
    /// is gone: reaped when it is our child, else polled until it vanishes.
    /// The process's start time is recorded now and checked then, so a pid
    /// that was reaped and reused meanwhile is never signalled.
    pub fn kill_pid(&mut self, pid: i32) {
        let started = proc_start_time(pid);
        self.push(move || {
            if started.is_none() || proc_start_time(pid) != started {
                return;
            }
            let p = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
            if proc_parent(pid) == Some(std::process::id() as i32) {
                let _ = nix::sys::wait::waitpid(p, None);
                return;
            }
            wait_for(Duration::from_secs(5), || proc_start_time(pid) != started);
        });
    }

    /// Remove a cgroup directory we created (and its children), on drop.
    pub fn rmdir_cgroup(&mut self, dir: PathBuf) {
        self.push(move || remove_cgroup_tree(&dir));
    }

    /// Lazily unmount a mount point we created, on drop.
    pub fn umount(&mut self, target: PathBuf) {
        self.push(move || {
            let _ = nix::mount::umount2(&target, nix::mount::MntFlags::MNT_DETACH);
        });
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        while let Some(f) = self.undo.pop() {
            f();
        }
    }
}

/// Start time (clock ticks since boot) of a live or zombie process.
fn proc_start_time(pid: i32) -> Option<u64> {
    Stat::of(pid)?.start_time()
}

/// Parent pid of a process.
fn proc_parent(pid: i32) -> Option<i32> {
    Stat::of(pid)?.ppid()
}

/// True while `pid` exists and has not exited (a zombie has).
pub fn alive(pid: i32) -> bool {
    Stat::of(pid).is_some_and(|s| !s.exited())
}

/// Removes a cgroup directory depth-first, killing what is left inside it
/// (the controller's own sweep, so tests and server clean up the same way).
pub fn remove_cgroup_tree(dir: &Path) {
    if dir.is_dir() {
        warden::server::remove_cgroup_tree(dir);
    }
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command to completion, returning (status code or 128+signal, stdout, stderr).
pub fn run(cmd: &mut Command) -> (i32, Vec<u8>, Vec<u8>) {
    use std::os::unix::process::ExitStatusExt;
    let out = cmd.output().expect("spawn command");
    let code = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    (code, out.stdout, out.stderr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kill_pid_kills_and_reaps_a_child() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        assert!(proc_start_time(pid).is_some());
        assert_eq!(proc_parent(pid), Some(std::process::id() as i32));
        let mut c = Cleanup::new();
        c.kill_pid(pid);
        drop(c);
        // Reaped: no zombie left behind, so the Child has nothing left to wait for.
        assert!(proc_start_time(pid).is_none());
        assert!(child.try_wait().is_err());
    }

    #[test]
    fn kill_pid_skips_a_process_already_gone() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        let mut c = Cleanup::new();
        c.kill_pid(pid);
        child.wait().unwrap();
        drop(c); // must not signal or wait on anything
        assert!(proc_start_time(pid).is_none());
    }
}
