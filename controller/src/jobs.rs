//! spawn, link, stream and run: jobs started in a container through
//! `iomux-spawn` (which keeps the job's output for late linkers) and
//! collected by an `iomux-link` per job (crate::job holds the Job type).
//!
//! iomux-spawn's stdout protocol, read by [`Server::spawn_job`]: a line
//! `child_pid=N` once it waits for a linker, then `child active` once the
//! linker is attached and the script runs.

use crate::container::{Container, State};
use crate::dispatch::{ok, Reply, Turn};
use crate::error::{required, RequestError};
use crate::job::Job;
use crate::proto::{self, Type};
use crate::server::{spawn_thread, Server};
use crate::sh;
use std::io::{BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, RequestError>;

/// How long a linker started together with iomux-spawn retries its sockets
/// (iomux-link `--wait`); a spawner that fails first is ended with it.
const LINK_WAIT: Duration = Duration::from_secs(10);

impl Server {
    /// RLIMIT_* variables for wsh: the configured defaults, then the
    /// request's; none may exceed the server's own hard limit.
    fn rlimit_env(&self, req: Option<&proto::ResourceLimits>) -> Result<Vec<(String, String)>> {
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
                    return Err(RequestError::Rlimit {
                        name: k,
                        value: v,
                        hard,
                    });
                }
            }
            env.push((format!("RLIMIT_{}", k.to_uppercase()), v.to_string()));
        }
        Ok(env)
    }

    /// Starts iomux-spawn (running wsh running /bin/bash in the container)
    /// and its linker; the job once its script runs.
    pub(crate) fn spawn_job(
        self: &Arc<Self>,
        c: &Arc<Container>,
        req: &proto::SpawnRequest,
        turn: &mut Turn,
    ) -> Result<Arc<Job>> {
        let _op = c.op();
        c.check_state(&[State::Active])?;
        let script = required(&req.script, "SpawnRequest", "script")?;
        let env = self.rlimit_env(req.rlimits.as_ref())?;
        // Scripts run under /bin/bash: say so when the root filesystem has
        // none, rather than returning a job that failed with 127.
        if c.exists_in_root("bin/bash") == Some(false) {
            return Err(RequestError::NoBash);
        }
        let id = self.next_job_id()?;
        let dir = c.path.join("jobs").join(id.to_string());
        std::fs::create_dir_all(&dir).map_err(RequestError::host(format!(
            "cannot create {}",
            dir.display()
        )))?;
        let mut job = Job::new(
            id,
            dir.clone(),
            req.discard_output.unwrap_or(false),
            req.log_tag.clone(),
            None,
            self.cfg.job_output_limit,
        );
        job.syslog = self.syslog_path(&job.log_tag);
        let user = if req.privileged.unwrap_or(false) {
            "root"
        } else {
            "vcap"
        };
        let mut cmd = sh::command(c.path.join("bin/iomux-spawn"));
        cmd.arg(&dir)
            .arg(c.path.join("bin/wsh"))
            .arg("--socket")
            .arg(c.path.join("run/wshd.sock"))
            .arg("--user")
            .arg(user)
            .arg("/bin/bash")
            .env("LANG", job_lang(std::env::var("LANG").ok()))
            .envs(env);
        let started = start_spawner(c, cmd, job, script.as_bytes(), &dir)?;
        let job = started.job.clone();
        c.lock().jobs.insert(id, job.clone());
        turn.started();
        if let Err(e) = c.write_snapshot() {
            log::warn!("{:?}: snapshot: {e}", c.handle);
        }
        let (srv, cont) = (self.clone(), c.clone());
        spawn_thread("job", move || srv.collect(&cont, started));
        Ok(job)
    }

    /// The job thread: the linker's output until the job ends (or drain).
    fn collect(&self, c: &Container, s: Started) {
        let Started {
            job,
            linker,
            mut spawner,
            out,
        } = s;
        if job.collect(linker, || self.draining()) {
            record_error(c, &job);
            if c.state() != State::Destroyed {
                let _ = c.write_snapshot();
            }
        }
        // Reap iomux-spawn (it ends with its child) and drop its stdout.
        if !self.draining() {
            let _ = spawner.wait();
        }
        drop(out);
    }

    /// Re-attaches a linker to a job found in a snapshot.
    pub(crate) fn relink(
        self: &Arc<Self>,
        c: &Arc<Container>,
        job: Arc<Job>,
    ) -> std::io::Result<()> {
        let linker = job.start_link(&c.path.join("bin/iomux-link"), None)?;
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
    pub(crate) fn syslog_path(&self, tag: &Option<String>) -> Option<PathBuf> {
        tag.as_ref()?;
        Some(
            self.cfg
                .syslog_socket
                .as_ref()
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/dev/log")),
        )
    }

    pub(crate) fn link(&self, c: &Arc<Container>, job_id: u32, turn: &mut Turn) -> Reply {
        let job = find_job(c, job_id)?;
        turn.started();
        let status = job.wait().ok_or(RequestError::Draining)?;
        log::debug!("{:?}: job {job_id}: status {status}", c.handle);
        let (o, e) = job.output();
        cleanup_job(c, &job);
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

    /// Streams the job's output as StreamResponses, then its exit status.
    pub(crate) fn stream<W: Write>(
        &self,
        c: &Arc<Container>,
        job_id: u32,
        w: &mut W,
        turn: &mut Turn,
    ) -> Result<()> {
        let job = find_job(c, job_id)?;
        turn.started();
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
                    cleanup_job(c, &job);
                    let m = proto::StreamResponse {
                        exit_status: Some(st),
                        info: Some(c.info()),
                        ..Default::default()
                    };
                    let _ = proto::write_message(w, Type::Stream, &m);
                    return Ok(());
                }
            } else if detached {
                return Err(RequestError::Draining);
            }
        }
    }
}

