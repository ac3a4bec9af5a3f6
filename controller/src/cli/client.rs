//! The client commands' shared steps: connection options, requests built
//! from flags, and errors that name what they are about.

use super::args::{no_more, pick};
use super::output::{exit_on_broken_pipe, print_json};
use super::{Conn, JobArgs};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::PathBuf;
use warden::client::{Client, ClientError};
use warden::proto;

/// What a client command needs of the connection options.
pub(crate) struct Client2 {
    pub(crate) socket: PathBuf,
    pub(crate) json: bool,
}

pub(crate) fn conn_of(top: &Cli2, c: Conn) -> Client2 {
    Client2 {
        socket: c
            .socket
            .or_else(|| top.socket.clone())
            .unwrap_or_else(|| PathBuf::from(warden::config::DEFAULT_SOCKET)),
        json: c.json || top.json,
    }
}

/// The top-level options (kept apart from the subcommand).
pub(crate) struct Cli2 {
    pub(crate) socket: Option<PathBuf>,
    pub(crate) json: bool,
}

/// Runs a staging/app command (controller/src/stage) against the server.
pub(crate) fn app(top: &Cli2, conn: Conn, cmd: warden::stage::Command) -> Result<i32> {
    let conn = conn_of(top, conn);
    Ok(warden::stage::run(&conn.socket, conn.json, cmd)?)
}

pub(crate) fn connect(c: &Client2) -> Result<Client> {
    Ok(Client::connect(&c.socket)?)
}

/// A server error about `what` (a handle, a job, a port, a path): the
/// message names it, unless the server's text already does.
pub(crate) fn about<T>(what: &str, key: &str, r: Result<T, ClientError>) -> Result<T> {
    match r {
        Err(ClientError::Server(m)) if !m.contains(key) => bail!("{what}: {m}"),
        r => Ok(r?),
    }
}

pub(crate) fn rlimits(list: &[String]) -> Result<Option<proto::ResourceLimits>> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut r = proto::ResourceLimits::default();
    for item in list {
        let (k, v) = item
            .split_once('=')
            .with_context(|| format!("--rlimits {item:?}: want NAME=VALUE"))?;
        let v: u64 = v
            .parse()
            .with_context(|| format!("--rlimits {item:?}: bad value"))?;
        let slot = match k {
            "as" => &mut r.r#as,
            "core" => &mut r.core,
            "cpu" => &mut r.cpu,
            "data" => &mut r.data,
            "fsize" => &mut r.fsize,
            "locks" => &mut r.locks,
            "memlock" => &mut r.memlock,
            "msgqueue" => &mut r.msgqueue,
            "nice" => &mut r.nice,
            "nofile" => &mut r.nofile,
            "nproc" => &mut r.nproc,
            "rss" => &mut r.rss,
            "rtprio" => &mut r.rtprio,
            "sigpending" => &mut r.sigpending,
            "stack" => &mut r.stack,
            _ => bail!("--rlimits {item:?}: unknown limit {k}"),
        };
        *slot = Some(v);
    }
    Ok(Some(r))
}

/// The request of run/spawn `sub`, and its handle.
pub(crate) fn job_req(sub: &str, j: JobArgs) -> Result<(String, proto::SpawnRequest)> {
    let mut pos: Vec<String> = [j.handle_pos, j.script_pos].into_iter().flatten().collect();
    let h = pick(sub, "HANDLE", j.handle, &mut pos);
    let script = pick(sub, "SCRIPT", j.script, &mut pos);
    no_more(sub, pos);
    let req = proto::SpawnRequest {
        handle: Some(h.clone()),
        script: Some(script),
        privileged: Some(j.privileged),
        rlimits: rlimits(&j.rlimits)?,
        discard_output: Some(j.discard_output),
        log_tag: j.log_tag,
    };
    Ok((h, req))
}

/// Prints a link/run response and returns the job's exit status.
pub(crate) fn finish_link(r: proto::LinkResponse, json: bool) -> Result<i32> {
    if json {
        print_json(&r)?;
    } else {
        exit_on_broken_pipe(std::io::stdout().write_all(&r.stdout.unwrap_or_default()));
        exit_on_broken_pipe(std::io::stderr().write_all(&r.stderr.unwrap_or_default()));
    }
    Ok(r.exit_status.unwrap_or(255).min(255) as i32)
}
