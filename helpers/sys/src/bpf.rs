//! eBPF through bpf(2): loading a program, attaching it to a cgroup and
//! asking which programs a cgroup has.
//!
//! Only what device control on cgroup v2 needs (see wshd's `devices`
//! module, which builds the program). The `bpf_attr` layouts below are the
//! kernel's (`include/uapi/linux/bpf.h`), each cut after the last field
//! used: the kernel zero-fills what a shorter attr leaves out, and refuses
//! non-zero bytes it does not know, so every struct is zero-initialised.

use nix::errno::Errno;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// `BPF_PROG_TYPE_CGROUP_DEVICE` (enum bpf_prog_type).
pub const PROG_TYPE_CGROUP_DEVICE: u32 = 15;
/// `BPF_CGROUP_DEVICE` (enum bpf_attach_type).
pub const ATTACH_CGROUP_DEVICE: u32 = 6;
/// `BPF_F_ALLOW_MULTI`: more programs may be attached here and below; every
/// program of the cgroup and of its ancestors runs (none is overridden).
pub const F_ALLOW_MULTI: u32 = 1 << 1;
/// `BPF_F_QUERY_EFFECTIVE`: query the programs that run for the cgroup
/// (inherited ones included) rather than those attached to it.
pub const F_QUERY_EFFECTIVE: u32 = 1;

// bpf(2) commands.
const PROG_LOAD: libc::c_int = 5;
const PROG_ATTACH: libc::c_int = 8;
const PROG_DETACH: libc::c_int = 9;
const PROG_QUERY: libc::c_int = 16;

/// `struct bpf_cgroup_dev_ctx` (the context a device program reads, all
/// u32): `access_type` at offset 0 is `(BPF_DEVCG_ACC_* << 16) |
/// BPF_DEVCG_DEV_*`, `major` at 4, `minor` at 8.
pub mod devcg {
    pub const OFF_ACCESS_TYPE: i16 = 0;
    pub const OFF_MAJOR: i16 = 4;
    pub const OFF_MINOR: i16 = 8;
    /// BPF_DEVCG_ACC_MKNOD, _READ, _WRITE (upper 16 bits of access_type).
    pub const ACC_MKNOD: i32 = 1;
    pub const ACC_READ: i32 = 2;
    pub const ACC_WRITE: i32 = 4;
    /// BPF_DEVCG_DEV_BLOCK, _CHAR (lower 16 bits of access_type).
    pub const DEV_BLOCK: i32 = 1;
    pub const DEV_CHAR: i32 = 2;
}

/// One eBPF instruction (`struct bpf_insn`): opcode, destination register
/// in the low nibble of `regs` and source register in the high one
/// (little-endian bitfields), signed offset, signed immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// Opcodes used by the device program (class | op | source).
pub mod op {
    /// `BPF_LDX | BPF_MEM | BPF_W`: dst = *(u32 *)(src + off).
    pub const LDX_MEM_W: u8 = 0x61;
    /// `BPF_ALU | BPF_AND | BPF_K`: (u32) dst &= imm.
    pub const ALU32_AND_K: u8 = 0x54;
    /// `BPF_ALU | BPF_RSH | BPF_K`: (u32) dst >>= imm.
    pub const ALU32_RSH_K: u8 = 0x74;
    /// `BPF_ALU | BPF_MOV | BPF_K`: (u32) dst = imm.
    pub const ALU32_MOV_K: u8 = 0xb4;
    /// `BPF_ALU | BPF_MOV | BPF_X`: (u32) dst = src.
    pub const ALU32_MOV_X: u8 = 0xbc;
    /// `BPF_JMP | BPF_JNE | BPF_K`: if dst != imm (sign-extended) goto pc + 1 + off.
    pub const JNE_K: u8 = 0x55;
    /// `BPF_JMP | BPF_JNE | BPF_X`: if dst != src goto pc + 1 + off.
    pub const JNE_X: u8 = 0x5d;
    /// `BPF_JMP | BPF_EXIT`: return r0.
    pub const EXIT: u8 = 0x95;
}

