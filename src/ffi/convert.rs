//! Model conversion exports (qorus additions): requantizing a GGUF model, and converting a GGUF
//! model into the original's `.qorus` model file.

use std::ffi::c_char;

use crate::error::Error;
use crate::ffi::boundary::{check_path, guard_code};
use crate::ffi::types::*;
use crate::format::quant_mix::Mix;
use crate::format::{qorus_file, requantize};
use crate::quant::WeightType;

/// Rewrites the GGUF model `in_path` into `out_path` with weights of `type` (qorus addition), like
/// llama.cpp's `llama-quantize` without an importance matrix: `Q_F32`, `Q_F16`, `Q_BF16`,
/// `Q_Q8_0`, `Q_Q4_0_GGML`, `Q_Q4_1`, `Q_Q5_0`, `Q_Q5_1`, `Q_Q2_K`, `Q_Q6_K`, `Q_IQ4_NL`,
/// `Q_IQ4_XS`, and `Q_Q3_K`/`Q_Q4_K`/`Q_Q5_K` for the `_M` mixes (llama-quantize's aliases).
/// `Q_Q4_0`, the `.qorus` block, cannot be stored in GGUF: `Q_ERR_INVALID_DTYPE`. The other mixes
/// (`Q3_K_S`, `Q4_K_S`, ...) are reached through `q_quantize_model_mix`.
///
/// Without `pure`, tensors get llama.cpp's per-tensor types for that file type (the output
/// matrix Q6_K or Q8_0, more bits for some `attn_v`/`ffn_down` layers of the K-quant mixes, and
/// fallbacks such as Q4_K -> Q5_0 for rows that are not multiples of 256); with `pure`, every
/// quantizable matrix takes `type` (still with the fallbacks). Norms and other 1-D tensors are
/// kept. Every tensor's type and bytes equal `llama-quantize`'s. `general.file_type` is set as
/// llama.cpp sets it. The output is written under a temporary name and renamed into place, so
/// `out_path` may equal `in_path`.
///
/// Errors: NULL path `Q_ERR_INVALID_ARG`; unknown `type` `Q_ERR_INVALID_DTYPE`; unreadable input
/// or unwritable output `Q_ERR_FILE_OPEN`; not a GGUF file `Q_ERR_INVALID_MAGIC`; malformed GGUF
/// `Q_ERR_INVALID_CONFIG`; a tensor of a type qorus cannot read `Q_ERR_INVALID_DTYPE`. The message
/// is available from `q_last_error()`.
///
/// # Safety
/// `in_path` and `out_path` must be NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn q_quantize_model(
    in_path: *const c_char,
    out_path: *const c_char,
    r#type: q_dtype,
    pure: bool,
) -> q_error_code {
    guard_code("q_quantize_model", || {
        let input = check_path(in_path, "in_path")?;
        let output = check_path(out_path, "out_path")?;
        let ty = WeightType::from_dtype(r#type)
            .ok_or_else(|| Error::InvalidDtype(format!("q_dtype {}", r#type)))?;
        requantize::requantize(&input, &output, ty, pure)
    })
}

/// Rewrites the GGUF model `in_path` into `out_path` as a file of quantization mix `mix`
/// (qorus addition): one of the `Q_MIX_*` values, which are llama.cpp's `llama_ftype` numbers
/// (`Q_MIX_Q4_K_M` = `LLAMA_FTYPE_MOSTLY_Q4_K_M` = 15, ...). Otherwise as `q_quantize_model`:
/// llama.cpp's per-tensor types unless `pure`, no importance matrix, bytes equal to
/// `llama-quantize`'s, `out_path` may equal `in_path`.
///
/// Errors: NULL path `Q_ERR_INVALID_ARG`; a `mix` that is not a `Q_MIX_*` value (including the
/// llama.cpp file types qorus cannot write, such as the IQ2/IQ3 mixes that need an importance
/// matrix) `Q_ERR_INVALID_DTYPE`; then as `q_quantize_model`.
///
/// # Safety
/// `in_path` and `out_path` must be NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn q_quantize_model_mix(
    in_path: *const c_char,
    out_path: *const c_char,
    mix: q_quant_mix,
    pure: bool,
) -> q_error_code {
    guard_code("q_quantize_model_mix", || {
        let input = check_path(in_path, "in_path")?;
        let output = check_path(out_path, "out_path")?;
        let m = u32::try_from(mix)
            .ok()
            .and_then(Mix::from_ftype)
            .ok_or_else(|| Error::InvalidDtype(format!("q_quant_mix {mix} is not supported")))?;
        requantize::requantize_mix(&input, &output, m, pure)
    })
}

/// Converts the LLaMA GGUF model `gguf_path` into a `.qorus` model file (qorus addition; spec
/// §4.1 with the `[out, in]` orientation of §5.3): header version 2 with the model's RMS epsilon,
/// F32 embedding, output (a copy of the embedding when tied) and norms, every other matrix in
/// `.qorus` Q4_0 blocks along its input dimension. The vocabulary is not padded.
///
/// Errors: NULL path `Q_ERR_INVALID_ARG`; unreadable input or unwritable output
/// `Q_ERR_FILE_OPEN`; not a GGUF file `Q_ERR_INVALID_MAGIC`; not a LLaMA model the format can hold
/// (`dim`, `hidden_dim` or the K/V width not multiples of 32, extra tensors such as biases,
/// unexpected shapes) `Q_ERR_INVALID_CONFIG`.
///
/// # Safety
/// `gguf_path` and `out_model_path` must be NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn q_convert_to_qorus(
    gguf_path: *const c_char,
    out_model_path: *const c_char,
) -> q_error_code {
    guard_code("q_convert_to_qorus", || {
        let input = check_path(gguf_path, "gguf_path")?;
        let output = check_path(out_model_path, "out_model_path")?;
        qorus_file::convert_gguf_to_qorus(&input, &output)
    })
}
