//! Replays every input saved under `fuzz/regressions/<target>/` (inputs that
//! once crashed a fuzz target) through the target's property checks, with
//! the fuzz targets' allocation-measuring allocator installed.

use std::path::PathBuf;

#[global_allocator]
static ALLOC: wsys::alloc::Measuring = wsys::alloc::Measuring;

fn replay(target: &str, check: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        eprintln!("replaying {}", p.display());
        check(&std::fs::read(&p).unwrap());
        n += 1;
    }
    eprintln!("{target}: {n} inputs replayed");
}

#[test]
fn fuzz_regressions() {
    // One test: the allocation counters are process-wide.
    replay("warden_frame", warden::fuzz::check_frames);
    replay("warden_config", warden::fuzz::check_config);
    for s in warden::fuzz::seeds_frames() {
        warden::fuzz::check_frames(&s);
    }
}
