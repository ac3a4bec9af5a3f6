//! Client-side staging and starting of Cloud Foundry apps: `warden stage`,
//! `warden start`, `warden apps`, `warden stop-app`. Everything goes over
//! the warden wire protocol ([`crate::client`]), so these commands work
//! against any warden-compatible server; copy_in/copy_out paths are on the
//! host the client and the server share, as with warden's own clients.
//!
//! - [`staging`]: the Stager (dea_ng's staging task and buildpack runner):
//!   a container with memory and disk limits, the app copied in, each
//!   buildpack's `bin/detect` until one succeeds, `bin/compile` with a
//!   cache directory (output streamed live), `bin/release`, the droplet
//!   packed, checked and written, the container destroyed. Every step runs
//!   as the container's unprivileged user (`privileged: false`).
//! - [`apps`]: the DEA's instance start: per instance a container with
//!   memory/disk limits, a net_in port, the droplet extracted, an optional
//!   before_start hook, and the start script ([`start`]) spawned with the
//!   DEA's environment ([`env`]) and rlimits (nofile, nproc 512); plus
//!   listing and stopping what it started.
//! - [`droplet`]: droplet (tar.gz) and app zip handling.
//!
//! **Containers `start` makes** are named `app-<NAME>-<INDEX>-<NONCE>` (the
//! protocol has no container properties) and carry `/etc/warden-app.json`
//! (written as root, mode 0644: `name`, `index`, `host_port`,
//! `container_port`, `job_id`, `instance_id`, `droplet`, `started_at`),
//! which `apps` reads back.
//!
//! **Limits.** LimitMemory and LimitDisk are always sent; a server that
//! refuses them makes the command fail with `server does not support
//! limit_memory: <its error>` and nothing left behind, unless the operator
//! passed `--skip-limits`.

pub mod apps;
pub mod droplet;
pub mod env;
pub mod staging;
pub mod start;

