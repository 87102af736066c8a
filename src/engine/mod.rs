//! The inference engine: model weights, forward pass, KV cache, threads.

pub mod config;

pub use config::Config;
