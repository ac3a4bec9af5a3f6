//! `wsh [--socket PATH] [--user NAME] [--kill-on-disconnect] [--rsh [-l USER] [-46dn] [-t T] HOST] [CMD ARGS...]`
//!
//! Runs CMD (default: the user's shell) inside the wshd container behind
//! PATH (default `run/wshd.sock`) as NAME (default root), and exits with its
//! status: the exit code, 128+N when it was killed by signal N, 255 when
//! wshd cannot be reached or refuses the request (message on stderr; 126 /
//! 127 when the command is not executable / not found), 2 on a usage error
//! (`wsys::args`).
//!
//! If wsh goes away before the command ends, the command keeps running,
//! unless `--kill-on-disconnect` asked wshd to kill its process group then.
//!
//! `RLIMIT_<NAME>=VALUE` or `RLIMIT_<NAME>='SOFT HARD'` environment
//! variables (NAME one of AS CORE CPU DATA FSIZE LOCKS MEMLOCK MSGQUEUE NICE
//! NOFILE NPROC RSS RTPRIO SIGPENDING STACK; each value a number or
//! `unlimited`) become the session's rlimits: one value sets soft and hard,
//! two set soft and hard as the C wsh did. `LANG` is passed on; with a tty, `TERM` too.
//!
//! stdin a tty: the session gets a pty inside the container; the local
//! terminal is put in raw mode (restored on exit), its size is sent with the
//! request and every SIGWINCH is forwarded. Otherwise stdin, stdout and
//! stderr are three separate pipes: stdin is copied until EOF, which the
//! command then sees; stdout and stderr stay apart. `--rsh` accepts rsh's
//! flags so rsync can use `wsh --rsh` as its remote shell (`-l` sets the
//! user; the host is ignored).

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;
use wshd::proto::{self, Reply, Request};
use wsys::args::{rest, text, Arg, Cli, Error, Parsed, Parser};

const CLI: Cli = Cli {
    prog: "wsh",
    synopsis: "[--socket PATH] [--user NAME] [--kill-on-disconnect] [--rsh [-l USER] [-46dn] [-t T] HOST] [CMD ARGS...]",
    about: "wsh runs CMD (default: the user's shell) inside the container whose wshd\n\
            listens on --socket, with a pty when stdin is a tty, else with stdin,\n\
            stdout and stderr as three pipes, and exits with CMD's status.\n\
            RLIMIT_<NAME>=VALUE or ='SOFT HARD' variables set the session's rlimits.",
    options: &[
        (
            "--socket PATH",
            "path to wshd's socket (default run/wshd.sock)",
        ),
        (
            "--user NAME",
            "user to run as inside the container (default root)",
        ),
        (
            "--kill-on-disconnect",
            "kill the command if wsh goes away before it ends",
        ),
        (
            "--rsh",
            "rsh compatibility mode (for rsync -e): rsh's -l USER,\n-4 -6 -d -n -t T and HOST (ignored) are accepted",
        ),
        ("CMD ARGS...", "the command to run; the first operand ends the options"),
    ],
    exit_codes: &[
        ("N", "CMD's exit code, or 128+N when signal N killed it"),
        ("126/127", "CMD is not executable / not found"),
        ("2", "usage error"),
        (
            "255",
            "wshd cannot be reached or refused the request (message on stderr)",
        ),
    ],
};

#[derive(Debug, PartialEq, Eq)]
struct Args {
    socket: PathBuf,
    user: String,
    kill_on_disconnect: bool,
    argv: Vec<OsString>,
}

