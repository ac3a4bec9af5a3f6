//! Every helper's command line (wsys::args): a usage error is one message
//! line plus the synopsis on stderr and exit status 2, `--help` is the
//! synopsis, what the helper is, its options and exit statuses on stdout
//! and exit 0, `--version` is `PROG VERSION` and exit 0, and no argument (non-UTF-8 included)
//! makes a helper panic. None of these invocations gets far enough to
//! create anything.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::process::{Command, Stdio};
use warden_tests::{bin, run, scratch};

/// (helper, arguments, a word the message must contain)
const BAD: &[(&str, &[&str], &str)] = &[
    ("wsh", &["--bogus-flag"], "--bogus-flag"),
    ("wsh", &["--socket"], "--socket"),
    ("wsh", &["--rsh"], "host"),
    ("wsh", &["--rsh", "-x", "h"], "-x"),
    ("wsh", &["-l", "vcap", "true"], "-l"),
    ("wshd", &["--bogus", "x"], "--bogus"),
    ("wshd", &["--run"], "--run"),
    ("wshd", &["--root", ""], "--root"),
    ("wshd", &["--hostname", ""], "--hostname"),
    ("wshd", &["stray"], "stray"),
    ("iomux-spawn", &[], "DIR"),
    ("iomux-spawn", &["/tmp/x"], "DIR"),
    (
        "iomux-spawn",
        &["--ring-size", "12", "/tmp/x", "true"],
        "ring size",
    ),
    (
        "iomux-spawn",
        &["--ring-size", "x", "/tmp/x", "true"],
        "not a number",
    ),
    ("iomux-spawn", &["--linger"], "--linger"),
    ("iomux-spawn", &["--bogus", "/tmp/x", "true"], "--bogus"),
    ("iomux-link", &[], "DIR"),
    ("iomux-link", &["-w"], "-w"),
    ("iomux-link", &["-x", "d"], "-x"),
    ("iomux-link", &["d", "e"], "e"),
    ("oom", &[], "CGROUP_DIR"),
    ("oom", &["a", "b"], "b"),
    ("oom", &["-x"], "-x"),
];

const HELPERS: &[&str] = &["wsh", "wshd", "iomux-spawn", "iomux-link", "oom"];

#[test]
fn usage_errors_have_one_format_and_status_2() {
    for (prog, args, word) in BAD {
        let (code, out, err) = run(Command::new(bin(prog)).args(*args).stdin(Stdio::null()));
        let err = String::from_utf8(err).unwrap();
        let what = format!("{prog} {args:?}: {err:?}");
        assert_eq!(code, 2, "{what}");
        assert!(out.is_empty(), "{what}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{what}");
        assert!(lines[0].starts_with(&format!("{prog}: ")), "{what}");
        assert!(lines[0].contains(word), "{what}");
        assert!(lines[1].starts_with(&format!("usage: {prog} ")), "{what}");
    }
}

#[test]
fn help_goes_to_stdout_with_status_0() {
    for prog in HELPERS {
        for flag in ["--help", "-h"] {
            let (code, out, err) = run(Command::new(bin(prog)).arg(flag));
            let out = String::from_utf8(out).unwrap();
            assert_eq!((code, err.len()), (0, 0), "{prog} {flag}");
            assert!(out.starts_with(&format!("usage: {prog} ")), "{prog}: {out}");
            // What the tool is (a sentence naming it), its options, its
            // exit statuses, usage errors among them.
            let about = out.split("\n\n").nth(1).unwrap_or("");
            assert!(about.starts_with(&format!("{prog} ")), "{prog}: {out}");
            assert!(out.contains("\noptions:\n"), "{prog}: {out}");
            assert!(out.contains("  --version "), "{prog}: {out}");
            assert!(out.contains("\nexit status:\n"), "{prog}: {out}");
            assert!(
                out.contains("  2  ") || out.contains(" 2 "),
                "{prog}: {out}"
            );
            assert!(out.contains("usage error"), "{prog}: {out}");
        }
        let (code, out, err) = run(Command::new(bin(prog)).arg("--version"));
        let out = String::from_utf8(out).unwrap();
        assert_eq!((code, err.len()), (0, 0), "{prog} --version");
        assert_eq!(out, format!("{prog} {}\n", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn non_utf8_arguments_never_panic() {
    // An empty scratch directory as the working directory: relative
    // operands name nothing there.
    let (cwd, _clean) = scratch("usage");
    let bad = || OsString::from_vec(vec![b'-', b'-', 0xff]);
    let word = || OsString::from_vec(vec![b'x', 0xfe]);
    for prog in HELPERS {
        for args in [vec![bad()], vec![word(), word()], vec![word()]] {
            let mut cmd = Command::new(bin(prog));
            // A bad socket or directory: whatever a helper does with a
            // non-UTF-8 operand, it ends at once, without a panic (101).
            cmd.args(&args)
                .env("IOMUX_HOLD", "0")
                .env("IOMUX_LINGER", "0")
                .current_dir(&cwd)
                .stdin(Stdio::null());
            if *prog == "wshd" {
                // wshd would start a container from ./run ./lib ./root.
                continue;
            }
            let (code, _, err) = run(&mut cmd);
            let err = String::from_utf8_lossy(&err);
            assert_ne!(code, 101, "{prog} {args:?}: {err}");
            assert!(!err.contains("panicked"), "{prog} {args:?}: {err}");
        }
    }
    assert_eq!(
        std::fs::read_dir(&cwd).unwrap().count(),
        0,
        "left something"
    );
    // wshd: only the option form (an operand is refused before anything).
    let (code, _, _) = run(Command::new(bin("wshd")).arg(bad()));
    assert_eq!(code, 2);
    let (code, _, _) = run(Command::new(bin("wshd")).arg("--title").arg(word()));
    assert_eq!(code, 2, "a title must be text");
}
