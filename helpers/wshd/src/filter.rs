//! Compiles wshd's seccomp programs from [`crate::syscalls`] with
//! seccompiler. Used by build.rs, which writes the programs into the
//! binary as static data (so a container start compiles nothing and the
//! init's heap never holds the compiler's garbage), and by the unit tests,
//! which check that data against a fresh compile and run every program in
//! a small classic-BPF interpreter. The policy is described in
//! [`crate::harden`].

use crate::syscalls::*;
use seccompiler::{
    SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};
use std::collections::BTreeMap;

/// One classic BPF instruction (`struct sock_filter`).
pub type Insn = libc::sock_filter;

/// x32 syscall numbers carry this bit (`__X32_SYSCALL_BIT`).
pub const X32_BIT: u32 = 0x4000_0000;
/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
// Classic BPF opcodes (linux/bpf_common.h).
pub const LD_W_ABS: u16 = 0x20;
pub const JEQ_K: u16 = 0x15;
pub const JGE_K: u16 = 0x35;
pub const JGT_K: u16 = 0x25;
pub const RET_K: u16 = 0x06;
pub const RET_KILL_PROCESS: u32 = 0x8000_0000;
pub const RET_ERRNO: u32 = 0x0005_0000;
// struct seccomp_data: int nr; __u32 arch; __u64 ip; __u64 args[6].
pub const OFF_NR: u32 = 0;
pub const OFF_ARCH: u32 = 4;

pub fn insn(code: u16, jt: u8, jf: u8, k: u32) -> Insn {
    Insn { code, jt, jf, k }
}

/// The hand-written start of the main program: arch, negative numbers,
/// x32, clone3, numbers newer than this table. Falls through to the body
/// for a number this table classifies.
pub fn prefix() -> Vec<Insn> {
    // Indices: 10 is the EPERM return, 11 the ENOSYS return, 12 the body;
    // a jump from instruction i by n lands on i + 1 + n.
    const EPERM_AT: u8 = 10;
    const ENOSYS_AT: u8 = 11;
    const BODY_AT: u8 = 12;
    let to = |from: u8, target: u8| target - from - 1;
    vec![
        insn(LD_W_ABS, 0, 0, OFF_ARCH),
        insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
        insn(RET_K, 0, 0, RET_KILL_PROCESS),
        insn(LD_W_ABS, 0, 0, OFF_NR),
        insn(JGE_K, to(4, ENOSYS_AT), 0, 0x8000_0000),
        insn(JGE_K, to(5, EPERM_AT), 0, X32_BIT),
        insn(JEQ_K, to(6, ENOSYS_AT), 0, libc::SYS_clone3 as u32),
        insn(JGT_K, to(7, ENOSYS_AT), 0, MAX_KNOWN),
        insn(JGE_K, to(8, BODY_AT), 0, GAP.end() + 1),
        insn(JGE_K, to(9, ENOSYS_AT), to(9, BODY_AT), *GAP.start()),
        insn(RET_K, 0, 0, RET_ERRNO | libc::EPERM as u32),
        insn(RET_K, 0, 0, RET_ERRNO | libc::ENOSYS as u32),
    ]
}

type Rules = Vec<SeccompRule>;

fn compile_err(e: seccompiler::BackendError) -> String {
    format!("seccomp filter: {e}")
}

/// One rule of one condition on argument `arg`.
fn one(
    arg: u8,
    len: SeccompCmpArgLen,
    op: SeccompCmpOp,
    value: u64,
) -> Result<SeccompRule, String> {
    let c = SeccompCondition::new(arg, len, op, value).map_err(compile_err)?;
    SeccompRule::new(vec![c]).map_err(compile_err)
}