use crate::client::{Client, ClientError};
use crate::proto::{self, Type};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why a staging/start command failed (one line, naming the step).
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// A bad flag, path, buildpack or droplet, found before any container.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Droplet(#[from] droplet::DropletError),
    #[error(transparent)]
    Env(#[from] env::EnvError),
    /// A request the server answered with an error (or a broken connection).
    #[error("{step}: {err}")]
    Request { step: String, err: ClientError },
    /// The server refused a limit request it does not implement.
    #[error("server does not support {what}: {msg} (pass --skip-limits to run without limits)")]
    Unsupported { what: &'static str, msg: String },
    /// A staging or start step ran and failed.
    #[error("{0}")]
    Step(String),
    #[error("{what}: {err}")]
    Io { what: String, err: std::io::Error },
}

pub type Result<T> = std::result::Result<T, StageError>;

/// The subcommands, flattened into the `warden` CLI.
#[derive(clap::Subcommand)]
pub enum Command {
    /// Stage an app with buildpacks into a droplet (the Stager).
    Stage(staging::StageArgs),
    /// Start instances of a droplet, each in its own container (the DEA).
    Start(apps::StartArgs),
    /// List the app instances `start` made.
    Apps(apps::AppsArgs),
    /// Destroy the instances of an app.
    #[command(name = "stop-app", alias = "stop_app")]
    StopApp(apps::StopAppArgs),
}

/// Runs one of the subcommands; returns the exit code.
pub fn run(socket: &Path, json: bool, cmd: Command) -> Result<i32> {
    match cmd {
        Command::Stage(a) => staging::stage(socket, &a).map(|_| 0),
        Command::Start(a) => apps::start(socket, json, &a).map(|_| 0),
        Command::Apps(a) => apps::list(socket, json, &a).map(|_| 0),
        Command::StopApp(a) => apps::stop(socket, &a).map(|_| 0),
    }
}

/// One connection to the server, with a step name on every error.
pub struct Session {
    c: Client,
}

impl Session {
    pub fn connect(socket: &Path) -> Result<Session> {
        let c = Client::connect(socket).map_err(|err| StageError::Request {
            step: "connect".into(),
            err,
        })?;
        Ok(Session { c })
    }

    pub fn call<M: prost::Message, R: prost::Message + Default>(
        &mut self,
        step: &str,
        ty: Type,
        req: &M,
    ) -> Result<R> {
        self.c.call(ty, req).map_err(|err| StageError::Request {
            step: step.into(),
            err,
        })
    }

    pub fn create(&mut self, req: proto::CreateRequest) -> Result<String> {
        let r: proto::CreateResponse = self.call("create", Type::Create, &req)?;
        r.handle
            .ok_or_else(|| StageError::Step("create: no handle in the response".into()))
    }

    /// A job run to its end, as the unprivileged user unless `root`.
    pub fn run(
        &mut self,
        step: &str,
        h: &str,
        script: &str,
        root: bool,
    ) -> Result<proto::RunResponse> {
        self.call(
            step,
            Type::Run,
            &proto::RunRequest {
                handle: Some(h.into()),
                script: Some(script.into()),
                privileged: Some(root),
                ..Default::default()
            },
        )
    }

    /// [`Session::run`] that must exit 0; else the step fails with the
    /// job's status and its stderr (or stdout) tail.
    pub fn run_ok(&mut self, step: &str, h: &str, script: &str, root: bool) -> Result<String> {
        let r = self.run(step, h, script, root)?;
        let st = r.exit_status.unwrap_or(255);
        if st != 0 {
            return Err(StageError::Step(format!(
                "{step} failed (exit status {st}){}",
                tail(&r)
            )));
        }
        Ok(String::from_utf8_lossy(r.stdout.as_deref().unwrap_or_default()).into_owned())
    }

    /// Spawns a job as the unprivileged user; the job id.
    pub fn spawn(
        &mut self,
        step: &str,
        h: &str,
        script: &str,
        rlimits: Option<proto::ResourceLimits>,
    ) -> Result<u32> {
        let r: proto::SpawnResponse = self.call(
            step,
            Type::Spawn,
            &proto::SpawnRequest {
                handle: Some(h.into()),
                script: Some(script.into()),
                privileged: Some(false),
                rlimits,
                ..Default::default()
            },
        )?;
        r.job_id
            .ok_or_else(|| StageError::Step(format!("{step}: no job id in the response")))
    }

    /// Streams a job's output to this process's stdout/stderr as it comes
    /// (and into `keep`, the last 64 KiB); the exit status, or None when
    /// `deadline` passed first (the connection is then unusable).
    pub fn stream_live(
        &mut self,
        step: &str,
        h: &str,
        job: u32,
        deadline: Instant,
        keep: &mut Vec<u8>,
    ) -> Result<Option<u32>> {
        let req = proto::StreamRequest {
            handle: Some(h.into()),
            job_id: Some(job),
        };
        let fail = |err| StageError::Request {
            step: step.into(),
            err,
        };
        self.c.send(Type::Stream, &req).map_err(fail)?;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.c.set_timeout(Some(left)).map_err(fail)?;
            let r: proto::StreamResponse = match self.c.recv(Type::Stream) {
                Ok(r) => r,
                Err(ClientError::Frame(proto::FrameError::Io(e)))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(ClientError::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None)
                }
                Err(e) => return Err(fail(e)),
            };
            if let Some(st) = r.exit_status {
                self.c.set_timeout(None).map_err(fail)?;
                return Ok(Some(st));
            }
            let d = r.data.as_deref().unwrap_or_default();
            if r.name.as_deref() == Some("stderr") {
                let mut e = std::io::stderr();
                let _ = e.write_all(d);
            } else {
                let mut o = std::io::stdout();
                let _ = o.write_all(d);
                let _ = o.flush();
            }
            keep.extend_from_slice(d);
            if keep.len() > 64 * 1024 {
                keep.drain(..keep.len() - 64 * 1024);
            }
        }
    }

    pub fn info(&mut self, h: &str) -> Result<proto::InfoResponse> {
        self.call(
            "info",
            Type::Info,
            &proto::InfoRequest {
                handle: Some(h.into()),
            },
        )
    }

    pub fn copy_in(&mut self, step: &str, h: &str, src: &Path, dst: &str) -> Result<()> {
        let _: proto::CopyInResponse = self.call(
            step,
            Type::CopyIn,
            &proto::CopyInRequest {
                handle: Some(h.into()),
                src_path: Some(src.display().to_string()),
                dst_path: Some(dst.into()),
            },
        )?;
        Ok(())
    }

    pub fn copy_out(&mut self, step: &str, h: &str, src: &str, dst: &Path) -> Result<()> {
        let _: proto::CopyOutResponse = self.call(
            step,
            Type::CopyOut,
            &proto::CopyOutRequest {
                handle: Some(h.into()),
                src_path: Some(src.into()),
                dst_path: Some(dst.display().to_string()),
                owner: None,
            },
        )?;
        Ok(())
    }

    /// LimitMemory and LimitDisk (bytes); a server error is
    /// [`StageError::Unsupported`] when the server does not implement the
    /// request, else a failure of that step.
    pub fn limits(&mut self, h: &str, mem_mb: u64, disk_mb: u64) -> Result<()> {
        let unsupported = |what: &'static str, e: StageError| match e {
            StageError::Request {
                err: ClientError::Server(msg),
                ..
            } if msg.contains("not implemented")
                || msg.contains("Unknown request")
                || msg.contains("not supported") =>
            {
                StageError::Unsupported { what, msg }
            }
            e => e,
        };
        let _: proto::LimitMemoryResponse = self
            .call(
                &format!("limit_memory {mem_mb} MB"),
                Type::LimitMemory,
                &proto::LimitMemoryRequest {
                    handle: Some(h.into()),
                    limit_in_bytes: Some(mem_mb << 20),
                },
            )
            .map_err(|e| unsupported("limit_memory", e))?;
        let _: proto::LimitDiskResponse = self
            .call(
                &format!("limit_disk {disk_mb} MB"),
                Type::LimitDisk,
                &proto::LimitDiskRequest {
                    handle: Some(h.into()),
                    byte_limit: Some(disk_mb << 20),
                    ..Default::default()
                },
            )
            .map_err(|e| unsupported("limit_disk", e))?;
        Ok(())
    }
}

