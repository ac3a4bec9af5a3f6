//! End-to-end tests of the root filesystems a container may have (issue 8),
//! as root, with real containers:
//!
//! - a Debian bookworm minbase rootfs (`make rootfs-debian`) through the
//!   warden protocol: jobs as root and vcap, hostname, the /dev wshd makes,
//!   the /proc masks, a read-only /proc/sys, a nodev root, copy in and out,
//!   spawn and link, and nothing left after destroy;
//! - a rootfs with no shell at all (only a static `/hello` and an empty
//!   `/etc`): `wsh /hello` runs it in a wshd started with no hooks, and
//!   through the controller create works while `warden run` (which needs
//!   /bin/bash) fails with an error naming the missing shell;
//! - copies of the test rootfs that plant symlinks to host paths where the
//!   scripts and wshd write (/etc files, /proc, /dev, /home/vcap, a bind
//!   mount's destination): create may succeed or fail with an error, but
//!   every host file and directory the symlinks name must stay unchanged.
//!
//! Every test has its own server or wshd, scratch directories and names; the
//! Cleanup guards kill and remove all of it, also when a test fails.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use warden::client::{Client, ClientError};
use warden::proto::{self, Type};
use warden_tests::server::{
    create, destroy_or_retry, link, prefix_leftovers, run, spawn, try_run, Opts, Srv, Txt,
};
use warden_tests::snap::{snap, Snap};
use warden_tests::{
    bin, require_root, rootfs, rootfs_debian, scratch, shellless_rootfs, start_wshd, unique,
    Cleanup, HELLO_TEXT,
};

