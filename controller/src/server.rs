//! The warden server: unix socket listener, one thread per connection,
//! request dispatch with warden's semantics and error strings, container
//! lifecycle through the rootfs-scripts, jobs, grace timer, drain and
//! restore.
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
use crate::conn::{self, RequestReader};
use crate::container::{self, Container, Resources, State};
use crate::copy;
use crate::job::Job;
use crate::pool::Pool;
use crate::proto::{self, required, FrameError, Type};
use crate::sh;
use prost::Message as _;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

const STACK: usize = 256 * 1024;

/// After a restart, clients get this long to reconnect and reference a
/// re-adopted container before its grace timer may destroy it, even with a
/// shorter grace time (warden's slow destroy gave them about as long;
/// spec: "grace time should cancel the timer when client reconnects").
pub const RECONNECT_WINDOW: Duration = Duration::from_secs(2);

/// Internal marker: a request broken by drain (never sent to a client).
const DRAINING: &str = "\0draining";

fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) {
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

/// Why a request failed: sent to the client as ErrorResponse.message.
type Reply = Result<(Type, Vec<u8>), String>;

fn ok<M: prost::Message>(t: Type, m: M) -> Reply {
    Ok((t, m.encode_to_vec()))
}

pub struct Server {
    pub cfg: Config,
    registry: Mutex<HashMap<String, Arc<Container>>>,
    pending: Mutex<HashSet<String>>,
    net_pool: Mutex<Pool>,
    uid_pool: Mutex<Pool>,
    port_pool: Mutex<Pool>,
    job_ids: Mutex<JobIds>,
    draining: AtomicBool,
    busy: Mutex<usize>,
    idle: Condvar,
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
            cfg,
            registry: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashSet::new()),
            draining: AtomicBool::new(false),
            busy: Mutex::new(0),
            idle: Condvar::new(),
        }))
    }

    fn next_job_id(&self) -> Result<u32, String> {
        let mut j = lock(&self.job_ids);
        j.next += 1;
        if j.next >= j.ceiling {
            let ceiling = j.next + 1000;
            let tmp = j.path.with_extension("tmp");
            std::fs::write(&tmp, format!("{ceiling}\n"))
                .and_then(|_| std::fs::rename(&tmp, &j.path))
                .map_err(|e| format!("cannot persist job ids in {}: {e}", j.path.display()))?;
            j.ceiling = ceiling;
        }
        Ok(j.next)
    }

    fn note_job_id(&self, id: u32) {
        let mut j = lock(&self.job_ids);
        if id > j.next {
            j.next = id;
        }
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    fn prefix(&self) -> &str {
        &self.cfg.resource_prefix
    }

    fn script(&self, name: &str) -> PathBuf {
        self.cfg.scripts_path.join(name)
    }

    /// Runs setup.sh (server start).
    pub fn setup(&self) -> Result<(), ServerError> {
        let c = &self.cfg;
        crate::orphans::take_over(&c.container_depot_path); // i10-faults: end a dead server's steps
        sh::run(
            "setup.sh",
            &self.script("setup.sh"),
            &[],
            [
                ("prefix", c.resource_prefix.clone()),
                ("pool_network", c.pool_network.to_string()),
                ("allow_host_access", c.allow_host_access.to_string()),
                ("allow_networks", c.allow_networks.join(" ")),
                ("depot_path", c.container_depot_path.display().to_string()),
            ],
        )?;
        Ok(())
    }

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
        let p = self.prefix();
        vec![
            ("id".into(), id.into()),
            ("prefix".into(), p.into()),
            ("network_index".into(), res.network_index.to_string()),
            ("network_host_ip".into(), ip(1)),
            ("network_container_ip".into(), ip(2)),
            ("network_netmask".into(), "255.255.255.252".into()),
            (
                "network_host_iface".into(),
                format!("{p}-{}-0", res.network_index),
            ),
            (
                "network_container_iface".into(),
                format!("{p}-{}-1", res.network_index),
            ),
            ("container_iface_mtu".into(), c.mtu.to_string()),
            ("user_uid".into(), res.uid.to_string()),
            ("rootfs_path".into(), rootfs.into()),
            (
                "allow_nested_warden".into(),
                c.allow_nested_warden.to_string(),
            ),
            (
                "root_capabilities".into(),
                match &c.container_root_capabilities {
                    None => String::new(),
                    Some(v) if v.is_empty() => "none".into(),
                    Some(v) => v.join(","),
                },
            ),
            ("dns_servers".into(), c.dns_servers.join(" ")),
            ("bin_dir".into(), c.bin_path.display().to_string()),
            ("bind_mounts".into(), bind_mounts.into()),
        ]
    }

    fn release_resources(&self, res: &Resources) {
        lock(&self.net_pool).release(res.network_index);
        lock(&self.uid_pool).release(res.uid);
        let mut pp = lock(&self.port_pool);
        for p in &res.ports {
            pp.release(*p);
        }
    }

    fn lookup(&self, handle: &str) -> Result<Arc<Container>, String> {
        lock(&self.registry)
            .get(handle)
            .cloned()
            .ok_or_else(|| "unknown handle".to_string())
    }

    pub fn handles(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.registry).keys().cloned().collect();
        v.sort();
        v
    }

    pub fn containers(&self) -> Vec<Arc<Container>> {
        lock(&self.registry).values().cloned().collect()
    }

    // ---------------------------------------------------------------- create

    fn create(
        &self,
        req: proto::CreateRequest,
        refs: &mut Vec<Arc<Container>>,
    ) -> Result<Arc<Container>, String> {
        if let Some(h) = &req.handle {
            if !container::handle_is_safe(h) {
                return Err(format!("invalid handle: {h:?}"));
            }
        }
        let id = container::generate_id();
        let handle = req.handle.clone().unwrap_or_else(|| id.clone());
        {
            let reg = lock(&self.registry);
            let mut pend = lock(&self.pending);
            if reg.contains_key(&handle) || pend.contains(&handle) {
                return Err(format!("container with handle: {handle} already exists."));
            }
            pend.insert(handle.clone());
        }
        let r = self.create_reserved(&id, &handle, &req, refs);
        lock(&self.pending).remove(&handle);
        r
    }

    fn acquire_network(&self, want: Option<&str>) -> Result<u32, String> {
        let net = self.cfg.pool_network;
        match want {
            Some(a) => {
                let addr: std::net::Ipv4Addr = a
                    .split('/')
                    .next()
                    .unwrap_or("")
                    .parse()
                    .map_err(|_| format!("Could not acquire network: {a}"))?;
                let base = u32::from(addr) & !3;
                let human = std::net::Ipv4Addr::from(base).to_string();
                let in_pool = base & Ipv4NetMask::of(net.prefix) == net.addr;
                if !in_pool {
                    return Err(format!("Could not acquire network: {human}"));
                }
                let idx = (base - net.addr) / 4;
                if lock(&self.net_pool).take(idx) {
                    Ok(idx)
                } else {
                    Err(format!("Could not acquire network: {human}"))
                }
            }
            None => lock(&self.net_pool)
                .acquire()
                .ok_or_else(|| "Could not acquire network".to_string()),
        }
    }

    fn create_reserved(
        &self,
        id: &str,
        handle: &str,
        req: &proto::CreateRequest,
        refs: &mut Vec<Arc<Container>>,
    ) -> Result<Arc<Container>, String> {
        let network_index = self.acquire_network(req.network.as_deref())?;
        let uid = lock(&self.uid_pool).acquire();
        let uid = match uid {
            Some(u) => u,
            None => {
                lock(&self.net_pool).release(network_index);
                return Err("Could not acquire UID".into());
            }
        };
        let res = Resources {
            network_index,
            uid,
            ports: vec![],
            net_in: vec![],
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
        let r = self.create_steps(&c, req);
        match r {
            Ok(()) => {
                c.lock().state = State::Active;
                if let Err(e) = c.write_snapshot() {
                    log::warn!("{handle:?}: cannot write snapshot: {e}");
                }
                // Referenced by this connection before anyone (the grace
                // reaper) can look it up.
                self.reference(refs, &c);
                lock(&self.registry).insert(handle.into(), c.clone());
                log::info!("{handle:?}: created ({})", path.display());
                Ok(c)
            }
            Err(e) => {
                log::warn!("{handle:?}: create failed: {e}");
                if path.exists() {
                    if path.join("stop.sh").is_file() {
                        let _ = sh::run("stop.sh", &path.join("stop.sh"), &["-w", "0"], env0());
                    }
                    let p = path.display().to_string();
                    if let Err(e2) =
                        sh::run("destroy.sh", &self.script("destroy.sh"), &[&p], env0())
                    {
                        log::error!("{handle:?}: cleanup after failed create: {e2}");
                    }
                }
                self.release_resources(&res);
                Err(e)
            }
        }
    }

    fn create_steps(&self, c: &Container, req: &proto::CreateRequest) -> Result<(), String> {
        let rootfs = match &req.rootfs {
            Some(r) => {
                if !Path::new(r).is_dir() {
                    return Err(format!("rootfs {r} not found"));
                }
                r.clone()
            }
            None => {
                let r = &self.cfg.container_rootfs_path;
                if !r.is_dir() {
                    return Err(format!("rootfs {} not found", r.display()));
                }
                r.display().to_string()
            }
        };
        let mut binds = String::new();
        for (i, b) in req.bind_mounts.iter().enumerate() {
            let src = required(&b.src_path, "BindMount", "src_path")?;
            let dst = required(&b.dst_path, "BindMount", "dst_path")?;
            let mode = match b.mode {
                Some(0) => "ro",
                Some(1) => "rw",
                None => return Err("BindMount.mode is required".into()),
                Some(m) => return Err(format!("bind_mounts[{i}]: unknown mode {m}")),
            };
            if std::fs::metadata(src).is_err() {
                return Err(format!("Source path for bind mount does not exist: {src}"));
            }
            if !dst.starts_with('/')
                || dst.split('/').any(|p| p == "..")
                || dst.contains(['\t', '\n'])
                || src.contains(['\t', '\n'])
            {
                return Err(format!("invalid bind mount destination: {dst}"));
            }
            binds.push_str(&format!("{mode}\t{src}\t{dst}\n"));
        }
        let res = c.lock().res.clone();
        let env = self.container_env(&c.id, &res, &rootfs, binds.trim_end());
        let p = c.path.display().to_string();
        sh::run("create.sh", &self.script("create.sh"), &[&p], env.clone())
            .map_err(|e| e.to_string())?;
        sh::run("start.sh", &c.path.join("start.sh"), &[], env).map_err(|e| e.to_string())?;
        Ok(())
    }

    // ---------------------------------------------------------- stop/destroy

    fn stop(&self, c: &Container, kill: bool) -> Result<(), String> {
        let _op = c.op();
        self.stop_locked(c, kill)
    }

    fn stop_locked(&self, c: &Container, kill: bool) -> Result<(), String> {
        c.check_state(&[State::Active, State::Stopped])?;
        if c.state() == State::Stopped {
            return Ok(());
        }
        c.lock().state = State::Stopped;
        let args: &[&str] = if kill { &["-w", "0"] } else { &[] };
        let r = sh::run("stop.sh", &c.path.join("stop.sh"), args, env0())
            .map(|_| ())
            .map_err(|e| e.to_string());
        // Postcondition of stop: every job has terminated.
        let jobs: Vec<Arc<Job>> = c.lock().jobs.values().cloned().collect();
        let end = Instant::now() + Duration::from_secs(15);
        for j in jobs {
            let mut s = j.lock();
            while s.status.is_none() && !s.detached && Instant::now() < end {
                s =
                    j.cv.wait_timeout(s, Duration::from_millis(100))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
            }
        }
        if let Err(e) = c.write_snapshot() {
            log::warn!("{:?}: snapshot: {e}", c.handle);
        }
        r
    }

    pub fn destroy(&self, c: &Container) -> Result<(), String> {
        let _op = c.op();
        if c.state() == State::Destroyed {
            return Err("unknown handle".into());
        }
        // No `stop.sh -w 0` first (warden ran one): destroy.sh SIGKILLs
        // every process in the container's cgroups itself, wshd included,
        // and waits until they are empty, so a stop would only cost time.
        if c.state() != State::Stopped {
            c.lock().state = State::Stopped;
        }
        let p = c.path.display().to_string();
        crate::orphans::begin_destroy(&c.path); // i10-faults: a restart finishes it
        if let Err(e) = sh::run("destroy.sh", &self.script("destroy.sh"), &[&p], env0()) {
            crate::orphans::abandon_destroy(&c.path); // i10-faults
            let msg = e.to_string();
            c.lock().events.push(format!("destroy failed: {msg}"));
            let _ = c.write_snapshot();
            return Err(msg);
        }
        let (res, jobs) = {
            let mut g = c.lock();
            g.state = State::Destroyed;
            (g.res.clone(), g.jobs.values().cloned().collect::<Vec<_>>())
        };
        for j in &jobs {
            end_job_processes(j);
        }
        // Give the linkers a moment to report the jobs' end, then release
        // anybody still waiting.
        let end = Instant::now() + Duration::from_secs(2);
        for j in &jobs {
            while j.finished().is_none() && !j.lock().detached && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(10));
            }
            j.finish(137);
        }
        lock(&self.registry).remove(&c.handle);
        self.release_resources(&res);
        log::info!("{:?}: destroyed", c.handle);
        Ok(())
    }

    // ------------------------------------------------------------------ jobs

    fn rlimit_env(
        &self,
        req: Option<&proto::ResourceLimits>,
    ) -> Result<Vec<(String, String)>, String> {
        let mut m = self.cfg.container_rlimits.clone();
        if let Some(r) = req {
            for (k, v) in r.entries() {
                m.insert(k.to_string(), v);
            }
        }
        let mut env = Vec::new();
        for (k, v) in m {
            if let Some(hard) = hard_limit(&k) {
                if v > hard {
                    return Err(format!(
                        "rlimit {k}={v} exceeds the server's hard limit {hard}"
                    ));
                }
            }
            env.push((format!("RLIMIT_{}", k.to_uppercase()), v.to_string()));
        }
        Ok(env)
    }

    fn spawn_job(
        self: &Arc<Self>,
        c: &Arc<Container>,
        req: &proto::SpawnRequest,
    ) -> Result<Arc<Job>, String> {
        let _op = c.op();
        c.check_state(&[State::Active])?;
        let t0 = Instant::now();
        let script = required(&req.script, "SpawnRequest", "script")?;
        let env = self.rlimit_env(req.rlimits.as_ref())?;
        // Scripts run under /bin/bash: say so when the root filesystem has
        // none, rather than returning a job that failed with 127.
        if c.exists_in_root("bin/bash") == Some(false) {
            return Err(
                "the container's root filesystem has no /bin/bash: run and spawn need a shell (wsh can run other programs directly)"
                    .to_string(),
            );
        }

        let id = self.next_job_id()?;
        let dir = c.path.join("jobs").join(id.to_string());
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let user = if req.privileged.unwrap_or(false) {
            "root"
        } else {
            "vcap"
        };
        let bin = c.path.join("bin");
        let mut cmd = sh::command(bin.join("iomux-spawn"));
        cmd.arg(&dir)
            .arg(bin.join("wsh"))
            .arg("--socket")
            .arg(c.path.join("run/wshd.sock"))
            .arg("--user")
            .arg(user)
            .arg("/bin/bash")
            .env("LANG", job_lang(std::env::var("LANG").ok()))
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        let mut child = cmd.spawn().map_err(|e| {
            log::warn!("{:?}: iomux-spawn: {e}", c.handle);
            "iomux-spawn failed".to_string()
        })?;
        let spawn_pid = child.id() as i32;
        let mut stdin = child.stdin.take();
        let script = script.clone().into_bytes();
        // The child reads its script only once a linker attached: write it
        // from a helper thread so a big script cannot block this request.
        if script.len() <= 16 * 1024 {
            if let Some(mut s) = stdin.take() {
                let _ = s.write_all(&script);
            }
        } else if let Some(mut s) = stdin.take() {
            spawn_thread("script-writer", move || {
                let _ = s.write_all(&script);
            });
        }
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut job = Job::new(
            id,
            dir.clone(),
            req.discard_output.unwrap_or(false),
            req.log_tag.clone(),
            Some(spawn_pid),
            self.cfg.job_output_limit,
        );
        job.syslog = self.syslog_path(&job.log_tag);
        let job = Arc::new(job);
        let fail = |child: &mut std::process::Child| {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_dir_all(&dir);
            "iomux-spawn failed".to_string()
        };
        log::debug!(
            "{:?}: job {id}: iomux-spawn started ({} us)",
            c.handle,
            t0.elapsed().as_micros()
        );
        // 1. child_pid=N: iomux-spawn is ready for a linker.
        if !read_line_until(&mut out, "child_pid=") {
            return Err(fail(&mut child));
        }
        let linker = match job.start_link(&bin.join("iomux-link")) {
            Ok(l) => l,
            Err(e) => {
                log::warn!("{:?}: iomux-link: {e}", c.handle);
                return Err(fail(&mut child));
            }
        };
        log::debug!(
            "{:?}: job {id}: linker started ({} us)",
            c.handle,
            t0.elapsed().as_micros()
        );
        // 2. child active: the linker is attached and the child runs.
        if !read_line_until(&mut out, "child active") {
            let mut l = linker;
            let _ = l.kill();
            let _ = l.wait();
            return Err(fail(&mut child));
        }
        log::debug!(
            "{:?}: job {id}: child active ({} us)",
            c.handle,
            t0.elapsed().as_micros()
        );
        c.lock().jobs.insert(id, job.clone());
        if let Err(e) = c.write_snapshot() {
            log::warn!("{:?}: snapshot: {e}", c.handle);
        }
        let (srv, cont, j) = (self.clone(), c.clone(), job.clone());
        spawn_thread("job", move || {
            let recorded = j.collect(linker, || srv.draining());
            if recorded {
                let err = j.lock().err.clone();
                if let Some(e) = err {
                    let mut g = cont.lock();
                    if !g.events.contains(&e) {
                        g.events.push(e);
                    }
                }
                if cont.state() != State::Destroyed {
                    let _ = cont.write_snapshot();
                }
            }
            // Reap iomux-spawn (it ends with its child) and drop its stdout.
            if !srv.draining() {
                let _ = child.wait();
            }
            drop(out);
        });
        Ok(job)
    }

    /// Re-attaches a linker to a job found in a snapshot.
    fn relink(self: &Arc<Self>, c: &Arc<Container>, job: Arc<Job>) -> std::io::Result<()> {
        let linker = job.start_link(&c.path.join("bin/iomux-link"))?;
        let (srv, cont) = (self.clone(), c.clone());
        spawn_thread("job", move || {
            if job.collect(linker, || srv.draining()) && cont.state() != State::Destroyed {
                let err = job.lock().err.clone();
                if let Some(e) = err {
                    cont.lock().events.push(e);
                }
                let _ = cont.write_snapshot();
            }
        });
        Ok(())
    }

    /// Where a job with a log_tag sends its lines: server.syslog_socket,
    /// else /dev/log.
    fn syslog_path(&self, tag: &Option<String>) -> Option<PathBuf> {
        tag.as_ref()?;
        Some(
            self.cfg
                .syslog_socket
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/dev/log")),
        )
    }

    fn find_job(&self, c: &Container, id: u32) -> Result<Arc<Job>, String> {
        c.lock()
            .jobs
            .get(&id)
            .cloned()
            .ok_or_else(|| "no such job".to_string())
    }

    fn cleanup_job(&self, c: &Container, job: &Job) {
        // Lock order: container inner before job state; never both here.
        let err = job.lock().err.clone();
        if let Some(e) = err {
            let mut g = c.lock();
            if !g.events.contains(&e) {
                g.events.push(e);
            }
        }
        let removed = c.lock().jobs.remove(&job.id).is_some();
        if removed {
            // The output and status are delivered: iomux-spawn's linger for
            // late linkers is of no more use (and a removed DIR is not
            // always noticed while its sockets are bound).
            if let Some(p) = job.spawn_pid {
                if cmdline_matches(p, "iomux-spawn", &job.dir) {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(p),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                }
            }
            let _ = std::fs::remove_dir_all(&job.dir);
        }
    }

    fn link(&self, c: &Arc<Container>, job_id: u32) -> Reply {
        let job = self.find_job(c, job_id)?;
        let status = job.wait().ok_or_else(|| DRAINING.to_string())?;
        let (o, e) = job.output();
        self.cleanup_job(c, &job);
        ok(
            Type::Link,
            proto::LinkResponse {
                exit_status: Some(status),
                stdout: Some(o),
                stderr: Some(e),
                info: Some(c.info()),
            },
        )
    }

    fn stream<W: Write>(&self, c: &Arc<Container>, job_id: u32, w: &mut W) -> Result<(), String> {
        let job = self.find_job(c, job_id)?;
        let mut next = 0usize;
        loop {
            let (batch, status, detached) = {
                let mut s = job.lock();
                while s.chunks.len() == next && s.status.is_none() && !s.detached {
                    s = job.cv.wait(s).unwrap_or_else(|e| e.into_inner());
                }
                let batch: Vec<(crate::job::Stream, Vec<u8>)> = s.chunks[next..].to_vec();
                next = s.chunks.len();
                (batch, s.status, s.detached)
            };
            for (k, d) in batch {
                let m = proto::StreamResponse {
                    name: Some(k.name().into()),
                    data: Some(d),
                    ..Default::default()
                };
                if proto::write_message(w, Type::Stream, &m).is_err() {
                    return Ok(()); // client went away
                }
            }
            if let Some(st) = status {
                if next == job.lock().chunks.len() {
                    self.cleanup_job(c, &job);
                    let m = proto::StreamResponse {
                        exit_status: Some(st),
                        info: Some(c.info()),
                        ..Default::default()
                    };
                    let _ = proto::write_message(w, Type::Stream, &m);
                    return Ok(());
                }
            } else if detached {
                return Err(DRAINING.into());
            }
        }
    }

    // ---------------------------------------------------------------- net_in

    fn net_in(&self, c: &Container, req: &proto::NetInRequest) -> Reply {
        let _op = c.op();
        c.check_state(&[State::Active])?;
        let (host_port, pooled) = match req.host_port {
            Some(p) => (p, false),
            None => (
                lock(&self.port_pool)
                    .acquire()
                    .ok_or_else(|| "no port available".to_string())?,
                true,
            ),
        };
        let container_port = req.container_port.unwrap_or(host_port);
        if host_port == 0 || host_port > 65535 || container_port == 0 || container_port > 65535 {
            if pooled {
                lock(&self.port_pool).release(host_port);
            }
            return Err(format!("invalid port: {host_port}:{container_port}"));
        }
        let r = sh::run(
            "net.sh in",
            &c.path.join("net.sh"),
            &["in"],
            [
                ("HOST_PORT", host_port.to_string()),
                ("CONTAINER_PORT", container_port.to_string()),
            ],
        );
        if let Err(e) = r {
            if pooled {
                lock(&self.port_pool).release(host_port);
            }
            return Err(e.to_string());
        }
        {
            let mut g = c.lock();
            if pooled {
                g.res.ports.push(host_port);
            }
            g.res.net_in.push((host_port, container_port));
        }
        let _ = c.write_snapshot();
        ok(
            Type::NetIn,
            proto::NetInResponse {
                host_port: Some(host_port),
                container_port: Some(container_port),
            },
        )
    }

    // ------------------------------------------------------------- copy in/out

    /// `wsh` running `/bin/sh -c SCRIPT sh ARGS...` as vcap in the container,
    /// killed with its session if wsh goes away (a copy the server abandons
    /// does not keep running inside).
    fn wsh(&self, c: &Container, script: &str, args: &[&OsStr]) -> Command {
        let mut cmd = sh::command(c.path.join("bin/wsh"));
        cmd.arg("--socket")
            .arg(c.path.join("run/wshd.sock"))
            .arg("--user")
            .arg("vcap")
            .arg("--kill-on-disconnect")
            .arg("/bin/sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .args(args);
        cmd
    }

    /// copy_in: the host source is archived by [`copy::Source`] (nothing odd
    /// is opened, nothing below the source is followed) and extracted by the
    /// container's own `tar`, as vcap, inside the container.
    ///
    /// The container's op lock is held only for the state check: a copy the
    /// container stalls must not hold up stop or destroy (S22), which end it.
    fn copy_in(&self, c: &Container, src: &str, dst: &str) -> Result<(), String> {
        {
            let _op = c.op();
            c.check_state(&[State::Active])?;
        }
        let mut source =
            copy::Source::open(Path::new(src)).map_err(|e| format!("copy_in: {src}: {e}"))?;
        let member = OsStr::from_bytes(source.member()).to_os_string();
        // A directory, or a file into an existing directory: extract there.
        // A file onto a new name: extract next to it and rename.
        let script = if source.is_dir() {
            "mkdir -p -- \"$1\" && cd -- \"$1\" && tar -xf -"
        } else {
            "if [ -d \"$1\" ]; then cd -- \"$1\" && tar -xf -; else d=$(dirname -- \"$1\"); mkdir -p -- \"$d\" && t=$(mktemp -d \"$d/.copy_in.XXXXXX\") && (cd -- \"$t\" && tar -xf -) && mv -f -- \"$t/$2\" \"$1\"; r=$?; rm -rf -- \"$t\"; exit $r; fi"
        };
        let mut wsh = self
            .wsh(c, script, &[OsStr::new(dst), &member])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("copy_in: wsh: {e}"))?;
        let stdin = wsh.stdin.take().expect("piped");
        let stderr = wsh.stderr.take().expect("piped");
        let (written, err) = std::thread::scope(|s| {
            let h = s.spawn(move || read_capped(stderr, COPY_STDERR_MAX));
            let w = source.write_to(std::io::BufWriter::with_capacity(64 * 1024, stdin));
            if w.as_ref()
                .is_err_and(|e| e.kind() != std::io::ErrorKind::BrokenPipe)
            {
                let _ = wsh.kill();
            }
            let st = wait_or_kill(&mut wsh, COPY_EXIT_GRACE);
            (w.map(|_| st), h.join().unwrap_or_default())
        });
        let err = String::from_utf8_lossy(&err);
        match written {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                Err(format!("copy_in failed: {src}: {e}"))
            }
            Ok(Ok(st)) if st.success() => Ok(()),
            _ if !err.trim().is_empty() => Err(format!("copy_in failed: {}", err.trim())),
            Ok(Ok(st)) => Err(format!("copy_in failed: the container's tar: {st}")),
            Ok(Err(e)) => Err(format!("copy_in failed: wsh: {e}")),
            Err(_) => Err("copy_in failed: the container did not take the whole stream".into()),
        }
    }

    /// copy_out: the container's `tar` stream is checked and written by
    /// [`copy::Extraction`] (no host `tar`; see crate::tarstream for what is
    /// accepted); a failure of the stream or of the container removes what
    /// the copy made. `owner` is then applied with `chown -R`, as warden did.
    fn copy_out(
        &self,
        c: &Container,
        src: &str,
        dst: &str,
        owner: Option<&str>,
    ) -> Result<(), String> {
        {
            let _op = c.op();
            c.check_state(&[State::Active, State::Stopped])?;
        }
        // Container side prints "D" (directory) or "F" (other), then a tar.
        let script = "if [ -d \"$1\" ]; then printf D; else printf F; fi; \
            case \"$1\" in */) cd -- \"$1\" && exec tar -cf - . ;; \
            *) cd -- \"$(dirname -- \"$1\")\" && exec tar -cf - -- \"$(basename -- \"$1\")\" ;; esac";
        let mut wsh = self
            .wsh(c, script, &[OsStr::new(src)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("copy_out: wsh: {e}"))?;
        let mut so = wsh.stdout.take().expect("piped");
        let se = wsh.stderr.take().expect("piped");
        let limits = self.cfg.copy_limits;
        let (res, status, err) = std::thread::scope(|s| {
            let h = s.spawn(move || read_capped(se, COPY_STDERR_MAX));
            let res = (|| {
                let mut kind = [0u8; 1];
                so.read_exact(&mut kind)
                    .map_err(|_| "no output from the container".to_string())?;
                let dir = match kind[0] {
                    b'D' => true,
                    b'F' => false,
                    _ => return Err("the container's output is not a copy stream".to_string()),
                };
                let mut ex = copy::Extraction::begin(Path::new(dst), dir, limits)
                    .map_err(|e| format!("copy_out: {e}"))?;
                ex.extract(&mut so)?;
                Ok(ex)
            })();
            if res.is_err() {
                // Stop a container still writing (its session dies with wsh).
                let _ = wsh.kill();
            }
            drop(so);
            let st = wait_or_kill(&mut wsh, COPY_EXIT_GRACE);
            (res, st, h.join().unwrap_or_default())
        });
        let err = String::from_utf8_lossy(&err);
        let err = err.trim();
        let ok = status.as_ref().is_ok_and(|s| s.success());
        // Dropping an uncommitted extraction removes everything it made.
        match res {
            Err(e) if err.is_empty() => return Err(format!("copy_out failed: {e}")),
            Err(e) => return Err(format!("copy_out failed: {e} ({err})")),
            Ok(_) if !ok && !err.is_empty() => return Err(format!("copy_out failed: {err}")),
            Ok(_) if !ok => return Err("copy_out failed: the container's tar failed".into()),
            Ok(ex) => {
                let sum = ex.commit().map_err(|e| format!("copy_out failed: {e}"))?;
                log::debug!(
                    "{:?}: copy_out {src:?} -> {dst:?}: {} entries, {} bytes",
                    c.handle,
                    sum.entries,
                    sum.bytes
                );
                if sum.left_out > 0 {
                    log::warn!(
                        "{:?}: copy_out {src:?} -> {dst:?} left out {} entries: {}",
                        c.handle,
                        sum.left_out,
                        sum.left_out_names.join(", ")
                    );
                }
            }
        }
        if let Some(o) = owner {
            sh::run("chown", Path::new("chown"), &["-R", "--", o, dst], env0())
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    // ------------------------------------------------------------ connection

    fn reference(&self, refs: &mut Vec<Arc<Container>>, c: &Arc<Container>) {
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

    /// Serves one client until it disconnects.
    pub fn serve(self: &Arc<Self>, stream: UnixStream) {
        let Ok(rd) = stream.try_clone() else { return };
        let mut rd = RequestReader::new(rd, self.limits());
        let mut w = stream;
        let mut refs: Vec<Arc<Container>> = Vec::new();
        loop {
            if self.draining() {
                break;
            }
            let m = match rd.read() {
                Ok(p) => proto::Message::decode(p.as_slice()).map_err(FrameError::from),
                Err(e) => Err(e),
            };
            let m = match m {
                Ok(m) => m,
                Err(FrameError::Eof) => break,
                Err(FrameError::Decode(e)) => {
                    if send_error(&mut w, &format!("undecodable message: {e}")).is_err() {
                        break;
                    }
                    continue;
                }
                Err(FrameError::Io(_)) => break,
                Err(e) => {
                    // A bounded error reply: the client may not be reading.
                    log::warn!("client {}: {e}; closing the connection", peer(&w));
                    let _ = w.set_write_timeout(Some(Duration::from_secs(5)));
                    let _ = send_error(&mut w, &format!("protocol error: {e}"));
                    break;
                }
            };
            if self.draining() {
                break;
            }
            *lock(&self.busy) += 1;
            let r = self.handle(m, &mut w, &mut refs);
            *lock(&self.busy) -= 1;
            self.idle.notify_all();
            if r.is_err() {
                break;
            }
        }
        for c in refs {
            let mut g = lock(&c.grace);
            g.conns = g.conns.saturating_sub(1);
            if g.conns == 0 {
                g.idle_since = Some(Instant::now());
            }
        }
    }

    fn handle(
        self: &Arc<Self>,
        m: proto::Message,
        w: &mut UnixStream,
        refs: &mut Vec<Arc<Container>>,
    ) -> std::io::Result<()> {
        let raw = m.r#type.unwrap_or(0);
        let payload = m.payload.unwrap_or_default();
        let Ok(ty) = Type::try_from(raw) else {
            return send_error(w, &format!("Unknown request type: {raw}"));
        };
        if ty == Type::Stream {
            let req = match proto::StreamRequest::decode(payload.as_slice()) {
                Ok(r) => r,
                Err(e) => return send_error(w, &format!("undecodable StreamRequest: {e}")),
            };
            let r = (|| {
                let h = required(&req.handle, "StreamRequest", "handle")?;
                let id = *required(&req.job_id, "StreamRequest", "job_id")?;
                let c = self.lookup(h)?;
                self.reference(refs, &c);
                self.stream(&c, id, w)
            })();
            return match r {
                Ok(()) => Ok(()),
                Err(e) if e == DRAINING => Err(std::io::ErrorKind::Interrupted.into()),
                Err(e) => send_error(w, &e),
            };
        }
        let reply = self.dispatch(ty, &payload, refs);
        match reply {
            Ok((t, body)) => {
                let env = proto::Message {
                    r#type: Some(t as i32),
                    payload: Some(body),
                };
                proto::write_frame(w, &env.encode_to_vec())
            }
            // A link/run/stream broken by drain: the connection closes with
            // no response (warden's clients see EOF).
            Err(e) if e == DRAINING => Err(std::io::ErrorKind::Interrupted.into()),
            Err(e) => send_error(w, &e),
        }
    }

    fn container_for(
        &self,
        handle: &Option<String>,
        msg: &str,
        refs: &mut Vec<Arc<Container>>,
    ) -> Result<Arc<Container>, String> {
        let h = required(handle, msg, "handle")?;
        let c = self.lookup(h)?;
        self.reference(refs, &c);
        Ok(c)
    }

    fn dispatch(self: &Arc<Self>, ty: Type, p: &[u8], refs: &mut Vec<Arc<Container>>) -> Reply {
        fn dec<M: prost::Message + Default>(p: &[u8], name: &str) -> Result<M, String> {
            proto::decode_request(p).map_err(|e| format!("undecodable {name}: {e}"))
        }
        match ty {
            Type::Ping => ok(ty, proto::PingResponse {}),
            Type::List => ok(
                ty,
                proto::ListResponse {
                    handles: self.handles(),
                },
            ),
            Type::Echo => {
                let r: proto::EchoRequest = dec(p, "EchoRequest")?;
                let m = required(&r.message, "EchoRequest", "message")?;
                ok(
                    ty,
                    proto::EchoResponse {
                        message: Some(m.clone()),
                    },
                )
            }
            Type::Create => {
                let r: proto::CreateRequest = dec(p, "CreateRequest")?;
                let c = self.create(r, refs)?;
                ok(
                    ty,
                    proto::CreateResponse {
                        handle: Some(c.handle.clone()),
                    },
                )
            }
            Type::Stop => {
                let r: proto::StopRequest = dec(p, "StopRequest")?;
                let c = self.container_for(&r.handle, "StopRequest", refs)?;
                let kill = r.kill.unwrap_or(false);
                if r.background.unwrap_or(false) {
                    c.check_state(&[State::Active, State::Stopped])?;
                    let srv = self.clone();
                    spawn_thread("stop", move || {
                        if let Err(e) = srv.stop(&c, kill) {
                            log::warn!("{:?}: background stop: {e}", c.handle);
                        }
                    });
                } else {
                    self.stop(&c, kill)?;
                }
                ok(ty, proto::StopResponse {})
            }
            Type::Destroy => {
                let r: proto::DestroyRequest = dec(p, "DestroyRequest")?;
                let c = self.container_for(&r.handle, "DestroyRequest", refs)?;
                self.destroy(&c)?;
                ok(ty, proto::DestroyResponse {})
            }
            Type::Info => {
                let r: proto::InfoRequest = dec(p, "InfoRequest")?;
                let c = self.container_for(&r.handle, "InfoRequest", refs)?;
                self.check_wshd(&c);
                c.check_state(&[State::Active, State::Stopped])?;
                ok(ty, c.info())
            }
            Type::Spawn => {
                let r: proto::SpawnRequest = dec(p, "SpawnRequest")?;
                let c = self.container_for(&r.handle, "SpawnRequest", refs)?;
                let j = self.spawn_job(&c, &r)?;
                ok(ty, proto::SpawnResponse { job_id: Some(j.id) })
            }
            Type::Link => {
                let r: proto::LinkRequest = dec(p, "LinkRequest")?;
                let c = self.container_for(&r.handle, "LinkRequest", refs)?;
                let id = *required(&r.job_id, "LinkRequest", "job_id")?;
                self.link(&c, id)
            }
            Type::Run => {
                let r: proto::RunRequest = dec(p, "RunRequest")?;
                let c = self.container_for(&r.handle, "RunRequest", refs)?;
                let j = self.spawn_job(&c, &r)?;
                let (_, body) = self.link(&c, j.id)?;
                Ok((Type::Run, body))
            }
            Type::NetIn => {
                let r: proto::NetInRequest = dec(p, "NetInRequest")?;
                let c = self.container_for(&r.handle, "NetInRequest", refs)?;
                self.net_in(&c, &r)
            }
            Type::CopyIn => {
                let r: proto::CopyInRequest = dec(p, "CopyInRequest")?;
                let c = self.container_for(&r.handle, "CopyInRequest", refs)?;
                let s = required(&r.src_path, "CopyInRequest", "src_path")?;
                let d = required(&r.dst_path, "CopyInRequest", "dst_path")?;
                self.copy_in(&c, s, d)?;
                ok(ty, proto::CopyInResponse {})
            }
            Type::CopyOut => {
                let r: proto::CopyOutRequest = dec(p, "CopyOutRequest")?;
                let c = self.container_for(&r.handle, "CopyOutRequest", refs)?;
                let s = required(&r.src_path, "CopyOutRequest", "src_path")?;
                let d = required(&r.dst_path, "CopyOutRequest", "dst_path")?;
                self.copy_out(&c, s, d, r.owner.as_deref())?;
                ok(ty, proto::CopyOutResponse {})
            }
            Type::NetOut
            | Type::LimitMemory
            | Type::LimitDisk
            | Type::LimitBandwidth
            | Type::LimitCpu => {
                let r: proto::HandleOnly = dec(p, &format!("{}Request", ty.name()))?;
                let _c = self.container_for(&r.handle, &format!("{}Request", ty.name()), refs)?;
                Err(format!(
                    "{} is not implemented by this server yet (net_out and limit_* come in a later release)",
                    snake(ty.name())
                ))
            }
            Type::Error | Type::Stream => Err(format!("Unknown request: {}Request", ty.name())),
        }
    }

    /// F1: a container whose wshd died is stopped, with an event saying so.
    fn check_wshd(&self, c: &Container) {
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
        let _ = sh::run("stop.sh", &c.path.join("stop.sh"), &["-w", "0"], env0());
        let _ = c.write_snapshot();
    }

    // ------------------------------------------------------- grace and drain

    /// Grace timer and wshd watch, every 100 ms. Started once the socket
    /// listens: the grace clocks of re-adopted containers start then (a
    /// client cannot reference anything earlier), and fire no sooner than
    /// [`RECONNECT_WINDOW`] unless a client references the container.
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
                let grace = c.lock().grace_time;
                let Some(g) = grace else { continue };
                let fire = {
                    let mut gr = lock(&c.grace);
                    let wait = Duration::from_secs(g).max(gr.floor);
                    match gr.idle_since {
                        Some(t) if gr.conns == 0 && now.duration_since(t) >= wait => {
                            gr.idle_since = None; // fire once
                            true
                        }
                        _ => false,
                    }
                };
                if fire && !self.draining() {
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

    /// Drain: stop serving, let linkers save their cursors, write every
    /// snapshot. Jobs keep running.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        let cs = self.containers();
        for c in &cs {
            for j in c.lock().jobs.values() {
                j.detach();
            }
        }
        // Wait (bounded) for in-flight requests and linkers to finish.
        let end = Instant::now() + Duration::from_secs(10);
        let mut busy = lock(&self.busy);
        while *busy > 0 && Instant::now() < end {
            busy = self
                .idle
                .wait_timeout(busy, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(busy);
        // Jobs spawned by requests that were in flight: detach their
        // linkers too.
        let cs = self.containers();
        for c in &cs {
            for j in c.lock().jobs.values() {
                j.detach();
            }
        }
        for c in &cs {
            let jobs: Vec<Arc<Job>> = c.lock().jobs.values().cloned().collect();
            for j in jobs {
                while j.lock().link_pid.is_some() && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
                // Output of a running job survives (its linker resumes from
                // its cursors); a finished job keeps only its status, as
                // warden's "should not persist stdout/stderr" example wants.
                if !j.discard_output && j.finished().is_none() && j.dir.is_dir() {
                    if let Err(e) = j.save_collected() {
                        log::warn!("{:?}: job {}: saving output: {e}", c.handle, j.id);
                    }
                }
            }
            if c.state() != State::Destroyed {
                if let Err(e) = c.write_snapshot_with(true) {
                    log::error!("{:?}: drain snapshot: {e}", c.handle);
                }
            }
        }
        log::info!("drained {} containers", cs.len());
    }

    // --------------------------------------------------------------- restore

    /// Re-adopts containers with a snapshot, destroys the rest.
    pub fn restore(self: &Arc<Self>) {
        let depot = self.cfg.container_depot_path.clone();
        let Ok(rd) = std::fs::read_dir(&depot) else {
            return;
        };
        let dirs: Vec<(PathBuf, String)> = rd
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| (e.path(), e.file_name().to_string_lossy().into_owned()))
            .filter(|(_, name)| !name.starts_with('.'))
            .collect();
        // Up to 8 containers at once, so a slow or wedged one (each script
        // step is bounded by sh::STEP_TIMEOUT) does not hold up the rest.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let max_job = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|sc| {
            for _ in 0..dirs.len().min(8) {
                sc.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((path, name)) = dirs.get(i) else {
                        break;
                    };
                    if let Some(m) = self.restore_one(path, name) {
                        max_job.fetch_max(m, Ordering::SeqCst);
                    }
                });
            }
        });
        self.note_job_id(max_job.load(Ordering::SeqCst));
    }

    /// Re-adopts or destroys one depot directory; the highest job id seen.
    fn restore_one(self: &Arc<Self>, path: &Path, name: &str) -> Option<u32> {
        let snap = crate::orphans::finish_destroy(path, Container::read_snapshot(path)); // i10-faults
        if let Ok(s) = &snap {
            if s.id != name {
                log::info!(
                    "{}: holds container {} (directory renamed)",
                    path.display(),
                    s.id
                );
            }
        }
        match snap {
            // The directory may have been renamed since (warden's "paths
            // have changed" upgrade case): the id comes from the snapshot,
            // the path from where it was found; scripts locate their
            // container directory relative to themselves.
            Ok(s) if s.state != State::Destroyed => match self.adopt(path, s) {
                Ok(m) => return Some(m),
                Err(err) => {
                    log::warn!("{}: cannot re-adopt ({err}); destroying", path.display());
                    self.destroy_dir(path);
                }
            },
            Ok(_) => self.destroy_dir(path),
            Err(err) => {
                log::info!("{}: no usable snapshot ({err}); destroying", path.display());
                self.destroy_dir(path);
            }
        }
        None
    }

    /// F23/F31: removes host resources carrying this server's prefix that
    /// belong to no re-adopted container (left by a crash or a lost
    /// record): veths `P-N-0|1`, cgroups `warden-P/<id>` (killing what
    /// runs in them), nft per-container chains and map elements.
    pub fn sweep_stale(&self) {
        let p = self.prefix().to_string();
        let cs = self.containers();
        let used_idx: HashSet<u32> = cs.iter().map(|c| c.lock().res.network_index).collect();
        let used_ids: HashSet<String> = cs.iter().map(|c| c.id.clone()).collect();
        let used_ips: HashSet<String> = cs.iter().map(|c| c.container_ip.to_string()).collect();
        // veths
        if let Ok(rd) = std::fs::read_dir("/sys/class/net") {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                let Some(rest) = name.strip_prefix(&format!("{p}-")) else {
                    continue;
                };
                let Some((n, end)) = rest.rsplit_once('-') else {
                    continue;
                };
                let Ok(n) = n.parse::<u32>() else { continue };
                if (end == "0" || end == "1") && !used_idx.contains(&n) {
                    log::info!("removing stale interface {name}");
                    let _ = sh::run(
                        "ip link del",
                        Path::new("ip"),
                        &["link", "del", &name],
                        env0(),
                    );
                }
            }
        }
        // cgroups
        let leaf = format!("warden-{p}");
        let mut parents: Vec<PathBuf> = Vec::new();
        if let Ok(rd) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in rd.flatten() {
                let d = e.path().join(&leaf);
                if d.is_dir() && !e.path().is_symlink() {
                    parents.push(d);
                }
            }
        }
        for parent in parents {
            let Ok(rd) = std::fs::read_dir(&parent) else {
                continue;
            };
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !e.path().is_dir() || used_ids.contains(&id) {
                    continue;
                }
                log::info!("removing stale cgroup {}", e.path().display());
                remove_cgroup(&e.path());
            }
        }
        // nftables: per-container chains and map elements
        let table = format!("warden-{p}");
        let Ok(out) = sh::run(
            "nft list table",
            Path::new("nft"),
            &["list", "table", "ip", &table],
            env0(),
        ) else {
            return;
        };
        let text = String::from_utf8_lossy(&out);
        let mut cmds = String::new();
        for line in text.lines() {
            let l = line.trim();
            if let Some(id) = l
                .strip_prefix("chain c-")
                .and_then(|r| r.strip_suffix(" {"))
            {
                if !used_ids.contains(id) {
                    cmds.push_str(&format!("flush chain ip {table} c-{id}\n"));
                }
            }
        }
        for (iface, id) in map_pairs(&text, " : jump c-") {
            if !used_ids.contains(&id) {
                cmds.push_str(&format!(
                    "delete element ip {table} containers {{ \"{iface}\" }}\n"
                ));
            }
        }
        for line in text.lines() {
            let l = line.trim();
            if let Some(id) = l
                .strip_prefix("chain c-")
                .and_then(|r| r.strip_suffix(" {"))
            {
                if !used_ids.contains(id) {
                    cmds.push_str(&format!("delete chain ip {table} c-{id}\n"));
                }
            }
        }
        for (port, target) in map_pairs(&text, " : ") {
            let ip = target.split(" . ").next().unwrap_or("").to_string();
            if port.parse::<u16>().is_ok() && ip.contains('.') && !used_ips.contains(&ip) {
                cmds.push_str(&format!("delete element ip {table} net_in {{ {port} }}\n"));
            }
        }
        if !cmds.is_empty() {
            log::info!(
                "removing stale nft rules: {}",
                cmds.trim().replace('\n', "; ")
            );
            let r = sh::command("nft")
                .args(["-f", "-"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .and_then(|mut ch| {
                    if let Some(mut i) = ch.stdin.take() {
                        i.write_all(cmds.as_bytes())?;
                    }
                    ch.wait_with_output()
                });
            match r {
                Ok(o) if o.status.success() => {}
                Ok(o) => log::warn!("nft cleanup: {}", String::from_utf8_lossy(&o.stderr).trim()),
                Err(e) => log::warn!("nft cleanup: {e}"),
            }
        }
    }

    fn destroy_dir(&self, path: &Path) {
        crate::orphans::end_untracked_jobs(path, &[]); // i10-faults: jobs of a dead server
        if path.join("stop.sh").is_file() {
            let _ = sh::run("stop.sh", &path.join("stop.sh"), &["-w", "0"], env0());
        }
        let p = path.display().to_string();
        if let Err(e) = sh::run("destroy.sh", &self.script("destroy.sh"), &[&p], env0()) {
            log::error!("{}: {e}", path.display());
        }
    }

    fn adopt(self: &Arc<Self>, path: &Path, s: container::Snapshot) -> Result<u32, String> {
        if lock(&self.registry).contains_key(&s.handle) {
            return Err(format!("duplicate handle {}", s.handle));
        }
        let res = s.resources.clone();
        if !lock(&self.net_pool).take(res.network_index) {
            return Err(format!(
                "network index {} in use or outside the pool",
                res.network_index
            ));
        }
        let uid_ok = {
            let mut up = lock(&self.uid_pool);
            up.take(res.uid) || !up.contains(res.uid)
        };
        if !uid_ok {
            lock(&self.net_pool).release(res.network_index);
            return Err(format!("uid {} in use", res.uid));
        }
        for p in &res.ports {
            lock(&self.port_pool).take(*p);
        }
        let c = Arc::new(Container::new(
            s.id.clone(),
            s.handle.clone(),
            path.to_path_buf(),
            self.cfg.pool_network.addr,
            res.clone(),
            s.grace_time,
        ));
        {
            let mut g = c.lock();
            g.state = s.state;
            g.events = s.events.clone();
        }
        lock(&c.grace).floor = RECONNECT_WINDOW;
        // Host side networking and port forwards, idempotent.
        if s.state == State::Active {
            if let Err(e) = sh::run("net.sh setup", &path.join("net.sh"), &["setup"], env0()) {
                log::warn!("{:?}: {e}", s.handle);
            }
            for (h, cp) in &res.net_in {
                let _ = sh::run(
                    "net.sh in",
                    &path.join("net.sh"),
                    &["in"],
                    [
                        ("HOST_PORT", h.to_string()),
                        ("CONTAINER_PORT", cp.to_string()),
                    ],
                );
            }
        }
        let mut max_job = 0;
        for (id, js) in &s.jobs {
            max_job = max_job.max(*id);
            let dir = path.join("jobs").join(id.to_string());
            let mut job = Job::new(
                *id,
                dir.clone(),
                js.discard_output,
                js.log_tag.clone(),
                js.iomux_spawn_pid,
                self.cfg.job_output_limit,
            );
            job.syslog = self.syslog_path(&job.log_tag);
            let job = Arc::new(job);
            if let Some(st) = js.status {
                job.finish(st);
                c.lock().jobs.insert(*id, job);
                continue;
            }
            // At most one linker per job: end one left by a killed server.
            if let Some(pid) = js.iomux_link_pid {
                stop_stale(pid, "iomux-link", &dir);
            }
            // A job that ended while no server was up is dropped, as warden
            // dropped its "stale" jobs (spawner gone): link and stream say
            // "no such job" (spec: "jobs that exit before a restart").
            // iomux-spawn may still linger for late linkers; end it.
            if dir.join("exit_status").is_file() {
                log::info!(
                    "{:?}: job {id} ended while the server was down; dropped",
                    s.handle
                );
                if let Some(p) = js.iomux_spawn_pid {
                    stop_stale(p, "iomux-spawn", &dir);
                }
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            }
            job.load_collected();
            let has_socks = std::fs::read_dir(&dir)
                .map(|rd| {
                    rd.flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".sock"))
                })
                .unwrap_or(false);
            if has_socks || dir.is_dir() && spawn_alive(js.iomux_spawn_pid, &dir) {
                c.lock().jobs.insert(*id, job.clone());
                if let Err(e) = self.relink(&c, job.clone()) {
                    log::warn!("{:?}: job {id}: relink: {e}", s.handle);
                    job.finish(255);
                }
            } else {
                log::warn!("{:?}: job {id} is gone", s.handle);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        crate::orphans::end_untracked_jobs(
            path,
            &c.lock().jobs.keys().copied().collect::<Vec<_>>(),
        ); // i10-faults
        if s.state == State::Active && !c.wshd_alive() {
            let mut g = c.lock();
            g.state = State::Stopped;
            g.events.push("wshd exited: container stopped".into());
        }
        let _ = c.write_snapshot();
        lock(&self.registry).insert(s.handle.clone(), c);
        log::info!("{:?}: re-adopted", s.handle);
        Ok(max_job)
    }
}

