//! Arbitrary segments (direction, size, captured prefix) through the redis parser: no panic,
//! bounded output, operations that end after they start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_receivers::protocols::*;
#[allow(unused_imports)]
use tapline_receivers::protocols::{fuzzing, ParserConfig};

fuzz_target!(|data: &[u8]| {
    let mut p = redis::RedisParser::new();
    fuzzing::drive(&mut p, data);
});
