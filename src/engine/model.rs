//! A loaded model: configuration, family description, weight matrices (borrowed from the file
//! mapping), norms, biases and the RoPE tables. Built once per mapping and shared (`Arc`) by every
//! context that uses it.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::Arc;

use crate::engine::arch::Arch;
use crate::engine::config::Config;
use crate::error::{Error, Result};
use crate::format::gguf::Gguf;
use crate::kernels::packed::{self, AlignedBuf, PackedRef};
use crate::kernels::MatRef;
use crate::quant::WeightType;

/// A weight matrix: `rows` x `cols` values of type `ty`, rows contiguous, inside memory that the
/// owning `Model` keeps alive (the file mapping or an owned buffer), and optionally the same
/// matrix repacked for the SIMD kernels (`kernels::packed`), which the forward pass then uses.
/// The original data stays what C views point at (spec's public layout).
#[derive(Debug, Clone)]
pub struct Mat {
    /// Storage format.
    pub ty: WeightType,
    ptr: *const u8,
    len: usize,
    /// Output dimension.
    pub rows: usize,
    /// Input dimension.
    pub cols: usize,
    /// The repacked copy used for compute, if any: (buffer, offset, length).
    packed: Option<(Arc<AlignedBuf>, usize, usize)>,
}

// SAFETY: `Mat` points into read-only memory owned by its `Model` (an `Arc<Mmap>` or a boxed
// buffer) that lives as long as the model; it is never written through.
unsafe impl Send for Mat {}
unsafe impl Sync for Mat {}

impl Mat {
    /// The matrix as the kernels take it.
    pub fn as_ref(&self) -> MatRef<'_> {
        // SAFETY: see the Send/Sync note: the memory outlives `self`'s model.
        MatRef {
            ty: self.ty,
            data: unsafe { std::slice::from_raw_parts(self.ptr, self.len) },
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// The repacked matrix, if this one was repacked.
    pub fn packed(&self) -> Option<PackedRef<'_>> {
        self.packed.as_ref().map(|(buf, off, len)| PackedRef {
            ty: self.ty,
            data: &buf.as_slice()[*off..*off + *len],
            rows: self.rows,
            cols: self.cols,
        })
    }

    /// Start of the data (for C views).
    pub fn data_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.len / self.rows.max(1)
    }

    /// Rows `r0 .. r0 + n` of this (unpacked) matrix, as a matrix of its own over the same
    /// memory: how fused tensors (`attn_qkv`, Phi-3's gate+up `ffn_up`) are split at load.
    fn rows_view(&self, r0: usize, n: usize) -> Mat {
        let rb = self.row_bytes();
        debug_assert!(r0 + n <= self.rows && self.packed.is_none());
        Mat {
            ty: self.ty,
            // SAFETY: rows r0..r0+n lie inside this matrix's memory.
            ptr: unsafe { self.ptr.add(r0 * rb) },
            len: n * rb,
            rows: n,
            cols: self.cols,
            packed: None,
        }
    }
}

/// One transformer block's weights (`qd = n_heads * head_dim`, `kvd = n_kv_heads * head_dim`).
/// The optional parts are present as the family ([`Arch`]) and the file say.
#[derive(Debug)]
pub struct Layer {
    /// Attention RMSNorm gain `[d]`.
    pub attn_norm: Vec<f32>,
    /// `[qd, d]`
    pub wq: Mat,
    /// `[kvd, d]`
    pub wk: Mat,
    /// `[kvd, d]`
    pub wv: Mat,
    /// `[d, qd]`
    pub wo: Mat,
    /// Q, K, V biases `[qd]`, `[kvd]`, `[kvd]` (Qwen2; optional elsewhere).
    pub bq: Option<Vec<f32>>,
    /// See `bq`.
    pub bk: Option<Vec<f32>>,
    /// See `bq`.
    pub bv: Option<Vec<f32>>,
    /// Attention output bias `[d]` (llama, optional).
    pub bo: Option<Vec<f32>>,
    /// Per-head RMSNorm gains of Q and K `[hd]` (Qwen3, Gemma 3).
    pub q_norm: Option<Vec<f32>>,
    /// See `q_norm`.
    pub k_norm: Option<Vec<f32>>,
    /// RMSNorm of the attention output before the residual add `[d]` (Gemma 3).
    pub post_attn_norm: Option<Vec<f32>>,
    /// FFN RMSNorm gain `[d]`.
    pub ffn_norm: Vec<f32>,
    /// `[h, d]`
    pub w_gate: Mat,
    /// `[h, d]`
    pub w_up: Mat,
    /// `[d, h]`
    pub w_down: Mat,
    /// FFN biases `[h]`, `[h]`, `[d]` (llama, optional).
    pub b_gate: Option<Vec<f32>>,
    /// See `b_gate`.
    pub b_up: Option<Vec<f32>>,
    /// See `b_gate`.
    pub b_down: Option<Vec<f32>>,
    /// RMSNorm of the FFN output before the residual add `[d]` (Gemma 3).
    pub post_ffn_norm: Option<Vec<f32>>,
}

