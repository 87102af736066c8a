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
use crate::format::MappedFile;
use crate::memory::{arena_alloc, arena_slice, is_mapped, AlignedBuf};
use crate::quant::WeightType;

/// The C dtype of a weight type.
pub fn dtype_of(ty: WeightType) -> q_dtype {
    ty.dtype()
}

/// The engine configuration of a `q_llama_config` for a model of `file`: the head dimension,
/// which `q_llama_config` cannot express, is the file's (`MappedFile::head_dim_for`).
fn config_of(c: &q_llama_config, file: Option<&MappedFile>) -> Config {
    Config {
        vocab_size: c.vocab_size as usize,
        dim: c.dim as usize,
        hidden_dim: c.hidden_dim as usize,
        n_layers: c.n_layers as usize,
        n_heads: c.n_heads as usize,
        n_kv_heads: c.n_kv_heads as usize,
        head_dim: match file {
            Some(f) => f.head_dim_for(c.dim as usize, c.n_heads as usize),
            None => Config::split_heads(c.dim as usize, c.n_heads as usize),
        },
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

/// A 1-D view of a norm vector the engine holds as `v`: it points at the tensor's bytes in the
/// weights (`in_weights`, as the original's views do) when those hold exactly `v`, else at the
/// engine's copy.
fn vec_view(
    ctx: &mut q_context,
    name: &str,
    v: &[f32],
    in_weights: Option<&[u8]>,
) -> Result<*mut q_tensor> {
    let same = in_weights.filter(|b| {
        b.len() == 4 * v.len()
            && b.chunks_exact(4)
                .zip(v)
                .all(|(c, x)| c == x.to_le_bytes().as_slice())
    });
    let data = same.map_or(v.as_ptr() as *const u8, |b| b.as_ptr());
    // 1-D views: spec layout [n, 1, 1, 1] with nb = [4, 4, 4, 4].
    let p = new_view(ctx, name, data, WeightType::F32, v.len(), 1)?;
    // SAFETY: just written by new_view.
    unsafe { (*p).nb = [4, 4, 4, 4] };
    Ok(p)
}

/// The bytes of the F32 tensor `name` (GGUF naming) in the context's weights, if it is there.
fn f32_tensor<'a>(
    weights: &Weights,
    image: &'a [u8],
    qorus: Option<&crate::format::qorus_file::QorusLayout>,
    name: &str,
) -> Option<&'a [u8]> {
    match (weights, qorus) {
        (_, Some(layout)) => {
            let t = layout.get(name)?;
            (t.ty == WeightType::F32).then(|| image.get(t.range()))?
        }
        (Weights::Mapping(file), None) => {
            let g = file.gguf.as_ref()?;
            let t = g.tensor(name)?;
            (t.ty == Some(WeightType::F32))
                .then(|| image.get(t.file_offset..t.file_offset.checked_add(t.size)?))?
        }
        (Weights::Caller, None) => None,
    }
}

/// Where a context's weights are.
enum Weights {
    /// A live mapping made by `q_init_memory`.
    Mapping(Arc<MappedFile>),
    /// Memory the caller provides: `weights_size` bytes at `weights_mmap`, a `.qorus` image.
    Caller,
}

/// Decides what `ctx->weights_mmap` names before anything reads the header: one of the library's
/// live mappings (whose size `weights_size` may not exceed); a mapping the library released (a
/// stale copy of a freed context), refused; or else caller memory, whose `weights_size` bytes
/// must be mapped. The header's 64 bytes must be mapped memory as well.
fn weights_of(ctx: &q_context) -> Result<Weights> {
    let w = match registry::mapping(ctx.weights_mmap) {
        Some(file) => {
            if ctx.weights_size > file.map.len() {
                return Err(Error::InvalidArg(format!(
                    "weights_size {} exceeds the {}-byte mapping",
                    ctx.weights_size,
                    file.map.len()
                )));
            }
            Weights::Mapping(file)
        }
        None if registry::was_released(ctx.weights_mmap) => {
            return Err(Error::InvalidArg(
                "weights_mmap is a mapping q_free_memory released (a stale copy of a freed \
                 context)"
                    .into(),
            ))
        }
        None => {
            if !is_mapped(ctx.weights_mmap, ctx.weights_size) {
                return Err(Error::InvalidArg(format!(
                    "the {} bytes at weights_mmap are not mapped memory (a mapping \
                     q_free_memory released, i.e. a stale copy of a freed context, or a bad \
                     pointer or size)",
                    ctx.weights_size
                )));
            }
            Weights::Caller
        }
    };
    if !is_mapped(
        ctx.header as *const std::ffi::c_void,
        Q_HEADER_SIZE as usize,
    ) {
        return Err(Error::InvalidArg(
            "ctx->header does not point to mapped memory".into(),
        ));
    }
    Ok(w)
}

