//! The warden server: shared state (registry, pools, job ids), config,
//! setup, the socket and the accept loop. What a request does lives in the
//! module that owns it:
//!
//! | module | holds |
//! |---|---|
//! | crate::dispatch | a connection's requests, routed by type |
//! | crate::lifecycle | create, stop, destroy, grace timer, wshd watch |
//! | crate::jobs | spawn, link, stream, run |
//! | crate::copy | copy_in, copy_out |
//! | crate::net | net_in |
//! | crate::restore | drain, restore, adoption, stale-resource sweep |
//! | crate::host | cgroups, the nft table, every host resource name |
//!
//! Concurrency: a thread per connection; requests on one connection are
//! answered in order. Requests that change a container take its `op` lock
//! for their whole run, so requests for one container are serialised while
//! other containers proceed in parallel. Link and stream wait on the job
//! without holding the `op` lock, so stop/destroy can proceed meanwhile.
//!
//! Files in the depot besides container directories: `.warden-job-ids`
//! (decimal: the job id below which ids may have been handed out; the
//! counter is reserved in blocks of 1000 so restarts never reuse an id).

use crate::config::Config;
use crate::conn;
use crate::container::{self, Container, Resources};
use crate::dispatch::send_error;
use crate::error::RequestError;
use crate::host::layout::Layout;
use crate::pool::Pool;
use crate::sh;
use std::collections::{HashMap, HashSet};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{what} {path}: {err}")]
    Io {
        what: &'static str,
        path: PathBuf,
        err: std::io::Error,
    },
    #[error("{0}")]
    Step(#[from] sh::StepError),
}

fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ServerError + 'a {
    move |err| ServerError::Io {
        what,
        path: path.to_path_buf(),
        err,
    }
}

/// Locks a mutex; a panic of another holder does not poison it for us.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const STACK: usize = 256 * 1024;

/// After a restart, clients get this long to reconnect and reference a
/// re-adopted container before its grace timer may destroy it, even with a
/// shorter grace time (warden's slow destroy gave them about as long;
/// spec: "grace time should cancel the timer when client reconnects").
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(2);

/// Starts a thread with the server's small stack; a failure is logged.
pub(crate) fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) {
    if let Err(e) = std::thread::Builder::new()
        .name(name.into())
        .stack_size(STACK)
        .spawn(f)
    {
        log::error!("cannot start thread {name}: {e}");
    }
}

struct JobIds {
    next: u32,
    ceiling: u32,
    path: PathBuf,
}

pub struct Server {
    pub cfg: Config,
    /// Names of this server's host resources.
    pub(crate) layout: Layout,
    pub(crate) registry: Mutex<HashMap<String, Arc<Container>>>,
    /// Handles being created (not yet in the registry).
    pub(crate) pending: Mutex<HashSet<String>>,
    pub(crate) net_pool: Mutex<Pool>,
    pub(crate) uid_pool: Mutex<Pool>,
    pub(crate) port_pool: Mutex<Pool>,
    job_ids: Mutex<JobIds>,
    pub(crate) draining: AtomicBool,
    /// Requests being handled, and its change signal (drain waits on it).
    pub(crate) busy: Mutex<usize>,
    pub(crate) idle: Condvar,
    /// The last request sequence number (crate::dispatch).
    pub(crate) sequence: Mutex<u64>,
    /// Every open connection (crate::dispatch::Server::settle).
    pub(crate) wires: Mutex<Vec<std::sync::Weak<crate::dispatch::Wire>>>,
    /// Bytes of large request frames being received (crate::conn).
    budget: Arc<conn::Budget>,
}

