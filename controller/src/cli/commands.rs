//! The client commands, one function each: build the request from the
//! command line, call the server, print the answer (JSON or text).

use super::args::usage;
use super::client::{about, connect, finish_link, job_req, Client2};
use super::output::{exit_on_broken_pipe, print_info, print_json};
use super::{CopyArgs, HandleArg, JobArgs, JobRef};
use anyhow::{bail, Result};
use std::io::Write;
use warden::proto::{self, Type};

/// `warden ping`.
pub(crate) fn ping(conn: Client2) -> Result<i32> {
    let r: proto::PingResponse = connect(&conn)?.call(Type::Ping, &proto::PingRequest {})?;
    if conn.json {
        print_json(&r)?;
    } else {
        outln!("pong");
    }
    Ok(0)
}

/// `warden echo`.
pub(crate) fn echo(conn: Client2, words: Vec<String>, message: Option<String>) -> Result<i32> {
    let message = match (message, words.is_empty()) {
        (Some(m), true) => m,
        (None, false) => words.join(" "),
        (Some(_), false) => usage("echo", format!("unexpected argument {:?}", words[0])),
        (None, true) => usage("echo", "MESSAGE is required (as an argument or --message)"),
    };
    let r: proto::EchoResponse = connect(&conn)?.call(
        Type::Echo,
        &proto::EchoRequest {
            message: Some(message),
        },
    )?;
    if conn.json {
        print_json(&r)?;
    } else {
        outln!("{}", r.message.unwrap_or_default());
    }
    Ok(0)
}

/// `warden list`.
pub(crate) fn list(conn: Client2) -> Result<i32> {
    let r: proto::ListResponse = connect(&conn)?.call(Type::List, &proto::ListRequest {})?;
    if conn.json {
        print_json(&r)?;
    } else if r.handles.is_empty() {
        // On stderr: stdout stays one handle a line, for scripts.
        let _ = writeln!(std::io::stderr(), "no containers");
    } else {
        for h in r.handles {
            outln!("{h}");
        }
    }
    Ok(0)
}

/// `warden create`.
pub(crate) fn create(
    conn: Client2,
    handle: Option<String>,
    grace_time: Option<u32>,
    network: Option<String>,
    rootfs: Option<String>,
    bind_mount: Vec<String>,
) -> Result<i32> {
    let mut bms = Vec::new();
    for b in &bind_mount {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, "ro"),
            [s, d, m] => (*s, *d, *m),
            _ => bail!("--bind-mount {b:?}: want SRC:DST[:ro|rw]"),
        };
        let mode = match mode {
            "ro" => proto::BindMountMode::Ro,
            "rw" => proto::BindMountMode::Rw,
            m => bail!("--bind-mount {b:?}: mode {m:?} is not ro or rw"),
        };
        bms.push(proto::BindMount {
            src_path: Some(src.into()),
            dst_path: Some(dst.into()),
            mode: Some(mode as i32),
        });
    }
    let what = match &handle {
        Some(h) => format!("create {h:?}"),
        None => "create".into(),
    };
    let key = handle.clone().unwrap_or_else(|| "\0".into());
    let r: proto::CreateResponse = about(
        &what,
        &key,
        connect(&conn)?.call(
            Type::Create,
            &proto::CreateRequest {
                bind_mounts: bms,
                grace_time,
                handle,
                network,
                rootfs,
            },
        ),
    )?;
    if conn.json {
        print_json(&r)?;
    } else {
        outln!("{}", r.handle.unwrap_or_default());
    }
    Ok(0)
}

/// `warden info`.
pub(crate) fn info(conn: Client2, h: HandleArg) -> Result<i32> {
    let h = h.get("info");
    let r: proto::InfoResponse = about(
        &format!("container {h:?}"),
        &h,
        connect(&conn)?.call(
            Type::Info,
            &proto::InfoRequest {
                handle: Some(h.clone()),
            },
        ),
    )?;
    if conn.json {
        print_json(&r)?;
    } else {
        print_info(&r);
    }
    Ok(0)
}

/// `warden run`.
pub(crate) fn run(conn: Client2, job: JobArgs) -> Result<i32> {
    let (h, req) = job_req("run", job)?;
    let r: proto::RunResponse = about(
        &format!("container {h:?}"),
        &h,
        connect(&conn)?.call(Type::Run, &req),
    )?;
    finish_link(r, conn.json)
}

/// `warden spawn`.
pub(crate) fn spawn(conn: Client2, job: JobArgs) -> Result<i32> {
    let (h, req) = job_req("spawn", job)?;
    let r: proto::SpawnResponse = about(
        &format!("container {h:?}"),
        &h,
        connect(&conn)?.call(Type::Spawn, &req),
    )?;
    if conn.json {
        print_json(&r)?;
    } else {
        outln!("{}", r.job_id.unwrap_or(0));
    }
    Ok(0)
}

/// `warden link`.
pub(crate) fn link(conn: Client2, j: JobRef) -> Result<i32> {
    let (h, id) = j.get("link");
    let r: proto::LinkResponse = about(
        &format!("container {h:?} job {id}"),
        &h,
        connect(&conn)?.call(
            Type::Link,
            &proto::LinkRequest {
                handle: Some(h.clone()),
                job_id: Some(id),
            },
        ),
    )?;
    finish_link(r, conn.json)
}

