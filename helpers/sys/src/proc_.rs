//! Process attributes: prctl (name, parent-death signal, no_new_privs,
//! dumpable), signal reset before exec, close-on-exec of every inherited
//! descriptor, and the process title (argv area overwrite).

use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};

fn prctl(op: libc::c_int, arg: libc::c_ulong) -> nix::Result<()> {
    // SAFETY: the prctl options used here take integer arguments only.
    if unsafe {
        libc::prctl(
            op,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    } == -1
    {
        return Err(Errno::last());
    }
    Ok(())
}

/// `_exit(2)`: ends the process at once, without running exit handlers or
/// flushing stdio buffers (what a forked child that failed to exec must do).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// `PR_SET_NAME` (the kernel keeps the first 15 bytes; NUL bytes end it).
pub fn set_name(name: &str) -> nix::Result<()> {
    let mut buf = [0u8; 16];
    for (d, s) in buf
        .iter_mut()
        .take(15)
        .zip(name.bytes().take_while(|b| *b != 0))
    {
        *d = s;
    }
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes
    // from the pointer; `buf` is 16 bytes and its last byte is always 0.
    if unsafe { libc::prctl(libc::PR_SET_NAME, buf.as_ptr() as libc::c_ulong, 0, 0, 0) } == -1 {
        return Err(Errno::last());
    }
    Ok(())
}

/// `PR_SET_PDEATHSIG`: the signal this process gets when its parent dies
/// (`None` clears it).
pub fn set_pdeathsig(sig: Option<Signal>) -> nix::Result<()> {
    prctl(
        libc::PR_SET_PDEATHSIG,
        sig.map(|s| s as libc::c_ulong).unwrap_or(0),
    )
}

/// `PR_SET_NO_NEW_PRIVS`: execve can never grant privileges again.
pub fn set_no_new_privs() -> nix::Result<()> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1)
}

/// `PR_SET_DUMPABLE` (0 also makes /proc/PID owned by root and blocks
/// ptrace by unprivileged processes; execve of a normal binary resets it).
pub fn set_dumpable(on: bool) -> nix::Result<()> {
    prctl(libc::PR_SET_DUMPABLE, on as libc::c_ulong)
}

/// Marks every descriptor >= `first` close-on-exec (`close_range` with
/// `CLOSE_RANGE_CLOEXEC`), so an exec that follows sees only those below.
pub fn cloexec_from(first: u32) -> nix::Result<()> {
    // SAFETY: close_range only changes descriptor flags here.
    if unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) } == -1
    {
        return Err(Errno::last());
    }
    Ok(())
}

