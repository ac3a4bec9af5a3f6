//! End-to-end tests of wshd and wsh (run as root): real namespaces, a
//! private copy of the busybox rootfs per test, minimal hooks written here.
//! Every test kills its wshd (and so its whole container) and removes its
//! scratch directory on drop, also when it fails.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use warden_tests::wshd::{write_exec, wshd_args, ContainerDir, RECORD_PID};
use warden_tests::{bin, require_root, run, unique, wait_for, Cleanup};

/// The in-container hook: run from a memfd (`$0` is /dev/fd/N) after wshd
/// made /dev and /proc and detached the old root; it leaves a marker.
const AFTER_PIVOT: &str = r#"#!/bin/sh
set -e
case "$0" in /dev/fd/*) ;; *) exit 9 ;; esac
[ -c /dev/null ] && [ -r /proc/self/mountinfo ] && [ ! -e /mnt/proc ]
chmod 1777 /tmp
echo "$(hostname)" > /tmp/after-pivot-ran
"#;

fn write_hook(lib: &Path, name: &str, body: &str) {
    write_exec(&lib.join(name), body);
}

/// A scratch container directory (run/, lib/ with hooks, root/ copy).
struct Dir {
    path: PathBuf,
    hostname: String,
    cleanup: Cleanup,
}

fn prepare(tag: &str) -> Dir {
    let d = ContainerDir::new(tag);
    let hostname = unique("wshd");
    d.hook(
        "hook-parent-before-clone.sh",
        "#!/bin/sh\ncd \"$(dirname \"$0\")/..\"\necho \"$PATH\" > run/before-clone\n",
    );
    d.hook("hook-parent-after-clone.sh", RECORD_PID);
    d.hook(
        "hook-child-before-pivot.sh",
        "#!/bin/sh\ncd \"$(dirname \"$0\")/..\"\ntouch run/before-pivot\n",
    );
    d.hook("hook-child-after-pivot.sh", AFTER_PIVOT);
    let ContainerDir { path, cleanup } = d;
    Dir {
        path,
        hostname,
        cleanup,
    }
}

struct Container {
    dir: Dir,
    pid: i32,
}

impl Dir {
    /// Runs wshd; returns (status, stderr).
    fn start(&mut self) -> (i32, String) {
        let err = self.path.join("wshd.err");
        let st = Command::new(bin("wshd"))
            .args(wshd_args(&self.path))
            .args(["--title", "wshd: test", "--hostname", &self.hostname])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        // Whatever happened, kill the container init if a hook recorded it.
        if let Ok(p) = std::fs::read_to_string(self.path.join("run/wshd.pid")) {
            if let Ok(pid) = p.trim().parse::<i32>() {
                self.cleanup.kill_pid(pid);
            }
        }
        (
            st.code().unwrap_or(-1),
            std::fs::read_to_string(&err).unwrap_or_default(),
        )
    }

    fn boot(mut self) -> Container {
        let (code, err) = self.start();
        assert_eq!(code, 0, "wshd failed: {err}");
        let pid = std::fs::read_to_string(self.path.join("run/wshd.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        Container { dir: self, pid }
    }
}

fn boot(tag: &str) -> Container {
    prepare(tag).boot()
}

impl Container {
    fn sock(&self) -> PathBuf {
        self.dir.path.join("run/wshd.sock")
    }

    fn wsh(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("wsh"));
        c.arg("--socket").arg(self.sock()).args(args);
        c.stdin(Stdio::null());
        c
    }

    /// Runs `wsh ARGS`, returns (status, stdout, stderr) as strings.
    fn sh(&self, args: &[&str]) -> (i32, String, String) {
        let (c, o, e) = run(&mut self.wsh(args));
        (
            c,
            String::from_utf8_lossy(&o).into_owned(),
            String::from_utf8_lossy(&e).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (c, o, e) = self.sh(args);
        assert_eq!(c, 0, "wsh {args:?}: stdout {o:?} stderr {e:?}");
        o
    }

    /// Host pids of every process in the container's pid namespace.
    fn host_pids(&self) -> Vec<i32> {
        let ns = match std::fs::read_link(format!("/proc/{}/ns/pid", self.pid)) {
            Ok(n) => n,
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() {
                if std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                    .ok()
                    .as_ref()
                    == Some(&ns)
                {
                    out.push(pid);
                }
            }
        }
        out
    }
}

#[test]
fn core_commands_and_exit_statuses() {
    let c = boot("core");
    let (code, out, _) = c.sh(&["true"]);
    assert_eq!((code, out.as_str()), (0, ""));
    assert_eq!(c.ok(&["echo", "hi"]), "hi\n");
    assert_eq!(c.sh(&["sh", "-c", "exit 3"]).0, 3);
    assert_eq!(c.sh(&["false"]).0, 1);
    // Killed by signal N: 128 + N.
    assert_eq!(c.sh(&["sh", "-c", "kill -9 $$"]).0, 137);
    assert_eq!(c.sh(&["sh", "-c", "kill -15 $$"]).0, 143);
    // Unknown command: nothing runs, 127 with a message.
    let (code, _, err) = c.sh(&["no-such-command"]);
    assert_eq!(code, 127);
    assert!(err.contains("no-such-command"), "{err}");
    // No CMD: the user's shell, reading stdin.
    let mut child = c
        .wsh(&[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo from-shell; exit 4\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-shell\n");
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn hooks_run_in_order_with_clean_env() {
    let c = boot("hooks");
    let p = &c.dir.path;
    assert_eq!(
        std::fs::read_to_string(p.join("run/before-clone")).unwrap(),
        "/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
    assert!(p.join("run/before-pivot").exists());
    // The after-clone hook got PID = wshd's host pid, and wshd is pid 1 inside.
    let status = std::fs::read_to_string(format!("/proc/{}/status", c.pid)).unwrap();
    let nspid = status
        .lines()
        .find(|l| l.starts_with("NSpid:"))
        .unwrap()
        .to_string();
    assert!(nspid.ends_with("\t1"), "{nspid}");
    // --hostname set the hostname before the hooks ran; the after-pivot
    // hook ran inside, from its memfd.
    assert_eq!(c.ok(&["hostname"]).trim(), c.dir.hostname);
    assert_eq!(
        c.ok(&["cat", "/tmp/after-pivot-ran"]).trim(),
        c.dir.hostname
    );
    // The socket is private.
    let mode = std::fs::metadata(c.sock()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn relative_paths_work() {
    let mut d = prepare("relative");
    let err = d.path.join("wshd.err");
    let st = Command::new(bin("wshd"))
        .current_dir(&d.path)
        .args(["--run", "./run", "--lib", "./lib", "--root", "./root"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    let pid: i32 = std::fs::read_to_string(d.path.join("run/wshd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    d.cleanup.kill_pid(pid);
    assert!(st.success(), "{}", std::fs::read_to_string(&err).unwrap());
    let (code, out, _) = run(Command::new(bin("wsh"))
        .current_dir(&d.path)
        .args(["echo", "rel"])
        .stdin(Stdio::null()));
    assert_eq!((code, String::from_utf8_lossy(&out).as_ref()), (0, "rel\n"));
}

#[test]
fn big_stream_is_byte_exact_and_stderr_is_separate() {
    let c = boot("stream");
    let mut data = vec![0u8; 16 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for b in data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut child = c
        .wsh(&["cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let d2 = data.clone();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&d2).unwrap();
    });
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(out.len(), data.len());
    assert!(out == data, "16 MiB through cat differs");

    let (code, o, e) = c.sh(&["sh", "-c", "echo out; echo err >&2; echo out2; exit 2"]);
    assert_eq!((code, o.as_str(), e.as_str()), (2, "out\nout2\n", "err\n"));

    // stdin EOF reaches the command.
    let mut child = c
        .wsh(&["wc", "-c"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"abcde").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "5");
}

#[test]
fn two_hundred_concurrent_sessions() {
    let c = boot("concurrent");
    let mut kids = Vec::new();
    for i in 0..200 {
        let child = c
            .wsh(&["sh", "-c", &format!("sleep 1; echo {i}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        kids.push((i, child));
    }
    for (i, k) in kids {
        let out = k.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "session {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{i}\n"));
    }
    assert_eq!(c.ok(&["echo", "still"]), "still\n");
}

#[test]
fn namespaces_isolate_uts_net_pid_and_mounts() {
    let c = boot("isolation");
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert_ne!(host, c.dir.hostname);
    assert_eq!(c.ok(&["hostname"]).trim(), c.dir.hostname);
    // Only lo.
    let links = c.ok(&["ip", "-o", "link"]);
    let names: Vec<&str> = links
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(str::trim)
        .collect();
    assert_eq!(names, vec!["lo"], "{links}");
    // pid 1 is wshd with its title.
    let cmdline = c.ok(&["cat", "/proc/1/cmdline"]);
    assert!(cmdline.starts_with("wshd: test"), "{cmdline:?}");
    assert_eq!(c.ok(&["cat", "/proc/1/comm"]).trim(), "wshd: test");
    // The old root is gone, stacked /dev/pts and /dev/shm mounts included:
    // only the root and what wshd mounted itself (wshd::setup) remain.
    let mi = c.ok(&["cat", "/proc/self/mountinfo"]);
    let points: Vec<&str> = mi.lines().filter_map(|l| l.split(' ').nth(4)).collect();
    let mine = [
        "/",
        "/dev",
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/pts",
        "/dev/shm",
        "/proc",
    ];
    assert_eq!(&points[..mine.len()], &mine[..], "{mi}");
    // The rest are the /proc masks and read-only binds.
    assert!(
        points[mine.len()..].iter().all(|p| p.starts_with("/proc/")),
        "{mi}"
    );
    assert!(points.contains(&"/proc/sys"), "{mi}");
    // The root is nodev; /proc is nosuid,nodev,noexec.
    let opts = |point: &str| -> String {
        mi.lines()
            .find(|l| l.split(' ').nth(4) == Some(point))
            .and_then(|l| l.split(' ').nth(5))
            .unwrap_or_default()
            .to_string()
    };
    assert!(opts("/").split(',').any(|o| o == "nodev"), "{mi}");
    for o in ["nosuid", "nodev", "noexec"] {
        assert!(opts("/proc").split(',').any(|x| x == o), "{mi}");
    }
    // /dev holds exactly the six nodes and the links.
    let dev = c.ok(&["ls", "-A", "/dev"]);
    let mut dev: Vec<&str> = dev.split_whitespace().collect();
    dev.sort();
    assert_eq!(
        dev,
        vec![
            "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout",
            "tty", "urandom", "zero"
        ]
    );
    // Masked: reading /proc/iomem gives nothing; /proc/sys is read-only.
    assert_eq!(c.ok(&["cat", "/proc/iomem"]), "");
    let (code, _, _) = c.sh(&["sh", "-c", "echo x > /proc/sys/kernel/hostname"]);
    assert_ne!(code, 0);
    // Root and cwd are inside.
    assert_eq!(c.ok(&["readlink", "/proc/self/root"]).trim(), "/");
    assert_eq!(
        c.ok(&["sh", "-c", "readlink /proc/$$/cwd; true"]).trim(),
        "/root"
    );
}

#[test]
fn sessions_see_only_stdio_fds() {
    let mut d = prepare("fds");
    // Start wshd with an extra inherited fd (7): neither wshd nor any session
    // may keep it.
    let p = d.path.clone();
    let err = p.join("wshd.err");
    let st = Command::new("sh")
        .arg("-c")
        .arg("exec 7<\"$0\"; exec \"$@\"")
        .arg(p.join("root/etc/passwd"))
        .arg(bin("wshd"))
        .args(wshd_args(&p))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .status()
        .unwrap();
    let pid: i32 = std::fs::read_to_string(p.join("run/wshd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    d.cleanup.kill_pid(pid);
    assert!(st.success(), "{}", std::fs::read_to_string(&err).unwrap());
    let c = Container { dir: d, pid };
    let out = c.ok(&["sh", "-c", "ls /proc/$$/fd; true"]);
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fds, vec!["0", "1", "2"], "{out}");
    let out = c.ok(&["--user", "vcap", "sh", "-c", "ls /proc/$$/fd; true"]);
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        vec!["0", "1", "2"],
        "{out}"
    );
    // wshd itself: stdio, the listening socket, its signalfd and the
    // connection of this very session; never the inherited file. (wshd
    // closes its ends of this session's pipes a moment after the command
    // starts: wait for that, up to 10 s, then list.)
    let out = c.ok(&[
        "sh",
        "-c",
        "i=0; while [ $(ls /proc/1/fd | wc -l) -gt 6 ] && [ $i -lt 1000 ]; do i=$((i+1)); sleep 0.01; done; ls /proc/1/fd",
    ]);
    let fds: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fds, vec!["0", "1", "2", "3", "4", "5"], "{out}");
    let out = c.ok(&["ls", "-l", "/proc/1/fd/"]);
    assert!(!out.contains("passwd"), "{out}");
}

#[test]
fn users_groups_env_and_limits() {
    let c = boot("users");
    assert_eq!(
        c.ok(&["--user", "vcap", "id"]).trim(),
        "uid=10000(vcap) gid=10000(vcap) groups=10000(vcap),10001(vcapextra)"
    );
    let env = c.ok(&[
        "--user",
        "vcap",
        "sh",
        "-c",
        "echo $HOME $USER $PATH; pwd; true",
    ]);
    assert_eq!(env, "/home/vcap vcap /bin:/usr/bin\n/home/vcap\n");
    let status = c.ok(&["--user", "vcap", "cat", "/proc/self/status"]);
    assert!(status.contains("NoNewPrivs:\t1"), "{status}");
    assert!(status.contains("CapEff:\t0000000000000000"), "{status}");
    assert_eq!(c.ok(&["id", "-u"]).trim(), "0");
    assert_eq!(
        c.ok(&["sh", "-c", "echo $PATH"]).trim(),
        "/sbin:/bin:/usr/sbin:/usr/bin"
    );
    // --rsh mode (rsync's remote shell): -l picks the user, the host is ignored.
    assert_eq!(
        c.ok(&["--rsh", "-l", "vcap", "-4", "container", "id", "-u"])
            .trim(),
        "10000"
    );
    // LANG travels.
    let (_, o, _) = run(c
        .wsh(&["sh", "-c", "echo $LANG"])
        .env("LANG", "en_US.UTF-8"));
    assert_eq!(String::from_utf8_lossy(&o), "en_US.UTF-8\n");
    // Unknown user: an error naming it, nothing runs.
    let (code, out, err) = c.sh(&["--user", "bob", "touch", "/tmp/ran"]);
    assert_eq!(code, 255);
    assert_eq!(out, "");
    assert!(err.contains("unknown user 'bob'"), "{err}");
    assert_ne!(c.sh(&["test", "-e", "/tmp/ran"]).0, 0);
    // rlimits from RLIMIT_* variables, soft and hard.
    let (code, o, e) = run(c
        .wsh(&["sh", "-c", "ulimit -n; ulimit -Hn; ulimit -c"])
        .env("RLIMIT_NOFILE", "100")
        .env("RLIMIT_CORE", "0"));
    assert_eq!(code, 0, "{}", String::from_utf8_lossy(&e));
    assert_eq!(String::from_utf8_lossy(&o), "100\n100\n0\n");
    // Above the hard limit (no CAP_SYS_RESOURCE here): a clear error naming it.
    let (code, _, e) = run(c.wsh(&["true"]).env("RLIMIT_NOFILE", "1099511627776"));
    let e = String::from_utf8_lossy(&e);
    assert_eq!(code, 255);
    assert!(e.contains("RLIMIT_NOFILE"), "{e}");
    for bad in ["lots", "512 256", "1 2 3"] {
        let (code, _, e) = run(c.wsh(&["true"]).env("RLIMIT_NOFILE", bad));
        assert_eq!(code, 255, "{bad}");
        assert!(
            String::from_utf8_lossy(&e).contains("RLIMIT_NOFILE"),
            "{bad}"
        );
    }
    // 'SOFT HARD' as the C wsh took it (sscanf "%ld %ld"); one value sets
    // both. The hard limit holds for an unprivileged user: vcap cannot
    // raise its soft limit past it.
    for (value, want) in [
        ("256 512", "256 512"),
        ("300", "300 300"),
        ("64\t1024", "64 1024"),
    ] {
        let (code, o, e) = run(c
            .wsh(&[
                "--user",
                "vcap",
                "sh",
                "-c",
                "echo $(ulimit -Sn) $(ulimit -Hn)",
            ])
            .env("RLIMIT_NOFILE", value));
        assert_eq!(code, 0, "{value:?}: {}", String::from_utf8_lossy(&e));
        assert_eq!(
            String::from_utf8_lossy(&o),
            format!("{want}\n"),
            "{value:?}"
        );
    }
    let (code, o, _) = run(c
        .wsh(&[
            "--user",
            "vcap",
            "sh",
            "-c",
            "ulimit -Sn 512 && echo raised; ulimit -Sn 513 2>/dev/null || echo refused",
        ])
        .env("RLIMIT_NOFILE", "256 512"));
    assert_eq!(
        (code, String::from_utf8_lossy(&o).as_ref()),
        (0, "raised\nrefused\n")
    );
}

#[test]
fn zombies_and_orphans_are_reaped() {
    let c = boot("zombies");
    // A double-forked orphan is re-parented to wshd and must be reaped.
    c.ok(&[
        "sh",
        "-c",
        "sh -c 'sleep 0.2 & exit 0'; (sleep 0.1 &); exit 0",
    ]);
    let no_zombies = || {
        let (_, out, _) = c.sh(&["sh", "-c", "cat /proc/[0-9]*/stat 2>/dev/null; true"]);
        let states: Vec<String> = out
            .lines()
            .filter_map(|l| l.rsplit_once(") ").map(|(_, r)| r[..1].to_string()))
            .collect();
        !states.iter().any(|s| s == "Z") && out.lines().count() <= 2
    };
    assert!(
        wait_for(Duration::from_secs(5), no_zombies),
        "zombies or orphans left"
    );
}

