//! `warden start`, `warden apps`, `warden stop-app`: the DEA's instance
//! start (dea_ng Instance#start: promise_container, promise_setup_environment,
//! promise_extract_droplet, promise_exec_hook_script('before_start'),
//! promise_start) over the protocol, and what lists and stops its result.
//!
//! Per instance, in order: create `app-<NAME>-<INDEX>-<NONCE>`;
//! LimitMemory/LimitDisk; net_in (a pooled host port, or `--port` + index;
//! the container port is the host port, as the DEA's net_in without ports);
//! as root, `/home/vcap/app` made and owned by vcap and `/app` linked to it;
//! the droplet copied in and extracted in `/home/vcap` as vcap; the
//! `--before-start` hook run as vcap; the start script spawned as vcap with
//! rlimits nofile = `--fds`, nproc = 512 (Instance::NPROC_LIMIT);
//! `/etc/warden-app.json` written as root. Any failure destroys every
//! container this command made.
//!
//! Output of `start`, one line per instance: `HANDLE HOST:PORT JOB_ID`
//! (`--json`: one JSON object per line). `apps` prints `HANDLE NAME INDEX
//! HOST:PORT STATE` where STATE is `running` while the pid the start script
//! appended to run.pid is alive, else `crashed`.

use super::droplet;
use super::env::{self, App, Instance, Limits};
use super::start::{hook_script, start_script};
use super::{check_name, destroy_all, nonce, Result, Session, StageError};
use crate::proto::{self, Type};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The DEA's nproc limit for app instances.
pub const NPROC_LIMIT: u64 = 512;
/// Where the instance record lives in the container.
pub const RECORD: &str = "/etc/warden-app.json";

#[derive(clap::Args, Debug, Clone)]
pub struct StartArgs {
    /// The droplet (.tgz) `warden stage` wrote.
    pub droplet: PathBuf,
    /// Number of instances.
    #[arg(long, default_value_t = 1)]
    pub instances: u32,
    /// App name; default: the droplet's file name without extension.
    #[arg(long)]
    pub name: Option<String>,
    /// Memory limit per instance, MB (MEMORY_LIMIT).
    #[arg(long, default_value_t = 256)]
    pub memory: u64,
    /// Disk limit per instance, MB.
    #[arg(long, default_value_t = 1024)]
    pub disk: u64,
    /// File descriptor limit per instance.
    #[arg(long, default_value_t = 16384)]
    pub fds: u64,
    /// User variable NAME=VALUE; repeatable (after .profile.d, like the DEA).
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// JSON file: an array of service bindings (VCAP_SERVICES, DATABASE_URL).
    #[arg(long)]
    pub services: Option<PathBuf>,
    /// A URI of the app (application_uris); repeatable.
    #[arg(long = "uri")]
    pub uris: Vec<String>,
    /// Start command instead of the droplet's.
    #[arg(long)]
    pub command: Option<String>,
    /// Host port of instance 0 (instance i gets PORT + i); default: from
    /// the server's pool.
    #[arg(long)]
    pub port: Option<u32>,
    /// A script run in each container before the start (the DEA's
    /// before_start hook), with the app's environment.
    #[arg(long = "before-start", value_name = "FILE")]
    pub before_start: Option<PathBuf>,
    /// Root filesystem of the containers (default: the server's).
    #[arg(long)]
    pub rootfs: Option<String>,
    /// Seconds with no client before the server destroys an instance.
    /// Default: never (4294967295 s; the protocol has no null): like the
    /// DEA's, instances live until `stop-app`, although this client exits.
    #[arg(long = "grace-time")]
    pub grace_time: Option<u32>,
    /// Do not send LimitMemory/LimitDisk (for a server without limits).
    #[arg(long = "skip-limits")]
    pub skip_limits: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct AppsArgs {
    /// Only this app's instances.
    pub name: Option<String>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct StopAppArgs {
    /// The app whose instances go.
    pub name: String,
    /// Only this instance.
    #[arg(long)]
    pub index: Option<u32>,
}

/// `/etc/warden-app.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Record {
    pub name: String,
    pub index: u32,
    pub host_port: u32,
    pub container_port: u32,
    pub job_id: u32,
    pub instance_id: String,
    pub droplet: String,
    pub started_at: i64,
}

/// One started instance, as printed.
#[derive(Clone, Debug, Serialize)]
pub struct Started {
    pub handle: String,
    pub address: String,
    pub job_id: u32,
}

/// (name, index) of a handle `start` made: `app-<name>-<index>-<nonce>`.
pub fn parse_handle(h: &str) -> Option<(&str, u32)> {
    let rest = h.strip_prefix("app-")?;
    let (rest, nonce) = rest.rsplit_once('-')?;
    let (name, index) = rest.rsplit_once('-')?;
    if name.is_empty() || nonce.len() != 8 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((name, index.parse().ok()?))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// --instances and --port: at least one instance, all ports valid.
fn check_counts(a: &StartArgs) -> Result<()> {
    if a.instances == 0 {
        return Err(StageError::Input("--instances: want at least 1".into()));
    }
    if let Some(p) = a.port {
        if p == 0 || u64::from(p) + u64::from(a.instances) - 1 > 65535 {
            return Err(StageError::Input(format!(
                "--port {p}: ports {p}..{} are not all valid",
                u64::from(p) + u64::from(a.instances) - 1
            )));
        }
    }
    Ok(())
}

/// --name, or the droplet's file name without .tgz / .tar.gz.
fn app_name(a: &StartArgs) -> String {
    match &a.name {
        Some(n) => n.clone(),
        None => {
            let f = a
                .droplet
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            f.trim_end_matches(".tgz")
                .trim_end_matches(".tar.gz")
                .to_string()
        }
    }
}

/// --services and --before-start, read.
fn read_extras(a: &StartArgs) -> Result<(Vec<env::Service>, Option<String>)> {
    let services = match &a.services {
        Some(p) => env::parse_services(
            &std::fs::read_to_string(p)
                .map_err(|e| StageError::Input(format!("--services {}: {e}", p.display())))?,
        )?,
        None => vec![],
    };
    let hook = match &a.before_start {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| StageError::Input(format!("--before-start {}: {e}", p.display())))?,
        ),
        None => None,
    };
    Ok((services, hook))
}

