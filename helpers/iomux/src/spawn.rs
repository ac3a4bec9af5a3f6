//! iomux-spawn: run a job, buffer its stdout/stderr in rings, serve linkers.
//!
//! `iomux-spawn [--ring-size BYTES] [--linger SECS] [--hold SECS] [--] DIR CMD [ARGS...]`
//!
//! * Creates `DIR` if its parent exists (it is removed again on a startup
//!   error), then `DIR/stdout.sock`, `DIR/stderr.sock`, `DIR/status.sock`
//!   (a stale socket left by a dead spawner is replaced; a live one is an
//!   error). CMD is resolved like `execvp` before anything is created.
//! * Calls `setsid()`, forks the child held before exec (see
//!   `wsys::spawn`), prints `child_pid=N`; once a linker has sent HELLO on
//!   all three sockets (or the hold time has passed, default 30 s,
//!   `--hold`/`IOMUX_HOLD`) it lets the child exec, prints `child active`,
//!   and points its own fds 0, 1, 2 at /dev/null. The child inherits fd 0
//!   (the caller's stdin); its fds 1 and 2 are pipes to iomux-spawn.
//! * Each stream goes through a ring of `--ring-size`/`IOMUX_RING_SIZE`
//!   bytes (default 256 KiB, 4 KiB..=256 MiB). See `proto` for the linker
//!   protocol and flow control.
//! * When the child is reaped, the bytes already queued in its pipes
//!   (FIONREAD at that moment) are read, then the streams end; output that
//!   processes left behind by the job write later is not collected. Then
//!   `DIR/exit_status` is written (see `files`) and every status linker,
//!   present or late, gets STATUS after its streams' final bytes.
//! * Exit: once the job has ended, a linker has received STATUS, and each
//!   stream has been written out in full by a linker (it ACKed the final
//!   offset), iomux-spawn exits as soon as every connection is done. So a
//!   caller that waits for iomux-spawn, as warden's C contract allows,
//!   waits for the job and its linker only.
//!   Linger: until then (no linker has STATUS, or the one that got it was
//!   stopped before it wrote everything out), the output is kept for a
//!   late linker until no linker is connected and `--linger`/`IOMUX_LINGER`
//!   seconds (default 30) have passed since the later of the job's end and
//!   the last linker leaving; at once when `DIR` has been removed. With no
//!   linker ever, it lives at most hold + the job's run time + linger. On
//!   exit it removes its sockets; `exit_status` stays.
//! * SIGTERM or SIGINT: SIGKILL to the job, remove the sockets, exit 0
//!   at once (linkers then report that iomux-spawn went away). SIGKILL to
//!   iomux-spawn has the same effect on the job, minus the clean-up.
//! * Keeps running when its parent dies (SIGPIPE is ignored, stdio is
//!   /dev/null after `child active`). The child gets SIGKILL if iomux-spawn
//!   dies (PR_SET_PDEATHSIG), as with the C original.
//! * At most [`MAX_CONNS`] connections at once; more are closed at once. A
//!   connection that sends no HELLO within [`HELLO_TIMEOUT`] is closed.
//!
//! Single-threaded: one `poll(2)` loop over the listeners, the two pipes, a
//! signalfd for SIGCHLD, an inotify watch on `DIR`, and the connections.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{AccessFlags, Pid};

use wsys::args::{Arg, Error as ArgError, Parsed, Parser};
use wsys::event::{bytes_readable, poll, pollfd, PollFd};
use wsys::spawn::{spawn_held, HeldChild, HeldSpec};

use crate::files::{exit_status_text, write_atomic};
use crate::proto::{self, Exit, Status};
use crate::ring::Ring;

/// Default ring size per stream.
pub const DEFAULT_RING: usize = 256 * 1024;
/// Smallest and largest accepted ring size.
pub const RING_RANGE: (usize, usize) = (4096, 256 << 20);
/// Default linger after the job's end / the last linker, while no linker
/// has received the status.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(30);
/// Default longest hold waiting for the first linker.
pub const DEFAULT_HOLD: Duration = Duration::from_secs(30);
/// Most connections served at once (all three sockets together).
pub const MAX_CONNS: usize = 96;
/// A connection must send HELLO within this time.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `sun_path` (without the NUL).
const SUN_PATH_MAX: usize = 107;
/// Pipe size asked for on the job's stdout/stderr pipes and data pipes.
const PIPE_SIZE: usize = 1 << 20;

/// Grows a pipe to [`PIPE_SIZE`] (`F_SETPIPE_SZ`; the kernel may refuse).
fn set_pipe_size(fd: std::os::fd::BorrowedFd<'_>) -> nix::Result<i32> {
    nix::fcntl::fcntl(fd.as_raw_fd(), FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32))
}

/// Errors before the job runs (each is one line for the user).
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("{0}")]
    BadFlag(String),
    #[error("{path}: {why}")]
    Dir { path: PathBuf, why: String },
    #[error("socket path too long ({len} bytes, at most {SUN_PATH_MAX}): {path}")]
    PathTooLong { path: PathBuf, len: usize },
    #[error("{path}: served by a running iomux-spawn")]
    InUse { path: PathBuf },
    #[error("command not found: {0}")]
    NotFound(String),
    #[error("{what}: {err}")]
    Sys { what: String, err: io::Error },
}

