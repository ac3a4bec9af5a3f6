//! Container lifecycle: create, stop, destroy, and the state machine
//! (`born` -> `active` -> `stopped` -> `destroyed`, as warden's
//! check_state_in enforces it), the grace timer and the wshd watch.
//!
//! Create runs create.sh then the container's start.sh; stop runs its
//! stop.sh; destroy runs destroy.sh (which kills everything in the
//! container's cgroups and removes its host resources). The environment
//! given to the scripts is documented in rootfs-scripts/README.md.

use crate::container::{self, Container, Resources, State};
use crate::error::{required, RequestError};
use crate::job::Job;
use crate::proto;
use crate::server::{lock, spawn_thread, Server};
use crate::sh;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, RequestError>;

impl Server {
    pub(crate) fn create(
        &self,
        req: proto::CreateRequest,
        refs: &mut Vec<Arc<Container>>,
    ) -> Result<Arc<Container>> {
        if let Some(h) = &req.handle {
            if !container::handle_is_safe(h) {
                return Err(RequestError::InvalidHandle(h.clone()));
            }
        }
        let id = container::generate_id();
        let handle = req.handle.clone().unwrap_or_else(|| id.clone());
        {
            let reg = lock(&self.registry);
            let mut pend = lock(&self.pending);
            if reg.contains_key(&handle) || pend.contains(&handle) {
                return Err(RequestError::HandleTaken(handle));
            }
            pend.insert(handle.clone());
        }
        let r = self.create_reserved(&id, &handle, &req, refs);
        lock(&self.pending).remove(&handle);
        r
    }

    fn acquire_network(&self, want: Option<&str>) -> Result<u32> {
        let net = self.cfg.pool_network;
        let Some(a) = want else {
            return lock(&self.net_pool)
                .acquire()
                .ok_or(RequestError::NoNetwork);
        };
        let addr: std::net::Ipv4Addr = a
            .split('/')
            .next()
            .unwrap_or("")
            .parse()
            .map_err(|_| RequestError::NetworkTaken(a.into()))?;
        let base = u32::from(addr) & !3;
        let human = std::net::Ipv4Addr::from(base).to_string();
        let in_pool = base & crate::config::Ipv4Net::mask_of(net.prefix) == net.addr;
        if in_pool && lock(&self.net_pool).take((base - net.addr) / 4) {
            Ok((base - net.addr) / 4)
        } else {
            Err(RequestError::NetworkTaken(human))
        }
    }

    fn create_reserved(
        &self,
        id: &str,
        handle: &str,
        req: &proto::CreateRequest,
        refs: &mut Vec<Arc<Container>>,
    ) -> Result<Arc<Container>> {
        let network_index = self.acquire_network(req.network.as_deref())?;
        let Some(uid) = lock(&self.uid_pool).acquire() else {
            lock(&self.net_pool).release(network_index);
            return Err(RequestError::NoUid);
        };
        let res = Resources {
            network_index,
            uid,
            ports: vec![],
            net_in: vec![],
            net_out: vec![],
        };
        let path = self.cfg.container_depot_path.join(id);
        let grace = req
            .grace_time
            .map(u64::from)
            .or(self.cfg.container_grace_time);
        let c = Arc::new(Container::new(
            id.into(),
            handle.into(),
            path.clone(),
            self.cfg.pool_network.addr,
            res.clone(),
            grace,
        ));
        if let Err(e) = self.create_steps(&c, req) {
            log::warn!("{handle:?}: create failed: {e}");
            if path.exists() {
                self.destroy_dir(&path);
            }
            self.release_resources(&res);
            return Err(e);
        }
        c.lock().state = State::Active;
        if let Err(e) = c.write_snapshot() {
            log::warn!("{handle:?}: cannot write snapshot: {e}");
        }
        // Referenced by this connection before anyone (the grace reaper)
        // can look it up.
        self.reference(refs, &c);
        lock(&self.registry).insert(handle.into(), c.clone());
        log::info!("{handle:?}: created ({})", path.display());
        Ok(c)
    }

