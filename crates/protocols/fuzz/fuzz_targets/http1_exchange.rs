//! Kernel-framed HTTP/1.x exchanges: arbitrary counted fields and request-head prefixes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_protocols::fuzzing;

fuzz_target!(|data: &[u8]| {
    fuzzing::drive_exchange(data);
});
