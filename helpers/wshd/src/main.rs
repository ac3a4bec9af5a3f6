//! `wshd --run DIR --lib DIR --root DIR [--title NAME] [--allow-nested]`
//!
//! Defaults as in warden's C wshd: `--run run --lib lib --root root`.
//! Exits 0 once `<run>/wshd.sock` accepts connections; otherwise prints one
//! line naming the failed step and exits 1.

use std::path::PathBuf;
use wshd::boot::{start, Config};

const USAGE: &str =
    "Usage: wshd [--run DIR] [--lib DIR] [--root DIR] [--title NAME] [--allow-nested]\n\
  --run PATH    directory where the server socket (wshd.sock) is placed\n\
  --lib PATH    directory containing the hooks\n\
  --root PATH   directory that becomes / of the container\n\
  --title NAME  process title of the container's init\n\
  --allow-nested  root sessions may mount and create user namespaces (nested warden)";

fn parse(args: &[String]) -> Result<Option<Config>, String> {
    let mut cfg = Config {
        run: PathBuf::from("run"),
        lib: PathBuf::from("lib"),
        root: PathBuf::from("root"),
        title: None,
        allow_nested: false,
    };
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if a == "-h" || a == "--help" {
            return Ok(None);
        }
        if a == "--allow-nested" {
            cfg.allow_nested = true;
            i += 1;
            continue;
        }
        let v = args
            .get(i + 1)
            .ok_or_else(|| format!("option {a} needs a value"))?;
        if v.is_empty() {
            return Err(format!("option {a} needs a non-empty value"));
        }
        match a {
            "--run" => cfg.run = v.into(),
            "--lib" => cfg.lib = v.into(),
            "--root" => cfg.root = v.into(),
            "--title" => cfg.title = Some(v.clone()),
            _ => return Err(format!("invalid option -- {a}")),
        }
        i += 2;
    }
    Ok(Some(cfg))
}

fn main() {
    // Nothing the invoker leaked may reach the container's init. (Closed
    // fds 0-2 were already reopened on /dev/null by Rust's runtime, so no
    // socket or pipe of ours can land on them.)
    let _ = wsys::proc_::close_from(3);
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cfg = match parse(&args) {
        Ok(Some(c)) => c,
        Ok(None) => {
            eprintln!("{USAGE}");
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("wshd: {e}\nTry `wshd --help' for more information.");
            std::process::exit(1);
        }
    };
    if let Err(e) = start(&cfg) {
        eprintln!("wshd: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flags() {
        let c = parse(&s(&[
            "--run", "r", "--lib", "l", "--root", "m", "--title", "wshd: x",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.run, PathBuf::from("r"));
        assert_eq!(c.title.as_deref(), Some("wshd: x"));
        assert_eq!(parse(&s(&[])).unwrap().unwrap().root, PathBuf::from("root"));
        assert!(parse(&s(&["--help"])).unwrap().is_none());
        assert!(parse(&s(&["--bogus", "x"])).is_err());
        assert!(parse(&s(&["--run"])).is_err());
        assert!(parse(&s(&["--run", ""])).is_err());
        assert!(!parse(&s(&[])).unwrap().unwrap().allow_nested);
        let n = parse(&s(&["--allow-nested", "--run", "r"]))
            .unwrap()
            .unwrap();
        assert!(n.allow_nested);
        assert_eq!(n.run, PathBuf::from("r"));
    }
}