fn sys(what: impl Into<String>) -> impl FnOnce(io::Error) -> SpawnError {
    let what = what.into();
    move |err| SpawnError::Sys { what, err }
}

fn sysn(what: &str) -> impl FnOnce(nix::Error) -> SpawnError + '_ {
    move |e| SpawnError::Sys {
        what: what.to_string(),
        err: io::Error::from(e),
    }
}

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub dir: PathBuf,
    pub argv: Vec<OsString>,
    pub ring_size: usize,
    pub linger: Duration,
    pub hold: Duration,
}

/// The command line, for usage errors and `--help` (`wsys::args`).
pub const CLI: wsys::args::Cli = wsys::args::Cli {
    prog: "iomux-spawn",
    synopsis: "[--ring-size BYTES] [--linger SECS] [--hold SECS] [--] DIR CMD [ARGS...]",
    about: "iomux-spawn runs CMD as a job whose stdout and stderr are kept in rings and\n\
            served on DIR/{stdout,stderr,status}.sock to any number of `iomux-link DIR`\n\
            readers, so the job's output survives its readers. It prints child_pid=N,\n\
            waits for the first linker (or --hold), then `child active`.",
    options: &[
        (
            "--ring-size BYTES",
            "ring per stream (default 262144; IOMUX_RING_SIZE)",
        ),
        (
            "--linger SECS",
            "keep the output after the job's end for a late linker,\nuntil one has the status (default 30; IOMUX_LINGER)",
        ),
        (
            "--hold SECS",
            "longest wait for the first linker (default 30; IOMUX_HOLD)",
        ),
        ("DIR", "the job directory (created if its parent exists)"),
        ("CMD [ARGS...]", "the job, resolved like execvp"),
    ],
    exit_codes: &[
        (
            "0",
            "the job ended and was served (its status is in DIR/exit_status),\nor SIGTERM/SIGINT",
        ),
        ("1", "cannot start (message on stderr)"),
        ("2", "usage error"),
    ],
};

/// Parses the arguments after argv[0]; `env` supplies `IOMUX_*` defaults.
/// Options come before DIR; CMD and its arguments are taken unchanged.
pub fn parse_args(
    p: &mut Parser,
    env: impl Fn(&str) -> Option<OsString>,
) -> Result<Parsed<Config>, ArgError> {
    let mut ring_size = num_opt("IOMUX_RING_SIZE", env("IOMUX_RING_SIZE"))?;
    let mut linger = num_opt("IOMUX_LINGER", env("IOMUX_LINGER"))?;
    let mut hold = num_opt("IOMUX_HOLD", env("IOMUX_HOLD"))?;
    let mut operands = Vec::new();
    while let Some(arg) = p.next()? {
        let (slot, name) = match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help),
            Arg::Long("version") => return Ok(Parsed::Version),
            Arg::Long("ring-size") => (&mut ring_size, "--ring-size"),
            Arg::Long("linger") => (&mut linger, "--linger"),
            Arg::Long("hold") => (&mut hold, "--hold"),
            Arg::Value(dir) => {
                operands.push(dir);
                operands.extend(wsys::args::rest(p));
                break;
            }
            a => return Err(a.unexpected()),
        };
        *slot = num_opt(name, Some(p.value()?))?;
    }
    if operands.len() < 2 || operands[0].is_empty() || operands[1].is_empty() {
        return Err("DIR and CMD are required".into());
    }
    let ring_size = ring_size.unwrap_or(DEFAULT_RING as u64);
    if ring_size < RING_RANGE.0 as u64 || ring_size > RING_RANGE.1 as u64 {
        return Err(format!(
            "ring size {ring_size} outside {}..={}",
            RING_RANGE.0, RING_RANGE.1
        )
        .into());
    }
    let dir = PathBuf::from(operands.remove(0));
    Ok(Parsed::Run(Config {
        dir,
        argv: operands,
        ring_size: ring_size as usize,
        linger: linger.map(Duration::from_secs).unwrap_or(DEFAULT_LINGER),
        hold: hold.map(Duration::from_secs).unwrap_or(DEFAULT_HOLD),
    }))
}

fn num_opt(name: &str, v: Option<OsString>) -> Result<Option<u64>, ArgError> {
    v.map(|v| wsys::args::uint(name, &v, 1 << 40)).transpose()
}

/// Resolves CMD like `execvp`: a name with `/` is used as is, else the
/// first executable regular file of that name in `$PATH`.
pub fn resolve_command(cmd: &OsStr, path_var: Option<&OsStr>) -> Result<PathBuf, SpawnError> {
    let ok = |p: &Path| {
        p.metadata().map(|m| m.is_file()).unwrap_or(false)
            && nix::unistd::access(p, AccessFlags::X_OK).is_ok()
    };
    let not_found = || SpawnError::NotFound(cmd.to_string_lossy().into_owned());
    if cmd.as_bytes().contains(&b'/') {
        let p = PathBuf::from(cmd);
        return if ok(&p) { Ok(p) } else { Err(not_found()) };
    }
    let path_var = path_var.unwrap_or(OsStr::new("/usr/local/bin:/usr/bin:/bin"));
    for d in path_var.as_bytes().split(|&c| c == b':') {
        let d = if d.is_empty() { b"." as &[u8] } else { d };
        let p = Path::new(OsStr::from_bytes(d)).join(cmd);
        if ok(&p) {
            return Ok(p);
        }
    }
    Err(not_found())
}

