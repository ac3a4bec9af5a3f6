//! iomux-link: copy a job's stdout and stderr to our own, exit with its status.
//!
//! `iomux-link [-w CURSORS] [--wait MS] DIR`
//!
//! Connects to `DIR/{stdout,stderr,status}.sock` (see `proto`), starting each
//! stream at the offset saved in CURSORS (see `files`; 0 without `-w` or
//! when the file does not exist). Bytes lost to ring overflow before this
//! link are reported on stderr as one line. CURSORS is written atomically
//! when iomux-link ends for any reason except SIGKILL: the offsets of the
//! next byte not yet written to our stdout / stderr, so a later
//! `iomux-link -w CURSORS DIR` continues exactly there.
//!
//! `--wait MS`: a socket that does not exist yet, or has no listener yet, is
//! tried again (every 200 us) for up to MS milliseconds (at most 60000), so
//! a caller can start iomux-link together with iomux-spawn instead of
//! waiting for its `child_pid=` line (the controller does: 0.5-1 ms less
//! per job). Without it, or once MS have passed, that is exit 255.
//!
//! Exit status:
//! * the job's: its exit code, or 128+N when a signal N killed it;
//! * 128+N when we got SIGTERM/SIGINT/SIGHUP (N): cursors saved, job untouched;
//! * 141 when our stdout or stderr is closed (EPIPE): cursors saved, job
//!   untouched;
//! * 2 on a usage error (see `wsys::args`);
//! * 255 with a message on stderr: cannot attach (no such
//!   socket, nobody listening, cursor refused), iomux-spawn went away before
//!   the status, or a protocol error.
//!
//! Signals are blocked and read through a signalfd, and our outputs are
//! written without blocking (pipes, FIFOs and ttys are reopened through
//! /proc/self/fd with O_NONBLOCK, sockets use MSG_DONTWAIT; regular files
//! never block for long), so SIGTERM is seen even while our reader stalls.
//! Bytes go from the DATA pipe (see `proto`) to our output with `splice(2)`
//! where the output takes it (pipes, files, /dev/null), else through a
//! 64 KiB buffer (sockets, ttys). After every step the written offset is
//! ACKed to iomux-spawn.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::fcntl::SpliceFFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::MsgFlags;
use nix::sys::stat::{fstat, SFlag};

use wsys::args::{Arg, Error as ArgError, Parsed, Parser};
use wsys::event::{bytes_readable, poll, pollfd, PollFd};

use crate::files::{cursors_text, read_cursors, write_atomic, Cursors};
use crate::proto;

/// Exit code for "could not attach" and other internal errors.
pub const EXIT_INTERNAL: i32 = 255;
/// Exit code when our own output is closed.
pub const EXIT_EPIPE: i32 = 141;
/// Buffer per stream (copy mode).
const BUF: usize = 64 * 1024;
/// Longest wait for HEADER while attaching.
const ATTACH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Errors that end iomux-link with [`EXIT_INTERNAL`].
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    File(#[from] crate::files::FileError),
    #[error("cannot attach to {path}: {err}")]
    Attach { path: PathBuf, err: io::Error },
    #[error("{path}: iomux-spawn closed the connection without a header (cursor {offset} beyond the stream's end, or too many linkers)")]
    Refused { path: PathBuf, offset: u64 },
    #[error("{0}: protocol error")]
    Protocol(PathBuf),
    #[error("iomux-spawn went away before the job's exit status")]
    Gone,
    #[error("{name} ended at byte {got}, but the job wrote {want}")]
    Truncated {
        name: &'static str,
        got: u64,
        want: u64,
    },
    #[error("{what}: {err}")]
    Sys { what: &'static str, err: io::Error },
}

/// Parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    pub cursors: Option<PathBuf>,
    pub dir: PathBuf,
    /// `--wait MS`: how long to retry connecting to sockets not there yet.
    pub wait: std::time::Duration,
}

/// Most `--wait` accepts, in milliseconds.
pub const MAX_WAIT_MS: u64 = 60_000;