/// Runs `script` as root (privileged) or vcap.
fn run_as(c: &mut Client, h: &str, script: &str, privileged: bool) -> proto::RunResponse {
    c.call(
        Type::Run,
        &proto::RunRequest {
            handle: Some(h.into()),
            script: Some(script.into()),
            privileged: Some(privileged),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("run {script:?}: {e}"))
}

/// Runs `script` as root and expects exit 0; returns stdout.
fn root_ok(c: &mut Client, h: &str, script: &str) -> String {
    let r = run_as(c, h, script, true);
    assert_eq!(r.exit_status, Some(0), "{script:?}: {r:?}");
    r.stdout.txt().unwrap_or_default().to_string()
}

/// Server, depot and host resources are all gone for this server's prefix.
fn assert_nothing_left(s: &Srv, c: &mut Client) {
    let l: proto::ListResponse = c.call(Type::List, &proto::ListRequest {}).unwrap();
    assert!(l.handles.is_empty(), "containers left: {:?}", l.handles);
    assert!(s.depot_dirs().is_empty(), "depot: {:?}", s.depot_dirs());
    let left = prefix_leftovers(&s.prefix, &s.depot);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

// ---------------------------------------------------------------------------
// Debian

#[test]
fn debian_rootfs_through_the_protocol() {
    let s = Srv::start(
        "deb",
        Opts {
            rootfs: Some(rootfs_debian()),
            ..Default::default()
        },
    );
    let mut c = s.client();
    let h = create(&mut c, Default::default())
        .unwrap_or_else(|e| panic!("create on the Debian rootfs: {e}\nlog:\n{}", s.log()));

    // It is the Debian root, and bash runs the jobs.
    let v = root_ok(&mut c, &h, "cat /etc/debian_version");
    assert!(v.starts_with("12"), "bookworm is Debian 12: {v:?}");
    // As root and as vcap (moved to the first uid of the pool).
    assert_eq!(root_ok(&mut c, &h, "id -u; id -un"), "0\nroot\n");
    let r = run(&mut c, &h, "id -u; id -un; echo $HOME");
    assert_eq!(r.exit_status, Some(0), "{r:?}");
    assert_eq!(r.stdout.txt(), Some("20000\nvcap\n/home/vcap\n"));
    // Hostname = handle, in the kernel and in /etc/hostname.
    assert_eq!(root_ok(&mut c, &h, "hostname"), format!("{h}\n"));
    assert_eq!(root_ok(&mut c, &h, "cat /etc/hostname"), format!("{h}\n"));

    // /dev: a tmpfs holding exactly these nodes and links, devpts on
    // /dev/pts, a tmpfs on /dev/shm.
    let listing = root_ok(
        &mut c,
        &h,
        r#"cd /dev && for f in * .[!.]* ..?*; do
             if [ -L "$f" ]; then echo "$f -> $(readlink "$f")"
             elif [ -c "$f" ]; then echo "$f c $(stat -c %t:%T "$f")"
             elif [ -d "$f" ]; then echo "$f d"
             elif [ -e "$f" ]; then echo "$f other"
             fi
           done"#,
    );
    let mut got: Vec<String> = listing.lines().map(str::to_string).collect();
    got.sort();
    // stdin/stdout/stderr may point at fd/N or /proc/self/fd/N.
    let got: Vec<String> = got
        .into_iter()
        .map(|l| l.replace(" -> /proc/self/fd/", " -> fd/"))
        .collect();
    let want = [
        "fd -> /proc/self/fd",
        "full c 1:7",
        "null c 1:3",
        "ptmx -> pts/ptmx",
        "pts d",
        "random c 1:8",
        "shm d",
        "stderr -> fd/2",
        "stdin -> fd/0",
        "stdout -> fd/1",
        "tty c 5:0",
        "urandom c 1:9",
        "zero c 1:5",
    ];
    assert_eq!(got, want, "/dev:\n{listing}");
    assert_eq!(
        root_ok(&mut c, &h, "stat -f -c %T /dev /dev/pts /dev/shm"),
        "tmpfs\ndevpts\ntmpfs\n"
    );
    // The nodes work, the pty multiplexer too.
    assert_eq!(
        root_ok(
            &mut c,
            &h,
            "head -c 3 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; test -c /dev/pts/ptmx && echo ptmx-ok"
        ),
        "3\nnull-ok\nptmx-ok\n"
    );

    // /proc masks: reading gives nothing (as root). /proc/kcore is checked
    // only where the kernel has it (wshd skips masks of absent entries).
    let r = root_ok(&mut c, &h, "head -c 64 /proc/iomem | wc -c");
    assert_eq!(r.trim(), "0", "/proc/iomem is masked");
    if Path::new("/proc/kcore").exists() {
        let r = root_ok(
            &mut c,
            &h,
            "stat -c %s /proc/kcore; head -c 64 /proc/kcore 2>/dev/null | wc -c",
        );
        assert_eq!(r, "0\n0\n", "/proc/kcore is masked");
    } else {
        eprintln!("this kernel has no /proc/kcore: its mask is not checked");
    }
    // /proc/sys is read-only: root cannot set the hostname through it.
    let r = run_as(
        &mut c,
        &h,
        "echo evil > /proc/sys/kernel/hostname; echo status=$?",
        true,
    );
    assert!(
        r.stdout.txt().unwrap_or_default().contains("status=1"),
        "writing /proc/sys must fail: {r:?}"
    );
    assert_eq!(root_ok(&mut c, &h, "hostname"), format!("{h}\n"));
    // The root is mounted nodev (the topmost mount on /).
    let mi = root_ok(&mut c, &h, "cat /proc/self/mountinfo");
    let root_opts = mi
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/"))
        .and_then(|l| l.split(' ').nth(5))
        .unwrap_or_else(|| panic!("no mount on / in:\n{mi}"))
        .to_string();
    assert!(
        root_opts.split(',').any(|o| o == "nodev"),
        "/ is mounted {root_opts}, without nodev"
    );

    // copy_in a file, read it inside, copy_out it back.
    let (tmp, _g) = scratch("deb-copy");
    let src = tmp.join("in.txt");
    std::fs::write(&src, "copied through a Debian container\n").unwrap();
    let _: proto::CopyInResponse = c
        .call(
            Type::CopyIn,
            &proto::CopyInRequest {
                handle: Some(h.clone()),
                src_path: Some(src.display().to_string()),
                dst_path: Some("/tmp/in.txt".into()),
            },
        )
        .expect("copy_in");
    let r = run(&mut c, &h, "cat /tmp/in.txt");
    assert_eq!(r.stdout.txt(), Some("copied through a Debian container\n"));
    let back = tmp.join("back.txt");
    let _: proto::CopyOutResponse = c
        .call(
            Type::CopyOut,
            &proto::CopyOutRequest {
                handle: Some(h.clone()),
                src_path: Some("/tmp/in.txt".into()),
                dst_path: Some(back.display().to_string()),
                owner: None,
            },
        )
        .expect("copy_out");
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        "copied through a Debian container\n"
    );

    // spawn + link.
    let j = spawn(&mut c, &h, "echo spawned; echo e >&2; exit 3");
    let l = link(&mut c, &h, j).unwrap();
    assert_eq!(
        (l.exit_status, l.stdout.txt(), l.stderr.txt()),
        (Some(3), Some("spawned\n"), Some("e\n"))
    );

    let path = PathBuf::from(
        warden_tests::server::info(&mut c, &h)
            .unwrap()
            .container_path
            .unwrap(),
    );
    destroy_or_retry(&mut c, &h);
    assert!(!path.exists(), "container dir removed");
    assert_nothing_left(&s, &mut c);
}

// ---------------------------------------------------------------------------
// No shell

/// wshd with no hooks at all on a root holding only /hello and /etc.
#[test]
fn shellless_rootfs_runs_hello_through_wsh() {
    require_root();
    let (dir, mut cleanup) = scratch("rfs-hello");
    let root = shellless_rootfs(&dir);
    for d in ["run", "lib"] {
        std::fs::create_dir(dir.join(d)).unwrap();
    }
    assert!(!root.join("bin/sh").exists() && !root.join("bin").exists());
    let title = unique("wshd: rfs-hello");
    let (code, err, pid) = start_wshd(
        &dir.join("run"),
        &dir.join("lib"),
        &root,
        &title,
        &[],
        &mut cleanup,
    );
    assert_eq!(code, 0, "wshd with no hooks on a shell-less root: {err}");
    assert!(pid.is_some(), "the container init titled {title:?} runs");
    let (code, out, err) = warden_tests::run(
        Command::new(bin("wsh"))
            .arg("--socket")
            .arg(dir.join("run/wshd.sock"))
            .arg("/hello")
            .stdin(Stdio::null()),
    );
    assert_eq!(
        (code, String::from_utf8_lossy(&out).as_ref()),
        (0, HELLO_TEXT),
        "wsh /hello; stderr: {}",
        String::from_utf8_lossy(&err)
    );
}

/// Through the controller: create works; a run, which needs /bin/bash, is
/// refused with an error that names the missing shell.
#[test]
fn shellless_rootfs_through_the_controller() {
    let (dir, _g) = scratch("rfs-noshell");
    let root = shellless_rootfs(&dir);
    let s = Srv::start("noshell", Opts::default());
    let mut c = s.client();
    let h = create(
        &mut c,
        proto::CreateRequest {
            rootfs: Some(root.display().to_string()),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("create on a shell-less rootfs: {e}\nlog:\n{}", s.log()));
    for privileged in [false, true] {
        let r: Result<proto::RunResponse, ClientError> = c.call(
            Type::Run,
            &proto::RunRequest {
                handle: Some(h.clone()),
                script: Some("echo should-not-run".into()),
                privileged: Some(privileged),
                ..Default::default()
            },
        );
        let e = match r {
            Err(ClientError::Server(m)) => m,
            other => panic!(
                "run (privileged={privileged}) on a rootfs without /bin/bash must answer \
                 an error naming the shell, got {other:?}"
            ),
        };
        assert!(
            e.contains("/bin/bash") || e.contains("shell"),
            "the error names the missing shell: {e:?}"
        );
    }
    // The container is still usable afterwards (info, destroy).
    assert_eq!(
        warden_tests::server::info(&mut c, &h)
            .unwrap()
            .state
            .as_deref(),
        Some("active")
    );
    destroy_or_retry(&mut c, &h);
    assert_nothing_left(&s, &mut c);
}

// ---------------------------------------------------------------------------
// Symlink-planting root filesystems

/// Host files and directories a planted rootfs points at, in a scratch
/// directory; [`Victims::check`] asserts none of them changed.
struct Victims {
    dir: PathBuf,
    before: BTreeMap<PathBuf, Snap>,
    _cleanup: Cleanup,
}

impl Victims {
    /// Files `dir/<f>` (text, 0644) and directories `dir/<d>` (0755, one
    /// file `keep` inside), all root-owned.
    fn new(tag: &str, files: &[&str], dirs: &[&str]) -> Victims {
        let (dir, cleanup) = scratch(tag);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for f in files {
            let p = dir.join(f);
            std::fs::write(&p, format!("host victim {f}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        for d in dirs {
            let p = dir.join(d);
            std::fs::create_dir(&p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
            std::fs::write(p.join("keep"), "host victim dir entry\n").unwrap();
        }
        let mut v = Victims {
            dir,
            before: BTreeMap::new(),
            _cleanup: cleanup,
        };
        v.before = v.snaps();
        v
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Snapshot of the victim directory and everything in it (two levels).
    fn snaps(&self) -> BTreeMap<PathBuf, Snap> {
        let mut m = BTreeMap::new();
        m.insert(self.dir.clone(), snap(&self.dir));
        for e in std::fs::read_dir(&self.dir).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                for x in std::fs::read_dir(&p).unwrap().flatten() {
                    m.insert(x.path(), snap(&x.path()));
                }
            }
            m.insert(p.clone(), snap(&p));
        }
        m
    }

    fn check(&self, when: &str) {
        let now = self.snaps();
        for (p, b) in &self.before {
            match now.get(p) {
                Some(n) => assert_eq!(n, b, "{when}: host victim {} changed", p.display()),
                None => panic!("{when}: host victim {} vanished", p.display()),
            }
        }
        let new: Vec<_> = now
            .keys()
            .filter(|p| !self.before.contains_key(*p))
            .collect();
        assert!(new.is_empty(), "{when}: new entries on the host: {new:?}");
        // Nothing mounted on or under a victim in the host's namespace.
        let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let d = self.dir.display().to_string();
        let on: Vec<&str> = mi
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&d)))
            .collect();
        assert!(on.is_empty(), "{when}: mounts on host victims: {on:#?}");
    }
}

/// A private copy of the test rootfs in a scratch dir, to plant symlinks in.
fn rootfs_copy(tag: &str) -> (PathBuf, Cleanup) {
    require_root();
    let (dir, cleanup) = scratch(tag);
    let root = dir.join("root");
    let (code, _, err) = warden_tests::run(Command::new("cp").arg("-a").arg(rootfs()).arg(&root));
    assert_eq!(code, 0, "copy rootfs: {}", String::from_utf8_lossy(&err));
    (root, cleanup)
}

/// Replaces `root/<rel>` (whatever is there) with a symlink to `target`.
fn plant(root: &Path, rel: &str, target: &Path) {
    let p = root.join(rel);
    if let Ok(m) = std::fs::symlink_metadata(&p) {
        if m.is_dir() {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            std::fs::remove_file(&p).unwrap();
        }
    }
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, &p).unwrap();
}