impl Insn {
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (dst & 0x0f) | ((src & 0x0f) << 4),
            off,
            imm,
        }
    }

    pub const fn dst(&self) -> u8 {
        self.regs & 0x0f
    }

    pub const fn src(&self) -> u8 {
        self.regs >> 4
    }
}

#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// A program the kernel refused, with the verifier's log when it gave one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub errno: Errno,
    pub log: String,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.errno)?;
        let log = self.log.trim();
        if !log.is_empty() {
            write!(f, " (verifier: {})", log.replace('\n', "; "))?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// The `union bpf_attr` prefixes of this module: private `#[repr(C)]`
/// structs built only here, so [`bpf`] cannot be handed anything else.
trait Attr {}
impl Attr for ProgLoadAttr {}
impl Attr for ProgAttachAttr {}
impl Attr for ProgQueryAttr {}

/// bpf(cmd, attr, size_of(attr)) for an attr the kernel may read and write.
#[allow(unsafe_code)]
fn bpf<T: Attr>(cmd: libc::c_int, attr: &mut T) -> nix::Result<libc::c_long> {
    // SAFETY: `attr` is a live, zero-initialised #[repr(C)] prefix of
    // `union bpf_attr` for `cmd`, passed with its exact size; every pointer
    // in it points into memory that outlives the call and is as large as
    // the length stored next to it. The kernel writes only inside `attr`
    // and those buffers.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        return Err(Errno::last());
    }
    Ok(r)
}

/// `BPF_PROG_LOAD`: hands `insns` to the verifier and returns the program's
/// fd (close-on-exec). `name` is cut to 15 bytes. On refusal the program is
/// loaded again with the verifier log on, so the error says why.
/// `expected_attach_type` is left 0: device programs do not need it, and
/// kernels older than 4.17 refuse the field.
#[allow(unsafe_code)]
pub fn prog_load(
    prog_type: u32,
    insns: &[Insn],
    license: &CStr,
    name: &str,
) -> Result<OwnedFd, LoadError> {
    let fail = |errno| LoadError {
        errno,
        log: String::new(),
    };
    let insn_cnt = u32::try_from(insns.len()).map_err(|_| fail(Errno::E2BIG))?;
    let mut prog_name = [0u8; 16];
    for (d, s) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *d = s;
    }
    let attr = |log: &mut [u8]| ProgLoadAttr {
        prog_type,
        insn_cnt,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: if log.is_empty() { 0 } else { 1 },
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name,
        ..Default::default()
    };
    match bpf(PROG_LOAD, &mut attr(&mut [])) {
        // SAFETY: BPF_PROG_LOAD returned a new fd (O_CLOEXEC) owned by no one else.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }),
        Err(errno @ (Errno::EACCES | Errno::EINVAL | Errno::EPERM)) => {
            let mut log = vec![0u8; 64 * 1024];
            let r = bpf(PROG_LOAD, &mut attr(&mut log));
            if let Ok(fd) = r {
                // SAFETY: as above; the second load succeeded after all.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
            }
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err(LoadError {
                errno,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            })
        }
        Err(e) => Err(fail(e)),
    }
}

/// `BPF_PROG_ATTACH`: attaches `prog` to `target` (for cgroup programs, an
/// fd of the cgroup v2 directory) as `attach_type`, with `flags`
/// ([`F_ALLOW_MULTI`], or 0). The attachment holds its own reference:
/// `prog` may be closed afterwards.
pub fn prog_attach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
    flags: u32,
) -> nix::Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: flags,
    };
    bpf(PROG_ATTACH, &mut attr).map(drop)
}

/// `BPF_PROG_DETACH` of `prog` from `target`.
pub fn prog_detach(
    target: BorrowedFd<'_>,
    prog: BorrowedFd<'_>,
    attach_type: u32,
) -> nix::Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: target.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type,
        attach_flags: 0,
    };
    bpf(PROG_DETACH, &mut attr).map(drop)
}

