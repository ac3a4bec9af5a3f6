//! wshd's serving loop (pid 1 of the container) and session start.
//!
//! One thread, one `poll` over: the listening socket, a signalfd for
//! SIGCHLD, and connections that have not sent their request yet (at most
//! [`MAX_PENDING`], each dropped after [`REQUEST_TIMEOUT`]). A request is
//! read with one non-blocking `recv`, so a slow, silent or hostile client
//! never blocks the others; anything malformed gets an ERROR (see
//! [`crate::proto`]) and only that connection is closed. Every reply is
//! sent non-blocking. The listener is always polled: when [`MAX_PENDING`]
//! connections are waiting and another arrives, the one that has waited
//! longest without sending a request is dropped (with an ERROR) to make
//! room, so silent connections, however many, never keep a real client in
//! the backlog (at most [`MAX_PENDING`] are accepted per loop turn, so
//! a flood cannot starve the rest of the loop either).
//!
//! A session: look the user up in the container's /etc/passwd and
//! /etc/group, create three pipes (or a pty pair from the container's
//! /dev/ptmx, window size set before exec), fork. The child resets signals,
//! calls setsid (and takes the pty as controlling terminal), moves its stdio
//! to 0/1/2, restores wshd's original RLIMIT_NOFILE and applies the
//! requested rlimits (soft and hard), sets groups/gid, drops capabilities,
//! sets uid, no_new_privs for non-root users (see [`crate::harden`] for the
//! exact capability sets), chdir(HOME) (or `/` if that fails), marks every
//! fd >= 3 close-on-exec (with `--allow-nested`, non-root sessions stack
//! their own seccomp filter here; all inherit wshd's) and execs with HOME,
//! USER, PATH (root:
//! /sbin:/bin:/usr/sbin:/usr/bin, others: /bin:/usr/bin), LANG and TERM
//! when given. wshd does not wait for the exec: right after fork the client
//! gets READY with the client-side fds, and wshd keeps only the connection
//! and sends EXIT when it reaps the command. Until exec the child still
//! holds the connection (close-on-exec), so an unknown command or an rlimit
//! that cannot be set comes back as an ERROR from the child itself (before
//! or after READY) and nothing runs.
//!
//! Disconnect policy (F2), chosen per request: by default a client that goes
//! away does not stop its command; the command keeps running (it sees
//! EOF/EPIPE on its stdio) and is reaped as usual. With the request's
//! kill-on-disconnect flag, wshd also polls that connection and, when it
//! closes before the command ended, sends SIGKILL to the command's process
//! group (the command is a session and group leader). Every other process
//! (orphans, daemons) is reaped too.

use crate::harden::Policy;
use crate::passwd::{self, User};
use crate::proto::{self, Reply, Request, RLIMITS};
use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{dup2, setgid, setgroups, setsid, setuid, Gid, Pid, Uid};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};
use wsys::ns::Forked;
use wsys::pty::WinSize;

/// Most connections waiting to send their request.
pub const MAX_PENDING: usize = 512;
/// Quiet time after which wshd drops its resident program text.
pub const IDLE_SHED: Duration = Duration::from_secs(1);
/// How long a connection may wait before sending its request.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// wshd's RLIMIT_NOFILE before it raised its own soft limit; sessions get
/// it back.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    nofile: (u64, u64),
}

/// Raises wshd's soft RLIMIT_NOFILE to its hard limit (many sessions) and
/// returns the original values.
pub fn raise_nofile() -> Limits {
    let nofile = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
    let _ = setrlimit(Resource::RLIMIT_NOFILE, nofile.1, nofile.1);
    Limits { nofile }
}

fn resource(id: u8) -> Resource {
    match id {
        0 => Resource::RLIMIT_AS,
        1 => Resource::RLIMIT_CORE,
        2 => Resource::RLIMIT_CPU,
        3 => Resource::RLIMIT_DATA,
        4 => Resource::RLIMIT_FSIZE,
        5 => Resource::RLIMIT_LOCKS,
        6 => Resource::RLIMIT_MEMLOCK,
        7 => Resource::RLIMIT_MSGQUEUE,
        8 => Resource::RLIMIT_NICE,
        9 => Resource::RLIMIT_NOFILE,
        10 => Resource::RLIMIT_NPROC,
        11 => Resource::RLIMIT_RSS,
        12 => Resource::RLIMIT_RTPRIO,
        13 => Resource::RLIMIT_SIGPENDING,
        _ => Resource::RLIMIT_STACK,
    }
}