/// A relative symlink target from `root/<rel>` that, followed on the host,
/// climbs out of the root (and the depot) to the host path `host`.
fn escaping(host: &Path) -> PathBuf {
    let up = "../".repeat(40);
    PathBuf::from(format!(
        "{up}{}",
        host.display().to_string().trim_start_matches('/')
    ))
}

/// Creates (and so starts) a container on `root` with `bind_mounts`, runs a
/// job when that worked, destroys it; checks the victims after each step and
/// that nothing of the server is left. A refused create is fine (it must be
/// an error response, not a dead server).
fn create_on_planted(tag: &str, root: &Path, bind_mounts: Vec<proto::BindMount>, v: &Victims) {
    let s = Srv::start(tag, Opts::default());
    let mut c = s.client();
    let r = create(
        &mut c,
        proto::CreateRequest {
            rootfs: Some(root.display().to_string()),
            bind_mounts,
            ..Default::default()
        },
    );
    match r {
        Ok(h) => {
            v.check("after create");
            let _ = try_run(&mut c, &h, "id; ls -la / /etc /home >/dev/null 2>&1; true");
            v.check("after a run");
            destroy_or_retry(&mut c, &h);
        }
        Err(ClientError::Server(m)) => eprintln!("{tag}: create refused: {m}"),
        Err(e) => panic!("{tag}: create: {e}\nlog:\n{}", s.log()),
    }
    v.check("after destroy");
    assert_nothing_left(&s, &mut c);
}

