//! Fixtures for the tests that start wshd themselves (tests/tests/wshd.rs,
//! security.rs, usage.rs): a scratch container directory holding `run/`,
//! `lib/` (the hooks) and `root/` (a private copy of the busybox rootfs),
//! and wshd's command line for it.

use crate::{bin, require_root, rootfs, scratch, Cleanup};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The after-clone hook every fixture uses: records the container init's
/// host pid in `run/wshd.pid` (see [`ContainerDir::wshd_pid`]).
pub const RECORD_PID: &str =
    "#!/bin/sh\ncd \"$(dirname \"$0\")/..\"\necho \"$PID\" > run/wshd.pid\n";

/// Writes an executable file (a hook, a script).
pub fn write_exec(p: &Path, body: &str) {
    std::fs::write(p, body).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `--run DIR --lib DIR --root DIR` for the container directory `dir`.
pub fn wshd_args(dir: &Path) -> Vec<OsString> {
    ["run", "lib", "root"]
        .iter()
        .flat_map(|d| [format!("--{d}").into(), dir.join(d).into()])
        .collect()
}

/// A scratch container directory, removed (and its wshd killed, once
/// [`ContainerDir::wshd_pid`] found it) by `cleanup`.
pub struct ContainerDir {
    pub path: PathBuf,
    pub cleanup: Cleanup,
}

impl ContainerDir {
    /// `run/`, empty `lib/`, and `root/` copied from the rootfs.
    pub fn new(tag: &str) -> ContainerDir {
        require_root();
        let (path, cleanup) = scratch(tag);
        for d in ["run", "lib"] {
            std::fs::create_dir(path.join(d)).unwrap();
        }
        let st = Command::new("cp")
            .arg("-a")
            .arg(rootfs())
            .arg(path.join("root"))
            .status()
            .unwrap();
        assert!(st.success(), "copy rootfs");
        ContainerDir { path, cleanup }
    }

    /// Writes hook `name` (e.g. `hook-child-after-pivot.sh`) into `lib/`.
    pub fn hook(&self, name: &str, body: &str) {
        write_exec(&self.path.join("lib").join(name), body);
    }

    /// `--run DIR --lib DIR --root DIR` for this directory.
    pub fn wshd_args(&self) -> Vec<OsString> {
        wshd_args(&self.path)
    }

    /// `wshd --run ... --lib ... --root ...` (more flags may follow).
    pub fn wshd(&self) -> Command {
        let mut c = Command::new(bin("wshd"));
        c.args(self.wshd_args());
        c
    }

    /// The pid the after-clone hook recorded; registers it to be killed on
    /// cleanup (killing wshd ends the whole container).
    pub fn wshd_pid(&mut self) -> Option<i32> {
        let pid = std::fs::read_to_string(self.path.join("run/wshd.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        self.cleanup.kill_pid(pid);
        Some(pid)
    }
}