/// Everything the forked child needs, built before fork.
struct Plan {
    user: User,
    argv: Vec<CString>,
    /// Paths to try, in order (PATH search done here).
    candidates: Vec<CString>,
    env: Vec<CString>,
    home: CString,
    rlimits: Vec<(u8, u64, u64)>,
    tty: Option<WinSize>,
}

fn cstr(b: &[u8]) -> CString {
    // The protocol decoder rejects NUL bytes; other inputs come from files
    // whose fields were split on ':' and newlines, so strip NULs defensively.
    CString::new(b.iter().copied().filter(|c| *c != 0).collect::<Vec<u8>>()).expect("no NUL left")
}

fn plan(req: &Request) -> Result<Plan, (u8, String)> {
    let name = if req.user.is_empty() {
        "root"
    } else {
        req.user.as_str()
    };
    let user = passwd::lookup(Path::new("/"), name).map_err(|e| (255, e.to_string()))?;
    let argv: Vec<CString> = if req.argv.is_empty() {
        let sh = if user.shell.is_empty() {
            "/bin/sh"
        } else {
            user.shell.as_str()
        };
        vec![cstr(sh.as_bytes())]
    } else {
        req.argv.iter().map(|a| cstr(a)).collect()
    };
    let path = if user.uid == 0 {
        "/sbin:/bin:/usr/sbin:/usr/bin"
    } else {
        "/bin:/usr/bin"
    };
    let a0 = argv[0].as_bytes();
    if a0.is_empty() {
        return Err((127, "empty command name".into()));
    }
    let candidates = if a0.contains(&b'/') {
        vec![argv[0].clone()]
    } else {
        path.split(':')
            .map(|d| cstr(format!("{d}/{}", String::from_utf8_lossy(a0)).as_bytes()))
            .collect()
    };
    let mut env = vec![
        cstr(format!("HOME={}", user.home).as_bytes()),
        cstr(format!("USER={}", user.name).as_bytes()),
        cstr(format!("PATH={path}").as_bytes()),
    ];
    if !req.lang.is_empty() {
        env.push(cstr(format!("LANG={}", req.lang).as_bytes()));
    }
    if !req.term.is_empty() {
        env.push(cstr(format!("TERM={}", req.term).as_bytes()));
    }
    Ok(Plan {
        home: cstr(user.home.as_bytes()),
        user,
        argv,
        candidates,
        env,
        rlimits: req.rlimits.clone(),
        tty: req.tty.then_some(WinSize {
            rows: req.rows,
            cols: req.cols,
        }),
    })
}

