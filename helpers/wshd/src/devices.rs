//! Device control on cgroup v2: the container's device allowlist as a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program, attached to the init's cgroup by
//! the invoking wshd before the init goes on.
//!
//! cgroup v1 has a devices controller, which hook-parent-after-clone.sh
//! configures (deny all, then [`ALLOWLIST`]). cgroup v2 has none: there the
//! kernel asks the BPF programs attached to the cgroup and its ancestors
//! (type, major, minor and access of every open and mknod of a device
//! node), and refuses unless every one returns 1. Without a program, root in
//! the container could `mknod /tmp/sda b 8 0` in a tmpfs and open the host's
//! disk (the root filesystem is nodev, but /dev and /dev/shm are tmpfs).
//!
//! Who attaches, and to what (the choice, and why):
//! - wshd's invoker, right after hook-parent-after-clone.sh has returned and
//!   before it writes "go" to the init: the init is still blocked on the
//!   pipe, so no container process has run yet, and the hook has moved the
//!   init into its cgroups. wshd knows `--allow-nested` itself, so the
//!   scripts pass nothing new.
//! - The target is the init's own v2 cgroup, read from `/proc/<pid>/cgroup`
//!   (the `0::` line), and only when it differs from the invoker's own v2
//!   cgroup (and is not the root): a cgroup wshd did not get from its hook
//!   (the root cgroup, the caller's service or session) never gets a
//!   program. So nothing is attached on a v1 or hybrid host where the hook
//!   only makes v1 cgroups, nor for a hand-run wshd whose hooks make no
//!   cgroup. The directory is found through the cgroup2 mount in
//!   `/proc/self/mountinfo`, opened `O_DIRECTORY|O_NOFOLLOW`, and must hold
//!   the init and nothing else, or the boot fails.
//! - `--allow-nested` (allow_nested_warden=true): no program (every device,
//!   as v1's `a *:* rwm`).
//! - Attached with `BPF_F_ALLOW_MULTI`, as runc and systemd do: programs of
//!   ancestors (a host's own device policy) still run, and a program
//!   attached below the container's cgroup runs in addition to this one,
//!   never instead of it, so it can only narrow the list. The attachment
//!   lives as long as the cgroup; destroy.sh's rmdir frees it.
//! - Any failure (no BPF in the kernel, the verifier refusing, the attach
//!   refused by an ancestor's non-overridable program) fails the boot: a
//!   container on v2 without device control is never started.
//!
//! The program (built by [`program`], as runc's libcontainer/cgroups/devices
//! /ebpf does) reads `struct bpf_cgroup_dev_ctx` into r2 = type, r3 =
//! access, r4 = major, r5 = minor, then per rule: if the type differs, or
//! the access is not within the rule's (skipped for rwm), or the major or
//! minor (unless `*`) differs, go to the next rule; else return 1. After the
//! last rule it returns 0.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use thiserror::Error;
use wsys::bpf::{devcg, op, Insn};

/// The devices a container may use, in the devices controller's syntax:
/// the same list hook-parent-after-clone.sh writes to v1's devices.allow
/// (a unit test keeps the two equal).
pub const ALLOWLIST: [&str; 8] = [
    "c 1:3 rwm",   // null
    "c 1:5 rwm",   // zero
    "c 1:7 rwm",   // full
    "c 1:8 rwm",   // random
    "c 1:9 rwm",   // urandom
    "c 5:0 rwm",   // tty
    "c 5:2 rwm",   // ptmx
    "c 136:* rwm", // pts/*
];

/// The program's license string (no GPL-only helper is called).
const LICENSE: &std::ffi::CStr = c"Apache-2.0";
/// The program's name as bpftool shows it.
pub const PROG_NAME: &str = "warden_devices";

#[derive(Debug, Error)]
pub enum DevicesError {
    #[error("device control: bad rule {0:?}: {1}")]
    Rule(String, &'static str),
    #[error("device control: reading {0}: {1}")]
    Read(String, String),
    #[error("device control: the init's cgroup {0} is not under any cgroup2 mount")]
    NoMount(String),
    #[error("device control: opening cgroup {0}: {1}")]
    Open(String, nix::errno::Errno),
    #[error("device control: cgroup {0} holds other processes than the container's init ({1})")]
    Shared(String, String),
    #[error("device control: loading the BPF device program: {0}")]
    Load(wsys::bpf::LoadError),
    #[error("device control: attaching the BPF device program to {0}: {1}")]
    Attach(String, nix::errno::Errno),
}

/// Device type of a rule (`a` matches both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Char,
    Block,
    Any,
}