impl Server {
    pub fn new(cfg: Config) -> Result<Arc<Server>, ServerError> {
        std::fs::create_dir_all(&cfg.container_depot_path)
            .map_err(io_err("cannot create depot", &cfg.container_depot_path))?;
        let n_nets = (cfg.pool_network.size() / 4).min(u32::MAX as u64) as u32;
        let delay = cfg.release_delay;
        let ids_path = cfg.container_depot_path.join(".warden-job-ids");
        let next = std::fs::read_to_string(&ids_path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        Ok(Arc::new(Server {
            net_pool: Mutex::new(Pool::new(0, n_nets, delay)),
            // As in warden, only the network pool waits release_delay.
            uid_pool: Mutex::new(Pool::new(cfg.uid_start, cfg.uid_size, Duration::ZERO)),
            port_pool: Mutex::new(Pool::new(cfg.port_start, cfg.port_size, Duration::ZERO)),
            job_ids: Mutex::new(JobIds {
                next,
                ceiling: next,
                path: ids_path,
            }),
            budget: conn::Budget::new(cfg.max_buffered_bytes),
            layout: Layout::new(&cfg.resource_prefix),
            cfg,
            registry: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashSet::new()),
            draining: AtomicBool::new(false),
            busy: Mutex::new(0),
            idle: Condvar::new(),
            sequence: Mutex::new(0),
            wires: Mutex::new(Vec::new()),
        }))
    }

    pub(crate) fn next_job_id(&self) -> Result<u32, RequestError> {
        let mut j = lock(&self.job_ids);
        j.next += 1;
        if j.next >= j.ceiling {
            let ceiling = j.next + 1000;
            let tmp = j.path.with_extension("tmp");
            std::fs::write(&tmp, format!("{ceiling}\n"))
                .and_then(|_| std::fs::rename(&tmp, &j.path))
                .map_err(RequestError::host(format!(
                    "cannot persist job ids in {}",
                    j.path.display()
                )))?;
            j.ceiling = ceiling;
        }
        Ok(j.next)
    }

    pub(crate) fn note_job_id(&self, id: u32) {
        let mut j = lock(&self.job_ids);
        if id > j.next {
            j.next = id;
        }
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    pub(crate) fn script(&self, name: &str) -> PathBuf {
        self.cfg.scripts_path.join(name)
    }

    /// Runs setup.sh (server start).
    pub fn setup(&self) -> Result<(), ServerError> {
        let c = &self.cfg;
        // End the steps a killed server left running, then mark ours.
        crate::orphans::take_over(&c.container_depot_path);
        sh::run(
            "setup.sh",
            &self.script("setup.sh"),
            &[],
            [
                ("prefix", c.resource_prefix.clone()),
                ("pool_network", c.pool_network.to_string()),
                ("allow_host_access", c.allow_host_access.to_string()),
                ("allow_networks", c.allow_networks.join(" ")),
                ("deny_networks", c.deny_networks.join(" ")),
                ("depot_path", c.container_depot_path.display().to_string()),
            ],
        )?;
        Ok(())
    }

    /// Returns a container's pool entries.
    pub(crate) fn release_resources(&self, res: &Resources) {
        lock(&self.net_pool).release(res.network_index);
        lock(&self.uid_pool).release(res.uid);
        let mut pp = lock(&self.port_pool);
        for p in &res.ports {
            pp.release(*p);
        }
    }

    pub(crate) fn lookup(&self, handle: &str) -> Result<Arc<Container>, RequestError> {
        lock(&self.registry)
            .get(handle)
            .cloned()
            .ok_or(RequestError::UnknownHandle)
    }

    pub fn handles(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.registry).keys().cloned().collect();
        v.sort();
        v
    }

    pub fn containers(&self) -> Vec<Arc<Container>> {
        lock(&self.registry).values().cloned().collect()
    }

    /// Counts a connection's first reference to `c` (its grace timer
    /// stops while any connection holds it).
    pub(crate) fn reference(&self, refs: &mut Vec<Arc<Container>>, c: &Arc<Container>) {
        if refs.iter().any(|x| Arc::ptr_eq(x, c)) {
            return;
        }
        let mut g = lock(&c.grace);
        g.conns += 1;
        g.idle_since = None;
        g.floor = Duration::ZERO;
        drop(g);
        refs.push(c.clone());
    }

