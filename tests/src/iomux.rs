//! Fixtures for the iomux end-to-end tests (tests/tests/iomux.rs): start
//! iomux-spawn and iomux-link, and jobs that write known data.

use crate::{bin, run, scratch, Cleanup};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// A started iomux-spawn with its stdout reader.
pub struct Spawned {
    pub child: Child,
    pub out: BufReader<ChildStdout>,
    /// The job's pid (from `child_pid=N`).
    pub child_pid: i32,
}

impl Spawned {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Reads the rest of iomux-spawn's stdout (ends when it detaches).
    pub fn rest(&mut self) -> String {
        let mut s = String::new();
        self.out.read_to_string(&mut s).expect("read spawn stdout");
        s
    }
}

/// Starts `iomux-spawn [flags] dir argv...` with `stdin` as its stdin and
/// waits for `child_pid=N`.
pub fn spawn(c: &mut Cleanup, flags: &[&str], dir: &Path, argv: &[&str], stdin: Stdio) -> Spawned {
    let mut child = Command::new(bin("iomux-spawn"))
        .args(flags)
        .arg(dir)
        .args(argv)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start iomux-spawn");
    c.kill_pid(child.id() as i32);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).expect("read child_pid line");
    let child_pid = line
        .strip_prefix("child_pid=")
        .and_then(|l| l.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("expected child_pid=N, got {line:?}"));
    Spawned {
        child,
        out,
        child_pid,
    }
}

pub fn link_cmd(dir: &Path, cursors: Option<&Path>) -> Command {
    let mut cmd = Command::new(bin("iomux-link"));
    if let Some(c) = cursors {
        cmd.arg("-w").arg(c);
    }
    cmd.arg(dir);
    cmd
}

/// Runs iomux-link to completion: (code, stdout, stderr).
pub fn link(dir: &Path, cursors: Option<&Path>) -> (i32, Vec<u8>, Vec<u8>) {
    run(link_cmd(dir, cursors).stdin(Stdio::null()))
}

/// Deterministic pseudo-random bytes.
pub fn pattern(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn write_file(p: &Path, data: &[u8]) {
    std::fs::write(p, data).expect("write data file");
}

/// A job that has run and ended before anyone linked (`--hold 0`), its
/// spawner lingering for 3 s (until a linker gets the status): returns once
/// `exit_status` exists.
pub fn ended_job(c: &mut Cleanup, job: &Path, script: &str) -> Spawned {
    let sp = spawn(
        c,
        &["--hold", "0", "--linger", "3"],
        job,
        &["sh", "-c", script],
        Stdio::null(),
    );
    let done = crate::wait_for(std::time::Duration::from_secs(10), || {
        job.join("exit_status").exists()
    });
    assert!(done, "{script}: no exit_status");
    sp
}

/// A scratch directory for one job: `job` (its iomux directory), `file`
/// holding `data` (pseudo-random bytes), and a `go` flag file that a job
/// script can wait for (see [`Scene::cat_after_go`]; create it to let the
/// job go on).
pub struct Scene {
    pub dir: PathBuf,
    pub job: PathBuf,
    pub data: Vec<u8>,
    pub file: PathBuf,
    pub go: PathBuf,
    pub cleanup: Cleanup,
}

impl Scene {
    /// `len` bytes of [`pattern`]`(len, seed)` in `dir/data`.
    pub fn new(tag: &str, len: usize, seed: u64) -> Scene {
        let (dir, cleanup) = scratch(tag);
        let data = pattern(len, seed);
        let file = dir.join("data");
        write_file(&file, &data);
        Scene {
            job: dir.join("job"),
            go: dir.join("go"),
            dir,
            data,
            file,
            cleanup,
        }
    }

    /// Shell: wait until the `go` file exists, then `cat` the data.
    pub fn cat_after_go(&self) -> String {
        format!(
            "while [ ! -e {} ]; do sleep 0.01; done; cat {}",
            self.go.display(),
            self.file.display()
        )
    }

    /// Starts `iomux-spawn FLAGS JOB sh -c SCRIPT` (stdin /dev/null).
    pub fn spawn(&mut self, flags: &[&str], script: &str) -> Spawned {
        spawn(
            &mut self.cleanup,
            flags,
            &self.job,
            &["sh", "-c", script],
            Stdio::null(),
        )
    }
}