/// One allowlist line: `TYPE MAJOR:MINOR ACCESS`, `*` for any number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// `BPF_DEVCG_ACC_*` bits.
    pub access: i32,
}

const RWM: i32 = devcg::ACC_READ | devcg::ACC_WRITE | devcg::ACC_MKNOD;

impl Rule {
    /// Parses `c 1:3 rwm`, `c 136:* rwm`, `b 8:0 r`, `a *:* rwm`.
    pub fn parse(line: &str) -> Result<Rule, DevicesError> {
        let bad = |why| DevicesError::Rule(line.to_string(), why);
        let mut it = line.split_whitespace();
        let (Some(t), Some(nums), Some(acc), None) = (it.next(), it.next(), it.next(), it.next())
        else {
            return Err(bad("want TYPE MAJOR:MINOR ACCESS"));
        };
        let kind = match t {
            "c" => Kind::Char,
            "b" => Kind::Block,
            "a" => Kind::Any,
            _ => return Err(bad("type is not c, b or a")),
        };
        let (ma, mi) = nums
            .split_once(':')
            .ok_or_else(|| bad("want MAJOR:MINOR"))?;
        // Linux majors have 12 bits and minors 20, so both fit the
        // instructions' signed 32-bit immediates.
        let num = |s: &str| -> Result<Option<u32>, DevicesError> {
            if s == "*" {
                return Ok(None);
            }
            match s.parse::<u32>() {
                Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) && n < 1 << 20 => Ok(Some(n)),
                _ => Err(bad("device number is not * or 0..=1048575")),
            }
        };
        let (major, minor) = (num(ma)?, num(mi)?);
        let mut access = 0;
        for ch in acc.chars() {
            let bit = match ch {
                'r' => devcg::ACC_READ,
                'w' => devcg::ACC_WRITE,
                'm' => devcg::ACC_MKNOD,
                _ => return Err(bad("access is not made of r, w, m")),
            };
            if access & bit != 0 {
                return Err(bad("access letter repeated"));
            }
            access |= bit;
        }
        if access == 0 {
            return Err(bad("empty access"));
        }
        Ok(Rule {
            kind,
            major,
            minor,
            access,
        })
    }

    /// Whether the rule allows this access (the reference the program is
    /// tested against).
    pub fn allows(&self, dev_type: i32, major: u32, minor: u32, access: i32) -> bool {
        let kind_ok = match self.kind {
            Kind::Char => dev_type == devcg::DEV_CHAR,
            Kind::Block => dev_type == devcg::DEV_BLOCK,
            Kind::Any => true,
        };
        kind_ok
            && access & !self.access == 0
            && !matches!(self.major, Some(m) if m != major)
            && !matches!(self.minor, Some(m) if m != minor)
    }
}

/// The rules of [`ALLOWLIST`].
pub fn allowlist() -> Vec<Rule> {
    ALLOWLIST
        .iter()
        .map(|l| Rule::parse(l).expect("ALLOWLIST parses"))
        .collect()
}

// Registers.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

