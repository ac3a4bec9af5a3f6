//! End-to-end tests of the resource limits (issue 11): limit_memory with
//! the OOM watch, limit_cpu, limit_disk, the default pids/memory/disk
//! limits and info's stats, each enforced for real inside a container.
//!
//! Version-agnostic: each test reads the container's cgroups from its
//! `run/cgroups` and checks the v1 or v2 files accordingly, so the same
//! tests run on this cgroup v1 host and in the cgroup v2 VM (`make
//! test-v2` runs this whole file there, with WARDEN_REQUIRE_CGROUP_V2=1,
//! which makes every test assert that it really ran on v2).
//!
//! Every server has its own prefix, depot and pools (warden_tests::server),
//! and its guard runs `warden clear` when a test fails.

use std::path::{Path, PathBuf};
use std::time::Duration;
use warden::client::Client;
use warden::proto::{self, Type};
use warden_tests::server::{
    create_default, destroy, err_text, info, prefix_leftovers, run, spawn, try_run, Opts, Srv,
};
use warden_tests::wait_for;

const UNLIMITED: u64 = 9_223_372_036_854_771_712;

fn v2() -> bool {
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").is_file();
    if std::env::var_os("WARDEN_REQUIRE_CGROUP_V2").is_some() {
        assert!(
            v2,
            "WARDEN_REQUIRE_CGROUP_V2 is set but the host is not cgroup v2"
        );
    }
    v2
}

/// The container's cgroup dir for `subsystem` (v1) or its unified one.
fn cgroup(c: &mut Client, h: &str, subsystem: &str) -> PathBuf {
    let path = info(c, h).unwrap().container_path.unwrap();
    let t = std::fs::read_to_string(Path::new(&path).join("run/cgroups")).unwrap();
    t.lines()
        .find_map(|l| {
            let (k, d) = l.split_once(' ')?;
            (k == "unified" || k.split(',').any(|x| x == subsystem)).then(|| PathBuf::from(d))
        })
        .unwrap_or_else(|| panic!("no {subsystem} cgroup in {t:?}"))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

fn limit_memory(c: &mut Client, h: &str, bytes: Option<u64>) -> u64 {
    let r: proto::LimitMemoryResponse = c
        .call(
            Type::LimitMemory,
            &proto::LimitMemoryRequest {
                handle: Some(h.into()),
                limit_in_bytes: bytes,
            },
        )
        .expect("limit_memory");
    r.limit_in_bytes.unwrap()
}

fn limit_cpu(c: &mut Client, h: &str, shares: Option<u64>) -> u64 {
    let r: proto::LimitCpuResponse = c
        .call(
            Type::LimitCpu,
            &proto::LimitCpuRequest {
                handle: Some(h.into()),
                limit_in_shares: shares,
            },
        )
        .expect("limit_cpu");
    r.limit_in_shares.unwrap()
}

fn limit_disk(
    c: &mut Client,
    req: proto::LimitDiskRequest,
) -> Result<proto::LimitDiskResponse, warden::client::ClientError> {
    c.call(Type::LimitDisk, &req)
}

fn server(tag: &str, keys: &[&str]) -> Srv {
    let o = Opts {
        server_keys: keys.iter().map(|k| k.to_string()).collect(),
        ..Default::default()
    };
    Srv::start(tag, o)
}

/// A job that holds about `mib` MiB in a shell variable.
fn hog(mib: u32) -> String {
    format!(
        "a=$(head -c {} /dev/zero | tr '\\0' x); echo ${{#a}}",
        mib as u64 * 1024 * 1024
    )
}

fn wait_oom_stopped(c: &mut Client, h: &str) {
    let ok = wait_for(Duration::from_secs(20), || {
        let i = info(c, h).unwrap();
        i.state.as_deref() == Some("stopped") && i.events.iter().any(|e| e == "out of memory")
    });
    assert!(ok, "no OOM stop: {:?}", info(c, h).unwrap());
}

/// Live `oom` helpers watching `dir` (zombies have no command line).
fn oom_helpers(dir: &Path) -> Vec<i32> {
    let want = format!("/oom\0{}\0", dir.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmd).contains(&want).then_some(pid)
        })
        .collect()
}

