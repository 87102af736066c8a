//! Spec §3.4: building model views and the forward pass.
//!
//! `llama_build_graph` builds (or reuses) the engine model for the context's mapping and writes the
//! spec's views into the arena; `llama_forward` reads the caller's structs again on every call,
//! finds the engine model through `model->ctx`'s registered mapping and the model's current
//! configuration, and runs the engine with the context's KV cache and arena.

use std::ffi::c_char;
use std::sync::Arc;

use crate::engine::forward::{forward, scratch_bytes, SeqStep};
use crate::engine::kv_cache::{KvCache, KvLayout};
use crate::engine::model::Mat;
use crate::engine::{pool, Config, Model};
use crate::error::{Error, Result};
use crate::ffi::boundary::{check_mut, guard, guard_code};
use crate::ffi::registry;
use crate::ffi::types::*;
use crate::memory::{arena_alloc, arena_slice, AlignedBuf};
use crate::quant::WeightType;

/// The C dtype of a weight type.
pub fn dtype_of(ty: WeightType) -> q_dtype {
    ty.dtype()
}

fn config_of(c: &q_llama_config) -> Config {
    Config {
        vocab_size: c.vocab_size as usize,
        dim: c.dim as usize,
        hidden_dim: c.hidden_dim as usize,
        n_layers: c.n_layers as usize,
        n_heads: c.n_heads as usize,
        n_kv_heads: c.n_kv_heads as usize,
        max_seq_len: c.max_seq_len as usize,
        rope_base: c.rope_freq_base,
        rms_eps: c.rms_norm_eps,
    }
}

fn c_config(c: &Config) -> q_llama_config {
    q_llama_config {
        vocab_size: c.vocab_size as u32,
        dim: c.dim as u32,
        hidden_dim: c.hidden_dim as u32,
        n_layers: c.n_layers as u32,
        n_heads: c.n_heads as u32,
        n_kv_heads: c.n_kv_heads as u32,
        max_seq_len: c.max_seq_len as u32,
        rope_freq_base: c.rope_base,
        rms_norm_eps: c.rms_eps,
    }
}

fn set_name(t: &mut q_tensor, name: &str) {
    t.name = [0; 32];
    for (dst, &b) in t.name.iter_mut().zip(name.as_bytes().iter().take(31)) {
        *dst = b as c_char;
    }
}

/// A 128-byte view in the arena (spec §2.8 strides).
fn new_view(
    ctx: &mut q_context,
    name: &str,
    data: *const u8,
    ty: WeightType,
    rows: usize,
    cols: usize,
) -> Result<*mut q_tensor> {
    let p = arena_alloc(ctx, std::mem::size_of::<q_tensor>())
        .ok_or_else(|| Error::ArenaOom(format!("view {name}")))? as *mut q_tensor;
    let (nb0, nb_rest) = (ty.row_bytes(cols).unwrap_or(0), ty.block_bytes());
    let mut t = q_tensor {
        data: data as *mut std::ffi::c_void,
        scales: std::ptr::null_mut(),
        ne: [rows as u32, cols as u32, 1, 1],
        nb: [nb0, nb_rest, nb_rest, nb_rest],
        r#type: dtype_of(ty),
        name: [0; 32],
    };
    set_name(&mut t, name);
    // SAFETY: `p` is a fresh, 64-aligned, 128-byte arena block.
    unsafe { p.write(t) };
    Ok(p)
}

fn mat_view(ctx: &mut q_context, name: &str, m: &Mat) -> Result<*mut q_tensor> {
    new_view(ctx, name, m.data_ptr(), m.ty, m.rows, m.cols)
}

fn vec_view(ctx: &mut q_context, name: &str, v: &[f32]) -> Result<*mut q_tensor> {
    // 1-D views: spec layout [n, 1, 1, 1] with nb = [4, 4, 4, 4].
    let p = new_view(
        ctx,
        name,
        v.as_ptr() as *const u8,
        WeightType::F32,
        v.len(),
        1,
    )?;
    // SAFETY: just written by new_view.
    unsafe { (*p).nb = [4, 4, 4, 4] };
    Ok(p)
}