/// A job whose iomux-spawn runs its script with a linker attached.
struct Started {
    job: Arc<Job>,
    linker: std::process::Child,
    spawner: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

/// Runs iomux-spawn (`cmd`), feeds it `script`, attaches the linker and
/// waits for the script to run. On failure, everything started is ended
/// and `dir` removed.
fn start_spawner(
    c: &Container,
    mut cmd: std::process::Command,
    mut job: Job,
    script: &[u8],
    dir: &Path,
) -> Result<Started> {
    let t0 = Instant::now();
    let id = job.id;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut child = cmd.spawn().map_err(|e| {
        log::warn!("{:?}: iomux-spawn: {e}", c.handle);
        RequestError::SpawnFailed
    })?;
    job.spawn_pid = Some(child.id() as i32);
    let job = Arc::new(job);
    // The child reads its script only once a linker attached: a big one is
    // written from a helper thread so that it cannot block this request.
    if let Some(mut s) = child.stdin.take() {
        if script.len() <= 16 * 1024 {
            let _ = s.write_all(script);
        } else {
            let script = script.to_vec();
            spawn_thread("script-writer", move || {
                let _ = s.write_all(&script);
            });
        }
    }
    let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
    let fail = |child: &mut std::process::Child, linker: Option<std::process::Child>| {
        if let Some(mut l) = linker {
            let _ = l.kill();
            let _ = l.wait();
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(dir);
        RequestError::SpawnFailed
    };
    let step = |what: &str| {
        let us = t0.elapsed().as_micros();
        log::debug!("{:?}: job {id}: {what} ({us} us)", c.handle);
    };
    step("iomux-spawn started");
    // The linker starts at once, retrying the sockets until iomux-spawn
    // has made them (`--wait`): started after iomux-spawn's `child_pid=`
    // line instead, the two program starts ran one after the other (0.9 ms
    // from iomux-spawn's start to the linker's, then 0.9 ms to `child
    // active`).
    let linker = match job.start_link(&c.path.join("bin/iomux-link"), Some(LINK_WAIT)) {
        Ok(l) => l,
        Err(e) => {
            log::warn!("{:?}: iomux-link: {e}", c.handle);
            return Err(fail(&mut child, None));
        }
    };
    step("linker started");
    // 1. child_pid=N: iomux-spawn made its sockets.
    if !read_line_until(&mut out, "child_pid=") {
        return Err(fail(&mut child, Some(linker)));
    }
    // 2. child active: the linker is attached and the child runs.
    if !read_line_until(&mut out, "child active") {
        return Err(fail(&mut child, Some(linker)));
    }
    step("child active");
    Ok(Started {
        job,
        linker,
        spawner: child,
        out,
    })
}

/// The job's error (output limit, ...) becomes an event of the container.
fn record_error(c: &Container, job: &Job) {
    // Lock order: container inner before job state; never both here.
    let err = job.lock().err.clone();
    if let Some(e) = err {
        let mut g = c.lock();
        if !g.events.contains(&e) {
            g.events.push(e);
        }
    }
}

fn find_job(c: &Container, id: u32) -> Result<Arc<Job>> {
    c.lock()
        .jobs
        .get(&id)
        .cloned()
        .ok_or(RequestError::NoSuchJob)
}

/// After the job's output and status were delivered: forget the job.
fn cleanup_job(c: &Container, job: &Job) {
    record_error(c, job);
    let removed = c.lock().jobs.remove(&job.id).is_some();
    if removed {
        // iomux-spawn's linger for late linkers is of no more use (and a
        // removed DIR is not always noticed while its sockets are bound).
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

/// After destroy: ends each job's iomux-spawn if still there, gives the
/// linkers a moment to report the jobs' end, then releases anybody still
/// waiting (with 137, SIGKILL's status, as warden reported them).
pub(crate) fn end_after_destroy(jobs: &[Arc<Job>]) {
    use nix::sys::signal::{kill, Signal};
    for j in jobs {
        if j.finished().is_some() {
            continue;
        }
        if let Some(p) = j.spawn_pid {
            if cmdline_matches(p, "iomux-spawn", &j.dir) {
                let _ = kill(nix::unistd::Pid::from_raw(p), Signal::SIGKILL);
            }
        }
    }
    let end = Instant::now() + Duration::from_secs(2);
    for j in jobs {
        while j.finished().is_none() && !j.lock().detached && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(10));
        }
        j.finish(137);
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

/// Whether process `pid` runs `prog` with `dir` among its arguments (so a
/// recycled pid is never signalled).
pub(crate) fn cmdline_matches(pid: i32, prog: &str, dir: &Path) -> bool {
    let Ok(c) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let parts: Vec<&[u8]> = c.split(|b| *b == 0).collect();
    let d = dir.as_os_str().as_encoded_bytes();
    parts.first().is_some_and(|a| a.ends_with(prog.as_bytes())) && parts.contains(&d)
}

/// SIGTERM a leftover process (checked by its command line), wait ≤ 2 s,
/// then SIGKILL.
pub(crate) fn stop_stale(pid: i32, prog: &str, dir: &Path) {
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

/// The server's hard limit of rlimit `name` (None: unknown or unlimited).
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
    fn read_lines() {
        let mut r = std::io::Cursor::new(b"junk\nchild_pid=12\nchild active\n".to_vec());
        assert!(read_line_until(&mut r, "child_pid="));
        assert!(read_line_until(&mut r, "child active"));
        assert!(!read_line_until(&mut r, "x"));
    }

    #[test]
    fn cmdline_matches_only_the_named_program_and_dir() {
        let me = std::process::id() as i32;
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap().to_string();
        assert!(!cmdline_matches(me, &name, Path::new("/nonexistent-dir")));
        assert!(!cmdline_matches(me, "iomux-spawn", Path::new("/")));
        assert!(!cmdline_matches(i32::MAX, "x", Path::new("/")));
    }

    #[test]
    fn hard_limits_of_known_names_only() {
        assert_eq!(hard_limit("bogus"), None);
        // nofile is never unlimited on Linux.
        assert!(hard_limit("nofile").is_some());
    }
}
