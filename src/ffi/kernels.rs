//! Spec §3.3: the public kernels on `.qorus` 20-byte blocks and F32 tensors.

use std::ffi::c_void;

use crate::error::Error;
use crate::ffi::boundary::{guard, guard_code};
use crate::ffi::types::*;

fn todo(name: &str) -> Error {
    Error::Internal(format!("{name} is not implemented yet"))
}

/// Dequantizes one block into `output[0..32]` (spec §3.3.1). NULL arguments: nothing happens.
///
/// # Safety
/// Non-NULL `block` must point to 20 readable bytes and `output` to 32 writable floats.
#[no_mangle]
pub unsafe extern "C" fn q_dequantize_q4_0_block_avx2_public(
    block: *const q_block_q4_0,
    output: *mut f32,
) {
    guard("q_dequantize_q4_0_block_avx2_public", || {
        let _ = (block, output);
    })
}

/// `output = W · input` for a `.qorus` Q4_0 matrix (spec §3.3.2).
///
/// # Safety
/// Pointers must be NULL or valid for the extents in `weights`.
#[no_mangle]
pub unsafe extern "C" fn q_gemv_q4_f32_avx2(
    weights: *const q_tensor,
    input: *const f32,
    output: *mut f32,
) -> q_error_code {
    guard_code("q_gemv_q4_f32_avx2", || {
        let _ = (weights, input, output);
        Err(todo("q_gemv_q4_f32_avx2"))
    })
}

/// `C = A · B` in F32 (spec §3.3.3).
///
/// # Safety
/// Tensor pointers must be NULL or valid views of the extents and strides they declare.
#[no_mangle]
pub unsafe extern "C" fn q_matmul_f32_avx2(
    a: *const q_tensor,
    b: *const q_tensor,
    c: *mut q_tensor,
    ctx: *mut q_context,
) -> q_error_code {
    guard_code("q_matmul_f32_avx2", || {
        let _ = (a, b, c, ctx);
        Err(todo("q_matmul_f32_avx2"))
    })
}

/// Sets the strict upper triangle of a square score matrix to `mask_value` (spec §3.3.4).
///
/// # Safety
/// `scores` must be NULL or a valid view.
#[no_mangle]
pub unsafe extern "C" fn q_causal_mask_f32_avx2(
    scores: *mut q_tensor,
    mask_value: f32,
) -> q_error_code {
    guard_code("q_causal_mask_f32_avx2", || {
        let _ = (scores, mask_value);
        Err(todo("q_causal_mask_f32_avx2"))
    })
}

/// `output = a + b` element-wise on 1-D tensors (spec §3.3.5).
///
/// # Safety
/// Tensor pointers must be NULL or valid views.
#[no_mangle]
pub unsafe extern "C" fn q_add_f32_avx2(
    a: *const q_tensor,
    b: *const q_tensor,
    output: *mut q_tensor,
) -> q_error_code {
    guard_code("q_add_f32_avx2", || {
        let _ = (a, b, output);
        Err(todo("q_add_f32_avx2"))
    })
}

/// `output = a * b` element-wise on 1-D tensors (spec §3.3.6).
///
/// # Safety
/// Tensor pointers must be NULL or valid views.
#[no_mangle]
pub unsafe extern "C" fn q_mul_f32_avx2(
    a: *const q_tensor,
    b: *const q_tensor,
    output: *mut q_tensor,
) -> q_error_code {
    guard_code("q_mul_f32_avx2", || {
        let _ = (a, b, output);
        Err(todo("q_mul_f32_avx2"))
    })
}

/// RMSNorm of one vector of length `n` (spec §3.3.7).
///
/// # Safety
/// Pointers must be NULL or valid for `n` floats.
#[no_mangle]
pub unsafe extern "C" fn q_rmsnorm_f32_avx2(
    x: *const f32,
    weight: *const f32,
    output: *mut f32,
    n: u32,
    eps: f32,
) -> q_error_code {
    guard_code("q_rmsnorm_f32_avx2", || {
        let _ = (x, weight, output, n, eps);
        Err(todo("q_rmsnorm_f32_avx2"))
    })
}

/// RoPE on interleaved pairs with duplicated cos/sin tables (spec §3.3.8).
///
/// # Safety
/// Pointers must be NULL or valid for `n` floats.
#[no_mangle]
pub unsafe extern "C" fn q_rope_f32_avx2(
    x: *const f32,
    cos: *const f32,
    sin: *const f32,
    output: *mut f32,
    n: u32,
) -> q_error_code {
    guard_code("q_rope_f32_avx2", || {
        let _ = (x, cos, sin, output, n);
        Err(todo("q_rope_f32_avx2"))
    })
}

/// SiLU, `x / (1 + exp(-x))` (spec §3.3.9).
///
/// # Safety
/// Pointers must be NULL or valid for `n` floats.
#[no_mangle]
pub unsafe extern "C" fn q_silu_f32_avx2(x: *const f32, output: *mut f32, n: u32) -> q_error_code {
    guard_code("q_silu_f32_avx2", || {
        let _ = (x, output, n);
        Err(todo("q_silu_f32_avx2"))
    })
}

/// Softmax of `n` floats; `x == output` allowed (spec §3.3.10).
///
/// # Safety
/// Pointers must be NULL or valid for `n` floats.
#[no_mangle]
pub unsafe extern "C" fn q_softmax_f32_avx2(
    x: *const f32,
    output: *mut f32,
    n: u32,
) -> q_error_code {
    guard_code("q_softmax_f32_avx2", || {
        let _ = (x, output, n);
        Err(todo("q_softmax_f32_avx2"))
    })
}

#[allow(dead_code)]
fn _unused(_: *mut c_void) {}
