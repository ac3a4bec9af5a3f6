//! Shared helpers for the end-to-end tests in `tests/tests/`.
//!
//! The tests start real containers and so must run as root. They find the
//! helper binaries next to the test executable (the same cargo profile), or
//! in `$WARDEN_BIN_DIR`; the root filesystem in `$WARDEN_ROOTFS` (any
//! rootfs), else the busybox one built by `make rootfs` in `build/rootfs`;
//! the Debian one built by `make rootfs-debian` in `build/rootfs-debian`, or
//! in `$WARDEN_ROOTFS_DEBIAN`.
//!
//! Everything a test creates carries a name made by [`unique`] and is
//! registered with a [`Cleanup`] guard, which undoes it on drop, also when
//! the test panics.
//!
//! [`server`] holds the fixture that starts a `warden server` and the
//! protocol helpers shared by the controller and rootfs tests; [`net`] the
//! network probe and namespaces of the network tests; [`attack`] the wshd
//! container, launcher and host snapshots of the attack tests; [`faults`]
//! the seeded random source and host-resource census of the fault tests.

pub mod attack;
pub mod faults;
pub mod net;
pub mod server;
pub mod snap;

pub mod iomux;
pub mod wshd;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// The root filesystem the tests run on: `$WARDEN_ROOTFS` when set (any
/// rootfs: a directory holding `etc/`), else the busybox one `make rootfs`
/// builds in `build/rootfs`. Panics with a hint when it is missing.
pub fn rootfs() -> PathBuf {
    if let Some(p) = std::env::var_os("WARDEN_ROOTFS") {
        let p = PathBuf::from(p);
        assert!(
            p.join("etc").is_dir(),
            "WARDEN_ROOTFS={} is not a root filesystem (no etc/ in it)",
            p.display()
        );
        return p;
    }
    let p = workspace().join("build/rootfs");
    assert!(
        p.join("bin/busybox").is_file(),
        "{} is not a busybox rootfs: run `make rootfs`",
        p.display()
    );
    p
}

/// The Debian bookworm minbase rootfs (`$WARDEN_ROOTFS_DEBIAN`, else
/// `build/rootfs-debian`); panics with a hint when it is missing.
pub fn rootfs_debian() -> PathBuf {
    let p = std::env::var_os("WARDEN_ROOTFS_DEBIAN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("build/rootfs-debian"));
    assert!(
        p.join("etc/debian_version").is_file(),
        "{} is not a Debian rootfs: run `make rootfs-debian`",
        p.display()
    );
    p
}

/// Compiles the C program `src` with `cc -static EXTRA_FLAGS` into
/// `dir/name` (the source goes to `dir/name.c`); returns the binary's path.
/// gcc and libc6-dev are CI dependencies (.ci/run).
pub fn cc_static(dir: &Path, name: &str, src: &str, extra_flags: &[&str]) -> PathBuf {
    let c = dir.join(format!("{name}.c"));
    let out = dir.join(name);
    std::fs::write(&c, src).expect("write C source");
    let (code, _, err) = run(Command::new("cc")
        .arg("-static")
        .args(extra_flags)
        .arg("-o")
        .arg(&out)
        .arg(&c));
    assert_eq!(code, 0, "cc -static: {}", String::from_utf8_lossy(&err));
    out
}

/// What `/hello` in a [`shellless_rootfs`] prints on stdout.
pub const HELLO_TEXT: &str = "hello from a rootfs without a shell\n";

const HELLO_C: &str = r#"#include <unistd.h>
static const char msg[] = "hello from a rootfs without a shell\n";
int main(void) { return write(1, msg, sizeof msg - 1) == sizeof msg - 1 ? 0 : 1; }
"#;

/// Builds a root filesystem with no shell at all in `dir/root`: only a
/// static binary `/hello` (prints [`HELLO_TEXT`], exits 0) and an empty
/// `/etc`. The compiler's files stay in `dir`, outside the root.
pub fn shellless_rootfs(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let hello = cc_static(dir, "hello", HELLO_C, &["-O1"]);
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir root/etc");
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::copy(&hello, root.join("hello")).expect("copy /hello");
    std::fs::set_permissions(root.join("hello"), std::fs::Permissions::from_mode(0o755)).unwrap();
    root
}

/// Set (to anything) by `make test-v2`: a test that needs cgroup v2 fails
/// instead of skipping when the host has none, so a VM run never passes
/// without testing.
pub const REQUIRE_CGROUP_V2: &str = "WARDEN_REQUIRE_CGROUP_V2";

/// True when `/sys/fs/cgroup` is a cgroup2 mount (a v2-only host, as the
/// scripts' `cgroup_mode` decides). Otherwise prints a line saying that
/// `test` was skipped, straight to stderr (past the harness's capture, so
/// `cargo test` shows it next to the test's "ok"), and returns false; with
/// [`REQUIRE_CGROUP_V2`] set it panics instead.
pub fn cgroup_v2_or_skip(test: &str) -> bool {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").is_file() {
        return true;
    }
    assert!(
        std::env::var_os(REQUIRE_CGROUP_V2).is_none(),
        "{test}: {REQUIRE_CGROUP_V2} is set but /sys/fs/cgroup is not cgroup v2"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: needs a cgroup v2 host (/sys/fs/cgroup is not cgroup2); `make test-v2` runs it in a VM"
    );
    false
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

/// A fresh scratch directory under /tmp, removed by the returned guard,
/// after lazily unmounting whatever is still mounted under it (a container
/// disk image a test moved out of its depot, say), deepest first.
pub fn scratch(tag: &str) -> (PathBuf, Cleanup) {
    let dir = std::env::temp_dir().join(unique(&format!("warden-test-{tag}")));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    let mut c = Cleanup::new();
    let d = dir.clone();
    c.push(move || {
        for m in mounts_under(&d).iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&d);
    });
    (dir, c)
}

