//! A `warden server` fixture and protocol helpers shared by the end-to-end
//! tests that drive the controller (tests/tests/controller.rs, rootfs.rs).
//!
//! [`Srv::start`] starts a server with its own depot, socket, resource
//! prefix, network pool and port pool, and always runs `warden clear` for
//! that config in a Cleanup guard, also when the test fails.

use crate::{bin, bin_dir, require_root, rootfs, scratch, wait_for, workspace, Cleanup};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use warden::client::{Client, ClientError};
use warden::proto::{self, Type};

static N: AtomicU32 = AtomicU32::new(0);

/// Job output (raw bytes on the wire) as text, for comparisons.
pub trait Txt {
    fn txt(&self) -> Option<&str>;
}

impl Txt for Option<Vec<u8>> {
    fn txt(&self) -> Option<&str> {
        self.as_deref()
            .map(|b| std::str::from_utf8(b).expect("job output is UTF-8"))
    }
}

/// `v` in base 36, zero-padded to `width` digits (resource prefixes).
pub fn b36(mut v: u32, width: usize) -> String {
    const D: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut s = vec![b'0'; width];
    for i in (0..width).rev() {
        s[i] = D[(v % 36) as usize];
        v /= 36;
    }
    String::from_utf8(s).unwrap()
}

/// Server settings a test may change; the rest of the config is fixed.
pub struct Opts {
    /// `container_grace_time` (none: `~`).
    pub grace: Option<u64>,
    pub output_limit: u64,
    /// `network.pool_network` (default: a /24 of 10.254/16 unique to the server).
    pub pool: Option<String>,
    pub port_size: u32,
    /// `server.scripts_path` (default: the workspace's rootfs-scripts).
    pub scripts: Option<PathBuf>,
    /// `server.container_rootfs_path` (default: [`rootfs()`]).
    pub rootfs: Option<PathBuf>,
    /// `network.allow_host_access` (default false).
    pub allow_host_access: bool,
    /// `network.allow_networks` (default none).
    pub allow_networks: Vec<String>,
    /// Variables added to the server process's environment.
    pub env: Vec<(String, String)>,
    /// Lines added to the `server:` section of the config.
    pub server_keys: Vec<String>,
    /// `server.container_root_capabilities` (default unset).
    pub root_capabilities: Option<Vec<String>>,
    /// YAML appended to the config (whole sections, e.g.
    /// `health_check_server:\n  port: 0\n`).
    pub extra_yaml: String,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            grace: None,
            output_limit: 100 * 1024,
            pool: None,
            port_size: 100,
            scripts: None,
            rootfs: None,
            allow_host_access: false,
            allow_networks: vec![],
            env: vec![],
            server_keys: vec![],
            root_capabilities: None,
            extra_yaml: String::new(),
        }
    }
}

/// A running `warden server`; dropping it kills the server, runs
/// `warden clear` for its config and removes its scratch directory.
pub struct Srv {
    pub dir: PathBuf,
    pub cfg: PathBuf,
    pub sock: PathBuf,
    pub depot: PathBuf,
    pub prefix: String,
    pub child: Option<Child>,
    env: Vec<(String, String)>,
    alive: std::sync::Arc<std::sync::atomic::AtomicBool>,
    // Dropped last: kills the server, runs `warden clear`, removes dir.
    _guard: Cleanup,
}

impl Srv {
    pub fn start(tag: &str, o: Opts) -> Srv {
        require_root();
        let n = N.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let prefix = format!("t{}{}", b36(pid % 46656, 3), b36(n, 2));
        let (dir, mut guard) = scratch(&format!("ctl-{tag}"));
        let depot = dir.join("depot");
        std::fs::create_dir_all(&depot).unwrap();
        let sock = dir.join("warden.sock");
        let x = (pid.wrapping_mul(7) + n * 11) % 250;
        let pool = o.pool.unwrap_or_else(|| format!("10.254.{x}.0/24"));
        let port_start = 40000 + (pid % 10) * 2000 + (n % 20) * 100;
        let grace = o.grace.map(|g| g.to_string()).unwrap_or_else(|| "~".into());
        let cfg = dir.join("warden.yml");
        std::fs::write(
            &cfg,
            format!(
                "server:\n{root_caps}  unix_domain_path: {sock}\n  unix_domain_permissions: 0700\n  container_depot_path: {depot}\n  container_rootfs_path: {rootfs}\n  container_grace_time: {grace}\n  job_output_limit: {limit}\n  resource_prefix: {prefix}\n  scripts_path: {scripts}\n  bin_path: {bins}\n  pidfile: {pidfile}\n  container_klass: Warden::Container::Linux\n{extra}logging:\n  level: debug\n  file: {log}\nnetwork:\n  pool_network: {pool}\n  release_delay: 0\n  allow_host_access: {host_access}\n  allow_networks: [{allow}]\nport:\n  pool_start_port: {port_start}\n  pool_size: {port_size}\nuser:\n  pool_start_uid: 20000\n  pool_size: 200\n{extra_yaml}",
                root_caps = o
                    .root_capabilities
                    .as_ref()
                    .map(|v| format!("  container_root_capabilities: [{}]\n", v.join(", ")))
                    .unwrap_or_default(),
                sock = sock.display(),
                depot = depot.display(),
                rootfs = o.rootfs.clone().unwrap_or_else(rootfs).display(),
                limit = o.output_limit,
                scripts = o
                    .scripts
                    .clone()
                    .unwrap_or_else(|| workspace().join("rootfs-scripts"))
                    .display(),
                bins = bin_dir().display(),
                pidfile = dir.join("warden.pid").display(),
                log = dir.join("warden.log").display(),
                port_size = o.port_size,
                host_access = o.allow_host_access,
                allow = o.allow_networks.join(", "),
                extra_yaml = o.extra_yaml,
                extra = o
                    .server_keys
                    .iter()
                    .map(|k| format!("  {k}\n"))
                    .collect::<String>(),
            ),
        )
        .unwrap();
        let c = cfg.clone();
        guard.push(move || {
            let out = Command::new(bin("warden"))
                .args(["clear", "--config"])
                .arg(&c)
                .output();
            if let Ok(o) = out {
                if !o.status.success() {
                    eprintln!("warden clear: {}", String::from_utf8_lossy(&o.stderr));
                }
            }
        });
        let mut s = Srv {
            dir,
            cfg,
            sock,
            depot,
            prefix,
            child: None,
            env: o.env,
            alive: Default::default(),
            _guard: guard,
        };
        s.run();
        s
    }

