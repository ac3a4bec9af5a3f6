//! wshd: container init and session server, plus the wsh <-> wshd protocol
//! codec shared with `wsh`.
//!
//! - [`boot`]: from the invoking process to pid 1 serving `<run>/wshd.sock`
//! - [`exe`]: wshd runs only from a read-only mount (CVE-2019-5736)
//! - [`harden`]: capabilities, no_new_privs and seccomp for sessions
//! - [`devices`]: the device allowlist as a BPF program on cgroup v2
//! - [`syscalls`]: the syscall table of the seccomp policy (build.rs
//!   compiles it into the programs with `src/filter.rs`)
//! - [`hook`]: running the hook scripts (clean, documented environment)
//! - [`server`]: the poll loop, sessions, reaping
//! - [`setup`]: the container's mounts and hostname, made natively
//! - [`passwd`]: user and group lookup in the container
//! - [`proto`]: the wire protocol (documented there)

pub mod boot;
pub mod devices;
pub mod exe;
#[cfg(test)]
mod filter;
#[doc(hidden)]
pub mod fuzz;
pub mod harden;
pub mod hook;
pub mod passwd;
pub mod proto;
pub mod server;
pub mod setup;
pub mod syscalls;
