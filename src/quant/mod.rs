//! Weight and activation number formats: the block layouts of ggml (GGUF) and of `.qorus` files,
//! their sizes, and reference quantizers/dequantizers.

pub mod blocks;
pub mod kquants;
pub mod reference;

pub use blocks::*;
pub use reference::{dequantize_row, quantize_row};
