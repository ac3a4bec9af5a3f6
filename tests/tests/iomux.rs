//! End-to-end tests of iomux-spawn and iomux-link (real processes, root).
//!
//! Each test works in its own scratch directory and kills the spawners it
//! started on the way out (Cleanup guards), also when it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use warden_tests::iomux::{ended_job, link, link_cmd, pattern, spawn, write_file, Scene, Spawned};
use warden_tests::{alive, bin, require_root, run, scratch, wait_for, Cleanup};

#[test]
fn lines_streams_stdin_and_status() {
    require_root();
    let (dir, mut c) = scratch("iomux-basic");
    let job = dir.join("job");
    let mut sp = spawn(&mut c, &[], &job, &["sh"], Stdio::piped());
    // The script arrives on iomux-spawn's stdin, which the job inherits.
    let mut stdin = sp.child.stdin.take().unwrap();
    stdin
        .write_all(b"echo out; echo err >&2; echo more; exit 3\n")
        .unwrap();
    drop(stdin);
    // Held: the child exists but has not run the script yet.
    assert!(alive(sp.child_pid));
    for s in ["stdout.sock", "stderr.sock", "status.sock"] {
        assert!(job.join(s).exists(), "{s} missing");
    }
    let (code, out, err) = link(&job, None);
    assert_eq!(code, 3, "stderr: {}", String::from_utf8_lossy(&err));
    assert_eq!(out, b"out\nmore\n");
    assert_eq!(err, b"err\n");
    // `child active`, then EOF: it let go of our pipe.
    assert_eq!(sp.rest(), "child active\n");
    assert_eq!(
        std::fs::read_to_string(job.join("exit_status")).unwrap(),
        "3\nexited 3\n"
    );
    // Its linker had the status: with the default flags (a 30 s linger for
    // late linkers) it exits 0 at once and removes its sockets.
    let t0 = std::time::Instant::now();
    let st = sp.child.wait().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "iomux-spawn lingered {:?} after its linker had the status",
        t0.elapsed()
    );
    assert_eq!(st.code(), Some(0));
    assert!(!job.join("stdout.sock").exists());
    assert!(job.join("exit_status").exists());
}

/// A caller waiting for iomux-spawn (warden's C contract) waits for the job
/// and its linker only, also when the linker got the status while the job's
/// output was still on its way and a second linker came and went.
#[test]
fn spawner_exits_once_a_linker_had_the_status() {
    require_root();
    let mut sc = Scene::new("iomux-exit", 4 << 20, 11);
    let script = format!("cat {}; exit 4", sc.file.display());
    let mut sp = spawn(
        &mut sc.cleanup,
        &[],
        &sc.job,
        &["sh", "-c", &script],
        Stdio::null(),
    );
    let (code, out, err) = link(&sc.job, None);
    assert_eq!(code, 4, "stderr: {}", String::from_utf8_lossy(&err));
    assert!(out == sc.data, "stdout differs from the data");
    let t0 = std::time::Instant::now();
    let st = sp.child.wait().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "iomux-spawn lingered {:?}",
        t0.elapsed()
    );
    assert_eq!(st.code(), Some(0));
    // A linker that leaves before the status does not end the linger:
    // the output stays for the next one, who gets all of it.
    let (dir, mut c2) = scratch("iomux-exit2");
    let job = dir.join("job");
    let go = dir.join("go");
    let script = format!(
        "echo early; while [ ! -e {} ]; do sleep 0.01; done; echo late; exit 6",
        go.display()
    );
    let mut sp = spawn(&mut c2, &[], &job, &["sh", "-c", &script], Stdio::null());
    let mut l = link_cmd(&job, None)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c2.kill_pid(l.id() as i32);
    let mut line = [0u8; 6];
    l.stdout.as_mut().unwrap().read_exact(&mut line).unwrap();
    assert_eq!(&line, b"early\n");
    sigterm(l.id());
    l.wait().unwrap();
    write_file(&go, b"");
    assert!(wait_for(Duration::from_secs(10), || job
        .join("exit_status")
        .exists()));
    assert!(
        alive(sp.pid()),
        "spawner left before any linker had the status"
    );
    let (code, out, _) = link(&job, None);
    assert_eq!((code, &out[..]), (6, &b"early\nlate\n"[..]));
    let t0 = std::time::Instant::now();
    assert_eq!(sp.child.wait().unwrap().code(), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(10));
}