/// Options, then CMD: the first operand (or `--`) ends wsh's options and
/// everything from it on is the command, passed unchanged. After `--rsh`,
/// rsh's own options may come, then HOST (ignored), then more wsh options.
fn parse(p: &mut Parser) -> Result<Parsed<Args>, Error> {
    let mut a = Args {
        socket: "run/wshd.sock".into(),
        user: String::new(),
        kill_on_disconnect: false,
        argv: Vec::new(),
    };
    let mut rsh_host = false;
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Short('h') | Arg::Long("help") if !rsh_host => return Ok(Parsed::Help),
            Arg::Long("version") if !rsh_host => return Ok(Parsed::Version),
            Arg::Long("socket") => a.socket = p.value()?.into(),
            Arg::Long("user") => a.user = text(p, "--user")?,
            Arg::Long("kill-on-disconnect") => a.kill_on_disconnect = true,
            Arg::Long("rsh") => rsh_host = true,
            Arg::Short('l') if rsh_host => a.user = text(p, "-l")?,
            Arg::Short('t') if rsh_host => drop(p.value()?),
            Arg::Short('4' | '6' | 'd' | 'n') if rsh_host => {}
            Arg::Value(host) if rsh_host => {
                drop(host);
                rsh_host = false;
            }
            Arg::Value(cmd) => {
                a.argv.push(cmd);
                a.argv.extend(rest(p));
            }
            a => return Err(a.unexpected()),
        }
    }
    if rsh_host {
        return Err("--rsh needs a host".into());
    }
    Ok(Parsed::Run(a))
}

fn rlimits_from_env() -> Result<Vec<(u8, u64, u64)>, String> {
    let mut out = Vec::new();
    for (id, name) in proto::RLIMITS.iter().enumerate() {
        let var = format!("RLIMIT_{name}");
        if let Some(v) = std::env::var_os(&var) {
            let s = v.to_string_lossy();
            let (soft, hard) = proto::parse_rlimit_value(&s).ok_or_else(|| {
                format!(
                    "{var}: invalid value '{s}' (VALUE or 'SOFT HARD', each a number or unlimited)"
                )
            })?;
            out.push((id as u8, soft, hard));
        }
    }
    Ok(out)
}

fn die(code: i32, msg: &str) -> ! {
    eprintln!("wsh: {msg}");
    std::process::exit(code);
}

/// A descriptor a flow either borrows (our stdio) or owns (from wshd).
enum Fd<'a> {
    Borrowed(BorrowedFd<'a>),
    Owned(OwnedFd),
}

impl Fd<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Fd::Borrowed(b) => *b,
            Fd::Owned(o) => o.as_fd(),
        }
    }
}

/// One copy direction with a buffer.
struct Flow<'a> {
    src: Option<Fd<'a>>,
    dst: Option<Fd<'a>>,
    buf: Vec<u8>,
    off: usize,
    len: usize,
    /// Close `dst` (its owner drops it) once `src` hits EOF.
    close_dst_on_eof: bool,
    done: bool,
}

impl<'a> Flow<'a> {
    fn new(src: Fd<'a>, dst: Fd<'a>, close_dst_on_eof: bool) -> Self {
        Flow {
            src: Some(src),
            dst: Some(dst),
            buf: vec![0; 64 * 1024],
            off: 0,
            len: 0,
            close_dst_on_eof,
            done: false,
        }
    }

    /// The fd and event this flow waits for, if any.
    fn want(&self) -> Option<(BorrowedFd<'_>, PollFlags)> {
        if self.done {
            return None;
        }
        if self.len > self.off {
            self.dst.as_ref().map(|d| (d.fd(), PollFlags::POLLOUT))
        } else {
            self.src.as_ref().map(|s| (s.fd(), PollFlags::POLLIN))
        }
    }

    /// Marks the flow finished; closes an owned destination if asked to
    /// (so the command sees EOF on its stdin).
    fn finish(&mut self) {
        self.done = true;
        if self.close_dst_on_eof {
            self.dst = None;
        }
    }

