//! `oom CGROUP_DIR`: exit 0 on a real OOM of the cgroup; see the `oom` crate.
//! Exit 1 with a message when no OOM can come (bad path, not a memory
//! cgroup, cgroup removed); exit 2 on a usage error (see `wsys::args`).

use std::path::PathBuf;
use wsys::args::{Arg, Cli, Error, Parsed, Parser};

const CLI: Cli = Cli {
    prog: "oom",
    synopsis: "CGROUP_DIR",
    about: "oom blocks until the memory cgroup CGROUP_DIR runs out of memory (the kernel\n\
            killed a process of it or would have), then exits 0. warden runs one per\n\
            container with a memory limit and stops the container when it exits 0.",
    options: &[("CGROUP_DIR", "a memory cgroup directory (v1 or v2)")],
    exit_codes: &[
        ("0", "the cgroup hit OOM"),
        (
            "1",
            "no OOM can come: bad path, not a memory cgroup, or the cgroup was\nremoved (message on stderr)",
        ),
        ("2", "usage error"),
    ],
};

fn parse(p: &mut Parser) -> Result<Parsed<PathBuf>, Error> {
    let mut dir = None;
    while let Some(arg) = p.next()? {
        match arg {
            Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help),
            Arg::Long("version") => return Ok(Parsed::Version),
            Arg::Value(d) if dir.is_none() && !d.is_empty() => dir = Some(PathBuf::from(d)),
            a => return Err(a.unexpected()),
        }
    }
    Ok(Parsed::Run(dir.ok_or("CGROUP_DIR is required")?))
}

fn main() {
    let dir = CLI.get(parse(&mut wsys::args::from_env()));
    // No PR_SET_PDEATHSIG: it fires when the parent *thread* exits, which
    // would fake a "no OOM" for a threaded controller. A left-over oom ends
    // when its cgroup is removed.
    let verdict = oom::arm(&dir).and_then(|armed| match armed.wait() {
        // Exit at once, from inside the wait: closing the watcher's fds and
        // the runtime's teardown (signal stack) would be four more syscalls
        // between the OOM and the exit its caller waits for.
        Ok(()) => wsys::proc_::exit_now(0),
        Err(e) => Err(e),
    });
    match verdict {
        Ok(()) => {}
        Err(e) => {
            eprintln!("oom: {e}");
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_directory() {
        let p = |v: &[&str]| parse(&mut wsys::args::from_args(v));
        assert_eq!(
            p(&["/sys/fs/cgroup/x"]).unwrap(),
            Parsed::Run("/sys/fs/cgroup/x".into())
        );
        assert_eq!(p(&["--", "-x"]).unwrap(), Parsed::Run("-x".into()));
        assert_eq!(p(&["--help"]).unwrap(), Parsed::Help);
        for bad in [&[][..], &[""], &["a", "b"], &["-x"]] {
            assert!(p(bad).is_err(), "{bad:?}");
        }
    }
}