/// What `BPF_PROG_QUERY` says about one cgroup and attach type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attached {
    /// The flags the programs were attached with (0 when there is none or
    /// for an effective query).
    pub flags: u32,
    /// Kernel ids of the programs.
    pub ids: Vec<u32>,
}

/// `BPF_PROG_QUERY`: the programs attached to the cgroup `target` as
/// `attach_type`, or with [`F_QUERY_EFFECTIVE`] the ones that run for it.
pub fn prog_query(
    target: BorrowedFd<'_>,
    attach_type: u32,
    query_flags: u32,
) -> nix::Result<Attached> {
    let mut ids = vec![0u32; 64];
    loop {
        let mut attr = ProgQueryAttr {
            target_fd: target.as_raw_fd() as u32,
            attach_type,
            query_flags,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        match bpf(PROG_QUERY, &mut attr) {
            Ok(_) => {
                ids.truncate(attr.prog_cnt as usize);
                return Ok(Attached {
                    flags: attr.attach_flags,
                    ids,
                });
            }
            // More programs than room: prog_cnt says how many there are.
            Err(Errno::ENOSPC) if (attr.prog_cnt as usize) > ids.len() => {
                ids = vec![0u32; attr.prog_cnt as usize];
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    /// r0 = 1; exit: a device program that allows everything.
    const ALLOW_ALL: [Insn; 2] = [
        Insn::new(op::ALU32_MOV_K, 0, 0, 0, 1),
        Insn::new(op::EXIT, 0, 0, 0, 0),
    ];

    fn root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn insn_layout_is_the_kernels() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 64);
        assert_eq!(std::mem::size_of::<ProgAttachAttr>(), 16);
        assert_eq!(std::mem::size_of::<ProgQueryAttr>(), 32);
        let i = Insn::new(op::LDX_MEM_W, 2, 1, 4, 0);
        assert_eq!((i.dst(), i.src(), i.regs), (2, 1, 0x12));
        // r2 = *(u32 *)(r1 + 4), as bytes: 61 12 04 00 00 00 00 00.
        let bytes: [u8; 8] = [i.code, i.regs, 4, 0, 0, 0, 0, 0];
        assert_eq!(bytes, [0x61, 0x12, 0x04, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn loads_a_device_program_and_reports_verifier_errors() {
        if !root() {
            eprintln!("skipped: loading BPF programs needs root");
            return;
        }
        let fd = prog_load(PROG_TYPE_CGROUP_DEVICE, &ALLOW_ALL, c"GPL", "wsys_test").unwrap();
        assert!(fd.as_raw_fd() > 2);
        let fl = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
        assert_ne!(fl & libc::FD_CLOEXEC, 0);

        // r0 is never set: the verifier refuses and says so.
        let bad = [Insn::new(op::EXIT, 0, 0, 0, 0)];
        let e = prog_load(PROG_TYPE_CGROUP_DEVICE, &bad, c"GPL", "wsys_bad").unwrap_err();
        assert_eq!(e.errno, Errno::EACCES, "{e}");
        assert!(e.log.contains("R0 !read_ok"), "{e}");
        assert!(e.to_string().contains("verifier: "), "{e}");
    }

    #[test]
    fn attach_and_query_need_a_cgroup_fd() {
        if !root() {
            eprintln!("skipped: loading BPF programs needs root");
            return;
        }
        let prog = prog_load(PROG_TYPE_CGROUP_DEVICE, &ALLOW_ALL, c"GPL", "wsys_test").unwrap();
        // A plain directory is no cgroup: refused, nothing attached.
        let tmp = std::fs::File::open("/").unwrap();
        let e = prog_attach(
            tmp.as_fd(),
            prog.as_fd(),
            ATTACH_CGROUP_DEVICE,
            F_ALLOW_MULTI,
        );
        assert!(e.is_err());
        assert!(prog_query(tmp.as_fd(), ATTACH_CGROUP_DEVICE, 0).is_err());
    }
}