#[test]
fn memory_limit_oom_event_stops_container_also_after_restart() {
    let v2 = v2();
    let mut s = server("mem", &[]);
    let mut c = s.client();
    let h = create_default(&mut c);
    assert_eq!(limit_memory(&mut c, &h, None), UNLIMITED);
    let mem = cgroup(&mut c, &h, "memory");
    let mib = 1024 * 1024;
    // Shrink from unlimited, then grow: both orders of the v1 writes.
    assert_eq!(limit_memory(&mut c, &h, Some(100 * mib)), 100 * mib);
    assert_eq!(limit_memory(&mut c, &h, Some(200 * mib)), 200 * mib);
    assert_eq!(limit_memory(&mut c, &h, Some(32 * mib)), 32 * mib);
    if v2 {
        assert_eq!(read(&mem.join("memory.max")), (32 * mib).to_string());
        if mem.join("memory.swap.max").exists() {
            assert_eq!(read(&mem.join("memory.swap.max")), "0");
        }
    } else {
        assert_eq!(
            read(&mem.join("memory.limit_in_bytes")),
            (32 * mib).to_string()
        );
        let memsw = mem.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            assert_eq!(read(&memsw), (32 * mib).to_string());
        }
    }
    assert_eq!(limit_memory(&mut c, &h, None), 32 * mib);
    // Below the limit: fine, and the container stays active.
    let r = run(&mut c, &h, &hog(4));
    assert_eq!(r.exit_status, Some(0), "{r:?}");
    let i = info(&mut c, &h).unwrap();
    assert_eq!(i.state.as_deref(), Some("active"));
    let m = i.memory_stat.expect("memory_stat");
    assert_eq!(m.hierarchical_memory_limit, Some(32 * mib));
    assert!(m.rss.is_some() && m.cache.is_some(), "{m:?}");
    let cpu = i.cpu_stat.expect("cpu_stat");
    assert!(cpu.usage.unwrap() > 0, "{cpu:?}");
    assert!(cpu.user.is_some() && cpu.system.is_some(), "{cpu:?}");
    // Past it: the OOM event and a stopped container.
    let _ = try_run(&mut c, &h, &hog(96));
    wait_oom_stopped(&mut c, &h);

    // Re-armed for an adopted container after a restart (SIGKILL: no
    // drain, as warden's "after kill").
    let h2 = create_default(&mut c);
    limit_memory(&mut c, &h2, Some(32 * mib));
    drop(c);
    s.signal_and_wait(nix::sys::signal::Signal::SIGKILL);
    s.run();
    let mut c = s.client();
    assert_eq!(info(&mut c, &h2).unwrap().state.as_deref(), Some("active"));
    // One watch: the killed server's helper was ended, a new one armed.
    let mem2 = cgroup(&mut c, &h2, "memory");
    assert!(
        wait_for(Duration::from_secs(10), || oom_helpers(&mem2).len() == 1),
        "{:?}",
        oom_helpers(&mem2)
    );
    let _ = try_run(&mut c, &h2, &hog(96));
    wait_oom_stopped(&mut c, &h2);
    for h in [&h, &h2] {
        destroy(&mut c, h).expect("destroy");
    }
}

