//! Positional-or-flag resolution of the client commands' arguments
//! (`warden link H 7` = `warden link --handle H --job-id 7`).

use super::{Cli, CopyArgs, HandleArg, JobRef};
use clap::CommandFactory;

/// A usage error of subcommand `sub` (clap's format, exit status 2).
pub(crate) fn usage(sub: &str, msg: impl std::fmt::Display) -> ! {
    let mut cmd = Cli::command();
    cmd.build();
    let sc = cmd.find_subcommand_mut(sub).cloned();
    let mut c = sc.unwrap_or(cmd);
    c.error(clap::error::ErrorKind::MissingRequiredArgument, msg)
        .exit()
}

/// The value given as a flag or else the next positional argument.
pub(crate) fn pick<T>(sub: &str, what: &str, flag: Option<T>, pos: &mut Vec<T>) -> T {
    if let Some(v) = flag {
        return v;
    }
    if pos.is_empty() {
        usage(
            sub,
            format!("{what} is required (as an argument or its flag)"),
        );
    }
    pos.remove(0)
}

pub(crate) fn no_more<T: std::fmt::Debug>(sub: &str, pos: Vec<T>) {
    if let Some(v) = pos.first() {
        usage(sub, format!("unexpected argument {v:?}"));
    }
}

impl HandleArg {
    pub(crate) fn get(self, sub: &str) -> String {
        let mut pos: Vec<String> = self.handle_pos.into_iter().collect();
        let h = pick(sub, "HANDLE", self.handle, &mut pos);
        no_more(sub, pos);
        h
    }
}

impl JobRef {
    pub(crate) fn get(self, sub: &str) -> (String, u32) {
        let JobRef {
            handle_pos,
            job_pos,
            handle,
            job_id,
        } = self;
        // With --handle, a lone positional is the job id.
        let (h, mut jobs) = match (handle, handle_pos) {
            (Some(h), Some(p)) => match p.parse::<u32>() {
                Ok(j) if job_pos.is_none() => (h, vec![j]),
                _ => usage(sub, format!("unexpected argument {p:?}")),
            },
            (Some(h), None) => (h, job_pos.into_iter().collect()),
            (None, Some(p)) => (p, job_pos.into_iter().collect()),
            (None, None) => usage(sub, "HANDLE is required (as an argument or --handle)"),
        };
        let j = pick(sub, "JOB_ID", job_id, &mut jobs);
        no_more(sub, jobs);
        (h, j)
    }
}

impl CopyArgs {
    pub(crate) fn get(self, sub: &str) -> (String, String, String) {
        let mut pos: Vec<String> = [self.handle_pos, self.src_pos, self.dst_pos]
            .into_iter()
            .flatten()
            .collect();
        let h = pick(sub, "HANDLE", self.handle, &mut pos);
        let s = pick(sub, "SRC_PATH", self.src_path, &mut pos);
        let d = pick(sub, "DST_PATH", self.dst_path, &mut pos);
        no_more(sub, pos);
        (h, s, d)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Cmd};
    use clap::Parser;

    #[test]
    fn positional_or_flag() {
        let p = |v: &[&str]| match Cli::try_parse_from(v).unwrap().cmd {
            Cmd::Link { j, .. } => j.get("link"),
            _ => unreachable!(),
        };
        let want = ("h".to_string(), 7);
        assert_eq!(p(&["warden", "link", "h", "7"]), want);
        assert_eq!(
            p(&["warden", "link", "--handle", "h", "--job-id", "7"]),
            want
        );
        assert_eq!(
            p(&["warden", "link", "--handle", "h", "--job_id", "7"]),
            want
        );
        assert_eq!(p(&["warden", "link", "--handle", "h", "7"]), want);
        assert_eq!(p(&["warden", "link", "h", "--job_id=7"]), want);
        let c = match Cli::try_parse_from(["warden", "copy-in", "--handle", "h", "/a", "/b"])
            .unwrap()
            .cmd
        {
            Cmd::CopyIn { c, .. } => c.get("copy-in"),
            _ => unreachable!(),
        };
        assert_eq!(c, ("h".into(), "/a".into(), "/b".into()));
    }
}
