//! The original's `.qorus` model file (spec §4.1): a 64-byte `q_model_header`, then the tensors
//! back to back in a fixed order, each at a 64-byte-aligned offset and padded to a multiple of 64
//! (the last one too). There is no per-tensor metadata: everything follows from the header.
//!
//! Orientation (spec §5.3, normative): every matrix is `[out, in]` — `rows` outputs of `cols`
//! inputs, row-major, each row quantized in 32-value `.qorus` Q4_0 blocks along the input
//! dimension: `wq [d, d]`, `wk [kvd, d]`, `wv [kvd, d]`, `wo [d, d]`, `w_gate [h, d]`,
//! `w_up [h, d]`, `w_down [d, h]`. `token_embd` and `output` are F32 `[V, d]`, norms F32 `[d]`.
//!
//! Reader: [`layout`] validates a header against the file size exactly as `llama_build_graph`
//! does (spec §3.4.1 steps 2, 3 and 5) and returns the directory of tensors. Writer:
//! [`convert_gguf_to_qorus`].
//!
//! Converter decisions:
//! * Header version 2 with the GGUF's RMS epsilon, reserved words zero; `max_seq_len` is the
//!   GGUF's context length.
//! * The vocabulary is **not** padded to a multiple of 32: padded rows would produce logits of 0
//!   that the sampler could pick, and the C loader does not need it (SmolLM2's 49152 is a
//!   multiple of 32 anyway).
//! * A tied output (no `output.weight`) is written as a second copy of the embedding.
//! * Matrices are quantized with ggml's Q4_0 rule and an f32 scale (see
//!   [`crate::quant::reference`]); a ggml Q4_0 source is converted block by block without loss.
//! * GGUF LLaMA weights are already permuted by llama.cpp's converter for the interleaved RoPE
//!   pairing that `.qorus` models use, so no permutation is applied.
//! * A GGUF tensor the format cannot hold (biases, `rope_freqs`, ...) is an error rather than
//!   silently dropped; so are `dim`, `hidden_dim` or `kvd` not multiples of 32.

use std::io::Write;
use std::ops::Range;
use std::path::Path;

use crate::engine::Config;
use crate::error::{Error, Result};
use crate::ffi::types::{q_model_header, Q_MAGIC};
use crate::format::fileio::{map_input, OutFile};
use crate::format::gguf::Gguf;
use crate::quant::reference::transcode_q4_0_to_qorus;
use crate::quant::{dequantize_row, quantize_row, WeightType, QK};

/// Alignment of every tensor (and of the header size).
pub const ALIGN: usize = 64;
/// Size of the header; the first tensor starts here.
pub const HEADER_SIZE: usize = 64;

/// One tensor of a `.qorus` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QorusTensor {
    /// GGUF-style name: `token_embd.weight`, `blk.3.attn_q.weight`, ...
    pub name: String,
    /// `F32` or `QorusQ4_0`.
    pub ty: WeightType,
    /// Rows (outputs for a matrix; 1 for a norm).
    pub rows: usize,
    /// Columns (inputs; the blocked dimension of a Q4_0 matrix).
    pub cols: usize,
    /// Offset of the first byte from the start of the file.
    pub offset: usize,
    /// Bytes of data (without the padding).
    pub size: usize,
}

impl QorusTensor {
    /// The bytes of the tensor within the file.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.size
    }
}

/// The tensors of a `.qorus` file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QorusLayout {
    /// Every tensor in file order: token_embd, output_norm, output, then per layer attn_norm,
    /// attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down.
    pub tensors: Vec<QorusTensor>,
    /// End of the last tensor's padding: the minimum file size.
    pub end: usize,
}

