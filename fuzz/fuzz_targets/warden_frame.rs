//! warden protocol v1: length-prefixed frames and every protobuf message type (controller/src/proto.rs); properties in controller/src/fuzz.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: warden_fuzz::write_seeds(warden::fuzz::seeds_frames),
    |data: &[u8]| warden::fuzz::check_frames(data)
);
