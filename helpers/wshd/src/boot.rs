//! Container start: from the invoking process to a serving pid 1.
//!
//! ```text
//! invoker (host)                         container init (pid 1 of new pid ns)
//! ------------------------------------   -------------------------------------
//! (main: every inherited fd >= 3 closed)
//! re-exec from a read-only bind mount of
//!   itself unless already on one (crate::exe)
//! bind + listen <run>/wshd.sock (0600)
//! unshare(NEWNS), / made rslave
//! [hook-parent-before-clone.sh]
//! clone(NEWNS|NEWUTS|NEWIPC|NEWPID|NEWNET) ->  waits on "go" pipe (PDEATHSIG=KILL)
//! [hook-parent-after-clone.sh] (PID=...)
//! device program attached to the init's
//!   own v2 cgroup (crate::devices)
//! writes "go"                            hostname (--hostname), / made rprivate
//!                                        bind --root onto itself if not a mount
//!                                        native setup under --root (crate::setup:
//!                                          root nodev, /dev, /dev/pts, /dev/shm,
//!                                          /proc with masks; no symlink followed)
//!                                        [hook-child-before-pivot.sh] (host side)
//!                                        [hook-child-after-pivot.sh] read into a
//!                                          sealed memfd
//!                                        pivot_root(root, root), umount2(old
//!                                          root, MNT_DETACH): every old mount,
//!                                          stacked ones included, goes
//!                                        [memfd hook run as /dev/fd/N inside]
//!                                        setsid, title, non-dumpable,
//!                                        stdin/stdout -> /dev/null of the host
//!                                        (opened before pivot), SIGCHLD ->
//!                                        signalfd, bounding set cut to the
//!                                        root sessions' set and seccomp
//!                                        filter installed (wshd::harden),
//!                                        PDEATHSIG cleared, stderr ->
//!                                        /dev/null too
//!                                        writes "ready", drops its boot-time
//!                                        program text from RSS, serves
//! reads "ready" -> exit 0
//! ```
//! Hooks in brackets are optional: a missing one is skipped without
//! starting a process. No program of the root filesystem runs before the
//! old root is detached.
//! Any failure: the invoker prints one line naming the step and exits
//! non-zero; if the init was already cloned it is killed (taking every
//! process of its pid namespace with it) and reaped, so nothing stays up.
//! Because the socket is listening before the invoker exits 0, a caller can
//! run `wsh` as soon as wshd returns.
//!
//! The init's stderr is the invoker's (start.sh: `run/wshd.err.log`) until
//! boot is done, so boot errors of the init reach it; right before "ready"
//! it is moved to /dev/null, so the running init keeps no host file open
//! (its fds 0-2 are all /dev/null). What the serving loop would print
//! later (poll and accept failures) is lost; those are transient and wshd
//! recovers from them by itself.

use crate::hook::{self, HookError};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{
    bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr,
};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{chdir, dup2, read, setsid, write, Pid};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use thiserror::Error;
use wsys::ns::Forked;

/// Command-line settings of wshd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub run: PathBuf,
    pub lib: PathBuf,
    pub root: PathBuf,
    pub title: Option<String>,
    /// Root sessions may mount and create namespaces (nested warden).
    pub allow_nested: bool,
    /// Root sessions' capabilities (`--root-caps`); None: the default of
    /// [`crate::harden`].
    pub root_caps: Option<Vec<caps::Capability>>,
    /// Hostname of the container (its UTS namespace keeps the host's when
    /// unset).
    pub hostname: Option<String>,
    /// `--bind MODE:SRC:DST`, applied in order after the standard mounts.
    pub binds: Vec<crate::setup::Bind>,
}

