//! The scripts `warden start` spawns, as dea_ng built them
//! (lib/dea/starting/startup_script_generator.rb and
//! Instance#promise_exec_hook_script, at the version whose start script
//! wrote logs/env.log and tee'd the app's output, before commit 930d3236
//! "Remove stdout and stderr logs from app startup").
//!
//! The start script, run by bash as the container's unprivileged user from
//! its home (where the droplet was extracted: app/, logs/, tmp/,
//! staging_info.yml), is these parts joined by newlines:
//!
//! 1. `umask 077`
//! 2. the system variables' export lines ([`super::env`])
//! 3. `unset GEM_PATH`, then every readable `app/.profile.d/*.sh` sourced
//! 4. the user variables' export lines
//! 5. `env > logs/env.log`
//! 6. the start: `DROPLET_BASE_DIR=$PWD`, `cd app`, the start command in a
//!    subshell in the background with its stdout tee'd to logs/stdout.log
//!    and its stderr to logs/stderr.log (and on to the job's own streams),
//!    its pid appended to run.pid, and `wait` for it, so the job's exit
//!    status is the app's.
//!
//! The start command is inserted as the DEA inserted it: verbatim, as shell
//! text (it comes from the droplet's staging_info.yml or `--command`).
//!
//! A hook script (the DEA's `before_start`) is `umask 077`, every variable's
//! export line (system, then user), the hook's text, and `exit`.

/// The `.profile.d` part (EXPORT_BUILDPACK_ENV_VARIABLES_SCRIPT).
const PROFILE_D: &str = "unset GEM_PATH
if [ -d app/.profile.d ]; then
  for i in app/.profile.d/*.sh; do
    if [ -r $i ]; then
      . $i
    fi
  done
  unset i
fi
";

/// The start part (START_SCRIPT); `%s` is the start command.
const START: &str = "DROPLET_BASE_DIR=$PWD
cd app
(%s) > >(tee $DROPLET_BASE_DIR/logs/stdout.log) 2> >(tee $DROPLET_BASE_DIR/logs/stderr.log >&2) &
STARTED=$!
echo \"$STARTED\" >> $DROPLET_BASE_DIR/run.pid

wait $STARTED
";

/// The start script; `system_env` and `user_env` are export lines
/// ([`super::env::export`]).
pub fn start_script(start_command: &str, user_env: &str, system_env: &str) -> String {
    [
        "umask 077",
        system_env,
        PROFILE_D,
        user_env,
        "env > logs/env.log",
        &START.replacen("%s", start_command, 1),
    ]
    .join("\n")
}

/// A hook script run before the start (`before_start`).
pub fn hook_script(all_env: &str, hook: &str) -> String {
    ["umask 077", all_env, hook, "exit"].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_script_is_the_deas() {
        let s = start_script("./web --x", "export U=\"1\";\n", "export S=\"2\";\n");
        assert_eq!(
            s,
            "umask 077\nexport S=\"2\";\n\nunset GEM_PATH\nif [ -d app/.profile.d ]; then\n  for i in app/.profile.d/*.sh; do\n    if [ -r $i ]; then\n      . $i\n    fi\n  done\n  unset i\nfi\n\nexport U=\"1\";\n\nenv > logs/env.log\nDROPLET_BASE_DIR=$PWD\ncd app\n(./web --x) > >(tee $DROPLET_BASE_DIR/logs/stdout.log) 2> >(tee $DROPLET_BASE_DIR/logs/stderr.log >&2) &\nSTARTED=$!\necho \"$STARTED\" >> $DROPLET_BASE_DIR/run.pid\n\nwait $STARTED\n"
        );
    }

    #[test]
    fn a_percent_in_the_command_is_kept() {
        let s = start_script("printf '%s\\n' %s", "", "");
        assert!(s.contains("(printf '%s\\n' %s) > >(tee"), "{s}");
    }

    #[test]
    fn hook_script_shape() {
        assert_eq!(
            hook_script("export A=\"1\";\n", "touch x"),
            "umask 077\nexport A=\"1\";\n\ntouch x\nexit"
        );
    }

    /// Runs the script in a scratch droplet with bash: order of env,
    /// .profile.d, user env; env.log; tee'd logs; run.pid; exit status.
    #[test]
    fn start_script_runs_under_bash() {
        if !std::path::Path::new("/bin/bash").exists() {
            return;
        }
        let d = std::env::temp_dir().join(format!("warden-start-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("app/.profile.d")).unwrap();
        std::fs::create_dir_all(d.join("logs")).unwrap();
        std::fs::write(
            d.join("app/.profile.d/a.sh"),
            "export FROM_PROFILE=\"$S-profile\"\nexport OVER=profile\n",
        )
        .unwrap();
        let sys = super::super::env::export(&[("S".into(), "sys".into())]);
        let user = super::super::env::export(&[("OVER".into(), "user".into())]);
        let s = start_script(
            "echo \"$FROM_PROFILE $OVER $(pwd)\"; echo err >&2; exit 7",
            &user,
            &sys,
        );
        let out = std::process::Command::new("/bin/bash")
            .args(["-c", &s])
            .current_dir(&d)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(7));
        let line = format!("sys-profile user {}/app\n", d.display());
        assert_eq!(String::from_utf8_lossy(&out.stdout), line);
        assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
        let rd = |p: &str| std::fs::read_to_string(d.join(p)).unwrap();
        assert_eq!(rd("logs/stdout.log"), line);
        assert_eq!(rd("logs/stderr.log"), "err\n");
        assert!(rd("logs/env.log").contains("OVER=user\n"));
        assert!(rd("run.pid").trim().parse::<u32>().is_ok());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("logs/env.log"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "umask 077");
        let _ = std::fs::remove_dir_all(&d);
    }
}
