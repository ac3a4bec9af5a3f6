//! wshd's own program file, out of the container's reach (CVE-2019-5736).
//!
//! Every session is a fork of the container's init, so for a moment it runs
//! wshd's program image inside the container; a root job that makes the
//! program it asks for a `#!/proc/self/exe` script gets a process whose
//! `/proc/PID/exe` is wshd's file on the host, and could open it for
//! writing once that process is gone. So wshd runs only from a read-only
//! mount: when its file is on a writable one, the invoker (before anything
//! else, still single-threaded) moves into a private mount namespace,
//! bind-mounts the file onto itself read-only there, and re-executes it
//! with the same arguments and environment. Opening that program file for
//! writing through any reference the container can get then fails with
//! EROFS, whether or not a wshd is running, and the host's file and mount
//! table are untouched. A wshd installed on a read-only filesystem skips all
//! of this.
//!
//! The same re-execution gives wshd its documented environment: only
//! [`ENV`] (`PATH=/usr/sbin:/usr/bin:/sbin:/bin`, the hooks' PATH). The
//! container's init is a fork of this process, and its `/proc/1/environ`
//! (the environment block wshd was executed with) is readable by container
//! root, so whatever the invoker had in its environment must not be there.
//! An invoker may pass any environment: the sealing re-exec (or, from a
//! read-only mount, one of `/proc/self/exe`) replaces it with [`ENV`], so
//! start.sh starts wshd without `env -i` (one program less per create).

use nix::errno::Errno;
use nix::mount::{mount, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::statvfs::{statvfs, FsFlags};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExeError {
    #[error("sealing wshd's program file ({0}): {1}")]
    Seal(&'static str, Errno),
    #[error("wshd's program file: {0}")]
    Path(String),
}

/// True when this process runs from a file on a read-only mount.
pub fn on_readonly_mount() -> Result<bool, ExeError> {
    let st = statvfs("/proc/self/exe").map_err(|e| ExeError::Seal("statvfs", e))?;
    Ok(st.flags().contains(FsFlags::ST_RDONLY))
}

/// The whole environment wshd runs with (and its init keeps).
pub const ENV: &str = crate::hook::HOOK_PATH;

/// True when this process's environment block (as /proc/self/environ shows
/// it, which is what container root could read from the init) is exactly
/// [`ENV`].
pub fn env_is_clean() -> bool {
    match std::fs::read("/proc/self/environ") {
        Ok(b) => b.strip_suffix(b"\0") == Some(ENV.as_bytes()),
        // No /proc: judge by what libc sees.
        Err(_) => {
            let v: Vec<_> = std::env::vars_os().collect();
            v.len() == 1 && v[0].0 == "PATH" && Some(v[0].1.as_bytes()) == ENV.as_bytes().get(5..)
        }
    }
}

/// Returns when wshd runs from a read-only mount with exactly [`ENV`];
/// otherwise makes the mount if needed and re-executes itself with the same
/// arguments and [`ENV`] (and so does not return on success).
pub fn ensure_readonly() -> Result<(), ExeError> {
    let readonly = on_readonly_mount()?;
    if readonly && env_is_clean() {
        return Ok(());
    }
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| ExeError::Path("NUL in an argument".into()))?;
    let env = [CString::new(ENV).expect("no NUL")];
    if readonly {
        // Only the environment needs replacing: the same file again.
        let e = nix::unistd::execve(c"/proc/self/exe", &args, &env).unwrap_err();
        return Err(ExeError::Seal("re-exec", e));
    }
    let exe = std::fs::read_link("/proc/self/exe").map_err(|e| ExeError::Path(e.to_string()))?;
    if !exe.is_absolute() || exe.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return Err(ExeError::Path(format!("{} is not usable", exe.display())));
    }
    nix::sched::unshare(CloneFlags::CLONE_NEWNS).map_err(|e| ExeError::Seal("unshare", e))?;
    wsys::mount::make_rslave().map_err(|e| ExeError::Seal("make / rslave", e))?;
    mount(
        Some(&exe),
        &exe,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| ExeError::Seal("bind", e))?;
    mount(
        None::<&str>,
        &exe,
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY,
        None::<&str>,
    )
    .map_err(|e| ExeError::Seal("remount read-only", e))?;
    let path = CString::new(exe.as_os_str().as_bytes())
        .map_err(|_| ExeError::Path("NUL in path".into()))?;
    let e = nix::unistd::execve(&path, &args, &env).unwrap_err();
    Err(ExeError::Seal("re-exec", e))
}
