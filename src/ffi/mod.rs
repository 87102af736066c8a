//! The exported C surface: one file per section of the header, all through `boundary`.
//!
//! Every `extern "C"` function documents its safety contract; every one checks its pointers and
//! returns a `q_error_code` (or NULL / nothing) instead of crashing on bad input.

pub mod boundary;
pub mod convert;
pub mod generate;
pub mod kernels;
pub mod kv_cache;
pub mod memory;
pub mod model;
pub mod registry;
pub mod tokenizer;
pub mod types;
// qorus additions of issue 15 (generation API).
pub mod gen_types;
pub mod generate_ex;
pub mod grammar;
pub mod sampler;
pub mod state;
