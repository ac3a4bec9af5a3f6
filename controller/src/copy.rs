//! The host side of copy_in and copy_out.
//!
//! **copy_out** ([`Extraction`]): the container writes a tar stream, which
//! [`crate::tarstream::Reader`] checks (the accepted format is documented
//! there). No host `tar` runs on it. Each accepted entry is made here, as
//! root but only in these shapes:
//! - regular files, directories and symlinks only; modes lose setuid, setgid
//!   and sticky and get umask 022 (`mode & 0755`); owner root (the server),
//!   then `owner` as warden did (`chown -R`, by the caller);
//! - device nodes, FIFOs and symlinks leaving the destination are never
//!   made: a directory copy leaves them out (named in the [`Summary`], which
//!   the server logs), as warden's `rsync -r --links` without `-D` and with
//!   `--safe-links` would; a copy of such an entry alone (the source is not
//!   a directory) fails. Everything no honest `tar` writes (absolute or `..`
//!   paths, hard links to files the copy did not create, duplicates, a
//!   malformed or truncated stream, a stream over the limits) fails the
//!   copy;
//! - every path is walked from an fd on the destination with one
//!   `openat(O_NOFOLLOW | O_DIRECTORY)` per component, so neither a symlink
//!   from the stream nor one already on the host ever redirects an entry;
//!   files are created `O_CREAT | O_EXCL | O_NOFOLLOW`, symlinks with
//!   `symlinkat`, directories with `mkdirat`;
//! - a symlink is made only when [`tarstream::symlink_stays_inside`] holds
//!   for it: relative, and never climbing above the destination (for a copy
//!   onto a new name, the destination is that new file or directory, so a
//!   lone copied symlink always fails);
//! - a hard link is made a separate file holding a copy of the data of a
//!   file this same copy created earlier (warden's rsync materialised hard
//!   links too); a link to anything else is refused;
//! - a pre-existing file or symlink of the same name is replaced only at
//!   [`Extraction::commit`] (the new one waits under a temporary name), a
//!   pre-existing directory is merged into and keeps its mode, a directory
//!   never replaces a file nor the other way round;
//! - failure: dropping an uncommitted [`Extraction`] removes every entry it
//!   created, the temporary files, and the destination directories it made.
//!   Only a failure inside `commit` itself (a `rename` failing after others
//!   succeeded) can leave replaced files replaced.
//!
//! Memory: one record per directory this copy created and per entry it
//! created in a directory that existed before, all bounded by
//! [`Limits::max_entries`]; the stream itself is read in 64 KiB pieces.
//!
//! **copy_in** ([`Source`]): the host source is walked the same way
//! (`O_NOFOLLOW` below the named source; a named symlink is copied as a
//! symlink, as rsync `--links` does) and written as a tar stream with
//! [`crate::tarstream::Writer`]. Regular files are opened `O_PATH` first and
//! re-opened through `/proc/self/fd` only once `fstat` says they are regular
//! files, so a FIFO or device swapped in is never opened. A named source
//! that is not a regular file, directory or symlink is refused; such files
//! inside a directory are skipped (rsync without `-D` skips them too). The
//! container extracts the stream itself, as vcap, inside its own mount
//! namespace and root: a symlink in the container can redirect that only to
//! places vcap may write in the container anyway.
//!
//! The requests ([`Server::copy_in`], [`Server::copy_out`]) run `wsh`
//! with a small `/bin/sh` script in the container, as vcap; the script's
//! stdin (copy_in) or stdout (copy_out) is the tar stream.

mod extract;
mod fsat;
mod source;

pub use extract::{host_mode, Extraction, Summary, LEFT_OUT_NAMES};
pub use source::Source;

use crate::container::{Container, State};
use crate::error::RequestError;
use crate::server::Server;
use crate::sh;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Most of a copy's container stderr kept for its error message.
const COPY_STDERR_MAX: usize = 64 * 1024;
/// How long a copy waits for wsh to exit once the stream is done.
const COPY_EXIT_GRACE: Duration = Duration::from_secs(30);

/// The container side of copy_in: a directory, or a file into an existing
/// directory, is extracted there; a file onto a new name is extracted next
/// to it and renamed. `$1` is the destination, `$2` the member name.
const COPY_IN_DIR: &str = "mkdir -p -- \"$1\" && cd -- \"$1\" && tar -xf -";
const COPY_IN_FILE: &str = "if [ -d \"$1\" ]; then cd -- \"$1\" && tar -xf -; else d=$(dirname -- \"$1\"); mkdir -p -- \"$d\" && t=$(mktemp -d \"$d/.copy_in.XXXXXX\") && (cd -- \"$t\" && tar -xf -) && mv -f -- \"$t/$2\" \"$1\"; r=$?; rm -rf -- \"$t\"; exit $r; fi";
/// The container side of copy_out: prints "D" (directory) or "F" (other),
/// then a tar of `$1`.
const COPY_OUT: &str = "if [ -d \"$1\" ]; then printf D; else printf F; fi; \
    case \"$1\" in */) cd -- \"$1\" && exec tar -cf - . ;; \
    *) cd -- \"$(dirname -- \"$1\")\" && exec tar -cf - -- \"$(basename -- \"$1\")\" ;; esac";

