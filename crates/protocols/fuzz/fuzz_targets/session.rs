//! Arbitrary first bytes and segments through detection, sessions and fallback.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_protocols::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::drive_session(data);
});