/// Makes sure fds 0, 1 and 2 are open (on /dev/null if they were closed),
/// so pipes and sockets never land on them.
pub fn ensure_stdio() {
    for fd in 0..3 {
        if nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).is_err() {
            if let Ok(f) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                let raw = f.as_raw_fd();
                if raw != fd {
                    let _ = nix::unistd::dup2(raw, fd);
                } else {
                    std::mem::forget(f);
                }
            }
        }
    }
}

/// Things created at startup, undone on a startup error.
struct Created {
    dir: Option<PathBuf>,
    socks: Vec<PathBuf>,
    armed: bool,
}

impl Drop for Created {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        for s in &self.socks {
            let _ = std::fs::remove_file(s);
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir(d);
        }
    }
}

fn prepare_dir(dir: &Path, created: &mut Created) -> Result<(), SpawnError> {
    let derr = |why: String| SpawnError::Dir {
        path: dir.to_path_buf(),
        why,
    };
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(derr("not a directory".into())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir(dir).map_err(|e| derr(format!("cannot create: {e}")))?;
            created.dir = Some(dir.to_path_buf());
        }
        Err(e) => return Err(derr(e.to_string())),
    }
    nix::unistd::access(dir, AccessFlags::W_OK | AccessFlags::X_OK)
        .map_err(|e| derr(format!("not writable: {}", io::Error::from(e))))?;
    Ok(())
}

fn listen(path: &Path, created: &mut Created) -> Result<UnixListener, SpawnError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if UnixStream::connect(path).is_ok() {
                return Err(SpawnError::InUse {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(sys(format!("remove {}", path.display())))?;
        }
        Ok(_) => {
            return Err(SpawnError::Dir {
                path: path.to_path_buf(),
                why: "exists and is not a socket".into(),
            })
        }
        Err(_) => {}
    }
    let l = UnixListener::bind(path).map_err(sys(format!("bind {}", path.display())))?;
    created.socks.push(path.to_path_buf());
    l.set_nonblocking(true)
        .map_err(sys(format!("nonblock {}", path.display())))?;
    Ok(l)
}

/// The three kinds of connection, also used as indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Stdout = 0,
    Stderr = 1,
    Status = 2,
}

const KINDS: [Kind; 3] = [Kind::Stdout, Kind::Stderr, Kind::Status];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Hello,
    Active,
    Done,
}

struct Conn {
    sock: UnixStream,
    kind: Kind,
    state: ConnState,
    inbuf: [u8; proto::HELLO_LEN],
    inlen: usize,
    ctl: [u8; proto::STATUS_LEN],
    ctl_len: usize,
    ctl_pos: usize,
    /// Next offset to send (stream connections).
    cursor: u64,
    /// ACKs received: the linker has written everything before `acked()`.
    acks: proto::AckReader,
    accepted: Instant,
    /// Stream connections: the write end of the data pipe whose read end
    /// went to the linker with HEADER.
    data: Option<File>,
}

struct Stream {
    ring: Ring,
    pipe: Option<File>,
    /// After the child's exit: read until the ring's end reaches this.
    target: Option<u64>,
    /// Final end of the stream, known once the child exited and the pipe
    /// is done.
    fin: Option<u64>,
    /// Bytes overwritten in the ring before any linker got them.
    dropped: u64,
}

/// What one poll entry stands for.
#[derive(Clone, Copy)]
enum Tag {
    Signal,
    Inotify,
    Listener(usize),
    Pipe(usize),
    Conn(usize),
    Data(usize),
}

/// A spawned job being served.
pub struct Spawner {
    cfg: Config,
    listeners: [UnixListener; 3],
    sock_paths: [PathBuf; 3],
    /// (dev, ino) of each socket file as bound.
    sock_ids: [(u64, u64); 3],
    sigfd: SignalFd,
    inotify: Option<Inotify>,
    child: HeldChild,
    streams: [Stream; 2],
    conns: Vec<Conn>,
    attached_once: [bool; 3],
    exit: Option<Exit>,
    status_at: Option<Instant>,
    /// A linker has been sent the whole STATUS.
    status_sent: bool,
    /// Per stream: a linker ACKed its final offset (wrote it all out).
    out_delivered: [bool; 2],
    last_left: Option<Instant>,
    hold_until: Instant,
    dir_gone: bool,
    announced: bool,
}

