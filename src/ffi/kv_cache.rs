//! qorus addition: KV caches of reduced precision (F16, Q8_0) for a context.
//!
//! `q_alloc_kv_cache` keeps the spec's F32 layout (§5.4). `q_alloc_kv_cache_typed` allocates a
//! cache of another element type; the library remembers the type of each live KV buffer it
//! allocated (keyed by its address, forgotten when `q_free_memory` frees it), and
//! `llama_forward`, `q_generate` and `q_generate_batch` read and write the cache in that type.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::engine::kv_cache::{KvLayout, KvType};
use crate::error::{Error, Result};
use crate::ffi::boundary::{check_mut, check_ref, guard_code};
use crate::ffi::types::{q_context, q_error_code, q_llama_model};

/// Element type of a KV cache (qorus addition).
#[allow(non_camel_case_types)]
pub type q_kv_type = i32;
/// 32-bit floats, the spec's layout (what `q_alloc_kv_cache` allocates).
pub const Q_KV_F32: q_kv_type = 0;
/// binary16 (round to nearest even): half the memory of F32.
pub const Q_KV_F16: q_kv_type = 1;
/// ggml Q8_0 blocks (f16 scale + 32 int8 per 32 values): 34/128 of F32; head_dim % 32 == 0.
pub const Q_KV_Q8_0: q_kv_type = 2;

/// Types of the live KV buffers that are not F32, by address.
static TYPES: Mutex<Option<HashMap<usize, KvType>>> = Mutex::new(None);

fn types() -> std::sync::MutexGuard<'static, Option<HashMap<usize, KvType>>> {
    TYPES.lock().unwrap_or_else(|e| e.into_inner())
}

/// The element type of the KV buffer at `p` (F32 unless `q_alloc_kv_cache_typed` made it).
pub(crate) fn kv_type_of(p: *const std::ffi::c_void) -> KvType {
    types()
        .as_ref()
        .and_then(|m| m.get(&(p as usize)).copied())
        .unwrap_or_default()
}

/// Forgets the type of the KV buffer at `p` (it is being freed, or was just allocated as F32).
pub(crate) fn forget(p: *const std::ffi::c_void) {
    if let Some(m) = types().as_mut() {
        m.remove(&(p as usize));
    }
}

fn remember(p: *const std::ffi::c_void, ty: KvType) {
    if ty == KvType::F32 {
        forget(p);
    } else {
        types()
            .get_or_insert_with(HashMap::new)
            .insert(p as usize, ty);
    }
}

/// The engine type for a C value, or an error naming it.
pub(crate) fn kv_type_from_c(t: q_kv_type) -> Result<KvType> {
    match t {
        Q_KV_F32 => Ok(KvType::F32),
        Q_KV_F16 => Ok(KvType::F16),
        Q_KV_Q8_0 => Ok(KvType::Q8_0),
        _ => Err(Error::InvalidArg(format!(
            "KV cache type {t} is not one of Q_KV_F32 (0), Q_KV_F16 (1), Q_KV_Q8_0 (2)"
        ))),
    }
}

fn c_from_kv_type(t: KvType) -> q_kv_type {
    match t {
        KvType::F32 => Q_KV_F32,
        KvType::F16 => Q_KV_F16,
        KvType::Q8_0 => Q_KV_Q8_0,
    }
}

/// qorus addition: the bytes of a KV cache of type `kv_type` for `model` (its `max_seq_len`
/// positions), for `q_alloc_kv_cache_typed`. `Q_ERR_INVALID_ARG` for an unknown type or NULL
/// pointers, `Q_ERR_INVALID_CONFIG` when the model's head dimension does not fit the type (Q8_0
/// needs a multiple of 32).
///
/// # Safety
/// `model` must be NULL or a struct filled by `llama_build_graph`; `out_size` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn q_kv_cache_size(
    model: *const q_llama_model,
    kv_type: q_kv_type,
    out_size: *mut usize,
) -> q_error_code {
    guard_code("q_kv_cache_size", || {
        let model = check_ref(model, "model")?;
        let out = check_mut(out_size, "out_size")?;
        let ty = kv_type_from_c(kv_type)?;
        let engine = crate::ffi::model::engine_model(model)?;
        let c = &engine.config;
        let layout = KvLayout {
            n_layers: c.n_layers,
            n_kv_heads: c.n_kv_heads,
            max_seq: c.max_seq_len,
            head_dim: c.head_dim(),
        };
        *out = layout.bytes(ty)?;
        Ok(())
    })
}

/// qorus addition: `q_alloc_kv_cache` for a cache of element type `kv_type` (`Q_KV_F32`,
/// `Q_KV_F16`, `Q_KV_Q8_0`); `kv_size` bytes, zero-filled and 64-aligned, at least
/// `q_kv_cache_size(model, kv_type)` for the model it will serve (checked by `llama_forward`).
/// The layout keeps the spec's order (layer, kv head, position, K then V) with the type's
/// elements. `Q_KV_F32` is exactly `q_alloc_kv_cache`. Errors as `q_alloc_kv_cache`, plus
/// `Q_ERR_INVALID_ARG` for an unknown type.
///
/// # Safety
/// `ctx` must be NULL or point to a writable `q_context`.
#[no_mangle]
pub unsafe extern "C" fn q_alloc_kv_cache_typed(
    ctx: *mut q_context,
    kv_size: usize,
    kv_type: q_kv_type,
) -> q_error_code {
    guard_code("q_alloc_kv_cache_typed", || {
        let ty = kv_type_from_c(kv_type)?;
        let c = check_mut(ctx, "ctx")?;
        if !c.kv_buffer.is_null() {
            return Err(Error::InvalidArg("KV cache already allocated".into()));
        }
        if kv_size == 0 || kv_size > usize::MAX - 63 {
            return Err(Error::Overflow(format!("allocation size {kv_size}")));
        }
        let buf = crate::memory::AlignedBuf::zeroed(kv_size)?;
        c.kv_buffer = buf.into_raw();
        c.kv_size = kv_size;
        remember(c.kv_buffer, ty);
        Ok(())
    })
}

/// qorus addition: the element type of a context's KV cache (`Q_KV_F32` for one made by
/// `q_alloc_kv_cache`). `Q_ERR_INVALID_ARG` for NULL pointers or a context without a KV cache.
///
/// # Safety
/// `ctx` must be NULL or a valid `q_context`; `out_type` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn q_kv_cache_type(
    ctx: *const q_context,
    out_type: *mut q_kv_type,
) -> q_error_code {
    guard_code("q_kv_cache_type", || {
        let ctx = check_ref(ctx, "ctx")?;
        let out = check_mut(out_type, "out_type")?;
        if ctx.kv_buffer.is_null() {
            return Err(Error::InvalidArg("context has no KV cache".into()));
        }
        *out = c_from_kv_type(kv_type_of(ctx.kv_buffer));
        Ok(())
    })
}