/// The command line, for usage errors and `--help` (`wsys::args`).
pub const CLI: wsys::args::Cli = wsys::args::Cli {
    prog: "iomux-link",
    synopsis: "[-w CURSORS] [--wait MS] DIR",
    about: "iomux-link attaches to the job that `iomux-spawn DIR CMD` runs, copies its\n\
            stdout and stderr to its own and exits with the job's status. Any number\n\
            of links may come and go while the job runs; none loses output.",
    options: &[
        (
            "-w CURSORS",
            "resume from, and save, the stream offsets in this file",
        ),
        (
            "--wait MS",
            "retry sockets not there yet for up to MS ms (start with iomux-spawn)",
        ),
        ("DIR", "the job directory given to iomux-spawn"),
    ],
    exit_codes: &[
        ("N", "the job's exit code, or 128+N when signal N killed it"),
        (
            "128+N",
            "iomux-link got SIGTERM/SIGINT/SIGHUP (N); cursors saved",
        ),
        ("141", "our stdout or stderr was closed; cursors saved"),
        ("2", "usage error"),
        (
            "255",
            "cannot attach, iomux-spawn went away, or a protocol error",
        ),
    ],
};

/// Parses the arguments after argv[0]: `[-w CURSORS] [--wait MS] DIR` (also
/// `-wCURSORS`, `--wait=MS`).
pub fn parse_args(p: &mut Parser) -> Result<Parsed<LinkConfig>, ArgError> {
    let mut cursors = None;
    let mut dir = None;
    let mut wait = 0u64;
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help),
            Arg::Long("version") => return Ok(Parsed::Version),
            Arg::Short('w') => cursors = Some(wsys::args::nonempty(p, "-w")?.into()),
            Arg::Long("wait") => {
                let v = wsys::args::nonempty(p, "--wait")?;
                wait = wsys::args::uint("--wait", &v, MAX_WAIT_MS)?;
            }
            Arg::Value(d) if dir.is_none() && !d.is_empty() => dir = Some(PathBuf::from(d)),
            a => return Err(a.unexpected()),
        }
    }
    let dir = dir.ok_or("DIR is required")?;
    Ok(Parsed::Run(LinkConfig {
        cursors,
        dir,
        wait: std::time::Duration::from_millis(wait),
    }))
}

/// Where our copy of one stream goes.
enum Out {
    /// Our own non-blocking open file description of the same pipe/tty.
    Reopened(File),
    /// A socket: `send(MSG_DONTWAIT)` on the raw fd.
    Socket(RawFd),
    /// Anything else (regular file): plain blocking write on a dup.
    Plain(File),
}

impl Out {
    fn new(fd: RawFd) -> Out {
        let kind = fstat(fd).map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT);
        match kind {
            Ok(k) if k == SFlag::S_IFSOCK => Out::Socket(fd),
            Ok(k) if k == SFlag::S_IFIFO || k == SFlag::S_IFCHR => {
                use std::os::unix::fs::OpenOptionsExt;
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                    .open(format!("/proc/self/fd/{fd}"))
                {
                    Ok(f) => Out::Reopened(f),
                    Err(_) => Out::plain(fd),
                }
            }
            _ => Out::plain(fd),
        }
    }

    fn plain(fd: RawFd) -> Out {
        let h = if fd == 1 {
            io::stdout().as_fd().try_clone_to_owned()
        } else {
            io::stderr().as_fd().try_clone_to_owned()
        };
        match h {
            Ok(h) => Out::Plain(File::from(h)),
            // Cannot even dup: writes will fail like on a closed fd.
            Err(_) => Out::Socket(fd),
        }
    }

    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Out::Reopened(f) => f.write(b),
            Out::Socket(fd) => {
                nix::sys::socket::send(*fd, b, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL)
                    .map_err(io::Error::from)
            }
            Out::Plain(f) => f.write(b),
        }
    }

    /// The fd to splice into, when splicing is possible at all.
    fn splice_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        match self {
            Out::Reopened(f) | Out::Plain(f) => Some(f.as_fd()),
            Out::Socket(_) => None,
        }
    }

    /// The fd to poll for POLLOUT; `None` when writes never wait long.
    fn poll_fd(&self) -> Option<RawFd> {
        match self {
            Out::Reopened(f) => Some(f.as_raw_fd()),
            Out::Socket(fd) => Some(*fd),
            Out::Plain(_) => None,
        }
    }
}

