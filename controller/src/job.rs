//! Jobs: a process started in a container by `iomux-spawn` and followed by
//! exactly one `iomux-link -w` per job, owned by the server.
//!
//! The linker's stdout/stderr are collected in memory as a list of chunks
//! (bounded by `job_output_limit`; nothing is kept with `discard_output`).
//! Link requests wait for the job's status and take the concatenated
//! output; stream requests walk the chunk list and then send the status.
//! When the output passes the limit (the chunk that crossed it is kept,
//! so at most limit + one 64 KiB read is stored), the job is killed as
//! warden did (SIGTERM to iomux-spawn, SIGKILL to the linker) and finishes with
//! status 255 and the event "command exceeded maximum output".
//!
//! # jobs/<id>/collected (written on drain)
//!
//! Output the server had collected but no client had taken yet, so a link
//! after a restart loses nothing: a sequence of records
//! `[stream: u8 (1 = stdout, 2 = stderr)][length: u32 big-endian][bytes]`.
//! Read back when the job is re-adopted (records cut short are dropped).

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Condvar, Mutex};

pub const OUTPUT_EXCEEDED: &str = "command exceeded maximum output";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Debug, Default)]
pub struct JobState {
    pub chunks: Vec<(Stream, Vec<u8>)>,
    pub stored: u64,
    /// Exit status once the job has finished.
    pub status: Option<u32>,
    /// Why the job was ended by the server, if it was.
    pub err: Option<String>,
    pub link_pid: Option<i32>,
    /// The linker ended without a status (drain, or it was killed).
    pub detached: bool,
    /// SIGTERM was sent to the current linker.
    pub term_sent: bool,
}

#[derive(Debug)]
pub struct Job {
    pub id: u32,
    pub dir: PathBuf,
    pub discard_output: bool,
    pub log_tag: Option<String>,
    pub spawn_pid: Option<i32>,
    pub limit: u64,
    /// Syslog socket the output is copied to when the job has a log_tag.
    pub syslog: Option<PathBuf>,
    pub st: Mutex<JobState>,
    pub cv: Condvar,
}

/// Copies a job's output to syslog, line by line, as warden's
/// `logger -t warden.<log_tag>` did: stdout at user.info (`<14>`), stderr
/// at user.err (`<11>`), RFC 3164 datagrams to a unix socket. Best effort:
/// a missing socket loses log lines, never job output.
struct SyslogTee {
    sock: std::os::unix::net::UnixDatagram,
    path: PathBuf,
    tag: String,
    partial: [Vec<u8>; 2],
}

impl SyslogTee {
    fn new(path: &std::path::Path, tag: &str) -> Option<SyslogTee> {
        Some(SyslogTee {
            sock: std::os::unix::net::UnixDatagram::unbound().ok()?,
            path: path.to_path_buf(),
            tag: tag.to_string(),
            partial: [Vec::new(), Vec::new()],
        })
    }

    fn feed(&mut self, stream: Stream, data: &[u8]) {
        let i = (stream == Stream::Stderr) as usize;
        self.partial[i].extend_from_slice(data);
        while let Some(pos) = self.partial[i].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial[i].drain(..=pos).collect();
            self.send(stream, &line[..line.len() - 1]);
        }
        if self.partial[i].len() > 8192 {
            let line = std::mem::take(&mut self.partial[i]);
            self.send(stream, &line);
        }
    }

    fn flush(&mut self) {
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if !self.partial[i].is_empty() {
                let line = std::mem::take(&mut self.partial[i]);
                self.send(stream, &line);
            }
        }
    }

    fn send(&self, stream: Stream, line: &[u8]) {
        let pri = match stream {
            Stream::Stdout => 14,
            Stream::Stderr => 11,
        };
        let mut msg = format!("<{pri}>{} warden.{}: ", rfc3164_now(), self.tag).into_bytes();
        msg.extend_from_slice(line);
        let _ = self.sock.send_to(&msg, &self.path);
    }
}

