#![no_main]
//! See `qorus_fuzz::grammar_parser` (fuzz/src/lib.rs).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qorus_fuzz::grammar_parser(data));
