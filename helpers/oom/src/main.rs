//! oom CGROUP_DIR: exit 0 on a real OOM of the cgroup; see the `oom` crate.
//! Exit 1 with a message when no OOM can come (bad path, not a memory
//! cgroup, cgroup removed); exit 2 on bad usage.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    if args.len() != 1 || args[0].is_empty() {
        eprintln!("usage: oom CGROUP_DIR");
        std::process::exit(2);
    }
    // No PR_SET_PDEATHSIG: it fires when the parent *thread* exits, which
    // would fake a "no OOM" for a threaded controller. A left-over oom ends
    // when its cgroup is removed.
    let dir = std::path::Path::new(&args[0]);
    match oom::arm(dir).and_then(oom::Armed::wait) {
        Ok(()) => {}
        Err(e) => {
            eprintln!("oom: {e}");
            std::process::exit(1);
        }
    }
}
