#![no_main]
//! See `qorus_fuzz::json_schema` (fuzz/src/lib.rs).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qorus_fuzz::json_schema(data));