    /// One step after poll said ready.
    fn step(&mut self) {
        if self.len > self.off {
            let Some(d) = self.dst.as_ref().map(|d| d.fd()) else {
                return;
            };
            match nix::unistd::write(d, &self.buf[self.off..self.len]) {
                Ok(n) => self.off += n,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                Err(_) => {
                    // Reader gone: stop copying; dropping our read end
                    // lets the writer see EPIPE.
                    self.src = None;
                    self.finish();
                }
            }
            if self.off == self.len {
                self.off = 0;
                self.len = 0;
            }
            return;
        }
        let Some(s) = self.src.as_ref().map(|s| s.fd().as_raw_fd()) else {
            return;
        };
        match nix::unistd::read(s, &mut self.buf) {
            Ok(0) | Err(Errno::EIO) => self.finish(),
            Ok(n) => {
                self.off = 0;
                self.len = n;
            }
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            Err(_) => self.finish(),
        }
    }

    /// After the command ended: copy what is already buffered, never wait
    /// for more input.
    fn drain(&mut self) {
        if self.done && self.len == self.off {
            return;
        }
        loop {
            while self.len > self.off {
                let Some(d) = self.dst.as_ref().map(|d| d.fd()) else {
                    return;
                };
                match nix::unistd::write(d, &self.buf[self.off..self.len]) {
                    Ok(n) => self.off += n,
                    Err(Errno::EINTR) => {}
                    Err(Errno::EAGAIN) => {
                        let mut p = [PollFd::new(d, PollFlags::POLLOUT)];
                        let _ = poll(&mut p, PollTimeout::NONE);
                    }
                    Err(_) => return,
                }
            }
            self.off = 0;
            self.len = 0;
            if self.done {
                return;
            }
            let Some(s) = self.src.as_ref().map(|s| s.fd().as_raw_fd()) else {
                return;
            };
            match nix::unistd::read(s, &mut self.buf) {
                Ok(0) | Err(Errno::EIO) | Err(Errno::EAGAIN) => return,
                Ok(n) => self.len = n,
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }
}

fn set_nonblock(fd: BorrowedFd<'_>) {
    if let Ok(fl) = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
        );
    }
}

fn status_of(r: &Reply) -> Option<i32> {
    match r {
        Reply::Exit {
            signaled: false,
            code,
        } => Some(*code as i32),
        Reply::Exit {
            signaled: true,
            code,
        } => Some(128 + *code as i32),
        _ => None,
    }
}