const ETC_FILES: [&str; 5] = ["passwd", "group", "hostname", "hosts", "resolv.conf"];

fn etc_files_planted(tag: &str, relative: bool) {
    let v = Victims::new(&format!("{tag}-victims"), &ETC_FILES, &[]);
    let (root, _g) = rootfs_copy(tag);
    for f in ETC_FILES {
        let target = if relative {
            escaping(&v.path(f))
        } else {
            v.path(f)
        };
        plant(&root, &format!("etc/{f}"), &target);
    }
    create_on_planted(tag, &root, Vec::new(), &v);
}

/// /etc/passwd, group, hostname, hosts, resolv.conf are absolute symlinks
/// to host files: the vcap user, hostname and resolver files written at
/// create must not land in them.
#[test]
fn planted_etc_absolute_symlinks_leave_host_files_alone() {
    etc_files_planted("rfs-etc-abs", false);
}

/// The same with relative symlinks that climb out of the root on the host.
#[test]
fn planted_etc_relative_symlinks_leave_host_files_alone() {
    etc_files_planted("rfs-etc-rel", true);
}

/// /proc and /dev are symlinks to host directories: nothing is mounted on
/// them and no device node or link appears in them.
#[test]
fn planted_proc_and_dev_symlinks_leave_host_dirs_alone() {
    let v = Victims::new("rfs-procdev-victims", &[], &["proc", "dev"]);
    let (root, _g) = rootfs_copy("rfs-procdev");
    plant(&root, "proc", &v.path("proc"));
    plant(&root, "dev", &v.path("dev"));
    create_on_planted("rfs-procdev", &root, Vec::new(), &v);
}