    /// Bounds for reading this server's requests (see crate::conn).
    pub fn limits(&self) -> conn::Limits {
        conn::Limits {
            max_request: self.cfg.max_request_bytes,
            timeout: self.cfg.request_timeout,
            budget: self.budget.clone(),
        }
    }
}

/// Fails when `p` is a socket a server answers on, or is not a socket.
fn refuse_live_socket(p: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::FileTypeExt;
    let bad = |what: &'static str, err: std::io::Error| ServerError::Io {
        what,
        path: p.to_path_buf(),
        err,
    };
    match std::fs::symlink_metadata(p) {
        Ok(md) if md.file_type().is_socket() => {
            if UnixStream::connect(p).is_ok() {
                return Err(bad(
                    "another server is listening on",
                    std::io::ErrorKind::AddrInUse.into(),
                ));
            }
        }
        Ok(_) => {
            return Err(bad(
                "refusing to replace a non-socket at",
                std::io::ErrorKind::AlreadyExists.into(),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bad("cannot stat", e)),
    }
    Ok(())
}

/// Binds the socket with the configured permissions, atomically: the
/// socket is made in a fresh private (0700) directory next to the
/// configured path, with its mode set before `bind` creates the file
/// (fchmod of the socket; the umask can only narrow it) and set exactly
/// (chmod) before it is renamed into place. There is no moment at which
/// the path exists with a mode wider than configured, and none at which
/// anyone but root can reach the socket before it has its final mode.
///
/// A socket already at the path is replaced when no server answers on it;
/// a live one fails the start, and so does anything that is not a socket.
pub fn listen(cfg: &Config) -> Result<UnixListener, ServerError> {
    use nix::sys::socket::{bind, listen as listen_on, socket, AddressFamily, Backlog};
    use nix::sys::socket::{SockFlag, SockType, UnixAddr};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::DirBuilderExt;
    let p = &cfg.unix_domain_path;
    let bad = |what: &'static str, err: std::io::Error| ServerError::Io {
        what,
        path: p.clone(),
        err,
    };
    let name = p
        .file_name()
        .ok_or_else(|| bad("no file name in", std::io::ErrorKind::InvalidInput.into()))?;
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    refuse_live_socket(p)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&parent)
        .map_err(io_err("cannot create", &parent))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}", container::generate_id()));
    let tmp = parent.join(tmp_name);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&tmp)
        .map_err(io_err("cannot create", &tmp))?;
    let inner = tmp.join("s");
    let r = (|| {
        // The directory is ours and private even under a loose umask.
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("cannot chmod", &tmp))?;
        let dir = std::fs::File::open(&tmp).map_err(io_err("cannot open", &tmp))?;
        let fd = socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| bad("cannot create a socket for", e.into()))?;
        let mode = nix::sys::stat::Mode::from_bits_truncate(cfg.unix_domain_permissions & 0o777);
        nix::sys::stat::fchmod(fd.as_raw_fd(), mode)
            .map_err(|e| bad("cannot set the mode of the socket for", e.into()))?;
        // Through the directory's fd: a short path whatever the parent's
        // length (the final path must still fit a sockaddr_un to be used).
        let at = UnixAddr::new(format!("/proc/self/fd/{}/s", dir.as_raw_fd()).as_str())
            .map_err(|e| bad("cannot listen on", e.into()))?;
        bind(fd.as_raw_fd(), &at).map_err(|e| bad("cannot listen on", e.into()))?;
        std::fs::set_permissions(
            &inner,
            std::fs::Permissions::from_mode(cfg.unix_domain_permissions),
        )
        .map_err(io_err("cannot chmod", &inner))?;
        listen_on(&fd, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))
            .map_err(|e| bad("cannot listen on", e.into()))?;
        std::fs::rename(&inner, p).map_err(|e| bad("cannot move the socket to", e))?;
        Ok(UnixListener::from(fd))
    })();
    let _ = std::fs::remove_file(&inner);
    let _ = std::fs::remove_dir(&tmp);
    r
}

