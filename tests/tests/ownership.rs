//! End-to-end tests of what a server owns and how it lets go (issue 10):
//! - a second server on the same depot or resource prefix (or a depot
//!   inside another's) exits non-zero naming the running one, and the
//!   running one's clients never notice; `warden clear` refuses beside it;
//! - a container that wedges a copy cannot hold up destroy or stop --kill,
//!   and a copy whose stream stalls ends at server.copy_idle_timeout;
//! - `warden clear` after a drain (SIGTERM) or a SIGKILL of the server
//!   removes every host resource of that server, its nft table included.
//!
//! `WARDEN_SECOND_SERVERS=N` sets how many second servers the first test
//! starts (default 5).

use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use warden::client::Client;
use warden::proto::{self, Type};
use warden_tests::server::{
    create_default, destroy, err_text, prefix_leftovers, run, run_privileged, Opts, Srv,
};
use warden_tests::{bin, wait_for};

/// Starts `warden server --config cfg`, which must exit by itself within
/// 20 s: (exit code, stderr).
fn server_start_fails(cfg: &Path) -> (i32, String) {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(bin("warden"))
        .args(["server", "--config"])
        .arg(cfg)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            return (st.code().unwrap_or(128 + st.signal().unwrap_or(0)), err);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the second server kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `s`'s config with `key: value` lines replaced (keys are unique in it).
fn config_with(s: &Srv, name: &str, repl: &[(&str, String)]) -> std::path::PathBuf {
    let text = std::fs::read_to_string(&s.cfg).unwrap();
    let mut out = String::new();
    for l in text.lines() {
        let key = l.trim_start().split(':').next().unwrap_or("");
        match repl.iter().find(|(k, _)| *k == key) {
            Some((k, v)) => {
                let indent = &l[..l.len() - l.trim_start().len()];
                out.push_str(&format!("{indent}{k}: {v}\n"));
            }
            None => out.push_str(&format!("{l}\n")),
        }
    }
    let p = s.dir.join(name);
    std::fs::write(&p, out).unwrap();
    p
}

#[test]
fn second_server_exits_naming_the_first_and_changes_nothing() {
    let s = Srv::start("own", Opts::default());
    let pid = s.pid();
    let cfg = std::fs::canonicalize(&s.cfg).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let worker = {
        let (stop, done, failures) = (stop.clone(), done.clone(), failures.clone());
        let mut c = s.client();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let r = warden_tests::server::create(&mut c, Default::default());
                let h = match r {
                    Ok(h) => h,
                    Err(e) => {
                        failures.lock().unwrap().push(format!("create: {e:?}"));
                        continue;
                    }
                };
                let out = run(&mut c, &h, "echo alive");
                if out.exit_status != Some(0) {
                    failures.lock().unwrap().push(format!("run: {out:?}"));
                }
                if let Err(e) = destroy(&mut c, &h) {
                    failures.lock().unwrap().push(format!("destroy: {e:?}"));
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    let n: usize = std::env::var("WARDEN_SECOND_SERVERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    for i in 0..n {
        let before = done.load(Ordering::SeqCst);
        let (code, err) = server_start_fails(&s.cfg);
        assert_ne!(code, 0, "attempt {i}: {err}");
        assert!(
            err.contains(&format!("pid={pid} config={}", cfg.display())),
            "attempt {i} does not name the running server: {err}"
        );
        // The live server keeps serving between attempts.
        assert!(
            wait_for(Duration::from_secs(60), || done.load(Ordering::SeqCst)
                > before),
            "no create/run/destroy completed after attempt {i}"
        );
    }
    // Another socket and prefix, but a depot inside the running one's.
    let inner = config_with(
        &s,
        "inner.yml",
        &[
            (
                "container_depot_path",
                s.depot.join("x").display().to_string(),
            ),
            (
                "unix_domain_path",
                s.dir.join("b.sock").display().to_string(),
            ),
            ("resource_prefix", format!("{}b", &s.prefix[..5])),
            ("pidfile", s.dir.join("b.pid").display().to_string()),
        ],
    );
    let (code, err) = server_start_fails(&inner);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains("owns depot") && err.contains(&format!("pid={pid}")),
        "{err}"
    );
    // Another depot and socket, the same resource prefix.
    let other = s.dir.join("other-depot");
    let same_prefix = config_with(
        &s,
        "prefix.yml",
        &[
            ("container_depot_path", other.display().to_string()),
            (
                "unix_domain_path",
                s.dir.join("c.sock").display().to_string(),
            ),
            ("pidfile", s.dir.join("c.pid").display().to_string()),
        ],
    );
    let (code, err) = server_start_fails(&same_prefix);
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!("resource prefix {}", s.prefix)),
        "{err}"
    );
    // warden clear refuses beside the running server.
    let out = Command::new(bin("warden"))
        .args(["clear", "--config"])
        .arg(&s.cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "clear ran beside the server");
    assert!(err.contains(&format!("pid={pid}")), "{err}");
    stop.store(true, Ordering::SeqCst);
    worker.join().unwrap();
    let f = failures.lock().unwrap();
    assert!(
        f.is_empty(),
        "the live server's clients saw failures: {f:?}"
    );
    let log = s.log();
    for bad in ["no usable snapshot", "removing stale", "destroying"] {
        assert!(
            !log.contains(bad),
            "the live server's log has {bad:?}:\n{log}"
        );
    }
    // The live server still answers.
    let mut c = s.client();
    let _: proto::PingResponse = c.call(Type::Ping, &proto::PingRequest {}).unwrap();
}

