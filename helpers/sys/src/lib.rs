//! wsys: the crate of warden-rs that holds the `unsafe` syscall wrappers.
//!
//! Each module wraps one family of syscalls. Every `unsafe` block holds one
//! unsafe operation and carries a `// SAFETY:` line explaining why it is
//! sound; every function whose soundness depends on its caller (e.g. "only
//! while single-threaded") is an `unsafe fn` with a `# Safety` section. The
//! workspace lints (`Cargo.toml`) deny `unsafe_code` here, so each function
//! that needs it says so with a local `#[allow(unsafe_code)]`; the crates
//! that only call safe code forbid it.
//!
//! Hand-written wrappers are kept only where nix, `caps` or std cannot do
//! the job; each says why. Capabilities come from the `caps` crate, prctl,
//! splice/tee and pipe sizes from nix.
//!
//! Module ownership (one owner each, to keep parallel work apart):
//! - `ns`, `mount`, `fdpass`, `pty`, `proc_`,
//!   `seccomp`                               : container init and shell (wshd/wsh)
//! - `event`, `spawn`                        : poll/FIONREAD helpers, held child (iomux/oom)
//! - `args`                                  : the helpers' command lines
//! - `bpf`                                   : device control on cgroup v2 (wshd's `devices`)
//! - `alloc`, `fuzzkit`                      : allocation-measuring allocator, script reader and replay for fuzz targets and their regression tests

pub mod alloc;
pub mod args;
pub mod bpf;
pub mod event;
pub mod fdpass;
pub mod fs;
pub mod fuzzkit;
pub mod mount;
pub mod ns;
pub mod proc_;
pub mod pty;
pub mod seccomp;
pub mod spawn;
