//! The container's standard mounts, made natively by the init before
//! pivot_root, so no program from the root filesystem runs while the host's
//! root is still reachable.
//!
//! Every mount lands under the new root through a path walked one component
//! at a time with `O_PATH | O_NOFOLLOW` from a descriptor of the root
//! ([`open_in`]), and the mount is made on `/proc/self/fd/N` of that
//! descriptor (the host's /proc is still mounted at this point): a symlink
//! that the root filesystem planted (`/proc -> /etc`, `/dev -> /`) makes the
//! setup fail instead of mounting over a host path. Nothing of the root
//! filesystem is running yet, so a path cannot change between the walk and
//! the mount.
//!
//! The table [`MOUNTS`], in order (targets relative to the new root):
//!
//! | target | what | flags / data |
//! |---|---|---|
//! | `/` | the root itself, remounted | + nodev (other flags kept) |
//! | `dev` | tmpfs | nosuid, noexec, `mode=755,size=64k` |
//! | `dev/{null,zero,full,random,urandom,tty}` | bind of the host's node onto an empty file | |
//! | `dev/pts` | devpts | nosuid, noexec, `newinstance,ptmxmode=0666,mode=0620,gid=5` |
//! | `dev/shm` | tmpfs | nosuid, nodev, `mode=1777` |
//! | `dev/ptmx`, `dev/fd`, `dev/std{in,out,err}` | symlinks | `pts/ptmx`, `/proc/self/fd`, `fd/0..2` |
//! | `proc` | proc | nosuid, nodev, noexec |
//! | `proc/{kcore,keys,latency_stats,timer_list,timer_stats,sched_debug,iomem,kpageflags,kpagecount,kpagecgroup}` | masked: bind of `dev/null` | |
//! | `proc/{acpi,scsi}` | masked: empty tmpfs | ro, nosuid, nodev, noexec, `size=0` |
//! | `proc/{sysrq-trigger,bus,fs,irq}` and `proc/sys` (unless nested warden is allowed) | bound onto themselves, read-only | ro, nosuid, nodev, noexec |
//!
//! Entries the kernel does not have are skipped. `/sys` is not mounted.
//! A missing `dev` or `proc` directory in the root filesystem is created
//! (the root is normally an overlay whose upper layer takes it); one that
//! is not a directory fails the setup.

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{fstatat, mkdirat, Mode, SFlag};
use nix::unistd::symlinkat;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use thiserror::Error;
use wsys::fs::openat;

#[derive(Debug, Error)]
pub enum SetupError {
    #[error("rootfs /{0}: {1}")]
    Path(String, String),
    #[error("{what} /{target}: {err}")]
    Mount {
        what: &'static str,
        target: String,
        err: Errno,
    },
    #[error("setting the hostname {0:?}: {1}")]
    Hostname(String, String),
}