struct Ipv4NetMask;
impl Ipv4NetMask {
    fn of(prefix: u8) -> u32 {
        crate::config::Ipv4Net::mask_of(prefix)
    }
}

/// Most of a copy's container stderr kept for its error message.
const COPY_STDERR_MAX: usize = 64 * 1024;
/// How long a copy waits for wsh to exit once the stream is done.
const COPY_EXIT_GRACE: Duration = Duration::from_secs(30);

/// Reads `r` to its end, keeping only the first `cap` bytes.
fn read_capped(mut r: impl Read, cap: usize) -> Vec<u8> {
    let mut keep = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let room = cap.saturating_sub(keep.len());
                keep.extend_from_slice(&buf[..n.min(room)]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    keep
}

/// Waits for a child we started; after `grace`, kills it (by its pid, via
/// `Child::kill`) and reaps it.
fn wait_or_kill(
    child: &mut std::process::Child,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    let end = Instant::now() + grace;
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(s);
        }
        if Instant::now() >= end {
            let _ = child.kill();
            return child.wait();
        }
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(50));
    }
}

/// LANG of a job (warden: the server's LANG, else `en_US.UTF-8`). The one
/// value of the server's environment that reaches a container, and only
/// when it looks like a locale name (`[A-Za-z0-9_.@-]`, at most 64 bytes).
fn job_lang(server: Option<String>) -> String {
    match server {
        Some(l)
            if !l.is_empty()
                && l.len() <= 64
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.@-".contains(&b)) =>
        {
            l
        }
        _ => "en_US.UTF-8".into(),
    }
}

