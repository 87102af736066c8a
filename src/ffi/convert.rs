//! Model conversion exports (qorus additions): requantizing a GGUF model, and converting a GGUF
//! model into the original's `.qorus` model file.

use std::ffi::c_char;

use crate::error::Error;
use crate::ffi::boundary::{check_path, guard_code};
use crate::ffi::types::*;
use crate::format::{qorus_file, requantize};
use crate::quant::WeightType;

/// Rewrites the GGUF model `in_path` into `out_path` with weights of `type` (qorus addition), like
/// llama.cpp's `llama-quantize`: `Q_F32`, `Q_F16`, `Q_BF16`, `Q_Q8_0`, `Q_Q4_0_GGML` or `Q_Q4_1`
/// (`Q_Q4_0`, the `.qorus` block, cannot be stored in GGUF: `Q_ERR_INVALID_DTYPE`).
///
/// With `pure`, every weight matrix (the embedding and output too) takes `type`; otherwise a 4-bit
/// target keeps the output matrix (or the tied embedding) at Q8_0. Norms and other 1-D tensors are
/// kept. `general.file_type` is set as llama.cpp sets it. The output is written under a temporary
/// name and renamed into place, so `out_path` may equal `in_path`.
///
/// Errors: NULL path `Q_ERR_INVALID_ARG`; unknown `type` `Q_ERR_INVALID_DTYPE`; unreadable input
/// or unwritable output `Q_ERR_FILE_OPEN`; not a GGUF file `Q_ERR_INVALID_MAGIC`; malformed GGUF
/// `Q_ERR_INVALID_CONFIG`. The message is available from `q_last_error()`.
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
