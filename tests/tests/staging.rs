//! End to end: `warden stage`, `warden start`, `warden apps`, `warden
//! stop-app` (controller/src/stage) against a real server, with the sample
//! app and buildpack of examples/. Run as root.
//!
//! The app answers HTTP with its environment; the test fetches it from the
//! host over each instance's net_in port and checks every variable the DEA
//! set (VCAP_APPLICATION and its fields, VCAP_SERVICES, MEMORY_LIMIT,
//! DATABASE_URL, HOME, TMPDIR, VCAP_APP_HOST, VCAP_APP_PORT, PORT), the
//! order of .profile.d and user variables, logs/env.log, the umask, run.pid,
//! and the job's exit status after the app is killed. Then every bad input
//! of issue 14 item 6, each leaving no container and no droplet behind.

use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use warden::proto::{self, Type};
use warden_tests::server::{list, Opts, Srv, Txt};
use warden_tests::{rootfs, rootfs_debian, scratch, wait_for, workspace};

const SERVICES: &str = r#"[
  {"name": "pg", "label": "elephantsql", "tags": ["relational"], "plan": "turtle",
   "credentials": {"uri": "postgresql://u:p@db.example:5432/d", "port": 5432},
   "provider": "dropped"},
  {"name": "cache", "label": "redis", "plan": "free", "credentials": {"uri": "redis://r.example"}}
]"#;

fn examples() -> PathBuf {
    workspace().join("examples")
}

/// `warden ARGS --socket S` run from the workspace (so `examples/...`
/// paths are relative, as in the README): (code, stdout, stderr).
fn warden(s: &Srv, args: &[&str]) -> (i32, String, String) {
    let mut cmd = std::process::Command::new(warden_tests::bin("warden"));
    cmd.current_dir(workspace())
        .args(args)
        .arg("--socket")
        .arg(&s.sock);
    let (code, o, e) = warden_tests::run(&mut cmd);
    (
        code,
        String::from_utf8_lossy(&o).into_owned(),
        String::from_utf8_lossy(&e).into_owned(),
    )
}