/// One step of [`MOUNTS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A new filesystem on a directory (made when missing).
    Fs {
        target: &'static str,
        fstype: &'static str,
        flags: MsFlags,
        data: &'static str,
    },
    /// The host's device node bound onto an empty file `dev/<name>`.
    DevNode(&'static str),
    /// A symlink `path -> target`.
    Symlink(&'static str, &'static str),
    /// A file masked with `dev/null` (skipped when absent).
    MaskFile(&'static str),
    /// A directory masked with an empty read-only tmpfs (skipped when absent).
    MaskDir(&'static str),
    /// Bound onto itself read-only (skipped when absent); `nested` says
    /// whether it stays writable when nested warden is allowed.
    ReadOnly { path: &'static str, nested_rw: bool },
}

const NOSUID_NOEXEC: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC);
const NOSUID_NODEV_NOEXEC: MsFlags = NOSUID_NOEXEC.union(MsFlags::MS_NODEV);

/// The container's mounts, applied in this order (see the module docs).
pub const MOUNTS: &[Step] = &[
    Step::Fs {
        target: "dev",
        fstype: "tmpfs",
        flags: NOSUID_NOEXEC,
        data: "mode=755,size=64k",
    },
    Step::DevNode("null"),
    Step::DevNode("zero"),
    Step::DevNode("full"),
    Step::DevNode("random"),
    Step::DevNode("urandom"),
    Step::DevNode("tty"),
    Step::Fs {
        target: "dev/pts",
        fstype: "devpts",
        flags: NOSUID_NOEXEC,
        data: "newinstance,ptmxmode=0666,mode=0620,gid=5",
    },
    Step::Fs {
        target: "dev/shm",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: "mode=1777",
    },
    Step::Symlink("dev/ptmx", "pts/ptmx"),
    Step::Symlink("dev/fd", "/proc/self/fd"),
    Step::Symlink("dev/stdin", "fd/0"),
    Step::Symlink("dev/stdout", "fd/1"),
    Step::Symlink("dev/stderr", "fd/2"),
    Step::Fs {
        target: "proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: "",
    },
    Step::MaskFile("proc/kcore"),
    Step::MaskFile("proc/keys"),
    Step::MaskFile("proc/latency_stats"),
    Step::MaskFile("proc/timer_list"),
    Step::MaskFile("proc/timer_stats"),
    Step::MaskFile("proc/sched_debug"),
    Step::MaskFile("proc/iomem"),
    Step::MaskFile("proc/kpageflags"),
    Step::MaskFile("proc/kpagecount"),
    Step::MaskFile("proc/kpagecgroup"),
    Step::MaskDir("proc/acpi"),
    Step::MaskDir("proc/scsi"),
    Step::ReadOnly {
        path: "proc/sysrq-trigger",
        nested_rw: false,
    },
    Step::ReadOnly {
        path: "proc/bus",
        nested_rw: false,
    },
    Step::ReadOnly {
        path: "proc/fs",
        nested_rw: false,
    },
    Step::ReadOnly {
        path: "proc/irq",
        nested_rw: false,
    },
    Step::ReadOnly {
        path: "proc/sys",
        nested_rw: true,
    },
];

/// Applies [`MOUNTS`] under `root` (a mount point, not yet pivoted into),
/// remounts `root` nodev, then applies `binds` ([`apply_binds`]), all from
/// one descriptor of the root. `allow_nested` keeps `/proc/sys` writable.
pub fn apply(root: &Path, allow_nested: bool, binds: &[Bind]) -> Result<(), SetupError> {
    let rootfd = open_root(root)?;
    remount_nodev(root)?;
    for step in MOUNTS {
        apply_step(&rootfd, root, *step, allow_nested)?;
    }
    apply_binds(&rootfd, binds)
}

/// Sets the hostname of the container's UTS namespace.
pub fn set_hostname(name: &str) -> Result<(), SetupError> {
    check_hostname(name).map_err(|e| SetupError::Hostname(name.into(), e.into()))?;
    nix::unistd::sethostname(name).map_err(|e| SetupError::Hostname(name.into(), e.to_string()))
}

/// A valid hostname: 1..=64 bytes, no NUL, no `/`, no whitespace.
pub fn check_hostname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 bytes");
    }
    if name
        .bytes()
        .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err("must not hold '/', whitespace or control characters");
    }
    Ok(())
}

