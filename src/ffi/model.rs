//! Spec §3.4: building model views and the forward pass.

use crate::error::Error;
use crate::ffi::boundary::{guard, guard_code};
use crate::ffi::types::*;

/// Creates the model's views in the arena (spec §3.4.1).
///
/// # Safety
/// `ctx` and `model` must be NULL or valid, writable structs.
#[no_mangle]
pub unsafe extern "C" fn llama_build_graph(
    ctx: *mut q_context,
    model: *mut q_llama_model,
) -> q_error_code {
    guard_code("llama_build_graph", || {
        if ctx.is_null() || model.is_null() {
            return Err(Error::NullPtr("ctx or model"));
        }
        Err(Error::Internal(
            "llama_build_graph is not implemented yet".into(),
        ))
    })
}

/// Clears the model's views (spec §3.4.2). NULL: no-op.
///
/// # Safety
/// `model` must be NULL or a valid, writable struct.
#[no_mangle]
pub unsafe extern "C" fn llama_free_graph(model: *mut q_llama_model) {
    guard("llama_free_graph", || {
        let _ = model;
    })
}

/// Runs `seq_len` tokens at positions `pos..` and writes the last token's logits (spec §3.4.3).
///
/// # Safety
/// Pointers must be NULL or valid: `tokens` for `seq_len` ids, `logits` for `vocab_size` floats.
#[no_mangle]
pub unsafe extern "C" fn llama_forward(
    model: *mut q_llama_model,
    ctx: *mut q_context,
    tokens: *const u32,
    seq_len: u32,
    pos: u32,
    logits: *mut f32,
) -> q_error_code {
    guard_code("llama_forward", || {
        let _ = (model, ctx, tokens, seq_len, pos, logits);
        Err(Error::Internal(
            "llama_forward is not implemented yet".into(),
        ))
    })
}
