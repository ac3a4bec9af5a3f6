//! End-to-end tests of the `warden` controller: a real server (root, real
//! containers) driven through the warden protocol.
//!
//! They run on the rootfs `warden_tests::rootfs()` names: the busybox one by
//! default, any other through `WARDEN_ROOTFS` (`make test` runs this file a
//! second time on the Debian bookworm rootfs), so the job scripts use only
//! what both have (bash, coreutils-style `stat -c`, `head -c`, `seq`); the
//! one tool Debian minbase lacks, `nc`, is the host's static busybox copied
//! in.
//!
//! Each test starts its own server (`warden_tests::server::Srv`) with its own
//! depot, socket, resource prefix, network pool and port pool, and always
//! runs `warden clear` for that config in a Cleanup guard, also when it fails.

use prost::Message as _;
use std::io::{BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use warden::client::{Client, ClientError};
use warden::proto::{self, Type};
use warden_tests::server::{
    create, create_default, destroy, destroy_or_retry, err_text, info, link, list,
    prefix_leftovers, run, send_until_read, spawn, try_run, Opts, Srv, Txt,
};
use warden_tests::{bin, scratch, wait_for, workspace};

fn raw_frame(w: &mut UnixStream, bytes: &[u8]) {
    w.write_all(bytes).unwrap();
    w.flush().unwrap();
}

fn read_error(r: &mut BufReader<UnixStream>) -> String {
    let m = proto::read_message(r).expect("a response frame");
    assert_eq!(m.r#type, Some(Type::Error as i32));
    proto::ErrorResponse::decode(m.payload.unwrap().as_slice())
        .unwrap()
        .message
        .unwrap()
}

// ---------------------------------------------------------------------------

#[test]
fn protocol_ping_echo_list_and_bad_frames() {
    let s = Srv::start("proto", Opts::default());
    let mut c = s.client();
    let _: proto::PingResponse = c.call(Type::Ping, &proto::PingRequest {}).unwrap();
    let e: proto::EchoResponse = c
        .call(
            Type::Echo,
            &proto::EchoRequest {
                message: Some("hello warden".into()),
            },
        )
        .unwrap();
    assert_eq!(e.message.as_deref(), Some("hello warden"));
    assert!(list(&mut c).is_empty());
    // Required field missing.
    assert_eq!(
        err_text(
            c.call::<_, proto::EchoResponse>(Type::Echo, &proto::EchoRequest { message: None })
        ),
        "EchoRequest.message is required"
    );
    // Socket permissions from the config (0700).
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&s.sock).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700);
    // Pidfile.
    let pid: i32 = std::fs::read_to_string(s.dir.join("warden.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, s.pid());

    // Unknown type: an error, the connection stays usable.
    {
        let (r, w) = c.raw();
        let env = proto::Message {
            r#type: Some(77),
            payload: Some(vec![]),
        };
        proto::write_frame(w, &env.encode_to_vec()).unwrap();
        assert_eq!(read_error(r), "Unknown request type: 77");
        // Undecodable envelope: an error, connection still usable.
        raw_frame(w, b"3\r\n\xff\xff\xff\r\n");
        assert!(read_error(r).starts_with("undecodable message"));
        // Undecodable payload of a known type.
        let env = proto::Message {
            r#type: Some(Type::Echo as i32),
            payload: Some(vec![0x0a, 0xff]),
        };
        proto::write_frame(w, &env.encode_to_vec()).unwrap();
        assert!(read_error(r).starts_with("undecodable EchoRequest"));
    }
    let _: proto::PingResponse = c.call(Type::Ping, &proto::PingRequest {}).unwrap();

    // Bad length line: error, then the connection is closed.
    let mut bad = s.client();
    {
        let (r, w) = bad.raw();
        raw_frame(w, b"12x\r\n");
        assert!(read_error(r).contains("bad frame length"));
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    }
    // Oversize frame: refused before the payload is read.
    let mut big = s.client();
    {
        let (r, w) = big.raw();
        raw_frame(w, format!("{}\r\n", proto::MAX_FRAME + 1).as_bytes());
        assert!(read_error(r).contains("exceeds the maximum"));
    }
    // Garbage: no crash; everyone else is still served.
    let mut junk = UnixStream::connect(&s.sock).unwrap();
    let _ = junk.write_all(&[0u8; 4096]);
    drop(junk);
    let _: proto::PingResponse = c.call(Type::Ping, &proto::PingRequest {}).unwrap();
    let _: proto::PingResponse = s.client().call(Type::Ping, &proto::PingRequest {}).unwrap();

    // Every request naming a container: unknown handle.
    assert_eq!(err_text(info(&mut c, "nope")), "unknown handle");
    assert_eq!(err_text(destroy(&mut c, "nope")), "unknown handle");
    assert_eq!(err_text(link(&mut c, "nope", 1)), "unknown handle");
    assert_eq!(err_text(try_run(&mut c, "nope", "true")), "unknown handle");
    assert_eq!(err_text(destroy(&mut c, "../x")), "unknown handle");
    let r: Result<proto::StopResponse, _> = c.call(
        Type::Stop,
        &proto::StopRequest {
            handle: Some("nope".into()),
            ..Default::default()
        },
    );
    assert_eq!(err_text(r), "unknown handle");
    assert_eq!(
        err_text(link(&mut c, "", 1).and(info(&mut c, ""))),
        "unknown handle"
    );
    let r: Result<proto::CreateResponse, _> = c.call(
        Type::Create,
        &proto::CreateRequest {
            handle: Some("a/../b".into()),
            ..Default::default()
        },
    );
    assert!(err_text(r).starts_with("invalid handle"));
    // S15: nothing that could name a path outside the depot; finding 8:
    // no control character that could forge a line of `warden list`.
    for bad in [
        ".",
        "..",
        "../x",
        "/etc",
        "a/b",
        "a\0b",
        &"x".repeat(256),
        "a\nb",
        "fake\nforged-handle",
        "a\r",
        "tab\there",
        "\x1b[31mred",
        "del\x7f",
    ] {
        let r: Result<proto::CreateResponse, _> = c.call(
            Type::Create,
            &proto::CreateRequest {
                handle: Some(bad.to_string()),
                ..Default::default()
            },
        );
        let e = err_text(r);
        assert!(e.starts_with("invalid handle"), "{bad:?}: {e}");
        assert!(
            !e.contains(['\n', '\r', '\x1b']),
            "the error quotes it escaped: {e:?}"
        );
    }
    assert!(list(&mut c).is_empty());
    let (code, out, _) = s.warden(&["list"]);
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "no forged line in `warden list`"
    );
}

#[test]
fn lifecycle_run_spawn_link_stream_stop_destroy() {
    let s = Srv::start("life", Opts::default());
    let mut c = s.client();
    let h = create(
        &mut c,
        proto::CreateRequest {
            handle: Some("life-handle".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(h, "life-handle");
    assert_eq!(
        err_text(create(
            &mut c,
            proto::CreateRequest {
                handle: Some("life-handle".into()),
                ..Default::default()
            }
        )),
        "container with handle: life-handle already exists."
    );
    assert_eq!(list(&mut c), vec!["life-handle".to_string()]);

    let r = run(&mut c, &h, "echo out; echo err >&2; id -u; exit 3");
    assert_eq!(r.exit_status, Some(3));
    assert_eq!(r.stdout.txt(), Some("out\n20000\n"));
    assert_eq!(r.stderr.txt(), Some("err\n"));
    assert_eq!(r.info.as_ref().unwrap().state.as_deref(), Some("active"));
    let r: proto::RunResponse = c
        .call(
            Type::Run,
            &proto::RunRequest {
                handle: Some(h.clone()),
                script: Some("id -u".into()),
                privileged: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.stdout.txt(), Some("0\n"));

    // rlimits from the request reach the job; one above the hard limit is
    // a clear error (F34).
    let with_limits = |c: &mut Client, nofile: u64| -> Result<proto::RunResponse, ClientError> {
        c.call(
            Type::Run,
            &proto::RunRequest {
                handle: Some(h.clone()),
                script: Some("ulimit -n".into()),
                rlimits: Some(proto::ResourceLimits {
                    nofile: Some(nofile),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
    };
    let r = with_limits(&mut c, 1000).unwrap();
    assert_eq!(r.stdout.txt(), Some("1000\n"));
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let e = err_text(with_limits(&mut c, hard + 1));
    assert!(e.contains("nofile") && e.contains("hard limit"), "{e}");

    let i = info(&mut c, &h).unwrap();
    assert_eq!(i.state.as_deref(), Some("active"));
    let path = i.container_path.clone().unwrap();
    assert!(path.starts_with(&s.depot.display().to_string()));
    assert!(i.host_ip.unwrap().ends_with(".1"));
    assert!(i.container_ip.unwrap().ends_with(".2"));
    assert!(i.memory_stat.is_some(), "memory stats from the cgroup");
    assert!(i.cpu_stat.unwrap().usage.unwrap() > 0);
    assert!(i.disk_stat.is_some());

    // F5/F33: a job that exits at once, linked late, loses nothing.
    let quick = spawn(&mut c, &h, "echo quick; echo qerr >&2; exit 5");
    let status = Path::new(&path).join(format!("jobs/{quick}/exit_status"));
    assert!(
        wait_for(Duration::from_secs(10), || status.is_file()),
        "the quick job ended"
    );
    let l = link(&mut c, &h, quick).unwrap();
    assert_eq!(
        (l.exit_status, l.stdout.txt(), l.stderr.txt()),
        (Some(5), Some("quick\n"), Some("qerr\n"))
    );
    // spawn + link; a second link: no such job.
    let j = spawn(&mut c, &h, "sleep 0.3; echo done");
    assert!(info(&mut c, &h).unwrap().job_ids.contains(&(j as u64)));
    let l = link(&mut c, &h, j).unwrap();
    assert_eq!((l.exit_status, l.stdout.txt()), (Some(0), Some("done\n")));
    assert_eq!(err_text(link(&mut c, &h, j)), "no such job");
    assert_eq!(err_text(link(&mut c, &h, 999_999)), "no such job");
    // Job ids are server-wide and increasing.
    let j2 = spawn(
        &mut c,
        &h,
        "for i in 1 2 3; do echo $i; sleep 0.1; done; echo e >&2; exit 7",
    );
    assert!(j2 > j);
    // Two clients link the same job: both get the result.
    let mut c2 = s.client();
    let h2 = h.clone();
    let t = std::thread::spawn(move || link(&mut c2, &h2, j2).unwrap());
    let mut chunks = Vec::new();
    let last = s
        .client()
        .stream(
            &proto::StreamRequest {
                handle: Some(h.clone()),
                job_id: Some(j2),
            },
            |r| {
                chunks.push((
                    r.name.clone().unwrap(),
                    String::from_utf8(r.data.clone().unwrap()).unwrap(),
                ))
            },
        )
        .unwrap();
    assert_eq!(last.exit_status, Some(7));
    assert!(last.info.is_some());
    let out: String = chunks
        .iter()
        .filter(|(n, _)| n == "stdout")
        .map(|(_, d)| d.as_str())
        .collect();
    assert_eq!(out, "1\n2\n3\n");
    assert!(chunks.iter().any(|(n, d)| n == "stderr" && d == "e\n"));
    let l2 = t.join().unwrap();
    assert_eq!(l2.exit_status, Some(7));

    // stop: processes die, state stopped, spawn refused, info still works.
    let j3 = spawn(&mut c, &h, "sleep 1000");
    let _: proto::StopResponse = c
        .call(
            Type::Stop,
            &proto::StopRequest {
                handle: Some(h.clone()),
                kill: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    let l3 = link(&mut c, &h, j3).unwrap();
    assert_ne!(l3.exit_status, Some(0));
    assert_eq!(info(&mut c, &h).unwrap().state.as_deref(), Some("stopped"));
    assert_eq!(
        err_text(try_run(&mut c, &h, "true")),
        "Container state must be one of 'active', current state is 'stopped'"
    );
    // Stop again: no-op.
    let _: proto::StopResponse = c
        .call(
            Type::Stop,
            &proto::StopRequest {
                handle: Some(h.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    // A stopped container still answers limit_memory (tests/limits.rs
    // has the rest).
    let r: proto::LimitMemoryResponse = c
        .call(
            Type::LimitMemory,
            &proto::LimitMemoryRequest {
                handle: Some(h.clone()),
                limit_in_bytes: None,
            },
        )
        .unwrap();
    assert_eq!(r.limit_in_bytes, Some(9_223_372_036_854_771_712));
    // net_out needs an active container (warden's check_state_in).
    let r: Result<proto::NetOutResponse, _> = c.call(
        Type::NetOut,
        &proto::NetOutRequest {
            handle: Some(h.clone()),
            network: Some("10.0.0.0/8".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        err_text(r),
        "Container state must be one of 'active', current state is 'stopped'"
    );

    destroy_or_retry(&mut c, &h);
    assert!(!Path::new(&path).exists(), "container dir removed");
    assert_eq!(err_text(destroy(&mut c, &h)), "unknown handle");
    assert!(list(&mut c).is_empty());
}

#[test]
fn create_failures_undo_everything() {
    let s = Srv::start(
        "cfail",
        Opts {
            pool: Some(format!("10.254.{}.0/29", 250 + std::process::id() % 5)),
            ..Default::default()
        },
    );
    let mut c = s.client();
    assert_eq!(
        err_text(create(
            &mut c,
            proto::CreateRequest {
                rootfs: Some("/nonexistent/rootfs".into()),
                ..Default::default()
            }
        )),
        "rootfs /nonexistent/rootfs not found"
    );
    assert_eq!(
        err_text(create(
            &mut c,
            proto::CreateRequest {
                bind_mounts: vec![proto::BindMount {
                    src_path: Some("/nonexistent/src".into()),
                    dst_path: Some("/mnt/x".into()),
                    mode: Some(0),
                }],
                ..Default::default()
            }
        )),
        "Source path for bind mount does not exist: /nonexistent/src"
    );
    assert_eq!(
        err_text(create(
            &mut c,
            proto::CreateRequest {
                network: Some("192.0.2.1".into()),
                ..Default::default()
            }
        )),
        "Could not acquire network: 192.0.2.0"
    );
    // A /29 pool holds two /30s: two containers, then the pool is empty.
    let a = create_default(&mut c);
    let b = create_default(&mut c);
    assert_eq!(
        err_text(create(&mut c, Default::default())),
        "Could not acquire network"
    );
    // Asking for a network in use.
    let ip = info(&mut c, &a).unwrap().container_ip.unwrap();
    destroy_or_retry(&mut c, &b);
    assert!(err_text(create(
        &mut c,
        proto::CreateRequest {
            network: Some(ip),
            ..Default::default()
        }
    ))
    .starts_with("Could not acquire network: "));
    // Nothing left behind by the failures: only `a` in the depot.
    assert_eq!(s.depot_dirs().len(), 1);
    // The pools were not leaked: b's network is reusable.
    let b2 = create_default(&mut c);
    destroy_or_retry(&mut c, &a);
    destroy_or_retry(&mut c, &b2);
    assert!(s.depot_dirs().is_empty());
}

#[test]
fn bind_mounts_ro_and_rw() {
    let s = Srv::start("bind", Opts::default());
    let (host, _g) = scratch("bindsrc");
    std::fs::write(host.join("file"), "from host").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o777)).unwrap();
    let mut c = s.client();
    let h = create(
        &mut c,
        proto::CreateRequest {
            bind_mounts: vec![
                proto::BindMount {
                    src_path: Some(host.display().to_string()),
                    dst_path: Some("/data/ro".into()),
                    mode: Some(0),
                },
                proto::BindMount {
                    src_path: Some(host.display().to_string()),
                    dst_path: Some("/data/rw".into()),
                    mode: Some(1),
                },
            ],
            ..Default::default()
        },
    )
    .unwrap();
    let r = run(&mut c, &h, "cat /data/ro/file");
    assert_eq!(r.stdout.txt(), Some("from host"));
    let r = run(&mut c, &h, "echo x > /data/ro/new");
    assert_ne!(r.exit_status, Some(0), "ro bind mount is read-only");
    let r = run(&mut c, &h, "echo written > /data/rw/new");
    assert_eq!(r.exit_status, Some(0), "{:?}", r.stderr);
    assert_eq!(
        std::fs::read_to_string(host.join("new")).unwrap(),
        "written\n"
    );
    destroy_or_retry(&mut c, &h);
    assert!(
        host.join("file").exists(),
        "destroy leaves the bind source alone"
    );
}

#[test]
fn job_output_limit_and_discard() {
    let s = Srv::start("limit", Opts::default());
    let mut c = s.client();
    let h = create_default(&mut c);
    for fd in [1, 2] {
        let script = format!("( head -c {} /dev/urandom; sleep 1 ) 1>&{fd}", 200 * 1024);
        let r = run(&mut c, &h, &script);
        assert_eq!(
            r.exit_status,
            Some(255),
            "job over the output limit is killed"
        );
        // As warden: the chunk that crossed the limit is kept whole, so
        // between limit + 1 and limit + one 64 KiB read is delivered.
        let limit = Opts::default().output_limit as usize;
        let got = if fd == 1 { &r.stdout } else { &r.stderr };
        let n = got.as_ref().map_or(0, |v| v.len());
        assert!(n > limit && n <= limit + 64 * 1024, "{n} bytes kept");
        assert!(r
            .info
            .unwrap()
            .events
            .contains(&"command exceeded maximum output".to_string()));
        let r: proto::RunResponse = c
            .call(
                Type::Run,
                &proto::RunRequest {
                    handle: Some(h.clone()),
                    script: Some(script.clone()),
                    discard_output: Some(true),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(r.exit_status, Some(0));
        assert_eq!(r.stdout.txt(), Some(""));
        assert_eq!(r.stderr.txt(), Some(""));
    }
    // Output is binary-clean (bytes, not UTF-8 text), on link and stream.
    let r = run(&mut c, &h, r"printf '\377\376\000x\342\202'");
    assert_eq!(r.stdout.as_deref(), Some(&b"\xff\xfe\0x\xe2\x82"[..]));
    // The killed jobs' iomux-spawn processes are gone too (warden's spec).
    let depot = s.depot.display().to_string();
    let gone = wait_for(Duration::from_secs(10), || {
        procs_matching("iomux-spawn", &depot).is_empty()
    });
    assert!(gone, "left: {:?}", procs_matching("iomux-spawn", &depot));
    destroy_or_retry(&mut c, &h);
}

/// Command lines (NUL replaced by space) of processes whose argv[0] ends
/// with `prog` and that mention `needle`.
fn procs_matching(prog: &str, needle: &str) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if !e
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(c) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let parts: Vec<String> = c
            .split(|b| *b == 0)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        if parts.first().is_some_and(|a| a.ends_with(prog)) {
            let line = parts.join(" ");
            if line.contains(needle) {
                v.push(line);
            }
        }
    }
    v
}

#[test]
fn copy_in_and_out() {
    let s = Srv::start("copy", Opts::default());
    let mut c = s.client();
    let h = create_default(&mut c);
    let (tmp, _g) = scratch("copysrc");
    let sdir = tmp.join("sentinel_root");
    std::fs::create_dir_all(&sdir).unwrap();
    std::fs::write(sdir.join("sentinel"), "testing123").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        sdir.join("sentinel"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::os::unix::fs::symlink(sdir.join("sentinel"), sdir.join("sentinel_sym_link")).unwrap();
    std::fs::hard_link(sdir.join("sentinel"), sdir.join("sentinel_hard_link")).unwrap();

    let cin =
        |c: &mut Client, src: &str, dst: &str| -> Result<proto::CopyInResponse, ClientError> {
            c.call(
                Type::CopyIn,
                &proto::CopyInRequest {
                    handle: Some(h.clone()),
                    src_path: Some(src.into()),
                    dst_path: Some(dst.into()),
                },
            )
        };
    cin(&mut c, &sdir.display().to_string(), "/tmp").unwrap();
    let r = run(&mut c, &h, "cat /tmp/sentinel_root/sentinel");
    assert_eq!(r.stdout.txt(), Some("testing123"));
    let r = run(&mut c, &h, "stat -c %a /tmp/sentinel_root/sentinel");
    assert_eq!(r.stdout.txt(), Some("755\n"));
    let r = run(
        &mut c,
        &h,
        "stat -c %F /tmp/sentinel_root/sentinel_sym_link",
    );
    assert_eq!(r.stdout.txt(), Some("symbolic link\n"));
    let r = run(
        &mut c,
        &h,
        "cat /tmp/sentinel_root/sentinel_hard_link; stat -c %h /tmp/sentinel_root/sentinel",
    );
    assert_eq!(
        r.stdout.txt(),
        Some("testing1231\n"),
        "hard links materialised"
    );
    // Trailing slash: the contents, not the directory.
    cin(&mut c, &format!("{}/", sdir.display()), "/tmp/contents").unwrap();
    let r = run(&mut c, &h, "cat /tmp/contents/sentinel");
    assert_eq!(r.stdout.txt(), Some("testing123"));
    // A single file onto a new name.
    cin(
        &mut c,
        &sdir.join("sentinel").display().to_string(),
        "/tmp/renamed",
    )
    .unwrap();
    let r = run(&mut c, &h, "cat /tmp/renamed");
    assert_eq!(r.stdout.txt(), Some("testing123"));

    // copy_out of a directory, with owner.
    let out = tmp.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let r = run(
        &mut c,
        &h,
        "mkdir -p /tmp/o/sub && echo -n data > /tmp/o/sub/f && chmod 640 /tmp/o/sub/f",
    );
    assert_eq!(r.exit_status, Some(0));
    let cout = |c: &mut Client,
                src: &str,
                dst: &Path,
                owner: Option<&str>|
     -> Result<proto::CopyOutResponse, ClientError> {
        c.call(
            Type::CopyOut,
            &proto::CopyOutRequest {
                handle: Some(h.clone()),
                src_path: Some(src.into()),
                dst_path: Some(dst.display().to_string()),
                owner: owner.map(str::to_string),
            },
        )
    };
    cout(&mut c, "/tmp/o", &out, Some("nobody")).unwrap();
    let f = out.join("o/sub/f");
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "data");
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&f).unwrap();
    assert_eq!(m.mode() & 0o777, 0o640);
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .unwrap()
        .uid
        .as_raw();
    assert_eq!(m.uid(), nobody);
    // A setuid file made in the container does not come out setuid.
    let r = run(
        &mut c,
        &h,
        "echo x > /tmp/o/suid && chmod 6755 /tmp/o/suid && stat -c %a /tmp/o/suid",
    );
    assert_eq!(r.stdout.txt(), Some("6755\n"));
    let sout = tmp.join("sout");
    cout(&mut c, "/tmp/o/suid", &sout, None).unwrap();
    let m = std::fs::metadata(&sout).unwrap();
    assert_eq!(
        m.mode() & 0o7777,
        0o755,
        "setuid/setgid dropped on the host"
    );
    // A single file onto a new host name.
    cout(&mut c, "/tmp/o/sub/f", &tmp.join("single"), None).unwrap();
    assert_eq!(std::fs::read_to_string(tmp.join("single")).unwrap(), "data");

    // S4/S19: symlinks made in the container pointing at a host path (or
    // at /) are left out of the copy; the host file is untouched
    // (tests/tests/copy.rs has the full set).
    let victim = tmp.join("victim");
    std::fs::write(&victim, "host data").unwrap();
    let script = format!(
        "mkdir -p /tmp/evil && ln -s {v} /tmp/evil/link && ln -s / /tmp/evil/root",
        v = victim.display()
    );
    assert_eq!(run(&mut c, &h, &script).exit_status, Some(0));
    let eout = tmp.join("eout");
    std::fs::create_dir_all(&eout).unwrap();
    cout(&mut c, "/tmp/evil", &eout, None).unwrap();
    assert_eq!(std::fs::read_dir(eout.join("evil")).unwrap().count(), 0);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "host data");
    // copy_in cannot write through a container symlink to the host: the
    // extraction happens inside the container.
    let r = run(&mut c, &h, "ln -s /etc /tmp/etclink");
    assert_eq!(r.exit_status, Some(0));
    let before = std::fs::read("/etc/hostname").ok();
    let _ = cin(&mut c, &sdir.display().to_string(), "/tmp/etclink");
    assert_eq!(std::fs::read("/etc/hostname").ok(), before);
    assert!(!Path::new("/etc/sentinel_root").exists());

    // Errors.
    let e = err_text(cin(&mut c, "/nonexistent/src", "/tmp"));
    assert!(e.contains("/nonexistent/src"), "{e}");
    let e = err_text(cout(&mut c, "/nonexistent/in/container", &out, None));
    assert!(e.starts_with("copy_out failed"), "{e}");
    destroy_or_retry(&mut c, &h);
}

#[test]
fn net_in_allocates_ports() {
    let s = Srv::start(
        "netin",
        Opts {
            port_size: 2,
            ..Default::default()
        },
    );
    let mut c = s.client();
    let h = create_default(&mut c);
    let ni = |c: &mut Client,
              hp: Option<u32>,
              cp: Option<u32>|
     -> Result<proto::NetInResponse, ClientError> {
        c.call(
            Type::NetIn,
            &proto::NetInRequest {
                handle: Some(h.clone()),
                host_port: hp,
                container_port: cp,
            },
        )
    };
    let a = ni(&mut c, None, None).unwrap();
    assert_eq!(a.host_port, a.container_port);
    let b = ni(&mut c, None, Some(8080)).unwrap();
    assert_eq!(b.container_port, Some(8080));
    assert_ne!(a.host_port, b.host_port);
    assert_eq!(err_text(ni(&mut c, None, None)), "no port available");
    let d = ni(&mut c, Some(3000), None).unwrap();
    assert_eq!((d.host_port, d.container_port), (Some(3000), Some(3000)));
    // A host port already forwarded: said plainly, not in nft's words.
    let clash = err_text(ni(&mut c, Some(3000), Some(81)));
    assert!(
        clash.ends_with("host port 3000 is taken: a net_in already forwards it")
            && !clash.contains("File exists"),
        "{clash}"
    );
    // The forward reaches a server in the container. The listener is the
    // host's static busybox `nc`, copied in: Debian minbase has no nc.
    let _: proto::CopyInResponse = c
        .call(
            Type::CopyIn,
            &proto::CopyInRequest {
                handle: Some(h.clone()),
                src_path: Some("/bin/busybox".into()),
                dst_path: Some("/tmp/busybox".into()),
            },
        )
        .expect("copy the host's busybox in");
    let r = run(
        &mut c,
        &h,
        "(echo -e 'HTTP/1.0 200 OK\\r\\n\\r\\nhello-from-container' | /tmp/busybox nc -l -p 8080 >/dev/null 2>&1 &) ; sleep 0.2; echo started",
    );
    assert_eq!(r.exit_status, Some(0));
    let hp = b.host_port.unwrap();
    // nc listens a moment after the job returns: retry until it answers.
    let got = wait_for(Duration::from_secs(10), || {
        let Ok(mut st) = std::net::TcpStream::connect(("127.0.0.1", hp as u16)) else {
            return false;
        };
        let _ = st.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = st.write_all(b"GET / HTTP/1.0\r\n\r\n");
        let mut s = String::new();
        let _ = st.read_to_string(&mut s);
        s.contains("hello-from-container")
    });
    assert!(got, "DNAT from host port {hp} reached the container");
    destroy_or_retry(&mut c, &h);
    // Ports came back to the pool.
    let h2 = create_default(&mut c);
    let c2 = c.call::<_, proto::NetInResponse>(
        Type::NetIn,
        &proto::NetInRequest {
            handle: Some(h2.clone()),
            ..Default::default()
        },
    );
    assert!(c2.is_ok());
    destroy_or_retry(&mut c, &h2);
}

fn link_procs(depot: &Path, job: u32) -> usize {
    let needle = format!("/jobs/{job}");
    procs_matching("iomux-link", &depot.display().to_string())
        .iter()
        .filter(|l| l.contains(&needle))
        .count()
}

#[test]
fn drain_and_restart_relinks_without_loss() {
    let mut s = Srv::start("drain", Opts::default());
    let mut c = s.client();
    let h = create_default(&mut c);
    let j = spawn(
        &mut c,
        &h,
        "for i in $(seq 1 30); do echo line$i; sleep 0.05; done; exit 9",
    );
    let done = spawn(&mut c, &h, "echo finished-before-drain; exit 4");
    // It has finished before the drain (on a loaded machine the drain could
    // otherwise come first, and a job that ends while no server runs is
    // another case: restart_readopts_..._jobs_ended_meanwhile).
    let dir = s.depot.join(&s.depot_dirs()[0]);
    assert!(wait_for(Duration::from_secs(20), || dir
        .join(format!("jobs/{done}/exit_status"))
        .is_file()));
    // A link in flight when the drain comes is broken: EOF, no response.
    let mut lc = s.client();
    let req = proto::LinkRequest {
        handle: Some(h.clone()),
        job_id: Some(j),
    };
    send_until_read(&mut lc, Type::Link, &req);
    let inflight = std::thread::spawn(move || lc.recv::<proto::LinkResponse>(Type::Link));
    drop(c);
    s.signal_and_wait(nix::sys::signal::Signal::SIGUSR2);
    match inflight.join().unwrap() {
        Err(ClientError::Frame(_)) | Err(ClientError::Io(_)) => {}
        other => panic!("in-flight link should see the connection close, got {other:?}"),
    }
    let dirs = s.depot_dirs();
    assert_eq!(dirs.len(), 1);
    assert!(s.depot.join(&dirs[0]).join("snapshot.json").is_file());
    // The job keeps running with no server.
    assert_eq!(link_procs(&s.depot, j), 0, "drain stops the linkers");
    s.run();
    let mut c = s.client();
    assert_eq!(list(&mut c), vec![h.clone()]);
    assert_eq!(
        link_procs(&s.depot, j),
        1,
        "exactly one iomux-link per recovered job"
    );
    let l = link(&mut c, &h, j).unwrap();
    assert_eq!(l.exit_status, Some(9));
    let want: String = (1..=30).map(|i| format!("line{i}\n")).collect();
    assert_eq!(
        l.stdout.txt(),
        Some(want.as_str()),
        "no loss, no duplicates"
    );
    // A job that finished before the drain keeps its status, not its
    // output (warden: "should not persist stdout/stderr over a restart").
    let l = link(&mut c, &h, done).unwrap();
    assert_eq!(l.exit_status, Some(4));
    assert_eq!(l.stdout.txt(), Some(""));
    // Job ids are not reused after a restart.
    let j3 = spawn(&mut c, &h, "true");
    assert!(j3 > j && j3 > done);
    assert_eq!(run(&mut c, &h, "echo ok").stdout.txt(), Some("ok\n"));
    destroy_or_retry(&mut c, &h);
}

/// warden's "recreate existing containers whose paths have changed" and
/// "jobs that exit before a restart", plus a non-ASCII handle.
#[test]
fn restart_readopts_moved_container_and_drops_jobs_ended_meanwhile() {
    let mut s = Srv::start("moved", Opts::default());
    let mut c = s.client();
    let h = create(
        &mut c,
        proto::CreateRequest {
            handle: Some("h\u{82}\u{e9}".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(h, "h\u{82}\u{e9}");
    let path = info(&mut c, &h).unwrap().container_path.unwrap();
    let late = spawn(&mut c, &h, "sleep 0.5; echo late; exit 3");
    drop(c);
    s.signal_and_wait(nix::sys::signal::Signal::SIGUSR2);
    // The job ends while no server is up.
    let status = Path::new(&path).join(format!("jobs/{late}/exit_status"));
    assert!(wait_for(Duration::from_secs(10), || status.is_file()));
    let moved = format!("{path}__");
    std::fs::rename(&path, &moved).unwrap();
    s.run();
    let mut c = s.client();
    assert_eq!(list(&mut c), vec![h.clone()]);
    assert_eq!(
        info(&mut c, &h).unwrap().container_path,
        Some(moved.clone())
    );
    assert_eq!(err_text(link(&mut c, &h, late)), "no such job");
    assert!(
        !Path::new(&moved).join(format!("jobs/{late}")).exists(),
        "the dropped job's directory is removed"
    );
    assert_eq!(run(&mut c, &h, "echo ok").stdout.txt(), Some("ok\n"));
    destroy_or_retry(&mut c, &h);
    assert!(!Path::new(&moved).exists());
}

#[test]
fn sigkill_then_restart_repairs() {
    let mut s = Srv::start("kill9", Opts::default());
    let mut c = s.client();
    let h = create_default(&mut c);
    // Still running when the new server re-adopts it (a job that ends
    // while no server is up is dropped, as warden did).
    let j = spawn(&mut c, &h, "sleep 3; exit 6");
    let doomed = create_default(&mut c);
    let doomed_path = info(&mut c, &doomed).unwrap().container_path.unwrap();
    drop(c);
    // A half-made container: a directory with no snapshot.
    std::fs::remove_file(Path::new(&doomed_path).join("snapshot.json")).unwrap();
    s.signal_and_wait(nix::sys::signal::Signal::SIGKILL);
    s.run();
    let mut c = s.client();
    assert_eq!(
        list(&mut c),
        vec![h.clone()],
        "re-adopted the one with a snapshot"
    );
    assert!(
        !Path::new(&doomed_path).exists(),
        "the one without was destroyed"
    );
    assert!(link_procs(&s.depot, j) <= 1);
    let l = link(&mut c, &h, j).unwrap();
    assert_eq!(l.exit_status, Some(6));
    assert_eq!(run(&mut c, &h, "echo alive").stdout.txt(), Some("alive\n"));
    destroy_or_retry(&mut c, &h);
}

#[test]
fn grace_time_destroys_idle_containers_once() {
    let s = Srv::start(
        "grace",
        Opts {
            grace: Some(1),
            ..Default::default()
        },
    );
    let mut keep = s.client();
    let kept = create_default(&mut keep);
    let idle = {
        let mut c = s.client();
        create(
            &mut c,
            proto::CreateRequest {
                grace_time: Some(1),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let mut c = s.client(); // references nothing
    let gone = wait_for(Duration::from_secs(15), || !list(&mut c).contains(&idle));
    assert!(gone, "idle container destroyed after its grace time");
    assert!(list(&mut c).contains(&kept), "a referenced container stays");
    assert_eq!(s.depot_dirs().len(), 1);
    assert_eq!(
        s.log().matches("grace time expired").count(),
        1,
        "destroyed exactly once"
    );
    destroy(&mut keep, &kept).unwrap();
}

/// After a restart a re-adopted container's grace timer does not fire
/// within `RECONNECT_WINDOW` (2 s), so a client reconnecting a moment after
/// the server is back finds it (warden: "should cancel the timer when
/// client reconnects"); unreferenced, it is still destroyed after that.
#[test]
fn restart_gives_clients_time_to_reconnect() {
    let mut s = Srv::start("regrace", Opts::default());
    let mut c = s.client();
    let req = proto::CreateRequest {
        grace_time: Some(1),
        ..Default::default()
    };
    let h = create(&mut c, req.clone()).unwrap();
    let idle = create(&mut c, req).unwrap();
    drop(c);
    s.signal_and_wait(nix::sys::signal::Signal::SIGUSR2);
    s.run();
    let t0 = Instant::now();
    let mut c = s.client();
    std::thread::sleep(Duration::from_millis(1200));
    assert!(info(&mut c, &h).is_ok(), "alive 1.2 s after the restart");
    let mut l = s.client();
    let gone = wait_for(Duration::from_secs(15), || !list(&mut l).contains(&idle));
    assert!(gone, "the unreferenced one is destroyed");
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "not before the window"
    );
    drop(c);
    let gone = wait_for(Duration::from_secs(15), || !list(&mut l).contains(&h));
    assert!(gone, "released again, its own grace time applies");
}

#[test]
fn wshd_death_stops_the_container() {
    let s = Srv::start("wshd", Opts::default());
    let mut c = s.client();
    let h = create_default(&mut c);
    let p = info(&mut c, &h).unwrap().container_path.unwrap();
    let pid: i32 = std::fs::read_to_string(Path::new(&p).join("run/wshd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let stopped = wait_for(Duration::from_secs(10), || {
        info(&mut c, &h).unwrap().state.as_deref() == Some("stopped")
    });
    assert!(stopped);
    let i = info(&mut c, &h).unwrap();
    assert!(
        i.events.iter().any(|e| e.contains("wshd")),
        "{:?}",
        i.events
    );
    destroy_or_retry(&mut c, &h);
}

#[test]
fn cli_client() {
    let s = Srv::start("cli", Opts::default());
    let (code, out, _) = s.warden(&["ping"]);
    assert_eq!((code, out.as_str()), (0, "pong\n"));
    // --socket before the command works too.
    let (code, out, _) = warden_tests::run(
        Command::new(bin("warden"))
            .arg("--socket")
            .arg(&s.sock)
            .arg("ping"),
    );
    assert_eq!((code, out.as_slice()), (0, &b"pong\n"[..]));
    let (code, h, err) = s.warden(&["create", "--handle", "cli-h"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(h.trim(), "cli-h");
    let (code, out, err) = s.warden(&[
        "run",
        "--handle",
        "cli-h",
        "--script",
        "echo hi; echo oops >&2; exit 42",
    ]);
    assert_eq!((code, out.as_str(), err.as_str()), (42, "hi\n", "oops\n"));
    let (code, out, _) = s.warden(&["run", "--handle", "cli-h", "--script", "echo j", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["stdout"], "j\n");
    assert_eq!(v["exit_status"], 0);
    let (code, out, _) = s.warden(&["spawn", "--handle", "cli-h", "--script", "echo s; exit 3"]);
    assert_eq!(code, 0);
    let job = out.trim().to_string();
    let (code, out, _) = s.warden(&["stream", "--handle", "cli-h", "--job_id", &job]);
    assert_eq!((code, out.as_str()), (3, "s\n"));
    let (code, out, _) = s.warden(&["list", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains("cli-h"));
    let (code, out, _) = s.warden(&["info", "--handle", "cli-h"]);
    assert_eq!(code, 0);
    assert!(out.contains("state: active"));
    let (code, _, err) = s.warden(&["info", "--handle", "nope"]);
    assert_eq!(code, 1);
    assert_eq!(err, "warden: container \"nope\": unknown handle\n");
    let (code, out, _) = s.warden(&["net-in", "--handle", "cli-h", "--host-port", "3001"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "host_port=3001 container_port=3001\n")
    );
    let (code, _, _) = s.warden(&["stop", "--handle", "cli-h", "--kill"]);
    assert_eq!(code, 0);
    let (code, _, _) = s.warden(&["destroy", "--handle", "cli-h"]);
    assert_eq!(code, 0);
    let (code, out, _) = s.warden(&["run", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--script"));
    let (code, _, err) = s.warden(&[
        "run",
        "--handle",
        "x",
        "--script",
        "true",
        "--rlimits",
        "bogus=1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown limit bogus"));
    // A bad config names the key.
    let bad = s.dir.join("bad.yml");
    std::fs::write(&bad, "server:\n  unix_domain_permissions: nope\n").unwrap();
    let (code, _, err) = warden_tests::run(
        Command::new(bin("warden"))
            .args(["server", "--config"])
            .arg(&bad),
    );
    assert_eq!(code, 1);
    assert!(String::from_utf8_lossy(&err).contains("server.unix_domain_permissions"));
}

#[test]
fn hundred_containers_leave_nothing_behind() {
    let x = 100 + (std::process::id() % 50) * 2;
    let s = Srv::start(
        "hundred",
        Opts {
            pool: Some(format!("10.252.{x}.0/23")),
            ..Default::default()
        },
    );
    let sock = s.sock.clone();
    let sock = &sock;
    let handles: Vec<String> = std::thread::scope(|sc| {
        let ts: Vec<_> = (0..4)
            .map(|_| {
                sc.spawn(move || {
                    let mut c = Client::connect(sock).unwrap();
                    (0..25).map(|_| create_default(&mut c)).collect::<Vec<_>>()
                })
            })
            .collect();
        ts.into_iter().flat_map(|t| t.join().unwrap()).collect()
    });
    assert_eq!(handles.len(), 100);
    let mut c = s.client();
    assert_eq!(list(&mut c).len(), 100);
    // The server stays small (target: < 20 MB RSS with 100 containers).
    let status = std::fs::read_to_string(format!("/proc/{}/status", s.pid())).unwrap();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    eprintln!("controller RSS with 100 containers: {rss_kb} kB");
    std::thread::scope(|sc| {
        for chunk in handles.chunks(25) {
            sc.spawn(move || {
                let mut c = Client::connect(sock).unwrap();
                for h in chunk {
                    destroy_or_retry(&mut c, h);
                }
            });
        }
    });
    assert!(list(&mut c).is_empty());
    assert!(s.depot_dirs().is_empty());
    let left = prefix_leftovers(&s.prefix, &s.depot);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn restart_sweeps_stale_prefixed_resources() {
    let mut s = Srv::start("sweep", Opts::default());
    let mut c = s.client();
    let a = create_default(&mut c);
    let b = create_default(&mut c);
    let a_path = PathBuf::from(info(&mut c, &a).unwrap().container_path.unwrap());
    let b_path = PathBuf::from(info(&mut c, &b).unwrap().container_path.unwrap());
    let b_id = b_path.file_name().unwrap().to_string_lossy().into_owned();
    let b_wshd: i32 = std::fs::read_to_string(b_path.join("run/wshd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Both have a net_out rule, b a bandwidth limit (an ifb device).
    let iface = |c: &mut Client, h: &str| {
        warden_tests::net::iface_with_addr(&info(c, h).unwrap().host_ip.unwrap())
    };
    let (a_if, b_if) = (iface(&mut c, &a), iface(&mut c, &b));
    for h in [&a, &b] {
        let _: proto::NetOutResponse = c
            .call(
                Type::NetOut,
                &proto::NetOutRequest {
                    handle: Some(h.clone()),
                    network: Some("192.0.2.0/24".into()),
                    port: Some(80),
                    ..Default::default()
                },
            )
            .unwrap();
    }
    let _: proto::LimitBandwidthResponse = c
        .call(
            Type::LimitBandwidth,
            &proto::LimitBandwidthRequest {
                handle: Some(b.clone()),
                rate: Some(100_000),
                burst: Some(10_000),
            },
        )
        .unwrap();
    let b_ifb = format!("{}2", b_if.strip_suffix('0').unwrap());
    assert!(Path::new("/sys/class/net").join(&b_ifb).exists());
    drop(c);
    s.signal_and_wait(nix::sys::signal::Signal::SIGKILL);
    // The record of b is lost (warden lost records and leaked ip/uid/veth).
    let lost = s.dir.join("lost");
    std::fs::rename(&b_path, &lost).unwrap();
    s.run();
    let mut c = s.client();
    assert_eq!(list(&mut c), vec![a.clone()]);
    let left = prefix_leftovers(&s.prefix, &s.depot);
    // Only a's resources remain: its veth pair, its cgroups, its nft chain.
    assert!(
        left.iter().all(|l| !l.contains(&b_id)),
        "b's resources left: {left:#?}"
    );
    let nft = Command::new("nft")
        .args(["list", "table", "ip", &format!("warden-{}", s.prefix)])
        .output()
        .unwrap();
    let nft = String::from_utf8_lossy(&nft.stdout);
    assert!(!nft.contains(&b_id));
    // b's elements and ifb device are swept, a's net_out element stays.
    assert!(!nft.contains(&format!("\"{b_if}\"")), "{nft}");
    assert!(nft.contains(&format!("\"{a_if}\" . 192.0.2.0/24")), "{nft}");
    assert!(!Path::new("/sys/class/net").join(&b_ifb).exists());
    assert!(wait_for(Duration::from_secs(5), || !warden_tests::alive(
        b_wshd
    )));
    let r = run(&mut c, &a, "echo a-alive");
    assert_eq!(r.stdout.txt(), Some("a-alive\n"), "{r:?}\n{}", s.log());
    // The pools were rebuilt from the snapshots: a new container gets a
    // network other than a's.
    let n = create_default(&mut c);
    assert_ne!(
        info(&mut c, &n).unwrap().container_ip,
        info(&mut c, &a).unwrap().container_ip
    );
    destroy_or_retry(&mut c, &n);
    destroy_or_retry(&mut c, &a);
    assert!(!a_path.exists());
    let left = prefix_leftovers(&s.prefix, &s.depot);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test]
fn concurrent_clients_and_destroy_while_linked() {
    let s = Srv::start("conc", Opts::default());
    let mut c = s.client();
    let a = create_default(&mut c);
    let b = create_default(&mut c);
    let sock = s.sock.clone();
    let (sock, a_ref, b_ref) = (&sock, &a, &b);
    // F16/F19: many clients at once, on the same and on different containers.
    std::thread::scope(|sc| {
        for t in 0..8 {
            sc.spawn(move || {
                let mut c = Client::connect(sock).unwrap();
                c.set_timeout(Some(Duration::from_secs(120))).unwrap();
                for i in 0..5 {
                    let h = if (t + i) % 2 == 0 { a_ref } else { b_ref };
                    let r = run(&mut c, h, &format!("echo {t}-{i}"));
                    assert_eq!(r.stdout.txt(), Some(format!("{t}-{i}\n").as_str()));
                    assert_eq!(r.exit_status, Some(0));
                }
            });
        }
    });
    // F10: destroy while a job runs and a link waits on it: the link
    // returns, the container is gone.
    let j = spawn(&mut c, &a, "sleep 1000");
    let mut lc = Client::connect(&s.sock).unwrap();
    lc.set_timeout(Some(Duration::from_secs(60))).unwrap();
    let req = proto::LinkRequest {
        handle: Some(a.clone()),
        job_id: Some(j),
    };
    // The link is read by the server (so it waits on the job) before the
    // destroy is sent.
    send_until_read(&mut lc, Type::Link, &req);
    let linker = std::thread::spawn(move || lc.recv::<proto::LinkResponse>(Type::Link));
    let t0 = Instant::now();
    destroy_or_retry(&mut c, &a);
    let l = linker.join().unwrap().expect("the waiting link returns");
    assert_ne!(l.exit_status, Some(0));
    assert!(t0.elapsed() < Duration::from_secs(30));
    assert_eq!(err_text(destroy(&mut c, &a)), "unknown handle");
    assert_eq!(list(&mut c), vec![b.clone()]);
    destroy_or_retry(&mut c, &b);
}

#[test]
fn failing_hook_fails_create_and_undoes_it() {
    let (tmp, _g) = scratch("hooks");
    let scripts = tmp.join("rootfs-scripts");
    let st = Command::new("cp")
        .arg("-a")
        .arg(workspace().join("rootfs-scripts"))
        .arg(&scripts)
        .status()
        .unwrap();
    assert!(st.success());
    // F25: the container's start.sh fails with a message.
    std::fs::write(
        scripts.join("skeleton/start.sh"),
        "#!/bin/sh\necho 'start.sh: wshd would not start' >&2\nexit 7\n",
    )
    .unwrap();
    let s = Srv::start(
        "hooks",
        Opts {
            scripts: Some(scripts.clone()),
            pool: Some(format!("10.254.{}.0/30", 240 + std::process::id() % 8)),
            ..Default::default()
        },
    );
    let mut c = s.client();
    for _ in 0..2 {
        // Twice: the only /30 of the pool must come back after a failure.
        let e = err_text(create(&mut c, Default::default()));
        assert_eq!(
            e,
            "start.sh failed (exit status 7): start.sh: wshd would not start"
        );
    }
    assert!(
        s.depot_dirs().is_empty(),
        "failed create left {:?}",
        s.depot_dirs()
    );
    assert!(list(&mut c).is_empty());
    let left = prefix_leftovers(&s.prefix, &s.depot);
    assert!(left.is_empty(), "left behind: {left:#?}");
    // A missing hook script is named too.
    std::fs::remove_file(scripts.join("create.sh")).unwrap();
    let e = err_text(create(&mut c, Default::default()));
    assert!(e.starts_with("create.sh: cannot run "), "{e}");
}

/// Environment blocks (`/proc/PID/environ`) of the host processes whose
/// command line names `dir` (the helpers the server started for a
/// container: iomux-spawn, iomux-link, wsh) and of every process in the
/// container's cgroups (its init and jobs): (pid, environ).
fn environs_of_container(dir: &Path) -> Vec<(i32, Vec<u8>)> {
    let mut pids: Vec<i32> = Vec::new();
    let cg = std::fs::read_to_string(dir.join("run/cgroups")).unwrap_or_default();
    for l in cg.lines() {
        if let Some((_, p)) = l.split_once(' ') {
            let procs =
                std::fs::read_to_string(Path::new(p).join("cgroup.procs")).unwrap_or_default();
            pids.extend(
                procs
                    .split_whitespace()
                    .filter_map(|x| x.parse::<i32>().ok()),
            );
        }
    }
    let d = dir.as_os_str().as_encoded_bytes();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if cmd.windows(d.len()).any(|w| w == d) {
            pids.push(pid);
        }
    }
    pids.sort();
    pids.dedup();
    pids.into_iter()
        .filter_map(|p| Some((p, std::fs::read(format!("/proc/{p}/environ")).ok()?)))
        .collect()
}

/// Finding 6 / S20: nothing of the server's environment reaches a script
/// the controller runs, wshd, a helper, or any process in a container.
#[test]
fn server_environment_reaches_no_script_helper_or_container() {
    let (tmp, _g) = scratch("env");
    let name = format!(
        "WARDEN_CANARY_{:08x}",
        std::process::id().wrapping_mul(2654435761)
    );
    let value = format!("secret{:x}", Instant::now().elapsed().as_nanos() ^ 0x5eed);
    // Scripts that append their whole environment to a file.
    let scripts = tmp.join("rootfs-scripts");
    let st = Command::new("cp")
        .arg("-a")
        .arg(workspace().join("rootfs-scripts"))
        .arg(&scripts)
        .status()
        .unwrap();
    assert!(st.success());
    let dump = tmp.join("scripts.env");
    for f in [
        "setup.sh",
        "create.sh",
        "destroy.sh",
        "skeleton/setup.sh",
        "skeleton/start.sh",
        "skeleton/stop.sh",
        "skeleton/net.sh",
        "skeleton/lib/hook-parent-after-clone.sh",
    ] {
        let p = scripts.join(f);
        let text = std::fs::read_to_string(&p).unwrap();
        let (shebang, rest) = text.split_once('\n').unwrap();
        std::fs::write(
            &p,
            format!(
                "{shebang}\n{{ echo \"== {f}\"; env; }} >>'{}'\n{rest}",
                dump.display()
            ),
        )
        .unwrap();
    }
    let s = Srv::start(
        "env",
        Opts {
            scripts: Some(scripts),
            env: vec![(name.clone(), value.clone())],
            ..Default::default()
        },
    );
    // The canary is really in the server's environment.
    let own = std::fs::read(format!("/proc/{}/environ", s.pid())).unwrap();
    assert!(String::from_utf8_lossy(&own).contains(&format!("{name}={value}")));
    let leaks = |b: &[u8]| {
        let t = String::from_utf8_lossy(b);
        t.contains(&name) || t.contains(&value)
    };

    let mut c = s.client();
    let h = create_default(&mut c);
    let dir = PathBuf::from(info(&mut c, &h).unwrap().container_path.unwrap());
    // A job keeps running while every environment is read from the host.
    let j = spawn(&mut c, &h, "sleep 100");
    let job_runs = || {
        environs_of_container(&dir).iter().any(|(p, _)| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"sleep\x00100"))
        })
    };
    assert!(wait_for(Duration::from_secs(10), job_runs), "the job runs");
    let envs = environs_of_container(&dir);
    let wshd: i32 = std::fs::read_to_string(dir.join("run/wshd.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let init_env = envs
        .iter()
        .find(|(p, _)| *p == wshd)
        .map(|(_, e)| e.clone())
        .expect("the container's init is in its cgroup");
    assert_eq!(
        String::from_utf8_lossy(&init_env),
        "PATH=/usr/sbin:/usr/bin:/sbin:/bin\0",
        "the init's environment is wshd's documented one"
    );
    assert!(
        envs.len() >= 4,
        "init, job, iomux-spawn, iomux-link, wsh: {envs:?}"
    );
    for (p, e) in &envs {
        assert!(
            !leaks(e),
            "pid {p} carries the canary: {}",
            String::from_utf8_lossy(e)
        );
    }
    // From inside, as root: every /proc/*/environ that can be read.
    let r = warden_tests::server::run_privileged(
        &mut c,
        &h,
        "n=0; for f in /proc/[0-9]*/environ; do if cat \"$f\" >/tmp/e 2>/dev/null; then n=$((n+1)); cat /tmp/e; echo; fi; done; echo \"read=$n\"",
    );
    let out = r.stdout.clone().unwrap();
    assert!(!leaks(&out), "{}", String::from_utf8_lossy(&out));
    let n: u32 = String::from_utf8_lossy(&out)
        .rsplit("read=")
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Root without CAP_SYS_PTRACE reads only environments of processes it
    // may ptrace (its own, and dumpable ones with no more capabilities);
    // the host-side check above covers every process in the container.
    assert!(n >= 1, "read {n} environ files inside");
    stop_and_destroy(&mut c, &h, j);
    // Every instrumented script ran, and none saw the canary.
    let d = std::fs::read(&dump).unwrap();
    let t = String::from_utf8_lossy(&d);
    for f in [
        "setup.sh",
        "create.sh",
        "skeleton/start.sh",
        "destroy.sh",
        "skeleton/lib/hook-parent-after-clone.sh",
    ] {
        assert!(t.contains(&format!("== {f}\n")), "{f} did not run: {t}");
    }
    assert!(
        t.contains("network_container_ip="),
        "create.sh's variables: {t}"
    );
    assert!(!leaks(&d), "a script saw the canary: {t}");
}

fn stop_and_destroy(c: &mut Client, h: &str, job: u32) {
    let _: proto::StopResponse = c
        .call(
            Type::Stop,
            &proto::StopRequest {
                handle: Some(h.into()),
                kill: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    let l = link(c, h, job).unwrap();
    assert_ne!(l.exit_status, Some(0));
    destroy_or_retry(c, h);
}

/// Runs `warden server --config CFG`, which must fail within 20 s; its
/// (exit status, stderr). A server that comes up instead is killed and
/// its config cleared before the test fails.
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
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (st.code().unwrap_or(128 + st.signal().unwrap_or(0)), err);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            let _ = Command::new(bin("warden"))
                .args(["clear", "--config"])
                .arg(cfg)
                .status();
            panic!("the server started instead of failing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Finding 8: the pidfile and the log file are opened with O_NOFOLLOW (and
/// must be regular files): a symlink planted at either path makes startup
/// fail with a clear error before anything is set up, and its target is
/// left untouched; a FIFO there fails too, instead of hanging the start.
#[test]
fn planted_symlink_at_pidfile_or_log_fails_startup() {
    use std::os::unix::fs::symlink;
    warden_tests::require_root();
    let (dir, _g) = scratch("nofollow");
    let victim = dir.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let fifo = dir.join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let pid = std::process::id();
    for (i, (key, planted, want)) in [
        ("pidfile", "link", "server.pidfile"),
        ("log", "link", "logging.file"),
        ("pidfile", "fifo", "server.pidfile"),
        ("log", "fifo", "logging.file"),
    ]
    .into_iter()
    .enumerate()
    {
        let link = dir.join(format!("{key}-{i}"));
        if planted == "link" {
            symlink(&victim, &link).unwrap();
        }
        let path = if planted == "fifo" {
            fifo.clone()
        } else {
            link.clone()
        };
        let (pidfile, log) = if key == "pidfile" {
            (path.clone(), dir.join(format!("ok-{i}.log")))
        } else {
            (dir.join(format!("ok-{i}.pid")), path.clone())
        };
        let cfg = dir.join(format!("w{i}.yml"));
        std::fs::write(
            &cfg,
            format!(
                "server:\n  unix_domain_path: {d}/w{i}.sock\n  container_depot_path: {d}/depot{i}\n  container_rootfs_path: {rootfs}\n  scripts_path: {scripts}\n  bin_path: {bins}\n  resource_prefix: n{p}{i}\n  pidfile: {pidfile}\nlogging:\n  file: {log}\n",
                d = dir.display(),
                rootfs = warden_tests::rootfs().display(),
                scripts = workspace().join("rootfs-scripts").display(),
                bins = warden_tests::bin_dir().display(),
                p = warden_tests::server::b36(pid % 46656, 3),
                pidfile = pidfile.display(),
                log = log.display(),
            ),
        )
        .unwrap();
        let (code, err) = server_start_fails(&cfg);
        assert_eq!(code, 1, "{err}");
        let what = if planted == "link" {
            "is a symbolic link; refusing to follow it"
        } else {
            "is a FIFO; refusing to write to it"
        };
        assert!(
            err.contains(&format!("{want} {}: {what}", path.display())),
            "{key}/{planted}: {err}"
        );
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
        if planted == "link" {
            assert!(std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink());
        }
        // Nothing was set up: no socket, no depot.
        assert!(!dir.join(format!("w{i}.sock")).exists());
    }
}

/// Finding 8 / S12: the socket gets its mode atomically (made in a private
/// directory with its mode set before it is renamed into place), so a
/// watcher polling the directory during startup never sees it, or its
/// temporary name, with any mode but the configured 0700; and a non-root
/// user cannot connect to it (but can once it is opened up, so the
/// refusal is the mode's doing).
#[test]
fn socket_mode_is_atomic_and_refuses_other_users() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let mut s = Srv::start("sockmode", Opts::default());
    let seen = |dir: &Path, out: &mut Vec<(String, u32)>| {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.contains("warden.sock") {
                continue;
            }
            let Ok(md) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if md.file_type().is_socket() {
                out.push((name, md.permissions().mode() & 0o7777));
            } else if md.is_dir() {
                out.push((name.clone() + "/", md.permissions().mode() & 0o7777));
                if let Ok(inner) = std::fs::read_dir(e.path()) {
                    for f in inner.flatten() {
                        if let Ok(m) = std::fs::symlink_metadata(f.path()) {
                            out.push((
                                format!("{name}/{}", f.file_name().to_string_lossy()),
                                m.permissions().mode() & 0o7777,
                            ));
                        }
                    }
                }
            }
        }
    };
    let mut all = Vec::new();
    for _ in 0..3 {
        s.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
        assert!(!s.sock.exists());
        let stop = Arc::new(AtomicBool::new(false));
        let (st, dir) = (stop.clone(), s.dir.clone());
        let watcher = std::thread::spawn(move || {
            let mut out = Vec::new();
            while !st.load(Ordering::SeqCst) {
                seen(&dir, &mut out);
            }
            out
        });
        s.run();
        stop.store(true, Ordering::SeqCst);
        all.extend(watcher.join().unwrap());
    }
    assert!(all.iter().any(|(n, _)| n == "warden.sock"), "{all:?}");
    // The private directory and every socket seen: 0700, never wider.
    for (n, m) in &all {
        assert_eq!(*m, 0o700, "{n} seen with mode {m:o}");
    }
    // A pool uid (not root) is refused by the mode...
    let ping_as = |uid: u32| {
        let mut cmd = Command::new(bin("warden"));
        cmd.args(["ping", "--socket"])
            .arg(&s.sock)
            .uid(uid)
            .gid(uid);
        warden_tests::run(&mut cmd)
    };
    let (code, _, err) = ping_as(20123);
    let err = String::from_utf8_lossy(&err);
    assert_ne!(code, 0);
    assert!(err.contains("Permission denied"), "{err}");
    // ...and nothing else: opened up, the same uid gets its pong.
    std::fs::set_permissions(&s.sock, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, out, err) = ping_as(20123);
    assert_eq!(
        (code, String::from_utf8_lossy(&out).trim()),
        (0, "pong"),
        "{}",
        String::from_utf8_lossy(&err)
    );
    std::fs::set_permissions(&s.sock, std::fs::Permissions::from_mode(0o700)).unwrap();
}

/// `VmRSS` and `VmHWM` (peak) of a process, in kB.
fn rss_kb(pid: i32) -> (u64, u64) {
    let st = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        st.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `n` clients connect at once and each writes `bytes` (errors ignored: the
/// server may refuse and close); the open connections.
fn flood(sock: &Path, n: usize, bytes: &[u8]) -> Vec<UnixStream> {
    std::thread::scope(|sc| {
        let hs: Vec<_> = (0..n)
            .map(|_| {
                sc.spawn(|| {
                    let mut c = UnixStream::connect(sock).ok()?;
                    c.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                    let _ = c.write_all(bytes);
                    Some(c)
                })
            })
            .collect();
        hs.into_iter().filter_map(|h| h.join().unwrap()).collect()
    })
}

/// The message of the first response frame (an error) on a raw
/// connection, or None at EOF or after 10 s.
fn raw_error(c: &mut UnixStream) -> Option<String> {
    raw_error_within(c, Duration::from_secs(10))
}

fn raw_error_within(c: &mut UnixStream, t: Duration) -> Option<String> {
    c.set_read_timeout(Some(t)).unwrap();
    let mut r = BufReader::new(c.try_clone().unwrap());
    let m = proto::read_message(&mut r).ok()?;
    assert_eq!(m.r#type, Some(Type::Error as i32));
    proto::ErrorResponse::decode(m.payload.unwrap().as_slice())
        .unwrap()
        .message
}

fn ping_within(c: &mut Client, limit: Duration) -> Duration {
    let t0 = Instant::now();
    let _: proto::PingResponse = c.call(Type::Ping, &proto::PingRequest {}).unwrap();
    let t = t0.elapsed();
    assert!(t < limit, "ping took {t:?}");
    t
}

/// Finding 8: 200 clients each sending 1 MiB of a 16 MiB frame took the
/// server from 3.3 MB to 212 MB. Now a frame over its type's cap is refused
/// on its length line or first two bytes, payloads grow only as bytes
/// arrive, and large frames share one budget: with the same 200 clients,
/// and then 200 more sending all but the last byte of a Spawn frame at the
/// cap (1 MiB), and 200 more holding all but the trailer of a 16 KiB Info
/// frame, the server's peak RSS stays under 40 MB, and a client connected
/// before gets its ping answered at once throughout.
#[test]
fn slow_clients_cannot_grow_the_server() {
    let s = Srv::start("slow", Opts::default());
    let mut c = s.client();
    ping_within(&mut c, Duration::from_secs(1));
    let (base, _) = rss_kb(s.pid());

    // The finding's attack.
    let mut big = format!("{}\r\n", 16 << 20).into_bytes();
    big.resize(big.len() + (1 << 20), 0);
    let mut a1 = flood(&s.sock, 200, &big);
    let t1 = ping_within(&mut c, Duration::from_secs(1));
    let (rss1, hwm1) = rss_kb(s.pid());
    eprintln!("server RSS {base} kB at rest, {rss1} kB (peak {hwm1} kB) with 200 x 1 MiB of a 16 MiB frame");
    let e = raw_error(&mut a1[0]).expect("an error response");
    assert_eq!(
        e,
        "protocol error: frame of 16777216 bytes exceeds the maximum of 1048576 bytes"
    );
    drop(a1);

    // Within the caps: Spawn frames of 1 MiB, all but their last byte.
    let script = "x".repeat((1 << 20) - 16);
    let env = proto::Message {
        r#type: Some(Type::Spawn as i32),
        payload: Some(
            proto::SpawnRequest {
                handle: Some("h".into()),
                script: Some(script),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
    }
    .encode_to_vec();
    assert!(env.len() <= 1 << 20, "{}", env.len());
    let mut f = format!("{}\r\n", env.len()).into_bytes();
    f.extend_from_slice(&env);
    f.extend_from_slice(b"\r");
    let mut a2 = flood(&s.sock, 200, &f);
    let t2 = ping_within(&mut c, Duration::from_secs(1));
    // Small frames need no budget: 200 clients stuck in 16 KiB Info frames.
    let info = proto::Message {
        r#type: Some(Type::Info as i32),
        payload: Some(vec![b'y'; (16 << 10) - 8]),
    }
    .encode_to_vec();
    let mut f = format!("{}\r\n", info.len()).into_bytes();
    f.extend_from_slice(&info);
    let a3 = flood(&s.sock, 200, &f);
    let t3 = ping_within(&mut c, Duration::from_secs(1));
    // A new client too.
    ping_within(&mut s.client(), Duration::from_secs(1));
    // The budget (16 MiB) holds 16 of them; the others are refused (as
    // the server reads them: wait for that).
    let mut busy = 0;
    let mut pending: Vec<&mut UnixStream> = a2.iter_mut().collect();
    wait_for(Duration::from_secs(30), || {
        pending.retain_mut(|x| match raw_error_within(x, Duration::from_millis(10)) {
            Some(e) => {
                busy += usize::from(e.contains("server busy"));
                false
            }
            None => true,
        });
        busy >= 150
    });
    let (rss2, hwm2) = rss_kb(s.pid());
    assert!(busy >= 150, "{busy} of 200 large requests refused as busy");
    eprintln!(
        "server RSS: {base} kB at rest; 200 x 1 MiB of a 16 MiB frame: {rss1} kB (peak {hwm1} kB), ping {t1:?}; \
         + 200 x 1 MiB-1 of a Spawn + 200 x 16 KiB-2 of an Info: {rss2} kB (peak {hwm2} kB), ping {t2:?} / {t3:?}"
    );
    assert!(hwm2 < 40_000, "peak RSS {hwm2} kB");
    drop((a2, a3));
    let log = s.log();
    assert!(log.contains("exceeds the maximum"), "{log}");
    assert!(log.contains("server busy"), "{log}");
}

/// Finding 8: at most server.max_connections connections; one more gets an
/// error at once and is closed, with one warning line, while the open ones
/// are served; and a request frame that stalls half-way is dropped after
/// server.request_timeout, while an idle connection is not.
#[test]
fn connection_cap_and_request_timeout() {
    let s = Srv::start(
        "cap",
        Opts {
            server_keys: vec!["max_connections: 20".into(), "request_timeout: 2".into()],
            ..Default::default()
        },
    );
    let mut c = s.client();
    ping_within(&mut c, Duration::from_secs(1));
    let threads = || warden_tests::faults::Census::take(&s.prefix, &s.depot, s.pid()).threads;
    // The steady count: a short-lived thread (a reaper, a watcher) seen
    // once would make the wait below miss by one.
    let mut before = threads();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(20));
        before = before.min(threads());
    }
    let idle: Vec<UnixStream> = (0..19)
        .map(|_| UnixStream::connect(&s.sock).unwrap())
        .collect();
    // Accepted: a thread each.
    assert!(
        wait_for(Duration::from_secs(10), || threads() >= before + 19),
        "{} threads",
        threads()
    );
    for _ in 0..10 {
        let t0 = Instant::now();
        let mut x = UnixStream::connect(&s.sock).unwrap();
        let e = raw_error(&mut x).expect("an error response");
        assert_eq!(
            e,
            "too many connections: the server serves at most 20 at once (server.max_connections)"
        );
        let mut rest = Vec::new();
        assert_eq!(x.read_to_end(&mut rest).unwrap_or(0), 0, "then closed");
        assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    }
    ping_within(&mut c, Duration::from_secs(1));
    let warnings = s
        .log()
        .lines()
        .filter(|l| l.contains("refused a connection"))
        .count();
    assert!(
        (1..=3).contains(&warnings),
        "{warnings} warning lines:\n{}",
        s.log()
    );
    // Slots come back when clients go.
    drop(idle);
    assert!(wait_for(Duration::from_secs(5), || {
        Client::connect(&s.sock)
            .and_then(|mut x| x.call::<_, proto::PingResponse>(Type::Ping, &proto::PingRequest {}))
            .is_ok()
    }));
    // Idle for longer than request_timeout: still served.
    std::thread::sleep(Duration::from_millis(2500));
    ping_within(&mut c, Duration::from_secs(1));
    // A frame that starts and stalls: dropped after about 2 s.
    let mut x = UnixStream::connect(&s.sock).unwrap();
    x.write_all(b"100000\r\n\x08\x15\x12").unwrap();
    let t0 = Instant::now();
    let e = raw_error(&mut x).expect("an error response");
    let t = t0.elapsed();
    assert_eq!(
        e,
        "protocol error: request frame not received within 2 s (server.request_timeout)"
    );
    assert!(
        t > Duration::from_millis(1500) && t < Duration::from_secs(8),
        "{t:?}"
    );
}