impl QorusLayout {
    /// A tensor by name.
    pub fn get(&self, name: &str) -> Option<&QorusTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// `(name, type, rows, cols)` of every tensor in file order, for a valid header.
fn shapes(h: &q_model_header) -> Vec<(String, WeightType, usize, usize)> {
    let (v, d, hd) = (h.vocab_size as usize, h.dim as usize, h.hidden_dim as usize);
    let kvd = h.n_kv_heads as usize * (d / h.n_heads as usize);
    let f = WeightType::F32;
    let q = WeightType::QorusQ4_0;
    let mut s = vec![
        ("token_embd.weight".to_string(), f, v, d),
        ("output_norm.weight".to_string(), f, 1, d),
        ("output.weight".to_string(), f, v, d),
    ];
    for l in 0..h.n_layers as usize {
        let n = |x: &str| format!("blk.{l}.{x}.weight");
        s.extend([
            (n("attn_norm"), f, 1, d),
            (n("attn_q"), q, d, d),
            (n("attn_k"), q, kvd, d),
            (n("attn_v"), q, kvd, d),
            (n("attn_output"), q, d, d),
            (n("ffn_norm"), f, 1, d),
            (n("ffn_gate"), q, hd, d),
            (n("ffn_up"), q, hd, d),
            (n("ffn_down"), q, d, hd),
        ]);
    }
    s
}

/// Validates `header` (which may live outside the file) against a file of `file_size` bytes and
/// returns the tensor directory, with the checks and error codes of `llama_build_graph`:
/// bad magic → `InvalidMagic`; a zero `n_layers`, `dim`, `vocab_size`, `n_heads` or `n_kv_heads`,
/// or `dim` / `hidden_dim` not multiples of 32 → `InvalidConfig`; then, tensor by tensor in file
/// order, a Q4_0 matrix whose blocked dimension is not whole blocks (also `kvd % 32 != 0`, kept
/// for error-code compatibility with the original) or whose size overflows → `InvalidConfig`, an
/// F32 size that overflows → `ArenaOom` (the original's view-creation failure), and
/// `offset + A64(size) > file_size` → `InvalidConfig`.
pub fn layout(h: &q_model_header, file_size: usize) -> Result<QorusLayout> {
    if h.magic != Q_MAGIC {
        return Err(Error::InvalidMagic(format!(
            ".qorus header magic {:#010x}",
            { h.magic }
        )));
    }
    if h.n_layers == 0 || h.dim == 0 || h.vocab_size == 0 || h.n_heads == 0 || h.n_kv_heads == 0 {
        return Err(Error::InvalidConfig(
            ".qorus header: a zero dimension (n_layers, dim, vocab_size, n_heads or n_kv_heads)"
                .into(),
        ));
    }
    if !h.dim.is_multiple_of(32) || !h.hidden_dim.is_multiple_of(32) {
        return Err(Error::InvalidConfig(format!(
            ".qorus header: dim {} and hidden_dim {} must be multiples of 32",
            { h.dim },
            { h.hidden_dim }
        )));
    }
    // Each layer takes at least 9 * 64 bytes: reject impossible layer counts before sizing the
    // directory by them.
    if h.n_layers as usize > file_size / (9 * ALIGN) {
        return Err(Error::InvalidConfig(format!(
            ".qorus header: {} layers cannot fit in {file_size} bytes",
            { h.n_layers }
        )));
    }
    let kvd = h.n_kv_heads as usize * (h.dim as usize / h.n_heads as usize);
    let mut tensors = Vec::with_capacity(3 + 9 * h.n_layers as usize);
    let mut offset = HEADER_SIZE;
    for (name, ty, rows, cols) in shapes(h) {
        let size = match ty {
            WeightType::F32 => rows
                .checked_mul(cols)
                .and_then(|n| n.checked_mul(4))
                .ok_or_else(|| Error::ArenaOom(format!("{name}: F32 size overflows")))?,
            _ => {
                let is_kv = name.contains("attn_k") || name.contains("attn_v");
                if cols % QK != 0 || (is_kv && !kvd.is_multiple_of(QK)) {
                    return Err(Error::InvalidConfig(format!(
                        "{name}: [{rows}, {cols}] is not whole 32-value blocks (kvd {kvd})"
                    )));
                }
                rows.checked_mul(cols / QK)
                    .and_then(|n| n.checked_mul(ty.block_bytes()))
                    .ok_or_else(|| Error::InvalidConfig(format!("{name}: size overflows")))?
            }
        };
        let end = size
            .checked_add(ALIGN - 1)
            .map(|s| s / ALIGN * ALIGN)
            .and_then(|s| offset.checked_add(s))
            .filter(|&e| e <= file_size)
            .ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "{name}: {size} bytes at offset {offset} run past the end of the file \
                     ({file_size} bytes)"
                ))
            })?;
        tensors.push(QorusTensor {
            name,
            ty,
            rows,
            cols,
            offset,
            size,
        });
        offset = end;
    }
    Ok(QorusLayout {
        tensors,
        end: offset,
    })
}

