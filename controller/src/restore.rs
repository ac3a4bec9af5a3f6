//! Surviving a server restart: drain (snapshots written, jobs left
//! running), restore (each container directory in the depot re-adopted
//! from its snapshot, or destroyed), and the sweep of host resources that
//! carry this server's prefix but belong to no re-adopted container.
//!
//! The snapshot format is crate::container's (`snapshot.json` in each
//! container directory).

use crate::container::{self, Container, State};
use crate::host::{cgroup, layout::Layout, nft};
use crate::job::Job;
use crate::server::{lock, Server, RECONNECT_WINDOW};
use crate::sh;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

impl Server {
    /// Drain: stop serving, let linkers save their cursors, write every
    /// snapshot. Jobs keep running.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.detach_all();
        // Wait (bounded) for in-flight requests and linkers to finish.
        let end = Instant::now() + Duration::from_secs(10);
        let mut busy = lock(&self.busy);
        while *busy > 0 && Instant::now() < end {
            busy = self
                .idle
                .wait_timeout(busy, Duration::from_millis(50))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(busy);
        // Jobs spawned by requests that were in flight: detach their
        // linkers too.
        let cs = self.detach_all();
        for c in &cs {
            let jobs: Vec<Arc<Job>> = c.lock().jobs.values().cloned().collect();
            for j in jobs {
                while j.lock().link_pid.is_some() && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
                // Output of a running job survives (its linker resumes from
                // its cursors); a finished job keeps only its status, as
                // warden's "should not persist stdout/stderr" example wants.
                if !j.discard_output && j.finished().is_none() && j.dir.is_dir() {
                    if let Err(e) = j.save_collected() {
                        log::warn!("{:?}: job {}: saving output: {e}", c.handle, j.id);
                    }
                }
            }
            if c.state() != State::Destroyed {
                if let Err(e) = c.write_snapshot_with(true) {
                    log::error!("{:?}: drain snapshot: {e}", c.handle);
                }
            }
        }
        log::info!("drained {} containers", cs.len());
    }

    /// Detaches every job's linker; the containers.
    fn detach_all(&self) -> Vec<Arc<Container>> {
        let cs = self.containers();
        for c in &cs {
            for j in c.lock().jobs.values() {
                j.detach();
            }
        }
        cs
    }