    fn create_steps(&self, c: &Container, req: &proto::CreateRequest) -> Result<()> {
        let rootfs = match &req.rootfs {
            Some(r) => r.clone(),
            None => self.cfg.container_rootfs_path.display().to_string(),
        };
        if !Path::new(&rootfs).is_dir() {
            return Err(RequestError::NoRootfs(rootfs));
        }
        let binds = bind_mounts(&req.bind_mounts)?;
        let res = c.lock().res.clone();
        let env = self.container_env(&c.id, &res, &rootfs, binds.trim_end());
        let p = c.path.display().to_string();
        sh::run("create.sh", &self.script("create.sh"), &[&p], env.clone())?;
        sh::run("start.sh", &c.path.join("start.sh"), &[], env)?;
        crate::limits::apply_defaults(&self.cfg, c)?;
        Ok(())
    }

    /// The variables of create.sh and start.sh (rootfs-scripts/README.md).
    fn container_env(
        &self,
        id: &str,
        res: &Resources,
        rootfs: &str,
        bind_mounts: &str,
    ) -> Vec<(String, String)> {
        let c = &self.cfg;
        let net = c.pool_network.addr + res.network_index * 4;
        let ip = |o: u32| std::net::Ipv4Addr::from(net + o).to_string();
        let caps = match &c.container_root_capabilities {
            None => String::new(),
            Some(v) if v.is_empty() => "none".into(),
            Some(v) => v.join(","),
        };
        let l = &self.layout;
        [
            ("id", id.into()),
            ("prefix", l.prefix().into()),
            ("network_index", res.network_index.to_string()),
            ("network_host_ip", ip(1)),
            ("network_container_ip", ip(2)),
            ("network_netmask", "255.255.255.252".into()),
            ("network_host_iface", l.host_iface(res.network_index)),
            (
                "network_container_iface",
                l.container_iface(res.network_index),
            ),
            ("container_iface_mtu", c.mtu.to_string()),
            ("user_uid", res.uid.to_string()),
            ("rootfs_path", rootfs.into()),
            ("allow_nested_warden", c.allow_nested_warden.to_string()),
            ("root_capabilities", caps),
            ("dns_servers", c.dns_servers.join(" ")),
            ("bin_dir", c.bin_path.display().to_string()),
            ("bind_mounts", bind_mounts.into()),
            ("disk_image_size", crate::limits::disk::image_size(c)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    // ---------------------------------------------------------- stop/destroy

    pub(crate) fn stop(&self, c: &Container, kill: bool) -> Result<()> {
        let _op = match c.op.try_lock() {
            Ok(g) => g,
            // Never behind another request's op lock: with kill, the
            // container's processes (wshd spared) go first, which ends
            // whatever holds it.
            Err(_) if kill => {
                c.check_state(&[State::Active, State::Stopped])?;
                kill_processes(c, c.wshd_pid());
                c.op()
            }
            Err(_) => c.op(),
        };
        c.check_state(&[State::Active, State::Stopped])?;
        if c.state() == State::Stopped {
            return Ok(());
        }
        c.lock().state = State::Stopped;
        crate::oom_watch::disarm(c);
        let args: &[&str] = if kill { &["-w", "0"] } else { &[] };
        let r = sh::run("stop.sh", &c.path.join("stop.sh"), args, sh::NO_ENV)
            .map(|_| ())
            .map_err(RequestError::from);
        // Postcondition of stop: every job has terminated. A job whose
        // process wshd started only after stop.sh looked is killed here.
        let jobs: Vec<Arc<Job>> = c.lock().jobs.values().cloned().collect();
        let end = Instant::now() + Duration::from_secs(15);
        while Instant::now() < end {
            let running = jobs.iter().find(|j| {
                let s = j.lock();
                s.status.is_none() && !s.detached
            });
            let Some(j) = running else { break };
            let s = j.lock();
            if s.status.is_none() && !s.detached {
                let (s, t) =
                    j.cv.wait_timeout(s, Duration::from_millis(500))
                        .unwrap_or_else(|e| e.into_inner());
                if t.timed_out() && s.status.is_none() && !s.detached {
                    drop(s);
                    kill_processes(c, c.wshd_pid());
                }
            }
        }
        if let Err(e) = c.write_snapshot() {
            log::warn!("{:?}: snapshot: {e}", c.handle);
        }
        r
    }

    pub fn destroy(&self, c: &Container) -> Result<()> {
        if c.state() == State::Destroyed {
            return Err(RequestError::UnknownHandle);
        }
        // Never behind another request's op lock: every process of the
        // container goes first (a copy or a spawn holding the lock, or stuck
        // on the container, then ends), and a copy's watch sees the flag.
        c.destroying.store(true, Ordering::SeqCst);
        // A server killed from here on has its successor finish the destroy
        // (marked before the kill: a container whose processes are gone but
        // whose destroy is not recorded would come back "stopped").
        crate::orphans::begin_destroy(&c.path);
        kill_processes(c, None);
        let _op = c.op();
        if c.state() == State::Destroyed {
            return Err(RequestError::UnknownHandle);
        }
        crate::oom_watch::disarm(c);
        // No `stop.sh -w 0` first (warden ran one): destroy.sh SIGKILLs
        // every process in the container's cgroups itself, wshd included,
        // and waits until they are empty, so a stop would only cost time.
        c.lock().state = State::Stopped;
        let p = c.path.display().to_string();
        if let Err(e) = sh::run("destroy.sh", &self.script("destroy.sh"), &[&p], sh::NO_ENV) {
            c.destroying.store(false, Ordering::SeqCst);
            crate::orphans::abandon_destroy(&c.path);
            c.lock().events.push(format!("destroy failed: {e}"));
            let _ = c.write_snapshot();
            return Err(e.into());
        }
        let (res, jobs) = {
            let mut g = c.lock();
            g.state = State::Destroyed;
            (g.res.clone(), g.jobs.values().cloned().collect::<Vec<_>>())
        };
        crate::jobs::end_after_destroy(&jobs);
        lock(&self.registry).remove(&c.handle);
        self.release_resources(&res);
        log::info!("{:?}: destroyed", c.handle);
        Ok(())
    }

    /// stop.sh -w 0 (when there is one) and destroy.sh on a container
    /// directory the registry does not hold (a failed create, a directory
    /// found at start-up).
    pub(crate) fn destroy_dir(&self, path: &Path) {
        // Jobs a killed server spawned run outside the container's cgroups.
        crate::orphans::end_untracked_jobs(path, &[]);
        if path.join("stop.sh").is_file() {
            let _ = sh::run("stop.sh", &path.join("stop.sh"), &["-w", "0"], sh::NO_ENV);
        }
        let p = path.display().to_string();
        if let Err(e) = sh::run("destroy.sh", &self.script("destroy.sh"), &[&p], sh::NO_ENV) {
            log::error!("{}: {e}", path.display());
        }
    }

    /// F1: a container whose wshd died is stopped, with an event saying so.
    pub(crate) fn check_wshd(&self, c: &Container) {
        if c.state() != State::Active || c.wshd_alive() {
            return;
        }
        let Ok(_op) = c.op.try_lock() else { return };
        if c.state() != State::Active || c.wshd_alive() {
            return;
        }
        log::warn!("{:?}: wshd is gone; container stopped", c.handle);
        {
            let mut g = c.lock();
            g.state = State::Stopped;
            g.events.push("wshd exited: container stopped".into());
        }
        let _ = sh::run("stop.sh", &c.path.join("stop.sh"), &["-w", "0"], sh::NO_ENV);
        let _ = c.write_snapshot();
    }

    // ------------------------------------------------------------ grace time

    /// Grace timer and wshd watch, every 100 ms. Started once the socket
    /// listens: the grace clocks of re-adopted containers start then (a
    /// client cannot reference anything earlier), and fire no sooner than
    /// [`crate::server::RECONNECT_WINDOW`] unless a client references the
    /// container.
    pub fn reaper(self: &Arc<Self>) {
        let start = Instant::now();
        for c in self.containers() {
            let mut g = lock(&c.grace);
            if g.conns == 0 && g.idle_since.is_some() {
                g.idle_since = Some(start);
            }
        }
        let mut tick = 0u64;
        while !self.draining() {
            std::thread::sleep(Duration::from_millis(100));
            tick = if tick >= 10 { 1 } else { tick + 1 };
            let now = Instant::now();
            for c in self.containers() {
                if tick == 10 {
                    self.check_wshd(&c);
                }
                if grace_expired(&c, now) && !self.draining() {
                    let srv = self.clone();
                    spawn_thread("grace", move || {
                        log::info!("{:?}: grace time expired, destroying", c.handle);
                        if let Err(e) = srv.destroy(&c) {
                            log::warn!("{:?}: grace destroy: {e}", c.handle);
                        }
                    });
                }
            }
        }
    }
}

/// SIGKILLs every process in the container's cgroups but `spare`.
fn kill_processes(c: &Container, spare: Option<i32>) {
    // Every hierarchy lists the same processes.
    if let Some((_, dir)) = c.cgroups().first() {
        let n = crate::host::cgroup::kill_tree(dir, spare);
        log::debug!("{:?}: killed {n} processes", c.handle);
    }
}

/// Whether `c`'s grace timer fires at `now` (it fires once per idle spell).
fn grace_expired(c: &Container, now: Instant) -> bool {
    let Some(g) = c.lock().grace_time else {
        return false;
    };
    let mut gr = lock(&c.grace);
    let wait = Duration::from_secs(g).max(gr.floor);
    match gr.idle_since {
        Some(t) if gr.conns == 0 && now.duration_since(t) >= wait => {
            gr.idle_since = None;
            true
        }
        _ => false,
    }
}

/// The `bind_mounts` variable of create.sh: `MODE\tSRC\tDST` lines.
fn bind_mounts(mounts: &[proto::BindMount]) -> Result<String> {
    let mut binds = String::new();
    for (i, b) in mounts.iter().enumerate() {
        let src = required(&b.src_path, "BindMount", "src_path")?;
        let dst = required(&b.dst_path, "BindMount", "dst_path")?;
        let mode = match b.mode {
            Some(0) => "ro",
            Some(1) => "rw",
            None => return Err(RequestError::BindModeRequired),
            Some(m) => return Err(RequestError::BindMode(i, m)),
        };
        if std::fs::metadata(src).is_err() {
            return Err(RequestError::NoBindSource(src.clone()));
        }
        if !dst.starts_with('/')
            || dst.split('/').any(|p| p == "..")
            || dst.contains(['\t', '\n'])
            || src.contains(['\t', '\n'])
        {
            return Err(RequestError::BindDestination(dst.clone()));
        }
        binds.push_str(&format!("{mode}\t{src}\t{dst}\n"));
    }
    Ok(binds)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bm(src: &str, dst: &str, mode: Option<i32>) -> proto::BindMount {
        proto::BindMount {
            src_path: Some(src.into()),
            dst_path: Some(dst.into()),
            mode,
        }
    }

    #[test]
    fn bind_mount_lines_and_refusals() {
        let ok = bind_mounts(&[bm("/", "/mnt/a", Some(0)), bm("/tmp", "/b", Some(1))]);
        assert_eq!(ok.unwrap(), "ro\t/\t/mnt/a\nrw\t/tmp\t/b\n");
        let e = |m: &[proto::BindMount]| bind_mounts(m).unwrap_err().to_string();
        assert_eq!(e(&[bm("/", "/a", None)]), "BindMount.mode is required");
        assert_eq!(
            e(&[bm("/", "/a", Some(5))]),
            "bind_mounts[0]: unknown mode 5"
        );
        assert_eq!(
            e(&[bm("/nonexistent-src", "/a", Some(0))]),
            "Source path for bind mount does not exist: /nonexistent-src"
        );
        for dst in ["rel", "/a/../b", "/a\tb"] {
            assert_eq!(
                e(&[bm("/", dst, Some(0))]),
                format!("invalid bind mount destination: {dst}")
            );
        }
    }

    #[test]
    fn grace_fires_once_per_idle_spell() {
        let c = Container::new(
            "id".into(),
            "h".into(),
            "/nonexistent".into(),
            0x0afe0000,
            Resources::default(),
            Some(0),
        );
        let now = Instant::now();
        lock(&c.grace).idle_since = Some(now);
        assert!(grace_expired(&c, now));
        assert!(!grace_expired(&c, now));
        // A connection holding it: no timer.
        {
            let mut g = lock(&c.grace);
            g.idle_since = Some(now);
            g.conns = 1;
        }
        assert!(!grace_expired(&c, now));
    }
}