#[test]
fn tty_sessions_get_a_pty_and_window_size() {
    let c = boot("tty");
    let pty = nix::pty::openpty(
        Some(&nix::pty::Winsize {
            ws_row: 33,
            ws_col: 101,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }),
        None,
    )
    .unwrap();
    let slave: OwnedFd = pty.slave;
    let master: OwnedFd = pty.master;
    let mut child = c
        .wsh(&[
            "sh",
            "-c",
            "tty; stty size; while read x; do s=$(stty size); echo \"$s\"; [ \"$s\" != '40 120' ] || exit 6; done",
        ])
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let mut m = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Newlines sent after the resize: each makes the shell print the size
    // again, until wsh's forwarded SIGWINCH has reached the container's pty.
    let mut asked = 0usize;
    loop {
        let mut p = [nix::poll::PollFd::new(
            m.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let n = nix::poll::poll(&mut p, nix::poll::PollTimeout::from(5000u16)).unwrap();
        assert!(
            n > 0,
            "tty session timed out; got {:?}",
            String::from_utf8_lossy(&out)
        );
        match m.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => out.extend_from_slice(&buf[..k]),
        }
        let text = String::from_utf8_lossy(&out);
        if text.contains("40 120") {
            break;
        }
        let stale = text.matches("33 101").count();
        if asked == 0 && stale == 1 {
            // Resize our terminal; wsh forwards it on SIGWINCH.
            set_winsize(&m, 40, 120);
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGWINCH,
            )
            .unwrap();
        }
        if stale > asked {
            assert!(asked < 1000, "the new size never reached the container");
            asked += 1;
            m.write_all(b"\n").unwrap();
        }
    }
    let st = child.wait().unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("33 101"), "{text}");
    assert!(text.contains("40 120"), "{text}");
    assert_eq!(st.code(), Some(6));
}