    /// Starts (or restarts) the server process and waits for it to answer.
    pub fn run(&mut self) {
        let child = Command::new(bin("warden"))
            .args(["server", "--config"])
            .arg(&self.cfg)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start warden server");
        let pid = child.id() as i32;
        // On drop: SIGKILL and wait until it is gone (so `warden clear`,
        // which refuses while a server listens, runs after it).
        // The flag is cleared once the test reaped the process itself, so a
        // reused pid is never signalled.
        let alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        self.alive = alive.clone();
        self._guard.push(move || {
            if alive.load(Ordering::SeqCst) {
                let p = nix::unistd::Pid::from_raw(pid);
                let _ = nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGKILL);
                let _ = nix::sys::wait::waitpid(p, None);
            }
        });
        self.child = Some(child);
        let sock = self.sock.clone();
        let up = wait_for(Duration::from_secs(20), || {
            Client::connect(&sock)
                .and_then(|mut c| {
                    c.call::<_, proto::PingResponse>(Type::Ping, &proto::PingRequest {})
                })
                .is_ok()
        });
        if !up {
            panic!("server did not come up; log:\n{}", self.log());
        }
    }

    /// The server log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("warden.log")).unwrap_or_default()
    }

    /// Host pid of the running server.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends a signal and waits for the server to exit.
    pub fn signal_and_wait(&mut self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), sig).unwrap();
        let mut c = self.child.take().unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if c.try_wait().unwrap().is_some() {
                self.alive.store(false, Ordering::SeqCst);
                return;
            }
            assert!(Instant::now() < end, "server did not exit after {sig:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A connection whose reads fail after 120 s, so a hung server fails
    /// the test instead of blocking it.
    pub fn client(&self) -> Client {
        let c = Client::connect(&self.sock).expect("connect");
        c.set_timeout(Some(Duration::from_secs(120))).unwrap();
        c
    }

    /// The `warden` ops client with `--socket`: (status, stdout, stderr).
    pub fn warden(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = Command::new(bin("warden"));
        cmd.args(args).arg("--socket").arg(&self.sock);
        let (code, o, e) = crate::run(&mut cmd);
        (
            code,
            String::from_utf8_lossy(&o).into_owned(),
            String::from_utf8_lossy(&e).into_owned(),
        )
    }

    /// Names of the directories in the depot.
    pub fn depot_dirs(&self) -> Vec<String> {
        std::fs::read_dir(&self.depot)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// CreateRequest; the handle, or the error.
pub fn create(c: &mut Client, req: proto::CreateRequest) -> Result<String, ClientError> {
    let r: proto::CreateResponse = c.call(Type::Create, &req)?;
    Ok(r.handle.unwrap())
}

/// Create with defaults; panics on failure.
pub fn create_default(c: &mut Client) -> String {
    create(c, proto::CreateRequest::default()).expect("create")
}

/// RunRequest as vcap; panics on an error response.
pub fn run(c: &mut Client, h: &str, script: &str) -> proto::RunResponse {
    try_run(c, h, script).expect("run")
}

/// RunRequest as vcap.
pub fn try_run(c: &mut Client, h: &str, script: &str) -> Result<proto::RunResponse, ClientError> {
    c.call(
        Type::Run,
        &proto::RunRequest {
            handle: Some(h.into()),
            script: Some(script.into()),
            ..Default::default()
        },
    )
}

/// RunRequest as root (`privileged`); panics on an error response.
pub fn run_privileged(c: &mut Client, h: &str, script: &str) -> proto::RunResponse {
    c.call(
        Type::Run,
        &proto::RunRequest {
            handle: Some(h.into()),
            script: Some(script.into()),
            privileged: Some(true),
            ..Default::default()
        },
    )
    .expect("run privileged")
}

/// SpawnRequest as vcap; the job id (panics on failure).
pub fn spawn(c: &mut Client, h: &str, script: &str) -> u32 {
    let r: proto::SpawnResponse = c
        .call(
            Type::Spawn,
            &proto::SpawnRequest {
                handle: Some(h.into()),
                script: Some(script.into()),
                ..Default::default()
            },
        )
        .expect("spawn");
    r.job_id.unwrap()
}

/// Sends a request on `c` and waits (up to 20 s) until the server has read
/// all of it (the socket's unread bytes, SIOCOUTQ, drop to 0), so a test
/// knows the request is being handled before it acts, without a fixed
/// sleep. The response is left for `c.recv`.
pub fn send_until_read<M: prost::Message>(c: &mut Client, ty: Type, req: &M) {
    use std::os::fd::AsFd;
    c.send(ty, req).expect("send the request");
    let (_, w) = c.raw();
    let w = &*w;
    let read = wait_for(Duration::from_secs(20), || {
        wsys::event::bytes_unread_by_peer(w.as_fd()).expect("SIOCOUTQ") == 0
    });
    assert!(read, "the server did not read the {ty:?} request");
}

/// LinkRequest.
pub fn link(c: &mut Client, h: &str, job: u32) -> Result<proto::LinkResponse, ClientError> {
    c.call(
        Type::Link,
        &proto::LinkRequest {
            handle: Some(h.into()),
            job_id: Some(job),
        },
    )
}

/// InfoRequest.
pub fn info(c: &mut Client, h: &str) -> Result<proto::InfoResponse, ClientError> {
    c.call(
        Type::Info,
        &proto::InfoRequest {
            handle: Some(h.into()),
        },
    )
}

/// DestroyRequest.
pub fn destroy(c: &mut Client, h: &str) -> Result<proto::DestroyResponse, ClientError> {
    c.call(
        Type::Destroy,
        &proto::DestroyRequest {
            handle: Some(h.into()),
        },
    )
}

/// Destroy; when it fails (F31), the record must be kept with an event
/// saying so, and a retried destroy must finish the rest. (destroy.sh can
/// fail once when a veth vanishes while net.sh removes it; the failure is
/// printed so it stays visible.)
pub fn destroy_or_retry(c: &mut Client, h: &str) {
    if let Err(e) = destroy(c, h) {
        eprintln!("destroy {h} failed once ({e}); retrying");
        assert!(
            list(c).contains(&h.to_string()),
            "failed destroy keeps the record"
        );
        let i = info(c, h).unwrap();
        assert!(
            i.events.iter().any(|e| e.starts_with("destroy failed")),
            "{:?}",
            i.events
        );
        destroy(c, h).expect("retried destroy");
    }
}

/// ListRequest: the handles.
pub fn list(c: &mut Client) -> Vec<String> {
    let r: proto::ListResponse = c.call(Type::List, &proto::ListRequest {}).unwrap();
    r.handles
}

/// The message of an error response; panics on anything else.
pub fn err_text<T: std::fmt::Debug>(r: Result<T, ClientError>) -> String {
    match r {
        Err(ClientError::Server(m)) => m,
        other => panic!("expected an error response, got {other:?}"),
    }
}

/// Host resources still carrying the server prefix or naming the depot:
/// veths, cgroups, mounts, loop devices, nft rules of containers.
pub fn prefix_leftovers(prefix: &str, depot: &Path) -> Vec<String> {
    let mut left = Vec::new();
    // veths
    for e in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if n.starts_with(&format!("{prefix}-")) {
            left.push(format!("veth {n}"));
        }
    }
    // cgroups
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let d = e.path().join(format!("warden-{prefix}"));
        if let Ok(rd) = std::fs::read_dir(&d) {
            for x in rd.flatten() {
                if x.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    left.push(format!("cgroup {}", x.path().display()));
                }
            }
        }
    }
    // mounts
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let d = depot.display().to_string();
    for l in mounts.lines() {
        if l.contains(&d) {
            left.push(format!("mount {l}"));
        }
    }
    // loop devices backed by files in the depot
    if let Ok(rd) = std::fs::read_dir("/sys/block") {
        for e in rd.flatten() {
            if let Ok(b) = std::fs::read_to_string(e.path().join("loop/backing_file")) {
                if b.contains(&d) {
                    left.push(format!("loop {}", e.file_name().to_string_lossy()));
                }
            }
        }
    }
    // nft rules naming containers
    let out = Command::new("nft")
        .args(["list", "table", "ip", &format!("warden-{prefix}")])
        .output()
        .unwrap();
    let t = String::from_utf8_lossy(&out.stdout);
    let pat = format!("\"{prefix}-");
    let names_container = t
        .match_indices(&pat)
        .any(|(i, _)| t[i + pat.len()..].starts_with(|ch: char| ch.is_ascii_digit()));
    if t.contains("chain c-") || t.contains("jump c-") || names_container {
        left.push(format!("nft rules: {t}"));
    }
    left
}