/// Closes every descriptor >= `first` (`close_range`), e.g. whatever an
/// invoker leaked into a process that is about to become container init.
pub fn close_from(first: u32) -> nix::Result<()> {
    // SAFETY: closes descriptors only; callers own no handle to those fds
    // (called first thing in main, before any OwnedFd exists above `first`).
    if unsafe { libc::close_range(first, u32::MAX, 0) } == -1 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Every catchable signal back to `SIG_DFL` and an empty signal mask: what a
/// freshly exec'd program expects (Rust's runtime ignores SIGPIPE, and
/// ignored signals survive exec).
pub fn reset_signals() {
    let dfl = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL never runs code in this process, so it
        // cannot break any invariant; failures (none expected) are ignored.
        let _ = unsafe { sigaction(sig, &dfl) };
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// Sets one signal's disposition to ignore (`SIG_IGN`) or default.
pub fn set_ignored(sig: Signal, ignore: bool) -> nix::Result<()> {
    let h = if ignore {
        SigHandler::SigIgn
    } else {
        SigHandler::SigDfl
    };
    let act = SigAction::new(h, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN / SIG_DFL run no code in this process.
    unsafe { sigaction(sig, &act) }.map(|_| ())
}

struct SpawnArgs {
    path: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
}

extern "C" fn spawn_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: runs in the vfork child on its own stack while the parent is
    // suspended; it touches only `arg` (alive in the suspended parent's
    // frame) and makes async-signal-safe syscalls: SIGPIPE back to default
    // (Rust's runtime ignores it), an empty signal mask, execve, _exit.
    unsafe {
        let a = &*(arg as *const SpawnArgs);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        libc::execve(a.path, a.argv, a.envp);
        libc::_exit(127)
    }
}

/// Runs `path` with `argv` and `env` (`KEY=VALUE`) and waits for it: a
/// vfork-style `clone(CLONE_VM | CLONE_VFORK)` whose child only resets
/// SIGPIPE and the signal mask, then execs (exit status 127 if exec fails).
/// No address-space copy, so it is cheap and adds no memory to the caller.
/// The child inherits every fd that is not close-on-exec.
pub fn spawn_wait(
    path: &std::ffi::CStr,
    argv: &[std::ffi::CString],
    env: &[std::ffi::CString],
) -> nix::Result<nix::sys::wait::WaitStatus> {
    let mut av: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    av.push(std::ptr::null());
    let mut ev: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    ev.push(std::ptr::null());
    let args = SpawnArgs {
        path: path.as_ptr(),
        argv: av.as_ptr(),
        envp: ev.as_ptr(),
    };
    let mut stack = vec![0u8; 64 * 1024];
    // SAFETY: sigset_t is plain data; zeroed and then filled by sigfillset.
    let mut all: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: plain data, written by sigprocmask.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: blocking every signal around clone means no handler of ours
    // can run in the child while it shares our memory; the old mask is
    // restored right after. The child runs `spawn_child` on `stack` (the
    // top, 16-byte aligned, as the stack grows down) and only reads `args`,
    // which outlive it because CLONE_VFORK suspends us until it execs or
    // exits.
    let pid = unsafe {
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, &mut old);
        let top = stack.as_mut_ptr().add(stack.len());
        let top = top.sub(top as usize % 16);
        let pid = libc::clone(
            spawn_child,
            top as *mut libc::c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const SpawnArgs as *mut libc::c_void,
        );
        let e = Errno::last();
        libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid == -1 {
            return Err(e);
        }
        pid
    };
    drop(stack);
    loop {
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Err(Errno::EINTR) => continue,
            r => return r,
        }
    }
}

/// Read-only, file-backed mappings of this process (its program text and
/// constants) that hold no private (anonymous) pages, from /proc/self/smaps:
/// a header `START-END PERMS OFFSET DEV INODE PATH` per mapping, then
/// `Key: value kB` lines, among them `Anonymous:`. A read-only mapping with
/// anonymous pages (e.g. RELRO after relocation) is never touched.
#[derive(Debug, Clone, Default)]
pub struct FileText {
    ranges: Vec<(usize, usize)>,
}

impl FileText {
    /// Parses /proc/self/smaps; call it while /proc is this process's.
    pub fn current() -> FileText {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
        FileText {
            ranges: parse_file_text(&smaps),
        }
    }