/// The argument checks of [`CONDITIONAL`] (any rule matching allows).
/// `nested_root`: clone and unshare without checks.
fn conditional_rules(nested_root: bool) -> Result<Vec<(i64, Rules)>, String> {
    use SeccompCmpArgLen::Dword;
    // personality(unsigned int): the kernel looks at the low 32 bits only.
    let personality = PERSONAS
        .iter()
        .map(|p| one(0, Dword, SeccompCmpOp::Eq, *p))
        .collect::<Result<Rules, _>>()?;
    // ioprio_set(which, who, int ioprio).
    let ioprio = IOPRIO_CLASSES
        .iter()
        .map(|c| one(2, Dword, SeccompCmpOp::MaskedEq(IOPRIO_CLASS_MASK), c << 13))
        .collect::<Result<Rules, _>>()?;
    let socket = vec![one(0, Dword, SeccompCmpOp::Ne, libc::AF_VSOCK as u64)?];
    let (clone, unshare) = if nested_root {
        (Vec::new(), Vec::new())
    } else {
        (
            vec![one(0, Dword, SeccompCmpOp::MaskedEq(CLONE_NS_FLAGS), 0)?],
            vec![one(0, Dword, SeccompCmpOp::MaskedEq(UNSHARE_NS_FLAGS), 0)?],
        )
    };
    Ok(vec![
        (libc::SYS_personality, personality),
        (libc::SYS_ioprio_set, ioprio),
        (libc::SYS_socket, socket),
        (libc::SYS_clone, clone),
        (libc::SYS_unshare, unshare),
    ])
}

fn to_insns(filter: SeccompFilter) -> Result<Vec<Insn>, String> {
    let prog: seccompiler::BpfProgram = filter.try_into().map_err(compile_err)?;
    Ok(prog.iter().map(|i| insn(i.code, i.jt, i.jf, i.k)).collect())
}

/// How many seccompiler programs the allowlist is split into, by syscall
/// number (see [`compile_allowlist`]).
pub const BUCKETS: usize = 16;
pub const JA: u16 = 0x05;

/// The main program: [`prefix`], then the allowlist (with `nested_root`,
/// [`NESTED`] and namespaces allowed too).
///
/// seccompiler emits one linear chain of syscall numbers. Attaching a
/// program makes the kernel run it once per syscall number (to find those
/// it always allows), so one ~1600-instruction chain cost ~1 ms at every
/// container start, and each argument-checked call walked hundreds of
/// instructions. So the numbers are split into [`BUCKETS`] ranges, each
/// compiled by seccompiler on its own (each ends in its own EPERM), behind
/// a dispatch on the number:
///
/// ```text
/// prefix                      (A = nr for a classified number)
/// JGE start[15] ? next : +1   \  one pair per bucket, highest first;
/// JA  body[15]                /  JA reaches any distance
/// ...
/// JA  body[0]
/// body[0] .. body[15]         seccompiler output for that range
/// ```
pub fn compile_allowlist(nested_root: bool) -> Result<Vec<Insn>, String> {
    let mut rules: BTreeMap<i64, Rules> = ALLOWED.iter().map(|(_, n)| (*n, Vec::new())).collect();
    rules.extend(conditional_rules(nested_root)?);
    if nested_root {
        rules.extend(NESTED.iter().map(|(_, n)| (*n, Vec::new())));
    }
    let per = rules.len().div_ceil(BUCKETS);
    let mut starts: Vec<u32> = Vec::new();
    let mut bodies: Vec<Vec<Insn>> = Vec::new();
    let mut entries: Vec<(i64, Rules)> = rules.into_iter().collect();
    while !entries.is_empty() {
        let rest = entries.split_off(per.min(entries.len()));
        // The first bucket also takes the numbers below its first entry.
        starts.push(if starts.is_empty() {
            0
        } else {
            entries[0].0 as u32
        });
        let filter = SeccompFilter::new(
            entries.into_iter().collect(),
            SeccompAction::Errno(libc::EPERM as u32),
            SeccompAction::Allow,
            TargetArch::x86_64,
        )
        .map_err(compile_err)?;
        bodies.push(to_insns(filter)?);
        entries = rest;
    }
    let mut prog = prefix();
    // Dispatch: pairs for buckets n-1..1, then the JA to bucket 0.
    let dispatch_len = 2 * (bodies.len() - 1) + 1;
    let body_at = |k: usize| -> usize {
        prog_len_before_bodies(dispatch_len) + bodies[..k].iter().map(Vec::len).sum::<usize>()
    };
    for k in (1..bodies.len()).rev() {
        prog.push(insn(JGE_K, 0, 1, starts[k]));
        let here = prog.len();
        prog.push(insn(JA, 0, 0, (body_at(k) - here - 1) as u32));
    }
    let here = prog.len();
    prog.push(insn(JA, 0, 0, (body_at(0) - here - 1) as u32));
    debug_assert_eq!(prog.len(), prog_len_before_bodies(dispatch_len));
    for b in bodies {
        prog.extend(b);
    }
    Ok(prog)
}

