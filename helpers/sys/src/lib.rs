//! wsys: the only crate in warden-rs allowed to contain `unsafe`.
//!
//! Each module wraps one family of syscalls with a safe interface. Every
//! `unsafe` block carries a `// SAFETY:` line explaining why it is sound.
//! Other crates in the workspace use `#![forbid(unsafe_code)]`.
//!
//! Module ownership (one owner each, to keep parallel work apart):
//! - `ns`, `mount`, `fdpass`, `pty`, `proc_`,
//!   `caps`, `seccomp`                      : container init and shell (wshd/wsh)
//! - `event`, `spawn`                        : poll/FIONREAD helpers, held child (iomux/oom)
//! - `alloc`                                 : allocation-measuring allocator for fuzz targets and their regression tests

pub mod alloc;
pub mod caps;
pub mod event;
pub mod fdpass;
pub mod fs;
pub mod mount;
pub mod ns;
pub mod proc_;
pub mod pty;
pub mod seccomp;
pub mod spawn;
