//! `wshd [--run DIR] [--lib DIR] [--root DIR] [--title NAME] [--hostname NAME] [--allow-nested]
//! [--root-caps LIST]`
//!
//! Defaults as in warden's C wshd: `--run run --lib lib --root root`.
//! Exits 0 once `<run>/wshd.sock` accepts connections; otherwise prints one
//! line naming the failed step and exits 1. A usage error exits 2 (see
//! `wsys::args`).

use std::path::PathBuf;
use wshd::boot::{start, Config};
use wsys::args::{nonempty, text, Arg, Cli, Error, Parsed, Parser};

const CLI: Cli = Cli {
    prog: "wshd",
    synopsis:
        "[--run DIR] [--lib DIR] [--root DIR] [--title NAME] [--hostname NAME] [--allow-nested] [--root-caps LIST] [--bind MODE:SRC:DST]...",
    about: "wshd starts a container: its init is cloned into new mount, uts, ipc, pid\n\
            and net namespaces, pivots into --root, runs the hooks of --lib and serves\n\
            --run/wshd.sock, through which wsh runs commands inside. wshd itself exits\n\
            once the socket accepts connections; the container lives on.",
    options: &[
        (
            "--run PATH",
            "directory where the server socket (wshd.sock) is placed\n(default run)",
        ),
        ("--lib PATH", "directory containing the hooks (default lib)"),
        (
            "--root PATH",
            "directory that becomes / of the container (default root)",
        ),
        ("--title NAME", "process title of the container's init"),
        ("--hostname NAME", "host name of the container"),
        (
            "--allow-nested",
            "root sessions may mount and create namespaces (nested warden)",
        ),
        (
            "--root-caps LIST",
            "capabilities of root sessions: comma-separated names\n(CAP_CHOWN, NET_RAW, ...) or none; default: Docker's\ndefault set without NET_RAW and MKNOD (see wshd::harden)",
        ),
        (
            "--bind MODE:SRC:DST",
            "mount host path SRC at DST inside, MODE ro or rw\n(repeatable; applied without following symlinks)",
        ),
    ],
    exit_codes: &[
        ("0", "the container is up and wshd.sock accepts connections"),
        ("1", "a step failed (one line on stderr names it)"),
        ("2", "usage error"),
    ],
};

fn parse(p: &mut Parser) -> Result<Parsed<Config>, Error> {
    let mut cfg = Config {
        run: PathBuf::from("run"),
        lib: PathBuf::from("lib"),
        root: PathBuf::from("root"),
        title: None,
        allow_nested: false,
        root_caps: None,
        hostname: None,
        binds: Vec::new(),
    };
    let nonempty_text = |p: &mut Parser, opt: &str| {
        let v = text(p, opt)?;
        if v.is_empty() {
            return Err(Error::from(format!(
                "option '{opt}' needs a non-empty value"
            )));
        }
        Ok(v)
    };
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help),
            Arg::Long("version") => return Ok(Parsed::Version),
            Arg::Long("allow-nested") => cfg.allow_nested = true,
            Arg::Long("root-caps") => {
                let v = text(p, "--root-caps")?;
                cfg.root_caps = Some(
                    wshd::harden::parse_caps(&v)
                        .map_err(|e| Error::from(format!("option '--root-caps': {e}")))?,
                );
            }
            Arg::Long("run") => cfg.run = nonempty(p, "--run")?.into(),
            Arg::Long("lib") => cfg.lib = nonempty(p, "--lib")?.into(),
            Arg::Long("root") => cfg.root = nonempty(p, "--root")?.into(),
            Arg::Long("title") => cfg.title = Some(nonempty_text(p, "--title")?),
            Arg::Long("bind") => {
                let v = text(p, "--bind")?;
                cfg.binds.push(
                    wshd::setup::parse_bind(&v)
                        .map_err(|e| Error::from(format!("option '--bind': {e}")))?,
                );
            }
            Arg::Long("hostname") => {
                let h = nonempty_text(p, "--hostname")?;
                wshd::setup::check_hostname(&h)
                    .map_err(|e| Error::from(format!("option '--hostname' {h:?}: {e}")))?;
                cfg.hostname = Some(h)
            }
            a => return Err(a.unexpected()),
        }
    }
    Ok(Parsed::Run(cfg))
}

fn main() {
    // Nothing the invoker leaked may reach the container's init. (Closed
    // fds 0-2 were already reopened on /dev/null by Rust's runtime, so no
    // socket or pipe of ours can land on them.)
    let _ = wsys::proc_::close_from(3);
    let cfg = CLI.get(parse(&mut wsys::args::from_env()));
    if let Err(e) = start(&cfg) {
        eprintln!("wshd: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(v: &[&str]) -> Result<Parsed<Config>, Error> {
        parse(&mut wsys::args::from_args(v))
    }

    fn cfg(v: &[&str]) -> Config {
        run(v).unwrap().run().expect("not help")
    }

    #[test]
    fn flags() {
        let c = cfg(&[
            "--run", "r", "--lib", "l", "--root", "m", "--title", "wshd: x",
        ]);
        assert_eq!((c.run, c.lib, c.root), ("r".into(), "l".into(), "m".into()));
        assert_eq!(c.title.as_deref(), Some("wshd: x"));
        let d = cfg(&[]);
        assert_eq!(d.root, PathBuf::from("root"));
        assert_eq!((d.hostname, d.allow_nested), (None, false));
        assert_eq!(run(&["--help"]).unwrap(), Parsed::Help);
        let n = cfg(&["--allow-nested", "--run=r", "--hostname", "box1"]);
        assert!(n.allow_nested);
        assert_eq!(n.run, PathBuf::from("r"));
        assert_eq!(n.hostname.as_deref(), Some("box1"));
        assert_eq!(n.root_caps, None);
        use caps::Capability::*;
        let r = cfg(&["--root-caps", "chown,CAP_NET_RAW"]);
        assert_eq!(r.root_caps, Some(vec![CAP_CHOWN, CAP_NET_RAW]));
        assert_eq!(cfg(&["--root-caps=none"]).root_caps, Some(vec![]));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["--bogus", "x"][..],
            &["--run"],
            &["--run", ""],
            &["--hostname", ""],
            &["extra"],
            &["--allow-nested=yes"],
            &["--root-caps"],
            &["--root-caps", ""],
            &["--root-caps", "sys_module"],
            &["--root-caps", "chown,bogus"],
        ] {
            assert!(run(bad).is_err(), "{bad:?}");
        }
    }
}
