//! qorus addition (issue 15): saving and loading a context's KV cache (`q_state_*`).

use std::ffi::c_char;

use crate::error::{Error, Result};
use crate::ffi::boundary::{check_mut, check_path, guard_code};
use crate::ffi::model::{check_forward, context_kv};
use crate::ffi::types::*;
use crate::generate::state;

/// The engine model, the cache layout and the cache of a context, checked.
unsafe fn parts(
    model: *mut q_llama_model,
    ctx: *mut q_context,
) -> Result<(
    std::sync::Arc<crate::engine::Model>,
    crate::engine::kv_cache::KvCache,
)> {
    let m = check_mut(model, "model")?;
    let c = check_mut(ctx, "ctx")?;
    let engine = check_forward(m, c, &[], 0)?;
    let kv = context_kv(c, &engine)?;
    Ok((engine, kv))
}

unsafe fn ids_arg<'a>(tokens: *const u32, n: u32) -> Result<&'a [u32]> {
    if n == 0 {
        return Ok(&[]);
    }
    if tokens.is_null() {
        return Err(Error::InvalidArg("tokens is NULL".into()));
    }
    if !(tokens as usize).is_multiple_of(4) {
        return Err(Error::Misaligned("tokens".into()));
    }
    Ok(std::slice::from_raw_parts(tokens, n as usize))
}

unsafe fn serialise(
    model: *mut q_llama_model,
    ctx: *mut q_context,
    pos: u32,
    tokens: *const u32,
    n_tokens: u32,
) -> Result<Vec<u8>> {
    let (engine, kv) = parts(model, ctx)?;
    let ids = ids_arg(tokens, n_tokens)?;
    // SAFETY: the caller does not run the context meanwhile (contract of the exports).
    state::save(&engine, &kv, pos as usize, ids)
}

/// qorus addition: saves positions `0..pos` of the context's KV cache, with the `n_tokens` ids
/// that filled them (`n_tokens` 0, or equal to `pos`), into `buf`. `*size_out` receives the
/// state's size; `buf` NULL (any `buf_size`) only asks for it; a `buf_size` too small gives
/// `Q_ERR_ARENA_OOM`. The state is tied to this model's weights and this qorus version.
///
/// # Safety
/// `model` and `ctx` as for `llama_forward`; `tokens` NULL or `n_tokens` ids; `buf` NULL or
/// `buf_size` writable bytes; `size_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn q_state_save(
    model: *mut q_llama_model,
    ctx: *mut q_context,
    pos: u32,
    tokens: *const u32,
    n_tokens: u32,
    buf: *mut u8,
    buf_size: usize,
    size_out: *mut usize,
) -> q_error_code {
    guard_code("q_state_save", || {
        if size_out.is_null() {
            return Err(Error::InvalidArg("size_out is NULL".into()));
        }
        let bytes = serialise(model, ctx, pos, tokens, n_tokens)?;
        size_out.write_unaligned(bytes.len());
        if buf.is_null() {
            return Ok(());
        }
        if buf_size < bytes.len() {
            return Err(Error::ArenaOom(format!(
                "the state needs {} bytes, the buffer has {buf_size}",
                bytes.len()
            )));
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf, bytes.len());
        Ok(())
    })
}

/// qorus addition: `q_state_save` into the file `path` (created or replaced).
///
/// # Safety
/// As `q_state_save`; `path` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn q_state_save_file(
    model: *mut q_llama_model,
    ctx: *mut q_context,
    pos: u32,
    tokens: *const u32,
    n_tokens: u32,
    path: *const c_char,
) -> q_error_code {
    guard_code("q_state_save_file", || {
        let p = check_path(path, "path")?;
        let bytes = serialise(model, ctx, pos, tokens, n_tokens)?;
        std::fs::write(&p, bytes).map_err(|source| Error::FileOpen {
            path: p.display().to_string(),
            source,
        })
    })
}

unsafe fn restore(
    model: *mut q_llama_model,
    ctx: *mut q_context,
    bytes: &[u8],
    pos_out: *mut u32,
    tokens_out: *mut u32,
    tokens_capacity: u32,
    n_tokens_out: *mut u32,
) -> Result<()> {
    if pos_out.is_null() {
        return Err(Error::InvalidArg("pos_out is NULL".into()));
    }
    let (engine, kv) = parts(model, ctx)?;
    let found = state::verify(&engine, &kv, bytes)?;
    if !found.ids.is_empty() && (tokens_out.is_null() || tokens_capacity < found.ids.len() as u32) {
        if tokens_out.is_null() {
            // ids not wanted
        } else {
            return Err(Error::ArenaOom(format!(
                "the state holds {} ids, tokens_out has room for {tokens_capacity}",
                found.ids.len()
            )));
        }
    }
    if !tokens_out.is_null() && !(tokens_out as usize).is_multiple_of(4) {
        return Err(Error::Misaligned("tokens_out".into()));
    }
    // SAFETY: the caller does not run the context meanwhile (contract of the exports).
    let l = state::load(&engine, &kv, bytes)?;
    pos_out.write_unaligned(l.pos as u32);
    if !n_tokens_out.is_null() {
        n_tokens_out.write_unaligned(l.ids.len() as u32);
    }
    if !tokens_out.is_null() {
        std::ptr::copy_nonoverlapping(l.ids.as_ptr(), tokens_out, l.ids.len());
    }
    Ok(())
}

/// qorus addition: restores a state saved by `q_state_save` into the context's KV cache.
/// `*pos_out` receives its position (continue with `q_generate_options.start_pos = *pos_out`);
/// `tokens_out` (NULL: not wanted) receives its ids and `*n_tokens_out` their number (0 if it
/// was saved without ids). A state from another model or another qorus version, or damaged, is
/// refused with `Q_ERR_INVALID_ARG` (`q_last_error()` says why) and nothing is written.
///
/// # Safety
/// `model` and `ctx` as for `llama_forward`; `buf` NULL or `size` readable bytes; `pos_out`
/// writable; `tokens_out` NULL or `tokens_capacity` writable ids; `n_tokens_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn q_state_load(
    model: *mut q_llama_model,
    ctx: *mut q_context,
    buf: *const u8,
    size: usize,
    pos_out: *mut u32,
    tokens_out: *mut u32,
    tokens_capacity: u32,
    n_tokens_out: *mut u32,
) -> q_error_code {
    guard_code("q_state_load", || {
        if buf.is_null() {
            return Err(Error::InvalidArg("buf is NULL".into()));
        }
        let bytes = std::slice::from_raw_parts(buf, size);
        restore(
            model,
            ctx,
            bytes,
            pos_out,
            tokens_out,
            tokens_capacity,
            n_tokens_out,
        )
    })
}

/// qorus addition: `q_state_load` from the file `path`.
///
/// # Safety
/// As `q_state_load`; `path` NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn q_state_load_file(
    model: *mut q_llama_model,
    ctx: *mut q_context,
    path: *const c_char,
    pos_out: *mut u32,
    tokens_out: *mut u32,
    tokens_capacity: u32,
    n_tokens_out: *mut u32,
) -> q_error_code {
    guard_code("q_state_load_file", || {
        let p = check_path(path, "path")?;
        let bytes = std::fs::read(&p).map_err(|source| Error::FileOpen {
            path: p.display().to_string(),
            source,
        })?;
        restore(
            model,
            ctx,
            &bytes,
            pos_out,
            tokens_out,
            tokens_capacity,
            n_tokens_out,
        )
    })
}