/// A zip archive (stored, no compression) of the files under `dir`, with
/// their Unix modes, as `zip -r` would make it.
fn zip_dir(dir: &Path) -> Vec<u8> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<(String, u32, Vec<u8>)>) {
        let mut es: Vec<_> = std::fs::read_dir(d).unwrap().flatten().collect();
        es.sort_by_key(|e| e.file_name());
        for e in es {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_str().unwrap().to_string();
            let md = std::fs::symlink_metadata(&p).unwrap();
            if md.is_dir() {
                out.push((format!("{rel}/"), 0o040755, vec![]));
                walk(base, &p, out);
            } else {
                out.push((
                    rel,
                    0o100000 | (md.permissions().mode() & 0o777),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    let mut files = vec![];
    walk(dir, dir, &mut files);
    let crc32 = |d: &[u8]| {
        let mut c = !0u32;
        for &b in d {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xedb8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    };
    let (mut out, mut cd) = (Vec::new(), Vec::new());
    for (name, mode, data) in &files {
        let off = out.len() as u32;
        let crc = crc32(data);
        let common = |v: &mut Vec<u8>| {
            v.extend(0u16.to_le_bytes()); // flags
            v.extend(0u16.to_le_bytes()); // stored
            v.extend([0u8; 4]); // time, date
            v.extend(crc.to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((data.len() as u32).to_le_bytes());
            v.extend((name.len() as u16).to_le_bytes());
        };
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend(20u16.to_le_bytes());
        common(&mut out);
        out.extend(0u16.to_le_bytes());
        out.extend(name.as_bytes());
        out.extend(data);
        cd.extend(0x0201_4b50u32.to_le_bytes());
        cd.extend((3u16 << 8 | 20).to_le_bytes());
        cd.extend(20u16.to_le_bytes());
        common(&mut cd);
        cd.extend([0u8; 8]); // extra, comment, disk, internal attributes
        cd.extend((mode << 16).to_le_bytes());
        cd.extend(off.to_le_bytes());
        cd.extend(name.as_bytes());
    }
    let cd_off = out.len() as u32;
    out.extend(&cd);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((files.len() as u16).to_le_bytes());
    out.extend((files.len() as u16).to_le_bytes());
    out.extend((cd.len() as u32).to_le_bytes());
    out.extend(cd_off.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

/// Files in `dir` other than `keep`.
fn others(dir: &Path, keep: &[&str]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

/// Stages the sample app; the flags to add to stage/start (`--skip-limits`
/// only when the server refuses limits, after checking that without it the
/// command fails clearly and leaves nothing).
fn stage_sample(s: &Srv, out: &Path) -> Vec<&'static str> {
    let args = [
        "stage",
        "examples/env-app",
        "--buildpack",
        "examples/buildpacks/shell",
        "-o",
        out.to_str().unwrap(),
    ];
    // The README's command, with the default staging limits.
    let t = Instant::now();
    let (code, o, e) = warden(s, &args);
    eprintln!("warden stage: {:?}", t.elapsed());
    let mut extra = vec![];
    if code != 0 && e.contains("server does not support limit_memory") {
        assert_eq!(e.lines().count(), 1, "one line: {e}");
        assert!(list(&mut s.client()).is_empty(), "nothing left");
        assert!(!out.exists());
        eprintln!(
            "NOTE: server has no limit_memory ({}); staging with --skip-limits",
            e.trim()
        );
        extra.push("--skip-limits");
        let mut a: Vec<&str> = args.to_vec();
        a.extend(&extra);
        let (code, o, e) = warden(s, &a);
        assert_eq!(code, 0, "stage: {o}\n{e}");
        assert!(
            o.contains("-----> Listener: "),
            "compile output streamed: {o}"
        );
    } else {
        assert_eq!(code, 0, "stage: {o}\n{e}");
        assert!(
            o.contains("-----> Listener: "),
            "compile output streamed: {o}"
        );
    }
    assert!(
        list(&mut s.client()).is_empty(),
        "staging container destroyed"
    );
    extra
}

/// GET / over TCP from the host; the body's NAME=VALUE lines.
fn fetch_env(port: u16) -> HashMap<String, String> {
    let mut last = String::new();
    let mut got = None;
    let ok = wait_for(Duration::from_secs(20), || {
        let Ok(mut c) = std::net::TcpStream::connect_timeout(
            &format!("127.0.0.1:{port}").parse().unwrap(),
            Duration::from_secs(1),
        ) else {
            std::thread::sleep(Duration::from_millis(50));
            return false;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = c.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut body = String::new();
        let _ = c.read_to_string(&mut body);
        last = body.clone();
        if let Some((head, rest)) = body.split_once("\r\n\r\n") {
            if head.starts_with("HTTP/1.0 200") && rest.contains("VCAP_APPLICATION=") {
                got = Some(rest.to_string());
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        false
    });
    assert!(
        ok,
        "no environment from 127.0.0.1:{port}; last answer {last:?}"
    );
    got.unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Stage, start 2 instances, check each one's environment, kill one.
fn stage_start_check(tag: &str, rootfs: PathBuf) {
    let t0 = Instant::now();
    let s = Srv::start(
        tag,
        Opts {
            rootfs: Some(rootfs),
            ..Default::default()
        },
    );
    let (dir, _g) = scratch(tag);
    let droplet = dir.join("env-app.tgz");
    let extra = stage_sample(&s, &droplet);
    assert!(droplet.is_file());
    assert_eq!(
        others(&dir, &["env-app.tgz"]),
        Vec::<String>::new(),
        "no temporary files"
    );
    let services = dir.join("services.json");
    std::fs::write(&services, SERVICES).unwrap();
    let hook = dir.join("before_start.sh");
    std::fs::write(
        &hook,
        "printf '%s %s %s\\n' \"$(id -u)\" \"$VCAP_APP_PORT\" \"$(umask)\" > hook.out\n",
    )
    .unwrap();

    let before = now();
    let mut args = vec![
        "start",
        droplet.to_str().unwrap(),
        "--instances",
        "2",
        "--memory",
        "128",
        "--disk",
        "200",
        "--services",
        services.to_str().unwrap(),
        "--uri",
        "env-app.example.com",
        "--env",
        "SAMPLE_OVERRIDE=from-user",
        "--env",
        "USER_HOME=$HOME",
        "--env",
        "QUOTED=a \"b\" c",
        "--before-start",
        hook.to_str().unwrap(),
    ];
    args.extend(&extra);
    let t = Instant::now();
    let (code, o, e) = warden(&s, &args);
    eprintln!("warden start --instances 2: {:?}", t.elapsed());
    assert_eq!(code, 0, "start: {o}\n{e}");
    let lines: Vec<Vec<String>> = o
        .lines()
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    assert_eq!(lines.len(), 2, "{o}");
    let mut instance_ids = vec![];
    let mut app_ids = vec![];
    for (i, l) in lines.iter().enumerate() {
        let (h, addr, job) = (&l[0], &l[1], &l[2]);
        assert!(h.starts_with(&format!("app-env-app-{i}-")), "{h}");
        let port: u16 = addr.strip_prefix("127.0.0.1:").unwrap().parse().unwrap();
        let env = fetch_env(port);
        let get = |k: &str| {
            env.get(k)
                .unwrap_or_else(|| panic!("instance {i}: no {k} in {env:?}"))
                .as_str()
        };
        // VCAP_APPLICATION
        let va: Value = serde_json::from_str(get("VCAP_APPLICATION")).unwrap();
        let keys: Vec<&str> = va.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let mut want = vec![
            "limits",
            "application_version",
            "application_name",
            "application_uris",
            "version",
            "name",
            "uris",
            "users",
            "application_id",
            "instance_id",
            "instance_index",
            "host",
            "port",
            "started_at",
            "started_at_timestamp",
            "start",
            "state_timestamp",
        ];
        let mut keys_sorted = keys.clone();
        keys_sorted.sort();
        want.sort();
        assert_eq!(keys_sorted, want, "VCAP_APPLICATION keys");
        assert_eq!(va["instance_index"], i as u64);
        assert_eq!(va["host"], "0.0.0.0");
        assert_eq!(va["port"], u64::from(port));
        assert_eq!(va["limits"]["mem"], 128);
        assert_eq!(va["limits"]["disk"], 200);
        assert_eq!(va["limits"]["fds"], 16384);
        assert_eq!(va["application_name"], "env-app");
        assert_eq!(va["name"], va["application_name"]);
        assert_eq!(
            va["application_uris"],
            serde_json::json!(["env-app.example.com"])
        );
        assert_eq!(va["uris"], va["application_uris"]);
        assert_eq!(va["version"], va["application_version"]);
        assert_eq!(va["users"], Value::Null);
        let ts = va["started_at_timestamp"].as_i64().unwrap();
        assert!(
            ts >= before - 1 && ts <= now() + 1,
            "started_at_timestamp {ts}"
        );
        assert_eq!(va["state_timestamp"], va["started_at_timestamp"]);
        let sa = va["started_at"].as_str().unwrap();
        assert_eq!(sa.len(), "2014-06-26 16:59:35 +0000".len(), "{sa}");
        assert!(sa.ends_with(" +0000"), "{sa}");
        assert_eq!(va["start"], va["started_at"]);
        let iid = va["instance_id"].as_str().unwrap().to_string();
        assert!(
            iid.len() == 32 && iid.bytes().all(|b| b.is_ascii_hexdigit()),
            "{iid}"
        );
        instance_ids.push(iid);
        app_ids.push(va["application_id"].as_str().unwrap().to_string());
        // VCAP_SERVICES: grouped by label, whitelisted keys only.
        let vs: Value = serde_json::from_str(get("VCAP_SERVICES")).unwrap();
        assert_eq!(
            vs,
            serde_json::json!({
                "elephantsql": [{"name": "pg", "label": "elephantsql", "tags": ["relational"],
                    "plan": "turtle", "credentials": {"uri": "postgresql://u:p@db.example:5432/d", "port": 5432}}],
                "redis": [{"name": "cache", "label": "redis", "plan": "free",
                    "credentials": {"uri": "redis://r.example"}}]
            })
        );
        assert_eq!(get("MEMORY_LIMIT"), "128m");
        assert_eq!(get("DATABASE_URL"), "postgres://u:p@db.example:5432/d");
        assert_eq!(get("HOME"), "/home/vcap/app");
        assert_eq!(get("TMPDIR"), "/home/vcap/tmp");
        assert_eq!(get("VCAP_APP_HOST"), "0.0.0.0");
        assert_eq!(get("VCAP_APP_PORT"), port.to_string());
        assert_eq!(get("PORT"), port.to_string());
        // .profile.d sourced (the app's and the buildpack's), then user env.
        assert_eq!(get("APP_PROFILE_D"), "sourced");
        assert!(["nc", "perl"].contains(&get("SHELL_APP_LISTENER")));
        assert_eq!(get("SAMPLE_OVERRIDE"), "from-user");
        assert_eq!(get("USER_HOME"), "/home/vcap/app");
        assert_eq!(get("QUOTED"), "a \"b\" c");
        assert!(!env.contains_key("GEM_PATH"));

        // env > logs/env.log under umask 077; run.pid; tee'd stdout.
        let mut c = s.client();
        let r = warden_tests::server::run(
            &mut c,
            h,
            "cd /home/vcap && stat -c %a logs/env.log && grep -c '^VCAP_APP_PORT=' logs/env.log && cat run.pid && cat hook.out && cat logs/stdout.log",
        );
        assert_eq!(r.exit_status, Some(0), "{:?}", r.stderr.txt());
        let out = r.stdout.txt().unwrap().to_string();
        let mut ol = out.lines();
        assert_eq!(ol.next(), Some("600"), "{out}");
        assert_eq!(ol.next(), Some("1"), "{out}");
        let pid: u32 = ol.next().unwrap().trim().parse().unwrap();
        assert!(pid > 1);
        // before_start ran as vcap, with the app's environment, under umask 077.
        let hk: Vec<&str> = ol.next().unwrap().split(' ').collect();
        assert_ne!(hk[0], "0", "hook ran as root");
        assert_eq!(hk[1], port.to_string());
        assert_eq!(hk[2], "0077");
        assert!(
            ol.next().unwrap().starts_with("env-app: listening on"),
            "{out}"
        );
        let _ = job;
    }
    assert_ne!(instance_ids[0], instance_ids[1]);
    assert_eq!(app_ids[0], app_ids[1]);

    // apps: both running.
    let (code, o, e) = warden(&s, &["apps"]);
    assert_eq!(code, 0, "{e}");
    let st: Vec<&str> = o.lines().collect();
    assert_eq!(st.len(), 2, "{o}");
    for (i, l) in st.iter().enumerate() {
        assert_eq!(
            *l,
            format!("{} env-app {i} {} running", lines[i][0], lines[i][1])
        );
    }

    let (code, o, e) = warden(&s, &["apps", "--json"]);
    assert_eq!(code, 0, "{e}");
    for (i, l) in o.lines().enumerate() {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["handle"], lines[i][0].as_str());
        assert_eq!(v["index"], i as u64);
        assert_eq!(v["job_id"], lines[i][2].parse::<u64>().unwrap());
        assert_eq!(v["state"], "running");
    }

    // Kill the app of instance 0: its job ends with the app's status.
    let (h0, job0) = (&lines[0][0], lines[0][2].parse::<u32>().unwrap());
    let mut c = s.client();
    let r = warden_tests::server::run(&mut c, h0, "kill -TERM $(tail -n 1 /home/vcap/run.pid)");
    assert_eq!(r.exit_status, Some(0), "{:?}", r.stderr.txt());
    let l = warden_tests::server::link(&mut c, h0, job0).unwrap();
    assert_eq!(
        l.exit_status,
        Some(143),
        "job exit status after SIGTERM to the app"
    );
    let (_, o, _) = warden(&s, &["apps", "env-app"]);
    assert!(o.lines().next().unwrap().ends_with(" crashed"), "{o}");
    assert!(o.lines().nth(1).unwrap().ends_with(" running"), "{o}");

    // stop-app: everything goes.
    let (code, o, e) = warden(&s, &["stop-app", "env-app"]);
    assert_eq!(code, 0, "{e}");
    assert_eq!(o.lines().count(), 2);
    assert!(list(&mut s.client()).is_empty());
    let (code, _, e) = warden(&s, &["stop-app", "env-app"]);
    assert_eq!(code, 1);
    assert!(e.contains("no instances of app \"env-app\""), "{e}");
    eprintln!("{tag}: stage + start 2 + checks in {:?}", t0.elapsed());
}

#[test]
fn stage_start_two_instances_with_the_deas_environment() {
    stage_start_check("stage", rootfs());
}

#[test]
fn stage_start_on_debian() {
    stage_start_check("stage-deb", rootfs_debian());
}

/// A buildpack made of three scripts in `dir`.
fn buildpack(dir: &Path, detect: &str, compile: &str, release: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    for (n, body) in [
        ("detect", detect),
        ("compile", compile),
        ("release", release),
    ] {
        let p = dir.join("bin").join(n);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir.to_path_buf()
}

const RELEASE: &str = "printf -- '---\\ndefault_process_types:\\n  web: ./serve.sh\\n'";

/// `warden stage` that must fail with `want` in its one-line error,
/// leaving no container, no droplet and no temporary file.
fn stage_fails(s: &Srv, dir: &Path, bp: &Path, extra: &[&str], want: &str) {
    let out = dir.join("out").join("d.tgz");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let app = examples().join("env-app");
    let mut args = vec![
        "stage",
        app.to_str().unwrap(),
        "--buildpack",
        bp.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let (code, o, e) = warden(s, &args);
    assert_eq!(code, 1, "stage should fail: {o}\n{e}");
    let last = e.lines().last().unwrap_or("");
    assert!(
        last.starts_with("warden: ") && last.contains(want),
        "want {want:?} in {e:?}"
    );
    eprintln!("expected failure: {last}");
    assert!(list(&mut s.client()).is_empty(), "containers left: {e}");
    assert_eq!(
        others(out.parent().unwrap(), &[]),
        Vec::<String>::new(),
        "files left"
    );
}

/// Whether the server implements LimitMemory (probed on a scratch container).
fn server_has_limits(s: &Srv) -> bool {
    let mut c = s.client();
    let h = warden_tests::server::create_default(&mut c);
    let r: Result<proto::LimitMemoryResponse, _> = c.call(Type::LimitMemory, &limit_req(&h));
    warden_tests::server::destroy(&mut c, &h).unwrap();
    r.is_ok()
}

fn limit_req(h: &str) -> proto::LimitMemoryRequest {
    proto::LimitMemoryRequest {
        handle: Some(h.into()),
        limit_in_bytes: Some(512 << 20),
    }
}

#[test]
fn bad_buildpacks_fail_clearly_and_leave_nothing() {
    let s = Srv::start("stage-bad", Opts::default());
    let (dir, _g) = scratch("stage-bad");
    let skip: &[&str] = if server_has_limits(&s) {
        &[]
    } else {
        &["--skip-limits"]
    };

    // Missing buildpack.
    stage_fails(&s, &dir, &dir.join("nope"), skip, "buildpack");
    stage_fails(
        &s,
        &dir,
        &dir.join("nope"),
        skip,
        "No such file or directory",
    );
    // Non-executable bin/compile.
    let bp = buildpack(&dir.join("noexec"), "echo x", "true", RELEASE);
    std::fs::set_permissions(
        bp.join("bin/compile"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    stage_fails(&s, &dir, &bp, skip, "bin/compile is not an executable file");
    // No buildpack detects the app.
    let bp = buildpack(&dir.join("nodetect"), "exit 1", "true", RELEASE);
    stage_fails(
        &s,
        &dir,
        &bp,
        skip,
        "could not be detected by any available buildpack",
    );
    // A compile that fails.
    let bp = buildpack(
        &dir.join("fails"),
        "echo failing",
        "echo compiling; echo 'broken toolchain' >&2; exit 3",
        RELEASE,
    );
    stage_fails(&s, &dir, &bp, skip, "bin/compile of buildpack");
    stage_fails(
        &s,
        &dir,
        &bp,
        skip,
        "exited with status 3: broken toolchain",
    );
    // A release that prints no YAML mapping.
    let bp = buildpack(&dir.join("badrel"), "echo x", "true", "echo '{{{'; exit 0");
    stage_fails(&s, &dir, &bp, skip, "bin/release");
    // A compile that outlives --timeout.
    let bp = buildpack(
        &dir.join("slow"),
        "echo slow",
        "echo started; sleep 60",
        RELEASE,
    );
    let t = Instant::now();
    let mut a = vec!["--timeout", "1"];
    a.extend(skip);
    stage_fails(&s, &dir, &bp, &a, "timed out after 1 s");
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    // A zip that is not one.
    let z = dir.join("app.zip");
    std::fs::write(&z, b"PK\x03\x04 but nothing else").unwrap();
    let bp = examples().join("buildpacks/shell");
    let mut a = vec![
        "stage",
        z.to_str().unwrap(),
        "--buildpack",
        bp.to_str().unwrap(),
        "-o",
    ];
    let out = dir.join("zipout");
    std::fs::create_dir_all(&out).unwrap();
    let o = out.join("d.tgz");
    a.push(o.to_str().unwrap());
    a.extend(skip);
    let (code, _, e) = warden(&s, &a);
    assert_eq!(code, 1);
    assert!(
        e.contains("app zip") && e.contains("not a zip archive"),
        "{e}"
    );
    assert_eq!(others(&out, &[]), Vec::<String>::new(), "files left");
    assert!(list(&mut s.client()).is_empty());
    // The sample app as a zip stages like the directory.
    std::fs::write(&z, zip_dir(&examples().join("env-app"))).unwrap();
    let (code, so, e) = warden(&s, &a);
    assert_eq!(code, 0, "{so}\n{e}");
    assert!(so.contains("-----> Listener: "), "{so}");
    assert!(o.is_file());
    assert!(list(&mut s.client()).is_empty());

    // Every step ran as vcap, never root: a compile that checks.
    let bp = buildpack(
        &dir.join("whoami"),
        "[ \"$(id -u)\" != 0 ] && echo user",
        "[ \"$(id -u)\" != 0 ] || { echo 'compile ran as root' >&2; exit 9; }",
        "[ \"$(id -u)\" != 0 ] && printf -- '---\\ndefault_process_types:\\n  web: ./serve.sh\\n'",
    );
    let out = dir.join("asuser.tgz");
    let app = examples().join("env-app");
    let mut a = vec![
        "stage",
        app.to_str().unwrap(),
        "--buildpack",
        bp.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ];
    a.extend(skip);
    let (code, o, e) = warden(&s, &a);
    assert_eq!(code, 0, "{o}\n{e}");
    assert!(out.is_file());
}

#[test]
fn compile_over_the_staging_limits_names_the_limit() {
    let s = Srv::start("stage-lim", Opts::default());
    let (dir, _g) = scratch("stage-lim");
    if !server_has_limits(&s) {
        // Without --skip-limits, staging refuses to run unlimited.
        let bp = buildpack(&dir.join("bp"), "echo x", "true", RELEASE);
        stage_fails(&s, &dir, &bp, &[], "server does not support limit_memory");
        eprintln!("SKIPPED: the server has no limit_memory; the over-limit cases need it");
        return;
    }
    let bp = buildpack(
        &dir.join("mem"),
        "echo mem",
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo ${#x}",
        RELEASE,
    );
    stage_fails(
        &s,
        &dir,
        &bp,
        &["--memory", "32"],
        "exceeded the staging memory limit (32 MB)",
    );
    let bp = buildpack(
        &dir.join("disk"),
        "echo disk",
        "dd if=/dev/zero of=\"$1/big\" bs=1M count=64",
        RELEASE,
    );
    stage_fails(
        &s,
        &dir,
        &bp,
        &["--disk", "16"],
        "exceeded the staging disk limit (16 MB)",
    );
}

#[test]
fn corrupt_droplet_and_port_clash_fail_clearly_and_leave_nothing() {
    let s = Srv::start("stage-drop", Opts::default());
    let (dir, _g) = scratch("stage-drop");
    let skip: &[&str] = if server_has_limits(&s) {
        &[]
    } else {
        &["--skip-limits"]
    };
    let start = |args: &[&str]| {
        let mut a = vec!["start"];
        a.extend(args);
        a.extend(skip);
        warden(&s, &a)
    };
    // Corrupt droplets: not gzip, truncated, and a good gzip of no droplet.
    let bad = dir.join("bad.tgz");
    for (bytes, want) in [
        (b"definitely not gzip".to_vec(), "corrupt droplet"),
        (
            vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2],
            "corrupt droplet",
        ),
    ] {
        std::fs::write(&bad, bytes).unwrap();
        let (code, o, e) = start(&[bad.to_str().unwrap()]);
        assert_eq!(code, 1, "{o}{e}");
        assert!(e.contains(want) && e.lines().count() == 1, "{e}");
        eprintln!("expected failure: {}", e.trim());
        assert!(list(&mut s.client()).is_empty());
    }
    // A real droplet, then truncated.
    let droplet = dir.join("env-app.tgz");
    let extra = stage_sample(&s, &droplet);
    assert_eq!(extra, skip);
    let full = std::fs::read(&droplet).unwrap();
    std::fs::write(&bad, &full[..full.len() - 100]).unwrap();
    let (code, _, e) = start(&[bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(e.contains("corrupt droplet"), "{e}");
    assert!(list(&mut s.client()).is_empty());

    // A droplet whose buildpack named no web process: start needs --command.
    // (The sample buildpack's compile, which the app needs; a release with no web.)
    let compile = std::fs::read_to_string(examples().join("buildpacks/shell/bin/compile")).unwrap();
    let bp = buildpack(&dir.join("noweb"), "echo noweb", &compile, "echo '--- {}'");
    let noweb = dir.join("noweb.tgz");
    let app = examples().join("env-app");
    let mut a = vec![
        "stage",
        app.to_str().unwrap(),
        "--buildpack",
        bp.to_str().unwrap(),
        "-o",
        noweb.to_str().unwrap(),
    ];
    a.extend(skip);
    let (code, o, e) = warden(&s, &a);
    assert_eq!(code, 0, "{o}{e}");
    let (code, _, e) = start(&[noweb.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(e.contains("has no start_command; give --command"), "{e}");
    assert!(list(&mut s.client()).is_empty());
    let (code, o, e) = start(&[noweb.to_str().unwrap(), "--command", "./serve.sh"]);
    assert_eq!(code, 0, "{o}{e}");
    let port: u16 = o
        .split(' ')
        .nth(1)
        .unwrap()
        .strip_prefix("127.0.0.1:")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(fetch_env(port)["VCAP_APP_PORT"], port.to_string());
    let (code, _, e) = warden(&s, &["stop-app", "noweb"]);
    assert_eq!(code, 0, "{e}");
    assert!(list(&mut s.client()).is_empty());

    // Port clash: a second app asking for the first one's port.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = port.to_string();
    let (code, o, e) = start(&[droplet.to_str().unwrap(), "--name", "one", "--port", &p]);
    assert_eq!(code, 0, "{o}{e}");
    let (code, o, e) = start(&[
        droplet.to_str().unwrap(),
        "--name",
        "two",
        "--instances",
        "2",
        "--port",
        &(port - 1).to_string(),
    ]);
    assert_eq!(code, 1, "{o}{e}");
    assert!(e.contains("net_in") && e.contains(&p), "{e}");
    eprintln!("expected failure: {}", e.trim());
    let left = list(&mut s.client());
    assert_eq!(left.len(), 1, "only the first app's container: {left:?}");
    assert!(left[0].starts_with("app-one-0-"));
    let (code, _, e) = warden(&s, &["stop-app", "one"]);
    assert_eq!(code, 0, "{e}");
    assert!(list(&mut s.client()).is_empty());
}
