//! Process attributes: prctl (name, parent-death signal, no_new_privs,
//! dumpable; from `nix::sys::prctl`), signal reset before exec, close-on-exec
//! of every inherited descriptor, `/proc/PID/stat`, and the process title
//! (argv area overwrite).

use nix::errno::Errno;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

pub use nix::sys::prctl::{set_dumpable, set_no_new_privs, set_pdeathsig};

/// `_exit(2)`: ends the process at once, without running exit handlers or
/// flushing stdio buffers (what a forked child that failed to exec must do).
#[allow(unsafe_code)]
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions; it never returns.
    unsafe { libc::_exit(code) }
}

/// `PR_SET_NAME` (the kernel keeps the first 15 bytes; a NUL byte ends it).
pub fn set_name(name: &str) -> nix::Result<()> {
    let mut buf = [0u8; 16];
    for (d, s) in buf
        .iter_mut()
        .take(15)
        .zip(name.bytes().take_while(|b| *b != 0))
    {
        *d = s;
    }
    let c = std::ffi::CStr::from_bytes_until_nul(&buf).map_err(|_| Errno::EINVAL)?;
    nix::sys::prctl::set_name(c)
}

/// Marks every descriptor >= `first` close-on-exec (`close_range` with
/// `CLOSE_RANGE_CLOEXEC`), so an exec that follows sees only those below.
#[allow(unsafe_code)]
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
#[allow(unsafe_code)]
pub fn close_from(first: u32) -> nix::Result<()> {
    // SAFETY: closes descriptors only; callers own no handle to those fds
    // (called first thing in main, before any OwnedFd exists above `first`).
    if unsafe { libc::close_range(first, u32::MAX, 0) } == -1 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Every catchable signal, real-time ones included, back to `SIG_DFL` and
/// an empty signal mask: what a freshly exec'd program expects (Rust's
/// runtime ignores SIGPIPE, and ignored signals survive exec). Allocates
/// nothing and makes only async-signal-safe calls, so a forked child may
/// call it before exec.
#[allow(unsafe_code)]
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
    // nix's Signal has no real-time signals.
    for sig in libc::SIGRTMIN()..=libc::SIGRTMAX() {
        // SAFETY: as above: SIG_DFL runs no code of ours.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
}

/// Sets one signal's disposition to ignore (`SIG_IGN`) or default.
#[allow(unsafe_code)]
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

/// The child side of [`spawn_wait`], on its own stack in the parent's
/// memory while the parent is suspended (`CLONE_VFORK`). It touches only
/// `arg` and makes async-signal-safe syscalls: SIGPIPE back to default
/// (Rust's runtime ignores it), an empty signal mask, execve, _exit.
#[allow(unsafe_code)]
extern "C" fn spawn_child(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `arg` is the `&SpawnArgs` that spawn_wait passed to clone; it
    // stays alive because the parent is suspended until we exec or exit.
    let a = unsafe { &*(arg as *const SpawnArgs) };
    // SAFETY: SIG_DFL runs no code; the disposition table is not shared
    // with the parent (no CLONE_SIGHAND).
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&SigSet::empty()),
        None,
    );
    // SAFETY: the three pointers come from spawn_wait: a NUL-terminated path
    // and NULL-terminated arrays of NUL-terminated strings, alive (see above).
    unsafe { libc::execve(a.path, a.argv, a.envp) };
    exit_now(127)
}

