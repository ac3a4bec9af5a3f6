//! `warden stage`: the Stager (dea_ng's StagingTask and buildpacks/lib's
//! Buildpack/Installer/Procfile) over the protocol.
//!
//! Before any container exists: the app (a directory, or a zip that is
//! extracted on the host) and every `--buildpack` directory are checked
//! (`bin/detect`, `bin/compile`, `bin/release` present and executable).
//! Then, in one container (grace time 30 s, so a killed client leaves
//! nothing for long), every step as the unprivileged user:
//!
//! 1. LimitMemory / LimitDisk (`--memory`, `--disk`, MB);
//! 2. copy_in the app to `/tmp/unstaged` and each buildpack to
//!    `/tmp/buildpacks/<n>`;
//! 3. `/tmp/staged/{app,logs,tmp}` and `/tmp/cache` made, the app copied
//!    to `/tmp/staged/app` (`cp -a`, then `chmod -R 0744` as the Stager did);
//! 4. each buildpack's `bin/detect /tmp/staged/app` in the order given
//!    until one exits 0; its stdout, trimmed, is `detected_buildpack`;
//! 5. `bin/compile /tmp/staged/app /tmp/cache`, spawned and streamed live
//!    (and appended to `logs/staging_task.log`), within `--timeout`;
//! 6. `bin/release /tmp/staged/app`: YAML whose
//!    `default_process_types.web` is the start command unless the app's
//!    `Procfile` has a `web` entry or `--command` was given;
//! 7. `staging_info.yml` written, `tar -czf` of `/tmp/staged`, copy_out to
//!    a directory next to `-o`, the droplet checked
//!    ([`super::droplet::read`]) and renamed onto `-o`.
//!
//! The container is destroyed whatever happens; on failure no droplet (and
//! no temporary file) is left. A failed compile names the limit it hit when
//! the container's events say "out of memory" or its output says the disk
//! quota or space ran out.

use super::droplet::{self, StagingInfo, TempDir};
use super::env::{self, App, Limits};
use super::{check_name, destroy_all, nonce, Result, Session, StageError};
use crate::proto;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct StageArgs {
    /// The app: a directory, or a .zip archive of one.
    pub app: PathBuf,
    /// A buildpack directory (bin/detect, bin/compile, bin/release); tried
    /// in the order given. Repeatable.
    #[arg(long = "buildpack", required = true, value_name = "DIR")]
    pub buildpacks: Vec<PathBuf>,
    /// Where to write the droplet (.tgz).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: PathBuf,
    /// App name (VCAP_APPLICATION); default: the app's file name.
    #[arg(long)]
    pub name: Option<String>,
    /// Staging memory limit, MB.
    #[arg(long, default_value_t = 1024)]
    pub memory: u64,
    /// Staging disk limit, MB.
    #[arg(long, default_value_t = 2048)]
    pub disk: u64,
    /// Seconds the compile step may take (STAGING_TIMEOUT).
    #[arg(long, default_value_t = 900)]
    pub timeout: u64,
    /// NAME=VALUE given to the buildpack; repeatable.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// JSON file: an array of service bindings (VCAP_SERVICES).
    #[arg(long)]
    pub services: Option<PathBuf>,
    /// Start command to record instead of the Procfile's or the buildpack's.
    #[arg(long)]
    pub command: Option<String>,
    /// Root filesystem of the staging container (default: the server's).
    #[arg(long)]
    pub rootfs: Option<String>,
    /// Do not send LimitMemory/LimitDisk (for a server without limits).
    #[arg(long = "skip-limits")]
    pub skip_limits: bool,
}