/// Makes the container's /bin/sh a script that sleeps for ever (the copy
/// helpers run `/bin/sh -c`), so every copy hangs inside the container.
fn wedge_sh(c: &mut Client, h: &str) {
    let r = run_privileged(
        c,
        h,
        "printf '#!/bin/bash\\nexec sleep 100000\\n' >/tmp/sh && chmod 755 /tmp/sh && mv -f /tmp/sh /bin/sh",
    );
    assert_eq!(r.exit_status, Some(0), "{r:?}");
}

/// Whether a `sleep 100000` runs in the container (the copy has started).
fn copy_hangs(s: &Srv, h: &str) -> bool {
    let Some(dir) = s.depot_dirs().into_iter().find(|d| {
        std::fs::read_to_string(s.depot.join(d).join("snapshot.json"))
            .is_ok_and(|t| t.contains(&format!("\"handle\":\"{h}\"")))
    }) else {
        return false;
    };
    let cgroups =
        std::fs::read_to_string(s.depot.join(dir).join("run/cgroups")).unwrap_or_default();
    let Some(cg) = cgroups.lines().next().and_then(|l| l.split_once(' ')) else {
        return false;
    };
    let procs = std::fs::read_to_string(Path::new(cg.1.trim()).join("cgroup.procs"));
    procs.unwrap_or_default().split_whitespace().any(|p| {
        std::fs::read(format!("/proc/{p}/cmdline")).is_ok_and(|c| c == b"sleep\x00100000\x00")
    })
}

/// Starts copy_out of /etc on its own connection; the thread returns the
/// result and when it came.
fn copy_out_in_thread(
    s: &Srv,
    h: &str,
) -> std::thread::JoinHandle<(Result<proto::CopyOutResponse, String>, Instant)> {
    let mut c = s.client();
    let req = proto::CopyOutRequest {
        handle: Some(h.into()),
        src_path: Some("/etc".into()),
        dst_path: Some(s.dir.join(format!("out-{h}")).display().to_string()),
        owner: None,
    };
    std::thread::spawn(move || {
        let r = c.call(Type::CopyOut, &req).map_err(|e| format!("{e:?}"));
        (r, Instant::now())
    })
}

