//! The iomux-spawn <-> iomux-link protocol, its ACK reader and ring, and iomux's file formats (helpers/iomux/src/{proto,ring,files}.rs); properties in helpers/iomux/src/fuzz.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: warden_fuzz::write_seeds(iomux::fuzz::seeds),
    |data: &[u8]| iomux::fuzz::check_proto(data)
);