/// How a stream's bytes get from the data pipe to our output.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `splice(2)` pipe -> output, no copy through our memory.
    Splice,
    /// read into `buf`, write out (sockets, ttys).
    Copy,
}

/// Most bytes moved per splice call.
const SPLICE_MAX: usize = 1 << 20;

struct Stream {
    name: &'static str,
    sock: UnixStream,
    /// Read end of the data pipe (non-blocking), from HEADER.
    data: File,
    out: Out,
    mode: Mode,
    buf: Box<[u8]>,
    lo: usize,
    hi: usize,
    /// Offset of the next byte not yet written to our output.
    cursor: u64,
    eof: bool,
    /// Splice mode: the last would-block was our output being full.
    out_full: bool,
    /// Pending ACK bytes (`ack[ack_pos..]` not sent yet).
    ack: [u8; proto::ACK_LEN],
    ack_pos: usize,
    /// The cursor value the last queued ACK carries.
    ack_val: u64,
}

impl Stream {
    /// Everything written out, and the ACK of it sent (iomux-spawn keeps
    /// the output for a resuming linker until some linker ACKed its end).
    fn drained(&self) -> bool {
        self.eof
            && self.lo == self.hi
            && self.ack_pos == proto::ACK_LEN
            && self.ack_val == self.cursor
    }

    /// Sends (what is left of) an ACK for the current cursor.
    fn flush_ack(&mut self) {
        if self.ack_pos == proto::ACK_LEN && self.ack_val != self.cursor {
            self.ack = proto::ack(self.cursor);
            self.ack_val = self.cursor;
            self.ack_pos = 0;
        }
        while self.ack_pos < proto::ACK_LEN {
            match self.sock.write(&self.ack[self.ack_pos..]) {
                Ok(n) => self.ack_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The spawner closed (the stream is complete, or it is
                // gone: the data pipe and the status tell which).
                Err(_) => {
                    self.ack_pos = proto::ACK_LEN;
                    self.ack_val = self.cursor;
                }
            }
        }
    }

    /// Moves what it can from the data pipe to the output.
    fn step(&mut self) -> Result<(), End> {
        if self.mode == Mode::Splice {
            self.splice()?;
        }
        if self.mode == Mode::Copy {
            if !self.eof && self.lo == self.hi {
                self.lo = 0;
                self.hi = 0;
                match self.data.read(&mut self.buf) {
                    Ok(0) => self.eof = true,
                    Ok(n) => self.hi = n,
                    Err(e) if would_block(&e) => {}
                    Err(_) => self.eof = true,
                }
            }
            self.drain()?;
        }
        self.flush_ack();
        Ok(())
    }

    fn splice(&mut self) -> Result<(), End> {
        let Some(out) = self.out.splice_fd() else {
            self.mode = Mode::Copy;
            return Ok(());
        };
        self.out_full = false;
        // A bounded number of rounds, so one busy stream cannot starve the
        // other or the signalfd.
        for _ in 0..16 {
            if self.eof {
                break;
            }
            let moved = nix::fcntl::splice(
                self.data.as_fd(),
                None,
                out,
                None,
                SPLICE_MAX,
                SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK,
            );
            match moved.map_err(io::Error::from) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.cursor += n as u64;
                    if n < SPLICE_MAX {
                        // Most likely the pipe is drained: poll says when
                        // more comes, instead of a splice that fails with
                        // EAGAIN and a FIONREAD to tell which side blocked
                        // (two syscalls per round of a 1 GiB stream, 40% of
                        // the linker's). If the output was what filled up,
                        // the next round finds that out.
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Either side may be the one that would block.
                    self.out_full = bytes_readable(self.data.as_fd()).unwrap_or(0) > 0;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Err(End::Epipe),
                // The output cannot take splice (a tty, ...): copy instead.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.mode = Mode::Copy;
                    break;
                }
                Err(err) => {
                    return Err(End::Error(LinkError::Sys {
                        what: "splice",
                        err,
                    }))
                }
            }
        }
        Ok(())
    }