#[test]
fn cpu_shares_set_and_read_back() {
    let v2 = v2();
    let s = server("cpu", &[]);
    let mut c = s.client();
    let h = create_default(&mut c);
    let cpu = cgroup(&mut c, &h, "cpu");
    let default = limit_cpu(&mut c, &h, None);
    if v2 {
        // cpu.weight 100 reads back as runc's inverse conversion.
        assert_eq!(read(&cpu.join("cpu.weight")), "100");
        assert_eq!(default, 2597);
    } else {
        assert_eq!(default, 1024);
    }
    assert_eq!(limit_cpu(&mut c, &h, Some(100)), 100);
    assert_eq!(limit_cpu(&mut c, &h, Some(200)), 200);
    assert_eq!(limit_cpu(&mut c, &h, None), 200);
    if v2 {
        // 1 + (200 - 2) * 9999 / 262142
        assert_eq!(read(&cpu.join("cpu.weight")), "8");
    } else {
        assert_eq!(read(&cpu.join("cpu.shares")), "200");
    }
    // Never below 2.
    assert_eq!(limit_cpu(&mut c, &h, Some(1)), 2);
    if v2 {
        assert_eq!(read(&cpu.join("cpu.weight")), "1");
    }
    // A stopped container still answers; a destroyed one does not.
    destroy(&mut c, &h).unwrap();
    let e = err_text(c.call::<_, proto::LimitCpuResponse>(
        Type::LimitCpu,
        &proto::LimitCpuRequest {
            handle: Some(h.clone()),
            limit_in_shares: None,
        },
    ));
    assert_eq!(e, "unknown handle");
}

#[test]
fn fork_bomb_is_held_to_the_pids_limit() {
    v2();
    let s = server("pids", &["container_pids_limit: 40"]);
    let mut c = s.client();
    let bomb = create_default(&mut c);
    let other = create_default(&mut c);
    let pids = cgroup(&mut c, &bomb, "pids");
    assert_eq!(read(&pids.join("pids.max")), "40");
    // Bounded: 100 forks tried, each child sleeping, so the limit is hit
    // and stays hit.
    let j = spawn(
        &mut c,
        &bomb,
        "i=0; while [ $i -lt 100 ]; do sleep 60 & i=$((i+1)); done; echo tried; wait",
    );
    let events = pids.join("pids.events");
    assert!(
        wait_for(Duration::from_secs(30), || {
            read(&events)
                .lines()
                .any(|l| l.starts_with("max ") && l != "max 0")
        }),
        "the pids limit was never hit: {}",
        read(&events)
    );
    let current: u64 = read(&pids.join("pids.current")).parse().unwrap();
    assert!(current <= 40, "pids.current {current} > 40");
    // The other container and the server still work.
    let r = run(&mut c, &other, "echo alive");
    assert_eq!(r.stdout.as_deref(), Some(&b"alive\n"[..]));
    let i = info(&mut c, &bomb).unwrap();
    assert_eq!(i.state.as_deref(), Some("active"));
    assert!(i.job_ids.contains(&(j as u64)));
    for h in [&bomb, &other] {
        destroy(&mut c, h).expect("destroy");
    }
}

fn dd(c: &mut Client, h: &str, mib: u32) -> proto::RunResponse {
    run(
        c,
        h,
        &format!("dd if=/dev/zero of=/tmp/fill bs=1048576 count={mib} 2>&1; echo status=$?; sync"),
    )
}