/// `pid N uid N` of a connected client (SO_PEERCRED), for the log.
pub(crate) fn peer(s: &UnixStream) -> String {
    match nix::sys::socket::getsockopt(s, nix::sys::socket::sockopt::PeerCredentials) {
        Ok(c) => format!("pid {} uid {}", c.pid(), c.uid()),
        Err(_) => "(unknown peer)".into(),
    }
}

/// Accepts clients until drain; each client gets its own thread, at most
/// `server.max_connections` at once. One more is answered with an error
/// and closed at once; that is logged as one warning line, at most one a
/// second (with the number refused since the last line).
pub fn accept_loop(srv: &Arc<Server>, l: UnixListener) {
    let slots = conn::Slots::new(srv.cfg.max_connections);
    let mut last_warning: Option<Instant> = None;
    let mut refused = 0u64;
    for s in l.incoming() {
        if srv.draining() {
            break;
        }
        match s {
            Ok(mut s) => {
                let Some(slot) = slots.take() else {
                    refused += 1;
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        log::warn!(
                            "refused a connection from {}: {} connections open (server.max_connections); {refused} refused since the last warning",
                            peer(&s),
                            slots.max()
                        );
                        last_warning = Some(Instant::now());
                        refused = 0;
                    }
                    // Never blocks the accept loop: a fresh socket's send
                    // buffer holds this small frame.
                    let _ = s.set_nonblocking(true);
                    let _ = send_error(
                        &mut s,
                        &format!(
                            "too many connections: the server serves at most {} at once (server.max_connections)",
                            slots.max()
                        ),
                    );
                    continue;
                };
                let srv = srv.clone();
                spawn_thread("conn", move || {
                    let _slot = slot;
                    srv.serve(s)
                });
            }
            Err(e) => {
                log::warn!("accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

pub use ServerError as Error;

/// Removes a cgroup directory tree, killing what runs in it (for the
/// end-to-end tests; crate::host::cgroup::remove_tree).
pub fn remove_cgroup_tree(dir: &Path) -> bool {
    crate::host::cgroup::remove_tree(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_sets_the_mode_atomically_and_replaces_only_stale_sockets() {
        use std::os::unix::fs::FileTypeExt;
        let dir = std::env::temp_dir().join(format!("warden-listen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sock = dir.join("sub/w.sock");
        let mut cfg = Config {
            unix_domain_path: sock.clone(),
            unix_domain_permissions: 0o660,
            ..Config::default()
        };
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        let l = listen(&cfg).unwrap();
        assert_eq!(mode(&sock), 0o660);
        // Nothing is left of the private directory.
        let names: Vec<_> = std::fs::read_dir(dir.join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["w.sock"]);
        // It serves at its final path.
        UnixStream::connect(&sock).unwrap();
        // A live server is not replaced.
        let e = listen(&cfg).unwrap_err().to_string();
        assert!(e.starts_with("another server is listening on"), "{e}");
        // A stale one is, with the new mode.
        drop(l);
        cfg.unix_domain_permissions = 0o600;
        let _l = listen(&cfg).unwrap();
        assert_eq!(mode(&sock), 0o600);
        assert!(std::fs::symlink_metadata(&sock)
            .unwrap()
            .file_type()
            .is_socket());
        // Anything else at the path is left alone.
        let f = dir.join("file");
        std::fs::write(&f, "x").unwrap();
        cfg.unix_domain_path = f.clone();
        let e = listen(&cfg).unwrap_err().to_string();
        assert!(e.starts_with("refusing to replace a non-socket at"), "{e}");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "x");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn job_ids_persist_in_blocks() {
        let dir = std::env::temp_dir().join(format!("warden-jobids-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = Config {
            container_depot_path: dir.clone(),
            ..Config::default()
        };
        let s = Server::new(cfg.clone()).unwrap();
        assert_eq!(s.next_job_id().unwrap(), 1);
        assert_eq!(s.next_job_id().unwrap(), 2);
        drop(s);
        let s = Server::new(cfg).unwrap();
        assert!(s.next_job_id().unwrap() > 2);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
