//! Compute kernels of the engine: quantized and float matrix products, activation quantization,
//! RMSNorm, softmax, SwiGLU, RoPE and small vector helpers.
//!
//! Every kernel has a portable scalar version ([`scalar`]) that follows ggml's numerics, and
//! SIMD versions (AVX2+FMA+F16C, AVX-512 F/BW/VL with VNNI when present) selected at run time
//! by [`dispatch::level`]. The `*_at` functions take an explicit [`Level`] (capped to what the CPU
//! supports) so tests and benchmarks can compare levels.
//!
//! Matrix convention: a weight matrix is `rows` rows of `cols` values in its storage format (the
//! ggml / GGUF convention, `[out, in]`); `matmul` computes `out[i][j] = W[j] · x[i]`.

use std::ops::Range;

use crate::quant::{WeightType, QK, QK_K};

pub mod attn;
pub mod dispatch;
pub mod gelu;
pub mod kdot;
pub mod packed;
pub mod packed_k;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86;
#[cfg(target_arch = "x86_64")]
pub mod x86_attn;
#[cfg(target_arch = "x86_64")]
pub mod x86_packed;
#[cfg(target_arch = "x86_64")]
pub mod x86_packed_k;
#[cfg(target_arch = "x86_64")]
pub mod x86_packed_zmm;

pub use dispatch::{level, Level};

/// A row-major weight matrix in its storage format: `rows` rows of `cols` values, rows contiguous.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    /// Storage format.
    pub ty: WeightType,
    /// The bytes (at least `rows * row_bytes`).
    pub data: &'a [u8],
    /// Number of rows (outputs).
    pub rows: usize,
    /// Values per row (inputs).
    pub cols: usize,
}

impl MatRef<'_> {
    /// Bytes per row. Panics if `cols` is not a whole number of blocks.
    pub fn row_bytes(&self) -> usize {
        match self.ty.row_bytes(self.cols) {
            Some(rb) => rb,
            None => panic!(
                "{} matrix with {} columns: not a whole number of blocks",
                self.ty.name(),
                self.cols
            ),
        }
    }
}

/// Activations prepared for one matrix input: `n` rows of `k` values.
#[derive(Clone, Copy, Debug)]
pub enum Acts<'a> {
    /// Plain floats, `x[i * k + c]`.
    F32 {
        /// Values.
        x: &'a [f32],
        /// Rows.
        n: usize,
        /// Values per row.
        k: usize,
    },
    /// Quantized per 32-block by [`quantize_acts`]: `qs[i * k + c]`, `d`/`s` per block
    /// (`i * k / 32 + b`). `s` may be empty unless the weights are Q4_1.
    Q8 {
        /// Quantized values.
        qs: &'a [i8],
        /// Block scales.
        d: &'a [f32],
        /// Block sums times scale (`d_unrounded * sum(qs)` rounded through f16).
        s: &'a [f32],
        /// Rows.
        n: usize,
        /// Values per row.
        k: usize,
    },
    /// Quantized per 256-block by [`quantize_acts_k`] (ggml's Q8_K with per-32 power-of-two
    /// sub-scales): `qs[i * k + c]`, `d` per block (`i * k / 256 + b`), `bsums` per 16 values
    /// (`i * k / 16 + j`), `sh` per 32 values (`i * k / 32 + j`).
    Q8K {
        /// Quantized values.
        qs: &'a [i8],
        /// Block scales (f32).
        d: &'a [f32],
        /// Sums of 16 consecutive codes, times their sub-block's factor `1 << sh`.
        bsums: &'a [i16],
        /// Exponents (0..=3) of the per-32 factors: the codes of sub-block `j` are in units of
        /// `d / 2^(3 - sh[j])`.
        sh: &'a [u8],
        /// Rows.
        n: usize,
        /// Values per row.
        k: usize,
    },
}

/// Activation rows from which a matrix product counts as a prefill's (bound by compute: every
/// weight is reused by several rows) rather than a decode step's (bound by the weight stream).
pub const PREFILL_ROWS: usize = 4;

