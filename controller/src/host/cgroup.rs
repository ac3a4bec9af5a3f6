//! Cgroup directories the server removes itself: a container's cgroups
//! left behind by a crash (the start-up sweep), and, in the end-to-end
//! tests, their own. Directory names come from [`super::layout`].

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Sends SIGKILL to every process listed in `dir/cgroup.procs`; how many.
pub fn kill_all(dir: &Path) -> usize {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return 0;
    };
    let mut n = 0;
    for pid in procs
        .split_whitespace()
        .filter_map(|x| x.parse::<i32>().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        n += 1;
    }
    n
}

/// Removes a cgroup dir (children first), killing what is left in it.
/// Retries for up to 2 s while the kernel lets the killed tasks go; returns
/// whether the directory is gone. Also used by the end-to-end tests.
pub fn remove_tree(dir: &Path) -> bool {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                remove_tree(&e.path());
            }
        }
    }
    for _ in 0..100 {
        kill_all(dir);
        if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The container cgroup directories under `parents` whose name (the
/// container id) is not in `keep`.
pub fn stale(parents: &[PathBuf], keep: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for parent in parents {
        let Ok(rd) = std::fs::read_dir(parent) else {
            continue;
        };
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() && !keep(&id) {
                v.push(e.path());
            }
        }
    }
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_lists_only_unkept_directories() {
        let d = std::env::temp_dir().join(format!("warden-cg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for p in ["a/x", "a/y", "b/x"] {
            std::fs::create_dir_all(d.join(p)).unwrap();
        }
        std::fs::write(d.join("a/file"), "").unwrap();
        let parents = vec![d.join("a"), d.join("b"), d.join("missing")];
        let s = stale(&parents, &|id| id == "x");
        assert_eq!(s, vec![d.join("a/y")]);
        // Plain directories (no cgroup.procs) are removed too.
        assert!(remove_tree(&d.join("a/y")));
        assert!(!d.join("a/y").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