fn env0() -> [(&'static str, &'static str); 0] {
    []
}

fn snake(name: &str) -> String {
    let mut s = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(ch.to_ascii_lowercase());
        } else {
            s.push(ch);
        }
    }
    s
}

fn send_error(w: &mut UnixStream, msg: &str) -> std::io::Result<()> {
    proto::write_message(
        w,
        Type::Error,
        &proto::ErrorResponse {
            message: Some(msg.to_string()),
            data: None,
            backtrace: vec![],
        },
    )
}

/// Reads lines until one starts with `prefix`; false on EOF.
fn read_line_until<R: std::io::BufRead>(r: &mut R, prefix: &str) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {
                if line.trim_start().starts_with(prefix) {
                    return true;
                }
            }
        }
    }
}

fn cmdline(pid: i32) -> Option<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/cmdline")).ok()
}

fn cmdline_matches(pid: i32, prog: &str, dir: &Path) -> bool {
    let Some(c) = cmdline(pid) else { return false };
    let parts: Vec<&[u8]> = c.split(|b| *b == 0).collect();
    let d = dir.as_os_str().as_encoded_bytes();
    parts.first().is_some_and(|a| a.ends_with(prog.as_bytes())) && parts.contains(&d)
}

fn spawn_alive(pid: Option<i32>, dir: &Path) -> bool {
    pid.is_some_and(|p| cmdline_matches(p, "iomux-spawn", dir))
}

