//! Arbitrary segments (direction, size, captured prefix) through the mysql parser: no panic,
//! bounded output, operations that end after they start.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tapline_receivers::protocols::*;
#[allow(unused_imports)]
use tapline_receivers::protocols::{fuzzing, ParserConfig};

fuzz_target!(|data: &[u8]| {
    let mut p = mysql::MysqlParser::new(ParserConfig { query_text: true });
    fuzzing::drive(&mut p, data);
});
