//! Shared by the fuzz targets: the allocation-measuring global allocator
//! (each target's properties bound what decoding may hold, and any single
//! allocation above `wsys::alloc::HARD_CAP` aborts: libFuzzer records the
//! input as a crash) and the seed writer.
//!
//! Seeds come from the code, not from files: each target's `init` calls
//! [`write_seeds`] with the owning crate's seed generator (valid messages
//! made by the real encoders), which writes them into `$FUZZ_SEED_DIR` when
//! that is set. libFuzzer runs `init` before it reads its corpus
//! directories, so `fuzz/run.sh` passes that directory as one of them.

use std::path::PathBuf;

#[global_allocator]
static ALLOC: wsys::alloc::Measuring = wsys::alloc::Measuring;

/// Writes `seeds()` as `seed-NNN` files into `$FUZZ_SEED_DIR`, if set.
pub fn write_seeds(seeds: fn() -> Vec<Vec<u8>>) {
    let Some(dir) = std::env::var_os("FUZZ_SEED_DIR").map(PathBuf::from) else {
        return;
    };
    std::fs::create_dir_all(&dir).expect("seed directory");
    for (i, s) in seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:03}")), s).expect("seed file");
    }
}
