#![no_main]
//! See `qorus_fuzz::state_loader` (fuzz/src/lib.rs).

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| qorus_fuzz::state_loader(data));
