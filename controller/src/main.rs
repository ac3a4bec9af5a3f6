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

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use cli::args::usage;
use cli::client::{app, conn_of, Cli2};
use cli::commands;
use cli::output::{error_text, exit_on_broken_pipe};
use cli::server_cmd::{check_config, clear, serve};
use cli::{Cli, Cmd};
use std::io::Write;
use std::path::PathBuf;

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
        cmd => request(&top, cmd),
    }
}

/// The commands that send one warden request (controller/src/cli/commands.rs).
fn request(top: &Cli2, cmd: Cmd) -> Result<i32> {
    match cmd {
        Cmd::Ping { conn } => commands::ping(conn_of(top, conn)),
        Cmd::Echo {
            words,
            message,
            conn,
        } => commands::echo(conn_of(top, conn), words, message),
        Cmd::List { conn } => commands::list(conn_of(top, conn)),
        Cmd::Create {
            handle,
            grace_time,
            network,
            rootfs,
            bind_mount,
            conn,
        } => commands::create(
            conn_of(top, conn),
            handle,
            grace_time,
            network,
            rootfs,
            bind_mount,
        ),
        Cmd::Info { h, conn } => commands::info(conn_of(top, conn), h),
        Cmd::Run { job, conn } => commands::run(conn_of(top, conn), job),
        Cmd::Spawn { job, conn } => commands::spawn(conn_of(top, conn), job),
        Cmd::Link { j, conn } => commands::link(conn_of(top, conn), j),
        Cmd::Stream { j, conn } => commands::stream(conn_of(top, conn), j),
        Cmd::Stop {
            h,
            background,
            kill,
            conn,
        } => commands::stop(conn_of(top, conn), h, background, kill),
        Cmd::Destroy { h, conn } => commands::destroy(conn_of(top, conn), h),
        Cmd::CopyIn { c, conn } => commands::copy_in(conn_of(top, conn), c),
        Cmd::CopyOut { c, owner, conn } => commands::copy_out(conn_of(top, conn), c, owner),
        Cmd::NetIn {
            h,
            host_port,
            container_port,
            conn,
        } => commands::net_in(conn_of(top, conn), h, host_port, container_port),
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
        } => commands::net_out(
            conn_of(top, conn),
            h,
            network,
            port,
            port_range,
            protocol,
            icmp_type,
            icmp_code,
            log,
        ),
        Cmd::LimitBandwidth {
            h,
            rate,
            burst,
            conn,
        } => commands::limit_bandwidth(conn_of(top, conn), h, rate, burst),
        // run handles the commands that send no request.
        _ => unreachable!("run handles the commands that send no request"),
    }
}