impl Acts<'_> {
    /// (rows, values per row).
    pub fn shape(&self) -> (usize, usize) {
        match *self {
            Acts::F32 { n, k, .. } | Acts::Q8 { n, k, .. } | Acts::Q8K { n, k, .. } => (n, k),
        }
    }
}

/// The activation form a weight type's matrix products take (llama.cpp's `vec_dot_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActKind {
    /// Plain f32 (float weights).
    F32,
    /// Q8_0 / Q8_1 per 32 values ([`quantize_acts`]).
    Q8,
    /// Q8_K per 256 values ([`quantize_acts_k`]).
    Q8K,
}

/// The activation form of `ty`.
pub const fn act_kind(ty: WeightType) -> ActKind {
    match ty {
        WeightType::F32 | WeightType::F16 | WeightType::BF16 => ActKind::F32,
        WeightType::Q4_0
        | WeightType::Q4_1
        | WeightType::Q8_0
        | WeightType::QorusQ4_0
        | WeightType::Q5_0
        | WeightType::Q5_1
        | WeightType::IQ4_NL => ActKind::Q8,
        WeightType::Q2_K
        | WeightType::Q3_K
        | WeightType::Q4_K
        | WeightType::Q5_K
        | WeightType::Q6_K
        | WeightType::IQ4_XS => ActKind::Q8K,
    }
}

/// Whether weights of type `ty` take Q8 (32-block) activations.
pub fn wants_q8(ty: WeightType) -> bool {
    act_kind(ty) == ActKind::Q8
}

/// Whether weights of type `ty` take Q8_K (256-block) activations.
pub fn wants_q8k(ty: WeightType) -> bool {
    act_kind(ty) == ActKind::Q8K
}

/// Quantizes activations per 256-block like ggml's `quantize_row_q8_K`, with per-32
/// power-of-two sub-scales (see [`kdot::quantize_acts_k`]). `x.len()` must be a multiple of 256;
/// `qs` holds `x.len()` values, `d` `x.len()/256`, `bsums` `x.len()/16`, `sh` `x.len()/32`.
pub fn quantize_acts_k(x: &[f32], qs: &mut [i8], d: &mut [f32], bsums: &mut [i16], sh: &mut [u8]) {
    quantize_acts_k_at(level(), x, qs, d, bsums, sh)
}

/// [`quantize_acts_k`] at a given level.
pub fn quantize_acts_k_at(
    lv: Level,
    x: &[f32],
    qs: &mut [i8],
    d: &mut [f32],
    bsums: &mut [i16],
    sh: &mut [u8],
) {
    quantize_acts_k_max_at(lv, x, qs, d, bsums, sh, kdot::max_shift())
}

/// [`quantize_acts_k_at`] with the sub-block shifts limited to `smax` (see
/// [`kdot::quantize_acts_k_max`]).
pub fn quantize_acts_k_max_at(
    lv: Level,
    x: &[f32],
    qs: &mut [i8],
    d: &mut [f32],
    bsums: &mut [i16],
    sh: &mut [u8],
    smax: u32,
) {
    assert!(
        x.len().is_multiple_of(QK_K),
        "quantize_acts_k: length {} is not a multiple of 256",
        x.len()
    );
    assert!(
        qs.len() >= x.len()
            && d.len() >= x.len() / QK_K
            && bsums.len() >= x.len() / 16
            && sh.len() >= x.len() / 32,
        "quantize_acts_k: output too small"
    );
    #[cfg(target_arch = "x86_64")]
    if dispatch::clamp(lv) >= Level::Avx2 {
        // SAFETY: the CPU has AVX2/FMA/F16C (level check); lengths checked above.
        return unsafe { x86_packed_k::quant::quantize_acts_k(x, qs, d, bsums, sh, smax) };
    }
    let _ = lv;
    kdot::quantize_acts_k_max(x, qs, d, bsums, sh, smax)
}