/// A tensor as a source holds it: (type, rows, cols, bytes).
pub type TensorView<'a> = (WeightType, usize, usize, &'a [u8]);

/// Where a model's tensors are: implemented for GGUF files and `.qorus` files.
pub trait TensorSource {
    /// The tensor called `name` (GGUF naming) as (type, rows, cols, bytes); `Ok(None)` if the file
    /// has no such tensor, an error naming the tensor if it is there but unusable (a type qorus
    /// does not support, data outside the file).
    fn tensor(&self, name: &str) -> Result<Option<TensorView<'_>>>;

    /// Every tensor name the source holds (those the model does not use are refused), or
    /// `None` when the source has a fixed set (`.qorus`).
    fn names(&self) -> Option<Vec<String>> {
        None
    }

    /// Whether the tensor bytes lie in a read-only private file mapping, whose pages may be
    /// released (MADV_DONTNEED) once a matrix is repacked. Default: no.
    fn file_backed(&self) -> bool {
        false
    }
}

/// A GGUF file's tensors inside its mapping.
pub struct GgufTensors<'a> {
    /// The parsed directory.
    pub gguf: &'a Gguf,
    /// The whole file.
    pub file: &'a [u8],
}

impl TensorSource for GgufTensors<'_> {
    fn tensor(&self, name: &str) -> Result<Option<TensorView<'_>>> {
        let Some(t) = self.gguf.tensor(name) else {
            return Ok(None);
        };
        let ty = t.ty.ok_or_else(|| {
            Error::InvalidDtype(format!(
                "tensor {name}: type {} (ggml type {}) is not supported",
                WeightType::ggml_id_name(t.ggml_type),
                t.ggml_type
            ))
        })?;
        let (rows, cols) = t.rows_cols();
        let bytes = self.gguf.tensor_bytes(self.file, t)?;
        Ok(Some((ty, rows as usize, cols as usize, bytes)))
    }

    fn names(&self) -> Option<Vec<String>> {
        Some(self.gguf.tensors.iter().map(|t| t.name.clone()).collect())
    }

    fn file_backed(&self) -> bool {
        true
    }
}

/// RoPE cosines and sines for every position, `max_seq_len x head_dim/2`.
#[derive(Debug, Clone, Default)]
pub struct RopeTable {
    /// Cosines (times the attention factor).
    pub cos: Vec<f32>,
    /// Sines (times the attention factor).
    pub sin: Vec<f32>,
}

/// The whole model.
pub struct Model {
    /// Hyperparameters.
    pub config: Config,
    /// The family description the forward pass follows.
    pub arch: Arch,
    /// Token embeddings `[V, d]`.
    pub tok_embd: Mat,
    /// Final RMSNorm gain.
    pub output_norm: Vec<f32>,
    /// LM head `[V, d]` (the embedding matrix when tied).
    pub output: Mat,
    /// LM head bias `[V]` (Qwen2, optional).
    pub output_bias: Option<Vec<f32>>,
    /// Whether `output` is the embedding matrix.
    pub tied_output: bool,
    /// Transformer blocks.
    pub layers: Vec<Layer>,
    /// RoPE of the global-attention layers (with the `rope_freqs` or short factors).
    pub rope: RopeTable,
    /// RoPE of the sliding-window layers (their own base), if any.
    pub rope_swa: Option<RopeTable>,
    /// RoPE with the long factors, used when the context exceeds `arch.n_ctx_orig`.
    pub rope_long: Option<RopeTable>,
    /// Keeps the memory the matrices point into alive.
    _backing: Arc<dyn Send + Sync>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Reads tensors from a source and remembers which it used, so that a tensor the model does not
/// use can be refused by name.
struct Loader<'a> {
    src: &'a dyn TensorSource,
    used: RefCell<HashSet<String>>,
}