impl Spawner {
    /// Startup: everything up to and including `child_pid=N`. On error,
    /// nothing created is left behind.
    ///
    /// # Safety
    /// The calling process must have exactly one thread: this forks the job
    /// ([`wsys::spawn::spawn_held`]) and edits the environment.
    #[allow(unsafe_code)]
    pub unsafe fn start(cfg: Config) -> Result<Spawner, SpawnError> {
        let cmd = resolve_command(&cfg.argv[0], std::env::var_os("PATH").as_deref())?;
        let sock_paths =
            [proto::STDOUT_SOCK, proto::STDERR_SOCK, proto::STATUS_SOCK].map(|n| cfg.dir.join(n));
        for p in &sock_paths {
            let len = p.as_os_str().len();
            if len > SUN_PATH_MAX {
                return Err(SpawnError::PathTooLong {
                    path: p.clone(),
                    len,
                });
            }
        }
        let mut created = Created {
            dir: None,
            socks: Vec::new(),
            armed: true,
        };
        prepare_dir(&cfg.dir, &mut created)?;
        let l0 = listen(&sock_paths[0], &mut created)?;
        let l1 = listen(&sock_paths[1], &mut created)?;
        let l2 = listen(&sock_paths[2], &mut created)?;
        let mut sock_ids = [(0, 0); 3];
        for (id, p) in sock_ids.iter_mut().zip(&sock_paths) {
            let m = std::fs::symlink_metadata(p).map_err(sys(format!("stat {}", p.display())))?;
            *id = (m.dev(), m.ino());
        }
        match std::fs::remove_file(cfg.dir.join("exit_status")) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(sys("remove stale exit_status")(e))
            }
            _ => {}
        }

        // Our own session: signals to the caller's process group miss us.
        // EPERM means we already lead a group (then it is ours).
        let _ = nix::unistd::setsid();

        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.add(Signal::SIGTERM);
        mask.add(Signal::SIGINT);
        mask.thread_block().map_err(sysn("block signals"))?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(sysn("signalfd"))?;

        let (out_r, out_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sysn("pipe"))?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(sysn("pipe"))?;
        for r in [&out_r, &err_r] {
            set_nonblock(r).map_err(sys("pipe nonblock"))?;
            let _ = set_pipe_size(r.as_fd());
        }

        // The child must not see our settings in its environment.
        for k in ["IOMUX_RING_SIZE", "IOMUX_LINGER", "IOMUX_HOLD"] {
            std::env::remove_var(k);
        }
        let path = CString::new(cmd.as_os_str().as_bytes())
            .map_err(|_| SpawnError::NotFound(cmd.to_string_lossy().into_owned()))?;
        let argv = cfg
            .argv
            .iter()
            .map(|a| CString::new(a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| SpawnError::BadFlag("argument contains a NUL byte".into()))?;
        let spec = HeldSpec {
            path: &path,
            argv: &argv,
            stdout: out_w.as_fd(),
            stderr: err_w.as_fd(),
            die_with_parent: true,
        };
        // SAFETY: the process is single-threaded (this function's contract).
        let child = unsafe { spawn_held(&spec) }.map_err(|e| SpawnError::Sys {
            what: "spawn".into(),
            err: io::Error::other(e.to_string()),
        })?;
        drop(out_w);
        drop(err_w);
        created.armed = false;

        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .ok()
            .filter(|i| {
                i.add_watch(
                    &cfg.dir,
                    AddWatchFlags::IN_DELETE_SELF
                        | AddWatchFlags::IN_MOVE_SELF
                        | AddWatchFlags::IN_DELETE
                        | AddWatchFlags::IN_MOVED_FROM,
                )
                .is_ok()
            });

        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "child_pid={}", child.pid());
        let _ = stdout.flush();
        drop(stdout);

        let mk = |fd: OwnedFd, size| Stream {
            ring: Ring::new(size),
            pipe: Some(File::from(fd)),
            target: None,
            fin: None,
            dropped: 0,
        };
        let hold_until = Instant::now() + cfg.hold;
        Ok(Spawner {
            streams: [mk(out_r, cfg.ring_size), mk(err_r, cfg.ring_size)],
            cfg,
            listeners: [l0, l1, l2],
            sock_paths,
            sock_ids,
            sigfd,
            inotify,
            child,
            conns: Vec::with_capacity(MAX_CONNS),
            attached_once: [false; 3],
            exit: None,
            status_at: None,
            status_sent: false,
            out_delivered: [false; 2],
            last_left: None,
            hold_until,
            dir_gone: false,
            announced: false,
        })
    }

    /// The child's pid.
    pub fn child_pid(&self) -> i32 {
        self.child.pid()
    }

    /// Serves until a linker has the status and every connection is done,
    /// or the linger ends; then removes the sockets.
    pub fn run(mut self) -> io::Result<()> {
        let mut fds: Vec<PollFd> = Vec::with_capacity(8 + MAX_CONNS);
        let mut tags: Vec<Tag> = Vec::with_capacity(8 + MAX_CONNS);
        let mut stopped = false;
        let res = loop {
            let now = Instant::now();
            if self.status_at.is_some() && self.conns.is_empty() {
                let since = self.last_left.max(self.status_at).unwrap_or(now);
                if self.delivered() || self.dir_gone || now >= since + self.cfg.linger {
                    // A linker already queued on a listener is still served.
                    for i in 0..self.listeners.len() {
                        self.accept(i);
                    }
                    if self.conns.is_empty() {
                        break Ok(());
                    }
                }
            }
            fds.clear();
            tags.clear();
            fds.push(pollfd(self.sigfd.as_raw_fd(), libc::POLLIN));
            tags.push(Tag::Signal);
            if let Some(i) = &self.inotify {
                fds.push(pollfd(i.as_fd().as_raw_fd(), libc::POLLIN));
                tags.push(Tag::Inotify);
            }
            for (i, l) in self.listeners.iter().enumerate() {
                fds.push(pollfd(l.as_raw_fd(), libc::POLLIN));
                tags.push(Tag::Listener(i));
            }
            for i in 0..2 {
                if self.streams[i].pipe.is_some() && self.room(i) > 0 {
                    let fd = self.streams[i].pipe.as_ref().map(|p| p.as_raw_fd());
                    fds.push(pollfd(fd.unwrap_or(-1), libc::POLLIN));
                    tags.push(Tag::Pipe(i));
                }
            }
            for (i, c) in self.conns.iter().enumerate() {
                let mut ev = libc::POLLIN;
                let wants = self.wants_write(c);
                match &c.data {
                    Some(d) if wants => {
                        fds.push(pollfd(d.as_raw_fd(), libc::POLLOUT));
                        tags.push(Tag::Data(i));
                    }
                    _ if wants => ev |= libc::POLLOUT,
                    _ => {}
                }
                fds.push(pollfd(c.sock.as_raw_fd(), ev));
                tags.push(Tag::Conn(i));
            }
            let timeout = self.timeout(now);
            match poll(&mut fds, timeout) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(e),
            }
            for (k, pfd) in fds.iter().enumerate() {
                if pfd.revents == 0 {
                    continue;
                }
                match tags[k] {
                    Tag::Signal => {
                        if self.signals() {
                            stopped = true;
                        }
                    }
                    Tag::Inotify => self.check_dir(),
                    Tag::Listener(i) => self.accept(i),
                    Tag::Pipe(i) => self.fill(i),
                    Tag::Conn(i) => self.serve(i, pfd.revents),
                    Tag::Data(i) => self.push(i),
                }
            }
            if stopped {
                break Ok(());
            }
            self.after_events();
        };
        // Remove our sockets, but only where the path still is ours.
        for (p, id) in self.sock_paths.iter().zip(self.sock_ids) {
            if std::fs::symlink_metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == id) {
                let _ = std::fs::remove_file(p);
            }
        }
        res
    }

    /// Bookkeeping after one round of events.
    fn after_events(&mut self) {
        let now = Instant::now();
        // Streams with a target after exit keep reading without poll.
        for i in 0..2 {
            if self.streams[i].target.is_some() && self.room(i) > 0 {
                self.fill(i);
            }
        }
        self.finish_streams();
        let before = self.conns.len();
        self.conns.retain(|c| {
            c.state != ConnState::Done
                && !(c.state == ConnState::Hello && now >= c.accepted + HELLO_TIMEOUT)
        });
        if self.conns.len() < before {
            self.last_left = Some(now);
        }
        if self.child.is_held() && (self.attached_once.iter().all(|&a| a) || now >= self.hold_until)
        {
            // If exec cannot happen the child reports it on its stderr.
            let _ = self.child.release();
        }
        if !self.child.is_held() && !self.announced {
            self.announced = true;
            let mut stdout = io::stdout().lock();
            let _ = stdout.write_all(b"child active\n");
            let _ = stdout.flush();
            drop(stdout);
            detach_stdio();
        }
    }

    /// Poll timeout in ms until the next deadline (-1 = none).
    fn timeout(&self, now: Instant) -> i32 {
        let mut next: Option<Instant> = None;
        let mut at = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        if self.child.is_held() {
            at(self.hold_until);
        }
        for c in &self.conns {
            if c.state == ConnState::Hello {
                at(c.accepted + HELLO_TIMEOUT);
            }
        }
        if self.status_at.is_some() && self.conns.is_empty() {
            let since = self.last_left.max(self.status_at).unwrap_or(now);
            at(since + self.cfg.linger);
        }
        match next {
            None => -1,
            Some(t) => {
                let ms = t.saturating_duration_since(now).as_millis();
                // Round up so we do not spin just before a deadline.
                (ms + 1).min(i32::MAX as u128) as i32
            }
        }
    }

    /// Bytes stream `i` may read now without losing bytes an attached
    /// linker still needs (and not beyond the post-exit target).
    fn room(&self, i: usize) -> usize {
        let s = &self.streams[i];
        let cap = s.ring.cap();
        let needed = self
            .conns
            .iter()
            .filter(|c| c.kind as usize == i && c.state == ConnState::Active)
            .map(|c| c.acks.acked())
            .min();
        let mut room = match needed {
            Some(n) => cap.saturating_sub((s.ring.end() - n) as usize),
            None => cap,
        };
        if let Some(t) = s.target {
            room = room.min((t - s.ring.end()) as usize);
        }
        room
    }

    /// Reads from stream `i`'s pipe into its ring.
    fn fill(&mut self, i: usize) {
        let room = self.room(i);
        if room == 0 {
            return;
        }
        if self.tee_fill(i, room) {
            return;
        }
        let s = &mut self.streams[i];
        let Some(pipe) = s.pipe.as_mut() else {
            return;
        };
        let spare = s.ring.spare(room);
        match pipe.read(spare) {
            Ok(0) => s.pipe = None,
            Ok(n) => {
                s.dropped += s.ring.commit(n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if s.target.is_some() {
                    // Nothing more queued after all.
                    s.pipe = None;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => s.pipe = None,
        }
        if let Some(t) = s.target {
            if s.ring.end() >= t {
                s.pipe = None;
            }
        }
    }

    /// Fast path: with one attached linker that has everything so far, the
    /// new bytes go to its data pipe by `tee` (no copy) and are then read
    /// into the ring. Returns false when the slow path must run.
    fn tee_fill(&mut self, i: usize, room: usize) -> bool {
        let Some(k) = self.sole_caught_up(i) else {
            return false;
        };
        let (Some(pipe), Some(data)) = (self.streams[i].pipe.as_ref(), self.conns[k].data.as_ref())
        else {
            return false;
        };
        let n = match nix::fcntl::tee(
            pipe.as_fd(),
            data.as_fd(),
            room,
            SpliceFFlags::SPLICE_F_NONBLOCK,
        ) {
            Ok(n) if n > 0 => n,
            // Nothing queued, pipe EOF, or the linker's pipe is full: the
            // plain read below decides.
            _ => return false,
        };
        let s = &mut self.streams[i];
        let mut got = 0;
        while got < n {
            let Some(pipe) = s.pipe.as_mut() else { break };
            match pipe.read(s.ring.spare(n - got)) {
                Ok(0) => break,
                Ok(m) => {
                    s.dropped += s.ring.commit(m);
                    got += m;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let c = &mut self.conns[k];
        c.cursor += got as u64;
        if got < n {
            // Cannot happen (the bytes were queued); never let the linker
            // hold bytes the ring does not: drop it.
            c.state = ConnState::Done;
            c.data = None;
        }
        if let Some(t) = s.target {
            if s.ring.end() >= t {
                s.pipe = None;
            }
        }
        true
    }

    /// Once the child has exited: fix each stream's end; then the status.
    fn finish_streams(&mut self) {
        let Some(exit) = self.exit else {
            return;
        };
        for s in &mut self.streams {
            if s.fin.is_none() && s.pipe.is_none() {
                s.fin = Some(s.ring.end());
                s.target = None;
            }
        }
        if self.status_at.is_some() {
            return;
        }
        if let (Some(out), Some(err)) = (self.streams[0].fin, self.streams[1].fin) {
            self.status_at = Some(Instant::now());
            if !self.dir_gone {
                let _ = write_atomic(
                    &self.cfg.dir.join("exit_status"),
                    exit_status_text(exit).as_bytes(),
                );
            }
            let msg = proto::status(&Status {
                exit,
                stdout_end: out,
                stderr_end: err,
            });
            for c in &mut self.conns {
                if c.kind == Kind::Status && c.state == ConnState::Active {
                    set_ctl(c, &msg);
                }
            }
            for i in 0..self.conns.len() {
                self.push(i);
            }
        }
    }

    fn status_msg(&self) -> Option<[u8; proto::STATUS_LEN]> {
        self.status_at?;
        Some(proto::status(&Status {
            exit: self.exit?,
            stdout_end: self.streams[0].fin?,
            stderr_end: self.streams[1].fin?,
        }))
    }

    /// Handles pending signals: SIGCHLD reaps the child; SIGTERM/SIGINT
    /// kill the job and end iomux-spawn (returns true).
    fn signals(&mut self) -> bool {
        let mut stop = false;
        while let Ok(Some(si)) = self.sigfd.read_signal() {
            if si.ssi_signo == Signal::SIGTERM as u32 || si.ssi_signo == Signal::SIGINT as u32 {
                stop = true;
            }
        }
        if stop && self.exit.is_none() {
            let _ = nix::sys::signal::kill(Pid::from_raw(self.child.pid()), Signal::SIGKILL);
        }
        self.reap();
        stop
    }

    fn reap(&mut self) {
        let pid = Pid::from_raw(self.child.pid());
        loop {
            match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, c)) => {
                    self.exit = Some(Exit::Exited(c as u8));
                }
                Ok(WaitStatus::Signaled(_, sig, core)) => {
                    self.exit = Some(Exit::Signaled {
                        sig: sig as i32 as u8,
                        core,
                    });
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
            break;
        }
        if self.exit.is_some() {
            for s in &mut self.streams {
                if let (Some(p), None) = (s.pipe.as_ref(), s.target) {
                    let queued = bytes_readable(p.as_fd()).unwrap_or(0);
                    if queued == 0 {
                        s.pipe = None;
                    } else {
                        s.target = Some(s.ring.end() + queued as u64);
                    }
                }
            }
        }
    }

    /// After an inotify event on DIR: DIR counts as gone when its path no
    /// longer leads to our directory or one of our sockets was removed
    /// (then no linker can attach any more). The bound sockets keep the
    /// directory's inode alive, so IN_DELETE_SELF alone would come late.
    fn check_dir(&mut self) {
        if let Some(i) = &self.inotify {
            while let Ok(evs) = i.read_events() {
                if evs.is_empty() {
                    break;
                }
            }
        }
        let gone = self.sock_paths.iter().any(|p| {
            !std::fs::symlink_metadata(p)
                .map(|m| m.file_type().is_socket())
                .unwrap_or(false)
        });
        if gone {
            self.dir_gone = true;
        }
    }

    fn accept(&mut self, i: usize) {
        loop {
            match self.listeners[i].accept() {
                Ok((sock, _)) => {
                    if self.conns.len() >= MAX_CONNS || sock.set_nonblocking(true).is_err() {
                        continue; // dropped: closed at once
                    }
                    self.conns.push(Conn {
                        sock,
                        kind: KINDS[i],
                        state: ConnState::Hello,
                        inbuf: [0; proto::HELLO_LEN],
                        inlen: 0,
                        ctl: [0; proto::STATUS_LEN],
                        ctl_len: 0,
                        ctl_pos: 0,
                        cursor: 0,
                        acks: proto::AckReader::new(0),
                        accepted: Instant::now(),
                        data: None,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
    }

    fn wants_write(&self, c: &Conn) -> bool {
        if c.state != ConnState::Active {
            return false;
        }
        if c.ctl_pos < c.ctl_len {
            return true;
        }
        match c.kind {
            Kind::Status => false,
            k => c.cursor < self.streams[k as usize].ring.end(),
        }
    }

    fn serve(&mut self, i: usize, revents: i16) {
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            self.read_conn(i);
        }
        if self.conns[i].state == ConnState::Active {
            self.push(i);
        }
    }

    fn read_conn(&mut self, i: usize) {
        let status = self.status_msg();
        let c = &mut self.conns[i];
        match c.state {
            ConnState::Hello => {
                let want = &mut c.inbuf[c.inlen..];
                match c.sock.read(want) {
                    Ok(0) => c.state = ConnState::Done,
                    Ok(n) => c.inlen += n,
                    Err(e) if would_block(&e) => return,
                    Err(_) => c.state = ConnState::Done,
                }
                if c.inlen < proto::HELLO_LEN || c.state == ConnState::Done {
                    return;
                }
                let Ok(offset) = proto::parse_hello(&c.inbuf) else {
                    c.state = ConnState::Done;
                    return;
                };
                match c.kind {
                    Kind::Status => {
                        c.state = ConnState::Active;
                        if let Some(m) = status {
                            set_ctl(c, &m);
                        }
                    }
                    k => {
                        let ring = &self.streams[k as usize].ring;
                        if offset > ring.end() {
                            c.state = ConnState::Done; // refused
                            return;
                        }
                        c.cursor = offset.max(ring.start());
                        c.acks = proto::AckReader::new(c.cursor);
                        match send_header(&c.sock, c.cursor) {
                            Ok(w) => c.data = Some(w),
                            Err(_) => {
                                c.state = ConnState::Done;
                                return;
                            }
                        }
                        c.state = ConnState::Active;
                    }
                }
                self.attached_once[c.kind as usize] = true;
            }
            ConnState::Active => {
                let mut b = [0u8; 64 * proto::ACK_LEN];
                let n = match c.sock.read(&mut b) {
                    Err(e) if would_block(&e) => return,
                    // EOF (the linker left) or an error: drop it.
                    Ok(0) | Err(_) => {
                        c.state = ConnState::Done;
                        return;
                    }
                    Ok(n) => n,
                };
                if c.kind == Kind::Status {
                    c.state = ConnState::Done; // nothing may follow HELLO
                    return;
                }
                if c.acks.feed(&b[..n], c.cursor).is_err() {
                    c.state = ConnState::Done;
                    return;
                }
                self.check_final_ack(i);
            }
            ConnState::Done => {}
        }
    }

    /// Sends what connection `i` can take now: STATUS on a status
    /// connection, ring bytes into a stream connection's data pipe.
    fn push(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.state != ConnState::Active {
            return;
        }
        if c.kind == Kind::Status {
            if c.ctl_pos < c.ctl_len {
                match c.sock.write(&c.ctl[c.ctl_pos..c.ctl_len]) {
                    Ok(n) => c.ctl_pos += n,
                    Err(e) if would_block(&e) => return,
                    Err(_) => c.state = ConnState::Done,
                }
            }
            if c.ctl_len > 0 && c.ctl_pos == c.ctl_len {
                c.state = ConnState::Done;
                self.status_sent = true;
            }
            return;
        }
        let s = &self.streams[c.kind as usize];
        let Some(data) = c.data.as_mut() else {
            // The final bytes are in the data pipe: waiting for the ACK.
            return;
        };
        let (a, b) = s.ring.read_from(c.cursor).unwrap_or((&[], &[]));
        if !a.is_empty() {
            match data.write_vectored(&[IoSlice::new(a), IoSlice::new(b)]) {
                Ok(n) => c.cursor += n as u64,
                Err(e) if would_block(&e) => return,
                Err(_) => {
                    c.state = ConnState::Done;
                    return;
                }
            }
        }
        if s.fin == Some(c.cursor) {
            // Everything sent: EOF on the data pipe ends the stream. The
            // connection stays until the linker ACKs the final offset (it
            // wrote the stream out) or leaves.
            c.data = None;
            self.check_final_ack(i);
        }
    }

    /// Stream connection `i` whose final bytes are in its data pipe: once
    /// its linker ACKed the stream's final offset the stream counts as
    /// delivered and the connection is done.
    fn check_final_ack(&mut self, i: usize) {
        let c = &mut self.conns[i];
        if c.kind == Kind::Status || c.data.is_some() {
            return;
        }
        let k = c.kind as usize;
        if self.streams[k].fin == Some(c.acks.acked()) {
            self.out_delivered[k] = true;
            c.state = ConnState::Done;
        }
    }

    /// The job's status and all of its output reached linkers: a linker
    /// was sent STATUS, and each stream was written out in full by one.
    /// From then on no late linker is waited for. (STATUS alone is not
    /// enough: a linker stopped after it got STATUS but before it wrote
    /// everything out leaves the rest to a linker that resumes from its
    /// cursors.)
    fn delivered(&self) -> bool {
        self.status_sent && self.out_delivered.iter().all(|&d| d)
    }

    /// The only attached linker of stream `i`, if it has been sent every
    /// byte in the ring (then new bytes can go to it by `tee`).
    fn sole_caught_up(&self, i: usize) -> Option<usize> {
        let end = self.streams[i].ring.end();
        let mut found = None;
        for (k, c) in self.conns.iter().enumerate() {
            if c.kind as usize == i && c.state == ConnState::Active {
                if found.is_some() || c.cursor != end || c.data.is_none() {
                    return None;
                }
                found = Some(k);
            }
        }
        found
    }
}

/// Sends HEADER with the read end of a fresh data pipe (SCM_RIGHTS);
/// returns the write end (non-blocking, close-on-exec).
fn send_header(sock: &UnixStream, first: u64) -> io::Result<File> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)?;
    let _ = set_pipe_size(w.as_fd());
    let hdr = proto::header(first);
    let iov = [IoSlice::new(&hdr)];
    let fds = [r.as_raw_fd()];
    let n = sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
        None,
    )?;
    if n != hdr.len() {
        return Err(io::Error::from(io::ErrorKind::WriteZero));
    }
    Ok(File::from(w))
}

fn set_ctl(c: &mut Conn, msg: &[u8]) {
    c.ctl[..msg.len()].copy_from_slice(msg);
    c.ctl_len = msg.len();
    c.ctl_pos = 0;
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn set_nonblock(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg};
    let fl = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// Points fds 0, 1, 2 at /dev/null: the caller's pipes close on its side
/// and a dead caller cannot hurt us.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            let _ = nix::unistd::dup2(null.as_raw_fd(), fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    fn parse(
        v: &[&str],
        env: impl Fn(&str) -> Option<OsString>,
    ) -> Result<Parsed<Config>, ArgError> {
        parse_args(&mut wsys::args::from_args(v), env)
    }

    fn cfg(v: &[&str], env: impl Fn(&str) -> Option<OsString>) -> Config {
        parse(v, env).unwrap().run().expect("not help")
    }

    #[test]
    fn parses_flags_and_env() {
        let c = cfg(&["d", "cmd", "-x", "--linger"], |_| None);
        assert_eq!(c.dir, PathBuf::from("d"));
        assert_eq!(c.argv, args(&["cmd", "-x", "--linger"]));
        assert_eq!(c.ring_size, DEFAULT_RING);
        assert_eq!(c.linger, DEFAULT_LINGER);
        let c = cfg(
            &["--ring-size", "65536", "--linger=2", "--", "d", "cmd"],
            |k| (k == "IOMUX_HOLD").then(|| "5".into()),
        );
        assert_eq!(c.ring_size, 65536);
        assert_eq!(c.linger, Duration::from_secs(2));
        assert_eq!(c.hold, Duration::from_secs(5));
        let c = cfg(&["d", "cmd"], |k| {
            (k == "IOMUX_RING_SIZE").then(|| "8192".into())
        });
        assert_eq!(c.ring_size, 8192);
        assert!(matches!(parse(&["--help"], |_| None), Ok(Parsed::Help)));
    }

    #[test]
    fn rejects_bad_args() {
        for bad in [
            &["d"][..],
            &[],
            &["--ring-size", "10", "d", "c"],
            &["--ring-size", "x", "d", "c"],
            &["--linger"],
            &["--bogus", "d", "c"],
            &["", "c"],
        ] {
            assert!(parse(bad, |_| None).is_err(), "{bad:?}");
        }
        assert!(parse(&["d", "c"], |_| Some("nope".into())).is_err());
    }

    #[test]
    fn resolves_commands() {
        assert_eq!(
            resolve_command(OsStr::new("sh"), Some(OsStr::new("/nonexistent:/bin"))).unwrap(),
            PathBuf::from("/bin/sh")
        );
        assert!(resolve_command(OsStr::new("/bin/sh"), None).is_ok());
        assert!(resolve_command(OsStr::new("no-such-cmd-xyz"), None).is_err());
        assert!(resolve_command(OsStr::new("/etc/passwd"), None).is_err());
        assert!(resolve_command(OsStr::new("/bin"), None).is_err());
    }
}
