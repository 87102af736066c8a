//! A loaded model: configuration, weight matrices (borrowed from the file mapping), norms, and
//! the RoPE table. Built once per mapping and shared (`Arc`) by every context that uses it.

use std::sync::Arc;

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
}

/// One transformer block's weights.
#[derive(Debug)]
pub struct Layer {
    /// Attention RMSNorm gain `[d]`.
    pub attn_norm: Vec<f32>,
    /// `[d, d]`
    pub wq: Mat,
    /// `[kvd, d]`
    pub wk: Mat,
    /// `[kvd, d]`
    pub wv: Mat,
    /// `[d, d]`
    pub wo: Mat,
    /// FFN RMSNorm gain `[d]`.
    pub ffn_norm: Vec<f32>,
    /// `[h, d]`
    pub w_gate: Mat,
    /// `[h, d]`
    pub w_up: Mat,
    /// `[d, h]`
    pub w_down: Mat,
}

/// Where a model's tensors are: implemented for GGUF files and `.qorus` files.
pub trait TensorSource {
    /// The tensor called `name` (GGUF naming) as (type, rows, cols, bytes); `Ok(None)` if the file
    /// has no such tensor, an error naming the tensor if it is there but unusable (a type qorus
    /// does not support, data outside the file).
    fn tensor(&self, name: &str) -> Result<Option<(WeightType, usize, usize, &[u8])>>;

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
    fn tensor(&self, name: &str) -> Result<Option<(WeightType, usize, usize, &[u8])>> {
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

    fn file_backed(&self) -> bool {
        true
    }
}

/// The whole model.
pub struct Model {
    /// Hyperparameters.
    pub config: Config,
    /// Token embeddings `[V, d]`.
    pub tok_embd: Mat,
    /// Final RMSNorm gain.
    pub output_norm: Vec<f32>,
    /// LM head `[V, d]` (the embedding matrix when tied).
    pub output: Mat,
    /// Whether `output` is the embedding matrix.
    pub tied_output: bool,
    /// Transformer blocks.
    pub layers: Vec<Layer>,
    /// RoPE cosines, `max_seq_len x head_dim/2`, computed as ggml does.
    pub rope_cos: Vec<f32>,
    /// RoPE sines, same layout.
    pub rope_sin: Vec<f32>,
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

fn vector_f32(src: &dyn TensorSource, name: &str, len: usize) -> Result<Vec<f32>> {
    let (ty, rows, cols, bytes) = src
        .tensor(name)?
        .ok_or_else(|| Error::InvalidConfig(format!("missing tensor {name}")))?;
    if rows * cols != len {
        return Err(Error::InvalidConfig(format!(
            "{name}: {rows}x{cols}, expected {len} values"
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

fn matrix(src: &dyn TensorSource, name: &str, rows: usize, cols: usize) -> Result<Mat> {
    let (ty, r, c, bytes) = src
        .tensor(name)?
        .ok_or_else(|| Error::InvalidConfig(format!("missing tensor {name}")))?;
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
    if (bytes.as_ptr() as usize) % 2 != 0 && !matches!(ty, WeightType::QorusQ4_0) {
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

/// RoPE tables as ggml computes them for `rope_type = NORM` with no scaling: for position `p`,
/// `theta_0 = p` and `theta_{i+1} = theta_i * base^(-2/hd)` in f32.
pub fn rope_tables(config: &Config) -> (Vec<f32>, Vec<f32>) {
    let hd = config.head_dim();
    let half = hd / 2;
    let theta_scale = config.rope_base.powf(-2.0 / hd as f32);
    let n = config.max_seq_len * half;
    let (mut cos, mut sin) = (vec![0f32; n], vec![0f32; n]);
    for p in 0..config.max_seq_len {
        let mut theta = p as f32;
        for i in 0..half {
            cos[p * half + i] = theta.cos();
            sin[p * half + i] = theta.sin();
            theta *= theta_scale;
        }
    }
    (cos, sin)
}

impl Model {
    /// Builds a model from tensors named as in GGUF (`token_embd.weight`, `blk.N.attn_q.weight`,
    /// ...), checking every shape against `config`. `backing` owns the memory `src` points into.
    pub fn from_source(
        config: Config,
        src: &dyn TensorSource,
        backing: Arc<dyn Send + Sync>,
    ) -> Result<Model> {
        config.validate()?;
        let (d, h, kvd, v) = (
            config.dim,
            config.hidden_dim,
            config.kv_dim(),
            config.vocab_size,
        );
        let mut tok_embd = matrix(src, "token_embd.weight", v, d)?;
        let mut output = match src.tensor("output.weight")? {
            Some(_) => Some(matrix(src, "output.weight", v, d)?),
            None => None,
        };
        let output_norm = vector_f32(src, "output_norm.weight", d)?;
        let mut layers = Vec::with_capacity(config.n_layers);
        for l in 0..config.n_layers {
            let n = |s: &str| format!("blk.{l}.{s}.weight");
            layers.push(Layer {
                attn_norm: vector_f32(src, &n("attn_norm"), d)?,
                wq: matrix(src, &n("attn_q"), d, d)?,
                wk: matrix(src, &n("attn_k"), kvd, d)?,
                wv: matrix(src, &n("attn_v"), kvd, d)?,
                wo: matrix(src, &n("attn_output"), d, d)?,
                ffn_norm: vector_f32(src, &n("ffn_norm"), d)?,
                w_gate: matrix(src, &n("ffn_gate"), h, d)?,
                w_up: matrix(src, &n("ffn_up"), h, d)?,
                w_down: matrix(src, &n("ffn_down"), d, h)?,
            });
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
            pack_all(&mut mats, src.file_backed());
        }
        let (output, tied_output) = match output {
            Some(o) => (o, false),
            None => (tok_embd.clone(), true),
        };
        let (rope_cos, rope_sin) = rope_tables(&config);
        Ok(Model {
            config,
            tok_embd,
            output_norm,
            output,
            tied_output,
            layers,
            rope_cos,
            rope_sin,
            _backing: backing,
        })
    }

    /// Loads a LLaMA GGUF model from its mapping.
    pub fn from_gguf(map: Arc<memmap2::Mmap>, gguf: &Gguf, config: Config) -> Result<Model> {
        let src = GgufTensors {
            gguf,
            file: &map[..],
        };
        Model::from_source(config, &src, map.clone())
    }

    /// Opens a GGUF or `.qorus` model file (Rust API).
    pub fn open(path: &std::path::Path) -> Result<Arc<Model>> {
        let mapped = crate::format::map_file(path, false)?;
        crate::format::build_model(&mapped, None)
    }
}