fn main() {
    let a = CLI.get(parse(&mut wsys::args::from_env()));
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let tty = wsys::pty::is_tty(stdin.as_fd());
    let ws = if tty {
        wsys::pty::get_winsize(stdin.as_fd()).unwrap_or_default()
    } else {
        Default::default()
    };
    let rlimits = rlimits_from_env().unwrap_or_else(|e| die(255, &e));
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let req = Request {
        tty,
        kill_on_disconnect: a.kill_on_disconnect,
        rows: ws.rows,
        cols: ws.cols,
        user: a.user.clone(),
        lang: env("LANG"),
        term: if tty { env("TERM") } else { String::new() },
        rlimits,
        argv: a.argv.into_iter().map(OsStringExt::into_vec).collect(),
    };
    let msg = proto::encode_request(&req).unwrap_or_else(|e| die(255, &format!("request: {e}")));

    let conn = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap_or_else(|e| die(255, &format!("socket: {e}")));
    let sock = a.socket.display();
    let addr = UnixAddr::new(&a.socket)
        .unwrap_or_else(|_| die(255, &format!("connect {sock}: path too long")));
    if let Err(e) = connect(conn.as_raw_fd(), &addr) {
        die(255, &format!("cannot reach wshd at {sock}: {}", e.desc()));
    }
    if let Err(e) = wsys::fdpass::send(conn.as_fd(), &msg, &[], false) {
        die(255, &format!("send request to {sock}: {}", e.desc()));
    }
    let mut buf = [0u8; 8192];
    let first = wsys::fdpass::recv(conn.as_fd(), &mut buf, false)
        .unwrap_or_else(|e| die(255, &format!("receive from wshd: {}", e.desc())));
    if first.len == 0 {
        die(255, "wshd closed the connection");
    }
    let reply = proto::decode_reply(&buf[..first.len])
        .unwrap_or_else(|e| die(255, &format!("bad reply from wshd: {e}")));
    let fds: Vec<OwnedFd> = first.fds;
    match reply {
        Reply::Ready { .. } => {}
        Reply::Error { status, message } => die(status as i32, &message),
        Reply::Exit { .. } => die(255, "bad reply from wshd: exit before ready"),
    }
    let want = if tty { 1 } else { 3 };
    if fds.len() != want {
        die(
            255,
            &format!(
                "bad reply from wshd: {} descriptors, expected {want}",
                fds.len()
            ),
        );
    }
    for f in &fds {
        set_nonblock(f.as_fd());
    }

    // Terminal setup (tty sessions): raw mode, window size forwarding,
    // and termination signals that restore the terminal before exiting.
    let saved = if tty {
        wsys::pty::make_raw(stdin.as_fd()).ok()
    } else {
        None
    };
    let restore = || {
        if let Some(t) = &saved {
            let _ = wsys::pty::restore(stdin.as_fd(), t);
        }
    };
    let mut mask = SigSet::empty();
    if tty {
        for s in [
            Signal::SIGWINCH,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGINT,
            Signal::SIGQUIT,
        ] {
            mask.add(s);
        }
        let _ = mask.thread_block();
    }
    let sfd = if tty {
        SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok()
    } else {
        None
    };

    let mut it = fds.into_iter();
    let (mut input, mut outs, master): (Option<Flow<'_>>, Vec<Flow<'_>>, Option<OwnedFd>) = if tty {
        let m = it.next().expect("one fd");
        let m_in = m
            .try_clone()
            .unwrap_or_else(|e| die(255, &format!("dup: {e}")));
        let m_ctl = m
            .try_clone()
            .unwrap_or_else(|e| die(255, &format!("dup: {e}")));
        (
            Some(Flow::new(
                Fd::Borrowed(stdin.as_fd()),
                Fd::Owned(m_in),
                false,
            )),
            vec![Flow::new(Fd::Owned(m), Fd::Borrowed(stdout.as_fd()), false)],
            Some(m_ctl),
        )
    } else {
        let (i, o, e) = (
            it.next().expect("3 fds"),
            it.next().expect("3 fds"),
            it.next().expect("3 fds"),
        );
        (
            Some(Flow::new(Fd::Borrowed(stdin.as_fd()), Fd::Owned(i), true)),
            vec![
                Flow::new(Fd::Owned(o), Fd::Borrowed(stdout.as_fd()), false),
                Flow::new(Fd::Owned(e), Fd::Borrowed(stderr.as_fd()), false),
            ],
            None,
        )
    };

    if let (Some(m), true) = (master.as_ref(), tty) {
        // The size may have changed between the request and now.
        if let Some(w) = wsys::pty::get_winsize(stdin.as_fd()) {
            let _ = wsys::pty::set_winsize(m.as_fd(), w);
        }
    }

    let code: i32 = loop {
        let mut pfds: Vec<PollFd<'_>> = Vec::with_capacity(6);
        pfds.push(PollFd::new(conn.as_fd(), PollFlags::POLLIN));
        if let Some(s) = &sfd {
            pfds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
        }
        let base = pfds.len();
        let mut owners: Vec<usize> = Vec::new(); // 0 = input, 1.. = outs
        if let Some((fd, ev)) = input.as_ref().and_then(|f| f.want()) {
            pfds.push(PollFd::new(fd, ev));
            owners.push(0);
        }
        for (i, o) in outs.iter().enumerate() {
            if let Some((fd, ev)) = o.want() {
                pfds.push(PollFd::new(fd, ev));
                owners.push(i + 1);
            }
        }
        match poll(&mut pfds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => {
                restore();
                die(255, &format!("poll: {e}"));
            }
        }
        let fired = |p: &PollFd<'_>| p.revents().map(|r| !r.is_empty()).unwrap_or(false);
        let conn_ready = fired(&pfds[0]);
        let sig_ready = sfd.is_some() && fired(&pfds[1]);
        let ready: Vec<usize> = pfds[base..]
            .iter()
            .zip(&owners)
            .filter(|(p, _)| fired(p))
            .map(|(_, o)| *o)
            .collect();
        drop(pfds);

        for o in ready {
            if o == 0 {
                if let Some(f) = input.as_mut() {
                    f.step();
                    if f.done {
                        // Drops the stdin pipe: the command sees EOF.
                        input = None;
                    }
                }
            } else {
                outs[o - 1].step();
            }
        }
        if sig_ready {
            if let Some(s) = &sfd {
                while let Ok(Some(si)) = s.read_signal() {
                    if si.ssi_signo == Signal::SIGWINCH as u32 {
                        if let (Some(w), Some(m)) =
                            (wsys::pty::get_winsize(stdin.as_fd()), master.as_ref())
                        {
                            let _ = wsys::pty::set_winsize(m.as_fd(), w);
                        }
                    } else {
                        restore();
                        std::process::exit(128 + si.ssi_signo as i32);
                    }
                }
            }
        }
        if conn_ready {
            let m = wsys::fdpass::recv(conn.as_fd(), &mut buf, true);
            match m {
                Ok(m) if m.len > 0 => match proto::decode_reply(&buf[..m.len]) {
                    Ok(r @ Reply::Exit { .. }) => break status_of(&r).unwrap_or(255),
                    // The command could not be started (e.g. not found).
                    Ok(Reply::Error { status, message }) => {
                        restore();
                        die(status as i32, &message);
                    }
                    _ => {
                        restore();
                        die(255, "bad message from wshd");
                    }
                },
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                _ => {
                    for o in outs.iter_mut() {
                        o.drain();
                    }
                    restore();
                    die(255, "lost the connection to wshd before the command ended");
                }
            }
        }
    };
    for o in outs.iter_mut() {
        o.drain();
    }
    restore();
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_v(v: &[&str]) -> Result<Parsed<Args>, Error> {
        parse(&mut wsys::args::from_args(v))
    }

    fn run(v: &[&str]) -> Args {
        parse_v(v).unwrap().run().expect("not help")
    }

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let a = run(&[]);
        assert_eq!(
            (a.socket, a.user.as_str(), a.argv.len()),
            ("run/wshd.sock".into(), "", 0)
        );
        let a = run(&["--socket", "/s", "--user", "vcap", "ls", "-l", "--user"]);
        assert_eq!((a.socket, a.user.as_str()), ("/s".into(), "vcap"));
        assert_eq!(a.argv, os(&["ls", "-l", "--user"]));
        assert_eq!(run(&["--", "-x"]).argv, os(&["-x"]));
        assert!(run(&["--kill-on-disconnect", "true"]).kill_on_disconnect);
    }

    #[test]
    fn rsh_mode() {
        let a = run(&[
            "--socket",
            "/s",
            "--rsh",
            "-l",
            "vcap",
            "-4",
            "-t",
            "5",
            "container",
            "rsync",
            "--server",
        ]);
        assert_eq!(a.user, "vcap");
        assert_eq!(a.argv, os(&["rsync", "--server"]));
        // getopt forms rsync may use: -lUSER, clustered flags.
        let a = run(&["--rsh", "-46dn", "-lvcap", "h", "true"]);
        assert_eq!((a.user.as_str(), a.argv), ("vcap", os(&["true"])));
        assert!(parse_v(&["--rsh"]).is_err());
        assert!(parse_v(&["--rsh", "-x", "h"]).is_err());
    }

    #[test]
    fn usage_errors() {
        assert!(parse_v(&["--bogus"]).is_err());
        assert!(parse_v(&["--socket"]).is_err());
        assert!(
            parse_v(&["-l", "vcap", "true"]).is_err(),
            "-l only after --rsh"
        );
        assert!(matches!(parse_v(&["--help"]), Ok(Parsed::Help)));
    }
}
