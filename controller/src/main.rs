//! `warden`: the server (`warden server --config FILE`), `warden clear`,
//! and the ops client (`warden create|list|info|run|...`).
#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use warden::client::Client;
use warden::config::Config;
use warden::proto::{self, Type};
use warden::server::{self, Server};

#[derive(Parser)]
#[command(
    name = "warden",
    version,
    about = "warden server and ops client (warden protocol v1)"
)]
struct Cli {
    #[command(flatten)]
    conn: Conn,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args, Clone)]
struct Conn {
    /// Client commands: the server's unix socket (before or after the command).
    #[arg(long, default_value = warden::config::DEFAULT_SOCKET, global = true)]
    socket: PathBuf,
    /// Client commands: print the response as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Args)]
struct HandleArg {
    /// Container handle.
    #[arg(long)]
    handle: String,
}

#[derive(Args)]
struct JobArgs {
    #[arg(long)]
    handle: String,
    /// Script run by /bin/bash inside the container.
    #[arg(long)]
    script: String,
    /// Run as root instead of vcap.
    #[arg(long)]
    privileged: bool,
    /// Do not keep the job's output.
    #[arg(long = "discard_output", alias = "discard-output")]
    discard_output: bool,
    #[arg(long = "log_tag", alias = "log-tag")]
    log_tag: Option<String>,
    /// Resource limit NAME=VALUE (as, core, cpu, data, fsize, locks, memlock,
    /// msgqueue, nice, nofile, nproc, rss, rtprio, sigpending, stack); repeatable.
    #[arg(long = "rlimits", alias = "rlimit", value_name = "NAME=VALUE")]
    rlimits: Vec<String>,
}

#[derive(Args)]
struct JobRef {
    #[arg(long)]
    handle: String,
    #[arg(long = "job_id", alias = "job-id")]
    job_id: u32,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Server {
        /// warden YAML config file.
        #[arg(long)]
        config: PathBuf,
    },
    /// With no server running: destroy every container in the depot and
    /// every host resource carrying the server's prefix (clear.sh).
    Clear {
        /// The config of the server whose containers and resources go.
        #[arg(long)]
        config: PathBuf,
    },
    /// Create a container; prints its handle.
    Create {
        /// Handle to use instead of a generated one.
        #[arg(long)]
        handle: Option<String>,
        /// Seconds with no client referencing the container before it is
        /// destroyed (default: server.container_grace_time).
        #[arg(long = "grace_time", alias = "grace-time")]
        grace_time: Option<u32>,
        /// Container address to take from the network pool (its /30).
        #[arg(long)]
        network: Option<String>,
        /// Root filesystem instead of server.container_rootfs_path.
        #[arg(long)]
        rootfs: Option<String>,
        /// SRC:DST[:ro|rw] (default ro); repeatable.
        #[arg(
            long = "bind_mount",
            alias = "bind-mount",
            value_name = "SRC:DST[:MODE]"
        )]
        bind_mount: Vec<String>,
    },
    /// List container handles.
    List,
    /// Show a container's state and stats.
    Info {
        #[command(flatten)]
        h: HandleArg,
    },
    /// Run a script and wait; exits with the job's status.
    Run {
        #[command(flatten)]
        job: JobArgs,
    },
    /// Start a script; prints the job id.
    Spawn {
        #[command(flatten)]
        job: JobArgs,
    },
    /// Wait for a job; prints its output, exits with its status.
    Link {
        #[command(flatten)]
        j: JobRef,
    },
    /// Stream a job's output as it comes; exits with its status.
    Stream {
        #[command(flatten)]
        j: JobRef,
    },
    /// Stop every process in a container.
    Stop {
        #[command(flatten)]
        h: HandleArg,
        #[arg(long)]
        background: bool,
        #[arg(long)]
        kill: bool,
    },
    /// Destroy a container.
    Destroy {
        #[command(flatten)]
        h: HandleArg,
    },
    /// Copy a host path into a container (rsync -r semantics).
    #[command(name = "copy-in", alias = "copy_in")]
    CopyIn {
        #[command(flatten)]
        h: HandleArg,
        #[arg(long = "src_path", alias = "src-path")]
        src_path: String,
        #[arg(long = "dst_path", alias = "dst-path")]
        dst_path: String,
    },
    /// Copy a container path out to the host (rsync -r semantics).
    #[command(name = "copy-out", alias = "copy_out")]
    CopyOut {
        #[command(flatten)]
        h: HandleArg,
        #[arg(long = "src_path", alias = "src-path")]
        src_path: String,
        #[arg(long = "dst_path", alias = "dst-path")]
        dst_path: String,
        #[arg(long)]
        owner: Option<String>,
    },
    /// Forward a host port to the container.
    #[command(name = "net-in", alias = "net_in")]
    NetIn {
        #[command(flatten)]
        h: HandleArg,
        #[arg(long = "host_port", alias = "host-port")]
        host_port: Option<u32>,
        #[arg(long = "container_port", alias = "container-port")]
        container_port: Option<u32>,
    },
    /// Check that the server answers.
    Ping,
    /// Ask the server to echo a message.
    Echo {
        #[arg(long)]
        message: String,
    },
}