    /// Re-adopts containers with a snapshot, destroys the rest.
    pub fn restore(self: &Arc<Self>) {
        // A killed server's OOM watches; adopt re-arms the live ones.
        crate::oom_watch::end_orphans(&self.cfg.bin_path, &self.layout.cgroup_parents());
        let depot = self.cfg.container_depot_path.clone();
        let Ok(rd) = std::fs::read_dir(&depot) else {
            return;
        };
        let dirs: Vec<(PathBuf, String)> = rd
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| (e.path(), e.file_name().to_string_lossy().into_owned()))
            .filter(|(_, name)| !name.starts_with('.'))
            .filter(|(path, _)| !holds_a_depot(path))
            .collect();
        // Up to 8 containers at once, so a slow or wedged one (each script
        // step is bounded by sh::STEP_TIMEOUT) does not hold up the rest.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let max_job = std::sync::atomic::AtomicU32::new(0);
        std::thread::scope(|sc| {
            for _ in 0..dirs.len().min(8) {
                sc.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some((path, name)) = dirs.get(i) else {
                        break;
                    };
                    if let Some(m) = self.restore_one(path, name) {
                        max_job.fetch_max(m, Ordering::SeqCst);
                    }
                });
            }
        });
        self.note_job_id(max_job.load(Ordering::SeqCst));
    }

    /// Re-adopts or destroys one depot directory; the highest job id seen.
    fn restore_one(self: &Arc<Self>, path: &Path, name: &str) -> Option<u32> {
        // A destroy under way when the server died is finished.
        let snap = crate::orphans::finish_destroy(path, Container::read_snapshot(path));
        if let Ok(s) = &snap {
            if s.id != name {
                log::info!(
                    "{}: holds container {} (directory renamed)",
                    path.display(),
                    s.id
                );
            }
        }
        match snap {
            // The directory may have been renamed since (warden's "paths
            // have changed" upgrade case): the id comes from the snapshot,
            // the path from where it was found; scripts locate their
            // container directory relative to themselves.
            Ok(s) if s.state != State::Destroyed => match self.adopt(path, s) {
                Ok(m) => return Some(m),
                Err(err) => {
                    log::warn!("{}: cannot re-adopt ({err}); destroying", path.display());
                    self.destroy_dir(path);
                }
            },
            Ok(_) => self.destroy_dir(path),
            Err(err) => {
                log::info!("{}: no usable snapshot ({err}); destroying", path.display());
                self.destroy_dir(path);
            }
        }
        None
    }

    /// F23/F31: removes host resources carrying this server's prefix that
    /// belong to no re-adopted container (left by a crash or a lost
    /// record): veths `P-N-0|1` and ifb devices `P-N-2`, cgroups
    /// `warden-P/<id>` (killing what runs in them), loop devices of
    /// `DEPOT/<id>/disk.img` images, nft per-container chains and map and
    /// set elements.
    pub fn sweep_stale(&self) {
        let cs = self.containers();
        let used_idx: HashSet<u32> = cs.iter().map(|c| c.lock().res.network_index).collect();
        let used_ids: HashSet<String> = cs.iter().map(|c| c.id.clone()).collect();
        let used_ips: HashSet<String> = cs.iter().map(|c| c.container_ip.to_string()).collect();
        sweep_veths(&self.layout, &used_idx);
        for dir in cgroup::stale(&self.layout.cgroup_parents(), &|id| used_ids.contains(id)) {
            log::info!("removing stale cgroup {}", dir.display());
            if !cgroup::remove_tree(&dir) {
                log::warn!("cannot remove stale cgroup {}", dir.display());
            }
        }
        crate::limits::disk::sweep_loops(&self.cfg.container_depot_path, |id| {
            used_ids.contains(id)
        });
        let table = self.layout.nft_table();
        let t = match nft::list(&table) {
            None => return,
            Some(Err(e)) => return log::warn!("nft table {table}: {e}"),
            Some(Ok(t)) => t,
        };
        let cmds = t.stale_commands(&table, &|id| used_ids.contains(id), &|ip| {
            used_ips.contains(ip)
        });
        if !cmds.is_empty() {
            log::info!(
                "removing stale nft rules: {}",
                cmds.trim().replace('\n', "; ")
            );
            if let Err(e) = nft::apply(&cmds) {
                log::warn!("nft cleanup: {e}");
            }
        }
        crate::netout::sweep_logged(&self.layout, &cs);
    }

    /// Takes a snapshot's container back: its pools' entries, its host
    /// networking, its jobs. The highest job id it had.
    fn adopt(self: &Arc<Self>, path: &Path, s: container::Snapshot) -> Result<u32, String> {
        if lock(&self.registry).contains_key(&s.handle) {
            return Err(format!("duplicate handle {}", s.handle));
        }
        let res = s.resources.clone();
        if !lock(&self.net_pool).take(res.network_index) {
            return Err(format!(
                "network index {} in use or outside the pool",
                res.network_index
            ));
        }
        let uid_ok = {
            let mut up = lock(&self.uid_pool);
            up.take(res.uid) || !up.contains(res.uid)
        };
        if !uid_ok {
            lock(&self.net_pool).release(res.network_index);
            return Err(format!("uid {} in use", res.uid));
        }
        for p in &res.ports {
            lock(&self.port_pool).take(*p);
        }
        let c = Arc::new(Container::new(
            s.id.clone(),
            s.handle.clone(),
            path.to_path_buf(),
            self.cfg.pool_network.addr,
            res.clone(),
            s.grace_time,
        ));
        {
            let mut g = c.lock();
            g.state = s.state;
            g.events = s.events.clone();
        }
        lock(&c.grace).floor = RECONNECT_WINDOW;
        if s.state == State::Active {
            restore_networking(&c);
            crate::netout::readopt(&self.layout, &c);
        }
        let max_job = s.jobs.iter().map(|(id, js)| self.adopt_job(&c, *id, js));
        let max_job = max_job.max().unwrap_or(0);
        // A spawn under way when the server died left a job no one tracks.
        let tracked: Vec<u32> = c.lock().jobs.keys().copied().collect();
        crate::orphans::end_untracked_jobs(path, &tracked);
        if s.state == State::Active && !c.wshd_alive() {
            let mut g = c.lock();
            g.state = State::Stopped;
            g.events.push("wshd exited: container stopped".into());
        }
        let _ = c.write_snapshot();
        // The OOM watch does not survive the server: re-armed here.
        crate::oom_watch::arm_if_limited(self, &c);
        lock(&self.registry).insert(s.handle.clone(), c);
        log::info!("{:?}: re-adopted", s.handle);
        Ok(max_job)
    }

    /// Re-adopts one job of a snapshot: finished (status kept), running
    /// (a linker re-attached), or gone (dropped). Returns its id.
    fn adopt_job(self: &Arc<Self>, c: &Arc<Container>, id: u32, js: &container::JobSnap) -> u32 {
        let dir = c.path.join("jobs").join(id.to_string());
        let mut job = Job::new(
            id,
            dir.clone(),
            js.discard_output,
            js.log_tag.clone(),
            js.iomux_spawn_pid,
            self.cfg.job_output_limit,
        );
        job.syslog = self.syslog_path(&job.log_tag);
        let job = Arc::new(job);
        if let Some(st) = js.status {
            job.finish(st);
            c.lock().jobs.insert(id, job);
            return id;
        }
        // At most one linker per job: end one left by a killed server.
        if let Some(pid) = js.iomux_link_pid {
            crate::jobs::stop_stale(pid, "iomux-link", &dir);
        }
        // A job that ended while no server was up is dropped, as warden
        // dropped its "stale" jobs (spawner gone): link and stream say "no
        // such job" (spec: "jobs that exit before a restart"). iomux-spawn
        // may still linger for late linkers; end it.
        if dir.join("exit_status").is_file() {
            log::info!(
                "{:?}: job {id} ended while the server was down; dropped",
                c.handle
            );
            if let Some(p) = js.iomux_spawn_pid {
                crate::jobs::stop_stale(p, "iomux-spawn", &dir);
            }
            let _ = std::fs::remove_dir_all(&dir);
            return id;
        }
        job.load_collected();
        let spawn_alive = js
            .iomux_spawn_pid
            .is_some_and(|p| crate::jobs::cmdline_matches(p, "iomux-spawn", &dir));
        if has_sockets(&dir) || dir.is_dir() && spawn_alive {
            c.lock().jobs.insert(id, job.clone());
            if let Err(e) = self.relink(c, job.clone()) {
                log::warn!("{:?}: job {id}: relink: {e}", c.handle);
                job.finish(255);
            }
        } else {
            log::warn!("{:?}: job {id} is gone", c.handle);
            let _ = std::fs::remove_dir_all(&dir);
        }
        id
    }
}

