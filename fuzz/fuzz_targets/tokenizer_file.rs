#![no_main]
//! See `qorus_fuzz::tokenizer_file` (fuzz/src/lib.rs).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qorus_fuzz::tokenizer_file(data));