/// The header checks of spec §3.4.1 steps 2-3, in order.
fn check_header(h: &q_model_header) -> Result<()> {
    if h.magic != Q_MAGIC {
        return Err(Error::InvalidMagic(format!("header magic {:#010x}", {
            h.magic
        })));
    }
    if h.n_layers == 0 || h.dim == 0 || h.vocab_size == 0 || h.n_heads == 0 || h.n_kv_heads == 0 {
        return Err(Error::InvalidConfig("zero dimension in the header".into()));
    }
    if !h.dim.is_multiple_of(32) || !h.hidden_dim.is_multiple_of(32) {
        return Err(Error::InvalidConfig(
            "dim and hidden_dim must be multiples of 32".into(),
        ));
    }
    Ok(())
}

/// A `weights_size` the caller shrank below the file size must still hold every tensor the
/// header describes (spec §3.4.1 step 5: `Q_ERR_INVALID_CONFIG`, as the original).
fn check_mapping_size(file: &MappedFile, h: &q_model_header, size: usize) -> Result<()> {
    match &file.gguf {
        None => crate::format::qorus_file::layout(h, size).map(|_| ()),
        Some(g) => {
            let need = g
                .tensors
                .iter()
                .map(|t| t.file_offset.saturating_add(t.size))
                .max()
                .unwrap_or(0);
            if need > size {
                return Err(Error::InvalidConfig(format!(
                    "weights_size {size} is smaller than the {need} bytes the GGUF's tensors span"
                )));
            }
            Ok(())
        }
    }
}

/// Builds the engine model over a caller's `.qorus` image and registers it for `llama_forward`.
fn caller_model(ctx: &q_context, h: &q_model_header, config: Config) -> Result<Arc<Model>> {
    // SAFETY: `weights_of` checked that these bytes are mapped; the caller's contract is that
    // they are its buffer, valid while the model is used. Nothing past the header is read until
    // `model_over_image` has validated the layout against `weights_size`.
    let image =
        unsafe { std::slice::from_raw_parts(ctx.weights_mmap as *const u8, ctx.weights_size) };
    // SAFETY: as above: the buffer outlives the model by the caller's contract.
    let engine = Arc::new(unsafe { crate::format::model_over_image(image, h, config)? });
    registry::set_caller_model(ctx.weights_mmap, ctx.weights_size, engine.clone());
    Ok(engine)
}

