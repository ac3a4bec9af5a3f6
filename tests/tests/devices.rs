//! The BPF device program (wshd::devices) against the real kernel, without
//! a container: the program is attached to a cgroup v2 directory of our own
//! (`warden-devtest-<pid>-<n>` under the test's own v2 cgroup), a shell is
//! moved into it and tries mknod and open on a tmpfs of its own (in a
//! private mount namespace). It runs on any host with a cgroup2 mount: the
//! project's v1 host has one at /sys/fs/cgroup/unified, and device programs
//! attached there are enforced as on a v2-only host. `make test-v2` runs it
//! in the cgroup v2 VM too. The container-level test is
//! `scripts::v2_device_program_holds_inside`.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use warden_tests::{require_root, scratch, unique, Cleanup};
use wshd::devices::{allowlist, has_program, load, v2_dir, v2_path, Rule};

/// The test process's own cgroup v2 directory, if there is a cgroup2 mount.
fn own_v2_dir() -> Option<PathBuf> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    v2_dir(&mi, v2_path(&cg)?)
}

/// Each probe prints `NAME=ok` or `NAME=no`.
const PROBE: &str = r#"read x
exec unshare -m sh -c '
mount -t tmpfs -o mode=700 devtest "$D" || exit 9
try() { if (eval "$2"); then echo "$1=ok"; else echo "$1=no"; fi; }
try mknod-sda "mknod $D/sda b 8 0"
try mknod-mem "mknod $D/mem c 1 1"
try mknod-null "mknod $D/null c 1 3"
try mknod-pts "mknod $D/pts c 136 7"
try open-null "exec 3<>$D/null"
try open-dev-null "exec 3<>/dev/null"
try open-kmsg "exec 3>/dev/kmsg"
try read-zero "head -c 1 /dev/zero >/dev/null"
'
"#;

/// Runs [`PROBE`] in cgroup `cg` (None: the test's own) with its tmpfs on
/// `dir`; returns its output.
fn probe(cg: Option<&Path>, dir: &Path) -> String {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(PROBE)
        .env("D", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut g = Cleanup::new();
    g.kill_pid(child.id() as i32);
    if let Some(cg) = cg {
        std::fs::write(cg.join("cgroup.procs"), child.id().to_string()).unwrap();
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "probe: {:?}\n{text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

fn results(out: &str) -> Vec<(&str, &str)> {
    out.lines().filter_map(|l| l.split_once('=')).collect()
}

#[test]
fn device_program_enforced_in_a_cgroup() {
    require_root();
    let Some(parent) = own_v2_dir() else {
        if std::env::var_os(warden_tests::REQUIRE_CGROUP_V2).is_some() {
            panic!("no cgroup2 mount");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED device_program_enforced_in_a_cgroup: no cgroup2 mount on this host"
        );
        return;
    };
    let (dir, _scratch) = scratch("devbpf");
    let mut g = Cleanup::new();
    let cg = parent.join(unique("warden-devtest"));
    std::fs::create_dir(&cg).unwrap();
    g.rmdir_cgroup(cg.clone());
    let sub = cg.join("sub");
    std::fs::create_dir(&sub).unwrap();

    // Without a program everything below works: the probe can tell.
    let free = probe(None, &dir);
    assert!(
        results(&free).iter().all(|(_, v)| *v == "ok"),
        "the test's own cgroup already limits devices:\n{free}"
    );

    let prog = load(&allowlist()).unwrap();
    let cg_fd = std::fs::File::open(&cg).unwrap();
    wsys::bpf::prog_attach(
        cg_fd.as_fd(),
        prog.as_fd(),
        wsys::bpf::ATTACH_CGROUP_DEVICE,
        wsys::bpf::F_ALLOW_MULTI,
    )
    .unwrap();
    drop(prog); // the attachment keeps it
    assert!(has_program(&cg, false).unwrap());
    assert!(!has_program(&sub, false).unwrap());
    assert!(has_program(&sub, true).unwrap());

    let want = [
        ("mknod-sda", "no"),
        ("mknod-mem", "no"),
        ("mknod-null", "ok"),
        ("mknod-pts", "ok"),
        ("open-null", "ok"),
        ("open-dev-null", "ok"),
        ("open-kmsg", "no"),
        ("read-zero", "ok"),
    ];
    let out = probe(Some(&cg), &dir);
    assert_eq!(results(&out), want, "in the cgroup:\n{out}");
    // Sub-cgroups inherit it.
    let out = probe(Some(&sub), &dir);
    assert_eq!(results(&out), want, "in a sub-cgroup:\n{out}");

    // A program attached below (even one allowing everything, attached
    // non-overridable) runs in addition and cannot widen the list.
    let all = load(&[Rule::parse("a *:* rwm").unwrap()]).unwrap();
    let sub_fd = std::fs::File::open(&sub).unwrap();
    wsys::bpf::prog_attach(
        sub_fd.as_fd(),
        all.as_fd(),
        wsys::bpf::ATTACH_CGROUP_DEVICE,
        0,
    )
    .unwrap();
    assert!(has_program(&sub, false).unwrap());
    let out = probe(Some(&sub), &dir);
    assert_eq!(results(&out), want, "under an allow-all program:\n{out}");
    wsys::bpf::prog_detach(sub_fd.as_fd(), all.as_fd(), wsys::bpf::ATTACH_CGROUP_DEVICE).unwrap();
    assert!(!has_program(&sub, false).unwrap());
}
