//! Replays every input saved under `fuzz/regressions/<target>/` (inputs that
//! once crashed a fuzz target) through the target's property checks, with
//! the fuzz targets' allocation-measuring allocator installed.

#[global_allocator]
static ALLOC: wsys::alloc::Measuring = wsys::alloc::Measuring;

fn replay(target: &str, check: fn(&[u8])) {
    let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    wsys::fuzzkit::replay(&ws, target, check);
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