/// TIOCSWINSZ on the pty master through stty (keeps this file free of unsafe).
fn set_winsize(m: &std::fs::File, rows: u16, cols: u16) {
    let st = Command::new("stty")
        .args(["rows", &rows.to_string(), "cols", &cols.to_string()])
        .stdin(Stdio::from(m.try_clone().unwrap()))
        .status()
        .unwrap();
    assert!(st.success(), "stty on the pty master");
}

fn raw_connect(sock: &Path) -> OwnedFd {
    use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
    let fd = socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    connect(fd.as_raw_fd(), &UnixAddr::new(sock).unwrap()).unwrap();
    fd
}

/// Receives one message; (bytes) — empty on close.
fn raw_recv(fd: &OwnedFd) -> Vec<u8> {
    let mut buf = vec![0u8; 8192];
    let n = nix::sys::socket::recv(
        fd.as_raw_fd(),
        &mut buf,
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap_or(0);
    buf.truncate(n);
    buf
}

#[test]
fn garbage_oversize_and_disconnects_do_not_hurt_others() {
    let c = boot("garbage");
    // A silent client holds a connection open while others are served.
    let silent = raw_connect(&c.sock());
    assert_eq!(c.ok(&["echo", "a"]), "a\n");
    // Garbage: an ERROR reply (kind 4) for that client only.
    let g = raw_connect(&c.sock());
    nix::sys::socket::send(
        g.as_raw_fd(),
        b"hello, this is not wsh",
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let r = raw_recv(&g);
    assert!(r.len() > 5 && &r[..3] == b"WSH" && r[4] == 4, "{r:?}");
    assert!(String::from_utf8_lossy(&r).contains("bad request"), "{r:?}");
    // Oversize message.
    let o = raw_connect(&c.sock());
    let big = vec![b'x'; 512 * 1024];
    let _ = nix::sys::socket::send(o.as_raw_fd(), &big, nix::sys::socket::MsgFlags::empty());
    let r = raw_recv(&o);
    assert!(r.len() > 5 && r[4] == 4, "{r:?}");
    // Valid header, truncated body.
    let t = raw_connect(&c.sock());
    nix::sys::socket::send(
        t.as_raw_fd(),
        b"WSH\x01\x01\x00",
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    assert_eq!(raw_recv(&t)[4], 4);
    // Connect and vanish.
    for _ in 0..20 {
        drop(raw_connect(&c.sock()));
    }
    // A stream socket cannot even connect (wrong type).
    assert!(std::os::unix::net::UnixStream::connect(c.sock()).is_err());
    // wsh killed mid-command: the command keeps running, wshd keeps serving.
    let mut k = c
        .wsh(&[
            "sh",
            "-c",
            "touch /tmp/started; sleep 0.5; touch /tmp/finished",
        ])
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(10), || c
        .sh(&["test", "-e", "/tmp/started"])
        .0
        == 0));
    k.kill().unwrap();
    k.wait().unwrap();
    assert!(wait_for(Duration::from_secs(5), || c
        .sh(&["test", "-e", "/tmp/finished"])
        .0
        == 0));
    assert_eq!(c.ok(&["echo", "b"]), "b\n");
    drop(silent);
    assert_eq!(c.ok(&["echo", "c"]), "c\n");
}

#[test]
fn unreachable_socket_gives_255() {
    require_root();
    let (code, _, err) =
        run(Command::new(bin("wsh")).args(["--socket", "/nonexistent/wshd.sock", "true"]));
    assert_eq!(code, 255);
    assert!(String::from_utf8_lossy(&err).contains("/nonexistent/wshd.sock"));
    // Usage errors: tests/tests/usage.rs.
}

#[test]
fn killing_wshd_kills_the_container() {
    let c = boot("kill");
    let mut sleeper = c
        .wsh(&["sleep", "1000"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut bg = c
        .wsh(&["sh", "-c", "sleep 1000 & sleep 1000 & wait"])
        .spawn()
        .unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || c.host_pids().len() >= 5),
        "{:?}",
        c.host_pids()
    );
    let pids = c.host_pids();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(c.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_for(Duration::from_secs(5), || pids
            .iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())),
        "container processes survived wshd"
    );
    let st = sleeper.wait().unwrap();
    assert_eq!(st.code(), Some(255));
    let mut e = String::new();
    sleeper
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut e)
        .unwrap();
    assert!(e.contains("wshd"), "{e}");
    bg.wait().unwrap();
}