/// Mount points under `dir` (not `dir` itself), in mount order.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(PathBuf::from)
        .collect()
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

/// Runs `wshd --run RUN --lib LIB --root ROOT --title TITLE EXTRA...` to
/// completion (it returns once the container serves, or fails) and returns
/// (exit status, stderr, host pid of the container's init). wshd's stderr is
/// kept in `RUN/wshd-start.err`.
///
/// The init is found by its process title, which wshd sets before it
/// reports ready: pass a title made by [`unique`], so the process found is
/// the one this call started. It is registered with `cleanup` (killed, and
/// its whole pid namespace with it, on drop). This works without any hook
/// (the fixtures in wshd.rs and security.rs instead have a hook write
/// `run/wshd.pid`).
pub fn start_wshd(
    run_dir: &Path,
    lib: &Path,
    root: &Path,
    title: &str,
    extra: &[&str],
    cleanup: &mut Cleanup,
) -> (i32, String, Option<i32>) {
    // stderr goes to a file, not a pipe: the container's init inherits it
    // and would keep a pipe open for as long as it lives.
    let err_path = run_dir.join("wshd-start.err");
    let err_file = std::fs::File::create(&err_path).expect("create wshd's stderr file");
    let (code, _, _) = run(Command::new(bin("wshd"))
        .arg("--run")
        .arg(run_dir)
        .arg("--lib")
        .arg(lib)
        .arg("--root")
        .arg(root)
        .arg("--title")
        .arg(title)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file));
    let pid = pid_by_title(title);
    if let Some(pid) = pid {
        cleanup.kill_pid(pid);
    }
    let err = std::fs::read_to_string(&err_path).unwrap_or_default();
    (code, err, pid)
}

/// The process whose title (argv area up to its first NUL) is exactly `title`.
pub fn pid_by_title(title: &str) -> Option<i32> {
    let mut found = None;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let first = cmd.split(|b| *b == 0).next().unwrap_or_default();
        if first == title.as_bytes() {
            assert!(found.is_none(), "two processes titled {title:?}");
            found = Some(pid);
        }
    }
    found
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
