//! The server's YAML config parser (controller/src/config.rs); properties in controller/src/fuzz.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: warden_fuzz::write_seeds(warden::fuzz::seeds_config),
    |data: &[u8]| warden::fuzz::check_config(data)
);
