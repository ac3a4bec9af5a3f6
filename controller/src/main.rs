//! `warden`: the server (`warden server [--config FILE]`), `warden clear`,
//! `warden check-config`, the ops client (`warden create|list|info|run|...`),
//! and `warden completions SHELL` / `warden man DIR` for packaging.
//!
//! Client commands take their obvious argument positionally or as a flag
//! (`warden run HANDLE SCRIPT` = `warden run --handle H --script S`);
//! flags take warden's spelling too (`--job_id` = `--job-id`). An error of
//! the server names the container, job, port or path it is about.
#![forbid(unsafe_code)]

#[macro_use]
mod cli;

use anyhow::{bail, Context, Result};
use clap::{CommandFactory, Parser};
use cli::args::usage;
use cli::client::{about, app, conn_of, connect, finish_link, job_req, Cli2};
use cli::output::{error_text, exit_on_broken_pipe, print_info, print_json};
use cli::server_cmd::{check_config, clear, serve};
use cli::{Cli, Cmd};
use std::io::Write;
use std::path::PathBuf;
use warden::proto::{self, Type};

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "warden: {}", error_text(&e));
            std::process::exit(1);
        }
    }
}

fn run(cli: Cli) -> Result<i32> {
    let top = Cli2 {
        socket: cli.socket,
        json: cli.json,
    };
    match cli.cmd {
        Cmd::Server { config } => serve(&config.config).map(|_| 0),
        Cmd::Clear { config } => clear(&config.config).map(|_| 0),
        Cmd::CheckConfig { file, config } => {
            if let (Some(f), Some(_)) = (&file, &config) {
                usage("check-config", format!("unexpected argument {f:?}"));
            }
            let path = file
                .or(config)
                .unwrap_or_else(|| PathBuf::from(warden::config::DEFAULT_CONFIG));
            check_config(&path)
        }
        // Client-side staging and DEA starts (controller/src/stage).
        Cmd::Stage { a, conn } => app(&top, conn, warden::stage::Command::Stage(a)),
        Cmd::Start { a, conn } => app(&top, conn, warden::stage::Command::Start(a)),
        Cmd::Apps { a, conn } => app(&top, conn, warden::stage::Command::Apps(a)),
        Cmd::StopApp { a, conn } => app(&top, conn, warden::stage::Command::StopApp(a)),
        Cmd::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "warden", &mut out);
            exit_on_broken_pipe(std::io::stdout().write_all(&out));
            Ok(0)
        }
        Cmd::Man { dir } => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(Cli::command(), &dir)
                .with_context(|| format!("cannot write man pages in {}", dir.display()))?;
            Ok(0)
        }
        Cmd::Ping { conn } => {
            let conn = conn_of(&top, conn);
            let r: proto::PingResponse =
                connect(&conn)?.call(Type::Ping, &proto::PingRequest {})?;
            if conn.json {
                print_json(&r)?;
            } else {
                outln!("pong");
            }
            Ok(0)
        }
        Cmd::Echo {
            words,
            message,
            conn,
        } => {
            let conn = conn_of(&top, conn);
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
        Cmd::List { conn } => {
            let conn = conn_of(&top, conn);
            let r: proto::ListResponse =
                connect(&conn)?.call(Type::List, &proto::ListRequest {})?;
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
        Cmd::Create {
            handle,
            grace_time,
            network,
            rootfs,
            bind_mount,
            conn,
        } => {
            let conn = conn_of(&top, conn);
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
        Cmd::Info { h, conn } => {
            let conn = conn_of(&top, conn);
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
        Cmd::Run { job, conn } => {
            let conn = conn_of(&top, conn);
            let (h, req) = job_req("run", job)?;
            let r: proto::RunResponse = about(
                &format!("container {h:?}"),
                &h,
                connect(&conn)?.call(Type::Run, &req),
            )?;
            finish_link(r, conn.json)
        }
        Cmd::Spawn { job, conn } => {
            let conn = conn_of(&top, conn);
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
        Cmd::Link { j, conn } => {
            let conn = conn_of(&top, conn);
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
        Cmd::Stream { j, conn } => {
            let conn = conn_of(&top, conn);
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
        Cmd::Stop {
            h,
            background,
            kill,
            conn,
        } => {
            let conn = conn_of(&top, conn);
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
        Cmd::Destroy { h, conn } => {
            let conn = conn_of(&top, conn);
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
        Cmd::CopyIn { c, conn } => {
            let conn = conn_of(&top, conn);
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
        Cmd::CopyOut { c, owner, conn } => {
            let conn = conn_of(&top, conn);
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
        Cmd::NetIn {
            h,
            host_port,
            container_port,
            conn,
        } => {
            let conn = conn_of(&top, conn);
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
        Cmd::NetOut {
            h,
            network,
            port,
            port_range,
            protocol,
            icmp_type,
            icmp_code,
            log,
            conn,
        } => {
            let conn = conn_of(&top, conn);
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
        Cmd::LimitBandwidth {
            h,
            rate,
            burst,
            conn,
        } => {
            let conn = conn_of(&top, conn);
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
    }
}
