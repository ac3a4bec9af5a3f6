//! `warden`: a server wire-compatible with Cloud Foundry warden (protocol
//! v1 over a unix socket) and its ops client.
#![forbid(unsafe_code)]
pub mod bandwidth;
pub mod client;
pub mod config;
pub mod conn;
pub mod container;
pub mod copy;
pub mod dispatch;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod health;
pub mod host;
pub mod job;
pub mod jobs;
pub mod lifecycle;
pub mod limits;
pub mod lock;
pub mod logging;
pub mod metrics;
pub mod net;
pub mod netout;
pub mod oom_watch;
pub mod orphans;
pub mod pool;
pub mod proto;
pub mod restore;
pub mod sdnotify;
pub mod server;
pub mod sh;
pub mod stage;
pub mod tarstream;
