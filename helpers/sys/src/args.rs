//! The helpers' command lines: one parser ([`lexopt`]) and one way to fail.
//!
//! Every helper (wshd, wsh, iomux-spawn, iomux-link, oom) reads its
//! arguments with `std::env::args_os()` through a [`Parser`], so an
//! argument that is not UTF-8 is never a panic: paths and commands are taken
//! as bytes, anything else is a usage error. The command lines stay those of
//! the C helpers (getopt style: `-wFILE` and `-w FILE`, `--opt VALUE` and
//! `--opt=VALUE`, `--` ends the options, the first operand ends them where
//! a command follows). Every usage error looks the same and exits with
//! [`EXIT_USAGE`]:
//!
//! ```text
//! PROG: WHAT IS WRONG
//! usage: PROG SYNOPSIS
//! ```
//!
//! `-h` / `--help` prints what the helper is, the synopsis, the options and
//! the exit statuses on stdout and exits 0; `--version` prints
//! `PROG VERSION` on stdout and exits 0.

use std::ffi::OsString;

pub use lexopt::{Arg, Error, Parser, ValueExt};

/// Exit status of every usage error.
pub const EXIT_USAGE: i32 = 2;

/// The version every helper reports (the workspace's).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A parse result: what to run, or a request for help or the version.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    Run(T),
    Help,
    Version,
}

impl<T> Parsed<T> {
    /// What to run; None for a help or version request.
    pub fn run(self) -> Option<T> {
        match self {
            Parsed::Run(t) => Some(t),
            Parsed::Help | Parsed::Version => None,
        }
    }
}

/// One helper's name and documentation.
#[derive(Debug, Clone, Copy)]
pub struct Cli {
    /// The program name used in messages, e.g. `"wsh"`.
    pub prog: &'static str,
    /// The synopsis after the program name, e.g. `"[--socket PATH] [CMD ARGS...]"`.
    pub synopsis: &'static str,
    /// What the helper is for: one paragraph, lines of at most 78 columns.
    pub about: &'static str,
    /// (option or operand, what it does); a description may hold `\n` for
    /// continuation lines, which `--help` indents under the first.
    pub options: &'static [(&'static str, &'static str)],
    /// (exit status, when), in the order `--help` lists them.
    pub exit_codes: &'static [(&'static str, &'static str)],
}

/// The options every helper has, listed last by `--help`.
const COMMON: &[(&str, &str)] = &[
    ("-h, --help", "print this help and exit 0"),
    ("--version", "print the version and exit 0"),
];

impl Cli {
    /// The two lines of a usage error (without a trailing newline).
    pub fn usage_error(&self, e: &dyn std::fmt::Display) -> String {
        format!("{}: {e}\nusage: {} {}", self.prog, self.prog, self.synopsis)
    }

    /// Prints a usage error and exits with [`EXIT_USAGE`].
    pub fn fail(&self, e: &dyn std::fmt::Display) -> ! {
        eprintln!("{}", self.usage_error(e));
        std::process::exit(EXIT_USAGE)
    }

    /// The `--help` text: usage, what the helper is, options, exit statuses.
    pub fn help(&self) -> String {
        fn table(s: &mut String, rows: &[(&str, &str)]) {
            let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (k, v) in rows {
                let mut lines = v.lines();
                let first = lines.next().unwrap_or("");
                s.push_str(&format!("  {k:w$}  {first}\n"));
                for l in lines {
                    s.push_str(&format!("  {:w$}  {l}\n", ""));
                }
            }
        }
        let mut s = format!("usage: {} {}\n\n", self.prog, self.synopsis);
        s.push_str(self.about.trim_end());
        s.push_str("\n\noptions:\n");
        let rows: Vec<(&str, &str)> = self.options.iter().chain(COMMON).copied().collect();
        table(&mut s, &rows);
        s.push_str("\nexit status:\n");
        table(&mut s, self.exit_codes);
        s
    }

    /// The `--version` line.
    pub fn version(&self) -> String {
        format!("{} {VERSION}\n", self.prog)
    }

    /// What `parse` found; exits on help (0) or on a usage error (2).
    pub fn get<T>(&self, parsed: Result<Parsed<T>, Error>) -> T {
        match parsed {
            Ok(Parsed::Run(t)) => t,
            Ok(Parsed::Help) => {
                print!("{}", self.help());
                std::process::exit(0)
            }
            Ok(Parsed::Version) => {
                print!("{}", self.version());
                std::process::exit(0)
            }
            Err(e) => self.fail(&e),
        }
    }
}

/// A parser over this process's arguments (`args_os`, argv[0] skipped).
pub fn from_env() -> Parser {
    Parser::from_env()
}