/// Runs in the forked child; returns (exit status, message) on failure.
fn child(plan: &Plan, stdio: [BorrowedFd<'_>; 3], limits: Limits, policy: &Policy) -> (u8, String) {
    wsys::proc_::reset_signals();
    if let Err(e) = setsid() {
        return (255, format!("setsid: {e}"));
    }
    if plan.tty.is_some() {
        if let Err(e) = wsys::pty::set_controlling(stdio[0]) {
            return (255, format!("set controlling terminal: {e}"));
        }
    }
    for (i, fd) in stdio.iter().enumerate() {
        if let Err(e) = dup2(fd.as_raw_fd(), i as i32) {
            return (255, format!("dup2 to fd {i}: {e}"));
        }
    }
    let _ = setrlimit(Resource::RLIMIT_NOFILE, limits.nofile.0, limits.nofile.1);
    for &(id, soft, hard) in &plan.rlimits {
        let r = resource(id);
        if let Err(e) = setrlimit(r, soft, hard) {
            let now = getrlimit(r).map(|l| l.1).unwrap_or(0);
            let shown = |x: u64| {
                if x == proto::RLIM_UNLIMITED {
                    "unlimited".to_string()
                } else {
                    x.to_string()
                }
            };
            return (
                255,
                format!(
                    "RLIMIT_{}={}: cannot set (hard limit {}): {}",
                    RLIMITS[id as usize],
                    if soft == hard {
                        shown(soft)
                    } else {
                        format!("'{} {}'", shown(soft), shown(hard))
                    },
                    shown(now),
                    e.desc()
                ),
            );
        }
    }
    let groups: Vec<Gid> = plan.user.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    if let Err(e) = setgroups(&groups) {
        return (255, format!("setgroups: {e}"));
    }
    if let Err(e) = setgid(Gid::from_raw(plan.user.gid)) {
        return (255, format!("setgid {}: {e}", plan.user.gid));
    }
    let root = plan.user.uid == 0;
    if let Err(e) = policy.drop_privileges(root) {
        return (255, e.to_string());
    }
    if let Err(e) = setuid(Uid::from_raw(plan.user.uid)) {
        return (255, format!("setuid {}: {e}", plan.user.uid));
    }
    if let Err(e) = policy.after_setuid(root) {
        return (255, e.to_string());
    }
    if nix::unistd::chdir(plan.home.as_c_str()).is_err() {
        let _ = nix::unistd::chdir("/");
    }
    if let Err(e) = wsys::proc_::cloexec_from(3) {
        return (255, format!("close_range: {e}"));
    }
    // Last: from here on only execve (and, on failure, sendmsg and _exit).
    // Every session already runs under the init's filter (inherited).
    if let Err(e) = policy.seal(root) {
        return (255, e.to_string());
    }
    let mut denied = false;
    let shown = plan.argv[0].to_string_lossy();
    for c in &plan.candidates {
        match nix::unistd::execve(c, &plan.argv, &plan.env) {
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => continue,
            Err(Errno::EACCES) => denied = true,
            Err(e) => return (126, format!("exec {shown}: {}", e.desc())),
            Ok(never) => match never {},
        }
    }
    if denied {
        (126, format!("exec {shown}: permission denied"))
    } else {
        (127, format!("exec {shown}: command not found"))
    }
}

fn send(conn: &OwnedFd, r: &Reply, fds: &[BorrowedFd<'_>]) {
    let _ = wsys::fdpass::send(conn.as_fd(), &proto::encode_reply(r), fds, true);
}

fn error(conn: &OwnedFd, status: u8, message: String) {
    send(conn, &Reply::Error { status, message }, &[]);
}

/// Starts the session; on success the pid to watch.
fn start(conn: &OwnedFd, req: &Request, limits: Limits, policy: &Policy) -> Option<i32> {
    let plan = match plan(req) {
        Ok(p) => p,
        Err((s, m)) => {
            error(conn, s, m);
            return None;
        }
    };
    let sys = |what: &str, e: Errno| {
        error(conn, 255, format!("{what}: {e}"));
    };
    // (fds for the child's 0/1/2, fds for the client)
    let (ours, theirs): (Vec<OwnedFd>, Vec<OwnedFd>) = match plan.tty {
        Some(ws) => match wsys::pty::open_pair(ws) {
            Ok((m, s)) => {
                let s2 = s.try_clone().ok()?;
                let s3 = s.try_clone().ok()?;
                (vec![s, s2, s3], vec![m])
            }
            Err(e) => {
                sys("open pty in the container", e);
                return None;
            }
        },
        None => {
            let mut ours = Vec::with_capacity(3);
            let mut theirs = Vec::with_capacity(3);
            for i in 0..3 {
                let (r, w) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
                    Ok(p) => p,
                    Err(e) => {
                        sys("pipe", e);
                        return None;
                    }
                };
                if i == 0 {
                    ours.push(r);
                    theirs.push(w);
                } else {
                    ours.push(w);
                    theirs.push(r);
                }
            }
            (ours, theirs)
        }
    };
    // SAFETY: wshd never starts a thread, so it is single-threaded here.
    #[allow(unsafe_code)]
    let forked = unsafe { wsys::ns::fork() };
    let pid = match forked {
        Ok(Forked::Child) => {
            // Until exec the child still holds the (close-on-exec)
            // connection: a failure goes straight to the client as ERROR.
            let (status, message) = child(
                &plan,
                [ours[0].as_fd(), ours[1].as_fd(), ours[2].as_fd()],
                limits,
                policy,
            );
            let _ = wsys::fdpass::send(
                conn.as_fd(),
                &proto::encode_reply(&Reply::Error { status, message }),
                &[],
                false,
            );
            wsys::proc_::exit_now(status as i32);
        }
        Ok(Forked::Parent(pid)) => pid,
        Err(e) => {
            sys("fork", e);
            return None;
        }
    };
    drop(ours);
    // No waiting for the exec: READY goes out at once (a failing child's
    // ERROR may come before or after it; the client stops at ERROR).
    let fds: Vec<BorrowedFd<'_>> = theirs.iter().map(|f| f.as_fd()).collect();
    send(conn, &Reply::Ready { pid: pid as u32 }, &fds);
    Some(pid)
}

/// A started command: its pid, the client's connection, and whether a
/// closed connection kills it (cleared once it has been killed).
struct Session {
    pid: i32,
    conn: OwnedFd,
    kill_on_disconnect: bool,
}

fn reap(sessions: &mut Vec<Session>) {
    loop {
        let (pid, signaled, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) => (p.as_raw(), false, c as u8),
            Ok(WaitStatus::Signaled(p, s, _)) => (p.as_raw(), true, s as i32 as u8),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return,
        };
        if let Some(i) = sessions.iter().position(|s| s.pid == pid) {
            let s = sessions.swap_remove(i);
            send(&s.conn, &Reply::Exit { signaled, code }, &[]);
        }
    }
}