/// Runs `path` with `argv` and `env` (`KEY=VALUE`) and waits for it: a
/// vfork-style `clone(CLONE_VM | CLONE_VFORK)` whose child only resets
/// SIGPIPE and the signal mask, then execs (exit status 127 if exec fails).
/// No address-space copy, so it is cheap and adds no memory to the caller.
/// The child inherits every fd that is not close-on-exec.
///
/// Safe to call from any thread (like `posix_spawn`, which it stands in
/// for: std's `Command` would fork a full copy and pipe the exec result).
#[allow(unsafe_code)]
pub fn spawn_wait(
    path: &std::ffi::CStr,
    argv: &[std::ffi::CString],
    env: &[std::ffi::CString],
) -> nix::Result<nix::sys::wait::WaitStatus> {
    use nix::sys::signal::{sigprocmask, SigmaskHow};
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
    // The stack grows down: start at the top, 16-byte aligned.
    let top = stack.as_mut_ptr().wrapping_add(stack.len());
    let top = top.wrapping_sub(top as usize % 16);
    // Every signal blocked around clone: no handler of ours can run in the
    // child while it shares our memory; the old mask comes back right after.
    let mut old = SigSet::empty();
    sigprocmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    )?;
    // SAFETY: the child runs `spawn_child` on `stack` (allocated, at least
    // 64 KiB below `top`) and only reads `args`, which outlive it because
    // CLONE_VFORK suspends us until it execs or exits; without CLONE_SIGHAND
    // or CLONE_THREAD it is a separate process.
    let pid = unsafe {
        libc::clone(
            spawn_child,
            top.cast(),
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            &args as *const SpawnArgs as *mut libc::c_void,
        )
    };
    let e = Errno::last();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    if pid == -1 {
        return Err(e);
    }
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
    /// Parses /proc/self/smaps (empty when /proc is not a procfs).
    pub fn current() -> FileText {
        FileText {
            ranges: parse_file_text(&read_own_proc("smaps").unwrap_or_default()),
        }
    }

    /// The `(start, end)` address ranges found.
    pub fn ranges(&self) -> &[(usize, usize)] {
        &self.ranges
    }

    /// Drops the resident pages of those mappings (`MADV_DONTNEED`), so
    /// code that only ran during start-up stops counting in RSS; what runs
    /// later is faulted back in from the page cache.
    ///
    /// # Safety
    /// Every range must still be the mapping [`FileText::current`] found
    /// there: nothing may have been unmapped or mapped over it since (on an
    /// anonymous mapping, `MADV_DONTNEED` would zero live memory). Programs
    /// that never call `munmap`/`mmap` on their own text meet this.
    #[allow(unsafe_code)]
    pub unsafe fn shed(&self) {
        for &(start, end) in &self.ranges {
            // SAFETY: by the contract each range is still a whole read-only,
            // private, file-backed mapping of this process with no anonymous
            // pages (never written), so discarding its pages loses nothing:
            // the kernel maps them again from the file on the next access.
            unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
        }
    }
}

impl FileText {
    /// [`FileText::shed`], then blocks in `poll(2)` on `fds` (no timeout)
    /// until one is ready or a signal arrives; returns poll's result
    /// (negative errno on failure). Between the last `madvise` and the
    /// poll only this function's own instructions run (raw `syscall`
    /// instructions, no libc), because every page touched then is faulted
    /// back together with its neighbours (the kernel's fault-around maps a
    /// whole 64 KiB window per fault): calling into libc and back after
    /// shedding kept 4-6 such windows (256-384 kB) resident while idle.
    ///
    /// # Safety
    /// As [`FileText::shed`].
    #[allow(unsafe_code)]
    #[inline(never)]
    pub unsafe fn shed_then_poll(&self, fds: &mut [libc::pollfd]) -> isize {
        #[cfg(target_arch = "x86_64")]
        {
            for &(start, end) in &self.ranges {
                // SAFETY: as in `shed` (the caller's contract), discarding
                // these pages loses nothing; madvise reads no memory of ours.
                unsafe {
                    raw_syscall3(
                        libc::SYS_madvise as usize,
                        start,
                        end - start,
                        libc::MADV_DONTNEED as usize,
                    )
                };
            }
            // SAFETY: `fds` is a valid, exclusively borrowed array of
            // `fds.len()` pollfd structs for the whole call.
            unsafe {
                raw_syscall3(
                    libc::SYS_poll as usize,
                    fds.as_mut_ptr() as usize,
                    fds.len(),
                    usize::MAX,
                )
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            // SAFETY: the caller's contract is `shed`'s.
            unsafe { self.shed() };
            // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) as isize }
        }
    }
}

/// One raw x86_64 `syscall` instruction with three arguments (no libc, so
/// no code outside the caller's page runs): returns rax (negative errno on
/// failure).
///
/// # Safety
/// The syscall and its arguments must be sound to run, as for `libc::syscall`.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn raw_syscall3(n: usize, a1: usize, a2: usize, a3: usize) -> isize {
    let ret: isize;
    // SAFETY: the Linux x86_64 syscall ABI: number in rax, arguments in
    // rdi, rsi, rdx; the kernel clobbers rcx and r11 and returns in rax.
    // Whether the syscall itself is sound is the caller's contract.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") n as isize => ret,
            in("rdi") a1,
            in("rsi") a2,
            in("rdx") a3,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        )
    };
    ret
}

/// Reads `/proc/self/<name>` only if `/proc` is a real procfs (`fstatfs`
/// says `PROC_SUPER_MAGIC`), so what it says is the kernel's word about the
/// calling process: `/proc/self` is always the caller in whichever pid
/// namespace the procfs belongs to.
fn read_own_proc(name: &str) -> Option<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(format!("/proc/self/{name}")).ok()?;
    let fs = nix::sys::statfs::fstatfs(&f).ok()?;
    if fs.filesystem_type() != nix::sys::statfs::PROC_SUPER_MAGIC {
        return None;
    }
    let mut s = String::new();
    f.read_to_string(&mut s).ok()?;
    Some(s)
}