/// How a job ended, as iomux-link's status, its output and `exit_status`.
#[test]
fn jobs_end_with_their_status() {
    require_root();
    // (script, status, stdout, stderr, exit_status file)
    let cases: &[(&str, i32, &str, &str, &str)] = &[
        ("echo ok", 0, "ok\n", "", "0\nexited 0\n"),
        ("echo e >&2; exit 255", 255, "", "e\n", "255\nexited 255\n"),
        (
            "echo before; kill -9 $$; echo after",
            137,
            "before\n",
            "",
            "137\nsignaled 9\n",
        ),
        ("kill -15 $$", 143, "", "", "143\nsignaled 15\n"),
        // The exit status of the job itself, not of what it left behind.
        ("sleep 5 & exit 7", 7, "", "", "7\nexited 7\n"),
    ];
    for (script, status, out, err, file) in cases {
        let (dir, mut c) = scratch("iomux-status");
        let job = dir.join("job");
        let _sp = spawn(
            &mut c,
            &["--linger", "1"],
            &job,
            &["sh", "-c", script],
            Stdio::null(),
        );
        let (code, o, e) = link(&job, None);
        assert_eq!(
            (
                code,
                String::from_utf8_lossy(&o),
                String::from_utf8_lossy(&e)
            ),
            (*status, (*out).into(), (*err).into()),
            "{script}"
        );
        assert_eq!(
            std::fs::read_to_string(job.join("exit_status")).unwrap(),
            *file,
            "{script}"
        );
    }
}

#[test]
fn eight_mib_on_both_streams_byte_exact() {
    require_root();
    let mut sc = Scene::new("iomux-8m", 8 << 20, 7);
    let script = format!("cat {0} & cat {0} >&2; wait", sc.file.display());
    let _sp = sc.spawn(&["--linger", "1"], &script);
    let (code, out, err) = link(&sc.job, None);
    let data = &sc.data;
    assert_eq!(code, 0);
    assert!(out == *data, "stdout differs ({} bytes)", out.len());
    assert!(err == *data, "stderr differs ({} bytes)", err.len());
}

#[test]
fn two_linkers_both_get_everything() {
    require_root();
    let mut sc = Scene::new("iomux-two", 2 << 20, 11);
    // The job starts writing once both linkers are attached.
    let script = format!("{}; echo done >&2", sc.cat_after_go());
    // The ring holds all of it: a linker whose HELLO is processed a little
    // later still starts at byte 0.
    let sp = sc.spawn(&["--ring-size", "4194304", "--linger", "1"], &script);
    let (job, data, c) = (sc.job.clone(), sc.data.clone(), &mut sc.cleanup);
    let mk = || {
        link_cmd(&job, None)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start iomux-link")
    };
    let a = mk();
    c.kill_pid(a.id() as i32);
    let b = mk();
    c.kill_pid(b.id() as i32);
    // Both are connected once the spawner has five or six sockets open
    // besides its listeners: wait until it shows them.
    assert!(wait_for(Duration::from_secs(10), || {
        count_sockets(sp.pid()) >= 3 + 6
    }));
    write_file(&sc.go, b"");
    // Read both at once: the slower linker holds the job back (flow
    // control), so reading one after the other would deadlock.
    let ta = std::thread::spawn(move || a.wait_with_output().unwrap());
    let tb = std::thread::spawn(move || b.wait_with_output().unwrap());
    for t in [ta, tb] {
        let o = t.join().unwrap();
        assert_eq!(o.status.code(), Some(0));
        assert!(o.stdout == data, "a linker's stdout differs");
        assert_eq!(o.stderr, b"done\n");
    }
}