#[derive(Debug, Error)]
pub enum BootError {
    #[error("{0}: {1}")]
    Dir(String, String),
    #[error("socket {0}: {1}")]
    Socket(String, String),
    #[error("{0}: {1}")]
    Sys(&'static str, Errno),
    #[error(transparent)]
    Hook(#[from] HookError),
    #[error("old root still mounted after unmounting it ({0} mounts on /)")]
    OldRoot(usize),
    #[error(transparent)]
    Setup(#[from] crate::setup::SetupError),
    #[error(transparent)]
    Exe(#[from] crate::exe::ExeError),
    #[error(transparent)]
    Harden(#[from] crate::harden::HardenError),
    #[error(transparent)]
    Devices(#[from] crate::devices::DevicesError),
    #[error("container init failed ({0})")]
    Init(String),
}

fn sys(what: &'static str) -> impl FnOnce(Errno) -> BootError {
    move |e| BootError::Sys(what, e)
}

fn dir(p: &Path, flag: &str) -> Result<PathBuf, BootError> {
    let c = std::fs::canonicalize(p)
        .map_err(|e| BootError::Dir(format!("{flag} {}", p.display()), e.to_string()))?;
    if !c.is_dir() {
        return Err(BootError::Dir(
            format!("{flag} {}", p.display()),
            "not a directory".into(),
        ));
    }
    Ok(c)
}

fn listen_socket(run: &Path) -> Result<OwnedFd, BootError> {
    let path = run.join("wshd.sock");
    let name = path.display().to_string();
    let err = |e: String| BootError::Socket(name.clone(), e);
    if let Ok(md) = std::fs::symlink_metadata(&path) {
        if !md.file_type().is_socket() {
            return Err(err("exists and is not a socket".into()));
        }
        std::fs::remove_file(&path).map_err(|e| err(e.to_string()))?;
    }
    let addr = UnixAddr::new(&path).map_err(|_| err("path too long for a unix socket".into()))?;
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| err(e.to_string()))?;
    bind(fd.as_raw_fd(), &addr).map_err(|e| err(e.to_string()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err(e.to_string()))?;
    listen(&fd, Backlog::new(1024).unwrap_or(Backlog::MAXCONN)).map_err(|e| err(e.to_string()))?;
    Ok(fd)
}

/// Boots the container; returns in the invoker once the socket serves.
/// The container's init never returns from here.
pub fn start(cfg: &Config) -> Result<(), BootError> {
    // May re-execute wshd from a read-only bind mount of itself.
    crate::exe::ensure_readonly()?;
    let run = dir(&cfg.run, "--run")?;
    let lib = dir(&cfg.lib, "--lib")?;
    let root = dir(&cfg.root, "--root")?;
    // Compiled once, before the clone (no threads); see crate::harden.
    let policy = crate::harden::Policy::build(cfg.allow_nested, cfg.root_caps.as_deref())?;
    // Read from the host's /proc now; the container may have none.
    let me = Me {
        argv_area: wsys::proc_::ArgvArea::current(),
        text: wsys::proc_::FileText::current(),
        policy,
    };

    let listener = listen_socket(&run)?;
    let (go_r, go_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sys("pipe"))?;

    // The before-clone hook may mount what it needs without touching the host.
    wsys::ns::unshare(CloneFlags::CLONE_NEWNS).map_err(sys("unshare(CLONE_NEWNS)"))?;
    wsys::mount::make_rslave().map_err(sys("make / rslave"))?;
    hook::run(&lib.join("hook-parent-before-clone.sh"), &[])?;

    let flags = CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET;
    // SAFETY: wshd never starts a thread, so it is single-threaded here.
    #[allow(unsafe_code)]
    let forked = unsafe { wsys::ns::clone_fork(flags) };
    match forked.map_err(sys("clone"))? {
        Forked::Child => {
            drop(go_w);
            drop(ready_r);
            let code = match init(cfg, &lib, &root, &me, listener, go_r, ready_w) {
                Ok(never) => match never {},
                Err(e) => {
                    eprintln!("wshd: {e}");
                    1
                }
            };
            wsys::proc_::exit_now(code);
        }
        Forked::Parent(pid) => {
            drop(go_r);
            drop(ready_w);
            drop(listener);
            let child = Pid::from_raw(pid);
            let fail = |e: BootError| {
                let _ = kill(child, Signal::SIGKILL);
                let _ = waitpid(child, None);
                e
            };
            hook::run(
                &lib.join("hook-parent-after-clone.sh"),
                &[format!("PID={pid}")],
            )
            .map_err(|e| fail(e.into()))?;
            crate::devices::restrict(pid, cfg.allow_nested).map_err(|e| fail(e.into()))?;
            write(&go_w, b"g").map_err(|e| fail(BootError::Sys("signal container init", e)))?;
            drop(go_w);
            let mut b = [0u8; 1];
            let n = loop {
                match read(ready_r.as_raw_fd(), &mut b) {
                    Err(Errno::EINTR) => continue,
                    r => break r,
                }
            };
            if n == Ok(1) {
                return Ok(());
            }
            let status = match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, c)) => format!("exit status {c}"),
                Ok(WaitStatus::Signaled(_, s, _)) => format!("killed by {s}"),
                Ok(s) => format!("{s:?}"),
                Err(e) => format!("wait: {e}"),
            };
            Err(BootError::Init(status))
        }
    }
}

/// What the init needs to know about its own process image, and the
/// session policy compiled before the clone.
struct Me {
    argv_area: Option<wsys::proc_::ArgvArea>,
    text: wsys::proc_::FileText,
    policy: crate::harden::Policy,
}

/// Uninhabited: `init` only returns on error.
pub enum Never {}

fn init(
    cfg: &Config,
    lib: &Path,
    root: &Path,
    me: &Me,
    listener: OwnedFd,
    go_r: OwnedFd,
    ready_w: OwnedFd,
) -> Result<Never, BootError> {
    // Die with the invoker until we report ready.
    wsys::proc_::set_pdeathsig(Some(Signal::SIGKILL)).map_err(sys("prctl(PDEATHSIG)"))?;
    let mut b = [0u8; 1];
    if read(go_r.as_raw_fd(), &mut b) != Ok(1) {
        return Err(BootError::Init("the invoking wshd went away".into()));
    }
    drop(go_r);

    if let Some(h) = cfg.hostname.as_deref() {
        crate::setup::set_hostname(h)?;
    }
    // Nothing mounted from here on propagates anywhere, and no later host
    // mount reaches the container.
    wsys::mount::make_rprivate().map_err(sys("make / rprivate"))?;
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root_s = root.to_string_lossy();
    if !wsys::mount::mount_points(&mountinfo)
        .iter()
        .any(|m| *m == root_s)
    {
        wsys::mount::bind_self(root).map_err(sys("bind mount --root onto itself"))?;
    }
    crate::setup::apply(root, cfg.allow_nested, &cfg.binds)?;

    hook::run(&lib.join("hook-child-before-pivot.sh"), &[])?;
    let after = hook::load(&lib.join("hook-child-after-pivot.sh"))?;

    // Host /dev/null for our own stdin/stdout (sessions never see it).
    let null: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| BootError::Dir("/dev/null".into(), e.to_string()))?
        .into();

    // pivot_root(".", "."): the old root ends up stacked on the new one and
    // is detached at once, so the root filesystem needs no /mnt of its own.
    chdir(root).map_err(sys("chdir --root"))?;
    wsys::mount::pivot_root(Path::new("."), Path::new(".")).map_err(sys("pivot_root"))?;
    wsys::mount::detach(Path::new(".")).map_err(sys("unmount old root"))?;
    chdir("/").map_err(sys("chdir /"))?;
    let mi = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| BootError::Dir("/proc/self/mountinfo".into(), e.to_string()))?;
    let roots = wsys::mount::mount_points(&mi)
        .iter()
        .filter(|m| *m == "/")
        .count();
    if roots != 1 {
        return Err(BootError::OldRoot(roots));
    }
    if let Some(h) = after {
        hook::run_loaded(h)?;
    }

    setsid().map_err(sys("setsid"))?;
    if let Some(t) = cfg.title.as_deref() {
        if let Some(a) = me.argv_area {
            // SAFETY: single-threaded (wshd starts no thread); the area was
            // found before the clone, whose child has the same address space.
            #[allow(unsafe_code)]
            unsafe {
                a.set_title(t)
            };
        }
        let _ = wsys::proc_::set_name(t);
    }
    // Keep container processes (root included, without ptrace rights over
    // us as a non-dumpable process) away from our memory and fds.
    let _ = wsys::proc_::set_dumpable(false);

    dup2(null.as_raw_fd(), 0).map_err(sys("dup2 stdin"))?;
    dup2(null.as_raw_fd(), 1).map_err(sys("dup2 stdout"))?;

    let limits = crate::server::raise_nofile();

    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(sys("block SIGCHLD"))?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(sys("signalfd"))?;

    // Boot is done: from here on the init and every session it forks run
    // under the seccomp filter, with at most the root sessions' capability
    // set as bounding set (see crate::harden). Before "ready", so a failure
    // fails the start.
    me.policy.seal_init()?;
    wsys::proc_::set_pdeathsig(None).map_err(sys("prctl(PDEATHSIG)"))?;
    // Last use of the invoker's stderr: the running init keeps no host file.
    dup2(null.as_raw_fd(), 2).map_err(sys("dup2 stderr"))?;
    drop(null);
    write(&ready_w, b"r").map_err(sys("report ready"))?;
    drop(ready_w);
    // Boot-only code pages need not stay resident for the container's life.
    // SAFETY: wshd never unmaps or maps over its program text.
    #[allow(unsafe_code)]
    unsafe {
        me.text.shed()
    };
    crate::server::serve(listener, sfd, limits, &me.policy, &me.text)
}
