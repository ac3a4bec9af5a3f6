//! Running wshd's hook scripts.
//!
//! A hook is executed by absolute path with argv `[path]`, stdin/stdout/
//! stderr inherited from wshd, the current directory unchanged (`/` for
//! `hook-child-after-pivot.sh`) and a clean environment that holds only
//! `PATH=/usr/sbin:/usr/bin:/sbin:/bin` plus, for
//! `hook-parent-after-clone.sh`, `PID=<host pid of the container's init>`.
//! Hooks find the container directory themselves (`$(dirname $0)/..`).
//! A missing hook is skipped (no process is started). A non-executable
//! hook, or one that exits non-zero or is killed, is an error naming the
//! hook and its status.
//!
//! The in-container hook (`hook-child-after-pivot.sh`) is read into a
//! sealed memfd before pivot_root ([`load`]) and run from it ([`run_loaded`])
//! once the old root is detached: it runs as `/dev/fd/N` inside the
//! container, with the current directory `/` and only `PATH`, so its
//! interpreter (the root filesystem's own `/bin/sh`) can reach no host path.

use nix::sys::wait::WaitStatus;
use nix::unistd::{access, AccessFlags};
use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use thiserror::Error;

/// PATH given to every hook.
pub const HOOK_PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Error)]
pub enum HookError {
    #[error("hook {0} is not executable")]
    NotExecutable(String),
    #[error("hook {0}: {1}")]
    Spawn(String, String),
    #[error("hook {0} exited with status {1}")]
    Status(String, i32),
    #[error("hook {0} was killed by signal {1}")]
    Signal(String, i32),
}

/// Largest in-container hook accepted by [`load`].
pub const MAX_LOADED: u64 = 1 << 20;

/// Whether a hook is present: false when nothing is at `path` (the hook is
/// skipped); an error when something is there but cannot be run.
fn present(path: &Path) -> Result<bool, HookError> {
    let name = path.display().to_string();
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(HookError::Spawn(name, e.to_string())),
        Ok(_) => {}
    }
    if access(path, AccessFlags::X_OK).is_err() || path.is_dir() {
        return Err(HookError::NotExecutable(name));
    }
    Ok(true)
}

/// Runs `path` to completion with the clean environment plus `extra_env`
/// (`KEY=VALUE` strings); does nothing when there is no hook at `path`.
pub fn run(path: &Path, extra_env: &[String]) -> Result<(), HookError> {
    if !present(path)? {
        return Ok(());
    }
    let name = path.display().to_string();
    let prog = cstring(path.as_os_str().as_bytes(), &name)?;
    spawn(&name, &prog, extra_env)
}

fn cstring(b: &[u8], name: &str) -> Result<CString, HookError> {
    CString::new(b).map_err(|_| HookError::Spawn(name.into(), "NUL byte in a string".into()))
}

/// A hook read into a sealed memfd, to be run where its file is out of
/// reach.
#[derive(Debug)]
pub struct Loaded {
    name: String,
    fd: std::os::fd::OwnedFd,
}

/// Reads the hook at `path` (at most [`MAX_LOADED`] bytes) into a sealed
/// memfd; `None` when there is no hook.
pub fn load(path: &Path) -> Result<Option<Loaded>, HookError> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use std::io::{Read, Write};
    if !present(path)? {
        return Ok(None);
    }
    let name = path.display().to_string();
    let err = |e: String| HookError::Spawn(name.clone(), e);
    let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
    let mut body = Vec::new();
    f.take(MAX_LOADED + 1)
        .read_to_end(&mut body)
        .map_err(|e| err(e.to_string()))?;
    if body.len() as u64 > MAX_LOADED {
        return Err(err(format!("larger than {MAX_LOADED} bytes")));
    }
    let fd = wsys::fs::memfd(c"warden-hook").map_err(|e| err(format!("memfd: {e}")))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&body).map_err(|e| err(e.to_string()))?;
    let fd = std::os::fd::OwnedFd::from(file);
    fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_SEAL
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_WRITE,
        ),
    )
    .map_err(|e| err(format!("sealing: {e}")))?;
    Ok(Some(Loaded { name, fd }))
}

/// Runs a [`load`]ed hook as `/dev/fd/N` (the current /dev must have
/// `fd -> /proc/self/fd` and /proc must be mounted). The memfd is
/// inheritable only for this run.
pub fn run_loaded(h: Loaded) -> Result<(), HookError> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let fd = h.fd.as_raw_fd();
    fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))
        .map_err(|e| HookError::Spawn(h.name.clone(), e.to_string()))?;
    let prog = cstring(format!("/dev/fd/{fd}").as_bytes(), &h.name)?;
    let r = spawn(&h.name, &prog, &[]);
    drop(h.fd);
    r
}

fn spawn(name: &str, prog: &CString, extra_env: &[String]) -> Result<(), HookError> {
    let name = name.to_string();
    let mut env = vec![CString::new(HOOK_PATH).expect("no NUL")];
    for e in extra_env {
        env.push(cstring(e.as_bytes(), &name)?);
    }
    // vfork-style spawn: no copy of our address space, child execs at once.
    match wsys::proc_::spawn_wait(prog, std::slice::from_ref(prog), &env) {
        Ok(WaitStatus::Exited(_, 0)) => Ok(()),
        Ok(WaitStatus::Exited(_, n)) => Err(HookError::Status(name, n)),
        Ok(WaitStatus::Signaled(_, s, _)) => Err(HookError::Signal(name, s as i32)),
        Ok(other) => Err(HookError::Spawn(name, format!("{other:?}"))),
        Err(e) => Err(HookError::Spawn(name, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn statuses_and_env() {
        let d = std::env::temp_dir().join(format!("wshd-hook-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let ok = script(&d, "ok.sh", "[ \"$PID\" = 12 ] && [ \"$PATH\" = /usr/sbin:/usr/bin:/sbin:/bin ] && [ -z \"$HOME\" ]");
        run(&ok, &["PID=12".into()]).unwrap();
        let bad = script(&d, "bad.sh", "exit 3");
        assert_eq!(
            run(&bad, &[]).unwrap_err().to_string(),
            format!("hook {} exited with status 3", bad.display())
        );
        let kill = script(&d, "kill.sh", "kill -9 $$");
        assert!(matches!(run(&kill, &[]), Err(HookError::Signal(_, 9))));
        // A missing hook is skipped.
        run(&d.join("none.sh"), &[]).unwrap();
        assert!(load(&d.join("none.sh")).unwrap().is_none());
        // A loaded hook runs from its memfd, sealed against writes.
        let marker = d.join("loaded-ran");
        let l = script(
            &d,
            "loaded.sh",
            &format!(
                "case \"$0\" in /dev/fd/*) touch {} ;; esac",
                marker.display()
            ),
        );
        let h = load(&l).unwrap().unwrap();
        assert!(nix::unistd::write(&h.fd, b"x").is_err());
        run_loaded(h).unwrap();
        assert!(marker.exists());
        std::fs::write(d.join("noexec.sh"), "#!/bin/sh\n").unwrap();
        assert!(matches!(
            run(&d.join("noexec.sh"), &[]),
            Err(HookError::NotExecutable(_))
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