/// SIGTERM a leftover process (checked by its command line), wait ≤ 2 s.
fn stop_stale(pid: i32, prog: &str, dir: &Path) {
    use nix::sys::signal::{kill, Signal};
    if !cmdline_matches(pid, prog, dir) {
        return;
    }
    let p = nix::unistd::Pid::from_raw(pid);
    let _ = kill(p, Signal::SIGTERM);
    let end = Instant::now() + Duration::from_secs(2);
    while cmdline_matches(pid, prog, dir) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    if cmdline_matches(pid, prog, dir) {
        let _ = kill(p, Signal::SIGKILL);
    }
}

/// `key : value` pairs of nft map elements, split at `sep`
/// (e.g. `"P-0-0" : jump c-ID` or `61001 : 10.0.0.2 . 8080`).
fn map_pairs(text: &str, sep: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    let mut in_elems = false;
    let mut buf = String::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("elements = {") {
            in_elems = true;
            buf.clear();
            buf.push_str(rest);
        } else if in_elems {
            buf.push(' ');
            buf.push_str(l);
        } else {
            continue;
        }
        if buf.trim_end().ends_with('}') {
            in_elems = false;
            let body = buf.trim_end().trim_end_matches('}');
            for item in body.split(',') {
                if let Some((k, val)) = item.split_once(sep) {
                    v.push((
                        k.trim().trim_matches('"').to_string(),
                        val.trim().to_string(),
                    ));
                }
            }
        }
    }
    v
}