/// Quantizes activations per 32-block like ggml's `quantize_row_q8_0` / `q8_1` (AVX path):
/// `d = f16(amax/127)`, `qs = round_half_even(x * 127/amax)`, `s = f16(amax/127 * sum(qs))`.
/// `x.len()` must be a multiple of 32; `qs` holds `x.len()` values, `d` and `s` `x.len()/32`.
pub fn quantize_acts(x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    quantize_acts_at(level(), x, qs, d, s)
}

/// [`quantize_acts`] at a given level.
pub fn quantize_acts_at(lv: Level, x: &[f32], qs: &mut [i8], d: &mut [f32], s: &mut [f32]) {
    assert!(
        x.len().is_multiple_of(QK),
        "quantize_acts: length {} is not a multiple of 32",
        x.len()
    );
    let nb = x.len() / QK;
    assert!(
        qs.len() >= x.len() && d.len() >= nb && s.len() >= nb,
        "quantize_acts: output too small"
    );
    #[cfg(target_arch = "x86_64")]
    if dispatch::clamp(lv) >= Level::Avx2 {
        // SAFETY: the CPU has AVX2/FMA/F16C (level check); lengths checked above.
        return unsafe { x86_packed::quant::quantize_acts(x, qs, d, s) };
    }
    let _ = lv;
    scalar::quantize_acts(x, qs, d, s)
}

fn check_matmul(w: &MatRef<'_>, a: &Acts<'_>, rows: &Range<usize>) {
    let rb = w.row_bytes();
    assert!(
        rows.start <= rows.end && rows.end <= w.rows,
        "matmul: rows {rows:?} outside 0..{}",
        w.rows
    );
    assert!(w.data.len() >= w.rows * rb, "matmul: weight data too short");
    let (n, k) = a.shape();
    assert_eq!(
        k, w.cols,
        "matmul: activation length {k} != weight columns {}",
        w.cols
    );
    match *a {
        Acts::F32 { x, .. } => {
            assert!(
                !wants_q8(w.ty),
                "matmul: {} weights need Q8 activations",
                w.ty.name()
            );
            assert!(x.len() >= n * k, "matmul: activations too short");
        }
        Acts::Q8 { qs, d, s, .. } => {
            assert!(
                wants_q8(w.ty),
                "matmul: {} weights need F32 activations",
                w.ty.name()
            );
            assert!(k % QK == 0, "matmul: k = {k} not a multiple of 32");
            assert!(
                qs.len() >= n * k && d.len() >= n * k / QK,
                "matmul: Q8 activations too short"
            );
            if matches!(w.ty, WeightType::Q4_1 | WeightType::Q5_1) {
                assert!(
                    s.len() >= n * k / QK,
                    "matmul: {} needs the block sums `s`",
                    w.ty.name()
                );
            }
        }
        Acts::Q8K {
            qs, d, bsums, sh, ..
        } => {
            assert!(
                wants_q8k(w.ty),
                "matmul: {} weights do not take Q8_K activations",
                w.ty.name()
            );
            assert!(k % QK_K == 0, "matmul: k = {k} not a multiple of 256");
            assert!(
                qs.len() >= n * k
                    && d.len() >= n * k / QK_K
                    && bsums.len() >= n * k / 16
                    && sh.len() >= n * k / 32,
                "matmul: Q8_K activations too short"
            );
            // the kernels' exactness bound (kdot's module documentation) needs factors <= 8
            assert!(
                sh[..n * k / 32].iter().all(|&e| e <= 3),
                "matmul: Q8_K factor exponent above 3"
            );
        }
    }
}

/// `out[i*ldo + j] = Σ_c W[j][c] · x[i][c]` for every activation row `i < n` and every weight row
/// `j` in `rows`.
///
/// # Safety
/// `out` must be valid for writes at every `i*ldo + j` above; concurrent calls must use disjoint
/// `rows` (or disjoint outputs). Shapes are checked (panics on mismatch).
pub unsafe fn matmul(w: MatRef<'_>, a: Acts<'_>, rows: Range<usize>, out: *mut f32, ldo: usize) {
    matmul_at(level(), w, a, rows, out, ldo)
}

