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

/// Returns when wshd runs from a read-only mount; otherwise makes one and
/// re-executes itself from it (and so does not return on success).
pub fn ensure_readonly() -> Result<(), ExeError> {
    if on_readonly_mount()? {
        return Ok(());
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
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| ExeError::Path("NUL in an argument".into()))?;
    let e = nix::unistd::execv(&path, &args).unwrap_err();
    Err(ExeError::Seal("re-exec", e))
}