/// The device program for `rules`: allows an access when one rule allows
/// it, denies everything else (see the module comment for its shape). It
/// ends at the first rule that allows everything (`a *:* rwm`).
pub fn program(rules: &[Rule]) -> Vec<Insn> {
    let mut p = vec![
        // r2 = type (low 16 bits of access_type), r3 = access (high 16).
        Insn::new(op::LDX_MEM_W, R2, R1, devcg::OFF_ACCESS_TYPE, 0),
        Insn::new(op::ALU32_AND_K, R2, 0, 0, 0xffff),
        Insn::new(op::LDX_MEM_W, R3, R1, devcg::OFF_ACCESS_TYPE, 0),
        Insn::new(op::ALU32_RSH_K, R3, 0, 0, 16),
        Insn::new(op::LDX_MEM_W, R4, R1, devcg::OFF_MAJOR, 0),
        Insn::new(op::LDX_MEM_W, R5, R1, devcg::OFF_MINOR, 0),
    ];
    for r in rules {
        let mut block = Vec::new();
        match r.kind {
            Kind::Char => block.push(Insn::new(op::JNE_K, R2, 0, 0, devcg::DEV_CHAR)),
            Kind::Block => block.push(Insn::new(op::JNE_K, R2, 0, 0, devcg::DEV_BLOCK)),
            Kind::Any => {}
        }
        if r.access != RWM {
            // if (access & rule) != access goto next (r1, the context, is
            // no longer needed).
            block.push(Insn::new(op::ALU32_MOV_X, R1, R3, 0, 0));
            block.push(Insn::new(op::ALU32_AND_K, R1, 0, 0, r.access));
            block.push(Insn::new(op::JNE_X, R1, R3, 0, 0));
        }
        if let Some(m) = r.major {
            block.push(Insn::new(op::JNE_K, R4, 0, 0, m as i32));
        }
        if let Some(m) = r.minor {
            block.push(Insn::new(op::JNE_K, R5, 0, 0, m as i32));
        }
        block.push(Insn::new(op::ALU32_MOV_K, R0, 0, 0, 1));
        block.push(Insn::new(op::EXIT, 0, 0, 0, 0));
        // A rule without conditions allows everything: what would follow
        // could never run, and the verifier refuses unreachable code.
        if block.len() == 2 {
            p.extend(block);
            return p;
        }
        // Every jump goes to the first instruction after the block.
        let len = block.len();
        for (i, insn) in block.iter_mut().enumerate() {
            if insn.code == op::JNE_K || insn.code == op::JNE_X {
                insn.off = (len - i - 1) as i16;
            }
        }
        p.extend(block);
    }
    p.push(Insn::new(op::ALU32_MOV_K, R0, 0, 0, 0));
    p.push(Insn::new(op::EXIT, 0, 0, 0, 0));
    p
}

/// Loads the program for `rules` into the kernel (checked by the verifier).
pub fn load(rules: &[Rule]) -> Result<OwnedFd, DevicesError> {
    wsys::bpf::prog_load(
        wsys::bpf::PROG_TYPE_CGROUP_DEVICE,
        &program(rules),
        LICENSE,
        PROG_NAME,
    )
    .map_err(DevicesError::Load)
}

/// What [`restrict`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `--allow-nested`: no program, every device allowed.
    AllowAll,
    /// The init is in the invoker's own (or the root) v2 cgroup: nothing
    /// attached (v1 host, or no hook made a cgroup).
    NoOwnCgroup,
    /// The allowlist program is attached to this cgroup directory.
    Attached(PathBuf),
}

/// The v2 cgroup path (the `0::` line) in a /proc/PID/cgroup text.
pub fn v2_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup.lines().find_map(|l| l.strip_prefix("0::"))
}

/// The directory of v2 cgroup `path` (as /proc/PID/cgroup shows it) under
/// the first cgroup2 mount of a mountinfo text that holds it.
pub fn v2_dir(mountinfo: &str, path: &str) -> Option<PathBuf> {
    for l in mountinfo.lines() {
        let Some((left, right)) = l.split_once(" - ") else {
            continue;
        };
        if right.split(' ').next() != Some("cgroup2") {
            continue;
        }
        let f: Vec<&str> = left.split(' ').collect();
        let (Some(root), Some(point)) = (f.get(3), f.get(4)) else {
            continue;
        };
        let root = wsys::mount::unescape(root);
        let rest = if root == "/" {
            Some(path)
        } else {
            path.strip_prefix(root.as_str())
                .filter(|r| r.is_empty() || r.starts_with('/'))
        };
        if let Some(rest) = rest {
            let rest = rest.trim_start_matches('/');
            let point = PathBuf::from(wsys::mount::unescape(point));
            return Some(if rest.is_empty() {
                point
            } else {
                point.join(rest)
            });
        }
    }
    None
}

fn read(path: &str) -> Result<String, DevicesError> {
    std::fs::read_to_string(path).map_err(|e| DevicesError::Read(path.to_string(), e.to_string()))
}