/// [`matmul`] at a given level.
///
/// # Safety
/// As [`matmul`].
pub unsafe fn matmul_at(
    lv: Level,
    w: MatRef<'_>,
    a: Acts<'_>,
    rows: Range<usize>,
    out: *mut f32,
    ldo: usize,
) {
    check_matmul(&w, &a, &rows);
    let (n, _) = a.shape();
    if rows.is_empty() || n == 0 {
        return;
    }
    let lv = dispatch::clamp(lv);
    #[cfg(target_arch = "x86_64")]
    if lv >= Level::Avx2 && !w.ty.is_kquant_family() {
        let use512 = lv == Level::Avx512 && dispatch::vnni();
        let rb = w.row_bytes();
        match a {
            Acts::Q8 { qs, d, s, n, k } => {
                if use512 {
                    x86::avx512vnni::matmul_q8(w.ty, w.data, rb, qs, d, s, n, k, rows, out, ldo)
                } else {
                    x86::avx2::matmul_q8(w.ty, w.data, rb, qs, d, s, n, k, rows, out, ldo)
                }
            }
            Acts::F32 { x, n, k } => {
                if use512 {
                    x86::avx512vnni::matmul_f32(w.ty, w.data, rb, x, n, k, rows, out, ldo)
                } else {
                    x86::avx2::matmul_f32(w.ty, w.data, rb, x, n, k, rows, out, ldo)
                }
            }
            Acts::Q8K { .. } => unreachable!("checked: only K-quant family types take Q8_K"),
        }
        return;
    }
    scalar::matmul(w, a, rows, out, ldo)
}

/// Dequantizes row `row` of `w` into `out[..w.cols]` (e.g. an embedding lookup).
pub fn dequantize_row(w: MatRef<'_>, row: usize, out: &mut [f32]) {
    assert!(row < w.rows, "dequantize_row: row {row} >= {}", w.rows);
    assert!(out.len() >= w.cols, "dequantize_row: output too short");
    assert!(
        w.data.len() >= (row + 1) * w.row_bytes(),
        "dequantize_row: data too short"
    );
    scalar::dequantize_row(w, row, out)
}

/// `out = x * weight / sqrt(mean(x²) + eps)`, ggml's numerics (sum of squares in f64,
/// `(x * scale) * weight`).
pub fn rmsnorm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    rmsnorm_at(level(), x, weight, eps, out)
}

/// [`rmsnorm`] at a given level.
pub fn rmsnorm_at(lv: Level, x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    assert!(
        weight.len() >= x.len() && out.len() >= x.len(),
        "rmsnorm: length mismatch"
    );
    let _ = dispatch::clamp(lv);
    scalar::rmsnorm(x, &weight[..x.len()], eps, &mut out[..x.len()])
}

/// `Σ a[i] b[i]` over `min(a.len(), b.len())` elements.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    dot_at(level(), a, b)
}

/// [`dot`] at a given level.
pub fn dot_at(lv: Level, a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    #[cfg(target_arch = "x86_64")]
    if dispatch::clamp(lv) >= Level::Avx2 {
        return unsafe { x86::vec::dot(&a[..n], &b[..n]) };
    }
    scalar::dot(&a[..n], &b[..n])
}

/// `y += alpha * x` over `min(x.len(), y.len())` elements.
pub fn axpy(alpha: f32, x: &[f32], y: &mut [f32]) {
    axpy_at(level(), alpha, x, y)
}

/// [`axpy`] at a given level.
pub fn axpy_at(lv: Level, alpha: f32, x: &[f32], y: &mut [f32]) {
    let n = x.len().min(y.len());
    #[cfg(target_arch = "x86_64")]
    if dispatch::clamp(lv) >= Level::Avx2 {
        return unsafe { x86::vec::axpy(alpha, &x[..n], &mut y[..n]) };
    }
    scalar::axpy(alpha, &x[..n], &mut y[..n])
}