/// Whether process `pid` exists and has not exited yet (a zombie has).
fn running(pid: i32) -> bool {
    wsys::proc_::Stat::of(pid).is_some_and(|s| !s.exited())
}

/// "Mmm dd hh:mm:ss" (UTC) for syslog headers.
fn rfc3164_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{} {:>2} {:02}:{:02}:{:02}",
        MONTHS[(m - 1) as usize],
        d,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Job {
    pub fn new(
        id: u32,
        dir: PathBuf,
        discard_output: bool,
        log_tag: Option<String>,
        spawn_pid: Option<i32>,
        limit: u64,
    ) -> Job {
        Job {
            id,
            dir,
            discard_output,
            log_tag,
            spawn_pid,
            limit,
            syslog: None,
            st: Mutex::new(JobState::default()),
            cv: Condvar::new(),
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn finished(&self) -> Option<u32> {
        self.lock().status
    }

    /// The status iomux-spawn wrote to DIR/exit_status once the job ended
    /// (the server may not have received it from its linker yet).
    pub fn status_file(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("exit_status"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Marks the job finished (used on restore and when the container goes).
    pub fn finish(&self, status: u32) {
        let mut s = self.lock();
        if s.status.is_none() {
            s.status = Some(status);
        }
        drop(s);
        self.cv.notify_all();
    }

    /// Starts `iomux-link -w DIR/cursors DIR`. The returned child must be
    /// given to [`Job::collect`].
    /// Starts iomux-link on the job. `wait`: its `--wait MS`, for a linker
    /// started together with iomux-spawn (whose sockets may not exist yet).
    pub fn start_link(
        &self,
        iomux_link: &std::path::Path,
        wait: Option<std::time::Duration>,
    ) -> std::io::Result<Child> {
        let mut cmd = crate::sh::command(iomux_link);
        if let Some(w) = wait {
            cmd.arg(format!("--wait={}", w.as_millis()));
        }
        let child = cmd
            .arg("-w")
            .arg(self.dir.join("cursors"))
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut s = self.lock();
        s.link_pid = Some(child.id() as i32);
        s.term_sent = false;
        drop(s);
        Ok(child)
    }

    /// Collects the linker's output until it exits; records the status
    /// unless `detached()` says the server let go of the job (drain).
    /// Returns true when a status was recorded.
    pub fn collect(&self, mut child: Child, detached: impl Fn() -> bool) -> bool {
        let mut out: Option<File> = child.stdout.take().map(|s| File::from(OwnedFd::from(s)));
        let mut err: Option<File> = child.stderr.take().map(|s| File::from(OwnedFd::from(s)));
        let mut buf = vec![0u8; 64 * 1024];
        let mut exceeded = false;
        let mut tee = match (&self.syslog, &self.log_tag) {
            (Some(p), Some(t)) => SyslogTee::new(p, t),
            _ => None,
        };
        while out.is_some() || err.is_some() {
            let mut fds = Vec::with_capacity(2);
            if let Some(o) = &out {
                fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
            }
            if let Some(e) = &err {
                fds.push(PollFd::new(e.as_fd(), PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    log::warn!("job {}: poll: {e}", self.id);
                    break;
                }
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            drop(fds);
            let mut idx = 0;
            for stream in [Stream::Stdout, Stream::Stderr] {
                let slot = match stream {
                    Stream::Stdout => &mut out,
                    Stream::Stderr => &mut err,
                };
                let Some(pipe) = slot.as_mut() else { continue };
                let r = ready[idx];
                idx += 1;
                if !r {
                    continue;
                }
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => *slot = None,
                    Ok(n) => {
                        if let Some(t) = tee.as_mut() {
                            t.feed(stream, &buf[..n]);
                        }
                        if !self.discard_output && !exceeded {
                            exceeded = self.store(stream, &buf[..n], &mut child);
                        }
                    }
                }
            }
        }
        if let Some(t) = tee.as_mut() {
            t.flush();
        }
        let status = child.wait().map(crate::sh::code_of).unwrap_or(255);
        let mut s = self.lock();
        s.link_pid = None;
        let recorded = if exceeded {
            s.status = Some(255);
            true
        } else if detached() {
            s.detached = true;
            false
        } else {
            s.status = Some(status as u32);
            true
        };
        drop(s);
        self.cv.notify_all();
        recorded
    }

    /// Keeps one chunk of output; true when it crossed the output limit
    /// (the job is then killed). As warden (em-posix-spawn): the chunk
    /// that crosses the limit is still kept and delivered. A chunk is at
    /// most one read (64 KiB), so at most limit + 64 KiB is kept.
    fn store(&self, stream: Stream, data: &[u8], child: &mut Child) -> bool {
        let mut s = self.lock();
        s.stored += data.len() as u64;
        s.chunks.push((stream, data.to_vec()));
        let exceeded = s.stored > self.limit;
        if exceeded {
            s.err = Some(OUTPUT_EXCEEDED.into());
        }
        drop(s);
        self.cv.notify_all();
        if exceeded {
            self.kill_for_limit(child);
        }
        exceeded
    }

    fn kill_for_limit(&self, child: &mut Child) {
        if let Some(p) = self.spawn_pid {
            let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
        }
        let _ = child.kill();
        // The status goes out only once iomux-spawn has exited (warden's
        // spec checks right after the response that it is gone).
        if let Some(p) = self.spawn_pid {
            let end = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while running(p) && std::time::Instant::now() < end {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }

    /// Saves the collected output to `DIR/collected` (temp + rename).
    pub fn save_collected(&self) -> std::io::Result<()> {
        let s = self.lock();
        let mut buf = Vec::with_capacity(s.stored as usize + 5 * s.chunks.len());
        for (k, d) in &s.chunks {
            buf.push(match k {
                Stream::Stdout => 1,
                Stream::Stderr => 2,
            });
            buf.extend_from_slice(&(d.len() as u32).to_be_bytes());
            buf.extend_from_slice(d);
        }
        drop(s);
        let tmp = self.dir.join("collected.tmp");
        std::fs::write(&tmp, &buf)?;
        std::fs::rename(tmp, self.dir.join("collected"))
    }

    /// Loads `DIR/collected` if present.
    pub fn load_collected(&self) {
        let Ok(b) = std::fs::read(self.dir.join("collected")) else {
            return;
        };
        let mut s = self.lock();
        let mut i = 0;
        while i + 5 <= b.len() {
            let k = match b[i] {
                1 => Stream::Stdout,
                2 => Stream::Stderr,
                _ => break,
            };
            let n = u32::from_be_bytes([b[i + 1], b[i + 2], b[i + 3], b[i + 4]]) as usize;
            if i + 5 + n > b.len() {
                break;
            }
            s.stored += n as u64;
            s.chunks.push((k, b[i + 5..i + 5 + n].to_vec()));
            i += 5 + n;
        }
    }

    /// SIGTERM to the linker (it saves its cursors and exits).
    /// Sent at most once per linker.
    pub fn detach(&self) {
        let mut s = self.lock();
        if s.term_sent {
            return;
        }
        if let Some(p) = s.link_pid {
            s.term_sent = true;
            let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
        }
    }

    /// Waits until the job has a status or the linker let go.
    pub fn wait(&self) -> Option<u32> {
        let mut s = self.lock();
        loop {
            if let Some(st) = s.status {
                return Some(st);
            }
            if s.detached {
                return None;
            }
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// (stdout, stderr) collected so far.
    pub fn output(&self) -> (Vec<u8>, Vec<u8>) {
        let s = self.lock();
        let mut o = Vec::new();
        let mut e = Vec::new();
        for (k, d) in &s.chunks {
            match k {
                Stream::Stdout => o.extend_from_slice(d),
                Stream::Stderr => e.extend_from_slice(d),
            }
        }
        (o, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn job(limit: u64, discard: bool) -> Arc<Job> {
        Arc::new(Job::new(
            1,
            PathBuf::from("/nonexistent"),
            discard,
            None,
            None,
            limit,
        ))
    }

    fn sh(script: &str) -> Child {
        std::process::Command::new("/bin/sh")
            .args(["-c", script])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    #[test]
    fn collects_both_streams_and_status() {
        let j = job(1 << 20, false);
        assert!(j.collect(sh("echo out; echo err >&2; exit 7"), || false));
        assert_eq!(j.wait(), Some(7));
        assert_eq!(j.output(), (b"out\n".to_vec(), b"err\n".to_vec()));
    }

    #[test]
    fn output_limit_kills_with_255() {
        let j = job(1000, false);
        assert!(j.collect(sh("head -c 100000 /dev/zero; sleep 5"), || false));
        assert_eq!(j.wait(), Some(255));
        assert_eq!(j.lock().err.as_deref(), Some(OUTPUT_EXCEEDED));
        // The chunk crossing the limit is kept whole, as warden did.
        let n = j.output().0.len();
        assert!(n > 1000 && n <= 1000 + 64 * 1024, "{n}");
    }

    #[test]
    fn output_exactly_at_limit_is_not_exceeded() {
        let j = job(1000, false);
        assert!(j.collect(sh("head -c 1000 /dev/zero"), || false));
        assert_eq!(j.wait(), Some(0));
        assert_eq!(j.lock().err, None);
        assert_eq!(j.output().0.len(), 1000);
    }

    #[test]
    fn discard_keeps_nothing() {
        let j = job(1000, true);
        assert!(j.collect(sh("head -c 100000 /dev/zero"), || false));
        assert_eq!(j.wait(), Some(0));
        assert!(j.output().0.is_empty());
    }

    #[test]
    fn collected_output_roundtrip() {
        let dir = std::env::temp_dir().join(format!("warden-job-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let j = Job::new(1, dir.clone(), false, None, None, 1 << 20);
        j.lock().chunks.push((Stream::Stdout, b"a".to_vec()));
        j.lock().chunks.push((Stream::Stderr, b"bc".to_vec()));
        j.save_collected().unwrap();
        let k = Job::new(1, dir.clone(), false, None, None, 1 << 20);
        k.load_collected();
        assert_eq!(k.output(), (b"a".to_vec(), b"bc".to_vec()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn log_tag_lines_go_to_syslog() {
        let dir = std::env::temp_dir().join(format!("warden-syslog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let srv = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        srv.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut j = Job::new(1, dir.clone(), true, Some("app".into()), None, 1 << 20);
        j.syslog = Some(path.clone());
        assert!(j.collect(sh("echo one; echo two >&2; printf three"), || false));
        let mut got = Vec::new();
        let mut b = [0u8; 512];
        for _ in 0..3 {
            let n = srv.recv(&mut b).unwrap();
            got.push(String::from_utf8_lossy(&b[..n]).into_owned());
        }
        got.sort();
        assert!(
            got[0].starts_with("<11>") && got[0].ends_with(" warden.app: two"),
            "{got:?}"
        );
        assert!(
            got[1].starts_with("<14>") && got[1].ends_with(" warden.app: one"),
            "{got:?}"
        );
        assert!(got[2].ends_with(" warden.app: three"), "{got:?}");
        assert_eq!(rfc3164_now().len(), 15);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn running_sees_live_zombie_and_gone() {
        let mut c = sh("sleep 5");
        let pid = c.id() as i32;
        assert!(running(pid));
        c.kill().unwrap();
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while running(pid) && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!running(pid), "a killed, unreaped child is a zombie");
        c.wait().unwrap();
        assert!(!running(pid));
    }

    #[test]
    fn detached_has_no_status() {
        let j = job(1000, false);
        assert!(!j.collect(sh("exit 3"), || true));
        assert_eq!(j.wait(), None);
    }
}
