//! `warden`: the server (`warden server [--config FILE]`), `warden clear`,
//! `warden check-config`, the ops client (`warden create|list|info|run|...`),
//! and `warden completions SHELL` / `warden man DIR` for packaging.
//!
//! Client commands take their obvious argument positionally or as a flag
//! (`warden run HANDLE SCRIPT` = `warden run --handle H --script S`);
//! flags take warden's spelling too (`--job_id` = `--job-id`). An error of
//! the server names the container, job, port or path it is about.
#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warden::client::{Client, ClientError};
use warden::config::{Config, ConfigError};
use warden::proto::{self, Type};
use warden::server::{self, Server};

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "warden server and ops client (Cloud Foundry warden's protocol v1)",
    long_about = "warden server and ops client (Cloud Foundry warden's protocol v1).\n\n\
                  `warden server` runs the server: containers on this host, driven by \
                  clients over a unix socket. Every other command but clear, \
                  check-config, completions and man is a client of a running server.",
    after_help = "Exit status: 0 on success; a job's exit status for run, link and \
                  stream; 1 when the server or a step fails (one line on stderr names \
                  what it is about); 2 on a usage error.\n\
                  Files: /etc/warden/warden.yml (the server's config), \
                  /run/warden/warden.sock (the socket clients use by default)."
)]
struct Cli {
    /// The server's unix socket (client commands; also accepted after the command).
    #[arg(long, value_name = "PATH", hide = true)]
    socket: Option<PathBuf>,
    /// Print responses as JSON (client commands; also accepted after the command).
    #[arg(long, hide = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Options of every client command.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Client options")]
struct Conn {
    /// The server's unix socket [default: /run/warden/warden.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Print the server's response as one JSON object per line.
    #[arg(long)]
    json: bool,
}

/// A container handle, as the first argument or --handle.
#[derive(Args)]
struct HandleArg {
    /// The container's handle (as `warden create` printed it).
    #[arg(value_name = "HANDLE")]
    handle_pos: Option<String>,
    /// The container's handle (instead of the HANDLE argument).
    #[arg(long, value_name = "HANDLE")]
    handle: Option<String>,
}

#[derive(Args)]
struct JobArgs {
    /// The container's handle.
    #[arg(value_name = "HANDLE")]
    handle_pos: Option<String>,
    /// The script, run by /bin/bash inside the container.
    #[arg(value_name = "SCRIPT")]
    script_pos: Option<String>,
    /// The container's handle (instead of the HANDLE argument).
    #[arg(long, value_name = "HANDLE")]
    handle: Option<String>,
    /// The script (instead of the SCRIPT argument).
    #[arg(long, value_name = "SCRIPT")]
    script: Option<String>,
    /// Run as root inside the container instead of vcap.
    #[arg(long)]
    privileged: bool,
    /// Do not keep the job's output (link/stream then get none).
    #[arg(long = "discard-output", visible_alias = "discard_output")]
    discard_output: bool,
    /// Tag of the job's output lines in the host's syslog.
    #[arg(long = "log-tag", visible_alias = "log_tag", value_name = "TAG")]
    log_tag: Option<String>,
    /// Resource limit NAME=VALUE (as, core, cpu, data, fsize, locks, memlock,
    /// msgqueue, nice, nofile, nproc, rss, rtprio, sigpending, stack); repeatable.
    #[arg(long = "rlimits", visible_alias = "rlimit", value_name = "NAME=VALUE")]
    rlimits: Vec<String>,
}

#[derive(Args)]
struct JobRef {
    /// The container's handle.
    #[arg(value_name = "HANDLE")]
    handle_pos: Option<String>,
    /// The job's id (as `warden spawn` printed it).
    #[arg(value_name = "JOB_ID")]
    job_pos: Option<u32>,
    /// The container's handle (instead of the HANDLE argument).
    #[arg(long, value_name = "HANDLE")]
    handle: Option<String>,
    /// The job's id (instead of the JOB_ID argument).
    #[arg(long = "job-id", visible_alias = "job_id", value_name = "JOB_ID")]
    job_id: Option<u32>,
}

#[derive(Args)]
struct CopyArgs {
    /// The container's handle.
    #[arg(value_name = "HANDLE")]
    handle_pos: Option<String>,
    /// The path copied from.
    #[arg(value_name = "SRC_PATH")]
    src_pos: Option<String>,
    /// The path copied to.
    #[arg(value_name = "DST_PATH")]
    dst_pos: Option<String>,
    /// The container's handle (instead of the HANDLE argument).
    #[arg(long, value_name = "HANDLE")]
    handle: Option<String>,
    /// The path copied from (instead of SRC_PATH).
    #[arg(long = "src-path", visible_alias = "src_path", value_name = "SRC_PATH")]
    src_path: Option<String>,
    /// The path copied to (instead of DST_PATH).
    #[arg(long = "dst-path", visible_alias = "dst_path", value_name = "DST_PATH")]
    dst_path: Option<String>,
}

/// The config file of server-side commands.
#[derive(Args)]
struct ConfigArg {
    /// The server's YAML config (warden's format; see etc/warden.yml).
    #[arg(long, value_name = "FILE", default_value = warden::config::DEFAULT_CONFIG)]
    config: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (in the foreground; SIGUSR2, SIGTERM or SIGINT drain it).
    #[command(next_help_heading = "Server options")]
    Server {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// With no server running: destroy every container in the depot and
    /// every host resource carrying the server's prefix (clear.sh).
    #[command(next_help_heading = "Server options")]
    Clear {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Validate a config file and print the effective configuration (every
    /// key, defaults included); exit 1 naming the bad key if it is not valid.
    #[command(name = "check-config", visible_alias = "check_config")]
    CheckConfig {
        /// The config file [default: /etc/warden/warden.yml].
        #[arg(value_name = "FILE")]
        file: Option<PathBuf>,
        /// The config file (instead of the FILE argument).
        #[arg(long = "config", value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Create a container; prints its handle.
    Create {
        /// Handle to use instead of a generated one.
        #[arg(long, value_name = "HANDLE")]
        handle: Option<String>,
        /// Seconds with no client referencing the container before it is
        /// destroyed [default: server.container_grace_time].
        #[arg(long = "grace-time", visible_alias = "grace_time", value_name = "SECS")]
        grace_time: Option<u32>,
        /// Container address to take from the network pool (its /30).
        #[arg(long, value_name = "ADDRESS")]
        network: Option<String>,
        /// Root filesystem directory instead of server.container_rootfs_path.
        #[arg(long, value_name = "DIR")]
        rootfs: Option<String>,
        /// Host path SRC mounted at DST in the container, MODE ro (default)
        /// or rw; repeatable.
        #[arg(
            long = "bind-mount",
            visible_alias = "bind_mount",
            value_name = "SRC:DST[:MODE]"
        )]
        bind_mount: Vec<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// List the containers' handles ("no containers" on stderr when none).
    List {
        #[command(flatten)]
        conn: Conn,
    },
    /// Show a container's state, addresses, jobs and stats.
    Info {
        #[command(flatten)]
        h: HandleArg,
        #[command(flatten)]
        conn: Conn,
    },
    /// Run a script in a container and wait; prints its output, exits with
    /// its status.
    Run {
        #[command(flatten)]
        job: JobArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Start a script in a container; prints the job id.
    Spawn {
        #[command(flatten)]
        job: JobArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Wait for a job; prints its output, exits with its status.
    Link {
        #[command(flatten)]
        j: JobRef,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stream a job's output as it comes; exits with its status.
    Stream {
        #[command(flatten)]
        j: JobRef,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stop every process in a container (SIGTERM, then SIGKILL after 10 s).
    Stop {
        #[command(flatten)]
        h: HandleArg,
        /// Return at once; the container stops in the background.
        #[arg(long)]
        background: bool,
        /// SIGKILL at once instead of SIGTERM first.
        #[arg(long)]
        kill: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Destroy a container and everything it holds.
    Destroy {
        #[command(flatten)]
        h: HandleArg,
        #[command(flatten)]
        conn: Conn,
    },
    /// Copy a host path SRC_PATH into a container at DST_PATH (rsync -r semantics).
    #[command(name = "copy-in", visible_alias = "copy_in")]
    CopyIn {
        #[command(flatten)]
        c: CopyArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Copy a container path SRC_PATH out to the host at DST_PATH (rsync -r semantics).
    #[command(name = "copy-out", visible_alias = "copy_out")]
    CopyOut {
        #[command(flatten)]
        c: CopyArgs,
        /// USER[:GROUP] that owns the copied files on the host.
        #[arg(long, value_name = "USER[:GROUP]")]
        owner: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Forward a host port to a container port; prints both.
    #[command(name = "net-in", visible_alias = "net_in")]
    NetIn {
        #[command(flatten)]
        h: HandleArg,
        /// The host port [default: one from the server's port pool].
        #[arg(long = "host-port", visible_alias = "host_port", value_name = "PORT")]
        host_port: Option<u32>,
        /// The container port [default: the host port].
        #[arg(
            long = "container-port",
            visible_alias = "container_port",
            value_name = "PORT"
        )]
        container_port: Option<u32>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Check that the server answers (prints pong).
    Ping {
        #[command(flatten)]
        conn: Conn,
    },
    /// Allow outbound traffic from the container (warden's net_out).
    #[command(name = "net-out", alias = "net_out")]
    NetOut {
        #[command(flatten)]
        h: HandleArg,
        /// The network allowed: a.b.c.d, a.b.c.d/len or a.b.c.d-e.f.g.h.
        #[arg(long, value_name = "NETWORK")]
        network: Option<String>,
        /// The port allowed.
        #[arg(long, value_name = "PORT")]
        port: Option<u32>,
        /// The ports allowed, N:M.
        #[arg(long = "port-range", visible_alias = "port_range", value_name = "N:M")]
        port_range: Option<String>,
        /// The protocol allowed [default: tcp].
        #[arg(long, value_parser = ["tcp", "udp", "icmp", "all"])]
        protocol: Option<String>,
        /// The ICMP type allowed (with --protocol icmp; -1: any).
        #[arg(
            long = "icmp-type",
            visible_alias = "icmp_type",
            allow_hyphen_values = true,
            value_name = "TYPE"
        )]
        icmp_type: Option<i32>,
        /// The ICMP code allowed (with --icmp-type; -1: any).
        #[arg(
            long = "icmp-code",
            visible_alias = "icmp_code",
            allow_hyphen_values = true,
            value_name = "CODE"
        )]
        icmp_code: Option<i32>,
        /// Log the new tcp connections the rule allows.
        #[arg(long)]
        log: bool,
        #[command(flatten)]
        conn: Conn,
    },
    /// Limit the container's network rate and burst, both directions.
    #[command(name = "limit-bandwidth", alias = "limit_bandwidth")]
    LimitBandwidth {
        #[command(flatten)]
        h: HandleArg,
        /// The rate in bytes per second.
        #[arg(long, value_name = "BYTES")]
        rate: u64,
        /// The burst in bytes.
        #[arg(long, value_name = "BYTES")]
        burst: u64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Ask the server to echo a message.
    Echo {
        /// The message (words are joined with spaces).
        #[arg(value_name = "MESSAGE")]
        words: Vec<String>,
        /// The message (instead of the MESSAGE argument).
        #[arg(long, value_name = "MESSAGE")]
        message: Option<String>,
        #[command(flatten)]
        conn: Conn,
    },
    /// Stage an app with buildpacks into a droplet (the Stager).
    Stage {
        #[command(flatten)]
        a: warden::stage::staging::StageArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Start instances of a droplet, each in its own container (the DEA).
    Start {
        #[command(flatten)]
        a: warden::stage::apps::StartArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// List the app instances `start` made.
    Apps {
        #[command(flatten)]
        a: warden::stage::apps::AppsArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Destroy the instances of an app.
    #[command(name = "stop-app", alias = "stop_app")]
    StopApp {
        #[command(flatten)]
        a: warden::stage::apps::StopAppArgs,
        #[command(flatten)]
        conn: Conn,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write the man pages of warden and its commands into DIR.
    #[command(hide = true)]
    Man {
        /// The directory (created if missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// A usage error of subcommand `sub` (clap's format, exit status 2).
fn usage(sub: &str, msg: impl std::fmt::Display) -> ! {
    let mut cmd = Cli::command();
    cmd.build();
    let sc = cmd.find_subcommand_mut(sub).cloned();
    let mut c = sc.unwrap_or(cmd);
    c.error(clap::error::ErrorKind::MissingRequiredArgument, msg)
        .exit()
}

/// The value given as a flag or else the next positional argument.
fn pick<T>(sub: &str, what: &str, flag: Option<T>, pos: &mut Vec<T>) -> T {
    if let Some(v) = flag {
        return v;
    }
    if pos.is_empty() {
        usage(
            sub,
            format!("{what} is required (as an argument or its flag)"),
        );
    }
    pos.remove(0)
}

fn no_more<T: std::fmt::Debug>(sub: &str, pos: Vec<T>) {
    if let Some(v) = pos.first() {
        usage(sub, format!("unexpected argument {v:?}"));
    }
}

impl HandleArg {
    fn get(self, sub: &str) -> String {
        let mut pos: Vec<String> = self.handle_pos.into_iter().collect();
        let h = pick(sub, "HANDLE", self.handle, &mut pos);
        no_more(sub, pos);
        h
    }
}

impl JobRef {
    fn get(self, sub: &str) -> (String, u32) {
        let JobRef {
            handle_pos,
            job_pos,
            handle,
            job_id,
        } = self;
        // With --handle, a lone positional is the job id.
        let (h, mut jobs) = match (handle, handle_pos) {
            (Some(h), Some(p)) => match p.parse::<u32>() {
                Ok(j) if job_pos.is_none() => (h, vec![j]),
                _ => usage(sub, format!("unexpected argument {p:?}")),
            },
            (Some(h), None) => (h, job_pos.into_iter().collect()),
            (None, Some(p)) => (p, job_pos.into_iter().collect()),
            (None, None) => usage(sub, "HANDLE is required (as an argument or --handle)"),
        };
        let j = pick(sub, "JOB_ID", job_id, &mut jobs);
        no_more(sub, jobs);
        (h, j)
    }
}

impl CopyArgs {
    fn get(self, sub: &str) -> (String, String, String) {
        let mut pos: Vec<String> = [self.handle_pos, self.src_pos, self.dst_pos]
            .into_iter()
            .flatten()
            .collect();
        let h = pick(sub, "HANDLE", self.handle, &mut pos);
        let s = pick(sub, "SRC_PATH", self.src_path, &mut pos);
        let d = pick(sub, "DST_PATH", self.dst_path, &mut pos);
        no_more(sub, pos);
        (h, s, d)
    }
}

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

/// An error and its causes on one line, each said once: a cause whose
/// text its wrapper already printed (`#[error("{0}")]` over a `#[from]`
/// source) is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if s.is_empty() || out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

/// println! that never panics: a closed stdout (EPIPE, e.g. `| head`)
/// ends the client quietly with 141 (128 + SIGPIPE), as a shell tool would.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let r = writeln!(std::io::stdout(), $($t)*);
        exit_on_broken_pipe(r);
    }};
}

fn exit_on_broken_pipe(r: std::io::Result<()>) {
    if let Err(e) = r {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
    }
}

fn print_json<T: Serialize>(v: &T) -> Result<()> {
    outln!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// What a client command needs of the connection options.
struct Client2 {
    socket: PathBuf,
    json: bool,
}

fn conn_of(top: &Cli2, c: Conn) -> Client2 {
    Client2 {
        socket: c
            .socket
            .or_else(|| top.socket.clone())
            .unwrap_or_else(|| PathBuf::from(warden::config::DEFAULT_SOCKET)),
        json: c.json || top.json,
    }
}

/// The top-level options (kept apart from the subcommand).
struct Cli2 {
    socket: Option<PathBuf>,
    json: bool,
}

/// Runs a staging/app command (controller/src/stage) against the server.
fn app(top: &Cli2, conn: Conn, cmd: warden::stage::Command) -> Result<i32> {
    let conn = conn_of(top, conn);
    Ok(warden::stage::run(&conn.socket, conn.json, cmd)?)
}

fn connect(c: &Client2) -> Result<Client> {
    Ok(Client::connect(&c.socket)?)
}

/// A server error about `what` (a handle, a job, a port, a path): the
/// message names it, unless the server's text already does.
fn about<T>(what: &str, key: &str, r: Result<T, ClientError>) -> Result<T> {
    match r {
        Err(ClientError::Server(m)) if !m.contains(key) => bail!("{what}: {m}"),
        r => Ok(r?),
    }
}

fn rlimits(list: &[String]) -> Result<Option<proto::ResourceLimits>> {
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
fn job_req(sub: &str, j: JobArgs) -> Result<(String, proto::SpawnRequest)> {
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
fn finish_link(r: proto::LinkResponse, json: bool) -> Result<i32> {
    if json {
        print_json(&r)?;
    } else {
        exit_on_broken_pipe(std::io::stdout().write_all(&r.stdout.unwrap_or_default()));
        exit_on_broken_pipe(std::io::stderr().write_all(&r.stderr.unwrap_or_default()));
    }
    Ok(r.exit_status.unwrap_or(255).min(255) as i32)
}

/// `info` as `key: value` lines; fields the server left empty are omitted.
fn print_info(i: &proto::InfoResponse) {
    let line = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            outln!("{k}: {v}");
        }
    };
    line("state", i.state.as_deref());
    line("events", Some(&i.events.join(", ")));
    line("host_ip", i.host_ip.as_deref());
    line("container_ip", i.container_ip.as_deref());
    line("container_path", i.container_path.as_deref());
    let ids: Vec<String> = i.job_ids.iter().map(|j| j.to_string()).collect();
    line("job_ids", Some(&ids.join(" ")));
    if let Some(m) = &i.memory_stat {
        outln!(
            "memory: rss={} cache={} total_rss={}",
            m.rss.unwrap_or(0),
            m.cache.unwrap_or(0),
            m.total_rss.unwrap_or(0)
        );
    }
    if let Some(c) = &i.cpu_stat {
        outln!(
            "cpu: usage={} user={} system={}",
            c.usage.unwrap_or(0),
            c.user.unwrap_or(0),
            c.system.unwrap_or(0)
        );
    }
    if let Some(d) = &i.disk_stat {
        outln!(
            "disk: bytes_used={} inodes_used={}",
            d.bytes_used.unwrap_or(0),
            d.inodes_used.unwrap_or(0)
        );
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

/// Loads `path`; an error names the file (a bad key also names the key).
fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|e| match e {
        ConfigError::Read { .. } => anyhow::anyhow!("{e}"),
        e => anyhow::anyhow!("{}: {e}", path.display()),
    })
}

/// `warden check-config FILE`: the effective config on stdout, warnings
/// on stderr; 1 when the file or a path it names is not usable.
fn check_config(path: &Path) -> Result<i32> {
    let cfg = load_config(path)?;
    exit_on_broken_pipe(std::io::stdout().write_all(cfg.effective().as_bytes()));
    for w in &cfg.warnings {
        let _ = writeln!(
            std::io::stderr(),
            "warden: {}: warning: {w}",
            path.display()
        );
    }
    cfg.check_paths()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(0)
}

/// Opens `logging.file` (if any) and sets up the log.
fn init_logging(cfg: &Config) -> Result<()> {
    let file = match &cfg.log_file {
        Some(f) => {
            Some(open_own_file(f, true).with_context(|| format!("logging.file {}", f.display()))?)
        }
        None => None,
    };
    warden::logging::init(cfg, file);
    Ok(())
}

/// Opens a file the server writes (`logging.file`, `server.pidfile`):
/// created 0644 if missing, never through a symlink (O_NOFOLLOW: a symlink
/// planted at the path fails with a clear error and its target is not
/// touched), never blocking on a FIFO (O_NONBLOCK), and only a regular
/// file is accepted. `append`: for the log; otherwise the caller truncates
/// after these checks.
fn open_own_file(path: &Path, append: bool) -> Result<std::fs::File> {
    use nix::fcntl::OFlag;
    use std::os::unix::fs::OpenOptionsExt;
    // Checked before the open for a clear message (opening a FIFO with no
    // reader fails with ENXIO), and again on the open file (no race).
    if let Ok(md) = std::fs::symlink_metadata(path) {
        refuse_non_file(md.file_type())?;
    }
    let r = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .append(append)
        .mode(0o644)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path);
    let f = match r {
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            bail!("is a symbolic link; refusing to follow it")
        }
        r => r?,
    };
    refuse_non_file(f.metadata()?.file_type())?;
    Ok(f)
}

fn refuse_non_file(t: std::fs::FileType) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_symlink() {
        bail!("is a symbolic link; refusing to follow it")
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    bail!("is {what}; refusing to write to it")
}

fn serve(path: &Path) -> Result<()> {
    // Signal handlers that only wake the iterator below (signal-hook's
    // self-pipe). Handlers, not a blocked mask: a blocked mask would be
    // inherited by every job we start.
    use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR2};
    let mut signals = signal_hook::iterator::Signals::new([SIGUSR2, SIGTERM, SIGINT])
        .context("installing signal handlers")?;

    let cfg = load_config(path)?;
    init_logging(&cfg)?;
    warden::logging::announce(&format!("read config from {}", path.display()));
    // From here on a startup error goes to logging.file as well (main
    // prints it on stderr).
    let (srv, _owner) = match start(&cfg, path) {
        Ok(s) => s,
        Err(e) => {
            if warden::logging::to_file() {
                log::error!("{}", error_text(&e));
            }
            return Err(e);
        }
    };
    let _ = warden::sdnotify::notify("READY=1");
    let sig = signals.forever().next().unwrap_or(SIGTERM);
    let _ = warden::sdnotify::notify("STOPPING=1");
    log::info!("signal {sig}: draining");
    srv.drain();
    let _ = std::fs::remove_file(&cfg.unix_domain_path);
    if let Some(p) = &cfg.pidfile {
        let _ = std::fs::remove_file(p);
    }
    log::info!("exiting");
    Ok(())
}

/// Everything from the path checks to the accept loop. The returned
/// ownership lock (of depot and prefix) must be held until the server exits.
fn start(cfg: &Config, path: &Path) -> Result<(Arc<Server>, warden::lock::Ownership)> {
    cfg.check_paths()?;
    // Exclusive ownership of depot and prefix before anything on the host is touched.
    let owner =
        warden::lock::Ownership::acquire(&cfg.container_depot_path, &cfg.resource_prefix, path)?;
    // Checked before anything is set up; written once the socket listens.
    let pidfile = match &cfg.pidfile {
        Some(p) => Some(
            open_own_file(p, false).with_context(|| format!("server.pidfile {}", p.display()))?,
        ),
        None => None,
    };
    raise_nofile();

    let srv: Arc<Server> = Server::new(cfg.clone())?;
    // Bound before setup so a busy port fails the start before anything
    // is set up on the host.
    let health = match cfg.health_check_port {
        Some(port) => {
            let addr = std::net::SocketAddr::new(cfg.health_check_address, port);
            let a = warden::health::start(addr)
                .with_context(|| format!("health_check_server: cannot listen on {addr}"))?;
            Some(a)
        }
        None => None,
    };
    {
        let s = srv.clone();
        warden::metrics::set_gauges(move || warden::metrics::gauges_of(&s));
    }
    srv.setup()?;
    srv.restore();
    srv.sweep_stale();
    let listener = server::listen(cfg)?;
    warden::logging::announce(&format!("listening on {}", cfg.unix_domain_path.display()));
    if let Some(a) = health {
        warden::logging::announce(&format!(
            "health check and metrics on http://{a}/ and http://{a}/metrics"
        ));
    }
    if let (Some(mut f), Some(p)) = (pidfile, &cfg.pidfile) {
        f.set_len(0)
            .and_then(|_| f.write_all(format!("{}\n", std::process::id()).as_bytes()))
            .with_context(|| format!("server.pidfile {}", p.display()))?;
    }
    {
        let s = srv.clone();
        std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || s.reaper())?;
    }
    {
        let s = srv.clone();
        std::thread::Builder::new()
            .name("accept".into())
            .spawn(move || server::accept_loop(&s, listener))?;
    }
    Ok((srv, owner))
}

fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn clear(path: &Path) -> Result<()> {
    let cfg = load_config(path)?;
    init_logging(&cfg)?;
    // i10-ctl: the server's own lock: clear never runs beside a server.
    let _owner =
        warden::lock::Ownership::acquire(&cfg.container_depot_path, &cfg.resource_prefix, path)?;
    if Client::connect(&cfg.unix_domain_path).is_ok() {
        bail!(
            "a server is listening on {}: stop it before clear",
            cfg.unix_domain_path.display()
        );
    }
    let _ = std::fs::remove_file(&cfg.unix_domain_path);
    warden::orphans::take_over(&cfg.container_depot_path); // i10-faults: end a dead server's steps
    warden::sh::run(
        "clear.sh",
        &cfg.scripts_path.join("clear.sh"),
        &[],
        [
            ("prefix", cfg.resource_prefix.clone()),
            ("depot_path", cfg.container_depot_path.display().to_string()),
            ("pool_network", cfg.pool_network.to_string()),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every option and argument of every command says what it is.
    #[test]
    fn every_option_has_help() {
        let mut cmd = Cli::command();
        cmd.build();
        for sc in cmd.get_subcommands() {
            assert!(sc.get_about().is_some(), "{}", sc.get_name());
            for a in sc.get_arguments() {
                let id = a.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(
                    a.get_help().is_some_and(|h| !h.to_string().is_empty()),
                    "warden {} {id} has no help",
                    sc.get_name()
                );
            }
        }
    }

    /// Server-side commands take no client options, client commands do.
    #[test]
    fn server_options_are_apart_from_client_options() {
        let mut cmd = Cli::command();
        cmd.build();
        for sc in cmd.get_subcommands() {
            let has = |id: &str| sc.get_arguments().any(|a| a.get_id() == id);
            let server_side = matches!(
                sc.get_name(),
                "server" | "clear" | "check-config" | "completions" | "man" | "help"
            );
            assert_eq!(has("socket"), !server_side, "{}", sc.get_name());
            assert_eq!(has("json"), !server_side, "{}", sc.get_name());
        }
        assert!(Cli::try_parse_from(["warden", "server", "--socket", "x"]).is_err());
        assert!(Cli::try_parse_from(["warden", "ping", "--socket", "x"]).is_ok());
        assert!(Cli::try_parse_from(["warden", "--socket", "x", "ping"]).is_ok());
    }

    #[test]
    fn positional_or_flag() {
        let p = |v: &[&str]| match Cli::try_parse_from(v).unwrap().cmd {
            Cmd::Link { j, .. } => j.get("link"),
            _ => unreachable!(),
        };
        let want = ("h".to_string(), 7);
        assert_eq!(p(&["warden", "link", "h", "7"]), want);
        assert_eq!(
            p(&["warden", "link", "--handle", "h", "--job-id", "7"]),
            want
        );
        assert_eq!(
            p(&["warden", "link", "--handle", "h", "--job_id", "7"]),
            want
        );
        assert_eq!(p(&["warden", "link", "--handle", "h", "7"]), want);
        assert_eq!(p(&["warden", "link", "h", "--job_id=7"]), want);
        let c = match Cli::try_parse_from(["warden", "copy-in", "--handle", "h", "/a", "/b"])
            .unwrap()
            .cmd
        {
            Cmd::CopyIn { c, .. } => c.get("copy-in"),
            _ => unreachable!(),
        };
        assert_eq!(c, ("h".into(), "/a".into(), "/b".into()));
    }

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        enum Inner {
            #[error("setup.sh failed (exit status 1): nft not found")]
            X,
        }
        #[derive(Debug, thiserror::Error)]
        enum Outer {
            #[error("{0}")]
            Step(#[from] Inner),
        }
        let e = anyhow::Error::from(Outer::from(Inner::X));
        assert_eq!(
            error_text(&e),
            "setup.sh failed (exit status 1): nft not found"
        );
        let e = anyhow::Error::from(std::io::Error::other("gone")).context("cannot open /x");
        assert_eq!(error_text(&e), "cannot open /x: gone");
    }
}