    /// Drops the resident pages of those mappings (`MADV_DONTNEED`), so
    /// code that only ran during start-up stops counting in RSS; what runs
    /// later is faulted back in from the page cache.
    pub fn shed(&self) {
        for &(start, end) in &self.ranges {
            // SAFETY: each range is a whole read-only, private, file-backed
            // mapping of this process (never written, never anonymous), so
            // discarding its pages loses nothing: the kernel maps them again
            // from the file on the next access.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
}

fn parse_file_text(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    // The mapping under consideration, until its Anonymous: line decides.
    let mut cur: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let Some(range) = f.first().and_then(|r| r.split_once('-')) {
            if let (Ok(a), Ok(b)) = (
                usize::from_str_radix(range.0, 16),
                usize::from_str_radix(range.1, 16),
            ) {
                let perms = f.get(1).copied().unwrap_or("");
                let file = f.get(5).is_some_and(|p| p.starts_with('/'));
                let ro_private =
                    perms.starts_with('r') && !perms.contains('w') && perms.ends_with('p');
                cur = (file && ro_private && b > a).then_some((a, b));
                continue;
            }
        }
        if f.first() == Some(&"Anonymous:") {
            if let Some(r) = cur.take() {
                if f.get(1) == Some(&"0") {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Address range of this process's argv strings (from /proc/self/stat
/// fields 48 and 49, `arg_start` and `arg_end`).
#[derive(Debug, Clone, Copy)]
pub struct ArgvArea {
    start: usize,
    end: usize,
}

impl ArgvArea {
    /// Reads the range; call it while /proc is this process's (before pivot).
    pub fn current() -> Option<ArgvArea> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Field 2 (comm) may hold spaces; fields after the last ')' are plain.
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        // rest starts at field 3, so field N is f[N - 3].
        let start = f.get(45)?.trim().parse().ok()?;
        let end = f.get(46)?.trim().parse().ok()?;
        if start == 0 || end <= start {
            return None;
        }
        Some(ArgvArea { start, end })
    }

    /// Bytes available for a title (including its terminating NUL).
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// Always false: a valid area holds at least one byte.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Overwrites the argv strings with `title` (truncated to fit) followed
    /// by NULs, so `ps` and /proc/PID/cmdline show the title.
    pub fn set_title(&self, title: &str) {
        let n = title.len().min(self.len() - 1);
        // SAFETY: [start, end) is this process's argv string area as reported
        // by the kernel: mapped, writable (initial stack) and owned by this
        // process. Nothing reads argv strings concurrently (single thread);
        // Rust's std::env::args copies are not affected in a way that matters
        // because callers parse arguments before setting the title.
        unsafe {
            let p = self.start as *mut u8;
            std::ptr::copy_nonoverlapping(title.as_ptr(), p, n);
            std::ptr::write_bytes(p.add(n), 0, self.len() - n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_area_is_readable() {
        let a = ArgvArea::current().expect("argv area");
        assert!(a.len() > 1);
    }

    #[test]
    fn spawn_wait_runs_and_reports() {
        use nix::sys::wait::WaitStatus;
        use std::ffi::CString;
        let sh = CString::new("/bin/sh").unwrap();
        let run = |script: &str| {
            let argv = [
                sh.clone(),
                CString::new("-c").unwrap(),
                CString::new(script).unwrap(),
            ];
            spawn_wait(&sh, &argv, &[CString::new("X=7").unwrap()]).unwrap()
        };
        assert!(matches!(run("exit $X"), WaitStatus::Exited(_, 7)));
        assert!(matches!(
            run("kill -9 $$"),
            WaitStatus::Signaled(_, Signal::SIGKILL, _)
        ));
        let none = CString::new("/nonexistent/x").unwrap();
        assert!(matches!(
            spawn_wait(&none, std::slice::from_ref(&none), &[]).unwrap(),
            WaitStatus::Exited(_, 127)
        ));
    }

    #[test]
    fn file_text_keeps_only_clean_read_only_file_mappings() {
        let smaps = "5555-6666 r--p 00000000 fe:00 12 /bin/x\n\
Rss: 8 kB\n\
Anonymous: 0 kB\n\
6666-7777 r-xp 00001000 fe:00 12 /bin/x\n\
Anonymous: 0 kB\n\
7000-7100 r--p 00002000 fe:00 12 /bin/x\n\
Anonymous: 4 kB\n\
7777-8888 rw-p 00002000 fe:00 12 /bin/x\n\
Anonymous: 0 kB\n\
8888-9999 rw-p 00000000 00:00 0 [heap]\n\
Anonymous: 8 kB\n\
aaaa-bbbb r-xp 00000000 00:00 0 [vdso]\n\
Anonymous: 0 kB\n\
cccc-dddd r--s 00000000 fe:00 13 /dev/shm/y\n\
Anonymous: 0 kB\n";
        assert_eq!(
            parse_file_text(smaps),
            vec![(0x5555, 0x6666), (0x6666, 0x7777)]
        );
        assert_eq!(parse_file_text(""), vec![]);
        // Shedding our own clean text is harmless: the code keeps running,
        // and relocated read-only data (RELRO) is left alone.
        let t = FileText::current();
        assert!(!t.ranges.is_empty());
        t.shed();
        assert_eq!(format!("{}", 6 * 7), "42");
    }

    #[test]
    fn cloexec_from_high_fd_is_ok() {
        cloexec_from(1000).unwrap();
    }
}