#[test]
fn a_wedged_copy_holds_up_neither_destroy_nor_stop_and_has_a_deadline() {
    let s = Srv::start(
        "wedge",
        Opts {
            server_keys: vec!["copy_idle_timeout: 6".into()],
            ..Default::default()
        },
    );
    let mut c = s.client();
    // destroy
    let h = create_default(&mut c);
    wedge_sh(&mut c, &h);
    let t = copy_out_in_thread(&s, &h);
    assert!(wait_for(Duration::from_secs(10), || copy_hangs(&s, &h)));
    let t0 = Instant::now();
    destroy(&mut c, &h).expect("destroy");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(5), "destroy took {took:?}");
    let (r, at) = t.join().unwrap();
    let e = r.expect_err("copy_out of a destroyed container");
    assert!(at.duration_since(t0) < Duration::from_secs(5), "{e}");
    assert!(
        !e.contains("copy_idle_timeout"),
        "ended by the deadline: {e}"
    );
    assert!(
        !s.dir.join(format!("out-{h}")).exists(),
        "partial output left"
    );
    // stop --kill
    let h = create_default(&mut c);
    wedge_sh(&mut c, &h);
    let t = copy_out_in_thread(&s, &h);
    assert!(wait_for(Duration::from_secs(10), || copy_hangs(&s, &h)));
    let t0 = Instant::now();
    let _: proto::StopResponse = c
        .call(
            Type::Stop,
            &proto::StopRequest {
                handle: Some(h.clone()),
                kill: Some(true),
                ..Default::default()
            },
        )
        .expect("stop --kill");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        t0.elapsed()
    );
    let (r, _) = t.join().unwrap();
    let e = r.expect_err("copy_out of a killed container");
    assert!(
        !e.contains("copy_idle_timeout"),
        "ended by the deadline: {e}"
    );
    destroy(&mut c, &h).expect("destroy");
    // The deadline alone.
    let h = create_default(&mut c);
    wedge_sh(&mut c, &h);
    let t0 = Instant::now();
    let (r, at) = copy_out_in_thread(&s, &h).join().unwrap();
    let e = r.expect_err("a stalled copy_out");
    let took = at.duration_since(t0);
    assert!(e.contains("copy_idle_timeout"), "{e}");
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(30),
        "{took:?}"
    );
    // The container stays usable (the deadline killed only the copy).
    let r = warden_tests::server::try_run(&mut c, &h, "echo alive").expect("run");
    assert_eq!(r.exit_status, Some(0));
    destroy(&mut c, &h).expect("destroy");
}

/// Processes whose command line names `needle` (the depot).
fn procs_naming(needle: &str) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            if c.contains(needle) {
                v.push(format!("{n}: {c}"));
            }
        }
    }
    v
}

#[test]
fn clear_after_drain_or_sigkill_removes_everything() {
    use nix::sys::signal::Signal;
    for sig in [Signal::SIGTERM, Signal::SIGKILL] {
        let mut s = Srv::start("clear", Opts::default());
        let mut c = s.client();
        let a = create_default(&mut c);
        let b = create_default(&mut c);
        let _: proto::NetInResponse = c
            .call(
                Type::NetIn,
                &proto::NetInRequest {
                    handle: Some(a.clone()),
                    ..Default::default()
                },
            )
            .expect("net_in");
        warden_tests::server::spawn(&mut c, &b, "sleep 1000");
        drop(c);
        s.signal_and_wait(sig);
        let table = format!("warden-{}", s.prefix);
        let nft_has = |t: &str| {
            Command::new("nft")
                .args(["list", "table", "ip", t])
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(nft_has(&table), "{sig:?}: the table should still be there");
        let out = Command::new(bin("warden"))
            .args(["clear", "--config"])
            .arg(&s.cfg)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{sig:?}: clear: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!nft_has(&table), "{sig:?}: nft table {table} left");
        let left = prefix_leftovers(&s.prefix, &s.depot);
        assert!(left.is_empty(), "{sig:?}: {left:?}");
        for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let d = e.path().join(&table);
            assert!(!d.exists(), "{sig:?}: {} left", d.display());
        }
        assert!(s.depot_dirs().is_empty(), "{sig:?}: {:?}", s.depot_dirs());
        let depot = s.depot.display().to_string();
        assert!(
            wait_for(Duration::from_secs(5), || procs_naming(&depot).is_empty()),
            "{sig:?}: processes left: {:?}",
            procs_naming(&depot)
        );
        // A server starts again on the cleared config.
        s.run();
        let mut c = s.client();
        let h = create_default(&mut c);
        let r = run(&mut c, &h, "echo again");
        assert_eq!(r.exit_status, Some(0));
        let e = err_text(destroy(&mut c, "nonexistent-handle"));
        assert_eq!(e, "unknown handle");
    }
}