/// A parser over `args` (without argv[0]), for tests.
pub fn from_args<I, S>(args: I) -> Parser
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    Parser::from_args(args)
}

/// The value of option `opt`, which must not be empty.
pub fn nonempty(p: &mut Parser, opt: &str) -> Result<OsString, Error> {
    let v = p.value()?;
    if v.is_empty() {
        return Err(format!("option '{opt}' needs a non-empty value").into());
    }
    Ok(v)
}

/// `v` (the value of `name`, an option or a variable) as a decimal number
/// of at most `max`.
pub fn uint(name: &str, v: &std::ffi::OsStr, max: u64) -> Result<u64, Error> {
    v.to_str()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|&n| n <= max)
        .ok_or_else(|| format!("{name}: not a number in 0..={max}: {}", v.to_string_lossy()).into())
}

/// The value of option `opt` as UTF-8 text.
pub fn text(p: &mut Parser, opt: &str) -> Result<String, Error> {
    p.value()?
        .into_string()
        .map_err(|v| format!("option '{opt}': not UTF-8: {v:?}").into())
}

/// Everything left (after the operand that ends the options), unchanged.
pub fn rest(p: &mut Parser) -> Vec<OsString> {
    p.raw_args().map(|r| r.collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStringExt;

    const CLI: Cli = Cli {
        prog: "x",
        synopsis: "[-w FILE] DIR",
        about: "x does a thing.",
        options: &[("-w FILE", "a file\nread twice")],
        exit_codes: &[("0", "done"), ("2", "usage error")],
    };

    /// `-w`, DIR, ARGS.
    type Got = (Option<OsString>, OsString, Vec<OsString>);

    /// `[-w FILE] DIR [ARGS...]`, the shape most helpers have.
    fn parse(p: &mut Parser) -> Result<Parsed<Got>, Error> {
        let mut w = None;
        while let Some(arg) = p.next()? {
            match arg {
                Arg::Short('w') => w = Some(nonempty(p, "-w")?),
                Arg::Short('h') | Arg::Long("help") => return Ok(Parsed::Help),
                Arg::Long("version") => return Ok(Parsed::Version),
                Arg::Value(dir) => return Ok(Parsed::Run((w, dir, rest(p)))),
                a => return Err(a.unexpected()),
            }
        }
        Err("missing DIR".into())
    }

    fn ok(v: &[&str]) -> Got {
        ok_os(v.iter().map(OsString::from).collect())
    }

    #[test]
    fn getopt_forms() {
        assert_eq!(ok(&["-wf", "d"]).0, Some("f".into()));
        assert_eq!(ok(&["-w", "f", "d"]).0, Some("f".into()));
        assert_eq!(ok(&["--", "-d"]).1, OsString::from("-d"));
        // The first operand ends the options: the rest is passed unchanged.
        assert_eq!(ok(&["d", "-w", "--", "x"]).2, vec!["-w", "--", "x"]);
        assert_eq!(parse(&mut from_args(["--help"])).unwrap(), Parsed::Help);
    }

    #[test]
    fn errors_are_one_format() {
        for (args, want) in [
            (&["-q", "d"][..], "x: invalid option '-q'"),
            (&["-w"], "x: missing argument for option '-w'"),
            (&["-w", "", "d"], "x: option '-w' needs a non-empty value"),
            (&[], "x: missing DIR"),
        ] {
            let e = parse(&mut from_args(args)).unwrap_err();
            assert_eq!(
                CLI.usage_error(&e),
                format!("{want}\nusage: x [-w FILE] DIR"),
                "{args:?}"
            );
        }
        assert_eq!(
            CLI.help(),
            "usage: x [-w FILE] DIR\n\nx does a thing.\n\noptions:\n  \
             -w FILE     a file\n              read twice\n  \
             -h, --help  print this help and exit 0\n  \
             --version   print the version and exit 0\n\n\
             exit status:\n  0  done\n  2  usage error\n"
        );
        assert_eq!(
            parse(&mut from_args(["--version"])).unwrap(),
            Parsed::Version
        );
        assert_eq!(CLI.version(), format!("x {VERSION}\n"));
    }

    #[test]
    fn non_utf8_is_never_a_panic() {
        let bad = OsString::from_vec(vec![b'd', 0xff]);
        let (_, dir, rest) = ok_os(vec![bad.clone(), bad.clone()]);
        assert_eq!((dir, rest), (bad.clone(), vec![bad.clone()]));
        let mut p = from_args([OsString::from("--opt"), bad]);
        assert!(matches!(p.next(), Ok(Some(Arg::Long("opt")))));
        assert!(text(&mut p, "--opt").is_err());
    }

    fn ok_os(v: Vec<OsString>) -> Got {
        parse(&mut from_args(v)).unwrap().run().expect("not help")
    }
}