fn main() {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "warden: {e:#}");
            std::process::exit(1);
        }
    }
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

fn connect(c: &Conn) -> Result<Client> {
    Ok(Client::connect(&c.socket)?)
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

fn job_req(j: &JobArgs) -> Result<proto::SpawnRequest> {
    Ok(proto::SpawnRequest {
        handle: Some(j.handle.clone()),
        script: Some(j.script.clone()),
        privileged: Some(j.privileged),
        rlimits: rlimits(&j.rlimits)?,
        discard_output: Some(j.discard_output),
        log_tag: j.log_tag.clone(),
    })
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

fn print_info(i: &proto::InfoResponse) {
    outln!("state: {}", i.state.as_deref().unwrap_or(""));
    outln!("events: {}", i.events.join(", "));
    outln!("host_ip: {}", i.host_ip.as_deref().unwrap_or(""));
    outln!("container_ip: {}", i.container_ip.as_deref().unwrap_or(""));
    outln!(
        "container_path: {}",
        i.container_path.as_deref().unwrap_or("")
    );
    let ids: Vec<String> = i.job_ids.iter().map(|j| j.to_string()).collect();
    outln!("job_ids: {}", ids.join(" "));
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
    let conn = cli.conn;
    match cli.cmd {
        Cmd::Server { config } => serve(&config).map(|_| 0),
        Cmd::Clear { config } => clear(&config).map(|_| 0),
        Cmd::Ping => {
            let r: proto::PingResponse =
                connect(&conn)?.call(Type::Ping, &proto::PingRequest {})?;
            if conn.json {
                print_json(&r)?;
            } else {
                outln!("pong");
            }
            Ok(0)
        }
        Cmd::Echo { message } => {
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
        Cmd::List => {
            let r: proto::ListResponse =
                connect(&conn)?.call(Type::List, &proto::ListRequest {})?;
            if conn.json {
                print_json(&r)?;
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
        } => {
            let mut bms = Vec::new();
            for b in &bind_mount {
                let parts: Vec<&str> = b.split(':').collect();
                let (src, dst, mode) = match parts.as_slice() {
                    [s, d] => (*s, *d, "ro"),
                    [s, d, m] => (*s, *d, *m),
                    _ => bail!("--bind_mount {b:?}: want SRC:DST[:ro|rw]"),
                };
                let mode = match mode {
                    "ro" => proto::BindMountMode::Ro,
                    "rw" => proto::BindMountMode::Rw,
                    m => bail!("--bind_mount {b:?}: mode {m:?} is not ro or rw"),
                };
                bms.push(proto::BindMount {
                    src_path: Some(src.into()),
                    dst_path: Some(dst.into()),
                    mode: Some(mode as i32),
                });
            }
            let r: proto::CreateResponse = connect(&conn)?.call(
                Type::Create,
                &proto::CreateRequest {
                    bind_mounts: bms,
                    grace_time,
                    handle,
                    network,
                    rootfs,
                },
            )?;
            if conn.json {
                print_json(&r)?;
            } else {
                outln!("{}", r.handle.unwrap_or_default());
            }
            Ok(0)
        }
        Cmd::Info { h } => {
            let r: proto::InfoResponse = connect(&conn)?.call(
                Type::Info,
                &proto::InfoRequest {
                    handle: Some(h.handle),
                },
            )?;
            if conn.json {
                print_json(&r)?;
            } else {
                print_info(&r);
            }
            Ok(0)
        }
        Cmd::Run { job } => {
            let r: proto::RunResponse = connect(&conn)?.call(Type::Run, &job_req(&job)?)?;
            finish_link(r, conn.json)
        }
        Cmd::Spawn { job } => {
            let r: proto::SpawnResponse = connect(&conn)?.call(Type::Spawn, &job_req(&job)?)?;
            if conn.json {
                print_json(&r)?;
            } else {
                outln!("{}", r.job_id.unwrap_or(0));
            }
            Ok(0)
        }
        Cmd::Link { j } => {
            let r: proto::LinkResponse = connect(&conn)?.call(
                Type::Link,
                &proto::LinkRequest {
                    handle: Some(j.handle),
                    job_id: Some(j.job_id),
                },
            )?;
            finish_link(r, conn.json)
        }
        Cmd::Stream { j } => {
            let json = conn.json;
            let last = connect(&conn)?.stream(
                &proto::StreamRequest {
                    handle: Some(j.handle),
                    job_id: Some(j.job_id),
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
        } => {
            let r: proto::StopResponse = connect(&conn)?.call(
                Type::Stop,
                &proto::StopRequest {
                    handle: Some(h.handle),
                    background: Some(background),
                    kill: Some(kill),
                },
            )?;
            if conn.json {
                print_json(&r)?;
            }
            Ok(0)
        }
        Cmd::Destroy { h } => {
            let r: proto::DestroyResponse = connect(&conn)?.call(
                Type::Destroy,
                &proto::DestroyRequest {
                    handle: Some(h.handle),
                },
            )?;
            if conn.json {
                print_json(&r)?;
            }
            Ok(0)
        }
        Cmd::CopyIn {
            h,
            src_path,
            dst_path,
        } => {
            let r: proto::CopyInResponse = connect(&conn)?.call(
                Type::CopyIn,
                &proto::CopyInRequest {
                    handle: Some(h.handle),
                    src_path: Some(src_path),
                    dst_path: Some(dst_path),
                },
            )?;
            if conn.json {
                print_json(&r)?;
            }
            Ok(0)
        }
        Cmd::CopyOut {
            h,
            src_path,
            dst_path,
            owner,
        } => {
            let r: proto::CopyOutResponse = connect(&conn)?.call(
                Type::CopyOut,
                &proto::CopyOutRequest {
                    handle: Some(h.handle),
                    src_path: Some(src_path),
                    dst_path: Some(dst_path),
                    owner,
                },
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
        } => {
            let r: proto::NetInResponse = connect(&conn)?.call(
                Type::NetIn,
                &proto::NetInRequest {
                    handle: Some(h.handle),
                    host_port,
                    container_port,
                },
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
    }
}

fn level(l: &str) -> log::LevelFilter {
    match l {
        "off" => log::LevelFilter::Off,
        "fatal" | "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "debug1" | "debug2" | "all" => log::LevelFilter::Trace,
        _ => log::LevelFilter::Info,
    }
}

fn init_logging(cfg: &Config) -> Result<()> {
    let mut b = env_logger::Builder::new();
    b.filter_level(level(&cfg.log_level));
    if let Ok(s) = std::env::var("RUST_LOG") {
        b.parse_filters(&s);
    }
    if let Some(f) = &cfg.log_file {
        let file =
            open_own_file(f, true).with_context(|| format!("logging.file {}", f.display()))?;
        b.target(env_logger::Target::Pipe(Box::new(file)));
    }
    let _ = b.try_init();
    for w in &cfg.warnings {
        log::warn!("config: {w}");
    }
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

    let cfg = Config::load(path)?;
    init_logging(&cfg)?;
    cfg.check_paths()?;
    // Checked before anything is set up; written once the socket listens.
    let pidfile = match &cfg.pidfile {
        Some(p) => Some(
            open_own_file(p, false).with_context(|| format!("server.pidfile {}", p.display()))?,
        ),
        None => None,
    };
    raise_nofile();

    let srv: Arc<Server> = Server::new(cfg.clone())?;
    srv.setup()?;
    srv.restore();
    srv.sweep_stale();
    let listener = server::listen(&cfg)?;
    log::info!("Listening on {}", cfg.unix_domain_path.display());
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
    let sig = signals.forever().next().unwrap_or(SIGTERM);
    log::info!("signal {sig}: draining");
    srv.drain();
    let _ = std::fs::remove_file(&cfg.unix_domain_path);
    if let Some(p) = &cfg.pidfile {
        let _ = std::fs::remove_file(p);
    }
    log::info!("exiting");
    Ok(())
}

fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn clear(path: &Path) -> Result<()> {
    let cfg = Config::load(path)?;
    init_logging(&cfg)?;
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