/// `/proc/PID/stat` (proc(5)), the one parser of it in warden-rs:
/// `pid (comm) state ppid ...`, where comm may hold spaces and parentheses,
/// so the fields after it start after the *last* `)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// Field 1.
    pub pid: i32,
    /// Field 2, without the parentheses.
    pub comm: String,
    /// Fields 3 and on.
    rest: Vec<String>,
}

impl Stat {
    /// Parses the text of a stat file.
    pub fn parse(text: &str) -> Option<Stat> {
        let open = text.find(" (")?;
        let close = text.rfind(')')?;
        if close < open {
            return None;
        }
        Some(Stat {
            pid: text[..open].trim().parse().ok()?,
            comm: text[open + 2..close].to_owned(),
            rest: text[close + 1..]
                .split_whitespace()
                .map(str::to_owned)
                .collect(),
        })
    }

    /// Reads and parses `/proc/PID/stat`; None when there is no such
    /// process (or no /proc).
    pub fn of(pid: i32) -> Option<Stat> {
        Stat::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// Field `n` as proc(5) numbers them (from 3; 1 and 2 are `pid` and
    /// `comm`).
    pub fn field(&self, n: usize) -> Option<&str> {
        self.rest.get(n.checked_sub(3)?).map(String::as_str)
    }

    fn num<T: std::str::FromStr>(&self, n: usize) -> Option<T> {
        self.field(n)?.parse().ok()
    }

    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
    pub fn state(&self) -> char {
        self.field(3).and_then(|s| s.chars().next()).unwrap_or('?')
    }

    /// A zombie or dead process: it has exited, only its entry is left.
    pub fn exited(&self) -> bool {
        matches!(self.state(), 'Z' | 'X')
    }

    /// Field 4.
    pub fn ppid(&self) -> Option<i32> {
        self.num(4)
    }

    /// Field 6.
    pub fn session(&self) -> Option<i32> {
        self.num(6)
    }

    /// Field 20.
    pub fn num_threads(&self) -> Option<u64> {
        self.num(20)
    }

    /// Field 22: clock ticks after boot when the process started (with the
    /// pid, a process's identity that survives pid reuse).
    pub fn start_time(&self) -> Option<u64> {
        self.num(22)
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
    /// Reads the range; None when /proc is not a procfs (e.g. after
    /// pivot_root into a root without one) or reports no area.
    pub fn current() -> Option<ArgvArea> {
        let st = Stat::parse(&read_own_proc("stat")?)?;
        let start = st.num(48)?;
        let end = st.num(49)?;
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
    ///
    /// # Safety
    /// No other thread may read the argv strings during the call (Rust's
    /// `std::env::args` reads them), and `self` must describe the calling
    /// process (an `ArgvArea` found before a fork describes the child too).
    /// Arguments read after the call show the title.
    #[allow(unsafe_code)]
    pub unsafe fn set_title(&self, title: &str) {
        let n = title.len().min(self.len() - 1);
        let p = self.start as *mut u8;
        // SAFETY: [start, end) is this process's argv string area as reported
        // by the kernel: mapped, writable (initial stack) and not a Rust
        // object; `n < len`, and nothing reads it concurrently (contract).
        unsafe { std::ptr::copy_nonoverlapping(title.as_ptr(), p, n) };
        // SAFETY: as above; `n + (len - n)` bytes stay inside the area.
        unsafe { std::ptr::write_bytes(p.wrapping_add(n), 0, self.len() - n) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_area_holds_our_arguments() {
        let a = ArgvArea::current().expect("argv area");
        // The area holds every argument and its terminating NUL.
        let want: usize = std::env::args_os().map(|x| x.len() + 1).sum();
        assert_eq!(a.len(), want);
    }

    #[test]
    fn stat_parses_odd_names_and_ourselves() {
        let st =
            Stat::parse("42 (a b) (c)) S 1 42 42 0 -1 4194560 9 0 0 0 0 0 0 0 20 0 3 0 1234 5")
                .unwrap();
        assert_eq!((st.pid, st.comm.as_str()), (42, "a b) (c)"));
        assert_eq!(
            (st.state(), st.ppid(), st.session()),
            ('S', Some(1), Some(42))
        );
        assert_eq!((st.num_threads(), st.start_time()), (Some(3), Some(1234)));
        assert_eq!(st.field(2), None);
        assert!(!st.exited());
        assert!(Stat::parse("7 (x) Z 1").unwrap().exited());
        assert_eq!(Stat::parse("garbage"), None);
        let me = Stat::of(std::process::id() as i32).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert_eq!(me.ppid(), Some(nix::unistd::getppid().as_raw()));
        assert!(me.num_threads().unwrap() >= 1);
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
    }
}