/// Checks a buildpack directory on the host.
pub fn check_buildpack(dir: &Path) -> Result<()> {
    let md = std::fs::metadata(dir)
        .map_err(|e| StageError::Input(format!("buildpack {}: {e}", dir.display())))?;
    if !md.is_dir() {
        return Err(StageError::Input(format!(
            "buildpack {}: not a directory",
            dir.display()
        )));
    }
    for step in ["detect", "compile", "release"] {
        let p = dir.join("bin").join(step);
        let md = std::fs::metadata(&p).map_err(|e| {
            StageError::Input(format!("buildpack {}: bin/{step}: {e}", dir.display()))
        })?;
        if !md.is_file() || md.permissions().mode() & 0o111 == 0 {
            return Err(StageError::Input(format!(
                "buildpack {}: bin/{step} is not an executable file",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// `p` made absolute (symlinks resolved), for the server.
fn absolute(p: &Path, what: &str) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| StageError::Input(format!("{what} {}: {e}", p.display())))
}

/// Writes `text` to `path` in the container (shell-quoted, no heredoc).
fn write_file_script(path: &str, text: &str) -> String {
    format!(
        "printf '%s' {} > {}",
        env::shellescape(text),
        env::shellescape(path)
    )
}

/// --name, or the app's file name without its extension.
fn stage_name(a: &StageArgs) -> String {
    match &a.name {
        Some(n) => n.clone(),
        None => a
            .app
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "app".into()),
    }
}

/// The private work directory, next to the -o file (absolute: the server
/// reads and writes it).
fn work_dir(a: &StageArgs) -> Result<TempDir> {
    let out_dir = match a.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if a.output.is_dir() {
        return Err(StageError::Input(format!(
            "-o {}: is a directory",
            a.output.display()
        )));
    }
    let out_dir = absolute(&out_dir, "-o")?;
    TempDir::new_in(&out_dir, "stage").map_err(|e| {
        StageError::Input(format!(
            "-o {}: cannot write next to it: {e}",
            a.output.display()
        ))
    })
}

pub fn stage(socket: &Path, a: &StageArgs) -> Result<()> {
    // --- inputs, before any container exists
    let app_md = std::fs::metadata(&a.app)
        .map_err(|e| StageError::Input(format!("app {}: {e}", a.app.display())))?;
    // copy_in/copy_out paths are read by the server, whose working
    // directory is not ours: every host path it sees is absolute.
    let mut buildpacks = Vec::with_capacity(a.buildpacks.len());
    for bp in &a.buildpacks {
        check_buildpack(bp)?;
        buildpacks.push(absolute(bp, "buildpack")?);
    }
    let name = stage_name(a);
    check_name(&name)?;
    let user_env = env::parse_user_env(&a.env)?;
    let services = match &a.services {
        Some(p) => env::parse_services(
            &std::fs::read_to_string(p)
                .map_err(|e| StageError::Input(format!("--services {}: {e}", p.display())))?,
        )?,
        None => vec![],
    };
    let work = work_dir(a)?;
    // The server (root) reads the app from here; the directory is 0700.
    let app_src: PathBuf = if app_md.is_dir() {
        absolute(&a.app, "app")?
    } else {
        let d = work.0.join("app");
        droplet::unzip(&a.app, &d)?;
        d
    };
    let mut src = app_src.into_os_string();
    src.push("/");
    let app_src = PathBuf::from(src);

    let app = App {
        id: env::secure_uuid().map_err(|err| StageError::Io {
            what: "/dev/urandom".into(),
            err,
        })?,
        name: name.clone(),
        version: env::secure_uuid().map_err(|err| StageError::Io {
            what: "/dev/urandom".into(),
            err,
        })?,
        uris: vec![],
        limits: Limits {
            mem: a.memory,
            disk: a.disk,
            fds: 16384,
        },
    };
    let exports = format!(
        "{}{}",
        env::export(&env::staging_system(&app, &services, a.timeout)),
        env::export(&user_env)
    );

    let mut s = Session::connect(socket)?;
    let handle = format!("stage-{}-{}", name, nonce()?);
    let h = s.create(proto::CreateRequest {
        handle: Some(handle),
        grace_time: Some(30),
        rootfs: a.rootfs.clone(),
        ..Default::default()
    })?;
    let r = stage_in(&mut s, &h, a, &buildpacks, &app_src, &exports, &work, &name);
    destroy_all(socket, std::slice::from_ref(&h));
    let dropped = r?;
    std::fs::rename(&dropped, &a.output).map_err(|err| StageError::Io {
        what: format!("writing {}", a.output.display()),
        err,
    })?;
    eprintln!("-----> Droplet: {}", a.output.display());
    Ok(())
}

/// The steps in the container; the checked droplet's temporary path.
#[allow(clippy::too_many_arguments)]
fn stage_in(
    s: &mut Session,
    h: &str,
    a: &StageArgs,
    buildpacks: &[PathBuf],
    app_src: &Path,
    exports: &str,
    work: &TempDir,
    name: &str,
) -> Result<PathBuf> {
    prepare(s, h, a, buildpacks, app_src)?;
    eprintln!("-----> Staging {name} in container {h}");
    let (i, bp, detected) = detect(s, h, buildpacks, exports)?;
    eprintln!(
        "-----> Buildpack {} detected the app as {detected:?}",
        bp.display()
    );
    compile(s, h, a, i, bp, exports)?;
    let release_web = release_web(s, h, i, bp, exports)?;
    let procfile_web = procfile_web(s, h)?;
    let info = StagingInfo {
        buildpack_path: bp.display().to_string(),
        detected_buildpack: detected,
        start_command: a.command.clone().or(procfile_web).or(release_web),
    };
    pack(s, h, work, &info)
}

/// Limits, the app and the buildpacks copied in, /tmp/staged made.
fn prepare(
    s: &mut Session,
    h: &str,
    a: &StageArgs,
    buildpacks: &[PathBuf],
    app_src: &Path,
) -> Result<()> {
    if !a.skip_limits {
        s.limits(h, a.memory, a.disk)?;
    }
    s.copy_in("copying the app in", h, app_src, "/tmp/unstaged")?;
    for (i, bp) in buildpacks.iter().enumerate() {
        let mut p = bp.clone().into_os_string();
        p.push("/");
        s.copy_in(
            &format!("copying buildpack {} in", bp.display()),
            h,
            Path::new(&p),
            &format!("/tmp/buildpacks/{i}"),
        )?;
    }
    s.run_ok(
        "preparing /tmp/staged",
        h,
        "set -e; mkdir -p /tmp/staged/app /tmp/staged/logs /tmp/staged/tmp /tmp/cache; \
         cp -a /tmp/unstaged/. /tmp/staged/app; chmod -R 0744 /tmp/staged/app; \
         touch /tmp/staged/logs/staging_task.log",
        false,
    )?;
    Ok(())
}

/// bin/detect of each buildpack in turn: the first that detects the app
/// (its index, path and what it printed).
fn detect<'a>(
    s: &mut Session,
    h: &str,
    buildpacks: &'a [PathBuf],
    exports: &str,
) -> Result<(usize, &'a PathBuf, String)> {
    let mut found = None;
    for (i, bp) in buildpacks.iter().enumerate() {
        let r = s.run(
            &format!("bin/detect of buildpack {}", bp.display()),
            h,
            &format!("{exports}cd /tmp/staged && /tmp/buildpacks/{i}/bin/detect /tmp/staged/app"),
            false,
        )?;
        if r.exit_status == Some(0) {
            let out = String::from_utf8_lossy(r.stdout.as_deref().unwrap_or_default());
            found = Some((i, bp, out.trim().to_string()));
            break;
        }
    }
    found.ok_or_else(|| {
        StageError::Step(format!(
            "staging failed: an application could not be detected by any available buildpack (tried {})",
            buildpacks
                .iter()
                .map(|b| b.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// bin/compile, streamed live, within the staging timeout.
fn compile(
    s: &mut Session,
    h: &str,
    a: &StageArgs,
    i: usize,
    bp: &Path,
    exports: &str,
) -> Result<()> {
    let step = format!("bin/compile of buildpack {}", bp.display());
    let job = s.spawn(
        &step,
        h,
        &format!(
            "set -o pipefail; {exports}cd /tmp/staged && /tmp/buildpacks/{i}/bin/compile /tmp/staged/app /tmp/cache 2>&1 | tee -a /tmp/staged/logs/staging_task.log"
        ),
        None,
    )?;
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(a.timeout);
    let st = s.stream_live(&step, h, job, deadline, &mut out)?;
    let Some(st) = st else {
        return Err(StageError::Step(format!(
            "staging failed: {step} timed out after {} s",
            a.timeout
        )));
    };
    if st != 0 {
        return Err(compile_failure(s, h, &step, st, &out, a));
    }
    Ok(())
}

/// bin/release: its default_process_types.web, if any.
fn release_web(
    s: &mut Session,
    h: &str,
    i: usize,
    bp: &Path,
    exports: &str,
) -> Result<Option<String>> {
    let rel = s.run(
        &format!("bin/release of buildpack {}", bp.display()),
        h,
        &format!("{exports}cd /tmp/staged && /tmp/buildpacks/{i}/bin/release /tmp/staged/app"),
        false,
    )?;
    if rel.exit_status != Some(0) {
        return Err(StageError::Step(format!(
            "staging failed: bin/release of buildpack {} exited with status {}{}",
            bp.display(),
            rel.exit_status.unwrap_or(255),
            super::tail(&rel)
        )));
    }
    let rel_text = String::from_utf8_lossy(rel.stdout.as_deref().unwrap_or_default()).into_owned();
    let release: serde_yaml_ng::Value = serde_yaml_ng::from_str(&rel_text).map_err(|e| {
        StageError::Step(format!(
            "staging failed: bin/release of buildpack {} printed no YAML: {e}",
            bp.display()
        ))
    })?;
    Ok(release
        .get("default_process_types")
        .and_then(|d| d.get("web"))
        .and_then(|w| w.as_str())
        .map(str::to_string))
}

/// The app's Procfile: its web entry, if any.
fn procfile_web(s: &mut Session, h: &str) -> Result<Option<String>> {
    let procfile = s.run(
        "reading the Procfile",
        h,
        "if [ -f /tmp/staged/app/Procfile ]; then cat /tmp/staged/app/Procfile; fi",
        false,
    )?;
    let proc_text = String::from_utf8_lossy(procfile.stdout.as_deref().unwrap_or_default());
    if proc_text.trim().is_empty() {
        Ok(None)
    } else {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&proc_text).map_err(|_| {
            StageError::Step(
                "staging failed: Invalid Procfile format. Please ensure it is a valid YAML hash"
                    .into(),
            )
        })?;
        if !v.is_mapping() {
            return Err(StageError::Step(
                "staging failed: Invalid Procfile format. Please ensure it is a valid YAML hash"
                    .into(),
            ));
        }
        Ok(v.get("web").and_then(|w| w.as_str()).map(str::to_string))
    }
}

/// staging_info.yml written, the droplet packed and copied out to `work`
/// and checked: its path.
fn pack(s: &mut Session, h: &str, work: &TempDir, info: &StagingInfo) -> Result<PathBuf> {
    s.run_ok(
        "writing staging_info.yml and packing the droplet",
        h,
        &format!(
            "set -e; {}; cd /tmp/staged && tar -czf /tmp/droplet.tgz .",
            write_file_script("/tmp/staged/staging_info.yml", &info.to_yaml())
        ),
        false,
    )?;
    let mut dst = work.0.clone().into_os_string();
    dst.push("/");
    s.copy_out(
        "copying the droplet out",
        h,
        "/tmp/droplet.tgz",
        Path::new(&dst),
    )?;
    let file = work.0.join("droplet.tgz");
    let d = droplet::read(&file)?;
    eprintln!(
        "-----> Droplet packed ({} bytes), start command: {}",
        d.bytes,
        info.start_command.as_deref().unwrap_or("(none)")
    );
    Ok(file)
}

/// The error for a compile that exited non-zero: which limit it hit, if
/// the container says so.
fn compile_failure(
    s: &mut Session,
    h: &str,
    step: &str,
    st: u32,
    out: &[u8],
    a: &StageArgs,
) -> StageError {
    let events = s.info(h).map(|i| i.events).unwrap_or_default();
    if events.iter().any(|e| e.contains("out of memory")) {
        return StageError::Step(format!(
            "staging failed: {step} exceeded the staging memory limit ({} MB)",
            a.memory
        ));
    }
    let text = String::from_utf8_lossy(out);
    if text.contains("Disk quota exceeded") || text.contains("No space left on device") {
        return StageError::Step(format!(
            "staging failed: {step} exceeded the staging disk limit ({} MB)",
            a.disk
        ));
    }
    let last = text.trim().lines().last().unwrap_or("").to_string();
    StageError::Step(format!(
        "staging failed: {step} exited with status {st}{}",
        if last.is_empty() {
            String::new()
        } else {
            format!(": {last}")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buildpack_checks() {
        let t = TempDir::new_in(&std::env::temp_dir(), "bptest").unwrap();
        let bp = t.0.join("bp");
        assert!(check_buildpack(&bp)
            .unwrap_err()
            .to_string()
            .contains("No such file"));
        std::fs::create_dir_all(bp.join("bin")).unwrap();
        for s in ["detect", "compile", "release"] {
            std::fs::write(bp.join("bin").join(s), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(
                bp.join("bin").join(s),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
        }
        check_buildpack(&bp).unwrap();
        std::fs::set_permissions(
            bp.join("bin/compile"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let e = check_buildpack(&bp).unwrap_err().to_string();
        assert!(e.contains("bin/compile is not an executable file"), "{e}");
        std::fs::remove_file(bp.join("bin/release")).unwrap();
        std::fs::set_permissions(
            bp.join("bin/compile"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        let e = check_buildpack(&bp).unwrap_err().to_string();
        assert!(e.contains("bin/release"), "{e}");
    }

    #[test]
    fn file_script_quotes() {
        assert_eq!(
            write_file_script("/x y", "a'b\n"),
            "printf '%s' a\\'b'\n' > /x\\ y"
        );
    }
}