pub fn start(socket: &Path, json: bool, a: &StartArgs) -> Result<()> {
    check_counts(a)?;
    let d = droplet::read(&a.droplet)?;
    let command = a
        .command
        .clone()
        .or(d.info.start_command.clone())
        .ok_or_else(|| {
            StageError::Input(format!(
                "droplet {}: staging_info.yml has no start_command; give --command",
                a.droplet.display()
            ))
        })?;
    let name = app_name(a);
    check_name(&name)?;
    let user_env = env::parse_user_env(&a.env)?;
    let (services, hook) = read_extras(a)?;
    let droplet_abs = std::fs::canonicalize(&a.droplet).map_err(|err| StageError::Io {
        what: a.droplet.display().to_string(),
        err,
    })?;
    let uuid = || {
        env::secure_uuid().map_err(|err| StageError::Io {
            what: "/dev/urandom".into(),
            err,
        })
    };
    let app = App {
        id: uuid()?,
        name: name.clone(),
        version: uuid()?,
        uris: a.uris.clone(),
        limits: Limits {
            mem: a.memory,
            disk: a.disk,
            fds: a.fds,
        },
    };
    let mut s = Session::connect(socket)?;
    let mut made = Vec::new();
    let mut started = Vec::new();
    for index in 0..a.instances {
        let r = start_one(
            &mut s,
            &mut made,
            a,
            &app,
            index,
            &command,
            &services,
            &user_env,
            hook.as_deref(),
            &droplet_abs,
        );
        match r {
            Ok(st) => started.push(st),
            Err(e) => {
                destroy_all(socket, &made);
                return Err(match e {
                    e @ StageError::Unsupported { .. } => e,
                    e => StageError::Step(format!("instance {index}: {e}")),
                });
            }
        }
    }
    for st in &started {
        if json {
            println!("{}", serde_json::to_string(st).unwrap_or_default());
        } else {
            println!("{} {} {}", st.handle, st.address, st.job_id);
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn start_one(
    s: &mut Session,
    made: &mut Vec<String>,
    a: &StartArgs,
    app: &App,
    index: u32,
    command: &str,
    services: &[env::Service],
    user_env: &[(String, String)],
    hook: Option<&str>,
    droplet: &Path,
) -> Result<Started> {
    let handle = format!("app-{}-{index}-{}", app.name, nonce()?);
    let h = s.create(proto::CreateRequest {
        handle: Some(handle),
        grace_time: Some(a.grace_time.unwrap_or(u32::MAX)),
        rootfs: a.rootfs.clone(),
        ..Default::default()
    })?;
    made.push(h.clone());
    if !a.skip_limits {
        s.limits(&h, a.memory, a.disk)?;
    }
    let want = a.port.map(|p| p + index);
    let (host_port, container_port) = net_in(s, &h, want)?;
    install_droplet(s, &h, droplet)?;
    let inst = Instance {
        id: env::secure_uuid().map_err(|err| StageError::Io {
            what: "/dev/urandom".into(),
            err,
        })?,
        index,
        container_port,
        started_at: now(),
    };
    let system = env::export(&env::starting_system(app, &inst, services));
    let user = env::export(user_env);
    if let Some(hook) = hook {
        s.run_ok(
            "before_start hook",
            &h,
            &hook_script(&format!("{system}{user}"), hook),
            false,
        )?;
    }
    let job = s.spawn(
        "spawning the start script",
        &h,
        &start_script(command, &user, &system),
        Some(proto::ResourceLimits {
            nofile: Some(a.fds),
            nproc: Some(NPROC_LIMIT),
            ..Default::default()
        }),
    )?;
    let rec = Record {
        name: app.name.clone(),
        index,
        host_port,
        container_port,
        job_id: job,
        instance_id: inst.id.clone(),
        droplet: droplet.display().to_string(),
        started_at: inst.started_at,
    };
    let rec = serde_json::to_string(&rec).unwrap_or_default();
    s.run_ok(
        "writing the instance record",
        &h,
        &format!(
            "umask 022 && printf '%s\\n' {} > {RECORD}",
            env::shellescape(&rec)
        ),
        true,
    )?;
    Ok(Started {
        handle: h,
        address: format!("127.0.0.1:{host_port}"),
        job_id: job,
    })
}

/// net_in for an instance (`want`: its --port, if given): the host and
/// container ports.
fn net_in(s: &mut Session, h: &str, want: Option<u32>) -> Result<(u32, u32)> {
    let ni: proto::NetInResponse = s
        .call(
            "net_in",
            Type::NetIn,
            &proto::NetInRequest {
                handle: Some(h.to_string()),
                host_port: want,
                container_port: None,
            },
        )
        .map_err(|e| match (want, e) {
            (
                Some(p),
                StageError::Request {
                    err: crate::client::ClientError::Server(m),
                    ..
                },
            ) => StageError::Step(format!("net_in: host port {p} is not available: {m}")),
            (_, e) => e,
        })?;
    let host_port = ni.host_port.unwrap_or(0);
    Ok((host_port, ni.container_port.unwrap_or(host_port)))
}

/// /home/vcap/app made (and /app linked to it), the droplet extracted there.
fn install_droplet(s: &mut Session, h: &str, droplet: &Path) -> Result<()> {
    s.run_ok(
        "setting up /home/vcap/app",
        h,
        "cd / && mkdir -p home/vcap/app && chown vcap:vcap home/vcap/app && { [ -e /app ] || [ -L /app ] || ln -s home/vcap/app /app; }",
        true,
    )?;
    s.copy_in("copying the droplet in", h, droplet, "/tmp/droplet.tgz")?;
    s.run_ok(
        "extracting the droplet",
        h,
        "cd /home/vcap/ && tar zxf /tmp/droplet.tgz && rm -f /tmp/droplet.tgz",
        false,
    )?;
    Ok(())
}

/// One line of `apps`.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    pub handle: String,
    pub name: String,
    pub index: u32,
    pub address: String,
    pub job_id: Option<u32>,
    pub state: String,
}

/// The instances `start` made (optionally of one app), sorted by name and index.
pub fn instances(socket: &Path, only: Option<&str>) -> Result<Vec<Listed>> {
    let mut s = Session::connect(socket)?;
    let l: proto::ListResponse = s.call("list", Type::List, &proto::ListRequest {})?;
    let mut out = Vec::new();
    for h in l.handles {
        let Some((name, index)) = parse_handle(&h) else {
            continue;
        };
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let (name, index) = (name.to_string(), index);
        // A container that went away meanwhile is skipped.
        let r = s.run(
            "reading the instance record",
            &h,
            &format!(
                "cat {RECORD} 2>/dev/null; echo; p=$(tail -n 1 /home/vcap/run.pid 2>/dev/null); if [ -n \"$p\" ] && kill -0 \"$p\" 2>/dev/null; then echo running; else echo crashed; fi"
            ),
            false,
        );
        let (rec, state) = match r {
            Ok(r) => {
                let text =
                    String::from_utf8_lossy(r.stdout.as_deref().unwrap_or_default()).into_owned();
                let mut lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
                let state = lines.pop().unwrap_or("unknown").to_string();
                let rec: Option<Record> = lines.first().and_then(|l| serde_json::from_str(l).ok());
                (rec, state)
            }
            Err(StageError::Request { err, .. }) => (None, format!("unknown ({err})")),
            Err(e) => return Err(e),
        };
        out.push(Listed {
            handle: h.clone(),
            name,
            index,
            address: rec
                .as_ref()
                .map(|r| format!("127.0.0.1:{}", r.host_port))
                .unwrap_or_else(|| "-".into()),
            job_id: rec.as_ref().map(|r| r.job_id),
            state,
        });
    }
    out.sort_by(|a, b| (&a.name, a.index).cmp(&(&b.name, b.index)));
    Ok(out)
}

pub fn list(socket: &Path, json: bool, a: &AppsArgs) -> Result<()> {
    for l in instances(socket, a.name.as_deref())? {
        if json {
            println!("{}", serde_json::to_string(&l).unwrap_or_default());
        } else {
            println!(
                "{} {} {} {} {}",
                l.handle, l.name, l.index, l.address, l.state
            );
        }
    }
    Ok(())
}

pub fn stop(socket: &Path, a: &StopAppArgs) -> Result<()> {
    check_name(&a.name)?;
    let mut s = Session::connect(socket)?;
    let l: proto::ListResponse = s.call("list", Type::List, &proto::ListRequest {})?;
    let hs: Vec<String> = l
        .handles
        .into_iter()
        .filter(|h| {
            parse_handle(h)
                .is_some_and(|(n, i)| n == a.name && a.index.is_none_or(|want| want == i))
        })
        .collect();
    if hs.is_empty() {
        return Err(StageError::Input(match a.index {
            Some(i) => format!("no instance {i} of app {:?}", a.name),
            None => format!("no instances of app {:?}", a.name),
        }));
    }
    for h in &hs {
        let _: proto::DestroyResponse = s.call(
            &format!("destroying {h}"),
            Type::Destroy,
            &proto::DestroyRequest {
                handle: Some(h.clone()),
            },
        )?;
        println!("{h}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip() {
        assert_eq!(parse_handle("app-web-0-0123abcd"), Some(("web", 0)));
        assert_eq!(parse_handle("app-my-app-12-deadbeef"), Some(("my-app", 12)));
        for bad in [
            "stage-x-0-0123abcd",
            "app-web-x-0123abcd",
            "app-web-0-xyz",
            "app--0-0123abcd",
            "app-0-0123abcd",
        ] {
            assert_eq!(parse_handle(bad), None, "{bad}");
        }
    }
}
