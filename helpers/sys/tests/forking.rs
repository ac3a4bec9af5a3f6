//! wsys tests that fork. `fork` is only sound in a single-threaded process,
//! and libtest runs tests on threads, so this binary has no harness
//! (`harness = false` in Cargo.toml): `main` runs every case in turn on
//! the one thread there is, after checking that it is the only one.
#![allow(unsafe_code)]

use nix::errno::Errno;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use wsys::ns::Forked;
use wsys::proc_::{exit_now, Stat};

/// Runs `f` in a forked child and returns how the child ended; `f`'s
/// `true` is exit 0, `false` exit 1 (a panic in the child aborts it).
fn in_child(f: impl FnOnce() -> bool) -> WaitStatus {
    // SAFETY: main checked that this process has one thread, and no case
    // starts one.
    match unsafe { wsys::ns::fork() }.expect("fork") {
        Forked::Child => {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(false);
            exit_now(if ok { 0 } else { 1 })
        }
        Forked::Parent(pid) => waitpid(Pid::from_raw(pid), None).expect("waitpid"),
    }
}

fn assert_child_ok(f: impl FnOnce() -> bool) {
    match in_child(f) {
        WaitStatus::Exited(_, 0) => {}
        st => panic!("child failed: {st:?}"),
    }
}

fn fork_reports_child_exit() {
    assert!(matches!(in_child(|| exit_now(7)), WaitStatus::Exited(_, 7)));
}

fn clone_fork_creates_namespaces() {
    let host = nix::unistd::gethostname().unwrap();
    // SAFETY: single-threaded (see in_child).
    match unsafe { wsys::ns::clone_fork(nix::sched::CloneFlags::CLONE_NEWUTS) } {
        Ok(Forked::Child) => {
            let ok = nix::unistd::sethostname("wsys-forking-test").is_ok()
                && nix::unistd::gethostname().unwrap() == "wsys-forking-test";
            exit_now(if ok { 0 } else { 1 })
        }
        Ok(Forked::Parent(pid)) => {
            let st = waitpid(Pid::from_raw(pid), None).unwrap();
            assert_eq!(st, WaitStatus::Exited(Pid::from_raw(pid), 0));
        }
        // Without CAP_SYS_ADMIN the kernel refuses a new namespace.
        Err(e) => assert!(
            !nix::unistd::geteuid().is_root() && e == Errno::EPERM,
            "{e}"
        ),
    }
    assert_eq!(nix::unistd::gethostname().unwrap(), host);
}

fn sh(script: &str) -> (CString, [CString; 3]) {
    let path = CString::new("/bin/sh").unwrap();
    let argv = [
        CString::new("sh").unwrap(),
        CString::new("-c").unwrap(),
        CString::new(script).unwrap(),
    ];
    (path, argv)
}

fn held_child_runs_only_after_release() {
    use wsys::spawn::{spawn_held, HeldSpec};
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    // A leaked descriptor (not close-on-exec) the command must not get.
    let leak = nix::unistd::dup(w.as_raw_fd()).unwrap();
    let (path, argv) = sh("echo ran; ls /proc/self/fd | wc -l >&2; trap");
    // SAFETY: single-threaded (see in_child).
    let mut c = unsafe {
        spawn_held(&HeldSpec {
            path: &path,
            argv: &argv,
            stdout: w.as_fd(),
            stderr: w.as_fd(),
            die_with_parent: true,
        })
    }
    .unwrap();
    drop(w);
    nix::unistd::close(leak).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(
        wsys::event::bytes_readable(r.as_fd()).unwrap(),
        0,
        "ran before release"
    );
    assert!(c.is_held());
    c.release().unwrap();
    assert!(!c.is_held());
    c.release().unwrap();
    let mut s = String::new();
    std::fs::File::from(r).read_to_string(&mut s).unwrap();
    let st = waitpid(Pid::from_raw(c.pid()), None).unwrap();
    assert_eq!(st, WaitStatus::Exited(Pid::from_raw(c.pid()), 0));
    // "ran", the fd count of `ls` (0, 1, 2 and its own dir fd), and no
    // trap: Rust's ignored SIGPIPE was reset to default.
    assert_eq!(s, "ran\n4\n");
}

fn held_child_reports_exec_failure() {
    use wsys::spawn::{spawn_held, HeldSpec};
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let path = CString::new("/nonexistent/x").unwrap();
    // SAFETY: single-threaded (see in_child).
    let mut c = unsafe {
        spawn_held(&HeldSpec {
            path: &path,
            argv: std::slice::from_ref(&path),
            stdout: w.as_fd(),
            stderr: w.as_fd(),
            die_with_parent: false,
        })
    }
    .unwrap();
    drop(w);
    c.release().unwrap();
    let mut s = String::new();
    std::fs::File::from(r).read_to_string(&mut s).unwrap();
    let st = waitpid(Pid::from_raw(c.pid()), None).unwrap();
    assert_eq!(st, WaitStatus::Exited(Pid::from_raw(c.pid()), 127));
    assert_eq!(
        s,
        format!("iomux-spawn: exec failed: errno {}\n", libc::ENOENT)
    );
}