fn open_root(root: &Path) -> Result<OwnedFd, SetupError> {
    wsys::fs::openat(
        None,
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .map_err(|e| SetupError::Path(String::new(), e.to_string()))
}

/// Opens `rel` (components separated by `/`, no `.`/`..`) below `dirfd`
/// without following any symlink. With `mkdir`, missing components are
/// created as 0755 directories. Returns an `O_PATH` descriptor.
pub fn open_in(dirfd: &OwnedFd, rel: &str, mkdir: bool) -> Result<OwnedFd, SetupError> {
    let err = |e: String| SetupError::Path(rel.to_string(), e);
    let mut cur: Option<OwnedFd> = None;
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    for (i, c) in comps.iter().enumerate() {
        if *c == "." || *c == ".." {
            return Err(err("'.' and '..' are not allowed".into()));
        }
        let base = cur.as_ref().unwrap_or(dirfd);
        let last = i + 1 == comps.len();
        let flags = OFlag::O_PATH | OFlag::O_NOFOLLOW;
        let r = openat(Some(base), *c, flags, Mode::empty());
        let fd = match r {
            Err(Errno::ENOENT) if mkdir => {
                match mkdirat(Some(base.as_raw_fd()), *c, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(err(format!("creating {c}: {e}"))),
                }
                openat(Some(base), *c, flags, Mode::empty()).map_err(|e| err(e.to_string()))?
            }
            Err(e) => return Err(err(e.to_string())),
            Ok(fd) => fd,
        };
        let st = fstatat(Some(fd.as_raw_fd()), "", nix::fcntl::AtFlags::AT_EMPTY_PATH)
            .map_err(|e| err(e.to_string()))?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind == SFlag::S_IFLNK {
            return Err(err(
                "is a symlink (refused: it could lead out of the container root)".into(),
            ));
        }
        if !last && kind != SFlag::S_IFDIR {
            return Err(err(format!("{c} is not a directory")));
        }
        cur = Some(fd);
    }
    cur.ok_or_else(|| err("empty path".into()))
}

fn fd_path(fd: &OwnedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

fn is_dir(fd: &OwnedFd) -> bool {
    fstatat(Some(fd.as_raw_fd()), "", nix::fcntl::AtFlags::AT_EMPTY_PATH)
        .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
        .unwrap_or(false)
}

/// Opens `rel` if it exists (None when absent), refusing symlinks.
fn open_existing(rootfd: &OwnedFd, rel: &str) -> Result<Option<OwnedFd>, SetupError> {
    match open_in(rootfd, rel, false) {
        Ok(fd) => Ok(Some(fd)),
        Err(SetupError::Path(_, ref e)) if e == &Errno::ENOENT.to_string() => Ok(None),
        Err(e) => Err(e),
    }
}

fn mnt(what: &'static str, target: &str, r: nix::Result<()>) -> Result<(), SetupError> {
    r.map_err(|err| SetupError::Mount {
        what,
        target: target.to_string(),
        err,
    })
}

/// Remounts the root bind mount with nodev added, keeping its other flags.
fn remount_nodev(root: &Path) -> Result<(), SetupError> {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let st = statvfs(root).map_err(|e| SetupError::Path(String::new(), e.to_string()))?;
    let f = st.flags();
    let mut flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NODEV;
    for (s, m) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(s) {
            flags |= m;
        }
    }
    mnt(
        "remounting nodev",
        "",
        mount(None::<&str>, root, None::<&str>, flags, None::<&str>),
    )
}

fn apply_step(
    rootfd: &OwnedFd,
    root: &Path,
    step: Step,
    allow_nested: bool,
) -> Result<(), SetupError> {
    match step {
        Step::Fs {
            target,
            fstype,
            flags,
            data,
        } => {
            let fd = open_in(rootfd, target, true)?;
            if !is_dir(&fd) {
                return Err(SetupError::Path(target.into(), "not a directory".into()));
            }
            let data = (!data.is_empty()).then_some(data);
            mnt(
                "mounting",
                target,
                mount(
                    Some(fstype),
                    fd_path(&fd).as_str(),
                    Some(fstype),
                    flags,
                    data,
                ),
            )
        }
        Step::DevNode(name) => {
            let host = format!("/dev/{name}");
            let md = std::fs::metadata(&host).map_err(|e| {
                SetupError::Path(format!("dev/{name}"), format!("host {host}: {e}"))
            })?;
            use std::os::unix::fs::FileTypeExt;
            if !md.file_type().is_char_device() {
                return Err(SetupError::Path(
                    format!("dev/{name}"),
                    format!("host {host} is not a character device"),
                ));
            }
            let dev = open_in(rootfd, "dev", false)?;
            let dev = reopen_dir(&dev, "dev")?;
            let f = openat(
                Some(&dev),
                name,
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o666),
            )
            .map_err(|e| SetupError::Path(format!("dev/{name}"), e.to_string()))?;
            drop(f);
            let target = open_in(rootfd, &format!("dev/{name}"), false)?;
            mnt(
                "binding the host's node onto",
                &format!("dev/{name}"),
                mount(
                    Some(host.as_str()),
                    fd_path(&target).as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                ),
            )
        }
        Step::Symlink(path, target) => {
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
            let d = open_in(rootfd, dir, false)?;
            // symlinkat needs a real directory fd, not O_PATH.
            let d = reopen_dir(&d, dir)?;
            symlinkat(target, Some(d.as_raw_fd()), name)
                .map_err(|e| SetupError::Path(path.into(), format!("symlink: {e}")))
        }
        Step::MaskFile(path) => {
            let Some(fd) = open_existing(rootfd, path)? else {
                return Ok(());
            };
            let null = root.join("dev/null");
            mnt(
                "masking",
                path,
                mount(
                    Some(&null),
                    fd_path(&fd).as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                ),
            )
        }
        Step::MaskDir(path) => {
            let Some(fd) = open_existing(rootfd, path)? else {
                return Ok(());
            };
            mnt(
                "masking",
                path,
                mount(
                    Some("tmpfs"),
                    fd_path(&fd).as_str(),
                    Some("tmpfs"),
                    NOSUID_NODEV_NOEXEC | MsFlags::MS_RDONLY,
                    Some("size=0"),
                ),
            )
        }
        Step::ReadOnly { path, nested_rw } => {
            if nested_rw && allow_nested {
                return Ok(());
            }
            let Some(fd) = open_existing(rootfd, path)? else {
                return Ok(());
            };
            let p = fd_path(&fd);
            mnt(
                "binding",
                path,
                mount(
                    Some(p.as_str()),
                    p.as_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                ),
            )?;
            // The bind is a new mount on top: reopen to reach it.
            let fd = open_in(rootfd, path, false)?;
            mnt(
                "making read-only",
                path,
                mount(
                    None::<&str>,
                    fd_path(&fd).as_str(),
                    None::<&str>,
                    MsFlags::MS_REMOUNT
                        | MsFlags::MS_BIND
                        | MsFlags::MS_RDONLY
                        | NOSUID_NODEV_NOEXEC,
                    None::<&str>,
                ),
            )
        }
    }
}