impl Loader<'_> {
    /// Whether the source has `name` (an error if it is there but unusable).
    fn has(&self, name: &str) -> Result<bool> {
        Ok(self.src.tensor(name)?.is_some())
    }

    fn take(&self, name: &str) -> Result<(WeightType, usize, usize, &[u8])> {
        let t = self
            .src
            .tensor(name)?
            .ok_or_else(|| Error::InvalidConfig(format!("missing tensor {name}")))?;
        self.used.borrow_mut().insert(name.to_string());
        Ok(t)
    }

    /// A vector of `len` values, dequantized to f32.
    fn vector(&self, name: &str, len: usize) -> Result<Vec<f32>> {
        let (ty, rows, cols, bytes) = self.take(name)?;
        if rows * cols != len || rows != 1 {
            return Err(Error::InvalidConfig(format!(
                "{name}: {rows}x{cols}, expected {len} values"
            )));
        }
        if ty.row_bytes(cols) != Some(bytes.len()) {
            return Err(Error::InvalidConfig(format!(
                "{name}: {} bytes for {len} {} values",
                bytes.len(),
                ty.name()
            )));
        }
        let mut out = vec![0f32; len];
        let m = MatRef {
            ty,
            data: bytes,
            rows: 1,
            cols: len,
        };
        crate::kernels::dequantize_row(m, 0, &mut out);
        Ok(out)
    }

    /// The vector `name` if the file has it.
    fn opt_vector(&self, name: &str, len: usize) -> Result<Option<Vec<f32>>> {
        if self.has(name)? {
            self.vector(name, len).map(Some)
        } else {
            Ok(None)
        }
    }

    fn matrix(&self, name: &str, rows: usize, cols: usize) -> Result<Mat> {
        let (ty, r, c, bytes) = self.take(name)?;
        if (r, c) != (rows, cols) {
            return Err(Error::InvalidConfig(format!(
                "{name}: {r}x{c}, expected {rows}x{cols}"
            )));
        }
        let need = ty
            .row_bytes(cols)
            .and_then(|rb| rb.checked_mul(rows))
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "{name}: {cols} columns is not whole {} blocks",
                    ty.name()
                ))
            })?;
        if bytes.len() != need {
            return Err(Error::InvalidConfig(format!(
                "{name}: {} bytes, expected {need}",
                bytes.len()
            )));
        }
        if !(bytes.as_ptr() as usize).is_multiple_of(2) && !matches!(ty, WeightType::QorusQ4_0) {
            return Err(Error::InvalidConfig(format!("{name}: misaligned data")));
        }
        Ok(Mat {
            ty,
            ptr: bytes.as_ptr(),
            len: bytes.len(),
            rows,
            cols,
            packed: None,
        })
    }

    /// Refuses any tensor of the source that was not used (an unknown feature).
    fn check_all_used(&self, arch: &Arch) -> Result<()> {
        let Some(names) = self.src.names() else {
            return Ok(());
        };
        let used = self.used.borrow();
        let unused: Vec<&String> = names.iter().filter(|n| !used.contains(*n)).collect();
        if let Some(first) = unused.first() {
            return Err(Error::InvalidConfig(format!(
                "tensor {first} is not used by qorus's {} model (an unsupported feature){}",
                arch.family.name(),
                if unused.len() > 1 {
                    format!(", nor {} other tensors", unused.len() - 1)
                } else {
                    String::new()
                }
            )));
        }
        Ok(())
    }
}

/// Repacks every packable matrix into one buffer (`kernels::packed`), and when the tensors lie
/// in the file mapping releases their pages, so the process holds the weights once. Failing to
/// allocate leaves the matrices unpacked (the plain kernels still work).
fn pack_all(mats: &mut [&mut Mat], file_backed: bool) {
    if !repack_enabled() {
        return;
    }
    let mut total = 0usize;
    let mut offs = Vec::with_capacity(mats.len());
    for m in mats.iter() {
        let n = packed::packed_bytes(m.ty, m.rows, m.cols);
        offs.push((total, n));
        total += (n + 63) & !63;
    }
    if total == 0 {
        return;
    }
    let Some(mut buf) = AlignedBuf::zeroed(total) else {
        return;
    };
    let mut ok = vec![false; mats.len()];
    for (i, m) in mats.iter().enumerate() {
        let (off, n) = offs[i];
        if n == 0 {
            continue;
        }
        let src = m.as_ref();
        ok[i] = packed::pack_into(src, &mut buf.as_mut_slice()[off..off + n]).is_some();
        if ok[i] && file_backed {
            release_pages(src.data);
        }
    }
    let buf = Arc::new(buf);
    for (i, m) in mats.iter_mut().enumerate() {
        if ok[i] {
            m.packed = Some((buf.clone(), offs[i].0, offs[i].1));
        }
    }
}

