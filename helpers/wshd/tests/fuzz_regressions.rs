//! Replays every input saved under `fuzz/regressions/wsh_proto/` (inputs
//! that once crashed the fuzz target) through the target's property checks,
//! with the fuzz targets' allocation-measuring allocator installed.

#[global_allocator]
static ALLOC: wsys::alloc::Measuring = wsys::alloc::Measuring;

#[test]
fn fuzz_regressions() {
    let ws = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    wsys::fuzzkit::replay(&ws, "wsh_proto", wshd::fuzz::check_proto);
}