    /// Copy mode: writes buffered bytes out.
    fn drain(&mut self) -> Result<(), End> {
        while self.lo < self.hi {
            match self.out.write(&self.buf[self.lo..self.hi]) {
                Ok(0) => return Err(End::Epipe),
                Ok(n) => {
                    self.lo += n;
                    self.cursor += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Err(End::Epipe),
                Err(err) => {
                    return Err(End::Error(LinkError::Sys {
                        what: if self.name == "stdout" {
                            "write stdout"
                        } else {
                            "write stderr"
                        },
                        err,
                    }))
                }
            }
        }
        if self.lo == self.hi {
            self.lo = 0;
            self.hi = 0;
        }
        Ok(())
    }

    /// The poll entries this stream needs now: (fd, events).
    fn interest(&self) -> [Option<(RawFd, i16)>; 2] {
        let mut v = [None, None];
        if self.ack_pos < proto::ACK_LEN {
            v[0] = Some((self.sock.as_raw_fd(), libc::POLLOUT));
        }
        let out_wait = match self.mode {
            Mode::Splice => !self.eof && self.out_full,
            Mode::Copy => self.lo < self.hi,
        };
        if out_wait {
            // Plain outputs never make us wait: poll the data pipe instead
            // (the loop retries at once).
            v[1] = self
                .out
                .poll_fd()
                .map(|fd| (fd, libc::POLLOUT))
                .or(Some((self.data.as_raw_fd(), libc::POLLIN)));
        } else if !self.eof {
            v[1] = Some((self.data.as_raw_fd(), libc::POLLIN));
        }
        v
    }
}

fn would_block(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// How a link ended.
enum End {
    Job(i32),
    Signal(i32),
    Epipe,
    Error(LinkError),
}

/// Runs iomux-link; returns the process exit code.
pub fn run(cfg: &LinkConfig) -> i32 {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        mask.add(s);
    }
    if let Err(e) = mask.thread_block() {
        return fail(LinkError::Sys {
            what: "block signals",
            err: e.into(),
        });
    }
    let sigfd = match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
        Ok(s) => s,
        Err(e) => {
            return fail(LinkError::Sys {
                what: "signalfd",
                err: e.into(),
            })
        }
    };
    let start = match &cfg.cursors {
        Some(p) => match read_cursors(p) {
            Ok(c) => c,
            Err(e) => return fail(e.into()),
        },
        None => Cursors::default(),
    };
    let mut link = match Link::attach(&cfg.dir, start, cfg.wait) {
        Ok(l) => l,
        Err(e) => return fail(e),
    };
    let end = link.pump(&sigfd);
    let save = |c: Cursors| {
        if let Some(p) = &cfg.cursors {
            if let Err(e) = write_atomic(p, cursors_text(c).as_bytes()) {
                eprintln!("iomux-link: saving cursors: {e}");
            }
        }
    };
    let cursors = link.cursors();
    save(cursors);
    match end {
        End::Job(code) => code,
        End::Signal(sig) => 128 + sig,
        End::Epipe => EXIT_EPIPE,
        End::Error(e) => fail(e),
    }
}

fn fail(e: LinkError) -> i32 {
    eprintln!("iomux-link: {e}");
    EXIT_INTERNAL
}

struct Link {
    streams: [Stream; 2],
    status_sock: Option<UnixStream>,
    status_buf: [u8; proto::STATUS_LEN],
    status_len: usize,
    status: Option<proto::Status>,
}

