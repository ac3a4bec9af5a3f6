//! Operator experience (issue 13): the `warden` CLI against a real server
//! (positional arguments and flags, errors naming what they are about,
//! empty fields omitted, `list` when empty), startup errors said once and
//! logged, JSON logs, `check-config`, the health check and Prometheus
//! metrics read with a real HTTP client (curl), the demo on a host without
//! nftables (simulated with PATH) and with a server that dies at start,
//! `make install-files`, and the helpers' man pages.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use warden_tests::server::{Opts, Srv};
use warden_tests::{bin, bin_dir, require_root, rootfs, scratch, wait_for, workspace};

fn text(b: Vec<u8>) -> String {
    String::from_utf8_lossy(&b).into_owned()
}

/// `warden ARGS` without a server: (status, stdout, stderr).
fn warden(args: &[&str]) -> (i32, String, String) {
    let (c, o, e) = warden_tests::run(Command::new(bin("warden")).args(args));
    (c, text(o), text(e))
}

#[test]
fn cli_positional_arguments_flags_and_errors() {
    let s = Srv::start("ops-cli", Opts::default());
    let (code, out, _) = s.warden(&["echo", "hello", "there"]);
    assert_eq!((code, out.as_str()), (0, "hello there\n"));
    let (code, out, _) = s.warden(&["echo", "--message", "flag"]);
    assert_eq!((code, out.as_str()), (0, "flag\n"));
    // An empty list says so on stderr; stdout stays one handle a line.
    let (code, out, err) = s.warden(&["list"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "", "no containers\n")
    );

    let (code, h, err) = s.warden(&["create", "--handle", "ops-h"]);
    assert_eq!((code, h.trim()), (0, "ops-h"), "{err}");
    let (code, out, err) = s.warden(&["run", "ops-h", "echo pos"]);
    assert_eq!((code, out.as_str()), (0, "pos\n"), "{err}");
    let (code, out, _) = s.warden(&["run", "--handle", "ops-h", "--script", "echo flags"]);
    assert_eq!((code, out.as_str()), (0, "flags\n"));
    let (code, out, _) = s.warden(&["run", "--handle", "ops-h", "echo mixed; exit 4"]);
    assert_eq!((code, out.as_str()), (4, "mixed\n"));

    // A job is gone once a link saw it end: one spawn per form.
    for form in [
        &["link"][..],
        &["link", "--job-id"],
        &["link", "--job_id"],
        &["stream"],
    ] {
        let (code, job, _) = s.warden(&["spawn", "ops-h", "echo s; exit 3"]);
        assert_eq!(code, 0);
        let job = job.trim().to_string();
        let args: Vec<&str> = if form.len() == 2 {
            vec![form[0], "--handle", "ops-h", form[1], &job]
        } else {
            vec![form[0], "ops-h", &job]
        };
        let (code, out, err) = s.warden(&args);
        assert_eq!((code, out.as_str()), (3, "s\n"), "{args:?}: {err}");
    }

    // Errors name the container and job they are about.
    let (code, _, err) = s.warden(&["link", "ops-h", "999999"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "warden: container \"ops-h\" job 999999: no such job\n")
    );
    let (code, _, err) = s.warden(&["info", "nope"]);
    assert_eq!(
        (code, err.as_str()),
        (1, "warden: container \"nope\": unknown handle\n")
    );
    let (code, _, err) = s.warden(&["destroy", "--handle", "gone"]);
    assert_eq!(code, 1);
    assert!(err.contains("\"gone\""), "{err}");

    // ... and the ports or paths.
    let (code, _, err) = s.warden(&["net-in", "ops-h", "--host-port", "70000"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("warden: container \"ops-h\" net-in host port 70000: "),
        "{err}"
    );
    let (code, _, err) = s.warden(&["copy-in", "ops-h", "/nonexistent/src", "/tmp/x"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("warden: container \"ops-h\" copy-in /nonexistent/src -> /tmp/x: "),
        "{err}"
    );

    // copy-in with HANDLE SRC DST.
    let (dir, _g) = scratch("ops-copy");
    std::fs::write(dir.join("f"), "copied\n").unwrap();
    let src = dir.join("f").display().to_string();
    let (code, _, err) = s.warden(&["copy-in", "ops-h", &src, "/tmp/f"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = s.warden(&["run", "ops-h", "cat /tmp/f"]);
    assert_eq!((code, out.as_str()), (0, "copied\n"));

    // info: no line with an empty value.
    let (code, out, _) = s.warden(&["info", "ops-h"]);
    assert_eq!(code, 0);
    assert!(out.contains("state: active\n"), "{out}");
    for l in out.lines() {
        assert!(!l.trim_end().ends_with(':'), "empty field {l:?} in\n{out}");
    }
    assert!(!out.contains("events:"), "no events yet:\n{out}");

    // Usage errors: exit 2, clap's usage of the right command.
    let (code, _, err) = s.warden(&["run", "ops-h"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("SCRIPT is required"), "{err}");
    assert!(
        err.contains("Usage: warden run [OPTIONS] [HANDLE] [SCRIPT]"),
        "{err}"
    );
    let (code, _, err) = s.warden(&["create", "--bogus"]);
    assert_eq!(code, 2);
    assert!(err.contains("'--bogus'"), "{err}");
    assert!(err.contains("Usage: warden create [OPTIONS]"), "{err}");

    let (code, _, err) = s.warden(&["destroy", "ops-h"]);
    assert_eq!(code, 0, "{err}");
    let (_, out, err) = s.warden(&["list"]);
    assert_eq!((out.as_str(), err.as_str()), ("", "no containers\n"));
}

#[test]
fn server_help_has_no_client_options() {
    let (code, out, _) = warden(&["server", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--config <FILE>"), "{out}");
    assert!(out.contains("/etc/warden/warden.yml"), "{out}");
    assert!(
        !out.contains("--socket") && !out.contains("--json"),
        "{out}"
    );
    let (code, _, err) = warden(&["server", "--socket", "/x"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = warden(&["info", "--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("Client options:") && out.contains("--socket <PATH>"),
        "{out}"
    );
    let (code, out, _) = warden(&["--version"]);
    assert_eq!((code, out.trim()), (0, "warden 0.1.0"));
    let (code, out, _) = warden(&["completions", "bash"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("_warden()") && out.contains("check-config"),
        "{out:.200}"
    );
}

/// A scripts directory like rootfs-scripts whose setup.sh fails as it does
/// on a host without nft.
fn scripts_without_nft(dir: &Path) -> PathBuf {
    let s = dir.join("scripts");
    std::fs::create_dir_all(&s).unwrap();
    for e in std::fs::read_dir(workspace().join("rootfs-scripts")).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), s.join(e.file_name())).unwrap();
        }
    }
    std::fs::write(
        s.join("setup.sh"),
        "#!/bin/sh\necho 'setup.sh: nft not found (apt-get install nftables)' >&2\nexit 1\n",
    )
    .unwrap();
    s
}

/// A config whose server fails in setup.sh (nothing is set up on the host).
fn failing_config(dir: &Path, extra_logging: &str) -> PathBuf {
    let scripts = scripts_without_nft(dir);
    let cfg = dir.join("w.yml");
    std::fs::create_dir_all(dir.join("depot")).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "server:\n  unix_domain_path: {d}/w.sock\n  container_depot_path: {d}/depot\n  container_rootfs_path: {rootfs}\n  scripts_path: {scripts}\n  bin_path: {bins}\n  resource_prefix: zq13\nlogging:\n  level: debug\n  file: {d}/w.log\n{extra_logging}",
            d = dir.display(),
            rootfs = rootfs().display(),
            scripts = scripts.display(),
            bins = bin_dir().display(),
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn startup_error_is_said_once_and_logged() {
    require_root();
    let (dir, _g) = scratch("ops-start");
    let cfg = failing_config(&dir, "");
    let (code, _, err) = warden(&["server", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let cause = "setup.sh: nft not found (apt-get install nftables)";
    assert_eq!(err.matches(cause).count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "warden: setup.sh failed (exit status 1): {cause}\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("read config from {}", cfg.display())),
        "{err}"
    );
    let log = std::fs::read_to_string(dir.join("w.log")).unwrap();
    assert_eq!(log.matches(cause).count(), 1, "{log}");
    assert!(
        log.lines()
            .any(|l| l.contains(" error ") && l.contains(cause)),
        "{log}"
    );
    assert!(!dir.join("w.sock").exists());

    // Bad YAML: the parser's message once, naming the file.
    let bad = dir.join("bad.yml");
    let yaml = "server:\n  unix_domain_path: [\n";
    std::fs::write(&bad, yaml).unwrap();
    let (code, _, err) = warden(&["server", "--config", bad.to_str().unwrap()]);
    let want = warden::config::Config::parse(yaml).unwrap_err().to_string();
    assert_eq!(
        (code, err.as_str()),
        (1, format!("warden: {}: {want}\n", bad.display()).as_str())
    );
    // A missing config names its path.
    let (code, _, err) = warden(&["server", "--config", "/nonexistent/w.yml"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("warden: cannot read config /nonexistent/w.yml: "),
        "{err}"
    );
}

#[test]
fn json_log_lines_have_stenos_fields() {
    require_root();
    let (dir, _g) = scratch("ops-json");
    let cfg = failing_config(&dir, "  format: json\n");
    let (code, _, err) = warden(&["server", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    let log = std::fs::read_to_string(dir.join("w.log")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(lines.len() >= 2, "{log}");
    for v in &lines {
        assert!(v["timestamp"].as_f64().unwrap() > 1.6e9, "{v}");
        assert!(v["message"].is_string(), "{v}");
        assert!(v["data"].is_object(), "{v}");
        let level = v["log_level"].as_str().unwrap();
        assert!(
            ["error", "warn", "info", "debug", "debug2"].contains(&level),
            "{v}"
        );
    }
    assert!(lines.iter().any(|v| v["log_level"] == "info"
        && v["message"]
            .as_str()
            .unwrap()
            .starts_with("read config from")));
    assert!(lines
        .iter()
        .any(|v| v["log_level"] == "error"
            && v["message"].as_str().unwrap().contains("nft not found")));
}

#[test]
fn check_config_prints_the_effective_config() {
    let (dir, _g) = scratch("ops-check");
    let f = dir.join("c.yml");
    std::fs::write(
        &f,
        format!(
            "server:\n  container_rootfs_path: {}\n  bin_path: {}\n  container_klass: X\nlogging:\n  format: json\n",
            rootfs().display(),
            bin_dir().display()
        ),
    )
    .unwrap();
    let (code, out, err) = warden(&["check-config", f.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  format: json\n"), "{out}");
    assert!(
        out.contains("  max_connections: 512\n"),
        "defaults shown:\n{out}"
    );
    assert!(
        err.contains("ignoring unknown key server.container_klass"),
        "{err}"
    );
    // What it prints is a config that reads back the same.
    let back = warden::config::Config::parse(&out).unwrap();
    assert_eq!(back.effective(), out);
    // A bad key: exit 1 naming the file and the key.
    std::fs::write(&f, "logging:\n  level: loud\n").unwrap();
    let (code, _, err) = warden(&["check-config", "--config", f.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "warden: {}: config key logging.level",
            f.display()
        )),
        "{err}"
    );
    // The shipped example is valid YAML with every key (its paths may be
    // missing on this host: then it says which).
    let shipped = workspace().join("etc/warden.yml");
    let (code, out, err) = warden(&["check-config", shipped.to_str().unwrap()]);
    assert!(
        out.contains("unix_domain_path: /run/warden/warden.sock"),
        "{out}"
    );
    assert!(
        code == 0 || err.contains("server.container_rootfs_path"),
        "{err}"
    );
}

/// GET (or another method) with curl: (HTTP status, headers, body).
fn curl(args: &[&str], url: &str) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "-D", "-"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl (make deps-test installs it)");
    assert!(out.status.success(), "curl {url}: {}", text(out.stderr));
    let all = text(out.stdout);
    let (head, body) = all.split_once("\r\n\r\n").unwrap_or((&all, ""));
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, head.to_string(), body.to_string())
}

/// The value of the sample `name` in Prometheus text.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in\n{metrics}"))
        .parse()
        .unwrap()
}

#[test]
fn health_check_and_metrics_over_http() {
    let s = Srv::start(
        "ops-http",
        Opts {
            extra_yaml: "health_check_server:\n  port: 0\n".into(),
            ..Default::default()
        },
    );
    // The port taken is logged: "health check and metrics on http://A/ ...".
    let mut base = String::new();
    assert!(wait_for(Duration::from_secs(10), || {
        base = s
            .log()
            .split("health check and metrics on ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        !base.is_empty()
    }));
    assert!(
        base.starts_with("http://127.0.0.1:"),
        "loopback by default: {base}"
    );

    let (code, head, body) = curl(&[], &format!("{base}/"));
    assert_eq!((code, body.as_str()), (200, ""), "{head}");
    let (code, _, _) = curl(&["-X", "POST"], &format!("{base}/"));
    assert_eq!(code, 405);

    let mut c = s.client();
    let h = warden_tests::server::create_default(&mut c);
    let r = warden_tests::server::run(&mut c, &h, "echo x");
    assert_eq!(r.exit_status, Some(0));
    // Running until destroy kills it.
    let _job = warden_tests::server::spawn(&mut c, &h, "sleep 60");
    let (code, _, _) = s.warden(&["info", "no-such-handle"]);
    assert_eq!(code, 1);

    let (code, head, m) = curl(&[], &format!("{base}/metrics"));
    assert_eq!(code, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(sample(&m, "warden_requests_total{type=\"create\"}") >= 1.0);
    assert!(sample(&m, "warden_requests_total{type=\"run\"}") >= 1.0);
    assert!(sample(&m, "warden_request_errors_total{type=\"info\"}") >= 1.0);
    assert_eq!(
        sample(&m, "warden_request_errors_total{type=\"create\"}"),
        0.0
    );
    let runs = sample(&m, "warden_request_duration_seconds_count{type=\"run\"}");
    let inf = sample(
        &m,
        "warden_request_duration_seconds_bucket{type=\"run\",le=\"+Inf\"}",
    );
    assert_eq!(runs, inf);
    assert!(sample(&m, "warden_request_duration_seconds_sum{type=\"create\"}") > 0.0);
    assert_eq!(sample(&m, "warden_containers{state=\"active\"}"), 1.0);
    assert_eq!(sample(&m, "warden_jobs{state=\"running\"}"), 1.0);
    // A job nobody linked stays, exited.
    warden_tests::server::spawn(&mut c, &h, "true");
    let mut m = m;
    assert!(
        wait_for(Duration::from_secs(20), || {
            m = curl(&[], &format!("{base}/metrics")).2;
            sample(&m, "warden_jobs{state=\"exited\"}") == 1.0
        }),
        "{m}"
    );
    assert_eq!(sample(&m, "warden_pool_in_use{pool=\"network\"}"), 1.0);
    assert_eq!(sample(&m, "warden_pool_size{pool=\"network\"}"), 64.0);
    assert_eq!(sample(&m, "warden_pool_size{pool=\"uid\"}"), 200.0);
    assert!(
        m.contains("# TYPE warden_script_failures_total counter"),
        "{m}"
    );

    warden_tests::server::destroy_or_retry(&mut c, &h);
    let (_, _, m) = curl(&[], &format!("{base}/metrics"));
    assert_eq!(sample(&m, "warden_containers{state=\"active\"}"), 0.0);
    assert_eq!(sample(&m, "warden_pool_in_use{pool=\"network\"}"), 0.0);
}

/// A PATH directory holding every command of the host's PATH but `nft`.
fn path_without_nft(dir: &Path) -> PathBuf {
    let p = dir.join("path");
    std::fs::create_dir_all(&p).unwrap();
    for d in ["/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let Ok(rd) = std::fs::read_dir(d) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if name == "nft" || p.join(&name).exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(e.path(), p.join(&name));
        }
    }
    p
}

fn demo(env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(workspace().join("tests/demo.sh"))
        .env("WARDEN_BIN_DIR", bin_dir())
        .env("WARDEN_ROOTFS", rootfs())
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (c, o, e) = warden_tests::run(&mut cmd);
    (c, text(o), text(e))
}

#[test]
fn demo_without_nftables_says_what_to_install() {
    require_root();
    let (dir, _g) = scratch("ops-demo-nft");
    let path = path_without_nft(&dir);
    let (code, out, err) = demo(&[("PATH", path.to_str().unwrap())]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("missing on this host: nftables"), "{err}");
    assert!(err.contains("sudo make deps"), "{err}");
}

#[test]
fn demo_prints_the_log_of_a_server_that_died() {
    require_root();
    let (dir, _g) = scratch("ops-demo-dead");
    let scripts = scripts_without_nft(&dir);
    let (code, out, err) = demo(&[
        ("WARDEN_DEMO_SCRIPTS", scripts.to_str().unwrap()),
        ("WARDEN_DEMO_PREFIX", "zq13d"),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("the server exited while starting (status 1)"),
        "{err}"
    );
    assert!(!err.contains("did not answer"), "{err}");
    // The cause once in the log and once on the server's stderr.
    assert_eq!(err.matches("nft not found").count(), 2, "{err}");
}

#[test]
fn demo_runs_a_command_in_a_container() {
    require_root();
    let pid = std::process::id();
    // 10.251/16: no other test's pool.
    let net = format!("10.251.{}.0/24", pid % 250);
    let prefix = format!("d{}", warden_tests::server::b36(pid % 46656, 3));
    let (code, out, err) = demo(&[("WARDEN_DEMO_PREFIX", &prefix), ("WARDEN_DEMO_NET", &net)]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("hello from "), "{out}");
    assert!(out.ends_with("demo: OK\n"), "{out}");
    assert!(err.contains("no containers"), "{err}");
}

#[test]
fn install_files_and_man_pages() {
    let (dir, _g) = scratch("ops-install");
    let dest = dir.join("dest");
    let out = Command::new("make")
        .args(["-s", "install-files"])
        .arg(format!("DESTDIR={}", dest.display()))
        .arg(format!("BIN_DIR={}", bin_dir().display()))
        .arg(format!("MAN_DIR={}", dir.join("man").display()))
        .current_dir(workspace())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(out.stderr));
    let p = |s: &str| dest.join(s.trim_start_matches('/'));
    for f in [
        "/usr/local/bin/warden",
        "/usr/local/bin/wshd",
        "/usr/local/share/warden/rootfs-scripts/create.sh",
        "/etc/warden/warden.yml",
        "/usr/local/share/man/man1/warden.1",
        "/usr/local/share/man/man1/warden-run.1",
        "/usr/local/share/man/man8/wshd.8",
        "/usr/local/share/bash-completion/completions/warden",
        "/usr/local/share/zsh/site-functions/_warden",
        "/usr/local/share/fish/vendor_completions.d/warden.fish",
    ] {
        assert!(p(f).is_file(), "{f} not installed");
    }
    let unit = std::fs::read_to_string(p("/lib/systemd/system/warden.service")).unwrap();
    assert!(unit.contains("Type=notify"), "{unit}");
    assert!(
        unit.contains("ExecReload=/bin/kill -USR2 $MAINPID"),
        "{unit}"
    );
    assert!(
        unit.contains("ExecStart=/usr/local/bin/warden server --config /etc/warden/warden.yml"),
        "{unit}"
    );
    assert!(!unit.contains('@'), "placeholders left:\n{unit}");
    // Each helper's man page covers every option its --help lists.
    for h in ["wshd", "wsh", "iomux-spawn", "iomux-link", "oom"] {
        let page = std::fs::read_to_string(p(&format!("/usr/local/share/man/man8/{h}.8")))
            .unwrap()
            .replace("\\-", "-");
        let help = text(Command::new(bin(h)).arg("--help").output().unwrap().stdout);
        let opts = help.split("\noptions:\n").nth(1).unwrap();
        let opts = opts.split("\n\n").next().unwrap();
        for l in opts.lines() {
            let Some(flag) = l.trim_start().split([' ', ',']).next() else {
                continue;
            };
            if flag.starts_with('-') && l.starts_with("  -") {
                assert!(page.contains(flag), "{h}.8 lacks {flag}");
            }
        }
        assert!(page.contains(".SH EXIT STATUS"), "{h}.8");
    }
}

/// Type=notify (etc/warden.service): READY=1 once the socket answers,
/// STOPPING=1 when a signal starts the drain.
#[test]
fn systemd_is_notified_when_ready_and_stopping() {
    let (dir, _g) = scratch("ops-notify");
    let p = dir.join("notify.sock");
    let rx = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut s = Srv::start(
        "ops-notify",
        Opts {
            env: vec![("NOTIFY_SOCKET".into(), p.display().to_string())],
            ..Default::default()
        },
    );
    let mut buf = [0u8; 256];
    let n = rx.recv(&mut buf).expect("READY=1 within 30 s");
    assert_eq!(&buf[..n], b"READY=1");
    s.signal_and_wait(nix::sys::signal::Signal::SIGTERM);
    let n = rx.recv(&mut buf).expect("STOPPING=1");
    assert_eq!(&buf[..n], b"STOPPING=1");
}
