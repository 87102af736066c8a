//! Spec §3.5: the tokenizer API.

use std::ffi::c_char;

use crate::error::Error;
use crate::ffi::boundary::{guard, guard_code};
use crate::ffi::types::*;

/// Loads a tokenizer file (spec §4.2) or a GGUF model's tokenizer (spec §3.5.1).
///
/// # Safety
/// `tok` must be NULL or writable; `tokenizer_path` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn q_tokenizer_load(
    tok: *mut q_tokenizer,
    tokenizer_path: *const c_char,
) -> q_error_code {
    guard_code("q_tokenizer_load", || {
        let _ = (tok, tokenizer_path);
        Err(Error::Internal(
            "q_tokenizer_load is not implemented yet".into(),
        ))
    })
}

/// Encodes `text` into token ids (spec §3.5.2).
///
/// # Safety
/// Pointers must be NULL or valid; `tokens_out` must hold `max_tokens` ids.
#[no_mangle]
pub unsafe extern "C" fn q_tokenizer_encode(
    tok: *mut q_tokenizer,
    text: *const c_char,
    tokens_out: *mut u32,
    num_tokens_out: *mut u32,
    max_tokens: u32,
    add_bos: bool,
    add_eos: bool,
) -> q_error_code {
    guard_code("q_tokenizer_encode", || {
        let _ = (
            tok,
            text,
            tokens_out,
            num_tokens_out,
            max_tokens,
            add_bos,
            add_eos,
        );
        Err(Error::Internal(
            "q_tokenizer_encode is not implemented yet".into(),
        ))
    })
}

/// Decodes ids into NUL-terminated text (spec §3.5.3).
///
/// # Safety
/// Pointers must be NULL or valid; `text_out` must hold `text_buf_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn q_tokenizer_decode(
    tok: *mut q_tokenizer,
    tokens: *const u32,
    num_tokens: u32,
    text_out: *mut c_char,
    text_buf_size: usize,
) -> q_error_code {
    guard_code("q_tokenizer_decode", || {
        let _ = (tok, tokens, num_tokens, text_out, text_buf_size);
        Err(Error::Internal(
            "q_tokenizer_decode is not implemented yet".into(),
        ))
    })
}

/// Frees what `q_tokenizer_load` allocated and zeroes the struct (spec §3.5.4).
///
/// # Safety
/// `tok` must be NULL or a tokenizer whose pointers came from the C allocator (or are NULL).
#[no_mangle]
pub unsafe extern "C" fn q_tokenizer_free(tok: *mut q_tokenizer) {
    guard("q_tokenizer_free", || {
        let _ = tok;
    })
}

/// A function turning generated ids into text pieces for `q_generate_stream` (never half a UTF-8
/// character per piece).
///
/// # Safety
/// `state` must be NULL or valid.
pub(crate) unsafe fn piece_stream(
    state: *mut q_generation_state,
) -> crate::Result<impl FnMut(u32, &mut Vec<u8>)> {
    let _ = state;
    Ok(|_id: u32, _out: &mut Vec<u8>| {})
}