/// `x *= s`.
pub fn scale(x: &mut [f32], s: f32) {
    scale_at(level(), x, s)
}

/// [`scale`] at a given level.
pub fn scale_at(lv: Level, x: &mut [f32], s: f32) {
    #[cfg(target_arch = "x86_64")]
    if dispatch::clamp(lv) >= Level::Avx2 {
        return unsafe { x86::vec::scale(x, s) };
    }
    scalar::scale(x, s)
}

/// Softmax in place: `exp(x - max) / Σ`, with an exact (expf-accurate) exponential.
pub fn softmax(x: &mut [f32]) {
    softmax_at(level(), x)
}

/// [`softmax`] at a given level.
pub fn softmax_at(lv: Level, x: &mut [f32]) {
    if x.is_empty() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if dispatch::clamp(lv) >= Level::Avx2 {
        return unsafe { x86::vec::softmax(x) };
    }
    scalar::softmax(x)
}

/// `out = gate * sigmoid(gate) * up` (SiLU-gated linear unit), expf-accurate.
pub fn swiglu(gate: &[f32], up: &[f32], out: &mut [f32]) {
    swiglu_at(level(), gate, up, out)
}

/// [`swiglu`] at a given level.
pub fn swiglu_at(lv: Level, gate: &[f32], up: &[f32], out: &mut [f32]) {
    let n = gate.len();
    assert!(up.len() >= n && out.len() >= n, "swiglu: length mismatch");
    #[cfg(target_arch = "x86_64")]
    if dispatch::clamp(lv) >= Level::Avx2 {
        return unsafe { x86::vec::swiglu(gate, &up[..n], &mut out[..n]) };
    }
    scalar::swiglu(gate, &up[..n], &mut out[..n])
}

/// RoPE on one head: `(x[2i], x[2i+1])` rotated by `(cos[i], sin[i])` for `i < x.len()/2`.
pub fn rope(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    rope_at(level(), x, cos, sin)
}

/// [`rope`] at a given level.
pub fn rope_at(lv: Level, x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let h = x.len() / 2;
    assert!(
        cos.len() >= h && sin.len() >= h,
        "rope: tables shorter than {h}"
    );
    let _ = dispatch::clamp(lv);
    scalar::rope(x, cos, sin)
}

/// RoPE on one head, NEOX style: `(x[i], x[i + len/2])` rotated by `(cos[i], sin[i])`.
pub fn rope_neox(x: &mut [f32], cos: &[f32], sin: &[f32]) {
    let h = x.len() / 2;
    assert!(
        cos.len() >= h && sin.len() >= h,
        "rope_neox: tables shorter than {h}"
    );
    scalar::rope_neox(x, cos, sin)
}

/// [`rmsnorm`] in place (per-head Q/K norms, post-attention and post-FFN norms).
pub fn rmsnorm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    assert!(weight.len() >= x.len(), "rmsnorm: length mismatch");
    scalar::rmsnorm_in_place(x, &weight[..x.len()], eps)
}

/// The public `q_gemv_q4_f32_avx2` product: `out[r] = Σ_c W[r][c] x[c]` for a `.qorus` Q4_0
/// matrix of `m` rows of `n` values (n % 32 == 0) and F32 input (not quantized).
pub fn gemv_qorus_f32(w: &[u8], m: usize, n: usize, x: &[f32], out: &mut [f32]) {
    assert!(n.is_multiple_of(QK) && w.len() >= m * n / QK * 20 && x.len() >= n && out.len() >= m);
    scalar::gemv_qorus_f32(w, m, n, x, out)
}

/// Rounds every value through binary16 (what ggml does to activations before an F16 matmul:
/// its `vec_dot_type` for F16 weights is F16). Call it on the F32 activations of F16 weights to
/// reproduce llama.cpp's numbers.
pub fn round_to_f16(x: &mut [f32]) {
    x.iter_mut().for_each(|v| *v = scalar::round_f16(*v));
}

#[cfg(test)]
pub(crate) mod tests;
