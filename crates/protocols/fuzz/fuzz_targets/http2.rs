//! Arbitrary segments (direction, size, captured prefix) through the http2 parser: no panic,
//! bounded output, operations that end after they start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_protocols::{fuzzing, new_parser, ParserConfig, Protocol};

fuzz_target!(|data: &[u8]| {
    let mut parser = new_parser(Protocol::Http2, ParserConfig { query_text: true }).unwrap();
    fuzzing::drive(parser.as_mut(), data);
});