/// Removes a cgroup dir (children first), killing what is left in it.
/// Retries for up to 2 s while the kernel lets the killed tasks go; returns
/// whether the directory is gone. Also used by the end-to-end tests.
pub fn remove_cgroup_tree(dir: &Path) -> bool {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                remove_cgroup_tree(&e.path());
            }
        }
    }
    for _ in 0..100 {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs
                .split_whitespace()
                .filter_map(|x| x.parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// [`remove_cgroup_tree`] for the start-up sweep: a failure is logged.
fn remove_cgroup(dir: &Path) {
    if !remove_cgroup_tree(dir) {
        log::warn!("cannot remove stale cgroup {}", dir.display());
    }
}

/// After destroy: end the job's iomux-spawn and linker if still there.
fn end_job_processes(j: &Job) {
    use nix::sys::signal::{kill, Signal};
    if j.finished().is_some() {
        return;
    }
    if let Some(p) = j.spawn_pid {
        if cmdline_matches(p, "iomux-spawn", &j.dir) {
            let _ = kill(nix::unistd::Pid::from_raw(p), Signal::SIGKILL);
        }
    }
}

fn hard_limit(name: &str) -> Option<u64> {
    use nix::sys::resource::{getrlimit, Resource};
    let r = match name {
        "as" => Resource::RLIMIT_AS,
        "core" => Resource::RLIMIT_CORE,
        "cpu" => Resource::RLIMIT_CPU,
        "data" => Resource::RLIMIT_DATA,
        "fsize" => Resource::RLIMIT_FSIZE,
        "locks" => Resource::RLIMIT_LOCKS,
        "memlock" => Resource::RLIMIT_MEMLOCK,
        "msgqueue" => Resource::RLIMIT_MSGQUEUE,
        "nice" => Resource::RLIMIT_NICE,
        "nofile" => Resource::RLIMIT_NOFILE,
        "nproc" => Resource::RLIMIT_NPROC,
        "rss" => Resource::RLIMIT_RSS,
        "rtprio" => Resource::RLIMIT_RTPRIO,
        "sigpending" => Resource::RLIMIT_SIGPENDING,
        "stack" => Resource::RLIMIT_STACK,
        _ => return None,
    };
    let (_, hard) = getrlimit(r).ok()?;
    if hard == nix::sys::resource::RLIM_INFINITY {
        None
    } else {
        Some(hard)
    }
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
    use std::os::unix::fs::{DirBuilderExt, FileTypeExt};
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
fn peer(s: &UnixStream) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_lang_is_a_locale_name_or_the_default() {
        assert_eq!(job_lang(Some("de_DE.UTF-8".into())), "de_DE.UTF-8");
        assert_eq!(job_lang(Some("C".into())), "C");
        for bad in ["", "x y", "a\nb", "$(id)", &"x".repeat(65)] {
            assert_eq!(job_lang(Some(bad.into())), "en_US.UTF-8", "{bad:?}");
        }
        assert_eq!(job_lang(None), "en_US.UTF-8");
    }

    #[test]
    fn snake_names() {
        assert_eq!(snake("LimitMemory"), "limit_memory");
        assert_eq!(snake("NetOut"), "net_out");
    }

    #[test]
    fn nft_map_pairs() {
        let t = "table ip warden-t {\n\tmap net_in {\n\t\ttype inet_service : ipv4_addr . inet_service\n\t\telements = { 45000 : 10.254.200.2 . 45000,\n\t\t\t     45099 : 10.254.200.6 . 80 }\n\t}\n\tmap containers {\n\t\ttype ifname : verdict\n\t\telements = { \"t-0-0\" : jump c-abc }\n\t}\n}\n";
        let p = map_pairs(t, " : jump c-");
        assert_eq!(p, vec![("t-0-0".to_string(), "abc".to_string())]);
        let p = map_pairs(t, " : ");
        assert!(p.contains(&("45099".to_string(), "10.254.200.6 . 80".to_string())));
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn read_lines() {
        let mut r = std::io::Cursor::new(b"junk\nchild_pid=12\nchild active\n".to_vec());
        assert!(read_line_until(&mut r, "child_pid="));
        assert!(read_line_until(&mut r, "child active"));
        assert!(!read_line_until(&mut r, "x"));
    }

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
