//! What the client prints: JSON or text, and a closed stdout ends it
//! quietly (141) instead of a panic.

use anyhow::Result;
use serde::Serialize;
use warden::proto;

/// An error and its causes on one line, each said once: a cause whose
/// text its wrapper already printed (`#[error("{0}")]` over a `#[from]`
/// source) is not repeated.
pub(crate) fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if s.is_empty() || out.contains(&s) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&s);
    }
    out
}

/// println! that never panics: a closed stdout (EPIPE, e.g. `| head`)
/// ends the client quietly with 141 (128 + SIGPIPE), as a shell tool would.
macro_rules! outln {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let r = writeln!(std::io::stdout(), $($t)*);
        $crate::cli::output::exit_on_broken_pipe(r);
    }};
}

pub(crate) fn exit_on_broken_pipe(r: std::io::Result<()>) {
    if let Err(e) = r {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
    }
}

pub(crate) fn print_json<T: Serialize>(v: &T) -> Result<()> {
    outln!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// `info` as `key: value` lines; fields the server left empty are omitted.
pub(crate) fn print_info(i: &proto::InfoResponse) {
    let line = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            outln!("{k}: {v}");
        }
    };
    line("state", i.state.as_deref());
    line("events", Some(&i.events.join(", ")));
    line("host_ip", i.host_ip.as_deref());
    line("container_ip", i.container_ip.as_deref());
    line("container_path", i.container_path.as_deref());
    let ids: Vec<String> = i.job_ids.iter().map(|j| j.to_string()).collect();
    line("job_ids", Some(&ids.join(" ")));
    if let Some(m) = &i.memory_stat {
        outln!(
            "memory: rss={} cache={} total_rss={}",
            m.rss.unwrap_or(0),
            m.cache.unwrap_or(0),
            m.total_rss.unwrap_or(0)
        );
    }
    if let Some(c) = &i.cpu_stat {
        outln!(
            "cpu: usage={} user={} system={}",
            c.usage.unwrap_or(0),
            c.user.unwrap_or(0),
            c.system.unwrap_or(0)
        );
    }
    if let Some(d) = &i.disk_stat {
        outln!(
            "disk: bytes_used={} inodes_used={}",
            d.bytes_used.unwrap_or(0),
            d.inodes_used.unwrap_or(0)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_said_is_not_repeated() {
        #[derive(Debug, thiserror::Error)]
        enum Inner {
            #[error("setup.sh failed (exit status 1): nft not found")]
            X,
        }
        #[derive(Debug, thiserror::Error)]
        enum Outer {
            #[error("{0}")]
            Step(#[from] Inner),
        }
        let e = anyhow::Error::from(Outer::from(Inner::X));
        assert_eq!(
            error_text(&e),
            "setup.sh failed (exit status 1): nft not found"
        );
        let e = anyhow::Error::from(std::io::Error::other("gone")).context("cannot open /x");
        assert_eq!(error_text(&e), "cannot open /x: gone");
    }
}