/// Gives the container whose init is `pid` (blocked, just moved into its
/// cgroups by hook-parent-after-clone.sh) its device allowlist on cgroup v2;
/// see the module comment for when it attaches and where.
pub fn restrict(pid: i32, allow_nested: bool) -> Result<Outcome, DevicesError> {
    if allow_nested {
        return Ok(Outcome::AllowAll);
    }
    let theirs = read(&format!("/proc/{pid}/cgroup"))?;
    let ours = read("/proc/self/cgroup")?;
    let Some(cg) = v2_path(&theirs) else {
        return Ok(Outcome::NoOwnCgroup);
    };
    if cg == "/" || Some(cg) == v2_path(&ours) {
        return Ok(Outcome::NoOwnCgroup);
    }
    let dir = v2_dir(&read("/proc/self/mountinfo")?, cg)
        .ok_or_else(|| DevicesError::NoMount(cg.to_string()))?;
    let name = dir.display().to_string();
    let fd = wsys::fs::openat(
        None,
        &dir,
        nix::fcntl::OFlag::O_RDONLY
            | nix::fcntl::OFlag::O_DIRECTORY
            | nix::fcntl::OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| DevicesError::Open(name.clone(), e))?;
    // The directory opened is the init's, and only the init's.
    let procs = read(&format!("/proc/self/fd/{}/cgroup.procs", fd.as_raw_fd()))?;
    if procs.split_whitespace().ne([pid.to_string().as_str()]) {
        return Err(DevicesError::Shared(
            name,
            procs.split_whitespace().collect::<Vec<_>>().join(" "),
        ));
    }
    let prog = load(&allowlist())?;
    wsys::bpf::prog_attach(
        fd.as_fd(),
        prog.as_fd(),
        wsys::bpf::ATTACH_CGROUP_DEVICE,
        wsys::bpf::F_ALLOW_MULTI,
    )
    .map_err(|e| DevicesError::Attach(name, e))?;
    Ok(Outcome::Attached(dir))
}

