//! The command line of `warden`: clap's definition of every command
//! (this file), the positional-or-flag resolution (args.rs), the client
//! commands (client.rs), their output (output.rs) and the server-side
//! commands (server_cmd.rs).

#[macro_use]
pub(crate) mod output;
pub(crate) mod args;
pub(crate) mod client;
pub(crate) mod commands;
pub(crate) mod server_cmd;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
pub(crate) struct Cli {
    /// The server's unix socket (client commands; also accepted after the command).
    #[arg(long, value_name = "PATH", hide = true)]
    pub(crate) socket: Option<PathBuf>,
    /// Print responses as JSON (client commands; also accepted after the command).
    #[arg(long, hide = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

/// Options of every client command.
#[derive(Args, Clone, Default)]
#[command(next_help_heading = "Client options")]
pub(crate) struct Conn {
    /// The server's unix socket [default: /run/warden/warden.sock].
    #[arg(long, value_name = "PATH")]
    pub(crate) socket: Option<PathBuf>,
    /// Print the server's response as one JSON object per line.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A container handle, as the first argument or --handle.
#[derive(Args)]
pub(crate) struct HandleArg {
    /// The container's handle (as `warden create` printed it).
    #[arg(value_name = "HANDLE")]
    pub(crate) handle_pos: Option<String>,
    /// The container's handle (instead of the HANDLE argument).
    #[arg(long, value_name = "HANDLE")]
    pub(crate) handle: Option<String>,
}

#[derive(Args)]
pub(crate) struct JobArgs {
    /// The container's handle.
    #[arg(value_name = "HANDLE")]
    pub(crate) handle_pos: Option<String>,
    /// The script, run by /bin/bash inside the container.
    #[arg(value_name = "SCRIPT")]
    pub(crate) script_pos: Option<String>,
    /// The container's handle (instead of the HANDLE argument).
    #[arg(long, value_name = "HANDLE")]
    pub(crate) handle: Option<String>,
    /// The script (instead of the SCRIPT argument).
    #[arg(long, value_name = "SCRIPT")]
    pub(crate) script: Option<String>,
    /// Run as root inside the container instead of vcap.
    #[arg(long)]
    pub(crate) privileged: bool,
    /// Do not keep the job's output (link/stream then get none).
    #[arg(long = "discard-output", visible_alias = "discard_output")]
    pub(crate) discard_output: bool,
    /// Tag of the job's output lines in the host's syslog.
    #[arg(long = "log-tag", visible_alias = "log_tag", value_name = "TAG")]
    pub(crate) log_tag: Option<String>,
    /// Resource limit NAME=VALUE (as, core, cpu, data, fsize, locks, memlock,
    /// msgqueue, nice, nofile, nproc, rss, rtprio, sigpending, stack); repeatable.
    #[arg(long = "rlimits", visible_alias = "rlimit", value_name = "NAME=VALUE")]
    pub(crate) rlimits: Vec<String>,
}

#[derive(Args)]
pub(crate) struct JobRef {
    /// The container's handle.
    #[arg(value_name = "HANDLE")]
    pub(crate) handle_pos: Option<String>,
    /// The job's id (as `warden spawn` printed it).
    #[arg(value_name = "JOB_ID")]
    pub(crate) job_pos: Option<u32>,
    /// The container's handle (instead of the HANDLE argument).
    #[arg(long, value_name = "HANDLE")]
    pub(crate) handle: Option<String>,
    /// The job's id (instead of the JOB_ID argument).
    #[arg(long = "job-id", visible_alias = "job_id", value_name = "JOB_ID")]
    pub(crate) job_id: Option<u32>,
}

#[derive(Args)]
pub(crate) struct CopyArgs {
    /// The container's handle.
    #[arg(value_name = "HANDLE")]
    pub(crate) handle_pos: Option<String>,
    /// The path copied from.
    #[arg(value_name = "SRC_PATH")]
    pub(crate) src_pos: Option<String>,
    /// The path copied to.
    #[arg(value_name = "DST_PATH")]
    pub(crate) dst_pos: Option<String>,
    /// The container's handle (instead of the HANDLE argument).
    #[arg(long, value_name = "HANDLE")]
    pub(crate) handle: Option<String>,
    /// The path copied from (instead of SRC_PATH).
    #[arg(long = "src-path", visible_alias = "src_path", value_name = "SRC_PATH")]
    pub(crate) src_path: Option<String>,
    /// The path copied to (instead of DST_PATH).
    #[arg(long = "dst-path", visible_alias = "dst_path", value_name = "DST_PATH")]
    pub(crate) dst_path: Option<String>,
}

/// The config file of server-side commands.
#[derive(Args)]
pub(crate) struct ConfigArg {
    /// The server's YAML config (warden's format; see etc/warden.yml).
    #[arg(long, value_name = "FILE", default_value = warden::config::DEFAULT_CONFIG)]
    pub(crate) config: PathBuf,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

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
}