/// Reads the header at the start of a `.qorus` file image (unaligned bytes are fine).
pub fn read_header(file: &[u8]) -> Result<q_model_header> {
    let b = file
        .get(..HEADER_SIZE)
        .ok_or_else(|| Error::FileTooSmall(format!(".qorus file of {} bytes", file.len())))?;
    let w = |i: usize| u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
    let mut reserved = [0u32; 5];
    for (k, r) in reserved.iter_mut().enumerate() {
        *r = w(11 + k);
    }
    Ok(q_model_header {
        magic: w(0),
        version: w(1),
        vocab_size: w(2),
        dim: w(3),
        hidden_dim: w(4),
        n_layers: w(5),
        n_heads: w(6),
        n_kv_heads: w(7),
        max_seq_len: w(8),
        rope_freq_base: f32::from_bits(w(9)),
        rms_norm_eps: f32::from_bits(w(10)),
        reserved,
    })
}

/// The 64 bytes of a header.
pub fn header_bytes(h: &q_model_header) -> [u8; HEADER_SIZE] {
    let words = [
        h.magic,
        h.version,
        h.vocab_size,
        h.dim,
        h.hidden_dim,
        h.n_layers,
        h.n_heads,
        h.n_kv_heads,
        h.max_seq_len,
        h.rope_freq_base.to_bits(),
        h.rms_norm_eps.to_bits(),
        h.reserved[0],
        h.reserved[1],
        h.reserved[2],
        h.reserved[3],
        h.reserved[4],
    ];
    let mut b = [0u8; HEADER_SIZE];
    for (o, w) in b.chunks_exact_mut(4).zip(words) {
        o.copy_from_slice(&w.to_le_bytes());
    }
    b
}

/// The GGUF tensor a `.qorus` tensor is made from (the tied output reads the embedding).
fn gguf_source<'a>(g: &'a Gguf, name: &str) -> Result<&'a crate::format::gguf::TensorInfo> {
    let src = if name == "output.weight" && g.tensor(name).is_none() {
        "token_embd.weight"
    } else {
        name
    };
    g.tensor(src)
        .ok_or_else(|| Error::InvalidConfig(format!("GGUF: tensor {src} is missing")))
}