#[test]
fn failing_or_missing_hooks_fail_start_and_leave_nothing() {
    for hook in [
        "hook-parent-before-clone.sh",
        "hook-parent-after-clone.sh",
        "hook-child-before-pivot.sh",
        "hook-child-after-pivot.sh",
    ] {
        let mut d = prepare("hookfail");
        let lib = d.path.join("lib");
        let body = std::fs::read_to_string(lib.join(hook)).unwrap();
        // Keep the pid recording of the after-clone hook, then fail.
        let failing = if hook == "hook-parent-after-clone.sh" {
            format!("{body}exit 3\n")
        } else {
            "#!/bin/sh\nexit 3\n".to_string()
        };
        write_hook(&lib, hook, &failing);
        let (code, err) = d.start();
        assert_ne!(code, 0, "{hook}");
        assert!(
            err.contains(hook) && err.contains("status 3"),
            "{hook}: {err}"
        );
        if let Ok(p) = std::fs::read_to_string(d.path.join("run/wshd.pid")) {
            let pid: i32 = p.trim().parse().unwrap();
            assert!(
                wait_for(Duration::from_secs(2), || !Path::new(&format!(
                    "/proc/{pid}"
                ))
                .exists()),
                "{hook}: init {pid} left running"
            );
        }
        // A missing hook is skipped: the container still starts and
        // serves. (Without the after-clone hook nothing records the
        // init's pid for cleanup, so that one is covered by
        // `no_hooks_at_all` instead.)
        let d = prepare("hookmissing");
        std::fs::remove_file(d.path.join("lib").join(hook)).unwrap();
        if hook != "hook-parent-after-clone.sh" {
            let c = d.boot();
            assert_eq!(c.ok(&["echo", "up"]).trim(), "up", "{hook}");
        }
    }
    // Bad directories (bad flags: tests/tests/usage.rs).
    let (code, _, err) = run(Command::new(bin("wshd")).args([
        "--run",
        "/nonexistent-dir",
        "--lib",
        "/tmp",
        "--root",
        "/tmp",
    ]));
    assert_eq!(code, 1);
    assert!(String::from_utf8_lossy(&err).contains("/nonexistent-dir"));
}