/// Host side networking and port forwards of a re-adopted container
/// (net.sh setup and net.sh in are idempotent).
fn restore_networking(c: &Container) {
    let net = c.path.join("net.sh");
    if let Err(e) = sh::run("net.sh setup", &net, &["setup"], sh::NO_ENV) {
        log::warn!("{:?}: {e}", c.handle);
    }
    let forwards = c.lock().res.net_in.clone();
    for (h, cp) in forwards {
        let env = [
            ("HOST_PORT", h.to_string()),
            ("CONTAINER_PORT", cp.to_string()),
        ];
        if let Err(e) = sh::run("net.sh in", &net, &["in"], env) {
            log::warn!("{:?}: {e}", c.handle);
        }
    }
}

/// Whether `dir` is (or was) another server's depot: never destroyed.
fn holds_a_depot(dir: &Path) -> bool {
    let found = std::fs::symlink_metadata(dir.join(crate::lock::DEPOT_LOCK)).is_ok();
    if found {
        log::warn!("{}: another server's depot; left alone", dir.display());
    }
    found
}

/// Whether a job directory holds iomux-spawn's sockets.
fn has_sockets(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".sock"))
        })
        .unwrap_or(false)
}

/// Deletes this server's veths whose network index no container holds.
fn sweep_veths(layout: &Layout, used: &HashSet<u32>) {
    let Ok(rd) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        match layout.iface_index(&name) {
            Some(n) if !used.contains(&n) => {
                log::info!("removing stale interface {name}");
                let args = ["link", "del", &name];
                let _ = sh::run("ip link del", Path::new("ip"), &args, sh::NO_ENV);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_sockets() {
        let d = std::env::temp_dir().join(format!("warden-socks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        assert!(!has_sockets(&d));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("exit_status"), "0").unwrap();
        assert!(!has_sockets(&d));
        let _l = std::os::unix::net::UnixListener::bind(d.join("stdout.sock")).unwrap();
        assert!(has_sockets(&d));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