impl Link {
    fn attach(dir: &Path, start: Cursors, wait: std::time::Duration) -> Result<Link, LinkError> {
        let until = std::time::Instant::now() + wait;
        let connect = |name: &str, offset: u64| -> Result<(PathBuf, UnixStream), LinkError> {
            let path = dir.join(name);
            let attach = |err| LinkError::Attach {
                path: path.clone(),
                err,
            };
            let mut s = loop {
                match UnixStream::connect(&path) {
                    Ok(s) => break s,
                    // Not bound yet, or bound but not listening yet.
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                        ) && std::time::Instant::now() < until =>
                    {
                        std::thread::sleep(std::time::Duration::from_micros(200));
                    }
                    Err(e) => return Err(attach(e)),
                }
            };
            s.write_all(&proto::hello(offset)).map_err(attach)?;
            Ok((path, s))
        };
        let stream = |name: &'static str, sock_name: &str, fd: RawFd, requested: u64| {
            let (path, sock) = connect(sock_name, requested)?;
            let (first, data) = recv_header(&sock, &path, requested)?;
            if first > requested {
                eprintln!(
                    "iomux-link: {name}: {} bytes lost to ring overflow before this link",
                    first - requested
                );
            }
            sock.set_nonblocking(true)
                .map_err(|err| LinkError::Attach { path, err })?;
            Ok::<_, LinkError>(Stream {
                name,
                sock,
                data,
                out: Out::new(fd),
                mode: Mode::Splice,
                buf: vec![0u8; BUF].into_boxed_slice(),
                lo: 0,
                hi: 0,
                cursor: first,
                eof: false,
                out_full: false,
                ack: [0; proto::ACK_LEN],
                ack_pos: proto::ACK_LEN,
                ack_val: first,
            })
        };
        let out = stream("stdout", proto::STDOUT_SOCK, 1, start.stdout)?;
        let err = stream("stderr", proto::STDERR_SOCK, 2, start.stderr)?;
        let (p, st) = connect(proto::STATUS_SOCK, 0)?;
        st.set_nonblocking(true)
            .map_err(|err| LinkError::Attach { path: p, err })?;
        Ok(Link {
            streams: [out, err],
            status_sock: Some(st),
            status_buf: [0; proto::STATUS_LEN],
            status_len: 0,
            status: None,
        })
    }

    fn cursors(&self) -> Cursors {
        Cursors {
            stdout: self.streams[0].cursor,
            stderr: self.streams[1].cursor,
        }
    }

    fn read_status(&mut self) -> Result<(), LinkError> {
        let Some(sock) = self.status_sock.as_mut() else {
            return Ok(());
        };
        match sock.read(&mut self.status_buf[self.status_len..]) {
            Ok(0) => {
                self.status_sock = None;
                if self.status.is_none() {
                    return Err(LinkError::Gone);
                }
            }
            Ok(n) => {
                self.status_len += n;
                if self.status_len == proto::STATUS_LEN {
                    let st = proto::parse_status(&self.status_buf)
                        .map_err(|_| LinkError::Protocol(PathBuf::from(proto::STATUS_SOCK)))?;
                    self.status = Some(st);
                    self.status_sock = None;
                }
            }
            Err(e) if would_block(&e) => {}
            Err(_) => {
                self.status_sock = None;
                return Err(LinkError::Gone);
            }
        }
        Ok(())
    }

    fn pump(&mut self, sigfd: &SignalFd) -> End {
        let mut fds: [PollFd; 6] = [pollfd(-1, 0); 6];
        // Which stream each poll entry belongs to; a stream is stepped only
        // when one of its entries fired (or at the start): stepping the idle
        // one every round cost a failed splice and a FIONREAD per round.
        let mut ready = [true; 2];
        let mut gone = false;
        loop {
            for (i, s) in self.streams.iter_mut().enumerate() {
                if !ready[i] {
                    continue;
                }
                if let Err(end) = s.step() {
                    return end;
                }
            }
            if self.streams.iter().all(Stream::drained) {
                if let Some(st) = self.status {
                    for (s, want) in self.streams.iter().zip([st.stdout_end, st.stderr_end]) {
                        if s.cursor != want {
                            return End::Error(LinkError::Truncated {
                                name: s.name,
                                got: s.cursor,
                                want,
                            });
                        }
                    }
                    return End::Job(st.exit.code());
                }
                if gone {
                    return End::Error(LinkError::Gone);
                }
            }
            let mut n = 0;
            fds[n] = pollfd(sigfd.as_raw_fd(), libc::POLLIN);
            n += 1;
            let mut status_at = None;
            if let Some(s) = &self.status_sock {
                fds[n] = pollfd(s.as_raw_fd(), libc::POLLIN);
                status_at = Some(n);
                n += 1;
            }
            let mut owner: [Option<usize>; 6] = [None; 6];
            for (i, s) in self.streams.iter().enumerate() {
                for (fd, ev) in s.interest().into_iter().flatten() {
                    fds[n] = pollfd(fd, ev);
                    owner[n] = Some(i);
                    n += 1;
                }
            }
            ready = [false; 2];
            match poll(&mut fds[..n], -1) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    ready = [true; 2];
                    continue;
                }
                Err(err) => return End::Error(LinkError::Sys { what: "poll", err }),
            }
            for k in 0..n {
                if let (Some(i), true) = (owner[k], fds[k].revents != 0) {
                    ready[i] = true;
                }
            }
            if fds[0].revents != 0 {
                if let Ok(Some(si)) = sigfd.read_signal() {
                    return End::Signal(si.ssi_signo as i32);
                }
            }
            if status_at.is_some_and(|k| fds[k].revents != 0) {
                match self.read_status() {
                    Ok(()) => {}
                    Err(LinkError::Gone) => gone = true,
                    Err(e) => return End::Error(e),
                }
            }
        }
    }
}