/// `warden stream`.
pub(crate) fn stream(conn: Client2, j: JobRef) -> Result<i32> {
    let (h, id) = j.get("stream");
    let json = conn.json;
    let last = about(
        &format!("container {h:?} job {id}"),
        &h,
        connect(&conn)?.stream(
            &proto::StreamRequest {
                handle: Some(h.clone()),
                job_id: Some(id),
            },
            |chunk| {
                if json {
                    let _ = print_json(chunk);
                } else {
                    let d = chunk.data.as_deref().unwrap_or_default();
                    if chunk.name.as_deref() == Some("stderr") {
                        let _ = std::io::stderr().write_all(d);
                    } else {
                        let mut o = std::io::stdout();
                        exit_on_broken_pipe(o.write_all(d));
                        let _ = o.flush();
                    }
                }
            },
        ),
    )?;
    if json {
        print_json(&last)?;
    }
    Ok(last.exit_status.unwrap_or(255).min(255) as i32)
}

/// `warden stop`.
pub(crate) fn stop(conn: Client2, h: HandleArg, background: bool, kill: bool) -> Result<i32> {
    let h = h.get("stop");
    let r: proto::StopResponse = about(
        &format!("container {h:?}"),
        &h,
        connect(&conn)?.call(
            Type::Stop,
            &proto::StopRequest {
                handle: Some(h.clone()),
                background: Some(background),
                kill: Some(kill),
            },
        ),
    )?;
    if conn.json {
        print_json(&r)?;
    }
    Ok(0)
}

/// `warden destroy`.
pub(crate) fn destroy(conn: Client2, h: HandleArg) -> Result<i32> {
    let h = h.get("destroy");
    let r: proto::DestroyResponse = about(
        &format!("container {h:?}"),
        &h,
        connect(&conn)?.call(
            Type::Destroy,
            &proto::DestroyRequest {
                handle: Some(h.clone()),
            },
        ),
    )?;
    if conn.json {
        print_json(&r)?;
    }
    Ok(0)
}

/// `warden copy-in`.
pub(crate) fn copy_in(conn: Client2, c: CopyArgs) -> Result<i32> {
    let (h, src, dst) = c.get("copy-in");
    let r: proto::CopyInResponse = about(
        &format!("container {h:?} copy-in {src} -> {dst}"),
        &h,
        connect(&conn)?.call(
            Type::CopyIn,
            &proto::CopyInRequest {
                handle: Some(h.clone()),
                src_path: Some(src.clone()),
                dst_path: Some(dst.clone()),
            },
        ),
    )?;
    if conn.json {
        print_json(&r)?;
    }
    Ok(0)
}

/// `warden copy-out`.
pub(crate) fn copy_out(conn: Client2, c: CopyArgs, owner: Option<String>) -> Result<i32> {
    let (h, src, dst) = c.get("copy-out");
    let r: proto::CopyOutResponse = about(
        &format!("container {h:?} copy-out {src} -> {dst}"),
        &h,
        connect(&conn)?.call(
            Type::CopyOut,
            &proto::CopyOutRequest {
                handle: Some(h.clone()),
                src_path: Some(src.clone()),
                dst_path: Some(dst.clone()),
                owner,
            },
        ),
    )?;
    if conn.json {
        print_json(&r)?;
    }
    Ok(0)
}

/// `warden net-in`.
pub(crate) fn net_in(
    conn: Client2,
    h: HandleArg,
    host_port: Option<u32>,
    container_port: Option<u32>,
) -> Result<i32> {
    let h = h.get("net-in");
    let ports = match (host_port, container_port) {
        (Some(p), Some(c)) => format!(" host port {p} -> container port {c}"),
        (Some(p), None) => format!(" host port {p}"),
        (None, Some(c)) => format!(" container port {c}"),
        (None, None) => String::new(),
    };
    let r: proto::NetInResponse = about(
        &format!("container {h:?} net-in{ports}"),
        &h,
        connect(&conn)?.call(
            Type::NetIn,
            &proto::NetInRequest {
                handle: Some(h.clone()),
                host_port,
                container_port,
            },
        ),
    )?;
    if conn.json {
        print_json(&r)?;
    } else {
        outln!(
            "host_port={} container_port={}",
            r.host_port.unwrap_or(0),
            r.container_port.unwrap_or(0)
        );
    }
    Ok(0)
}

/// `warden net-out`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn net_out(
    conn: Client2,
    h: HandleArg,
    network: Option<String>,
    port: Option<u32>,
    port_range: Option<String>,
    protocol: Option<String>,
    icmp_type: Option<i32>,
    icmp_code: Option<i32>,
    log: bool,
) -> Result<i32> {
    let h = h.get("net-out");
    let protocol = protocol.map(|p| match p.as_str() {
        "udp" => 1,
        "icmp" => 2,
        "all" => 3,
        _ => 0,
    });
    let r: proto::NetOutResponse = about(
        &format!("container {h:?} net-out"),
        &h,
        connect(&conn)?.call(
            Type::NetOut,
            &proto::NetOutRequest {
                handle: Some(h.clone()),
                network,
                port,
                port_range,
                protocol,
                icmp_type,
                icmp_code,
                log: log.then_some(true),
            },
        ),
    )?;
    if conn.json {
        print_json(&r)?;
    }
    Ok(0)
}

/// `warden limit-bandwidth`.
pub(crate) fn limit_bandwidth(conn: Client2, h: HandleArg, rate: u64, burst: u64) -> Result<i32> {
    let h = h.get("limit-bandwidth");
    let r: proto::LimitBandwidthResponse = about(
        &format!("container {h:?} limit-bandwidth"),
        &h,
        connect(&conn)?.call(
            Type::LimitBandwidth,
            &proto::LimitBandwidthRequest {
                handle: Some(h.clone()),
                rate: Some(rate),
                burst: Some(burst),
            },
        ),
    )?;
    if conn.json {
        print_json(&r)?;
    } else {
        outln!(
            "rate={} burst={}",
            r.rate.unwrap_or(0),
            r.burst.unwrap_or(0)
        );
    }
    Ok(0)
}
