//! User lookup in the container's `/etc/passwd` and `/etc/group`, parsed
//! here (static glibc's getpwnam would load NSS modules from the host).
//!
//! passwd line: `name:password:uid:gid:gecos:home:shell`
//! group line:  `name:password:gid:member,member,...`
//! Blank lines and lines starting with `#` are skipped; a malformed line is
//! skipped too (it cannot match). Files larger than [`MAX_FILE`] are refused.
//! The files are opened without following a symlink and without blocking,
//! and must be regular files: container root could plant a FIFO or a link to
//! /dev/zero there, and wshd must never hang or read without bound.
//! A root filesystem with no `/etc/passwd` at all (a single static binary)
//! still has `root`: uid 0, gid 0, home `/`, shell `/bin/sh`.

use std::path::Path;
use thiserror::Error;

/// Largest passwd/group file read.
pub const MAX_FILE: u64 = 4 * 1024 * 1024;
/// Most supplementary groups set for one user.
pub const MAX_GROUPS: usize = 64;

#[derive(Debug, Error)]
pub enum PasswdError {
    #[error("unknown user '{0}'")]
    Unknown(String),
    #[error("read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0} is larger than {MAX_FILE} bytes")]
    TooBig(String),
    #[error("{0} is not a regular file")]
    NotRegular(String),
}

/// What a session needs to know about its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
    /// Supplementary groups, the primary gid first.
    pub groups: Vec<u32>,
}

fn read(path: &Path) -> Result<String, PasswdError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let d = path.display().to_string();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| PasswdError::Read(d.clone(), e))?;
    let md = f.metadata().map_err(|e| PasswdError::Read(d.clone(), e))?;
    if !md.is_file() {
        return Err(PasswdError::NotRegular(d));
    }
    if md.len() > MAX_FILE {
        return Err(PasswdError::TooBig(d));
    }
    let mut buf = Vec::new();
    f.take(MAX_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| PasswdError::Read(d.clone(), e))?;
    if buf.len() as u64 > MAX_FILE {
        return Err(PasswdError::TooBig(d));
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// root when the root filesystem has no /etc/passwd.
fn builtin_root() -> User {
    User {
        name: "root".into(),
        uid: 0,
        gid: 0,
        home: "/".into(),
        shell: "/bin/sh".into(),
        groups: vec![0],
    }
}

/// Finds `name` in passwd text.
pub fn find_passwd(text: &str, name: &str) -> Option<User> {
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || f[0] != name {
            continue;
        }
        let (Ok(uid), Ok(gid)) = (f[2].parse::<u32>(), f[3].parse::<u32>()) else {
            continue;
        };
        // (uid_t)-1 means "unchanged" to setresuid/setresgid: never a user.
        if uid == u32::MAX || gid == u32::MAX {
            continue;
        }
        return Some(User {
            name: name.to_string(),
            uid,
            gid,
            home: f[5].to_string(),
            shell: f[6].to_string(),
            groups: vec![gid],
        });
    }
    None
}

/// Groups listing `name` as a member, from group text.
pub fn member_groups(text: &str, name: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || line.starts_with('#') {
            continue;
        }
        if f[3].split(',').any(|m| m.trim() == name) {
            if let Ok(g) = f[2].parse() {
                out.push(g);
            }
        }
    }
    out
}

/// Looks up `name` under `root` (`/` inside the container).
pub fn lookup(root: &Path, name: &str) -> Result<User, PasswdError> {
    let pw = match read(&root.join("etc/passwd")) {
        Err(PasswdError::Read(_, e))
            if e.kind() == std::io::ErrorKind::NotFound && name == "root" =>
        {
            return Ok(builtin_root())
        }
        r => r?,
    };
    let mut u = find_passwd(&pw, name).ok_or_else(|| PasswdError::Unknown(name.to_string()))?;
    // A missing /etc/group only means no supplementary groups.
    if let Ok(gr) = read(&root.join("etc/group")) {
        for g in member_groups(&gr, name) {
            if !u.groups.contains(&g) && u.groups.len() < MAX_GROUPS {
                u.groups.push(g);
            }
        }
    }
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PW: &str = "root:x:0:0:root:/root:/bin/sh\n# c\n\nbad:line\nvcap:x:10000:10000:vcap:/home/vcap:/bin/sh\nodd:x:zz:1:o:/:/bin/sh\n";
    const GR: &str = "root:x:0:\ntty:x:5:\nvcap:x:10000:\nvcapextra:x:10001:vcap\nboth:x:7:root,vcap\nnot:x:8:vcapx\n";

    #[test]
    fn finds_users_and_groups() {
        let u = find_passwd(PW, "vcap").unwrap();
        assert_eq!(
            (u.uid, u.gid, u.home.as_str(), u.shell.as_str()),
            (10000, 10000, "/home/vcap", "/bin/sh")
        );
        assert_eq!(member_groups(GR, "vcap"), vec![10001, 7]);
        assert_eq!(member_groups(GR, "root"), vec![7]);
        assert!(find_passwd(PW, "bob").is_none());
        assert!(find_passwd(PW, "odd").is_none());
        assert!(find_passwd(PW, "bad").is_none());
        assert!(find_passwd(PW, "").is_none());
        assert!(find_passwd("x:x:4294967295:1:::/bin/sh\n", "x").is_none());
        assert!(find_passwd("x:x:1:4294967295:::/bin/sh\n", "x").is_none());
    }

    #[test]
    fn lookup_reads_files() {
        let d = std::env::temp_dir().join(format!("wshd-passwd-{}", std::process::id()));
        std::fs::create_dir_all(d.join("etc")).unwrap();
        std::fs::write(d.join("etc/passwd"), PW).unwrap();
        std::fs::write(d.join("etc/group"), GR).unwrap();
        let u = lookup(&d, "vcap").unwrap();
        assert_eq!(u.groups, vec![10000, 10001, 7]);
        let e = lookup(&d, "bob").unwrap_err();
        assert_eq!(e.to_string(), "unknown user 'bob'");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn hostile_files_are_refused_without_blocking() {
        let d = std::env::temp_dir().join(format!("wshd-passwd-h-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("etc")).unwrap();
        // No passwd: root still exists, nobody else does.
        assert_eq!(lookup(&d, "root").unwrap(), builtin_root());
        assert!(lookup(&d, "vcap").is_err());
        // A FIFO (open would block without O_NONBLOCK, read forever).
        nix::unistd::mkfifo(
            &d.join("etc/passwd"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let e = lookup(&d, "root").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_file(d.join("etc/passwd")).unwrap();
        // A symlink to /dev/zero (unbounded) or to any other file.
        std::os::unix::fs::symlink("/dev/zero", d.join("etc/passwd")).unwrap();
        let e = lookup(&d, "root").unwrap_err().to_string();
        assert!(e.contains("read"), "{e}");
        std::fs::remove_file(d.join("etc/passwd")).unwrap();
        // Too big.
        std::fs::write(d.join("etc/passwd"), vec![b'#'; MAX_FILE as usize + 1]).unwrap();
        assert!(matches!(lookup(&d, "root"), Err(PasswdError::TooBig(_))));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