/// Receives HEADER and the data pipe that comes with it (blocking, with a
/// timeout so a stuck spawner cannot hold us before the signalfd runs).
fn recv_header(sock: &UnixStream, path: &Path, requested: u64) -> Result<(u64, File), LinkError> {
    let attach = |err| LinkError::Attach {
        path: path.to_path_buf(),
        err,
    };
    sock.set_read_timeout(Some(ATTACH_TIMEOUT))
        .map_err(attach)?;
    let mut hdr = [0u8; proto::HEADER_LEN];
    let m = wsys::fdpass::recv(sock.as_fd(), &mut hdr, false).map_err(|e| attach(e.into()))?;
    let mut got = m.len;
    let mut fds = m.fds;
    if got == 0 && fds.is_empty() {
        return Err(LinkError::Refused {
            path: path.to_path_buf(),
            offset: requested,
        });
    }
    let mut s = sock;
    while got < proto::HEADER_LEN {
        match s.read(&mut hdr[got..]) {
            Ok(0) => return Err(LinkError::Protocol(path.to_path_buf())),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(attach(err)),
        }
    }
    let first = proto::parse_header(&hdr)
        .ok()
        .filter(|&f| f >= requested)
        .ok_or_else(|| LinkError::Protocol(path.to_path_buf()))?;
    if fds.len() != 1 {
        return Err(LinkError::Protocol(path.to_path_buf()));
    }
    let data = File::from(fds.remove(0));
    let ok = fstat(data.as_raw_fd())
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFIFO)
        .unwrap_or(false);
    if !ok {
        return Err(LinkError::Protocol(path.to_path_buf()));
    }
    Ok((first, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &[&str]) -> Result<Parsed<LinkConfig>, ArgError> {
        parse_args(&mut wsys::args::from_args(v))
    }

    fn cfg(v: &[&str]) -> LinkConfig {
        parse(v).unwrap().run().expect("not help")
    }

    #[test]
    fn parses() {
        assert_eq!(
            cfg(&["d"]),
            LinkConfig {
                cursors: None,
                dir: "d".into(),
                wait: std::time::Duration::ZERO,
            }
        );
        assert_eq!(
            cfg(&["-w", "c", "d"]),
            LinkConfig {
                cursors: Some("c".into()),
                dir: "d".into(),
                wait: std::time::Duration::ZERO,
            }
        );
        assert_eq!(cfg(&["-wc", "d"]).cursors, Some("c".into()));
        assert_eq!(cfg(&["d", "-w", "c"]).cursors, Some("c".into()));
        assert_eq!(cfg(&["--", "-d"]).dir, PathBuf::from("-d"));
        assert_eq!(
            cfg(&["--wait", "250", "d"]).wait,
            std::time::Duration::from_millis(250)
        );
        assert_eq!(cfg(&["--wait=0", "d"]).wait, std::time::Duration::ZERO);
        assert!(matches!(parse(&["-h"]), Ok(Parsed::Help)));
        for bad in [
            &["--wait", "d"][..],
            &["--wait", "-1", "d"],
            &["--wait", "60001", "d"],
            &["--wait", "1.5", "d"],
            &[][..],
            &["-w"],
            &["-w", "c"],
            &["d", "e"],
            &["-x", "d"],
            &[""],
            &["-w", "", "d"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