fn build(ctx: &mut q_context, model: &mut q_llama_model) -> Result<()> {
    if ctx.weights_mmap.is_null() || ctx.header.is_null() {
        return Err(Error::NullPtr(
            "context has no model mapping (call q_init_memory first)",
        ));
    }
    // First the mapping: a stale copy of a freed context names a mapping (and, for GGUF, a
    // header) that no longer exists, and must be refused before its header is read.
    let file = registry::lookup(ctx.weights_mmap, ctx.weights_size)?;
    // SAFETY: the caller guarantees `header` points to a readable header (it may be anywhere).
    let header = unsafe { std::ptr::read_unaligned(ctx.header) };
    if header.magic != Q_MAGIC {
        return Err(Error::InvalidMagic(format!(
            "header magic {:#010x}",
            header.magic
        )));
    }
    if header.n_layers == 0
        || header.dim == 0
        || header.vocab_size == 0
        || header.n_heads == 0
        || header.n_kv_heads == 0
    {
        return Err(Error::InvalidConfig("zero dimension in the header".into()));
    }
    if header.dim % 32 != 0 || header.hidden_dim % 32 != 0 {
        return Err(Error::InvalidConfig(
            "dim and hidden_dim must be multiples of 32".into(),
        ));
    }
    let config = Config::from_header(&header);
    model.config = c_config(&config);
    model.ctx = ctx as *mut q_context;
    config.validate()?;
    let engine: Arc<Model> = crate::format::build_model(&file, Some(config))?;

    let l_count = config.n_layers;
    model.token_embd = mat_view(ctx, "token_embd.weight", &engine.tok_embd)?;
    model.output_norm = vec_view(ctx, "output_norm.weight", &engine.output_norm)?;
    model.output = mat_view(ctx, "output.weight", &engine.output)?;
    // SAFETY: arena memory of the right size; q_llama_layer is plain data (zeroed below).
    let layers: &mut [q_llama_layer] = unsafe { arena_slice(ctx, l_count, "layer array")? };
    // SAFETY: zeroing plain data.
    unsafe { std::ptr::write_bytes(layers.as_mut_ptr(), 0, l_count) };
    for (i, (lv, lw)) in layers.iter_mut().zip(&engine.layers).enumerate() {
        lv.layer_idx = i as u32;
        lv.attn_norm = vec_view(ctx, "attn_norm.weight", &lw.attn_norm)?;
        lv.wq = mat_view(ctx, "wq.weight", &lw.wq)?;
        lv.wk = mat_view(ctx, "wk.weight", &lw.wk)?;
        lv.wv = mat_view(ctx, "wv.weight", &lw.wv)?;
        lv.wo = mat_view(ctx, "wo.weight", &lw.wo)?;
        lv.ffn_norm = vec_view(ctx, "ffn_norm.weight", &lw.ffn_norm)?;
        lv.w_gate = mat_view(ctx, "w_gate.weight", &lw.w_gate)?;
        lv.w_up = mat_view(ctx, "w_up.weight", &lw.w_up)?;
        lv.w_down = mat_view(ctx, "w_down.weight", &lw.w_down)?;
    }
    model.layers = layers.as_mut_ptr();

    // RoPE bookkeeping of the original (spec §3.4.1 steps 6-7; informational for callers).
    let hd = config.head_dim();
    let freqs: &mut [f32] = unsafe { arena_slice(ctx, hd / 2, "rope_freqs")? };
    for (i, f) in freqs.iter_mut().enumerate() {
        *f = config.rope_base.powf(-2.0 * i as f32 / hd as f32);
    }
    model.rope_freqs = freqs.as_mut_ptr();
    model.rope_cache_enabled = false;
    model.rope_cos_cache = std::ptr::null_mut();
    model.rope_sin_cache = std::ptr::null_mut();
    let s = config.max_seq_len;
    if s <= 8192 {
        // SAFETY: as above; a failed second allocation leaves the first consumed (spec B11).
        let cos: Result<&mut [f32]> = unsafe { arena_slice(ctx, s * hd, "rope_cos_cache") };
        if let Ok(cos) = cos {
            let sin: Result<&mut [f32]> = unsafe { arena_slice(ctx, s * hd, "rope_sin_cache") };
            if let Ok(sin) = sin {
                for p in 0..s {
                    for i in 0..hd / 2 {
                        let a = freqs[i] * p as f32;
                        let (c, sn) = (a.cos(), a.sin());
                        cos[p * hd + 2 * i] = c;
                        cos[p * hd + 2 * i + 1] = c;
                        sin[p * hd + 2 * i] = sn;
                        sin[p * hd + 2 * i + 1] = sn;
                    }
                }
                model.rope_cos_cache = cos.as_mut_ptr();
                model.rope_sin_cache = sin.as_mut_ptr();
                model.rope_cache_enabled = true;
            }
        }
    }
    ctx.scratch_base_offset = ctx.scratch_head;
    Ok(())
}