/// An `O_PATH` directory descriptor reopened for real use (`*at` calls that
/// create entries need one).
fn reopen_dir(fd: &OwnedFd, rel: &str) -> Result<OwnedFd, SetupError> {
    openat(
        None,
        fd_path(fd).as_str(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .map_err(|e| SetupError::Path(rel.into(), e.to_string()))
}

/// One `--bind MODE:SRC:DST`: the host path SRC (a directory or a file)
/// mounted at DST inside the container, read-only for MODE `ro`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub ro: bool,
    pub src: std::path::PathBuf,
    pub dst: String,
}

/// Parses `ro|rw:SRC:DST` (plain absolute paths without `:`; DST not `/`,
/// no `.` or `..` component).
pub fn parse_bind(v: &str) -> Result<Bind, String> {
    let mut it = v.splitn(3, ':');
    let (Some(mode), Some(src), Some(dst)) = (it.next(), it.next(), it.next()) else {
        return Err(format!("want ro|rw:SRC:DST, got {v:?}"));
    };
    let ro = match mode {
        "ro" => true,
        "rw" => false,
        m => return Err(format!("bad mode {m:?} (want ro or rw)")),
    };
    for (what, p) in [("source", src), ("destination", dst)] {
        if !p.starts_with('/') || p.contains(':') || p.split('/').any(|c| c == "." || c == "..") {
            return Err(format!("{what} {p:?} must be a plain absolute path"));
        }
    }
    if dst.trim_matches('/').is_empty() {
        return Err("destination must not be /".into());
    }
    Ok(Bind {
        ro,
        src: src.into(),
        dst: dst.to_string(),
    })
}

/// Applies bind mounts under the root `rootfd` (after [`MOUNTS`]). Each destination is walked from the
/// root's fd without following any symlink (missing parts are made:
/// directories, and an empty file last when SRC is a file), then the
/// source is cloned as a detached tree (`open_tree`), made read-only on
/// that detached tree when asked (`mount_setattr`), and attached onto the
/// walked fd (`move_mount`): no path is resolved between the walk and the
/// mount, so a process swapping a component for a symlink meanwhile (a
/// container sharing the volume, CVE-2021-30465) cannot redirect it, and
/// the mount is read-only from the moment it is visible.
fn apply_binds(rootfd: &OwnedFd, binds: &[Bind]) -> Result<(), SetupError> {
    for (i, b) in binds.iter().enumerate() {
        let rel = b.dst.trim_matches('/');
        let err =
            |e: String| SetupError::Path(rel.to_string(), format!("bind mount {}: {e}", i + 1));
        let md = std::fs::metadata(&b.src)
            .map_err(|e| err(format!("source {}: {e}", b.src.display())))?;
        let target = if md.is_dir() {
            let fd = open_in(rootfd, rel, true)?;
            if !is_dir(&fd) {
                return Err(err(
                    "source is a directory but the destination is not".into()
                ));
            }
            fd
        } else {
            let (dir, name) = rel.rsplit_once('/').unwrap_or(("", rel));
            let parent = if dir.is_empty() {
                reopen_dir(rootfd, "")?
            } else {
                reopen_dir(&open_in(rootfd, dir, true)?, dir)?
            };
            match openat(
                Some(&parent),
                name,
                OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW,
                Mode::from_bits_truncate(0o644),
            ) {
                Ok(_) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(err(format!("creating the file: {e}"))),
            }
            let fd = open_in(rootfd, rel, false)?;
            if is_dir(&fd) {
                return Err(err(
                    "source is a file but the destination is a directory".into()
                ));
            }
            fd
        };
        let tree = wsys::mount::open_tree_clone(&b.src)
            .map_err(|e| err(format!("open_tree {}: {e}", b.src.display())))?;
        if b.ro {
            wsys::mount::set_tree_readonly(&tree).map_err(|e| err(format!("read-only: {e}")))?;
        }
        wsys::mount::move_mount_onto(&tree, &target).map_err(|e| err(format!("mount: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse() {
        let b = parse_bind("ro:/src/a:/vol/d").unwrap();
        assert!(b.ro);
        assert_eq!(b.dst, "/vol/d");
        assert!(!parse_bind("rw:/s:/d").unwrap().ro);
        for bad in [
            "ro:/s",
            "xx:/s:/d",
            "ro:s:/d",
            "ro:/s:/",
            "ro:/s:/a/../b",
            "ro:/s:/a:b",
        ] {
            assert!(parse_bind(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostnames() {
        assert!(check_hostname("abc-123").is_ok());
        assert!(check_hostname("").is_err());
        assert!(check_hostname(&"a".repeat(65)).is_err());
        assert!(check_hostname("a/b").is_err());
        assert!(check_hostname("a b").is_err());
        assert!(check_hostname("a\nb").is_err());
    }

    #[test]
    fn table_is_ordered_and_relative() {
        // Every target is relative, and every path lies below a mount made
        // earlier in the table (dev/..., proc/...).
        let mut seen_dev = false;
        let mut seen_proc = false;
        for s in MOUNTS {
            let p = match *s {
                Step::Fs { target, .. } => target,
                Step::DevNode(_) => "dev/x",
                Step::Symlink(p, _) | Step::MaskFile(p) | Step::MaskDir(p) => p,
                Step::ReadOnly { path, .. } => path,
            };
            assert!(!p.starts_with('/'), "{p}");
            if p == "dev" {
                seen_dev = true;
            } else if p == "proc" {
                seen_proc = true;
            } else if p.starts_with("dev/") {
                assert!(seen_dev, "{p} before dev");
            } else if p.starts_with("proc/") {
                assert!(seen_proc, "{p} before proc");
            }
        }
        assert!(seen_dev && seen_proc);
    }

    #[test]
    fn open_in_refuses_symlinks_and_dotdot() {
        let d = std::env::temp_dir().join(format!("wshd-setup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", d.join("a/link")).unwrap();
        let root = open_root(&d).unwrap();
        assert!(open_in(&root, "a/b", false).is_ok());
        let e = open_in(&root, "a/link", false).unwrap_err().to_string();
        assert!(e.contains("symlink"), "{e}");
        assert!(open_in(&root, "a/link/passwd", false).is_err());
        assert!(open_in(&root, "a/../a", false).is_err());
        assert!(open_existing(&root, "a/none").unwrap().is_none());
        let made = open_in(&root, "a/new/deeper", true).unwrap();
        assert!(is_dir(&made));
        assert!(d.join("a/new/deeper").is_dir());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