/// A watched session connection became readable: the client closed it (or
/// sent something it should not; that is read and ignored).
fn hangup(s: &mut Session, buf: &mut [u8]) {
    match wsys::fdpass::recv(s.conn.as_fd(), buf, true) {
        Ok(m) if m.len > 0 || !m.fds.is_empty() => return,
        Err(Errno::EAGAIN) | Err(Errno::EINTR) => return,
        _ => {}
    }
    // The command leads its own session and process group.
    let _ = nix::sys::signal::kill(Pid::from_raw(-s.pid), nix::sys::signal::Signal::SIGKILL);
    s.kill_on_disconnect = false;
}

/// Handles one readable pending connection; returns the session pid and its
/// kill-on-disconnect flag if one started (the connection then moves to the
/// session list).
fn handle(conn: &OwnedFd, buf: &mut [u8], limits: Limits, policy: &Policy) -> Option<(i32, bool)> {
    let m = match wsys::fdpass::recv(conn.as_fd(), buf, true) {
        Ok(m) => m,
        Err(Errno::EAGAIN) => return None,
        Err(e) => {
            error(conn, 255, format!("receive request: {e}"));
            return None;
        }
    };
    if m.len == 0 && m.fds.is_empty() && !m.truncated {
        return None;
    }
    if !m.fds.is_empty() {
        error(conn, 255, "bad request: unexpected file descriptors".into());
        return None;
    }
    if m.truncated || m.len > proto::MAX_MSG {
        error(
            conn,
            255,
            format!("bad request: {}", proto::ProtoError::Oversize),
        );
        return None;
    }
    match proto::decode_request(&buf[..m.len]) {
        Ok(req) => start(conn, &req, limits, policy).map(|pid| (pid, req.kill_on_disconnect)),
        Err(e) => {
            error(conn, 255, format!("bad request: {e}"));
            None
        }
    }
}

/// Drops the pending connection that has waited longest without sending
/// its request (one silent client must not keep out a real one).
fn evict_oldest(pending: &mut Vec<(OwnedFd, Instant)>) {
    let oldest = pending
        .iter()
        .enumerate()
        .min_by_key(|(_, (_, t))| *t)
        .map(|(i, _)| i);
    if let Some(i) = oldest {
        let (conn, _) = pending.swap_remove(i);
        error(
            &conn,
            255,
            "dropped: too many connections waiting to send a request".into(),
        );
    }
}