fn count_sockets(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .map(|l| l.to_string_lossy().starts_with("socket:"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

fn sigterm(pid: u32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
}

#[test]
fn linker_stopped_mid_stream_resumes_exactly() {
    require_root();
    let mut sc = Scene::new("iomux-resume", 8 << 20, 3);
    let cursors = sc.dir.join("cursors");
    // The ring holds the whole output, so nothing may be dropped between
    // the two links; the linker's stdout is a pipe we read slowly, so many
    // bytes are in flight when it is stopped.
    // The job ends only once the first linker has been stopped, so that one
    // never holds the status (linker_stopped_after_the_status_... is the
    // case where it does).
    let script = format!(
        "cat {}; while [ ! -e {} ]; do sleep 0.01; done; exit 4",
        sc.file.display(),
        sc.go.display()
    );
    // A linger long enough for a loaded machine: the spawner leaves as soon
    // as the second linker has the status anyway (checked at the end).
    let mut sp = sc.spawn(&["--ring-size", "16777216", "--linger", "60"], &script);
    let (job, data, c) = (sc.job.clone(), sc.data.clone(), &mut sc.cleanup);
    let mut l1 = link_cmd(&job, Some(&cursors))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.kill_pid(l1.id() as i32);
    let mut first = vec![0u8; 1 << 20];
    l1.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    sigterm(l1.id());
    // Whatever it wrote to the pipe before it stopped belongs to part one.
    let mut tail = Vec::new();
    l1.stdout.as_mut().unwrap().read_to_end(&mut tail).unwrap();
    first.extend_from_slice(&tail);
    let st = l1.wait().unwrap();
    assert_eq!(st.code(), Some(128 + 15));
    let saved = std::fs::read_to_string(&cursors).unwrap();
    assert_eq!(
        saved,
        format!("iomux-cursors 1\nstdout {}\nstderr 0\n", first.len())
    );
    write_file(&sc.go, b"");
    assert!(
        first.len() < data.len(),
        "stopped too late to test anything"
    );
    let (code, second, err) = link(&job, Some(&cursors));
    assert_eq!(code, 4, "{}", String::from_utf8_lossy(&err));
    assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
    first.extend_from_slice(&second);
    assert!(
        first == data,
        "joined output differs ({} bytes)",
        first.len()
    );
    // The first linker left without the status, so the spawner stayed for
    // the second; that one had the status, so the spawner is done.
    assert_eq!(sp.child.wait().unwrap().code(), Some(0));
}

/// Issue 12: a linker that received the status and was then stopped
/// before it wrote everything out does not make iomux-spawn leave: the rest
/// is kept for a linker that resumes from the saved cursors, and iomux-spawn
/// leaves once that one has written the output out.
#[test]
fn linker_stopped_after_the_status_leaves_the_rest_for_the_next() {
    require_root();
    let mut sc = Scene::new("iomux-resume-st", 8 << 20, 3);
    let cursors = sc.dir.join("cursors");
    // The job ends at once; the whole output fits in the ring, and the
    // first linker's stdout is a pipe read slowly, so it holds the status
    // long before it has written the output out.
    let script = format!("cat {}; exit 4", sc.file.display());
    let mut sp = sc.spawn(&["--ring-size", "16777216", "--linger", "60"], &script);
    let (job, data, c) = (sc.job.clone(), sc.data.clone(), &mut sc.cleanup);
    let mut l1 = link_cmd(&job, Some(&cursors))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.kill_pid(l1.id() as i32);
    let mut first = vec![0u8; 1 << 20];
    l1.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert!(wait_for(Duration::from_secs(10), || job
        .join("exit_status")
        .exists()));
    // STATUS goes out right after exit_status is written.
    std::thread::sleep(Duration::from_millis(300));
    sigterm(l1.id());
    let mut tail = Vec::new();
    l1.stdout.as_mut().unwrap().read_to_end(&mut tail).unwrap();
    first.extend_from_slice(&tail);
    assert_eq!(l1.wait().unwrap().code(), Some(128 + 15));
    assert!(
        first.len() < data.len(),
        "stopped too late to test anything"
    );
    // iomux-spawn is still there for the rest.
    std::thread::sleep(Duration::from_millis(300));
    assert!(sp.child.try_wait().unwrap().is_none(), "iomux-spawn left");
    let (code, second, err) = link(&job, Some(&cursors));
    assert_eq!(code, 4, "{}", String::from_utf8_lossy(&err));
    assert!(err.is_empty(), "{}", String::from_utf8_lossy(&err));
    first.extend_from_slice(&second);
    assert!(
        first == data,
        "joined output differs ({} bytes)",
        first.len()
    );
    // Status and all output delivered: it leaves without the 60 s linger.
    let t = std::time::Instant::now();
    assert_eq!(sp.child.wait().unwrap().code(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
}

/// `iomux-link --wait MS` started before iomux-spawn has made its job
/// directory retries until the sockets are there, then gets everything;
/// without `--wait`, or when MS pass first, it exits 255 at once.
#[test]
fn linker_with_wait_may_start_before_the_spawner() {
    require_root();
    let mut sc = Scene::new("iomux-wait", 256 << 10, 4);
    let (job, data) = (sc.job.clone(), sc.data.clone());
    let (code, _, err) = link(&job, None);
    assert_eq!(code, 255, "{}", String::from_utf8_lossy(&err));
    let t = std::time::Instant::now();
    let (code, _, err) = run(link_cmd(&job, None).arg("--wait=300").stdin(Stdio::null()));
    assert_eq!(code, 255, "{}", String::from_utf8_lossy(&err));
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    let l = link_cmd(&job, None)
        .arg("--wait=20000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    sc.cleanup.kill_pid(l.id() as i32);
    std::thread::sleep(Duration::from_millis(200));
    let script = format!("cat {}; exit 6", sc.file.display());
    let mut sp = sc.spawn(&[], &script);
    let out = l.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "{} bytes", out.stdout.len());
    assert_eq!(sp.child.wait().unwrap().code(), Some(0));
}

#[test]
fn overflow_while_detached_is_reported_and_rest_exact() {
    require_root();
    let mut sc = Scene::new("iomux-overflow", 1 << 20, 5);
    let cursors = sc.dir.join("cursors");
    let script = format!("echo first; {}", sc.cat_after_go());
    let _sp = sc.spawn(&["--ring-size", "65536", "--linger", "60"], &script);
    let (job, data, c) = (sc.job.clone(), sc.data.clone(), &mut sc.cleanup);
    let mut l1 = link_cmd(&job, Some(&cursors))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.kill_pid(l1.id() as i32);
    let mut line = [0u8; 6];
    l1.stdout.as_mut().unwrap().read_exact(&mut line).unwrap();
    assert_eq!(&line, b"first\n");
    sigterm(l1.id());
    assert_eq!(l1.wait().unwrap().code(), Some(143));
    // Nobody attached: the job writes 1 MiB through a 64 KiB ring.
    write_file(&sc.go, b"");
    assert!(wait_for(Duration::from_secs(10), || job
        .join("exit_status")
        .exists()));
    let (code, out, err) = link(&job, Some(&cursors));
    assert_eq!(code, 0);
    let err = String::from_utf8(err).unwrap();
    let lost: usize = err
        .strip_prefix("iomux-link: stdout: ")
        .and_then(|e| e.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no loss report: {err:?}"));
    assert_eq!(out.len(), 65536, "the ring's newest bytes");
    assert_eq!(6 + lost + out.len(), 6 + data.len());
    assert!(out[..] == data[data.len() - 65536..]);
}

#[test]
fn late_linkers_get_output_and_status_after_the_job_ended() {
    require_root();
    let (dir, mut c) = scratch("iomux-late");
    let job = dir.join("job");
    // --hold 0: nobody links before the job runs and ends.
    let mut sp = ended_job(&mut c, &job, "echo hi; echo ho >&2; exit 5");
    assert!(alive(sp.pid()), "the output was not kept for a late linker");
    let (code, out, err) = link(&job, None);
    assert_eq!((code, &out[..], &err[..]), (5, &b"hi\n"[..], &b"ho\n"[..]));
    // That linker had the status: the spawner is done.
    assert_eq!(sp.child.wait().unwrap().code(), Some(0));
    assert!(!job.join("status.sock").exists());
}

#[test]
fn spawner_survives_its_parent_and_own_session() {
    require_root();
    let (dir, mut c) = scratch("iomux-orphan");
    let job = dir.join("job");
    let pidfile = dir.join("pid");
    // The shell starts iomux-spawn in the background and exits at once.
    let sh = format!(
        "{} --linger 1 {} sh -c 'echo alive; exit 2' >/dev/null 2>&1 & echo $! > {}",
        bin("iomux-spawn").display(),
        job.display(),
        pidfile.display()
    );
    let (code, _, _) = run(Command::new("sh").arg("-c").arg(&sh));
    assert_eq!(code, 0);
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    c.kill_pid(pid);
    assert!(wait_for(Duration::from_secs(10), || job
        .join("status.sock")
        .exists()));
    assert!(alive(pid));
    // Its own session: session id == its pid.
    let stat = wsys::proc_::Stat::of(pid).unwrap();
    assert_eq!(stat.session(), Some(pid), "session id");
    let (code, out, _) = link(&job, None);
    assert_eq!((code, &out[..]), (2, &b"alive\n"[..]));
}

#[test]
fn child_gets_exactly_fds_0_1_2() {
    require_root();
    let (dir, mut c) = scratch("iomux-fds");
    let job = dir.join("job");
    // fd 7 is open (not close-on-exec) in iomux-spawn; the job must not
    // see it, nor the sockets and pipes of iomux-spawn.
    let sh = format!(
        "exec 7</dev/null; exec {} --linger 1 {} ls /proc/self/fd",
        bin("iomux-spawn").display(),
        job.display()
    );
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&sh)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    c.kill_pid(child.id() as i32);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(line.starts_with("child_pid="), "{line:?}");
    let (code, out, _) = link(&job, None);
    assert_eq!(code, 0);
    // 0, 1, 2 and the directory ls reads.
    assert_eq!(String::from_utf8(out).unwrap(), "0\n1\n2\n3\n");
    // iomux-spawn (exec'd by sh) exits once its linker had the status.
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn linker_with_closed_stdout_exits_cleanly_and_job_survives() {
    require_root();
    let (dir, mut c) = scratch("iomux-epipe");
    let job = dir.join("job");
    let cursors = dir.join("cursors");
    let _sp = spawn(
        &mut c,
        &["--ring-size", "4194304", "--linger", "60"],
        &job,
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 20000 ]; do echo line $i; i=$((i+1)); done; exit 6",
        ],
        Stdio::null(),
    );
    let mut l1 = link_cmd(&job, Some(&cursors))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.kill_pid(l1.id() as i32);
    let mut first = [0u8; 7];
    l1.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    assert_eq!(&first, b"line 0\n");
    drop(l1.stdout.take()); // EPIPE for the linker
    assert_eq!(l1.wait().unwrap().code(), Some(141));
    let (code, out, _) = link(&job, None);
    assert_eq!(code, 6);
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with("line 19999\n"));
    assert_eq!(text.lines().count(), 20000);
}

#[test]
fn bad_arguments_fail_with_one_line_and_leave_nothing() {
    require_root();
    let (dir, _c) = scratch("iomux-bad");
    let check = |args: &[&std::ffi::OsStr], what: &str| {
        let (code, out, err) = run(Command::new(bin("iomux-spawn"))
            .args(args)
            .stdin(Stdio::null()));
        let err = String::from_utf8(err).unwrap();
        assert_ne!(code, 0, "{what}");
        assert!(out.is_empty(), "{what}: stdout {out:?}");
        assert_eq!(err.lines().count(), 1, "{what}: {err:?}");
        assert!(err.starts_with("iomux-spawn: "), "{what}: {err:?}");
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    let missing = dir.join("no/such/dir");
    check(&[missing.as_os_str(), &os("true")], "missing parent");
    assert!(!dir.join("no").exists());
    let file = dir.join("file");
    write_file(&file, b"");
    check(&[file.as_os_str(), &os("true")], "not a directory");
    let newdir = dir.join("new");
    check(
        &[newdir.as_os_str(), &os("no-such-command-xyz")],
        "command not found",
    );
    assert!(!newdir.exists(), "created dir left behind");
    let long = dir.join("x".repeat(120));
    check(&[long.as_os_str(), &os("true")], "socket path too long");
    assert!(!long.exists());
    // Usage errors: tests/tests/usage.rs.
    let entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(entries, vec![file]);
    // iomux-link: nothing to attach to: 255 with a message.
    let (code, _, err) = link(&dir, None);
    assert_eq!(code, 255);
    assert!(String::from_utf8(err).unwrap().starts_with("iomux-link: "));
}

#[test]
fn a_live_spawner_directory_is_not_taken_over() {
    require_root();
    let (dir, mut c) = scratch("iomux-inuse");
    let job = dir.join("job");
    let _sp = spawn(&mut c, &["--linger", "1"], &job, &["true"], Stdio::null());
    let (code, _, err) = run(Command::new(bin("iomux-spawn"))
        .arg(&job)
        .arg("true")
        .stdin(Stdio::null()));
    assert_ne!(code, 0);
    assert!(String::from_utf8(err)
        .unwrap()
        .contains("running iomux-spawn"));
    let (code, _, _) = link(&job, None);
    assert_eq!(code, 0);
}

#[test]
fn removing_the_directory_ends_a_lingering_spawner() {
    require_root();
    let (dir, mut c) = scratch("iomux-rmdir");
    let job = dir.join("job");
    let mut sp = spawn(
        &mut c,
        &["--linger", "600"],
        &job,
        &["sh", "-c", "exit 0"],
        Stdio::null(),
    );
    let (code, _, _) = link(&job, None);
    assert_eq!(code, 0);
    std::fs::remove_dir_all(&job).unwrap();
    assert!(wait_for(Duration::from_secs(5), || !alive(sp.pid())));
    assert_eq!(sp.child.wait().unwrap().code(), Some(0));
}

#[test]
fn job_is_held_until_a_linker_attaches() {
    require_root();
    let (dir, mut c) = scratch("iomux-hold");
    let job = dir.join("job");
    let mark = dir.join("ran");
    let mut sp = spawn(
        &mut c,
        &["--linger", "1"],
        &job,
        &["touch", mark.to_str().unwrap()],
        Stdio::null(),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(!mark.exists(), "the job ran before any linker attached");
    let (code, _, _) = link(&job, None);
    assert_eq!(code, 0);
    assert!(mark.exists());
    assert_eq!(sp.rest(), "child active\n");
}

/// A job that prints "started" and sleeps, and a linker that has copied
/// that line (so it is attached and streaming).
fn linked_sleeper(c: &mut Cleanup, job: &Path, linger: &str) -> (Spawned, Child) {
    let sp = spawn(
        c,
        &["--linger", linger],
        job,
        &["sh", "-c", "echo started; exec sleep 30"],
        Stdio::null(),
    );
    let mut l = link_cmd(job, None)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.kill_pid(l.id() as i32);
    let mut line = [0u8; 8];
    l.stdout.as_mut().unwrap().read_exact(&mut line).unwrap();
    assert_eq!(&line, b"started\n");
    (sp, l)
}

#[test]
fn linker_reports_a_killed_spawner_with_255() {
    require_root();
    let (dir, mut c) = scratch("iomux-spawner-killed");
    let (sp, l) = linked_sleeper(&mut c, &dir.join("job"), "1");
    // The controller destroys the container: SIGKILL to iomux-spawn. The
    // job dies with it (PR_SET_PDEATHSIG) and the linker says so.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sp.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let o = l.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(255));
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(err.contains("went away"), "{err}");
    assert!(wait_for(Duration::from_secs(5), || !alive(sp.child_pid)));
}

#[test]
fn garbage_and_bogus_cursors_are_refused_without_harm() {
    require_root();
    let (dir, mut c) = scratch("iomux-garbage");
    let job = dir.join("job");
    let _sp = ended_job(&mut c, &job, "echo fine; exit 7");
    // Garbage instead of HELLO on every socket: dropped, nothing else.
    for s in ["stdout.sock", "stderr.sock", "status.sock"] {
        let mut u = std::os::unix::net::UnixStream::connect(job.join(s)).unwrap();
        u.write_all(&[0xff; 64]).unwrap();
        u.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = Vec::new();
        let _ = u.read_to_end(&mut b);
        assert!(b.is_empty(), "{s}: answered garbage with {b:?}");
    }
    // A cursor beyond the end of the stream: refused, 255.
    let cursors = dir.join("cursors");
    write_file(&cursors, b"iomux-cursors 1\nstdout 999999\nstderr 0\n");
    let (code, out, err) = link(&job, Some(&cursors));
    assert_eq!((code, out.len()), (255, 0));
    assert!(String::from_utf8(err).unwrap().contains("without a header"));
    // A malformed cursors file: 255 before attaching.
    write_file(&cursors, b"stdout 1\n");
    let (code, _, err) = link(&job, Some(&cursors));
    assert_eq!(code, 255);
    assert!(String::from_utf8(err).unwrap().contains("malformed"));
    // The spawner still serves a proper link.
    let (code, out, _) = link(&job, None);
    assert_eq!((code, &out[..]), (7, &b"fine\n"[..]));
}

#[test]
fn sigterm_to_the_spawner_kills_the_job_and_cleans_up() {
    require_root();
    let (dir, mut c) = scratch("iomux-spawner-term");
    let job = dir.join("job");
    let (mut sp, mut l) = linked_sleeper(&mut c, &job, "60");
    sigterm(sp.pid() as u32);
    assert_eq!(sp.child.wait().unwrap().code(), Some(0));
    for s in ["stdout.sock", "stderr.sock", "status.sock"] {
        assert!(!job.join(s).exists(), "{s} left behind");
    }
    assert!(wait_for(Duration::from_secs(5), || !alive(sp.child_pid)));
    assert_eq!(l.wait().unwrap().code(), Some(255));
}

/// Every kind of output iomux-link may be given: a regular file (splice),
/// a socket and a tty (copy), and a pipe (splice; the other tests).
#[test]
fn linker_writes_to_files_sockets_and_ttys() {
    require_root();
    let (dir, mut c) = scratch("iomux-outputs");
    let job = dir.join("job");
    let data = pattern(300_000, 9);
    let f = dir.join("data");
    write_file(&f, &data);
    // One job per output: a linker that has the status ends its spawner.
    let job_for = |c: &mut Cleanup| {
        let _ = std::fs::remove_dir_all(&job);
        spawn(
            c,
            &["--ring-size", "1048576"],
            &job,
            &["sh", "-c", &format!("cat {}", f.display())],
            Stdio::null(),
        )
    };
    // A regular file.
    let mut sp = job_for(&mut c);
    let out = dir.join("out");
    let st = link_cmd(&job, None)
        .stdout(std::fs::File::create(&out).unwrap())
        .status()
        .unwrap();
    assert_eq!(st.code(), Some(0));
    assert!(std::fs::read(&out).unwrap() == data, "file output differs");
    assert_eq!(sp.child.wait().unwrap().code(), Some(0));
    // A socket.
    let mut sp = job_for(&mut c);
    let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    let mut l = link_cmd(&job, None)
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(b)))
        .spawn()
        .unwrap();
    c.kill_pid(l.id() as i32);
    let mut got = Vec::new();
    a.read_to_end(&mut got).unwrap();
    assert_eq!(l.wait().unwrap().code(), Some(0));
    assert!(got == data, "socket output differs ({} bytes)", got.len());
    assert_eq!(sp.child.wait().unwrap().code(), Some(0));
    // A tty (raw mode, so the bytes pass unchanged).
    let _sp = job_for(&mut c);
    let pty = nix::pty::openpty(None, None).unwrap();
    let mut t = nix::sys::termios::tcgetattr(&pty.slave).unwrap();
    nix::sys::termios::cfmakeraw(&mut t);
    nix::sys::termios::tcsetattr(&pty.slave, nix::sys::termios::SetArg::TCSANOW, &t).unwrap();
    let mut l = link_cmd(&job, None)
        .stdout(Stdio::from(pty.slave.try_clone().unwrap()))
        .spawn()
        .unwrap();
    c.kill_pid(l.id() as i32);
    drop(pty.slave);
    let mut master = std::fs::File::from(pty.master);
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while got.len() < data.len() {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO once the linker closed it
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(l.wait().unwrap().code(), Some(0));
    assert!(got == data, "tty output differs ({} bytes)", got.len());
}