fn build(ctx: &mut q_context, model: &mut q_llama_model) -> Result<()> {
    if ctx.weights_mmap.is_null() || ctx.header.is_null() {
        return Err(Error::NullPtr(
            "context has no model mapping (call q_init_memory first)",
        ));
    }
    // First what the weights are: a stale copy of a freed context names a mapping (and, for
    // GGUF, a header) that no longer exists, and must be refused before its header is read.
    let weights = weights_of(ctx)?;
    // SAFETY: `weights_of` checked that the header's bytes are mapped (it may be anywhere).
    let header = unsafe { std::ptr::read_unaligned(ctx.header) };
    check_header(&header)?;
    let mut config = Config::from_header(&header);
    if let Weights::Mapping(file) = &weights {
        config.head_dim = file.head_dim_for(config.dim, config.n_heads);
    }
    model.config = c_config(&config);
    model.ctx = ctx as *mut q_context;
    config.validate()?;
    let engine: Arc<Model> = match &weights {
        Weights::Mapping(file) => {
            check_mapping_size(file, &header, ctx.weights_size)?;
            crate::format::build_model(file, Some(config))?
        }
        Weights::Caller => caller_model(ctx, &header, config)?,
    };

    // The weights' own norm vectors, for the views (validated above against weights_size).
    // SAFETY: a live mapping of at least weights_size bytes, or caller memory checked by
    // `weights_of` (the caller's contract: valid for weights_size bytes).
    let image =
        unsafe { std::slice::from_raw_parts(ctx.weights_mmap as *const u8, ctx.weights_size) };
    let qorus_layout = match &weights {
        Weights::Mapping(file) if file.gguf.is_some() => None,
        _ => crate::format::qorus_file::layout(&header, image.len()).ok(),
    };
    let norm = |name: &str| f32_tensor(&weights, image, qorus_layout.as_ref(), name);

    let l_count = config.n_layers;
    model.token_embd = mat_view(ctx, "token_embd.weight", &engine.tok_embd)?;
    let n = "output_norm.weight";
    model.output_norm = vec_view(ctx, n, &engine.output_norm, norm(n))?;
    model.output = mat_view(ctx, "output.weight", &engine.output)?;
    // SAFETY: arena memory of the right size; q_llama_layer is plain data (zeroed below).
    let layers: &mut [q_llama_layer] = unsafe { arena_slice(ctx, l_count, "layer array")? };
    // SAFETY: zeroing plain data.
    unsafe { std::ptr::write_bytes(layers.as_mut_ptr(), 0, l_count) };
    for (i, (lv, lw)) in layers.iter_mut().zip(&engine.layers).enumerate() {
        let (an, fname) = (
            format!("blk.{i}.attn_norm.weight"),
            format!("blk.{i}.ffn_norm.weight"),
        );
        lv.layer_idx = i as u32;
        lv.attn_norm = vec_view(ctx, "attn_norm.weight", &lw.attn_norm, norm(&an))?;
        lv.wq = mat_view(ctx, "wq.weight", &lw.wq)?;
        lv.wk = mat_view(ctx, "wk.weight", &lw.wk)?;
        lv.wv = mat_view(ctx, "wv.weight", &lw.wv)?;
        lv.wo = mat_view(ctx, "wo.weight", &lw.wo)?;
        lv.ffn_norm = vec_view(ctx, "ffn_norm.weight", &lw.ffn_norm, norm(&fname))?;
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
/// weights is built (or reused) and every `q_tensor` points into those weights.
///
/// The weights are either a mapping made by `q_init_memory` or, as in the original, any buffer
/// the caller sets: `weights_mmap` / `weights_size` / `header` of a hand-built context, a
/// `.qorus` image of `weights_size` bytes (the header may live elsewhere). Checks, in order:
/// NULL `ctx`, `model`, `weights_mmap` or `header` → `Q_ERR_NULL_PTR`; `weights_mmap` a mapping
/// `q_free_memory` released (a stale copy of a freed context), `weights_size` larger than the
/// library's mapping, or caller memory that is not mapped → `Q_ERR_INVALID_ARG`; bad magic →
/// `Q_ERR_INVALID_MAGIC`; a zero `n_layers`, `dim`, `vocab_size`, `n_heads` or `n_kv_heads`,
/// `dim` or `hidden_dim` not multiples of 32 → `Q_ERR_INVALID_CONFIG`; `model->config` and
/// `model->ctx` are then set; extra validation (spec §5.3: `dim % n_heads`, `n_heads %
/// n_kv_heads`, `head_dim % 8`, `max_seq_len` 0, a non-positive RoPE base, GGUF tensor shapes)
/// → `Q_ERR_INVALID_CONFIG`; tensors the header describes that do not fit in `weights_size`
/// (a caller buffer, or a library mapping whose `weights_size` was shrunk) →
/// `Q_ERR_INVALID_CONFIG`; arena exhausted → `Q_ERR_ARENA_OOM`. Nothing past the header is read
/// before the image's layout is validated against `weights_size`.
///
/// Over a caller buffer the engine reads the weights at build time (its repacked copies of the
/// matrices are made then): rebuild after changing them. The engine model is kept until the
/// next build over the same buffer or `q_free_memory` on a context naming it.
///
/// # Safety
/// `ctx` and `model` must be NULL or valid, writable, properly aligned structs; `ctx->header`
/// must be NULL or point to 64 readable bytes; a `weights_mmap` that is not the library's
/// mapping must point to `weights_size` readable bytes that stay valid and unchanged while
/// the model is used; `ctx`'s arena fields must describe the library's arena.
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
    let mapping = registry::mapping(bctx.weights_mmap);
    let config = config_of(&model.config, mapping.as_deref());
    let found = match mapping {
        Some(file) if bctx.weights_size <= file.map.len() => {
            let cache = file.models.lock().unwrap_or_else(|p| p.into_inner());
            cache.iter().find(|m| m.config == config).cloned()
        }
        Some(_) => {
            return Err(Error::InvalidArg(
                "weights_size exceeds the model mapping".into(),
            ))
        }
        None => registry::caller_model(bctx.weights_mmap, bctx.weights_size, &config),
    };
    found.ok_or_else(|| {
        Error::InvalidArg(
            "no model was built over this context's weights with this configuration \
             (weights freed, or model->config edited since llama_build_graph)"
                .into(),
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
    // The cache's element type: F32 (spec layout) unless q_alloc_kv_cache_typed made it.
    let ty = crate::ffi::kv_cache::kv_type_of(ctx.kv_buffer);
    let need = kv_layout(&engine).bytes(ty)?;
    if ctx.kv_size < need {
        return Err(Error::InvalidSize(format!(
            "{} KV cache has {} bytes, the model needs {need}",
            ty.name(),
            ctx.kv_size
        )));
    }
    Ok(engine)
}

/// The KV cache of a context for a model.
pub(crate) fn context_kv(ctx: &q_context, m: &Model) -> Result<KvCache> {
    let ty = crate::ffi::kv_cache::kv_type_of(ctx.kv_buffer);
    // SAFETY: kv_buffer/kv_size were set by q_alloc_kv_cache(_typed) (caller contract) and
    // checked by check_forward.
    unsafe { KvCache::from_raw_typed(ctx.kv_buffer as *mut u8, ctx.kv_size, kv_layout(m), ty) }
}

/// The KV cache geometry of a model (its `max_seq_len` positions).
fn kv_layout(m: &Model) -> KvLayout {
    let c = &m.config;
    KvLayout {
        n_layers: c.n_layers,
        n_kv_heads: c.n_kv_heads,
        max_seq: c.max_seq_len,
        head_dim: c.head_dim(),
    }
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
        if !(tokens as usize).is_multiple_of(4) {
            return Err(Error::Misaligned("tokens".into()));
        }
        let toks = std::slice::from_raw_parts(tokens, seq_len as usize);
        let engine = check_forward(model, ctx, toks, pos)?;
        let v = engine.config.vocab_size;
        if (logits as usize).is_multiple_of(4) {
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
