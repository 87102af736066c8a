//! Weight and activation number formats: the block layouts of ggml (GGUF) and of `.qorus` files,
//! their sizes, and reference quantizers/dequantizers.

pub mod blocks;
pub mod kquants;
pub mod quantize_blocks;
pub mod quantize_iq4;
pub mod quantize_k;
pub mod quantize_legacy;
pub mod reference;
pub mod scale_search;

pub use blocks::*;
pub use reference::{dequantize_row, quantize_row};

#[cfg(test)]
mod quantize_tests;
#[cfg(test)]
pub(crate) mod test_util;
