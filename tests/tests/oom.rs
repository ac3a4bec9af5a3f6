//! End-to-end tests of `oom CGROUP_DIR` on real memory cgroups (root).
//!
//! Every cgroup is created by the test under a unique `warden-test-<pid>-N`
//! name and removed by a Cleanup guard, also when the test fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use warden_tests::{bin, require_root, run, scratch, unique, wait_for, Cleanup};

const V1_MEMORY: &str = "/sys/fs/cgroup/memory";
const V2_ROOT: &str = "/sys/fs/cgroup/unified";

fn mkcgroup(c: &mut Cleanup, root: &str) -> PathBuf {
    let dir = Path::new(root).join(unique("warden-test"));
    std::fs::create_dir(&dir).expect("create cgroup");
    c.rmdir_cgroup(dir.clone());
    dir
}

/// Starts `oom dir` and waits until it has registered (v1: it holds an
/// eventfd; v2: it has memory.events open).
fn start_oom(c: &mut Cleanup, dir: &Path) -> Child {
    let child = Command::new(bin("oom"))
        .arg(dir)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start oom");
    c.kill_pid(child.id() as i32);
    let pid = child.id();
    assert!(
        wait_for(Duration::from_secs(5), || fd_targets(pid)
            .iter()
            .any(|t| t.contains("eventfd") || t.ends_with("memory.events"))),
        "oom did not arm"
    );
    child
}

fn fd_targets(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|l| l.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Waits up to `secs` for `child`; returns (code, stderr) or panics.
fn finish(child: Child, secs: u64) -> (i32, String) {
    let pid = child.id() as i32;
    let done = wait_for(Duration::from_secs(secs), || !warden_tests::alive(pid));
    assert!(done, "oom still running after {secs}s");
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts a shell that moves itself into `cg` and runs `script`.
fn run_in(c: &mut Cleanup, cg: &Path, script: &str) -> Child {
    let sh = format!("echo $$ > {}/cgroup.procs && {script}", cg.display());
    let child = Command::new("sh")
        .arg("-c")
        .arg(sh)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start memory hog");
    c.kill_pid(child.id() as i32);
    child
}

fn write(p: PathBuf, v: &str) {
    std::fs::write(&p, v).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

#[test]
fn v1_real_oom_exits_zero() {
    require_root();
    let mut c = Cleanup::new();
    let cg = mkcgroup(&mut c, V1_MEMORY);
    let oom = start_oom(&mut c, &cg);
    write(cg.join("memory.limit_in_bytes"), "16777216");
    if cg.join("memory.memsw.limit_in_bytes").exists() {
        write(cg.join("memory.memsw.limit_in_bytes"), "16777216");
    }
    // `tail` keeps an endless line from /dev/zero in memory until killed.
    let mut hog = run_in(&mut c, &cg, "exec tail /dev/zero");
    let (code, err) = finish(oom, 30);
    assert_eq!(code, 0, "stderr: {err}");
    let st = hog.wait().unwrap();
    assert!(!st.success(), "the hog should have been OOM-killed");
    let ctl = std::fs::read_to_string(cg.join("memory.oom_control")).unwrap();
    assert!(!ctl.contains("oom_kill 0"), "{ctl}");
}

#[test]
fn v1_removed_cgroup_without_oom_exits_nonzero() {
    require_root();
    let mut c = Cleanup::new();
    let cg = mkcgroup(&mut c, V1_MEMORY);
    write(cg.join("memory.limit_in_bytes"), "67108864");
    // Some modest use below the limit, then the cgroup goes away.
    let mut idle = run_in(&mut c, &cg, "exec sleep 30");
    let oom = start_oom(&mut c, &cg);
    std::thread::sleep(Duration::from_millis(100));
    idle.kill().unwrap();
    idle.wait().unwrap();
    assert!(wait_for(Duration::from_secs(5), || std::fs::remove_dir(
        &cg
    )
    .is_ok()));
    let (code, err) = finish(oom, 10);
    assert_ne!(code, 0);
    assert!(err.contains("removed"), "{err}");
}

#[test]
fn bad_paths_exit_nonzero_with_a_message() {
    require_root();
    let (dir, _c) = scratch("oom-bad");
    for (arg, want) in [
        (dir.join("missing"), "does not exist"),
        (dir.clone(), "not a memory cgroup"),
        (PathBuf::from("/sys/fs/cgroup/cpu"), "not a memory cgroup"),
    ] {
        let (code, _, err) = run(Command::new(bin("oom")).arg(&arg));
        let err = String::from_utf8(err).unwrap();
        assert_eq!(code, 1, "{}", arg.display());
        assert!(err.starts_with("oom: ") && err.contains(want), "{err}");
        assert_eq!(err.lines().count(), 1);
    }
}

/// cgroup v2: only where the unified hierarchy has a memory controller
/// (this host has none; the test then checks that and stops).
#[test]
fn v2_real_oom_exits_zero_where_available() {
    require_root();
    let controllers =
        std::fs::read_to_string(Path::new(V2_ROOT).join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "memory") {
        eprintln!("no cgroup v2 memory controller at {V2_ROOT}: v2 OOM not exercised");
        return;
    }
    let mut c = Cleanup::new();
    let subtree = std::fs::read_to_string(Path::new(V2_ROOT).join("cgroup.subtree_control"))
        .unwrap_or_default();
    assert!(
        subtree.split_whitespace().any(|c| c == "memory"),
        "memory controller not enabled for children of {V2_ROOT}"
    );
    let cg = mkcgroup(&mut c, V2_ROOT);
    let oom = start_oom(&mut c, &cg);
    write(cg.join("memory.max"), "16777216");
    if cg.join("memory.swap.max").exists() {
        write(cg.join("memory.swap.max"), "0");
    }
    let mut hog = run_in(&mut c, &cg, "exec tail /dev/zero");
    let (code, err) = finish(oom, 30);
    assert_eq!(code, 0, "stderr: {err}");
    assert!(!hog.wait().unwrap().success());
}