impl Server {
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

    /// copy_in: the host source is archived by [`Source`] (nothing odd is
    /// opened, nothing below the source is followed) and extracted by the
    /// container's own `tar`, as vcap, inside the container.
    ///
    /// The container's op lock is held only for the state check: a copy the
    /// container stalls must not hold up stop or destroy (S22), which end it.
    pub(crate) fn copy_in(&self, c: &Container, src: &str, dst: &str) -> Result<(), RequestError> {
        {
            let _op = c.op();
            c.check_state(&[State::Active])?;
        }
        let mut source = Source::open(Path::new(src))
            .map_err(|e| RequestError::CopyIn(format!("{src}: {e}")))?;
        let member = OsStr::from_bytes(source.member()).to_os_string();
        let script = if source.is_dir() {
            COPY_IN_DIR
        } else {
            COPY_IN_FILE
        };
        let mut wsh = self
            .wsh(c, script, &[OsStr::new(dst), &member])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RequestError::CopyIn(format!("wsh: {e}")))?;
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
        let fail = |m: String| Err(RequestError::CopyIn(m));
        match written {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => fail(format!("{src}: {e}")),
            Ok(Ok(st)) if st.success() => Ok(()),
            _ if !err.trim().is_empty() => fail(err.trim().to_string()),
            Ok(Ok(st)) => fail(format!("the container's tar: {st}")),
            Ok(Err(e)) => fail(format!("wsh: {e}")),
            Err(_) => fail("the container did not take the whole stream".into()),
        }
    }

    /// copy_out: the container's `tar` stream is checked and written by
    /// [`Extraction`] (no host `tar`; see crate::tarstream for what is
    /// accepted); a failure of the stream or of the container removes what
    /// the copy made. `owner` is then applied with `chown -R`, as warden did.
    pub(crate) fn copy_out(
        &self,
        c: &Container,
        src: &str,
        dst: &str,
        owner: Option<&str>,
    ) -> Result<(), RequestError> {
        {
            let _op = c.op();
            c.check_state(&[State::Active, State::Stopped])?;
        }
        let mut wsh = self
            .wsh(c, COPY_OUT, &[OsStr::new(src)])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RequestError::CopyOut(format!("wsh: {e}")))?;
        let mut so = wsh.stdout.take().expect("piped");
        let se = wsh.stderr.take().expect("piped");
        let limits = self.cfg.copy_limits;
        let (res, status, err) = std::thread::scope(|s| {
            let h = s.spawn(move || read_capped(se, COPY_STDERR_MAX));
            let res = extract_from(&mut so, Path::new(dst), limits);
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
        let fail = |m: String| Err(RequestError::CopyOut(m));
        // Dropping an uncommitted extraction removes everything it made.
        let ex = match res {
            Err(e) if err.is_empty() => return fail(e),
            Err(e) => return fail(format!("{e} ({err})")),
            Ok(_) if !ok && !err.is_empty() => return fail(err.to_string()),
            Ok(_) if !ok => return fail("the container's tar failed".into()),
            Ok(ex) => ex,
        };
        let sum = ex.commit().map_err(RequestError::CopyOut)?;
        log_summary(c, src, dst, &sum);
        if let Some(o) = owner {
            sh::run(
                "chown",
                Path::new("chown"),
                &["-R", "--", o, dst],
                sh::NO_ENV,
            )?;
        }
        Ok(())
    }
}

/// Reads the kind byte and the tar stream of a copy_out into `dst`.
fn extract_from(
    so: &mut impl Read,
    dst: &Path,
    limits: crate::tarstream::Limits,
) -> Result<Extraction, String> {
    let mut kind = [0u8; 1];
    so.read_exact(&mut kind)
        .map_err(|_| "no output from the container".to_string())?;
    let dir = match kind[0] {
        b'D' => true,
        b'F' => false,
        _ => return Err("the container's output is not a copy stream".to_string()),
    };
    let mut ex = Extraction::begin(dst, dir, limits)?;
    ex.extract(so)?;
    Ok(ex)
}

fn log_summary(c: &Container, src: &str, dst: &str, sum: &Summary) {
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

#[cfg(test)]
mod tests;
