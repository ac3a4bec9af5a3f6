//! The server-side commands: `warden server`, `warden clear` and
//! `warden check-config`.

use super::output::{error_text, exit_on_broken_pipe};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use warden::client::Client;
use warden::config::{Config, ConfigError};
use warden::server::{self, Server};

/// Loads `path`; an error names the file (a bad key also names the key).
pub(crate) fn load_config(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|e| match e {
        ConfigError::Read { .. } => anyhow::anyhow!("{e}"),
        e => anyhow::anyhow!("{}: {e}", path.display()),
    })
}

/// `warden check-config FILE`: the effective config on stdout, warnings
/// on stderr; 1 when the file or a path it names is not usable.
pub(crate) fn check_config(path: &Path) -> Result<i32> {
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
pub(crate) fn init_logging(cfg: &Config) -> Result<()> {
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
pub(crate) fn open_own_file(path: &Path, append: bool) -> Result<std::fs::File> {
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

pub(crate) fn refuse_non_file(t: std::fs::FileType) -> Result<()> {
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

pub(crate) fn serve(path: &Path) -> Result<()> {
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
pub(crate) fn start(cfg: &Config, path: &Path) -> Result<(Arc<Server>, warden::lock::Ownership)> {
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

pub(crate) fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

pub(crate) fn clear(path: &Path) -> Result<()> {
    let cfg = load_config(path)?;
    init_logging(&cfg)?;
    // The server's own lock: clear never runs beside a server.
    let _owner =
        warden::lock::Ownership::acquire(&cfg.container_depot_path, &cfg.resource_prefix, path)?;
    if Client::connect(&cfg.unix_domain_path).is_ok() {
        bail!(
            "a server is listening on {}: stop it before clear",
            cfg.unix_domain_path.display()
        );
    }
    let _ = std::fs::remove_file(&cfg.unix_domain_path);
    warden::orphans::take_over(&cfg.container_depot_path); // end a dead server's steps
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
