//! `warden`: a server wire-compatible with Cloud Foundry warden (protocol
//! v1 over a unix socket) and its ops client.
#![forbid(unsafe_code)]
pub mod client;
pub mod config;
pub mod conn;
pub mod container;
pub mod copy;
#[doc(hidden)]
pub mod fuzz;
pub mod job;
pub mod orphans;
pub mod pool;
pub mod proto;
pub mod server;
pub mod sh;
pub mod tarstream;
