//! Running lifecycle scripts and helpers as command-line steps.
//!
//! Each step runs with an explicit environment: [`PATH`] plus the variables
//! the caller gives (the contract in `rootfs-scripts/README.md`), nothing
//! of the server's own environment (see [`command`]); stdin from
//! /dev/null, and stdout/stderr captured. A non-zero exit becomes a
//! [`StepError`] naming the step and carrying the tail of its stderr.
//! A step that runs longer than [`STEP_TIMEOUT`] is killed (SIGKILL to its
//! process group) and fails, so one wedged script cannot hold a request,
//! or the server's start, forever.

use std::ffi::OsStr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Longest a lifecycle step may run.
pub const STEP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The environment of a step that needs no variables.
pub const NO_ENV: [(&str, &str); 0] = [];

pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A command for any program the controller starts (scripts, helpers,
/// `tar`, `nft`, ...): its environment is cleared and holds only
/// `PATH=`[`PATH`]; callers add the documented variables of that program.
/// Nothing of the server's environment reaches a script, a helper or,
/// through them, a container.
pub fn command<S: AsRef<OsStr>>(program: S) -> Command {
    let mut c = Command::new(program);
    c.env_clear().env("PATH", PATH);
    c
}

#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("{step}: cannot run {path}: {err}")]
    Spawn {
        step: String,
        path: String,
        err: std::io::Error,
    },
    #[error("{step} timed out after {secs} s and was killed")]
    Timeout { step: String, secs: u64 },
    #[error("{step} failed ({status}): {stderr}")]
    Failed {
        step: String,
        status: String,
        stderr: String,
    },
}

/// Exit code of a finished process, 128+N for a signal N.
pub fn code_of(s: std::process::ExitStatus) -> i32 {
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

fn tail(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    let s = s.trim();
    let lines: Vec<&str> = s.lines().collect();
    let n = lines.len();
    let t = lines[n.saturating_sub(5)..].join(" | ");
    if t.is_empty() {
        "(no message)".into()
    } else {
        t
    }
}

/// Runs `path args...` with `env`; returns its stdout.
pub fn run<I, K, V>(step: &str, path: &Path, args: &[&str], env: I) -> Result<Vec<u8>, StepError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    run_with_timeout(step, path, args, env, STEP_TIMEOUT)
}

/// [`run`] with an explicit time limit.
pub fn run_with_timeout<I, K, V>(
    step: &str,
    path: &Path,
    args: &[&str],
    env: I,
    limit: std::time::Duration,
) -> Result<Vec<u8>, StepError>
where
    I: IntoIterator<Item = (K, V)>,
    K: AsRef<OsStr>,
    V: AsRef<OsStr>,
{
    use std::os::unix::process::CommandExt;
    let t0 = std::time::Instant::now();
    // Counted in warden_script_failures_total unless the step succeeds.
    let failed = crate::metrics::ScriptGuard::new(step);
    let mut cmd = command(path);
    crate::orphans::mark(&mut cmd); // steps carry their server's mark
    let child = cmd
        .args(args)
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|err| StepError::Spawn {
            step: step.into(),
            path: path.display().to_string(),
            err,
        })?;
    let (out, timed_out) = wait_with_watchdog(child, limit);
    let out = out.map_err(|err| StepError::Spawn {
        step: step.into(),
        path: path.display().to_string(),
        err,
    })?;
    if timed_out {
        return Err(StepError::Timeout {
            step: step.into(),
            secs: limit.as_secs(),
        });
    }
    if out.status.success() {
        log::debug!("{step}: ok ({} ms)", t0.elapsed().as_millis());
        failed.ok();
        Ok(out.stdout)
    } else {
        Err(failed_step(step, out))
    }
}

/// Waits for a step's output; a watchdog thread kills the step's process
/// group when `limit` passes before the step ends (the channel is dropped
/// when it ends). True with the output when the watchdog fired.
fn wait_with_watchdog(
    child: std::process::Child,
    limit: std::time::Duration,
) -> (std::io::Result<std::process::Output>, bool) {
    let pgid = child.id() as i32;
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let timed_out = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = timed_out.clone();
    let dog = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pgid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        });
    let out = child.wait_with_output();
    drop(tx);
    if let Ok(d) = dog {
        let _ = d.join();
    }
    (out, timed_out.load(std::sync::atomic::Ordering::SeqCst))
}

/// The error of a step that ended unsuccessfully: its exit status or
/// signal, and the tail of its stderr (of its stdout when stderr is blank).
fn failed_step(step: &str, out: std::process::Output) -> StepError {
    let status = match out.status.code() {
        Some(c) => format!("exit status {c}"),
        None => format!("signal {}", out.status.signal().unwrap_or(0)),
    };
    let mut err = out.stderr;
    if err.iter().all(u8::is_ascii_whitespace) {
        err = out.stdout;
    }
    StepError::Failed {
        step: step.into(),
        status,
        stderr: tail(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_names_step_and_stderr() {
        let e = run(
            "create.sh",
            Path::new("/bin/sh"),
            &["-c", "echo one >&2; echo boom >&2; exit 3"],
            [("X", "1")],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "create.sh failed (exit status 3): one | boom");
        let e = run("x.sh", Path::new("/nonexistent/x.sh"), &[], [("X", "1")])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.sh: cannot run /nonexistent/x.sh"), "{e}");
        let o = run(
            "echo",
            Path::new("/bin/sh"),
            &["-c", "echo $X"],
            [("X", "v")],
        )
        .unwrap();
        assert_eq!(o, b"v\n");
    }

    #[test]
    fn steps_see_only_path_and_their_variables() {
        // HOME is set in any test environment; it must not get through.
        assert!(std::env::var_os("HOME").is_some() || std::env::var_os("PATH").is_some());
        let o = run("env", Path::new("/usr/bin/env"), &[], [("X", "1")]).unwrap();
        let mut vars: Vec<String> = String::from_utf8(o)
            .unwrap()
            .lines()
            .map(|l| l.split('=').next().unwrap().to_string())
            .collect();
        vars.sort();
        assert_eq!(vars, ["PATH", "X"]);
    }

    #[test]
    fn wedged_step_is_killed() {
        let t = std::time::Instant::now();
        let e = run_with_timeout(
            "hang.sh",
            Path::new("/bin/sh"),
            &["-c", "sleep 30 & sleep 30"],
            [("X", "1")],
            std::time::Duration::from_millis(200),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "hang.sh timed out after 0 s and was killed");
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
    }
}
