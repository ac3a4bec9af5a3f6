//! The wsh <-> wshd protocol (helpers/wshd/src/proto.rs); properties in helpers/wshd/src/fuzz.rs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: warden_fuzz::write_seeds(wshd::fuzz::seeds),
    |data: &[u8]| wshd::fuzz::check_proto(data)
);