/// Creates the model's views in the arena (spec §3.4.1): the engine model for the context's
/// mapping is built (or reused) and every `q_tensor` points into the mapping.
///
/// Extra validation (spec §5.3): `dim % n_heads`, `n_heads % n_kv_heads`, `head_dim % 8` and the
/// tensor shapes of GGUF files give `Q_ERR_INVALID_CONFIG`.
///
/// # Safety
/// `ctx` and `model` must be NULL or valid, writable, properly aligned structs; `ctx->header`
/// must be NULL or readable; `ctx`'s arena fields must describe the library's arena.
#[no_mangle]
pub unsafe extern "C" fn llama_build_graph(
    ctx: *mut q_context,
    model: *mut q_llama_model,
) -> q_error_code {
    guard_code("llama_build_graph", || {
        if ctx.is_null() || model.is_null() {
            return Err(Error::NullPtr("ctx or model"));
        }
        let ctx = check_mut(ctx, "ctx")?;
        let model = check_mut(model, "model")?;
        build(ctx, model)
    })
}

/// Clears the model's views (spec §3.4.2). NULL: no-op. The RoPE fields are left as they are.
///
/// # Safety
/// `model` must be NULL or a valid, writable struct.
#[no_mangle]
pub unsafe extern "C" fn llama_free_graph(model: *mut q_llama_model) {
    guard("llama_free_graph", || {
        if let Ok(m) = check_mut(model, "model") {
            m.token_embd = std::ptr::null_mut();
            m.output_norm = std::ptr::null_mut();
            m.output = std::ptr::null_mut();
            m.layers = std::ptr::null_mut();
            m.ctx = std::ptr::null_mut();
            m.config = q_llama_config::default();
        }
    })
}

/// Finds the engine model a C model struct stands for: its build context's registered mapping and
/// its current configuration.
pub(crate) fn engine_model(model: &q_llama_model) -> Result<Arc<Model>> {
    if model.ctx.is_null() {
        return Err(Error::InvalidArg(
            "model was not built (model->ctx is NULL)".into(),
        ));
    }
    // SAFETY: `model->ctx` is documented to point at the build context, which outlives the model.
    let bctx = unsafe { check_mut(model.ctx, "model->ctx")? };
    let file = registry::lookup(bctx.weights_mmap, bctx.weights_size)?;
    let config = config_of(&model.config);
    let cache = file.models.lock().unwrap_or_else(|p| p.into_inner());
    cache
        .iter()
        .find(|m| m.config == config)
        .cloned()
        .ok_or_else(|| {
            Error::InvalidArg(
                "model configuration differs from what llama_build_graph built".into(),
            )
        })
}

/// Validates a forward call's arguments (spec §3.4.3 with §5.3) and returns the engine model.
pub(crate) fn check_forward(
    model: &q_llama_model,
    ctx: &q_context,
    tokens: &[u32],
    pos: u32,
) -> Result<Arc<Model>> {
    let s = model.config.max_seq_len as usize;
    let seq_len = tokens.len();
    if seq_len > s {
        return Err(Error::InvalidSize(format!(
            "seq_len {seq_len} > max_seq_len {s}"
        )));
    }
    if pos as usize >= s {
        return Err(Error::InvalidArg(format!("pos {pos} >= max_seq_len {s}")));
    }
    if ctx.scratch_buffer.is_null() {
        return Err(Error::InvalidArg("context has no arena".into()));
    }
    if ctx.kv_buffer.is_null() {
        return Err(Error::InvalidArg("context has no KV cache".into()));
    }
    // The buffers must be live library buffers (not a stale copy's freed ones), and the size
    // fields must not claim more than was allocated.
    if AlignedBuf::live_len(ctx.scratch_buffer).is_none() {
        return Err(Error::InvalidArg(
            "scratch_buffer is not a live arena (freed or foreign)".into(),
        ));
    }
    match AlignedBuf::live_len(ctx.kv_buffer) {
        None => {
            return Err(Error::InvalidArg(
                "kv_buffer is not a live KV cache (freed or foreign)".into(),
            ))
        }
        Some(len) if ctx.kv_size > len => {
            return Err(Error::InvalidSize(format!(
                "kv_size {} exceeds the {len} bytes allocated",
                ctx.kv_size
            )))
        }
        Some(_) => {}
    }
    if model.token_embd.is_null() {
        return Err(Error::InvalidArg(
            "model has no token_embd (freed graph?)".into(),
        ));
    }
    let engine = engine_model(model)?;
    let v = engine.config.vocab_size;
    if let Some(&t) = tokens.iter().find(|&&t| t as usize >= v) {
        return Err(Error::InvalidArg(format!("token id {t} >= vocab_size {v}")));
    }
    if pos as usize + seq_len > s {
        return Err(Error::InvalidArg(format!(
            "pos {pos} + seq_len {seq_len} > max_seq_len {s}"
        )));
    }
    let need = engine
        .config
        .kv_floats()
        .unwrap_or(usize::MAX)
        .saturating_mul(4);
    if ctx.kv_size < need {
        return Err(Error::InvalidSize(format!(
            "KV cache has {} bytes, the model needs {need}",
            ctx.kv_size
        )));
    }
    Ok(engine)
}