/// Host pid of the wshd serving `sock` (SO_PEERCRED of a connection).
/// Host pids of the container inits (`wshd: test`) whose root is under
/// `dir`: with no hooks nothing records the init's pid, and the socket's
/// peer credentials name the invoker, which has exited (that is how this
/// test leaked one container init per run).
fn inits_under(dir: &Path) -> Vec<i32> {
    let prefix = format!("{}/", dir.display());
    warden_tests::attack::pids_with_cmdline("wshd: test")
        .into_iter()
        .filter(|pid| {
            let mi = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
            let root_of_root = mi
                .lines()
                .find(|l| l.split(' ').nth(4) == Some("/"))
                .and_then(|l| l.split(' ').nth(3));
            root_of_root.is_some_and(|r| r.starts_with(&prefix))
        })
        .collect()
}

#[test]
fn no_hooks_at_all() {
    // An empty lib/: no hook runs, no shell is started, and the container
    // is set up all the same (wshd mounts /dev and /proc itself).
    let mut d = prepare("nohooks");
    for e in std::fs::read_dir(d.path.join("lib")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let (code, err) = d.start();
    let inits = inits_under(&d.path);
    for &pid in &inits {
        d.cleanup.kill_pid(pid);
    }
    assert_eq!(code, 0, "{err}");
    assert_eq!(inits.len(), 1, "container inits under {}", d.path.display());
    let c = Container { dir: d, pid: 0 };
    assert_eq!(c.ok(&["hostname"]).trim(), c.dir.hostname);
    assert_eq!(
        c.ok(&["sh", "-c", "ls /dev/null /proc/self/mountinfo"])
            .lines()
            .count(),
        2
    );
}

#[test]
fn closed_stdio_is_tolerated() {
    let mut d = prepare("closedstdio");
    let p = d.path.clone();
    // wshd started with stdin and stdout closed.
    let st = Command::new("sh")
        .arg("-c")
        .arg("exec \"$@\" <&- >&-")
        .arg("sh")
        .arg(bin("wshd"))
        .args(wshd_args(&p))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let pid: i32 = std::fs::read_to_string(p.join("run/wshd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    d.cleanup.kill_pid(pid);
    assert!(st.success());
    let c = Container { dir: d, pid };
    assert_eq!(c.ok(&["echo", "hi"]), "hi\n");
    // wsh with its stdin closed: the command sees EOF on stdin.
    let (code, out, _) = run(Command::new("sh")
        .arg("-c")
        .arg("exec \"$@\" <&-")
        .arg("sh")
        .arg(bin("wsh"))
        .arg("--socket")
        .arg(c.sock())
        .args(["sh", "-c", "cat; echo done"]));
    assert_eq!(
        (code, String::from_utf8_lossy(&out).as_ref()),
        (0, "done\n")
    );
}

/// True when `pid` no longer runs (gone, or a zombie waiting for its reaper).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Err(_) => true,
        Ok(s) => s
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z')),
    }
}

#[test]
fn invoker_killed_during_boot_leaves_nothing() {
    let d = prepare("invokerkill");
    let lib = d.path.join("lib");
    write_hook(
        &lib,
        "hook-child-before-pivot.sh",
        "#!/bin/sh\ncd \"$(dirname \"$0\")/..\"\ntouch run/in-hook\nsleep 3\n",
    );
    let p = d.path.clone();
    let mut inv = Command::new(bin("wshd"))
        .arg("--run")
        .arg(p.join("run"))
        .arg("--lib")
        .arg(p.join("lib"))
        .arg("--root")
        .arg(p.join("root"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut cleanup = d.cleanup;
    cleanup.kill_pid(inv.id() as i32);
    let pidfile = p.join("run/wshd.pid");
    assert!(wait_for(Duration::from_secs(5), || pidfile.exists()));
    let init: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    cleanup.kill_pid(init);
    // Killed while the container is in its boot hook.
    let in_hook = p.join("run/in-hook");
    assert!(wait_for(Duration::from_secs(5), || in_hook.exists()));
    inv.kill().unwrap();
    inv.wait().unwrap();
    assert!(
        wait_for(Duration::from_secs(2), || dead(init)),
        "container init {init} outlived the killed invoker"
    );
}

#[test]
fn kill_on_disconnect_is_per_request() {
    let c = boot("killdisc");
    // Default: the command outlives its client.
    let mut k = c
        .wsh(&[
            "sh",
            "-c",
            "echo $$ > /tmp/keep; sleep 0.6; touch /tmp/kept",
        ])
        .spawn()
        .unwrap();
    // With --kill-on-disconnect: wshd kills the command's process group.
    let mut x = c
        .wsh(&[
            "--kill-on-disconnect",
            "sh",
            "-c",
            "echo $$ > /tmp/pid; sleep 0.6; touch /tmp/survived",
        ])
        .spawn()
        .unwrap();
    assert!(wait_for(Duration::from_secs(5), || c
        .sh(&["test", "-s", "/tmp/pid"])
        .0
        == 0
        && c.sh(&["test", "-s", "/tmp/keep"]).0 == 0));
    k.kill().unwrap();
    x.kill().unwrap();
    k.wait().unwrap();
    x.wait().unwrap();
    let pid = c.ok(&["cat", "/tmp/pid"]).trim().to_string();
    assert!(
        wait_for(Duration::from_secs(2), || c
            .sh(&["test", "-e", &format!("/proc/{pid}")])
            .0
            != 0),
        "killed-on-disconnect command still runs"
    );
    assert!(wait_for(Duration::from_secs(5), || c
        .sh(&["test", "-e", "/tmp/kept"])
        .0
        == 0));
    assert_ne!(c.sh(&["test", "-e", "/tmp/survived"]).0, 0);
    // Its sleep child (same process group) is gone too.
    let ps = c.ok(&["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '; true"]);
    assert!(!ps.contains("sleep 0.6"), "{ps}");
}

#[test]
fn serves_after_idle_text_shedding() {
    let c = boot("idle");
    assert_eq!(c.ok(&["echo", "before"]), "before\n");
    let rss = |pid: i32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let l = s.lines().find(|l| l.starts_with("RssFile:")).unwrap();
        l.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    let busy = rss(c.pid);
    // After a quiet second wshd drops its resident program text ...
    let mut idle = busy;
    wait_for(Duration::from_secs(10), || {
        idle = rss(c.pid);
        idle < busy
    });
    assert!(idle < busy, "RssFile busy {busy} kB, idle {idle} kB");
    // Between the shed and the poll it blocks in, wshd runs no code outside
    // one function, so its idle text is one fault-around window (64 KiB by
    // default) plus what the kernel maps itself: 116-132 kB on the kernels
    // seen so far, 260 kB when it called into libc after shedding. The bound
    // sits between the two so that regression still fails.
    assert!(idle <= 192, "idle RssFile {idle} kB");
    // ... and keeps serving, pages coming back on demand.
    assert_eq!(c.ok(&["echo", "after"]), "after\n");
    assert_eq!(c.sh(&["sh", "-c", "exit 7"]).0, 7);
}

/// Finding 8 / S22: 600 connections that send nothing (and some that send
/// only part of a header) never delay a real `wsh`: wshd keeps at most
/// MAX_PENDING (512) waiting and drops the one that has waited longest to
/// make room, so `wsh` is served at once (600 silent connections held it
/// in the backlog for 10 s before).
#[test]
fn silent_connections_never_delay_a_real_wsh() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let c = boot("silent");
    // 600 sockets here, next to whatever the other tests hold.
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < 4096 {
        setrlimit(Resource::RLIMIT_NOFILE, hard.min(4096), hard).unwrap();
    }
    let mut conns = Vec::new();
    for i in 0..600 {
        let fd = raw_connect(&c.sock());
        if i % 10 == 0 {
            // Part of a header ("WSH", version, kind, then nothing).
            nix::sys::socket::send(fd.as_raw_fd(), b"WS", nix::sys::socket::MsgFlags::empty())
                .unwrap();
        }
        conns.push(fd);
    }
    for _ in 0..5 {
        let t0 = std::time::Instant::now();
        assert_eq!(c.ok(&["echo", "served"]), "served\n");
        let t = t0.elapsed();
        assert!(t < Duration::from_secs(1), "wsh took {t:?}");
    }
    let t0 = std::time::Instant::now();
    let (code, _, err) = c.sh(&["true"]);
    assert_eq!(code, 0, "{err}");
    eprintln!(
        "wsh true with 600 silent connections open: {:?}",
        t0.elapsed()
    );
    // wshd holds at most 512 of them; the others got an ERROR (or, for the
    // partial headers, their "bad request") and were closed.
    let still_waiting = conns
        .iter()
        .filter(|fd| {
            let mut b = [0u8; 512];
            nix::sys::socket::recv(
                fd.as_raw_fd(),
                &mut b,
                nix::sys::socket::MsgFlags::MSG_DONTWAIT,
            ) == Err(nix::errno::Errno::EAGAIN)
        })
        .count();
    assert!(still_waiting <= 512, "{still_waiting} still waiting");
    assert!(
        still_waiting >= 400,
        "{still_waiting}: only the oldest are dropped"
    );
}

/// Finding 8: the running init (pid 1) keeps no host file open as its
/// stdio: fds 0-2 are /dev/null (char device 1:3), none is the stderr file
/// wshd was started with, while errors during boot still reach that file
/// (`failing_or_missing_hooks_fail_start_and_leave_nothing`).
#[test]
fn running_init_has_dev_null_as_stdio() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let c = boot("stdio");
    let err = std::fs::metadata(c.dir.path.join("wshd.err")).unwrap();
    let fds: Vec<PathBuf> = std::fs::read_dir(format!("/proc/{}/fd", c.pid))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for fd in &fds {
        let Ok(md) = std::fs::metadata(fd) else {
            continue;
        };
        assert!(
            (md.dev(), md.ino()) != (err.dev(), err.ino()),
            "{} is the host's stderr file",
            fd.display()
        );
    }
    for n in 0..3 {
        let p = format!("/proc/{}/fd/{n}", c.pid);
        let md = std::fs::metadata(&p).unwrap();
        assert!(md.file_type().is_char_device(), "{p}");
        assert_eq!(
            (
                nix::sys::stat::major(md.rdev()),
                nix::sys::stat::minor(md.rdev())
            ),
            (1, 3),
            "{p} is /dev/null"
        );
    }
    assert_eq!(c.ok(&["echo", "up"]), "up\n");
}