/// Serves the socket forever (as pid 1 of the container).
/// `text`: wshd's own program text; after [`IDLE_SHED`] without activity its
/// resident pages are dropped again (they come back from the page cache on
/// the next session), so an idle container's init stays small.
pub fn serve(
    listener: OwnedFd,
    sfd: SignalFd,
    limits: Limits,
    policy: &Policy,
    text: &wsys::proc_::FileText,
) -> ! {
    let mut active = false;
    let mut pending: Vec<(OwnedFd, Instant)> = Vec::new();
    let mut sessions: Vec<Session> = Vec::new();
    let mut paused_until: Option<Instant> = None;
    // Sized to hold MAX_MSG + 1 so an oversize message shows as truncated;
    // allocated once, only touched pages count in RSS.
    let mut buf = vec![0u8; proto::MAX_MSG + 1];
    loop {
        let now = Instant::now();
        let timeout = pending
            .iter()
            .map(|(_, t)| (*t + REQUEST_TIMEOUT).saturating_duration_since(now))
            .min()
            .map(|d| {
                PollTimeout::try_from(d.as_millis().min(60_000) as i32 + 1)
                    .unwrap_or(PollTimeout::MAX)
            })
            .unwrap_or(if active {
                PollTimeout::try_from(IDLE_SHED.as_millis() as i32).unwrap_or(PollTimeout::MAX)
            } else {
                PollTimeout::NONE
            });
        // Out of fds: leave new connections in the backlog for a moment
        // instead of spinning on a listener we cannot accept from.
        let accepting = !matches!(paused_until, Some(t) if now < t);
        let timeout = match paused_until {
            Some(t) if t > now => {
                let wait = PollTimeout::try_from((t - now).as_millis() as i32 + 1)
                    .unwrap_or(PollTimeout::MAX);
                if timeout == PollTimeout::NONE || wait < timeout {
                    wait
                } else {
                    timeout
                }
            }
            _ => timeout,
        };
        let (ready_listen, ready_sig, ready_pending, ready_hung) = {
            let mut fds = Vec::with_capacity(2 + pending.len());
            fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
            fds.push(PollFd::new(
                listener.as_fd(),
                if accepting {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                },
            ));
            for (c, _) in &pending {
                fds.push(PollFd::new(c.as_fd(), PollFlags::POLLIN));
            }
            // Sessions whose command dies with their client.
            let watched: Vec<usize> = (0..sessions.len())
                .filter(|&i| sessions[i].kill_on_disconnect)
                .collect();
            for &i in &watched {
                fds.push(PollFd::new(sessions[i].conn.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, timeout) {
                Ok(0) if active && pending.is_empty() => {
                    // Idle: drop the program text and wait on the same fds
                    // (only the socket, the signalfd and watched sessions:
                    // nothing is pending, so no deadline is due).
                    let mut raw: Vec<libc::pollfd> = fds
                        .iter()
                        .map(|f| libc::pollfd {
                            fd: f.as_fd().as_raw_fd(),
                            events: f.events().bits(),
                            revents: 0,
                        })
                        .collect();
                    // SAFETY: wshd never unmaps or maps over its program text.
                    #[allow(unsafe_code)]
                    unsafe {
                        text.shed_then_poll(&mut raw)
                    };
                    active = false;
                    continue;
                }
                Ok(_) => active = true,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    eprintln!("wshd: poll: {e}");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
            let ready = |f: &PollFd<'_>| f.revents().map(|r| !r.is_empty()).unwrap_or(false);
            let rp: Vec<bool> = fds[2..2 + pending.len()].iter().map(ready).collect();
            let hung: Vec<usize> = watched
                .iter()
                .zip(&fds[2 + pending.len()..])
                .filter(|(_, f)| ready(f))
                .map(|(i, _)| *i)
                .collect();
            (ready(&fds[1]), ready(&fds[0]), rp, hung)
        };
        for i in ready_hung {
            hangup(&mut sessions[i], &mut buf);
        }
        if ready_sig {
            while let Ok(Some(_)) = sfd.read_signal() {}
            reap(&mut sessions);
        }
        // Pending connections, newest last; walk backwards to remove in place.
        let now = Instant::now();
        for i in (0..pending.len()).rev() {
            if ready_pending.get(i).copied().unwrap_or(false) {
                let (conn, _) = pending.swap_remove(i);
                if let Some((pid, kill_on_disconnect)) = handle(&conn, &mut buf, limits, policy) {
                    sessions.push(Session {
                        pid,
                        conn,
                        kill_on_disconnect,
                    });
                }
            } else if now >= pending[i].1 + REQUEST_TIMEOUT {
                let (conn, _) = pending.swap_remove(i);
                error(&conn, 255, "no request received in time".into());
            }
        }
        if ready_listen {
            for _ in 0..MAX_PENDING {
                match wsys::fdpass::accept(listener.as_fd()) {
                    Ok(fd) => {
                        if pending.len() >= MAX_PENDING {
                            evict_oldest(&mut pending);
                        }
                        pending.push((fd, Instant::now()));
                    }
                    Err(Errno::EINTR) => continue,
                    Err(Errno::EAGAIN) | Err(Errno::ECONNABORTED) => break,
                    Err(Errno::EMFILE) | Err(Errno::ENFILE) => {
                        eprintln!("wshd: accept: out of file descriptors; pausing 100 ms");
                        paused_until = Some(Instant::now() + Duration::from_millis(100));
                        break;
                    }
                    Err(e) => {
                        eprintln!("wshd: accept: {e}");
                        break;
                    }
                }
            }
        }
        // A SIGCHLD may have arrived while sessions were being started; the
        // signalfd stays readable, so the next poll returns at once.
    }
}