#[test]
fn disk_limit_is_enforced_and_reported() {
    v2();
    let s = server("disk", &[]);
    let mut c = s.client();
    let h = create_default(&mut c);
    let mib = 1024 * 1024;
    let req = |r: proto::LimitDiskRequest| proto::LimitDiskRequest {
        handle: Some(h.clone()),
        ..r
    };
    let cur = limit_disk(&mut c, req(Default::default())).unwrap();
    // The image's size (quota.disk_image_size, 4 GiB), less ext4's own.
    let cap = cur.byte_limit.unwrap();
    assert!(cap > 3 << 30 && cap <= 4 << 30, "{cur:?}");
    assert_eq!(cur.block_limit, Some(cap.div_ceil(1024)));
    assert!(cur.inode_hard.unwrap() > 1000, "{cur:?}");
    let r = limit_disk(
        &mut c,
        req(proto::LimitDiskRequest {
            byte_limit: Some(8 * mib),
            ..Default::default()
        }),
    )
    .unwrap();
    assert_eq!(r.byte_limit, Some(8 * mib));
    assert_eq!(r.byte_hard, Some(8 * mib));
    assert_eq!(r.block_hard, Some(8 * 1024));
    // Past the limit: ENOSPC (or EDQUOT) inside the container.
    let out = dd(&mut c, &h, 20);
    let text = String::from_utf8_lossy(out.stdout.as_deref().unwrap_or_default()).into_owned();
    assert!(
        text.contains("No space left on device") || text.contains("Disk quota exceeded"),
        "{text}"
    );
    assert!(!text.contains("status=0"), "{text}");
    let d = info(&mut c, &h).unwrap().disk_stat.unwrap();
    let used = d.bytes_used.unwrap();
    assert!(used > 6 * mib && used <= 8 * mib, "disk_stat {d:?}");
    assert!(d.inodes_used.unwrap() >= 2, "{d:?}");
    // Raised (blocks this time): the same write fits.
    run(&mut c, &h, "rm -f /tmp/fill");
    let r = limit_disk(
        &mut c,
        req(proto::LimitDiskRequest {
            block_limit: Some(32 * 1024),
            ..Default::default()
        }),
    )
    .unwrap();
    assert_eq!(r.byte_limit, Some(32 * mib));
    let out = dd(&mut c, &h, 20);
    let text = String::from_utf8_lossy(out.stdout.as_deref().unwrap_or_default()).into_owned();
    assert!(text.contains("status=0"), "{text}");
    let d = info(&mut c, &h).unwrap().disk_stat.unwrap();
    assert!(d.bytes_used.unwrap() >= 20 * mib, "{d:?}");
    // Soft limits cannot be enforced here: a clear error.
    let e = err_text(limit_disk(
        &mut c,
        req(proto::LimitDiskRequest {
            byte_soft: Some(mib),
            ..Default::default()
        }),
    ));
    assert!(e.contains("soft block limit is not supported"), "{e}");
    destroy(&mut c, &h).unwrap();
    assert_eq!(prefix_leftovers(&s.prefix, &s.depot), Vec::<String>::new());
}

#[test]
fn disk_quota_disabled_creates_no_image() {
    v2();
    let s = server("noquota", &["quota:", "  disk_quota_enabled: false"]);
    let mut c = s.client();
    let h = create_default(&mut c);
    let path = info(&mut c, &h).unwrap().container_path.unwrap();
    assert!(!Path::new(&path).join("disk.img").exists());
    let r = limit_disk(
        &mut c,
        proto::LimitDiskRequest {
            handle: Some(h.clone()),
            byte_limit: Some(1 << 20),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r, proto::LimitDiskResponse::default());
    // Stats still come from the upper layer.
    run(&mut c, &h, "head -c 100000 /dev/zero > /tmp/x");
    let d = info(&mut c, &h).unwrap().disk_stat.unwrap();
    assert!(d.bytes_used.unwrap() >= 100000, "{d:?}");
    destroy(&mut c, &h).unwrap();
}

/// Default limits from the config, and create/destroy cycles with every
/// limit set leave no cgroup, mount, loop device or oom helper behind.
#[test]
fn default_limits_and_no_leaks_over_cycles() {
    v2();
    let s = server(
        "leak",
        &[
            "container_pids_limit: 100",
            "container_memory_limit: 67108864",
            "container_disk_limit: 16777216",
            "quota:",
            "  disk_image_size: 268435456",
        ],
    );
    let mut c = s.client();
    for n in 0..8 {
        let h = create_default(&mut c);
        assert_eq!(read(&cgroup(&mut c, &h, "pids").join("pids.max")), "100");
        assert_eq!(limit_memory(&mut c, &h, None), 64 << 20);
        let d = limit_disk(
            &mut c,
            proto::LimitDiskRequest {
                handle: Some(h.clone()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(d.byte_limit, Some(16 << 20));
        if n % 2 == 0 {
            limit_memory(&mut c, &h, Some(48 << 20));
            limit_cpu(&mut c, &h, Some(50));
            run(&mut c, &h, "echo x > /tmp/x");
        }
        destroy(&mut c, &h).expect("destroy");
    }
    assert_eq!(prefix_leftovers(&s.prefix, &s.depot), Vec::<String>::new());
    // No oom helper outlives its container.
    let needle = format!("warden-{}/", s.prefix);
    let helpers: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .filter(|l| l.contains(&needle))
        .collect();
    assert!(helpers.is_empty(), "{helpers:?}");
}