/// The KV cache of a context for a model.
pub(crate) fn context_kv(ctx: &q_context, m: &Model) -> Result<KvCache> {
    let c = &m.config;
    let layout = KvLayout {
        n_layers: c.n_layers,
        n_kv_heads: c.n_kv_heads,
        max_seq: c.max_seq_len,
        head_dim: c.head_dim(),
    };
    // SAFETY: kv_buffer/kv_size were set by q_alloc_kv_cache (caller contract) and checked above.
    unsafe { KvCache::from_raw(ctx.kv_buffer as *mut f32, ctx.kv_size / 4, layout) }
        .ok_or_else(|| Error::InvalidSize("KV cache too small or misaligned".into()))
}

/// Runs one sequence's tokens through the engine with scratch from the context's arena.
pub(crate) fn forward_in_context(
    engine: &Model,
    ctx: &mut q_context,
    tokens: &[u32],
    pos: usize,
    logits: &mut [f32],
) -> Result<()> {
    let kv = context_kv(ctx, engine)?;
    let pool = pool::acquire();
    let need = scratch_bytes(
        engine,
        tokens.len(),
        pool.n_threads(),
        1,
        engine.config.max_seq_len,
    );
    // SAFETY: the arena fields describe the library's arena (caller contract).
    let scratch: &mut [u8] = unsafe { arena_slice(ctx, need, "forward scratch")? };
    let mut seqs = [SeqStep {
        kv,
        tokens,
        pos,
        logits: Some(logits),
    }];
    forward(engine, &mut seqs, scratch, &pool)
}

/// Runs `seq_len` tokens at positions `pos..` and writes the last token's logits (spec §3.4.3,
/// semantics of §5.3): every token attends to all cached positions up to its own, K/V are
/// written to the cache (layout §5.4), and `pos + seq_len > max_seq_len` is rejected before any
/// work. Temporaries come from the arena (not released; `Q_ERR_ARENA_OOM` when it is too small).
/// An arena or KV cache that is not a live library buffer (a stale copy of a freed context) gives
/// `Q_ERR_INVALID_ARG`; a `kv_size` larger than what was allocated, `Q_ERR_INVALID_SIZE`.
///
/// # Safety
/// Pointers must be NULL or valid: `model` a struct filled by `llama_build_graph`, `ctx` a
/// context with the library's arena and KV cache, `tokens` `seq_len` ids, `logits` room for
/// `vocab_size` floats (any alignment).
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
        if model.is_null() || ctx.is_null() || tokens.is_null() || logits.is_null() {
            return Err(Error::InvalidArg("NULL argument".into()));
        }
        let model = check_mut(model, "model")?;
        let ctx = check_mut(ctx, "ctx")?;
        if seq_len == 0 {
            return Err(Error::InvalidSize("seq_len is 0".into()));
        }
        if (tokens as usize) % 4 != 0 {
            return Err(Error::Misaligned("tokens".into()));
        }
        let toks = std::slice::from_raw_parts(tokens, seq_len as usize);
        let engine = check_forward(model, ctx, toks, pos)?;
        let v = engine.config.vocab_size;
        if (logits as usize) % 4 == 0 {
            let out = std::slice::from_raw_parts_mut(logits, v);
            forward_in_context(&engine, ctx, toks, pos as usize, out)
        } else {
            let tmp: &mut [f32] = arena_slice(ctx, v, "logits")?;
            forward_in_context(&engine, ctx, toks, pos as usize, tmp)?;
            std::ptr::copy_nonoverlapping(tmp.as_ptr() as *const u8, logits as *mut u8, v * 4);
            Ok(())
        }
    })
}
