//! Lifecycle steps left running by a server that died.
//!
//! A server killed with SIGKILL (or one that drained while a step was still
//! running) leaves its lifecycle steps (create.sh, start.sh, destroy.sh,
//! net.sh, ...) running: their results are never recorded, and they race
//! the next server's restore. Seen in tests/tests/faults.rs: a destroy.sh
//! that finished after the new server had re-adopted its container removed
//! the container from under it (the next request got "unknown handle"; the
//! one after the next restart found it gone), and killed the wshd of a
//! container the new server had just listed as active.
//!
//! So every step is marked: [`crate::sh::run`] gives it the variable
//! [`STEP_ENV`]`=<container depot path>` (set by [`set_owner`]); the
//! programs a step starts inherit it, except what is started with a clean
//! environment (wshd re-executes itself with only its PATH before it
//! clones the container, so no container process carries it; nor do jobs,
//! which are not steps). Before a server (or
//! `warden clear`) touches anything, [`end_steps_of`] SIGKILLs every live
//! process marked with its depot and waits until none is left. Only
//! processes whose environment holds that exact entry are signalled.
//!
//! A destroy under way when the server died is finished by the next one,
//! not left half-done: before destroy.sh runs, the server creates the
//! empty file `CP/destroying` ([`begin_destroy`]; removed again when
//! destroy.sh fails, [`abandon_destroy`], so a failed destroy keeps its
//! record as before). On restore a directory holding it is destroyed
//! ([`finish_destroy`]). Without it, a container whose destroy.sh had
//! killed its wshd came back "stopped" though its client had asked for it
//! to go.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variable that marks a lifecycle step and its descendants.
pub const STEP_ENV: &str = "WARDEN_STEP_OF";

static OWNER: OnceLock<String> = OnceLock::new();

/// Marks the steps this process runs from now on as belonging to the
/// server of `depot` (the first call wins).
pub fn set_owner(depot: &Path) {
    let _ = OWNER.set(depot.display().to_string());
}

/// Adds the mark to a step's command (nothing before [`set_owner`]).
pub fn mark(cmd: &mut Command) {
    if let Some(d) = OWNER.get() {
        cmd.env(STEP_ENV, d);
    }
}

/// The `/proc/PID/environ` entry a step of `depot` carries.
fn entry(depot: &Path) -> Vec<u8> {
    format!("{STEP_ENV}={}", depot.display()).into_bytes()
}

/// Live processes (not this one) carrying the mark of `depot`.
fn marked(depot: &Path) -> Vec<i32> {
    let want = entry(depot);
    let me = std::process::id() as i32;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|v| v == want.as_slice()))
        })
        .filter(|&pid| wsys::proc_::Stat::of(pid).is_some_and(|s| !s.exited()))
        .collect()
}

/// SIGKILLs every process left by an earlier server of `depot` (its
/// steps and what they started) and waits, up to 10 s, until none is
/// left; returns how many were signalled. Loops because a step may fork
/// between a scan and its kill (the child inherits the mark).
pub fn end_steps_of(depot: &Path) -> usize {
    let end = Instant::now() + Duration::from_secs(10);
    let mut killed = std::collections::HashSet::new();
    loop {
        let left = marked(depot);
        if left.is_empty() {
            break;
        }
        if Instant::now() >= end {
            log::error!("steps of an earlier server still running after SIGKILL: {left:?}");
            break;
        }
        for pid in left {
            if killed.insert(pid) {
                log::warn!(
                    "ending pid {pid}, a step left running by an earlier server: {}",
                    cmdline(pid)
                );
            }
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    killed.len()
}

/// What a server (or `warden clear`) of `depot` does first: ends the steps
/// an earlier one left running, then marks its own.
pub fn take_over(depot: &Path) {
    let n = end_steps_of(depot);
    if n > 0 {
        log::warn!("ended {n} processes left running by an earlier server");
    }
    set_owner(depot);
}

/// The marker of a destroy under way in container directory `cp`.
const DESTROYING: &str = "destroying";

/// Records that a destroy of the container in `cp` has begun.
pub fn begin_destroy(cp: &Path) {
    if let Err(e) = std::fs::write(cp.join(DESTROYING), b"") {
        log::warn!("{}: cannot mark the destroy: {e}", cp.display());
    }
}

/// The destroy of the container in `cp` failed: its record stays.
pub fn abandon_destroy(cp: &Path) {
    let _ = std::fs::remove_file(cp.join(DESTROYING));
}

/// On restore: the snapshot read from `cp`, as destroyed when a destroy
/// was under way there (so restore finishes it).
pub fn finish_destroy(
    cp: &Path,
    snap: Result<crate::container::Snapshot, String>,
) -> Result<crate::container::Snapshot, String> {
    let mut s = snap?;
    if cp.join(DESTROYING).exists() {
        log::info!(
            "{:?}: its destroy was under way when the server stopped; finishing it",
            s.handle
        );
        s.state = crate::container::State::Destroyed;
    }
    Ok(s)
}

/// Ends the job processes of container directory `cp` that the server
/// does not track (job ids not in `tracked`): iomux-spawn processes (and
/// their held children, which carry the same command line) whose job
/// directory is `cp/jobs/<id>`, and removes those job directories. A spawn
/// under way when the server died leaves one: no snapshot names it, no
/// client was told its id, and without this it would run its script
/// unlinked once iomux-spawn's hold time passed. Returns how many
/// processes were signalled.
pub fn end_untracked_jobs(cp: &Path, tracked: &[u32]) -> usize {
    let jobs = cp.join("jobs");
    let prefix = format!("{}/", jobs.display());
    let untracked = |dir: &str| -> Option<u32> {
        let id: u32 = dir.strip_prefix(&prefix)?.parse().ok()?;
        (!tracked.contains(&id)).then_some(id)
    };
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir("/proc") {
        for pid in rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        {
            let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_spawn = args
                .first()
                .is_some_and(|a| a == "iomux-spawn" || a.ends_with("/iomux-spawn"));
            if is_spawn && args[1..].iter().any(|a| untracked(a).is_some()) {
                log::info!("ending pid {pid}, an untracked job: {}", args.join(" "));
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                n += 1;
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(&jobs) {
        for e in rd.flatten() {
            if untracked(&e.path().display().to_string()).is_some() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    n
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| {
            String::from_utf8_lossy(&c)
                .replace('\0', " ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_marked_processes_and_their_children_only() {
        let dir = std::env::temp_dir().join(format!("orphans-{}", std::process::id()));
        let other = dir.join("other");
        let mut marked_cmd = Command::new("sh");
        marked_cmd
            .args(["-c", "sleep 60 & sleep 60; wait"])
            .env(STEP_ENV, &dir);
        let mut a = marked_cmd.spawn().unwrap();
        let mut b = Command::new("sleep")
            .arg("60")
            .env(STEP_ENV, &other)
            .spawn()
            .unwrap();
        // Both sleeps of `a` (children inherit the mark) are up.
        let t = Instant::now();
        while marked(&dir).len() < 3 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(marked(&dir).len(), 3, "sh and its two sleeps");
        assert!(end_steps_of(&dir) >= 3);
        assert!(a.wait().is_ok());
        assert!(marked(&dir).is_empty());
        // Another depot's step is untouched.
        assert!(b.try_wait().unwrap().is_none());
        assert_eq!(marked(&other).len(), 1);
        b.kill().unwrap();
        b.wait().unwrap();
    }
}
