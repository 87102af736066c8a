//! Spec §3.1 (memory management) and §3.2 (`q_strerror`).

use std::ffi::{c_char, c_void};

use crate::error::{Error, Result};
use crate::ffi::boundary::{check_mut, check_path, guard, guard_code};
use crate::ffi::registry;
use crate::ffi::types::*;
use crate::memory::{align64, AlignedBuf};

/// Maps a model file (`.qorus` or GGUF, chosen by magic) into `ctx` (spec §3.1.1).
///
/// # Safety
/// `ctx` must be NULL or point to a writable `q_context`; `model_path` must be NULL or a
/// NUL-terminated string. A mapping `ctx` already holds is not released (as in the original).
#[no_mangle]
pub unsafe extern "C" fn q_init_memory_ex(
    ctx: *mut q_context,
    model_path: *const c_char,
    strategy: q_mmap_strategy,
) -> q_error_code {
    guard_code("q_init_memory_ex", || {
        let ctx = check_mut(ctx, "ctx")?;
        let path = check_path(model_path, "model_path")?;
        let mapped = registry::insert(crate::format::map_file(&path, strategy == Q_MMAP_EAGER)?);
        ctx.weights_mmap = mapped.base();
        ctx.weights_size = mapped.map.len();
        ctx.header = match &mapped.header {
            Some(h) => &**h as *const q_model_header as *mut q_model_header,
            None => mapped.base() as *mut q_model_header,
        };
        Ok(())
    })
}

/// `q_init_memory_ex(ctx, model_path, Q_MMAP_LAZY)` (spec §3.1.2).
///
/// # Safety
/// As `q_init_memory_ex`.
#[no_mangle]
pub unsafe extern "C" fn q_init_memory(
    ctx: *mut q_context,
    model_path: *const c_char,
) -> q_error_code {
    q_init_memory_ex(ctx, model_path, Q_MMAP_LAZY)
}

fn checked_alloc_size(size: usize) -> Result<usize> {
    if size == 0 || size > usize::MAX - 63 {
        return Err(Error::Overflow(format!("allocation size {size}")));
    }
    Ok(align64(size))
}

/// Allocates the zero-filled, 64-aligned KV cache (spec §3.1.3): an anonymous mapping whose
/// pages cost memory only once used. Release it with `q_free_memory` only (not `free()`).
///
/// # Safety
/// `ctx` must be NULL or point to a writable `q_context`.
#[no_mangle]
pub unsafe extern "C" fn q_alloc_kv_cache(ctx: *mut q_context, kv_size: usize) -> q_error_code {
    guard_code("q_alloc_kv_cache", || {
        let ctx = check_mut(ctx, "ctx")?;
        if !ctx.kv_buffer.is_null() {
            return Err(Error::InvalidArg("KV cache already allocated".into()));
        }
        let size = checked_alloc_size(kv_size)?;
        let buf = AlignedBuf::zeroed(size)?;
        ctx.kv_buffer = buf.into_raw();
        ctx.kv_size = size;
        crate::ffi::kv_cache::forget(ctx.kv_buffer); // an F32 cache (spec layout)
        Ok(())
    })
}

/// Allocates the 64-aligned scratch arena (spec §3.1.4), not zeroed.
///
/// The arena is C heap memory from `aligned_alloc(64, A64(arena_size))`, as in the original: a
/// caller may release `scratch_buffer` with `free()` instead of `q_free_memory` (then set it to
/// NULL, as with the original, so that `q_free_memory` does not free it again). The KV cache,
/// by contrast, is an anonymous mapping (its untouched pages cost no memory) and must be
/// released by `q_free_memory`.
///
/// # Safety
/// `ctx` must be NULL or point to a writable `q_context`.
#[no_mangle]
pub unsafe extern "C" fn q_alloc_arena(ctx: *mut q_context, arena_size: usize) -> q_error_code {
    guard_code("q_alloc_arena", || {
        let ctx = check_mut(ctx, "ctx")?;
        if !ctx.scratch_buffer.is_null() {
            return Err(Error::InvalidArg("arena already allocated".into()));
        }
        let size = checked_alloc_size(arena_size)?;
        let buf = AlignedBuf::c_heap(size)?;
        ctx.scratch_buffer = buf.into_raw();
        ctx.scratch_size = size;
        ctx.scratch_head = 0;
        ctx.scratch_base_offset = 0;
        Ok(())
    })
}

