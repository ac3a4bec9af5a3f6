//! Running wshd's hook scripts.
//!
//! A hook is executed by absolute path with argv `[path]`, stdin/stdout/
//! stderr inherited from wshd, the current directory unchanged (`/` for
//! `hook-child-after-pivot.sh`) and a clean environment that holds only
//! `PATH=/usr/sbin:/usr/bin:/sbin:/bin` plus, for
//! `hook-parent-after-clone.sh`, `PID=<host pid of the container's init>`.
//! Hooks find the container directory themselves (`$(dirname $0)/..`).
//! A missing or non-executable hook, or one that exits non-zero or is
//! killed, is an error naming the hook and its status.

use nix::sys::wait::WaitStatus;
use nix::unistd::{access, AccessFlags};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use thiserror::Error;

/// PATH given to every hook.
pub const HOOK_PATH: &str = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Error)]
pub enum HookError {
    #[error("hook {0} is missing")]
    Missing(String),
    #[error("hook {0} is not executable")]
    NotExecutable(String),
    #[error("hook {0}: {1}")]
    Spawn(String, String),
    #[error("hook {0} exited with status {1}")]
    Status(String, i32),
    #[error("hook {0} was killed by signal {1}")]
    Signal(String, i32),
}

/// Runs `path` to completion with the clean environment plus `extra_env`
/// (`KEY=VALUE` strings).
pub fn run(path: &Path, extra_env: &[String]) -> Result<(), HookError> {
    let name = path.display().to_string();
    if std::fs::symlink_metadata(path).is_err() {
        return Err(HookError::Missing(name));
    }
    if access(path, AccessFlags::X_OK).is_err() || path.is_dir() {
        return Err(HookError::NotExecutable(name));
    }
    let prog =
        CString::new(path.as_os_str().as_bytes()).map_err(|_| HookError::Missing(name.clone()))?;
    let mut env = vec![CString::new(HOOK_PATH).expect("no NUL")];
    for e in extra_env {
        env.push(CString::new(e.as_str()).map_err(|_| HookError::Missing(name.clone()))?);
    }
    // vfork-style spawn: no copy of our address space, child execs at once.
    match wsys::proc_::spawn_wait(&prog, std::slice::from_ref(&prog), &env) {
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
        assert!(matches!(
            run(&d.join("none.sh"), &[]),
            Err(HookError::Missing(_))
        ));
        std::fs::write(d.join("noexec.sh"), "#!/bin/sh\n").unwrap();
        assert!(matches!(
            run(&d.join("noexec.sh"), &[]),
            Err(HookError::NotExecutable(_))
        ));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