/// Converts a LLaMA GGUF model into a `.qorus` model file (see the module documentation).
pub fn convert_gguf_to_qorus(gguf_path: &Path, out_path: &Path) -> Result<()> {
    let map = map_input(gguf_path)?;
    let shown = gguf_path.display().to_string();
    let annotate = |e: Error| match e {
        Error::InvalidConfig(m) => Error::InvalidConfig(format!("{shown}: {m}")),
        other => other,
    };
    let g = Gguf::parse(&map).map_err(annotate)?;
    let cfg = Config::from_gguf(&g).map_err(annotate)?;
    if cfg.dim % 32 != 0 || cfg.hidden_dim % 32 != 0 || cfg.kv_dim() % 32 != 0 {
        return Err(annotate(Error::InvalidConfig(format!(
            "dim {}, hidden_dim {} and kv dim {} must be multiples of 32 for a .qorus file",
            cfg.dim,
            cfg.hidden_dim,
            cfg.kv_dim()
        ))));
    }
    if cfg.vocab_size > u32::MAX as usize || cfg.max_seq_len > u32::MAX as usize {
        return Err(annotate(Error::InvalidConfig(
            "vocabulary or context too large".into(),
        )));
    }
    let header = cfg.to_header();
    let plan = shapes(&header);

    // Every GGUF tensor must be represented (nothing is silently dropped).
    for t in &g.tensors {
        if !plan.iter().any(|(n, ..)| *n == t.name) {
            return Err(annotate(Error::InvalidConfig(format!(
                "tensor {} cannot be stored in a .qorus file",
                t.name
            ))));
        }
    }
    // Shapes: GGUF dims are [cols, rows] (innermost first).
    for (name, _, rows, cols) in &plan {
        let t = gguf_source(&g, name).map_err(annotate)?;
        let ok = if *rows == 1 {
            t.dims == [*cols as u64]
        } else {
            t.dims == [*cols as u64, *rows as u64]
        };
        if !ok || t.ty.is_none() {
            return Err(annotate(Error::InvalidConfig(format!(
                "tensor {} has shape {:?} and ggml type {}; expected [{cols}, {rows}]",
                t.name, t.dims, t.ggml_type
            ))));
        }
    }

    let mut out = OutFile::create(out_path)?;
    out.write_all(&header_bytes(&header))
        .map_err(|e| out.io(e))?;
    let mut row_f32 = Vec::new();
    let mut row_out = Vec::new();
    for (name, ty, rows, cols) in &plan {
        let t = gguf_source(&g, name)?;
        let src_ty = t.ty.unwrap_or(WeightType::F32);
        let bytes = g.tensor_bytes(&map, t)?;
        let in_row = src_ty
            .row_bytes(*cols)
            .ok_or_else(|| Error::InvalidConfig(format!("tensor {}: row size", t.name)))?;
        let out_row = ty
            .row_bytes(*cols)
            .ok_or_else(|| Error::InvalidConfig(format!("tensor {name}: row size")))?;
        row_f32.resize(*cols, 0.0);
        row_out.resize(out_row, 0);
        for src in bytes.chunks_exact(in_row).take(*rows) {
            if src_ty == WeightType::Q4_0 && *ty == WeightType::QorusQ4_0 {
                transcode_q4_0_to_qorus(src, &mut row_out)?;
            } else {
                dequantize_row(src_ty, src, &mut row_f32)?;
                quantize_row(*ty, &row_f32, &mut row_out)?;
            }
            out.write_all(&row_out).map_err(|e| out.io(e))?;
        }
        let size = out_row * rows;
        let pad = size.div_ceil(ALIGN) * ALIGN - size;
        out.write_all(&[0u8; ALIGN][..pad]).map_err(|e| out.io(e))?;
    }
    out.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::types::*;
    use crate::format::gguf::Value;
    use crate::format::gguf_write::{GgufWriter, TensorSpec};

    fn header(v: u32, d: u32, h: u32, l: u32, heads: u32, kv: u32) -> q_model_header {
        q_model_header {
            magic: Q_MAGIC,
            version: 2,
            vocab_size: v,
            dim: d,
            hidden_dim: h,
            n_layers: l,
            n_heads: heads,
            n_kv_heads: kv,
            max_seq_len: 32,
            rope_freq_base: 10000.0,
            rms_norm_eps: 1e-5,
            reserved: [0; 5],
        }
    }

    #[test]
    fn spec_example_offsets() {
        // V = d = h = 64, L = 1: 51 520 bytes, tensors at 64, 16448, 16704, 33088, 33344, 35904
        let h = header(64, 64, 64, 1, 4, 4);
        let l = layout(&h, 51_520).unwrap();
        assert_eq!(l.end, 51_520);
        let offs: Vec<usize> = l.tensors.iter().map(|t| t.offset).collect();
        assert_eq!(&offs[..6], &[64, 16448, 16704, 33088, 33344, 35904]);
        assert_eq!(l.tensors.len(), 12);
        assert_eq!(
            l.get("blk.0.attn_q.weight").unwrap().size,
            64 * 64 / 32 * 20
        );
        // one byte short: the last tensor's padding must be present
        assert_eq!(layout(&h, 51_519).unwrap_err().code(), Q_ERR_INVALID_CONFIG);
    }

    #[test]
    fn orientation_is_out_in() {
        let h = header(96, 64, 128, 2, 4, 2); // hd 16, kvd 32
        let l = layout(&h, usize::MAX).unwrap();
        let rc = |n: &str| {
            let t = l.get(n).unwrap();
            (t.rows, t.cols, t.ty)
        };
        let q = WeightType::QorusQ4_0;
        assert_eq!(rc("token_embd.weight"), (96, 64, WeightType::F32));
        assert_eq!(rc("output.weight"), (96, 64, WeightType::F32));
        assert_eq!(rc("blk.1.attn_q.weight"), (64, 64, q));
        assert_eq!(rc("blk.1.attn_k.weight"), (32, 64, q));
        assert_eq!(rc("blk.1.attn_v.weight"), (32, 64, q));
        assert_eq!(rc("blk.1.attn_output.weight"), (64, 64, q));
        assert_eq!(rc("blk.1.ffn_gate.weight"), (128, 64, q));
        assert_eq!(rc("blk.1.ffn_up.weight"), (128, 64, q));
        assert_eq!(rc("blk.1.ffn_down.weight"), (64, 128, q));
        assert_eq!(rc("blk.1.ffn_norm.weight"), (1, 64, WeightType::F32));
        assert_eq!(l.tensors.len(), 3 + 18);
        for w in l.tensors.windows(2) {
            assert_eq!(w[0].offset % 64, 0);
            assert_eq!(w[1].offset, w[0].offset + w[0].size.div_ceil(64) * 64);
        }
    }

    #[test]
    fn header_errors() {
        let good = header(64, 64, 64, 1, 4, 4);
        let mut h = good;
        h.magic = 0;
        assert_eq!(
            layout(&h, usize::MAX).unwrap_err().code(),
            Q_ERR_INVALID_MAGIC
        );
        for f in [
            |h: &mut q_model_header| h.n_layers = 0,
            |h: &mut q_model_header| h.dim = 0,
            |h: &mut q_model_header| h.vocab_size = 0,
            |h: &mut q_model_header| h.n_heads = 0,
            |h: &mut q_model_header| h.n_kv_heads = 0,
            |h: &mut q_model_header| h.dim = 48,
            |h: &mut q_model_header| h.hidden_dim = 40,
            |h: &mut q_model_header| h.n_kv_heads = 1, // kvd 16
        ] {
            let mut h = good;
            f(&mut h);
            assert_eq!(
                layout(&h, usize::MAX).unwrap_err().code(),
                Q_ERR_INVALID_CONFIG
            );
        }
        // F32 size overflow: the original's view failure
        let mut h = good;
        h.vocab_size = u32::MAX;
        h.dim = 0xFFFF_FFE0;
        h.n_heads = 1;
        h.n_kv_heads = 1;
        assert_eq!(layout(&h, usize::MAX).unwrap_err().code(), Q_ERR_ARENA_OOM);
        // huge but representable sizes run past the end
        let mut h = good;
        h.vocab_size = 1 << 30;
        assert_eq!(
            layout(&h, 1 << 20).unwrap_err().code(),
            Q_ERR_INVALID_CONFIG
        );
    }

    #[test]
    fn header_bytes_round_trip() {
        let mut h = header(49152, 576, 1536, 30, 9, 3);
        h.reserved = [1, 2, 3, 4, 5];
        let b = header_bytes(&h);
        assert_eq!(&b[..4], &Q_MAGIC.to_le_bytes());
        let back = read_header(&b).unwrap();
        assert_eq!(header_bytes(&back), b);
        assert!(read_header(&b[..63]).is_err());
    }

    /// A tiny llama GGUF (d 64, h 96, 2 layers, H 4, G 2, V 40, tied output) in `ty` matrices.
    fn tiny_gguf(path: &Path, ty: WeightType, extra: bool) -> Vec<(String, Vec<u64>, Vec<f32>)> {
        let (d, h, v, kvd) = (64u64, 96u64, 40u64, 32u64);
        let mut ts: Vec<(String, Vec<u64>)> = vec![
            ("token_embd.weight".into(), vec![d, v]),
            ("output_norm.weight".into(), vec![d]),
        ];
        for l in 0..2 {
            let n = |x: &str| format!("blk.{l}.{x}.weight");
            ts.extend([
                (n("attn_norm"), vec![d]),
                (n("attn_q"), vec![d, d]),
                (n("attn_k"), vec![d, kvd]),
                (n("attn_v"), vec![d, kvd]),
                (n("attn_output"), vec![d, d]),
                (n("ffn_norm"), vec![d]),
                (n("ffn_gate"), vec![d, h]),
                (n("ffn_up"), vec![d, h]),
                (n("ffn_down"), vec![h, d]),
            ]);
        }
        if extra {
            ts.push(("rope_freqs.weight".into(), vec![8]));
        }
        let mut seed = 7u32;
        let data: Vec<(String, Vec<u64>, Vec<f32>)> = ts
            .into_iter()
            .map(|(n, dims)| {
                let len = dims.iter().product::<u64>() as usize;
                let vals = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        ((seed >> 9) as f32 / (1u32 << 23) as f32 - 0.5) * 0.1
                    })
                    .collect();
                (n, dims, vals)
            })
            .collect();
        let u = |x: u32| Value::U32(x);
        let meta = vec![
            (
                "general.architecture".to_string(),
                Value::String(b"llama".to_vec()),
            ),
            ("llama.block_count".to_string(), u(2)),
            ("llama.context_length".to_string(), u(128)),
            ("llama.embedding_length".to_string(), u(64)),
            ("llama.feed_forward_length".to_string(), u(96)),
            ("llama.attention.head_count".to_string(), u(4)),
            ("llama.attention.head_count_kv".to_string(), u(2)),
            ("llama.rope.freq_base".to_string(), Value::F32(100000.0)),
            (
                "llama.attention.layer_norm_rms_epsilon".to_string(),
                Value::F32(1e-6),
            ),
        ];
        let specs: Vec<TensorSpec> = data
            .iter()
            .map(|(n, dims, _)| TensorSpec {
                name: n.clone(),
                dims: dims.clone(),
                ty: if dims.len() == 2 { ty } else { WeightType::F32 },
            })
            .collect();
        let mut f = std::fs::File::create(path).unwrap();
        let mut w = GgufWriter::new(&mut f, "tiny", &meta, &specs).unwrap();
        for ((_, _, vals), s) in data.iter().zip(&specs) {
            let mut b = vec![0u8; s.size().unwrap()];
            quantize_row(s.ty, vals, &mut b).unwrap();
            w.write_tensor(&b).unwrap();
        }
        w.finish().unwrap();
        data
    }

    #[test]
    fn converts_a_tiny_gguf() {
        let dir = std::env::temp_dir().join(format!("qorus-qf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for src_ty in [WeightType::F32, WeightType::Q4_0, WeightType::Q8_0] {
            let src = dir.join(format!("tiny-{}.gguf", src_ty.name()));
            let data = tiny_gguf(&src, src_ty, false);
            let out = dir.join(format!("tiny-{}.qorus", src_ty.name()));
            convert_gguf_to_qorus(&src, &out).unwrap();
            let file = std::fs::read(&out).unwrap();
            let h = read_header(&file).unwrap();
            assert_eq!(
                (h.version, h.vocab_size, h.dim, h.hidden_dim, h.n_layers),
                (2, 40, 64, 96, 2)
            );
            assert_eq!((h.n_heads, h.n_kv_heads, h.max_seq_len), (4, 2, 128));
            assert_eq!(({ h.rope_freq_base }, { h.rms_norm_eps }), (100000.0, 1e-6));
            assert_eq!(h.reserved, [0; 5]);
            let l = layout(&h, file.len()).unwrap();
            assert_eq!(l.end, file.len());
            let src_bytes = std::fs::read(&src).unwrap();
            let g = Gguf::parse(&src_bytes).unwrap();
            for t in &l.tensors {
                // the values the GGUF holds, as f32
                let from = gguf_source(&g, &t.name).unwrap();
                let mut want = vec![0f32; t.rows * t.cols];
                dequantize_row(
                    from.ty.unwrap(),
                    g.tensor_bytes(&src_bytes, from).unwrap(),
                    &mut want,
                )
                .unwrap();
                let mut got = vec![0f32; t.rows * t.cols];
                dequantize_row(t.ty, &file[t.range()], &mut got).unwrap();
                if t.ty == WeightType::F32 || src_ty == WeightType::Q4_0 {
                    assert_eq!(got, want, "{} from {src_ty:?}", t.name); // lossless
                } else {
                    let mut expect = vec![0u8; t.size];
                    quantize_row(t.ty, &want, &mut expect).unwrap();
                    assert_eq!(&file[t.range()], &expect[..], "{}", t.name);
                }
                // padding is zero
                let pad_end = t.offset + t.size.div_ceil(64) * 64;
                assert!(file[t.offset + t.size..pad_end].iter().all(|&b| b == 0));
            }
            // tied output = embedding
            let e = l.get("token_embd.weight").unwrap();
            let o = l.get("output.weight").unwrap();
            assert_eq!(file[e.range()], file[o.range()]);
            // the original values survive quantization approximately
            let (_, _, q_vals) = data
                .iter()
                .find(|(n, ..)| n == "blk.1.attn_k.weight")
                .unwrap();
            let k = l.get("blk.1.attn_k.weight").unwrap();
            let mut got = vec![0f32; k.rows * k.cols];
            dequantize_row(k.ty, &file[k.range()], &mut got).unwrap();
            let max_err = got
                .iter()
                .zip(q_vals)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(max_err < 0.05 / 8.0 * 2.0 + 1e-4, "max err {max_err}");
        }
        // a tensor the format cannot hold is an error, and nothing is written
        let src = dir.join("extra.gguf");
        tiny_gguf(&src, WeightType::F32, true);
        let out = dir.join("extra.qorus");
        assert_eq!(
            convert_gguf_to_qorus(&src, &out).unwrap_err().code(),
            Q_ERR_INVALID_CONFIG
        );
        assert!(!out.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