/// Whether matrices are repacked at build (default yes; `QORUS_REPACK=0` turns it off, for
/// benchmarks).
fn repack_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("QORUS_REPACK").map_or(true, |v| v.trim() != "0"))
}

/// Tells the kernel that the whole pages inside `bytes` (a read-only file mapping whose matrix
/// was just repacked) are not needed now, so the process does not hold the model twice. They
/// are read back from the file if a C view touches them. Must only be called on such a
/// mapping (on anonymous memory the pages would read back as zeros). A no-op on other systems.
fn release_pages(bytes: &[u8]) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let page = if page > 0 { page as usize } else { 4096 };
        let start = (bytes.as_ptr() as usize).div_ceil(page) * page;
        let end = (bytes.as_ptr() as usize + bytes.len()) / page * page;
        if end > start {
            // SAFETY: the range lies inside `bytes`, i.e. inside the model's read-only private
            // file mapping (never written), whose pages MADV_DONTNEED only drops from memory:
            // later reads fault them back from the file with the same content. Only called for
            // sources that say they are file-backed (`TensorSource::file_backed`).
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = bytes;
}

/// RoPE tables as ggml computes them (`ggml_rope_cache_init` / `rope_yarn` without YaRN): for
/// position `p`, `theta_0 = p` and `theta_{i+1} = theta_i * base^(-2/hd)` in f32; pair `i` is
/// rotated by `freq_scale * (theta_i / factors[i])`, and its cosine and sine are multiplied by
/// `mscale`. With no factors and scales of 1 this is the plain LLaMA table, bit for bit.
pub fn rope_table(
    n_pos: usize,
    hd: usize,
    base: f32,
    freq_scale: f32,
    factors: Option<&[f32]>,
    mscale: f32,
) -> RopeTable {
    let half = hd / 2;
    let theta_scale = base.powf(-2.0 / hd as f32);
    let n = n_pos * half;
    let (mut cos, mut sin) = (vec![0f32; n], vec![0f32; n]);
    for p in 0..n_pos {
        let mut theta = p as f32;
        for i in 0..half {
            let ff = factors.map_or(1.0, |f| f[i]);
            let t = freq_scale * (theta / ff);
            cos[p * half + i] = t.cos() * mscale;
            sin[p * half + i] = t.sin() * mscale;
            theta *= theta_scale;
        }
    }
    RopeTable { cos, sin }
}

/// The plain LLaMA RoPE tables of `config` (no scaling): (cosines, sines).
pub fn rope_tables(config: &Config) -> (Vec<f32>, Vec<f32>) {
    let t = rope_table(
        config.max_seq_len,
        config.head_dim(),
        config.rope_base,
        1.0,
        None,
        1.0,
    );
    (t.cos, t.sin)
}

impl Model {
    /// Builds a model from tensors named as in GGUF (`token_embd.weight`, `blk.N.attn_q.weight`,
    /// ...) following the family description `arch`, checking every shape against `config`, and
    /// refusing tensors the family does not use. `backing` owns the memory `src` points into.
    pub fn from_source(
        config: Config,
        arch: Arch,
        src: &dyn TensorSource,
        backing: Arc<dyn Send + Sync>,
    ) -> Result<Model> {
        Model::assemble(config, arch, src, backing, true)
    }

    /// Checks that `src` holds a model of `config` and `arch` the engine can run (every tensor
    /// found, of the right shape and a supported type, none left unused) without repacking the
    /// matrices or building the RoPE tables: what `qorus info` reports.
    pub fn check_source(config: Config, arch: Arch, src: &dyn TensorSource) -> Result<()> {
        Model::assemble(config, arch, src, Arc::new(()), false).map(|_| ())
    }

