//! The server's exclusive ownership of its host resources.
//!
//! A server (and `warden clear`) takes two exclusive `flock`s before it
//! touches anything on the host, and holds them until it exits:
//! - `DEPOT/.warden.lock`: the container depot;
//! - `/run/warden-rs/prefix-P.lock`: the resource prefix `P` (nft table
//!   `warden-P`, veths `P-*`, cgroups `warden-P`), whatever the depot.
//!
//! A depot inside another server's depot is refused too: every ancestor of
//! the depot holding a `.warden.lock` that is locked names its owner (and
//! crate::restore never destroys a directory holding a `.warden.lock`).
//!
//! File format (both files): one line `pid=N config=PATH\n`, written by the
//! holder once it has the lock, read only to name the holder in the error
//! a second server gets. The lock, not the text, is what excludes: a file
//! left by a dead server is simply locked again (flocks die with their
//! process).

use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Name of the depot lock file.
pub const DEPOT_LOCK: &str = ".warden.lock";
/// Where the per-prefix lock files live.
pub const PREFIX_LOCK_DIR: &str = "/run/warden-rs";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another warden server ({holder}) owns {what}: {path} is locked; stop it first")]
    Held {
        what: String,
        path: PathBuf,
        holder: String,
    },
    #[error("cannot open lock file {path}: {err}")]
    Open { path: PathBuf, err: std::io::Error },
}

/// The held locks; dropping it releases them.
#[derive(Debug)]
pub struct Ownership {
    _locks: Vec<Flock<File>>,
}

impl Ownership {
    /// Takes the depot and prefix locks, recording `config` as the holder.
    pub fn acquire(depot: &Path, prefix: &str, config: &Path) -> Result<Ownership, LockError> {
        let config = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
        Self::acquire_in(depot, prefix, &config, Path::new(PREFIX_LOCK_DIR))
    }

    /// [`Ownership::acquire`] with the prefix locks in `prefix_dir`.
    pub fn acquire_in(
        depot: &Path,
        prefix: &str,
        config: &Path,
        prefix_dir: &Path,
    ) -> Result<Ownership, LockError> {
        let me = format!("pid={} config={}\n", std::process::id(), config.display());
        for a in depot.ancestors().skip(1) {
            check_free(&a.join(DEPOT_LOCK), &format!("depot {}", a.display()))?;
        }
        let mkdir = |d: &Path| {
            std::fs::create_dir_all(d).map_err(|err| LockError::Open {
                path: d.to_path_buf(),
                err,
            })
        };
        mkdir(depot)?;
        mkdir(prefix_dir)?;
        let d = take(
            &depot.join(DEPOT_LOCK),
            &format!("depot {}", depot.display()),
            &me,
        )?;
        let p = take(
            &prefix_dir.join(format!("prefix-{prefix}.lock")),
            &format!("resource prefix {prefix}"),
            &me,
        )?;
        Ok(Ownership { _locks: vec![d, p] })
    }
}

fn open(path: &Path) -> Result<File, LockError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|err| LockError::Open {
            path: path.to_path_buf(),
            err,
        })
}

/// Locks `path` exclusively (without waiting) and writes `me` into it.
fn take(path: &Path, what: &str, me: &str) -> Result<Flock<File>, LockError> {
    let f = open(path)?;
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(mut l) => {
            let _ = l.set_len(0);
            let _ = l.rewind();
            let _ = l.write_all(me.as_bytes());
            Ok(l)
        }
        Err((mut f, _)) => Err(LockError::Held {
            what: what.into(),
            path: path.to_path_buf(),
            holder: holder(&mut f),
        }),
    }
}

/// Fails when `path` exists and another process holds its lock.
fn check_free(path: &Path, what: &str) -> Result<(), LockError> {
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    let f = open(path)?;
    match Flock::lock(f, FlockArg::LockSharedNonblock) {
        Ok(_) => Ok(()),
        Err((mut f, _)) => Err(LockError::Held {
            what: what.into(),
            path: path.to_path_buf(),
            holder: holder(&mut f),
        }),
    }
}

/// The holder's `pid=N config=PATH` line, as recorded.
fn holder(f: &mut File) -> String {
    let mut s = String::new();
    let _ = f.take(4096).read_to_string(&mut s);
    match s.lines().next() {
        Some(l) if !l.trim().is_empty() => l.trim().to_string(),
        _ => "pid unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_and_named() {
        let t = std::env::temp_dir().join(format!("warden-lock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let (depot, run) = (t.join("depot"), t.join("run"));
        let a = Ownership::acquire_in(&depot, "p1", Path::new("/etc/a.yml"), &run).unwrap();
        let me = std::process::id();
        // Same depot (flocks of two open files exclude each other even in
        // one process).
        let e = Ownership::acquire_in(&depot, "p2", Path::new("/b.yml"), &run).unwrap_err();
        let e = e.to_string();
        assert!(e.contains(&format!("pid={me} config=/etc/a.yml")), "{e}");
        assert!(e.contains("owns depot"), "{e}");
        // Same prefix, another depot.
        let e = Ownership::acquire_in(&t.join("d2"), "p1", Path::new("/b.yml"), &run);
        assert!(e.unwrap_err().to_string().contains("resource prefix p1"));
        // A depot inside the owned one.
        let e = Ownership::acquire_in(&depot.join("x/y"), "p3", Path::new("/b.yml"), &run);
        assert!(e.unwrap_err().to_string().contains("owns depot"));
        // Released with the owner; the files stay and are simply re-locked.
        drop(a);
        let b = Ownership::acquire_in(&depot, "p1", Path::new("/b.yml"), &run).unwrap();
        let text = std::fs::read_to_string(depot.join(DEPOT_LOCK)).unwrap();
        assert_eq!(text, format!("pid={me} config=/b.yml\n"));
        drop(b);
        std::fs::remove_dir_all(&t).unwrap();
    }
}