/// Destroys `handles` over a fresh connection (the session's may be the
/// reason for the failure); what could not be destroyed is reported.
pub fn destroy_all(socket: &Path, handles: &[String]) {
    if handles.is_empty() {
        return;
    }
    let mut c = match Client::connect(socket) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("warden: cannot clean up {handles:?}: {e}");
            return;
        }
    };
    let _ = c.set_timeout(Some(Duration::from_secs(120)));
    for h in handles {
        let r: std::result::Result<proto::DestroyResponse, _> = c.call(
            Type::Destroy,
            &proto::DestroyRequest {
                handle: Some(h.clone()),
            },
        );
        if let Err(e) = r {
            eprintln!("warden: destroying container {h}: {e}");
        }
    }
}

/// ": <last line of stderr, else stdout>" for an error message.
fn tail(r: &proto::RunResponse) -> String {
    let pick = |b: &Option<Vec<u8>>| {
        let s = String::from_utf8_lossy(b.as_deref().unwrap_or_default()).into_owned();
        s.trim().lines().last().map(str::to_string)
    };
    match pick(&r.stderr).or_else(|| pick(&r.stdout)) {
        Some(l) if !l.is_empty() => format!(": {l}"),
        _ => String::new(),
    }
}

/// A random 8-hex-digit name part.
fn nonce() -> Result<String> {
    env::secure_uuid()
        .map(|u| u[..8].to_string())
        .map_err(|err| StageError::Io {
            what: "/dev/urandom".into(),
            err,
        })
}

/// Checks an app name: letters, digits, `_`, `.` and `-`, 1-64 bytes.
pub fn check_name(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StageError::Input(format!(
            "--name {n:?}: want 1-64 letters, digits, '_', '.' or '-'"
        )))
    }
}