    /// [`Model::from_source`]; `full = false` stops after the checks (nothing repacked, empty
    /// RoPE tables).
    fn assemble(
        config: Config,
        arch: Arch,
        src: &dyn TensorSource,
        backing: Arc<dyn Send + Sync>,
        full: bool,
    ) -> Result<Model> {
        config.validate()?;
        if arch.swa_layers.len() != config.n_layers {
            return Err(Error::InvalidConfig(format!(
                "sliding-window pattern of {} layers for {} layers",
                arch.swa_layers.len(),
                config.n_layers
            )));
        }
        let ld = Loader {
            src,
            used: RefCell::new(HashSet::new()),
        };
        let opt = arch.optional;
        let (d, h, kvd, qd, hd, v) = (
            config.dim,
            config.hidden_dim,
            config.kv_dim(),
            config.q_dim(),
            config.head_dim(),
            config.vocab_size,
        );
        let mut tok_embd = ld.matrix("token_embd.weight", v, d)?;
        let mut output = match ld.has("output.weight")? {
            true => Some(ld.matrix("output.weight", v, d)?),
            false => None,
        };
        let output_bias = match opt.output_bias {
            true => ld.opt_vector("output.bias", v)?,
            false => None,
        };
        let output_norm = ld.vector("output_norm.weight", d)?;
        let factors = |name: &str, allowed: bool| -> Result<Option<Vec<f32>>> {
            match allowed {
                true => ld.opt_vector(name, hd / 2),
                false => Ok(None),
            }
        };
        let rope_freqs = factors("rope_freqs.weight", opt.rope_freqs)?;
        let rope_short = factors("rope_factors_short.weight", opt.rope_long_short)?;
        let rope_long = factors("rope_factors_long.weight", opt.rope_long_short)?;
        for f in [&rope_freqs, &rope_short, &rope_long].into_iter().flatten() {
            if let Some(bad) = f.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                return Err(Error::InvalidConfig(format!(
                    "RoPE frequency factor {bad} (must be finite and positive)"
                )));
            }
        }
        let mut layers = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            let n = |s: &str| format!("blk.{l}.{s}.weight");
            let b = |s: &str| format!("blk.{l}.{s}.bias");
            // Q, K, V: separate, or one fused `attn_qkv` split into row views.
            let (wq, wk, wv, bq, bk, bv) = if ld.has(&n("attn_qkv"))? {
                let qkv = ld.matrix(&n("attn_qkv"), qd + 2 * kvd, d)?;
                let (bq, bk, bv) = match ld.opt_vector(&b("attn_qkv"), qd + 2 * kvd)? {
                    Some(all) => (
                        Some(all[..qd].to_vec()),
                        Some(all[qd..qd + kvd].to_vec()),
                        Some(all[qd + kvd..].to_vec()),
                    ),
                    None => qkv_biases(&ld, l, qd, kvd)?,
                };
                (
                    qkv.rows_view(0, qd),
                    qkv.rows_view(qd, kvd),
                    qkv.rows_view(qd + kvd, kvd),
                    bq,
                    bk,
                    bv,
                )
            } else {
                let (bq, bk, bv) = qkv_biases(&ld, l, qd, kvd)?;
                (
                    ld.matrix(&n("attn_q"), qd, d)?,
                    ld.matrix(&n("attn_k"), kvd, d)?,
                    ld.matrix(&n("attn_v"), kvd, d)?,
                    bq,
                    bk,
                    bv,
                )
            };
            // Gate and up: separate, or Phi-3's one `ffn_up` of 2h rows (gate first).
            let (w_gate, w_up) = if arch.fused_gate_up {
                let gu = ld.matrix(&n("ffn_up"), 2 * h, d)?;
                (gu.rows_view(0, h), gu.rows_view(h, h))
            } else {
                (
                    ld.matrix(&n("ffn_gate"), h, d)?,
                    ld.matrix(&n("ffn_up"), h, d)?,
                )
            };
            let norm = |s: &str, len: usize, wanted: bool| -> Result<Option<Vec<f32>>> {
                match wanted {
                    true => ld.vector(&n(s), len).map(Some),
                    false => Ok(None),
                }
            };
            let bias = |s: &str, len: usize, allowed: bool| -> Result<Option<Vec<f32>>> {
                match allowed {
                    true => ld.opt_vector(&b(s), len),
                    false => Ok(None),
                }
            };
            layers.push(Layer {
                attn_norm: ld.vector(&n("attn_norm"), d)?,
                wq,
                wk,
                wv,
                wo: ld.matrix(&n("attn_output"), d, qd)?,
                bq,
                bk,
                bv,
                bo: bias("attn_output", d, opt.attn_out_bias)?,
                q_norm: norm("attn_q_norm", hd, arch.qk_norm)?,
                k_norm: norm("attn_k_norm", hd, arch.qk_norm)?,
                post_attn_norm: norm("post_attention_norm", d, arch.post_norms)?,
                ffn_norm: ld.vector(&n("ffn_norm"), d)?,
                w_gate,
                w_up,
                w_down: ld.matrix(&n("ffn_down"), d, h)?,
                b_gate: bias("ffn_gate", h, opt.ffn_bias && !arch.fused_gate_up)?,
                b_up: bias("ffn_up", h, opt.ffn_bias && !arch.fused_gate_up)?,
                b_down: bias("ffn_down", d, opt.ffn_bias)?,
                post_ffn_norm: norm("post_ffw_norm", d, arch.post_norms)?,
            });
        }
        ld.check_all_used(&arch)?;
        if arch.activation == crate::engine::arch::Activation::GeluTanh {
            crate::kernels::gelu::init();
        }
        {
            let mut mats: Vec<&mut Mat> = vec![&mut tok_embd];
            if let Some(o) = output.as_mut() {
                mats.push(o);
            }
            for l in layers.iter_mut() {
                mats.extend([
                    &mut l.wq,
                    &mut l.wk,
                    &mut l.wv,
                    &mut l.wo,
                    &mut l.w_gate,
                    &mut l.w_up,
                    &mut l.w_down,
                ]);
            }
            if full {
                pack_all(&mut mats, src.file_backed());
            }
        }
        let (output, tied_output) = match output {
            Some(o) => (o, false),
            None => (tok_embd.clone(), true),
        };
        let s = if full { config.max_seq_len } else { 0 };
        let table = |base: f32, scale: f32, f: Option<&Vec<f32>>| {
            rope_table(
                s,
                hd,
                base,
                scale,
                f.map(|f| f.as_slice()),
                arch.rope_attn_factor,
            )
        };
        let long_short = rope_long.is_some() || rope_short.is_some();
        let rope = table(
            config.rope_base,
            arch.rope_freq_scale,
            rope_freqs.as_ref().or(rope_short.as_ref()),
        );
        let rope_long =
            long_short.then(|| table(config.rope_base, arch.rope_freq_scale, rope_long.as_ref()));
        // llama.cpp: sliding-window layers use `rope_freq_base_train_swa` and a frequency scale
        // of 1, and no frequency factors.
        let rope_swa = (arch.sliding_window > 0 && arch.swa_layers.iter().any(|&w| w))
            .then(|| table(arch.rope_base_swa, 1.0, None));
        Ok(Model {
            config,
            arch,
            tok_embd,
            output_norm,
            output,
            output_bias,
            tied_output,
            layers,
            rope,
            rope_swa,
            rope_long,
            _backing: backing,
        })
    }

    /// Loads a GGUF model from its mapping (family description read from the file).
    pub fn from_gguf(map: Arc<memmap2::Mmap>, gguf: &Gguf, config: Config) -> Result<Model> {
        let arch = Arch::from_gguf(gguf, &config)?;
        let src = GgufTensors {
            gguf,
            file: &map[..],
        };
        Model::from_source(config, arch, &src, map.clone())
    }

    /// The RoPE table of layer `l` in a context of `n_ctx` positions (llama.cpp's
    /// `get_rope_freq_base` per layer and `get_rope_factors` by context length).
    pub fn rope_for(&self, l: usize, n_ctx: usize) -> &RopeTable {
        if self.arch.is_swa(l) {
            if let Some(t) = &self.rope_swa {
                return t;
            }
        }
        match &self.rope_long {
            Some(t) if n_ctx > self.arch.n_ctx_orig => t,
            _ => &self.rope,
        }
    }

    /// Opens a GGUF or `.qorus` model file (Rust API).
    pub fn open(path: &std::path::Path) -> Result<Arc<Model>> {
        let mapped = crate::format::map_file(path, false)?;
        crate::format::build_model(&mapped, None)
    }
}

/// The separate Q/K/V biases of layer `l` (all optional).
#[allow(clippy::type_complexity)]
fn qkv_biases(
    ld: &Loader<'_>,
    l: usize,
    qd: usize,
    kvd: usize,
) -> Result<(Option<Vec<f32>>, Option<Vec<f32>>, Option<Vec<f32>>)> {
    Ok((
        ld.opt_vector(&format!("blk.{l}.attn_q.bias"), qd)?,
        ld.opt_vector(&format!("blk.{l}.attn_k.bias"), kvd)?,
        ld.opt_vector(&format!("blk.{l}.attn_v.bias"), kvd)?,
    ))
}