/// Bump-allocates `A64(size)` bytes from the arena (spec §3.1.5). NULL when the arena is missing or
/// exhausted, `size` is 0 or huge, or `scratch_head` is not a multiple of 64 (spec fix C2); also
/// when `scratch_buffer` is not a live library arena of at least `scratch_size` bytes (freed, or
/// the size field enlarged).
///
/// # Safety
/// `ctx` must be NULL or point to a writable `q_context` whose arena fields were set by the library.
#[no_mangle]
pub unsafe extern "C" fn q_arena_alloc(ctx: *mut q_context, size: usize) -> *mut c_void {
    guard("q_arena_alloc", || {
        let Ok(ctx) = check_mut(ctx, "ctx") else {
            return std::ptr::null_mut();
        };
        crate::memory::arena_alloc(ctx, size).unwrap_or(std::ptr::null_mut())
    })
}

/// Rewinds the arena to the model watermark (spec §3.1.6).
///
/// # Safety
/// `ctx` must be NULL or point to a writable `q_context`.
#[no_mangle]
pub unsafe extern "C" fn q_arena_reset(ctx: *mut q_context) {
    guard("q_arena_reset", || {
        if let Ok(ctx) = check_mut(ctx, "ctx") {
            ctx.scratch_head = ctx.scratch_base_offset;
        }
    })
}

/// Frees the arena, the KV cache and the mapping, in that order (spec §3.1.7). Idempotent.
///
/// # Safety
/// `ctx` must be NULL or point to a writable `q_context` whose buffers were made by the library
/// (or are NULL). Models built on this context dangle afterwards.
#[no_mangle]
pub unsafe extern "C" fn q_free_memory(ctx: *mut q_context) {
    guard("q_free_memory", || {
        let Ok(ctx) = check_mut(ctx, "ctx") else {
            return;
        };
        if !ctx.scratch_buffer.is_null() {
            AlignedBuf::free_raw(ctx.scratch_buffer);
            ctx.scratch_buffer = std::ptr::null_mut();
            ctx.scratch_size = 0;
            ctx.scratch_head = 0;
            ctx.scratch_base_offset = 0;
        }
        if !ctx.kv_buffer.is_null() {
            crate::ffi::kv_cache::forget(ctx.kv_buffer);
            AlignedBuf::free_raw(ctx.kv_buffer);
            ctx.kv_buffer = std::ptr::null_mut();
            ctx.kv_size = 0;
        }
        if !ctx.weights_mmap.is_null() {
            // Only mappings we made are unmapped; a caller's buffer is forgotten (with the
            // engine model built over it), not freed.
            registry::remove(ctx.weights_mmap);
            ctx.weights_mmap = std::ptr::null_mut();
            ctx.weights_size = 0;
            ctx.header = std::ptr::null_mut();
        }
    })
}

/// Static text for an error code; never NULL; "Unknown error" for unknown codes (spec §3.2).
/// (The one export outside the panic guard: its body is a total match over an integer returning a
/// static string, which cannot panic, and the guard's panic value, NULL, would break "never NULL".)
#[no_mangle]
pub extern "C" fn q_strerror(err: q_error_code) -> *const c_char {
    crate::error::strerror(err).as_ptr()
}

/// qorus addition: a message describing the last failure on the calling thread (more detail than
/// `q_strerror`). Valid until the next failing qorus call on this thread; never NULL.
#[no_mangle]
pub extern "C" fn q_last_error() -> *const c_char {
    guard("q_last_error", crate::ffi::boundary::last_error_ptr)
}
