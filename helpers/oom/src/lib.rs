//! oom: block until a memory cgroup hits OOM.
//!
//! `oom CGROUP_DIR` exits 0 when (and only when) the cgroup had an OOM after
//! oom started watching; any other outcome is a non-zero exit with a message
//! on stderr (the controller treats every non-zero exit as "no OOM").
//!
//! * cgroup v1 (the directory has `memory.oom_control`): an eventfd is
//!   registered by writing `"<eventfd> <fd of memory.oom_control>"` to
//!   `cgroup.event_control`; the kernel signals it on OOM and also when the
//!   cgroup is removed, so after a wake-up the cgroup must still exist
//!   (the directory is still there and the same inode as when armed) to
//!   count as an OOM.
//! * cgroup v2 (the directory has `memory.events`): the file is polled for
//!   POLLPRI (kernfs notifies on every counter change) and re-read; an
//!   increase of the `oom` or `oom_kill` counter over the values read at
//!   start is an OOM. The file is also re-read every [`V2_RECHECK`] to notice
//!   the cgroup's removal (the read then fails), which ends oom non-zero.
//! * Anything else (missing path, not a directory, no memory controller) is
//!   an error at once.
//!
//! Only counters and notifications from after the start count, so an OOM
//! that happened before oom ran is never reported.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::eventfd::{EfdFlags, EventFd};
use wsys::event::{poll, pollfd};

/// How often the v2 watcher re-reads `memory.events` without a wake-up.
pub const V2_RECHECK: Duration = Duration::from_millis(500);

/// Why oom ended without an OOM.
#[derive(Debug, thiserror::Error)]
pub enum OomError {
    #[error("{0}: does not exist")]
    NotFound(PathBuf),
    #[error("{0}: not a directory")]
    NotDir(PathBuf),
    #[error("{0}: not a memory cgroup (no memory.oom_control or memory.events)")]
    NotMemory(PathBuf),
    #[error("{0}: cgroup removed before any OOM")]
    Removed(PathBuf),
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: io::Error },
    #[error("{0}: unreadable memory.events (no oom/oom_kill counters)")]
    BadEvents(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> OomError + '_ {
    move |err| OomError::Io {
        path: path.to_path_buf(),
        err,
    }
}

/// Which cgroup version a directory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Checks `dir` and tells its cgroup version.
pub fn detect(dir: &Path) -> Result<Version, OomError> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(OomError::NotDir(dir.to_path_buf())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(OomError::NotFound(dir.to_path_buf()))
        }
        Err(e) => return Err(io_err(dir)(e)),
    }
    if dir.join("memory.oom_control").is_file() && dir.join("cgroup.event_control").exists() {
        Ok(Version::V1)
    } else if dir.join("memory.events").is_file() {
        Ok(Version::V2)
    } else {
        Err(OomError::NotMemory(dir.to_path_buf()))
    }
}

/// A watcher armed on one cgroup; [`Armed::wait`] blocks until the verdict.
pub enum Armed {
    V1 {
        dir: PathBuf,
        /// (dev, ino) of the cgroup directory when armed.
        id: (u64, u64),
        efd: EventFd,
        // Kept open: the registration refers to it.
        _control: File,
    },
    V2 {
        dir: PathBuf,
        events: File,
        start: Counts,
    },
}

/// Arms the watcher (registration / first read happen here, so anything
/// after `arm` returns is seen).
pub fn arm(dir: &Path) -> Result<Armed, OomError> {
    match detect(dir)? {
        Version::V1 => {
            let id = dir_id(dir).map_err(io_err(dir))?;
            let ctl_path = dir.join("memory.oom_control");
            let control = File::open(&ctl_path).map_err(io_err(&ctl_path))?;
            let efd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)
                .map_err(|e| io_err(dir)(e.into()))?;
            let ev_path = dir.join("cgroup.event_control");
            let mut ev = std::fs::OpenOptions::new()
                .write(true)
                .open(&ev_path)
                .map_err(io_err(&ev_path))?;
            let line = format!("{} {}", efd.as_fd().as_raw_fd(), control.as_raw_fd());
            ev.write_all(line.as_bytes()).map_err(io_err(&ev_path))?;
            Ok(Armed::V1 {
                dir: dir.to_path_buf(),
                id,
                efd,
                _control: control,
            })
        }
        Version::V2 => {
            let p = dir.join("memory.events");
            let events = File::open(&p).map_err(io_err(&p))?;
            let start = read_counts(&events, dir)?;
            Ok(Armed::V2 {
                dir: dir.to_path_buf(),
                events,
                start,
            })
        }
    }
}

