//! Replays every input saved under `fuzz/regressions/iomux_proto/` (inputs that once
//! crashed the fuzz target) through the target's property checks, with the
//! fuzz targets' allocation-measuring allocator installed.

use std::path::PathBuf;

#[global_allocator]
static ALLOC: wsys::alloc::Measuring = wsys::alloc::Measuring;

#[test]
fn fuzz_regressions() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions/iomux_proto");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.file_name()
            .is_some_and(|f| f.to_string_lossy().starts_with('.'))
        {
            continue;
        }
        eprintln!("replaying {}", p.display());
        iomux::fuzz::check_proto(&std::fs::read(&p).unwrap());
        n += 1;
    }
    eprintln!("iomux_proto: {n} inputs replayed");
}