/// Instructions before the first bucket body: the prefix and the dispatch.
fn prog_len_before_bodies(dispatch_len: usize) -> usize {
    prefix().len() + dispatch_len
}

/// `--allow-nested`, non-root sessions: a small denylist stacked on the
/// main program, refusing [`NESTED`] and namespace flags (EPERM).
pub fn compile_unnested() -> Result<Vec<Insn>, String> {
    use SeccompCmpArgLen::Dword;
    let per_flag = |mask: u64| -> Result<Rules, String> {
        (0..64)
            .map(|b| 1u64 << b)
            .filter(|bit| mask & bit != 0)
            .map(|bit| one(0, Dword, SeccompCmpOp::MaskedEq(bit), bit))
            .collect()
    };
    let mut rules: BTreeMap<i64, Rules> = NESTED.iter().map(|(_, n)| (*n, Vec::new())).collect();
    rules.insert(libc::SYS_clone, per_flag(CLONE_NS_FLAGS)?);
    rules.insert(libc::SYS_unshare, per_flag(UNSHARE_NS_FLAGS)?);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        TargetArch::x86_64,
    )
    .map_err(compile_err)?;
    to_insns(filter)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOW: u32 = 0x7fff_0000;
    const EPERM: u32 = RET_ERRNO | libc::EPERM as u32;
    const ENOSYS: u32 = RET_ERRNO | libc::ENOSYS as u32;
    const KILL: u32 = RET_KILL_PROCESS;

    /// Runs a classic BPF seccomp program as the kernel does, on
    /// (arch, nr, args); `None` for args: the program must not look at
    /// them (the kernel's check for "always allowed": such numbers bypass
    /// the filter).
    fn run(prog: &[Insn], arch: u32, nr: u32, args: Option<[u64; 6]>) -> Option<u32> {
        run_counted(prog, arch, nr, args).0
    }

    /// [`run`], and how many instructions it went through.
    fn run_counted(
        prog: &[Insn],
        arch: u32,
        nr: u32,
        args: Option<[u64; 6]>,
    ) -> (Option<u32>, usize) {
        let (mut a, mut pc, mut steps) = (0u32, 0usize, 0usize);
        let r = loop {
            let i = prog.get(pc).expect("ran off the end of the program");
            pc += 1;
            steps += 1;
            match i.code {
                LD_W_ABS => {
                    a = match i.k {
                        OFF_NR => nr,
                        OFF_ARCH => arch,
                        k if (16..64).contains(&k) => {
                            let Some(args) = args else { break None };
                            let v = args[(k as usize - 16) / 8];
                            if k % 8 == 0 {
                                v as u32
                            } else {
                                (v >> 32) as u32
                            }
                        }
                        k => panic!("load of offset {k}"),
                    }
                }
                0x54 => a &= i.k,           // ALU AND K
                0x05 => pc += i.k as usize, // JA
                JEQ_K | JGE_K | JGT_K | 0x45 => {
                    let t = match i.code {
                        JEQ_K => a == i.k,
                        JGE_K => a >= i.k,
                        JGT_K => a > i.k,
                        _ => a & i.k != 0,
                    };
                    pc += if t { i.jt } else { i.jf } as usize;
                }
                RET_K => break Some(i.k),
                c => panic!("unexpected opcode {c:#x}"),
            }
        };
        (r, steps)
    }

    #[test]
    fn cheap_for_the_kernel_to_attach_and_run() {
        // At attach time the kernel runs the program once per number with
        // unknown arguments (stopping at an argument load); at run time an
        // argument-checked call walks its path. Both stay short.
        let prog = compile_allowlist(false).unwrap();
        let (mut total, mut worst) = (0, 0);
        for nr in 0..=MAX_KNOWN + 1 {
            let (_, steps) = run_counted(&prog, AUDIT_ARCH_X86_64, nr, None);
            total += steps;
            worst = worst.max(steps);
        }
        assert!(total < 60_000 && worst < 200, "{total} {worst}");
        let (r, steps) = run_counted(
            &prog,
            AUDIT_ARCH_X86_64,
            libc::SYS_clone as u32,
            Some([0; 6]),
        );
        assert_eq!(r, Some(0x7fff_0000));
        assert!(steps < 200, "{steps}");
    }

    fn x86(prog: &[Insn], nr: i64, args: [u64; 6]) -> u32 {
        run(prog, AUDIT_ARCH_X86_64, nr as u32, Some(args)).unwrap()
    }

    fn all_tables() -> Vec<(&'static str, i64)> {
        let mut v: Vec<_> = ALLOWED
            .iter()
            .chain(CONDITIONAL)
            .chain(DENIED)
            .chain(NESTED)
            .copied()
            .collect();
        v.push(("clone3", libc::SYS_clone3));
        v
    }

    #[test]
    fn every_known_number_is_classified_once() {
        let all = all_tables();
        let mut nrs: Vec<i64> = all.iter().map(|(_, n)| *n).collect();
        nrs.sort();
        let n = nrs.len();
        nrs.dedup();
        assert_eq!(nrs.len(), n, "a syscall is in two tables");
        let want: Vec<i64> = (0..=MAX_KNOWN as i64)
            .filter(|n| !GAP.contains(&(*n as u32)))
            .collect();
        assert_eq!(nrs, want);
        // Names are unique, and the libc ones match their numbers (the
        // macro takes both from the same constant).
        let mut names: Vec<&str> = all.iter().map(|(s, _)| *s).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        for (name, want) in [
            ("SYS_mseal", 462),
            ("SYS_fchmodat2", 452),
            ("SYS_fanotify_init", 300),
            ("SYS_personality", 135),
        ] {
            assert_eq!(
                all.iter().find(|(s, _)| *s == name).map(|x| x.1),
                Some(want)
            );
        }
    }

    #[test]
    fn allowlist_answers_as_documented() {
        let prog = compile_allowlist(false).unwrap();
        assert!(prog.len() < 4096, "{}", prog.len());
        let zero = [0u64; 6];
        for (name, nr) in ALLOWED {
            // Decided on the number alone: the kernel lets these bypass the
            // filter.
            assert_eq!(
                run(&prog, AUDIT_ARCH_X86_64, *nr as u32, None),
                Some(ALLOW),
                "{name}"
            );
        }
        for (name, nr) in DENIED.iter().chain(NESTED) {
            assert_eq!(
                run(&prog, AUDIT_ARCH_X86_64, *nr as u32, None),
                Some(EPERM),
                "{name}"
            );
        }
        for nr in [libc::SYS_clone3, 337, 400, 423, 470, 471, 1000, 0x3fff_ffff] {
            assert_eq!(x86(&prog, nr, zero), ENOSYS, "{nr}");
        }
        assert_eq!(x86(&prog, -1, zero), ENOSYS);
        assert_eq!(x86(&prog, 0x4000_0000 | libc::SYS_getpid, zero), EPERM);
        assert_eq!(x86(&prog, 0x4000_0000 | 600, zero), EPERM);
        // i386 (and anything else): the process dies.
        assert_eq!(run(&prog, 0x4000_0003, 20, Some(zero)), Some(KILL));

        let a0 = |v: u64| [v, 0, 0, 0, 0, 0];
        let p = libc::SYS_personality;
        for ok in [0, 8, 0x20000, 0x20008, 0xffff_ffff, 0xffff_ffff_ffff_ffff] {
            assert_eq!(x86(&prog, p, a0(ok)), ALLOW, "personality {ok:#x}");
        }
        for bad in [3, 6, 0x0040_0000, 0x0100_0000, 0x0800_0000] {
            assert_eq!(x86(&prog, p, a0(bad)), EPERM, "personality {bad:#x}");
        }
        let io = libc::SYS_ioprio_set;
        let prio = |class: u64, data: u64| [1, 0, class << 13 | data, 0, 0, 0];
        for (class, want) in [(0, ALLOW), (1, EPERM), (2, ALLOW), (3, ALLOW), (5, EPERM)] {
            for data in [0, 4, 7] {
                assert_eq!(
                    x86(&prog, io, prio(class, data)),
                    want,
                    "ioprio class {class}"
                );
            }
        }
        let s = libc::SYS_socket;
        assert_eq!(x86(&prog, s, a0(libc::AF_INET as u64)), ALLOW);
        assert_eq!(x86(&prog, s, a0(libc::AF_PACKET as u64)), ALLOW);
        assert_eq!(x86(&prog, s, a0(libc::AF_VSOCK as u64)), EPERM);
        let fork_flags =
            (libc::CLONE_CHILD_SETTID | libc::CLONE_CHILD_CLEARTID | libc::SIGCHLD) as u64;
        let thread = (libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM) as u64;
        for (nr, ns) in [
            (libc::SYS_clone, CLONE_NS_FLAGS),
            (libc::SYS_unshare, UNSHARE_NS_FLAGS),
        ] {
            assert_eq!(x86(&prog, nr, a0(0)), ALLOW);
            for b in (0..64).map(|b| 1u64 << b).filter(|b| ns & b != 0) {
                assert_eq!(x86(&prog, nr, a0(b)), EPERM, "{nr} {b:#x}");
                assert_eq!(x86(&prog, nr, a0(b | libc::CLONE_FILES as u64)), EPERM);
                // The upper half plays no part (see CLONE_NS_FLAGS).
                assert_eq!(x86(&prog, nr, a0(b | 0xffff_ffff_0000_0000)), EPERM);
            }
        }
        assert_eq!(x86(&prog, libc::SYS_clone, a0(fork_flags)), ALLOW);
        assert_eq!(x86(&prog, libc::SYS_clone, a0(thread)), ALLOW);
        assert_eq!(
            x86(&prog, libc::SYS_unshare, a0(libc::CLONE_FILES as u64)),
            ALLOW
        );
        assert_eq!(x86(&prog, libc::SYS_setns, zero), EPERM);
    }

    #[test]
    fn nested_root_may_mount_and_create_namespaces() {
        let prog = compile_allowlist(true).unwrap();
        let a0 = |v: u64| [v, 0, 0, 0, 0, 0];
        for (name, nr) in NESTED {
            assert_eq!(x86(&prog, *nr, [0; 6]), ALLOW, "{name}");
        }
        for nr in [libc::SYS_clone, libc::SYS_unshare] {
            assert_eq!(x86(&prog, nr, a0(UNSHARE_NS_FLAGS)), ALLOW);
        }
        for (name, nr) in DENIED {
            assert_eq!(x86(&prog, *nr, [0; 6]), EPERM, "{name}");
        }
        assert_eq!(x86(&prog, libc::SYS_clone3, [0; 6]), ENOSYS);
        // The extra filter non-root sessions stack: only NESTED and
        // namespace flags; everything else is the main program's call.
        let extra = compile_unnested().unwrap();
        for (name, nr) in NESTED {
            assert_eq!(x86(&extra, *nr, [0; 6]), EPERM, "{name}");
        }
        for nr in [libc::SYS_clone, libc::SYS_unshare] {
            assert_eq!(x86(&extra, nr, a0(libc::CLONE_NEWUSER as u64)), EPERM);
            assert_eq!(x86(&extra, nr, a0(libc::CLONE_NEWNET as u64 | 17)), EPERM);
            assert_eq!(x86(&extra, nr, a0(libc::CLONE_FILES as u64)), ALLOW);
        }
        for (name, nr) in ALLOWED {
            assert_eq!(
                run(&extra, AUDIT_ARCH_X86_64, *nr as u32, None),
                Some(ALLOW),
                "{name}"
            );
        }
        assert!(
            extra.len() < prog.len() / 4,
            "{} {}",
            extra.len(),
            prog.len()
        );
    }

    #[test]
    fn prefix_jumps_stay_inside() {
        let p = prefix();
        for (i, x) in p.iter().enumerate() {
            assert!(i + 1 + (x.jt.max(x.jf) as usize) <= p.len(), "{i}");
        }
        assert_eq!(p[0].k, OFF_ARCH);
        assert_eq!(p[p.len() - 2].k, RET_ERRNO | libc::EPERM as u32);
        assert_eq!(p.last().unwrap().k, RET_ERRNO | libc::ENOSYS as u32);
    }
}