/// /home/vcap is a symlink to a host directory: vcap's home is not chowned
/// to the container's uid, nor filled, through it.
#[test]
fn planted_home_symlink_leaves_host_dir_alone() {
    let v = Victims::new("rfs-home-victims", &[], &["home"]);
    let (root, _g) = rootfs_copy("rfs-home");
    plant(&root, "home/vcap", &v.path("home"));
    create_on_planted("rfs-home", &root, Vec::new(), &v);
}

/// A bind mount whose destination goes through a symlink (absolute, then
/// relative and climbing out) to a host directory: no directory is made in
/// it and nothing is mounted on it.
#[test]
fn planted_bind_mount_destination_symlink_leaves_host_dir_alone() {
    let (src, _gs) = scratch("rfs-bind-src");
    std::fs::write(src.join("from-src"), "bind source\n").unwrap();
    for relative in [false, true] {
        let tag = if relative {
            "rfs-bind-rel"
        } else {
            "rfs-bind-abs"
        };
        let v = Victims::new(&format!("{tag}-victims"), &[], &["target"]);
        let (root, _g) = rootfs_copy(tag);
        let target = if relative {
            escaping(&v.path("target"))
        } else {
            v.path("target")
        };
        plant(&root, "data", &target);
        let bind = |dst: &str| proto::BindMount {
            src_path: Some(src.display().to_string()),
            dst_path: Some(dst.into()),
            mode: Some(1),
        };
        // Through the symlink into a new directory, and onto the symlink's
        // target itself.
        create_on_planted(tag, &root, vec![bind("/data/sub")], &v);
        create_on_planted(tag, &root, vec![bind("/data")], &v);
    }
    // The source is untouched too.
    let mut names: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["from-src"]);
}