/// Whether `dir` (a cgroup v2 directory) has a device program attached to it
/// (`effective`: one that runs for it, inherited ones included).
pub fn has_program(dir: &Path, effective: bool) -> nix::Result<bool> {
    let fd = wsys::fs::openat(
        None,
        dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )?;
    let flags = if effective {
        wsys::bpf::F_QUERY_EFFECTIVE
    } else {
        0
    };
    let q = wsys::bpf::prog_query(fd.as_fd(), wsys::bpf::ATTACH_CGROUP_DEVICE, flags)?;
    Ok(!q.ids.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a device program the way the kernel would (only the opcodes
    /// [`program`] emits; anything else, a jump out of the program or a
    /// read of an unset register fails the test).
    fn run(p: &[Insn], access_type: u32, major: u32, minor: u32) -> u64 {
        let ctx = [access_type, major, minor];
        let mut r = [None::<u64>; 11];
        let mut ctx_in_r1 = true;
        let mut pc = 0usize;
        for _ in 0..4096 {
            let i = p
                .get(pc)
                .unwrap_or_else(|| panic!("pc {pc} out of the program"));
            let (d, s) = (i.dst() as usize, i.src() as usize);
            let get =
                |r: &[Option<u64>; 11], n: usize| r[n].unwrap_or_else(|| panic!("r{n} unset"));
            pc += 1;
            match i.code {
                op::LDX_MEM_W => {
                    assert!(s == 1 && ctx_in_r1, "load not from the context at {pc}");
                    assert!(
                        i.off >= 0 && i.off % 4 == 0 && i.off < 12,
                        "bad offset {}",
                        i.off
                    );
                    r[d] = Some(ctx[i.off as usize / 4] as u64);
                }
                op::ALU32_AND_K => r[d] = Some((get(&r, d) as u32 & i.imm as u32) as u64),
                op::ALU32_RSH_K => r[d] = Some(((get(&r, d) as u32) >> i.imm) as u64),
                op::ALU32_MOV_K => r[d] = Some(i.imm as u32 as u64),
                op::ALU32_MOV_X => r[d] = Some(get(&r, s) as u32 as u64),
                op::JNE_K | op::JNE_X => {
                    let rhs = if i.code == op::JNE_K {
                        i.imm as i64 as u64
                    } else {
                        get(&r, s)
                    };
                    if get(&r, d) != rhs {
                        pc = (pc as i64 + i.off as i64) as usize;
                    }
                }
                op::EXIT => return get(&r, 0),
                c => panic!("unexpected opcode {c:#x}"),
            }
            if i.code != op::JNE_K && i.code != op::JNE_X && d == 1 {
                ctx_in_r1 = false;
            }
        }
        panic!("program did not end");
    }

    fn at(t: i32, acc: i32) -> u32 {
        ((acc as u32) << 16) | t as u32
    }

    const ACCESSES: [i32; 7] = [1, 2, 3, 4, 5, 6, 7];

    #[test]
    fn allowlist_program_matches_the_rules() {
        let rules = allowlist();
        let p = program(&rules);
        for t in [devcg::DEV_CHAR, devcg::DEV_BLOCK] {
            for major in [0, 1, 2, 4, 5, 8, 10, 136, 137, 254, 4095] {
                for minor in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 200, 1 << 19] {
                    for acc in ACCESSES {
                        let want = rules.iter().any(|r| r.allows(t, major, minor, acc));
                        let got = run(&p, at(t, acc), major, minor);
                        assert_eq!(got, want as u64, "type {t} {major}:{minor} access {acc}");
                    }
                }
            }
        }
        let c = |maj, min, acc| run(&p, at(devcg::DEV_CHAR, acc), maj, min);
        let b = |maj, min, acc| run(&p, at(devcg::DEV_BLOCK, acc), maj, min);
        let rw = devcg::ACC_READ | devcg::ACC_WRITE;
        for (maj, min) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 2),
            (136, 0),
            (136, 4711),
        ] {
            assert_eq!(c(maj, min, rw), 1, "c {maj}:{min}");
            assert_eq!(c(maj, min, devcg::ACC_MKNOD), 1, "c {maj}:{min}");
        }
        // The disk, /dev/mem, /dev/kmsg, /dev/console, tun, a tty, the same
        // numbers as block devices: refused.
        assert_eq!(b(8, 0, devcg::ACC_MKNOD), 0);
        assert_eq!(b(8, 0, rw), 0);
        for (maj, min) in [(1, 1), (1, 11), (5, 1), (10, 200), (4, 1), (8, 0)] {
            assert_eq!(c(maj, min, rw), 0, "c {maj}:{min}");
        }
        assert_eq!(b(1, 3, rw), 0);
        assert_eq!(b(136, 0, rw), 0);
    }

    #[test]
    fn access_checks_and_wildcards() {
        let rules: Vec<Rule> = ["c 1:3 r", "b *:5 wm", "a 7:* rw"]
            .iter()
            .map(|l| Rule::parse(l).unwrap())
            .collect();
        let p = program(&rules);
        for t in [devcg::DEV_CHAR, devcg::DEV_BLOCK] {
            for major in [0, 1, 3, 5, 7, 9] {
                for minor in [0, 1, 3, 5, 7] {
                    for acc in ACCESSES {
                        let want = rules.iter().any(|r| r.allows(t, major, minor, acc));
                        let got = run(&p, at(t, acc), major, minor);
                        assert_eq!(got, want as u64, "type {t} {major}:{minor} access {acc}");
                    }
                }
            }
        }
        assert_eq!(run(&p, at(devcg::DEV_CHAR, devcg::ACC_READ), 1, 3), 1);
        assert_eq!(run(&p, at(devcg::DEV_CHAR, devcg::ACC_WRITE), 1, 3), 0);
        assert_eq!(run(&p, at(devcg::DEV_BLOCK, devcg::ACC_MKNOD), 42, 5), 1);
        assert_eq!(run(&p, at(devcg::DEV_CHAR, devcg::ACC_MKNOD), 7, 1), 0);
        assert_eq!(run(&p, at(devcg::DEV_BLOCK, devcg::ACC_READ), 7, 1), 1);
        // No rule: everything refused. `a *:* rwm`: everything allowed, and
        // no instruction after it.
        assert_eq!(run(&program(&[]), at(devcg::DEV_CHAR, 2), 1, 3), 0);
        let all = [
            Rule::parse("c 1:3 r").unwrap(),
            Rule::parse("a *:* rwm").unwrap(),
        ];
        let p = program(&all);
        assert_eq!(p.len(), 6 + 8 + 2);
        assert_eq!(run(&p, at(devcg::DEV_BLOCK, 7), 8, 0), 1);
    }

    #[test]
    fn program_shape() {
        let p = program(&allowlist());
        // 6 loads, per rule: type, major, [minor], r0 = 1, exit; r0 = 0, exit.
        assert_eq!(p.len(), 6 + 7 * 5 + 4 + 2);
        assert_eq!(p[0], Insn::new(op::LDX_MEM_W, 2, 1, 0, 0));
        assert_eq!(p[5], Insn::new(op::LDX_MEM_W, 5, 1, 8, 0));
        // c 1:3: jumps land on the next rule's first instruction.
        assert_eq!(p[6], Insn::new(op::JNE_K, 2, 0, 4, devcg::DEV_CHAR));
        assert_eq!(p[7], Insn::new(op::JNE_K, 4, 0, 3, 1));
        assert_eq!(p[8], Insn::new(op::JNE_K, 5, 0, 2, 3));
        assert_eq!(p[9], Insn::new(op::ALU32_MOV_K, 0, 0, 0, 1));
        assert_eq!(p[10], Insn::new(op::EXIT, 0, 0, 0, 0));
        let n = p.len();
        assert_eq!(p[n - 2], Insn::new(op::ALU32_MOV_K, 0, 0, 0, 0));
        assert_eq!(p[n - 1], Insn::new(op::EXIT, 0, 0, 0, 0));
        // c 136:*: no minor check.
        assert_eq!(p[n - 6], Insn::new(op::JNE_K, 2, 0, 3, devcg::DEV_CHAR));
        assert_eq!(p[n - 5], Insn::new(op::JNE_K, 4, 0, 2, 136));
    }

    #[test]
    fn rules_parse_strictly() {
        assert_eq!(
            Rule::parse("c 136:* rwm").unwrap(),
            Rule {
                kind: Kind::Char,
                major: Some(136),
                minor: None,
                access: RWM
            }
        );
        for bad in [
            "",
            "c",
            "c 1:3",
            "c 1:3 rwm x",
            "x 1:3 r",
            "c 1-3 r",
            "c 1:3 rx",
            "c 1:3 rr",
            "c +1:3 r",
            "c 1:1048576 r",
            "c 1:3 ",
            "c -1:3 r",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// The v1 hook and this list must not drift apart.
    #[test]
    fn allowlist_equals_the_v1_hooks() {
        let hook = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../rootfs-scripts/skeleton/lib/hook-parent-after-clone.sh");
        let text = std::fs::read_to_string(&hook).unwrap();
        let v1: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("devices_allow \"$1\" \""))
            .filter_map(|l| l.split('"').next())
            .filter(|l| *l != "a *:* rwm")
            .collect();
        assert_eq!(v1, ALLOWLIST);
    }

    #[test]
    fn finds_the_v2_cgroup_dir() {
        assert_eq!(
            v2_path("4:memory:/x\n0::/warden-p/c1\n"),
            Some("/warden-p/c1")
        );
        assert_eq!(v2_path("4:memory:/x\n"), None);
        let mi = "30 20 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n\
                  31 20 0:27 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            v2_dir(mi, "/warden-p/c1"),
            Some(PathBuf::from("/sys/fs/cgroup/unified/warden-p/c1"))
        );
        assert_eq!(
            v2_dir(mi, "/"),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        // A mount of a sub-tree only holds what is below its root.
        let sub = "31 20 0:27 /a /mnt/c\\040g rw - cgroup2 cgroup2 rw\n";
        assert_eq!(v2_dir(sub, "/a/b"), Some(PathBuf::from("/mnt/c g/b")));
        assert_eq!(v2_dir(sub, "/ab"), None);
        assert_eq!(v2_dir("22 1 0:21 / / rw - ext4 /dev/vda rw\n", "/x"), None);
    }

    #[test]
    fn nested_and_own_cgroup_attach_nothing() {
        assert_eq!(
            restrict(std::process::id() as i32, true).unwrap(),
            Outcome::AllowAll
        );
        // Our own process is in our own cgroup.
        assert_eq!(
            restrict(std::process::id() as i32, false).unwrap(),
            Outcome::NoOwnCgroup
        );
    }

    #[test]
    fn the_kernel_verifier_accepts_the_programs() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: loading BPF programs needs root");
            return;
        }
        load(&allowlist()).unwrap();
        load(&[]).unwrap();
        let rules: Vec<Rule> = ["c 1:3 r", "b *:5 wm", "a 7:* rw", "a *:* rwm"]
            .iter()
            .map(|l| Rule::parse(l).unwrap())
            .collect();
        load(&rules).unwrap();
    }
}