impl Armed {
    /// Blocks until an OOM (`Ok`) or until no OOM can come (`Err`).
    pub fn wait(&self) -> Result<(), OomError> {
        match self {
            Armed::V1 { dir, id, efd, .. } => {
                loop {
                    match efd.read() {
                        Ok(_) => break,
                        Err(nix::Error::EINTR) => continue,
                        Err(e) => return Err(io_err(dir)(e.into())),
                    }
                }
                // Removal signals the eventfd too: an OOM needs the same,
                // still live cgroup (a removed one has no directory, a
                // re-created one another inode): one stat, the only
                // syscall between the wake-up and the exit.
                if dir_id(dir).ok() == Some(*id) {
                    Ok(())
                } else {
                    Err(OomError::Removed(dir.clone()))
                }
            }
            Armed::V2 { dir, events, start } => loop {
                let mut fds = [pollfd(events.as_raw_fd(), libc::POLLPRI)];
                match poll(&mut fds, V2_RECHECK.as_millis() as i32) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err(dir)(e)),
                }
                let now = match read_counts(events, dir) {
                    Ok(c) => c,
                    Err(OomError::Io { .. }) => return Err(OomError::Removed(dir.clone())),
                    Err(e) => return Err(e),
                };
                if now.oom > start.oom || now.oom_kill > start.oom_kill {
                    return Ok(());
                }
                if !dir.join("memory.events").exists() {
                    return Err(OomError::Removed(dir.clone()));
                }
            },
        }
    }
}

fn dir_id(dir: &Path) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir)?;
    Ok((m.dev(), m.ino()))
}

/// The `oom` and `oom_kill` counters of `memory.events`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub oom: u64,
    pub oom_kill: u64,
}

/// Parses `memory.events` ("key value" lines).
pub fn parse_events(s: &str) -> Option<Counts> {
    let mut oom = None;
    let mut oom_kill = None;
    for line in s.lines() {
        let mut it = line.split_whitespace();
        match (it.next(), it.next().and_then(|v| v.parse::<u64>().ok())) {
            (Some("oom"), Some(v)) => oom = Some(v),
            (Some("oom_kill"), Some(v)) => oom_kill = Some(v),
            _ => {}
        }
    }
    Some(Counts {
        oom: oom?,
        oom_kill: oom_kill?,
    })
}

fn read_counts(f: &File, dir: &Path) -> Result<Counts, OomError> {
    let mut buf = [0u8; 4096];
    let n = f.read_at(&mut buf, 0).map_err(io_err(dir))?;
    let s = std::str::from_utf8(&buf[..n]).map_err(|_| OomError::BadEvents(dir.to_path_buf()))?;
    parse_events(s).ok_or_else(|| OomError::BadEvents(dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_memory_events() {
        let s = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(
            parse_events(s),
            Some(Counts {
                oom: 3,
                oom_kill: 2
            })
        );
        assert_eq!(parse_events("low 0\nhigh 0\n"), None);
        assert_eq!(parse_events("oom x\noom_kill 1\n"), None);
    }

    #[test]
    fn rejects_non_cgroups() {
        let d = std::env::temp_dir().join(format!("oom-unit-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        assert!(matches!(detect(&d), Err(OomError::NotMemory(_))));
        assert!(matches!(
            detect(&d.join("missing")),
            Err(OomError::NotFound(_))
        ));
        std::fs::write(d.join("f"), "").unwrap();
        assert!(matches!(detect(&d.join("f")), Err(OomError::NotDir(_))));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn v2_counts_only_increases_after_start() {
        // A fake cgroup v2 directory: memory.events in a temp dir. The OOM
        // that happened "before" (oom 5) must not count.
        let d = std::env::temp_dir().join(format!("oom-unit-v2-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("memory.events");
        std::fs::write(&p, "oom 5\noom_kill 5\n").unwrap();
        let armed = arm(&d).unwrap();
        let t = std::thread::spawn(move || armed.wait());
        std::thread::sleep(Duration::from_millis(50));
        assert!(!t.is_finished());
        std::fs::write(&p, "oom 6\noom_kill 5\n").unwrap();
        // Regular files always poll ready; the recheck picks it up.
        assert!(t.join().unwrap().is_ok());
        std::fs::write(&p, "oom 6\noom_kill 6\n").unwrap();
        let armed = arm(&d).unwrap();
        std::fs::remove_file(&p).unwrap();
        std::fs::remove_dir_all(&d).unwrap();
        assert!(matches!(armed.wait(), Err(OomError::Removed(_))));
    }
}