fn seccomp_filter_applies_in_child() {
    use wsys::seccomp::{install, Insn};
    const RET_ALLOW: u32 = 0x7fff_0000;
    let stmt = |code, k| Insn {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    // dup() fails with ENOMSG (42), everything else is allowed.
    let prog = [
        stmt(0x20, 0), // ld [nr]
        Insn {
            code: 0x15,
            jt: 0,
            jf: 1,
            k: libc::SYS_dup as u32,
        }, // jeq
        stmt(0x06, libc::SECCOMP_RET_ERRNO | 42),
        stmt(0x06, RET_ALLOW),
    ];
    assert_child_ok(|| {
        wsys::seccomp::mode() == Some(0)
            && wsys::proc_::set_no_new_privs().is_ok()
            && install(&prog).is_ok()
            && wsys::seccomp::mode() == Some(2)
            && nix::unistd::dup(2) == Err(Errno::ENOMSG)
    });
    // The parent is unaffected.
    let d = nix::unistd::dup(2).unwrap();
    nix::unistd::close(d).unwrap();
}

fn cloexec_from_marks_only_higher_fds() {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    assert_child_ok(|| {
        let cloexec = |fd| {
            FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD).unwrap())
                .contains(FdFlag::FD_CLOEXEC)
        };
        let (r, _w) = nix::unistd::pipe().unwrap();
        let low = nix::unistd::dup2(r.as_raw_fd(), 500).unwrap();
        let high = nix::unistd::dup2(r.as_raw_fd(), 1000).unwrap();
        let before = !cloexec(low) && !cloexec(high);
        wsys::proc_::cloexec_from(1000).unwrap();
        before && !cloexec(low) && cloexec(high)
    });
}

/// Resident kB of the mappings in `ranges` (from /proc/self/smaps).
fn rss_of(ranges: &[(usize, usize)]) -> u64 {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
    let mut total = 0;
    let mut on = false;
    for l in smaps.lines() {
        if let Some((a, _)) = l.split_once('-') {
            if let Ok(a) = usize::from_str_radix(a, 16) {
                on = ranges.iter().any(|r| r.0 == a);
                continue;
            }
        }
        if let (true, Some(v)) = (on, l.strip_prefix("Rss:")) {
            total += v.trim().trim_end_matches(" kB").parse::<u64>().unwrap();
        }
    }
    total
}

/// Reads one byte of every page of `ranges`, so the whole text is resident
/// before a shed: what earlier cases shed and faulted back must not decide
/// whether `after < before` (one shed before this left only the pages the
/// measuring code needs, which it faults back itself).
fn fault_in(ranges: &[(usize, usize)]) {
    for &(start, end) in ranges {
        for a in (start..end).step_by(4096) {
            // SAFETY: `a` lies in a readable mapping of this process's own
            // text (FileText's ranges), which is never unmapped.
            unsafe { std::ptr::read_volatile(a as *const u8) };
        }
    }
}

fn file_text_shed_drops_resident_text() {
    // In this (single-threaded) harness process, not a forked child: a fork
    // does not inherit the parent's page-table entries for file-backed text,
    // so a child's text RSS holds only the pages it touched itself, which
    // made `after < before` depend on what happened to run first.
    let t = wsys::proc_::FileText::current();
    let ranges = t.ranges();
    fault_in(ranges);
    let before = rss_of(ranges);
    // SAFETY: this program never maps over or unmaps its text, and has one
    // thread (checked in main).
    unsafe { t.shed() };
    let after = rss_of(ranges);
    // Less of it resident than before; the code that ran since was faulted
    // back in from the file.
    assert!(
        !ranges.is_empty() && after < before,
        "resident text {before} kB -> {after} kB"
    );
}

fn file_text_shed_then_poll_drops_text_and_polls() {
    // A pipe that is readable already: the poll returns at once.
    let (r, w) = nix::unistd::pipe().unwrap();
    nix::unistd::write(&w, b"x").unwrap();
    let t = wsys::proc_::FileText::current();
    let ranges = t.ranges();
    fault_in(ranges);
    let before = rss_of(ranges);
    let mut fds = [libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&r),
        events: libc::POLLIN,
        revents: 0,
    }];
    // SAFETY: this program never maps over or unmaps its text, and has one
    // thread (checked in main).
    let n = unsafe { t.shed_then_poll(&mut fds) };
    let after = rss_of(ranges);
    assert_eq!((n, fds[0].revents & libc::POLLIN), (1, libc::POLLIN));
    // Dropped, then only what ran since came back (how little stays while
    // blocked is measured from outside: wshd's serves_after_idle_text_shedding).
    assert!(
        !ranges.is_empty() && after < before,
        "resident text {before} kB -> {after} kB"
    );
}

fn set_title_shows_in_cmdline() {
    assert_child_ok(|| {
        let a = wsys::proc_::ArgvArea::current().unwrap();
        // SAFETY: single-threaded; the area is this (forked) process's.
        unsafe { a.set_title("wsys: title") };
        let cmdline = std::fs::read("/proc/self/cmdline").unwrap();
        let mut want = b"wsys: title".to_vec();
        want.resize(a.len(), 0);
        cmdline == want && std::env::args().next().as_deref() == Some("wsys: title")
    });
}

fn main() {
    let me = Stat::of(std::process::id() as i32).expect("/proc/self/stat");
    assert_eq!(me.num_threads(), Some(1), "must run single-threaded");
    let cases: &[(&str, fn())] = &[
        ("fork_reports_child_exit", fork_reports_child_exit),
        (
            "clone_fork_creates_namespaces",
            clone_fork_creates_namespaces,
        ),
        (
            "file_text_shed_then_poll_drops_text_and_polls",
            file_text_shed_then_poll_drops_text_and_polls,
        ),
        (
            "held_child_runs_only_after_release",
            held_child_runs_only_after_release,
        ),
        (
            "held_child_reports_exec_failure",
            held_child_reports_exec_failure,
        ),
        (
            "seccomp_filter_applies_in_child",
            seccomp_filter_applies_in_child,
        ),
        (
            "cloexec_from_marks_only_higher_fds",
            cloexec_from_marks_only_higher_fds,
        ),
        (
            "file_text_shed_drops_resident_text",
            file_text_shed_drops_resident_text,
        ),
        ("set_title_shows_in_cmdline", set_title_shows_in_cmdline),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for (name, case) in cases {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(case) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 101 });
}
