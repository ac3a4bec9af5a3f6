//! The OOM watch: one `oom` helper (helpers/oom) per container with a
//! memory limit, as warden ran its oom notifier.
//!
//! Why the helper and not an in-server epoll: it is the tested
//! implementation of both kernels' notifications (v1 eventfd on
//! memory.oom_control with its removal check, v2 memory.events counters),
//! it keeps the kernel's notification fds out of the server (whose fd
//! table the job helpers inherit from), and a helper that dies cannot take
//! the server's accept loop with it. The cost is a small static process
//! and a waiting thread per limited container.
//!
//! [`arm`] starts `oom <memory cgroup>` and returns once it has registered
//! (it holds an eventfd, v1, or has memory.events open, v2; bounded to 2 s),
//! so an OOM caused right after cannot be missed; a thread waits for it.
//! Exit 0 means an OOM: the event "out of memory" is added and an active
//! container is stopped, as warden did. Any other exit (cgroup removed,
//! killed by [`disarm`]) is no OOM. [`disarm`] (stop, destroy) kills the
//! helper; [`arm_if_limited`] arms new and adopted containers that have a memory limit.
//! A server that was killed leaves its helpers running (each ends when its
//! cgroup goes); [`end_orphans`] ends them at start, before re-arming.

use crate::container::{Container, State};
use crate::limits::{memory, Cgroup};
use crate::server::Server;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Helper pids by container directory. A process-wide table (not a field
/// of the server) so that it needs no change to the server's state.
fn table() -> MutexGuard<'static, HashMap<PathBuf, i32>> {
    static T: OnceLock<Mutex<HashMap<PathBuf, i32>>> = OnceLock::new();
    T.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// Whether a watch runs for the container.
pub fn armed(c: &Container) -> bool {
    table().contains_key(&c.path)
}

/// Starts the watch (nothing when one runs or the container has no memory
/// cgroup). Failures are logged: a container without OOM watch still runs.
pub fn arm(srv: &Arc<Server>, c: &Arc<Container>) {
    let cg = match Cgroup::of(c, "memory") {
        Ok(cg) => cg,
        Err(e) => {
            log::warn!("{:?}: no OOM watch: {e}", c.handle);
            return;
        }
    };
    let mut t = table();
    if t.contains_key(&c.path) {
        return;
    }
    let bin = srv.cfg.bin_path.join("oom");
    let child = Command::new(&bin)
        .arg(&cg.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let child = match child {
        Ok(ch) => ch,
        Err(e) => {
            log::warn!("{:?}: cannot start {}: {e}", c.handle, bin.display());
            return;
        }
    };
    let pid = child.id() as i32;
    t.insert(c.path.clone(), pid);
    drop(t);
    let end = Instant::now() + Duration::from_secs(2);
    while !registered(pid) && Instant::now() < end {
        if wsys::proc_::Stat::of(pid).is_none_or(|s| s.exited()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let (srv, c) = (srv.clone(), c.clone());
    let r = std::thread::Builder::new()
        .name("oom".into())
        .spawn(move || {
            // Wait for the exit without reaping, so that the pid stays
            // ours (a zombie at worst) while the table names it and
            // disarm may signal it; reap after removing the entry.
            let _ = nix::sys::wait::waitid(
                nix::sys::wait::Id::Pid(nix::unistd::Pid::from_raw(pid)),
                nix::sys::wait::WaitPidFlag::WEXITED | nix::sys::wait::WaitPidFlag::WNOWAIT,
            );
            {
                let mut t = table();
                if t.get(&c.path) == Some(&pid) {
                    t.remove(&c.path);
                }
            }
            match child.wait_with_output() {
                Ok(o) if o.status.success() => oomed(&srv, &c),
                Ok(o) => log::debug!(
                    "{:?}: oom watch ended ({}): {}",
                    c.handle,
                    o.status,
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => log::warn!("{:?}: oom watch: {e}", c.handle),
            }
        });
    if let Err(e) = r {
        log::warn!("oom watch thread: {e}");
    }
}

/// The helper holds its notification: an eventfd (v1) or memory.events (v2).
fn registered(pid: i32) -> bool {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    rd.flatten().any(|e| {
        std::fs::read_link(e.path()).is_ok_and(|l| {
            let l = l.to_string_lossy();
            l.contains("eventfd") || l.ends_with("memory.events")
        })
    })
}

fn oomed(srv: &Arc<Server>, c: &Arc<Container>) {
    log::warn!("{:?}: out of memory", c.handle);
    c.lock().events.push("out of memory".into());
    if c.state() == State::Active {
        if let Err(e) = srv.stop(c, false) {
            log::warn!("{:?}: stop after OOM: {e}", c.handle);
        }
    } else if let Err(e) = c.write_snapshot() {
        log::warn!("{:?}: snapshot: {e}", c.handle);
    }
}

/// Ends the container's watch, if any (its thread reaps the helper).
pub fn disarm(c: &Container) {
    if let Some(pid) = table().remove(&c.path) {
        // Still our unreaped child: its thread reaps it only after
        // removing the entry, which we held until now.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
}

/// For a new or re-adopted active container with a memory limit: arm.
pub fn arm_if_limited(srv: &Arc<Server>, c: &Arc<Container>) {
    if c.state() != State::Active {
        return;
    }
    let limited = Cgroup::of(c, "memory")
        .and_then(|cg| memory::get(&cg))
        .is_ok_and(|l| l < memory::UNLIMITED);
    if limited {
        arm(srv, c);
    }
}

/// At start (before any arm): SIGKILLs `oom` helpers a previous server
/// left, recognised by their exact command line, `<bin>/oom <dir>` with
/// `<dir>` a container cgroup under one of this server's `parents`
/// (`.../warden-P`). How many were ended.
pub fn end_orphans(bin: &std::path::Path, parents: &[PathBuf]) -> usize {
    let prog = bin.join("oom");
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut n = 0;
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        if !orphan_cmdline(&cmd, &prog, parents) || pid == me {
            continue;
        }
        log::info!("ending a previous server's oom helper (pid {pid})");
        if nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)
            .is_ok()
        {
            n += 1;
        }
    }
    n
}

/// `prog\0<parent>/<id>\0` for one of `parents` and a plain `<id>`.
fn orphan_cmdline(cmd: &[u8], prog: &std::path::Path, parents: &[PathBuf]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let args: Vec<&[u8]> = cmd
        .strip_suffix(b"\0")
        .unwrap_or(cmd)
        .split(|b| *b == 0)
        .collect();
    let [p, dir] = args[..] else {
        return false;
    };
    if p != prog.as_os_str().as_bytes() {
        return false;
    }
    let dir = std::path::Path::new(std::ffi::OsStr::from_bytes(dir));
    let (Some(parent), Some(id)) = (dir.parent(), dir.file_name()) else {
        return false;
    };
    parents.iter().any(|p| p == parent)
        && !id.is_empty()
        && id.as_bytes().iter().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn orphans_are_recognised_by_their_exact_command_line() {
        let parents = vec![PathBuf::from("/sys/fs/cgroup/memory/warden-p1")];
        let prog = Path::new("/opt/w/oom");
        let ok = b"/opt/w/oom\0/sys/fs/cgroup/memory/warden-p1/abc123\0";
        assert!(orphan_cmdline(ok, prog, &parents));
        for bad in [
            &b"/opt/w/oom\0/sys/fs/cgroup/memory/warden-p2/abc123\0"[..],
            b"/opt/x/oom\0/sys/fs/cgroup/memory/warden-p1/abc123\0",
            b"/opt/w/oom\0/sys/fs/cgroup/memory/warden-p1/abc123\0x\0",
            b"/opt/w/oom\0/sys/fs/cgroup/memory/warden-p1/../x\0",
            b"/opt/w/oom\0/sys/fs/cgroup/memory/warden-p1\0",
            b"",
        ] {
            assert!(!orphan_cmdline(bad, prog, &parents), "{bad:?}");
        }
    }
}
