//! qorus: a drop-in Rust implementation of the Qorus-IA v2.0 C inference library, with a real
//! LLaMA engine behind it.
//!
//! Layout: [`ffi`] is the C surface (types, boundary, exports); [`memory`] the library-owned
//! buffers; [`format`] model and tokenizer files; [`error`] the error type.

pub mod chat;
pub mod engine;
pub mod error;
pub mod ffi;
pub mod format;
pub mod generate;
pub mod grammar;
pub mod kernels;
pub mod memory;
pub mod quant;
pub mod sampling;
pub mod tokenizer;

pub use error::{Error, Result};
